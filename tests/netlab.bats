#!/usr/bin/env bats
# tests/netlab.bats -- scripts/netlab (make netlab): a lesson's server and
# client in two network namespaces, with tcpdump between them. It shows the
# handshake, the echo and the FIN/ACK exchange with TIME-WAIT on the side
# that closed first, and a client's RST; and whatever happens -- a clean
# run, a server that cannot start, SIGTERM in the middle -- it leaves no
# namespace and no process behind.
#
# Skipped, with the reason, where the lab cannot run: not root, no network
# namespaces (a container without CAP_SYS_ADMIN), or no tcpdump. The tests
# never install tcpdump themselves (NETLAB_NO_INSTALL=1): what the suite
# installs, scripts/install-test-deps installs.

load helpers

NETLAB=$ROOT/scripts/netlab

setup() {
    ((EUID == 0)) || skip "netlab needs root (network namespaces, tcpdump)"
    local probe=netlab-probe-$$
    ip netns add "$probe" 2>/dev/null ||
        skip "cannot create a network namespace here (ip netns add failed)"
    ip netns del "$probe"
    command -v tcpdump >/dev/null 2>&1 ||
        skip "tcpdump is not installed (apt-get install tcpdump)"
    LAB=$BATS_TEST_TMPDIR/lab
}

# netlab ARGS...: runs the lab, bounded, into $LAB; skips where it says
# this machine cannot run it (exit 77). fd 3 is closed so that nothing it
# starts could keep bats waiting.
netlab() {
    run timeout 120 env BIN_DIR="$BIN_DIR" NETLAB_NO_INSTALL=1 \
        "$NETLAB" -o "$LAB" "$@" 3>&-
    if ((status == 77)); then
        skip "${lines[-1]}"
    fi
}

# nothing_left: neither of the run's namespaces, nor any process it printed
# or that was started with its capture file's path, is still there.
nothing_left() {
    local ns pid
    for ns in $(grep -oE 'netlab-[0-9]+-[ab]' <<<"$output" | sort -u); do
        if ip netns list | grep -qE "^$ns( |$)"; then
            fail "namespace $ns is still there"
        fi
    done
    for pid in $(sed -nE 's/^  tcpdump pid ([0-9]+), server pid ([0-9]+)$/\1 \2/p' <<<"$output"); do
        exited "$pid" || fail "process $pid is still running"
    done
    if pgrep -f "$LAB/" >/dev/null; then
        fail "processes started by the lab are still running: $(pgrep -af "$LAB/")"
    fi
}

@test "netlab: handshake, echo, FIN/ACK, and TIME-WAIT on the client that closed first" {
    netlab -s normal 01-basic-socket
    assert_success
    assert_line 'hello, netlab'
    assert_line --regexp '^handshake SYN +client .* > 192\.0\.2\.1\.9001: Flags \[S\],'
    assert_line --regexp '^handshake SYN-ACK +server .*: Flags \[S\.\],'
    assert_line --regexp '^handshake ACK +client .*: Flags \[\.\], ack 1,'
    assert_line --regexp '^data +14 bytes +client .*: Flags \[P\.\], seq 1:15,'
    assert_line --regexp '^data +14 bytes +server .*: Flags \[P\.\], seq 1:15,'
    assert_line --regexp '^close +FIN +client .*Flags \[F\.\]'
    assert_line --regexp '^close +FIN +server .*Flags \[F\.\]'
    assert_line --regexp '^close +ACK +client .*Flags \[\.\]'
    # The client's FIN came first, so the client is the one in TIME-WAIT.
    grep -E '^close ' "$LAB/conversation.txt" | head -n 1 | grep -q ' client '
    assert_line --regexp '^TIME-WAIT +0 +0 +192\.0\.2\.2:[0-9]+ +192\.0\.2\.1:9001 .*timewait'
    refute_line --regexp '^TIME-WAIT .* 192\.0\.2\.1:9001 +192\.0\.2\.2:'
    assert_line --regexp '^served 1 connections, echoed 14 bytes$'
    [[ -s $LAB/capture.pcap ]]
    assert_line --regexp '^netlab: torn down: netlab-[0-9]+-a netlab-[0-9]+-b deleted$'
    nothing_left
}

@test "netlab -s server-first: the server's FIN first, TIME-WAIT on its port" {
    netlab -s server-first 04-select
    assert_success
    assert_line --regexp '^handshake SYN-ACK +server '
    grep -E '^close ' "$LAB/conversation.txt" | head -n 1 | grep -q ' FIN .* server '
    assert_line --regexp '^TIME-WAIT +0 +0 +192\.0\.2\.1:9004 +192\.0\.2\.2:[0-9]+ .*timewait'
    assert_line 'closed by server'
    nothing_left
}

@test "netlab -s reset: the client vanishes, its kernel sends RST, the server loses only that client" {
    netlab -s reset 02-fork-server
    assert_success
    assert_line --regexp '^handshake SYN +client '
    assert_line --regexp '^reset +RST +client .*: Flags \[R'
    refute_line --regexp '^close +FIN'
    refute_line --regexp '^TIME-WAIT'
    # The child saw the reset in read() or write(), logged it and closed.
    assert_line --regexp '^server: (read from|write to) 192\.0\.2\.2:[0-9]+: (ECONNRESET|EPIPE)'
    assert_line --regexp '^closed 192\.0\.2\.2:[0-9]+ \([0-9]+ bytes\)$'
    assert_line --regexp '^served 1 connections, echoed [0-9]+ bytes$'
    nothing_left
}

@test "netlab -s vanish: a client gone silent, found by 07's keepalive (-K): probes, ETIMEDOUT, the connection freed" {
    netlab -s vanish 07-reactor -K 1,1,2
    assert_success
    # After the echo, nothing from the client: the server's probes go
    # unanswered, two of them, then its kernel gives up and resets.
    assert_line --regexp '^keepalive +probe +server .*Flags \[\.\], ack 15,'
    [[ $(grep -cE '^keepalive +probe +server ' <<<"$output") -eq 2 ]]
    assert_line --regexp '^reset +RST +server '
    refute_line --regexp '^close +FIN'
    assert_line --regexp '^server: read 192\.0\.2\.2:[0-9]+: ETIMEDOUT'
    assert_line --regexp '^closed 192\.0\.2\.2:[0-9]+ \(14 bytes\)$'
    # The client's side still believes in the connection; the server's
    # is gone.
    assert_line --regexp '^ESTAB .* 192\.0\.2\.2:[0-9]+ +192\.0\.2\.1:9007'
    refute_line --regexp '^ESTAB .* 192\.0\.2\.1:9007 +192\.0\.2\.2:'
    nothing_left
}

@test "netlab: a server that cannot start fails the run and leaves nothing behind" {
    netlab 01-basic-socket --no-such-option
    assert_failure 1
    assert_line --partial 'unknown option --no-such-option'
    assert_line 'netlab: the server did not start'
    assert_line --regexp '^netlab: torn down: netlab-[0-9]+-a netlab-[0-9]+-b deleted$'
    nothing_left
}

paused_or_exited() { log_has "$1" 'press Enter' || exited "$2"; }

@test "netlab: SIGTERM while the lab is up stops every process in it and deletes both namespaces" {
    local fifo=$BATS_TEST_TMPDIR/stdin out=$BATS_TEST_TMPDIR/out ns_a ns_b
    # A terminal nobody types into: the pause waits on it.
    mkfifo "$fifo"
    exec {keep}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$out" "$out" env BIN_DIR="$BIN_DIR" \
        NETLAB_NO_INSTALL=1 "$NETLAB" -i -o "$LAB" 02-fork-server
    local lab_pid=$SPAWNED_PID
    wait_for 60 paused_or_exited "$out" "$lab_pid" || true
    if log_has "$out" '^netlab: cannot run here'; then
        skip "$(grep -m1 '^netlab: cannot run here' "$out")"
    fi
    log_has "$out" 'press Enter' || fail "the lab did not come up: $(cat "$out")"
    ns_a=$(sed -nE 's/^  (netlab-[0-9]+-a): .*/\1/p' "$out")
    ns_b=${ns_a%-a}-b
    ip netns list | grep -qE "^$ns_a( |$)"
    ip netns list | grep -qE "^$ns_b( |$)"
    # The server (and tcpdump) are running inside the namespace.
    [[ -n $(ip netns pids "$ns_a") ]]

    kill -TERM "$lab_pid"
    wait_for 30 exited "$lab_pid"
    exec {keep}>&-
    run cat "$out"
    assert_line 'netlab: terminated'
    assert_line "netlab: torn down: $ns_a $ns_b deleted"
    nothing_left
}
