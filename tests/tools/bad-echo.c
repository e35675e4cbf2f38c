/* tests/tools/bad-echo.c -- echo servers that misbehave on purpose, to
 * prove that bench/echo-bench notices.
 *
 *   bad-echo flip     echoes everything, but flips one bit of the 100th
 *                     byte of every connection
 *   bad-echo mute     accepts and reads, and never writes anything back
 *
 * It listens on 127.0.0.1, on a port the kernel chooses, and prints the
 * servers' usual line, "listening on 127.0.0.1:PORT (pid N)". One process,
 * one thread: poll() over every connection. It stops on SIGTERM (default
 * action), and gives up by itself after two minutes (alarm).
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "signals.h"

enum { MAX_CONNS = 4096, FLIP_AT = 99 };

struct peer {
    unsigned long long seen; /* bytes read so far */
};

int main(int argc, char **argv)
{
    static struct pollfd pfds[MAX_CONNS + 1];
    static struct peer peers[MAX_CONNS + 1];
    char buf[65536];
    int gai_err, n = 1;
    bool flip;

    if (argc != 2 ||
        (strcmp(argv[1], "flip") != 0 && strcmp(argv[1], "mute") != 0)) {
        fprintf(stderr, "usage: bad-echo flip|mute\n");
        return 2;
    }
    flip = strcmp(argv[1], "flip") == 0;
    alarm(120);
    sigpipe_ignore();
    pfds[0].fd = tcp_listen("127.0.0.1", "0", 1024, &gai_err);
    if (pfds[0].fd == -1)
        err_sys("cannot listen");
    pfds[0].events = POLLIN;
    log_listening(pfds[0].fd);

    for (;;) {
        if (poll(pfds, (nfds_t)n, -1) == -1)
            err_sys("poll");
        if ((pfds[0].revents & POLLIN) && n <= MAX_CONNS) {
            int fd = accept(pfds[0].fd, NULL, NULL);
            if (fd != -1) {
                pfds[n] = (struct pollfd){.fd = fd, .events = POLLIN};
                peers[n].seen = 0;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (pfds[i].revents == 0)
                continue;
            ssize_t got = read(pfds[i].fd, buf, sizeof buf);
            if (got <= 0) {
                close(pfds[i].fd);
                pfds[i] = pfds[--n];
                peers[i] = peers[n];
                i--;
                continue;
            }
            unsigned long long from = peers[i].seen;
            peers[i].seen += (unsigned long long)got;
            if (!flip)
                continue; /* mute: swallow it */
            if (from <= FLIP_AT && FLIP_AT < peers[i].seen)
                buf[FLIP_AT - from] ^= 1;
            /* Blocking: a test tool. A peer that has gone is seen by the
             * next read(). */
            (void)writen(pfds[i].fd, buf, (size_t)got);
        }
    }
}
