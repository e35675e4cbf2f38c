#!/usr/bin/env bats
# tests/suite.bats -- the suite's own machinery: the build and the tour.

load helpers

@test "make: CFLAGS from the command line add to the required flags" {
    run make -n -B --no-print-directory CFLAGS=-O0 OBJ_DIR="$BATS_TEST_TMPDIR/obj" \
        BIN_DIR="$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR/01-basic-socket/server"
    assert_success
    assert_line --regexp '-std=c11 .*-Wall .*-Wshadow .*-Werror .*-O0 .*01-basic-socket/server\.c'
}

@test "make: header dependencies are tracked" {
    # Every object's .d file names the common/ headers it includes.
    run cat "$ROOT/build/obj/01-basic-socket/server.d"
    assert_output --partial "common/io.h"
    assert_output --partial "common/signals.h"
}

@test "make tour: one row per lesson, every echo checked, exit 0" {
    run timeout 300 "$ROOT/scripts/tour"
    assert_success
    local lesson
    for lesson in $(all_lessons); do
        assert_line --regexp "^$lesson +.* ok: 22 conns, "
    done
    assert_line "tour: every lesson echoed every byte"
}
