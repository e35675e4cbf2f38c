#!/usr/bin/env bats
# tests/06-epoll-lt-et.bats -- what lesson 06 claims (LESSONS.md, row 06):
# level- and edge-triggered epoll both serve thousands of clients; with a
# small read size, level triggering needs more epoll_wait() wake-ups for
# the same data; edge triggering that stops reading before EAGAIN stalls.
# (The whole contract runs in both modes: tests/06-epoll-lt-et.variants.)

load helpers
load multiplexing

LESSON=06-epoll-lt-et

setup() {
    need_nc
}

crowd_of_5000() {
    start_server "$LESSON" "$@"
    prlimit --pid "$SERVER_PID" --nofile=8192:
    crowd_expect 5000 5000
    threads_of "$SERVER_PID" 1
    crowd_leave
    wait_for 30 all_closed "$SERVER_LOG"
    stop_server
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served 5000 connections, echoed $(crowd_bytes 5000) bytes, "
}

@test "06-epoll-lt-et: 5000 concurrent clients echo correctly, level-triggered" {
    crowd_of_5000 -m lt
}

@test "06-epoll-lt-et: 5000 concurrent clients echo correctly, edge-triggered" {
    crowd_of_5000 -m et
}

# transfer MODE: sends the same 64 KiB through a server in MODE with 16-byte
# reads; sets WAITS and READS from its stats line.
transfer() {
    start_server "$LESSON" -m "$1" -b 16 -q
    nc_echo "$PORT" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out.$1"
    cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out.$1"
    stop_server
    WAITS=$(stats_counter "epoll_wait calls")
    READS=$(stats_counter reads)
    echo "# $1: $WAITS epoll_wait calls, $READS reads" >&3
}

@test "06-epoll-lt-et: with -b 16, lt needs more epoll_wait calls than et for the same data" {
    local size=$((64 << 10)) lt_waits lt_reads
    random_file "$BATS_TEST_TMPDIR/in" "$size"
    transfer lt
    lt_waits=$WAITS lt_reads=$READS
    transfer et
    # Level-triggered, each report is answered by one read of 16 bytes at
    # most: at least size/16 reads, each after an epoll_wait.
    ((lt_reads >= size / 16))
    ((lt_waits >= size / 16))
    # Edge-triggered, one report is followed by reads until EAGAIN.
    ((WAITS < lt_waits)) || fail "et: $WAITS epoll_wait calls, lt: $lt_waits"
    ((READS >= size / 16))
}

# recvq PORT PEERPORT: unread bytes on the server's side of a connection.
recvq() { ss -Htn state established "( sport = :$1 and dport = :$2 )" | awk '{ print $1 }'; }
stalled_with() {
    [[ $(recvq "$1" "$2") == "$3" && $(proc_state "$SERVER_PID") == S ]]
}

# send_and_watch MODE: a client sends 100 bytes in one write to a server
# reading 16 at a time, keeps its connection open, and the server's
# Recv-Q for it is watched. Sets FEED (the client's stdin) and CPORT.
send_and_watch() {
    start_server "$LESSON" -m "$1" -b 16
    local fifo=$BATS_TEST_TMPDIR/stdin
    mkfifo "$fifo"
    exec {FEED}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$BATS_TEST_TMPDIR/nc.out" "$BATS_TEST_TMPDIR/nc.err" \
        nc -N -v 127.0.0.1 "$PORT"
    wait_for 20 log_has "$SERVER_LOG" '^accepted '
    CPORT=$(sed -nE 's/^accepted 127\.0\.0\.1:([0-9]+)$/\1/p' "$SERVER_LOG")
    head -c 100 /dev/zero | tr '\0' x >&"$FEED"
}
out_size_is() { [[ $(stat -c %s "$BATS_TEST_TMPDIR/nc.out") -eq $1 ]]; }

@test "06-epoll-lt-et: -m et-once stalls: one read per edge leaves data unread, unreported" {
    send_and_watch et-once
    # One edge, one 16-byte read: 84 bytes stay unread while the server
    # sleeps in epoll_wait, which will not report them again.
    wait_for 20 stalled_with "$PORT" "$CPORT" 84
    wait_for 20 out_size_is 16
    # Only new data makes a new edge, and it frees one more read's worth.
    printf y >&"$FEED"
    wait_for 20 stalled_with "$PORT" "$CPORT" 69
    wait_for 20 out_size_is 32
    # The stop does not wait for the stalled data: exit 0, and the stats
    # line counts the open connection's two reads.
    stop_server
    assert_equal "$SERVER_STATUS" 0
    [[ $(stats_counter reads) -eq 2 ]] || fail "reads: $(stats_counter reads)"
}

@test "06-epoll-lt-et: neither -m et nor -m lt ever stalls on the same input" {
    local mode
    for mode in et lt; do
        send_and_watch "$mode"
        wait_for 20 out_size_is 100
        wait_for 20 stalled_with "$PORT" "$CPORT" 0
        printf y >&"$FEED"
        wait_for 20 out_size_is 101
        exec {FEED}>&-
        stop_server
        rm -f "$BATS_TEST_TMPDIR/stdin"
    done
}

established_on() { [[ -n $(ss -Htn state established "( sport = :$1 )") ]]; }

@test "06-epoll-lt-et: edge-triggered, a client that keeps its socket full does not starve the others" {
    start_server "$LESSON" -m et -b 16 -q
    # 64 MiB in 16-byte reads is millions of reads: if one report led to
    # reads until EAGAIN with no turns, the hello below would wait for all
    # of them, and the big transfer would be over before the hello.
    SPAWN_STDIN=/dev/zero spawn /dev/null /dev/null \
        sh -c "head -c 67108864 | nc -N 127.0.0.1 $PORT | wc -c"
    local big=$SPAWNED_PID
    wait_for 20 established_on "$PORT"
    run nc_echo "$PORT" <<<"hello"
    assert_output "hello"
    ! exited "$big" || fail "the big transfer ended before the hello was served"
}

@test "06-epoll-lt-et: SIGTERM with 100 idle clients, lt and et: exit 0, every byte counted" {
    local mode
    for mode in lt et; do
        start_server "$LESSON" -m "$mode"
        stop_with_crowd_held 100
        rm -f "$BATS_TEST_TMPDIR/crowd.in"
    done
}

@test "06-epoll-lt-et: SIGTERM while 16 clients keep sockets ready, lt and et: exit 0 all the same" {
    local mode
    for mode in lt et; do
        start_server "$LESSON" -m "$mode" -b 16
        stop_while_busy 16
    done
}
