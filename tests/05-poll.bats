#!/usr/bin/env bats
# tests/05-poll.bats -- what lesson 05 claims (LESSONS.md, row 05): the same
# loop as 04 over an array of pollfd, with no FD_SETSIZE cap. (A client that
# never reads is the contract's test, run against every lesson.)

load helpers
load multiplexing

LESSON=05-poll

setup() {
    need_nc
}

@test "05-poll: 2000 concurrent clients echo correctly, one thread, past FD_SETSIZE" {
    start_server "$LESSON"
    prlimit --pid "$SERVER_PID" --nofile=4096:
    local base
    base=$(fd_count "$SERVER_PID")
    crowd_expect 2000 2000
    threads_of "$SERVER_PID" 1
    (($(fd_count "$SERVER_PID") == base + 2000))
    crowd_leave
    wait_for 20 all_closed "$SERVER_LOG"
    # The array shrank back: every descriptor was given back.
    wait_for 10 fd_count_is "$SERVER_PID" "$base"
    stop_server
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 2000 connections, echoed $(crowd_bytes 2000) bytes"
}

@test "05-poll: clients leaving in any order keep the others' echoes right" {
    start_server "$LESSON"
    # Every other client of the first crowd leaves while a second crowd is
    # served: removals compact the array under the second crowd's feet.
    local i pids=()
    for i in $(seq 1 40); do
        spawn "$BATS_TEST_TMPDIR/hold.$i" /dev/null \
            "$PEER" hold 127.0.0.1 "$PORT" "holder $i"
        pids+=("$SPAWNED_PID")
    done
    for i in $(seq 1 40); do
        wait_for 20 log_has "$BATS_TEST_TMPDIR/hold.$i" '^echoed$'
    done
    for i in $(seq 1 2 40); do
        kill "${pids[i - 1]}"
    done
    crowd_expect 200 200
    crowd_leave
    for i in $(seq 2 2 40); do
        kill "${pids[i - 1]}"
    done
    wait_for 20 all_closed "$SERVER_LOG"
    run nc_echo "$PORT" <<<"the array is sound"
    assert_output "the array is sound"
}

@test "05-poll: SIGTERM with 100 idle clients: exit 0, every byte counted, nothing left" {
    start_server "$LESSON"
    stop_with_crowd_held 100
}

@test "05-poll: SIGTERM while 16 clients keep sockets ready: exit 0 all the same" {
    start_server "$LESSON"
    stop_while_busy 16
}
