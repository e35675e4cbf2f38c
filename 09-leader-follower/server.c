/* 09-leader-follower/server.c -- N threads take turns at one epoll instance.
 *
 * Model:   N threads (-t, 4 by default, the main thread included) share one
 *          epoll instance. The leader sleeps in epoll_wait() for one event,
 *          the followers on a condition variable. When the event comes, the
 *          leader promotes a follower, then handles the event itself: no
 *          queue, no hand-off. Every entry is EPOLLONESHOT: reported to one
 *          thread, then to nobody until that thread re-arms it with
 *          EPOLL_CTL_MOD. The stop signals come the same way, on a signalfd.
 * Cost:    N threads whatever the load; per client, 06's struct conn and a
 *          struct entry. Per event, an epoll_wait() of its own, a futex
 *          wake of the next leader and an EPOLL_CTL_MOD, but no switch
 *          between the thread that saw the event and the one handling it.
 * Observe: strace -f -e trace=epoll_wait,epoll_ctl,futex \
 *              ./09-leader-follower/server
 *            one thread at a time in epoll_wait(); after each report a
 *            futex wake of the next leader, later an EPOLL_CTL_MOD;
 *          ps -L -p PID: N threads however many clients.
 * See also: 08-half-sync-half-async (before), 06-epoll-lt-et (the same
 *           loop, one thread), 10-reactor-per-thread (after: a loop each).
 *
 * Run it:  ./09-leader-follower/server -t 4     (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9009
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 1024, DEFAULT_THREADS = 4, MAX_THREADS = 256 };
/* A turn reads until EAGAIN, but at most this many times, or a client that
 * keeps its socket full would keep its thread for ever: the re-arm reports
 * what is left again, behind whatever else is ready. */
enum { READS_PER_TURN = 16 };

/* What an epoll entry's data.ptr points to: a client, or, with conn NULL,
 * the listener or the signalfd. The epoll_ctl() that re-arms an entry
 * happens before the report that gives it to the next thread: what one
 * wrote, the next reads, with no lock. armed says so in C11, which knows no
 * system calls: arm() stores it with release order before epoll_ctl(), the
 * thread given the report loads it with acquire order; on x86, plain moves. */
struct entry {
    struct conn *conn;
    atomic_bool armed; /* true while epoll holds it, false in a thread's */
};

/* One thread. Its count of events has a cache line to itself, and is
 * atomic because the thread that takes the stop reads it meanwhile. */
struct worker {
    _Alignas(64) struct server *s;
    atomic_ullong events;
};

/* What every thread shares. */
struct server {
    struct worker workers[MAX_THREADS]; /* [0] is the main thread */
    int listenfd, sigfd, epfd;          /* the listener is non-blocking */
    struct entry listener, stop;
    /* The turn: has_leader, guarded by turn_lock, is true while a thread
     * is in (or on its way to) epoll_wait(); followers sleep on no_leader. */
    pthread_mutex_t turn_lock;
    pthread_cond_t no_leader;
    bool has_leader;
    size_t nworkers;
    struct served totals; /* atomics: every thread adds to them */
};

/* Waits until no thread leads, then leads. */
static void lead(struct server *s)
{
    pthread_mutex_lock(&s->turn_lock);
    /* A while, not an if: a wake-up says "look again", and another
     * follower may have taken the turn first. */
    while (s->has_leader)
        pthread_cond_wait(&s->no_leader, &s->turn_lock);
    s->has_leader = true;
    pthread_mutex_unlock(&s->turn_lock);
}

/* The leader, back from epoll_wait() with an event, steps down: one
 * follower wakes to lead, while this thread handles the event. */
static void promote_follower(struct server *s)
{
    pthread_mutex_lock(&s->turn_lock);
    s->has_leader = false;
    pthread_cond_signal(&s->no_leader);
    pthread_mutex_unlock(&s->turn_lock);
}

/* Hands e, for descriptor fd, to epoll (op EPOLL_CTL_ADD or _MOD), to be
 * reported once. Once epoll_ctl() returns, the next leader may hold e, even
 * close it: the caller must not touch it. No lock: see struct entry. */
static void arm(struct server *s, int op, int fd, struct entry *e)
{
    struct conn *c = e->conn; /* a client waits for what conn.h says */
    uint32_t events = c == NULL ? EPOLLIN
                                : (conn_wants_read(c) ? EPOLLIN : 0u) |
                                      (conn_wants_write(c) ? EPOLLOUT : 0u);
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.ptr = e};

    atomic_store_explicit(&e->armed, true, memory_order_release);
    if (epoll_ctl(s->epfd, op, fd, &ev) == -1)
        err_sys("epoll_ctl %s", op == EPOLL_CTL_ADD ? "ADD" : "MOD");
}

/* Handles one report for e, then re-arms or closes it. Only this thread
 * holds e: its one-shot report came to us alone. Without EPOLLONESHOT, a
 * socket still readable while we read it would be reported to the next
 * leader too: two threads would interleave its bytes in the echo, and one
 * could free c while the other was using it. */
static void on_conn_event(struct server *s, struct entry *e, uint32_t events)
{
    struct conn *c = e->conn;
    unsigned long long before = c->nbytes;

    /* An error or hang-up is reported whatever was asked for: the next
     * read() or write() says which, and ends the connection. */
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_wants_read(c)) {
        for (int n = 0; n < READS_PER_TURN && conn_wants_read(c); n++) {
            if (conn_read(c, CONN_READ_MAX) <= 0)
                break; /* EAGAIN, the client's EOF, or a failure */
        }
    }
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && conn_wants_write(c))
        conn_flush(c);
    /* Counted as written: the stop's totals include open connections. */
    s->totals.bytes += c->nbytes - before;
    if (!conn_finished(c)) {
        arm(s, EPOLL_CTL_MOD, c->fd, e);
        return;
    }
    if (c->error != 0) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    log_closed(c->peer, c->nbytes);
    conn_free(c); /* close() ends the entry too: no EPOLL_CTL_DEL */
    free(e);
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s)
{
    /* Out of descriptors, conn_accept() sheds the client with the spare
     * descriptor, one for the process; but only the thread holding the
     * listener's one-shot report accepts, so no two shed at once. */
    struct conn *c = conn_accept(s->listenfd);
    if (c == NULL) {
        if (errno == EAGAIN)
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    struct entry *e = malloc(sizeof *e);
    if (e == NULL) {
        err_ret("no memory for a client");
        conn_free(c);
        return true;
    }
    e->conn = c;
    s->totals.conns++;
    log_accepted(c->peer);
    /* The ADD comes last: it hands e over. The next leader may take its
     * first report, serve it and close it before epoll_ctl() returns. */
    arm(s, EPOLL_CTL_ADD, c->fd, e);
    return true;
}

/* The listener's report: accepts every client waiting, then re-arms the
 * listener, one-shot too, so that only this thread accepts meanwhile. */
static void on_listener(struct server *s)
{
    while (accept_one(s))
        ;
    arm(s, EPOLL_CTL_MOD, s->listenfd, &s->listener);
}

/* The stop: a signal waits on the signalfd, whose one-shot report came to
 * this thread alone. Prints the totals of this moment, with each thread's
 * events, and exits: exit() closes every socket (the kernel tells each
 * client) and ends every thread where it is. Nobody to wake or join. */
static _Noreturn void stop(const struct server *s)
{
    char per_thread[MAX_THREADS * 21] = "", more[sizeof per_thread + 64];
    unsigned long long events = 0;
    size_t len = 0;

    for (size_t i = 0; i < s->nworkers; i++) {
        unsigned long long n = s->workers[i].events;
        events += n;
        len += (size_t)snprintf(per_thread + len, sizeof per_thread - len,
                                "%s%llu", i ? "+" : "", n);
    }
    snprintf(more, sizeof more, "%llu events, by thread %s", events,
             per_thread);
    /* The log cuts a line at 1 KiB: past some 200 threads, the list. */
    log_stats_more(s->totals.conns, s->totals.bytes, more);
    exit(0);
}

/* A thread's life: wait for the turn to lead, wait for one event, promote
 * a follower, handle the event; again, until one thread takes the stop. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct server *s = w->s;
    struct epoll_event ev;

    for (;;) {
        lead(s);
        /* One event: whatever else is ready waits for the next leader. */
        int n = epoll_wait(s->epfd, &ev, 1, -1);
        if (n == -1 && errno != EINTR)
            err_sys("epoll_wait");
        promote_follower(s);
        if (n == -1)
            continue; /* stopped and continued: Ctrl-Z, a debugger */
        struct entry *e = ev.data.ptr;
        if (e == &s->stop)
            stop(s);
        /* Take e from epoll: the acquire that pairs with arm(). */
        (void)atomic_load_explicit(&e->armed, memory_order_acquire);
        atomic_store_explicit(&e->armed, false, memory_order_relaxed);
        w->events++;
        if (e == &s->listener)
            on_listener(s);
        else
            on_conn_event(s, e, ev.events);
    }
}

static int on_option(int key, const char *arg, void *ctx)
{
    long *nthreads = ctx;

    if (key == 't')
        return parse_number(arg, 1, MAX_THREADS, nthreads);
    return -1;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "09-leader-follower",
        "an echo server: N threads take turns at one epoll instance", 9009};
    static const struct lesson_option options[] = {
        {'t', NULL, "N", "threads, 1 to 256, main thread included (default 4)"},
        {0, NULL, NULL, NULL},
    };
    /* Static: every thread points into it for the life of the process. */
    static struct server s = {.turn_lock = PTHREAD_MUTEX_INITIALIZER,
                              .no_leader = PTHREAD_COND_INITIALIZER};
    struct net_options opt;
    long nthreads = DEFAULT_THREADS;
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &nthreads);
    /* The stop, way (b) of common/signals.h: a signalfd, watched by epoll. */
    s.sigfd = stop_signalfd();
    s.listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (s.listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(s.listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s.epfd == -1)
        err_sys("epoll_create1");
    arm(&s, EPOLL_CTL_ADD, s.sigfd, &s.stop);
    arm(&s, EPOLL_CTL_ADD, s.listenfd, &s.listener);
    /* Workers 1 .. N-1 (0 is the main thread) inherit the mask in which
     * stop_signalfd() blocked SIGINT and SIGTERM: they interrupt nobody. */
    s.nworkers = (size_t)nthreads;
    for (size_t i = 0; i < s.nworkers; i++)
        s.workers[i].s = &s;
    for (size_t i = 1; i < s.nworkers; i++) {
        pthread_t tid;
        int rc = pthread_create(&tid, NULL, worker_main, &s.workers[i]);
        if (rc != 0) {
            errno = rc; /* pthread functions return the error number */
            err_sys("pthread_create");
        }
        pthread_setname_np(tid, "worker"); /* ps -L and top -H show it */
    }
    log_listening(s.listenfd);  /* once all N run: tests count on it */
    worker_main(&s.workers[0]); /* never returns: a leader exits at the stop */
}
