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

static void on_stop_signal(int signo)
{
    int saved = errno; /* shutdown() may change it under the interrupted code */

    (void)signo;
    atomic_store(&stopping, true);
    for (int i = 0; i < STOP_NSLOTS; i++) {
        int fd = atomic_load(&wake_fds[i]);
        if (fd != -1)
            shutdown(fd, SHUT_RDWR);
    }
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

bool stop_requested(void)
{
    return atomic_load(&stopping);
}
