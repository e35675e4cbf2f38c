/* tcp.c -- connections as callbacks, on top of the reactor; see tcp.h.
 *
 * Every event of a connection goes through on_io(): read or write what the
 * reactor says is ready, call the application, then settle(): either close
 * the connection or tell the reactor what to watch next. The application's
 * callbacks never free anything themselves, so a connection is never used
 * after it was freed, whatever a callback does. An application that acts
 * on a connection from elsewhere (08's replies come back through another
 * descriptor) calls tcp_conn_update(), which is settle().
 */
#include "tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

struct tcp_server {
    struct reactor *r;
    int listenfd;
    struct tcp_callbacks cb;
    void *ctx;
    uint64_t idle_ms;
    size_t read_size;   /* tcp_server_set_read_size() */
    bool paused;        /* tcp_server_pause_reading() */
    atomic_ullong sent; /* tcp_server_sent(), from any thread */
    /* Every connection, for tcp_server_pause_reading(); each knows its
     * place (tcp_conn.index), so that leaving the table is O(1). */
    struct tcp_conn **conns;
    size_t nconns, cap;
};

/* The idle limit's state is apart from struct tcp_conn, in a block that
 * only a server with an idle limit allocates: an idle connection of a
 * server without one should not pay for a timer it never starts. */
struct tcp_idle {
    uint64_t last_active_ms; /* on reactor_now()'s clock */
    struct timer timer;
};

/* Whether to read: the application has not paused this client or every
 * client, the client has not half-closed, nothing failed, and what
 * on_message left is not piling up. Pending output is the application's
 * business: see on_high_water. */
static bool wants_read(const struct tcp_conn *c)
{
    return !c->paused && !c->server->paused && !c->io.peer_done &&
           c->io.error == 0 && c->in_len < CONN_HIGH_WATER;
}

/* Whether c is over: the application closed it, it failed, or the client
 * half-closed and got every byte it is owed. */
static bool finished(const struct tcp_conn *c)
{
    return c->closing || c->io.error != 0 ||
           (conn_finished(&c->io) && !c->owing);
}

static void on_io(struct reactor *r, int fd, unsigned mask, void *arg);
static void on_idle_timer(struct reactor *r, void *arg);

/* Starts c's idle timer, for the whole idle limit. Returns 0, or -1 with
 * errno ENOMEM. */
static int start_idle_limit(struct tcp_conn *c)
{
    struct reactor *r = c->server->r;

    c->idle_limit = malloc(sizeof *c->idle_limit);
    if (c->idle_limit == NULL)
        return -1;
    *c->idle_limit = (struct tcp_idle){.last_active_ms = reactor_now(r)};
    if (reactor_timer_start(r, &c->idle_limit->timer, c->server->idle_ms,
                            on_idle_timer, c) == -1) {
        free(c->idle_limit);
        c->idle_limit = NULL;
        return -1;
    }
    return 0;
}

/* Notes that a byte moved, for the idle timer if there is one. */
static void note_active(struct tcp_conn *c)
{
    if (c->idle_limit != NULL)
        c->idle_limit->last_active_ms = reactor_now(c->server->r);
}

/* Calls the application's close callback, then frees c. */
static void close_conn(struct tcp_conn *c)
{
    struct tcp_server *s = c->server;
    struct tcp_conn *last = s->conns[--s->nconns];

    last->index = c->index;
    s->conns[c->index] = last;
    /* Forget before close(): the number may come back from accept() at
     * once, for another client. */
    reactor_forget(s->r, c->io.fd);
    if (c->idle_limit != NULL)
        reactor_timer_stop(s->r, &c->idle_limit->timer);
    s->cb.on_close(c);
    conn_close(&c->io);
    free(c->idle_limit);
    free(c->in);
    free(c);
}

/* Records a failure of the layer's own (memory): the connection closes. */
static void fail(struct tcp_conn *c, const char *call, int err)
{
    c->io.error = err;
    c->io.failed_call = call;
}

/* Tells the reactor what c needs now. Only a change reaches the backend:
 * one epoll_ctl(), or none. A failure is recorded; the caller closes. */
static void watch(struct tcp_conn *c)
{
    struct reactor *r = c->server->r;
    unsigned mask = (wants_read(c) ? RE_READ : 0u) |
                    (conn_wants_write(&c->io) ? RE_WRITE : 0u);

    if (mask != reactor_watching(r, c->io.fd) &&
        reactor_watch(r, c->io.fd, mask, on_io, c) == -1)
        fail(c, "watch", errno);
}

/* After an event: close c if it is over, or watch it for what it needs. */
static void settle(struct tcp_conn *c)
{
    if (!finished(c))
        watch(c);
    if (finished(c))
        close_conn(c);
}

/* Only the loop's thread adds, but another may read at any moment (a
 * stop taken on another loop's thread): relaxed, as a counter needs. */
static void add_sent(struct tcp_server *s, unsigned long long n)
{
    atomic_fetch_add_explicit(&s->sent, n, memory_order_relaxed);
}

/* Hands the client's bytes to on_message, with whatever it left last
 * time in front of them, and keeps what it leaves now. Only a connection
 * whose application does not consume everything owns an input buffer;
 * the echo server's never do. */
static void deliver(struct tcp_conn *c, const char *buf, size_t n)
{
    const char *data = buf;
    size_t len = n, used;

    if (c->in_len > 0) {
        char *bigger = realloc(c->in, c->in_len + n);
        if (bigger == NULL) {
            fail(c, "malloc", ENOMEM);
            return;
        }
        memcpy(bigger + c->in_len, buf, n);
        c->in = bigger;
        c->in_len += n;
        data = c->in;
        len = c->in_len;
    }
    used = c->server->cb.on_message(c, data, len);
    if (used > len)
        used = len;
    if (data == c->in) {
        c->in_len -= used;
        memmove(c->in, c->in + used, c->in_len);
        if (c->in_len == 0) {
            free(c->in);
            c->in = NULL;
        }
    } else if (used < len) {
        c->in = malloc(len - used);
        if (c->in == NULL) {
            fail(c, "malloc", ENOMEM);
            return;
        }
        memcpy(c->in, data + used, len - used);
        c->in_len = len - used;
    }
}

/* One read(), as level-triggered demultiplexers want: if more is waiting,
 * the next wait reports the socket again, after the other clients had
 * their turn. The buffer is on the stack: an idle connection owns none. */
static void on_readable(struct tcp_conn *c)
{
    char buf[CONN_READ_MAX];
    ssize_t n = conn_recv(&c->io, buf, c->server->read_size);

    if (n <= 0)
        return; /* EAGAIN, the client's EOF (peer_done), or a failure */
    note_active(c);
    deliver(c, buf, (size_t)n);
    if (!c->above_high_water && conn_pending(&c->io) >= CONN_HIGH_WATER) {
        c->above_high_water = true;
        if (c->server->cb.on_high_water != NULL)
            c->server->cb.on_high_water(c, conn_pending(&c->io));
    }
}

static void on_writable(struct tcp_conn *c)
{
    size_t before = conn_pending(&c->io);
    unsigned long long sent = c->io.nbytes;

    if (conn_flush(&c->io) == -1)
        return;
    add_sent(c->server, c->io.nbytes - sent);
    if (conn_pending(&c->io) < before)
        note_active(c);
    if (conn_pending(&c->io) == 0) {
        c->above_high_water = false;
        if (c->server->cb.on_write_complete != NULL)
            c->server->cb.on_write_complete(c);
    }
}

static void on_io(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct tcp_conn *c = arg;

    (void)r;
    (void)fd;
    if ((mask & RE_READ) && wants_read(c))
        on_readable(c);
    if ((mask & RE_WRITE) && conn_wants_write(&c->io))
        on_writable(c);
    settle(c);
}

/* The idle timer is not reset by every byte: that would cost a heap update
 * per read. Each byte only notes the time; when the timer fires, it closes
 * the connection if nothing has moved since, or starts again for the time
 * that is left. */
static void on_idle_timer(struct reactor *r, void *arg)
{
    struct tcp_conn *c = arg;
    uint64_t quiet = reactor_now(r) - c->idle_limit->last_active_ms;

    if (quiet >= c->server->idle_ms) {
        c->idle = true;
        close_conn(c);
    } else if (reactor_timer_start(r, &c->idle_limit->timer,
                                   c->server->idle_ms - quiet, on_idle_timer,
                                   c) == -1) {
        fail(c, "malloc", ENOMEM);
        close_conn(c);
    }
}

/* Takes c into the server's table and the reactor; false if it could not,
 * with the reason in errno. */
static bool add_conn(struct tcp_server *s, struct tcp_conn *c)
{
    if (s->nconns == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct tcp_conn **bigger = realloc(s->conns, cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        s->conns = bigger;
        s->cap = cap;
    }
    if (reactor_watch(s->r, c->io.fd, RE_READ, on_io, c) == -1)
        return false;
    if (s->idle_ms > 0 && start_idle_limit(c) == -1) {
        reactor_forget(s->r, c->io.fd);
        return false;
    }
    c->index = s->nconns;
    s->conns[s->nconns++] = c;
    return true;
}

/* A connection of s with everything but its io, which the caller fills;
 * NULL with errno ENOMEM. */
static struct tcp_conn *new_conn(struct tcp_server *s)
{
    struct tcp_conn *c = calloc(1, sizeof *c);

    if (c != NULL)
        c->server = s;
    return c;
}

/* Registers c, its io filled, and tells the application: what accept_one()
 * does with each client, and tcp_server_adopt() with one accepted on
 * another thread. If there is no room for it, the client is turned away. */
static void serve(struct tcp_server *s, struct tcp_conn *c)
{
    if (!add_conn(s, c)) {
        if (errno == ERANGE)
            err_msg("%s: descriptor %d is past FD_SETSIZE (%d), which "
                    "select() cannot watch: closed",
                    c->io.peer, c->io.fd, FD_SETSIZE);
        else
            err_ret("%s: cannot watch it", c->io.peer);
        conn_close(&c->io);
        free(c);
        return;
    }
    s->cb.on_connection(c);
    settle(c);
}

void tcp_server_adopt(struct tcp_server *s, struct conn *io)
{
    struct tcp_conn *c = new_conn(s);

    if (c == NULL) {
        err_ret("no memory for a client");
        conn_free(io);
        return;
    }
    c->io = *io; /* moved: the descriptor and the buffer are c's now */
    free(io);
    serve(s, c);
}

/* Takes one client the listener has queued; false when there is nothing
 * more to take now. A failure concerns one client at most. Out of
 * descriptors, accept_nonblock() turns the client away: without that, it
 * would stay queued, the listener readable, and every wait return at once.
 * The client's struct conn is part of its tcp_conn, one allocation, so
 * this is conn_accept() with conn_init() in place of conn_new(). */
static bool accept_one(struct tcp_server *s, int listenfd)
{
    struct sockaddr_storage cliaddr;
    socklen_t clilen = sizeof cliaddr;
    int connfd =
        accept_nonblock(listenfd, (struct sockaddr *)&cliaddr, &clilen);
    struct tcp_conn *c = connfd == -1 ? NULL : new_conn(s);

    if (c == NULL) {
        if (connfd != -1) {
            close(connfd); /* no memory: the client sees its end closed */
            errno = ENOMEM;
        }
        if (errno == EAGAIN)
            return false; /* nobody is waiting now */
        if (!accept_lost_client(errno))
            err_sys("accept");
        err_ret("accept: a client was lost"); /* take the next */
        return true;
    }
    conn_init(&c->io, connfd, (struct sockaddr *)&cliaddr, clilen);
    serve(s, c);
    return true;
}

/* The listener is readable: take every client waiting. */
static void on_accept(struct reactor *r, int fd, unsigned mask, void *arg)
{
    (void)r;
    (void)mask;
    while (accept_one(arg, fd))
        ;
}

struct tcp_server *tcp_server_new(struct reactor *r, int listenfd,
                                  const struct tcp_callbacks *cb, void *ctx,
                                  uint64_t idle_ms)
{
    struct tcp_server *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    *s = (struct tcp_server){.r = r,
                             .listenfd = listenfd,
                             .cb = *cb,
                             .ctx = ctx,
                             .idle_ms = idle_ms,
                             .read_size = CONN_READ_MAX};
    if (listenfd != -1 &&
        reactor_watch(r, listenfd, RE_READ, on_accept, s) == -1) {
        free(s);
        return NULL;
    }
    return s;
}

void tcp_server_set_read_size(struct tcp_server *s, size_t size)
{
    s->read_size = size < 1 || size > CONN_READ_MAX ? CONN_READ_MAX : size;
}

/* Every connection's read interest goes or comes back. Nothing is closed
 * here, even if the reactor fails: the caller may be the callback of one
 * of them. Such a failure closes the connection at its next event. */
void tcp_server_pause_reading(struct tcp_server *s, bool paused)
{
    s->paused = paused;
    for (size_t i = 0; i < s->nconns; i++)
        watch(s->conns[i]);
}

unsigned long long tcp_server_sent(const struct tcp_server *s)
{
    return atomic_load_explicit(&s->sent, memory_order_relaxed);
}

void *tcp_conn_ctx(const struct tcp_conn *c)
{
    return c->server->ctx;
}

int tcp_conn_send(struct tcp_conn *c, const void *p, size_t n)
{
    unsigned long long sent = c->io.nbytes;
    int rc = conn_send(&c->io, p, n);

    add_sent(c->server, c->io.nbytes - sent);
    return rc;
}

void tcp_conn_pause_reading(struct tcp_conn *c)
{
    c->paused = true;
}

void tcp_conn_resume_reading(struct tcp_conn *c)
{
    c->paused = false;
}

void tcp_conn_owe(struct tcp_conn *c, bool owing)
{
    c->owing = owing;
}

void tcp_conn_close(struct tcp_conn *c)
{
    c->closing = true;
}

void tcp_conn_update(struct tcp_conn *c)
{
    settle(c);
}

/* --- framing and keepalive ----------------------------------------------- */

ssize_t tcp_frame_len(enum tcp_framing f, const char *data, size_t len)
{
    if (f == TCP_FRAME_LINE) {
        /* A line ends with its newline; one that has not come within
         * TCP_FRAME_MAX bytes never will fit. */
        size_t scan = len < TCP_FRAME_MAX ? len : TCP_FRAME_MAX;
        const char *nl = memchr(data, '\n', scan);

        if (nl != NULL)
            return nl - data + 1;
        return len >= TCP_FRAME_MAX ? -1 : 0;
    }
    if (f == TCP_FRAME_LEN) {
        /* A 4-byte length, most significant byte first (network byte
         * order), then that many bytes. The length is known before the
         * body arrives, so a frame too large is refused at once. */
        const unsigned char *h = (const unsigned char *)data;
        uint32_t body;

        if (len < TCP_FRAME_HEADER)
            return 0;
        body = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
               (uint32_t)h[2] << 8 | h[3];
        if (body > TCP_FRAME_MAX - TCP_FRAME_HEADER)
            return -1;
        return len - TCP_FRAME_HEADER < body
                   ? 0
                   : (ssize_t)(TCP_FRAME_HEADER + body);
    }
    return (ssize_t)len; /* no framing: every byte is a "frame" */
}

int tcp_conn_keepalive(struct tcp_conn *c, int idle_s, int interval_s,
                       int count)
{
    const int on = 1;
    int fd = c->io.fd;

    /* All four are per socket on Linux: the sysctls
     * net.ipv4.tcp_keepalive_* are only the defaults. */
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s) ==
            -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s,
                   sizeof interval_s) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) == -1)
        return -1;
    return 0;
}
