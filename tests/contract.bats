#!/usr/bin/env bats
# tests/contract.bats -- the suite's contract, checked against one lesson.
#
# tests/run runs this file once for every lesson folder present (and once
# per line of tests/NN-name.variants, with those server arguments in
# SERVER_ARGS), so a new lesson is held to the contract the moment it
# exists. By hand:  LESSON=01-basic-socket bats tests/contract.bats
#
# A test tagged per-lesson checks the command line's parsing or the client
# alone, which a variant's server arguments do not change: a variant's run
# leaves it out (bats --filter-tags '!per-lesson'), the lesson's first run
# having passed it.

load helpers

L="$LESSON${SERVER_ARGS:+ ($SERVER_ARGS)}"

setup_file() {
    UNAVAILABLE=$(unavailable_reason "$LESSON")
    export UNAVAILABLE
}

setup() {
    skip_if_unavailable
    need_nc
    SERVER=$(server_bin "$LESSON")
    CLIENT=$(client_bin "$LESSON")
}

# spawn_fed_client COMMAND...: starts a client whose stdin is a fifo that
# stays open: write lines to $FEED_FD, close it for EOF. Its stdout and
# stderr go to c.out and c.err in the test's directory.
spawn_fed_client() {
    local fifo=$BATS_TEST_TMPDIR/stdin
    mkfifo "$fifo"
    exec {FEED_FD}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$BATS_TEST_TMPDIR/c.out" "$BATS_TEST_TMPDIR/c.err" "$@"
}

# stats_line_is CONNS BYTES: the server's stats line says so. A lesson may
# add its own counters after a comma (06 counts epoll_wait calls).
stats_line_is() {
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served $1 connections, echoed $2 bytes(, .*)?\$"
}

# --- the command line ---------------------------------------------------

# bats test_tags=per-lesson
@test "$L: server -h prints its usage on stdout and exits 0" {
    run --separate-stderr "$SERVER" -h
    assert_success
    assert_line --index 0 --regexp '^usage: server \[-H host\] \[-p port\] \[-q\] \[-h\]'
    assert_output --partial "$LESSON"
    assert_equal "$stderr" ""
}

# bats test_tags=per-lesson
@test "$L: client -h prints its usage on stdout and exits 0" {
    run --separate-stderr "$CLIENT" -h
    assert_success
    assert_line --index 0 --regexp '^usage: client \[-H host\] \[-p port\] \[-h\]'
    assert_equal "$stderr" ""
}

# bats test_tags=per-lesson
@test "$L: bad server flags print the usage on stderr and exit 2" {
    local args
    for args in "-x" "-p" "-p abc" "-p 65536" "-p -1" "-H" "stray" "-q -- extra"; do
        # Bounded: a server that wrongly accepted the flags would listen.
        run --separate-stderr timeout 10 "$SERVER" $args
        [[ $status -eq 2 ]] || fail "server $args: exit $status, not 2"
        [[ $stderr == *"usage: server"* ]] || fail "server $args: no usage on stderr"
        [[ -z $output ]] || fail "server $args: wrote to stdout: $output"
    done
}

# bats test_tags=per-lesson
@test "$L: bad client flags print the usage on stderr and exit 2" {
    local args
    for args in "-x" "-q" "-p" "-p 9x" "-p 70000" "stray"; do
        run --separate-stderr timeout 10 "$CLIENT" $args </dev/null
        [[ $status -eq 2 ]] || fail "client $args: exit $status, not 2"
        [[ $stderr == *"usage: client"* ]] || fail "client $args: no usage on stderr"
    done
}

# --- listening ------------------------------------------------------------

@test "$L: with -p 0 the listening line gives the kernel's port and the pid" {
    start_server "$LESSON"
    run grep -m1 '^listening on' "$SERVER_LOG"
    assert_output --regexp '^listening on 127\.0\.0\.1:[1-9][0-9]* \(pid [0-9]+\)$'
    assert_output --partial "(pid $SERVER_PID)"
    ((PORT > 0 && PORT < 65536))
    # The port printed is the one really bound.
    run ss -Htln "sport = :$PORT"
    assert_output --partial "127.0.0.1:$PORT"
}

@test "$L: listens and echoes on IPv6 ::1" {
    ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1' ||
        skip "no IPv6 loopback address on this machine"
    start_server "$LESSON" -H ::1
    [[ $SERVER_ADDR == "[::1]:$PORT" ]] || fail "listening line: $SERVER_ADDR"
    run nc_echo ::1 "$PORT" <<<"over IPv6"
    assert_success
    assert_output "over IPv6"
    wait_for 10 log_has "$SERVER_LOG" '^closed \[::1\]:[0-9]+ \(10 bytes\)$'
}

@test "$L: a port already in use: exit 1, one line naming the address and the reason" {
    start_server "$LESSON"
    run --separate-stderr timeout 20 "$SERVER" -p "$PORT"
    assert_failure 1
    [[ $stderr == *"127.0.0.1:$PORT"* ]] || fail "no address in: $stderr"
    [[ $stderr == *"Address already in use"* ]] || fail "no reason in: $stderr"
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "more than one line: $stderr"
}

# bats test_tags=per-lesson
@test "$L: an unknown host: exit 1 with a readable reason" {
    run --separate-stderr timeout 30 "$SERVER" -H nosuch.invalid -p 0
    assert_failure 1
    [[ $stderr == *"nosuch.invalid"* ]] || fail "host not named: $stderr"
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "more than one line: $stderr"
}

# --- echo -------------------------------------------------------------------

@test "$L: echoes one line through nc -N" {
    start_server "$LESSON"
    run nc_echo "$PORT" <<<"hello, echo"
    assert_success
    assert_output "hello, echo"
}

@test "$L: echoes a 4 MiB random binary file byte for byte through nc -N" {
    start_server "$LESSON"
    random_file "$BATS_TEST_TMPDIR/in" $((4 << 20))
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "$L: echoes NUL bytes and a last line without a newline" {
    start_server "$LESSON"
    printf 'a\0b\n\0\0\n\0tail without newline' >"$BATS_TEST_TMPDIR/in"
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "$L: an empty connection echoes nothing and is logged with 0 bytes" {
    start_server "$LESSON"
    run nc_echo "$PORT" </dev/null
    assert_success
    assert_output ""
    wait_for 10 log_has "$SERVER_LOG" '^closed 127\.0\.0\.1:[0-9]+ \(0 bytes\)$'
    wait_for 10 log_has "$SERVER_LOG" '^accepted 127\.0\.0\.1:[0-9]+$'
}

@test "$L: logs accepted and closed with the peer's address and byte count" {
    start_server "$LESSON"
    # The peer's own port identifies its lines in the server's log.
    spawn "$BATS_TEST_TMPDIR/peer.out" "$BATS_TEST_TMPDIR/peer.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "twelve bytes"
    local peer=$SPAWNED_PID
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^echoed$'
    local cport
    cport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/peer.out")
    # Where another process logs the accept (02's parent), it may come
    # after the echo: wait for it rather than expect it.
    wait_for 10 log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:$cport\$"
    kill "$peer"
    wait_for 20 log_has "$SERVER_LOG" "^closed 127\\.0\\.0\\.1:$cport \\(12 bytes\\)\$"
}

@test "$L: -q leaves out the per-connection lines, not the stats line" {
    start_server "$LESSON" -q
    run nc_echo "$PORT" <<<"quiet"
    assert_output "quiet"
    stop_server
    assert_equal "$SERVER_STATUS" 0
    run cat "$SERVER_LOG"
    refute_line --regexp '^(accepted|closed) '
    stats_line_is 1 6
}

# --- clients ----------------------------------------------------------------

@test "$L: the lesson's client echoes binary input byte for byte" {
    start_server "$LESSON"
    random_file "$BATS_TEST_TMPDIR/in" $((1 << 20))
    printf '\0last line, no newline' >>"$BATS_TEST_TMPDIR/in"
    timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" \
        <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

# bats test_tags=per-lesson
@test "$L: the lesson's client with empty input exits 0 with no output" {
    start_server "$LESSON"
    run --separate-stderr timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" </dev/null
    assert_success
    assert_output ""
    assert_equal "$stderr" ""
}

@test "$L: every lesson's client works against this server" {
    start_server "$LESSON"
    random_file "$BATS_TEST_TMPDIR/in" $((256 << 10))
    printf 'tail' >>"$BATS_TEST_TMPDIR/in"
    local c
    for c in $(all_lessons); do
        timeout "$NET_TIMEOUT" "$(client_bin "$c")" -p "$PORT" \
            <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out.$c" ||
            fail "$c's client failed against $LESSON's server"
        cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out.$c" ||
            fail "$c's client got a different echo"
    done
}

# bats test_tags=per-lesson
@test "$L: the client reports a closed port in one line and exits 1" {
    # Take a free port from the kernel, then let it go: nobody listens there.
    start_server "$LESSON"
    local port=$PORT
    stop_server
    run --separate-stderr timeout 20 "$CLIENT" -p "$port" </dev/null
    assert_failure 1
    [[ $stderr == *"127.0.0.1:$port"* ]] || fail "address missing: $stderr"
    [[ $stderr == *"Connection refused"* ]] || fail "reason missing: $stderr"
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "more than one line: $stderr"
}

# bats test_tags=per-lesson
@test "$L: the client exits 1 in one line when the server goes away mid-echo" {
    start_server "$LESSON"
    spawn_fed_client "$CLIENT" -p "$PORT"
    local client=$SPAWNED_PID fd=$FEED_FD
    echo "first line" >&"$fd"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/c.out" '^first line$'
    stop_server
    echo "second line" >&"$fd"
    exec {fd}>&-
    wait_for 20 exited "$client"
    local status=0
    wait "$client" || status=$?
    assert_equal "$status" 1
    [[ $(wc -l <"$BATS_TEST_TMPDIR/c.err") -eq 1 ]] ||
        fail "stderr: $(cat "$BATS_TEST_TMPDIR/c.err")"
}

@test "$L: 25 concurrent clients each get their own bytes back" {
    start_server "$LESSON"
    local i pids=()
    for i in $(seq 1 25); do
        random_file "$BATS_TEST_TMPDIR/in.$i" $((i * 3001))
        SPAWN_STDIN=$BATS_TEST_TMPDIR/in.$i spawn "$BATS_TEST_TMPDIR/out.$i" \
            "$BATS_TEST_TMPDIR/err.$i" timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT"
        pids+=("$SPAWNED_PID")
    done
    for i in $(seq 1 25); do
        wait "${pids[i - 1]}" || fail "client $i failed: $(cat "$BATS_TEST_TMPDIR/err.$i")"
        cmp "$BATS_TEST_TMPDIR/in.$i" "$BATS_TEST_TMPDIR/out.$i" ||
            fail "client $i got another echo"
    done
}

# --- misbehaving clients ------------------------------------------------

@test "$L: clients that reset mid-transfer cost the server nothing" {
    start_server "$LESSON"
    local base i pids=()
    base=$(fd_count "$SERVER_PID")
    for i in $(seq 1 20); do
        spawn "$BATS_TEST_TMPDIR/r.$i" /dev/null "$PEER" reset 127.0.0.1 "$PORT" $((256 << 10))
        pids+=("$SPAWNED_PID")
    done
    for i in $(seq 1 20); do
        wait "${pids[i - 1]}" || fail "reset peer $i failed"
    done
    # The server still echoes, then has as many descriptors as before.
    run nc_echo "$PORT" <<<"still here"
    assert_output "still here"
    wait_for 30 all_closed "$SERVER_LOG"
    wait_for 10 fd_count_is "$SERVER_PID" "$base"
    kill -0 "$SERVER_PID"
}

# queues LOCALPORT PEERPORT: "RECVQ SENDQ" of one established socket.
queues() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1, $2 }'
}
# backed_up PORT PEERPORT: every queue of a non-reading client's connection
# holds bytes: the server's side has unread input and unsent output, the
# client's side unsent input. The server has stopped reading from it.
backed_up() {
    local srv cli
    read -ra srv <<<"$(queues "$1" "$2")"
    read -ra cli <<<"$(queues "$2" "$1")"
    ((${srv[0]:-0} > 0 && ${srv[1]:-0} > 0 && ${cli[1]:-0} > 0))
}

@test "$L: a client that never reads stalls nobody else and costs bounded memory" {
    [[ $LESSON != 01-* ]] ||
        skip "01 serves one client at a time: its documented limit"
    start_server "$LESSON"
    local base fport
    base=$(rss_kb "$SERVER_PID")
    # 64 MiB is far more than the kernel's buffers on both sides can hold
    # (some 8 MiB here): the rest can only wait in the client, or pile up
    # in a server that does not stop reading.
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.out")
    wait_for 30 backed_up "$PORT" "$fport"

    # Others are served in full meanwhile, through nc and the own client.
    random_file "$BATS_TEST_TMPDIR/in" $((1 << 20))
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
    timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" \
        <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out2"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out2"

    # The flood is still held back, and the server did not swallow it.
    backed_up "$PORT" "$fport"
    refute log_has "$BATS_TEST_TMPDIR/flood.out" '^sent '
    if [[ $LESSON != 02-* ]]; then # 02's memory for it is in a child
        local grew=$(($(rss_kb "$SERVER_PID") - base))
        ((grew < 8192)) || fail "the server's RSS grew by $grew KiB"
    fi
    kill -0 "$SERVER_PID"
}

# listen_queue PORT: connections the kernel holds for accept() (the LISTEN
# sockets' Recv-Q, summed: with SO_REUSEPORT a server has several).
listen_queue() { ss -Htln "sport = :$1" | awk '{ q += $2 } END { print q + 0 }'; }
listen_queue_is() { [[ $(listen_queue "$1") == "$2" ]]; }

@test "$L: out of descriptors: logs EMFILE, does not spin, serves again later" {
    start_server "$LESSON"
    local base
    base=$(fd_count "$SERVER_PID")
    # Let the server keep what it has and nothing more: its next accept()
    # fails with EMFILE.
    prlimit --pid "$SERVER_PID" --nofile="$base:"
    # An accept() already asleep when the limit fell holds the descriptor
    # it took on entry, so one more client may still be served.
    local i refused=0
    for i in 1 2 3; do
        run nc_echo "$PORT" <<<"try $i"
        if [[ $output != "try $i" ]]; then
            refused=1
            break
        fi
    done
    ((refused)) || fail "no client refused with the limit at $base descriptors"
    wait_for 20 log_has "$SERVER_LOG" 'EMFILE|Too many open files'
    # Not spinning on the connection it could not take: the queue is empty
    # and every thread of the server is asleep, waiting for the next event.
    wait_for 20 listen_queue_is "$PORT" 0
    wait_for 20 quiescent "$SERVER_PID"
    # Descriptors to spare again: served as usual.
    prlimit --pid "$SERVER_PID" --nofile=$((base + 64)):
    run nc_echo "$PORT" <<<"served again"
    assert_output "served again"
    kill -0 "$SERVER_PID"
}

# --- stopping ---------------------------------------------------------------
# The stop: exit 0 with the totals of that moment, from wherever the
# server sleeps, and no process of it left (02's children included: the
# server runs in a session of its own, which its children cannot leave).

# stopped_cleanly CONNS BYTES: after stop_server: exit 0, the stats line
# says so, and nothing of the server's session is left, not even a zombie.
stopped_cleanly() {
    assert_equal "$SERVER_STATUS" 0
    stats_line_is "$1" "$2"
    wait_for 10 session_empty "$SERVER_PID"
}

@test "$L: SIGTERM while it waits for its first client: exit 0, nothing left" {
    start_server "$LESSON"
    wait_for 20 quiescent "$SERVER_PID"
    stop_server TERM
    stopped_cleanly 0 0
}

@test "$L: SIGTERM with a client connected: exit 0, stats line, nothing left" {
    start_server "$LESSON"
    spawn "$BATS_TEST_TMPDIR/peer.out" "$BATS_TEST_TMPDIR/peer.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "held open"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^echoed$'
    wait_for 20 quiescent "$SERVER_PID"
    stop_server TERM
    stopped_cleanly 1 9
    # The client saw its connection end: exit closed the server's sockets.
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^(closed|reset) by server$'
}

@test "$L: SIGINT stops it cleanly too, and the stats line counts everything" {
    start_server "$LESSON"
    run nc_echo "$PORT" <<<"12345"
    run nc_echo "$PORT" <<<"abc"
    run nc_echo "$PORT" </dev/null
    wait_for 20 all_closed "$SERVER_LOG"
    stop_server INT
    stopped_cleanly 3 10
}

# send_queue LOCALPORT PEERPORT: bytes one established socket has not
# yet got the peer to take.
send_queue() { queues "$1" "$2" | awk '{ print $2 }'; }
output_held() { (($(send_queue "$1" "$2") > 0)); }

@test "$L: SIGTERM while it owes an echo to a client that does not read: exit 0, nothing left" {
    start_server "$LESSON"
    local fport
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.out")
    # The server's side of the connection holds echo the client will not
    # take: a blocking server now sleeps in write(), an event loop waits
    # with output pending.
    wait_for 30 output_held "$PORT" "$fport"
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 1 connections, echoed [1-9][0-9]* bytes(, .*)?$'
    wait_for 10 session_empty "$SERVER_PID"
}

# bats test_tags=per-lesson
@test "$L: Ctrl-C (SIGINT) stops the client while it waits" {
    start_server "$LESSON"
    # A background job starts with SIGINT ignored; a terminal's would not.
    spawn_fed_client env --default-signal=INT "$CLIENT" -p "$PORT"
    local client=$SPAWNED_PID fd=$FEED_FD
    echo "waiting" >&"$fd"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/c.out" '^waiting$'
    kill -INT "$client"
    wait_for 20 session_gone "$client"
    exec {fd}>&-
}

# bats test_tags=per-lesson
@test "$L: SIGTERM to the client's pid ends all of the client" {
    start_server "$LESSON"
    spawn_fed_client "$CLIENT" -p "$PORT"
    local client=$SPAWNED_PID fd=$FEED_FD
    echo "waiting" >&"$fd"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/c.out" '^waiting$'
    kill -TERM "$client"
    # Every process of the client, not only the one signalled.
    wait_for 20 session_gone "$client"
    exec {fd}>&-
}

# --- careless starts (descriptors 0-2 closed, odd stdin) ----------------------

# listening_port PID: the TCP port PID listens on, as ss sees it.
listening_port() {
    ss -Htlnp | awk -v p="pid=$1," 'index($0, p) { n = split($4, a, ":"); print a[n]; exit }'
}
has_listening_port() { [[ -n $(listening_port "$1") ]]; }

@test "$L: started with 0, 1 and 2 closed, the server writes no log line to a client" {
    local i
    (
        close_inherited_fds
        exec setsid "$SERVER" -p 0 <&- >&- 2>&-
    ) &
    SERVER_PID=$!
    _spawned+=("$SERVER_PID")
    wait_for 20 has_listening_port "$SERVER_PID"
    PORT=$(listening_port "$SERVER_PID")
    # Each client gets its own bytes and nothing else: no "accepted" or
    # "closed" line of its own or of another client's.
    for i in 1 2 3; do
        run nc_echo "$PORT" <<<"client $i"
        assert_output "client $i"
    done
    run timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" <<<"own client"
    assert_success
    assert_output "own client"
}

# bats test_tags=per-lesson
@test "$L: the client with stdin closed sends nothing, and exits 0 once the server closes" {
    start_server "$LESSON"
    local status=0
    # Not through bats' run: it would open files of its own on the free 0.
    timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" <&- \
        >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" || status=$?
    assert_equal "$status" 0
    [[ ! -s $BATS_TEST_TMPDIR/out ]] || fail "echo: $(cat "$BATS_TEST_TMPDIR/out")"
    wait_for 20 log_has "$SERVER_LOG" '^closed .* \(0 bytes\)$'
}

# bats test_tags=per-lesson
@test "$L: the client with stdout closed writes the echo nowhere, not into its socket" {
    start_server "$LESSON"
    local status=0
    timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" <<<"hello" >&- || status=$?
    assert_equal "$status" 0
    # The server echoed six bytes and got nothing back from them.
    wait_for 20 log_has "$SERVER_LOG" '^closed .* \(6 bytes\)$'
    refute log_has "$SERVER_LOG" '^closed .* \(1[2-9] bytes\)$'
}

# bats test_tags=per-lesson
@test "$L: the client with a directory as stdin says so in one line and exits 1" {
    start_server "$LESSON"
    run --separate-stderr timeout "$NET_TIMEOUT" "$CLIENT" -p "$PORT" <"$BATS_TEST_TMPDIR"
    assert_equal "$status" 1
    assert_output ""
    [[ $(wc -l <<<"$stderr") -eq 1 && -n $stderr ]] || fail "stderr: $stderr"
}

# bats test_tags=per-lesson
@test "$L: the client with a non-blocking stdin pipe echoes all of it" {
    start_server "$LESSON"
    # A producer that pauses: the client's read() of the empty pipe fails
    # with EAGAIN, which must mean "wait", not "end" or "spin forever".
    run bash -c '{ echo one; sleep 0.2; echo two; sleep 0.2; echo three; } |
        timeout "$1" "$2" nonblock "$3" -p "$4"' _ "$NET_TIMEOUT" "$PEER" "$CLIENT" "$PORT"
    assert_success
    assert_output "$(printf 'one\ntwo\nthree')"
}
