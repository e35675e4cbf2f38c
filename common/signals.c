/* signals.c -- the two ways to take the stop; see signals.h. */
#include "signals.h"

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

static struct served *stop_totals;
static void (*stop_before)(void);
static atomic_bool stopping;

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static void install(void (*handler)(int))
{
    struct sigaction sa = {0};

    /* Every signal blocked while the handler runs: another stop signal, or
     * any other handler, must not interrupt it halfway through its line,
     * or through the hook it calls first. */
    sa.sa_handler = handler;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) == -1)
        err_sys("sigaction SIGINT");
    if (sigaction(SIGTERM, &sa, NULL) == -1)
        err_sys("sigaction SIGTERM");
}

void sigpipe_ignore(void)
{
    struct sigaction sa = {0};

    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        err_sys("sigaction SIGPIPE");
}

/* Way (a). Nothing here may take a lock that the interrupted code could be
 * holding: no stdio, no malloc. log_stats_signal_safe() formats by hand. */
static void exit_on_stop(int signo)
{
    (void)signo;
    if (stop_before != NULL)
        stop_before();
    log_stats_signal_safe(
        stop_totals->counted ? stop_totals->counted : "connections",
        atomic_load(&stop_totals->conns), atomic_load(&stop_totals->bytes));
    _exit(0);
}

void stop_by_handler(struct served *totals, void (*before)(void))
{
    sigpipe_ignore();
    stop_totals = totals;
    stop_before = before;
    install(exit_on_stop);
}

/* Way (b) with a mask: the handler runs only inside the waiting call. */
static void note_stop(int signo)
{
    (void)signo;
    atomic_store(&stopping, true);
}

void stop_by_mask(sigset_t *waitmask)
{
    sigset_t set;

    sigpipe_ignore();
    install(note_stop);
    stop_signals(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, waitmask) != 0)
        err_quit("pthread_sigmask failed");
    sigdelset(waitmask, SIGINT);
    sigdelset(waitmask, SIGTERM);
}

bool stop_requested(void)
{
    sigset_t pending;

    /* The flag, set by a handler that ran inside the wait; or a signal
     * still pending, because the wait returned ready descriptors instead
     * (the kernel prefers them) and blocked it again. Asking the kernel is
     * no race: a signal that comes after the question stays pending and
     * interrupts the next wait. */
    if (atomic_load(&stopping))
        return true;
    if (sigpending(&pending) == -1)
        return false;
    return sigismember(&pending, SIGINT) == 1 ||
           sigismember(&pending, SIGTERM) == 1;
}

int stop_signalfd(void)
{
    sigset_t set;
    int fd;

    sigpipe_ignore();
    stop_signals(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        err_quit("pthread_sigmask failed");
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1)
        err_sys("signalfd");
    return fd;
}
