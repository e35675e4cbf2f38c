/* tcp.h -- a TCP server on top of the reactor: the events of a connection
 * as callbacks, so that the application is nothing but callbacks.
 *
 * A TCP program meets four and a half events, and the application gets
 * one callback for each:
 *   on_connection      a client has connected (accepted and registered);
 *   on_message         bytes have arrived: the ones not consumed yet;
 *   on_write_complete  output that had to wait has all gone to the kernel;
 *   on_close           the connection is over: the client closed, reset or
 *                      idled too long;
 * and the half, on_high_water: the output pending for a slow reader has
 * just grown past the mark (CONN_HIGH_WATER). The layer does not decide
 * what to do about it: the application may pause reading, as the echo
 * server does, or drop the client, or let the buffer grow.
 *
 * Everything else -- accept(), non-blocking reads and writes, the output
 * buffer (common/conn.c), half-close, EMFILE, idle timeouts -- happens
 * here, once, below the application.
 *
 * Callbacks run on the reactor's thread. They must not block, and they
 * must not free a connection: tcp_conn_close() asks the layer to close it
 * once the callback has returned.
 */
#ifndef TCP_H
#define TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "reactor.h"

struct tcp_conn;
struct tcp_idle;
struct tcp_server;

/* on_write_complete and on_high_water may be NULL: nothing is called. */
struct tcp_callbacks {
    void (*on_connection)(struct tcp_conn *c);
    /* Returns how many of the len bytes it consumed; the rest are kept and
     * come back, with what arrives next, in the next call. */
    size_t (*on_message)(struct tcp_conn *c, const char *data, size_t len);
    void (*on_write_complete)(struct tcp_conn *c);
    void (*on_high_water)(struct tcp_conn *c, size_t pending);
    void (*on_close)(struct tcp_conn *c);
};

/* The application may read these fields, and owns data; only tcp.c writes
 * the others. */
struct tcp_conn {
    struct conn io; /* descriptor, peer, output buffer, counters */
    struct tcp_server *server;
    void *data; /* the application's own, per connection; NULL at first */
    char *in;   /* bytes on_message left, or NULL */
    size_t in_len;
    size_t index;          /* its place in the server's table */
    bool paused;           /* tcp_conn_pause_reading() */
    bool owing;            /* tcp_conn_owe() */
    bool above_high_water; /* on_high_water was called, not yet drained */
    bool closing;          /* tcp_conn_close(), or a failure */
    bool idle;             /* closed by the idle timer */
    /* Its idle timer, or NULL when the server has no idle limit. */
    struct tcp_idle *idle_limit;
};

/* Accepts clients on listenfd (non-blocking, already listening), serves
 * them with cb, and gives ctx to every callback through tcp_conn_ctx().
 * listenfd -1: no listener; the clients come through tcp_server_adopt().
 * idle_ms > 0 closes a client after that long without a byte moving either
 * way. Returns NULL with errno set. There is no tcp_server_free(): the
 * server lives until the process exits, and exit closes the sockets. */
struct tcp_server *tcp_server_new(struct reactor *r, int listenfd,
                                  const struct tcp_callbacks *cb, void *ctx,
                                  uint64_t idle_ms);

/* Serves a client accepted elsewhere (another thread's listener, say), as
 * if s had accepted it: on_connection, then its events on s's reactor. On
 * s's reactor's thread only. io must come from conn_new(): its contents
 * move into the new tcp_conn, and its struct is freed, so the caller must
 * not use io again. If there is no room for it, the client is turned away
 * and the reason logged. */
void tcp_server_adopt(struct tcp_server *s, struct conn *io);

/* The most one read() takes, 1 to CONN_READ_MAX (the default). Each read
 * is one on_message() call, so this bounds what one call brings. */
void tcp_server_set_read_size(struct tcp_server *s, size_t size);

/* Stops, or starts again, reading from every client at once: for an
 * application whose own queue is full. One change per connection reaches
 * the reactor, so call it when the state turns, not on every event. */
void tcp_server_pause_reading(struct tcp_server *s, bool paused);

/* Bytes written to the clients so far, over every connection: an echo
 * server's "echoed" at any moment, read from any thread (an atomic). */
unsigned long long tcp_server_sent(const struct tcp_server *s);

/* The ctx of c's server, for the callbacks: kept once in the server, not
 * copied into every connection. */
void *tcp_conn_ctx(const struct tcp_conn *c);

/* Sends n bytes: written now as far as the socket takes them, the rest
 * kept in order and sent when it is writable. Returns 0, or -1 once the
 * connection has failed (it is then closed after the callback). */
int tcp_conn_send(struct tcp_conn *c, const void *p, size_t n);

/* Stops and restarts reading from the client: its bytes then wait in the
 * kernel's buffers, and TCP's flow control slows the client down. */
void tcp_conn_pause_reading(struct tcp_conn *c);
void tcp_conn_resume_reading(struct tcp_conn *c);

/* Whether the application still owes the client bytes it will send later
 * (replies computed elsewhere). While it does, a client that half-closed
 * is not closed once the pending output has gone: it waits for them. */
void tcp_conn_owe(struct tcp_conn *c, bool owing);

/* Closes the connection once the running callback has returned: output
 * still pending is dropped. Like tcp_conn_send(), for the connection's own
 * callbacks. */
void tcp_conn_close(struct tcp_conn *c);

/* The calls above take effect when the connection's own callback returns.
 * Called from anywhere else (another descriptor's handler, a timer), they
 * need this afterwards: it closes c if it is over -- on_close runs, and c
 * is freed -- or tells the reactor what to watch for it now. */
void tcp_conn_update(struct tcp_conn *c);

/* Message framing. TCP carries bytes, not messages: a program that wants
 * messages marks where each ends, and its reader collects bytes until a
 * message is whole -- readline() in common/io.h for blocking code. In a
 * reactor the bytes come in whatever pieces the reads bring, and the
 * pieces wait in the connection's input buffer: on_message consumes the
 * whole frames and leaves the rest, which comes back with the next bytes.
 * The input buffer is bounded as the output is (wants_read() stops at
 * CONN_HIGH_WATER), so a frame may be at most TCP_FRAME_MAX bytes.
 *   TCP_FRAME_LINE  a line: bytes up to and with a newline;
 *   TCP_FRAME_LEN   a 4-byte length, most significant byte first, then
 *                   that many bytes. */
enum tcp_framing { TCP_FRAME_NONE, TCP_FRAME_LINE, TCP_FRAME_LEN };
enum { TCP_FRAME_HEADER = 4, TCP_FRAME_MAX = CONN_HIGH_WATER };

/* The length of the first frame in data[0 .. len), its header included,
 * if it is all there; 0 if more bytes are needed; -1 if it cannot be
 * at most TCP_FRAME_MAX bytes long. TCP_FRAME_NONE: len. */
ssize_t tcp_frame_len(enum tcp_framing f, const char *data, size_t len);

/* TCP keepalive on the connection, with its three timings, which Linux
 * takes per socket: after idle_s seconds without a segment, a probe
 * every interval_s seconds; count probes unanswered, and the connection
 * fails with ETIMEDOUT (the layer then closes it: on_close sees
 * io.error). Returns 0, or -1 with errno set. */
int tcp_conn_keepalive(struct tcp_conn *c, int idle_s, int interval_s,
                       int count);

#endif
