/* 07-reactor/server.c -- the echo server as a few callbacks on a reactor.
 *
 * Model:   one process, one thread, as in 04 to 06, but the event loop is
 *          now a piece of its own (reactor.h: handlers, timers, a loop
 *          that waits and dispatches) over a demultiplexer chosen at run
 *          time (-B select|poll|epoll, demux_*.c), and the connection
 *          layer (tcp.h) turns socket events into the application's
 *          events. The echo server is what is left: the callbacks below.
 * Cost:    per client, a descriptor, a struct tcp_conn and a struct conn
 *          (a few hundred bytes; read buffers live on the stack), and with
 *          -i a timer in the reactor's heap; pending output up to
 *          CONN_HIGH_WATER plus one read. The layers cost a few function
 *          calls per event, no system call: `make bench` measures it
 *          against 06. -B select stops at FD_SETSIZE, as 04 did.
 * Observe: strace -e trace=epoll_wait,read,write,epoll_ctl
 *          ./07-reactor/server -q while `nc -N 127.0.0.1 9007` sends a
 *          line: one epoll_wait, then the read and write of on_message;
 *          epoll_ctl only when a connection comes or goes. With -B poll
 *          the same round is one poll(). Ctrl-C is one more event: the
 *          signalfd reported ready, read by nobody, and the loop ends.
 * See also: 06-epoll-lt-et (before), 08-half-sync-half-async (after),
 *          reactor.h, tcp.h, demux.h.
 *
 * Run it:  ./07-reactor/server [-B select|poll|epoll] [-i SECONDS] [-w USEC]
 *                              [-F line|len] [-K IDLE,INTERVAL,COUNT]
 *          printf 'hello\n' | nc -N 127.0.0.1 9007
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "reactor.h"
#include "signals.h"
#include "tcp.h"

enum { LISTEN_BACKLOG = 1024 };

struct echo {
    long work_us; /* -w: simulated work per message, in the callback */
    enum tcp_framing framing; /* -F: echo whole frames only */
    int keepalive[3];         /* -K: idle, interval, count; 0: off */
    unsigned long long served, idle_closed; /* for the stats line */
};

/* --- the application: an echo server in four and a half callbacks ------ */

static void on_connection(struct tcp_conn *c)
{
    struct echo *e = tcp_conn_ctx(c);

    e->served++;
    log_accepted(c->io.peer);
    /* -K: the kernel probes the idle connection, and tells us, as an
     * error on the socket, when the client has vanished without a FIN or
     * an RST (a cable pulled, a machine gone). */
    if (e->keepalive[0] > 0 &&
        tcp_conn_keepalive(c, e->keepalive[0], e->keepalive[1],
                           e->keepalive[2]) == -1)
        err_ret("keepalive %s", c->io.peer);
}

/* -F: sends back each whole frame, and leaves the rest, a frame not yet
 * complete, for the layer to keep. A frame that cannot fit costs the
 * client its connection: keeping it would need unbounded memory. */
static size_t echo_frames(struct tcp_conn *c, const char *data, size_t len)
{
    struct echo *e = tcp_conn_ctx(c);
    size_t used = 0;
    ssize_t n;

    while ((n = tcp_frame_len(e->framing, data + used, len - used)) > 0) {
        tcp_conn_send(c, data + used, (size_t)n);
        used += (size_t)n;
    }
    if (n == -1) {
        logmsg("%s: a frame longer than %d bytes: closing", c->io.peer,
               TCP_FRAME_MAX);
        tcp_conn_close(c);
        return len;
    }
    return used;
}

/* Everything that arrived goes back. The layer keeps what the socket does
 * not take now, and calls on_high_water if that grows too large.
 *
 * -w sleeps here first, as slow work would: the demonstration of why a
 * callback must never block. The loop has one thread, and while it sleeps
 * in this callback no other client is read, written or accepted, and not
 * even the stop is taken: the signal is one more event, and waits its turn
 * (08 moves such work to a pool of threads). */
static size_t on_message(struct tcp_conn *c, const char *data, size_t len)
{
    struct echo *e = tcp_conn_ctx(c);

    if (e->work_us > 0) {
        struct timespec ts = {e->work_us / 1000000,
                              e->work_us % 1000000 * 1000};
        nanosleep(&ts, NULL); /* the stop signals are blocked: see main() */
    }
    if (e->framing != TCP_FRAME_NONE)
        return echo_frames(c, data, len);
    tcp_conn_send(c, data, len);
    return len;
}

/* A client that does not read: stop reading from it until its echo has
 * drained, so that it costs bounded memory and its bytes wait in the
 * kernel's buffers and its own (TCP flow control), not in ours. */
static void on_high_water(struct tcp_conn *c, size_t pending)
{
    (void)pending;
    tcp_conn_pause_reading(c);
}

static void on_write_complete(struct tcp_conn *c)
{
    tcp_conn_resume_reading(c);
}

static void on_close(struct tcp_conn *c)
{
    struct echo *e = tcp_conn_ctx(c);

    if (c->io.error != 0) {
        errno = c->io.error;
        err_ret("%s %s", c->io.failed_call, c->io.peer);
    }
    if (c->idle) {
        e->idle_closed++;
        logmsg("idle %s: closing it", c->io.peer);
    }
    if (c->in_len > 0)
        logmsg("%s: %zu bytes of an incomplete frame dropped", c->io.peer,
               c->in_len);
    log_closed(c->io.peer, c->io.nbytes);
}

/* --- the command line and the set-up ------------------------------------ */

struct settings {
    const char *backend;      /* -B */
    unsigned long idle_ms;    /* -i, in seconds on the command line */
    long work_us;             /* -w */
    enum tcp_framing framing; /* -F */
    int keepalive[3];         /* -K */
};

enum {
    OPT_BACKEND = 'B',
    OPT_IDLE = 'i',
    OPT_WORK = 'w',
    OPT_FRAMING = 'F',
    OPT_KEEPALIVE = 'K'
};

/* -K IDLE,INTERVAL,COUNT: seconds, seconds, probes. */
static int parse_keepalive(const char *arg, int out[3])
{
    static const long max[3] = {32767, 32767, 127}; /* what Linux takes */
    char copy[64], *next = copy, *field;
    long v;

    snprintf(copy, sizeof copy, "%s", arg);
    for (int i = 0; i < 3; i++) {
        field = strsep(&next, ",");
        if (field == NULL || (i == 2) != (next == NULL) ||
            parse_number(field, 1, max[i], &v) == -1) {
            err_msg("-K %s: expected IDLE,INTERVAL,COUNT (seconds, "
                    "seconds, probes), such as 5,1,3",
                    arg);
            return -1;
        }
        out[i] = (int)v;
    }
    return 0;
}

static int on_option(int key, const char *arg, void *ctx)
{
    struct settings *set = ctx;
    long n;

    if (key == OPT_KEEPALIVE)
        return parse_keepalive(arg, set->keepalive);
    if (key == OPT_FRAMING) {
        static const char *const names[] = {"line", "len", NULL};
        static const enum tcp_framing framings[] = {TCP_FRAME_LINE,
                                                    TCP_FRAME_LEN};
        if (parse_choice(arg, names, &n) == -1)
            return -1;
        set->framing = framings[n];
        return 0;
    }

    if (key == OPT_IDLE) {
        if (parse_number(arg, 1, 86400, &n) == -1)
            return -1;
        set->idle_ms = (unsigned long)n * 1000;
        return 0;
    }
    if (key == OPT_WORK)
        return parse_number(arg, 0, 10 * 1000000, &set->work_us);
    if (strcmp(arg, "select") != 0 && strcmp(arg, "poll") != 0 &&
        strcmp(arg, "epoll") != 0) {
        err_msg("-B %s: expected select, poll or epoll", arg);
        return -1;
    }
    set->backend = arg;
    return 0;
}

/* The stop, way (b): SIGINT or SIGTERM has made the signalfd readable.
 * The signal is left unread: the process is about to exit. */
static void on_stop(struct reactor *r, int fd, unsigned mask, void *arg)
{
    (void)fd;
    (void)mask;
    (void)arg;
    reactor_stop(r);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "07-reactor", "an echo server: callbacks on a reactor", 9007};
    static const struct lesson_option options[] = {
        {OPT_BACKEND, NULL, "select|poll|epoll",
         "the demultiplexer (default epoll)"},
        {OPT_IDLE, NULL, "SECONDS", "close clients idle that long"},
        {OPT_WORK, NULL, "USEC", "sleep in every on_message (the trap)"},
        {OPT_FRAMING, NULL, "line|len", "echo whole frames only"},
        {OPT_KEEPALIVE, NULL, "I,N,C", "TCP keepalive: idle, interval, count"},
        {0, NULL, NULL, NULL},
    };
    static const struct tcp_callbacks echo_callbacks = {
        on_connection, on_message, on_write_complete, on_high_water, on_close};
    struct settings set = {.backend = "epoll"};
    struct net_options opt;
    struct echo e = {0};
    char counters[160];
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &set);
    e.work_us = set.work_us;
    e.framing = set.framing;
    memcpy(e.keepalive, set.keepalive, sizeof e.keepalive);
    /* The stop, way (b) of common/signals.h: SIGINT and SIGTERM blocked,
     * and turned into a descriptor the reactor watches like any socket. */
    int sigfd = stop_signalfd();
    int listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    struct reactor *r = reactor_new(set.backend);
    if (r == NULL)
        err_sys("reactor (%s)", set.backend);
    struct tcp_server *s =
        tcp_server_new(r, listenfd, &echo_callbacks, &e, set.idle_ms);
    if (s == NULL)
        err_sys("watch the listening socket");
    if (reactor_watch(r, sigfd, RE_READ, on_stop, NULL) == -1)
        err_sys("watch the signalfd");
    log_listening(listenfd);

    /* Everything happens in the callbacks, until a stop signal makes
     * on_stop() end the loop. Exit closes every socket. */
    if (reactor_run(r) == -1)
        err_sys("%s", reactor_backend(r));
    struct reactor_stats st = reactor_stats(r);
    snprintf(counters, sizeof counters,
             "%s: %llu waits, %llu events, %llu timers, %llu idle closed",
             reactor_backend(r), st.waits, st.events, st.timeouts,
             e.idle_closed);
    log_stats_more(e.served, tcp_server_sent(s), counters);
    exit(0); /* as in 04-06: main()'s frame, and all it reaches, stays */
}
