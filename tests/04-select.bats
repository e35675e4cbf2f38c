#!/usr/bin/env bats
# tests/04-select.bats -- what lesson 04 claims (LESSONS.md, row 04): one
# thread serves many clients by waiting for readiness; a descriptor at or
# above FD_SETSIZE is refused cleanly, never passed to FD_SET. (A client
# that never reads is the contract's test, run against every lesson.)

load helpers
load multiplexing

LESSON=04-select

setup() {
    need_nc
}

@test "04-select: 100 concurrent clients are served by one thread" {
    start_server "$LESSON"
    crowd_expect 100 100
    threads_of "$SERVER_PID" 1
    [[ $(pgrep -c -g "$SERVER_PID") -eq 1 ]] || fail "more than one process"
    crowd_leave
    wait_for 20 all_closed "$SERVER_LOG"
}

@test "04-select: past FD_SETSIZE clients are refused with a log line while the first keep echoing" {
    start_server "$LESSON"
    # Room for 2048 descriptors: the limit is no longer ulimit -n, but the
    # fd_set's 1024 bits.
    crowd_past_fd_setsize 'descriptor 1024 is not below FD_SETSIZE \(1024\)$'
}

@test "04-select: SIGTERM with 100 idle clients: exit 0, every byte counted, nothing left" {
    start_server "$LESSON"
    stop_with_crowd_held 100
}

@test "04-select: SIGTERM while 16 clients keep sockets ready: exit 0 all the same" {
    start_server "$LESSON"
    stop_while_busy 16
}
