/* net.c -- tcp_listen, tcp_connect, sock_ntop and accept()'s errors; see
 * net.h. tcp_listen() is the sequence a first server spells out by hand,
 * getaddrinfo(), socket(), setsockopt(), bind() and listen(), packaged. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct addrinfo *resolve(const char *host, const char *port, int flags,
                                int *gai_err)
{
    struct addrinfo hints;
    struct addrinfo *res;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC; /* IPv4 or IPv6, whatever host names */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    *gai_err = getaddrinfo(host, port, &hints, &res);
    if (*gai_err == EAI_SYSTEM) {
        *gai_err = 0; /* errno says what went wrong */
        return NULL;
    }
    return *gai_err == 0 ? res : NULL;
}

/* Closes fd without losing the errno of the call that failed; returns -1. */
static int close_keep_errno(int fd)
{
    int saved = errno;

    close(fd);
    errno = saved;
    return -1;
}

int tcp_listen(const char *host, const char *port, int backlog, int *gai_err)
{
    return tcp_listen_with(host, port, backlog, NULL, NULL, gai_err);
}

int tcp_listen_with(const char *host, const char *port, int backlog,
                    int (*prepare)(int fd, void *arg), void *arg, int *gai_err)
{
    struct addrinfo *res = resolve(host, port, AI_PASSIVE, gai_err);
    int fd = -1;
    const int on = 1;

    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd == -1)
            continue;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
            (prepare == NULL || prepare(fd, arg) == 0) &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog) == 0)
            break;
        fd = close_keep_errno(fd);
    }
    if (res != NULL)
        freeaddrinfo(res);
    return fd;
}

int tcp_connect(const char *host, const char *port, int *gai_err)
{
    struct addrinfo *res = resolve(host, port, 0, gai_err);
    int fd = -1;

    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd == -1)
            continue;
        /* connect() interrupted by a signal goes on in the background;
         * calling it again would fail with EALREADY. Our callers do not
         * catch signals before they connect, so EINTR is not expected. */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        fd = close_keep_errno(fd);
    }
    if (res != NULL)
        freeaddrinfo(res);
    return fd;
}

char *sock_ntop(const struct sockaddr *sa, socklen_t salen, char *buf,
                size_t size)
{
    char host[INET6_ADDRSTRLEN];

    /* Ports and addresses travel in network byte order (big-endian):
     * ntohs() turns the port back into a number this CPU can print. */
    if (sa->sa_family == AF_INET &&
        salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6 &&
               salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "(address family %d)", sa->sa_family);
    }
    return buf;
}

char *host_port(const char *host, const char *port, char *buf, size_t size)
{
    if (strchr(host, ':') != NULL)
        snprintf(buf, size, "[%s]:%s", host, port);
    else
        snprintf(buf, size, "%s:%s", host, port);
    return buf;
}

int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags == -1)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

bool accept_error_is_transient(int err)
{
    switch (err) {
    case ECONNABORTED: /* the client reset before we accepted it */
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ENOBUFS: /* memory pressure: may be better next time */
    case ENOMEM:
    case EPERM: /* a firewall rule refused this one */
        return true;
    default:
        return false;
    }
}

/* One spare for the process, which several threads that accept may want
 * at once: each takes it with an atomic exchange, so that only one holds
 * it, and puts a new one back the same way. */
static atomic_int spare_fd = -1;

int spare_fd_reserve(void)
{
    int expected = -1, fd;

    if (atomic_load(&spare_fd) != -1)
        return 0;
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    if (!atomic_compare_exchange_strong(&spare_fd, &expected, fd))
        close(fd); /* another thread put one back first */
    return 0;
}

int shed_connection(int listenfd)
{
    int fd, saved, spare = atomic_exchange(&spare_fd, -1);

    if (spare == -1 && spare_fd_reserve() == 0)
        spare = atomic_exchange(&spare_fd, -1);
    if (spare == -1) {
        /* No spare to give up: none could be opened, or another thread
         * holds it now. Retrying at once would spin, so back off for a
         * tenth of a second: the one place where the suite waits on the
         * clock, because no event announces a free descriptor. */
        (void)poll(NULL, 0, 100);
        errno = EMFILE;
        return -1;
    }
    close(spare);
    fd = accept4(listenfd, NULL, NULL, SOCK_CLOEXEC);
    saved = errno;
    if (fd != -1)
        close(fd);
    spare_fd_reserve();
    errno = saved;
    return fd == -1 ? -1 : 0;
}

int accept_nonblock(int listenfd, struct sockaddr *sa, socklen_t *salen)
{
    int fd = accept4(listenfd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1 && errno == EWOULDBLOCK)
        errno = EAGAIN;
    if (fd != -1 || (errno != EMFILE && errno != ENFILE))
        return fd;
    int err = errno;
    if (shed_connection(listenfd) == -1)
        return -1; /* EAGAIN: nobody was waiting after all */
    errno = err;
    return -1;
}

bool accept_lost_client(int err)
{
    return err == EMFILE || err == ENFILE || accept_error_is_transient(err);
}

int accept_or_shed(int listenfd, struct sockaddr *sa, socklen_t *salen)
{
    struct pollfd pfd = {.fd = listenfd, .events = POLLIN};
    socklen_t room = salen ? *salen : 0;
    int fd;

    while ((fd = accept4(listenfd, sa, salen, SOCK_CLOEXEC)) == -1 &&
           errno == EINTR)
        continue;
    if (fd != -1 || (errno != EMFILE && errno != ENFILE))
        return fd;
    /* accept() takes a descriptor before it looks for a connection, so
     * EMFILE says nothing about the queue: wait for a connection first. */
    while (poll(&pfd, 1, -1) == -1) {
        if (errno != EINTR)
            return -1;
    }
    if (salen)
        *salen = room;
    fd = accept4(listenfd, sa, salen, SOCK_CLOEXEC);
    if (fd != -1 || (errno != EMFILE && errno != ENFILE))
        return fd;
    if (shed_connection(listenfd) == -1)
        return -1;
    errno = EMFILE;
    return -1;
}
