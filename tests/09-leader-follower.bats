#!/usr/bin/env bats
# tests/09-leader-follower.bats -- what lesson 09 claims (LESSONS.md, row
# 09): N threads take turns at one epoll instance, the leader promoting a
# follower before it handles its event. Events are handled by several
# threads, yet EPOLLONESHOT keeps a connection on one thread at a time, so
# each connection's echo stays in order; the threads are started once; at
# rest exactly one of them waits in epoll_wait(). The stop is one more
# event, a signalfd's: wherever the threads sleep or work, the leader that
# takes it prints the true totals and exits 0, and nothing is left.
# (The whole contract runs with one thread too: tests/09-leader-follower.variants.)

load helpers
load multiplexing

LESSON=09-leader-follower

setup() {
    need_nc
}

# lesson_threads N: the thread count of a server started with -t N: N
# (the main thread is one of them), plus the thread TSan's runtime starts.
lesson_threads() {
    local extra=0
    [[ ${SANITIZER:-} == tsan ]] && extra=1
    echo $(($1 + extra))
}
threads_are() { [[ $(threads "$1") -eq $2 ]]; }

# per_thread: the stats line's "by thread a+b+c" as "a b c".
per_thread() {
    sed -nE 's/^served .*, by thread ([0-9+]+)$/\1/p' "$SERVER_LOG" | tr + ' '
}
@test "09-leader-follower: 30 clients at once: events spread over the threads, each echo in order, the same N threads throughout" {
    start_server "$LESSON" -t 4 -q
    local expected tids_before i pids=()
    expected=$(lesson_threads 4)
    wait_for 10 threads_are "$SERVER_PID" "$expected"
    tids_before=$(ls "/proc/$SERVER_PID/task")

    # Numbered lines, different on every connection (some 300 KiB each):
    # a connection read by two threads at once, or re-armed before its
    # echo was written, would come back with lines swapped or mixed.
    for i in $(seq 1 30); do
        seq -f "client $i line %06g" 1 15000 >"$BATS_TEST_TMPDIR/in.$i"
        SPAWN_STDIN=$BATS_TEST_TMPDIR/in.$i spawn "$BATS_TEST_TMPDIR/out.$i" \
            "$BATS_TEST_TMPDIR/err.$i" timeout "$NET_TIMEOUT" \
            "$(client_bin "$LESSON")" -p "$PORT"
        pids+=("$SPAWNED_PID")
    done
    wait_for 120 sample_threads_until_exited "$BATS_TEST_TMPDIR/threads" "${pids[@]}"
    for i in $(seq 1 30); do
        wait "${pids[i - 1]}" || fail "client $i failed: $(cat "$BATS_TEST_TMPDIR/err.$i")"
        cmp "$BATS_TEST_TMPDIR/in.$i" "$BATS_TEST_TMPDIR/out.$i" ||
            fail "client $i got its lines back in another order"
    done

    # No thread per connection: the same threads before, during and after.
    run sort -u "$BATS_TEST_TMPDIR/threads"
    assert_output "$expected"
    assert_equal "$(ls "/proc/$SERVER_PID/task")" "$tids_before"

    stop_server
    assert_equal "$SERVER_STATUS" 0
    local counts busy=0 sum=0 n
    read -ra counts <<<"$(per_thread)"
    echo "# events by thread: ${counts[*]}" >&3
    assert_equal "${#counts[@]}" 4
    for n in "${counts[@]}"; do
        sum=$((sum + n))
        ((n > 0)) && busy=$((busy + 1))
    done
    assert_equal "$sum" "$(stats_counter events)"
    ((busy > 1)) || fail "one thread handled every event: ${counts[*]}"
}

# wchans PID: where each thread of the process sleeps in the kernel.
wchans() {
    local t
    for t in /proc/"$1"/task/*; do
        cat "$t/wchan" 2>/dev/null
        echo
    done
}
# at_rest PID N: of the lesson's N threads, one sleeps in epoll_wait and
# N - 1 on the followers' condition variable (a futex). TSan's own thread
# sleeps elsewhere, and is neither.
at_rest() {
    local w
    w=$(wchans "$1")
    [[ $(grep -c epoll <<<"$w") -eq 1 && $(grep -c futex <<<"$w") -eq $(($2 - 1)) ]]
}

@test "09-leader-follower: at rest, one thread waits in epoll_wait and the others on the condition variable" {
    start_server "$LESSON" -t 6
    wait_for 20 at_rest "$SERVER_PID" 6 || fail "$(wchans "$SERVER_PID")"
    # After some work, the turn has moved, and the picture is the same.
    local i
    for i in $(seq 1 20); do
        run nc_echo "$PORT" <<<"turn $i"
        assert_output "turn $i"
    done
    wait_for 20 at_rest "$SERVER_PID" 6 || fail "$(wchans "$SERVER_PID")"
}

# stopped_clean: after stop_server, the server exited 0 and nothing of its
# session is left, not even a zombie. (How fast is not asserted: these
# machines are shared; stop_server's bound is the test's.)
stopped_clean() {
    assert_equal "$SERVER_STATUS" 0
    wait_for 10 session_empty "$SERVER_PID"
}
# events_add_up N: the stats line lists N threads' events, which add up to
# its total.
events_add_up() {
    local counts n sum=0
    read -ra counts <<<"$(per_thread)"
    assert_equal "${#counts[@]}" "$1"
    for n in "${counts[@]}"; do sum=$((sum + n)); done
    assert_equal "$sum" "$(stats_counter events)"
}

@test "09-leader-follower: SIGTERM with the leader in epoll_wait and the followers waiting their turn: exit 0, the true totals, nothing left" {
    start_server "$LESSON" -t 5
    local name
    for name in a b c; do
        spawn "$BATS_TEST_TMPDIR/$name.out" "$BATS_TEST_TMPDIR/$name.err" \
            "$PEER" hold 127.0.0.1 "$PORT" "held by $name"
        wait_for 20 log_has "$BATS_TEST_TMPDIR/$name.out" '^echoed$'
    done
    # The leader in epoll_wait, four followers on the condition variable.
    wait_for 20 at_rest "$SERVER_PID" 5 || fail "$(wchans "$SERVER_PID")"
    stop_server TERM
    stopped_clean
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 3 connections, echoed 27 bytes, [0-9]+ events, by thread [0-9]+(\+[0-9]+){4}$'
    events_add_up 5
    # The server closed nothing itself: exit() did, and the kernel told
    # each client.
    [[ $(log_count "$SERVER_LOG" '^closed ') -eq 0 ]]
    for name in a b c; do
        wait_for 20 log_has "$BATS_TEST_TMPDIR/$name.out" '^(closed|reset) by server$'
    done
}

# written_to LOCALPORT PEERPORT: the bytes the server has written to one
# connection: those the client's kernel acknowledged, and those still in
# the server's send queue (ss leaves bytes_acked out while it is 0).
written_to() {
    ss -Htni state established "( sport = :$1 and dport = :$2 )" |
        awk 'NR == 1 { q = $2 }
             { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_acked:/) { split($i, f, ":"); a = f[2] } }
             END { print q + a }'
}
written_stays() {
    local now
    now=$(written_to "$1" "$2")
    [[ $now -gt 0 && $now == "${_last_written:-}" ]] || { _last_written=$now; return 1; }
}

@test "09-leader-follower: SIGINT while a client does not read and every thread sleeps: exit 0, its echo counted to the byte, nothing left" {
    start_server "$LESSON" -t 3
    local fport written
    spawn "$BATS_TEST_TMPDIR/held.out" "$BATS_TEST_TMPDIR/held.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "held"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/held.out" '^echoed$'
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.out")
    # The flood's echo backs up until the server stops reading from it
    # (its high-water mark): then nothing moves, and every thread sleeps.
    wait_for 30 written_stays "$PORT" "$fport"
    wait_for 20 at_rest "$SERVER_PID" 3 || fail "$(wchans "$SERVER_PID")"
    written=$(written_to "$PORT" "$fport")
    stop_server INT
    stopped_clean
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served 2 connections, echoed $((4 + written)) bytes, [0-9]+ events, by thread [0-9]+\+[0-9]+\+[0-9]+\$"
    events_add_up 3
}

# echoing PORT N: N connections to the server have had some echo back.
echoing() {
    [[ $(ss -Htni state established "( sport = :$1 )" | grep -c 'bytes_acked:') -eq $2 ]]
}

@test "09-leader-follower: SIGTERM while every thread is busy echoing: exit 0, every client cut off, nothing left" {
    start_server "$LESSON" -t 2 -q
    local i pids=()
    # Four clients streaming more than they can echo before the stop: the
    # two threads take turns at their events, and the signalfd's event
    # waits in the ready list for whichever leads next.
    for i in 1 2 3 4; do
        SPAWN_STDIN=/dev/zero spawn /dev/null "$BATS_TEST_TMPDIR/err.$i" \
            "$(client_bin "$LESSON")" -p "$PORT"
        pids+=("$SPAWNED_PID")
    done
    wait_for 30 echoing "$PORT" 4
    stop_server TERM
    stopped_clean
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 4 connections, echoed [1-9][0-9]* bytes, [0-9]+ events, by thread [0-9]+\+[0-9]+$'
    events_add_up 2
    # Each client sees its echo cut short: one line, exit 1.
    for i in 1 2 3 4; do
        wait_for 20 exited "${pids[i - 1]}"
        ! wait "${pids[i - 1]}" || fail "client $i exited 0"
    done
}

@test "09-leader-follower: with -t 1 the one thread serves a crowd of 500 beside a client that never reads" {
    # -t 1: the main thread alone leads, handles, and leads again.
    start_server "$LESSON" -t 1
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    crowd_expect 500 500
    run nc_echo "$PORT" <<<"hello"
    assert_output "hello"
    crowd_leave
}

@test "09-leader-follower: -t takes a number from 1 to 256, or exits 2 with the usage" {
    local args
    for args in "-t 0" "-t 257" "-t x" "-t"; do
        run --separate-stderr timeout 10 "$(server_bin "$LESSON")" -p 0 $args
        [[ $status -eq 2 ]] || fail "server $args: exit $status, not 2"
        [[ $stderr == *"usage: server"* ]] || fail "server $args: no usage"
    done
    start_server "$LESSON" -t 256
    wait_for 20 threads_are "$SERVER_PID" "$(lesson_threads 256)"
    run nc_echo "$PORT" <<<"many threads"
    assert_output "many threads"
    stop_server
    assert_equal "$SERVER_STATUS" 0
}
