#!/usr/bin/env bats
# tests/03-pthread-pool.bats -- what lesson 03 claims (../LESSONS, row 03):
# a fixed pool of N threads fed by a bounded queue. At most N clients are
# served at once; the next ones wait in the queue, then in the kernel's
# backlog; no thread is created per client; a stop releases every thread.

load helpers

LESSON=03-pthread-pool

setup() {
    need_nc
}

# ss_recvq PORT PEERPORT: the Recv-Q of the server's side of one connection.
ss_recvq() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1 }'
}
recvq_is() { [[ $(ss_recvq "$1" "$2") == "$3" ]]; }

# listen_queue PORT: connections the kernel holds for accept() (the LISTEN
# socket's Recv-Q).
listen_queue() { ss -Htln "sport = :$1" | awk '{ print $2 }'; }
listen_queue_is() { [[ $(listen_queue "$1") == "$2" ]]; }

accepted_count_is() { [[ $(log_count "$SERVER_LOG" '^accepted ') -eq $1 ]]; }

# hold NAME [MESSAGE]: a peer that connects, sends MESSAGE, waits for its
# echo and stays; its lines go to NAME.out. Sets HELD_PID.
hold() {
    spawn "$BATS_TEST_TMPDIR/$1.out" "$BATS_TEST_TMPDIR/$1.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "${2-$'hello\n'}"
    HELD_PID=$SPAWNED_PID
}

# port_of NAME: the client port of a held peer, once it has connected.
port_of() {
    wait_for 20 log_has "$BATS_TEST_TMPDIR/$1.out" '^connected ' || return 1
    sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/$1.out"
}

echoed() { log_has "$BATS_TEST_TMPDIR/$1.out" '^echoed$'; }

# threads PID: how many threads the process has.

threads_are() { [[ $(threads "$1") -eq $2 ]]; }

# pool_threads N: the thread count of a server with N workers: the workers
# and the acceptor, plus the one thread TSan's runtime starts of its own.
pool_threads() {
    local extra=0
    [[ ${SANITIZER:-} == tsan ]] && extra=1
    echo $(($1 + 1 + extra))
}

@test "03-pthread-pool: with two workers held by idle clients, a third client waits until one leaves" {
    start_server "$LESSON" -t 2
    hold a "first!"
    local a=$HELD_PID
    wait_for 20 echoed a
    hold b "second"
    wait_for 20 echoed b

    hold c "third!"
    local cport
    cport=$(port_of c)
    # C is accepted and queued, but no worker is free: its 6 bytes sit
    # unread in its socket while both workers sleep in read() on A and B.
    wait_for 20 log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:$cport\$"
    wait_for 20 recvq_is "$PORT" "$cport" 6
    refute echoed c

    # A leaves: the worker it freed takes C from the queue at once.
    kill "$a"
    wait_for 20 echoed c
    run grep -E '^(accepted|closed) ' "$SERVER_LOG"
    # Unlike lesson 01, C was accepted before A left: it waited in the
    # queue, not in the backlog.
    assert_line --index 2 "accepted 127.0.0.1:$cport"
    assert_line --index 3 --regexp '^closed .* \(6 bytes\)$'
}

@test "03-pthread-pool: the thread count stays N+1 while 30 clients come and go" {
    start_server "$LESSON" -t 3
    local expected tids_before i pids=()
    expected=$(pool_threads 3)
    wait_for 10 threads_are "$SERVER_PID" "$expected"
    tids_before=$(ls "/proc/$SERVER_PID/task")

    random_file "$BATS_TEST_TMPDIR/in" $((256 << 10))
    for i in $(seq 1 30); do
        SPAWN_STDIN=$BATS_TEST_TMPDIR/in spawn "$BATS_TEST_TMPDIR/out.$i" \
            "$BATS_TEST_TMPDIR/err.$i" timeout "$NET_TIMEOUT" \
            "$(client_bin "$LESSON")" -p "$PORT"
        pids+=("$SPAWNED_PID")
    done
    # Sampled all along, until the last client has gone.
    wait_for 60 sample_threads_until_exited "$BATS_TEST_TMPDIR/threads" "${pids[@]}"
    for i in $(seq 1 30); do
        wait "${pids[i - 1]}" || fail "client $i failed: $(cat "$BATS_TEST_TMPDIR/err.$i")"
        cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out.$i"
    done
    wait_for 20 accepted_count_is 30

    run sort -u "$BATS_TEST_TMPDIR/threads"
    assert_output "$expected"
    # The very same threads, not others started in their place.
    assert_equal "$(ls "/proc/$SERVER_PID/task")" "$tids_before"
}

@test "03-pthread-pool: with the pool busy and the queue full, further clients wait in the kernel's backlog, unaccepted" {
    start_server "$LESSON" -t 1 -Q 2
    hold a
    local a=$HELD_PID
    wait_for 20 echoed a
    # One at a time, so that they reach the backlog in this order: the
    # kernel hands connections to accept() first come, first served.
    local name port=()
    for name in b c d e; do
        hold "$name"
        port+=("$(port_of "$name")")
    done

    # B and C fill the queue; D and E stay in the kernel's backlog: the
    # acceptor waits for room before it calls accept() again.
    wait_for 20 listen_queue_is "$PORT" 2
    wait_for 20 accepted_count_is 3
    log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:${port[1]}\$"
    refute log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:${port[2]}\$"
    refute log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:${port[3]}\$"
    wait_for 20 recvq_is "$PORT" "${port[2]}" 6

    # A leaves: the worker takes B, which makes room for D, and only D.
    kill "$a"
    wait_for 20 echoed b
    wait_for 20 log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:${port[2]}\$"
    wait_for 20 listen_queue_is "$PORT" 1
    accepted_count_is 4
}

@test "03-pthread-pool: SIGTERM with idle clients served, queued and in the backlog: exit 0 at once, right stats, every peer sees the end" {
    start_server "$LESSON" -t 2 -Q 2
    hold a $'alpha\n'
    wait_for 20 echoed a
    hold b $'beta\n'
    wait_for 20 echoed b
    # C and D wait in the queue, E in the backlog. They send nothing, so
    # that a close without a reset is what they see.
    local name
    for name in c d e; do
        hold "$name" ""
        port_of "$name" >/dev/null
    done
    wait_for 20 accepted_count_is 4
    wait_for 20 listen_queue_is "$PORT" 1

    # Every thread asleep: the acceptor waiting for room in the queue, both
    # workers in read(). The stop must wake all of them.
    kill -TERM "$SERVER_PID"
    wait_for 2 exited "$SERVER_PID"
    local status=0
    wait "$SERVER_PID" || status=$?
    assert_equal "$status" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 4 connections, echoed 11 bytes"
    # The queued connections are closed unserved, and logged.
    [[ $(log_count "$SERVER_LOG" '^closed .* \(0 bytes\)$') -eq 2 ]]
    [[ $(log_count "$SERVER_LOG" '^closed ') -eq 4 ]]
    for name in a b c d e; do
        wait_for 20 log_has "$BATS_TEST_TMPDIR/$name.out" '^(closed|reset) by server$'
    done
}

@test "03-pthread-pool: the client reports a cut-short echo in one line, though both its threads see the failure" {
    start_server "$LESSON" -t 1
    hold a
    wait_for 20 echoed a
    # The lesson's client waits in the queue; its sender fills the socket
    # buffers and blocks in write(), its receiver in read().
    random_file "$BATS_TEST_TMPDIR/in" $((8 << 20))
    SPAWN_STDIN=$BATS_TEST_TMPDIR/in spawn "$BATS_TEST_TMPDIR/c.out" \
        "$BATS_TEST_TMPDIR/c.err" "$(client_bin "$LESSON")" -p "$PORT"
    local client=$SPAWNED_PID
    wait_for 20 accepted_count_is 2
    # Closed with its bytes unread, the connection is reset: the sender's
    # write() and the receiver's read() fail at the same moment.
    stop_server TERM
    wait_for 20 exited "$client"
    local status=0
    wait "$client" || status=$?
    assert_equal "$status" 1
    run cat "$BATS_TEST_TMPDIR/c.err"
    assert_equal "${#lines[@]}" 1
    assert_output --regexp '^client: .*(ECONNRESET|EPIPE|cut short)'
}

@test "03-pthread-pool: -t and -Q take a number within bounds, or exit 2 with the usage" {
    local args
    for args in "-t 0" "-t 257" "-t x" "-Q 0" "-Q 4097" "-t"; do
        run --separate-stderr timeout 10 "$(server_bin "$LESSON")" -p 0 $args
        [[ $status -eq 2 ]] || fail "server $args: exit $status, not 2"
        [[ $stderr == *"usage: server"* ]] || fail "server $args: no usage"
    done
    start_server "$LESSON" -t 256 -Q 4096
    threads_are "$SERVER_PID" "$(pool_threads 256)"
    run nc_echo "$PORT" <<<"big pool"
    assert_output "big pool"
}
