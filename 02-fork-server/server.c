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
 *          and the table of children bound the clients; the parent holds
 *          as many descriptors for a thousand clients as for one.
 * Observe: strace -f -e trace=accept4,clone,wait4,kill,exit_group \
 *                 ./02-fork-server/server
 *            per client: accept4 in the parent, clone (glibc's fork()),
 *            exit_group in the child, wait4 in the parent's SIGCHLD
 *            handler; at the stop, kill and wait4 for each child left;
 *          ps -o pid,stat,cmd --ppid PID   one child per connected client;
 *            with --no-reap, finished children stay there as Z <defunct>.
 * See also: 01-basic-socket (before), 03-pthread-pool (after), which
 *           serves clients from a fixed pool of threads instead.
 *
 * Run it:  ./02-fork-server/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9002
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* The pids of the children not yet reaped (0: a free slot), so that the
 * stop can end them all. Fixed in size: nothing to grow while a handler
 * may read it; when it is full, a client is refused as at ulimit -u.
 * spawn_child() fills a slot, on_sigchld() empties it, kill_children()
 * reads it, and the signal masks keep any two from overlapping. With
 * --no-reap the zombies keep their slots, as they keep their pids. */
enum { MAX_CHILDREN = 4096 };
static pid_t children[MAX_CHILDREN];

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
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
        /* Reaped: from now on the kernel may give that pid to anyone. */
        for (int i = 0; i < MAX_CHILDREN; i++) {
            if (children[i] == pid)
                children[i] = 0;
        }
    }
    errno = saved;
}

/* SA_RESTART: an accept4() interrupted by the handler is restarted (strace
 * shows ERESTARTSYS); accept_or_shed() would retry it anyway. SA_NOCLDSTOP:
 * no SIGCHLD when a child is merely stopped (Ctrl-Z, a debugger). The stop
 * waits until the handler is done, so it never sees a slot half emptied. */
static void reap_children_on_sigchld(void)
{
    struct sigaction sa = {0};

    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) == -1)
        err_sys("sigaction SIGCHLD");
}

/* The stop's hook, run by the SIGINT/SIGTERM handler before it prints the
 * totals and exits, hence async-signal-safe: ends every child (SIGTERM's
 * default action, serve_child) and reaps them all, so that none outlives
 * the server or stays a zombie, and every byte echoed is counted. SIGCHLD
 * blocked: no pid is reaped, free for the kernel to reuse, before our
 * kill(). waitpid() without WNOHANG, until ECHILD: none left at all. */
static void kill_children(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] > 0)
            kill(children[i], SIGTERM);
    }
    while (waitpid(-1, NULL, 0) > 0)
        continue;
}

/* Echoes what connfd sends until the client half-closes (read() returns 0)
 * or the connection fails, adding each write to the bytes echoed in
 * *totals. Returns the number of bytes echoed. A failure costs this
 * connection only: it is logged, never fatal. 01's echo(), unchanged: here
 * *totals lives in memory that the parent and every child share (main). */
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

/* The child: serves one connection and exits; it never returns. It starts
 * with SIGCHLD, SIGINT and SIGTERM blocked (spawn_child), and *old is the
 * mask to go back to. */
static _Noreturn void serve_child(int listenfd, int connfd, const char *peer,
                                  struct served *totals, const sigset_t *old)
{
    unsigned long long n;

    /* The parent's stop handler came with the fork: here it would print a
     * stats line and kill the siblings in this copy of the table. So the
     * default action comes back, which ends the child at once (exit closes
     * the socket: the kernel tells the client), and only then the signals
     * are unblocked: one sent since fork() was held, and ends it now. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
    close(listenfd); /* the parent alone accepts */
    n = echo(connfd, peer, totals);
    close(connfd);
    log_closed(peer, n);
    /* _exit(), not exit(): atexit handlers and stdio buffers belong to the
     * parent's life, and must not run twice. */
    _exit(0);
}

/* Forks a child to serve connfd and records its pid. Returns the pid, or
 * -1 with errno set (EAGAIN: too many processes, or the table is full;
 * ENOMEM), in which case connfd is left to the caller. */
static pid_t spawn_child(int listenfd, int connfd, const char *peer,
                         struct served *totals)
{
    sigset_t set, old;
    pid_t pid = -1;
    int slot = 0, saved;

    /* Blocked from before fork() until the pid is in its slot. SIGCHLD: a
     * child that exits at once must not be reaped before it is recorded,
     * or its slot would keep a pid the kernel may give to someone else.
     * SIGINT and SIGTERM: a stop now would wait forever for a child it
     * does not know; and the child must not run the parent's handler. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old);
    while (slot < MAX_CHILDREN && children[slot] != 0)
        slot++;
    if (slot < MAX_CHILDREN)
        pid = fork();
    else
        errno = EAGAIN;
    if (pid == 0)
        serve_child(listenfd, connfd, peer, totals, &old);
    if (pid > 0)
        children[slot] = pid;
    saved = errno; /* fork()'s, for the caller's message */
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return pid;
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
    struct served *totals;
    bool reap = true;
    int listenfd, gai_err;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &reap);
    /* The totals, in a page that fork() does not copy: MAP_SHARED memory
     * stays one in the parent and every child. Each child adds its bytes
     * after each write, so the total is true at any moment, even for a
     * child killed with SIGKILL; the parent counts connections. Lock-free
     * atomics work across processes (address-free): hence the check. */
    _Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "atomics shared by fork");
    totals = mmap(NULL, sizeof *totals, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (totals == MAP_FAILED)
        err_sys("mmap");
    atomic_init(&totals->conns, 0);
    atomic_init(&totals->bytes, 0);
    /* The stop, way (a) of common/signals.h: SIGINT or SIGTERM runs a
     * handler that calls kill_children(), then prints the totals and
     * exits, wherever the parent is asleep. */
    stop_by_handler(totals, kill_children);
    /* --no-reap leaves SIGCHLD at its default, which ignores it but does
     * not reap: a child that exits stays a zombie until someone waits. */
    if (reap)
        reap_children_on_sigchld();
    listenfd = tcp_listen(opt.host, opt.port, LISTEN_BACKLOG, &gai_err);
    if (listenfd == -1)
        err_listen(&opt, gai_err);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(listenfd);

    for (;;) {
        struct sockaddr_storage cliaddr;
        socklen_t clilen = sizeof cliaddr;
        char peer[SOCK_NTOP_LEN];

        /* accept() with the way out of EMFILE (common/net.c), as in 01. */
        int connfd =
            accept_or_shed(listenfd, (struct sockaddr *)&cliaddr, &clilen);
        if (connfd == -1) {
            if (!accept_lost_client(errno))
                err_sys("accept");
            err_ret("accept: a client was lost"); /* take the next */
            continue;
        }
        sock_ntop((struct sockaddr *)&cliaddr, clilen, peer, sizeof peer);
        atomic_fetch_add(&totals->conns, 1);
        log_accepted(peer);
        if (spawn_child(listenfd, connfd, peer, totals) == -1) {
            err_ret("fork"); /* this client goes unserved; try the next */
            log_closed(peer, 0);
        }
        /* The child has its own copy. Ours must go: while it stays open,
         * the connection stays open, and the child's close() sends no FIN
         * (see the lab sheet); the parent would also run out of
         * descriptors after ulimit -n clients. */
        close(connfd);
    }
}
