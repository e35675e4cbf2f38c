/* 02-fork-server/server.c -- one process per client: fork() after accept().
 *
 * Model:   the parent blocks in accept() and forks a child per connection,
 *          which blocks in read() on it alone: clients no longer wait for
 *          each other. Each closes its copy of the socket it does not use;
 *          a SIGCHLD handler reaps every child that has finished.
 * Cost:    one process per client: a fork() per connection, about 100 kB
 *          of private memory per child (the rest shared copy-on-write);
 *          ulimit -u and the table of children bound the clients.
 * Observe: strace -f -e trace=accept4,clone,wait4,kill ./02-fork-server/server
 *            per client: accept4 and clone (fork) in the parent, wait4 in
 *            its SIGCHLD handler; at the stop, kill and wait4 per child;
 *          ps -o pid,stat,cmd --ppid PID   one child per connected client;
 *            with --no-reap, finished children stay there as Z <defunct>.
 * See also: 01-basic-socket (before), 03-pthread-pool (after): threads.
 *
 * Run it:  ./02-fork-server/server            (Ctrl-C to stop)
 *          printf 'hello\n' | nc -N 127.0.0.1 9002
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

/* How many connections the kernel may complete and hold for us while we are
 * busy with another client; beyond it, new SYNs are dropped and retried. */
enum { LISTEN_BACKLOG = 128 };

/* One connection at a time, so one buffer, on the stack of echo(). */
enum { ECHO_BUFSIZE = 16384 };

/* The children not yet reaped (0: a free slot), for the stop handler. */
enum { MAX_CHILDREN = 4096 };
static pid_t children[MAX_CHILDREN];

/* SIGCHLD says "a child has changed state", not how many: signals of one
 * kind do not queue. So reap until none is left, WNOHANG not to wait for
 * those still running, and keep errno for the code interrupted. */
static void on_sigchld(int signo)
{
    int saved = errno;
    pid_t pid;

    (void)signo;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        for (int i = 0; i < MAX_CHILDREN; i++)
            if (children[i] == pid)
                children[i] = 0; /* the kernel may now reuse the pid */
    errno = saved;
}

/* The stop's hook, run with every signal blocked (no pid is reaped and
 * reused between its slot and kill()): no child outlives the server. */
static void kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0)
            kill(children[i], SIGTERM);
    while (waitpid(-1, NULL, 0) > 0) /* until ECHILD: none left at all */
        continue;
}

/* The whole server-side call sequence, spelled out once:
 * getaddrinfo -> socket -> setsockopt -> bind -> listen.
 * (common/net.c packages it as tcp_listen() for the later lessons; it also
 * tries every address getaddrinfo() returns, where this takes the first.) */
static int listen_on(const char *host, const char *port, bool reuseaddr)
{
    struct addrinfo hints, *res;
    char where[SOCK_NTOP_LEN];
    const int on = 1;
    int listenfd, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;     /* "127.0.0.1" gives IPv4, "::1" IPv6 */
    hints.ai_socktype = SOCK_STREAM; /* TCP */
    hints.ai_flags = AI_PASSIVE;     /* an address to bind, not to connect */
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc == EAI_SYSTEM)
        err_sys("cannot resolve %s", host);
    if (rc != 0)
        err_quit("cannot resolve %s: %s", host, gai_strerror(rc));
    sock_ntop(res->ai_addr, res->ai_addrlen, where, sizeof where);

    listenfd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
                      res->ai_protocol);
    if (listenfd == -1)
        err_sys("socket");

    /* Without SO_REUSEADDR, bind() fails with EADDRINUSE for as long as a
     * connection of our previous run is in TIME_WAIT on this port (60 s on
     * Linux): a server that was just stopped could not start again. The
     * lab sheet turns it off (--no-reuseaddr) to show exactly that. */
    if (reuseaddr &&
        setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == -1)
        err_sys("setsockopt SO_REUSEADDR");

    if (bind(listenfd, res->ai_addr, res->ai_addrlen) == -1)
        err_sys("cannot listen on %s: bind", where);
    if (listen(listenfd, LISTEN_BACKLOG) == -1)
        err_sys("cannot listen on %s: listen", where);

    freeaddrinfo(res);
    return listenfd;
}

/* Echoes what connfd sends until the client half-closes (read() returns 0)
 * or the connection fails, adding each write to the bytes echoed in
 * *totals. Returns the number of bytes echoed. A failure costs this
 * connection only: it is logged, never fatal. */
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

/* Forks a child to serve connfd and records its pid. Returns the pid, or
 * -1 with errno set (EAGAIN: too many processes, or the table is full). */
static pid_t spawn_child(int listenfd, int connfd, const char *peer,
                         struct served *totals)
{
    sigset_t all, old;
    pid_t pid = -1;
    int slot = 0;

    /* Every signal blocked until the pid is in its slot: a child must not
     * be reaped before it is recorded, nor a stop wait forever for a child
     * it does not know, nor the child run the parent's stop handler. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    while (slot < MAX_CHILDREN && children[slot] != 0)
        slot++;
    errno = EAGAIN;
    if (slot < MAX_CHILDREN)
        pid = fork();
    if (pid == 0) {
        /* The child: a stop signal's default action ends it. _exit(), not
         * exit(): the parent's stdio buffers must not be flushed twice. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(listenfd);
        log_closed(peer, echo(connfd, peer, totals));
        _exit(0);
    }
    if (pid > 0)
        children[slot] = pid;
    sigprocmask(SIG_SETMASK, &old, NULL); /* errno stays fork()'s */
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
    struct sigaction sa = {.sa_handler = on_sigchld,
                           .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    struct served *totals; /* shared, and read by the stop handler */
    struct net_options opt;
    bool reap = true;
    int listenfd;

    parse_server_options(argc, argv, &pi, &opt, options, on_option, &reap);
    /* The totals, in memory that fork() shares instead of copying. */
    totals = mmap(NULL, sizeof *totals, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (totals == MAP_FAILED)
        err_sys("mmap");
    /* The stop, way (a) of common/signals.h: SIGINT or SIGTERM runs a
     * handler that prints the totals and exits, wherever the server is
     * asleep. Exit closes the sockets; the kernel tells the client. */
    stop_by_handler(totals, kill_children);
    /* SA_RESTART: accept() goes on after the reaper. SA_NOCLDSTOP: none for
     * a child merely stopped (Ctrl-Z). --no-reap leaves SIGCHLD at its
     * default, which does not reap: finished children stay zombies. */
    sigfillset(&sa.sa_mask);
    if (reap && sigaction(SIGCHLD, &sa, NULL) == -1)
        err_sys("sigaction SIGCHLD");
    listenfd = listen_on(opt.host, opt.port, true);
    if (spare_fd_reserve() == -1)
        err_sys("open spare descriptor");
    log_listening(listenfd);

    for (;;) {
        struct sockaddr_storage cliaddr;
        socklen_t clilen = sizeof cliaddr;
        char peer[SOCK_NTOP_LEN];

        /* accept() with the way out of EMFILE (common/net.c): out of
         * descriptors, the waiting client is turned away, not served
         * later, and the server does not spin. */
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
        /* The child has its own copy: ours must go, or no FIN is sent. */
        close(connfd);
    }
}
