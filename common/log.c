/* log.c -- the error functions and the log lines; see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

enum { LINE_MAX_LEN = 1024 };

static bool quiet;

/* Formats "prefix: message[: ENAME (description)]\n" into one buffer and
 * writes it with one call. A line longer than the buffer is cut, never
 * overflowed. */
static void emit(bool with_prog, int errnum, const char *fmt, va_list ap)
    PRINTF_LIKE(3, 0);

static void emit(bool with_prog, int errnum, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    size_t len = 0;
    int n;

    if (with_prog) {
        n = snprintf(line, sizeof line, "%s: ", program_invocation_short_name);
        len = n > 0 ? (size_t)n : 0;
        if (len > sizeof line - 1) /* argv[0] is whatever exec() was given */
            len = sizeof line - 1;
    }
    n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (n > 0)
        len += (size_t)n;
    if (len > sizeof line - 1)
        len = sizeof line - 1;
    if (errnum != 0) {
        /* The _np pair, not strerror(): MT-Safe, for threaded servers. */
        const char *name = strerrorname_np(errnum);
        const char *desc = strerrordesc_np(errnum);
        n = snprintf(line + len, sizeof line - len, ": %s (%s)",
                     name ? name : "unknown errno", desc ? desc : "unknown");
        if (n > 0)
            len += (size_t)n;
        if (len > sizeof line - 1)
            len = sizeof line - 1;
    }
    line[len++] = '\n';
    /* stderr is a log: if it is gone there is nobody left to tell. */
    if (write(STDERR_FILENO, line, len) == -1)
        return;
}

void err_sys(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    emit(true, saved, fmt, ap);
    va_end(ap);
    exit(1);
}

void err_quit(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(true, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void err_ret(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    emit(true, saved, fmt, ap);
    va_end(ap);
    errno = saved;
}

void err_msg(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    emit(true, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void logmsg(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    emit(false, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void log_set_quiet(bool on)
{
    quiet = on;
}

void log_listening(int listenfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char addr[SOCK_NTOP_LEN];

    int type = SOCK_STREAM;
    socklen_t typelen = sizeof type;

    if (getsockname(listenfd, (struct sockaddr *)&ss, &len) == -1)
        err_sys("getsockname");
    /* A UDP socket says so: it is bound, not listening for connections. */
    if (getsockopt(listenfd, SOL_SOCKET, SO_TYPE, &type, &typelen) == -1)
        err_sys("getsockopt SO_TYPE");
    logmsg("listening on %s (%spid %ld)",
           sock_ntop((struct sockaddr *)&ss, len, addr, sizeof addr),
           type == SOCK_DGRAM ? "udp, " : "", (long)getpid());
}

void log_accepted(const char *peer)
{
    if (!quiet)
        logmsg("accepted %s", peer);
}

void log_closed(const char *peer, unsigned long long nbytes)
{
    if (!quiet)
        logmsg("closed %s (%llu bytes)", peer, nbytes);
}

void log_stats(unsigned long long nconns, unsigned long long nbytes)
{
    log_stats_more(nconns, nbytes, NULL);
}

void log_stats_more(unsigned long long nconns, unsigned long long nbytes,
                    const char *more)
{
    logmsg("served %llu connections, echoed %llu bytes%s%s", nconns, nbytes,
           more ? ", " : "", more ? more : "");
}

/* Appends s at *len, as far as it fits in size - 1 bytes. */
static void append(char *buf, size_t size, size_t *len, const char *s)
{
    while (*s != '\0' && *len < size - 1)
        buf[(*len)++] = *s++;
}

/* Appends v in decimal: digits come out backwards, so into a scratch
 * buffer first. */
static void append_number(char *buf, size_t size, size_t *len,
                          unsigned long long v)
{
    char digits[21];
    size_t n = sizeof digits - 1;

    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    append(buf, size, len, digits + n);
}

void log_stats_signal_safe(const char *what, unsigned long long n,
                           unsigned long long nbytes)
{
    char line[96];
    size_t len = 0;
    int saved = errno;

    append(line, sizeof line, &len, "served ");
    append_number(line, sizeof line, &len, n);
    append(line, sizeof line, &len, " ");
    append(line, sizeof line, &len, what);
    append(line, sizeof line, &len, ", echoed ");
    append_number(line, sizeof line, &len, nbytes);
    append(line, sizeof line, &len, " bytes\n");
    if (write(STDERR_FILENO, line, len) == -1) {
        /* stderr is gone: there is nobody left to tell. */
    }
    errno = saved;
}
