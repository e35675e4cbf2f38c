#!/usr/bin/env bats
# tests/trace.bats -- make trace: bench/timeline draws a recorded strace
# excerpt exactly (its lanes and the calls on each, in the summary); a real
# trace of 03 has one lane per thread that ps -L listed, named by role, and
# the late client's reads and writes on the thread that made them; make
# trace for a blocking lesson (02) and a threaded one (03) writes an SVG
# with the lanes expected. Skipped, with the reason, where strace cannot
# trace (ptrace refused, as in some containers).

load helpers

TIMELINE=$BIN_DIR/bench/timeline

setup_file() {
    # One tiny run says whether ptrace is allowed here.
    if ! command -v strace >/dev/null; then
        export TRACE_SKIP="strace is not installed"
    elif ! why=$(strace -o /dev/null true 2>&1); then
        export TRACE_SKIP="strace cannot trace here: ${why%%$'\n'*}"
    fi
}

need_strace() { [[ -z ${TRACE_SKIP:-} ]] || skip "$TRACE_SKIP"; }

# run_make_trace LESSON: make trace, its results in build/trace/LESSON.
run_make_trace() {
    need_strace
    run timeout 120 make -s --no-print-directory -C "$ROOT" \
        BIN_DIR="$BIN_DIR" trace LESSON="$1"
    assert_success
    OUT=$ROOT/build/trace/$1
    [[ -s $OUT/trace.svg && -s $OUT/summary.txt ]]
}

# lane_labels SVG: the labels of the lanes, in order.
lane_labels() { sed -nE "s/^<text [^>]*class='lane'>([^<]*)<.*/\1/p" "$1"; }

@test "trace: the parser turns a recorded excerpt into the same lanes and calls" {
    # tests/trace/03-excerpt.strace: 03-pthread-pool -t 2 under scripts/trace
    # with one early client, from the second thread's start to the exit:
    # unfinished and resumed calls, workers named through /proc, a call cut
    # short by the exit.
    run "$TIMELINE" -l 36098 -s "$BATS_TEST_TMPDIR/summary.txt" \
        "$ROOT/tests/trace/03-excerpt.strace"
    assert_success
    diff -u "$ROOT/tests/trace/03-excerpt.summary" \
        "$BATS_TEST_TMPDIR/summary.txt"
    # One bar per call, on its lane.
    [[ $(grep -c "data-lane='1'" <<<"$output") -eq 11 ]]
    [[ $(grep -c "data-lane='2'" <<<"$output") -eq 15 ]]
    [[ $(grep -c "data-lane='3'" <<<"$output") -eq 13 ]]
    # The late client's three reads and two writes, on worker 4254.
    [[ $(grep -cE "class='(read|write)' data-lane='3' data-tid='4254' data-conn='late :36098'" <<<"$output") -eq 5 ]]
}

@test "trace: 03 -- a lane per thread ps -L shows, named, the late client on the worker that read it" {
    run_make_trace 03-pthread-pool
    # As many lanes as threads, and the same threads.
    [[ $(grep -c . "$OUT/threads.txt") -eq 5 ]]
    [[ $(sed -nE 's/^# ([0-9]+) lanes.*/\1/p' "$OUT/summary.txt") -eq 5 ]]
    for tid in $(awk '{ print $1 }' "$OUT/threads.txt"); do
        grep -qE "^lane [0-9]+ [^:]*(: [a-z ]+)? $tid:" "$OUT/summary.txt" ||
            fail "thread $tid of ps -L has no lane"
    done
    run lane_labels "$OUT/trace.svg"
    assert_line --index 0 --regexp '^main: acceptor [0-9]+$'
    [[ $(grep -cE '^worker [0-9]+$' <<<"$output") -eq 4 ]]
    # The thread that read the late client's lines, by the raw trace...
    port=$(cat "$OUT/late.txt")
    tid=$(grep -E "^[0-9]+ +[0-9.]+ read\([0-9]+<TCP:\[[^]]*->[^]]*:$port\]>" \
        "$OUT/strace.txt" | awk '{ print $1 }' | sort -u)
    [[ $tid =~ ^[0-9]+$ ]] || fail "late client read by: '$tid'"
    # ... is the lane of every read and write drawn for it.
    run grep -oE "class='(read|write)' data-lane='[0-9]+' data-tid='[0-9]+' data-conn='late :$port'" \
        "$OUT/trace.svg"
    assert_success
    [[ $(grep -vc "data-tid='$tid'" <<<"$output") -eq 0 ]]
}

@test "trace: 02 -- make trace draws the parent and one child process per client" {
    run_make_trace 02-fork-server
    run lane_labels "$OUT/trace.svg"
    assert_line --index 0 --regexp '^main: acceptor [0-9]+$'
    [[ ${#lines[@]} -eq 5 ]]
    [[ $(grep -cE '^child process [0-9]+$' <<<"$output") -eq 4 ]]
    # Each child read only its own client: one connection per child lane.
    run grep -E '^lane [2-5] child' "$OUT/summary.txt"
    for line in "${lines[@]}"; do
        [[ $line =~ served\ (c[0-9]|late)\ :[0-9]+$ ]] || fail "$line"
    done
}
