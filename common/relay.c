/* relay.c -- an echo client's copy loop and its steps; see relay.h. */
#include "relay.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"

static const char *const step_name[] = {
    [RELAY_OK] = "relay",
    [RELAY_READ_STDIN] = "read from stdin",
    [RELAY_WRITE_SERVER] = "write to server",
    [RELAY_SHUTDOWN] = "shutdown",
    [RELAY_READ_SERVER] = "read from server",
    [RELAY_WRITE_STDOUT] = "write to stdout",
    [RELAY_SETUP] = "fcntl O_NONBLOCK",
    [RELAY_WAIT] = "poll",
};

/* Records what failed, with errno (0 for a failure that is no call), and
 * returns -1 with errno as it was. */
static int fail(struct relay_status *st, enum relay_step step, int err)
{
    st->failed = step;
    st->err = err;
    errno = err;
    return -1;
}

int relay_fail(struct relay_status *st, enum relay_step step)
{
    return fail(st, step, errno);
}

int wait_ready(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    while (poll(&pfd, 1, -1) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

ssize_t read_blocking(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t got = read(fd, buf, n);
        if (got >= 0 || (errno != EINTR && errno != EAGAIN))
            return got;
        if (errno == EAGAIN && wait_ready(fd, POLLIN) == -1)
            return -1;
    }
}

ssize_t writen_blocking(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w == -1 && errno == EAGAIN && wait_ready(fd, POLLOUT) == 0)
            continue;
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1)
            return -1;
        p += w;
        left -= (size_t)w;
    }
    return (ssize_t)n;
}

int relay_start(struct relay *rl, int in, int sockfd, int out)
{
    *rl = (struct relay){.in = in, .sockfd = sockfd, .out = out};
    /* Ours, so the flag is ours to set: a write() the socket cannot take
     * must return, not sleep while the echo piles up unread. */
    if (set_nonblocking(sockfd) == -1)
        return fail(&rl->st, RELAY_SETUP, errno);
    return 0;
}

bool relay_wants_stdin(const struct relay *rl)
{
    return !rl->in_eof && rl->end < RELAY_BUFSIZE;
}

size_t relay_pending(const struct relay *rl)
{
    return rl->end - rl->start;
}

/* Once in has ended and all of it is sent: the FIN, after the last byte. */
static int half_close_once_sent(struct relay *rl)
{
    if (!rl->in_eof || relay_pending(rl) > 0 || rl->shut)
        return 0;
    if (shutdown(rl->sockfd, SHUT_WR) == -1)
        return fail(&rl->st, RELAY_SHUTDOWN, errno);
    rl->shut = true;
    return 0;
}

int relay_from_stdin(struct relay *rl)
{
    ssize_t n;

    if (!relay_wants_stdin(rl))
        return 0; /* a read() of 0 bytes would look like EOF */
    n = read(rl->in, rl->tosrv + rl->end, RELAY_BUFSIZE - rl->end);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0; /* a non-blocking stdin with nothing yet: wait again */
    if (n == -1)
        return fail(&rl->st, RELAY_READ_STDIN, errno);
    if (n == 0)
        rl->in_eof = true;
    rl->end += (size_t)n;
    return half_close_once_sent(rl);
}

int relay_to_server(struct relay *rl)
{
    ssize_t w = write(rl->sockfd, rl->tosrv + rl->start, relay_pending(rl));

    if (w == -1 && errno != EAGAIN && errno != EINTR)
        return fail(&rl->st, RELAY_WRITE_SERVER, errno);
    if (w > 0) {
        rl->start += (size_t)w;
        rl->st.sent += (unsigned long long)w;
    }
    if (rl->start == rl->end)
        rl->start = rl->end = 0;
    return half_close_once_sent(rl);
}

int relay_check_echo(struct relay_status *st)
{
    if (st->failed != RELAY_OK)
        return -1;
    if (st->received < st->sent)
        return fail(st, RELAY_CUT_SHORT, 0);
    if (st->received > st->sent)
        return fail(st, RELAY_TOO_MUCH, 0);
    return 0;
}

int relay_from_server(struct relay *rl)
{
    char buf[RELAY_BUFSIZE];
    ssize_t n = read(rl->sockfd, buf, sizeof buf);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n == -1)
        return fail(&rl->st, RELAY_READ_SERVER, errno);
    if (n == 0) {
        rl->closed = true;
        /* Before our FIN, the server had no reason to close. */
        if (!rl->shut)
            return fail(&rl->st, RELAY_CUT_SHORT, 0);
        return relay_check_echo(&rl->st);
    }
    rl->st.received += (unsigned long long)n;
    if (rl->st.received > rl->st.sent)
        return fail(&rl->st, RELAY_TOO_MUCH, 0);
    /* stdout may be a non-blocking pipe or terminal: wait for it here.
     * Meanwhile the server's output to us waits in the kernel, which is
     * where it would wait for a slow reader of a blocking stdout too. */
    if (writen_blocking(rl->out, buf, (size_t)n) == -1)
        return fail(&rl->st, RELAY_WRITE_STDOUT, errno);
    return 0;
}

int relay_send(int in, int sockfd, struct relay_status *st)
{
    char buf[RELAY_HALF_BUFSIZE];
    ssize_t n;

    while ((n = read_blocking(in, buf, sizeof buf)) > 0) {
        if (writen(sockfd, buf, (size_t)n) == -1)
            return fail(st, RELAY_WRITE_SERVER, errno);
        st->sent += (unsigned long long)n;
    }
    if (n == -1)
        return fail(st, RELAY_READ_STDIN, errno);
    return 0;
}

int relay_receive(int sockfd, int out, struct relay_status *st)
{
    char buf[RELAY_HALF_BUFSIZE];
    ssize_t n;

    while ((n = read(sockfd, buf, sizeof buf)) != 0) {
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return fail(st, RELAY_READ_SERVER, errno);
        if (writen_blocking(out, buf, (size_t)n) == -1)
            return fail(st, RELAY_WRITE_STDOUT, errno);
        st->received += (unsigned long long)n;
    }
    return 0;
}

int relay(int in, int sockfd, int out, struct relay_status *st)
{
    struct relay rl;
    int rc = relay_start(&rl, in, sockfd, out);

    while (rc == 0 && !rl.closed) {
        struct pollfd pfds[2] = {
            {.fd = in, .events = POLLIN},
            {.fd = sockfd, .events = POLLIN},
        };
        if (!relay_wants_stdin(&rl))
            pfds[0].fd = -1; /* poll() skips a negative descriptor */
        if (relay_pending(&rl) > 0)
            pfds[1].events |= POLLOUT;
        if (poll(pfds, 2, -1) == -1) {
            if (errno != EINTR)
                rc = fail(&rl.st, RELAY_WAIT, errno);
            continue;
        }
        /* A regular file or a directory is always "ready": its read()
         * tells what it has, EOF or EISDIR. */
        if (pfds[0].revents != 0)
            rc = relay_from_stdin(&rl);
        if (rc == 0 && (pfds[1].revents & (POLLOUT | POLLERR | POLLHUP)) &&
            relay_pending(&rl) > 0)
            rc = relay_to_server(&rl);
        if (rc == 0 && (pfds[1].revents & (POLLIN | POLLERR | POLLHUP)))
            rc = relay_from_server(&rl);
    }
    *st = rl.st;
    errno = st->err;
    return rc;
}

void err_connect(const struct net_options *opt, int gai_err)
{
    char where[HOST_PORT_LEN];

    if (gai_err != 0)
        err_quit("cannot resolve %s: %s", opt->host, gai_strerror(gai_err));
    err_sys("cannot connect to %s",
            host_port(opt->host, opt->port, where, sizeof where));
}

void err_relay(const struct relay_status *st)
{
    if (st->failed == RELAY_CUT_SHORT)
        err_quit("server closed the connection: echo cut short");
    if (st->failed == RELAY_TOO_MUCH)
        err_quit("server sent bytes that were never sent to it");
    errno = st->err;
    err_sys("%s", step_name[st->failed]);
}
