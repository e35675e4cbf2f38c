#!/usr/bin/env bats
# tests/03-pthread-pool.bats -- what lesson 03 claims (../LESSONS, row 03):
# a fixed pool of N threads fed by a bounded queue. At most N clients are
# served at once; the next ones wait in the queue, then in the kernel's
# backlog; no thread is created per client; the stop ends the process from
# wherever its threads sleep.

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

# --- the stop ---------------------------------------------------------------
# Way (a): the handler writes the stats line and calls _exit(), on whichever
# thread the kernel gives the signal to. Each test below puts that thread
# asleep in one of the places 03 sleeps, then signals exactly that thread:
# kill() given a thread id sends the signal to the whole process, but the
# kernel offers it to that thread first (it does not block it), so the
# handler runs there. Under ThreadSanitizer this is what could go wrong: a
# handler is deferred while its thread sits in a call TSan does not treat
# as blocking (accept, read, write), until that call returns.

# asleep_in PID REGEX: the ids of the threads of PID whose wchan (where the
# thread sleeps in the kernel) matches REGEX, one a line.
asleep_in() {
    local t
    for t in /proc/"$1"/task/*; do
        [[ $(cat "$t/wchan" 2>/dev/null) =~ $2 ]] && echo "${t##*/}"
    done
    return 0
}
# wchans PID: every thread's, for a failure's message.
wchans() {
    local t
    for t in /proc/"$1"/task/*; do
        echo "${t##*/}: $(cat "$t/wchan" 2>/dev/null)"
    done
}
IN_ACCEPT='accept|wait_for_connect'                       # accept()
ON_CONDVAR=futex                                          # pthread_cond_wait()
IN_SOCKET='wait_woken|sk_wait_data|sk_stream_wait_memory' # read(), write()

# asleep_count_is PID REGEX N: N threads of PID sleep where REGEX says.
asleep_count_is() { [[ $(asleep_in "$1" "$2" | wc -l) -eq $3 ]]; }

# at_rest PID N: the acceptor asleep in accept(), N workers on the queue's
# condition variable. (TSan's own thread sleeps elsewhere.)
at_rest() {
    asleep_count_is "$1" "$IN_ACCEPT" 1 && asleep_count_is "$1" "$ON_CONDVAR" "$2"
}

# stop_thread TID: SIGTERM to that thread of the server, then waits for
# the server to exit (bounded as stop_server is: how fast is not asserted,
# on a shared machine), and sets SERVER_STATUS.
stop_thread() {
    kill -TERM "$1"
    wait_for 20 exited "$SERVER_PID" || return 1
    SERVER_STATUS=0
    wait "$SERVER_PID" || SERVER_STATUS=$?
}

# stopped_with CONNS BYTES: exit 0, the stats line gives those totals, and
# no process of the server's session is left, not even a zombie.
stopped_with() {
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output "served $1 connections, echoed $2 bytes"
    wait_for 10 session_empty "$SERVER_PID"
}

@test "03-pthread-pool: the stop taken by the acceptor asleep in accept(): exit 0, true totals, nothing left" {
    start_server "$LESSON" -t 2
    run nc_echo "$PORT" <<<"hello"
    assert_output "hello"
    wait_for 20 all_closed "$SERVER_LOG"
    wait_for 20 at_rest "$SERVER_PID" 2 || fail "$(wchans "$SERVER_PID")"
    # The main thread's id is the pid: it is the acceptor.
    stop_thread "$SERVER_PID"
    stopped_with 1 6
}

@test "03-pthread-pool: the stop taken by a worker asleep on the queue's condition variable: exit 0, true totals, nothing left" {
    start_server "$LESSON" -t 2
    run nc_echo "$PORT" <<<"hello"
    assert_output "hello"
    wait_for 20 all_closed "$SERVER_LOG"
    wait_for 20 at_rest "$SERVER_PID" 2 || fail "$(wchans "$SERVER_PID")"
    local tid
    tid=$(asleep_in "$SERVER_PID" "$ON_CONDVAR" | head -n 1)
    [[ -n $tid && $tid != "$SERVER_PID" ]]
    stop_thread "$tid"
    stopped_with 1 6
}

@test "03-pthread-pool: the stop taken by a worker asleep in read() on an idle client: exit 0, true totals, the client sees the end" {
    start_server "$LESSON" -t 2
    hold a $'alpha\n'
    wait_for 20 echoed a
    # One worker waits in read() for A's next bytes, the other on the
    # condition variable; the acceptor is in accept().
    wait_for 20 asleep_count_is "$SERVER_PID" "$IN_SOCKET" 1 || fail "$(wchans "$SERVER_PID")"
    wait_for 20 asleep_count_is "$SERVER_PID" "$ON_CONDVAR" 1 || fail "$(wchans "$SERVER_PID")"
    stop_thread "$(asleep_in "$SERVER_PID" "$IN_SOCKET")"
    stopped_with 1 6
    # Exit closed A's socket, its input all read: A sees a plain close.
    wait_for 20 log_has "$BATS_TEST_TMPDIR/a.out" '^closed by server$'
}

# sock_queues LOCALPORT PEERPORT: "RECVQ SENDQ" of one established socket.
sock_queues() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1, $2 }'
}
# blocked_in_write PORT PEERPORT: one worker is asleep on a socket while
# its connection has input still unread and output unsent: it is not in
# read(), which would have returned that input, but in write(), waiting
# for room the client, which never reads, does not make. Two looks, the
# same each time, so that the picture is settled. Sets WRITER and
# WRITTEN, the bytes the server has handed to the kernel: still in its
# send queue, or received into the client's.
blocked_in_write() {
    local look1 look2 srv cli
    look1="$(asleep_in "$SERVER_PID" "$IN_SOCKET") $(sock_queues "$1" "$2") $(sock_queues "$2" "$1")"
    look2="$(asleep_in "$SERVER_PID" "$IN_SOCKET") $(sock_queues "$1" "$2") $(sock_queues "$2" "$1")"
    [[ $look1 == "$look2" ]] || return 1
    read -ra srv <<<"$(sock_queues "$1" "$2")"
    read -ra cli <<<"$(sock_queues "$2" "$1")"
    WRITER=$(asleep_in "$SERVER_PID" "$IN_SOCKET")
    [[ -n $WRITER && $WRITER != *$'\n'* ]] || return 1
    ((${srv[0]:-0} > 0 && ${srv[1]:-0} > 0)) || return 1
    WRITTEN=$((${srv[1]} + ${cli[0]:-0}))
}

@test "03-pthread-pool: the stop taken by a worker blocked in write() to a client that does not read: exit 0, true totals, nothing left" {
    start_server "$LESSON" -t 2
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((32 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    local fport bytes
    fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.out")
    wait_for 30 blocked_in_write "$PORT" "$fport" || fail "$(wchans "$SERVER_PID")"
    stop_thread "$WRITER"
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 1 connections, echoed [0-9]+ bytes$'
    # The totals count each buffer once all of it is written: the worker
    # was inside the write of one buffer (at most 16 KiB), so the line
    # gives every byte written before that buffer.
    bytes=$(stats_counter bytes)
    ((bytes <= WRITTEN && bytes > WRITTEN - 16384)) ||
        fail "stats say $bytes bytes, the kernel took $WRITTEN"
    wait_for 10 session_empty "$SERVER_PID"
}

@test "03-pthread-pool: the stop with the queue full (the acceptor on the condition variable, a client queued, one in the backlog): exit 0, true totals, every peer sees the end" {
    start_server "$LESSON" -t 1 -Q 1
    hold a $'alpha\n'
    wait_for 20 echoed a
    # B waits in the queue, C in the backlog. They send nothing, so that a
    # close without a reset is what B sees.
    local name
    for name in b c; do
        hold "$name" ""
        port_of "$name" >/dev/null
    done
    wait_for 20 accepted_count_is 2
    wait_for 20 listen_queue_is "$PORT" 1
    # The acceptor waits for room on the condition variable, the worker in
    # read() on A; nobody is in accept().
    wait_for 20 asleep_count_is "$SERVER_PID" "$ON_CONDVAR" 1 || fail "$(wchans "$SERVER_PID")"
    wait_for 20 asleep_count_is "$SERVER_PID" "$IN_SOCKET" 1 || fail "$(wchans "$SERVER_PID")"
    asleep_count_is "$SERVER_PID" "$IN_ACCEPT" 0
    [[ $(asleep_in "$SERVER_PID" "$ON_CONDVAR") == "$SERVER_PID" ]]
    stop_thread "$SERVER_PID"
    stopped_with 2 6
    # No line for the queued B: exit closed it, unserved, like every other.
    [[ $(log_count "$SERVER_LOG" '^closed ') -eq 0 ]]
    for name in a b c; do
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
