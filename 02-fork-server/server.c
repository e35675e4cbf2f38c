/* 02-fork-server/server.c -- one process per client: fork() after accept().
 *
 * Model:   the parent blocks in accept(); for each connection it forks a
 *          child, which blocks in read() on that connection alone. Clients
 *          no longer wait for each other. The parent closes its copy of the
 *          connected socket, the child its copy of the listener, and a
 *          SIGCHLD handler reaps every child that has finished.
 * Cost:    one process per client: a fork() per connection (page tables
 *          copied, memory shared copy-on-write: about 100 kB of private
 *          memory per child here), and a context switch whenever another
 *          client's data arrives. The process limits (ulimit -u, pid_max)
 *          bound the clients; the parent holds as many descriptors for
 *          a thousand clients as for one.
 * Observe: strace -f -e trace=accept4,clone,wait4,exit_group \
 *                 ./02-fork-server/server
 *            per client: accept4 in the parent, clone (glibc's fork()),
 *            exit_group in the child, wait4 in the parent's SIGCHLD handler;
 *          ps -o pid,stat,cmd --ppid PID   one child per connected client;
 *            with --no-reap, finished children stay there as Z <defunct>.
 * See also: 01-basic-socket (before), 03-pthread-pool (after), which
 *           serves clients from a fixed pool of threads instead.
 *
 * Run it:  ./02-fork-server/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9002
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

enum { LISTEN_BACKLOG = 128 };

/* Each child serves one connection with one buffer, on its own stack. */
enum { ECHO_BUFSIZE = 16384 };

/* The bytes echoed by all the children, in a page that fork() does not
 * copy: MAP_SHARED | MAP_ANONYMOUS memory stays shared between the parent
 * and every child it forks afterwards. A child adds to it after each
 * write, so the total is true at any moment, even for a child killed with
 * SIGKILL, and the parent reads it once at the end. Lock-free atomics
 * work across processes (they are address-free), which is why we check. */
struct shared_stats {
    atomic_ullong bytes_echoed;
};
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "atomics must work across fork");

/* The pids of the children not yet reaped, so that the parent can stop
 * them. The SIGCHLD handler removes a pid when it reaps it; main() adds
 * pids, grows the table and reads it. A handler may not touch data that
 * main() is halfway through changing, so main() blocks SIGCHLD around
 * every access (children_lock): the handler and main() never overlap,
 * which is what a mutex would give two threads. */
static struct {
    pid_t *pids;
    size_t n, cap;
} children;

static void children_lock(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, old);
}

static void children_unlock(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

/* Makes room for one more pid. Returns 0, or -1 with errno ENOMEM. Called
 * with SIGCHLD blocked. */
static int children_reserve(void)
{
    size_t cap = children.cap ? 2 * children.cap : 64;
    pid_t *p;

    if (children.n < children.cap)
        return 0;
    p = realloc(children.pids, cap * sizeof *p);
    if (p == NULL)
        return -1;
    children.pids = p;
    children.cap = cap;
    return 0;
}

/* Called from the SIGCHLD handler: no malloc, no stdio, nothing but
 * plain loads and stores. */
static void children_forget(pid_t pid)
{
    for (size_t i = 0; i < children.n; i++) {
        if (children.pids[i] == pid) {
            children.pids[i] = children.pids[--children.n];
            return;
        }
    }
}

/* SIGCHLD says "at least one child has changed state", not how many:
 * signals of one kind do not queue, so three children that exit together
 * may raise one SIGCHLD. Hence a loop that reaps until none is left, and
 * WNOHANG so that it returns instead of waiting for children still
 * running. waitpid() sets errno (ECHILD ends the loop), which the code the
 * signal interrupted may be about to read: save and restore it. */
static void on_sigchld(int signo)
{
    int saved = errno;
    pid_t pid;

    (void)signo;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        children_forget(pid);
    errno = saved;
}

/* SA_RESTART: accept() and read() interrupted by the handler are
 * restarted, not failed with EINTR. SA_NOCLDSTOP: no SIGCHLD when a child
 * is merely stopped (Ctrl-Z, a debugger); only exits interest us. */
static void reap_children_on_sigchld(void)
{
    struct sigaction sa = {0};

    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) == -1)
        err_sys("sigaction SIGCHLD");
}

/* Echoes connfd until the client half-closes or the connection fails, as
 * in 01, and adds every byte written to the shared total. Returns the
 * number of bytes echoed on this connection. */
static unsigned long long echo(int connfd, const char *peer,
                               struct shared_stats *stats)
{
    char buf[ECHO_BUFSIZE];
    unsigned long long total = 0;
    ssize_t n;

    while ((n = read(connfd, buf, sizeof buf)) > 0) {
        if (writen(connfd, buf, (size_t)n) == -1) {
            /* EPIPE or ECONNRESET: the client left without reading. With
             * SIGPIPE ignored (signals_init) this costs one child, not the
             * server. */
            if (!stop_requested())
                err_ret("write to %s", peer);
            return total;
        }
        total += (unsigned long long)n;
        atomic_fetch_add(&stats->bytes_echoed, (unsigned long long)n);
    }
    if (n == -1 && !stop_requested())
        err_ret("read from %s", peer);
    return total;
}

/* The child: serves one connection and exits; it never returns. It starts
 * with SIGINT, SIGTERM and SIGCHLD blocked (see spawn_child) and *old is
 * the mask to go back to. */
static _Noreturn void serve_child(int listenfd, int connfd, const char *peer,
                                  struct shared_stats *stats,
                                  const sigset_t *old)
{
    unsigned long long n = 0;

    /* The stop handler came with the fork, and so did its registrations.
     * A SIGTERM to this child would shutdown() the listener, and shutdown()
     * acts on the socket, which the parent shares: the parent would stop
     * accepting. So unregister it first (signals are still blocked), and
     * only then close our copy: the parent alone accepts. */
    stop_wake_fd(STOP_LISTEN, -1);
    close(listenfd);
    stop_wake_fd(STOP_CONN, connfd);
    /* A stop signal that arrived since fork() is delivered here, and shuts
     * down connfd; one that came before the fork set the flag we test. */
    sigprocmask(SIG_SETMASK, old, NULL);
    if (!stop_requested())
        n = echo(connfd, peer, stats);
    stop_wake_fd(STOP_CONN, -1);
    close(connfd);
    log_closed(peer, n);
    /* _exit(), not exit(): atexit handlers and stdio buffers belong to the
     * parent's life, and must not run twice. */
    _exit(0);
}

/* Forks a child to serve connfd. Returns its pid, or -1 with errno set
 * (EAGAIN: too many processes; ENOMEM), in which case connfd is left to
 * the caller. */
static pid_t spawn_child(int listenfd, int connfd, const char *peer,
                         struct shared_stats *stats)
{
    sigset_t set, old;
    pid_t pid = -1;
    int saved;

    /* SIGCHLD blocked: a child that exits before its pid is in the table
     * must not be reaped, and "forgotten", before it is added, or the
     * table would keep a pid the kernel may give to someone else. SIGINT
     * and SIGTERM blocked: the child must unregister the listener before
     * its first stop signal can run (serve_child). */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old);
    if (children_reserve() == 0)
        pid = fork();
    if (pid == 0)
        serve_child(listenfd, connfd, peer, stats, &old);
    if (pid > 0)
        children.pids[children.n++] = pid;
    saved = errno; /* realloc()'s or fork()'s, for the caller's message */
    children_unlock(&old);
    errno = saved;
    return pid;
}

/* At stop: asks every child to finish (SIGTERM runs its stop handler, which
 * shuts its connection down) and waits for all of them. SIGCHLD stays
 * blocked meanwhile, so this is the only place that reaps; waitpid() fails
 * with ECHILD once no child is left. With --no-reap the table also holds
 * the zombies: kill() does nothing to them, and their pids cannot have
 * gone to another process, since a pid is not reused until it is waited
 * for. */
static void stop_children(void)
{
    sigset_t old;

    children_lock(&old);
    for (size_t i = 0; i < children.n; i++)
        kill(children.pids[i], SIGTERM);
    /* A second stop signal does not interrupt the wait: SA_RESTART. */
    while (waitpid(-1, NULL, 0) > 0)
        continue;
    children.n = 0;
    children_unlock(&old);
}

/* Waits for the next connection. Returns its descriptor, or -1 when no
 * connection was taken and the loop should look again; exits on a fatal
 * error. */
static int accept_client(int listenfd, struct sockaddr_storage *cliaddr,
                         socklen_t *clilen)
{
    /* accept4() with SOCK_CLOEXEC, as common/net.c does: every descriptor
     * the suite opens is close-on-exec, so that a program a child might
     * exec() never inherits a connection by accident. */
    int connfd =
        accept4(listenfd, (struct sockaddr *)cliaddr, clilen, SOCK_CLOEXEC);
    if (connfd == -1 && (errno == EMFILE || errno == ENFILE)) {
        err_ret("accept");
        *clilen = sizeof *cliaddr;
        connfd = accept_or_shed(listenfd, (struct sockaddr *)cliaddr, clilen);
    }
    if (connfd != -1 || stop_requested())
        return connfd;
    /* SA_RESTART restarts an accept() interrupted by SIGCHLD on Linux, but
     * not every system does: a signal is no reason to stop accepting. */
    if (errno == EINTR)
        return -1;
    if (errno == EMFILE || errno == ENFILE) {
        err_msg("out of descriptors: the waiting client was not served");
        return -1;
    }
    if (accept_error_is_transient(errno)) {
        err_ret("accept"); /* that client is gone; try the next */
        return -1;
    }
    err_sys("accept");
}

enum { OPT_NO_REAP = 256 };

static int on_option(int key, const char *arg, void *ctx)
{
    bool *reap = ctx;

    (void)arg;
    if (key != OPT_NO_REAP)
        return -1;
    *reap = false;
    return 0;
}

static int listen_or_exit(const struct net_options *opt)
{
    char where[HOST_PORT_LEN];
    int gai_err;
    int listenfd = tcp_listen(opt->host, opt->port, LISTEN_BACKLOG, &gai_err);

    if (listenfd == -1 && gai_err != 0)
        err_quit("cannot resolve %s: %s", opt->host, gai_strerror(gai_err));
    if (listenfd == -1)
        err_sys("cannot listen on %s",
                host_port(opt->host, opt->port, where, sizeof where));
    return listenfd;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "02-fork-server", "an echo server that forks one process per client",
        9002};
    static const struct lesson_option options[] = {
        {OPT_NO_REAP, "no-reap", NULL,
         "demonstration: leave finished children as zombies"},
        {0, NULL, NULL, NULL},
    };
    struct net_options opt;
    struct shared_stats *stats;
    bool reap = true;
    unsigned long long nconns = 0;
    int listenfd;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &reap);
    signals_init();
    /* --no-reap leaves SIGCHLD at its default, which ignores it but does
     * not reap: a child that exits stays a zombie until someone waits. */
    if (reap)
        reap_children_on_sigchld();
    stats = mmap(NULL, sizeof *stats, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED)
        err_sys("mmap");
    atomic_init(&stats->bytes_echoed, 0);
    listenfd = listen_or_exit(&opt);
    stop_wake_fd(STOP_LISTEN, listenfd);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(listenfd);

    while (!stop_requested()) {
        struct sockaddr_storage cliaddr;
        socklen_t clilen = sizeof cliaddr;
        char peer[SOCK_NTOP_LEN];

        int connfd = accept_client(listenfd, &cliaddr, &clilen);
        if (connfd == -1)
            continue;
        sock_ntop((struct sockaddr *)&cliaddr, clilen, peer, sizeof peer);
        nconns++;
        log_accepted(peer);
        if (spawn_child(listenfd, connfd, peer, stats) == -1) {
            err_ret("fork"); /* this client goes unserved; try the next */
            log_closed(peer, 0);
        }
        /* The child has its own copy. Ours must go: while it stays open,
         * the connection stays open, and the child's close() sends no FIN
         * (see the lab sheet); the parent would also run out of
         * descriptors after ulimit -n clients. */
        close(connfd);
    }

    stop_wake_fd(STOP_LISTEN, -1);
    close(listenfd);
    stop_children();
    log_stats(nconns, atomic_load(&stats->bytes_echoed));
    return 0;
}
