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

@test "04-select: --linger 0 closes with RST: the client reads ECONNRESET, tcpdump shows [R.]" {
    start_server "$LESSON" --linger 0
    capture_start "tcp src port $PORT and tcp[tcpflags] & (tcp-rst|tcp-fin) != 0"
    run --separate-stderr timeout "$NET_TIMEOUT" \
        "$(client_bin "$LESSON")" -p "$PORT" <<<"hello"
    # The echo came first; then, in place of the server's FIN, its RST.
    assert_failure 1
    [[ $stderr == *'read from server: ECONNRESET'* ]] || fail "stderr: $stderr"
    wait_for 20 log_has "$CAPTURE" "127\\.0\\.0\\.1\\.$PORT > .*Flags \\[R\\.\\]"
    refute log_has "$CAPTURE" 'Flags \[F'
}

@test "04-select: --rcvbuf 4096, set before listen(): ss shows 8192, window scale 0, and the client's window" {
    start_server "$LESSON" --rcvbuf 4096
    spawn "$BATS_TEST_TMPDIR/peer.out" "$BATS_TEST_TMPDIR/peer.err" \
        "$PEER" hold 127.0.0.1 "$PORT"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^echoed$'
    local server client
    server=$(ss -Htmi state established "( sport = :$PORT )")
    client=$(ss -Htmi state established "( dport = :$PORT )")
    # Linux doubles what was asked, and reports the double; the accepted
    # socket inherited it from the listener.
    [[ $server == *'rb8192,'* ]] || fail "server: $server"
    # A 4 KiB window needs no scaling: the server offered scale 0 in its
    # SYN-ACK (ss: wscale:PEER'S,OURS), and rcv_space starts at 4096.
    [[ $server =~ wscale:[0-9]+,0\  ]] || fail "server: $server"
    [[ $server == *'rcv_space:4096 '* ]] || fail "server: $server"
    # The client may send no more than the window it was offered.
    [[ $client =~ snd_wnd:([0-9]+) ]] || fail "client: $client"
    ((BASH_REMATCH[1] <= 4096)) || fail "client: $client"
}
