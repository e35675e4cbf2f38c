/* 02-fork-server/client.c -- two processes: one sends, the other receives.
 *
 * Model:   connect, then fork(). The child copies stdin to the socket and
 *          half-closes (shutdown SHUT_WR) at EOF; the parent copies the
 *          socket to stdout until the server closes. Each blocks in its
 *          own read(), so sending never waits for the echo: no round trip
 *          per line as in 01's stop-and-wait client.
 * Cost:    two processes and a pipe per client. The two must agree on the
 *          end: the parent learns from the child, through the pipe, how
 *          many bytes were sent, and alone decides the exit status and
 *          prints the one error line. They are still one job: a signal
 *          to the parent's pid ends the child too (on_stop_signal()).
 * Observe: strace -f -e trace=read,write,shutdown,kill,wait4 \
 *                 ./02-fork-server/client < /etc/hostname
 *            the child's read(0) and write(3), its shutdown(3, SHUT_WR)
 *            and its report write(5); the parent's read(3) and write(1),
 *            then kill(child, SIGTERM), read(4) and wait4.
 * See also: str_cli with fork() in Stevens' UNP (nonblock/strclifork.c);
 *           04-select's client, which does the same in one process;
 *           common/relay.h for the report every client shares.
 *
 * Run it:  ./02-fork-server/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h> /* sigabbrev_np */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

/* The signals that end the client. */
static const int stop_signals[] = {SIGHUP, SIGINT, SIGTERM};

/* The sending child, for on_stop_signal(); 0 in the child itself. */
static volatile sig_atomic_t sender_pid;

/* A stop signal for the client: one job, so all of it ends. The parent
 * kills the sender and reaps it (no zombie, whoever our own parent is),
 * then dies of the same signal, as a shell expects of a job it stopped.
 * kill(), waitpid() and raise() are async-signal-safe. SA_RESETHAND has
 * put back the default action, and SA_NODEFER leaves the signal
 * unblocked, so raise() ends us at once. */
static void on_stop_signal(int sig)
{
    if (sender_pid > 0) {
        kill(sender_pid, SIGKILL);
        waitpid(sender_pid, NULL, 0);
    }
    raise(sig);
}

/* Installs on_stop_signal() for the stop signals we were not started with
 * ignored (nohup, a background job's SIGINT: keep them ignored, as a
 * one-process client does), with all three blocked until sender_pid is
 * set: *blocked receives the mask to restore. */
static void catch_stop_signals(sigset_t *blocked)
{
    struct sigaction sa = {0}, old;
    sigset_t all;

    sigemptyset(&all);
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
        sigaddset(&all, stop_signals[i]);
    sa.sa_handler = on_stop_signal;
    sa.sa_mask = all;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigprocmask(SIG_BLOCK, &all, blocked);
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++) {
        if (sigaction(stop_signals[i], NULL, &old) == 0 &&
            old.sa_handler != SIG_IGN &&
            sigaction(stop_signals[i], &sa, NULL) == -1)
            err_sys("sigaction");
    }
}

/* The child: stdin to the socket, then shutdown(SHUT_WR), then its status
 * (sent, and what failed) through the pipe: 24 bytes, below PIPE_BUF, so
 * the parent reads all of it or nothing (EOF: the child died first). It
 * prints nothing: two processes must not both explain one failure. */
static _Noreturn void send_all(int sockfd, int reportfd, pid_t parent)
{
    struct relay_status st = {0};
    struct sigaction sa = {0};
    sigset_t term;

    /* The parent stops us with SIGTERM when the connection ends before our
     * input does: it must kill, whatever disposition we inherited. */
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL); /* cannot fail: a valid signal */
    /* A SIGKILL to the parent runs no handler: the kernel sends us this
     * one then. If the parent is gone already, so are we. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
        _exit(1);

    /* relay_send() waits where stdin is non-blocking (set so by the
     * shell), and fails at once where it cannot be read (a directory). */
    relay_send(STDIN_FILENO, sockfd, &st);

    /* From here on SIGTERM waits: the server closes only after our FIN,
     * and the parent, seeing that, sends SIGTERM at once; it must find
     * the report, not a child killed between its FIN and its report. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    /* shutdown(), not close(): the parent holds the same socket, so close()
     * would only drop our reference, and send no FIN. */
    if (st.failed == RELAY_OK && shutdown(sockfd, SHUT_WR) == -1)
        relay_fail(&st, RELAY_SHUTDOWN);
    /* After a failure, both directions: the parent's read() returns 0 at
     * once, instead of waiting for a server that waits for our input. */
    if (st.failed != RELAY_OK)
        shutdown(sockfd, SHUT_RDWR);
    if (writen(reportfd, &st, sizeof st) == -1)
        _exit(1); /* the parent has gone: nobody is left to tell */
    _exit(st.failed == RELAY_OK ? 0 : 1);
}

/* After the connection has ended: stops the child if it is still sending,
 * then collects its status and its exit status. Returns true if the child
 * reported; if not, *status says how it died. */
static bool finish_child(pid_t pid, int reportfd, struct relay_status *sent,
                         int *status)
{
    ssize_t got;

    /* Normally the child has reported and exited already, or is about to
     * with SIGTERM blocked. If it is still in its copy loop, the server
     * closed before our input was all sent: nobody will read the rest. */
    kill(pid, SIGTERM);
    got = readn(reportfd, sent, sizeof *sent);
    if (waitpid(pid, status, 0) == -1)
        err_sys("waitpid");
    sender_pid = 0;
    return got == (ssize_t)sizeof *sent;
}

/* The two halves' outcome as one status: the parent's own failure first,
 * then the child's, then the counts. Exits 1 with one line if the child
 * died before reporting. Returns 0, or -1 with st saying what failed. */
static int merge(struct relay_status *st, bool reported, int status,
                 const struct relay_status *sent)
{
    if (st->failed != RELAY_OK)
        return -1;
    if (!reported && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) {
        st->failed = RELAY_CUT_SHORT; /* stopped while it still sent */
        return -1;
    }
    if (!reported && WIFSIGNALED(status))
        err_quit("sending process killed by SIG%s",
                 sigabbrev_np(WTERMSIG(status)));
    if (!reported)
        err_quit("sending process exited %d without a report",
                 WEXITSTATUS(status));
    st->sent = sent->sent;
    if (sent->failed != RELAY_OK) {
        st->failed = sent->failed;
        st->err = sent->err;
        return -1;
    }
    return relay_check_echo(st);
}

/* The client's relay, in two processes: a child sends, we receive.
 * Returns 0, or -1 with st saying what failed, as relay() does. */
static int relay_forked(int sockfd, struct relay_status *st)
{
    struct relay_status sent;
    sigset_t blocked;
    int fds[2], status;
    bool reported;
    pid_t pid, parent = getpid();

    if (pipe2(fds, O_CLOEXEC) == -1)
        err_sys("pipe");
    catch_stop_signals(&blocked);
    pid = fork();
    if (pid == -1)
        err_sys("fork");
    if (pid == 0) {
        close(fds[0]);
        sigprocmask(SIG_SETMASK, &blocked, NULL);
        send_all(sockfd, fds[1], parent);
    }
    sender_pid = pid;
    sigprocmask(SIG_SETMASK, &blocked, NULL);
    /* Our copy of the write end must go, or the pipe would never reach EOF
     * for us if the child died without a report. */
    close(fds[1]);

    relay_receive(sockfd, STDOUT_FILENO, st);
    reported = finish_child(pid, fds[0], &sent, &status);
    return merge(st, reported, status, &sent);
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "02-fork-server", "a two-process echo client: stdin to stdout", 9002};
    struct net_options opt;
    struct relay_status st = {0};
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server or reader that vanishes is an error */
    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (relay_forked(sockfd, &st) == -1)
        err_relay(&st);
    return 0;
}
