/* tests/fuzz/fuzz_readline.c -- libFuzzer harness for readline().
 *
 * The input is a 3-byte header and then the data. The data goes into one
 * end of a socketpair; readline() reads the other end until it returns 0,
 * and every piece it returns is checked against the data:
 *
 *   - the pieces, put end to end, are the data, byte for byte;
 *   - a piece is at most maxlen - 1 bytes and is followed by a NUL;
 *   - a '\n' can only be a piece's last byte;
 *   - a piece that neither ends in '\n' nor fills maxlen - 1 bytes is the
 *     last one before end of input, or before the error that stopped it;
 *   - 0 comes only once every byte has been returned, and comes again if
 *     asked again (end of input is not a one-off event).
 *
 * Header, byte by byte (a missing byte counts as 0):
 *   0  maxlen of the even-numbered calls (see maxlen_from())
 *   1  maxlen of the odd-numbered calls: one reader, two caller buffers
 *   2  0: the data is written all at once, then the write side is shut
 *      down, and the reader's socket blocks, as io.h expects;
 *      1-255: the data is written that many bytes at a time, and the
 *      reader's socket is non-blocking. readline() then meets EAGAIN,
 *      often after part of a line: that is the one way to reach the path
 *      where it keeps the bytes already taken and reports the error on the
 *      next call. Each EAGAIN makes the harness write the next chunk.
 *
 * The Makefile builds this twice: with the default READLINE_BUFSIZE, and
 * with 7, where even short inputs cross many refills. Output buffers and
 * the line reader come from malloc() at their exact size, so that
 * AddressSanitizer sees a single byte written past either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"

/* All of it must fit in the socket's buffer at once: in the blocking mode
 * there is nobody else to read while we write. */
enum { HEADER_LEN = 3, MAX_DATA = 64 * 1024 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports which invariant failed and aborts: libFuzzer saves the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static _Noreturn void check_failed(const char *what, int line)
{
    fprintf(stderr, "fuzz_readline.c:%d: check failed: %s\n", line, what);
    abort();
}

/* Trouble with the harness's own set-up, not a finding about readline. */
static _Noreturn void setup_failed(const char *what)
{
    perror(what);
    abort();
}

/* A header byte as a maxlen: 0..239 give 2..241, where the small values
 * are the interesting ones; the last 16 pick sizes around the powers of
 * two and READLINE_BUFSIZE, where a piece ends exactly at a refill. */
static size_t maxlen_from(uint8_t b)
{
    static const size_t big[16] = {
        255,
        256,
        257,
        1024,
        READLINE_BUFSIZE - 1,
        READLINE_BUFSIZE,
        READLINE_BUFSIZE + 1,
        READLINE_BUFSIZE + 2,
        2 * READLINE_BUFSIZE - 1,
        2 * READLINE_BUFSIZE,
        2 * READLINE_BUFSIZE + 1,
        3 * READLINE_BUFSIZE + 5,
        8191,
        8193,
        16384,
        MAX_DATA + 2,
    };
    size_t maxlen = b < 240 ? 2 + (size_t)b : big[b - 240];

    return maxlen < 2 ? 2 : maxlen;
}

/* The writing end of the socketpair and how far through the data it is. */
struct feeder {
    int fd;
    const uint8_t *data;
    size_t size;
    size_t chunk; /* bytes per feed() */
    size_t fed;   /* bytes written so far */
    bool shut;    /* shutdown(SHUT_WR) done: the reader sees end of input */
};

/* Writes the next chunk; after the last one, shuts the write side down. */
static void feed(struct feeder *f)
{
    size_t n = f->size - f->fed < f->chunk ? f->size - f->fed : f->chunk;

    if (n > 0) {
        ssize_t w = write(f->fd, f->data + f->fed, n);
        /* A short write would leave bytes that nobody writes later. */
        if (w != (ssize_t)n)
            setup_failed("write to the socketpair");
        f->fed += n;
    }
    if (f->fed == f->size && !f->shut) {
        if (shutdown(f->fd, SHUT_WR) == -1)
            setup_failed("shutdown");
        f->shut = true;
    }
}

/* Calls readline() until it returns 0 and checks every piece. */
static void read_all(struct line_reader *lr, struct feeder *f, size_t maxlen[2],
                     char *out[2], bool blocking)
{
    size_t got = 0;     /* bytes returned so far */
    bool ended = false; /* the last piece was short: EOF or an error next */

    for (size_t call = 0;; call++) {
        /* Each call either returns a byte or makes us feed one more. */
        CHECK(call <= 2 * f->size + 2);
        size_t len = maxlen[call % 2];
        char *buf = out[call % 2];
        ssize_t n = readline(lr, buf, len);

        if (n == -1) {
            /* EAGAIN, only from the non-blocking socket, and only once the
             * reader has handed back every byte written so far: it holds
             * no bytes back when it has had to call read() again. */
            CHECK(errno == EAGAIN);
            CHECK(!blocking && !f->shut);
            CHECK(got == f->fed);
            feed(f);
            ended = false;
            continue;
        }
        if (n == 0) {
            CHECK(f->shut && got == f->size);
            break;
        }
        CHECK(!ended);
        CHECK((size_t)n <= len - 1);
        CHECK(buf[n] == '\0');
        CHECK(got + (size_t)n <= f->size);
        CHECK(memcmp(buf, f->data + got, (size_t)n) == 0);
        CHECK(memchr(buf, '\n', (size_t)n - 1) == NULL);
        ended = buf[n - 1] != '\n' && (size_t)n < len - 1;
        got += (size_t)n;
    }
    CHECK(readline(lr, out[0], maxlen[0]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t header[HEADER_LEN] = {0};
    size_t hlen = size < HEADER_LEN ? size : HEADER_LEN;
    int sv[2];

    memcpy(header, data, hlen);
    data += hlen;
    size -= hlen;
    if (size > MAX_DATA)
        size = MAX_DATA;

    size_t maxlen[2] = {maxlen_from(header[0]), maxlen_from(header[1])};
    char *out[2] = {malloc(maxlen[0]), malloc(maxlen[1])};
    struct line_reader *lr = malloc(sizeof *lr);
    bool blocking = header[2] == 0;
    struct feeder f = {
        .data = data,
        .size = size,
        .chunk = blocking ? MAX_DATA : header[2],
    };

    if (out[0] == NULL || out[1] == NULL || lr == NULL)
        setup_failed("malloc");
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        setup_failed("socketpair");
    /* Room for all the data and the kernel's bookkeeping, whatever the
     * system's default (the kernel doubles the value given). */
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){MAX_DATA * 2},
                   sizeof(int)) == -1)
        setup_failed("setsockopt");
    f.fd = sv[0];
    if (!blocking && fcntl(sv[1], F_SETFL, O_NONBLOCK) == -1)
        setup_failed("fcntl");
    readline_init(lr, sv[1]);

    /* maxlen below 2 leaves no room for a byte and the NUL: EINVAL, and
     * the reader is untouched (read_all() would notice a lost byte). */
    CHECK(readline(lr, out[0], 1) == -1 && errno == EINVAL);
    CHECK(readline(lr, out[0], 0) == -1 && errno == EINVAL);

    feed(&f);
    read_all(lr, &f, maxlen, out, blocking);

    close(sv[0]);
    close(sv[1]);
    free(lr);
    free(out[0]);
    free(out[1]);
    return 0;
}
