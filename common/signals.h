/* signals.h -- SIGPIPE ignored; SIGINT and SIGTERM turned into the stop.
 *
 * On SIGINT or SIGTERM a server prints "served C connections, echoed B
 * bytes" and exits 0. It closes nothing itself: exit() closes every socket,
 * and the kernel tells each client. The hard part is only to notice the
 * signal wherever the server sleeps. A flag set by a handler and tested by
 * the loop is not enough: a signal that lands after the test but before
 * accept() or read() went to sleep waits for the next client. So every
 * lesson takes the signal in one of two ways, and says which:
 *
 * (a) stop_by_handler(): the handler itself writes the line and calls
 *     _exit(0). It may run in the middle of anything, so it uses
 *     async-signal-safe calls only, and the totals it prints are lock-free
 *     atomics that the server adds to as it writes. For servers that sleep
 *     in accept(), read(), write() or on a condition variable.
 *
 * (b) the event loop waits for the signal as one of its events. Either
 *     stop_by_mask(): the signals stay blocked except inside the one call
 *     that waits (pselect, ppoll, epoll_pwait), which the kernel unblocks
 *     and blocks again atomically; the handler only sets the flag that
 *     stop_requested() reads, and the call fails with EINTR. (When some
 *     descriptor is ready, the call returns it instead and the signal
 *     stays pending: stop_requested() asks the kernel about that too, or
 *     a loop kept busy would never stop.) Or
 *     stop_signalfd(): the signals stay blocked, and arrive as bytes to
 *     read on a descriptor the loop watches like any socket.
 */
#ifndef SIGNALS_H
#define SIGNALS_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

/* A server's totals, for the stats line. Lock-free atomics, so that a
 * signal handler may read them (C11 7.14.1.1) and any thread, or any
 * process sharing the memory, may add to them. */
struct served {
    atomic_ullong conns; /* connections accepted */
    atomic_ullong bytes; /* bytes echoed: added as they are written */
    const char *counted; /* what conns counts, for the line: NULL means
                            "connections"; 01's UDP mode counts datagrams */
};

/* Ignores SIGPIPE: a write to a peer that has gone then fails with EPIPE
 * instead of killing the process. Clients call this alone: for them,
 * Ctrl-C keeps its default meaning. */
void sigpipe_ignore(void);

/* Way (a). sigpipe_ignore(), and a handler for SIGINT and SIGTERM that
 * calls before() if it is not NULL (which must itself be async-signal-
 * safe), writes the stats line from *totals and calls _exit(0). Every
 * signal is blocked while it runs. Installed without SA_RESTART: the handler
 * never returns, so nothing is restarted. Exits through err_sys() if
 * sigaction() fails. */
void stop_by_handler(struct served *totals, void (*before)(void));

/* Way (b), for a loop that waits in pselect(), ppoll() or epoll_pwait():
 * sigpipe_ignore(), a handler that sets the stop flag, and SIGINT and
 * SIGTERM blocked in the calling thread. *waitmask receives the mask to
 * pass to the waiting call: the current one without the two signals. */
void stop_by_mask(sigset_t *waitmask);

/* True once SIGINT or SIGTERM has arrived, or is pending, blocked (way (b)
 * with stop_by_mask). */
bool stop_requested(void);

/* Way (b), for a loop that watches descriptors: sigpipe_ignore(), SIGINT
 * and SIGTERM blocked in the calling thread (threads it starts afterwards
 * inherit the mask), and a non-blocking, close-on-exec signalfd that
 * becomes readable when one of them arrives. Exits through err_sys() on
 * failure. */
int stop_signalfd(void);

#endif
