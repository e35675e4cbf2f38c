#!/usr/bin/env bats
# tests/10-reactor-per-thread.bats -- what lesson 10 claims (LESSONS.md, row
# 10): -t N threads each run a reactor of their own; clients reach them by
# a hand-off from one acceptor thread, or through the kernel (-A reuseport:
# a listening socket per loop); either way connections spread over every
# loop, a connection is served by one thread from accept to close, the
# threads are started once, and the echo path takes no lock (no futex).
# (The whole contract runs with -A reuseport too: tests/10-reactor-per-thread.variants.)

load helpers
load multiplexing

LESSON=10-reactor-per-thread

setup() {
    need_nc
}

# lesson_threads N DISPATCH: the thread count of a server started with
# -t N: N loops, plus the acceptor in handoff, plus TSan's own thread.
lesson_threads() {
    local n=$1
    [[ $2 == handoff ]] && n=$((n + 1))
    [[ ${SANITIZER:-} == tsan ]] && n=$((n + 1))
    echo "$n"
}
threads_are() { [[ $(threads "$1") -eq $2 ]]; }

# per_thread: the stats line's "by thread 3/6 4/8" as "3/6 4/8".
per_thread() {
    sed -nE 's/^served .*, by thread ([0-9/ ]+)$/\1/p' "$SERVER_LOG"
}

# spread_over N DISPATCH: a crowd of 20 x N connections, two messages
# each, then the stop. Every loop got some of them, and each loop handled
# exactly two messages per connection it counts: a connection's messages
# were all handled by the loop that took it.
spread_over() {
    local n=$1 clients=$((20 * $1)) pair conns msgs sum=0 pairs
    start_server "$LESSON" -t "$n" -A "$2" -q
    crowd_expect "$clients" "$clients"
    crowd_leave
    stop_server
    assert_equal "$SERVER_STATUS" 0
    read -ra pairs <<<"$(per_thread)"
    echo "# $2, connections/messages by thread: ${pairs[*]}" >&3
    assert_equal "${#pairs[@]}" "$n"
    for pair in "${pairs[@]}"; do
        conns=${pair%/*} msgs=${pair#*/}
        ((conns > 0)) || fail "a loop got no connection: ${pairs[*]}"
        assert_equal "$msgs" $((2 * conns))
        sum=$((sum + conns))
    done
    assert_equal "$sum" "$clients"
}

@test "10-reactor-per-thread: handoff: 80 connections reach all 4 loops, each connection's messages handled by its own loop" {
    spread_over 4 handoff
}

@test "10-reactor-per-thread: reuseport: 80 connections reach all 4 loops through the kernel's hash, each handled by its own loop" {
    spread_over 4 reuseport
}

@test "10-reactor-per-thread: reuseport: one listening socket per loop on one port" {
    start_server "$LESSON" -t 3 -A reuseport
    run bash -c "ss -Htlnp 'sport = :$PORT' | grep -c 'pid=$SERVER_PID,'"
    assert_output 3
}

# thread_count_holds N DISPATCH: the count before, while a crowd of 60 is
# connected, and after it has gone.
thread_count_holds() {
    local expected
    expected=$(lesson_threads "$1" "$2")
    start_server "$LESSON" -t "$1" -A "$2" -q
    wait_for 20 threads_are "$SERVER_PID" "$expected"
    crowd_expect 60 60
    threads_of "$SERVER_PID" "$expected"
    crowd_leave
    threads_of "$SERVER_PID" "$expected"
}

@test "10-reactor-per-thread: the thread count is N + 1 in handoff, whatever the clients" {
    thread_count_holds 3 handoff
}

@test "10-reactor-per-thread: the thread count is N in reuseport, whatever the clients" {
    thread_count_holds 3 reuseport
}

# --- one thread per connection's events, and no lock on the echo path ----

strace_works() { strace -o /dev/null true >/dev/null 2>&1; }
# all_traced PID: every thread of PID has a tracer.
all_traced() {
    ! grep -q '^TracerPid:[[:space:]]*0$' /proc/"$1"/task/*/status
}

# echo_round R: every held connection sends "round R" and reads it back.
echo_round() {
    local fd line
    for fd in "${HELD[@]}"; do echo "round $1" >&"$fd"; done
    for fd in "${HELD[@]}"; do
        read -r -t "$NET_TIMEOUT" line <&"$fd" || return 1
        [[ $line == "round $1" ]] || return 1
    done
}

# traced_rounds DISPATCH: 8 connections are opened and spread over two
# loops, then strace attaches to every thread and five rounds of echo run
# on them. Sets TRACE (strace -f's output: "TID call(...)").
traced_rounds() {
    command -v strace >/dev/null || skip "strace not installed"
    strace_works || skip "strace cannot trace here (ptrace not permitted)"
    local i fd r
    start_server "$LESSON" -t 2 -A "$1" -q
    HELD=()
    for i in $(seq 1 8); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        HELD+=("$fd")
    done
    echo_round 0 || fail "no echo before the trace"
    TRACE=$BATS_TEST_TMPDIR/trace
    spawn /dev/null "$BATS_TEST_TMPDIR/strace.err" strace -f -qq \
        -e trace=read,write,futex -o "$TRACE" -p "$SERVER_PID"
    local tracer=$SPAWNED_PID
    wait_for 20 all_traced "$SERVER_PID"
    for r in 1 2 3 4 5; do
        echo_round "$r" || fail "round $r did not come back"
    done
    kill -INT "$tracer"
    wait_for 20 exited "$tracer"
    for fd in "${HELD[@]}"; do exec {fd}>&-; done
}

# readers_per_fd: "FD TIDS" for every descriptor read in the trace.
readers_per_fd() {
    sed -nE 's/^([0-9]+) +read\(([0-9]+),.*/\2 \1/p' "$TRACE" | sort -u |
        awk '{ n[$1]++ } END { for (fd in n) print fd, n[fd] }'
}

# one_thread_no_futex: each connection was read by one thread alone, all
# five rounds; no futex call at all.
one_thread_no_futex() {
    local readers
    readers=$(readers_per_fd)
    echo "# descriptor, threads that read it: $(tr '\n' ';' <<<"$readers")" >&3
    [[ $(wc -l <<<"$readers") -ge 8 ]] || fail "not every connection was read: $readers"
    awk '$2 != 1 { exit 1 }' <<<"$readers" || fail "a descriptor read by two threads: $readers"
    # Both loops served some of them.
    [[ $(sed -nE 's/^([0-9]+) +read\(.*/\1/p' "$TRACE" | sort -u | wc -l) -eq 2 ]] ||
        fail "not both loops read: $(cut -c1-80 "$TRACE" | head -20)"
    if grep -q ' futex(' "$TRACE"; then
        fail "futex on the echo path: $(grep ' futex(' "$TRACE" | head -5)"
    fi
}

@test "10-reactor-per-thread: handoff: once spread, each connection is read by one thread and the echo path makes no futex call" {
    [[ ${SANITIZER:-} != tsan ]] || skip "TSan's runtime takes locks of its own"
    traced_rounds handoff
    one_thread_no_futex
}

@test "10-reactor-per-thread: reuseport: once spread, each connection is read by one thread and the echo path makes no futex call" {
    [[ ${SANITIZER:-} != tsan ]] || skip "TSan's runtime takes locks of its own"
    traced_rounds reuseport
    one_thread_no_futex
}

@test "10-reactor-per-thread: the stop: the stats line counts connections and messages per loop, and they add up" {
    start_server "$LESSON" -t 3
    local name
    for name in a b c d; do
        spawn "$BATS_TEST_TMPDIR/$name.out" "$BATS_TEST_TMPDIR/$name.err" \
            "$PEER" hold 127.0.0.1 "$PORT" "held by $name"
        wait_for 20 log_has "$BATS_TEST_TMPDIR/$name.out" '^echoed$'
    done
    stop_server TERM
    assert_equal "$SERVER_STATUS" 0
    run grep '^served ' "$SERVER_LOG"
    assert_output --regexp '^served 4 connections, echoed 36 bytes, by thread [0-9]+/[0-9]+( [0-9]+/[0-9]+){2}$'
    # Round-robin: 2, 1 and 1 connections, one message each.
    run per_thread
    assert_output "2/2 1/1 1/1"
    for name in a b c d; do
        wait_for 20 log_has "$BATS_TEST_TMPDIR/$name.out" '^(closed|reset) by server$'
    done
}
