/* relay.h -- an echo client's work once connected: stdin to the server,
 * the echo to stdout, and the half-close between them.
 *
 * A client that sends its input and reads the echo must do both at once.
 * One that writes everything with blocking writes, and reads afterwards,
 * deadlocks on a large input: it sleeps in write() while the server, its
 * echo to us unread, has stopped reading from us. relay() waits in poll()
 * on stdin and the socket and does whichever is ready. At stdin's EOF,
 * once all of it is sent, it half-closes the socket: shutdown(SHUT_WR)
 * says "no more data from me" with a FIN after the last byte, and leaves
 * the other direction open for the rest of the echo (close() would give
 * that up too). Then it reads until the server closes, and checks that
 * exactly as many bytes came back as went out.
 *
 * A client with a loop of its own (select(), a reactor) calls the steps
 * relay() is made of: relay_start(), then relay_from_stdin(),
 * relay_to_server() and relay_from_server() when their descriptor is
 * ready, asking relay_wants_stdin() and relay_pending() what to wait for.
 *
 * stdin and stdout are not the client's own. The shell or a parent may
 * have made them non-blocking (O_NONBLOCK belongs to the open file, which
 * they share with us), and stdin may be a regular file, a directory or a
 * terminal. A non-blocking stdin's EAGAIN means "wait", never "end"; a
 * directory's EISDIR is a failure like any other. read_blocking() and
 * writen_blocking() give the same care to clients that block instead.
 *
 * Nothing here prints or exits but err_connect() and err_relay(), the
 * client's fatal lines, as err_listen() (options.h) is the server's.
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "options.h"

enum { RELAY_BUFSIZE = 65536 };

/* What went wrong: a call, whose errno says why, or the echo itself. */
enum relay_step {
    RELAY_OK,           /* nothing (yet) */
    RELAY_READ_STDIN,   /* read() of stdin: EISDIR for a directory */
    RELAY_WRITE_SERVER, /* write() to the socket: EPIPE, ECONNRESET */
    RELAY_SHUTDOWN,     /* shutdown(SHUT_WR) */
    RELAY_READ_SERVER,  /* read() of the socket: ECONNRESET */
    RELAY_WRITE_STDOUT, /* write() to stdout: EPIPE, ENOSPC */
    RELAY_SETUP,        /* fcntl() making the socket non-blocking */
    RELAY_WAIT,         /* poll() */
    RELAY_CUT_SHORT,    /* the server closed before echoing all we sent */
    RELAY_TOO_MUCH,     /* the server sent bytes nobody sent it */
};

/* How a relay went: what travelled, and the first thing that failed. */
struct relay_status {
    unsigned long long sent;     /* bytes written to the socket */
    unsigned long long received; /* bytes read back from it */
    enum relay_step failed;      /* RELAY_OK while nothing has */
    int err;                     /* errno of the failed call, else 0 */
};

/* One relay's state, for a client that runs the steps itself. */
struct relay {
    int in, sockfd, out; /* stdin, the socket, stdout */
    bool in_eof;         /* read() of in returned 0 */
    bool shut;           /* the FIN has gone: shutdown(SHUT_WR) done */
    bool closed;         /* the server has closed: the relay is over */
    size_t start, end;   /* tosrv[start, end): read, not yet sent */
    struct relay_status st;
    char tosrv[RELAY_BUFSIZE];
};

/* Copies in to sockfd and the echo from sockfd to out, half-closes sockfd
 * once in has ended and all of it is sent, and returns when the server
 * has closed: 0 if exactly the bytes sent came back, -1 otherwise, with
 * st->failed naming what failed and errno (also st->err) why. The socket
 * is made non-blocking; in and out are used as they are. */
int relay(int in, int sockfd, int out, struct relay_status *st);

/* The steps. Each returns 0, or -1 with rl->st saying what failed and
 * errno why; after a -1 the relay is over. */

/* Starts rl over in, sockfd and out, and makes sockfd non-blocking. */
int relay_start(struct relay *rl, int in, int sockfd, int out);
/* Whether to wait for in: it has not ended and the buffer has room. */
bool relay_wants_stdin(const struct relay *rl);
/* Bytes read from in and not yet sent: wait for room in the socket while
 * there are some. Always wait for the socket's input. */
size_t relay_pending(const struct relay *rl);
/* One read() of in into the buffer; EAGAIN is not a failure. */
int relay_from_stdin(struct relay *rl);
/* One write() of the pending bytes to the socket; EAGAIN is not a
 * failure. It, or relay_from_stdin(), half-closes once in has ended and
 * nothing is pending. */
int relay_to_server(struct relay *rl);
/* One read() of the socket, all of it written to out. At the server's
 * close sets rl->closed, and fails with RELAY_CUT_SHORT if the echo is
 * not complete; fails with RELAY_TOO_MUCH as soon as more came back than
 * went out. */
int relay_from_server(struct relay *rl);

/* The two halves of a relay, for a client that gives each direction a
 * process or a thread of its own, each blocking in its own read(). */
enum { RELAY_HALF_BUFSIZE = 16384 };
/* Copies in to sockfd until in ends, counted in st->sent; a non-blocking
 * in is waited for. Returns 0 at in's EOF, or -1 with st saying what
 * failed. It does not half-close: the caller does, when the other half
 * is ready to see the server's close. */
int relay_send(int in, int sockfd, struct relay_status *st);
/* Copies sockfd to out until the server closes, counted in
 * st->received. Returns 0 at the close, or -1 with st saying what
 * failed. */
int relay_receive(int sockfd, int out, struct relay_status *st);

/* For a client that relays by other means: records step as failed, with
 * errno as it is now, and returns -1. */
int relay_fail(struct relay_status *st, enum relay_step step);
/* For a client that relays by other means, once the server has closed:
 * RELAY_CUT_SHORT if fewer bytes came back than were sent, RELAY_TOO_MUCH
 * if more, recorded in st unless it holds a failure already. Returns 0 if
 * as many came back, else -1. */
int relay_check_echo(struct relay_status *st);

/* One read(), as on a blocking descriptor: where fd is non-blocking,
 * EAGAIN waits in poll() for input instead of failing; EINTR is retried.
 * Returns what read() returns. */
ssize_t read_blocking(int fd, void *buf, size_t n);
/* writen(), as on a blocking descriptor: EAGAIN waits in poll() for room.
 * Returns n, or -1 with errno set. */
ssize_t writen_blocking(int fd, const void *buf, size_t n);
/* Sleeps in poll() until fd is ready for events (POLLIN or POLLOUT);
 * EINTR is retried. Returns 0, or -1 with errno set. */
int wait_ready(int fd, short events);

/* The client's line for a failed tcp_connect(), and exit 1: the name did
 * not resolve (gai_err, from tcp_connect()), or no address answered
 * (errno). */
_Noreturn void err_connect(const struct net_options *opt, int gai_err);
/* The client's line for a failed relay, and exit 1: the call and its
 * errno, or that the echo was cut short or too long. */
_Noreturn void err_relay(const struct relay_status *st);

#endif
