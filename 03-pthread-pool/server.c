/* 03-pthread-pool/server.c -- a fixed pool of threads fed by a bounded queue.
 *
 * Model:   the main thread only accepts (it sleeps in poll() until a client
 *          is waiting, see wait_for_client()). It hands each connection to a
 *          bounded queue (a mutex and two condition variables); N worker
 *          threads, started once, take connections from it and serve each
 *          one to the end with blocking read() and write(), as lesson 01
 *          does. When the queue is full the main thread waits for room
 *          before it accepts again, so new clients wait in the kernel's
 *          listen backlog, not in our memory.
 * Cost:    N + 1 threads (an 8 MiB stack reserved each, little of it used)
 *          and one descriptor per connection being served or queued,
 *          whatever the load. No thread is created per client, but at most
 *          N clients are served at once: N idle clients stop everyone
 *          else, as one did in lesson 01.
 * Observe: ps -L -o pid,tid,comm -p PID
 *            N + 1 lines, the same thread ids however many clients come;
 *          strace -f -e trace=accept,clone,clone3 -p PID
 *            one accept per client and no clone after start-up.
 * See also: 02-fork-server (before), 04-select (after), which serves many
 *           idle clients with one thread.
 *
 * Run it:  ./03-pthread-pool/server -t 2 -Q 4     (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9003
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 128 };

/* Each worker serves one connection at a time, so one buffer per call of
 * echo(), on that worker's stack. */
enum { ECHO_BUFSIZE = 16384 };

enum { DEFAULT_WORKERS = 4, MAX_WORKERS = 256 };
enum { DEFAULT_CAPACITY = 16, MAX_CAPACITY = 4096 };

/* A connection accepted and not yet taken by a worker. */
struct pending {
    int fd;
    char peer[SOCK_NTOP_LEN];
};

/* The queue between the acceptor and the workers: a ring of capacity
 * slots. Every field below lock is guarded by it. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* workers wait here for a connection */
    pthread_cond_t not_full;  /* the acceptor waits here for room */
    struct pending *items;
    size_t capacity, head, count;
};

/* What the workers share. nbytes is added to by every worker: lock guards
 * it, or two workers finishing at once could lose one's bytes. */
struct pool {
    struct queue q;
    atomic_int *slots; /* worker i's connection, or -1; see signals.h */
    pthread_mutex_t stats_lock;
    unsigned long long nbytes;
};

struct worker {
    pthread_t tid;
    size_t id;
    struct pool *pool;
};

/* Initialises q with room for capacity connections; exits on failure. */
static void queue_init(struct queue *q, size_t capacity)
{
    q->items = calloc(capacity, sizeof *q->items);
    if (q->items == NULL)
        err_sys("calloc");
    q->capacity = capacity;
    q->head = q->count = 0;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
}

/* The stop, and who wakes whom. The handler may not touch a mutex or a
 * condition variable (neither is async-signal-safe): it sets the flag and
 * shuts the registered sockets down. So a thread that returns from a
 * socket call because of it broadcasts both condition variables:
 *   - queue not full: the acceptor was in poll() and returns; it finds
 *     the flag in queue_wait_room() and wakes the idle workers;
 *   - queue full: the acceptor sleeps in pthread_cond_wait(), but every
 *     worker is in read() or write() on a connection the handler shut
 *     down; they return, and queue_get() wakes the acceptor.
 * Both wait loops test the flag under the lock, and the broadcast is made
 * under it, after the flag was set: a waiter either tests the flag after
 * that, and sees it, or was already asleep when the broadcast came. No
 * wake-up is lost.
 *
 * queue_wake_all() wakes every thread waiting on q. Call it with q->lock
 * held, once the stop flag is set. */
static void queue_wake_all(struct queue *q)
{
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
}

/* Sleeps until q has room. Returns 0, or -1 once a stop was requested. */
static int queue_wait_room(struct queue *q)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    /* A while, not an if: a wake-up says "look again", not "there is
     * room", and the stop flag is one more reason to stop waiting. */
    while (q->count == q->capacity && !stop_requested())
        pthread_cond_wait(&q->not_full, &q->lock);
    if (stop_requested()) {
        queue_wake_all(q);
        rc = -1;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Adds a connection to q, which must have room: only the acceptor adds,
 * and it called queue_wait_room() before accept(). */
static void queue_put(struct queue *q, const struct pending *c)
{
    pthread_mutex_lock(&q->lock);
    q->items[(q->head + q->count) % q->capacity] = *c;
    q->count++;
    pthread_cond_signal(&q->not_empty); /* one connection: one worker */
    pthread_mutex_unlock(&q->lock);
}

/* Sleeps until q holds a connection and takes it into *c. Returns 0, or -1
 * once a stop was requested: what is still queued then stays for main(). */
static int queue_get(struct queue *q, struct pending *c)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !stop_requested())
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (stop_requested()) {
        queue_wake_all(q);
        rc = -1;
    } else {
        *c = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        pthread_cond_signal(&q->not_full); /* the acceptor may go on */
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Wakes every waiting thread: for the acceptor, which noticed the stop
 * outside the queue's functions. */
static void queue_stop(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    queue_wake_all(q);
    pthread_mutex_unlock(&q->lock);
}

/* Closes every connection still queued, unserved, and logs it with 0
 * bytes. Call only once no worker is left to take one. */
static void queue_close_all(struct queue *q)
{
    for (; q->count > 0; q->count--) {
        struct pending *c = &q->items[q->head];
        close(c->fd);
        log_closed(c->peer, 0);
        q->head = (q->head + 1) % q->capacity;
    }
}

/* Echoes what connfd sends until the client half-closes or the connection
 * fails, exactly as lesson 01's echo() does, only on a worker thread.
 * Returns the number of bytes echoed; a failure is logged, never fatal. */
static unsigned long long echo(int connfd, const char *peer)
{
    char buf[ECHO_BUFSIZE];
    unsigned long long total = 0;
    ssize_t n;

    while ((n = read(connfd, buf, sizeof buf)) > 0) {
        if (writen(connfd, buf, (size_t)n) == -1) {
            if (!stop_requested())
                err_ret("write to %s", peer);
            return total;
        }
        total += (unsigned long long)n;
    }
    if (n == -1 && !stop_requested())
        err_ret("read from %s", peer);
    return total;
}

/* Serves one connection to the end on worker w, then closes it. */
static void serve(struct worker *w, const struct pending *c)
{
    struct pool *pool = w->pool;
    unsigned long long n = 0;

    /* Register, then test, as lesson 01 does with STOP_CONN: a stop signal
     * from here on shuts c->fd down, and one that came earlier has set the
     * flag. Either way this worker cannot sleep through a stop. */
    atomic_store(&pool->slots[w->id], c->fd);
    if (!stop_requested())
        n = echo(c->fd, c->peer);
    /* Clear the slot before close(): the number may be reused at once by
     * the acceptor, and the handler must not shut down a stranger. */
    atomic_store(&pool->slots[w->id], -1);
    close(c->fd);

    pthread_mutex_lock(&pool->stats_lock);
    pool->nbytes += n;
    pthread_mutex_unlock(&pool->stats_lock);
    log_closed(c->peer, n);
}

/* A worker's life: take a connection, serve it, repeat until the stop.
 * queue_get() notices the stop and wakes everyone else. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pending c;

    while (queue_get(&w->pool->q, &c) == 0)
        serve(w, &c);
    return NULL;
}

/* Starts n workers on pool, with SIGINT and SIGTERM blocked: a thread
 * inherits its creator's signal mask, so main() blocks them around the
 * pthread_create() calls, and the kernel then gives every stop signal to
 * the acceptor. The workers need no handler of their own: the one that
 * runs on the acceptor shuts down their connections too. */
static struct worker *start_workers(struct pool *pool, size_t n)
{
    struct worker *workers = calloc(n, sizeof *workers);
    sigset_t stop_signals, old;

    if (workers == NULL)
        err_sys("calloc");
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    for (size_t i = 0; i < n; i++) {
        workers[i].id = i;
        workers[i].pool = pool;
        /* pthread functions return the error number; errno is untouched. */
        int rc =
            pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            errno = rc;
            err_sys("pthread_create");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* the acceptor takes them */
    return workers;
}

/* The pool's per-worker slots for the stop handler, registered before any
 * worker starts, every one empty (-1). */
static atomic_int *register_slots(size_t n)
{
    atomic_int *slots = calloc(n, sizeof *slots);

    if (slots == NULL)
        err_sys("calloc");
    for (size_t i = 0; i < n; i++)
        atomic_init(&slots[i], -1);
    stop_wake_fds(slots, n);
    return slots;
}

/* Sleeps until a client waits in the listen backlog, or the stop signal
 * has shut the listener down. Returns 0, or -1 with errno set.
 *
 * accept() alone would sleep just as well, as in lesson 01: this poll() is
 * here for ThreadSanitizer (make check). TSan runs a program's handler at
 * once only when the signal lands in a call it treats as blocking, such as
 * poll() or pthread_cond_wait(); otherwise it waits for the thread's next
 * intercepted call. accept() is not such a call and SA_RESTART restarts
 * it, so under TSan the stop would wait for the next client. The acceptor
 * takes every stop signal (see start_workers()) and sleeps only in poll()
 * and pthread_cond_wait(). */
static int wait_for_client(int listenfd)
{
    struct pollfd pfd = {.fd = listenfd, .events = POLLIN};

    while (poll(&pfd, 1, -1) == -1) {
        if (errno != EINTR)
            return -1;
        /* The stop handler interrupted us: SA_RESTART never restarts
         * poll(). Polling again returns at once on a shut-down listener. */
    }
    return 0;
}

/* Accepts the next client into *c, or returns -1 when there is none to
 * hand over: a stop (errno EINVAL), or a failure already logged that cost
 * one client only. Any other failure is fatal. */
static int accept_client(int listenfd, struct pending *c)
{
    struct sockaddr_storage cliaddr;
    socklen_t clilen = sizeof cliaddr;

    if (wait_for_client(listenfd) == -1)
        err_sys("poll");
    c->fd = accept(listenfd, (struct sockaddr *)&cliaddr, &clilen);
    if (c->fd == -1 && (errno == EMFILE || errno == ENFILE)) {
        /* Out of descriptors: see accept_or_shed() in common/net.c. */
        err_ret("accept");
        clilen = sizeof cliaddr;
        c->fd = accept_or_shed(listenfd, (struct sockaddr *)&cliaddr, &clilen);
    }
    if (c->fd == -1) {
        if (stop_requested())
            return -1; /* the handler shut the listener down */
        if (errno == EMFILE || errno == ENFILE) {
            err_msg("out of descriptors: the waiting client was not served");
            return -1;
        }
        if (!accept_error_is_transient(errno))
            err_sys("accept");
        err_ret("accept"); /* that client is gone; try the next */
        return -1;
    }
    sock_ntop((struct sockaddr *)&cliaddr, clilen, c->peer, sizeof c->peer);
    log_accepted(c->peer);
    return 0;
}

/* The acceptor: wait for room in the queue, then accept, then hand over.
 * Waiting before accept() leaves the next client in the kernel's backlog
 * while the queue is full. Returns the number of connections accepted. */
static unsigned long long accept_loop(int listenfd, struct queue *q)
{
    unsigned long long nconns = 0;
    struct pending c;

    while (queue_wait_room(q) == 0) {
        if (accept_client(listenfd, &c) == -1)
            continue;
        nconns++;
        queue_put(q, &c);
    }
    return nconns;
}

struct sizes {
    long workers, capacity;
};

static int on_option(int key, const char *arg, void *ctx)
{
    struct sizes *sz = ctx;

    if (key == 't')
        return parse_number(arg, 1, MAX_WORKERS, &sz->workers);
    if (key == 'Q')
        return parse_number(arg, 1, MAX_CAPACITY, &sz->capacity);
    return -1;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "03-pthread-pool", "a fixed pool of threads fed by a bounded queue",
        9003};
    static const struct lesson_option options[] = {
        {'t', NULL, "N", "worker threads, 1 to 256 (default 4)"},
        {'Q', NULL, "N", "queue capacity, 1 to 4096 (default 16)"},
        {0, NULL, NULL, NULL},
    };
    struct sizes sz = {DEFAULT_WORKERS, DEFAULT_CAPACITY};
    struct net_options opt;
    struct pool pool = {0};
    struct worker *workers;
    unsigned long long nconns;
    char where[HOST_PORT_LEN];
    int listenfd, gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &sz);
    signals_init();
    listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (listenfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (listenfd == -1)
        err_sys("cannot listen on %s",
                host_port(opt.host, opt.port, where, sizeof where));
    stop_wake_fd(STOP_LISTEN, listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");

    queue_init(&pool.q, (size_t)sz.capacity);
    pthread_mutex_init(&pool.stats_lock, NULL);
    pool.slots = register_slots((size_t)sz.workers);
    workers = start_workers(&pool, (size_t)sz.workers);
    /* Announced once every thread runs: from this line on, a test sees
     * the N + 1 threads it expects. */
    log_listening(listenfd);

    nconns = accept_loop(listenfd, &pool.q);

    /* The stop: the handler has shut down the listener and every served
     * connection. Wake whoever waits on the queue, wait for every worker,
     * then close what is still queued: nobody else touches the queue now. */
    queue_stop(&pool.q);
    for (long i = 0; i < sz.workers; i++)
        pthread_join(workers[i].tid, NULL);
    queue_close_all(&pool.q);
    stop_wake_fd(STOP_LISTEN, -1);
    close(listenfd);
    log_stats(nconns, pool.nbytes);

    /* Unregister the slots before freeing them: a second signal may come. */
    stop_wake_fds(NULL, 0);
    free(pool.slots);
    free(pool.q.items);
    free(workers);
    return 0;
}
