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
#include <sys/socket.h>
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

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: peer hold HOST PORT [MESSAGE]\n"
                    "       peer reset HOST PORT BYTES\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long bytes;

    alarm(GIVE_UP_SECONDS);
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "hold") == 0)
        return hold(argv[2], argv[3], argc == 5 ? argv[4] : "hello\n");
    if (argc == 5 && strcmp(argv[1], "reset") == 0) {
        if (parse_number(argv[4], 1, 1L << 30, &bytes) == -1)
            usage();
        return reset(argv[2], argv[3], bytes);
    }
    usage();
}
