/* 11-proactor/server.c -- one thread, io_uring: the kernel does the I/O.
 *
 * Model:   a Proactor. The thread never asks whether a socket is ready.
 *          It starts operations -- accept a client into this address,
 *          receive into this buffer, send these bytes -- by writing
 *          entries into io_uring's submission ring (ring.c), and learns
 *          that they are done from its completion ring: the bytes are
 *          already in the buffer, or gone from it, when it hears. Each
 *          completion starts its connection's next operation. One
 *          io_uring_enter() submits a whole batch and sleeps until
 *          something completes. The stop is one more operation, way (b):
 *          a poll of the signalfd, whose completion ends the loop.
 * Cost:    one descriptor and one struct conn, with its BUF_SIZE buffer,
 *          per client for its whole life: the kernel needs the buffer
 *          before the data exists. One operation per client in flight, so
 *          a client that does not read costs that buffer and nothing more.
 *          Where io_uring cannot be used (sysctl, seccomp, an old kernel)
 *          the server says why in one line and exits 1.
 * Observe: strace -f -c ./11-proactor/server -q, clients echoing: once
 *            listening, io_uring_enter and nothing else, fewer calls
 *            than messages; cat /proc/PID/fdinfo/5: the rings' indexes.
 * See also: 07-reactor (the Reactor: the model this one turns inside
 *          out), 06-epoll-lt-et (what bench/ measures it against), ring.c
 *          for the rings by hand.
 *
 * Run it:  ./11-proactor/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9011
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "ring.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 1024 };

/* Submission slots; the completion ring gets twice as many. More
 * operations than that may be in flight: they wait in the kernel, not in
 * the ring, and a completion that finds the ring full waits there too. */
enum { RING_ENTRIES = 1024 };

/* Each connection's one buffer: what a receive may take at once. */
enum { BUF_SIZE = 16384 };

/* The user_data of the listener's and the stop's operations. A
 * connection's is the address of its struct conn, never this small. */
enum { UD_ACCEPT = 1, UD_LISTENER_READY, UD_STOP };

struct conn {
    int fd;
    char peer[SOCK_NTOP_LEN];  /* "127.0.0.1:40000", for the log */
    size_t len, sent;          /* buf[sent, len): received, not yet sent */
    unsigned long long nbytes; /* bytes echoed */
    char buf[BUF_SIZE];        /* the kernel's while an operation runs */
};

struct server {
    int listenfd, sigfd;
    struct ring ring;
    struct sockaddr_storage cliaddr; /* the accept in flight fills these */
    socklen_t clilen;
    bool client_waiting; /* the listener's poll saw a client queued */
    bool stopping;       /* the stop's poll completed */
    unsigned long long served, echoed; /* for the stats line */
};

/* Writes one operation into the submission ring; the kernel sees it at
 * the next ring_enter(). What addr points to must stay put until the
 * operation completes: the kernel writes to it (or reads it) then. */
static struct io_uring_sqe *submit(struct server *s, unsigned char opcode,
                                   int fd, void *addr, size_t len,
                                   uint64_t user_data)
{
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);

    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->addr = (uintptr_t)addr;
    sqe->len = (unsigned)len;
    sqe->user_data = user_data;
    return sqe;
}

/* Accept the next client, its address into s->cliaddr. */
static void start_accept(struct server *s)
{
    s->clilen = sizeof s->cliaddr;
    struct io_uring_sqe *sqe =
        submit(s, IORING_OP_ACCEPT, s->listenfd, &s->cliaddr, 0, UD_ACCEPT);
    sqe->addr2 = (uintptr_t)&s->clilen; /* in: its room; out: its length */
    sqe->accept_flags = SOCK_CLOEXEC;
}

/* Tell us when fd is readable: nothing is read. */
static void start_poll(struct server *s, int fd, uint64_t user_data)
{
    submit(s, IORING_OP_POLL_ADD, fd, NULL, 0, user_data)->poll32_events =
        POLLIN;
}

/* Receive into c's buffer: the kernel copies the bytes in as they come. */
static void start_recv(struct server *s, struct conn *c)
{
    c->len = c->sent = 0;
    submit(s, IORING_OP_RECV, c->fd, c->buf, sizeof c->buf, (uintptr_t)c);
}

/* Send what is left of c's buffer. MSG_NOSIGNAL: a client that has gone
 * is an EPIPE completion, not a SIGPIPE. */
static void start_send(struct server *s, struct conn *c)
{
    submit(s, IORING_OP_SEND, c->fd, c->buf + c->sent, c->len - c->sent,
           (uintptr_t)c)
        ->msg_flags = MSG_NOSIGNAL;
}

/* Closes and frees c, which has no operation in flight: nothing of the
 * kernel's points at its buffer any more. res < 0 is the error of call. */
static void close_conn(struct conn *c, int res, const char *call)
{
    if (res < 0) {
        errno = -res;
        err_ret("%s %s", call, c->peer);
    }
    close(c->fd);
    log_closed(c->peer, c->nbytes);
    free(c);
}

/* An accept completed: res is the new descriptor, or -errno. Either way
 * the next accept is started, unless descriptors have run out. */
static void on_accept(struct server *s, int res)
{
    if (res < 0) {
        errno = -res;
        /* The kernel's accept, like accept(2), takes a descriptor before
         * it looks for a client: EMFILE says nothing about the queue, and
         * another accept now would fail at once, forever. So wait for a
         * client to be queued (a poll of the listener); if accepting it
         * fails too, turn it away with the spare descriptor, as 04 to 09
         * do, and wait for the next. */
        if (errno == EMFILE || errno == ENFILE) {
            if (s->client_waiting) {
                s->client_waiting = false;
                if (shed_connection(s->listenfd) == 0) {
                    errno = -res;
                    err_ret("accept: a client was lost");
                }
            }
            start_poll(s, s->listenfd, UD_LISTENER_READY);
            return;
        }
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        start_accept(s);
        return;
    }
    s->client_waiting = false;
    struct conn *c = malloc(sizeof *c);
    if (c == NULL) {
        err_ret("no memory for a client");
        close(res);
    } else {
        c->fd = res;
        c->nbytes = 0;
        sock_ntop((struct sockaddr *)&s->cliaddr, s->clilen, c->peer,
                  sizeof c->peer);
        s->served++;
        log_accepted(c->peer);
        start_recv(s, c);
    }
    /* The next accept goes to the kernel at once, not with the round's
     * batch: if another client is queued, it is accepted during this
     * call and its completion read in this same round. A crowd that
     * connects at once is then taken in one round, as 04 to 09's accept
     * loops take it, rather than one client per round. */
    start_accept(s);
    ring_enter(&s->ring, false);
}

/* A receive completed: res bytes are in c->buf already. Send them. */
static void on_recv(struct server *s, struct conn *c, int res)
{
    /* 0: the client half-closed. Everything it sent before has been
     * echoed, since nothing is received while a send is in flight. */
    if (res <= 0) {
        close_conn(c, res, "recv");
        return;
    }
    c->len = (size_t)res;
    start_send(s, c);
}

/* A send completed: res bytes of c->buf are gone. A short send leaves the
 * rest to send; once all has gone, the next receive. */
static void on_send(struct server *s, struct conn *c, int res)
{
    if (res < 0) {
        close_conn(c, res, "send");
        return;
    }
    c->sent += (size_t)res;
    c->nbytes += (unsigned long long)res;
    s->echoed += (unsigned long long)res; /* as sent: the stop may come */
    if (c->sent < c->len)
        start_send(s, c);
    else
        start_recv(s, c);
}

/* Hands one completion to its handler, by its user_data. */
static void on_completion(struct server *s, uint64_t user_data, int res)
{
    struct conn *c;

    switch (user_data) {
    case UD_ACCEPT:
        on_accept(s, res);
        break;
    case UD_LISTENER_READY:
        if (res < 0) {
            errno = -res;
            err_sys("poll of the listener");
        }
        s->client_waiting = true;
        start_accept(s);
        break;
    case UD_STOP: /* SIGINT or SIGTERM is pending: nobody reads it */
        s->stopping = true;
        break;
    default: /* a connection: its one operation in flight says which */
        c = (struct conn *)(uintptr_t)user_data;
        if (c->len == 0)
            on_recv(s, c, res);
        else
            on_send(s, c, res);
    }
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "11-proactor", "an echo server: one thread, io_uring completions",
        9011};
    struct net_options opt;
    struct server s = {0};
    int gai_err;
    char counters[160];

    parse_server_options(argc, argv, &pi, &opt, NULL, NULL, NULL);
    /* The stop, way (b) of common/signals.h: SIGINT and SIGTERM blocked,
     * and a signalfd that the ring polls like any other descriptor. */
    s.sigfd = stop_signalfd();
    s.listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (s.listenfd == -1)
        err_listen(&opt, gai_err);
    if (ring_setup(&s.ring, RING_ENTRIES) == -1)
        err_sys("io_uring cannot be used here, %s", ring_why(errno));
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    start_poll(&s, s.sigfd, UD_STOP);
    start_accept(&s);
    log_listening(s.listenfd);

    /* One round: submit what the last round started, sleep until at
     * least one operation completes, then handle every completion there
     * is. Handlers only write new entries: the next round submits them. */
    while (!s.stopping) {
        ring_enter(&s.ring, true);
        struct io_uring_cqe *cqe;
        while ((cqe = ring_cqe(&s.ring)) != NULL) {
            uint64_t user_data = cqe->user_data;
            int res = cqe->res;
            ring_cqe_seen(&s.ring); /* the slot is the kernel's again */
            on_completion(&s, user_data, res);
        }
    }

    /* exit closes every socket and the ring, which cancels what is still
     * in flight; the kernel tells the clients. */
    snprintf(counters, sizeof counters,
             "%llu ops submitted, %llu completions, %llu io_uring_enter calls",
             s.ring.submitted, s.ring.completed, s.ring.enters);
    log_stats_more(s.served, s.echoed, counters);
    return 0;
}
