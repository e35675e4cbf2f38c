#!/usr/bin/env bats
# tests/bench.bats -- bench/echo-bench reports what it sees: zero errors and
# a rate against a good server, a mismatch against a server that flips a
# bit, a stall (within its timeout) against a server that never answers.
# These are behaviours, not speeds: no number here is compared with a
# threshold, except that a working server gives a rate above zero.

load helpers

BENCH=$BIN_DIR/bench/echo-bench
BAD_ECHO=$BIN_DIR/build/tools/bad-echo

# start_bad MODE: bad-echo in MODE; sets SERVER_PID and PORT like
# start_server.
start_bad() {
    SERVER_LOG=$BATS_TEST_TMPDIR/bad.log
    spawn /dev/null "$SERVER_LOG" "$BAD_ECHO" "$1"
    SERVER_PID=$SPAWNED_PID
    wait_for 20 log_has "$SERVER_LOG" '^listening on '
    PORT=$(sed -nE 's/^listening on .*:([0-9]+) \(pid [0-9]+\)$/\1/p' "$SERVER_LOG")
}

field() { # field NAME: a column of the CSV line in $output, by header name
    local i
    i=$(tr , '\n' <<<"$("$BENCH" --csv-header)" | grep -nx "$1" | cut -d: -f1)
    cut -d, -f"$i" <<<"$output"
}

@test "echo-bench: against 06-epoll-lt-et for a second, zero errors and a rate above zero" {
    start_server 06-epoll-lt-et -q
    run --separate-stderr timeout 60 "$BENCH" -p "$PORT" --pid "$SERVER_PID" \
        -c 20 -s 64 -P 4 -W 0.2 -d 1 --csv --label lt
    assert_success
    [[ $(field errors) == 0 ]]
    [[ $(field label) == lt ]]
    awk -v r="$(field msg_per_s)" 'BEGIN { exit !(r > 0) }'
    [[ $(field server_threads) == 1 && $(field server_procs) == 1 ]]
    # The CSV line has as many fields as its header.
    [[ $(tr -cd , <<<"$output" | wc -c) -eq $(tr -cd , <<<"$("$BENCH" --csv-header)" | wc -c) ]]
}

@test "echo-bench: each mode checks every byte and reports in words" {
    start_server 05-poll -q
    local mode name
    for mode in pp bulk churn; do
        run --separate-stderr timeout 60 "$BENCH" -p "$PORT" -m "$mode" \
            -c 4 -s 1000 -W 0.1 -d 0.5
        assert_success
        name=$mode
        [[ $mode == pp ]] && name=ping-pong
        assert_line --index 0 --partial ", $name"
        assert_line --regexp '^errors +0$'
        assert_line --regexp '^latency +p50 [0-9.]+ us'
    done
}

@test "echo-bench: --self measures its own echo loop" {
    run --separate-stderr timeout 60 "$BENCH" --self -c 5 -W 0.1 -d 0.5 --csv
    assert_success
    [[ $(field errors) == 0 ]]
    [[ $(field server_procs) == 1 ]]
    # The ceiling's server is gone afterwards.
    refute pgrep -P $$ -f echo-bench >/dev/null
}

@test "echo-bench: a server that flips a bit is caught as a mismatch, exit 1" {
    start_bad flip
    run --separate-stderr timeout 60 "$BENCH" -p "$PORT" -c 3 -s 64 -W 0 -d 0.5
    assert_failure 1
    assert_line --regexp '^errors +3, 3 mismatched$'
}

@test "echo-bench: a server that never answers is reported stalled within the timeout" {
    start_bad mute
    # -t 1: each connection is given up after a second without progress;
    # the bound on the whole run is the test's timeout, not a clock check.
    run --separate-stderr timeout 60 "$BENCH" -p "$PORT" -c 3 -W 0 -d 0.5 -t 1
    assert_failure 1
    assert_line --regexp '^errors +3, 3 stalled$'
}

@test "echo-bench: nobody listening is reported as refused, exit 1" {
    start_server 06-epoll-lt-et
    local port=$PORT
    stop_server
    run --separate-stderr timeout 60 "$BENCH" -p "$port" -c 2 -W 0 -d 0.2 -t 1
    assert_failure 1
    assert_line --regexp '^errors +2, 2 refused$'
}

@test "echo-bench: bad usage prints the usage on stderr and exits 2" {
    local args
    for args in "-c 0" "-m fast" "-d x" "stray" "-P"; do
        run --separate-stderr "$BENCH" $args
        [[ $status -eq 2 ]] || fail "echo-bench $args: exit $status"
        [[ $stderr == *"usage: echo-bench"* ]] || fail "echo-bench $args: no usage"
    done
    run --separate-stderr "$BENCH" -h
    assert_success
    assert_line --index 0 --partial "usage: echo-bench"
}

@test "echo-bench: -i opens idle connections the server holds, and counts them in the memory per connection" {
    start_server 06-epoll-lt-et -q
    run --separate-stderr timeout 60 "$BENCH" -p "$PORT" --pid "$SERVER_PID" \
        -c 2 -i 50 -W 0 -d 0.3 --csv
    assert_success
    [[ $(field errors) == 0 && $(field idle) == 50 && $(field conns) == 2 ]]
}

@test "echo-bench: --self is one thread that echoes bulk and ping-pong, its CPU counted" {
    local mode
    for mode in pp bulk; do
        run --separate-stderr timeout 60 "$BENCH" --self -m "$mode" -c 3 \
            -s 65536 -W 0 -d 0.3 --csv
        assert_success
        [[ $(field errors) == 0 && $(field server_threads) == 1 ]]
        awk -v c="$(field cpu_us_per_msg)" 'BEGIN { exit !(c > 0) }'
    done
}

@test "echo-bench: 02's CPU counts its children's" {
    start_server 02-fork-server -q
    run --separate-stderr timeout 60 "$BENCH" -p "$PORT" --pid "$SERVER_PID" \
        -c 3 -W 0 -d 0.3 --csv
    assert_success
    [[ $(field server_procs) == 4 ]]
    awk -v c="$(field cpu_us_per_msg)" 'BEGIN { exit !(c > 0) }'
}

# quoted_figures README: "figure<TAB>label|mode|conns|idle|size|inflight<TAB>
# column" for each figure of the README's results section marked with
# <!-- csv ROW COLUMN --> right after it.
quoted_figures() {
    sed -n '/^## The latest run/,/^## /p' "$1" |
        grep -oE '[0-9][0-9.]*<!-- csv [^>]* [a-z0-9_]+ -->' |
        sed -E 's/^([0-9.]+)<!-- csv (.*) ([a-z0-9_]+) -->$/\1\t\2\t\3/'
}

@test "bench/README: every figure of the results section is the named column of results.csv" {
    local readme=$ROOT/bench/README.md csv=$ROOT/bench/results/results.csv
    local figure row column want n=0 decimals
    while IFS=$'\t' read -r figure row column; do
        n=$((n + 1))
        want=$(awk -F, -v row="$row" -v col="$column" '
            NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
            $c["label"] "|" $c["mode"] "|" $c["conns"] "|" $c["idle"] "|" \
                $c["size"] "|" $c["inflight"] == row && (col in c) { print $c[col] }' "$csv")
        [[ -n $want ]] || fail "README quotes $figure as $row $column: no such row or column"
        decimals=0
        [[ $figure == *.* ]] && decimals=$((${#figure} - $(expr index "$figure" .)))
        want=$(awk -v v="$want" -v d="$decimals" 'BEGIN { printf "%.*f", d, v }')
        [[ $figure == "$want" ]] || fail "README quotes $figure for $row $column; results.csv says $want"
    done < <(quoted_figures "$readme")
    # The section quotes figures, and each is checked.
    ((n >= 10)) || fail "only $n marked figures in the results section"
}
