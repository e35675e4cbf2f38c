/* 06-epoll-lt-et/server.c -- one thread, epoll, level- or edge-triggered.
 *
 * Model:   one process, one thread, every socket non-blocking, as in 04.
 *          The thread sleeps in epoll_pwait() on an epoll instance, one
 *          entry per socket, then does for each ready one only what will
 *          not block: one read(), or the write() of what is pending.
 *          The kernel keeps the entries (the interest list: epoll_ctl()
 *          changes it only when a connection's needs do) and returns only
 *          the ready ones. -m lt|et: level- or edge-triggered; -m et-once:
 *          the classic bug, one read per edge, which leaves data unread.
 *          The stop is taken as in 04: SIGINT and SIGTERM are unblocked
 *          only inside the wait, which they interrupt.
 * Cost:    one descriptor, one struct conn and one epoll entry per client, and
 *          pending output up to CONN_HIGH_WATER plus one read. No
 *          FD_SETSIZE cap, and a round costs the ready sockets, not all of
 *          them: the C10K answer. Clients are limited by ulimit -n.
 * Observe: strace -c -e trace=epoll_pwait,read ./06-epoll-lt-et/server -b 16
 *          [-m et], a file echoed: lt waits once per read, et far less.
 * See also: 05-poll (before), 07-reactor (after), common/conn.c for
 *          the output buffer and its high-water mark.
 *
 * Run it:  ./06-epoll-lt-et/server [-m lt|et|et-once] [-b BYTES]
 *          printf 'hello\n' | nc -N 127.0.0.1 9006
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 1024 };

/* How much one read() takes from one client before the others get their
 * turn: a client with much to send cannot monopolise the thread. As much
 * as conn_read() can take: a smaller read costs a wait, a read and a write
 * per piece, four times the system calls per 64 KiB echoed at 16 KiB. */
enum { READ_SIZE = CONN_READ_MAX };

/* The most events one epoll_pwait() returns (more wait for the next);
 * and the reads one connection gets per turn, edge-triggered: a client
 * that sends as fast as we echo never lets read() reach EAGAIN, and would
 * starve the others (epoll(7)). After its turn it goes behind them. */
enum { MAX_EVENTS = 256, READS_PER_TURN = 16 };

enum mode { MODE_LT, MODE_ET, MODE_ET_ONCE };

struct server {
    int listenfd;        /* non-blocking */
    sigset_t waitmask;   /* the mask inside the wait: the stop unblocked */
    struct conn **conns; /* every client, in no order: conns[0 .. n-1] */
    uint32_t *watching;  /* watching[i]: the events asked for conns[i] */
    size_t nconns, cap;
    unsigned long long served, echoed; /* for the stats line */
    int epfd;                          /* the epoll instance */
    enum mode mode;                    /* -m */
    long read_size;                    /* -b: the most one read() takes */
    unsigned long long waits, events, reads, writes;
};

/* What the wait should report for c; see conn.h. */
static uint32_t interest(const struct server *s, const struct conn *c)
{
    return (conn_wants_read(c) ? EPOLLIN : 0u) |
           (conn_wants_write(c) ? EPOLLOUT : 0u) |
           (s->mode == MODE_LT ? 0u : EPOLLET);
}

/* Tells the kernel (op: ADD or MOD) what conns[i] waits for, with i + 1 as
 * the event's data (0 is the listener), as pfds[i + 1] was in 05. A MOD is
 * made when the events change (EPOLLOUT only while output is pending: an
 * idle socket is always writable), or when again says so: a turn that
 * ended with data left, or EPOLLIN back below the high-water mark, needs
 * epoll to look at the socket afresh and report it, edge or no edge. */
static void watch(struct server *s, size_t i, int op, bool again)
{
    struct epoll_event ev = {.events = interest(s, s->conns[i]),
                             .data.u64 = i + 1};

    if (!again && ev.events == s->watching[i])
        return;
    if (epoll_ctl(s->epfd, op, s->conns[i]->fd, &ev) == -1)
        err_sys("epoll_ctl");
    s->watching[i] = ev.events;
}

/* Takes c into the table; false (and c untouched) if memory ran out. */
static bool add_conn(struct server *s, struct conn *c)
{
    if (s->nconns == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct conn **bigger = realloc(s->conns, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->conns = bigger;
        uint32_t *more = realloc(s->watching, cap * sizeof *more);
        if (more == NULL)
            return false;
        s->watching = more;
        s->cap = cap;
    }
    s->conns[s->nconns++] = c;
    watch(s, s->nconns - 1, EPOLL_CTL_ADD, true);
    return true;
}

/* Logs and frees conns[i]. The last connection moves into its place, so
 * the table stays dense, and the kernel learns its new index. An event
 * fetched with the old one is skipped; the MOD reports it again. */
static void close_conn(struct server *s, size_t i)
{
    struct conn *c = s->conns[i];

    s->conns[i] = s->conns[--s->nconns];
    if (i < s->nconns)
        watch(s, i, EPOLL_CTL_MOD, true);
    if (c->error != 0) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    log_closed(c->peer, c->nbytes);
    conn_free(c);
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s)
{
    /* Out of descriptors, conn_accept() turns the client away: without
     * that, it would stay queued and the listener readable, and the wait
     * would return at once forever. */
    struct conn *c = conn_accept(s->listenfd);
    if (c == NULL) {
        if (errno == EAGAIN)
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    if (!add_conn(s, c)) {
        err_ret("no memory for a client");
        conn_free(c);
        return true;
    }
    s->served++;
    log_accepted(c->peer);
    return true;
}

/* Reads what "readable" allows; true if data may be left at the turn's end.
 * Level-triggered, one read(): the next wait reports the rest. Edge-trig-
 * gered, no wait reports data already there: read until EAGAIN or a limit. */
static bool on_readable(struct server *s, struct conn *c)
{
    for (int n = 1; conn_read(c, (size_t)s->read_size) > 0; n++) {
        if (s->mode != MODE_ET || !conn_wants_read(c))
            return false;
        if (n == READS_PER_TURN)
            return true;
    }
    return false; /* EAGAIN, the client's EOF, or a failure */
}

/* Serves conns[i], which the wait reported readable and/or writable: one
 * read() and the echo of what came, or the write() of what is pending.
 * Returns false when it closed the connection: the last one moved to i. */
static bool serve_conn(struct server *s, size_t i, bool readable, bool writable)
{
    struct conn *c = s->conns[i];
    unsigned long long before = c->nbytes;
    unsigned long long reads = c->nreads, writes = c->nwrites;
    bool again = false;

    if (readable && conn_wants_read(c))
        again = on_readable(s, c);
    if (writable && conn_wants_write(c))
        conn_flush(c);
    s->echoed += c->nbytes - before; /* as written: the stop may come */
    s->reads += c->nreads - reads;
    s->writes += c->nwrites - writes;
    if (!conn_finished(c)) {
        watch(s, i, EPOLL_CTL_MOD, again);
        return true;
    }
    close_conn(s, i);
    return false;
}

/* One round: wait until something is ready, then serve it. */
static void serve_round(struct server *s)
{
    struct epoll_event evs[MAX_EVENTS];
    bool listener = false;
    /* Unlike ppoll()'s array, the list stays in the kernel: the call
     * passes none of it, and returns only what is ready. */
    int n = epoll_pwait(s->epfd, evs, MAX_EVENTS, -1, &s->waitmask);

    s->waits++;
    if (n == -1) {
        if (errno == EINTR)
            return; /* the stop: its handler ran, the caller's loop ends */
        err_sys("epoll_pwait");
    }
    s->events += (unsigned long long)n;

    for (int k = 0; k < n; k++) {
        size_t i = evs[k].data.u64 - 1; /* the listener: SIZE_MAX */
        listener = listener || evs[k].data.u64 == 0;
        if (i >= s->nconns)
            continue; /* the listener, or moved by close_conn() */
        /* An error or hang-up is reported whatever was asked for: the
         * next read() or write() says which, and ends the connection. */
        serve_conn(s, i, evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR),
                   evs[k].events & (EPOLLOUT | EPOLLHUP | EPOLLERR));
    }
    /* Accepting last, as in 04: the loop above then sees only the entries
     * this wait answered for. */
    if (listener)
        while (accept_one(s))
            ;
}

static int on_option(int key, const char *arg, void *ctx)
{
    static const char *const names[] = {"lt", "et", "et-once"};
    struct server *s = ctx;

    if (key == 'b')
        return parse_number(arg, 1, CONN_READ_MAX, &s->read_size);
    for (s->mode = MODE_LT; s->mode <= MODE_ET_ONCE; s->mode++)
        if (strcmp(arg, names[s->mode]) == 0)
            return 0;
    err_msg("-m %s: expected lt, et or et-once", arg);
    return -1;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "06-epoll-lt-et",
        "an echo server: one thread, epoll level- or edge-triggered", 9006};
    static const struct lesson_option options[] = {
        {'m', NULL, "lt|et|et-once", "level- or edge-triggered, or the bug"},
        {'b', NULL, "BYTES", "the most one read() takes"},
        {0, NULL, NULL, NULL},
    };
    struct net_options opt;
    struct server s = {.mode = MODE_LT, .read_size = READ_SIZE};
    int gai_err;
    char counters[160];

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &s);
    /* The stop, way (b) of common/signals.h: SIGINT and SIGTERM blocked
     * from here on, except inside the wait, which they interrupt. */
    stop_by_mask(&s.waitmask);
    s.listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (s.listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(s.listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {
        .events = EPOLLIN | (s.mode == MODE_LT ? 0u : EPOLLET)}; /* data 0 */
    if (s.epfd == -1 || epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.listenfd, &ev) == -1)
        err_sys("epoll");
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(s.listenfd);

    /* No race: a stop signal cannot be delivered between this test and
     * the wait, only in the wait, which it then interrupts. And when the
     * wait returns ready sockets instead, leaving the signal pending,
     * stop_requested() asks the kernel (sigpending) and finds it. */
    while (!stop_requested())
        serve_round(&s);

    /* exit() closes every socket; the kernel tells the clients. */
    snprintf(counters, sizeof counters,
             "%llu epoll_wait calls, %llu events, %llu reads, %llu writes",
             s.waits, s.events, s.reads, s.writes);
    log_stats_more(s.served, s.echoed, counters);
    exit(0);
}
