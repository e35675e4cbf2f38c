# tests/multiplexing.bash -- for the model tests of the lessons where one
# thread serves many clients (04 onwards): a crowd of connections from one
# peer process, and what to check about it.

# crowd_start N: starts "peer crowd" with N connections to $PORT. It holds
# them after its two rounds until crowd_leave. Sets CROWD_OUT.
crowd_start() {
    local fifo=$BATS_TEST_TMPDIR/crowd.in
    CROWD_OUT=$BATS_TEST_TMPDIR/crowd.out
    mkfifo "$fifo"
    exec {CROWD_FD}<>"$fifo"
    SPAWN_STDIN=$fifo spawn "$CROWD_OUT" "$BATS_TEST_TMPDIR/crowd.err" \
        "$PEER" crowd 127.0.0.1 "$PORT" "$1"
    CROWD_PID=$SPAWNED_PID
}

# assert_crowd_round R ECHOED CLOSED: the crowd's round R went so, and no
# echo was wrong.
assert_crowd_round() {
    run grep "^round $1: " "$CROWD_OUT"
    assert_output "round $1: $2 echoed, $3 closed, 0 wrong"
}

# crowd_expect N ECHOED: a crowd of N whose ECHOED connections echo in both
# rounds (the others were refused); it stays connected.
crowd_expect() {
    crowd_start "$1"
    wait_for 60 log_has "$CROWD_OUT" '^round 2: ' ||
        fail "the crowd did not finish: $(cat "$BATS_TEST_TMPDIR/crowd.err")"
    assert_crowd_round 1 "$2" $(($1 - $2))
    assert_crowd_round 2 "$2" 0
}

# crowd_leave: the crowd half-closes its connections and waits until the
# server has closed every one of them.
crowd_leave() {
    exec {CROWD_FD}>&-
    wait_for 60 log_has "$CROWD_OUT" '^done$'
    wait_for 20 exited "$CROWD_PID"
}

# threads_of PID N: the process has N threads.
threads_of() {
    local n
    n=$(threads "$1")
    [[ $n -eq $2 ]] || fail "$n threads, not $2"
}

# crowd_bytes N: what a crowd of N sends in its two rounds.
crowd_bytes() {
    local r i total=0
    for r in 1 2; do
        for ((i = 0; i < $1; i++)); do
            total=$((total + ${#r} + ${#i} + 15))
        done
    done
    echo "$total"
}

# crowd_past_fd_setsize LOG_REGEX: with the server's descriptor limit
# raised to 2048, a crowd of 1100: the connections whose descriptor is
# below FD_SETSIZE (1024) echo in both rounds, the others are closed at
# once with one log line each matching LOG_REGEX, and the server still
# serves a new client afterwards.
crowd_past_fd_setsize() {
    local n=1100 base echoed
    prlimit --pid "$SERVER_PID" --nofile=2048:
    base=$(fd_count "$SERVER_PID")
    crowd_start "$n"
    wait_for 60 log_has "$CROWD_OUT" '^round 2: '
    echoed=$((1024 - base))
    assert_crowd_round 1 "$echoed" $((n - echoed))
    assert_crowd_round 2 "$echoed" 0
    [[ $(log_count "$SERVER_LOG" "$1") -eq $((n - echoed)) ]] ||
        fail "not one log line per refused client"
    crowd_leave
    run nc_echo "$PORT" <<<"still serving"
    assert_output "still serving"
}

# --- the stop, where one thread waits for many ---------------------------
# The contract stops a server that waits for its first client, holds one
# idle client, or owes echo to one that does not read. These add what is
# particular to a loop that waits in pselect(), ppoll() or epoll_pwait().

# stats_line_matches CONNS BYTES: the server's last line, with or without
# a lesson's own counters after it.
stats_line_matches() {
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp "^served $1 connections, echoed $2 bytes(, .*)?\$"
}

# stop_with_crowd_held N: a crowd of N echoes in both rounds and stays
# connected, idle. SIGTERM: exit 0, a stats line that counts every byte
# although no connection was closed, nothing of the server left, and every
# client sees its connection end.
stop_with_crowd_held() {
    crowd_expect "$1" "$1"
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    stats_line_matches "$1" "$(crowd_bytes "$1")"
    wait_for 10 session_empty "$SERVER_PID"
    crowd_leave
}

accepted_count_is() { [[ $(log_count "$SERVER_LOG" '^accepted ') -eq $1 ]]; }

# stop_while_busy N: N clients send and read back as fast as they can, so
# that some socket is ready whenever the server asks. The wait returns
# ready sockets rather than take a pending signal, so a loop that relied
# on the wait alone would never stop: SIGTERM must still end it, with
# exit 0, while the clients go on sending (they send 4 GiB each: far more
# than the bound lets through).
stop_while_busy() {
    local i
    for ((i = 0; i < $1; i++)); do
        spawn /dev/null /dev/null sh -c \
            "head -c 4294967296 /dev/zero | nc -N 127.0.0.1 $PORT >/dev/null"
    done
    wait_for 20 accepted_count_is "$1"
    kill -TERM "$SERVER_PID"
    wait_for 20 exited "$SERVER_PID" || fail "still running 20 s after SIGTERM"
    SERVER_STATUS=0
    wait "$SERVER_PID" || SERVER_STATUS=$?
    assert_equal "$SERVER_STATUS" 0
    stats_line_matches "$1" '[1-9][0-9]*'
    wait_for 10 session_empty "$SERVER_PID"
}
