/* 05-poll/client.c -- poll() on stdin and the socket: 04's client, with
 * poll().
 *
 * Model:   one process, one thread. poll() waits until stdin has input,
 *          the socket can take more, or the echo has arrived, and the
 *          client does whichever is ready. It keeps sending while the echo
 *          comes back. At stdin's EOF it half-closes (shutdown SHUT_WR)
 *          once everything read has been sent, then reads until the server
 *          closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room (see
 *          04-select/client.c for the deadlock a blocking write risks).
 * Observe: strace -e trace=poll,read,write,shutdown ./05-poll/client
 *            two pollfd entries, stdin's asking for POLLIN until its EOF.
 * See also: 04-select/client.c (before), 06-epoll-lt-et/client.c (after).
 *
 * Run it:  ./05-poll/client < /etc/services | cmp - /etc/services
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

/* Bytes read from stdin and not yet taken by the socket: tosrv[start, end). */
struct client {
    int sockfd;
    char tosrv[BUFSIZE];
    size_t start, end;
    bool stdin_eof, shut;
    unsigned long long sent, received;
};

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

/* Once stdin is done and all of it sent: "no more data from me", a FIN
 * after the last byte. The socket stays open for the rest of the echo. */
static void half_close(struct client *cl)
{
    if (shutdown(cl->sockfd, SHUT_WR) == -1)
        err_sys("shutdown");
    cl->shut = true;
}

/* Copies what the server sent to stdout; returns false once it closed. */
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
        "05-poll", "an echo client: poll() on stdin and the socket", 9005};
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
        /* A negative fd makes poll() skip the entry. */
        if (cl.stdin_eof || cl.end == BUFSIZE)
            pfds[0].fd = -1;
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
        if (cl.stdin_eof && cl.end == 0 && !cl.shut)
            half_close(&cl);
        if ((pfds[1].revents & (POLLIN | POLLERR | POLLHUP)) &&
            !from_server(&cl))
            break;
    }
    close(cl.sockfd);
    return 0;
}
