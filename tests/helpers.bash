# tests/helpers.bash -- what every bats file here loads.
#
# Servers start in their own session (setsid), on port 0, and each test
# reads the port from the server's "listening on" line. Everything a test
# starts goes through spawn(), and teardown stops every process group that
# spawn() made, even when the test failed. Waiting is always for an event
# (a log line, a process state), polled and bounded by a deadline.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
# BIN_DIR: where the programs were built; sanitizer runs point it elsewhere.
BIN_DIR=${BIN_DIR:-.}
[[ $BIN_DIR == /* ]] || BIN_DIR=$ROOT/$BIN_DIR
PEER=$BIN_DIR/build/tools/peer
POLL_INTERVAL=0.02 # how often wait_for looks again
NET_TIMEOUT=60     # bound on any single network command

# The lessons present, in order.
all_lessons() {
    local d
    for d in "$ROOT"/[0-9][0-9]-*/; do
        d=${d%/}
        echo "${d##*/}"
    done
}

# The contract tests run against $LESSON (tests/run sets it).
LESSON=${LESSON:-$(all_lessons | head -n 1)}

# LESSON_BIN: a folder that holds $LESSON's server and client, wherever
# they were built and whatever their folder is called (scripts/grade sets
# it); the other lessons' programs stay under BIN_DIR.
server_bin() { echo "$(lesson_bin_dir "$1")/server"; }
client_bin() { echo "$(lesson_bin_dir "$1")/client"; }
lesson_bin_dir() {
    if [[ -n ${LESSON_BIN:-} && $1 == "$LESSON" ]]; then
        echo "$LESSON_BIN"
    else
        echo "$BIN_DIR/$1"
    fi
}

# wait_for SECONDS COMMAND...: runs COMMAND until it succeeds; fails after
# SECONDS. The command is the event; the interval is only how often we look.
# A test's server that died unasked also ends the wait, at once: nothing
# more will come from it (a server a test stops prints its stats line
# first; one that crashed or quit on an error does not).
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        if server_died_unasked; then
            echo "# gave up waiting for: $*: the server died; its last lines:" >&2
            tail -n 3 "$SERVER_LOG" | sed 's/^/#   /' >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "# gave up after waiting for: $*" >&2
            return 1
        fi
        sleep "$POLL_INTERVAL"
    done
}

# server_died_unasked: the server start_server started has exited without
# its stats line.
server_died_unasked() {
    [[ -n ${SERVER_PID:-} && -n ${SERVER_LOG:-} ]] && exited "$SERVER_PID" &&
        ! log_has "$SERVER_LOG" '^served '
}

# log_has FILE REGEX: the file has a line matching the extended regex.
log_has() { grep -qE -- "$2" "$1" 2>/dev/null; }

# log_count FILE REGEX: how many lines match.
log_count() { grep -cE -- "$2" "$1" 2>/dev/null || true; }

# Polling is cheap when it starts no process. bats runs a trap before
# every command of a test, so a loop in bash is not cheap either: one
# process is read with bash alone, many with one pgrep.

# read_stat FILE: sets STAT to the fields of a /proc .../stat file after
# the command's name (state, ppid, pgrp, session, ...), the name being
# the one field that may hold spaces; empty if the process is gone.
read_stat() {
    STAT=
    { read -r STAT <"$1"; } 2>/dev/null || true
    STAT=${STAT##*) }
}

# proc_state PID: R, S, Z ... or nothing if the process is gone.
proc_state() {
    read_stat "/proc/$1/stat"
    echo "${STAT%% *}"
}

# live_procs -g|-s ID...: the processes, zombies left out, whose process
# group (-g) or session (-s) is one of the IDs. pgrep's own failure (not
# "none found") fails it: teardown must not take it for "all gone".
LIVE_STATES=R,S,D,T,t,W,P,I # every state but Z (and X, gone)
live_procs() {
    local how=$1 id ids= status=0
    shift
    # Never 0 nor nothing: to pgrep, 0 is its own group or session.
    for id in "$@"; do
        [[ $id =~ ^[1-9][0-9]*$ ]] && ids+=${ids:+,}$id
    done
    [[ -n $ids ]] || return 0
    pgrep -r "$LIVE_STATES" "$how" "$ids" || status=$?
    ((status <= 1))
}

# live_in_group PGID: the processes of the group that are not zombies.
live_in_group() { live_procs -g "$1"; }

# exited PID: the process has finished (gone, or a zombie waiting for us).
exited() {
    read_stat "/proc/$1/stat"
    [[ -z $STAT || $STAT == Z* ]]
}

_spawned=()

# spawn OUT ERR COMMAND...: starts COMMAND in the background in a session
# of its own, stdin from $SPAWN_STDIN (default /dev/null). It inherits no
# descriptor but those three: bats waits for whoever holds its fd 3, and a
# server's descriptor count and numbers must be its own. Sets SPAWNED_PID,
# which is also the process group's id.
spawn() {
    local out=$1 err=$2
    shift 2
    (
        close_inherited_fds
        exec setsid "$@"
    ) <"${SPAWN_STDIN:-/dev/null}" >"$out" 2>"$err" &
    SPAWNED_PID=$!
    _spawned+=("$SPAWNED_PID")
}

close_inherited_fds() {
    local path fd
    # The subshell's own descriptors ($BASHPID, not $$: that is the test's
    # shell), read by a glob, with no process started to list them.
    for path in /proc/"$BASHPID"/fd/*; do
        fd=${path##*/}
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
    done
    return 0
}

_nservers=0

# start_server LESSON [ARGS...]: starts LESSON's server with -p 0, then
# $SERVER_ARGS, then ARGS (which may override -H and -p), and waits for
# its "listening on" line. Sets SERVER_PID, PORT, SERVER_ADDR (as printed)
# and SERVER_LOG (the server's stderr). $SERVER_WRAPPER, if set, is a
# command that execs the server ("prlimit --nofile=12 --"): the pid stays.
start_server() {
    local lesson=$1 line extra=() wrap=()
    shift
    read -ra extra <<<"${SERVER_ARGS:-}"
    read -ra wrap <<<"${SERVER_WRAPPER:-}"
    _nservers=$((_nservers + 1))
    SERVER_LOG=$BATS_TEST_TMPDIR/server$_nservers.log
    spawn "$BATS_TEST_TMPDIR/server$_nservers.out" "$SERVER_LOG" \
        "${wrap[@]}" "$(server_bin "$lesson")" -p 0 "${extra[@]}" "$@"
    SERVER_PID=$SPAWNED_PID
    wait_for 30 listening_or_exited "$SERVER_PID" "$SERVER_LOG" || true
    if ! log_has "$SERVER_LOG" '^listening on '; then
        echo "# $lesson server did not start; its stderr:" >&2
        sed 's/^/#   /' "$SERVER_LOG" >&2
        return 1
    fi
    line=$(grep -m1 '^listening on ' "$SERVER_LOG")
    SERVER_ADDR=$(sed -E 's/^listening on (.*) \((udp, )?pid [0-9]+\)$/\1/' <<<"$line")
    PORT=${SERVER_ADDR##*:}
}

# unavailable_reason LESSON: nothing where LESSON's server starts;
# otherwise the line in which it said that it cannot run here (11 where
# io_uring is refused: an old kernel, a sysctl, a container's seccomp
# filter). Run once per file, from setup_file: a lesson that cannot run is
# skipped with its own reason, never failed.
unavailable_reason() {
    local err=$BATS_FILE_TMPDIR/probe.err pid
    "$(server_bin "$1")" -p 0 -q </dev/null >/dev/null 2>"$err" 3>&- &
    pid=$!
    wait_for 30 listening_or_exited "$pid" "$err" >&2 || true
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    log_has "$err" '^listening on ' || grep -m1 'cannot be used here' "$err"
    return 0
}
# skip_if_unavailable: in setup(), after setup_file ran unavailable_reason.
skip_if_unavailable() { [[ -z ${UNAVAILABLE:-} ]] || skip "$UNAVAILABLE"; }

# listening_or_exited PID LOG: either ends the wait, so that a server that
# dies at start-up fails its test at once, not after the deadline.
listening_or_exited() { log_has "$2" '^listening on ' || exited "$1"; }

# stop_server [SIGNAL]: signals the server (TERM by default), waits for it
# to exit and sets SERVER_STATUS to its exit status.
stop_server() {
    kill -"${1:-TERM}" "$SERVER_PID"
    wait_for 20 exited "$SERVER_PID" || return 1
    SERVER_STATUS=0
    wait "$SERVER_PID" || SERVER_STATUS=$?
}

# fd_count PID: how many descriptors the process holds.
fd_count() {
    local fds=(/proc/"$1"/fd/*)
    [[ -L ${fds[0]} ]] || fds=() # no descriptor, or no such process
    echo "${#fds[@]}"
}
fd_count_is() { [[ $(fd_count "$1") -eq $2 ]]; }

# threads PID, rss_kb PID: its thread count, its resident memory in KiB.
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# stats_counter NAME: the number before NAME in the server's stats line:
# "stats_counter events" reads 40 from "served 3 connections, echoed 36
# bytes, 40 events, by thread 10+12+9+9".
stats_counter() {
    sed -nE "s/^served .*[ ,]([0-9]+) $1(,.*)?\$/\\1/p" "$SERVER_LOG"
}

# sample_threads_until_exited FILE PID...: appends the server's thread
# count to FILE, then succeeds once every PID has exited.
sample_threads_until_exited() {
    local file=$1 pid
    shift
    threads "$SERVER_PID" >>"$file"
    for pid in "$@"; do
        exited "$pid" || return 1
    done
}

# sleeping PID: the process (its main thread) is asleep, waiting for an
# event, rather than running: a server that spins is never found so.
sleeping() {
    read_stat "/proc/$1/stat"
    [[ $STAT == S* ]]
}
# quiescent PID: no thread of PID, nor of its children, is running: each
# is asleep, waiting for its next event. After a client got its echo, a
# quiescent server has also counted it (it counts after each write).
quiescent() {
    local p t
    for p in "$1" $(pgrep -P "$1"); do
        for t in /proc/"$p"/task/*; do
            read_stat "$t/stat"
            [[ $STAT != R* ]] || return 1
        done
    done
}

# all_closed LOG: every connection the server logged as accepted it has
# also logged as closed.
all_closed() {
    awk '/^accepted / { a++ } /^closed / { c++ } END { exit a != c }' "$1"
}

# need_nc: netcat-openbsd, for its -N (half-close at EOF on stdin).
# tests/run checks it once and says so in NC_CHECKED.
need_nc() {
    [[ ${NC_CHECKED:-} != openbsd ]] || return 0
    if ! nc -h 2>&1 | grep -q 'OpenBSD netcat'; then
        fail "these tests need netcat-openbsd (nc -N): apt-get install netcat-openbsd"
    fi
}

# nc_echo [HOST] PORT: stdin through nc -N to the server, echo to stdout.
nc_echo() {
    if (($# == 1)); then
        set -- 127.0.0.1 "$1"
    fi
    timeout "$NET_TIMEOUT" nc -N "$1" "$2"
}

# capture_start FILTER...: tcpdump on lo, line-buffered into $CAPTURE
# (one line per packet), started with spawn() and awaited until it
# listens; the test is skipped where it cannot run (not root, no tcpdump).
capture_start() {
    command -v tcpdump >/dev/null || skip "tcpdump not installed"
    ((EUID == 0)) || skip "tcpdump needs root"
    CAPTURE=$BATS_TEST_TMPDIR/capture$((++_ncaptures)).txt
    spawn "$CAPTURE" "$CAPTURE.err" tcpdump -l -n -i lo "$@"
    wait_for 20 log_has "$CAPTURE.err" '^listening on lo'
}
_ncaptures=0

# two_at_a_time FUNCTION ARG...: FUNCTION ARG for each ARG, in the
# background, for jobs that each keep a CPU busy: two run at once, the
# next starting as one ends. Returns when all are done.
two_at_a_time() {
    local fn=$1 arg pid ended running=() still
    shift
    for arg in "$@"; do
        if ((${#running[@]} == 2)); then
            wait -n -p ended "${running[@]}" || true
            still=()
            for pid in "${running[@]}"; do
                [[ $pid == "$ended" ]] || still+=("$pid")
            done
            running=("${still[@]}")
        fi
        "$fn" "$arg" &
        running+=($!)
    done
    wait "${running[@]}" || true # each job leaves its result in a file
}

# random_file PATH BYTES: incompressible test data.
random_file() { head -c "$2" /dev/urandom >"$1"; }

# teardown_processes: stops every session spawn() started, with whatever
# each holds (a server's children too): TERM, then KILL for whatever is
# still alive after a few seconds; then reaps what spawn() started.
teardown_processes() {
    local sig pid left deadline
    ((${#_spawned[@]} > 0)) || return 0
    our_sessions
    for sig in TERM KILL; do
        ((${#SESSIONS[@]} > 0)) || break
        left=$(live_procs -s "${SESSIONS[@]}")
        [[ -n $left ]] || break
        # shellcheck disable=SC2086 # one pid per word
        kill -"$sig" $left 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while [[ -n $left ]] && ((SECONDS < deadline)); do
            sleep "$POLL_INTERVAL"
            left=$(live_procs -s "${SESSIONS[@]}")
        done
    done
    for pid in "${_spawned[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    _spawned=()
}

# our_sessions: sets SESSIONS to the sessions spawn() started that are
# still ours. Each has the number of the pid spawn() started. Once the
# test has reaped that process, the number is free, and after the pids
# wrap (/proc/sys/kernel/pid_max) a stranger's process may get it and
# lead a session of its own: a session whose leader is alive and is no
# longer our job is left alone. (A session of ours keeps its number while
# any of its processes lives, a server's children after the server.)
our_sessions() {
    local pid ours
    ours=" $(jobs -p | tr '\n' ' ') "
    SESSIONS=()
    for pid in "${_spawned[@]}"; do
        if [[ $ours != *" $pid "* ]]; then
            read_stat "/proc/$pid/stat"
            # shellcheck disable=SC2206 # numbers and one letter: no glob
            local field=($STAT)
            [[ ${field[3]:-} == "$pid" ]] && continue
        fi
        SESSIONS+=("$pid")
    done
}

group_gone() { [[ -z $(live_in_group "$1") ]]; }

# live_in_session SID: the processes of the session that are not zombies.
# spawn() starts every command in a session of its own, and a process
# cannot leave its session except by starting another (setsid), so this
# finds a server's children even in a process group of their own.
live_in_session() { live_procs -s "$1"; }
# session_gone SID: no process of the session runs.
session_gone() { [[ -z $(live_in_session "$1") ]]; }
# session_empty SID: no process of the session is left at all, not even a
# zombie: for after stop_server, which has reaped the server itself.
session_empty() { [[ -z $(pgrep -s "$1") ]]; }

teardown() {
    teardown_processes
}
