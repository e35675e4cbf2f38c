/* 04-select/server.c -- one thread, select() over every socket.
 *
 * Model:   one process, one thread, every socket non-blocking. The thread
 *          sleeps in select() until the listener or some clients are ready,
 *          then does for each only what will not block: one read(), or the
 *          write() of what is pending. No client waits for another.
 * Cost:    one descriptor per client, one struct conn, and its pending
 *          output when the client reads slowly (at most CONN_HIGH_WATER
 *          plus one read). Each round copies and scans fd_sets as large as
 *          the highest descriptor, and descriptors at or above FD_SETSIZE
 *          (1024) cannot be watched at all: such clients are refused.
 * Observe: strace -e trace=pselect6 ./04-select/server
 *            one call per round (glibc's select() is the pselect6 system
 *            call); its first argument, the highest descriptor + 1, grows
 *            as clients connect.
 * See also: 03-pthread-pool (before), 05-poll (after), common/conn.c for
 *          the output buffer and its high-water mark.
 *
 * Run it:  ./04-select/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9004
 */
#include <errno.h>
#include <netdb.h>
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

/* How much one read() takes from one client before select() is asked
 * again: a client with much to send cannot monopolise the thread. */
enum { READ_SIZE = 16384 };

struct server {
    int listenfd;        /* non-blocking */
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
    c->index = s->nconns;
    s->conns[s->nconns++] = c;
    return true;
}

/* Logs and frees c. The last connection moves into its place, so the
 * table stays dense: a loop over it must look at the same index again. */
static void close_conn(struct server *s, struct conn *c)
{
    struct conn *last = s->conns[--s->nconns];

    last->index = c->index;
    s->conns[c->index] = last;
    if (c->error != 0 && !stop_requested()) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    s->echoed += c->nbytes;
    log_closed(c->peer, c->nbytes);
    conn_free(c);
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s)
{
    /* Out of descriptors, conn_accept() turns the client away: without
     * that, it would stay queued, the listener readable, and select()
     * would return at once forever. */
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
    s->served++;
    log_accepted(c->peer);
    if (c->fd >= FD_SETSIZE) {
        /* FD_SET() with it would write past the end of the fd_set. */
        err_msg("closing %s: descriptor %d is not below FD_SETSIZE (%d)",
                c->peer, c->fd, FD_SETSIZE);
        close_conn(s, c);
    }
    return true;
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
    if (select(maxfd + 1, &rset, &wset, NULL, NULL) == -1) {
        if (errno == EINTR)
            return; /* a signal: the caller looks at the stop flag */
        err_sys("select");
    }

    for (size_t i = 0; i < s->nconns;) {
        struct conn *c = s->conns[i];
        if (FD_ISSET(c->fd, &rset))
            conn_read(c, READ_SIZE);
        if (FD_ISSET(c->fd, &wset))
            conn_flush(c);
        if (conn_finished(c))
            close_conn(s, c); /* the last one moved to i: look again */
        else
            i++;
    }
    /* Accepting last: new descriptors may reuse numbers of connections
     * just closed, and must not be mistaken for them in this round's sets. */
    if (FD_ISSET(s->listenfd, &rset))
        while (accept_one(s))
            ;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "04-select", "an echo server: one thread, select() over all sockets",
        9004};
    struct net_options opt;
    struct server s = {0};
    char where[HOST_PORT_LEN];
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, NULL, NULL, NULL);
    signals_init();
    s.listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (s.listenfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (s.listenfd == -1)
        err_sys("cannot listen on %s",
                host_port(opt.host, opt.port, where, sizeof where));
    if (set_nonblocking(s.listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    stop_wake_fd(STOP_LISTEN, s.listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(s.listenfd);

    /* The stop handler shuts the listener down, which select() reports as
     * readable: the loop wakes and sees the flag. */
    while (!stop_requested())
        serve_round(&s);

    while (s.nconns > 0)
        close_conn(&s, s.conns[s.nconns - 1]);
    free(s.conns);
    stop_wake_fd(STOP_LISTEN, -1);
    close(s.listenfd);
    log_stats(s.served, s.echoed);
    return 0;
}
