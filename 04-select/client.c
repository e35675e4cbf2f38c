/* 04-select/client.c -- select() on stdin and the socket: batch input done
 * right.
 *
 * Model:   one process, one thread. select() waits until stdin has input,
 *          the socket can take more, or the echo has arrived, and the
 *          client does whichever is ready. It keeps sending while the echo
 *          comes back, instead of waiting for each line (01's client). At
 *          stdin's EOF it half-closes (shutdown SHUT_WR) once everything
 *          read has been sent, then reads until the server closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room. Writing
 *          with a blocking writen() instead could deadlock on large input:
 *          we would sleep in write() while the server, its output to us
 *          unread, has stopped reading from us.
 * Observe: strace -e trace=pselect6,read,write,shutdown ./04-select/client
 *            reads of stdin and of the socket interleaved, the shutdown
 *            right after the last write to the socket.
 * See also: 01-basic-socket/client.c (stop-and-wait), 05-poll/client.c.
 *
 * Run it:  ./04-select/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <sys/select.h>
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
        "04-select", "an echo client: select() on stdin and the socket", 9004};
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
    if (cl.sockfd >= FD_SETSIZE)
        err_quit("descriptor %d is not below FD_SETSIZE", cl.sockfd);

    for (;;) {
        fd_set rset, wset;
        FD_ZERO(&rset);
        FD_ZERO(&wset);
        if (!cl.stdin_eof && cl.end < BUFSIZE)
            FD_SET(STDIN_FILENO, &rset);
        if (cl.end > cl.start)
            FD_SET(cl.sockfd, &wset);
        FD_SET(cl.sockfd, &rset);
        if (select(cl.sockfd + 1, &rset, &wset, NULL, NULL) == -1) {
            if (errno == EINTR)
                continue;
            err_sys("select");
        }
        if (FD_ISSET(STDIN_FILENO, &rset))
            from_stdin(&cl);
        if (FD_ISSET(cl.sockfd, &wset))
            to_server(&cl);
        if (cl.stdin_eof && cl.end == 0 && !cl.shut)
            half_close(&cl);
        if (FD_ISSET(cl.sockfd, &rset) && !from_server(&cl))
            break;
    }
    close(cl.sockfd);
    return 0;
}
