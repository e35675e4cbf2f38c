/* 05-poll/server.c -- one thread, poll() over an array of sockets.
 *
 * Model:   one process, one thread, every socket non-blocking, as in 04.
 *          The thread sleeps in ppoll() on an array of struct pollfd, one
 *          entry per socket, then does for each ready one only what will
 *          not block: one read(), or the write() of what is pending.
 *          The stop is taken as in 04: SIGINT and SIGTERM are unblocked
 *          only inside the wait, which they interrupt.
 * Cost:    one descriptor, one struct conn and one pollfd per client, and
 *          pending output up to CONN_HIGH_WATER plus one read. No
 *          FD_SETSIZE cap: the array grows with the clients, up to the
 *          descriptor limit (ulimit -n). But every call still copies the
 *          whole array into the kernel and back, and the kernel and the
 *          server both scan all of it: O(clients) per round, however few
 *          are ready.
 * Observe: strace -e trace=ppoll ./05-poll/server
 *            one ppoll() per round; its array grows by one entry per
 *            client connected (strace abbreviates long arrays: add -s 9999).
 * See also: 04-select (before), 06-epoll-lt-et (after), common/conn.c for
 *          the output buffer and its high-water mark.
 *
 * Run it:  ./05-poll/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9005
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
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

struct server {
    int listenfd;        /* non-blocking */
    sigset_t waitmask;   /* the mask inside the wait: the stop unblocked */
    struct conn **conns; /* every client, in no order: conns[0 .. n-1] */
    struct pollfd *pfds; /* pfds[0]: the listener; pfds[i + 1]: conns[i] */
    size_t nconns, cap;
    unsigned long long served, echoed; /* for the stats line */
};

/* What the wait should report for c; see conn.h. */
static short interest(const struct conn *c)
{
    return (short)((conn_wants_read(c) ? POLLIN : 0) |
                   (conn_wants_write(c) ? POLLOUT : 0));
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
        struct pollfd *more = realloc(s->pfds, (cap + 1) * sizeof *more);
        if (more == NULL)
            return false;
        s->pfds = more;
        s->cap = cap;
    }
    s->conns[s->nconns++] = c;
    s->pfds[s->nconns] = (struct pollfd){.fd = c->fd, .events = interest(c)};
    return true;
}

/* Logs and frees conns[i]. The last connection moves into its place, so
 * the table stays dense: a loop over it must look at index i again. Its
 * pollfd moves with it. */
static void close_conn(struct server *s, size_t i)
{
    struct conn *c = s->conns[i];

    s->conns[i] = s->conns[--s->nconns];
    s->pfds[i + 1] = s->pfds[s->nconns + 1];
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

/* Serves conns[i], which the wait reported readable and/or writable: one
 * read() and the echo of what came, or the write() of what is pending.
 * Returns false when it closed the connection: the last one moved to i. */
static bool serve_conn(struct server *s, size_t i, bool readable, bool writable)
{
    struct conn *c = s->conns[i];
    unsigned long long before = c->nbytes;

    if (readable && conn_wants_read(c))
        conn_read(c, READ_SIZE);
    if (writable && conn_wants_write(c))
        conn_flush(c);
    s->echoed += c->nbytes - before; /* as written: the stop may come */
    if (!conn_finished(c)) {
        s->pfds[i + 1].events = interest(c); /* for the next round */
        return true;
    }
    close_conn(s, i);
    return false;
}

/* ppoll() fails with EINVAL when given more entries than the descriptor
 * limit, which can fall below what we watch while we run (prlimit). Closes
 * the newest connections until the array fits; false if none was open. */
static bool fit_limit(struct server *s)
{
    struct rlimit rl;
    size_t before = s->nconns;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        err_sys("getrlimit");
    while (s->nconns > 0 && s->nconns + 1 > rl.rlim_cur) {
        err_msg(
            "closing %s: poll() takes no more entries than ulimit -n (%llu)",
            s->conns[s->nconns - 1]->peer, (unsigned long long)rl.rlim_cur);
        close_conn(s, s->nconns - 1);
    }
    return s->nconns < before;
}

/* One round: wait until something is ready, then serve it. */
static void serve_round(struct server *s)
{
    /* Unlike select()'s sets, the array survives the call: ppoll() reads
     * events and writes its answer to revents. So it is kept from round
     * to round, and serve_conn() sets each entry's events from its
     * connection's state. The mask works as pselect()'s does in 04. */
    if (ppoll(s->pfds, s->nconns + 1, NULL, &s->waitmask) == -1) {
        if (errno == EINTR)
            return; /* the stop: its handler ran, the caller's loop ends */
        if (errno == EINVAL && fit_limit(s))
            return;
        err_sys("ppoll");
    }

    for (size_t i = 0; i < s->nconns;) {
        short revents = s->pfds[i + 1].revents;
        /* An error or hang-up is reported whatever was asked for: the
         * next read() or write() says which, and ends the connection. */
        if (serve_conn(s, i, revents & (POLLIN | POLLHUP | POLLERR),
                       revents & (POLLOUT | POLLHUP | POLLERR)))
            i++; /* else the last one moved to i: look again */
    }
    /* Accepting last, as in 04: the loop above then sees only the entries
     * this wait answered for. */
    if (s->pfds[0].revents != 0)
        while (accept_one(s))
            ;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "05-poll", "an echo server: one thread, poll() over all sockets", 9005};
    struct net_options opt;
    struct server s = {0};
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, NULL, NULL, NULL);
    /* The stop, way (b) of common/signals.h: SIGINT and SIGTERM blocked
     * from here on, except inside the wait, which they interrupt. */
    stop_by_mask(&s.waitmask);
    s.listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (s.listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(s.listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    s.pfds = malloc(sizeof *s.pfds);
    if (s.pfds == NULL)
        err_sys("malloc");
    s.pfds[0] = (struct pollfd){.fd = s.listenfd, .events = POLLIN};
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
    log_stats(s.served, s.echoed);
    exit(0);
}
