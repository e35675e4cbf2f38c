#!/usr/bin/env bats
# tests/08-half-sync-half-async.bats -- what lesson 08 claims (LESSONS.md,
# row 08): one I/O thread hands requests through a bounded queue to N
# workers and sends their replies; replies on one connection leave in
# arrival order even when workers finish out of order; a full queue stops
# the reading, so backpressure reaches the clients and memory stays bounded;
# a connection that ends while its requests are with the workers is freed
# only when they come back.

load helpers

LESSON=08-half-sync-half-async

setup() {
    need_nc
}

# pool_threads N: the server's thread count with N workers: the workers and
# the I/O thread, plus the one thread TSan's runtime starts of its own.
pool_threads() {
    local extra=0
    [[ ${SANITIZER:-} == tsan ]] && extra=1
    echo $(($1 + 1 + extra))
}

# per_worker: the stats line's "by worker 3+4+2+3", one number a line.
per_worker() {
    sed -nE 's/^served .*, by worker ([0-9+]+),.*$/\1/p' "$SERVER_LOG" |
        tr + '\n'
}

# recvq PORT PEERPORT: unread bytes on the server's side of a connection.
recvq() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1 }'
}
recvq_above() {
    local q
    q=$(recvq "$1" "$2")
    ((${q:-0} > $3))
}

@test "08-half-sync-half-async: 10 000 numbered lines over 8 pipelined connections come back complete and in order, though replies finished out of order" {
    start_server "$LESSON" -t 4 -w 200 -b 64 -q
    [[ $(threads "$SERVER_PID") -eq $(pool_threads 4) ]] ||
        fail "$(threads "$SERVER_PID") threads, not $(pool_threads 4)"
    local k pids=()
    for k in 1 2 3 4 5 6 7 8; do
        seq -f "connection $k, line %g" 1 1250 >"$BATS_TEST_TMPDIR/in.$k"
    done
    # All at once: each client sends its 1250 lines without waiting for
    # echoes, and the server cuts them into 64-byte requests.
    for k in 1 2 3 4 5 6 7 8; do
        SPAWN_STDIN=$BATS_TEST_TMPDIR/in.$k spawn "$BATS_TEST_TMPDIR/out.$k" \
            "$BATS_TEST_TMPDIR/err.$k" timeout "$NET_TIMEOUT" \
            "$(client_bin "$LESSON")" -p "$PORT"
        pids+=("$SPAWNED_PID")
    done
    for k in 1 2 3 4 5 6 7 8; do
        wait "${pids[k - 1]}" || fail "client $k: $(cat "$BATS_TEST_TMPDIR/err.$k")"
        cmp "$BATS_TEST_TMPDIR/in.$k" "$BATS_TEST_TMPDIR/out.$k"
    done
    [[ $(threads "$SERVER_PID") -eq $(pool_threads 4) ]]
    stop_server
    assert_equal "$SERVER_STATUS" 0
    echo "# $(grep '^served ' "$SERVER_LOG")" >&3

    # Every request went through a worker, and more than one worker did
    # some: the replies of one connection were computed on several threads.
    local requests busy sum=0 n
    requests=$(stats_counter requests)
    busy=0
    for n in $(per_worker); do
        sum=$((sum + n))
        ((n > 0)) && busy=$((busy + 1))
    done
    assert_equal "$sum" "$requests"
    ((requests >= 8 * 1250 * 20 / 64)) || fail "only $requests requests"
    ((busy > 1)) || fail "only $busy worker handled requests"
    # Some replies were ready before an earlier request of their connection
    # and had to wait their turn: the order above was at stake, and kept.
    (($(stats_counter "finished early") > 0)) || fail "no reply finished early"
}

@test "08-half-sync-half-async: a full work queue stops all reading: the bytes wait in the kernel, the server's memory stays bounded, then everything is echoed" {
    # One slow worker (0.1 s a request on average) and room for two
    # requests away from the I/O thread: it hands two over, then stops
    # reading -- before the connection's own high-water mark (64 KiB) would.
    start_server "$LESSON" -t 1 -w 100000 -Q 2
    [[ $(threads "$SERVER_PID") -eq $(pool_threads 1) ]]
    local base size=$((512 << 10)) cport
    base=$(rss_kb "$SERVER_PID")
    random_file "$BATS_TEST_TMPDIR/in" "$size"
    SPAWN_STDIN=$BATS_TEST_TMPDIR/in spawn "$BATS_TEST_TMPDIR/out" \
        "$BATS_TEST_TMPDIR/nc.err" nc -N 127.0.0.1 "$PORT"
    local sender=$SPAWNED_PID
    wait_for 20 log_has "$SERVER_LOG" '^accepted '
    cport=$(sed -nE 's/^accepted 127\.0\.0\.1:([0-9]+)$/\1/p' "$SERVER_LOG" | head -n 1)

    # More than the server would ever hold for one connection (64 KiB)
    # waits unread in its socket's receive queue: the server has stopped
    # reading. The rest waits in nc's send queue.
    wait_for 30 recvq_above "$PORT" "$cport" $((64 << 10))
    echo "# Recv-Q $(recvq "$PORT" "$cport") bytes" >&3
    local grew=$(($(rss_kb "$SERVER_PID") - base))
    ((grew < 4096)) || fail "the server's RSS grew by $grew KiB"

    # The worker drains the queue, the reading resumes, and every byte
    # comes back, in order.
    wait_for 60 exited "$sender"
    wait "$sender" || fail "nc: $(cat "$BATS_TEST_TMPDIR/nc.err")"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    wait_for 20 all_closed "$SERVER_LOG"
    stop_server
    assert_equal "$SERVER_STATUS" 0
}

@test "08-half-sync-half-async: a connection reset while its requests are with the workers is closed at once and freed when they come back" {
    # peer reset sends without reading and resets once some echo has come
    # back: with one worker at 50 ms a request, more requests of it are
    # queued or in the worker's hands by then.
    start_server "$LESSON" -t 1 -w 50000
    local base
    base=$(fd_count "$SERVER_PID")
    run "$PEER" reset 127.0.0.1 "$PORT" $((256 << 10))
    assert_success
    wait_for 20 all_closed "$SERVER_LOG"
    wait_for 10 fd_count_is "$SERVER_PID" "$base"
    # The requests still come back from the worker, to a session whose
    # socket is gone; the server serves on (and ASan finds no use after
    # free, no leak at exit).
    run nc_echo "$PORT" <<<"still here"
    assert_output "still here"
    stop_server
    assert_equal "$SERVER_STATUS" 0
    run grep -E '^server: (read|write|epoll_wait) .*(ECONNRESET|EPIPE)' "$SERVER_LOG"
    assert_success
}

@test "08-half-sync-half-async: SIGTERM with requests queued and in a worker's hands: exit 0 at once, the stats line, the client sees the end" {
    start_server "$LESSON" -t 2 -w 100000 -Q 4
    random_file "$BATS_TEST_TMPDIR/in" $((1 << 20))
    SPAWN_STDIN=$BATS_TEST_TMPDIR/in spawn /dev/null /dev/null \
        nc -N 127.0.0.1 "$PORT"
    wait_for 20 log_has "$SERVER_LOG" '^accepted '
    local cport
    cport=$(sed -nE 's/^accepted 127\.0\.0\.1:([0-9]+)$/\1/p' "$SERVER_LOG")
    # The queue is full (the reading has stopped) while both workers sleep
    # in the middle of a request. The stop is the reactor's: the workers
    # are neither woken nor joined, exit ends them where they are.
    wait_for 30 recvq_above "$PORT" "$cport" 0
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 1 connections, echoed [0-9]+ bytes, [0-9]+ requests, by worker [0-9]+\+[0-9]+, [0-9]+ finished early$'
    # Nothing was closed by the server itself; exit closed the socket, and
    # nc, told so by the kernel, ends.
    assert_equal "$(log_count "$SERVER_LOG" '^closed ')" 0
    wait_for 10 exited "$SPAWNED_PID"
}

@test "08-half-sync-half-async: -t, -Q, -w and -b take a number within bounds, or exit 2 with the usage" {
    local args
    for args in "-t 0" "-t 257" "-Q 0" "-Q 65537" "-w -1" "-w 250001" \
        "-b 0" "-b 65537" "-t x"; do
        run --separate-stderr timeout 10 "$(server_bin "$LESSON")" -p 0 $args
        [[ $status -eq 2 ]] || fail "server $args: exit $status, not 2"
        [[ $stderr == *"usage: server"* ]] || fail "server $args: no usage"
    done
    start_server "$LESSON" -t 256 -Q 1 -b 1
    [[ $(threads "$SERVER_PID") -eq $(pool_threads 256) ]]
    run nc_echo "$PORT" <<<"big pool, tiny queue, one byte a request"
    assert_output "big pool, tiny queue, one byte a request"
}
