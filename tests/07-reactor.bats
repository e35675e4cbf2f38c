#!/usr/bin/env bats
# tests/07-reactor.bats -- what lesson 07 claims (LESSONS.md, row 07): the
# event loop is a piece of its own with swappable demultiplexers; idle
# clients are closed by timers, one per connection, not by a periodic scan;
# 10 000 connections echo with the epoll backend, and idle they cost the
# server little memory. (The whole contract runs under each backend:
# tests/07-reactor.variants.)

load helpers
load multiplexing

LESSON=07-reactor

setup() {
    need_nc
}

@test "07-reactor: -B picks the demultiplexer, and the stats line names it" {
    local b
    for b in select poll epoll; do
        start_server "$LESSON" -B "$b"
        run nc_echo "$PORT" <<<"through $b"
        assert_output "through $b"
        stop_server
        run grep '^served ' "$SERVER_LOG"
        assert_output --regexp "^served 1 connections, echoed 10?[0-9] bytes, $b: [0-9]+ waits, "
    done
    run --separate-stderr "$(server_bin "$LESSON")" -B kqueue
    assert_equal "$status" 2
    [[ $stderr == *"expected select, poll or epoll"* ]]
}

idle_lines_are() {
    [[ $(log_count "$SERVER_LOG" '^idle 127\.0\.0\.1:[0-9]+: closing it$') -eq $1 ]]
}

# An idle client is any that holds its connection and sends nothing.
@test "07-reactor: -i 1 closes idle clients, each by its own timer" {
    local n=50 i
    start_server "$LESSON" -i 1
    crowd_start "$n"
    wait_for 60 log_has "$CROWD_OUT" '^round 2: '
    assert_crowd_round 1 "$n" 0
    # Nothing moves after the crowd's two rounds: a second later the
    # server closes every connection.
    wait_for 30 idle_lines_are "$n" ||
        fail "$(log_count "$SERVER_LOG" '^idle ') idle lines, not $n"
    wait_for 20 all_closed "$SERVER_LOG"
    crowd_leave
    # A connection that is still active is not touched.
    run nc_echo "$PORT" <<<"still serving"
    assert_output "still serving"
    stop_server
    [[ $(stats_counter "idle closed") -eq $n ]]
    # Each connection's own timer ran once or twice: once if nothing had
    # moved since it was started, twice if bytes had moved and it had to
    # start again for the rest of the quiet second. Nothing scanned them.
    local timers
    timers=$(stats_counter timers)
    ((timers >= n && timers <= 2 * n)) || fail "$timers timers ran for $n idle clients"
}

@test "07-reactor: without -i an idle client is never closed" {
    start_server "$LESSON"
    crowd_start 5
    wait_for 60 log_has "$CROWD_OUT" '^round 2: '
    # No timer exists at all: the loop sleeps in epoll_wait with no timeout.
    run nc_echo "$PORT" <<<"another client"
    assert_output "another client"
    wait_for 20 sleeping "$SERVER_PID"
    [[ $(log_count "$SERVER_LOG" '^closed ') -eq 1 ]]
    crowd_leave
    stop_server
    [[ $(stats_counter timers) -eq 0 ]]
}

@test "07-reactor: 10 000 concurrent clients echo with epoll; idle, they cost under 20 MiB in all" {
    local n=10000 before after
    start_server "$LESSON" -q
    prlimit --pid "$SERVER_PID" --nofile=12000:
    before=$(rss_kb "$SERVER_PID")
    crowd_expect "$n" "$n"
    threads_of "$SERVER_PID" 1
    # The crowd now holds its connections, idle.
    after=$(rss_kb "$SERVER_PID")
    echo "# RSS $before KiB before, $after KiB with $n idle connections:" \
        "$(((after - before) * 1024 / n)) bytes each" >&3
    ((after < 20 * 1024)) || fail "RSS $after KiB with $n idle connections"
    crowd_leave
    stop_server
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served $n connections, echoed $(crowd_bytes "$n") bytes, "
}

@test "07-reactor: -B select refuses clients past FD_SETSIZE with a log line while the first keep echoing" {
    start_server "$LESSON" -B select
    crowd_past_fd_setsize 'descriptor 1024 is past FD_SETSIZE \(1024\)'
}

# in_callback PID: the server's only thread sleeps in nanosleep(), that
# is, in on_message() under -w.
in_callback() { [[ $(cat "/proc/$1/wchan" 2>/dev/null) == *nanosleep* ]]; }

# unaccepted PORT N: the listener has N connections the kernel completed
# and the server has not accepted (its Recv-Q).
unaccepted() { [[ $(ss -Hltn "( sport = :$1 )" | awk '{ print $2 }') == "$2" ]]; }

@test "07-reactor: -w: while one callback sleeps the loop serves nobody; the next client waits unaccepted, and so does the stop" {
    start_server "$LESSON" -w 10000000
    local fifo=$BATS_TEST_TMPDIR/a.in
    mkfifo "$fifo"
    exec {FEED}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/a.err" \
        nc 127.0.0.1 "$PORT"
    printf 'first\n' >&"$FEED"
    wait_for 20 in_callback "$SERVER_PID"
    # A second client: the kernel completes its handshake, but accept()
    # waits for the callback to return, ten seconds away.
    spawn "$BATS_TEST_TMPDIR/b.out" "$BATS_TEST_TMPDIR/b.err" \
        bash -c "printf 'second\n' | nc -N 127.0.0.1 $PORT"
    wait_for 20 unaccepted "$PORT" 1
    [[ $(log_count "$SERVER_LOG" '^accepted ') -eq 1 ]]
    # The stop is one more event of the loop (a signalfd): it waits for the
    # callback too. The server still sleeps in it once SIGTERM is sent.
    kill -TERM "$SERVER_PID"
    in_callback "$SERVER_PID" || fail "the callback returned too early for the check"
    wait_for 20 exited "$SERVER_PID"
    SERVER_STATUS=0
    wait "$SERVER_PID" || SERVER_STATUS=$?
    [[ $SERVER_STATUS -eq 0 ]]
    # The first client's echo went out when the callback returned. The
    # second client was accepted only if the listener came before the
    # signalfd in the round that followed; it was never read.
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served [12] connections, echoed 6 bytes, '
    wait_for 10 log_has "$BATS_TEST_TMPDIR/a.out" '^first$'
}

# Framing (-F): only whole frames come back.

# frames FILE N: N length-prefixed frames, each a 4-byte length (5, most
# significant byte first) and a 5-byte body, "1000\n" ...: 9 bytes each,
# and each a line too, for 01's client, which sends a line at a time.
frames() {
    local i
    for ((i = 1000; i < 1000 + $2; i++)); do printf '\0\0\0\5%s\n' "$i"; done >"$1"
}

@test "07-reactor: -F line and -F len echo whole frames only, and keep what is not whole yet" {
    local t=$BATS_TEST_TMPDIR
    start_server "$LESSON" -F line
    # The last line has no newline: never echoed, dropped at the close.
    run nc_echo "$PORT" < <(printf 'one\ntwo\npartial')
    assert_output $'one\ntwo'
    wait_for 20 log_has "$SERVER_LOG" '^127\.0\.0\.1:[0-9]+: 7 bytes of an incomplete frame dropped$'
    # A frame trickled one byte per write (and per segment) comes back
    # whole, once its last byte is in.
    run timeout "$NET_TIMEOUT" "$PEER" drip 127.0.0.1 "$PORT" <<<"dripped, not echoed"
    assert_output $'nothing back before the last byte\nechoed whole 20'
    stop_server

    start_server "$LESSON" -F len
    frames "$t/frames" 3
    printf '\0\0\0\7part' >"$t/partial"
    cat "$t/frames" "$t/partial" | nc_echo "$PORT" >"$t/echo"
    cmp "$t/frames" "$t/echo"
    wait_for 20 log_has "$SERVER_LOG" '^127\.0\.0\.1:[0-9]+: 8 bytes of an incomplete frame dropped$'
    run timeout "$NET_TIMEOUT" "$PEER" drip 127.0.0.1 "$PORT" < <(head -c 9 "$t/frames")
    assert_output $'nothing back before the last byte\nechoed whole 9'
}

@test "07-reactor: -F: a frame longer than the input's bound closes that connection with a log line" {
    local re='^127\.0\.0\.1:[0-9]+: a frame longer than 65536 bytes: closing$'
    start_server "$LESSON" -F line
    # More than 65536 bytes and no newline: that line can never fit.
    run nc_echo "$PORT" < <(head -c 70000 /dev/zero)
    assert_output ""
    wait_for 20 log_has "$SERVER_LOG" "$re"
    stop_server
    start_server "$LESSON" -F len
    # A length above the bound is refused from the header alone.
    run nc_echo "$PORT" < <(printf '\0\1\0\0')
    assert_output ""
    wait_for 20 log_has "$SERVER_LOG" "$re"
    # Everyone else is still served.
    run nc_echo "$PORT" < <(printf '\0\0\0\2ok')
    assert_output "$(printf '\0\0\0\2ok')"
}

# early_bodies CAPTURE PORT: how many of the client's 5-byte segments
# (--split's second write, a frame's body) left before the server had
# acknowledged every byte before them, in tcpdump's lines.
early_bodies() {
    awk -v server="127.0.0.1.$2" '
        /Flags \[S/ { next } # the handshake: absolute numbers
        $3 == server && match($0, /ack [0-9]+/) {
            a = substr($0, RSTART + 4, RLENGTH - 4) + 0
            if (a > acked) acked = a
        }
        $5 == server ":" && match($0, /seq [0-9]+:[0-9]+/) {
            split(substr($0, RSTART + 4, RLENGTH - 4), r, ":")
            if (r[2] - r[1] == 5 && r[1] > acked) early++
        }
        END { print early + 0 }' "$1"
}
server_fin_seen() { log_has "$CAPTURE" "^.* IP 127\\.0\\.0\\.1\\.$PORT > .*Flags \\[F"; }

@test "07-reactor: Nagle against -F len: --split's body waits for the ACK of its header; with --nodelay it does not" {
    local t=$BATS_TEST_TMPDIR
    frames "$t/frames" 20
    start_server "$LESSON" -F len
    # Each frame in two writes, the header then the body: Nagle holds the
    # body until the header is acknowledged, and the server, waiting for
    # the whole frame, sends no echo to carry that ACK: its delayed ACK.
    capture_start "tcp port $PORT"
    "$(client_bin 01-basic-socket)" -p "$PORT" --split <"$t/frames" >"$t/echo"
    cmp "$t/frames" "$t/echo"
    wait_for 20 server_fin_seen
    assert_equal "$(early_bodies "$CAPTURE" "$PORT")" 0
    # TCP_NODELAY: the body leaves at once, before the header's ACK.
    capture_start "tcp port $PORT"
    "$(client_bin 01-basic-socket)" -p "$PORT" --split --nodelay <"$t/frames" >"$t/echo"
    cmp "$t/frames" "$t/echo"
    wait_for 20 server_fin_seen
    (($(early_bodies "$CAPTURE" "$PORT") > 0))
}

# Keepalive (-K): the kernel probes an idle connection.

@test "07-reactor: -K 1,1,3 sets keepalive on each client: ss shows its timer, tcpdump the probes and their answers" {
    start_server "$LESSON" -K 1,1,3
    spawn "$BATS_TEST_TMPDIR/peer.out" "$BATS_TEST_TMPDIR/peer.err" \
        "$PEER" hold 127.0.0.1 "$PORT"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^echoed$'
    run ss -Htno state established "( sport = :$PORT )"
    assert_output --regexp 'timer:\(keepalive,'
    # Nothing else is sent on this connection now: a segment from the
    # server is a probe, and the client's kernel answers it.
    capture_start "tcp port $PORT"
    wait_for 20 log_has "$CAPTURE" "IP 127\\.0\\.0\\.1\\.$PORT > .*length 0"
    wait_for 20 log_has "$CAPTURE" "> 127\\.0\\.0\\.1\\.$PORT: .*length 0"
    # Answered, the connection lives on.
    refute log_has "$SERVER_LOG" ETIMEDOUT
    run --separate-stderr "$(server_bin "$LESSON")" -K 1,1
    assert_equal "$status" 2
}
