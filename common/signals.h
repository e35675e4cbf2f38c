/* signals.h -- SIGPIPE ignored, SIGINT and SIGTERM turned into a clean stop.
 *
 * A flag set by the handler is the usual answer, and it has a race: if the
 * signal lands after the loop tested the flag but before accept() or read()
 * went to sleep, the server sleeps on until the next client comes. So the
 * handler also calls shutdown() -- async-signal-safe -- on the sockets
 * registered with stop_wake_fd(). A shut-down listening socket makes a
 * blocked or later accept() fail at once (EINVAL), and makes select(),
 * poll() and epoll report it ready; a shut-down connection makes read()
 * return 0 and write() fail with EPIPE. Whatever the server was about to
 * block in returns, and the server finds the flag set.
 *
 * The handlers are installed with SA_RESTART: a read(), write() or accept()
 * interrupted by them is restarted by the kernel, never fails with EINTR.
 * (select(), poll() and epoll_wait() are never restarted: EINTR there means
 * "look at the flags".)
 *
 * Under ThreadSanitizer (make check) a handler runs at once only when the
 * signal lands in a call TSan treats as blocking -- poll(), epoll_wait(),
 * pthread_cond_wait(), sigwait() -- and not in accept() or read(), which
 * SA_RESTART then restarts as if nothing came. Threaded lessons therefore
 * block the stop signals in their workers and let them land on a thread
 * that sleeps in such a call (03's acceptor polls before accept()).
 */
#ifndef SIGNALS_H
#define SIGNALS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* The registered sockets: the listener, and the one connection a blocking
 * single-threaded server is serving. */
enum { STOP_LISTEN, STOP_CONN, STOP_NSLOTS };

/* Ignores SIGPIPE: a write to a peer that has gone then fails with EPIPE
 * instead of killing the process. Clients call this alone: for them,
 * Ctrl-C keeps its default meaning. */
void sigpipe_ignore(void);

/* For servers: sigpipe_ignore(), and the stop handler for SIGINT and
 * SIGTERM. Both exit through err_sys() if sigaction() fails. */
void signals_init(void);

/* On SIGINT/SIGTERM, shutdown(fd) will be called; fd -1 clears the slot.
 * Clear a slot before closing its descriptor. */
void stop_wake_fd(int slot, int fd);

/* For a server whose threads each block on a connection of their own (03's
 * workers): on SIGINT/SIGTERM the handler also shuts down every descriptor
 * held in slots[0 .. n-1] that is not -1. Register once, before the threads
 * start; each thread stores its connection's descriptor in its own slot
 * while it serves it, and -1 before closing it. */
void stop_wake_fds(atomic_int *slots, size_t n);

/* True once SIGINT or SIGTERM has arrived. Safe to call from any thread. */
bool stop_requested(void);

#endif
