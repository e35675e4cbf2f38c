#!/usr/bin/env bats
# tests/02-fork-server.bats -- what lesson 02 claims (docs/course-map.md):
# one process per client, so clients no longer wait for each other; the
# parent closes its copy of every connection and reaps every child, so
# neither descriptors nor zombies pile up, unless --no-reap shows what
# happens without the SIGCHLD handler; at the stop it ends and reaps every
# child before it prints the totals and exits.

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

# gone PID...: no process has any of these pids any more, not even a
# zombie: each was reaped. (Checked right after the server's exit, so the
# kernel has had no time to give a pid to another process.)
gone() {
    local p
    for p in "$@"; do
        [[ ! -e /proc/$p ]] || return 1
    done
}

@test "02-fork-server: SIGTERM while children serve idle clients: exit 0, true stats, every child reaped" {
    start_server "$LESSON"
    run nc_echo "$PORT" <<<"done before"
    assert_success
    assert_output "done before"
    hold_peer a "seven.."
    hold_peer b "eleven....."
    hold_peer c "thirteen....."
    wait_for 10 child_count_is "$SERVER_PID" 3
    local kids
    mapfile -t kids < <(children_of "$SERVER_PID")

    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    # 12 + 7 + 11 + 13 bytes, echoed by four children, counted in the
    # shared page; the stats line is the server's last, and its only one:
    # no child ran the parent's stop handler.
    run tail -n 1 "$SERVER_LOG"
    assert_output "served 4 connections, echoed 43 bytes"
    [[ $(log_count "$SERVER_LOG" '^served ') -eq 1 ]]
    # The parent killed and reaped every child before it exited: at the
    # moment it is gone, so are they, none left running or a zombie.
    gone "${kids[@]}"
    group_gone "$SERVER_PID"
    # Each child's exit closed its connection: no client is left hanging.
    local p
    for p in a b c; do
        wait_for 10 log_has "$BATS_TEST_TMPDIR/$p.out" '^(closed|reset) by server$'
    done
}

# queues LOCALPORT PEERPORT: Recv-Q and Send-Q of one established socket.
queues() {
    ss -Htn state established "( sport = :$1 and dport = :$2 )" |
        awk '{ print $1, $2 }'
}
output_held() { (($(queues "$1" "$2" | awk '{ print $2 }') > 0)); }

@test "02-fork-server: SIGTERM while a child is blocked writing to a client that does not read" {
    start_server "$LESSON"
    spawn "$BATS_TEST_TMPDIR/flood.out" "$BATS_TEST_TMPDIR/flood.err" \
        "$PEER" flood 127.0.0.1 "$PORT" $((64 << 20))
    wait_for 20 log_has "$BATS_TEST_TMPDIR/flood.out" '^connected '
    local fport kid
    fport=$(sed -n 's/^connected //p' "$BATS_TEST_TMPDIR/flood.out")
    # Echo the client will not take fills the child's send buffer: the
    # child sleeps in write(), in writen().
    wait_for 30 output_held "$PORT" "$fport"
    wait_for 10 child_count_is "$SERVER_PID" 1
    kid=$(children_of "$SERVER_PID")
    wait_for 10 sleeping "$kid"

    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run tail -n 1 "$SERVER_LOG"
    assert_output --regexp '^served 1 connections, echoed [1-9][0-9]* bytes$'
    # SIGTERM's default action ended the child inside its write().
    gone "$kid"
    refute log_has "$SERVER_LOG" '^closed '
}

@test "02-fork-server: Ctrl-C, SIGINT to the whole process group, stops parent and children alike" {
    start_server "$LESSON"
    hold_peer a "twelve bytes"
    hold_peer b "abc"
    wait_for 10 child_count_is "$SERVER_PID" 2
    local kids
    mapfile -t kids < <(children_of "$SERVER_PID")
    # What a terminal does: every process of the foreground group gets it.
    # The children die of it (default action); the parent reaps them.
    kill -INT -- "-$SERVER_PID"
    wait_for 20 exited "$SERVER_PID"
    local status=0
    wait "$SERVER_PID" || status=$?
    assert_equal "$status" 0
    run tail -n 1 "$SERVER_LOG"
    assert_output "served 2 connections, echoed 15 bytes"
    gone "${kids[@]}"
}

@test "02-fork-server: SIGTERM to one child ends that child only" {
    start_server "$LESSON"
    hold_peer a "for A"
    wait_for 10 child_count_is "$SERVER_PID" 1
    local kid
    kid=$(children_of "$SERVER_PID")
    hold_peer b "for B"
    wait_for 10 child_count_is "$SERVER_PID" 2
    # The child has SIGTERM's default action back, not the parent's stop
    # handler: it dies, its client sees the end, and it neither prints a
    # stats line nor touches its siblings.
    kill -TERM "$kid"
    wait_for 10 log_has "$BATS_TEST_TMPDIR/a.out" '^(closed|reset) by server$'
    wait_for 10 child_count_is "$SERVER_PID" 1
    refute log_has "$SERVER_LOG" '^served '
    refute log_has "$BATS_TEST_TMPDIR/b.out" 'by server$'
    run nc_echo "$PORT" <<<"still accepting"
    assert_success
    assert_output "still accepting"
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
    local kids
    mapfile -t kids < <(children_of "$SERVER_PID")
    # At stop the parent waits for them all, and the stats stay true.
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output "served 4 connections, echoed 36 bytes"
    gone "${kids[@]}"
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
    # The child died alone: the parent still accepts.
    run nc_echo "$PORT" <<<"still accepting"
    assert_success
    assert_output "still accepting"
}
