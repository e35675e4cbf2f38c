/* 08-half-sync-half-async/server.c -- an I/O thread, a queue, N workers.
 *
 * Model:   three layers. The async layer is one I/O thread in 06's
 *          level-triggered epoll loop: it accepts, reads, and cuts what it
 *          reads into requests (for echo, each chunk one read() returns).
 *          It never blocks on anything but epoll_wait(). The queueing layer
 *          is a bounded work queue (-Q) from it to the workers, and a done
 *          queue back, rung through an eventfd that epoll watches. The sync
 *          layer is -t worker threads that sleep on the work queue's
 *          condition variable, take a request, do its work (-w: a simulated
 *          delay) and hand it back. Only the I/O thread touches sockets, and
 *          each connection's replies leave in the order its requests came,
 *          whichever worker finished first.
 * Cost:    N + 1 threads, one descriptor and one struct session per client,
 *          an eventfd; per request two queue hand-offs (two locks) and,
 *          when the threads are asleep, a futex wake, an eventfd write and
 *          read, and some three thread switches: against 06, a round trip
 *          six times as long when there is no work to share. Memory is
 *          bounded, whatever the number of clients: the work queue holds
 *          at most -Q requests (then nobody is read), the done queue is
 *          emptied at least every other round (see serve_round()), and a
 *          connection's requests and pending output take at most
 *          CONN_HIGH_WATER bytes (then it is not read).
 * Observe: strace -f -e trace=epoll_wait,futex,read,write,eventfd2
 *          ./08-half-sync-half-async/server -t 2 -w 1000
 *            the I/O thread reads a request and wakes a worker (futex); the
 *            worker writes 1 to the eventfd; the I/O thread, woken in
 *            epoll_wait, reads the eventfd and writes the reply.
 * See also: 06-epoll-lt-et (its loop, unchanged at the core), 07-reactor
 *           (before: everything on one thread), 09-leader-follower (after:
 *           no hand-off at all), 03-pthread-pool (a pool, but a thread per
 *           connection).
 *
 * Run it:  ./08-half-sync-half-async/server [-t N] [-Q N] [-w USEC] [-b BYTES]
 *          printf 'hello\n' | nc -N 127.0.0.1 9008
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 1024 };

/* How many ready sockets one epoll_wait() may return. More stay ready and
 * come back in the next call: nothing is lost, only batched. */
enum { MAX_EVENTS = 256 };

enum { DEFAULT_WORKERS = 4, MAX_WORKERS = 256 };
enum { DEFAULT_CAPACITY = 256, MAX_CAPACITY = 65536 };
/* -w is a mean; one request sleeps up to twice as long. Capped so that a
 * stop never waits more than half a second for a worker mid-request. */
enum { MAX_WORK_USEC = 250000 };

struct session;

/* One request: the bytes one read() returned, in a buffer of -b bytes. For
 * an echo, the reply is the request itself, so a worker hands back the very
 * same buffer. A request is in at most one queue at a time (next), and in
 * its session's list of requests not yet answered (later) until its reply
 * has been sent; then the I/O thread keeps it for a later read (spares). */
struct request {
    struct request *next;  /* in a queue, or among the spares */
    struct request *later; /* the session's next request, by arrival */
    struct session *owner;
    bool done; /* back from a worker; read and written by the I/O thread */
    size_t len;
    char data[];
};

/* A first-in first-out list of requests, linked through next. */
struct fifo {
    struct request *head, *tail;
    size_t count;
};

/* From the I/O thread to the workers. Bounded: the I/O thread, its only
 * producer, stops reading when it is full (see struct server's paused), so
 * it never has to wait for room here. Every field is guarded by lock. */
struct work_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* idle workers sleep here */
    struct fifo reqs;
    size_t capacity; /* -Q */
};

/* From the workers back to the I/O thread, which sleeps in epoll_wait()
 * and not on a condition variable: a worker rings the eventfd instead.
 * Unbounded by itself: it holds what was in the work queue or read since
 * the I/O thread last emptied it, which serve_round() makes sure is at
 * most two rounds ago. */
struct done_queue {
    pthread_mutex_t lock;
    struct fifo reqs;
    int wakefd; /* the eventfd, non-blocking, watched by the I/O thread */
};

/* The server's side of one client: its connection, and its requests from
 * the one read first to the one read last. Only the I/O thread touches it. */
struct session {
    struct conn *c;               /* NULL once closed, see close_session() */
    struct request *first, *last; /* not yet answered, in arrival order */
    size_t held;      /* the memory that list holds: whole buffers, headers */
    size_t in_flight; /* of them, with the workers (queued, in a worker's
                         hands, or in the done queue) */
};

struct server {
    int listenfd;             /* non-blocking */
    int epfd;                 /* the epoll instance */
    size_t read_size;         /* -b: the most one read() takes */
    struct work_queue work;   /* shared with the workers */
    struct done_queue done;   /* shared with the workers */
    long nworkers, work_usec; /* -t, -w: read-only once they start */
    bool paused;              /* the work queue filled up */
    struct request *spares;   /* answered, ready for the next read */
    size_t nspares;
    struct session **sessions; /* every open one: sessions[0 .. n-1] */
    size_t nsessions, cap;
    unsigned long long served, echoed; /* for the stats line */
    unsigned long long requests, early;
};

struct worker {
    pthread_t tid;
    struct server *s;
    uint32_t rng;               /* this worker's own generator */
    unsigned long long handled; /* requests; read by main() after join */
};

static void fifo_push(struct fifo *q, struct request *r)
{
    r->next = NULL;
    if (q->tail != NULL)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->count++;
}

/* Returns the oldest request, or NULL when q is empty. */
static struct request *fifo_pop(struct fifo *q)
{
    struct request *r = q->head;

    if (r == NULL)
        return NULL;
    q->head = r->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->count--;
    return r;
}

/* ---- the queueing layer ---------------------------------------------- */

/* Queues r for the workers and returns how many requests wait now. The
 * caller has made sure there is room. */
static size_t work_put(struct work_queue *q, struct request *r)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    fifo_push(&q->reqs, r);
    n = q->reqs.count;
    pthread_cond_signal(&q->not_empty); /* one request: one worker */
    pthread_mutex_unlock(&q->lock);
    return n;
}

static size_t work_count(struct work_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->reqs.count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* Sleeps until a request waits, and takes it. Returns NULL once a stop was
 * requested; what is still queued then stays for main(). As in 03, the
 * flag is tested under the lock and the stop's broadcast is made under it
 * (work_stop()), so no worker sleeps through the stop. */
static struct request *work_take(struct work_queue *q)
{
    struct request *r = NULL;

    pthread_mutex_lock(&q->lock);
    while (q->reqs.count == 0 && !stop_requested())
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (!stop_requested())
        r = fifo_pop(&q->reqs);
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* Wakes every idle worker: call it once the stop flag is set. */
static void work_stop(struct work_queue *q)
{
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* Hands r back to the I/O thread. Only the first request into an empty
 * queue rings the eventfd: the I/O thread reads the eventfd before it takes
 * the whole queue (done_take_all()), so a request pushed after that take
 * finds the queue empty and rings again, and none is left unannounced. */
static void done_push(struct done_queue *q, struct request *r)
{
    bool was_empty;
    uint64_t one = 1;

    pthread_mutex_lock(&q->lock);
    was_empty = q->reqs.count == 0;
    fifo_push(&q->reqs, r);
    pthread_mutex_unlock(&q->lock);
    /* Adds 1 to the eventfd's counter, which makes it readable. It fails
     * only if the counter would overflow: 2^64 - 2 rings unread. */
    if (was_empty && write(q->wakefd, &one, sizeof one) == -1)
        err_sys("write eventfd");
}

/* Takes every request handed back so far, oldest first. */
static struct request *done_take_all(struct done_queue *q)
{
    struct request *r;

    pthread_mutex_lock(&q->lock);
    r = q->reqs.head;
    q->reqs = (struct fifo){NULL, NULL, 0};
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* ---- the sync layer: the workers ---------------------------------------- */

/* xorshift32 (Marsaglia): a generator whose state is the worker's own.
 * rand() would share one state between threads, behind a lock in glibc. */
static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* The work a request costs: a sleep of 0 to 2 * usec microseconds, uniform,
 * mean usec. It stands for what would block a thread of the event loop (a
 * disk read, a database call). It varies, so that a short request often
 * finishes before a long one taken earlier by another worker: the order of
 * the replies is then up to the I/O thread (see send_answered()). */
static void simulate_work(struct worker *w, long usec)
{
    long span;
    struct timespec ts;

    if (usec == 0)
        return;
    span = (long)(next_random(&w->rng) % (uint32_t)(2 * usec + 1));
    ts.tv_sec = span / 1000000;
    ts.tv_nsec = span % 1000000 * 1000;
    nanosleep(&ts, NULL); /* a signal may cut it short: no matter */
}

/* A worker's life: take a request, do its work, hand it back; until the
 * stop. It never touches a socket or a session. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct request *r;

    while ((r = work_take(&w->s->work)) != NULL) {
        simulate_work(w, w->s->work_usec);
        w->handled++;
        done_push(&w->s->done, r);
    }
    return NULL;
}

/* Starts the workers with SIGINT and SIGTERM blocked: a thread inherits its
 * creator's mask, so every stop signal goes to the I/O thread, asleep in
 * epoll_wait(), which the handler interrupts (and which ThreadSanitizer
 * treats as a blocking call: see the end of common/signals.h). */
static struct worker *start_workers(struct server *s)
{
    struct worker *workers = calloc((size_t)s->nworkers, sizeof *workers);
    sigset_t stop_signals, old;

    if (workers == NULL)
        err_sys("calloc");
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    for (long i = 0; i < s->nworkers; i++) {
        workers[i].s = s;
        /* Any odd multiplier gives each worker a different, non-zero seed
         * (xorshift stays at 0 for ever if it starts there). */
        workers[i].rng = (uint32_t)(i + 1) * 2654435761u;
        int rc =
            pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            errno = rc; /* pthread functions return the error number */
            err_sys("pthread_create");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return workers;
}

/* ---- the async layer: the I/O thread ---------------------------------- */

/* What a request costs in memory: its buffer is always -b bytes long. */
static size_t request_size(const struct server *s)
{
    return sizeof(struct request) + s->read_size;
}

/* A request to read into: a spare one, or a new one; NULL if memory ran
 * out. Reusing them saves a malloc() and a free() per request, and keeps
 * a sanitizer build small: ASan's quarantine holds freed memory back for a
 * while, so one allocation per request would grow the server with every
 * megabyte echoed. */
static struct request *request_new(struct server *s)
{
    struct request *r = s->spares;

    if (r == NULL)
        return malloc(request_size(s));
    s->spares = r->next;
    s->nspares--;
    return r;
}

/* Keeps r for a later read, or frees it: at most as many spares as the
 * work queue holds, so that a burst's buffers are given back after it. */
static void request_free(struct server *s, struct request *r)
{
    if (s->nspares >= s->work.capacity) {
        free(r);
        return;
    }
    r->next = s->spares;
    s->spares = r;
    s->nspares++;
}

/* Takes sess into the table; false (and sess untouched) if memory ran out. */
static bool add_session(struct server *s, struct session *sess)
{
    if (s->nsessions == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct session **bigger = realloc(s->sessions, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->sessions = bigger;
        s->cap = cap;
    }
    sess->c->index = s->nsessions;
    s->sessions[s->nsessions++] = sess;
    return true;
}

/* Frees sess and every request on its list. Only once none is in flight. */
static void free_session(struct server *s, struct session *sess)
{
    struct request *r = sess->first;

    while (r != NULL) {
        struct request *later = r->later;
        request_free(s, r);
        r = later;
    }
    free(sess);
}

/* Logs and closes sess's connection; the last session moves into its place.
 *
 * The trap: a connection may end (a reset, a failed write, the stop) while
 * some of its requests are still queued or in a worker's hands, and each
 * holds a pointer to its session. So the socket is closed now -- the client
 * sees the end at once -- but the session is freed only when nothing is in
 * flight: here if nothing is, otherwise by request_returned() when the last
 * one comes back. Its replies are dropped. */
static void close_session(struct server *s, struct session *sess)
{
    struct conn *c = sess->c;
    struct session *last = s->sessions[--s->nsessions];

    last->c->index = c->index;
    s->sessions[c->index] = last;
    if (c->error != 0 && !stop_requested()) {
        errno = c->error;
        err_ret("%s %s", c->failed_call, c->peer);
    }
    s->echoed += c->nbytes;
    log_closed(c->peer, c->nbytes);
    conn_free(c); /* close() also takes the socket off the interest list */
    sess->c = NULL;
    if (sess->in_flight == 0)
        free_session(s, sess);
}

/* Whether to read from sess: as conn_wants_read() says, and only while the
 * work queue has room and the memory held by the connection's unanswered
 * requests plus its output waiting to be written stays below the
 * high-water mark. Requests count as much as pending output: without them,
 * a client that never reads would fill the workers' queue instead of the
 * output buffer. (They count whole: with the default -b, a connection has
 * at most four requests in flight; a smaller -b allows more.) */
static bool wants_read(const struct server *s, const struct session *sess)
{
    return !s->paused && conn_wants_read(sess->c) &&
           sess->held + conn_pending(sess->c) < CONN_HIGH_WATER;
}

/* What epoll should report for sess: level-triggered, as 06 -m lt. */
static uint32_t interest(const struct server *s, const struct session *sess)
{
    return (wants_read(s, sess) ? EPOLLIN : 0u) |
           (conn_wants_write(sess->c) ? EPOLLOUT : 0u);
}

/* Tells the kernel when what sess waits for has changed. */
static void watch(struct server *s, struct session *sess)
{
    struct epoll_event ev = {.events = interest(s, sess), .data.ptr = sess};

    if (ev.events == sess->c->watching)
        return;
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, sess->c->fd, &ev) == -1)
        err_sys("epoll_ctl MOD");
    sess->c->watching = ev.events;
}

/* The work queue filled up, or drained: every connection's EPOLLIN goes or
 * comes back. One epoll_ctl() per connection, paid at each turn only. */
static void set_paused(struct server *s, bool paused)
{
    s->paused = paused;
    for (size_t i = 0; i < s->nsessions; i++)
        watch(s, s->sessions[i]);
}

/* Whether sess is over: it failed, or the client half-closed and every
 * request has been answered and written. */
static bool session_finished(const struct session *sess)
{
    return sess->c->error != 0 || (sess->c->peer_done && sess->first == NULL &&
                                   conn_pending(sess->c) == 0);
}

/* Takes one client the listener has queued, returning false when there is
 * nothing more to take now. A failure concerns one client at most. */
static bool accept_one(struct server *s)
{
    /* Out of descriptors, conn_accept() turns the client away: without
     * that, epoll_wait() would report the listener at once forever. */
    struct conn *c = conn_accept(s->listenfd);
    struct session *sess;

    if (c == NULL) {
        if (errno == EAGAIN || stop_requested())
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    sess = calloc(1, sizeof *sess);
    if (sess != NULL)
        sess->c = c;
    if (sess == NULL || !add_session(s, sess)) {
        err_ret("no memory for a client");
        free(sess);
        conn_free(c);
        return true;
    }
    c->watching = interest(s, sess); /* nothing at all while paused */
    struct epoll_event ev = {.events = c->watching, .data.ptr = sess};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        err_sys("epoll_ctl ADD");
    s->served++;
    log_accepted(c->peer);
    return true;
}

/* Reads one chunk, makes it a request, puts it at the end of the session's
 * list and on the work queue. One read() per report is enough: epoll is
 * level-triggered and reports the socket again while bytes remain. */
static void on_readable(struct server *s, struct session *sess)
{
    struct request *r = request_new(s);
    ssize_t n;

    if (r == NULL) {
        sess->c->error = ENOMEM; /* what conn.c records in this case */
        sess->c->failed_call = "malloc";
        return;
    }
    n = conn_recv(sess->c, r->data, s->read_size);
    if (n <= 0) {
        request_free(s, r);
        return; /* EAGAIN, the client's EOF, or a failure */
    }
    r->len = (size_t)n;
    r->owner = sess;
    r->done = false;
    r->later = NULL;
    if (sess->last != NULL)
        sess->last->later = r;
    else
        sess->first = r;
    sess->last = r;
    sess->held += request_size(s);
    sess->in_flight++;
    s->requests++;
    /* wants_read() let us read only with room in the queue, and nobody else
     * adds to it: this put always fits. If it filled the queue, stop
     * reading from everyone; the clients' bytes wait in the kernel. */
    if (work_put(&s->work, r) == s->work.capacity)
        set_paused(s, true);
}

/* Writes the replies at the head of sess's list while they are done: a
 * reply that came back early waits here for those before it. Then closes
 * sess if it is over, or updates what epoll watches for it. */
static void send_answered(struct server *s, struct session *sess)
{
    struct request *r;

    while ((r = sess->first) != NULL && r->done) {
        sess->first = r->later;
        if (sess->first == NULL)
            sess->last = NULL;
        sess->held -= request_size(s);
        /* Written at once where the socket takes it, the rest kept in the
         * connection's output buffer until EPOLLOUT. A failure is recorded
         * in the conn, and the session ends below. */
        int rc = conn_send(sess->c, r->data, r->len);
        request_free(s, r);
        if (rc == -1)
            break;
    }
    if (session_finished(sess))
        close_session(s, sess);
    else
        watch(s, sess);
}

/* A request is back from the workers. Returns its session, or NULL if the
 * session had been closed meanwhile (and is freed now if this was its last
 * request in flight). */
static struct session *request_returned(struct server *s, struct request *r)
{
    struct session *sess = r->owner;

    sess->in_flight--;
    if (sess->c != NULL)
        return sess;
    if (sess->in_flight == 0)
        free_session(s, sess); /* and r with it: it is on the list */
    return NULL;
}

/* The eventfd rang, or a full round may hide its ring (see serve_round()):
 * take every request the workers handed back and send what can be sent.
 * Then, if the work queue had filled up and has drained to half, read
 * again: the hysteresis saves a round of epoll_ctl() calls per request when
 * the queue runs full. */
static void on_done(struct server *s)
{
    uint64_t rings;
    struct request *r, *next;

    /* Read (and so reset) the counter before taking the queue: see
     * done_push(). */
    if (read(s->done.wakefd, &rings, sizeof rings) == -1 && errno != EAGAIN)
        err_sys("read eventfd");
    for (r = done_take_all(&s->done); r != NULL; r = next) {
        next = r->next;
        struct session *sess = request_returned(s, r);
        if (sess == NULL)
            continue;
        r->done = true;
        if (r != sess->first)
            s->early++; /* an earlier request of sess is still at work */
        else
            send_answered(s, sess);
    }
    if (s->paused && work_count(&s->work) <= s->work.capacity / 2)
        set_paused(s, false);
}

/* A hang-up or an error is reported whatever was asked for. A session that
 * neither reads nor writes now -- the queue is full, or its client
 * half-closed and its requests are with the workers -- would not find out
 * through read() or write(), and level-triggered epoll would report it
 * again at once, for ever: ask the socket, and end the connection. */
static void on_hangup(struct session *sess)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(sess->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
        err == 0)
        err = ECONNRESET;
    sess->c->error = err;
    sess->c->failed_call = "epoll_wait";
}

static void on_event(struct server *s, struct session *sess, uint32_t events)
{
    struct conn *c = sess->c;

    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wants_read(s, sess))
        on_readable(s, sess);
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && conn_wants_write(c))
        conn_flush(c);
    if ((events & (EPOLLHUP | EPOLLERR)) && !session_finished(sess) &&
        !wants_read(s, sess) && !conn_wants_write(c))
        on_hangup(sess);
    if (session_finished(sess))
        close_session(s, sess);
    else
        watch(s, sess);
}

/* One round: wait until something is ready, then serve it. */
static void serve_round(struct server *s)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(s->epfd, evs, MAX_EVENTS, -1);

    if (n == -1) {
        if (errno == EINTR)
            return; /* a signal: the caller looks at the stop flag */
        err_sys("epoll_wait");
    }
    /* Each descriptor appears once at most in one answer, so a session
     * closed while handling its event is not met again in this loop. But
     * on_done() may close any session (a reply's write fails), and one of
     * the events after it could be that session's: so the eventfd is
     * served last, once no event of this answer is left to meet. */
    bool rang = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            while (accept_one(s)) /* the listener */
                ;
        } else if (evs[i].data.ptr == &s->done) {
            rang = true; /* the eventfd */
        } else {
            on_event(s, evs[i].data.ptr, evs[i].events);
        }
    }
    /* The trap of a full answer: level-triggered, every socket still ready
     * goes back to the end of epoll's ready list, and an eventfd that rings
     * now waits behind them all -- with 10000 busy clients, some 40 rounds.
     * Meanwhile each of them is read, the workers keep the work queue from
     * filling, and the done queue grows to a -b buffer per client. So after
     * a full answer the done queue is emptied, rung or not; an answer that
     * is not full holds the eventfd if it was ready. */
    if (rang || n == MAX_EVENTS)
        on_done(s);
}

struct settings {
    long workers, capacity, work_usec, read_size;
};

static int on_option(int key, const char *arg, void *ctx)
{
    struct settings *set = ctx;

    if (key == 't')
        return parse_number(arg, 1, MAX_WORKERS, &set->workers);
    if (key == 'Q')
        return parse_number(arg, 1, MAX_CAPACITY, &set->capacity);
    if (key == 'w')
        return parse_number(arg, 0, MAX_WORK_USEC, &set->work_usec);
    if (key == 'b')
        return parse_number(arg, 1, CONN_READ_MAX, &set->read_size);
    return -1;
}

/* The listener, the epoll instance and the eventfd, both on its list. */
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
    /* The listener is the entry whose data.ptr is NULL. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listenfd, &ev) == -1)
        err_sys("epoll_ctl ADD");
    /* The eventfd's entry points at the done queue. */
    s->done.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->done.wakefd == -1)
        err_sys("eventfd");
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &s->done};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->done.wakefd, &ev) == -1)
        err_sys("epoll_ctl ADD");
}

/* After the workers have been joined: every request still queued either
 * way comes back to its session unanswered, so that closed sessions
 * waiting for them are freed, then every open session is closed. */
static void close_everything(struct server *s)
{
    struct request *r;

    while ((r = fifo_pop(&s->work.reqs)) != NULL)
        request_returned(s, r);
    while ((r = fifo_pop(&s->done.reqs)) != NULL)
        request_returned(s, r);
    while (s->nsessions > 0)
        close_session(s, s->sessions[s->nsessions - 1]);
    free(s->sessions);
    while ((r = s->spares) != NULL) {
        s->spares = r->next;
        free(r);
    }
}

/* "12 requests, by worker 3+4+2+3, 5 finished early" into buf. */
static void format_counters(const struct server *s, const struct worker *w,
                            char *buf, size_t size)
{
    int len = snprintf(buf, size, "%llu requests, by worker ", s->requests);

    for (long i = 0; i < s->nworkers && len >= 0 && (size_t)len < size; i++)
        len += snprintf(buf + len, size - (size_t)len, "%s%llu",
                        i > 0 ? "+" : "", w[i].handled);
    if (len >= 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, ", %llu finished early",
                 s->early);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "08-half-sync-half-async",
        "an echo server: an epoll I/O thread, a queue, a pool of workers",
        9008};
    static const struct lesson_option options[] = {
        {'t', NULL, "N", "worker threads, 1 to 256 (default 4)"},
        {'Q', NULL, "N", "work queue capacity, 1 to 65536 (default 256)"},
        {'w', NULL, "USEC",
         "mean simulated work per request, 0 to 250000 (default 0)"},
        {'b', NULL, "BYTES", "the most one read() takes (default 16384)"},
        {0, NULL, NULL, NULL},
    };
    struct settings set = {DEFAULT_WORKERS, DEFAULT_CAPACITY, 0, 16384};
    struct net_options opt;
    struct server s = {0};
    struct worker *workers;
    char counters[1024];

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &set);
    s.nworkers = set.workers;
    s.work_usec = set.work_usec;
    s.read_size = (size_t)set.read_size;
    s.work.capacity = (size_t)set.capacity;
    signals_init();
    listen_and_watch(&s, &opt);
    stop_wake_fd(STOP_LISTEN, s.listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    pthread_mutex_init(&s.work.lock, NULL);
    pthread_cond_init(&s.work.not_empty, NULL);
    pthread_mutex_init(&s.done.lock, NULL);
    workers = start_workers(&s);
    /* Announced once every thread runs: from here a test sees N + 1. */
    log_listening(s.listenfd);

    /* The stop handler shuts the listener down, which epoll reports as
     * readable: the loop wakes and sees the flag. */
    while (!stop_requested())
        serve_round(&s);

    /* The flag is set: wake the idle workers; the busy ones finish their
     * request, find the flag in work_take() and return. */
    work_stop(&s.work);
    for (long i = 0; i < s.nworkers; i++)
        pthread_join(workers[i].tid, NULL);
    close_everything(&s);
    close(s.done.wakefd);
    close(s.epfd);
    stop_wake_fd(STOP_LISTEN, -1);
    close(s.listenfd);
    format_counters(&s, workers, counters, sizeof counters);
    log_stats_more(s.served, s.echoed, counters);
    pthread_mutex_destroy(&s.work.lock);
    pthread_cond_destroy(&s.work.not_empty);
    pthread_mutex_destroy(&s.done.lock);
    free(workers);
    return 0;
}
