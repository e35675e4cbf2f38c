/* log.h -- messages on stderr: the error functions and the contract's lines.
 *
 * The error functions use Stevens' names. Each prints one line,
 *     program: message: ENAME (description)
 * with a single write(2), so lines from several threads or processes never
 * interleave, and each leaves errno as it found it.
 *
 *     err_sys   fatal, with errno       err_quit  fatal, without errno
 *     err_ret   log, with errno         err_msg   log, without errno
 *
 * The fatal ones exit with status 1. The log_* functions print the lines the
 * suite's contract defines; the tests read them.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

_Noreturn void err_sys(const char *fmt, ...) PRINTF_LIKE(1, 2);
_Noreturn void err_quit(const char *fmt, ...) PRINTF_LIKE(1, 2);
void err_ret(const char *fmt, ...) PRINTF_LIKE(1, 2);
void err_msg(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* One line on stderr, without the program name: the server's log. */
void logmsg(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* With quiet set (-q), log_accepted() and log_closed() print nothing. */
void log_set_quiet(bool on);

/* "listening on 127.0.0.1:9001 (pid 1234)", from getsockname(listenfd);
 * "listening on 127.0.0.1:9001 (udp, pid 1234)" for a UDP socket. */
void log_listening(int listenfd);
/* "accepted 127.0.0.1:40000" */
void log_accepted(const char *peer);
/* "closed 127.0.0.1:40000 (12 bytes)" */
void log_closed(const char *peer, unsigned long long nbytes);
/* "served 3 connections, echoed 36 bytes": the server's last line. */
void log_stats(unsigned long long nconns, unsigned long long nbytes);
/* The same line, formatted by hand into a stack buffer and written with
 * one write(2): async-signal-safe, for a stop signal's handler (signals.h),
 * where printf() could deadlock on a lock the interrupted code holds. what
 * names what n counts: "connections", or "datagrams" for 01's UDP mode. */
void log_stats_signal_safe(const char *what, unsigned long long n,
                           unsigned long long nbytes);
/* The same line with a lesson's own counters after a comma: "served 3
 * connections, echoed 36 bytes, 9 epoll_wait calls". more may be NULL. */
void log_stats_more(unsigned long long nconns, unsigned long long nbytes,
                    const char *more);

#endif
