/* 09-leader-follower/server.c -- N threads take turns at one epoll instance.
 *
 * Model:   N threads (-t, 4 by default; the main thread is one of them)
 *          share one epoll instance and take turns. One thread, the
 *          leader, sleeps in epoll_wait() for one event; the others, the
 *          followers, sleep on a condition variable. When an event comes,
 *          the leader promotes a follower to leader and then handles the
 *          event itself: no queue, no hand-off of the request. Then it
 *          re-arms the socket and rejoins the followers. Every socket is
 *          registered with EPOLLONESHOT: once reported, it is reported to
 *          nobody else until the thread handling it re-arms it with
 *          EPOLL_CTL_MOD, so one connection is never in two threads' hands.
 * Cost:    N threads whatever the load; per client, 06's descriptor and
 *          struct conn, output bounded by CONN_HIGH_WATER. Per event, an
 *          epoll_ctl(MOD) to re-arm and a promotion (a futex wake of the
 *          next leader), but no context switch between the thread that
 *          saw the event and the one that handles it: they are the same.
 * Observe: strace -f -e trace=epoll_wait,epoll_ctl,futex
 * ./09-leader-follower/server while a client sends: one thread at a time is
 * inside epoll_wait(); each report is followed by a futex wake of the next
 * leader, and later by an EPOLL_CTL_MOD that re-arms it. ps -L -p PID shows N
 * threads however many clients. See also: 08-half-sync-half-async (before: an
 * I/O thread hands requests to workers through a queue), 06-epoll-lt-et (the
 * same epoll loop with one thread), common/conn.c for the output buffer.
 *
 * Run it:  ./09-leader-follower/server -t 4     (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9009
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
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
enum { DEFAULT_THREADS = 4, MAX_THREADS = 256 };

/* A turn reads until EAGAIN, but at most this many times: a client that
 * keeps its socket full would otherwise keep its thread for ever. The
 * re-arm (EPOLL_CTL_MOD) makes epoll look at the socket afresh, so data
 * left over is reported again, behind whatever else is ready. */
enum { READS_PER_TURN = 16 };

/* What every thread shares. */
struct server {
    int listenfd, epfd; /* the listener is non-blocking */
    /* The turn. has_leader is true while a thread is in (or on its way
     * to) epoll_wait(); followers sleep on no_leader until it is false.
     * turn_lock guards has_leader. */
    pthread_mutex_t turn_lock;
    pthread_cond_t no_leader;
    bool has_leader;
    /* Every open connection, indexed by descriptor (as Redis does), so
     * that main() can close them at the stop. table_lock guards conns and
     * cap, never what a struct conn holds: a connection belongs to the
     * thread that handles its event, and to nobody while it waits. */
    pthread_mutex_t table_lock;
    struct conn **conns;
    size_t cap;
};

/* One thread's counters, written by that thread alone and summed by
 * main() after pthread_join(): no hot counter shared by all. Aligned to a
 * cache line, so that neighbours do not bounce one line between cores. */
struct worker {
    _Alignas(64) pthread_t tid;
    struct server *s;
    unsigned long long events, served, echoed;
};

/* Waits until no thread leads, then leads. Returns false, without
 * leading, once a stop was requested: the caller leaves. The stop flag is
 * set by a signal handler, which cannot touch the mutex; so whoever finds
 * it set here wakes every follower, under the lock. A follower tests the
 * flag under the lock before it sleeps, so it either sees the flag or is
 * already asleep when the broadcast comes: no wake-up is lost. */
static bool lead(struct server *s)
{
    bool go;

    pthread_mutex_lock(&s->turn_lock);
    while (s->has_leader && !stop_requested())
        pthread_cond_wait(&s->no_leader, &s->turn_lock);
    go = !stop_requested();
    if (go)
        s->has_leader = true;
    else
        pthread_cond_broadcast(&s->no_leader);
    pthread_mutex_unlock(&s->turn_lock);
    return go;
}

/* The leader, back from epoll_wait() with an event, steps down: one
 * follower wakes and becomes the next leader, while this thread goes on
 * to handle the event. */
static void promote_follower(struct server *s)
{
    pthread_mutex_lock(&s->turn_lock);
    s->has_leader = false;
    pthread_cond_signal(&s->no_leader);
    pthread_mutex_unlock(&s->turn_lock);
}

/* Re-arms fd for events (EPOLLONESHOT disabled it when it was reported),
 * with data as its epoll data. From the moment epoll_ctl() returns, the
 * socket may be reported to the leader and handled by another thread: the
 * caller must not touch its connection any more.
 *
 * The MOD is made under turn_lock. The kernel already orders it before
 * the report another thread receives; but ThreadSanitizer does not see
 * EPOLL_CTL_MOD as a release (only ADD), and would call the next thread's
 * use of the connection a race. That thread takes turn_lock in
 * promote_follower() before it touches the connection, after this
 * critical section: the order is then visible to TSan too. */
static void rearm(struct server *s, int fd, uint32_t events, void *data)
{
    struct epoll_event ev = {.events = events, .data.ptr = data};

    pthread_mutex_lock(&s->turn_lock);
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
        err_sys("epoll_ctl MOD");
    pthread_mutex_unlock(&s->turn_lock);
}

/* What epoll should report for c, once; see conn.h. */
static uint32_t interest(const struct conn *c)
{
    return (conn_wants_read(c) ? EPOLLIN : 0u) |
           (conn_wants_write(c) ? EPOLLOUT : 0u) | EPOLLONESHOT;
}

/* Enters c in the table; false (and c untouched) if memory ran out. */
static bool table_add(struct server *s, struct conn *c)
{
    size_t fd = (size_t)c->fd;
    bool ok = true;

    pthread_mutex_lock(&s->table_lock);
    if (fd >= s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap <= fd)
            cap *= 2;
        struct conn **bigger = realloc(s->conns, cap * sizeof *bigger);
        if (bigger == NULL) {
            ok = false;
        } else {
            memset(bigger + s->cap, 0, (cap - s->cap) * sizeof *bigger);
            s->conns = bigger;
            s->cap = cap;
        }
    }
    if (ok)
        s->conns[fd] = c;
    pthread_mutex_unlock(&s->table_lock);
    return ok;
}

/* Logs c, counts its bytes for w and frees it. The slot is emptied before
 * close(): once the descriptor is closed, the acceptor may be given the
 * same number at once, and must find the slot free. */
static void close_conn(struct server *s, struct worker *w, struct conn *c)
{
    if (c->error != 0 && !stop_requested()) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    w->echoed += c->nbytes;
    log_closed(c->peer, c->nbytes);
    pthread_mutex_lock(&s->table_lock);
    s->conns[c->fd] = NULL;
    pthread_mutex_unlock(&s->table_lock);
    conn_free(c);
}

/* Handles one report for c, then closes it or re-arms it. Only this
 * thread can hold c now: its EPOLLONESHOT report went to us alone, and
 * nobody else gets one until the re-arm. That is also what makes the
 * close safe. Without EPOLLONESHOT, a socket still readable while we read
 * it would be reported to the next leader too: two threads would read the
 * same socket and interleave its bytes in the echo, and one could free c
 * while the other was still using it. */
static void on_conn_event(struct server *s, struct worker *w, struct conn *c,
                          uint32_t events)
{
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
    if (conn_finished(c))
        close_conn(s, w, c);
    else
        rearm(s, c->fd, interest(c), c);
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s, struct worker *w)
{
    /* Out of descriptors, conn_accept() turns the client away with the
     * spare descriptor. The spare is shared by the whole process, but only
     * the thread holding the listener's one-shot report accepts, so no two
     * threads ever shed at once. */
    struct conn *c = conn_accept(s->listenfd);

    if (c == NULL) {
        if (errno == EAGAIN || stop_requested())
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    if (!table_add(s, c)) {
        err_ret("no memory for a client");
        conn_free(c);
        return true;
    }
    w->served++;
    log_accepted(c->peer);
    /* The ADD comes last: it hands c over. The next leader may take its
     * first report, serve it and close it before epoll_ctl() returns. */
    struct epoll_event ev = {.events = interest(c), .data.ptr = c};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        err_sys("epoll_ctl ADD");
    return true;
}

/* Handles the listener's report: accepts every client waiting, then
 * re-arms the listener, one-shot as the connections are, so that only
 * this thread accepts meanwhile. At the stop, the handler has shut the
 * listener down, and epoll reports it (EPOLLHUP) for as long as it is
 * watched: it is re-armed without EPOLLONESHOT then, so that every leader
 * still to come returns from epoll_wait() at once and finds the flag. */
static void on_listener(struct server *s, struct worker *w)
{
    while (!stop_requested() && accept_one(s, w))
        ;
    rearm(s, s->listenfd, EPOLLIN | (stop_requested() ? 0u : EPOLLONESHOT),
          NULL);
}

/* A thread's life: wait for the turn to lead, wait for one event, promote
 * a follower, handle the event; again, until the stop. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct server *s = w->s;
    struct epoll_event ev;

    while (lead(s)) {
        /* One event: whatever else is ready waits for the next leader. */
        int n = epoll_wait(s->epfd, &ev, 1, -1);
        int err = errno;

        promote_follower(s);
        if (n == -1) {
            if (err == EINTR)
                continue; /* a signal: lead() looks at the stop flag */
            errno = err;
            err_sys("epoll_wait");
        }
        w->events++;
        if (ev.data.ptr == NULL)
            on_listener(s, w);
        else
            on_conn_event(s, w, ev.data.ptr, ev.events);
    }
    return NULL;
}

/* Starts workers 1 .. n-1; worker 0 is the main thread, which calls
 * worker_main() itself. The stop signals are blocked in the threads
 * started here (a thread inherits its creator's mask), so they land on
 * the main thread, which sleeps only in epoll_wait() and
 * pthread_cond_wait(): ThreadSanitizer runs the handler there at once
 * (see signals.h). */
static void start_workers(struct worker *workers, size_t n)
{
    sigset_t stop_signals, old;

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    for (size_t i = 1; i < n; i++) {
        /* pthread functions return the error number; errno is untouched. */
        int rc =
            pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            errno = rc;
            err_sys("pthread_create");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
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
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
                             .data.ptr = NULL};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listenfd, &ev) == -1)
        err_sys("epoll_ctl ADD");
}

/* After every thread has been joined: closes what is still open, and
 * counts its bytes for worker 0. */
static void close_all(struct server *s, struct worker *w0)
{
    for (size_t fd = 0; fd < s->cap; fd++) {
        if (s->conns[fd] != NULL)
            close_conn(s, w0, s->conns[fd]);
    }
    free(s->conns);
}

/* Prints the stats line, with the events each thread handled. */
static void print_stats(const struct worker *workers, size_t n)
{
    unsigned long long served = 0, echoed = 0, events = 0;
    char per_thread[768], more[900];
    size_t len = 0;

    per_thread[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        served += workers[i].served;
        echoed += workers[i].echoed;
        events += workers[i].events;
        int k = snprintf(per_thread + len, sizeof per_thread - len, "%s%llu",
                         i ? "+" : "", workers[i].events);
        if (k < 0 || (size_t)k >= sizeof per_thread - len)
            break; /* 256 threads may not fit: the total still does */
        len += (size_t)k;
    }
    snprintf(more, sizeof more, "%llu events, by thread %s", events,
             per_thread);
    log_stats_more(served, echoed, more);
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
        {'t', NULL, "N",
         "threads, 1 to 256, the main thread included "
         "(default 4)"},
        {0, NULL, NULL, NULL},
    };
    struct net_options opt;
    struct server s = {0};
    struct worker *workers;
    long nthreads = DEFAULT_THREADS;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &nthreads);
    signals_init();
    listen_and_watch(&s, &opt);
    stop_wake_fd(STOP_LISTEN, s.listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    pthread_mutex_init(&s.turn_lock, NULL);
    pthread_cond_init(&s.no_leader, NULL);
    pthread_mutex_init(&s.table_lock, NULL);

    /* aligned_alloc(), not calloc(): struct worker is cache-line aligned. */
    workers = aligned_alloc(_Alignof(struct worker),
                            (size_t)nthreads * sizeof *workers);
    if (workers == NULL)
        err_sys("aligned_alloc");
    for (long i = 0; i < nthreads; i++)
        workers[i] = (struct worker){.s = &s};
    start_workers(workers, (size_t)nthreads);
    /* Announced once every thread runs: from this line on, a test sees
     * the N threads it expects. */
    log_listening(s.listenfd);

    worker_main(&workers[0]);

    /* The stop: the handler shut the listener down, whose report woke the
     * leader; every thread that came to lead() since has left and woken
     * the followers. Wait for them all, then close what is left: nobody
     * else touches the table now. */
    for (long i = 1; i < nthreads; i++)
        pthread_join(workers[i].tid, NULL);
    close_all(&s, &workers[0]);
    close(s.epfd);
    stop_wake_fd(STOP_LISTEN, -1);
    close(s.listenfd);
    print_stats(workers, (size_t)nthreads);
    free(workers);
    return 0;
}
