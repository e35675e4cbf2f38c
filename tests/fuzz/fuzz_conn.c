/* tests/fuzz/fuzz_conn.c -- libFuzzer harness for conn_read() and
 * conn_flush(), the output buffer of lessons 04 to 06.
 *
 * A struct conn serves one end of a non-blocking AF_UNIX socketpair, as a
 * server of those lessons serves a client, and the harness plays the client
 * on the other end. The input is a script: a header byte, then two bytes a
 * step, what to do and how much (see run_step()). The client sends and
 * reads in any amounts, half-closes or closes; the server side reads only
 * while conn_wants_read() says so, as a well-behaved event loop does, and
 * flushes. The server's send buffer is small, so that its writes fall short
 * and the output buffer fills, moves and grows.
 *
 * Checked after every step, while the connection has not failed:
 *   - what the client receives is, byte for byte, the start of what it
 *     sent (each byte sent is a function of its position: see stream);
 *   - every byte the server read has been written back or is pending;
 *   - pending output stays below CONN_HIGH_WATER + CONN_READ_MAX: reading
 *     stops at the mark, and one read adds at most CONN_READ_MAX;
 *   - the buffer's bookkeeping is consistent, and its memory is released
 *     once it has drained;
 *   - the connection fails only after the client closed its end.
 * When the script ends, the client half-closes and reads, the server
 * serves until conn_finished(), and the client must have every byte back.
 *
 * Header byte: the server's SO_SNDBUF, from the table in sndbuf_from().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "signals.h"

enum {
    MAX_STEPS = 256,         /* the rest of a longer input is ignored */
    MAX_AMOUNT = 128 * 1024, /* the most one client step sends or reads */
    PERIOD = 1048573,        /* the client's stream repeats after this */
    NOT_SET = -1,            /* for sndbuf_from(): keep the default */
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static _Noreturn void check_failed(const char *what, int line)
{
    fprintf(stderr, "fuzz_conn.c:%d: check failed: %s\n", line, what);
    abort();
}

/* Trouble with the harness's own set-up, not a finding about conn.c. */
static _Noreturn void setup_failed(const char *what)
{
    perror(what);
    abort();
}

/* What the client sends: byte i of its stream is stream[i % PERIOD], a
 * hash of i, so that an echo shifted, repeated or reordered shows (unless
 * by a multiple of PERIOD, a prime). The table holds MAX_AMOUNT bytes more
 * than the period, so that any step's bytes are one slice of it. Built
 * once: a byte-by-byte loop in each step would cost more than the rest. */
static uint8_t stream[PERIOD + MAX_AMOUNT];

static const uint8_t *stream_at(uint64_t pos)
{
    return stream + pos % PERIOD;
}

/* NOLINTNEXTLINE(readability-non-const-parameter): libFuzzer's signature */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof stream; i++)
        stream[i] = (uint8_t)(((uint32_t)(i % PERIOD) * 2654435761u) >> 24);
    /* As every server does: a write to a closed client fails with EPIPE
     * instead of killing us. */
    sigpipe_ignore();
    return 0;
}

/* 1 to 128 bytes for the small values, then 1 KiB steps up to 128 KiB. */
static size_t amount_from(uint8_t b)
{
    return b < 128 ? (size_t)b + 1 : (size_t)(b - 127) * 1024;
}

/* conn_read()'s size: 0 (which must fail with EINVAL and change nothing),
 * 1 to 127, 512-byte steps up to 65024, and, for 255, more than
 * CONN_READ_MAX, which conn_read() caps. */
static size_t read_size_from(uint8_t b)
{
    if (b < 128)
        return b;
    if (b == 255)
        return SIZE_MAX;
    return (size_t)(b - 127) * 512;
}

/* The server's SO_SNDBUF. The kernel doubles what it is given and rounds
 * 1 up to its minimum, a few KiB. */
static int sndbuf_from(uint8_t b)
{
    static const int sizes[4] = {1, 16 * 1024, 64 * 1024, NOT_SET};

    return sizes[b % 4];
}

/* The harness's view of both ends. */
struct session {
    struct conn *c;     /* NULL once the server has closed */
    int clientfd;       /* -1 once the client has closed */
    bool client_shut;   /* the client half-closed (or closed) */
    uint64_t sent;      /* bytes the client has written */
    uint64_t received;  /* bytes the client has read back */
    uint64_t serv_read; /* bytes conn_read() returned, in all */
    uint8_t *buf;       /* MAX_AMOUNT bytes, for the client's reads */
};

/* A failure is acceptable only once the client has closed its end: that
 * is when reads fail with ECONNRESET and writes with EPIPE. */
static void check_failure(const struct session *s)
{
    CHECK(s->c->error != 0 && s->c->failed_call != NULL);
    CHECK(s->clientfd == -1);
}

static void client_send(struct session *s, size_t n)
{
    ssize_t w;

    if (s->client_shut)
        return;
    w = write(s->clientfd, stream_at(s->sent), n);
    if (w == -1 && errno != EAGAIN)
        setup_failed("client write");
    if (w > 0)
        s->sent += (uint64_t)w;
}

/* One read of at most n bytes. Returns the number read, 0 for nothing. */
static size_t client_recv(struct session *s, size_t n)
{
    ssize_t r;

    if (s->clientfd == -1)
        return 0;
    r = read(s->clientfd, s->buf, n);
    if (r == -1) {
        /* A reset would mean the server had closed with our bytes unread;
         * it closes only once finished. */
        CHECK(errno == EAGAIN);
        return 0;
    }
    if (r == 0) {
        CHECK(s->c == NULL); /* end of input only once the server closed */
        return 0;
    }
    CHECK(memcmp(s->buf, stream_at(s->received), (size_t)r) == 0);
    s->received += (uint64_t)r;
    CHECK(s->c == NULL || s->received <= s->c->nbytes);
    return (size_t)r;
}

static void client_recv_all(struct session *s)
{
    while (client_recv(s, MAX_AMOUNT) > 0)
        continue;
}

/* One conn_read() of size bytes, as the server calls it when the socket is
 * readable and conn_wants_read() says yes. */
static void server_read(struct session *s, size_t size)
{
    size_t before = conn_pending(s->c);
    ssize_t n;

    if (!conn_wants_read(s->c))
        return;
    n = conn_read(s->c, size);
    if (size == 0) {
        CHECK(n == -1 && errno == EINVAL);
        CHECK(s->c->error == 0 && conn_pending(s->c) == before);
        return;
    }
    if (n > 0) {
        CHECK((size_t)n <= size && n <= CONN_READ_MAX);
        s->serv_read += (uint64_t)n;
    } else if (n == 0) {
        /* End of input comes after every byte the client sent. */
        CHECK(s->c->peer_done && s->client_shut);
        CHECK(s->clientfd == -1 || s->serv_read == s->sent);
    } else if (errno == EAGAIN) {
        /* Nothing to read: AF_UNIX delivers a write at once, so the
         * server has read all there is. */
        CHECK(s->c->error == 0);
        CHECK(s->clientfd == -1 || s->serv_read == s->sent);
    } else {
        check_failure(s);
    }
}

static void server_flush(struct session *s)
{
    if (s->c->error != 0)
        return;
    if (conn_flush(s->c) == -1) {
        check_failure(s);
        return;
    }
    /* Drained: an idle connection owns no buffer. */
    if (conn_pending(s->c) == 0)
        CHECK(s->c->out == NULL && s->c->out_cap == 0);
}

/* One turn of an event loop: read if it wants to read, flush if it wants
 * to write. */
static void server_turn(struct session *s)
{
    if (conn_wants_read(s->c))
        server_read(s, CONN_READ_MAX);
    if (conn_wants_write(s->c))
        server_flush(s);
}

static void client_end(struct session *s, bool full_close)
{
    if (s->clientfd == -1)
        return;
    if (full_close) {
        close(s->clientfd);
        s->clientfd = -1;
        s->client_shut = true;
    } else if (!s->client_shut) {
        if (shutdown(s->clientfd, SHUT_WR) == -1)
            setup_failed("shutdown");
        s->client_shut = true;
    }
}

/* The invariants that hold between any two steps. */
static void check_conn(const struct session *s)
{
    const struct conn *c = s->c;
    size_t pending = conn_pending(c);

    if (c->error != 0) {
        check_failure(s);
        CHECK(!conn_wants_read(c) && !conn_wants_write(c));
        CHECK(conn_finished(c));
        return;
    }
    CHECK(c->out_start <= c->out_end && c->out_end <= c->out_cap);
    CHECK((c->out == NULL) == (c->out_cap == 0));
    CHECK(c->out_cap < 2 * (size_t)(CONN_HIGH_WATER + CONN_READ_MAX));
    CHECK(pending < CONN_HIGH_WATER + CONN_READ_MAX);
    CHECK(s->serv_read == c->nbytes + pending);
    CHECK(s->serv_read <= s->sent);
    CHECK(s->received <= c->nbytes);
    CHECK(conn_wants_read(c) == (!c->peer_done && pending < CONN_HIGH_WATER));
    CHECK(conn_wants_write(c) == (pending > 0));
    CHECK(conn_finished(c) == (c->peer_done && pending == 0));
}

/* One step of the script. */
static void run_step(struct session *s, uint8_t op, uint8_t arg)
{
    switch (op % 8) {
    case 0:
    case 1:
        client_send(s, amount_from(arg));
        break;
    case 2:
        client_recv(s, amount_from(arg));
        break;
    case 3:
        client_recv_all(s);
        break;
    case 4:
        server_read(s, read_size_from(arg));
        break;
    case 5:
        server_flush(s);
        break;
    case 6:
        server_turn(s);
        break;
    case 7:
        client_end(s, arg % 2 == 1);
        break;
    }
}

/* After the script: the client half-closes and reads everything, the
 * server serves until the connection is finished. Each round must move
 * something, or the two ends wait for each other for ever. */
static void finish(struct session *s)
{
    client_end(s, false);
    while (!conn_finished(s->c)) {
        uint64_t before[3] = {s->received, s->serv_read, s->c->nbytes};
        bool was_done = s->c->peer_done;

        client_recv_all(s);
        server_turn(s);
        check_conn(s);
        CHECK(s->c->error != 0 || was_done != s->c->peer_done ||
              before[0] != s->received || before[1] != s->serv_read ||
              before[2] != s->c->nbytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct session s = {.clientfd = -1};
    int sv[2];
    int sndbuf = sndbuf_from(size > 0 ? data[0] : 0);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) == -1)
        setup_failed("socketpair");
    if (sndbuf != NOT_SET &&
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == -1)
        setup_failed("setsockopt");
    s.c = conn_new(sv[0], (struct sockaddr *)&addr, sizeof(sa_family_t));
    s.buf = malloc(MAX_AMOUNT);
    if (s.c == NULL || s.buf == NULL)
        setup_failed("malloc");
    s.clientfd = sv[1];

    for (size_t i = 1; i + 1 < size && i / 2 < MAX_STEPS; i += 2) {
        run_step(&s, data[i], data[i + 1]);
        check_conn(&s);
        if (conn_finished(s.c))
            break; /* the server would close it now */
    }
    finish(&s);

    bool failed = s.c->error != 0;
    unsigned long long nbytes = s.c->nbytes;
    conn_free(s.c);
    s.c = NULL;
    if (!failed && s.clientfd != -1) {
        /* The server has closed: the rest comes, then end of input. */
        client_recv_all(&s);
        CHECK(read(s.clientfd, s.buf, 1) == 0);
        CHECK(s.received == s.sent && nbytes == s.sent);
    }
    if (s.clientfd != -1)
        close(s.clientfd);
    free(s.buf);
    return 0;
}
