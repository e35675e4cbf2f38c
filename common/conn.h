/* conn.h -- one client of a server that serves many from one thread.
 *
 * A server that serves many clients from one thread echoes through
 * non-blocking sockets, and a non-blocking write() takes only what fits: when
 * the client reads slowly, or not at all, part of an echo is left over. It
 * waits here, in the connection's output buffer, and goes out when the socket
 * is writable.
 *
 * The buffer has a high-water mark. Above it, conn_wants_read() says no:
 * the server stops reading from that client until the buffer drains, so the
 * client's bytes back up in the kernel's buffers, then in the client. The
 * server's memory for a client that never reads stays below the mark plus
 * one read, and the other clients never wait for it.
 *
 * Only what is pending is kept: an echo goes straight from the stack to
 * write(), and the buffer is allocated when a write falls short and freed
 * once it has drained. An idle connection costs this struct and nothing
 * more.
 *
 * The functions never print: on a failure they record errno and the call in
 * the struct, and the server decides what to log.
 */
#ifndef CONN_H
#define CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "net.h"

/* Above this many bytes of pending output, stop reading from the client. */
#define CONN_HIGH_WATER (64 * 1024)
/* The largest read conn_read() makes (its buffer is on the stack). */
#define CONN_READ_MAX (64 * 1024)

/* The fields are ordered by size, widest first, so that the compiler pads
 * nothing between them: a server with thousands of idle connections pays
 * for every byte here thousands of times. */
struct conn {
    char *out;                 /* pending output, or NULL when none */
    size_t out_start, out_end; /* the pending bytes are out[start, end) */
    size_t out_cap;
    const char *failed_call;            /* "read", "write" or "malloc" */
    unsigned long long nbytes;          /* bytes echoed (written back) */
    unsigned long long nreads, nwrites; /* system calls, for statistics */

    int fd;                   /* non-blocking */
    int error;                /* errno of the failed call, or 0 */
    char peer[SOCK_NTOP_LEN]; /* "127.0.0.1:40000", for the log */
    bool peer_done;           /* the client half-closed: read() gave 0 */
};

/* Makes *c the connection for connfd, which must already be non-blocking,
 * with the peer's address as text; allocates nothing, so that a caller
 * can hold the struct inside its own, in one allocation per client. */
void conn_init(struct conn *c, int connfd, const struct sockaddr *sa,
               socklen_t salen);

/* Closes the descriptor and frees the output buffer, but not c itself:
 * the end of what conn_init() began. Leaves fd -1 and nothing pending. */
void conn_close(struct conn *c);

/* A connection for connfd, which must already be non-blocking, with the
 * peer's address as text: conn_init() on a struct from malloc. Returns
 * NULL with errno ENOMEM. */
struct conn *conn_new(int connfd, const struct sockaddr *sa, socklen_t salen);

/* The next client waiting on a non-blocking listener, as a connection:
 * accept_nonblock() (net.h), then conn_new(). Returns NULL with errno as
 * accept_nonblock() leaves it, or ENOMEM after closing a client there was
 * no memory for; accept_lost_client() is true for ENOMEM too. */
struct conn *conn_accept(int listenfd);

/* conn_close(), then frees the struct conn_new() allocated. */
void conn_free(struct conn *c);

/* One read() of at most size bytes into buf, retried if a signal
 * interrupted it, and nothing else: for servers that do something other
 * than echo at once (a callback, a worker). Returns the number of
 * bytes read; 0 when the client half-closed (sets peer_done); -1 with errno
 * EAGAIN when there was nothing to read, or -1 after a failure (recorded
 * in error). size 0 fails with EINVAL and changes nothing. */
ssize_t conn_recv(struct conn *c, void *buf, size_t size);

/* Sends n bytes after those already pending: written at once where the
 * socket takes them and nothing else waits, the rest kept. Returns 0, or -1
 * after a failure (recorded in error), or at once with errno set to the
 * recorded error when an earlier call failed. */
int conn_send(struct conn *c, const void *p, size_t n);

/* One conn_recv() of at most size bytes (capped at CONN_READ_MAX), and the echo
 * of what came: written at once where the socket takes it, the rest kept.
 * Returns the number of bytes read; 0 when the client half-closed (sets
 * peer_done); -1 with errno EAGAIN when there was nothing to read, or -1
 * after a failure (recorded in error). */
ssize_t conn_read(struct conn *c, size_t size);

/* Writes as much pending output as the socket takes. Returns 0, or -1
 * after a failure (recorded in error). */
int conn_flush(struct conn *c);

/* Bytes read from the client and not yet written back. */
size_t conn_pending(const struct conn *c);

/* Whether to watch for reading: the client has not half-closed, nothing
 * failed, and pending output is below the high-water mark. */
bool conn_wants_read(const struct conn *c);

/* Whether to watch for writing: output is pending and nothing failed. */
bool conn_wants_write(const struct conn *c);

/* Whether the connection is over: it failed, or the client half-closed and
 * every byte has been echoed. Close it then. */
bool conn_finished(const struct conn *c);

#endif
