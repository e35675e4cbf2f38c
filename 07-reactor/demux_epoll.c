/* demux_epoll.c -- the demultiplexer over epoll, as in 06-epoll-lt-et.
 *
 * The kernel keeps the interest list: a change is one epoll_ctl(), and a
 * wait costs the ready descriptors only. Level-triggered, like the other
 * two backends, so the reactor above never needs to read until EAGAIN.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "demux.h"
#include "reactor.h"

struct demux_state {
    int epfd;
    struct epoll_event *evs; /* room for cap events, for epoll_wait() */
    int cap;
};

static void *demux_create(void)
{
    struct demux_state *st = calloc(1, sizeof *st);

    if (st == NULL)
        return NULL;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd == -1) {
        free(st);
        return NULL;
    }
    return st;
}

static void demux_destroy(void *state)
{
    struct demux_state *st = state;

    close(st->epfd);
    free(st->evs);
    free(st);
}

static int demux_set(void *state, int fd, unsigned old, unsigned mask)
{
    struct demux_state *st = state;
    struct epoll_event ev = {.events =
                                 ((mask & RE_READ) ? EPOLLIN : 0u) |
                                 ((mask & RE_WRITE) ? EPOLLOUT : 0u) |
                                 ((mask & RE_EXCLUSIVE) ? EPOLLEXCLUSIVE : 0u),
                             .data.fd = fd};

    if (old == 0 && mask == 0)
        return 0;
    /* Taken off the list when nothing is wanted, not kept with no events:
     * EPOLLHUP and EPOLLERR are reported whatever was asked for. */
    return epoll_ctl(st->epfd,
                     old == 0    ? EPOLL_CTL_ADD
                     : mask == 0 ? EPOLL_CTL_DEL
                                 : EPOLL_CTL_MOD,
                     fd, &ev);
}

static int demux_wait(void *state, int timeout_ms, struct fired *fired, int max)
{
    struct demux_state *st = state;
    int n;

    if (max > st->cap) {
        /* A new array, not realloc(): nothing in the old one is kept, and
         * copying it would touch (and so cost) every page of it again. */
        struct epoll_event *bigger = malloc((size_t)max * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        free(st->evs);
        st->evs = bigger;
        st->cap = max;
    }
    n = epoll_wait(st->epfd, st->evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t re = st->evs[i].events;
        unsigned mask = 0;
        if (re & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
            mask |= RE_READ;
        if (re & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            mask |= RE_WRITE;
        fired[i] = (struct fired){st->evs[i].data.fd, mask};
    }
    return n;
}

const struct demux demux_epoll = {"epoll", demux_create, demux_destroy,
                                  demux_set, demux_wait};
