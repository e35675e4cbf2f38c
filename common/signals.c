/* signals.c -- the stop handler; see signals.h. */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include "log.h"

/* Lock-free atomics are safe to touch in a signal handler (C11 7.14.1.1),
 * and unlike volatile sig_atomic_t they are also safe across threads, which
 * the threaded lessons need: the signal may land on any thread. */
static atomic_bool stopping;
_Static_assert(STOP_NSLOTS == 2, "initialise every slot to -1");
static atomic_int wake_fds[STOP_NSLOTS] = {-1, -1};
/* The array of stop_wake_fds(); its length is stored last and read first,
 * so that a handler that sees a length also sees the array. */
static atomic_int *_Atomic more_fds;
static atomic_size_t n_more_fds;

static void wake(atomic_int *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int fd = atomic_load(&slots[i]);
        if (fd != -1)
            shutdown(fd, SHUT_RDWR);
    }
}

static void on_stop_signal(int signo)
{
    int saved = errno; /* shutdown() may change it under the interrupted code */

    (void)signo;
    atomic_store(&stopping, true);
    wake(wake_fds, STOP_NSLOTS);
    size_t n = atomic_load(&n_more_fds);
    if (n > 0)
        wake(atomic_load(&more_fds), n);
    errno = saved;
}

void sigpipe_ignore(void)
{
    struct sigaction sa = {0};

    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        err_sys("sigaction SIGPIPE");
}

void signals_init(void)
{
    struct sigaction sa = {0};

    sigpipe_ignore();
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    /* One handler at a time: block the other stop signal while it runs. */
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    if (sigaction(SIGINT, &sa, NULL) == -1)
        err_sys("sigaction SIGINT");
    if (sigaction(SIGTERM, &sa, NULL) == -1)
        err_sys("sigaction SIGTERM");
}

void stop_wake_fd(int slot, int fd)
{
    atomic_store(&wake_fds[slot], fd);
}

void stop_wake_fds(atomic_int *slots, size_t n)
{
    atomic_store(&n_more_fds, 0);
    atomic_store(&more_fds, slots);
    atomic_store(&n_more_fds, n);
}

bool stop_requested(void)
{
    return atomic_load(&stopping);
}
