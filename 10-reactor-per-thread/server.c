/* 10-reactor-per-thread/server.c -- one event loop per thread.
 *
 * Model:   -t N threads, each running 07's reactor and connection layer
 *          for its whole life. A client is served by one loop, on one
 *          thread, from accept to close: nothing on the echo path is shared
 *          or locked. -A handoff (the default): an acceptor loop accepts,
 *          puts each client in the next loop's inbox and rings its eventfd.
 *          -A reuseport: a listener per loop on one port, and the kernel
 *          picks one per connection by a hash of its addresses. -A herd and
 *          -A exclusive (the lab sheet's): every loop watches one listener,
 *          without and with EPOLLEXCLUSIVE.
 * Cost:    N threads (+1, the acceptor), N epolls; per message what 07
 *          costs; per connection in handoff a lock and an eventfd write and
 *          read. A loop cannot lend its time: the one with the busy clients
 *          stays busy while the others sleep (08 and 09 share out work).
 * Observe: strace -f -e trace=accept4,write,read,epoll_ctl, nc sends a
 *          line: the acceptor's accept4 and eventfd write, then on another
 *          thread the eventfd's read, the client's EPOLL_CTL_ADD, its reads
 *          and writes. ss -tln: with -A reuseport, N listeners on one port.
 * See also: 09-leader-follower (before: threads take turns at one epoll),
 *           11-proactor (after), 07-reactor (the loop each thread runs),
 *           08-half-sync-half-async (a queue per message, not per client).
 *
 * Run it:  ./10-reactor-per-thread/server [-t N] [-A handoff|reuseport]
 *          printf 'hello\n' | nc -N 127.0.0.1 9010
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "reactor.h"
#include "signals.h"
#include "tcp.h"

enum { LISTEN_BACKLOG = 1024, MAX_LOOPS = 64, INBOX_MAX = 1024 };
enum dispatch { HANDOFF, REUSEPORT, HERD, EXCLUSIVE };

/* One loop: only its thread touches r, tcp and the clients. Shared: the
 * inbox, under its lock, where the acceptor puts clients, and the counters
 * the stop reads as they grow (atomics, each loop on its own cache line). */
struct loop {
    _Alignas(64) struct reactor *r;
    struct tcp_server *tcp;        /* 07's layer, with no listener of its own */
    int wakefd;                    /* handoff: the eventfd the acceptor rings */
    pthread_mutex_t lock;          /* guards inbox and n */
    struct conn *inbox[INBOX_MAX]; /* handed over, not taken yet */
    size_t n;
    atomic_ullong conns, messages; /* for the stats line */
};

static struct server {
    long dispatch; /* -A, an enum dispatch */
    long nloops;   /* -t */
    size_t next;   /* the acceptor's round-robin, its own */
    struct loop loops[MAX_LOOPS];
} srv = {.dispatch = HANDOFF, .nloops = 2};

/* --- the application: 07's echo, counted per loop -------------------- */
static void on_connection(struct tcp_conn *c)
{
    ((struct loop *)tcp_conn_ctx(c))->conns++; /* atomic: the stop reads it */
    log_accepted(c->io.peer);
}

static size_t on_message(struct tcp_conn *c, const char *data, size_t len)
{
    ((struct loop *)tcp_conn_ctx(c))->messages++;
    tcp_conn_send(c, data, len);
    return len;
}

/* A client that does not read: read no more from it until it drains. */
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
    if (c->io.error != 0) {
        errno = c->io.error;
        err_ret("%s %s", c->io.failed_call, c->io.peer);
    }
    log_closed(c->io.peer, c->io.nbytes);
}

/* The dispatch. The acceptor's side of a handoff: c goes to the next loop,
 * round-robin. Only the first client into an empty inbox rings: the loop
 * reads the eventfd before it empties the inbox. A loop INBOX_MAX clients
 * behind gets no more. */
static void hand_off(struct conn *c)
{
    struct loop *l = &srv.loops[srv.next++ % (size_t)srv.nloops];
    pthread_mutex_lock(&l->lock);
    size_t n = l->n;
    if (n < INBOX_MAX)
        l->inbox[l->n++] = c;
    pthread_mutex_unlock(&l->lock);
    if (n == INBOX_MAX) {
        err_msg("%s: its loop is %d clients behind: closed", c->peer,
                INBOX_MAX);
        conn_free(c);
    } else if (n == 0 && eventfd_write(l->wakefd, 1) == -1) {
        err_sys("write eventfd");
    }
}

/* The loop's side: adopt the whole inbox, as if this loop had accepted
 * each client (the acceptor waits on the lock meanwhile). */
static void on_wake(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct loop *l = arg;
    (void)r, (void)mask;
    if (eventfd_read(fd, &(eventfd_t){0}) == -1 && errno != EAGAIN)
        err_sys("read eventfd");
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n; i++)
        tcp_server_adopt(l->tcp, l->inbox[i]);
    l->n = 0;
    pthread_mutex_unlock(&l->lock);
}

/* Takes one client; false when nobody is waiting. l is the loop watching
 * listenfd, or NULL for the acceptor. Out of descriptors, conn_accept()
 * sheds a client with the spare that every thread shares (an atomic). */
static bool accept_one(struct loop *l, int listenfd)
{
    struct conn *c = conn_accept(listenfd);
    if (c == NULL) {
        if (errno == EAGAIN)
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    l == NULL ? hand_off(c) : tcp_server_adopt(l->tcp, c); /* for good */
    return true;
}

/* Take every client waiting. In -A herd every loop is woken for each
 * client, and all but one find nobody (EAGAIN). */
static void on_accept(struct reactor *r, int fd, unsigned mask, void *arg)
{
    (void)r, (void)mask;
    while (accept_one(arg, fd))
        ;
}

/* SO_REUSEPORT, before bind(): the sockets of one user bound so to a port
 * share it, and the kernel spreads connections by an address hash. */
static int reuse_port(int fd, void *arg)
{
    (void)arg;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &(int){1}, sizeof(int));
}

/* A non-blocking listener. Its port is kept in opt (with -p 0, the
 * kernel's choice) for the next listener of -A reuseport. */
static int listen_nonblocking(struct net_options *opt, int *gai_err)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = tcp_listen_with(opt->host, opt->port, LISTEN_BACKLOG,
                             srv.dispatch == REUSEPORT ? reuse_port : NULL,
                             NULL, gai_err);
    if (fd == -1)
        return -1;
    if (set_nonblocking(fd) == -1 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
        getnameinfo((struct sockaddr *)&ss, len, NULL, 0, opt->port,
                    sizeof opt->port, NI_NUMERICSERV) != 0)
        err_sys("listener");
    return fd;
}

/* The stop, way (b): the signalfd is readable, on the one loop that
 * watches it. Print the totals (each counter as it is at that instant) and
 * exit: exit() closes every socket; no other loop is woken or joined. */
static void on_stop(struct reactor *r, int fd, unsigned mask, void *arg)
{
    char more[MAX_LOOPS * 44 + 16];
    unsigned long long conns = 0, bytes = 0;
    size_t n = (size_t)snprintf(more, sizeof more, "by thread");

    (void)r, (void)fd, (void)mask, (void)arg;
    for (long i = 0; i < srv.nloops; i++) {
        struct loop *l = &srv.loops[i];
        unsigned long long c = atomic_load(&l->conns);
        conns += c;
        bytes += tcp_server_sent(l->tcp);
        n += (size_t)snprintf(more + n, sizeof more - n, " %llu/%llu", c,
                              atomic_load(&l->messages));
    }
    log_stats_more(conns, bytes, more);
    exit(0);
}

static void *loop_main(void *arg)
{
    if (reactor_run(((struct loop *)arg)->r) == -1)
        err_sys("epoll_wait");
    return NULL; /* never reached: on_stop() exits */
}

static int on_option(int key, const char *arg, void *ctx)
{
    static const char *const names[] = {"handoff", "reuseport", "herd",
                                        "exclusive", NULL};

    (void)ctx;
    if (key == 't')
        return parse_number(arg, 1, MAX_LOOPS, &srv.nloops);
    return parse_choice(arg, names, &srv.dispatch);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "10-reactor-per-thread", "an echo server: one reactor per thread",
        9010};
    static const struct lesson_option options[] = {
        {'t', NULL, "N", "loops, one per thread, 1 to 64 (default 2)"},
        {'A', NULL, "handoff|reuseport|herd|exclusive",
         "how clients reach the loops (default handoff)"},
        {0, NULL, NULL, NULL},
    };
    static const struct tcp_callbacks callbacks = {
        on_connection, on_message, on_write_complete, on_high_water, on_close};
    struct net_options opt;
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, NULL);
    /* The stop, way (b), as in 07, before any thread starts: each inherits
     * the blocked signals, and one loop takes them as an event. */
    int sigfd = stop_signalfd();
    int listenfd = listen_nonblocking(&opt, &gai_err);
    if (listenfd == -1)
        err_listen(&opt, gai_err);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");

    /* Every loop is built here, then runs on its own thread alone. */
    for (long i = 0; i < srv.nloops; i++) {
        struct loop *l = &srv.loops[i];
        int fd = i > 0 && srv.dispatch == REUSEPORT
                     ? listen_nonblocking(&opt, &gai_err)
                     : listenfd;
        unsigned mask = srv.dispatch == EXCLUSIVE ? RE_EXCLUSIVE : 0;
        l->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
        l->r = reactor_new("epoll");
        l->tcp = l->r ? tcp_server_new(l->r, -1, &callbacks, l, 0) : NULL;
        if (fd == -1 || l->tcp == NULL ||
            (srv.dispatch != HANDOFF &&
             reactor_watch(l->r, fd, RE_READ | mask, on_accept, l) == -1) ||
            (srv.dispatch == HANDOFF &&
             ((l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
              reactor_watch(l->r, l->wakefd, RE_READ, on_wake, l) == -1)))
            err_sys("loop %ld", i);
    }
    /* The thread that runs main() runs a loop too, which takes the stop:
     * the acceptor's in handoff, loop 0's otherwise. */
    struct reactor *first = srv.loops[0].r;
    if (srv.dispatch == HANDOFF &&
        ((first = reactor_new("epoll")) == NULL ||
         reactor_watch(first, listenfd, RE_READ, on_accept, NULL) == -1))
        err_sys("the acceptor's loop");
    if (reactor_watch(first, sigfd, RE_READ, on_stop, NULL) == -1)
        err_sys("watch the signalfd");
    for (long i = srv.dispatch == HANDOFF ? 0 : 1; i < srv.nloops; i++) {
        pthread_t tid;
        int rc = pthread_create(&tid, NULL, loop_main, &srv.loops[i]);
        if (rc != 0) {
            errno = rc; /* pthread functions return the error number */
            err_sys("pthread_create");
        }
        pthread_setname_np(tid, "loop"); /* ps -L and top -H show it */
    }
    /* Announced once every thread runs: from here a test sees them all. */
    log_listening(listenfd);

    if (reactor_run(first) == -1)
        err_sys("epoll_wait");
    return 0; /* never reached: on_stop() exits */
}
