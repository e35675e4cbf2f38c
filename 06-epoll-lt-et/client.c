/* 06-epoll-lt-et/client.c -- epoll on stdin and the socket: 04's client,
 * with epoll.
 *
 * Model:   one process, one thread. epoll_wait() waits until stdin has
 *          input, the socket can take more, or the echo has arrived, and
 *          the client does whichever is ready (level-triggered). At stdin's
 *          EOF it half-closes (shutdown SHUT_WR) once everything read has
 *          been sent, then reads until the server closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room (see
 *          04-select/client.c for the deadlock a blocking write risks).
 *          epoll refuses regular files (EPERM): they are always readable,
 *          so when stdin is a file the client reads it whenever there is
 *          room, without asking epoll.
 * Observe: strace -e trace=epoll_ctl,epoll_wait ./06-epoll-lt-et/client
 *            epoll_ctl(EPOLL_CTL_MOD) when the socket's needs change, one
 *            epoll_wait per round.
 * See also: 05-poll/client.c (before), 07-reactor/client.c (after).
 *
 * Run it:  ./06-epoll-lt-et/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <sys/epoll.h>
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
    int sockfd, epfd;
    bool stdin_plain;   /* a regular file: epoll cannot watch it */
    bool stdin_watched; /* stdin is on the interest list now */
    uint32_t sock_ev;   /* what epoll watches on the socket now */
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

/* Registers the socket, and stdin unless it is a regular file. */
static void watch_init(struct client *cl)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};

    cl->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl->epfd == -1)
        err_sys("epoll_create1");
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) == 0)
        cl->stdin_watched = true;
    else if (errno == EPERM)
        cl->stdin_plain = true; /* a file (or /dev/null): always readable */
    else
        err_sys("epoll_ctl stdin");
    ev = (struct epoll_event){.events = EPOLLIN, .data.fd = cl->sockfd};
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, cl->sockfd, &ev) == -1)
        err_sys("epoll_ctl socket");
    cl->sock_ev = EPOLLIN;
}

/* Changes what epoll watches when the state asks for it: stdin while it
 * has input to give and there is room, the socket's EPOLLOUT while bytes
 * wait for it. Only a change costs an epoll_ctl(). */
static void watch(struct client *cl)
{
    bool in = !cl->stdin_plain && !cl->stdin_eof && cl->end < BUFSIZE;
    uint32_t sock = EPOLLIN | (cl->end > cl->start ? EPOLLOUT : 0);

    /* Taken off the list, not just asked for no events: EPOLLHUP is
     * reported whatever was asked, and a pipe whose writer has gone would
     * report it in every round. */
    if (in != cl->stdin_watched) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
        if (epoll_ctl(cl->epfd, in ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
                      STDIN_FILENO, &ev) == -1)
            err_sys("epoll_ctl stdin");
        cl->stdin_watched = in;
    }
    if (sock != cl->sock_ev) {
        struct epoll_event ev = {.events = sock, .data.fd = cl->sockfd};
        if (epoll_ctl(cl->epfd, EPOLL_CTL_MOD, cl->sockfd, &ev) == -1)
            err_sys("epoll_ctl socket");
        cl->sock_ev = sock;
    }
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "06-epoll-lt-et", "an echo client: epoll on stdin and the socket",
        9006};
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

    watch_init(&cl);
    for (;;) {
        struct epoll_event evs[2];
        int n;
        if (cl.stdin_plain && !cl.stdin_eof && cl.end < BUFSIZE)
            from_stdin(&cl);
        if (cl.stdin_eof && cl.end == 0 && !cl.shut)
            half_close(&cl);
        watch(&cl);
        /* With a file left to read and room for it, only look: no wait. */
        bool more = cl.stdin_plain && !cl.stdin_eof && cl.end < BUFSIZE;
        n = epoll_wait(cl.epfd, evs, 2, more ? 0 : -1);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            err_sys("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            uint32_t ev = evs[i].events;
            if (evs[i].data.fd == STDIN_FILENO) {
                from_stdin(&cl);
            } else {
                if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
                    cl.end > cl.start)
                    to_server(&cl);
                if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !from_server(&cl))
                    goto done;
            }
        }
    }
done:
    close(cl.sockfd);
    return 0;
}
