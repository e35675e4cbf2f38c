/* 09-leader-follower/client.c -- two threads, each with one direction.
 *
 * Model:   a sender thread copies stdin to the socket with blocking
 *          writes and half-closes (shutdown SHUT_WR) at stdin's EOF; the
 *          main thread copies the echo to stdout until the server closes.
 *          Each thread owns one direction, so unlike the server's threads
 *          they never take turns, and the socket is busy both ways at once
 *          (03's client has the same shape).
 * Cost:    a second thread. Only main() reports: the sender leaves its
 *          outcome in its struct, so a failure makes exactly one line.
 * Observe: strace -f -e trace=read,write,shutdown ./09-leader-follower/client
 *            stdin's reads and the socket's writes on one thread id, the
 *            socket's reads and stdout's writes on the other.
 * See also: 03-pthread-pool/client.c (the same two threads),
 *           06-epoll-lt-et/client.c (one thread and epoll).
 *
 * Run it:  ./09-leader-follower/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { BUFSIZE = 65536 };

/* The sender's outcome. sent, err and call are written by the sender and
 * published by its store to done; main() reads them only after loading a
 * done other than RUNNING. */
enum { RUNNING, FINISHED, BROKEN };
struct upstream {
    int sockfd;
    unsigned long long sent;
    int err;          /* errno of the failed call, when BROKEN */
    const char *call; /* that call, for main()'s line */
    atomic_int done;
};

/* Records a failure. shutdown(SHUT_RDWR) makes main()'s read() return 0
 * at once, and main() then finds BROKEN. */
static void *upstream_broken(struct upstream *up, const char *call)
{
    up->err = errno;
    up->call = call;
    atomic_store(&up->done, BROKEN);
    shutdown(up->sockfd, SHUT_RDWR);
    return NULL;
}

/* The sender thread: stdin to the socket, then the half-close. */
static void *upstream_main(void *arg)
{
    struct upstream *up = arg;
    char buf[BUFSIZE];

    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0)
            break;
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return upstream_broken(up, "read from stdin");
        if (writen(up->sockfd, buf, (size_t)n) == -1)
            return upstream_broken(up, "write to server");
        up->sent += (unsigned long long)n;
    }
    /* FINISHED is published before the FIN leaves: the server's close,
     * which main() reads as EOF, can only follow the FIN. */
    atomic_store(&up->done, FINISHED);
    shutdown(up->sockfd, SHUT_WR);
    return NULL;
}

/* Copies the echo to stdout until EOF. Returns the bytes received, or -1
 * with errno set and *call naming what failed. */
static long long downstream(int sockfd, const char **call)
{
    char buf[BUFSIZE];
    long long received = 0;

    for (;;) {
        ssize_t n = read(sockfd, buf, sizeof buf);
        if (n == 0)
            return received;
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            *call = "read from server";
            return -1;
        }
        if (writen(STDOUT_FILENO, buf, (size_t)n) == -1) {
            *call = "write to stdout";
            return -1;
        }
        received += n;
    }
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "09-leader-follower",
        "an echo client: a thread to send, a thread to receive", 9009};
    struct net_options opt;
    struct upstream up = {.sockfd = -1};
    char where[HOST_PORT_LEN];
    const char *call = NULL;
    long long received;
    pthread_t tid;
    int gai_err, rc, done, saved;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    up.sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (up.sockfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (up.sockfd == -1)
        err_sys("cannot connect to %s",
                host_port(opt.host, opt.port, where, sizeof where));

    atomic_init(&up.done, RUNNING);
    rc = pthread_create(&tid, NULL, upstream_main, &up);
    if (rc != 0) {
        errno = rc; /* pthread functions return the error number */
        err_sys("pthread_create");
    }
    received = downstream(up.sockfd, &call);
    saved = errno;

    /* A sender still RUNNING may be blocked on stdin for good (the server
     * closed early): detach it, and exit() ends it. One that is done is
     * joined. Either way no finished thread is left unjoined. */
    done = atomic_load(&up.done);
    if (done == RUNNING)
        pthread_detach(tid);
    else
        pthread_join(tid, NULL);

    if (received == -1) {
        errno = saved;
        err_sys("%s", call);
    }
    if (done == BROKEN) {
        errno = up.err;
        err_sys("%s", up.call);
    }
    if (done == RUNNING || (unsigned long long)received < up.sent)
        err_quit("server closed the connection: echo cut short");
    if ((unsigned long long)received > up.sent)
        err_quit("server sent bytes that were never sent to it");
    close(up.sockfd);
    return 0;
}
