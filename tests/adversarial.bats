#!/usr/bin/env bats
# tests/adversarial.bats -- one lesson under abuse: thousands of short
# connections, hundreds of resets, one byte at a time, one big transfer, a
# half-close with echo still pending, a server started with too few
# descriptors. tests/run runs it once per lesson (LESSON). Where a blocking
# lesson's expected behaviour differs, the test says so in its body.

load helpers

L=$LESSON

setup_file() {
    UNAVAILABLE=$(unavailable_reason "$LESSON")
    export UNAVAILABLE
}

setup() {
    skip_if_unavailable
    need_nc
}

children() { pgrep -c -P "$1" || true; }
settled() { # settled PID FDS THREADS: back to its counts, no child left
    [[ $(fd_count "$1") -eq $2 && $(threads "$1") -eq $3 &&
        $(children "$1") -eq 0 ]]
}

@test "$L: 2000 short connections leave no descriptor, thread, process or memory behind" {
    start_server "$LESSON" -q
    local fds thr rss
    # A first connection warms up what the server allocates once.
    run nc_echo "$PORT" <<<"warm-up"
    fds=$(fd_count "$SERVER_PID") thr=$(threads "$SERVER_PID")
    rss=$(rss_kb "$SERVER_PID")
    run timeout "$NET_TIMEOUT" "$PEER" churn 127.0.0.1 "$PORT" 2000
    assert_success
    assert_output "churned 2000"
    wait_for 20 settled "$SERVER_PID" "$fds" "$thr"
    local grew=$(($(rss_kb "$SERVER_PID") - rss))
    ((grew < 4096)) || fail "RSS grew by $grew KiB over 2000 connections"
}

@test "$L: 200 clients that reset mid-transfer, one after another: the server survives, descriptors return" {
    start_server "$LESSON"
    local fds
    fds=$(fd_count "$SERVER_PID")
    run timeout "$NET_TIMEOUT" "$PEER" resets 127.0.0.1 "$PORT" 200
    assert_success
    wait_for 30 all_closed "$SERVER_LOG"
    wait_for 20 fd_count_is "$SERVER_PID" "$fds"
    run nc_echo "$PORT" <<<"after the resets"
    assert_output "after the resets"
}

@test "$L: 3000 bytes one at a time, each awaited, come back exactly" {
    start_server "$LESSON"
    run timeout "$NET_TIMEOUT" "$PEER" trickle 127.0.0.1 "$PORT" 3000
    assert_success
    assert_output "trickled 3000"
    wait_for 20 log_has "$SERVER_LOG" '\(3000 bytes\)$'
}

@test "$L: one 64 MiB transfer through nc comes back byte for byte" {
    start_server "$LESSON" -q
    random_file "$BATS_TEST_TMPDIR/in" $((64 << 20))
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" | cmp - "$BATS_TEST_TMPDIR/in"
    # The stats line gives the totals at the moment of the signal: wait
    # until the server has counted its last write.
    wait_for 20 quiescent "$SERVER_PID"
    stop_server
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served 1 connections, echoed $((64 << 20)) bytes"
}

@test "$L: a half-close with echo still pending: every byte comes back, then EOF" {
    start_server "$LESSON"
    run timeout "$NET_TIMEOUT" "$PEER" halfclose 127.0.0.1 "$PORT" $((8 << 20))
    assert_success
    assert_output "echoed $((8 << 20)) then EOF"
}

@test "$L: started with too few descriptors: stays up, never spins, serves everyone in the end" {
    [[ $LESSON != 01-* ]] ||
        skip "01 serves one client at a time: the others wait in the backlog, holding no descriptor"
    # Enough for the server's own descriptors and a few clients, no more.
    # (03: with more workers than descriptors, so that every client it
    # accepts is served rather than queued behind the idle ones.)
    local args=()
    [[ $LESSON == 03-* ]] && args=(-t 16)
    SERVER_WRAPPER="prlimit --nofile=12:12 --" start_server "$LESSON" "${args[@]}"
    local i pids=()
    for i in $(seq 1 20); do
        spawn "$BATS_TEST_TMPDIR/hold.$i" /dev/null \
            "$PEER" hold 127.0.0.1 "$PORT" "client $i"
        pids+=("$SPAWNED_PID")
    done
    # Every holder ends one way or the other: echoed, or turned away.
    for i in $(seq 1 20); do
        wait_for 30 held_or_refused "$i" "${pids[i - 1]}"
    done
    if [[ $LESSON == 02-* ]]; then
        # 02's parent closes each connection once its child has it, and a
        # child holds one: a descriptor limit never bites. (ulimit -u does.)
        for i in $(seq 1 20); do
            log_has "$BATS_TEST_TMPDIR/hold.$i" '^echoed$' || fail "client $i"
        done
        refute log_has "$SERVER_LOG" 'EMFILE'
    else
        wait_for 20 log_has "$SERVER_LOG" 'EMFILE'
    fi
    # Asleep, every thread, not spinning on the clients it could not take.
    # (01 serves one client at a time: the others wait in the backlog.)
    wait_for 20 quiescent "$SERVER_PID"
    kill "${pids[@]}" 2>/dev/null || true
    wait_for 30 all_closed "$SERVER_LOG"
    run nc_echo "$PORT" <<<"served later"
    assert_output "served later"
}
held_or_refused() {
    log_has "$BATS_TEST_TMPDIR/hold.$1" '^echoed$' || exited "$2"
}
