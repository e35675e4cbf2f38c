/* 03-pthread-pool/client.c -- two threads: one sends, one receives.
 *
 * Model:   a sender thread copies stdin to the socket and half-closes it
 *          (shutdown SHUT_WR) at EOF; the main thread copies the echo to
 *          stdout until the server closes. Neither waits for the other, so
 *          the link stays busy both ways, unlike lesson 01's stop-and-wait.
 * Cost:    a second thread and its stack. Both threads end the program
 *          only through main(): the sender never prints, it leaves its
 *          outcome for main(), so an error makes exactly one line.
 * Observe: strace -f -e trace=read,write,shutdown ./03-pthread-pool/client
 *            reads of stdin and writes to the socket on one thread id,
 *            reads of the socket and writes to stdout on the other.
 * See also: 01-basic-socket/client.c (stop-and-wait); lesson 04's client
 *           does the same with one thread and select().
 *
 * Run it:  ./03-pthread-pool/client < /etc/services | cmp - /etc/services
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

enum { BUFSIZE = 16384 };

enum { SENDING, SENT, FAILED };

/* The sender's side. It writes sent, err and what, then publishes them by
 * storing state; main() reads them only after it has loaded a state other
 * than SENDING, so the atomic store orders them for it. */
struct sender {
    int sockfd;
    unsigned long long sent; /* bytes written to the socket */
    int err;                 /* errno of the failed call, when FAILED */
    const char *what;        /* that call, for main()'s message */
    atomic_int state;
};

/* Records a failure and wakes main(): after shutdown(SHUT_RDWR) its read()
 * on the socket returns 0 at once, and it finds FAILED. */
static void *sender_failed(struct sender *s, const char *what)
{
    s->err = errno;
    s->what = what;
    atomic_store(&s->state, FAILED);
    shutdown(s->sockfd, SHUT_RDWR);
    return NULL;
}

/* The sender thread: stdin to the socket, then the half-close. */
static void *sender_main(void *arg)
{
    struct sender *s = arg;
    char buf[BUFSIZE];
    ssize_t n;

    while ((n = read(STDIN_FILENO, buf, sizeof buf)) != 0) {
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return sender_failed(s, "read from stdin");
        if (writen(s->sockfd, buf, (size_t)n) == -1)
            return sender_failed(s, "write to server");
        s->sent += (unsigned long long)n;
    }
    /* Publish SENT before the FIN leaves: the server's close, which main()
     * sees as EOF, can only follow our FIN, so main() then finds SENT. If
     * shutdown() fails, the connection is broken, and main()'s read() says
     * so. */
    atomic_store(&s->state, SENT);
    shutdown(s->sockfd, SHUT_WR);
    return NULL;
}

/* Copies the echo to stdout until the server closes. Returns the number of
 * bytes received, or -1 with errno set and *what naming the failed call. */
static long long receive(int sockfd, const char **what)
{
    char buf[BUFSIZE];
    long long received = 0;
    ssize_t n;

    while ((n = read(sockfd, buf, sizeof buf)) != 0) {
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            *what = "read from server";
            return -1;
        }
        if (writen(STDOUT_FILENO, buf, (size_t)n) == -1) {
            *what = "write to stdout";
            return -1;
        }
        received += n;
    }
    return received;
}

/* Lets the sender go, once the echo has ended, and returns the state it
 * was found in. A sender that has finished is joined. One still SENDING
 * may be blocked on stdin for good (the server closed early): it is
 * detached instead, and exit() will end it. Either way no thread is left
 * finished and unjoined, which ThreadSanitizer reports as a leak. */
static int release_sender(struct sender *s, pthread_t tid)
{
    int state = atomic_load(&s->state);

    if (state == SENDING)
        pthread_detach(tid);
    else
        pthread_join(tid, NULL);
    return state;
}

/* Decides whether the run succeeded; if not, exits with one line. */
static void check_outcome(const struct sender *s, int state, long long received)
{
    if (state == FAILED) {
        errno = s->err;
        err_sys("%s", s->what);
    }
    if (state == SENDING || (unsigned long long)received < s->sent)
        err_quit("server closed the connection: echo cut short");
    if ((unsigned long long)received > s->sent)
        err_quit("server sent bytes that were never sent to it");
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "03-pthread-pool",
        "a two-thread echo client: stdin to stdout, both ways at once", 9003};
    struct net_options opt;
    struct sender s = {.sockfd = -1};
    char where[HOST_PORT_LEN];
    const char *what = NULL;
    long long received;
    pthread_t tid;
    int gai_err, rc, state, saved;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */

    s.sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (s.sockfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (s.sockfd == -1)
        err_sys("cannot connect to %s",
                host_port(opt.host, opt.port, where, sizeof where));

    atomic_init(&s.state, SENDING);
    rc = pthread_create(&tid, NULL, sender_main, &s);
    if (rc != 0) {
        errno = rc; /* pthread functions return the error number */
        err_sys("pthread_create");
    }

    /* Only this thread reports: whatever failed, one line, then exit. */
    received = receive(s.sockfd, &what);
    saved = errno;
    state = release_sender(&s, tid);
    if (received == -1) {
        errno = saved;
        err_sys("%s", what);
    }
    check_outcome(&s, state, received);
    close(s.sockfd);
    return 0;
}
