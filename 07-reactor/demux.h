/* demux.h -- the synchronous event demultiplexer behind reactor.c.
 *
 * The one part of the Reactor that talks to the kernel about readiness.
 * Three implementations of the same four functions, one file each, and
 * every file spells them the same way: a struct demux_state and the static
 * functions demux_create(), demux_destroy(), demux_set() and demux_wait().
 * So `diff 07-reactor/demux_poll.c 07-reactor/demux_epoll.c` is the whole
 * difference between the two system calls, as lessons 05 and 06 showed it
 * inside whole servers. (Redis's ae_select.c, ae_epoll.c ... are built the
 * same way: aeApiCreate() ... aeApiPoll() in each.) Only reactor.c uses
 * this header.
 *
 * A backend keeps the kernel's view of what is watched; reactor.c keeps
 * the handlers. Every backend is level-triggered: a descriptor that stays
 * ready is reported again in the next wait.
 */
#ifndef DEMUX_H
#define DEMUX_H

/* One ready descriptor, as a wait reports it: mask is RE_READ | RE_WRITE. */
struct fired {
    int fd;
    unsigned mask;
};

struct demux {
    const char *name;
    /* Returns the backend's state, or NULL with errno set. */
    void *(*create)(void);
    void (*destroy)(void *state);
    /* fd was watched for old (0: not at all) and is now to be watched for
     * mask (0: not at all). Returns 0, or -1 with errno set. */
    int (*set)(void *state, int fd, unsigned old, unsigned mask);
    /* Waits up to timeout_ms (-1: for ever) and writes at most max ready
     * descriptors to fired. Returns how many, or -1 with errno set (EINTR
     * when a signal came first). */
    int (*wait)(void *state, int timeout_ms, struct fired *fired, int max);
};

extern const struct demux demux_select, demux_poll, demux_epoll;

#endif
