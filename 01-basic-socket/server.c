/* 01-basic-socket/server.c -- an iterative echo server: one client at a time.
 *
 * Model:   one process, one thread. It blocks in accept() until a client
 *          arrives, then in read() until that client sends or leaves; only
 *          when the client has gone does it call accept() again.
 * Cost:    two descriptors (the listener and the client). A second client
 *          is not refused: the kernel completes its handshake and queues it
 *          in the listen backlog, its bytes unread, until the first leaves.
 *          One slow client stops everyone.
 * Observe: strace -e trace=network ./01-basic-socket/server
 *            socket, setsockopt, bind, listen, getsockname (for the log
 *            line), then accept blocking;
 *          ss -tan 'sport = :9001' with two clients connected
 *            both ESTAB; the waiting one has its bytes in Recv-Q.
 * See also: 02-fork-server (after), which serves clients at the same time.
 *
 * Run it:  ./01-basic-socket/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9001
 *          ./01-basic-socket/server -u         (UDP: echo_datagrams())
 *          printf 'hello\n' | nc -u -W 1 127.0.0.1 9001
 */
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

/* How many connections the kernel may complete and hold for us while we are
 * busy with another client; beyond it, new SYNs are dropped and retried. */
enum { LISTEN_BACKLOG = 128 };

/* One connection at a time, so one buffer, on the stack of echo(). */
enum { ECHO_BUFSIZE = 16384 };

/* The largest UDP payload is 65507 bytes over IPv4 (65527 over IPv6): a
 * buffer this size holds any datagram whole. */
enum { DATAGRAM_BUFSIZE = 65536 };

/* The whole server-side call sequence, spelled out once:
 * getaddrinfo -> socket -> setsockopt -> bind -> listen.
 * (common/net.c packages it as tcp_listen() for the later lessons; it also
 * tries every address getaddrinfo() returns, where this takes the first.) */
static int listen_on(const char *host, const char *port, bool reuseaddr)
{
    struct addrinfo hints, *res;
    char where[SOCK_NTOP_LEN];
    const int on = 1;
    int listenfd, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;     /* "127.0.0.1" gives IPv4, "::1" IPv6 */
    hints.ai_socktype = SOCK_STREAM; /* TCP */
    hints.ai_flags = AI_PASSIVE;     /* an address to bind, not to connect */
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc == EAI_SYSTEM)
        err_sys("cannot resolve %s", host);
    if (rc != 0)
        err_quit("cannot resolve %s: %s", host, gai_strerror(rc));
    sock_ntop(res->ai_addr, res->ai_addrlen, where, sizeof where);

    listenfd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
                      res->ai_protocol);
    if (listenfd == -1)
        err_sys("socket");

    /* Without SO_REUSEADDR, bind() fails with EADDRINUSE for as long as a
     * connection of our previous run is in TIME_WAIT on this port (60 s on
     * Linux): a server that was just stopped could not start again. The
     * lab sheet turns it off (--no-reuseaddr) to show exactly that. */
    if (reuseaddr &&
        setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == -1)
        err_sys("setsockopt SO_REUSEADDR");

    if (bind(listenfd, res->ai_addr, res->ai_addrlen) == -1)
        err_sys("cannot listen on %s: bind", where);
    if (listen(listenfd, LISTEN_BACKLOG) == -1)
        err_sys("cannot listen on %s: listen", where);

    freeaddrinfo(res);
    return listenfd;
}

/* Echoes what connfd sends until the client half-closes (read() returns 0)
 * or the connection fails, adding each write to the bytes echoed in
 * *totals. Returns the number of bytes echoed. A failure costs this
 * connection only: it is logged, never fatal. */
static unsigned long long echo(int connfd, const char *peer,
                               struct served *totals)
{
    char buf[ECHO_BUFSIZE];
    unsigned long long total = 0;
    ssize_t n;

    /* read() returns as soon as some bytes are there, not when buf is full:
     * a "message" of the client's may arrive in several pieces or glued to
     * the next one. An echo server does not care where messages end. */
    while ((n = read(connfd, buf, sizeof buf)) > 0) {
        /* write() may take fewer bytes than offered when the socket's send
         * buffer is full; writen() loops until all are taken. */
        if (writen(connfd, buf, (size_t)n) == -1) {
            /* EPIPE or ECONNRESET: the client left without reading. */
            err_ret("write to %s", peer);
            return total;
        }
        total += (unsigned long long)n;
        atomic_fetch_add(&totals->bytes, (unsigned long long)n);
    }
    if (n == -1) /* a real error, such as ECONNRESET */
        err_ret("read from %s", peer);
    return total;
}

/* UDP: each recvfrom() takes one whole datagram, and one sendto() sends
 * it back to whoever sent it. There is no connection, so no accept(), no
 * per-client descriptor, no end of a client: the one socket serves every
 * sender, one datagram at a time, until the stop. Only bufsize bytes of
 * each are kept (--udp-buffer): the kernel discards the rest, and the
 * flag MSG_TRUNC makes recvfrom() return the datagram's real length. */
static _Noreturn void echo_datagrams(int sockfd, size_t bufsize,
                                     struct served *totals)
{
    char buf[DATAGRAM_BUFSIZE];

    for (;;) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        char peer[SOCK_NTOP_LEN];
        ssize_t n = recvfrom(sockfd, buf, bufsize, MSG_TRUNC,
                             (struct sockaddr *)&from, &fromlen);

        if (n == -1)
            err_sys("recvfrom");
        sock_ntop((struct sockaddr *)&from, fromlen, peer, sizeof peer);
        atomic_fetch_add(&totals->conns, 1);
        if ((size_t)n > bufsize) {
            logmsg("truncated a datagram from %s: %zd bytes, %zu kept", peer, n,
                   bufsize);
            n = (ssize_t)bufsize;
        }
        /* A datagram goes whole or not at all: no writen() loop. If the
         * sender has gone, nobody is told here (an ICMP error reaches
         * only a connected socket): the datagram is simply lost. */
        if (sendto(sockfd, buf, (size_t)n, 0, (struct sockaddr *)&from,
                   fromlen) == -1) {
            err_ret("sendto %s", peer);
            continue;
        }
        atomic_fetch_add(&totals->bytes, (unsigned long long)n);
    }
}

enum { OPT_NO_REUSEADDR = 256, OPT_UDP_BUFFER };

struct settings {
    bool reuseaddr; /* --no-reuseaddr clears it */
    bool udp;       /* -u */
    long udp_bufsize;
};

static int on_option(int key, const char *arg, void *ctx)
{
    struct settings *set = ctx;

    switch (key) {
    case OPT_NO_REUSEADDR:
        set->reuseaddr = false;
        return 0;
    case 'u':
        set->udp = true;
        return 0;
    case OPT_UDP_BUFFER:
        return parse_number(arg, 1, DATAGRAM_BUFSIZE, &set->udp_bufsize);
    default:
        return -1;
    }
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "01-basic-socket", "an iterative echo server, one client at a time",
        9001};
    static const struct lesson_option options[] = {
        {OPT_NO_REUSEADDR, "no-reuseaddr", NULL,
         "demonstration: bind without SO_REUSEADDR"},
        {'u', NULL, NULL, "UDP: echo each datagram to its sender"},
        {OPT_UDP_BUFFER, "udp-buffer", "N",
         "UDP: keep N bytes of each datagram (MSG_TRUNC)"},
        {0, NULL, NULL, NULL},
    };
    static struct served totals; /* read by the stop handler */
    struct net_options opt;
    struct settings set = {true, false, DATAGRAM_BUFSIZE};
    int listenfd, gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &set);
    if (set.udp)
        totals.counted = "datagrams";
    /* The stop, way (a) of common/signals.h: SIGINT or SIGTERM runs a
     * handler that prints the totals and exits, wherever the server is
     * asleep. Exit closes the sockets; the kernel tells the client. */
    stop_by_handler(&totals, NULL);
    if (set.udp) {
        /* listen_on()'s sequence, packaged, without listen(): no
         * connections to wait for (common/net.c). */
        int sockfd = udp_bind(opt.host, opt.port, &gai_err);
        if (sockfd == -1)
            err_listen(&opt, gai_err);
        log_listening(sockfd); /* "(udp, pid N)" */
        echo_datagrams(sockfd, (size_t)set.udp_bufsize, &totals);
    }
    listenfd = listen_on(opt.host, opt.port, set.reuseaddr);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(listenfd);

    for (;;) {
        struct sockaddr_storage cliaddr;
        socklen_t clilen = sizeof cliaddr;
        char peer[SOCK_NTOP_LEN];

        /* accept() with the way out of EMFILE (common/net.c): out of
         * descriptors, the waiting client is turned away, not served
         * later, and the server does not spin. */
        int connfd =
            accept_or_shed(listenfd, (struct sockaddr *)&cliaddr, &clilen);
        if (connfd == -1) {
            if (!accept_lost_client(errno))
                err_sys("accept");
            err_ret("accept: a client was lost"); /* take the next */
            continue;
        }
        sock_ntop((struct sockaddr *)&cliaddr, clilen, peer, sizeof peer);
        atomic_fetch_add(&totals.conns, 1);
        log_accepted(peer);
        log_closed(peer, echo(connfd, peer, &totals));
        close(connfd);
    }
}
