/* io.c -- readn, writen, readline; see io.h. */
#include "io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

ssize_t readn(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t got = read(fd, p, left);
        if (got == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (got == 0)
            break; /* EOF */
        p += got;
        left -= (size_t)got;
    }
    return (ssize_t)(n - left);
}

ssize_t writen(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t put = write(fd, p, left);
        if (put == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += put;
        left -= (size_t)put;
    }
    return (ssize_t)n;
}

void readline_init(struct line_reader *lr, int fd)
{
    lr->fd = fd;
    lr->saved_errno = 0;
    lr->pos = 0;
    lr->len = 0;
}

/* Refills an empty buffer with one read(). Returns what read() returned. */
static ssize_t refill(struct line_reader *lr)
{
    ssize_t got;

    do
        got = read(lr->fd, lr->buf, sizeof lr->buf);
    while (got == -1 && errno == EINTR);
    lr->pos = 0;
    lr->len = got > 0 ? (size_t)got : 0;
    return got;
}

ssize_t readline(struct line_reader *lr, void *buf, size_t maxlen)
{
    char *out = buf;
    size_t stored = 0;

    if (maxlen < 2) {
        errno = EINVAL;
        return -1;
    }
    if (lr->saved_errno != 0) {
        errno = lr->saved_errno;
        lr->saved_errno = 0;
        return -1;
    }
    while (stored < maxlen - 1) {
        if (lr->pos == lr->len) {
            ssize_t got = refill(lr);
            if (got == 0)
                break; /* EOF: return what we have, 0 if nothing */
            if (got == -1) {
                if (stored == 0)
                    return -1;
                /* Keep the bytes already taken; the error is next. */
                lr->saved_errno = errno;
                break;
            }
        }
        /* Copy up to the newline, the end of the buffer or of the room. */
        size_t avail = lr->len - lr->pos;
        size_t room = maxlen - 1 - stored;
        size_t take = avail < room ? avail : room;
        const char *start = lr->buf + lr->pos;
        const char *nl = memchr(start, '\n', take);
        if (nl != NULL)
            take = (size_t)(nl - start) + 1;
        memcpy(out + stored, start, take);
        stored += take;
        lr->pos += take;
        if (nl != NULL)
            break;
    }
    out[stored] = '\0';
    return (ssize_t)stored;
}
