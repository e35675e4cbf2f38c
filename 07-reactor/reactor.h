/* reactor.h -- the event loop of lesson 07, as a piece of its own.
 *
 * The Reactor pattern names four parts, and each is one thing here:
 *   - handles: the descriptors (sockets, stdin) the program waits on;
 *   - the synchronous event demultiplexer: select(), poll() or epoll_wait(),
 *     chosen at run time (reactor_new()'s backend), behind one small set of
 *     functions (struct backend in reactor.c);
 *   - event handlers: a function and its argument registered per descriptor
 *     with reactor_watch(), and timers with reactor_timer_start();
 *   - the dispatcher: reactor_run(), which waits, then calls the handler of
 *     every descriptor that is ready and of every timer that is due.
 *
 * Handlers run on the loop's one thread, one after another: a handler that
 * blocks (a read() on a blocking socket, a sleep, a slow computation) stops
 * every other client with it. Handlers must do a little and return.
 *
 * The functions return -1 with errno set and never print; reactor_run()
 * returns only after reactor_stop() or a failed wait.
 */
#ifndef REACTOR_H
#define REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a handler is called for: a bit mask. RE_EXCLUSIVE, with RE_READ,
 * asks epoll to wake only one of the loops that watch the same descriptor
 * (EPOLLEXCLUSIVE); it must be there from the first reactor_watch() of fd
 * on, and the other backends ignore it. */
enum { RE_READ = 1u, RE_WRITE = 2u, RE_EXCLUSIVE = 4u };

struct reactor;

/* Called when fd is ready for what mask says (RE_READ, RE_WRITE or both). An
 * error or hang-up on fd is reported as ready for whatever is watched: the
 * next read() or write() says what happened. */
typedef void (*io_handler)(struct reactor *r, int fd, unsigned mask, void *arg);

/* Called once when a timer is due. */
typedef void (*timer_handler)(struct reactor *r, void *arg);

/* A timer lives inside whatever it belongs to (a connection, say): the
 * reactor keeps pointers to timers, never copies, and allocates nothing per
 * timer. Zero it before its first use. */
struct timer {
    uint64_t due_ms;   /* on reactor_now()'s clock */
    size_t heap_index; /* its place in the reactor's heap, 0 when stopped */
    timer_handler fn;
    void *arg;
};

/* A loop whose demultiplexer is backend: "select", "poll" or "epoll".
 * Returns NULL with errno EINVAL for another name, or the backend's own
 * failure (epoll_create1's, ENOMEM). */
struct reactor *reactor_new(const char *backend);

/* The backend's name, for the log. */
const char *reactor_backend(const struct reactor *r);

/* Frees the loop. Descriptors are the caller's: it closes them. */
void reactor_free(struct reactor *r);

/* Watches fd for mask (RE_READ | RE_WRITE); fn(r, fd, ready, arg) is called
 * when fd is ready. Calling it again for the same fd changes the mask, the
 * handler and its argument; mask 0 stops watching fd but keeps it known.
 * Returns 0, or -1: ERANGE when the select backend cannot watch a descriptor
 * past FD_SETSIZE, EPERM when epoll refuses the descriptor (a regular
 * file), ENOMEM. */
int reactor_watch(struct reactor *r, int fd, unsigned mask, io_handler fn,
                  void *arg);

/* The mask fd is watched for now, 0 if none. */
unsigned reactor_watching(const struct reactor *r, int fd);

/* Forgets fd. Call it before closing fd: the kernel reuses the number at
 * once, and a handler registered for the old socket must not be called for
 * the new one. */
void reactor_forget(struct reactor *r, int fd);

/* The loop's clock in milliseconds (CLOCK_MONOTONIC), read once per round:
 * cheap enough to call for every event. */
uint64_t reactor_now(const struct reactor *r);

/* Starts t, or moves it if it was started: fn(r, arg) runs once, delay_ms
 * from now. Returns 0, or -1 with errno ENOMEM. */
int reactor_timer_start(struct reactor *r, struct timer *t, uint64_t delay_ms,
                        timer_handler fn, void *arg);

/* Stops t if it was started; does nothing otherwise. */
void reactor_timer_stop(struct reactor *r, struct timer *t);

/* Runs the loop: wait, then dispatch, until reactor_stop() is called from a
 * handler. Returns 0 then, or -1 with errno set if the wait itself failed.
 * A wait interrupted by a signal (EINTR) is not a failure: the loop goes
 * round again. */
int reactor_run(struct reactor *r);

/* Makes reactor_run() return once the current handler has returned. */
void reactor_stop(struct reactor *r);

/* What the loop did, for the stats line. */
struct reactor_stats {
    unsigned long long waits;    /* select/poll/epoll_wait calls */
    unsigned long long events;   /* descriptors reported ready */
    unsigned long long timeouts; /* timers that ran */
};
struct reactor_stats reactor_stats(const struct reactor *r);

#endif
