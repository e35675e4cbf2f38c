/* 07-reactor/client.c -- 06's client, rebuilt as handlers on the reactor.
 *
 * Model:   one process, one thread, the same reactor as the server
 *          (reactor.h): a handler for stdin, one for the socket, each
 *          calling a step of common/relay.c. Even the connect() is an
 *          event: the socket is non-blocking, connect() returns
 *          EINPROGRESS at once, and the socket turns writable when the
 *          handshake is over -- then getsockopt(SO_ERROR) says whether it
 *          worked, and the next address is tried if not.
 * Cost:    the poll backend, not epoll: stdin may be a regular file,
 *          which epoll refuses (EPERM) and poll() reports as always
 *          readable -- what a file is. What the socket cannot take waits
 *          in the relay's buffer, and stdin is watched only while it has
 *          room.
 * Observe: strace -e trace=connect,poll,getsockopt,shutdown
 *            ./07-reactor/client < /etc/services > /dev/null
 *          connect() = -1 EINPROGRESS, a poll() for POLLOUT, then
 *          getsockopt(SO_ERROR) = 0, and shutdown(SHUT_WR) after the last
 *          byte of stdin.
 * See also: 06-epoll-lt-et/client.c (before), reactor.h, common/relay.c.
 *
 * Run it:  ./07-reactor/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "reactor.h"
#include "relay.h"
#include "signals.h"

/* A connect() in progress, address after address. */
struct connecting {
    struct addrinfo *next; /* the address to try next */
    int sockfd;            /* the connected socket, or -1 */
    int last_err;          /* errno of the last address that failed */
    bool done;             /* connected, or no address left */
};

static void try_next_address(struct reactor *r, struct connecting *c);

/* The socket turned writable: the handshake is over, one way or another. */
static void on_connect(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct connecting *c = arg;
    int err = 0;
    socklen_t len = sizeof err;

    (void)mask;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        err = errno;
    reactor_forget(r, fd);
    if (err != 0) {
        close(fd);
        c->last_err = err;
        try_next_address(r, c);
        return;
    }
    c->sockfd = fd;
    c->done = true;
    reactor_stop(r);
}

/* Starts a non-blocking connect() to the next address; when none is left,
 * gives up. */
static void try_next_address(struct reactor *r, struct connecting *c)
{
    while (c->next != NULL) {
        struct addrinfo *ai = c->next;
        c->next = ai->ai_next;
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd == -1) {
            c->last_err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->sockfd = fd; /* loopback may connect at once */
            c->done = true;
            return;
        }
        if (errno == EINPROGRESS &&
            reactor_watch(r, fd, RE_WRITE, on_connect, c) == 0)
            return;
        c->last_err = errno;
        close(fd);
    }
    c->done = true;
    reactor_stop(r);
}

/* tcp_connect() on the reactor: each address of host:port in turn, the
 * handshake waited for as an event. Returns the connected socket, or -1
 * as tcp_connect() does: *gai_err if the name did not resolve, otherwise
 * errno of the last address tried. */
static int connect_on_reactor(struct reactor *r, const struct net_options *opt,
                              int *gai_err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *addrs;
    struct connecting c = {.sockfd = -1, .last_err = EADDRNOTAVAIL};

    *gai_err = getaddrinfo(opt->host, opt->port, &hints, &addrs);
    if (*gai_err != 0)
        return -1;
    c.next = addrs;
    try_next_address(r, &c);
    if (!c.done && reactor_run(r) == -1)
        c.last_err = errno;
    freeaddrinfo(addrs);
    errno = c.last_err;
    return c.sockfd;
}

static void on_stdin(struct reactor *r, int fd, unsigned mask, void *arg);
static void on_socket(struct reactor *r, int fd, unsigned mask, void *arg);

/* After every event: tell the reactor what each descriptor waits for now.
 * Returns 0, or -1 with the failure recorded in rl. */
static int update(struct reactor *r, struct relay *rl)
{
    unsigned sock = RE_READ | (relay_pending(rl) > 0 ? RE_WRITE : 0u);

    /* Forgotten, not kept with no events: poll() reports POLLHUP for a
     * pipe whose writer has gone, whatever was asked for. */
    if (!relay_wants_stdin(rl))
        reactor_forget(r, rl->in);
    else if (reactor_watch(r, rl->in, RE_READ, on_stdin, rl) == -1)
        return relay_fail(&rl->st, RELAY_WAIT);
    if (reactor_watch(r, rl->sockfd, sock, on_socket, rl) == -1)
        return relay_fail(&rl->st, RELAY_WAIT);
    return 0;
}

static void on_stdin(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct relay *rl = arg;

    (void)fd;
    (void)mask;
    if (relay_from_stdin(rl) == -1 || update(r, rl) == -1)
        reactor_stop(r);
}

static void on_socket(struct reactor *r, int fd, unsigned mask, void *arg)
{
    struct relay *rl = arg;

    (void)fd;
    if ((mask & RE_WRITE) && relay_pending(rl) > 0 &&
        relay_to_server(rl) == -1) {
        reactor_stop(r);
        return;
    }
    if (((mask & RE_READ) && relay_from_server(rl) == -1) || rl->closed ||
        update(r, rl) == -1)
        reactor_stop(r); /* the whole echo is back, or the relay failed */
}

/* relay() on the reactor: the handlers above, until the server has
 * closed. Returns as relay() does. */
static int relay_reactor(struct reactor *r, int sockfd, struct relay *rl)
{
    if (relay_start(rl, STDIN_FILENO, sockfd, STDOUT_FILENO) == -1 ||
        update(r, rl) == -1)
        return -1;
    if (reactor_run(r) == -1)
        return relay_fail(&rl->st, RELAY_WAIT);
    return rl->st.failed == RELAY_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "07-reactor", "an echo client: stdin and the socket on a reactor",
        9007};
    static struct relay rl; /* 64 KiB: too big for a polite stack frame */
    struct net_options opt;
    struct reactor *r;
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    r = reactor_new("poll");
    if (r == NULL)
        err_sys("reactor");
    sockfd = connect_on_reactor(r, &opt, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (relay_reactor(r, sockfd, &rl) == -1)
        err_relay(&rl.st);
    return 0;
}
