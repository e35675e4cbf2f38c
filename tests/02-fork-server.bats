#!/usr/bin/env bats
# tests/02-fork-server.bats -- what lesson 02 claims (../LESSONS, row 02):
# one process per client, so clients no longer wait for each other; the
# parent closes its copy of every connection and reaps every child, so
# neither descriptors nor zombies pile up, unless --no-reap shows what
# happens without the SIGCHLD handler.

load helpers

LESSON=02-fork-server

setup() {
    need_nc
}

# children_of PID: the pids of PID's children, zombies included.
children_of() { ps -o pid= --ppid "$1" | tr -d ' '; }
child_count_is() { [[ $(children_of "$1" | wc -l) -eq $2 ]]; }
no_child() { child_count_is "$1" 0; }

# zombie_count PID: how many of PID's children are zombies (state Z).
zombie_count() {
    local p n=0
    for p in $(children_of "$1"); do
        [[ $(proc_state "$p") == Z ]] && n=$((n + 1))
    done
    echo "$n"
}
zombie_count_is() { [[ $(zombie_count "$1") -eq $2 ]]; }

closed_count_is() { [[ $(log_count "$1" '^closed ') -eq $2 ]]; }

# hold_peer NAME MESSAGE: a peer that sends MESSAGE, reads its echo and
# stays connected; waits for the echo. Sets PEER_PID.
hold_peer() {
    spawn "$BATS_TEST_TMPDIR/$1.out" "$BATS_TEST_TMPDIR/$1.err" \
        "$PEER" hold 127.0.0.1 "$PORT" "$2"
    PEER_PID=$SPAWNED_PID
    wait_for 20 log_has "$BATS_TEST_TMPDIR/$1.out" '^echoed$'
}

@test "02-fork-server: two idle clients stay connected while a third is served at once" {
    start_server "$LESSON"
    hold_peer a "idle A"
    local a=$PEER_PID
    hold_peer b "idle B"
    local b=$PEER_PID

    # One child per connected client, each asleep in its own read().
    wait_for 10 child_count_is "$SERVER_PID" 2

    # With A and B connected and silent, C is echoed without waiting for
    # them; 01's server would hold C in the backlog until both had left.
    run timeout 10 nc -N 127.0.0.1 "$PORT" <<<"third, at once"
    assert_success
    assert_output "third, at once"
    wait_for 10 closed_count_is "$SERVER_LOG" 1

    # A and B are still connected and still served by their children.
    kill -0 "$a" "$b"
    refute log_has "$BATS_TEST_TMPDIR/a.out" 'by server$'
    refute log_has "$BATS_TEST_TMPDIR/b.out" 'by server$'
    wait_for 10 child_count_is "$SERVER_PID" 2
}

@test "02-fork-server: after 50 short clients, no zombie child and no extra descriptor in the parent" {
    start_server "$LESSON"
    local base i pid pids=()
    base=$(fd_count "$SERVER_PID")
    # Ten at a time, so that children exit together and their SIGCHLDs
    # merge into one: the handler's loop must reap them all the same.
    for i in $(seq 1 50); do
        printf 'client %d\n' "$i" >"$BATS_TEST_TMPDIR/in.$i"
        SPAWN_STDIN=$BATS_TEST_TMPDIR/in.$i spawn "$BATS_TEST_TMPDIR/out.$i" \
            /dev/null timeout "$NET_TIMEOUT" nc -N 127.0.0.1 "$PORT"
        pids+=("$SPAWNED_PID")
        if ((i % 10 == 0)); then
            for pid in "${pids[@]}"; do
                wait "$pid" || fail "an nc client failed"
            done
            pids=()
        fi
    done
    for i in $(seq 1 50); do
        cmp "$BATS_TEST_TMPDIR/in.$i" "$BATS_TEST_TMPDIR/out.$i"
    done
    wait_for 20 closed_count_is "$SERVER_LOG" 50
    # Every child has been reaped: none left, zombie or not.
    wait_for 10 no_child "$SERVER_PID"
    # And the parent closed its copy of every connection.
    wait_for 10 fd_count_is "$SERVER_PID" "$base"
}

@test "02-fork-server: SIGTERM with clients connected leaves no process behind, exit 0 and true stats" {
    start_server "$LESSON"
    run nc_echo "$PORT" <<<"done before"
    assert_success
    assert_output "done before"
    hold_peer a "seven.."
    hold_peer b "eleven....."
    hold_peer c "thirteen....."
    wait_for 10 child_count_is "$SERVER_PID" 3

    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    # 12 + 7 + 11 + 13 bytes, from four children, counted by the parent.
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 4 connections, echoed 43 bytes"
    local p
    for p in a b c; do
        wait_for 10 log_has "$BATS_TEST_TMPDIR/$p.out" '^(closed|reset) by server$'
    done
    # Each child logged its own connection's end before the parent's
    # stats line, and nothing of the server's session is left.
    [[ $(log_count "$SERVER_LOG" '^closed ') -eq 4 ]]
    run tail -n 1 "$SERVER_LOG"
    assert_output --regexp '^served '
    wait_for 10 group_gone "$SERVER_PID"
}

@test "02-fork-server: a child killed with SIGKILL still has its bytes counted" {
    start_server "$LESSON"
    hold_peer a "twelve bytes"
    wait_for 10 child_count_is "$SERVER_PID" 1
    local child
    child=$(children_of "$SERVER_PID")
    # The child dies before it can log or report anything; its count is
    # already in the shared page, added after each write.
    kill -KILL "$child"
    wait_for 10 log_has "$BATS_TEST_TMPDIR/a.out" '^closed by server$'
    wait_for 10 no_child "$SERVER_PID"
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 1 connections, echoed 12 bytes"
}

@test "02-fork-server: with --no-reap, finished children pile up as zombies" {
    start_server "$LESSON" --no-reap
    local i
    for i in 1 2 3; do
        run nc_echo "$PORT" <<<"client $i"
        assert_success
        assert_output "client $i"
    done
    wait_for 10 closed_count_is "$SERVER_LOG" 3
    # Every child has exited, and nobody waits for it: three zombies.
    wait_for 10 zombie_count_is "$SERVER_PID" 3
    run ps -o stat=,cmd= --ppid "$SERVER_PID"
    assert_line --regexp '^Z +\[server\] <defunct>$'
    # One more client, one more zombie; they never go away by themselves.
    run nc_echo "$PORT" <<<"client 4"
    assert_success
    wait_for 10 zombie_count_is "$SERVER_PID" 4
    child_count_is "$SERVER_PID" 4
    # At stop the parent waits for them all, and the stats stay true.
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 4 connections, echoed 36 bytes"
    wait_for 10 group_gone "$SERVER_PID"
}

@test "02-fork-server: without --no-reap, no finished child is ever left a zombie" {
    start_server "$LESSON"
    local i
    for i in 1 2 3 4; do
        run nc_echo "$PORT" <<<"client $i"
        assert_success
        assert_output "client $i"
        # After each client: its child has logged its end, then is reaped.
        wait_for 10 closed_count_is "$SERVER_LOG" "$i"
        wait_for 10 no_child "$SERVER_PID"
    done
    zombie_count_is "$SERVER_PID" 0
}

@test "02-fork-server: the client is two processes, and both end when the echo is complete" {
    start_server "$LESSON"
    local fifo=$BATS_TEST_TMPDIR/stdin fd
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$BATS_TEST_TMPDIR/c.out" "$BATS_TEST_TMPDIR/c.err" \
        "$(client_bin "$LESSON")" -p "$PORT"
    local client=$SPAWNED_PID
    echo "one line" >&"$fd"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/c.out" '^one line$'
    # The parent receives; its one child sends.
    wait_for 10 child_count_is "$client" 1
    exec {fd}>&-
    wait_for 20 exited "$client"
    local status=0
    wait "$client" || status=$?
    assert_equal "$status" 0
    run cat "$BATS_TEST_TMPDIR/c.err"
    assert_output ""
    wait_for 10 group_gone "$client"
}

@test "02-fork-server: the client exits 1 with one line when the server closes before the input ends" {
    start_server "$LESSON"
    local fifo=$BATS_TEST_TMPDIR/stdin fd
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$BATS_TEST_TMPDIR/c.out" "$BATS_TEST_TMPDIR/c.err" \
        "$(client_bin "$LESSON")" -p "$PORT"
    local client=$SPAWNED_PID
    echo "first" >&"$fd"
    wait_for 20 log_has "$BATS_TEST_TMPDIR/c.out" '^first$'
    # The server's child goes away while the client's sender still waits
    # for input: the receiver must stop the sender, and report once.
    kill -TERM "$(children_of "$SERVER_PID")"
    wait_for 20 exited "$client"
    local status=0
    wait "$client" || status=$?
    assert_equal "$status" 1
    run cat "$BATS_TEST_TMPDIR/c.err"
    assert_output "client: server closed the connection: echo cut short"
    wait_for 10 group_gone "$client"
    exec {fd}>&-
    # The stop handler the child inherited shut down its connection only,
    # not the listening socket it shares with the parent.
    run nc_echo "$PORT" <<<"still accepting"
    assert_success
    assert_output "still accepting"
}
