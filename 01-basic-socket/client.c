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
 * See also: common/net.c for tcp_connect() (socket + connect per address);
 *           common/relay.h for the report every client shares.
 *
 * Run it:  ./01-basic-socket/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

enum { MAXLINE = 4096 };

/* The client's relay, one line at a time: the line to the server, its echo
 * to stdout, until stdin ends; then the half-close and the server's close.
 * Returns 0, or -1 with st saying what failed, as relay() does. */
static int relay_stop_and_wait(int sockfd, struct relay_status *st)
{
    struct line_reader in;
    char line[MAXLINE], echoed[MAXLINE];
    ssize_t n, got;

    readline_init(&in, STDIN_FILENO);
    for (;;) {
        n = readline(&in, line, sizeof line);
        /* Someone made stdin non-blocking (the flag belongs to the open
         * file, shared with the shell): no input yet means wait. */
        if (n == -1 && errno == EAGAIN && wait_ready(STDIN_FILENO, POLLIN) == 0)
            continue;
        if (n <= 0)
            break;
        if (writen(sockfd, line, (size_t)n) == -1)
            return relay_fail(st, RELAY_WRITE_SERVER);
        st->sent += (unsigned long long)n;
        /* The echo may come back in pieces: readn() collects all n bytes. */
        got = readn(sockfd, echoed, (size_t)n);
        if (got == -1)
            return relay_fail(st, RELAY_READ_SERVER);
        st->received += (unsigned long long)got;
        if (got < n)
            return relay_check_echo(st); /* the server closed: cut short */
        if (writen_blocking(STDOUT_FILENO, echoed, (size_t)n) == -1)
            return relay_fail(st, RELAY_WRITE_STDOUT);
    }
    if (n == -1)
        return relay_fail(st, RELAY_READ_STDIN);

    /* Half-close: "no more data from me", sent as a FIN. The socket stays
     * open for reading; the server closes once it has echoed everything,
     * and everything has already come back, so one read must see EOF. */
    if (shutdown(sockfd, SHUT_WR) == -1)
        return relay_fail(st, RELAY_SHUTDOWN);
    got = readn(sockfd, echoed, 1);
    if (got == -1)
        return relay_fail(st, RELAY_READ_SERVER);
    st->received += (unsigned long long)got;
    return relay_check_echo(st);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "01-basic-socket", "a stop-and-wait echo client: stdin to stdout",
        9001};
    struct net_options opt;
    struct relay_status st = {0};
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (relay_stop_and_wait(sockfd, &st) == -1)
        err_relay(&st);
    return 0;
}
