/* tests/tools/peer.c -- the clients the tests need that nc cannot be.
 *
 *   peer hold HOST PORT [MESSAGE]
 *       Connects and prints "connected LOCALPORT", sends MESSAGE (default
 *       "hello\n"), prints "echoed" once all of it came back, then keeps
 *       the connection open until the server closes it ("closed by server")
 *       or resets it ("reset by server"). Kill it to close it from our side.
 *   peer reset HOST PORT BYTES
 *       Connects, sends up to BYTES without blocking and without reading,
 *       waits until some echo has come back (so the server is mid-transfer),
 *       then closes with SO_LINGER {1, 0}: the kernel sends RST, not FIN.
 *   peer flood HOST PORT BYTES
 *       Connects and prints "connected LOCALPORT", then writes BYTES and
 *       never reads: the client that stops reading. Prints "sent BYTES"
 *       if the writes ever finish, then waits to be killed.
 *   peer crowd HOST PORT N
 *       Opens N connections at once (raising its own descriptor limit),
 *       prints "connected N", then in two rounds sends a message of its
 *       own on every connection still open and reads the echoes, printing
 *       "round R: E echoed, C closed, W wrong" (closed: the server ended
 *       the connection before echoing). It holds the connections until
 *       EOF on its stdin, then half-closes every one, waits for the server
 *       to close them all, and prints "done".
 *   peer churn HOST PORT N
 *       N connections one after the other: connect, send a line, read its
 *       echo, half-close, read the server's EOF, close. Prints "churned N".
 *   peer resets HOST PORT N
 *       N connections one after the other, each reset mid-transfer as in
 *       "reset" (256 KiB offered). Prints "reset N".
 *   peer trickle HOST PORT N
 *       Sends N bytes one write() each, waiting for each byte's echo
 *       before the next: a pause between bytes, and as many segments as
 *       bytes. Prints "trickled N".
 *   peer drip HOST PORT < MESSAGE
 *       Sends its stdin (up to 4 KiB), one byte per write() (TCP_NODELAY),
 *       each only once the server's kernel has acknowledged the one
 *       before: as many segments as bytes. Before the last byte it checks
 *       that nothing has come back ("nothing back before the last byte"),
 *       then reads the echo and prints "echoed whole N" if all N bytes
 *       came back unchanged: what a framing server does with a frame.
 *   peer nonblock COMMAND [ARG...]
 *       Sets O_NONBLOCK on its stdin, as a shell or a parent may leave it,
 *       and runs COMMAND with that stdin (the flag belongs to the open
 *       pipe, so COMMAND sees it too).
 *   peer halfclose HOST PORT BYTES
 *       Sends BYTES, reading the echo only when the socket will not take
 *       more, half-closes right after the last byte -- the server then
 *       still holds echo for us -- and reads the rest. Prints "echoed
 *       BYTES then EOF" if every byte came back, in order, then EOF.
 *
 * Each line printed is flushed at once: tests wait for them. Every mode
 * gives up after a minute (alarm), so a test can never hang on a peer.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"

enum { GIVE_UP_SECONDS = 60 };

static int connect_to(const char *host, const char *port)
{
    int gai_err;
    int fd = tcp_connect(host, port, &gai_err);

    if (fd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", host, gai_strerror(gai_err));
    if (fd == -1)
        err_sys("cannot connect to %s port %s", host, port);
    return fd;
}

/* Prints one line and flushes it: a test is waiting for it. */
static void say(const char *line)
{
    puts(line);
    fflush(stdout);
}

static int hold(const char *host, const char *port, const char *msg)
{
    int fd = connect_to(host, port);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char name[SOCK_NTOP_LEN], buf[4096];
    size_t n = strlen(msg);
    ssize_t got;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
        err_sys("getsockname");
    sock_ntop((struct sockaddr *)&ss, len, name, sizeof name);
    printf("connected %s\n", strrchr(name, ':') + 1);
    fflush(stdout);
    if (writen(fd, msg, n) == -1)
        err_sys("write");
    while (n > 0) {
        got = read(fd, buf, n < sizeof buf ? n : sizeof buf);
        if (got <= 0)
            err_quit("echo cut short");
        n -= (size_t)got;
    }
    say("echoed");
    got = read(fd, buf, sizeof buf);
    if (got == 0)
        say("closed by server");
    else if (got == -1 && errno == ECONNRESET)
        say("reset by server");
    else
        err_quit("unexpected %s", got > 0 ? "data" : "error");
    return 0;
}

/* Byte i of the streams that churn, trickle and halfclose send. */
static unsigned char stream_byte(long i)
{
    return (unsigned char)(i % 251);
}

static int reset(const char *host, const char *port, long bytes)
{
    int fd = connect_to(host, port);
    char buf[65536];
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    memset(buf, 'r', sizeof buf);
    while (bytes > 0) {
        size_t chunk = bytes < (long)sizeof buf ? (size_t)bytes : sizeof buf;
        ssize_t put = send(fd, buf, chunk, MSG_DONTWAIT);
        if (put == -1) {
            if (errno == EAGAIN)
                break; /* buffers full: the server is busy with us */
            err_sys("send");
        }
        bytes -= put;
    }
    /* Wait until the server has started echoing: then the reset lands in
     * the middle of its work, not before it began. */
    if (poll(&pfd, 1, 10 * 1000) == -1)
        err_sys("poll");
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == -1)
        err_sys("setsockopt SO_LINGER");
    close(fd);
    say("reset");
    return 0;
}

static int flood(const char *host, const char *port, long bytes)
{
    int fd = connect_to(host, port);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char name[SOCK_NTOP_LEN], buf[65536];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
        err_sys("getsockname");
    sock_ntop((struct sockaddr *)&ss, len, name, sizeof name);
    printf("connected %s\n", strrchr(name, ':') + 1);
    fflush(stdout);
    memset(buf, 'f', sizeof buf);
    for (long left = bytes; left > 0;) {
        size_t chunk = left < (long)sizeof buf ? (size_t)left : sizeof buf;
        ssize_t put = write(fd, buf, chunk);
        if (put == -1)
            err_sys("write");
        left -= put;
    }
    printf("sent %ld\n", bytes);
    fflush(stdout);
    pause();
    return 0;
}

/* One connection of the crowd: its message and how much came back. */
struct member {
    int fd;
    char msg[32];
    size_t len, got;
    enum { OPEN, CLOSED } state;
};

/* Sends every open member its message and reads the echoes back; prints
 * one line for the round. */
static void crowd_round(struct member *m, long n, int round)
{
    struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
    long echoed = 0, closed = 0, wrong = 0, waiting = 0;
    char buf[64];

    if (pfds == NULL)
        err_sys("calloc");
    for (long i = 0; i < n; i++) {
        pfds[i].fd = -1;
        if (m[i].state != OPEN)
            continue;
        m[i].len = (size_t)snprintf(m[i].msg, sizeof m[i].msg,
                                    "round %d member %ld\n", round, i);
        m[i].got = 0;
        if (writen(m[i].fd, m[i].msg, m[i].len) == -1) {
            m[i].state = CLOSED; /* reset by the server already */
            closed++;
            continue;
        }
        pfds[i] = (struct pollfd){.fd = m[i].fd, .events = POLLIN};
        waiting++;
    }
    while (waiting > 0) {
        if (poll(pfds, (nfds_t)n, -1) == -1)
            err_sys("poll");
        for (long i = 0; i < n; i++) {
            if (pfds[i].fd == -1 || pfds[i].revents == 0)
                continue;
            ssize_t got = read(m[i].fd, buf, m[i].len - m[i].got);
            if (got <= 0) {
                m[i].state = CLOSED;
                closed++;
            } else if (memcmp(buf, m[i].msg + m[i].got, (size_t)got) != 0) {
                m[i].state = CLOSED;
                wrong++;
            } else if ((m[i].got += (size_t)got) < m[i].len) {
                continue;
            } else {
                echoed++;
            }
            pfds[i].fd = -1;
            waiting--;
        }
    }
    printf("round %d: %ld echoed, %ld closed, %ld wrong\n", round, echoed,
           closed, wrong);
    fflush(stdout);
    free(pfds);
}

static int crowd(const char *host, const char *port, long n)
{
    struct member *m = calloc((size_t)n, sizeof *m);
    struct rlimit rl;
    char buf[64];

    if (m == NULL)
        err_sys("calloc");
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        err_sys("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        err_sys("setrlimit");
    for (long i = 0; i < n; i++)
        m[i].fd = connect_to(host, port);
    printf("connected %ld\n", n);
    fflush(stdout);
    crowd_round(m, n, 1);
    crowd_round(m, n, 2);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0)
        ;
    /* Half-close, and read until the server's close: it must echo what
     * it holds, then close. (Our FIN goes first, so TIME_WAIT lands on
     * our ports; Linux reuses them for new connections on loopback.) */
    for (long i = 0; i < n; i++) {
        if (m[i].state == OPEN && shutdown(m[i].fd, SHUT_WR) == -1)
            err_sys("shutdown");
        while (m[i].state == OPEN && read(m[i].fd, buf, sizeof buf) > 0)
            ;
        close(m[i].fd);
    }
    say("done");
    free(m);
    return 0;
}

static int churn(const char *host, const char *port, long n)
{
    char msg[64], buf[64];

    for (long i = 0; i < n; i++) {
        int fd = connect_to(host, port);
        size_t len = (size_t)snprintf(msg, sizeof msg, "churn %ld\n", i);
        if (writen(fd, msg, len) == -1)
            err_sys("connection %ld: write", i);
        if (readn(fd, buf, len) != (ssize_t)len || memcmp(buf, msg, len) != 0)
            err_quit("connection %ld: wrong echo", i);
        if (shutdown(fd, SHUT_WR) == -1)
            err_sys("shutdown");
        if (read(fd, buf, sizeof buf) != 0)
            err_quit("connection %ld: no EOF after the echo", i);
        close(fd);
    }
    printf("churned %ld\n", n);
    return 0;
}

static int resets(const char *host, const char *port, long n)
{
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == -1)
            err_sys("fork");
        if (pid == 0) {
            /* reset() prints a line: keep it out of our stdout. */
            if (freopen("/dev/null", "w", stdout) == NULL)
                err_sys("freopen");
            exit(reset(host, port, 256 * 1024));
        }
        int status;
        if (waitpid(pid, &status, 0) == -1 || status != 0)
            err_quit("reset %ld failed", i);
    }
    printf("reset %ld\n", n);
    return 0;
}

static int trickle(const char *host, const char *port, long n)
{
    int fd = connect_to(host, port);
    const int on = 1;

    /* Nagle would hold our bytes back until the previous one is acked. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == -1)
        err_sys("setsockopt TCP_NODELAY");
    for (long i = 0; i < n; i++) {
        unsigned char b = stream_byte(i), back;
        if (write(fd, &b, 1) != 1)
            err_sys("write");
        if (read(fd, &back, 1) != 1 || back != b)
            err_quit("byte %ld: wrong or missing echo", i);
    }
    printf("trickled %ld\n", n);
    return 0;
}

/* Sleeps until the kernel has every byte written to fd acknowledged. */
static void wait_acked(int fd)
{
    int outq;

    for (;;) {
        if (ioctl(fd, SIOCOUTQ, &outq) == -1)
            err_sys("ioctl SIOCOUTQ");
        if (outq == 0)
            return;
        /* How often we look; the event is the ACK. */
        if (poll(NULL, 0, 1) == -1 && errno != EINTR)
            err_sys("poll");
    }
}

static int drip(const char *host, const char *port)
{
    char msg[4096], back[4096];
    ssize_t n = readn(STDIN_FILENO, msg, sizeof msg);
    int fd = connect_to(host, port);
    const int on = 1;

    if (n <= 0)
        err_quit("drip: nothing on stdin");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == -1)
        err_sys("setsockopt TCP_NODELAY");
    for (ssize_t i = 0; i < n; i++) {
        if (i == n - 1) {
            if (recv(fd, back, 1, MSG_PEEK | MSG_DONTWAIT) != -1 ||
                errno != EAGAIN)
                err_quit("drip: an echo came back before the last byte");
            say("nothing back before the last byte");
        }
        if (write(fd, msg + i, 1) != 1)
            err_sys("write");
        wait_acked(fd);
    }
    if (readn(fd, back, (size_t)n) != n || memcmp(back, msg, (size_t)n) != 0)
        err_quit("drip: the echo is not the message");
    printf("echoed whole %zd\n", n);
    return 0;
}

/* Checks and counts what the server echoed; false at EOF. */
static bool take_echo(int fd, long *got)
{
    unsigned char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

    if (n == -1 && errno == EAGAIN)
        return true;
    if (n == -1)
        err_sys("read");
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != stream_byte(*got + i))
            err_quit("byte %ld of the echo is wrong", *got + i);
    *got += n;
    return n > 0;
}

static int halfclose(const char *host, const char *port, long bytes)
{
    int fd = connect_to(host, port);
    unsigned char buf[65536];
    struct pollfd pfd = {.fd = fd};
    long sent = 0, got = 0;

    while (sent < bytes) {
        size_t chunk = 0;
        while (chunk < sizeof buf && sent + (long)chunk < bytes) {
            buf[chunk] = stream_byte(sent + (long)chunk);
            chunk++;
        }
        ssize_t put = send(fd, buf, chunk, MSG_DONTWAIT);
        if (put == -1 && errno != EAGAIN)
            err_sys("send");
        if (put > 0) {
            sent += put;
            continue;
        }
        /* Full: let the echo flow, or the server stops reading us. */
        pfd.events = POLLIN | POLLOUT;
        if (poll(&pfd, 1, -1) == -1)
            err_sys("poll");
        if ((pfd.revents & POLLIN) && !take_echo(fd, &got))
            err_quit("EOF after %ld of %ld bytes sent", got, sent);
    }
    if (shutdown(fd, SHUT_WR) == -1)
        err_sys("shutdown");
    pfd.events = POLLIN;
    do {
        if (poll(&pfd, 1, -1) == -1)
            err_sys("poll");
    } while (take_echo(fd, &got));
    if (got != bytes)
        err_quit("echo cut short: %ld of %ld bytes, then EOF", got, bytes);
    printf("echoed %ld then EOF\n", bytes);
    return 0;
}

static int nonblock_exec(char **argv)
{
    if (set_nonblocking(STDIN_FILENO) == -1)
        err_sys("fcntl O_NONBLOCK on stdin");
    alarm(0); /* the alarm would outlive exec() */
    execvp(argv[0], argv);
    err_sys("exec %s", argv[0]);
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: peer hold HOST PORT [MESSAGE]\n"
                    "       peer reset HOST PORT BYTES\n"
                    "       peer flood HOST PORT BYTES\n"
                    "       peer crowd HOST PORT N\n"
                    "       peer churn HOST PORT N\n"
                    "       peer resets HOST PORT N\n"
                    "       peer trickle HOST PORT N\n"
                    "       peer drip HOST PORT < MESSAGE\n"
                    "       peer halfclose HOST PORT BYTES\n"
                    "       peer nonblock COMMAND [ARG...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long bytes;

    alarm(GIVE_UP_SECONDS);
    if (argc >= 3 && strcmp(argv[1], "nonblock") == 0)
        return nonblock_exec(argv + 2);
    if (argc == 4 && strcmp(argv[1], "drip") == 0)
        return drip(argv[2], argv[3]);
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "hold") == 0)
        return hold(argv[2], argv[3], argc == 5 ? argv[4] : "hello\n");
    if (argc != 5 || parse_number(argv[4], 1, 1L << 30, &bytes) == -1)
        usage();
    if (strcmp(argv[1], "reset") == 0)
        return reset(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "flood") == 0)
        return flood(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "crowd") == 0)
        return crowd(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "churn") == 0)
        return churn(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "resets") == 0)
        return resets(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "trickle") == 0)
        return trickle(argv[2], argv[3], bytes);
    if (strcmp(argv[1], "halfclose") == 0)
        return halfclose(argv[2], argv[3], bytes);
    usage();
}
