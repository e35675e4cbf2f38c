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
 *          ./01-basic-socket/client -u       (UDP: a datagram per line)
 *          ./01-basic-socket/client --split  (each line in two write()s:
 *                                             Nagle meets the delayed ACK)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

enum { MAXLINE = 4096 };

/* How long the UDP client waits for a datagram's echo: it may be lost. */
enum { DATAGRAM_WAIT_SECONDS = 3 };

/* Sends one line: in one write(), or with split in two, the first half
 * and then the rest, as a program that writes a header and then a body. */
static ssize_t send_line(int sockfd, const char *line, size_t n, bool split)
{
    size_t half = split ? n / 2 : 0;

    if (half > 0 && writen(sockfd, line, half) == -1)
        return -1;
    return writen(sockfd, line + half, n - half);
}

/* The client's relay, one line at a time: the line to the server, its echo
 * to stdout, until stdin ends; then the half-close and the server's close.
 * Returns 0, or -1 with st saying what failed, as relay() does. */
static int relay_stop_and_wait(int sockfd, bool split, struct relay_status *st)
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
        if (send_line(sockfd, line, (size_t)n, split) == -1)
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

/* The same over UDP: each line one datagram, each echo one datagram, of
 * the same length. The socket is connected (udp_connect()), so send() and
 * recv() need no address, and an ICMP "port unreachable" -- nobody bound
 * there -- comes back as ECONNREFUSED. No datagram is resent: a lost one
 * ends the wait after DATAGRAM_WAIT_SECONDS with EAGAIN. Nothing to
 * half-close: the relay ends with stdin. */
static int relay_datagrams(int sockfd, struct relay_status *st)
{
    /* SO_RCVTIMEO takes a struct timeval, not a number of milliseconds. */
    const struct timeval wait = {DATAGRAM_WAIT_SECONDS, 0};
    struct line_reader in;
    char line[MAXLINE], echoed[MAXLINE];
    ssize_t n, got;

    if (setsockopt(sockfd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == -1)
        return relay_fail(st, RELAY_SETUP);
    readline_init(&in, STDIN_FILENO);
    while ((n = readline(&in, line, sizeof line)) != 0) {
        if (n == -1 && errno == EAGAIN && wait_ready(STDIN_FILENO, POLLIN) == 0)
            continue;
        if (n == -1)
            return relay_fail(st, RELAY_READ_STDIN);
        if (send(sockfd, line, (size_t)n, 0) == -1)
            return relay_fail(st, RELAY_WRITE_SERVER);
        st->sent += (unsigned long long)n;
        /* One recv(), one datagram: never a piece of one, never two. */
        got = recv(sockfd, echoed, sizeof echoed, 0);
        if (got == -1)
            return relay_fail(st, RELAY_READ_SERVER);
        st->received += (unsigned long long)got;
        if (got != n)
            return relay_check_echo(st);
        if (writen_blocking(STDOUT_FILENO, echoed, (size_t)got) == -1)
            return relay_fail(st, RELAY_WRITE_STDOUT);
    }
    return 0;
}

enum { OPT_SPLIT = 256, OPT_NODELAY };

struct settings {
    bool udp;     /* -u */
    bool split;   /* --split */
    bool nodelay; /* --nodelay */
};

static int on_option(int key, const char *arg, void *ctx)
{
    struct settings *set = ctx;

    (void)arg;
    if (key == 'u')
        set->udp = true;
    else if (key == OPT_SPLIT)
        set->split = true;
    else if (key == OPT_NODELAY)
        set->nodelay = true;
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "01-basic-socket", "a stop-and-wait echo client: stdin to stdout",
        9001};
    static const struct lesson_option options[] = {
        {'u', NULL, NULL, "UDP: each line one datagram"},
        {OPT_SPLIT, "split", NULL, "send each line in two write()s"},
        {OPT_NODELAY, "nodelay", NULL, "TCP_NODELAY: turn Nagle off"},
        {0, NULL, NULL, NULL},
    };
    static const int on = 1;
    struct net_options opt;
    struct settings set = {false, false, false};
    struct relay_status st = {0};
    int sockfd, gai_err;

    parse_client_options_with(argc, argv, &pi, &opt, options, on_option, &set);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    if (set.udp)
        sockfd = udp_connect(opt.host, opt.port, &gai_err);
    else
        sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    /* Nagle's algorithm holds a small write while an earlier one is not
     * yet acknowledged; TCP_NODELAY sends every write at once. */
    if (set.nodelay &&
        setsockopt(sockfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == -1)
        err_sys("setsockopt TCP_NODELAY");
    if ((set.udp ? relay_datagrams(sockfd, &st)
                 : relay_stop_and_wait(sockfd, set.split, &st)) == -1)
        err_relay(&st);
    return 0;
}
