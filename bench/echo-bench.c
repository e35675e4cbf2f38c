/* bench/echo-bench.c -- the load generator: many connections, every byte
 * checked, latency measured.
 *
 * One process drives -c connections with epoll (split over -T threads, each
 * with its own epoll instance). Every connection sends a stream of bytes
 * that is a function of the connection and the offset (pattern() below),
 * so every byte echoed can be checked where it lands: a lost, doubled,
 * reordered or altered byte is a mismatch. Modes:
 *   ping-pong (-m pp, the default): -P messages of -s bytes in flight per
 *       connection; -P 1 waits for each echo, more is pipelining.
 *   bulk (-m bulk): stream as fast as the server echoes (MB/s), with at
 *       most BULK_WINDOW bytes unechoed per connection.
 *   churn (-m churn): connect, echo one message, close, again: connections
 *       per second, latency from connect() to the whole echo.
 * -i adds idle connections, opened first and silent throughout: what
 * select() and poll() pay for on every call, and epoll does not.
 * The run lasts -W seconds of warm-up, then -d seconds of measurement, then
 * at most -t seconds to collect the last echoes. A connection that makes no
 * progress for -t seconds is counted as stalled and dropped: a stalled
 * server is reported, never waited on for ever. Any error makes the exit
 * status 1.
 *
 * With --pid, the server's CPU time per message (every thread's, and its
 * children's, live or reaped), its peak RSS, its RSS per connection and its
 * thread and process counts come from /proc. --self measures the ceiling
 * instead: the bare loop, an echo server forked from echo-bench that does
 * nothing but epoll_wait(), read() and send() on one thread, over the same
 * loopback TCP (--self-cpu pins it as bench/run pins the lessons).
 *
 * Run it:  bench/echo-bench -p 9006 -c 100 -s 64 -d 5
 *          bench/echo-bench --self -c 100 -s 64 -d 5
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"

enum { CHUNK = 65536 };            /* the most one read or write moves */
enum { BULK_WINDOW = 256 * 1024 }; /* bulk: most bytes unechoed */
enum { MAX_EVENTS = 256 };
enum { TICK_MS = 100 }; /* how often stalls are looked for */
#define NS_PER_S 1000000000ull

enum mode { MODE_PINGPONG, MODE_BULK, MODE_CHURN };
static const char *const mode_names[] = {"ping-pong", "bulk", "churn"};

enum error_kind {
    ERR_MISMATCH,
    ERR_SHORT,
    ERR_RESET,
    ERR_STALL,
    ERR_REFUSED,
    NERRORS
};
static const char *const error_names[] = {"mismatched", "short", "reset",
                                          "stalled", "refused"};

struct config {
    const char *host;
    char port[8];
    long conns, idle, size, inflight, threads;
    double warmup, duration, timeout;
    enum mode mode;
    pid_t server_pid;
    bool csv, self;
    long self_cpu;
    const char *label;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- the byte stream ---------------------------------------------------- */

/* splitmix64's finaliser: every input bit changes every output bit. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Bytes [off, off + n) of the stream of the connection with this seed. No
 * period: a block lost or sent twice is always noticed. */
static void pattern(uint64_t seed, uint64_t off, unsigned char *buf, size_t n)
{
    uint64_t word = off / 8;
    size_t skip = off % 8;

    while (n > 0) {
        uint64_t v = mix(seed ^ (word * 0x100000001b3ull));
        unsigned char b[8];
        size_t take = 8 - skip < n ? 8 - skip : n;
        memcpy(b, &v, 8);
        memcpy(buf, b + skip, take);
        buf += take;
        n -= take;
        skip = 0;
        word++;
    }
}

/* ---- the latency histogram ---------------------------------------------- */

/* Log-linear buckets: exact below 64 ns, then 32 buckets per power of two,
 * so a bucket's middle is within 1/64 (1.6%) of any value in it. */
enum { LINEAR = 64, PER_OCTAVE = 32, NBUCKETS = LINEAR + 58 * PER_OCTAVE };

struct histogram {
    uint64_t counts[NBUCKETS];
    uint64_t n, max;
};

static size_t bucket_of(uint64_t v)
{
    if (v < LINEAR)
        return (size_t)v;
    int shift = 63 - __builtin_clzll(v) - 5; /* v >> shift is in [32, 64) */
    return LINEAR + (size_t)(shift - 1) * PER_OCTAVE +
           (size_t)((v >> shift) - PER_OCTAVE);
}

static uint64_t bucket_middle(size_t i)
{
    if (i < LINEAR)
        return i;
    int shift = (int)((i - LINEAR) / PER_OCTAVE) + 1;
    uint64_t low = (uint64_t)((i - LINEAR) % PER_OCTAVE + PER_OCTAVE) << shift;
    return low + (1ull << shift) / 2;
}

static void hist_add(struct histogram *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct histogram *into, const struct histogram *h)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        into->counts[i] += h->counts[i];
    into->n += h->n;
    if (h->max > into->max)
        into->max = h->max;
}

/* The value below which a fraction q of the samples lie (0 if none). */
static uint64_t hist_quantile(const struct histogram *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;

    if (h->n == 0)
        return 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank && seen > 0)
            return bucket_middle(i) < h->max ? bucket_middle(i) : h->max;
    }
    return h->max;
}

/* ---- connections and workers -------------------------------------------- */

struct worker;

struct bconn {
    int fd; /* -1 once dropped */
    uint64_t seed;
    uint64_t sent, recvd; /* offsets in the stream */
    uint64_t *sent_at;    /* message j was sent at sent_at[j % inflight] */
    uint64_t started;     /* churn: when connect() was called */
    uint64_t progress_at; /* last echo, or when the wait for one began */
    bool connecting, want_out;
};

struct result {
    uint64_t msgs, bytes; /* measured: after the warm-up, before the end */
    struct histogram lat; /* latency of each message, in ns */
    uint64_t errors[NERRORS];
};

struct worker {
    pthread_t tid;
    int epfd;
    const struct config *cfg;
    struct bconn *conns;
    size_t nconns, first_id;
    uint64_t next_seed;
    unsigned char buf[CHUNK], expect[CHUNK];
    struct result r;
};

/* The clock of the run, set by main() once every worker is connected. */
static uint64_t t_measure, t_end;
static pthread_barrier_t connected, go, measured;

static void watch(struct worker *w, struct bconn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (epoll_ctl(w->epfd, op, c->fd, &ev) == -1)
        err_sys("epoll_ctl");
}

static void drop(struct worker *w, struct bconn *c, int kind)
{
    if (kind >= 0)
        w->r.errors[kind]++;
    close(c->fd);
    c->fd = -1;
}

/* Starts a non-blocking connect; the result comes as EPOLLOUT. */
static void start_connect(struct worker *w, struct bconn *c, uint64_t now)
{
    const struct config *cfg = w->cfg;

    c->fd = socket(cfg->addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1)
        err_sys("socket");
    c->seed = mix(w->next_seed++);
    c->sent = c->recvd = 0;
    c->started = c->progress_at = now;
    c->connecting = true;
    c->want_out = false;
    if (connect(c->fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) ==
            -1 &&
        errno != EINPROGRESS) {
        drop(w, c, ERR_REFUSED);
        return;
    }
    watch(w, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
}

/* How far the stream may be sent now. */
static uint64_t send_limit(const struct worker *w, const struct bconn *c,
                           bool ending)
{
    const struct config *cfg = w->cfg;
    uint64_t size = (uint64_t)cfg->size;

    if (ending)
        return c->sent; /* the run is over: only collect echoes */
    switch (cfg->mode) {
    case MODE_BULK:
        return c->recvd + BULK_WINDOW;
    case MODE_CHURN:
        return size;
    default:
        return (c->recvd / size + (uint64_t)cfg->inflight) * size;
    }
}

/* Sends what the limit allows and the socket takes. */
static void try_send(struct worker *w, struct bconn *c, uint64_t now,
                     bool ending)
{
    uint64_t limit = send_limit(w, c, ending), size = (uint64_t)w->cfg->size;
    bool blocked = false;

    if (c->sent == c->recvd && c->sent < limit)
        c->progress_at = now; /* a wait for an echo begins */
    while (c->sent < limit) {
        size_t n = limit - c->sent < CHUNK ? (size_t)(limit - c->sent) : CHUNK;
        pattern(c->seed, c->sent, w->buf, n);
        ssize_t put = send(c->fd, w->buf, n, MSG_NOSIGNAL);
        if (put == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            blocked = true;
            break;
        }
        if (put == -1) {
            drop(w, c, ERR_RESET);
            return;
        }
        /* Stamp the messages whose first byte has just left. */
        for (uint64_t j = (c->sent + size - 1) / size;
             j * size < c->sent + (uint64_t)put; j++)
            c->sent_at[j % (uint64_t)w->cfg->inflight] = now;
        c->sent += (uint64_t)put;
    }
    if (blocked != c->want_out) {
        watch(w, c, EPOLL_CTL_MOD, EPOLLIN | (blocked ? EPOLLOUT : 0));
        c->want_out = blocked;
    }
}

/* Records the messages that the bytes [from, to) of echo complete. */
static void complete(struct worker *w, struct bconn *c, uint64_t from,
                     uint64_t to, uint64_t now)
{
    const struct config *cfg = w->cfg;
    uint64_t size = (uint64_t)cfg->size;
    bool measuring = now >= t_measure && now < t_end;

    if (measuring)
        w->r.bytes += to - from;
    for (uint64_t j = from / size; (j + 1) * size <= to; j++) {
        if ((j + 1) * size <= from)
            continue;
        uint64_t sent_at = cfg->mode == MODE_CHURN
                               ? c->started
                               : c->sent_at[j % (uint64_t)cfg->inflight];
        if (measuring) {
            w->r.msgs++;
            hist_add(&w->r.lat, now - sent_at);
        }
    }
}

/* Reads and checks what has come back; returns false if c was dropped. */
static bool on_readable(struct worker *w, struct bconn *c, uint64_t now)
{
    for (;;) {
        ssize_t n = read(c->fd, w->buf, CHUNK);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n == -1) {
            drop(w, c, ERR_RESET);
            return false;
        }
        if (n == 0) {
            /* The server closed: fine only if nothing was owed to us. */
            drop(w, c, c->recvd < c->sent ? ERR_SHORT : -1);
            return false;
        }
        if (c->recvd + (uint64_t)n > c->sent) {
            drop(w, c, ERR_MISMATCH); /* bytes we never sent */
            return false;
        }
        pattern(c->seed, c->recvd, w->expect, (size_t)n);
        if (memcmp(w->buf, w->expect, (size_t)n) != 0) {
            drop(w, c, ERR_MISMATCH);
            return false;
        }
        complete(w, c, c->recvd, c->recvd + (uint64_t)n, now);
        c->recvd += (uint64_t)n;
        c->progress_at = now;
        if (n < CHUNK)
            return true; /* drained for now: EPOLLIN will say when not */
    }
}

static void on_event(struct worker *w, struct bconn *c, uint32_t events,
                     uint64_t now, bool ending)
{
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        if (err != 0) {
            drop(w, c, ERR_REFUSED);
            return;
        }
        c->connecting = false;
        c->want_out = true; /* registered with EPOLLOUT: try_send clears it */
    } else if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
               !on_readable(w, c, now)) {
        return;
    }
    if (w->cfg->mode == MODE_CHURN && c->recvd == (uint64_t)w->cfg->size) {
        /* One whole echo: that connection is done; the next begins. */
        close(c->fd);
        c->fd = -1;
        if (!ending)
            start_connect(w, c, now);
        return;
    }
    if (w->cfg->mode != MODE_CHURN || c->sent == 0 || c->want_out)
        try_send(w, c, now, ending);
}

/* Drops connections that have waited for an echo (or a connect) longer
 * than the timeout; returns how many still wait. */
static size_t check_stalls(struct worker *w, uint64_t now)
{
    uint64_t limit = (uint64_t)(w->cfg->timeout * (double)NS_PER_S);
    size_t waiting = 0;

    for (size_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->fd == -1 || (!c->connecting && c->recvd == c->sent))
            continue;
        if (now - c->progress_at > limit)
            drop(w, c, c->connecting ? ERR_REFUSED : ERR_STALL);
        else
            waiting++;
    }
    return waiting;
}

/* Runs epoll until the deadline, or, with ending, until nothing is owed. */
static void loop(struct worker *w, uint64_t deadline, bool ending)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns(), next_check = now + TICK_MS * 1000000ull;

    while (now < deadline) {
        int ms = (int)((deadline - now) / 1000000) + 1;
        int n =
            epoll_wait(w->epfd, evs, MAX_EVENTS, ms < TICK_MS ? ms : TICK_MS);
        if (n == -1 && errno != EINTR)
            err_sys("epoll_wait");
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct bconn *c = evs[i].data.ptr;
            if (c->fd != -1)
                on_event(w, c, evs[i].events, now, ending);
        }
        if (now >= next_check || ending) {
            size_t waiting = check_stalls(w, now);
            if (ending && waiting == 0)
                return;
            next_check = now + TICK_MS * 1000000ull;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct config *cfg = w->cfg;
    uint64_t now = now_ns(), timeout = (uint64_t)(cfg->timeout * NS_PER_S);

    w->next_seed = w->first_id * 1000003ull + 1;
    for (size_t i = 0; i < w->nconns; i++) {
        w->conns[i].sent_at = calloc((size_t)cfg->inflight, sizeof(uint64_t));
        if (w->conns[i].sent_at == NULL)
            err_sys("calloc");
        start_connect(w, &w->conns[i], now);
    }
    /* Connect everyone before the clock starts (churn: the first round). */
    if (cfg->mode != MODE_CHURN) {
        uint64_t deadline = now + timeout;
        size_t pending = w->nconns;
        while (pending > 0 && now_ns() < deadline) {
            struct epoll_event evs[MAX_EVENTS];
            int n = epoll_wait(w->epfd, evs, MAX_EVENTS, TICK_MS);
            for (int i = 0; i < n; i++) {
                struct bconn *c = evs[i].data.ptr;
                if (c->fd != -1 && c->connecting) {
                    on_event(w, c, evs[i].events, now_ns(), true);
                    pending--;
                }
            }
        }
        check_stalls(w, now_ns()); /* connects still pending: refused */
    }
    pthread_barrier_wait(&connected);
    pthread_barrier_wait(&go);
    for (size_t i = 0; i < w->nconns; i++)
        if (w->conns[i].fd != -1 && !w->conns[i].connecting)
            try_send(w, &w->conns[i], now_ns(), false);
    loop(w, t_end, false);
    /* Nobody closes before main() has sampled the server: 02's children
     * would exit, and take their CPU time with them until reaped. */
    pthread_barrier_wait(&measured);
    /* The end: no new messages; collect what is owed, within the timeout. */
    loop(w, now_ns() + timeout, true);
    check_stalls(w, UINT64_MAX / 2);
    for (size_t i = 0; i < w->nconns; i++) {
        if (w->conns[i].fd != -1)
            close(w->conns[i].fd);
        free(w->conns[i].sent_at);
    }
    close(w->epfd);
    return NULL;
}

/* ---- the server, seen from /proc ---------------------------------------- */

struct server_sample {
    double cpu;   /* seconds: its own, its reaped and live children's */
    long rss_kib; /* PSS, children included (see memory_kib) */
    long hwm_kib; /* its own peak RSS */
    long threads, procs;
};

/* The CPU seconds of every thread of pid, to the nanosecond, from the
 * scheduler's own count (/proc/PID/task/TID/schedstat); -1 if the kernel
 * keeps none. /proc/PID/stat's utime and stime come in clock ticks
 * (10 ms): a hundred processes of 02 each rounding its time would be off
 * by a second. */
static double tasks_cpu(pid_t pid)
{
    char path[64];
    double sum = -1;
    struct dirent *e;

    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    while (d != NULL && (e = readdir(d)) != NULL) {
        unsigned long long ns;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.20s/schedstat", (int)pid,
                 e->d_name);
        FILE *f = fopen(path, "r");
        /* NOLINTNEXTLINE(cert-err34-c): the kernel writes these numbers */
        if (f != NULL && fscanf(f, "%llu", &ns) == 1)
            sum = (sum < 0 ? 0 : sum) + (double)ns / 1e9;
        if (f != NULL)
            fclose(f);
    }
    if (d != NULL)
        closedir(d);
    return sum;
}

/* The CPU seconds of pid (tasks_cpu(), or utime + stime) and of its reaped
 * children (cutime + cstime, fields 16-17 of /proc/PID/stat), and its
 * parent; false if it is gone, or if parent is not 0 and not its parent. */
static bool proc_cpu(pid_t pid, pid_t parent, double *self, double *reaped,
                     pid_t *ppid)
{
    char path[64], line[1024];
    unsigned long ut, st;
    long cut, cst;
    int pp;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL; /* the name may hold spaces */
    /* NOLINTNEXTLINE(cert-err34-c): the kernel writes these numbers */
    if (p == NULL || sscanf(p + 2,
                            "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu "
                            "%lu %ld %ld",
                            &pp, &ut, &st, &cut, &cst) != 5)
        return false;
    double hz = (double)sysconf(_SC_CLK_TCK);
    *ppid = pp;
    if (parent != 0 && pp != parent)
        return false; /* not a child: spare reading its threads */
    *self = tasks_cpu(pid);
    if (*self < 0)
        *self = (double)(ut + st) / hz;
    *reaped = (double)(cut + cst) / hz;
    return true;
}

static long status_field(pid_t pid, const char *name)
{
    char path[64], line[256];
    long v = -1;
    size_t len = strlen(name);
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ':')
            v = strtol(line + len + 1, NULL, 10);
    fclose(f);
    return v;
}

/* A process's memory in KiB: its PSS (proportional set size), where a page
 * shared by n processes counts 1/n in each, so that a forking server and
 * its children add up to what they really use. VmRSS if PSS is hidden. */
static long memory_kib(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Pss:", 4) == 0)
            v = strtol(line + 4, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v >= 0 ? v : status_field(pid, "VmRSS");
}

/* The CPU seconds and PSS of pid's live children (02's), which are in
 * neither its own times nor its cutime until they are reaped; adds them to
 * s. /proc/PID/task/TID/children is not in every kernel (it needs
 * CONFIG_PROC_CHILDREN), so every process's parent is read instead. */
static void add_children(pid_t server, struct server_sample *s, bool memory)
{
    DIR *d = opendir("/proc");
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        double self, reaped;
        pid_t child = (pid_t)strtol(e->d_name, NULL, 10), ppid;
        if (child <= 0 || !proc_cpu(child, server, &self, &reaped, &ppid))
            continue;
        s->cpu += self + reaped;
        if (memory)
            s->rss_kib += memory_kib(child);
        s->procs++;
    }
    if (d != NULL)
        closedir(d);
}

/* The server's CPU seconds (its own, its reaped children's in cutime and
 * cstime, its live children's), threads and processes; with memory, its
 * PSS too, children included (slower: one file per child). */
static bool sample_server(pid_t pid, struct server_sample *s, bool memory)
{
    double self, reaped;
    pid_t ppid;

    if (!proc_cpu(pid, 0, &self, &reaped, &ppid))
        return false;
    s->cpu = self + reaped;
    s->rss_kib = memory ? memory_kib(pid) : 0;
    s->hwm_kib = status_field(pid, "VmHWM");
    s->threads = status_field(pid, "Threads");
    s->procs = 1;
    add_children(pid, s, memory);
    return true;
}

/* ---- --self: the ceiling ------------------------------------------------ */

/* The bare loop: the least an event-driven echo server can do, so that every
 * lesson reads as a ratio to it. One thread, one level-triggered epoll
 * instance, and for each ready socket one read() of up to CHUNK bytes and
 * one send() of what came. A short send keeps the rest in pending[fd] and
 * waits for EPOLLOUT, reading nothing more from that client until it is
 * gone: the only state a connection ever has. No stop, no statistics, no
 * error message: the parent kills it. */
struct pending {
    size_t off, len;
    char bytes[];
};

static void bare_close(int fd, struct pending **pending)
{
    free(pending[fd]);
    pending[fd] = NULL;
    close(fd);
}

/* Sends pending[fd]'s rest; back to EPOLLIN once it is all gone. */
static void bare_flush(int epfd, int fd, struct pending **pending)
{
    struct pending *p = pending[fd];
    ssize_t n = send(fd, p->bytes + p->off, p->len - p->off, MSG_NOSIGNAL);

    if (n == -1 && errno != EAGAIN) {
        bare_close(fd, pending);
        return;
    }
    p->off += n > 0 ? (size_t)n : 0;
    if (p->off == p->len) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        free(p);
        pending[fd] = NULL;
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
            bare_close(fd, pending);
    }
}

/* One read, one send; a short send keeps the rest. */
static void bare_echo(int epfd, int fd, struct pending **pending, char *buf)
{
    ssize_t n = read(fd, buf, CHUNK), put;

    if (n == -1 && errno == EAGAIN)
        return;
    if (n <= 0) {
        bare_close(fd, pending);
        return;
    }
    put = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (put == -1 && errno != EAGAIN) {
        bare_close(fd, pending);
        return;
    }
    if (put == n)
        return;
    size_t done = put > 0 ? (size_t)put : 0;
    struct pending *p = malloc(sizeof *p + (size_t)n - done);
    if (p == NULL) {
        bare_close(fd, pending);
        return;
    }
    p->off = 0;
    p->len = (size_t)n - done;
    memcpy(p->bytes, buf + done, p->len);
    pending[fd] = p;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
        bare_close(fd, pending);
}

static _Noreturn void bare_loop(int listenfd, long maxfd)
{
    static char buf[CHUNK];
    struct epoll_event evs[MAX_EVENTS], ev = {.events = EPOLLIN};
    struct pending **pending = calloc((size_t)maxfd, sizeof *pending);
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (pending == NULL || epfd == -1)
        err_sys("--self");
    ev.data.fd = listenfd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &ev) == -1)
        err_sys("--self: epoll_ctl");
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != listenfd) {
                if (pending[fd] != NULL)
                    bare_flush(epfd, fd, pending);
                else
                    bare_echo(epfd, fd, pending, buf);
                continue;
            }
            while ((fd = accept4(listenfd, NULL, NULL,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
                ev.data.fd = fd;
                if (fd >= maxfd || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
                    close(fd); /* the parent will see it refused or short */
            }
        }
    }
}

/* Forks the bare loop, listening before the fork so that the port is known;
 * sets cfg's host, port and server_pid. */
static void start_self(struct config *cfg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct rlimit rl;
    int gai_err, listenfd;

    /* getsockname() fills ss, but clang-tidy 14's analyzer cannot see it
     * through glibc's transparent union (llvm-project#60482). */
    memset(&ss, 0, sizeof ss);

    listenfd = tcp_listen("127.0.0.1", "0", 4096, &gai_err);
    if (listenfd == -1 ||
        getsockname(listenfd, (struct sockaddr *)&ss, &len) == -1)
        err_sys("--self: cannot listen");
    pid_t pid = fork();
    if (pid == -1)
        err_sys("fork");
    if (pid > 0) {
        snprintf(cfg->port, sizeof cfg->port, "%u",
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
        close(listenfd);
        cfg->host = "127.0.0.1";
        cfg->server_pid = pid;
        return;
    }
    if (cfg->self_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)cfg->self_cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) == -1)
            err_sys("--self-cpu %ld", cfg->self_cpu);
    }
    if (set_nonblocking(listenfd) == -1 || getrlimit(RLIMIT_NOFILE, &rl) == -1)
        err_sys("--self");
    bare_loop(listenfd, (long)rl.rlim_cur);
}

/* ---- the command line and the report ------------------------------------ */

static _Noreturn void usage(int status)
{
    FILE *fp = status == 0 ? stdout : stderr;

    fprintf(
        fp,
        "usage: echo-bench [-H host] [-p port] [-c conns] [-i idle] "
        "[-s bytes]\n"
        "                  [-P inflight] [-m pp|bulk|churn]\n"
        "                  [-d secs] [-W secs] [-t secs] [-T threads] "
        "[--pid PID] [--self] [--self-cpu N]\n"
        "                  [--label NAME] [--csv] [--csv-header] [-h]\n"
        "the suite's load generator: every byte echoed is checked\n\n"
        "  -H host        server address (default 127.0.0.1)\n"
        "  -p port        server port (default 9006)\n"
        "  -c conns       connections, or churn slots (default 10)\n"
        "  -i idle        more connections, opened first, that stay silent "
        "(default 0)\n"
        "  -s bytes       message size (default 64)\n"
        "  -P inflight    messages in flight per connection (default 1)\n"
        "  -m mode        pp: ping-pong/pipelined; bulk: MB/s; churn: "
        "connect, echo, close\n"
        "  -d secs        measured duration (default 5)\n"
        "  -W secs        warm-up before measuring (default 1)\n"
        "  -t secs        give up on an echo after this long (default 5)\n"
        "  -T threads     load threads, each with its own epoll (default 1)\n"
        "  --pid PID      report this server's CPU, RSS, threads, processes\n"
        "  --self         measure the ceiling: a bare epoll echo loop of our "
        "own\n"
        "  --self-cpu N   pin the --self server to CPU N\n"
        "  --label NAME   the first column of --csv (default the address)\n"
        "  --csv          print one CSV line instead of the report\n"
        "  --csv-header   print the CSV header line and exit\n"
        "Exit status: 0 if every byte came back right, 1 otherwise, 2 for "
        "bad usage.\n");
    exit(status);
}

static const char csv_header[] =
    "label,mode,conns,idle,size,inflight,threads,seconds,messages,msg_per_s,"
    "mb_per_s,p50_us,p90_us,p99_us,p999_us,max_us,errors,mismatched,short,"
    "reset,stalled,refused,cpu_us_per_msg,peak_rss_kib,rss_per_conn_b,"
    "server_threads,server_procs";

enum {
    OPT_PID = 256,
    OPT_SELF,
    OPT_SELF_CPU,
    OPT_LABEL,
    OPT_CSV,
    OPT_CSV_HEADER
};

static double seconds_arg(const char *arg)
{
    char *end;
    double v = strtod(arg, &end);

    if (*arg == '\0' || *end != '\0' || !(v >= 0 && v <= 86400)) {
        err_msg("not a number of seconds: %s", arg);
        usage(2);
    }
    return v;
}

static long number_arg(const char *arg, long min, long max)
{
    long v;

    if (parse_number(arg, min, max, &v) == -1)
        usage(2);
    return v;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    static const struct option longs[] = {
        {"pid", required_argument, NULL, OPT_PID},
        {"self", no_argument, NULL, OPT_SELF},
        {"self-cpu", required_argument, NULL, OPT_SELF_CPU},
        {"label", required_argument, NULL, OPT_LABEL},
        {"csv", no_argument, NULL, OPT_CSV},
        {"csv-header", no_argument, NULL, OPT_CSV_HEADER},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, ":H:p:c:i:s:P:m:d:W:t:T:h", longs,
                              NULL)) != -1) {
        switch (opt) {
        case 'H':
            cfg->host = optarg;
            break;
        case 'p':
            snprintf(cfg->port, sizeof cfg->port, "%ld",
                     number_arg(optarg, 0, 65535));
            break;
        case 'c':
            cfg->conns = number_arg(optarg, 1, 100000);
            break;
        case 'i':
            cfg->idle = number_arg(optarg, 0, 100000);
            break;
        case 's':
            cfg->size = number_arg(optarg, 1, 1 << 24);
            break;
        case 'P':
            cfg->inflight = number_arg(optarg, 1, 4096);
            break;
        case 'd':
            cfg->duration = seconds_arg(optarg);
            break;
        case 'W':
            cfg->warmup = seconds_arg(optarg);
            break;
        case 't':
            cfg->timeout = seconds_arg(optarg);
            break;
        case 'T':
            cfg->threads = number_arg(optarg, 1, 64);
            break;
        case 'm':
            if (strcmp(optarg, "pp") == 0)
                cfg->mode = MODE_PINGPONG;
            else if (strcmp(optarg, "bulk") == 0)
                cfg->mode = MODE_BULK;
            else if (strcmp(optarg, "churn") == 0)
                cfg->mode = MODE_CHURN;
            else {
                err_msg("-m %s: expected pp, bulk or churn", optarg);
                usage(2);
            }
            break;
        case OPT_PID:
            cfg->server_pid = (pid_t)number_arg(optarg, 1, 1 << 30);
            break;
        case OPT_SELF:
            cfg->self = true;
            break;
        case OPT_SELF_CPU:
            cfg->self_cpu = number_arg(optarg, 0, 4095);
            break;
        case OPT_LABEL:
            cfg->label = optarg;
            break;
        case OPT_CSV:
            cfg->csv = true;
            break;
        case OPT_CSV_HEADER:
            puts(csv_header);
            exit(0);
        case 'h':
            usage(0);
        case ':':
            err_msg("option -%c needs a value", optopt);
            usage(2);
        default:
            err_msg("unknown option: %s", argv[optind - 1]);
            usage(2);
        }
    }
    if (optind < argc) {
        err_msg("unexpected argument: %s", argv[optind]);
        usage(2);
    }
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
    if (cfg->mode == MODE_CHURN)
        cfg->inflight = 1;
}

static void resolve(struct config *cfg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg->host, cfg->port, &hints, &res);

    if (rc != 0)
        err_quit("cannot resolve %s: %s", cfg->host, gai_strerror(rc));
    memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
    cfg->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / NS_PER_S),
                          .tv_nsec = (long)(t % NS_PER_S)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

struct report {
    struct result total;
    uint64_t errors;
    bool have_server;
    struct server_sample before, after;
    long rss_idle_kib; /* the server's RSS before we connected */
    long rss_conn_kib; /* ... and with every connection open */
};

static void print_human(const struct config *cfg, const struct report *rp)
{
    const struct result *t = &rp->total;
    const struct histogram *h = &t->lat;
    double secs = cfg->duration;

    printf("echo-bench: %s:%s, %ld %s, %ld B messages, %s", cfg->host,
           cfg->port, cfg->conns,
           cfg->mode == MODE_CHURN ? "churn slots" : "connections", cfg->size,
           mode_names[cfg->mode]);
    if (cfg->mode == MODE_PINGPONG)
        printf(" (%ld in flight)", cfg->inflight);
    if (cfg->idle > 0)
        printf(", %ld idle", cfg->idle);
    printf(", %.1f s after %.1f s warm-up\n", cfg->duration, cfg->warmup);
    printf("throughput  %.0f %s/s  %.2f MB/s\n", (double)t->msgs / secs,
           cfg->mode == MODE_CHURN ? "conn" : "msg",
           (double)t->bytes / secs / 1e6);
    printf("latency     p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us"
           "  max %.1f us\n",
           (double)hist_quantile(h, 0.50) / 1e3,
           (double)hist_quantile(h, 0.90) / 1e3,
           (double)hist_quantile(h, 0.99) / 1e3,
           (double)hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3);
    printf("errors      %" PRIu64, rp->errors);
    for (int k = 0; k < NERRORS; k++)
        if (t->errors[k] > 0)
            printf(", %" PRIu64 " %s", t->errors[k], error_names[k]);
    printf("\n");
    if (rp->have_server) {
        double cpu = rp->after.cpu - rp->before.cpu;
        printf("server      pid %d: %.2f us CPU per message, peak RSS %ld "
               "KiB, %.0f B per connection, threads %ld, processes %ld\n",
               (int)cfg->server_pid,
               t->msgs ? cpu * 1e6 / (double)t->msgs : 0.0, rp->after.hwm_kib,
               (double)(rp->rss_conn_kib - rp->rss_idle_kib) * 1024 /
                   (double)(cfg->conns + cfg->idle),
               rp->after.threads, rp->after.procs);
    }
}

static void print_csv(const struct config *cfg, const struct report *rp)
{
    const struct result *t = &rp->total;
    const struct histogram *h = &t->lat;
    double secs = cfg->duration, cpu = rp->after.cpu - rp->before.cpu;
    char where[HOST_PORT_LEN];

    printf("%s,%s,%ld,%ld,%ld,%ld,%ld,%.3f,%" PRIu64
           ",%.1f,%.3f,%.1f,%.1f,%.1f,"
           "%.1f,%.1f,%" PRIu64,
           cfg->label ? cfg->label
                      : host_port(cfg->host, cfg->port, where, sizeof where),
           cfg->mode == MODE_PINGPONG ? "pp" : mode_names[cfg->mode],
           cfg->conns, cfg->idle, cfg->size, cfg->inflight, cfg->threads, secs,
           t->msgs, (double)t->msgs / secs, (double)t->bytes / secs / 1e6,
           (double)hist_quantile(h, 0.50) / 1e3,
           (double)hist_quantile(h, 0.90) / 1e3,
           (double)hist_quantile(h, 0.99) / 1e3,
           (double)hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
           rp->errors);
    for (int k = 0; k < NERRORS; k++)
        printf(",%" PRIu64, t->errors[k]);
    if (rp->have_server)
        printf(",%.3f,%ld,%.0f,%ld,%ld\n",
               t->msgs ? cpu * 1e6 / (double)t->msgs : 0.0, rp->after.hwm_kib,
               (double)(rp->rss_conn_kib - rp->rss_idle_kib) * 1024 /
                   (double)(cfg->conns + cfg->idle),
               rp->after.threads, rp->after.procs);
    else
        printf(",,,,,\n");
}

/* Opens the -i idle connections, blocking, and has each echo one byte, so
 * that the server has accepted and registered every one before the clock
 * starts; then they stay silent. What select() and poll() pay for. A
 * connection that fails counts as refused (or stalled, without its echo)
 * and is closed. Returns the descriptors (-1 for a failed one). */
static int *open_idle(const struct config *cfg, struct report *rp)
{
    struct timeval tv = {
        .tv_sec = (time_t)cfg->timeout,
        .tv_usec =
            (suseconds_t)((cfg->timeout - (double)(time_t)cfg->timeout) * 1e6)};
    int *fds = calloc((size_t)cfg->idle + 1, sizeof *fds);
    char byte = 'i';

    if (fds == NULL)
        err_sys("calloc");
    for (long i = 0; i < cfg->idle; i++) {
        fds[i] = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] == -1)
            err_sys("socket");
        if (setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1 ||
            connect(fds[i], (const struct sockaddr *)&cfg->addr,
                    cfg->addrlen) == -1 ||
            send(fds[i], &byte, 1, MSG_NOSIGNAL) != 1) {
            rp->total.errors[ERR_REFUSED]++;
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (long i = 0; i < cfg->idle; i++) {
        if (fds[i] != -1 && (read(fds[i], &byte, 1) != 1 || byte != 'i')) {
            rp->total.errors[ERR_STALL]++;
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (int k = 0; k < NERRORS; k++)
        rp->errors += rp->total.errors[k];
    return fds;
}

/* Runs the workers through connect, warm-up, measurement and the end. */
static void run(const struct config *cfg, struct worker *ws, struct report *rp)
{
    pid_t pid = cfg->server_pid;

    rp->have_server = pid > 0 && sample_server(pid, &rp->before, true);
    rp->rss_idle_kib = rp->before.rss_kib;
    int *idle = open_idle(cfg, rp);
    for (long i = 0, first = 0; i < cfg->threads; i++) {
        struct worker *w = &ws[i];
        w->cfg = cfg;
        w->nconns = (size_t)(cfg->conns / cfg->threads +
                             (i < cfg->conns % cfg->threads));
        w->first_id = (size_t)first;
        first += (long)w->nconns;
        w->conns = calloc(w->nconns, sizeof *w->conns);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->conns == NULL || w->epfd == -1)
            err_sys("worker set-up");
        int rc = pthread_create(&w->tid, NULL, worker_main, w);
        if (rc != 0) {
            errno = rc;
            err_sys("pthread_create");
        }
    }
    pthread_barrier_wait(&connected);
    uint64_t start = now_ns();
    t_measure = start + (uint64_t)(cfg->warmup * NS_PER_S);
    t_end = t_measure + (uint64_t)(cfg->duration * NS_PER_S);
    if (rp->have_server && sample_server(pid, &rp->before, true))
        rp->rss_conn_kib = rp->before.rss_kib;
    pthread_barrier_wait(&go);

    sleep_until(t_measure);
    if (rp->have_server)
        rp->have_server = sample_server(pid, &rp->before, false);
    sleep_until(t_end);
    if (rp->have_server)
        rp->have_server = sample_server(pid, &rp->after, false);
    pthread_barrier_wait(&measured);
    for (long i = 0; i < cfg->threads; i++) {
        pthread_join(ws[i].tid, NULL);
        rp->total.msgs += ws[i].r.msgs;
        rp->total.bytes += ws[i].r.bytes;
        hist_merge(&rp->total.lat, &ws[i].r.lat);
        for (int k = 0; k < NERRORS; k++) {
            rp->total.errors[k] += ws[i].r.errors[k];
            rp->errors += ws[i].r.errors[k];
        }
        free(ws[i].conns);
    }
    for (long i = 0; i < cfg->idle; i++)
        if (idle[i] != -1)
            close(idle[i]);
    free(idle);
}

int main(int argc, char **argv)
{
    struct config cfg = {.host = "127.0.0.1",
                         .port = "9006",
                         .conns = 10,
                         .size = 64,
                         .inflight = 1,
                         .threads = 1,
                         .warmup = 1,
                         .duration = 5,
                         .timeout = 5,
                         .self_cpu = -1};
    static struct report rp;
    struct rlimit rl;

    parse_args(argc, argv, &cfg);
    /* Many connections need many descriptors: take all we may. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (cfg.self)
        start_self(&cfg);
    resolve(&cfg);
    if (pthread_barrier_init(&connected, NULL, (unsigned)cfg.threads + 1) ||
        pthread_barrier_init(&go, NULL, (unsigned)cfg.threads + 1) ||
        pthread_barrier_init(&measured, NULL, (unsigned)cfg.threads + 1))
        err_quit("pthread_barrier_init failed");
    struct worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
    if (ws == NULL)
        err_sys("calloc");
    run(&cfg, ws, &rp);
    free(ws);
    if (cfg.self) {
        kill(cfg.server_pid, SIGKILL);
        waitpid(cfg.server_pid, NULL, 0);
    }
    if (cfg.csv)
        print_csv(&cfg, &rp);
    else
        print_human(&cfg, &rp);
    return rp.errors == 0 ? 0 : 1;
}
