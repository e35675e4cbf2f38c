#!/usr/bin/env bats
# tests/grade.bats -- the course's tools: make handout, scripts/grade and
# the rubrics (docs/instructors.md, "Grading").

load helpers

setup_file() {
    # One set of handouts for the file, written where no student works.
    export HANDOUT_DIR=$BATS_FILE_TMPDIR/handout
    "$ROOT/scripts/handout" >"$BATS_FILE_TMPDIR/handout.log" 2>&1
}

# with_handout: the lessons that have a handout list.
with_handout() {
    local f
    for f in "$ROOT"/[0-9][0-9]-*/handout; do
        f=${f%/handout}
        echo "${f##*/}"
    done
}

@test "grade: every test of every lesson is in exactly one line of its rubric" {
    local l
    for l in $(all_lessons); do
        [[ -f $ROOT/$l/rubric ]] || fail "$l has no rubric"
        run "$ROOT/scripts/grade" -c "$l"
        assert_success
    done
}

@test "grade: bad usage exits 2 with the usage" {
    run --separate-stderr "$ROOT/scripts/grade"
    assert_failure 2
    [[ $stderr == *"usage: scripts/grade"* ]] || fail "stderr: $stderr"
    run "$ROOT/scripts/grade" 99-nosuch "$BATS_TEST_TMPDIR"
    assert_failure 2
    run "$ROOT/scripts/grade" 01-basic-socket
    assert_failure 2
    run "$ROOT/scripts/grade" 01-basic-socket "$BATS_TEST_TMPDIR/nosuch"
    assert_failure 2
    run --separate-stderr "$ROOT/scripts/grade" -l echo,nosuch 01-basic-socket "$ROOT/01-basic-socket"
    assert_failure 2
    [[ $stderr == *"has no line 'nosuch'"* ]] || fail "stderr: $stderr"
}

@test "handout: every lesson has one, and the reference carries no TODO" {
    local l
    for l in $(all_lessons); do
        [[ -d $HANDOUT_DIR/$l ]] || fail "no handout for $l"
        ! grep -l 'TODO' "$ROOT/$l"/*.c || fail "a TODO in $l's reference"
    done
}

@test "handout: make builds it out of the box, with the suite's -Werror" {
    # 10's: common/ and 07's reactor, borrowed. (Every handout is built
    # by the grade below, with the same flags.)
    local l
    for l in 10-reactor-per-thread; do
        run make -s -j2 -C "$HANDOUT_DIR/$l"
        assert_success
        grep -q -- '-Werror' "$HANDOUT_DIR/$l/Makefile"
        [[ -x $HANDOUT_DIR/$l/server && -x $HANDOUT_DIR/$l/client ]]
    done
}

# grade_handout LESSON: grades the untouched handout into LESSON.grade,
# its exit status in LESSON.status.
grade_handout() {
    local s=0
    "$ROOT/scripts/grade" "$1" "$HANDOUT_DIR/$1" >"$BATS_TEST_TMPDIR/$1.grade" 2>&1 ||
        s=$?
    echo "$s" >"$BATS_TEST_TMPDIR/$1.status"
}

@test "grade: every untouched handout listens, then fails the quick check with its TODO, and scores what its rubric lists (0), exit 1" {
    local l
    # The quick check builds and starts one server each.
    # shellcheck disable=SC2046 # one lesson per word
    two_at_a_time grade_handout $(with_handout)
    for l in $(with_handout); do
        local out=$BATS_TEST_TMPDIR/$l.grade
        [[ $(cat "$BATS_TEST_TMPDIR/$l.status") == 1 ]] ||
            fail "$l: exit $(cat "$BATS_TEST_TMPDIR/$l.status"): $(cat "$out")"
        # It listened: the check failed at the echo, with the TODO's words.
        grep -q '^one line did not echo back' "$out" || fail "$l: $(cat "$out")"
        grep -q 'TODO: ' "$out" || fail "$l: no TODO in: $(cat "$out")"
        # The total its rubric lists for the skeleton.
        local want
        want=$(sed -n 's/^# skeleton: \([0-9][0-9]*\) .*/\1/p' "$ROOT/$l/rubric")
        [[ -n $want ]] || fail "$l/rubric lists no score for its skeleton"
        grep -qE "^ +$want / 100 +total\$" "$out" || fail "$l: not $want: $(cat "$out")"
    done
}

@test "grade: a server that exits before listening fails every line at once" {
    mkdir "$BATS_TEST_TMPDIR/student"
    cp "$ROOT"/01-basic-socket/*.c "$BATS_TEST_TMPDIR/student/"
    sed -i 's/^    log_listening(listenfd);$/    return 3;/' "$BATS_TEST_TMPDIR/student/server.c"
    run "$ROOT/scripts/grade" 01-basic-socket "$BATS_TEST_TMPDIR/student"
    assert_failure 1
    assert_output --partial "the server exited before its listening line"
    assert_output --regexp ' 0 / 100 +total'
}

@test "grade: a copy of 01 that drops a byte of every read fails the quick check" {
    mkdir "$BATS_TEST_TMPDIR/student"
    cp "$ROOT"/01-basic-socket/*.c "$BATS_TEST_TMPDIR/student/"
    sed -i 's/writen(connfd, buf, (size_t)n)/writen(connfd, buf, (size_t)n - 1)/' \
        "$BATS_TEST_TMPDIR/student/server.c"
    run "$ROOT/scripts/grade" 01-basic-socket "$BATS_TEST_TMPDIR/student"
    assert_failure 1
    assert_output --partial "one line did not echo back"
}

@test "grade: 01's own folder, copied under another name, scores full marks" {
    mkdir "$BATS_TEST_TMPDIR/any-name"
    cp "$ROOT"/01-basic-socket/*.c "$BATS_TEST_TMPDIR/any-name/"
    run "$ROOT/scripts/grade" 01-basic-socket "$BATS_TEST_TMPDIR/any-name"
    assert_success
    assert_output --regexp ' 100 / 100 +total'
}
