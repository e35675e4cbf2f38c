#!/usr/bin/env bats
# tests/01-basic-socket.bats -- what lesson 01 claims (docs/course-map.md):
# one client at a time, the backlog holding the others; SO_REUSEADDR lets
# the server restart at once while its old connection is in TIME_WAIT.

load helpers

LESSON=01-basic-socket

setup() {
    need_nc
}

# ss_recvq PORT PEERPORT: the Recv-Q of the server's side of one connection.
ss_recvq() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1 }'
}
recvq_is() { [[ $(ss_recvq "$1" "$2") == "$3" ]]; }

@test "01-basic-socket: a second client waits in the backlog until the first one leaves" {
    start_server "$LESSON"
    spawn "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/a.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "first!"
    local a=$SPAWNED_PID
    wait_for 20 log_has "$BATS_TEST_TMPDIR/a.out" '^echoed$'

    spawn "$BATS_TEST_TMPDIR/b.out" "$BATS_TEST_TMPDIR/b.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "second"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/b.out" '^connected '
    local bport
    bport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/b.out")

    # The kernel completed B's handshake and holds its 6 bytes, unread:
    # the server is still in read() on A's connection and has not even
    # accepted B.
    wait_for 20 recvq_is "$PORT" "$bport" 6
    [[ $(log_count "$SERVER_LOG" '^accepted ') -eq 1 ]]
    refute log_has "$BATS_TEST_TMPDIR/b.out" '^echoed$'

    # A leaves: only now is B accepted and echoed.
    kill "$a"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/b.out" '^echoed$'
    log_has "$SERVER_LOG" "^accepted 127\\.0\\.0\\.1:$bport\$"
    run grep -E '^(accepted|closed) ' "$SERVER_LOG"
    # Strictly one after the other: A's closed line comes before B's accept.
    assert_line --index 1 --regexp '^closed .* \(6 bytes\)$'
    assert_line --index 2 "accepted 127.0.0.1:$bport"
}

time_wait_on() { [[ -n $(ss -Htan state time-wait "( sport = :$1 )") ]]; }

@test "01-basic-socket: it restarts on its port at once while the old connection is in TIME_WAIT" {
    start_server "$LESSON"
    local port=$PORT
    spawn "$BATS_TEST_TMPDIR/peer.out" "$BATS_TEST_TMPDIR/peer.err" \
        "$PEER" hold 127.0.0.1 "$port"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^echoed$'

    # Stopped with a client connected, the server closes first, so its side
    # of the connection ends in TIME_WAIT, on the server's port.
    stop_server
    assert_equal "$SERVER_STATUS" 0
    wait_for 20 log_has "$BATS_TEST_TMPDIR/peer.out" '^closed by server$'
    wait_for 20 time_wait_on "$port"

    # Without SO_REUSEADDR, bind() there fails ...
    run --separate-stderr timeout 20 "$(server_bin "$LESSON")" --no-reuseaddr -p "$port"
    assert_failure 1
    [[ $stderr == *"127.0.0.1:$port: bind: EADDRINUSE"* ]] || fail "stderr: $stderr"
    # ... with it, the server starts at once.
    start_server "$LESSON" -p "$port"
    assert_equal "$PORT" "$port"
    time_wait_on "$port"
    run nc_echo "$port" <<<"back again"
    assert_output "back again"
}

# UDP (-u): one socket, no connections; a datagram in, the same datagram out.

# udp_drops PORT: the drops count (d) of the UDP socket bound to PORT, from
# ss -m's skmem field: datagrams the kernel threw away for lack of room.
udp_drops() {
    ss -Huamn "sport = :$1" | sed -nE 's/.*skmem:\(.*,d([0-9]+)\).*/\1/p'
}
# udp_rcvbuf_errors: the system's UDP RcvbufErrors counter (what nstat
# and netstat -su show), from /proc/net/snmp.
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!n++) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i }
                   else print $c }' /proc/net/snmp
}

@test "01-basic-socket: -u echoes each datagram whole, and counts datagrams" {
    start_server "$LESSON" -u
    run --separate-stderr grep -m1 '^listening on ' "$SERVER_LOG"
    assert_output --regexp '^listening on 127\.0\.0\.1:[0-9]+ \(udp, pid [0-9]+\)$'
    # Three lines, three datagrams, three echoes; then one through nc.
    run timeout "$NET_TIMEOUT" "$(client_bin "$LESSON")" -u -p "$PORT" \
        <<<$'one\ntwo\nthree'
    assert_success
    assert_output $'one\ntwo\nthree'
    run timeout "$NET_TIMEOUT" nc -u -W 1 127.0.0.1 "$PORT" <<<"by nc"
    assert_output "by nc"
    stop_server
    assert_equal "$SERVER_STATUS" 0
    # No connection, so no accepted/closed lines, and the stop counts
    # datagrams: 4 of them, 8 + 6 bytes.
    refute log_has "$SERVER_LOG" '^(accepted|closed) '
    log_has "$SERVER_LOG" '^served 4 datagrams, echoed 20 bytes$'
}

@test "01-basic-socket: -u with --udp-buffer 4 keeps 4 bytes of a datagram and says it was truncated" {
    start_server "$LESSON" -u --udp-buffer 4
    run timeout "$NET_TIMEOUT" nc -u -W 1 127.0.0.1 "$PORT" <<<"hello world"
    assert_output "hell"
    log_has "$SERVER_LOG" '^truncated a datagram from 127\.0\.0\.1:[0-9]+: 12 bytes, 4 kept$'
}

@test "01-basic-socket: -u's client gets ECONNREFUSED once the server has stopped" {
    start_server "$LESSON" -u
    local port=$PORT
    stop_server
    # Nobody is bound there now: the kernel answers the datagram with an
    # ICMP port unreachable, which the client's connected socket reports.
    run --separate-stderr timeout "$NET_TIMEOUT" "$(client_bin "$LESSON")" \
        -u -p "$port" <<<"anyone?"
    assert_failure 1
    [[ $stderr == *ECONNREFUSED* ]] || fail "stderr: $stderr"
}

@test "01-basic-socket: -u loses datagrams when its receive buffer is full (RcvbufErrors)" {
    start_server "$LESSON" -u -q
    local before
    before=$(udp_rcvbuf_errors)
    # A stopped server reads nothing: 2000 datagrams of 100 bytes are more
    # than its receive buffer holds, and the kernel drops the rest.
    kill -STOP "$SERVER_PID"
    (
        exec 3>"/dev/udp/127.0.0.1/$PORT"
        for i in $(seq 2000); do printf '%099d\n' "$i" >&3; done
    )
    local drops
    drops=$(udp_drops "$PORT")
    ((drops > 0)) || fail "ss shows no drops: $(ss -Huamn "sport = :$PORT")"
    (($(udp_rcvbuf_errors) >= before + drops))
    kill -CONT "$SERVER_PID"
    stop_server
    assert_equal "$SERVER_STATUS" 0
    # What it served is what the buffer held, not what was sent.
    local served
    served=$(sed -nE 's/^served ([0-9]+) datagrams, .*/\1/p' "$SERVER_LOG")
    ((served <= 2000 - drops))
}
