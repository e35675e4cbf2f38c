/* demux_poll.c -- the demultiplexer over poll(), as in 05-poll.
 *
 * The array of struct pollfd is kept between calls, one entry per watched
 * descriptor, and a table from descriptor to entry makes a change O(1).
 * poll() reads events and writes revents, so the array is handed over
 * again as it is. Each call still copies the whole array into the kernel
 * and back, and the loop below scans it all.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "demux.h"
#include "reactor.h"

struct demux_state {
    struct pollfd *pfds; /* pfds[0 .. n-1], in no order */
    size_t n, cap;
    size_t *slot; /* slot[fd]: fd's entry in pfds, when fd is watched */
    size_t nslots;
};

static void *demux_create(void)
{
    return calloc(1, sizeof(struct demux_state));
}

static void demux_destroy(void *state)
{
    struct demux_state *st = state;

    free(st->pfds);
    free(st->slot);
    free(st);
}

/* Grows the array for one more entry and the slot table to cover fd. */
static int make_room(struct demux_state *st, int fd)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        struct pollfd *bigger = realloc(st->pfds, cap * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        st->pfds = bigger;
        st->cap = cap;
    }
    if ((size_t)fd >= st->nslots) {
        size_t nslots = st->nslots ? st->nslots : 64;
        while (nslots <= (size_t)fd)
            nslots *= 2;
        size_t *bigger = realloc(st->slot, nslots * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        st->slot = bigger;
        st->nslots = nslots;
    }
    return 0;
}

static int demux_set(void *state, int fd, unsigned old, unsigned mask)
{
    struct demux_state *st = state;
    short events = (short)(((mask & RE_READ) ? POLLIN : 0) |
                           ((mask & RE_WRITE) ? POLLOUT : 0));

    if (old == 0 && mask == 0)
        return 0;
    if (old == 0) {
        if (make_room(st, fd) == -1)
            return -1;
        st->slot[fd] = st->n;
        st->pfds[st->n++] = (struct pollfd){.fd = fd, .events = events};
    } else if (mask != 0) {
        st->pfds[st->slot[fd]].events = events;
    } else {
        /* The last entry moves into the hole: no gaps, no rebuild. */
        size_t i = st->slot[fd];
        st->pfds[i] = st->pfds[--st->n];
        st->slot[st->pfds[i].fd] = i;
    }
    return 0;
}

static int demux_wait(void *state, int timeout_ms, struct fired *fired, int max)
{
    struct demux_state *st = state;
    int n = poll(st->pfds, st->n, timeout_ms);

    if (n <= 0)
        return n;
    n = 0;
    for (size_t i = 0; i < st->n && n < max; i++) {
        unsigned re = (unsigned short)st->pfds[i].revents;
        unsigned ev = (unsigned short)st->pfds[i].events;
        unsigned mask = 0;
        if (re == 0)
            continue;
        /* POLLERR and POLLHUP come whatever was asked: report them as
         * ready for what is watched, and let read() or write() say what
         * went wrong. */
        if (re & (POLLERR | POLLHUP | POLLNVAL))
            re |= ev;
        if (re & (POLLIN | POLLRDHUP))
            mask |= RE_READ;
        if (re & POLLOUT)
            mask |= RE_WRITE;
        fired[n++] = (struct fired){st->pfds[i].fd, mask};
    }
    return n;
}

const struct demux demux_poll = {"poll", demux_create, demux_destroy, demux_set,
                                 demux_wait};
