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
 *          prints the one error line.
 * Observe: strace -f -e trace=read,write,shutdown,kill,wait4 \
 *                 ./02-fork-server/client < /etc/hostname
 *            the child's read(0) and write(3), its shutdown(3, SHUT_WR)
 *            and its report write(5); the parent's read(3) and write(1),
 *            then kill(child, SIGTERM), read(4) and wait4.
 * See also: str_cli with fork() in Stevens' UNP (nonblock/strclifork.c);
 *           04-select's client, which does the same in one process.
 *
 * Run it:  ./02-fork-server/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h> /* sigabbrev_np */
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { COPY_BUFSIZE = 16384 };

/* What the sending child tells the parent through the pipe, once, after
 * it has half-closed. 16 bytes: a write below PIPE_BUF is never split, so
 * the parent reads all of it or nothing (EOF: the child died first). */
struct report {
    unsigned long long sent; /* bytes written to the socket */
    int err;                 /* errno of the call that failed, or 0 */
    int what;                /* which call: enum step */
};

enum step { STEP_NONE, STEP_READ_STDIN, STEP_WRITE_SERVER, STEP_SHUTDOWN };

static const char *const step_name[] = {"", "read from stdin",
                                        "write to server", "shutdown"};

/* The child: stdin to the socket, then shutdown(SHUT_WR), then the report.
 * It prints nothing: two processes must not both explain one failure. */
static _Noreturn void send_all(int sockfd, int reportfd)
{
    struct report r = {0, 0, STEP_NONE};
    char buf[COPY_BUFSIZE];
    struct sigaction sa = {0};
    sigset_t term;
    ssize_t n;

    /* The parent stops us with SIGTERM when the connection ends before our
     * input does: it must kill, whatever disposition we inherited. */
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL); /* cannot fail: a valid signal */

    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
        if (writen(sockfd, buf, (size_t)n) == -1) {
            r = (struct report){r.sent, errno, STEP_WRITE_SERVER};
            break;
        }
        r.sent += (unsigned long long)n;
    }
    if (n == -1)
        r = (struct report){r.sent, errno, STEP_READ_STDIN};

    /* From here on SIGTERM waits: the server closes only after our FIN,
     * and the parent, seeing that, sends SIGTERM at once; it must find
     * the report, not a child killed between its FIN and its report. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    /* shutdown(), not close(): the parent holds the same socket, so close()
     * would only drop our reference, and send no FIN. */
    if (r.err == 0 && shutdown(sockfd, SHUT_WR) == -1)
        r = (struct report){r.sent, errno, STEP_SHUTDOWN};
    if (writen(reportfd, &r, sizeof r) == -1)
        _exit(1); /* the parent has gone: nobody is left to tell */
    _exit(r.err == 0 ? 0 : 1);
}

/* The parent's half: the socket to stdout until EOF. Returns the bytes
 * copied; on failure sets *what to the call that failed (errno is its). */
static unsigned long long receive_all(int sockfd, const char **what)
{
    char buf[COPY_BUFSIZE];
    unsigned long long received = 0;
    ssize_t n;

    *what = NULL;
    while ((n = read(sockfd, buf, sizeof buf)) > 0) {
        if (writen(STDOUT_FILENO, buf, (size_t)n) == -1) {
            *what = "write to stdout";
            return received;
        }
        received += (unsigned long long)n;
    }
    if (n == -1)
        *what = "read from server";
    return received;
}

/* After the connection has ended: stops the child if it is still sending,
 * then collects its report and its exit status. Returns true if the child
 * reported; if not, *status says how it died. */
static bool finish_child(pid_t pid, int reportfd, struct report *r, int *status)
{
    ssize_t got;

    /* Normally the child has reported and exited already, or is about to
     * with SIGTERM blocked. If it is still in its copy loop, the server
     * closed before our input was all sent: nobody will read the rest. */
    kill(pid, SIGTERM);
    got = readn(reportfd, r, sizeof *r);
    if (waitpid(pid, status, 0) == -1)
        err_sys("waitpid");
    return got == (ssize_t)sizeof *r;
}

/* Exits 1 with one line if the child died before reporting. */
static void check_child_reported(bool reported, int status)
{
    if (reported)
        return;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
        err_quit("server closed the connection: echo cut short");
    if (WIFSIGNALED(status))
        err_quit("sending process killed by SIG%s",
                 sigabbrev_np(WTERMSIG(status)));
    err_quit("sending process exited %d without a report", WEXITSTATUS(status));
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "02-fork-server", "a two-process echo client: stdin to stdout", 9002};
    struct net_options opt;
    struct report r;
    char where[HOST_PORT_LEN];
    const char *what;
    unsigned long long received;
    int sockfd, gai_err, fds[2], status, saved;
    bool reported;
    pid_t pid;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server or reader that vanishes is an error */

    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt.host, gai_strerror(gai_err));
    if (sockfd == -1)
        err_sys("cannot connect to %s",
                host_port(opt.host, opt.port, where, sizeof where));
    if (pipe2(fds, O_CLOEXEC) == -1)
        err_sys("pipe");

    pid = fork();
    if (pid == -1)
        err_sys("fork");
    if (pid == 0) {
        close(fds[0]);
        send_all(sockfd, fds[1]);
    }
    /* Our copy of the write end must go, or the pipe would never reach EOF
     * for us if the child died without a report. */
    close(fds[1]);

    received = receive_all(sockfd, &what);
    saved = errno;
    reported = finish_child(pid, fds[0], &r, &status);
    /* One line, from this process only, naming the first thing that went
     * wrong: our own read or write, then the child's. */
    errno = saved;
    if (what != NULL)
        err_sys("%s", what);
    check_child_reported(reported, status);
    if (r.err != 0) {
        errno = r.err;
        err_sys("%s", step_name[r.what]);
    }
    if (received < r.sent)
        err_quit("server closed the connection: echo cut short (%llu of "
                 "%llu bytes)",
                 received, r.sent);
    if (received > r.sent)
        err_quit("server sent bytes that were never sent to it");
    return 0;
}
