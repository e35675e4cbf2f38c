/* reactor.c -- the loop, its handlers and its timers; see reactor.h.
 *
 * Handlers live in an array indexed by descriptor, as in Redis's ae.c: a
 * ready descriptor finds its handler in one step, and the array grows to
 * the highest descriptor seen. Timers live in a binary min-heap ordered by
 * due time: the next one is at the top, so the wait's timeout is known in
 * O(1) and starting or stopping a timer costs O(log n), whatever the
 * number of timers -- a timer per connection is affordable.
 */
#include "reactor.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demux.h"

struct handler {
    unsigned mask; /* RE_READ | RE_WRITE, or 0 when not watched */
    io_handler fn;
    void *arg;
};

struct reactor {
    const struct demux *demux;
    void *state;              /* the backend's */
    struct handler *handlers; /* handlers[fd], for fd < nhandlers */
    struct fired *fired;      /* room for nhandlers ready descriptors */
    size_t nhandlers;
    struct timer **heap; /* heap[1 .. ntimers]; heap[0] unused */
    size_t ntimers, heap_cap;
    uint64_t now_ms;
    bool stopping;
    struct reactor_stats stats;
};

static uint64_t clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct reactor *reactor_new(const char *backend)
{
    static const struct demux *const all[] = {&demux_select, &demux_poll,
                                              &demux_epoll};
    struct reactor *r;

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(backend, all[i]->name) != 0)
            continue;
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        r->demux = all[i];
        r->state = r->demux->create();
        if (r->state == NULL) {
            free(r);
            return NULL;
        }
        r->now_ms = clock_ms();
        return r;
    }
    errno = EINVAL;
    return NULL;
}

const char *reactor_backend(const struct reactor *r)
{
    return r->demux->name;
}

void reactor_free(struct reactor *r)
{
    r->demux->destroy(r->state);
    free(r->handlers);
    free(r->fired);
    free(r->heap);
    free(r);
}

/* The handler table grows by this many slots at a time. */
enum { HANDLERS_STEP = 1024 };

/* Grows the handler table (and the fired array with it) to cover fd: to
 * fd + 1 slots rounded up to a multiple of HANDLERS_STEP, not doubled.
 * Every new slot is zeroed, so every slot costs its bytes whether a
 * descriptor uses it or not: doubling gave 5000 clients 8192 slots, 39
 * bytes each. Growing by steps copies little: a table past malloc's mmap
 * threshold (128 KiB by default: from 6144 slots on) is a mapping of its
 * own, and realloc() grows it with mremap(), which moves no bytes. */
static int cover(struct reactor *r, int fd)
{
    size_t n = ((size_t)fd / HANDLERS_STEP + 1) * HANDLERS_STEP;

    struct handler *handlers = realloc(r->handlers, n * sizeof *handlers);
    if (handlers == NULL)
        return -1;
    memset(handlers + r->nhandlers, 0, (n - r->nhandlers) * sizeof *handlers);
    r->handlers = handlers;
    struct fired *fired = realloc(r->fired, n * sizeof *fired);
    if (fired == NULL)
        return -1; /* the handlers grew anyway: harmless */
    r->fired = fired;
    r->nhandlers = n;
    return 0;
}

int reactor_watch(struct reactor *r, int fd, unsigned mask, io_handler fn,
                  void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= r->nhandlers && cover(r, fd) == -1)
        return -1;
    struct handler *h = &r->handlers[fd];
    if (mask != h->mask && r->demux->set(r->state, fd, h->mask, mask) == -1)
        return -1;
    *h = (struct handler){mask, fn, arg};
    return 0;
}

unsigned reactor_watching(const struct reactor *r, int fd)
{
    return fd >= 0 && (size_t)fd < r->nhandlers ? r->handlers[fd].mask : 0;
}

void reactor_forget(struct reactor *r, int fd)
{
    if (reactor_watching(r, fd) != 0)
        (void)r->demux->set(r->state, fd, r->handlers[fd].mask, 0);
    if (fd >= 0 && (size_t)fd < r->nhandlers)
        r->handlers[fd] = (struct handler){0, NULL, NULL};
}

uint64_t reactor_now(const struct reactor *r)
{
    return r->now_ms;
}

/* --- timers: a min-heap on due_ms ------------------------------------- */

static void heap_put(struct reactor *r, size_t i, struct timer *t)
{
    r->heap[i] = t;
    t->heap_index = i;
}

/* Moves the timer at i up while it is due before its parent. */
static void sift_up(struct reactor *r, size_t i)
{
    struct timer *t = r->heap[i];

    while (i > 1 && r->heap[i / 2]->due_ms > t->due_ms) {
        heap_put(r, i, r->heap[i / 2]);
        i /= 2;
    }
    heap_put(r, i, t);
}

/* Moves the timer at i down while a child is due before it. */
static void sift_down(struct reactor *r, size_t i)
{
    struct timer *t = r->heap[i];

    for (;;) {
        size_t child = 2 * i;
        if (child > r->ntimers)
            break;
        if (child < r->ntimers &&
            r->heap[child + 1]->due_ms < r->heap[child]->due_ms)
            child++;
        if (r->heap[child]->due_ms >= t->due_ms)
            break;
        heap_put(r, i, r->heap[child]);
        i = child;
    }
    heap_put(r, i, t);
}

void reactor_timer_stop(struct reactor *r, struct timer *t)
{
    size_t i = t->heap_index;

    if (i == 0)
        return;
    t->heap_index = 0;
    struct timer *last = r->heap[r->ntimers--];
    if (last == t)
        return;
    /* The last timer fills the hole, then finds its place either way. */
    heap_put(r, i, last);
    sift_up(r, i);
    sift_down(r, last->heap_index);
}

int reactor_timer_start(struct reactor *r, struct timer *t, uint64_t delay_ms,
                        timer_handler fn, void *arg)
{
    reactor_timer_stop(r, t);
    if (r->ntimers + 1 >= r->heap_cap) {
        size_t cap = r->heap_cap ? 2 * r->heap_cap : 64;
        struct timer **bigger = realloc(r->heap, cap * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        r->heap = bigger;
        r->heap_cap = cap;
    }
    t->due_ms = r->now_ms + delay_ms;
    t->fn = fn;
    t->arg = arg;
    heap_put(r, ++r->ntimers, t);
    sift_up(r, r->ntimers);
    return 0;
}

/* How long the wait may sleep: until the next timer, or for ever. */
static int wait_timeout(const struct reactor *r)
{
    if (r->ntimers == 0)
        return -1;
    uint64_t due = r->heap[1]->due_ms;
    if (due <= r->now_ms)
        return 0;
    return due - r->now_ms > INT_MAX ? INT_MAX : (int)(due - r->now_ms);
}

/* Runs every timer that is due. A handler may start or stop timers,
 * itself included: each is taken off the heap before it runs. */
static void run_timers(struct reactor *r)
{
    while (r->ntimers > 0 && r->heap[1]->due_ms <= r->now_ms && !r->stopping) {
        struct timer *t = r->heap[1];
        reactor_timer_stop(r, t);
        r->stats.timeouts++;
        t->fn(r, t->arg);
    }
}

/* --- the loop ----------------------------------------------------------- */

int reactor_run(struct reactor *r)
{
    r->stopping = false;
    while (!r->stopping) {
        r->now_ms = clock_ms();
        int n = r->demux->wait(r->state, wait_timeout(r), r->fired,
                               r->nhandlers > INT_MAX ? INT_MAX
                                                      : (int)r->nhandlers);
        r->stats.waits++;
        if (n == -1 && errno != EINTR)
            return -1;
        r->now_ms = clock_ms();
        for (int i = 0; i < n && !r->stopping; i++) {
            struct fired *f = &r->fired[i];
            struct handler *h = &r->handlers[f->fd];
            /* Ask the table, not the report: a handler that ran before
             * this one in the same round may have stopped watching f->fd,
             * or closed it. (If it closed it and accept() then got the same
             * number back, the new handler may get one report that was
             * meant for the old socket; its non-blocking read() then finds
             * nothing, EAGAIN, and no harm is done.) */
            unsigned mask = f->mask & h->mask;
            r->stats.events++;
            if (mask != 0)
                h->fn(r, f->fd, mask, h->arg);
        }
        run_timers(r);
    }
    return 0;
}

void reactor_stop(struct reactor *r)
{
    r->stopping = true;
}

struct reactor_stats reactor_stats(const struct reactor *r)
{
    return r->stats;
}
