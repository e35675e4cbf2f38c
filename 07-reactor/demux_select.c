/* demux_select.c -- the demultiplexer over select(), as in 04-select.
 *
 * select() takes sets of descriptor numbers and overwrites them with the
 * ready ones, so the sets to watch are kept apart and copied for every
 * call: a set handed to select() is not safe to hand to it again. The
 * kernel scans every number below the highest one plus one, ready or not,
 * and so does the loop that reads the answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

#include "demux.h"
#include "reactor.h"

struct demux_state {
    fd_set rfds, wfds; /* what to watch; copied before each select() */
    int maxfd;         /* the highest descriptor in either set, or -1 */
};

static void *demux_create(void)
{
    struct demux_state *st = malloc(sizeof *st);

    if (st == NULL)
        return NULL;
    FD_ZERO(&st->rfds);
    FD_ZERO(&st->wfds);
    st->maxfd = -1;
    return st;
}

static void demux_destroy(void *state)
{
    free(state);
}

static int demux_set(void *state, int fd, unsigned old, unsigned mask)
{
    struct demux_state *st = state;

    (void)old;
    /* FD_SET() past FD_SETSIZE writes outside the fd_set: never do it. */
    if (fd >= FD_SETSIZE) {
        errno = ERANGE;
        return -1;
    }
    if (mask & RE_READ)
        FD_SET(fd, &st->rfds);
    else
        FD_CLR(fd, &st->rfds);
    if (mask & RE_WRITE)
        FD_SET(fd, &st->wfds);
    else
        FD_CLR(fd, &st->wfds);
    if (mask != 0 && fd > st->maxfd)
        st->maxfd = fd;
    while (st->maxfd >= 0 && !FD_ISSET(st->maxfd, &st->rfds) &&
           !FD_ISSET(st->maxfd, &st->wfds))
        st->maxfd--;
    return 0;
}

static int demux_wait(void *state, int timeout_ms, struct fired *fired, int max)
{
    struct demux_state *st = state;
    fd_set rfds = st->rfds, wfds = st->wfds;
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};
    int n =
        select(st->maxfd + 1, &rfds, &wfds, NULL, timeout_ms < 0 ? NULL : &tv);

    if (n <= 0)
        return n;
    n = 0;
    for (int fd = 0; fd <= st->maxfd && n < max; fd++) {
        unsigned mask = (FD_ISSET(fd, &rfds) ? RE_READ : 0u) |
                        (FD_ISSET(fd, &wfds) ? RE_WRITE : 0u);
        if (mask != 0)
            fired[n++] = (struct fired){fd, mask};
    }
    return n;
}

const struct demux demux_select = {"select", demux_create, demux_destroy,
                                   demux_set, demux_wait};
