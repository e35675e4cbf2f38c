/* 01-basic-socket/client.c -- stop-and-wait: send a line, wait for its echo.
 *
 * Model:   one process, one thread. Read a line of stdin (or at most
 *          MAXLINE - 1 bytes if no newline comes first), send it, read back
 *          exactly as many bytes, write them to stdout, repeat. At EOF on
 *          stdin, half-close (shutdown SHUT_WR) and wait for the server to
 *          close its side.
 * Cost:    one round trip per line: the link sits idle while we wait. Lesson
 *          04's client keeps sending while the echo comes back.
 * Observe: strace -e trace=network,read,write ./01-basic-socket/client
 *            one write and one read on the socket per line, then
 *            shutdown(SHUT_WR) and a last read that returns 0.
 * See also: common/net.c for tcp_connect() (socket + connect per address).
 *
 * Run it:  ./01-basic-socket/client < /etc/services | cmp - /etc/services
 */
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { MAXLINE = 4096 };

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "01-basic-socket", "a stop-and-wait echo client: stdin to stdout",
        9001};
    struct net_options opt;
    struct line_reader in;
    char line[MAXLINE], echoed[MAXLINE], where[HOST_PORT_LEN];
    ssize_t n, got;
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */

    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (sockfd == -1)
        err_sys("cannot connect to %s",
                host_port(opt.host, opt.port, where, sizeof where));

    readline_init(&in, STDIN_FILENO);
    while ((n = readline(&in, line, sizeof line)) > 0) {
        if (writen(sockfd, line, (size_t)n) == -1)
            err_sys("write to server");
        /* The echo may come back in pieces: readn() collects all n bytes. */
        got = readn(sockfd, echoed, (size_t)n);
        if (got == -1)
            err_sys("read from server");
        if (got < n)
            err_quit("server closed the connection: echo cut short");
        if (writen(STDOUT_FILENO, echoed, (size_t)n) == -1)
            err_sys("write to stdout");
    }
    if (n == -1)
        err_sys("read from stdin");

    /* Half-close: "no more data from me", sent as a FIN. The socket stays
     * open for reading; the server closes once it has echoed everything,
     * and everything has already come back, so one read must see EOF. */
    if (shutdown(sockfd, SHUT_WR) == -1)
        err_sys("shutdown");
    got = readn(sockfd, echoed, 1);
    if (got == -1)
        err_sys("read from server");
    if (got > 0)
        err_quit("server sent bytes that were never sent to it");
    close(sockfd);
    return 0;
}
