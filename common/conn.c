/* conn.c -- a non-blocking echo connection with bounded output; see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void conn_init(struct conn *c, int connfd, const struct sockaddr *sa,
               socklen_t salen)
{
    *c = (struct conn){.fd = connfd};
    sock_ntop(sa, salen, c->peer, sizeof c->peer);
}

void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->out_start = c->out_end = c->out_cap = 0;
}

struct conn *conn_new(int connfd, const struct sockaddr *sa, socklen_t salen)
{
    struct conn *c = malloc(sizeof *c);

    if (c == NULL)
        return NULL;
    conn_init(c, connfd, sa, salen);
    return c;
}

struct conn *conn_accept(int listenfd)
{
    struct sockaddr_storage cliaddr;
    socklen_t clilen = sizeof cliaddr;
    int connfd =
        accept_nonblock(listenfd, (struct sockaddr *)&cliaddr, &clilen);
    struct conn *c;

    if (connfd == -1)
        return NULL;
    c = conn_new(connfd, (struct sockaddr *)&cliaddr, clilen);
    if (c == NULL) {
        close(connfd); /* the client sees its connection closed */
        errno = ENOMEM;
    }
    return c;
}

void conn_free(struct conn *c)
{
    conn_close(c);
    free(c);
}

/* Records a failure; returns -1 so that callers can return it. */
static int fail(struct conn *c, const char *call, int err)
{
    c->error = err;
    c->failed_call = call;
    errno = err;
    return -1;
}

/* One write() of n bytes, retried if a signal interrupted it. Returns the
 * number written, 0 when the socket takes nothing now (EAGAIN), or -1
 * after a failure: EPIPE or ECONNRESET when the client has gone. */
static ssize_t write_some(struct conn *c, const char *p, size_t n)
{
    ssize_t w;

    do {
        c->nwrites++;
        w = write(c->fd, p, n);
    } while (w == -1 && errno == EINTR);
    if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (w == -1)
        return fail(c, "write", errno);
    c->nbytes += (unsigned long long)w;
    return w;
}

/* Adds n bytes to the pending output, moving the pending bytes to the front
 * or growing the buffer when there is no room at the end. */
static int keep(struct conn *c, const char *p, size_t n)
{
    size_t pending = conn_pending(c);

    if (c->out_end + n > c->out_cap) {
        if (pending + n <= c->out_cap) {
            memmove(c->out, c->out + c->out_start, pending);
        } else {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < pending + n)
                cap *= 2;
            char *bigger = malloc(cap);
            if (bigger == NULL)
                return fail(c, "malloc", ENOMEM);
            if (pending > 0)
                memcpy(bigger, c->out + c->out_start, pending);
            free(c->out);
            c->out = bigger;
            c->out_cap = cap;
        }
        c->out_start = 0;
        c->out_end = pending;
    }
    memcpy(c->out + c->out_end, p, n);
    c->out_end += n;
    return 0;
}

ssize_t conn_recv(struct conn *c, void *buf, size_t size)
{
    ssize_t n;

    if (size == 0) {
        errno = EINVAL; /* read() would return 0: "the client has gone" */
        return -1;
    }
    do {
        c->nreads++;
        n = read(c->fd, buf, size);
    } while (n == -1 && errno == EINTR);
    if (n == 0)
        c->peer_done = true;
    if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
        return fail(c, "read", errno);
    return n;
}

int conn_send(struct conn *c, const void *p, size_t n)
{
    ssize_t w = 0;

    if (c->error != 0) {
        errno = c->error; /* the connection is over: send nothing more */
        return -1;
    }
    /* Bytes already waiting must leave first: only with nothing pending
     * may the new ones be written directly. */
    if (conn_pending(c) == 0 && n > 0) {
        w = write_some(c, p, n);
        if (w == -1)
            return -1;
    }
    if ((size_t)w < n)
        return keep(c, (const char *)p + w, n - (size_t)w);
    return 0;
}

ssize_t conn_read(struct conn *c, size_t size)
{
    char buf[CONN_READ_MAX];
    ssize_t n;

    if (size > sizeof buf)
        size = sizeof buf;
    n = conn_recv(c, buf, size);
    if (n <= 0)
        return n;
    if (conn_send(c, buf, (size_t)n) == -1)
        return -1;
    return n;
}

int conn_flush(struct conn *c)
{
    while (conn_pending(c) > 0) {
        ssize_t w = write_some(c, c->out + c->out_start, conn_pending(c));
        if (w == -1)
            return -1;
        if (w == 0)
            return 0; /* the socket is full again: wait for writable */
        c->out_start += (size_t)w;
    }
    /* Drained: give the memory back, so that an idle connection owns none. */
    free(c->out);
    c->out = NULL;
    c->out_start = c->out_end = c->out_cap = 0;
    return 0;
}

size_t conn_pending(const struct conn *c)
{
    return c->out_end - c->out_start;
}

bool conn_wants_read(const struct conn *c)
{
    return !c->peer_done && c->error == 0 && conn_pending(c) < CONN_HIGH_WATER;
}

bool conn_wants_write(const struct conn *c)
{
    return c->error == 0 && conn_pending(c) > 0;
}

bool conn_finished(const struct conn *c)
{
    return c->error != 0 || (c->peer_done && conn_pending(c) == 0);
}
