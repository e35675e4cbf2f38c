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
