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
