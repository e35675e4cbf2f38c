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
 *           does the same with one thread and select(); common/relay.h
 *           for the report every client shares.
 *
 * Run it:  ./03-pthread-pool/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

enum { SENDING, SENT, FAILED };

/* The sender's side. It writes st, then publishes it by storing state;
 * main() reads st only after it has loaded a state other than SENDING, so
 * the atomic store orders them for it. */
struct sender {
    int sockfd;
    struct relay_status st; /* sent, and what failed */
    atomic_int state;
};

/* The sender thread: stdin to the socket, then the half-close. */
static void *sender_main(void *arg)
{
    struct sender *s = arg;

    /* relay_send() waits where stdin is non-blocking (set so by the
     * shell), and fails at once where it cannot be read (a directory). */
    if (relay_send(STDIN_FILENO, s->sockfd, &s->st) == -1) {
        /* Wake main(): after shutdown(SHUT_RDWR) its read() on the socket
         * returns 0 at once, and it finds FAILED. */
        atomic_store(&s->state, FAILED);
        shutdown(s->sockfd, SHUT_RDWR);
        return NULL;
    }
    /* Publish SENT before the FIN leaves: the server's close, which main()
     * sees as EOF, can only follow our FIN, so main() then finds SENT. If
     * shutdown() fails, the connection is broken, and main()'s read() says
     * so. */
    atomic_store(&s->state, SENT);
    shutdown(s->sockfd, SHUT_WR);
    return NULL;
}

/* Lets the sender go, once the echo has ended, and returns the state it
 * was found in. A sender that has finished is joined. One still SENDING
 * may be blocked on stdin for good (the server closed early): it is
 * detached instead, and exit() will end it. Either way no thread is left
 * finished and unjoined, its stack held until someone joins it. */
static int release_sender(struct sender *s, pthread_t tid)
{
    int state = atomic_load(&s->state);

    if (state == SENDING)
        pthread_detach(tid);
    else
        pthread_join(tid, NULL);
    return state;
}

/* The client's relay, in two threads: the sender sends, we receive.
 * Returns 0, or -1 with st saying what failed, as relay() does: our own
 * failure first, then the sender's, then the counts. */
static int relay_threads(int sockfd, struct relay_status *st)
{
    struct sender s = {.sockfd = sockfd};
    pthread_t tid;
    int rc, state;

    atomic_init(&s.state, SENDING);
    rc = pthread_create(&tid, NULL, sender_main, &s);
    if (rc != 0) {
        errno = rc; /* pthread functions return the error number */
        err_sys("pthread_create");
    }
    relay_receive(sockfd, STDOUT_FILENO, st);
    state = release_sender(&s, tid);
    if (st->failed != RELAY_OK)
        return -1;
    if (state == FAILED) {
        *st = (struct relay_status){s.st.sent, st->received, s.st.failed,
                                    s.st.err};
        return -1;
    }
    if (state == SENDING) {
        st->failed = RELAY_CUT_SHORT; /* closed before our input ended */
        return -1;
    }
    st->sent = s.st.sent;
    return relay_check_echo(st);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "03-pthread-pool",
        "a two-thread echo client: stdin to stdout, both ways at once", 9003};
    struct net_options opt;
    struct relay_status st = {0};
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (relay_threads(sockfd, &st) == -1)
        err_relay(&st);
    return 0;
}
