/* net.h -- sockets over getaddrinfo, addresses as text, accept()'s errors.
 *
 * tcp_listen() and tcp_connect() take a host and a port as text and work
 * for IPv4 and IPv6 alike. They return -1 and let the caller report: when
 * the name itself could not be resolved, *gai_err holds getaddrinfo()'s code
 * (print it with gai_strerror()); otherwise *gai_err is 0 and errno tells
 * why the last address tried failed.
 */
#ifndef NET_H
#define NET_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <sys/socket.h>

/* Room for "[ffff:...:ffff]:65535" and its NUL. */
#define SOCK_NTOP_LEN (INET6_ADDRSTRLEN + 8)

/* A listening socket (SO_REUSEADDR, close-on-exec) bound to host:port, on
 * the first address of host that works. Port "0" lets the kernel choose:
 * ask getsockname() which port it chose. */
int tcp_listen(const char *host, const char *port, int backlog, int *gai_err);

/* tcp_listen() with one step of the caller's between socket() and bind():
 * prepare(fd, arg) sets what must be set before bind() or listen() (for
 * example SO_REUSEPORT, or SO_RCVBUF) and returns 0, or -1 with errno. */
int tcp_listen_with(const char *host, const char *port, int backlog,
                    int (*prepare)(int fd, void *arg), void *arg, int *gai_err);

/* A socket connected to host:port (close-on-exec), trying each address. */
int tcp_connect(const char *host, const char *port, int *gai_err);

/* Writes "127.0.0.1:9001" or "[::1]:9001" into buf and returns buf. */
char *sock_ntop(const struct sockaddr *sa, socklen_t salen, char *buf,
                size_t size);

/* Writes host and port as one would type them, "localhost:9001" or, for an
 * IPv6 literal, "[::1]:9001", into buf and returns buf: for messages about
 * an address given on the command line. */
char *host_port(const char *host, const char *port, char *buf, size_t size);
/* Room for a 255-byte DNS name in brackets, ':', a port and the NUL. */
#define HOST_PORT_LEN (255 + 2 + 1 + 5 + 1)

/* Sets O_NONBLOCK on fd: reads and writes then fail with EAGAIN instead of
 * waiting. Returns 0, or -1 with errno set. */
int set_nonblocking(int fd);

/* True for the errors accept() reports on behalf of one connection that
 * died before we took it (ECONNABORTED, and the network errors Linux passes
 * up): log them and accept the next one. */
bool accept_error_is_transient(int err);

/* When accept() fails with EMFILE or ENFILE, the connection stays queued
 * and the listener stays readable, so a server that just retries spins at
 * full CPU. A spare descriptor, opened at start-up by spare_fd_reserve(),
 * is the way out. accept_or_shed() is accept() for a blocking listener
 * with that way out built in (and close-on-exec, and EINTR retried). When
 * descriptors have run out, it sleeps in poll() until a connection is
 * queued (it never spins), then accepts it:
 *   - if a descriptor has come free, it returns the connection, as accept()
 *     would, filling sa and *salen;
 *   - if not, it closes the spare, accepts the connection into its place,
 *     closes it at once (the client sees its connection closed, instead of
 *     waiting for nothing), takes the spare back, and returns -1 with errno
 *     EMFILE.
 * Any other failure returns -1 with errno set; accept_lost_client() tells
 * the failures that cost one client from those of the listener itself.
 * Threads that accept on their own may share the one spare: each takes it
 * atomically (see shed_connection()). */
int spare_fd_reserve(void);
int accept_or_shed(int listenfd, struct sockaddr *sa, socklen_t *salen);

/* The same way out for a server whose listener is non-blocking and watched
 * by select(), poll() or epoll: call it after accept() failed with EMFILE or
 * ENFILE. It gives up the spare, accepts the next waiting connection, closes
 * it at once and takes the spare back. Returns 0 when it turned a client
 * away; -1 with errno EAGAIN when none was waiting, or another errno.
 * When it has no spare to give up (none could be opened, or another
 * thread holds it at that moment), it sleeps a tenth of a second, so that
 * the caller's retry does not spin, and fails with EMFILE. */
int shed_connection(int listenfd);

/* accept4() for a non-blocking listener watched by select(), poll() or
 * epoll, with that way out built in: the connection
 * comes back non-blocking and close-on-exec, filling sa and *salen. Returns
 * the descriptor, or -1 with errno:
 *   EAGAIN    nobody is waiting now: back to the loop;
 *   EMFILE, ENFILE  out of descriptors: the waiting client was turned away
 *             through shed_connection(), so the listener does not stay
 *             readable and the loop does not spin;
 *   an error of accept_error_is_transient(): that client died in the queue;
 *   anything else: the listener itself failed.
 * accept_lost_client() tells the middle two from the rest. */
int accept_nonblock(int listenfd, struct sockaddr *sa, socklen_t *salen);

/* True for the errors of accept_or_shed() and accept_nonblock() that cost
 * one client and
 * nothing more: log them and accept the next. */
bool accept_lost_client(int err);

#endif
