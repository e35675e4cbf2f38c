/* 03-pthread-pool/server.c -- a fixed pool of threads fed by a bounded queue.
 *
 * Model:   the main thread only accepts: it blocks in accept() until a
 *          client arrives, as lesson 01 does, and hands each connection to
 *          a bounded queue (a mutex and two condition variables). N worker
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
 * Observe: ps -L -o pid,tid,wchan:32,comm -p PID
 *            N + 1 lines, the same thread ids however many clients come;
 *          strace -f -e trace=accept4,clone,clone3,poll -p PID
 *            one accept4 per client, no clone and no poll after start-up.
 * See also: 02-fork-server (before), 04-select (after), which serves many
 *           idle clients with one thread.
 *
 * Run it:  ./03-pthread-pool/server -t 2 -Q 4     (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9003
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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

/* What every worker is given: where to take connections from, and where
 * to add the bytes it echoes. */
struct pool {
    struct queue q;
    struct served *totals;
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

/* Sleeps until q has room for one more connection. */
static void queue_wait_room(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    /* A while, not an if: pthread_cond_wait() may return without a
     * signal (a "spurious wake-up"), and a wake-up says "look again", not
     * "there is room". */
    while (q->count == q->capacity)
        pthread_cond_wait(&q->not_full, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

/* Adds connfd, from peer, to q, which must have room: only the acceptor
 * adds, and it called queue_wait_room() before accept(). */
static void queue_put(struct queue *q, int connfd, const char *peer)
{
    pthread_mutex_lock(&q->lock);
    struct pending *c = &q->items[(q->head + q->count) % q->capacity];
    c->fd = connfd;
    memcpy(c->peer, peer, sizeof c->peer);
    q->count++;
    pthread_cond_signal(&q->not_empty); /* one connection: one worker */
    pthread_mutex_unlock(&q->lock);
}

/* Sleeps until q holds a connection, and takes the oldest into *c. */
static void queue_get(struct queue *q, struct pending *c)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0)
        pthread_cond_wait(&q->not_empty, &q->lock);
    *c = q->items[q->head];
    q->head = (q->head + 1) % q->capacity;
    q->count--;
    pthread_cond_signal(&q->not_full); /* the acceptor may go on */
    pthread_mutex_unlock(&q->lock);
}

/* Echoes what connfd sends until the client half-closes (read() returns 0)
 * or the connection fails, adding each write to the bytes echoed in
 * *totals. Returns the number of bytes echoed. A failure costs this
 * connection only: it is logged, never fatal.
 *
 * Lesson 01's echo(), unchanged, now on a worker thread. Several workers
 * add to totals->bytes, perhaps at the same moment: atomic_fetch_add()
 * loses none of their additions and needs no lock, and the stop handler
 * may read the total at any moment, on any thread. */
static unsigned long long echo(int connfd, const char *peer,
                               struct served *totals)
{
    char buf[ECHO_BUFSIZE];
    unsigned long long total = 0;
    ssize_t n;

    /* read() returns as soon as some bytes are there, not when buf is full:
     * a "message" of the client's may arrive in several pieces or glued to
     * the next one. An echo server does not care where messages end. */
    while ((n = read(connfd, buf, sizeof buf)) > 0) {
        /* write() may take fewer bytes than offered when the socket's send
         * buffer is full; writen() loops until all are taken. */
        if (writen(connfd, buf, (size_t)n) == -1) {
            /* EPIPE or ECONNRESET: the client left without reading. */
            err_ret("write to %s", peer);
            return total;
        }
        total += (unsigned long long)n;
        atomic_fetch_add(&totals->bytes, (unsigned long long)n);
    }
    if (n == -1) /* a real error, such as ECONNRESET */
        err_ret("read from %s", peer);
    return total;
}

/* A worker's life: take a connection, serve it to the end, close it, take
 * the next. It never returns: the stop ends the whole process at once. */
static void *worker_main(void *arg)
{
    struct pool *pool = arg;
    struct pending c;

    for (;;) {
        queue_get(&pool->q, &c);
        log_closed(c.peer, echo(c.fd, c.peer, pool->totals));
        close(c.fd);
    }
    return NULL; /* never reached */
}

/* Starts n workers on pool, once for the server's whole life.
 *
 * The stop asks nothing of them. A signal sent to the process goes to any
 * one of its threads that does not block it, so the stop handler may run
 * on a worker as well as on the acceptor, wherever that thread sleeps:
 * it writes the stats line and calls _exit(), which ends every thread at
 * once. So no thread blocks the signals, none is woken, none is joined. */
static void start_workers(struct pool *pool, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pthread_t tid;
        /* pthread functions return the error number; errno is untouched. */
        int rc = pthread_create(&tid, NULL, worker_main, pool);
        if (rc != 0) {
            errno = rc;
            err_sys("pthread_create");
        }
        pthread_setname_np(tid, "worker"); /* ps -L and top -H show it */
    }
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
    static struct served totals; /* read by the stop handler */
    struct sizes sz = {DEFAULT_WORKERS, DEFAULT_CAPACITY};
    struct net_options opt;
    struct pool pool = {.totals = &totals};
    int listenfd, gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &sz);
    /* The stop, way (a) of common/signals.h: SIGINT or SIGTERM runs a
     * handler, on whichever thread the kernel picks, that prints the
     * totals and exits. Exit closes the sockets; the kernel tells the
     * clients, queued or served. */
    stop_by_handler(&totals, NULL);
    listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (listenfd == -1)
        err_listen(&opt, gai_err);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    queue_init(&pool.q, (size_t)sz.capacity);
    start_workers(&pool, (size_t)sz.workers);
    /* Announced once every thread runs: from this line on, a test sees
     * the N + 1 threads it expects. */
    log_listening(listenfd);

    for (;;) {
        struct sockaddr_storage cliaddr;
        socklen_t clilen = sizeof cliaddr;
        char peer[SOCK_NTOP_LEN];

        /* Room first, then accept(): while the queue is full, the next
         * client waits in the kernel's backlog, not in an accepted socket
         * that nobody reads. */
        queue_wait_room(&pool.q);
        /* accept() with the way out of EMFILE (common/net.c): out of
         * descriptors, the waiting client is turned away, not served
         * later, and the server does not spin. */
        int connfd =
            accept_or_shed(listenfd, (struct sockaddr *)&cliaddr, &clilen);
        if (connfd == -1) {
            if (!accept_lost_client(errno))
                err_sys("accept");
            err_ret("accept: a client was lost"); /* take the next */
            continue;
        }
        sock_ntop((struct sockaddr *)&cliaddr, clilen, peer, sizeof peer);
        atomic_fetch_add(&totals.conns, 1);
        log_accepted(peer);
        queue_put(&pool.q, connfd, peer); /* a worker serves it, then closes */
    }
}
