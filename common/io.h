/* io.h -- readn, writen and readline for blocking descriptors.
 *
 * read() and write() on a socket may move fewer bytes than asked: TCP is a
 * byte stream, and one write by the peer may arrive as several reads, or
 * several writes as one. These helpers loop until the count is met, and
 * retry calls interrupted by a signal (EINTR). They never print and never
 * exit: they return -1 with errno set and let the caller decide.
 */
#ifndef IO_H
#define IO_H

#include <stddef.h>
#include <sys/types.h>

/* Reads exactly n bytes unless EOF comes first. Returns the number read
 * (less than n only at EOF), or -1 with errno set. */
ssize_t readn(int fd, void *buf, size_t n);

/* Writes all n bytes. Returns n, or -1 with errno set (EPIPE when the peer
 * has gone; SIGPIPE must be ignored for that, see signals.h). */
ssize_t writen(int fd, const void *buf, size_t n);

/* The buffer size of a line reader. Tests build with a tiny one to reach
 * the edges (a line split across refills) with short inputs. */
#ifndef READLINE_BUFSIZE
#define READLINE_BUFSIZE 4096
#endif

/* A line reader belongs to one descriptor and is owned by its caller: no
 * static state, so threads with a reader each need no lock. Bytes the reader
 * has buffered are not seen by a plain read() on the same descriptor: once
 * a descriptor is read with readline(), read it only with readline(). */
struct line_reader {
    int fd;
    int saved_errno; /* an error met after a partial line, reported next */
    size_t pos;      /* next unreturned byte in buf */
    size_t len;      /* bytes held in buf */
    char buf[READLINE_BUFSIZE];
};

void readline_init(struct line_reader *lr, int fd);

/* Stores the next line, its '\n' included, in buf, followed by a NUL.
 * A line longer than maxlen - 1 bytes comes back in pieces of maxlen - 1;
 * so does the last line of the input when it has no '\n'. NUL bytes are
 * data: use the return value, not strlen(). Returns the number of bytes
 * stored (NUL excluded), 0 at end of input, -1 with errno set on error
 * (EINVAL if maxlen < 2). It is meant for blocking descriptors: on a
 * non-blocking one, an EAGAIN met after a partial line is reported on the
 * next call even if data has come since, which an edge-triggered loop
 * would wait on for ever. */
ssize_t readline(struct line_reader *lr, void *buf, size_t maxlen);

#endif
