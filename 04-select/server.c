/* 04-select/server.c -- one thread, select() over every socket.
 *
 * Model:   one process, one thread, every socket non-blocking. The thread
 *          sleeps in pselect() until the listener or some clients are
 *          ready, then does for each only what will not block: one read(),
 *          or the write() of what is pending. No client waits for another.
 *          The stop is one more thing pselect() waits for: SIGINT and
 *          SIGTERM are blocked everywhere else, and unblocked only inside
 *          that call, which they interrupt.
 * Cost:    one descriptor per client, one struct conn, and its pending
 *          output when the client reads slowly (at most CONN_HIGH_WATER
 *          plus one read). Each round copies and scans fd_sets as large as
 *          the highest descriptor, and descriptors at or above FD_SETSIZE
 *          (1024) cannot be watched at all: such clients are refused.
 * Observe: strace -e trace=pselect6 ./04-select/server
 *            one call per round; its first argument, the highest
 *            descriptor + 1, grows as clients connect, and its last is the
 *            signal mask in force while it sleeps.
 * See also: 03-pthread-pool (before), 05-poll (after), common/conn.c for
 *          the output buffer and its high-water mark.
 *
 * Run it:  ./04-select/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9004
 *          ./04-select/server --linger 0   (close() sends RST, not FIN)
 *          ./04-select/server --rcvbuf 4096   (a small receive window)
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 1024 };

/* How much one read() takes from one client before the others get their
 * turn: a client with much to send cannot monopolise the thread. */
enum { READ_SIZE = 16384 };

struct server {
    int listenfd;        /* non-blocking */
    int linger;          /* --linger N: SO_LINGER {1, N}; -1: not set */
    sigset_t waitmask;   /* the mask inside the wait: the stop unblocked */
    struct conn **conns; /* every client, in no order: conns[0 .. n-1] */
    size_t nconns, cap;
    unsigned long long served, echoed; /* for the stats line */
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
        s->cap = cap;
    }
    s->conns[s->nconns++] = c;
    return true;
}

/* Logs and frees conns[i]. The last connection moves into its place, so
 * the table stays dense: a loop over it must look at index i again. */
static void close_conn(struct server *s, size_t i)
{
    struct conn *c = s->conns[i];

    s->conns[i] = s->conns[--s->nconns];
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
    if (s->linger >= 0) {
        /* SO_LINGER {1, 0}: close() discards whatever is unsent and
         * sends RST instead of FIN -- an abortive close, no TIME_WAIT;
         * the peer's next read() or write() fails with ECONNRESET.
         * {1, N}: close() waits up to N seconds for the unsent bytes to
         * be acknowledged. Linux waits even on a non-blocking socket, so
         * here the whole loop would wait, every client with it. */
        struct linger lg = {1, s->linger};
        if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == -1)
            err_ret("setsockopt SO_LINGER %s", c->peer);
    }
    if (c->fd >= FD_SETSIZE) {
        /* FD_SET() with it would write past the end of the fd_set. */
        err_msg("closing %s: descriptor %d is not below FD_SETSIZE (%d)",
                c->peer, c->fd, FD_SETSIZE);
        close_conn(s, s->nconns - 1);
    }
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
    if (!conn_finished(c))
        return true;
    close_conn(s, i);
    return false;
}

/* One round: wait until something is ready, then serve it. */
static void serve_round(struct server *s)
{
    fd_set rset, wset;
    int maxfd = s->listenfd;

    /* select() overwrites its sets with the answer, so they are built
     * again, from the connections' state, before every call. */
    FD_ZERO(&rset);
    FD_ZERO(&wset);
    FD_SET(s->listenfd, &rset);
    for (size_t i = 0; i < s->nconns; i++) {
        struct conn *c = s->conns[i];
        if (conn_wants_read(c))
            FD_SET(c->fd, &rset);
        if (conn_wants_write(c))
            FD_SET(c->fd, &wset);
        if (c->fd > maxfd)
            maxfd = c->fd;
    }
    /* pselect() is select() with a signal mask to use while it sleeps:
     * the kernel installs waitmask and restores ours around the wait, in
     * one step. A stop signal that came before the call was held pending,
     * and interrupts the wait as soon as it begins. */
    if (pselect(maxfd + 1, &rset, &wset, NULL, NULL, &s->waitmask) == -1) {
        if (errno == EINTR)
            return; /* the stop: its handler ran, the caller's loop ends */
        err_sys("pselect");
    }

    for (size_t i = 0; i < s->nconns;) {
        int fd = s->conns[i]->fd;
        if (serve_conn(s, i, FD_ISSET(fd, &rset), FD_ISSET(fd, &wset)))
            i++; /* else the last one moved to i: look again */
    }
    /* Accepting last: new descriptors may reuse numbers of connections
     * just closed, and must not be mistaken for them in this round's sets. */
    if (FD_ISSET(s->listenfd, &rset))
        while (accept_one(s))
            ;
}

enum { OPT_LINGER = 256, OPT_RCVBUF };

struct settings {
    long linger; /* -1: no SO_LINGER */
    long rcvbuf; /* 0: the system's default */
};

static int on_option(int key, const char *arg, void *ctx)
{
    struct settings *set = ctx;

    if (key == OPT_LINGER)
        return parse_number(arg, 0, 3600, &set->linger);
    if (key == OPT_RCVBUF)
        return parse_number(arg, 1, INT_MAX / 2, &set->rcvbuf);
    return -1;
}

/* tcp_listen_with()'s step before bind(): SO_RCVBUF on the listener.
 * Linux doubles the value (half is for its own bookkeeping) and reports
 * the double. */
static int set_rcvbuf(int fd, void *arg)
{
    int size = (int)*(long *)arg;

    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "04-select", "an echo server: one thread, select() over all sockets",
        9004};
    static const struct lesson_option options[] = {
        {OPT_LINGER, "linger", "N",
         "SO_LINGER {1, N} on each client (0: close sends RST)"},
        {OPT_RCVBUF, "rcvbuf", "BYTES", "SO_RCVBUF, set before listen()"},
        {0, NULL, NULL, NULL},
    };
    struct net_options opt;
    struct server s = {0};
    struct settings set = {-1, 0};
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &set);
    s.linger = (int)set.linger;
    /* The stop, way (b) of common/signals.h: SIGINT and SIGTERM blocked
     * from here on, except inside pselect(), which they interrupt. */
    stop_by_mask(&s.waitmask);
    /* SO_RCVBUF goes on the listener before listen(): the window scale
     * is agreed in the handshake, from the buffer's size, and each
     * accepted connection inherits the listener's buffer. */
    s.listenfd = tcp_listen_with(opt.host, opt.port, LISTEN_BACKLOG,
                                 set.rcvbuf > 0 ? set_rcvbuf : NULL,
                                 &set.rcvbuf, &gai_err);
    if (s.listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(s.listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
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
