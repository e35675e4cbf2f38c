/* 08-half-sync-half-async/client.c -- a pipelining client: many requests in
 * flight, a bounded window of them, one thread and poll().
 *
 * Model:   one thread, the socket non-blocking. poll() waits for stdin, for
 *          room in the socket, or for the echo, and the client does
 *          whichever is ready. It never waits for an echo before sending
 *          more: every chunk it writes is a request the server may be
 *          working on while the next ones travel, so the server's workers
 *          see several requests of this one connection at once, and the
 *          server must put their replies back in order. At stdin's EOF it
 *          half-closes (shutdown SHUT_WR) once everything is sent, then
 *          reads until the server closes.
 * Cost:    the bytes in flight (sent, not yet echoed) are capped at WINDOW:
 *          stdin is read only below it. The client's memory stays bounded
 *          whatever the input, and a server that stops reading (its queue
 *          full) stops this client too, instead of the kernel's buffers
 *          filling on both sides.
 * Observe: strace -e trace=poll,read,write,shutdown
 *          ./08-half-sync-half-async/client < /etc/services > /dev/null
 *            reads of stdin and writes to the socket run ahead of the
 *            reads of the echo; stdin rests once WINDOW bytes are out.
 * See also: 05-poll/client.c (the same loop, bounded by its buffer rather
 *           than by the bytes in flight), 07-reactor/client.c (before),
 *           09-leader-follower/client.c (after).
 *
 * Run it:  ./08-half-sync-half-async/client < /etc/services | cmp -
 * /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { BUFSIZE = 65536 };

/* The most bytes sent and not yet echoed: four buffers' worth. */
enum { WINDOW = 4 * BUFSIZE };

/* Bytes read from stdin, not yet written: tosrv[start, end). */
struct client {
    int sockfd;
    char tosrv[BUFSIZE];
    size_t start, end;
    bool stdin_eof, shut;
    unsigned long long sent, received; /* in flight: sent - received */
};

/* Whether to read stdin now: there is more, there is room in the buffer,
 * and the window is not full. */
static bool wants_stdin(const struct client *cl)
{
    unsigned long long in_flight = cl->sent - cl->received;

    return !cl->stdin_eof && cl->end < BUFSIZE && in_flight + cl->end < WINDOW;
}

/* Reads what stdin has into the free end of the buffer. */
static void from_stdin(struct client *cl)
{
    ssize_t n = read(STDIN_FILENO, cl->tosrv + cl->end, BUFSIZE - cl->end);

    if (n == -1 && errno != EINTR && errno != EAGAIN)
        err_sys("read from stdin");
    if (n == 0)
        cl->stdin_eof = true;
    if (n > 0)
        cl->end += (size_t)n;
}

/* Writes what the socket takes of the buffer. */
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

/* Copies what the server sent to stdout; returns false once it closed. An
 * early close, or bytes nobody sent, is one line on stderr and exit 1. */
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

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "08-half-sync-half-async",
        "an echo client: pipelined requests, a bounded window in flight", 9008};
    static struct client cl; /* 64 KiB: too big for a polite stack frame */
    struct net_options opt;
    char where[HOST_PORT_LEN];
    int gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    cl.sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (cl.sockfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (cl.sockfd == -1)
        err_sys("cannot connect to %s",
                host_port(opt.host, opt.port, where, sizeof where));
    if (set_nonblocking(cl.sockfd) == -1)
        err_sys("fcntl O_NONBLOCK");

    for (;;) {
        struct pollfd pfds[2] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = cl.sockfd, .events = POLLIN},
        };
        if (!wants_stdin(&cl))
            pfds[0].fd = -1; /* poll() skips a negative descriptor */
        if (cl.end > cl.start)
            pfds[1].events |= POLLOUT;
        if (poll(pfds, 2, -1) == -1) {
            if (errno == EINTR)
                continue;
            err_sys("poll");
        }
        if (pfds[0].revents != 0)
            from_stdin(&cl);
        if ((pfds[1].revents & (POLLOUT | POLLERR | POLLHUP)) &&
            cl.end > cl.start)
            to_server(&cl);
        /* All of stdin sent: "no more requests", a FIN after the last
         * byte. The socket stays open for the replies still in flight. */
        if (cl.stdin_eof && cl.end == 0 && !cl.shut) {
            if (shutdown(cl.sockfd, SHUT_WR) == -1)
                err_sys("shutdown");
            cl.shut = true;
        }
        if ((pfds[1].revents & (POLLIN | POLLERR | POLLHUP)) &&
            !from_server(&cl))
            break;
    }
    close(cl.sockfd);
    return 0;
}
