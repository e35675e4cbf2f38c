#!/usr/bin/env bats
# tests/11-proactor.bats -- what lesson 11 claims (LESSONS.md, row 11): the
# completion model through io_uring. Once listening, the server makes no
# read, write, recv, send, accept or poll call of its own: the kernel does
# the I/O, and io_uring_enter() is the only call per message, several
# operations per call. One thread serves a thousand clients; a client that
# never reads costs one buffer; the stop is one more completion. Where
# io_uring cannot be used, the server says why in one line and exits 1:
# a preloaded library (tests/tools/no-uring.c) refuses io_uring_setup to
# prove it, and the other tests skip with the server's own line.

load helpers
load multiplexing

LESSON=11-proactor

setup_file() {
    UNAVAILABLE=$(unavailable_reason "$LESSON")
    export UNAVAILABLE
}

setup() {
    need_nc
}

need_uring() { skip_if_unavailable; }

@test "11-proactor: where io_uring_setup is refused (EPERM, as by seccomp), one line says why, exit 1" {
    local lib=$BIN_DIR/build/tools/no-uring.so
    [[ -f $lib ]] || fail "$lib is not built (make test-programs)"
    # An ASan build links its runtime statically (clang) or first (gcc):
    # the preloaded library then comes before it, which ASan would refuse.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        LD_PRELOAD=$lib run --separate-stderr \
        timeout "$NET_TIMEOUT" "$(server_bin "$LESSON")" -p 0
    assert_equal "$status" 1
    assert_equal "$(wc -l <<<"$stderr")" 1
    assert_regex "$stderr" '^server: io_uring cannot be used here, disabled by sysctl kernel\.io_uring_disabled, or refused by a seccomp filter: EPERM \(Operation not permitted\)$'
}

# strace_works: ptrace may be refused (a container); asked once.
strace_works() { strace -o /dev/null true >/dev/null 2>&1; }

# calls_once_listening TRACE: "COUNT NAME" for each system call the trace
# (strace -f -o) shows after the server's "listening on" line and before
# its stats line. (The stop signal is blocked and taken from the
# signalfd: strace shows no delivery of it.)
calls_once_listening() {
    awk '/listening on/ { on = 1; next } /"served [0-9]+ connections/ { exit } on' "$1" |
        sed -nE 's/^[0-9]+ +(<\.\.\. )?([a-z0-9_]+)(\(| resumed>).*/\2/p' |
        sort | uniq -c
}

@test "11-proactor: once listening, io_uring_enter is its only I/O call: no read, write, recv, send, accept or poll" {
    need_uring
    command -v strace >/dev/null || skip "strace not installed"
    strace_works || skip "strace cannot trace here (ptrace not permitted)"
    local trace=$BATS_TEST_TMPDIR/trace pid i calls clients=()
    # Under strace from the start, so that nothing is missed; the server
    # is then strace's child, its pid the one its listening line gives.
    # (An ASan build's leak check cannot run under ptrace: it is left out
    # of this one run.)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        SERVER_WRAPPER="strace -f -qq -o $trace --" start_server "$LESSON" -q
    pid=$(sed -nE 's/^listening on .* \(pid ([0-9]+)\)$/\1/p' "$SERVER_LOG")
    random_file "$BATS_TEST_TMPDIR/in" $((256 << 10))
    for i in 1 2 3 4 5 6; do
        timeout "$NET_TIMEOUT" "$(client_bin "$LESSON")" -p "$PORT" \
            <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out.$i" &
        clients+=($!)
    done
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out.nc"
    wait "${clients[@]}"
    for i in 1 2 3 4 5 6 nc; do
        cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out.$i"
    done
    wait_for 20 quiescent "$pid"
    kill -TERM "$pid"
    wait_for 20 exited "$SERVER_PID" # strace, once its tracee is gone
    calls=$(calls_once_listening "$trace")
    echo "# calls once listening:" $calls >&3
    # The I/O went through the rings: no call of the readiness models.
    refute_regex "$calls" ' (read|write|readv|writev|recv[a-z]*|send[a-z]*|accept4?|poll|ppoll|select|pselect6|epoll_[a-z_]+)$'
    # And nothing else but closing sockets and the allocator's memory.
    run awk '$2 !~ /^(io_uring_enter|close|mmap|munmap|brk)$/' <<<"$calls"
    assert_output ""
    # Fewer io_uring_enter calls than the receives and sends they carried.
    local enters
    enters=$(awk '$2 == "io_uring_enter" { print $1 }' <<<"$calls")
    ((enters > 0)) || fail "no io_uring_enter"
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served 7 connections, echoed $((7 * (256 << 10))) bytes, "
}

@test "11-proactor: 1000 concurrent clients echo correctly, on one thread" {
    need_uring
    start_server "$LESSON" -q
    prlimit --pid "$SERVER_PID" --nofile=4096:
    local base
    base=$(fd_count "$SERVER_PID")
    crowd_expect 1000 1000
    # No io-wq worker either (iou-wrk-N, a thread of the server's): a
    # socket that is not ready is polled, not read by a blocked worker.
    threads_of "$SERVER_PID" 1
    (($(fd_count "$SERVER_PID") == base + 1000))
    crowd_leave
    wait_for 20 fd_count_is "$SERVER_PID" "$base"
    stop_server
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served 1000 connections, echoed $(crowd_bytes 1000) bytes, "
}

@test "11-proactor: one io_uring_enter carries many operations: fewer calls than completions" {
    need_uring
    start_server "$LESSON" -q
    crowd_expect 200 200
    crowd_leave
    stop_server
    local submitted completions enters
    submitted=$(stats_counter "ops submitted")
    completions=$(stats_counter completions)
    enters=$(stats_counter "io_uring_enter calls")
    echo "# $submitted ops submitted, $completions completions, $enters io_uring_enter calls" >&3
    # 200 accepts, then per client and round a receive and a send, then
    # the receive of the half-close: at least 1200 operations.
    ((submitted >= 1200 && completions >= 1200)) ||
        fail "$submitted submitted, $completions completions"
    # One call per operation would be 1200; the batches make it far less.
    ((2 * enters < completions)) ||
        fail "$enters io_uring_enter calls for $completions completions"
}

# queues LOCALPORT PEERPORT: Recv-Q and Send-Q of one established socket.
queues() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1, $2 }'
}
# send_held PORT PEERPORT: the server's side holds echo the client has not
# taken: its one send is in flight, waiting for room.
send_held() {
    local srv
    read -ra srv <<<"$(queues "$1" "$2")"
    ((${srv[1]:-0} > 0))
}

@test "11-proactor: 20 clients that never read cost one buffer each, and stall nobody" {
    need_uring
    start_server "$LESSON" -q
    local i base fport
    base=$(rss_kb "$SERVER_PID")
    for i in $(seq 1 20); do
        spawn "$BATS_TEST_TMPDIR/flood.$i" /dev/null \
            "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    done
    for i in $(seq 1 20); do
        wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.$i" '^connected '
        fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.$i")
        wait_for 30 send_held "$PORT" "$fport"
    done
    # A crowd is served in full meanwhile.
    crowd_expect 100 100
    crowd_leave
    # Each flood holds its one buffer of 16 KiB, held by a send that waits
    # in the kernel; nothing else is read from it.
    local grew=$(($(rss_kb "$SERVER_PID") - base))
    echo "# RSS grew by $grew KiB with 20 floods held" >&3
    ((grew < 2048)) || fail "the server's RSS grew by $grew KiB"
    for i in $(seq 1 20); do
        refute log_has "$BATS_TEST_TMPDIR/flood.$i" '^sent '
    done
    kill -0 "$SERVER_PID"
}

@test "11-proactor: SIGTERM with 100 idle clients: exit 0, every byte counted, nothing left" {
    need_uring
    start_server "$LESSON"
    stop_with_crowd_held 100
}

@test "11-proactor: SIGTERM while 16 clients keep completions coming: exit 0 all the same" {
    need_uring
    start_server "$LESSON"
    stop_while_busy 16
}
