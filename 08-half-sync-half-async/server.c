/* 08-half-sync-half-async/server.c -- an I/O thread, a queue, N workers.
 *
 * Model:   three layers. The async layer is 07's reactor and connection
 *          layer, unchanged (built from 07-reactor's files): one I/O thread
 *          accepts, reads and writes, and blocks in epoll_wait alone; each
 *          read() of at most -b bytes is one request. The queueing layer is
 *          a work queue to the workers, and a done queue back, rung through
 *          an eventfd the reactor watches like a socket. The sync layer is
 *          -t worker threads that sleep on the work queue's condition
 *          variable, take a request, do its work (-w: a simulated delay)
 *          and hand it back. Only the I/O thread touches sockets; each
 *          connection's replies leave in the order its requests came.
 * Cost:    N + 1 threads, an eventfd, per client what 07 costs and a
 *          struct session; per request a malloc() of its bytes, two queue
 *          hand-offs (two locks) and, when the threads are asleep, a futex
 *          wake, an eventfd write and read, and some three thread switches:
 *          against 06, a round trip six times as long when there is no
 *          work to share. Memory stays bounded (see struct server, pace()).
 * Observe: strace -f -e trace=epoll_wait,futex,read,write
 *          ./08-half-sync-half-async/server -t 2 -w 1000
 *            the I/O thread reads a request and wakes a worker (futex); the
 *            worker writes 1 to the eventfd; the I/O thread, woken in
 *            epoll_wait, reads the eventfd and writes the reply.
 * See also: 07-reactor (before: everything on one thread, and the loop
 *           this lesson runs), 09-leader-follower (after: no hand-off),
 *           03-pthread-pool (a pool, but a thread per connection).
 *
 * Run it:  ./08-half-sync-half-async/server [-t N] [-Q N] [-w USEC] [-b BYTES]
 *          printf 'hello\n' | nc -N 127.0.0.1 9008
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "reactor.h"
#include "signals.h"
#include "tcp.h"

enum { LISTEN_BACKLOG = 1024, MAX_WORKERS = 256 };

/* One request: the bytes one read() returned, and for an echo the reply
 * too, so a worker hands back the very same buffer. It is in one queue at
 * most (next), and in its session's list (later) until it is answered. */
struct request {
    struct request *next;  /* in a queue */
    struct request *later; /* the session's next request, by arrival */
    struct session *owner;
    bool done; /* back from a worker; read and written by the I/O thread */
    size_t len;
    char data[];
};

/* A first-in first-out list of requests under a lock, linked through
 * next: the work queue from the I/O thread to the workers, and the done
 * queue back. Every field is guarded by lock. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* idle workers sleep here (work queue) */
    struct request *head, *tail;
};

/* The server's side of one client: its connection, and its requests in
 * arrival order. Only the I/O thread touches it. */
struct session {
    struct tcp_conn *c;           /* NULL once closed, see on_close() */
    struct request *first, *last; /* not yet answered, in arrival order */
    size_t held;      /* the memory that list holds, headers included */
    size_t in_flight; /* of them, away at the workers */
};

struct worker {
    struct server *s;
    unsigned rng;          /* this worker's own rand_r() state */
    atomic_ullong handled; /* read by main() at the stop, as it works on */
};

/* Both queues are bounded by one count that the I/O thread keeps alone,
 * without a lock: the requests away from it (queued, in a worker's hands,
 * or on their way back). At -Q it stops reading from everyone, so it never
 * waits for room, and the clients' bytes wait in the kernel. */
struct server {
    struct tcp_server *tcp;   /* 07's connection layer */
    struct queue work, done;  /* shared with the workers */
    int wakefd;               /* the done queue's eventfd (non-blocking) */
    long nworkers, work_usec; /* -t, -w: read-only once they start */
    long capacity, read_size; /* -Q, -b */
    long away;                /* requests away, at most -Q */
    bool paused;              /* -Q were away: nobody is read */
    unsigned long long served, requests, early; /* for the stats line */
    struct worker workers[MAX_WORKERS];         /* -t of them */
};

/* ---- the queueing layer ---------------------------------------------- */

/* Appends r and wakes one sleeper: one request, one worker. Returns
 * whether the queue was empty. */
static bool queue_put(struct queue *q, struct request *r)
{
    bool was_empty;

    r->next = NULL;
    pthread_mutex_lock(&q->lock);
    was_empty = q->head == NULL;
    if (was_empty)
        q->head = r;
    else
        q->tail->next = r;
    q->tail = r;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return was_empty;
}

/* Sleeps until a request waits, and takes it. The loop, not an if: a
 * wake-up may find the queue empty again (POSIX allows spurious ones). */
static struct request *queue_take(struct queue *q)
{
    struct request *r;

    pthread_mutex_lock(&q->lock);
    while ((r = q->head) == NULL)
        pthread_cond_wait(&q->not_empty, &q->lock);
    q->head = r->next;
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* Takes every request at once, oldest first, or NULL. */
static struct request *queue_take_all(struct queue *q)
{
    struct request *r;

    pthread_mutex_lock(&q->lock);
    r = q->head;
    q->head = NULL;
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* ---- the sync layer: the workers -------------------------------------- */

/* A worker's life: take a request, do its work, hand it back, until the
 * process exits. It never touches a socket or a session.
 *
 * The work is a sleep of 0 to 2 * -w microseconds, uniform, mean -w. It
 * stands for what would block a thread of the event loop (a disk read, a
 * database call). It varies, so that a short request often finishes before
 * a long one taken earlier by another worker: the order of the replies is
 * then up to the I/O thread (see send_answered()). */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    long usec = w->s->work_usec;

    for (;;) {
        struct request *r = queue_take(&w->s->work);
        /* rand_r(): the worker's own state; rand() shares one, locked. */
        long span = usec > 0 ? rand_r(&w->rng) % (2 * usec + 1) : 0;
        struct timespec ts = {span / 1000000, span % 1000000 * 1000};
        if (span > 0)
            nanosleep(&ts, NULL);
        atomic_fetch_add(&w->handled, 1);
        /* Only the first request into an empty done queue rings the
         * eventfd: on_done() reads the eventfd before it takes the whole
         * queue, so a request put after that take rings again, and none is
         * left unannounced. The write makes the eventfd readable; it fails
         * only if its counter would overflow (2^64 - 2 rings unread). */
        if (queue_put(&w->s->done, r) &&
            write(w->s->wakefd, &(uint64_t){1}, sizeof(uint64_t)) == -1)
            err_sys("write eventfd");
    }
    return NULL; /* never reached */
}

/* ---- the async layer: callbacks on 07's reactor ---------------------- */

/* Frees sess and every request on its list. Only once none is in flight. */
static void free_session(struct session *sess)
{
    struct request *r, *later;

    for (r = sess->first; r != NULL; r = later) {
        later = r->later;
        free(r);
    }
    free(sess);
}

/* Reads from sess only while its unanswered requests and its pending output
 * together stay below the high-water mark: without the requests, a client
 * that never reads would fill the workers' queue instead of the output
 * buffer. While replies are owed, a half-close waits for them. */
static void pace(struct session *sess)
{
    if (sess->held + conn_pending(&sess->c->io) < CONN_HIGH_WATER)
        tcp_conn_resume_reading(sess->c);
    else
        tcp_conn_pause_reading(sess->c);
    tcp_conn_owe(sess->c, sess->first != NULL);
}

static void on_connection(struct tcp_conn *c)
{
    struct server *s = tcp_conn_ctx(c);
    struct session *sess = calloc(1, sizeof *sess);

    if (sess == NULL) {
        err_ret("no memory for a client");
        tcp_conn_close(c);
        return;
    }
    sess->c = c;
    c->data = sess;
    s->served++;
    log_accepted(c->io.peer);
}

/* What one read() brought (at most -b bytes): one request, put at the end
 * of the session's list and on the work queue. */
static size_t on_message(struct tcp_conn *c, const char *data, size_t len)
{
    struct server *s = tcp_conn_ctx(c);
    struct session *sess = c->data;
    struct request *r = malloc(sizeof *r + len);

    if (r == NULL) {
        err_ret("no memory for a request of %s", c->io.peer);
        tcp_conn_close(c);
        return len;
    }
    *r = (struct request){.owner = sess, .len = len};
    memcpy(r->data, data, len);
    if (sess->last != NULL)
        sess->last->later = r;
    else
        sess->first = r;
    sess->last = r;
    sess->held += sizeof *r + len;
    sess->in_flight++;
    s->requests++;
    queue_put(&s->work, r);
    if (++s->away == s->capacity) { /* -Q: stop reading from everyone */
        s->paused = true;
        tcp_server_pause_reading(s->tcp, true);
    }
    pace(sess);
    return len;
}

/* The output has drained: reading may resume. (No on_high_water: on_done()
 * paces the connection as it sends.) */
static void on_write_complete(struct tcp_conn *c)
{
    pace(c->data);
}

/* The trap: a connection may end (a reset, a failed write) while some of
 * its requests are still queued or in a worker's hands, and each holds a
 * pointer to its session. So the socket is closed now -- the client sees
 * the end at once -- but the session is freed only when nothing is in
 * flight: here if nothing is, otherwise by on_done() when the last one
 * comes back. Its replies are dropped. */
static void on_close(struct tcp_conn *c)
{
    struct session *sess = c->data;

    if (c->io.error != 0) {
        errno = c->io.error;
        err_ret("%s %s", c->io.failed_call, c->io.peer);
    }
    log_closed(c->io.peer, c->io.nbytes);
    if (sess == NULL)
        return; /* on_connection() found no memory for it */
    sess->c = NULL;
    if (sess->in_flight == 0)
        free_session(sess);
}

/* Writes the replies at the head of sess's list while they are done: a
 * reply that came back early waits here for those before it. We are in the
 * eventfd's handler, not in one of the connection's callbacks, so the layer
 * is told afterwards: it closes the connection if it is over, or watches
 * it for what it needs now. */
static void send_answered(struct session *sess)
{
    struct request *r;

    while ((r = sess->first) != NULL && r->done) {
        sess->first = r->later;
        if (sess->first == NULL)
            sess->last = NULL;
        sess->held -= sizeof *r + r->len;
        /* Written at once as far as the socket takes it, the rest kept; a
         * failure is recorded, and the layer closes the connection below. */
        int rc = tcp_conn_send(sess->c, r->data, r->len);
        free(r);
        if (rc == -1)
            break;
    }
    pace(sess);
    tcp_conn_update(sess->c); /* may close it: on_close() */
}

/* The eventfd rang: take every request the workers handed back and send
 * what can be sent. Then, if -Q requests were away and half have come
 * back, read again: the hysteresis saves a round of changes per
 * connection each time the queues run full. */
static void on_done(struct reactor *loop, int fd, unsigned mask, void *arg)
{
    struct server *s = arg;
    struct request *r, *next;

    (void)loop, (void)mask;
    /* Read (and so reset) the counter before taking the queue: see
     * worker_main(). */
    if (read(fd, &(uint64_t){0}, sizeof(uint64_t)) == -1 && errno != EAGAIN)
        err_sys("read eventfd");
    for (r = queue_take_all(&s->done); r != NULL; r = next) {
        struct session *sess = r->owner;
        next = r->next;
        s->away--;
        sess->in_flight--;
        r->done = true;
        if (sess->c == NULL) { /* closed while r was away */
            if (sess->in_flight == 0)
                free_session(sess); /* and r with it: it is on the list */
        } else if (r != sess->first) {
            s->early++; /* an earlier request of sess is still at work */
        } else {
            send_answered(sess);
        }
    }
    if (s->paused && s->away <= s->capacity / 2) {
        s->paused = false;
        tcp_server_pause_reading(s->tcp, false);
    }
}

/* The stop, way (b), as in 07. Exit ends the workers wherever they are. */
static void on_stop(struct reactor *loop, int fd, unsigned mask, void *arg)
{
    (void)fd, (void)mask, (void)arg;
    reactor_stop(loop);
}

static int on_option(int key, const char *arg, void *ctx)
{
    struct server *s = ctx;

    if (key == 't')
        return parse_number(arg, 1, MAX_WORKERS, &s->nworkers);
    if (key == 'Q')
        return parse_number(arg, 1, 65536, &s->capacity);
    if (key == 'w') /* a mean: one request sleeps up to twice as long */
        return parse_number(arg, 0, 250000, &s->work_usec);
    if (key == 'b')
        return parse_number(arg, 1, CONN_READ_MAX, &s->read_size);
    return -1;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "08-half-sync-half-async",
        "an echo server: 07's reactor, a queue, a pool of workers", 9008};
    static const struct lesson_option options[] = {
        {'t', NULL, "N", "worker threads, 1 to 256 (default 4)"},
        {'Q', NULL, "N", "requests at the workers, 1 to 65536 (default 256)"},
        {'w', NULL, "USEC", "mean work per request, 0 to 250000 (default 0)"},
        {'b', NULL, "BYTES", "the most one read() takes (default 16384)"},
        {0, NULL, NULL, NULL},
    };
    static const struct tcp_callbacks callbacks = {
        on_connection, on_message, on_write_complete, NULL, on_close};
    struct server s = {.work = {.lock = PTHREAD_MUTEX_INITIALIZER,
                                .not_empty = PTHREAD_COND_INITIALIZER},
                       .done = {.lock = PTHREAD_MUTEX_INITIALIZER,
                                .not_empty = PTHREAD_COND_INITIALIZER},
                       .nworkers = 4,
                       .capacity = 256,
                       .read_size = 16384};
    struct net_options opt;
    char counters[6144];
    pthread_t tid;
    int gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &s);
    /* The stop, way (b) of common/signals.h, as in 07: SIGINT and SIGTERM
     * blocked here, and so in every worker started later, and turned into
     * a descriptor the reactor watches like any socket. */
    int sigfd = stop_signalfd();
    int listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (listenfd == -1)
        err_listen(&opt, gai_err);
    if (set_nonblocking(listenfd) == -1)
        err_sys("fcntl O_NONBLOCK");
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    struct reactor *r = reactor_new("epoll");
    if (r == NULL)
        err_sys("reactor (epoll)");
    s.tcp = tcp_server_new(r, listenfd, &callbacks, &s, 0);
    if (s.tcp == NULL)
        err_sys("watch the listening socket");
    tcp_server_set_read_size(s.tcp, (size_t)s.read_size);
    s.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s.wakefd == -1)
        err_sys("eventfd");
    if (reactor_watch(r, s.wakefd, RE_READ, on_done, &s) == -1 ||
        reactor_watch(r, sigfd, RE_READ, on_stop, NULL) == -1)
        err_sys("watch the eventfd and the signalfd");
    /* The workers. A thread inherits its creator's signal mask, and
     * stop_signalfd() has blocked SIGINT and SIGTERM already: no worker is
     * ever interrupted, and a stop signal waits for the reactor. */
    for (long i = 0; i < s.nworkers; i++) {
        s.workers[i].s = &s;
        s.workers[i].rng = (unsigned)i; /* a different sequence each */
        int rc = pthread_create(&tid, NULL, worker_main, &s.workers[i]);
        if (rc != 0) {
            errno = rc; /* pthread functions return the error number */
            err_sys("pthread_create");
        }
        pthread_setname_np(tid, "worker"); /* ps -L and top -H show it */
    }
    /* Announced once every thread runs: from here a test sees N + 1. */
    log_listening(listenfd);
    /* The I/O thread's life: 07's loop, until on_stop() ends it. */
    if (reactor_run(r) == -1)
        err_sys("epoll_wait");
    /* "12 requests, by worker 3+4+2+3, 5 finished early" (room for 256). */
    size_t n = (size_t)snprintf(counters, sizeof counters,
                                "%llu requests, by worker ", s.requests);
    for (long i = 0; i < s.nworkers; i++)
        n += (size_t)snprintf(counters + n, sizeof counters - n, "%s%llu",
                              i > 0 ? "+" : "",
                              atomic_load(&s.workers[i].handled));
    snprintf(counters + n, sizeof counters - n, ", %llu finished early",
             s.early);
    log_stats_more(s.served, tcp_server_sent(s.tcp), counters);
    exit(0); /* not return: the workers still use s, on main()'s stack */
}
