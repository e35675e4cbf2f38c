#!/usr/bin/env bats
# tests/grade-defects.bats -- the grader finds a defect where it is: a copy
# of 04-select with one planted defect loses the points of the rubric line
# the defect breaks, and keeps the others'.
#
# Each defect is one sed on a copy of 04, made in the test's own folder,
# and is graded with `scripts/grade -l LINE,OTHER`: the line whose tests
# see it, and one more line as a witness that the rest still scores.
# (Graded whole, each copy loses only its line's points: checked when the
# defects were written, in 2 to 3 minutes each, too long for make test.)
#
# Every rubric line of 04 has its defect but concurrency: the model's
# test runs 100 concurrent clients too, so what breaks concurrency breaks
# the model's line as well, and no defect can be seen by one line alone.

load helpers

# plant_defect LINE DIR: DIR becomes a copy of 04-select with the defect
# that LINE's tests see; fails if the sed changed nothing, so that no
# test of it can pass on an unchanged copy.
plant_defect() {
    local line=$1 dir=$2 file=server.c e=()
    mkdir -p "$dir"
    cp "$ROOT"/04-select/*.c "$dir/"
    case $line in
    interface) # -q ignored: every accepted client logged all the same
        e=(-e 's/^    log_accepted\(c->peer\);$/    logmsg("accepted %s", c->peer);/') ;;
    client) # SIGINT ignored: Ctrl-C no longer stops the client
        file=client.c e=(-e 's/^    sigpipe_ignore\(\);.*$/&\n    signal(SIGINT, SIG_IGN);/') ;;
    echo) # past 4 MiB on one connection, the last byte of each read is lost
        e=(-e 's/^        conn_read\(c, READ_SIZE\);$/        {\n            char buf[READ_SIZE];\n            ssize_t n = conn_recv(c, buf, sizeof buf);\n            if (n > 0)\n                conn_send(c, buf, (size_t)(n - (c->nbytes > (4u << 20))));\n        }/') ;;
    memory) # reads on, whatever is pending: no high-water mark
        e=(-e 's/conn_wants_read\(c\)/(!c->peer_done \&\& c->error == 0)/g') ;;
    emfile) # out of descriptors, the server exits
        e=(-e 's/if \(!accept_lost_client\(errno\)\)/if (errno == EMFILE || !accept_lost_client(errno))/') ;;
    stop) # stopped with clients connected, it exits 1
        e=(-e 's/^    exit\(0\);$/    exit(s.nconns > 0);/') ;;
    leaks) # a connection that failed is freed, its socket never closed
        e=(-e '/^static void close_conn/,/^}/s/^    conn_free\(c\);$/    if (c->error == 0)\n        conn_free(c);\n    else\n        free(c);/') ;;
    model) # a second thread, which only sleeps
        e=(-e 's/^#include <errno\.h>$/&\n#include <pthread.h>/'
            -e 's/^int main\(int argc, char \*\*argv\)$/static void *idle(void *arg)\n{\n    pause();\n    return arg;\n}\n\n&/'
            -e 's/^    log_listening\(s\.listenfd\);$/&\n    pthread_t idler;\n    if (pthread_create(\&idler, NULL, idle, NULL) != 0)\n        err_quit("pthread_create");/') ;;
    options) # --linger parsed, then never applied
        e=(-e 's/^    s\.linger = \(int\)set\.linger;$/    s.linger = -1;/') ;;
    *) return 1 ;;
    esac
    sed -E -i "${e[@]}" "$dir/$file"
    ! cmp -s "$ROOT/04-select/$file" "$dir/$file"
}

# grade_defect LINE: grades 04 with LINE's defect on LINE and its witness
# line, into LINE.grade and LINE.status.
grade_defect() {
    local dir=$BATS_TEST_TMPDIR/$1 s=0
    plant_defect "$1" "$dir" || { echo "no defect planted" >"$dir.grade"; return; }
    # One bats file at a time: two grades run at once.
    TEST_JOBS=1 "$ROOT/scripts/grade" -l "$1,$(witness "$1")" 04-select "$dir" \
        >"$dir.grade" 2>&1 ||
        s=$?
    echo "$s" >"$dir.status"
}

# score FILE LINE: "GOT/OF" of LINE in a grade's output.
score() { awk -v l="$2" '$4 == l { print $1 "/" $3 }' "$1"; }

# witness LINE: the other line graded with LINE's defect, one whose tests
# take seconds.
witness() { if [[ $1 == options ]]; then echo model; else echo options; fi; }

@test "grade: 04 with one planted defect per rubric line loses that line's points, and keeps another line's" {
    local line out s
    # The slowest first: two run at once.
    local lines=(echo client leaks stop interface emfile memory model options)
    two_at_a_time grade_defect "${lines[@]}"
    for line in "${lines[@]}"; do
        out=$BATS_TEST_TMPDIR/$line.grade
        [[ $(cat "$BATS_TEST_TMPDIR/$line.status" 2>/dev/null) == 1 ]] ||
            fail "$line: not a failing grade: $(cat "$out")"
        s=$(score "$out" "$line")
        [[ $s =~ ^0/[1-9][0-9]*$ ]] || fail "$line scored $s: $(cat "$out")"
        s=$(score "$out" "$(witness "$line")")
        [[ $s =~ ^([1-9][0-9]*)/([0-9]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] ||
            fail "$line: $(witness "$line") scored $s: $(cat "$out")"
    done
}
