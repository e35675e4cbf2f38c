/* 07-reactor/client.c -- 06's client, rebuilt as handlers on the reactor.
 *
 * Model:   one process, one thread, the same reactor as the server
 *          (reactor.h): a handler for stdin, one for the socket. Even the
 *          connect() is an event: the socket is non-blocking, connect()
 *          returns EINPROGRESS at once, and the socket turns writable
 *          when the handshake is over -- then getsockopt(SO_ERROR) says
 *          whether it worked, and the next address is tried if not.
 * Cost:    the poll backend, not epoll: stdin may be a regular file,
 *          which epoll refuses (EPERM) and poll() reports as always
 *          readable -- what a file is. What the socket cannot take waits
 *          in a buffer, and stdin is watched only while it has room.
 * Observe: strace -e trace=connect,poll,getsockopt,shutdown
 *            ./07-reactor/client < /etc/services > /dev/null
 *          connect() = -1 EINPROGRESS, a poll() for POLLOUT, then
 *          getsockopt(SO_ERROR) = 0, and shutdown(SHUT_WR) after the last
 *          byte of stdin.
 * See also: 06-epoll-lt-et/client.c (before), reactor.h.
 *
 * Run it:  ./07-reactor/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "reactor.h"
#include "signals.h"

enum { BUFSIZE = 65536 };

struct client {
    struct reactor *r;
    struct addrinfo *addrs, *next; /* next: the address to try next */
    int sockfd, last_err;
    char where[HOST_PORT_LEN]; /* "host:port", for the error message */
    char tosrv[BUFSIZE];       /* read from stdin, not yet sent: */
    size_t start, end;         /* tosrv[start, end) */
    bool stdin_eof, shut;
    unsigned long long sent, received;
};

static void on_stdin(struct reactor *r, int fd, unsigned mask, void *arg);
static void on_socket(struct reactor *r, int fd, unsigned mask, void *arg);

/* After every event: half-close once stdin is done and sent, and tell the
 * reactor what each descriptor waits for now. */
static void update(struct client *cl)
{
    bool more_in = !cl->stdin_eof && cl->end < BUFSIZE;
    unsigned sock = RE_READ | (cl->end > cl->start ? RE_WRITE : 0u);

    if (cl->stdin_eof && cl->end == cl->start && !cl->shut) {
        /* A FIN after the last byte; the echo keeps coming. */
        if (shutdown(cl->sockfd, SHUT_WR) == -1)
            err_sys("shutdown");
        cl->shut = true;
    }
    /* Forgotten, not kept with no events: poll() reports POLLHUP for a
     * pipe whose writer has gone, whatever was asked for. */
    if (!more_in)
        reactor_forget(cl->r, STDIN_FILENO);
    else if (reactor_watch(cl->r, STDIN_FILENO, RE_READ, on_stdin, cl) == -1)
        err_sys("watch stdin");
    if (reactor_watch(cl->r, cl->sockfd, sock, on_socket, cl) == -1)
        err_sys("watch the socket");
}

static void on_stdin(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct client *cl = arg;
    ssize_t n = read(fd, cl->tosrv + cl->end, BUFSIZE - cl->end);

    (void)r;
    (void)mask;
    if (n == -1 && errno != EINTR && errno != EAGAIN)
        err_sys("read from stdin");
    if (n == 0)
        cl->stdin_eof = true;
    if (n > 0)
        cl->end += (size_t)n;
    update(cl);
}

static void to_server(struct client *cl)
{
    ssize_t w = write(cl->sockfd, cl->tosrv + cl->start, cl->end - cl->start);

    if (w == -1 && errno != EAGAIN && errno != EINTR)
        err_sys("write to server");
    if (w > 0) {
        cl->start += (size_t)w;
        cl->sent += (unsigned long long)w;
    }
    if (cl->start == cl->end)
        cl->start = cl->end = 0;
}

/* Copies what the server sent to stdout; false once it has closed. */
static bool from_server(struct client *cl)
{
    char buf[BUFSIZE];
    ssize_t n = read(cl->sockfd, buf, sizeof buf);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n == -1)
        err_sys("read from server");
    if (n == 0) {
        if (!cl->shut || cl->received < cl->sent)
            err_quit("server closed the connection: echo cut short");
        return false;
    }
    cl->received += (unsigned long long)n;
    if (cl->received > cl->sent)
        err_quit("server sent bytes that were never sent to it");
    if (writen(STDOUT_FILENO, buf, (size_t)n) == -1)
        err_sys("write to stdout");
    return true;
}

static void on_socket(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct client *cl = arg;

    (void)fd;
    if ((mask & RE_WRITE) && cl->end > cl->start)
        to_server(cl);
    if ((mask & RE_READ) && !from_server(cl)) {
        reactor_stop(r); /* the whole echo is back */
        return;
    }
    update(cl);
}

static void try_next_address(struct client *cl);

/* The socket turned writable: the handshake is over, one way or another. */
static void on_connect(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct client *cl = arg;
    int err = 0;
    socklen_t len = sizeof err;

    (void)mask;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    if (err != 0) {
        reactor_forget(r, fd);
        close(fd);
        cl->last_err = err;
        try_next_address(cl);
        return;
    }
    update(cl);
}

/* Starts a non-blocking connect() to the next address; exits when none is
 * left. */
static void try_next_address(struct client *cl)
{
    while (cl->next != NULL) {
        struct addrinfo *ai = cl->next;
        cl->next = ai->ai_next;
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd == -1) {
            cl->last_err = errno;
            continue;
        }
        cl->sockfd = fd;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            update(cl); /* loopback may connect at once */
            return;
        }
        if (errno == EINPROGRESS) {
            if (reactor_watch(cl->r, fd, RE_WRITE, on_connect, cl) == -1)
                err_sys("watch the socket");
            return;
        }
        cl->last_err = errno;
        close(fd);
    }
    errno = cl->last_err;
    err_sys("cannot connect to %s", cl->where);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "07-reactor", "an echo client: stdin and the socket on a reactor",
        9007};
    static struct client cl; /* 64 KiB: too big for a polite stack frame */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct net_options opt;
    int gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    host_port(opt.host, opt.port, cl.where, sizeof cl.where);
    gai_err = getaddrinfo(opt.host, opt.port, &hints, &cl.addrs);
    if (gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    cl.next = cl.addrs;
    cl.r = reactor_new("poll");
    if (cl.r == NULL)
        err_sys("reactor");

    try_next_address(&cl);
    if (reactor_run(cl.r) == -1)
        err_sys("poll");

    reactor_free(cl.r);
    freeaddrinfo(cl.addrs);
    close(cl.sockfd);
    return 0;
}
