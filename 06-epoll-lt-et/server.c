/* 06-epoll-lt-et/server.c -- one thread, epoll, level- or edge-triggered.
 *
 * Model:   one process, one thread, every socket non-blocking, as in 05.
 *          The kernel keeps the list of sockets to watch (the epoll
 *          instance's interest list, changed with epoll_ctl() only when a
 *          connection's needs change), and epoll_wait() returns only the
 *          ready ones. -m lt (level-triggered, the default): a socket is
 *          reported as long as it is readable, so one read() per report is
 *          enough. -m et (edge-triggered): it is reported when new data
 *          arrives, so the server must read until EAGAIN. -m et-once reads
 *          once per report with edge triggering: the classic bug, which
 *          leaves data unread with nothing left to report it.
 * Cost:    one descriptor and one struct conn per client, and pending
 *          output up to CONN_HIGH_WATER plus one read; in the kernel, one
 *          entry per socket. A round costs the ready sockets, not all of
 *          them: this is the C10K answer. Clients are limited by ulimit -n.
 * Observe: strace -c -e trace=epoll_wait,read,write ./06-epoll-lt-et/server
 *          -b 16 [-m et] while a client sends a file: lt needs an
 *          epoll_wait per read, et a few per transfer. The stats line at
 *          Ctrl-C counts the same.
 * See also: 05-poll (before), 07-reactor (after), common/conn.c for the
 *          output buffer and its high-water mark.
 *
 * Run it:  ./06-epoll-lt-et/server [-m lt|et|et-once] [-b BYTES]
 *          printf 'hello\n' | nc -N 127.0.0.1 9006
 */
#include <errno.h>
#include <netdb.h>
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

/* How many ready sockets one epoll_wait() may return. More stay ready and
 * come back in the next call: nothing is lost, only batched. */
enum { MAX_EVENTS = 256 };

/* Edge-triggered, a client that sends as fast as we echo would never let
 * read() reach EAGAIN, and would keep the only thread for itself (epoll(7)
 * calls it starvation). So a connection gets this many reads per turn; one
 * that has more goes on the ready list, and gets its next turn after the
 * others have had theirs, with no edge needed. */
enum { READS_PER_TURN = 16 };

enum mode { MODE_LT, MODE_ET, MODE_ET_ONCE };

struct server {
    int listenfd;        /* non-blocking */
    int epfd;            /* the epoll instance */
    enum mode mode;      /* -m */
    size_t read_size;    /* -b: the most one read() takes */
    struct conn **conns; /* every client, in no order: conns[0 .. n-1] */
    size_t nconns, cap;
    struct conn **ready; /* edge-triggered: turns still owed, see above */
    struct conn **turns; /* the ready list being served this round */
    size_t nready;       /* ready and turns have room for cap each */
    unsigned long long served, echoed; /* for the stats line */
    unsigned long long waits, events, reads, writes;
};

/* Takes c into the table; false (and c untouched) if memory ran out. */
static bool add_conn(struct server *s, struct conn *c)
{
    if (s->nconns == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct conn **bigger = realloc(s->conns, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->conns = bigger;
        bigger = realloc(s->ready, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->ready = bigger;
        bigger = realloc(s->turns, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->turns = bigger;
        s->cap = cap;
    }
    c->index = s->nconns;
    s->conns[s->nconns++] = c;
    return true;
}

/* Logs and frees c; the last connection moves into its place. */
static void close_conn(struct server *s, struct conn *c)
{
    struct conn *last = s->conns[--s->nconns];

    last->index = c->index;
    s->conns[c->index] = last;
    for (size_t i = 0; c->ready && i < s->nready; i++) {
        if (s->ready[i] == c) {
            s->ready[i] = s->ready[--s->nready];
            break;
        }
    }
    if (c->error != 0 && !stop_requested()) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    s->echoed += c->nbytes;
    s->reads += c->nreads;
    s->writes += c->nwrites;
    log_closed(c->peer, c->nbytes);
    /* close() also takes the socket off the interest list, because no
     * other descriptor refers to it. (One dup()ed or inherited by a child
     * would keep it there, reporting events for a descriptor we closed.) */
    conn_free(c);
}

/* What epoll should report for c; see conn.h. */
static uint32_t interest(const struct server *s, const struct conn *c)
{
    return (conn_wants_read(c) ? EPOLLIN : 0u) |
           (conn_wants_write(c) ? EPOLLOUT : 0u) |
           (s->mode == MODE_LT ? 0u : EPOLLET);
}

/* Tells the kernel when what c waits for has changed: EPOLLOUT is asked
 * only while output is pending, EPOLLIN only below the high-water mark.
 * (Asking for EPOLLOUT always would wake a level-triggered loop at once,
 * every time: an idle socket is always writable.) */
static void watch(struct server *s, struct conn *c)
{
    struct epoll_event ev = {.events = interest(s, c), .data.ptr = c};

    if (ev.events == c->watching)
        return;
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        err_sys("epoll_ctl MOD");
    c->watching = ev.events;
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s)
{
    /* Out of descriptors, conn_accept() turns the client away: without
     * that, it would stay queued and the listener readable, and a
     * level-triggered epoll_wait() would return at once forever, an
     * edge-triggered one never report this listener again. */
    struct conn *c = conn_accept(s->listenfd);

    if (c == NULL) {
        if (errno == EAGAIN || stop_requested())
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
    c->watching = interest(s, c);
    struct epoll_event ev = {.events = c->watching, .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        err_sys("epoll_ctl ADD");
    s->served++;
    log_accepted(c->peer);
    return true;
}

/* Reads what a report of "readable" allows. Level-triggered, one read()
 * is enough: if more is waiting, the next epoll_wait() says so again.
 * Edge-triggered, the report came because data arrived, and none comes for
 * data that was already there: read until EAGAIN -- or until the
 * high-water mark stops us (see on_event), or the turn is over (see
 * READS_PER_TURN). et-once stops after one read, whatever is left: the bug
 * this lesson shows. */
static void on_readable(struct server *s, struct conn *c)
{
    for (int n = 1;; n++) {
        if (conn_read(c, s->read_size) <= 0)
            return; /* EAGAIN, the client's EOF, or a failure */
        if (s->mode != MODE_ET || !conn_wants_read(c))
            return;
        if (n == READS_PER_TURN) {
            if (!c->ready) {
                c->ready = true;
                s->ready[s->nready++] = c;
            }
            return;
        }
    }
}

static void on_event(struct server *s, struct conn *c, uint32_t events)
{
    /* An error or hang-up is reported whatever was asked for: the next
     * read() or write() says which, and ends the connection. */
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_wants_read(c))
        on_readable(s, c);
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && conn_wants_write(c)) {
        bool was_full = !conn_wants_read(c);
        conn_flush(c);
        /* Edge-triggered, a read that stopped at the high-water mark left
         * data whose edge has passed. Linux would report it once watch()
         * asks for EPOLLIN again (EPOLL_CTL_MOD makes epoll look at the
         * socket afresh), but a round later: read now. */
        if (s->mode != MODE_LT && was_full && conn_wants_read(c))
            on_readable(s, c);
    }
    if (conn_finished(c))
        close_conn(s, c);
    else
        watch(s, c);
}

/* Gives every connection on the ready list its next turn. Those that use
 * it up join the list again, for the round after. */
static void serve_ready(struct server *s)
{
    size_t n = s->nready;

    if (n == 0)
        return; /* and the arrays may not even exist yet */
    memcpy(s->turns, s->ready, n * sizeof *s->turns);
    s->nready = 0;
    for (size_t i = 0; i < n; i++)
        s->turns[i]->ready = false;
    for (size_t i = 0; i < n; i++)
        on_event(s, s->turns[i], EPOLLIN);
}

/* One round: wait until something is ready, then serve it. */
static void serve_round(struct server *s)
{
    struct epoll_event evs[MAX_EVENTS];
    /* Turns still owed: only look at what else is ready, do not sleep. */
    int n = epoll_wait(s->epfd, evs, MAX_EVENTS, s->nready > 0 ? 0 : -1);

    s->waits++;
    if (n == -1) {
        if (errno == EINTR)
            return; /* a signal: the caller looks at the stop flag */
        err_sys("epoll_wait");
    }
    s->events += (unsigned long long)n;
    /* Each descriptor appears once at most in one answer, so a connection
     * closed while handling its event is not met again in this loop. */
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            /* The listener. Both modes take every waiting client: for
             * edge triggering it is a must, as for reads. */
            while (accept_one(s))
                ;
        } else {
            on_event(s, evs[i].data.ptr, evs[i].events);
        }
    }
    serve_ready(s);
}

enum { OPT_MODE = 'm', OPT_READ_SIZE = 'b' };

static int on_option(int key, const char *arg, void *ctx)
{
    struct server *s = ctx;
    long n;

    if (key == OPT_READ_SIZE) {
        if (parse_number(arg, 1, CONN_READ_MAX, &n) == -1)
            return -1;
        s->read_size = (size_t)n;
        return 0;
    }
    if (strcmp(arg, "lt") == 0)
        s->mode = MODE_LT;
    else if (strcmp(arg, "et") == 0)
        s->mode = MODE_ET;
    else if (strcmp(arg, "et-once") == 0)
        s->mode = MODE_ET_ONCE;
    else {
        err_msg("-m %s: expected lt, et or et-once", arg);
        return -1;
    }
    return 0;
}

static void listen_and_watch(struct server *s, const struct net_options *opt)
{
    char where[HOST_PORT_LEN];
    int gai_err;

    s->listenfd = tcp_listen(opt->host, opt->port, LISTEN_BACKLOG, &gai_err);
    if (s->listenfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt->host, gai_strerror(gai_err));
    if (s->listenfd == -1)
        err_sys("cannot listen on %s",
                host_port(opt->host, opt->port, where, sizeof where));
    if (set_nonblocking(s->listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd == -1)
        err_sys("epoll_create1");
    /* The listener is the one entry without a connection: data.ptr NULL. */
    struct epoll_event ev = {.events =
                                 EPOLLIN | (s->mode == MODE_LT ? 0u : EPOLLET),
                             .data.ptr = NULL};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listenfd, &ev) == -1)
        err_sys("epoll_ctl ADD");
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "06-epoll-lt-et",
        "an echo server: one thread, epoll level- or edge-triggered", 9006};
    static const struct lesson_option options[] = {
        {OPT_MODE, NULL, "lt|et|et-once",
         "level- or edge-triggered (et-once: the bug)"},
        {OPT_READ_SIZE, NULL, "BYTES", "the most one read() takes"},
        {0, NULL, NULL, NULL},
    };
    struct net_options opt;
    struct server s = {.mode = MODE_LT, .read_size = 16384};
    char counters[160];

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &s);
    signals_init();
    listen_and_watch(&s, &opt);
    stop_wake_fd(STOP_LISTEN, s.listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(s.listenfd);

    /* The stop handler shuts the listener down, which epoll reports as
     * readable (and as a new edge): the loop wakes and sees the flag. */
    while (!stop_requested())
        serve_round(&s);

    while (s.nconns > 0)
        close_conn(&s, s.conns[s.nconns - 1]);
    free(s.conns);
    free(s.ready);
    free(s.turns);
    close(s.epfd);
    stop_wake_fd(STOP_LISTEN, -1);
    close(s.listenfd);
    snprintf(counters, sizeof counters,
             "%llu epoll_wait calls, %llu events, %llu reads, %llu writes",
             s.waits, s.events, s.reads, s.writes);
    log_stats_more(s.served, s.echoed, counters);
    return 0;
}
