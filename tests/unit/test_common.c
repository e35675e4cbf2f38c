/* tests/unit/test_common.c -- the unit tests of common/, printed as TAP.
 *
 * Each test is a short function named for what it proves. The output is
 * TAP: "ok N - what" or "not ok N - what" per test, "# " diagnostics, and
 * the plan "1..N" as the last line, printed only if the run got that far.
 * The exit status is 0 if every test passed, 1 otherwise.
 *
 * The Makefile builds this file twice: build/unit/test_common, and
 * build/unit/test_common_tinybuf with READLINE_BUFSIZE 7, so that the short
 * inputs below cross readline()'s refills. Run either with no arguments.
 *
 * Nothing here may hang. alarm(20) bounds the whole run (SIGALRM's default
 * action kills us, and the runner counts that as a failure); each forked
 * child arms its own alarm, because alarms are not inherited; test sockets
 * get send and receive timeouts. Where a test waits for another thread to
 * block, it polls that thread's state in /proc: the test passes whatever
 * the poll sees, the poll only makes it likely that a signal lands inside
 * the system call, which is the case worth testing.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

enum {
    IO_TIMEOUT_SEC = 5,  /* a socket read or write that takes longer fails */
    CHILD_ALARM_SEC = 8, /* a forked child that takes longer is killed */
    CAPTURE_MAX = 8192,  /* what we keep of a child's stdout and stderr */
    LOG_LINE_MAX = 1024, /* log.c's line buffer, '\n' included */
};

static int tests_run;
static int tests_failed;
static const char *prog_name; /* what err_*() print: argv[0]'s basename */

/* ---- TAP ---------------------------------------------------------------- */

static bool check(bool cond, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void skip(const char *reason, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void diag(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Prints one test line. stdout is flushed after every line: a forked child
 * must not inherit unwritten lines and print them a second time. */
static bool check(bool cond, const char *fmt, ...)
{
    va_list ap;

    tests_run++;
    if (!cond)
        tests_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tests_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    return cond;
}

static void skip(const char *reason, const char *fmt, ...)
{
    va_list ap;

    tests_run++;
    printf("ok %d - ", tests_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # SKIP %s\n", reason);
    fflush(stdout);
}

static void diag(const char *fmt, ...)
{
    va_list ap;

    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* A set-up step failed: no test result would mean anything. */
static _Noreturn void bail_out(const char *what)
{
    printf("Bail out! %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static const char *errname(int err)
{
    const char *name = strerrorname_np(err);
    return name != NULL ? name : "(no errno)";
}

/* Writes data into out as one line of text, with '\n', NUL and the other
 * unprintable bytes escaped, for diagnostics. Cut at size, never beyond. */
static const char *escaped(const void *data, size_t len, char *out, size_t size)
{
    const unsigned char *p = data;
    size_t o = 0;

    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (p[i] == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (isprint(p[i]) && p[i] != '\\') {
            out[o++] = (char)p[i];
        } else {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
        }
    }
    out[o] = '\0';
    return out;
}

/* Says which bytes differ, when a test's comparison failed. */
static void diag_bytes(const char *label, const void *data, size_t len)
{
    char text[400];

    diag("%s (%zu bytes): \"%s\"", label, len,
         escaped(data, len, text, sizeof text));
}

/* ---- Set-up helpers ----------------------------------------------------- */

static void nap_us(long usec)
{
    struct timespec ts = {.tv_sec = usec / 1000000,
                          .tv_nsec = usec % 1000000 * 1000};

    nanosleep(&ts, NULL);
}

/* A read or write on fd that waits longer than IO_TIMEOUT_SEC fails with
 * EAGAIN: a broken helper then fails its test instead of hanging the run. */
static void bound_io(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_SEC};

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1)
        bail_out("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
}

static void make_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        bail_out("socketpair");
    bound_io(sv[0]);
    bound_io(sv[1]);
}

/* Sends data with plain write() calls, so that the readers' tests do not
 * depend on writen(), which has tests of its own. */
static void put(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            bail_out("write");
        p += n;
        len -= (size_t)n;
    }
}

/* The reading end of a socket pair that holds len bytes, then EOF. */
static int reader_with(const void *data, size_t len)
{
    int sv[2];

    make_pair(sv);
    put(sv[0], data, len);
    close(sv[0]);
    return sv[1];
}

/* The port a socket is bound to, as text. */
static void local_port(int fd, char *port, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    unsigned num;

    /* getsockname() fills ss, but clang-tidy 14's analyzer cannot see it
     * through glibc's transparent union (llvm-project#60482). */
    memset(&ss, 0, sizeof ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
        bail_out("getsockname");
    if (ss.ss_family == AF_INET6)
        num = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        num = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(port, size, "%u", num);
}

/* accept(), but -1 with ETIMEDOUT instead of blocking for ever. */
static int accept_bounded(int listenfd)
{
    struct pollfd pfd = {.fd = listenfd, .events = POLLIN};
    int n = poll(&pfd, 1, IO_TIMEOUT_SEC * 1000);

    if (n == 0)
        errno = ETIMEDOUT;
    if (n != 1)
        return -1;
    return accept4(listenfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Both ends of a TCP connection over 127.0.0.1. */
static void tcp_loopback_pair(int *client, int *server)
{
    int gai;
    char port[8];
    int listenfd = tcp_listen("127.0.0.1", "0", 1, &gai);

    if (listenfd == -1)
        bail_out("tcp_listen 127.0.0.1");
    local_port(listenfd, port, sizeof port);
    *client = tcp_connect("127.0.0.1", port, &gai);
    if (*client == -1)
        bail_out("tcp_connect 127.0.0.1");
    *server = accept_bounded(listenfd);
    if (*server == -1)
        bail_out("accept");
    close(listenfd);
}

static bool is_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    return flags != -1 && (flags & FD_CLOEXEC);
}

/* ---- Threads that block, and signals that interrupt them ---------------- */

/* True if thread tid sleeps in the kernel now (state S in
 * /proc/self/task/TID/stat). */
static bool thread_is_sleeping(pid_t tid)
{
    char path[64];
    char line[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", (long)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return false;
    n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0)
        return false;
    line[n] = '\0';
    /* The name in parentheses may hold anything, even ") S". */
    const char *paren = strrchr(line, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'S';
}

/* Polls, for up to two seconds, until thread tid sleeps. The thread said
 * it was about to make its blocking call, so a sleep is that call. */
static bool wait_until_sleeping(pid_t tid)
{
    for (int i = 0; i < 2000; i++) {
        if (thread_is_sleeping(tid))
            return true;
        nap_us(1000);
    }
    return false;
}

/* The thread id a thread publishes just before its blocking call. */
static pid_t wait_for_tid(atomic_int *tid)
{
    for (int i = 0; i < 5000 && atomic_load(tid) == 0; i++)
        nap_us(1000);
    return atomic_load(tid);
}

static atomic_int usr1_count;

static void on_usr1(int signo)
{
    (void)signo;
    atomic_fetch_add(&usr1_count, 1);
}

/* SIGUSR1 is caught without SA_RESTART for the whole run: a read() or
 * write() it interrupts then fails with EINTR, or returns a short count,
 * instead of being restarted by the kernel. That is what the helpers must
 * cope with. Only the tests send SIGUSR1, and only to their own threads. */
static void catch_usr1(void)
{
    struct sigaction sa = {.sa_handler = on_usr1};

    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGUSR1, &sa, NULL) == -1)
        bail_out("sigaction SIGUSR1");
}

/* Sends SIGUSR1 to thread th `times` times, each time once the thread
 * sleeps and then once the handler has run. Returns how many signals met
 * the thread asleep, that is, inside its system call. */
static int interrupt_while_blocked(pthread_t th, pid_t tid, int times)
{
    int asleep = 0;

    for (int i = 0; i < times; i++) {
        if (wait_until_sleeping(tid))
            asleep++;
        int before = atomic_load(&usr1_count);
        if (pthread_kill(th, SIGUSR1) != 0)
            break;
        for (int j = 0; j < 2000 && atomic_load(&usr1_count) == before; j++)
            nap_us(1000);
    }
    return asleep;
}

/* A thread that makes one readn() or readline() call, for another thread
 * to interrupt. */
struct blocked_read {
    int fd;
    struct line_reader *lr; /* readline() if set, else readn() of want */
    size_t want;
    atomic_int tid; /* published just before the call */
    char buf[64];
    ssize_t result;
    int err;
};

static void *blocked_read_main(void *arg)
{
    struct blocked_read *br = arg;

    atomic_store(&br->tid, (int)gettid());
    if (br->lr != NULL)
        br->result = readline(br->lr, br->buf, sizeof br->buf);
    else
        br->result = readn(br->fd, br->buf, br->want);
    br->err = errno;
    return NULL;
}

/* Waits, for up to IO_TIMEOUT_SEC, until the reader has taken every byte
 * queued on fd (FIONREAD reads 0). */
static bool wait_until_drained(int fd)
{
    for (int i = 0; i < IO_TIMEOUT_SEC * 10000; i++) {
        int queued;
        if (ioctl(fd, FIONREAD, &queued) == -1)
            return false;
        if (queued == 0)
            return true;
        nap_us(100);
    }
    return false;
}

/* A writer thread that sends data one byte per write(), each time waiting
 * until the reader has taken the byte before, so that every read() finds
 * exactly one byte; then it closes its end. */
struct trickle {
    int fd;      /* the end written to */
    int peer_fd; /* the reader's end, watched with FIONREAD */
    const char *data;
    size_t len;
    bool ok;
};

static void *trickle_main(void *arg)
{
    struct trickle *t = arg;

    t->ok = true;
    for (size_t i = 0; i < t->len && t->ok; i++)
        t->ok =
            write(t->fd, t->data + i, 1) == 1 && wait_until_drained(t->peer_fd);
    close(t->fd);
    return NULL;
}

static void start_trickle(pthread_t *th, struct trickle *t)
{
    errno = pthread_create(th, NULL, trickle_main, t);
    if (errno != 0)
        bail_out("pthread_create");
}

/* ---- Forked children ---------------------------------------------------- */

/* What a child did: how it ended and what it wrote. */
struct child {
    pid_t pid;
    int status; /* from waitpid() */
    char out[CAPTURE_MAX];
    size_t out_len;
    char err[CAPTURE_MAX];
    size_t err_len;
};

/* A child's body. Its return value becomes the exit status. */
typedef int child_fn(void *arg);

static void slurp(int fd, char *buf, size_t size, size_t *len)
{
    ssize_t n = pread(fd, buf, size - 1, 0);

    *len = n > 0 ? (size_t)n : 0;
    buf[*len] = '\0';
}

/* Runs fn(arg) in a forked child whose stdout and stderr go to memory
 * files, waits for it, and fills c. A child that runs longer than
 * CHILD_ALARM_SEC is killed by SIGALRM: alarms are not inherited. */
static void run_child(child_fn *fn, void *arg, struct child *c)
{
    int out = memfd_create("child-stdout", MFD_CLOEXEC);
    int err = memfd_create("child-stderr", MFD_CLOEXEC);

    if (out == -1 || err == -1)
        bail_out("memfd_create");
    fflush(stdout);
    fflush(stderr);
    c->pid = fork();
    if (c->pid == -1)
        bail_out("fork");
    if (c->pid == 0) {
        if (dup2(out, STDOUT_FILENO) == -1 || dup2(err, STDERR_FILENO) == -1)
            _exit(125);
        alarm(CHILD_ALARM_SEC);
        /* exit(), not _exit(): what the child printed with stdio must
         * reach the memory file. */
        exit(fn(arg));
    }
    if (waitpid(c->pid, &c->status, 0) == -1)
        bail_out("waitpid");
    slurp(out, c->out, sizeof c->out, &c->out_len);
    slurp(err, c->err, sizeof c->err, &c->err_len);
    close(out);
    close(err);
}

static bool exited_with(const struct child *c, int code)
{
    return WIFEXITED(c->status) && WEXITSTATUS(c->status) == code;
}

/* Everything about a child whose test failed. */
static void diag_child(const struct child *c)
{
    if (WIFEXITED(c->status))
        diag("child exited with status %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        diag("child killed by signal %d (SIG%s)", WTERMSIG(c->status),
             sigabbrev_np(WTERMSIG(c->status)));
    diag_bytes("child's stdout", c->out, c->out_len);
    diag_bytes("child's stderr", c->err, c->err_len);
}

/* A child that runs several checks returns a bit per failed check, from
 * bit 1 up; status 1 is left to bail_out() and err_sys(): set-up failed. */
#define FAILED_BIT(k) (2 << (k))

static bool child_passed(const struct child *c, int k)
{
    return WIFEXITED(c->status) && WEXITSTATUS(c->status) != 1 &&
           (WEXITSTATUS(c->status) & FAILED_BIT(k)) == 0;
}

/* One test line per check a child ran, what[k] naming check k; the
 * child's output follows as diagnostics if any failed. */
static void check_child_bits(const struct child *c, const char *topic,
                             const char *const what[], size_t n)
{
    bool all = true;

    for (size_t k = 0; k < n; k++)
        all &= check(child_passed(c, (int)k), "%s: %s", topic, what[k]);
    if (!all)
        diag_child(c);
}

/* ---- readn -------------------------------------------------------------- */

static void test_readn_gathers_one_byte_writes(void)
{
    static const char data[] = "sent to readn one byte per write()";
    struct trickle t = {.data = data, .len = sizeof data - 1};
    char buf[sizeof data] = "";
    pthread_t th;
    int sv[2];

    make_pair(sv);
    t.fd = sv[0];
    t.peer_fd = sv[1];
    start_trickle(&th, &t);
    ssize_t n = readn(sv[1], buf, sizeof data - 1);
    int err = errno;
    pthread_join(th, NULL);
    if (!check(t.ok && n == (ssize_t)sizeof data - 1 &&
                   memcmp(buf, data, sizeof data - 1) == 0,
               "readn: reads all %zu bytes sent one byte per write()",
               sizeof data - 1)) {
        diag("readn returned %zd (errno %s), writer ok %d", n, errname(err),
             t.ok);
        diag_bytes("got", buf, n > 0 ? (size_t)n : 0);
    }
    close(sv[1]);
}

static void test_readn_returns_short_count_at_eof(void)
{
    char buf[32];
    int fd = reader_with("ten bytes!", 10);
    ssize_t n = readn(fd, buf, sizeof buf);
    int err = errno;

    if (!check(n == 10 && memcmp(buf, "ten bytes!", 10) == 0,
               "readn: returns the short count when EOF comes mid-way"))
        diag("readn returned %zd, errno %s", n, errname(err));
    close(fd);
}

static void test_readn_returns_0_at_immediate_eof(void)
{
    char buf[8];
    int fd = reader_with("", 0);
    ssize_t n = readn(fd, buf, sizeof buf);
    int err = errno;

    if (!check(n == 0, "readn: returns 0 at immediate EOF"))
        diag("readn returned %zd, errno %s", n, errname(err));
    close(fd);
}

static void test_readn_of_0_bytes_reads_nothing(void)
{
    char buf[8];
    int fd = reader_with("abcdefgh", 8);
    ssize_t zero = readn(fd, buf, 0);
    ssize_t n = readn(fd, buf, 8);

    check(zero == 0 && n == 8 && memcmp(buf, "abcdefgh", 8) == 0,
          "readn: n 0 returns 0 and leaves the input alone");
    close(fd);
}

static void test_readn_reports_ebadf(void)
{
    int p[2];
    char buf[4];

    /* A descriptor that was just closed: no other thread runs now that
     * could be handed the same number. */
    if (pipe(p) == -1)
        bail_out("pipe");
    close(p[0]);
    close(p[1]);
    errno = 0;
    ssize_t n = readn(p[0], buf, sizeof buf);
    int err = errno;
    if (!check(n == -1 && err == EBADF,
               "readn: returns -1 with errno EBADF on a closed descriptor"))
        diag("readn returned %zd, errno %s", n, errname(err));
}

/* ---- writen ------------------------------------------------------------- */

static unsigned char pattern_byte(size_t i)
{
    /* 251 is prime: no buffer or chunk size lines up with the pattern, so
     * a lost, doubled or reordered chunk shows. */
    return (unsigned char)(i % 251);
}

/* A thread that makes one writen() call, then half-closes. */
struct big_write {
    int fd;
    const unsigned char *data;
    size_t len;
    atomic_int tid; /* published just before writen() */
    atomic_bool done;
    ssize_t result;
    int err;
};

static void *big_write_main(void *arg)
{
    struct big_write *w = arg;

    atomic_store(&w->tid, (int)gettid());
    w->result = writen(w->fd, w->data, w->len);
    w->err = errno;
    atomic_store(&w->done, true);
    shutdown(w->fd, SHUT_WR); /* the reader's EOF */
    return NULL;
}

/* A blocking write() on a stream socket does not return early just because
 * the buffer is small: the kernel sleeps until it has taken everything. It
 * returns a short count when a signal without SA_RESTART interrupts it
 * after some bytes went. So the reader here drains in small reads and,
 * every few reads, interrupts the writer while it sleeps in write():
 * writen() meets hundreds of short counts. (By then each write() has moved
 * some bytes, so EINTR itself hardly ever comes here; it has its own test,
 * test_writen_retries_after_eintr.) */
static void test_writen_large_buffer_through_small_sndbuf(void)
{
    enum { BIG = 8 << 20, SMALL_READ = 1000, SIGNAL_EVERY = 32 };
    unsigned char *out = malloc(BIG);
    unsigned char *in = malloc(BIG);
    int small = 4096;
    struct big_write w = {.len = BIG, .data = out};
    size_t total = 0;
    int reads = 0, signals = 0, read_err = 0;
    pthread_t th;
    int sv[2];

    if (out == NULL || in == NULL)
        bail_out("malloc");
    for (size_t i = 0; i < BIG; i++)
        out[i] = pattern_byte(i);
    make_pair(sv);
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == -1)
        bail_out("setsockopt SO_SNDBUF");
    w.fd = sv[0];
    errno = pthread_create(&th, NULL, big_write_main, &w);
    if (errno != 0)
        bail_out("pthread_create");
    pid_t tid = wait_for_tid(&w.tid);

    for (;;) {
        unsigned char extra;
        size_t ask = BIG - total < SMALL_READ ? BIG - total : SMALL_READ;
        /* Once all BIG bytes are in, one more read must see EOF. */
        ssize_t n =
            ask > 0 ? read(sv[1], in + total, ask) : read(sv[1], &extra, 1);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            read_err = n == -1 ? errno : 0;
            break;
        }
        total += (size_t)n;
        if (ask == 0)
            break; /* a byte too many */
        if (++reads % SIGNAL_EVERY == 0 && !atomic_load(&w.done) &&
            thread_is_sleeping(tid) && pthread_kill(th, SIGUSR1) == 0)
            signals++;
    }
    pthread_join(th, NULL);
    diag("writen interrupted %d times while asleep in write()", signals);
    if (!check(w.result == BIG,
               "writen: returns 8 MiB through a small SO_SNDBUF, "
               "interrupted by signals"))
        diag("writen returned %zd, errno %s", w.result, errname(w.err));
    size_t bad = 0;
    while (bad < total && bad < BIG && in[bad] == out[bad])
        bad++;
    if (!check(total == BIG && bad == BIG,
               "writen: all 8 MiB arrive intact, in order"))
        diag("reader got %zu bytes (read error %s), first difference at "
             "byte %zu",
             total, errname(read_err), bad);
    close(sv[0]);
    close(sv[1]);
    free(out);
    free(in);
}

static void test_writen_reports_epipe(void)
{
    int sv[2];

    /* Without this the write would kill the whole run. It stays ignored
     * from here on, so that a later broken test fails instead. */
    signal(SIGPIPE, SIG_IGN);
    make_pair(sv);
    close(sv[1]);
    errno = 0;
    ssize_t n = writen(sv[0], "lost", 4);
    int err = errno;
    if (!check(n == -1 && err == EPIPE,
               "writen: returns -1 with errno EPIPE when the peer is closed"))
        diag("writen returned %zd, errno %s", n, errname(err));
    close(sv[0]);
}

static void test_writen_takes_const_buffer(void)
{
    /* A compile-time fact, checked where it shows: const data needs no
     * cast to be written. */
    static const char greeting[] = "const data\n";
    int ok = _Generic(&writen, ssize_t(*)(int, const void *, size_t) : 1,
                      default : 0);
    int sv[2];
    char buf[sizeof greeting];

    make_pair(sv);
    ssize_t n = writen(sv[0], greeting, sizeof greeting - 1);
    ssize_t got = readn(sv[1], buf, sizeof greeting - 1);
    check(ok && n == (ssize_t)sizeof greeting - 1 && got == n &&
              memcmp(buf, greeting, sizeof greeting - 1) == 0,
          "writen: takes a const void * and writes it");
    close(sv[0]);
    close(sv[1]);
}

/* ---- EINTR -------------------------------------------------------------- */

/* Writes into fd until its send buffer is full: the next blocking write()
 * then sleeps before it has moved a single byte. Returns the bytes sent. */
static size_t fill_send_buffer(int fd)
{
    static const char junk[512];
    int flags = fcntl(fd, F_GETFL);
    size_t total = 0;
    ssize_t n;

    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        bail_out("fcntl O_NONBLOCK");
    while ((n = write(fd, junk, sizeof junk)) > 0)
        total += (size_t)n;
    if (errno != EAGAIN || fcntl(fd, F_SETFL, flags) == -1)
        bail_out("filling the send buffer");
    return total;
}

/* The 8 MiB test interrupts write() after it has moved some bytes, which
 * gives short counts. Here write() is interrupted before it has moved any:
 * it fails with EINTR, and writen() must call it again. */
static void test_writen_retries_after_eintr(void)
{
    static const char data[] = "writen, interrupted with a full buffer\n";
    const size_t len = sizeof data - 1;
    struct big_write bw = {.data = (const unsigned char *)data, .len = len};
    int small = 4096;
    char buf[512];
    pthread_t th;
    int sv[2];

    make_pair(sv);
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == -1)
        bail_out("setsockopt SO_SNDBUF");
    size_t filler = fill_send_buffer(sv[0]);
    bw.fd = sv[0];
    errno = pthread_create(&th, NULL, big_write_main, &bw);
    if (errno != 0)
        bail_out("pthread_create");
    pid_t tid = wait_for_tid(&bw.tid);
    int asleep = interrupt_while_blocked(th, tid, 3);

    /* Drain the filler, then take what writen() sent. */
    size_t got = 0;
    char tail[sizeof data];
    while (got < filler + len) {
        size_t ask = got < filler ? filler - got : filler + len - got;
        if (ask > sizeof buf)
            ask = sizeof buf;
        ssize_t n = read(sv[1], buf, ask);
        if (n <= 0)
            break;
        if (got >= filler)
            memcpy(tail + (got - filler), buf, (size_t)n);
        got += (size_t)n;
    }
    pthread_join(th, NULL);
    diag("%d of 3 signals met writen() asleep in write()", asleep);
    if (!check(bw.result == (ssize_t)len && got == filler + len &&
                   memcmp(tail, data, len) == 0,
               "EINTR: writen retries after SIGUSR1 without SA_RESTART and "
               "writes all %zu bytes",
               len))
        diag("writen returned %zd, errno %s; reader got %zu of %zu bytes",
             bw.result, errname(bw.err), got, filler + len);
    close(sv[0]);
    close(sv[1]);
}

static void start_blocked_read(pthread_t *th, struct blocked_read *br)
{
    errno = pthread_create(th, NULL, blocked_read_main, br);
    if (errno != 0)
        bail_out("pthread_create");
}

/* Runs br's call in a thread reading sv[1]; interrupts it before any byte
 * came and again after a partial read; sends data in two parts; checks the
 * call returned all of it. what names the call in the test line. */
static void check_read_retries(struct blocked_read *br, int sv[2],
                               const char *data, size_t first, const char *what)
{
    const size_t len = strlen(data);
    pthread_t th;

    start_blocked_read(&th, br);
    pid_t tid = wait_for_tid(&br->tid);
    int asleep = interrupt_while_blocked(th, tid, 3);
    put(sv[0], data, first);
    asleep += interrupt_while_blocked(th, tid, 2);
    put(sv[0], data + first, len - first);
    pthread_join(th, NULL);
    diag("%d of 5 signals met %s() asleep in read()", asleep, what);
    if (!check(br->result == (ssize_t)len && memcmp(br->buf, data, len) == 0,
               "EINTR: %s retries after SIGUSR1 without SA_RESTART and "
               "returns all %zu bytes",
               what, len)) {
        diag("%s returned %zd, errno %s", what, br->result, errname(br->err));
        diag_bytes("got", br->buf, br->result > 0 ? (size_t)br->result : 0);
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_readn_retries_after_eintr(void)
{
    static const char data[] = "readn, interrupted twice over";
    struct blocked_read br = {.want = sizeof data - 1};
    int sv[2];

    make_pair(sv);
    br.fd = sv[1];
    check_read_retries(&br, sv, data, 10, "readn");
}

static void test_readline_retries_after_eintr(void)
{
    static const char data[] = "readline, interrupted twice over\n";
    struct line_reader lr;
    struct blocked_read br = {.lr = &lr};
    int sv[2];

    make_pair(sv);
    readline_init(&lr, sv[1]);
    check_read_retries(&br, sv, data, 12, "readline");
}

/* ---- readline ----------------------------------------------------------- */

/* What one readline() call should return: len bytes of data, or, with data
 * NULL, 0 for the end of input. */
struct piece {
    const char *data;
    size_t len;
};

#define PIECE(s)                                                               \
    {                                                                          \
        (s), sizeof(s) - 1                                                     \
    }
#define END_OF_INPUT                                                           \
    {                                                                          \
        NULL, 0                                                                \
    }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Calls readline(lr, buf, maxlen) once per expected piece and compares the
 * return value, the bytes, and the NUL after them; buf is filled with 'X'
 * first so that a missing NUL shows. Says what differed first. */
static bool expect_pieces(struct line_reader *lr, char *buf, size_t maxlen,
                          const struct piece *want, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        memset(buf, 'X', maxlen);
        errno = 0;
        ssize_t n = readline(lr, buf, maxlen);
        int err = errno;
        if (want[i].data == NULL && n == 0)
            continue;
        if (want[i].data == NULL) {
            diag("call %zu: want 0 (end of input), got %zd, errno %s", i + 1, n,
                 errname(err));
            return false;
        }
        if (n != (ssize_t)want[i].len ||
            memcmp(buf, want[i].data, want[i].len) != 0) {
            diag("call %zu: got %zd, errno %s", i + 1, n, errname(err));
            diag_bytes("want", want[i].data, want[i].len);
            diag_bytes("got", buf, n > 0 ? (size_t)n : 0);
            return false;
        }
        if (buf[n] != '\0') {
            diag("call %zu: no NUL after the %zd bytes", i + 1, n);
            return false;
        }
    }
    return true;
}

/* Feeds data to a fresh line reader through a socket and checks that
 * readline() with a 64-byte buffer returns the pieces in want. */
static bool lines_of(const char *data, size_t len, const struct piece *want,
                     size_t count)
{
    struct line_reader lr;
    char buf[64];
    int fd = reader_with(data, len);
    bool ok;

    readline_init(&lr, fd);
    ok = expect_pieces(&lr, buf, sizeof buf, want, count);
    close(fd);
    return ok;
}

static void test_readline_returns_one_line_per_call(void)
{
    static const char data[] = "first line\nsecond, longer line\n\nlast\n";
    static const struct piece want[] = {
        PIECE("first line\n"), PIECE("second, longer line\n"),
        PIECE("\n"),           PIECE("last\n"),
        END_OF_INPUT,
    };
    check(lines_of(data, sizeof data - 1, want, COUNT(want)),
          "readline: lines from one write come back one per call, each "
          "with its newline, NUL-terminated, then 0");
}

static void test_readline_gathers_one_byte_writes(void)
{
    static const char data[] = "sent one byte per write()\nand another\n";
    static const struct piece want[] = {
        PIECE("sent one byte per write()\n"),
        PIECE("and another\n"),
        END_OF_INPUT,
    };
    struct trickle t = {.data = data, .len = sizeof data - 1};
    struct line_reader lr;
    char buf[64];
    pthread_t th;
    int sv[2];

    make_pair(sv);
    t.fd = sv[0];
    t.peer_fd = sv[1];
    readline_init(&lr, sv[1]);
    start_trickle(&th, &t);
    bool ok = expect_pieces(&lr, buf, sizeof buf, want, COUNT(want));
    pthread_join(th, NULL);
    check(ok && t.ok,
          "readline: a line sent one byte per write() comes back whole");
    close(sv[1]);
}

static void test_readline_returns_partial_line_at_eof(void)
{
    static const char data[] = "complete\npartial line";
    static const struct piece want[] = {
        PIECE("complete\n"),
        PIECE("partial line"),
        END_OF_INPUT,
        END_OF_INPUT,
    };
    check(lines_of(data, sizeof data - 1, want, COUNT(want)),
          "readline: EOF mid-line returns the partial line, then 0");
}

/* The caller's buffer, with bytes after it that readline() must not touch:
 * an overflow into the canary shows where ASan could not see it. */
struct guarded8 {
    char line[8];
    unsigned char canary[32];
};

struct guarded2 {
    char line[2];
    unsigned char canary[32];
};

static bool canary_intact(const unsigned char *canary, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (canary[i] != 0xA5)
            return false;
    return true;
}

static void test_readline_splits_overlong_line(void)
{
    static const char data[] = "0123456789abcdefghij\nnext\n";
    static const struct piece want[] = {
        PIECE("0123456"), PIECE("789abcd"), PIECE("efghij\n"),
        PIECE("next\n"),  END_OF_INPUT,
    };
    struct guarded8 g;
    struct line_reader lr;
    int fd = reader_with(data, sizeof data - 1);

    memset(g.canary, 0xA5, sizeof g.canary);
    readline_init(&lr, fd);
    check(expect_pieces(&lr, g.line, sizeof g.line, want, COUNT(want)),
          "readline: a line longer than maxlen-1 comes back in pieces of "
          "maxlen-1, nothing lost");
    check(canary_intact(g.canary, sizeof g.canary),
          "readline: the bytes after a maxlen-byte buffer are untouched");
    close(fd);
}

static void test_readline_with_maxlen_2(void)
{
    static const char data[] = "abc\nlonger\n";
    static const struct piece want[] = {
        PIECE("a"), PIECE("b"), PIECE("c"), PIECE("\n"), PIECE("l"),
    };
    struct guarded2 g;
    struct line_reader lr;
    int fd = reader_with(data, sizeof data - 1);

    memset(g.canary, 0xA5, sizeof g.canary);
    readline_init(&lr, fd);
    check(expect_pieces(&lr, g.line, sizeof g.line, want, COUNT(want)) &&
              canary_intact(g.canary, sizeof g.canary),
          "readline: maxlen 2 returns one byte per call, no overflow");
    close(fd);
}

static void test_readline_keeps_nul_bytes(void)
{
    /* strlen() of these lines would say 2, 0 and 3. */
    static const char data[] = "ab\0cd\n\0\nend\0";
    static const struct piece want[] = {
        PIECE("ab\0cd\n"),
        PIECE("\0\n"),
        PIECE("end\0"),
        END_OF_INPUT,
    };
    check(lines_of(data, sizeof data - 1, want, COUNT(want)),
          "readline: NUL bytes inside lines are kept and counted in the "
          "return value");
}

static void test_readline_rejects_maxlen_below_2(void)
{
    static const struct piece want[] = {PIECE("still here\n")};
    struct line_reader lr;
    char one = 'Z';
    char buf[64];
    int fd = reader_with("still here\n", 11);

    readline_init(&lr, fd);
    errno = 0;
    ssize_t n0 = readline(&lr, &one, 0);
    int err0 = errno;
    errno = 0;
    ssize_t n1 = readline(&lr, &one, 1);
    int err1 = errno;
    if (!check(n0 == -1 && err0 == EINVAL,
               "readline: maxlen 0 gives -1 with errno EINVAL"))
        diag("returned %zd, errno %s", n0, errname(err0));
    if (!check(n1 == -1 && err1 == EINVAL,
               "readline: maxlen 1 gives -1 with errno EINVAL"))
        diag("returned %zd, errno %s", n1, errname(err1));
    check(one == 'Z' && expect_pieces(&lr, buf, sizeof buf, want, 1),
          "readline: maxlen 0 and 1 touch neither the buffer nor the input");
    close(fd);
}

static void test_readline_of_empty_input(void)
{
    static const struct piece want[] = {END_OF_INPUT, END_OF_INPUT};
    check(lines_of("", 0, want, COUNT(want)),
          "readline: empty input gives 0, and 0 again");
}

static void test_readline_line_of_maxlen_minus_1(void)
{
    enum { MAXLEN = 12 };
    static const char data[] = "exactly 11\n0123456789A\n";
    static const struct piece whole[] = {PIECE("exactly 11\n")};
    static const struct piece split[] = {
        PIECE("0123456789A"),
        PIECE("\n"),
        END_OF_INPUT,
    };
    struct line_reader lr;
    char buf[MAXLEN];
    int fd = reader_with(data, sizeof data - 1);

    readline_init(&lr, fd);
    check(expect_pieces(&lr, buf, MAXLEN, whole, COUNT(whole)),
          "readline: a line of exactly maxlen-1 bytes comes back whole");
    check(expect_pieces(&lr, buf, MAXLEN, split, COUNT(split)),
          "readline: a line one byte longer leaves its newline for the "
          "next call");
    close(fd);
}

static void test_readline_readers_are_independent(void)
{
    static const char a[] = "a1\na2, a longer line\na3\n";
    static const char b[] = "b1, the longest line here\nb2\nb3\n";
    static const struct piece want_a[] = {PIECE("a1\n"),
                                          PIECE("a2, a longer line\n"),
                                          PIECE("a3\n"), END_OF_INPUT};
    static const struct piece want_b[] = {PIECE("b1, the longest line here\n"),
                                          PIECE("b2\n"), PIECE("b3\n"),
                                          END_OF_INPUT};
    struct line_reader ra, rb;
    char buf[64];
    int fa = reader_with(a, sizeof a - 1);
    int fb = reader_with(b, sizeof b - 1);
    bool ok = true;

    readline_init(&ra, fa);
    readline_init(&rb, fb);
    for (size_t i = 0; i < COUNT(want_a) && ok; i++)
        ok = expect_pieces(&ra, buf, sizeof buf, &want_a[i], 1) &&
             expect_pieces(&rb, buf, sizeof buf, &want_b[i], 1);
    check(ok, "readline: two readers on two descriptors, used in turn, "
              "keep their own lines");
    close(fa);
    close(fb);
}

/* A reset with unread data in flight: the peer sends a partial line and
 * closes with SO_LINGER {1, 0}, which sends RST instead of FIN. */
static void test_readline_reports_error_after_partial_line(void)
{
    static const char partial[] = "a partial line, then a reset";
    static const struct piece want[] = {PIECE("a partial line, then a reset")};
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct line_reader lr;
    char buf[64];
    int client, peer;

    tcp_loopback_pair(&client, &peer);
    bound_io(client);
    put(peer, partial, sizeof partial - 1);
    if (setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == -1)
        bail_out("setsockopt SO_LINGER");
    close(peer);
    readline_init(&lr, client);
    check(expect_pieces(&lr, buf, sizeof buf, want, COUNT(want)),
          "readline: an error after a partial line returns the partial "
          "line first");
    errno = 0;
    ssize_t n = readline(&lr, buf, sizeof buf);
    int err = errno;
    if (!check(n == -1 && err == ECONNRESET,
               "readline: ...and -1 with errno ECONNRESET on the next call"))
        diag("readline returned %zd, errno %s", n, errname(err));
    close(client);
}

/* ---- sock_ntop ---------------------------------------------------------- */

static struct sockaddr_in ipv4_addr(const char *text, unsigned port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, text, &sin.sin_addr) != 1)
        bail_out("inet_pton");
    return sin;
}

static struct sockaddr_in6 ipv6_addr(const char *text, unsigned port)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

    sin6.sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, text, &sin6.sin6_addr) != 1)
        bail_out("inet_pton");
    return sin6;
}

static bool ntop_gives(const void *sa, socklen_t salen, const char *want)
{
    char buf[SOCK_NTOP_LEN];
    char *r = sock_ntop(sa, salen, buf, sizeof buf);

    if (r == buf && strcmp(buf, want) == 0)
        return true;
    diag("want \"%s\", got \"%s\"%s", want, buf,
         r == buf ? "" : " (and not returned as buf)");
    return false;
}

static void test_host_port(void)
{
    char buf[64], small[8];

    check(strcmp(host_port("localhost", "9001", buf, sizeof buf),
                 "localhost:9001") == 0,
          "host_port: a name or IPv4 address gives host:port");
    check(strcmp(host_port("::1", "9001", buf, sizeof buf), "[::1]:9001") == 0,
          "host_port: an IPv6 literal is put in brackets");
    check(strcmp(host_port("127.0.0.1", "9001", small, sizeof small),
                 "127.0.0") == 0,
          "host_port: a small buffer is cut, NUL-terminated");
}

static void test_sock_ntop_ipv4(void)
{
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 9001);

    check(ntop_gives(&sin, sizeof sin, "127.0.0.1:9001"),
          "sock_ntop: AF_INET 127.0.0.1 port 9001 gives \"127.0.0.1:9001\"");
}

static void test_sock_ntop_ipv6(void)
{
    struct sockaddr_in6 sin6 = ipv6_addr("::1", 9001);

    check(ntop_gives(&sin6, sizeof sin6, "[::1]:9001"),
          "sock_ntop: AF_INET6 ::1 port 9001 gives \"[::1]:9001\"");
}

static void test_sock_ntop_longest_ipv6_fits(void)
{
    struct sockaddr_in6 sin6 =
        ipv6_addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

    check(ntop_gives(&sin6, sizeof sin6,
                     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
          "sock_ntop: the longest IPv6 address and port fit in "
          "SOCK_NTOP_LEN");
}

static void test_sock_ntop_short_salen_or_unknown_family(void)
{
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 9001);
    struct sockaddr_in6 sin6 = ipv6_addr("::1", 9001);
    struct sockaddr_un unix_addr = {.sun_family = AF_UNIX};
    char want4[32], want6[32], want_unix[32];

    snprintf(want4, sizeof want4, "(address family %d)", AF_INET);
    snprintf(want6, sizeof want6, "(address family %d)", AF_INET6);
    snprintf(want_unix, sizeof want_unix, "(address family %d)", AF_UNIX);
    check(ntop_gives(&sin, sizeof sin - 1, want4) &&
              ntop_gives(&sin6, sizeof sin6 - 1, want6),
          "sock_ntop: a salen too short for the family gives \"(address "
          "family N)\"");
    check(ntop_gives(&unix_addr, sizeof unix_addr, want_unix),
          "sock_ntop: an unknown family gives \"(address family N)\"");
}

static void test_sock_ntop_truncates_safely(void)
{
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 9001);
    char small[16];
    bool untouched = true;

    memset(small, '#', sizeof small);
    char *r = sock_ntop((struct sockaddr *)&sin, sizeof sin, small, 6);
    for (size_t i = 6; i < sizeof small; i++)
        untouched = untouched && small[i] == '#';
    if (!check(r == small && memcmp(small, "127.0", 6) == 0 && untouched,
               "sock_ntop: a 6-byte buffer gets \"127.0\" and its NUL, "
               "nothing beyond"))
        diag_bytes("buffer", small, sizeof small);
}

/* ---- tcp_listen, tcp_connect -------------------------------------------- */

/* Whether a socket can be bound to ::1: not on hosts without IPv6. */
static bool ipv6_loopback_works(void)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd == -1) {
        diag("no IPv6: socket: %s", errname(errno));
        return false;
    }
    sin6.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (!ok)
        diag("no IPv6: bind ::1: %s", errname(errno));
    close(fd);
    return ok;
}

/* The same tests on 127.0.0.1 and on ::1, in this order. */
static const char *const tcp_host_tests[] = {
    "tcp_listen with port \"0\" gets a real port",
    "tcp_connect to it succeeds and accept() returns",
    "the listening and the connected descriptor are close-on-exec",
    "SO_REUSEADDR is set on the listening socket",
    "sock_ntop of the listening address gives host and port",
};

static void test_tcp_listen_and_connect_on(const char *host, bool ipv6)
{
    if (ipv6 && !ipv6_loopback_works()) {
        for (size_t i = 0; i < COUNT(tcp_host_tests); i++)
            skip("no IPv6", "tcp on %s: %s", host, tcp_host_tests[i]);
        return;
    }

    int gai = -1, gai2 = -1;
    int on = 0;
    socklen_t onlen = sizeof on;
    char port[8] = "";
    char want[SOCK_NTOP_LEN] = "", got[SOCK_NTOP_LEN] = "";
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int listenfd = tcp_listen(host, "0", 8, &gai);
    int listen_err = errno;

    if (listenfd != -1) {
        local_port(listenfd, port, sizeof port);
        if (getsockname(listenfd, (struct sockaddr *)&ss, &sslen) == 0)
            sock_ntop((struct sockaddr *)&ss, sslen, got, sizeof got);
        if (getsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, &onlen) == -1)
            diag("getsockopt SO_REUSEADDR: %s", errname(errno));
    }
    int connfd = listenfd != -1 ? tcp_connect(host, port, &gai2) : -1;
    int connect_err = errno;
    int accepted = connfd != -1 ? accept_bounded(listenfd) : -1;

    if (!check(listenfd != -1 && gai == 0 && strcmp(port, "0") != 0,
               "tcp on %s: %s", host, tcp_host_tests[0]))
        diag("tcp_listen returned %d, gai_err %d, errno %s, port \"%s\"",
             listenfd, gai, errname(listen_err), port);
    if (!check(connfd != -1 && gai2 == 0 && accepted != -1, "tcp on %s: %s",
               host, tcp_host_tests[1]))
        diag("tcp_connect returned %d (gai_err %d, errno %s), accept %d",
             connfd, gai2, errname(connect_err), accepted);
    check(listenfd != -1 && connfd != -1 && is_cloexec(listenfd) &&
              is_cloexec(connfd),
          "tcp on %s: %s", host, tcp_host_tests[2]);
    check(listenfd != -1 && on != 0, "tcp on %s: %s", host, tcp_host_tests[3]);
    snprintf(want, sizeof want, ipv6 ? "[%s]:%s" : "%s:%s", host, port);
    if (!check(listenfd != -1 && strcmp(got, want) == 0, "tcp on %s: %s", host,
               tcp_host_tests[4]))
        diag("want \"%s\", got \"%s\"", want, got);
    if (accepted != -1)
        close(accepted);
    if (connfd != -1)
        close(connfd);
    if (listenfd != -1)
        close(listenfd);
}

static void test_tcp_listen_reports_port_in_use(void)
{
    int gai = -1;
    char port[8];
    int first = tcp_listen("127.0.0.1", "0", 8, &gai);

    if (first == -1)
        bail_out("tcp_listen 127.0.0.1");
    local_port(first, port, sizeof port);
    errno = 0;
    int second = tcp_listen("127.0.0.1", port, 8, &gai);
    int err = errno;
    if (!check(second == -1 && gai == 0 && err == EADDRINUSE,
               "tcp_listen: a port in use gives -1, gai_err 0, errno "
               "EADDRINUSE"))
        diag("returned %d, gai_err %d, errno %s", second, gai, errname(err));
    if (second != -1)
        close(second);
    close(first);
}

static void test_tcp_connect_reports_refused(void)
{
    /* A port bound but not listening: nobody else can take it while we
     * hold it, and a connection to it is refused. */
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 0);
    int gai = -1;
    char port[8];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1)
        bail_out("socket/bind 127.0.0.1");
    local_port(fd, port, sizeof port);
    errno = 0;
    int connfd = tcp_connect("127.0.0.1", port, &gai);
    int err = errno;
    if (!check(connfd == -1 && gai == 0 && err == ECONNREFUSED,
               "tcp_connect: no listener gives -1, gai_err 0, errno "
               "ECONNREFUSED"))
        diag("returned %d, gai_err %d, errno %s", connfd, gai, errname(err));
    if (connfd != -1)
        close(connfd);
    close(fd);
}

static void test_unknown_host(void)
{
    int gai_c = 0, gai_l = 0;
    int c = tcp_connect("nosuch.invalid", "9001", &gai_c);
    int l = tcp_listen("nosuch.invalid", "0", 8, &gai_l);

    if (!check(c == -1 && gai_c != 0 && *gai_strerror(gai_c) != '\0',
               "tcp_connect: an unknown host gives -1 and a gai_err that "
               "gai_strerror() can word"))
        diag("returned %d, gai_err %d", c, gai_c);
    if (!check(l == -1 && gai_l != 0 && *gai_strerror(gai_l) != '\0',
               "tcp_listen: an unknown host gives -1 and a gai_err that "
               "gai_strerror() can word"))
        diag("returned %d, gai_err %d", l, gai_l);
    if (gai_c != 0)
        diag("nosuch.invalid: %s", gai_strerror(gai_c));
    if (c != -1)
        close(c);
    if (l != -1)
        close(l);
}

/* ---- accept_error_is_transient, accept_or_shed -------------------------- */

static void test_accept_error_is_transient(void)
{
    check(accept_error_is_transient(ECONNABORTED),
          "accept_error_is_transient: true for ECONNABORTED");
    check(!accept_error_is_transient(EBADF),
          "accept_error_is_transient: false for EBADF");
    check(!accept_error_is_transient(EMFILE),
          "accept_error_is_transient: false for EMFILE");
}

enum {
    SHED_ACCEPT_EMFILE,
    SHED_RETURNS_0,
    SHED_CLIENT_CLOSED,
    SHED_SPARE,
    SHED_SERVES_AGAIN,
};

/* Descriptors on /dev/null that use up a lowered RLIMIT_NOFILE. Tests that
 * lower the limit run in a child: the parent's limit stays. */
enum { FILLERS_MAX = 64 };

struct fillers {
    int fd[FILLERS_MAX];
    int n;
    struct rlimit old; /* the limit to restore */
};

/* Opens /dev/null until open() fails with EMFILE: afterwards not one
 * descriptor below the limit is free. */
static void fill_up(struct fillers *f)
{
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            break;
        if (f->n == FILLERS_MAX)
            bail_out("the lowered limit does not hold");
        f->fd[f->n++] = fd;
    }
    if (errno != EMFILE)
        bail_out("filling the descriptor table");
}

/* Lowers RLIMIT_NOFILE to a few above the lowest free descriptor, then
 * fills the table up to it. */
static void fill_descriptor_table(struct fillers *f)
{
    struct rlimit low;
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (probe == -1 || getrlimit(RLIMIT_NOFILE, &f->old) == -1)
        bail_out("open or getrlimit");
    close(probe);
    low = f->old;
    low.rlim_cur = (rlim_t)probe + 8;
    if (setrlimit(RLIMIT_NOFILE, &low) == -1)
        bail_out("setrlimit");
    f->n = 0;
    fill_up(f);
    printf("limit %d, %d fillers\n", (int)low.rlim_cur, f->n);
}

static void release_fillers(struct fillers *f)
{
    while (f->n > 0)
        close(f->fd[--f->n]);
    setrlimit(RLIMIT_NOFILE, &f->old);
}

/* Whether the client's end fd sees its connection closed, EOF or
 * ECONNRESET, within IO_TIMEOUT_SEC. */
static bool sees_closed(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char c;
    ssize_t n =
        poll(&pfd, 1, IO_TIMEOUT_SEC * 1000) == 1 ? read(fd, &c, 1) : -2;

    if (n == 0 || (n == -1 && errno == ECONNRESET))
        return true;
    printf("client's read: %zd, errno %s\n", n, errname(errno));
    return false;
}

/* Runs out of descriptors with a connection queued, and sheds it. */
static int shed_child(void *arg)
{
    struct fillers f;
    int failed = 0, gai;
    char port[8];

    (void)arg;
    int listenfd = tcp_listen("127.0.0.1", "0", 8, &gai);
    if (listenfd == -1 || spare_fd_reserve() == -1)
        bail_out("tcp_listen or spare_fd_reserve");
    local_port(listenfd, port, sizeof port);
    int client = tcp_connect("127.0.0.1", port, &gai);
    if (client == -1)
        bail_out("tcp_connect");
    fill_descriptor_table(&f);

    int fd = accept(listenfd, NULL, NULL);
    if (fd != -1 || errno != EMFILE)
        failed |= FAILED_BIT(SHED_ACCEPT_EMFILE);
    if (fd != -1)
        close(fd);
    fd = accept_or_shed(listenfd, NULL, NULL);
    if (fd != -1 || errno != EMFILE) {
        printf("accept_or_shed: %d, %s\n", fd, errname(errno));
        failed |= FAILED_BIT(SHED_RETURNS_0);
    }
    if (!sees_closed(client))
        failed |= FAILED_BIT(SHED_CLIENT_CLOSED);
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd != -1 || errno != EMFILE)
        failed |= FAILED_BIT(SHED_SPARE);
    if (fd != -1)
        close(fd);

    /* Descriptors free again (one for the client's socket, one for the
     * server's end): the next client is served, not shed. */
    close(f.fd[--f.n]);
    close(f.fd[--f.n]);
    int second = tcp_connect("127.0.0.1", port, &gai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    fd = accept_or_shed(listenfd, (struct sockaddr *)&ss, &len);
    if (second == -1 || fd == -1 || ss.ss_family != AF_INET) {
        printf("second client %d, accept_or_shed %d, %s\n", second, fd,
               errname(errno));
        failed |= FAILED_BIT(SHED_SERVES_AGAIN);
    }
    if (fd != -1)
        close(fd);
    if (second != -1)
        close(second);

    release_fillers(&f);
    close(client);
    close(listenfd);
    return failed;
}

static void test_shed_connection(void)
{
    static const char *const what[] = {
        [SHED_ACCEPT_EMFILE] = "out of descriptors, accept() fails with "
                               "EMFILE",
        [SHED_RETURNS_0] = "accept_or_shed() takes the queued connection "
                           "and returns -1 with EMFILE",
        [SHED_CLIENT_CLOSED] = "the shed client sees EOF or ECONNRESET",
        [SHED_SPARE] = "the spare descriptor is held again: open() still "
                       "fails with EMFILE",
        [SHED_SERVES_AGAIN] = "with a descriptor free again, the next "
                              "client is accepted and returned",
    };
    struct child c;

    run_child(shed_child, NULL, &c);
    check_child_bits(&c, "accept_or_shed", what, COUNT(what));
}

/* ---- set_nonblocking, shed_connection ----------------------------------- */

enum {
    NONBLOCK_RETURNS_0,
    NONBLOCK_FLAG_SET,
    NONBLOCK_FLAGS_KEPT,
    NONBLOCK_EBADF,
    NONBLOCK_READ_EAGAIN,
};

/* In a child, because the read at the end sleeps for ever if
 * set_nonblocking() did nothing: the child's alarm then kills it. The pair
 * has no receive timeout (make_pair's would turn a blocking read into
 * EAGAIN too, only later). */
static int nonblocking_child(void *arg)
{
    int failed = 0, flags, sv[2];
    char c;

    (void)arg;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        bail_out("socketpair");
    if (set_nonblocking(sv[0]) != 0)
        failed |= FAILED_BIT(NONBLOCK_RETURNS_0);
    flags = fcntl(sv[0], F_GETFL);
    if (flags == -1 || !(flags & O_NONBLOCK))
        failed |= FAILED_BIT(NONBLOCK_FLAG_SET);

    /* O_APPEND is one of the few flags F_SETFL changes: it must stay. */
    int fd = open("/dev/null", O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd == -1)
        bail_out("open /dev/null");
    if (set_nonblocking(fd) != 0 || (flags = fcntl(fd, F_GETFL)) == -1 ||
        !(flags & O_APPEND) || !(flags & O_NONBLOCK))
        failed |= FAILED_BIT(NONBLOCK_FLAGS_KEPT);

    /* Just closed: nothing else runs here that could reuse the number. */
    close(fd);
    errno = 0;
    int r = set_nonblocking(fd);
    int err = errno;
    printf("set_nonblocking on a closed descriptor: %d, errno %s\n", r,
           errname(err));
    if (r != -1 || err != EBADF)
        failed |= FAILED_BIT(NONBLOCK_EBADF);

    fflush(stdout); /* in case the read below never returns */
    alarm(2);
    errno = 0;
    ssize_t n = read(sv[0], &c, 1);
    err = errno;
    alarm(0);
    printf("read on the empty socket: %zd, errno %s\n", n, errname(err));
    if (n != -1 || err != EAGAIN)
        failed |= FAILED_BIT(NONBLOCK_READ_EAGAIN);
    close(sv[0]);
    close(sv[1]);
    return failed;
}

static void test_set_nonblocking(void)
{
    static const char *const what[] = {
        [NONBLOCK_RETURNS_0] = "returns 0 on a socket",
        [NONBLOCK_FLAG_SET] = "F_GETFL then shows O_NONBLOCK",
        [NONBLOCK_FLAGS_KEPT] = "the other status flags are kept "
                                "(O_APPEND on /dev/null)",
        [NONBLOCK_EBADF] = "a closed descriptor gives -1 with errno EBADF",
        [NONBLOCK_READ_EAGAIN] = "read() on the empty socket then fails at "
                                 "once with EAGAIN",
    };
    struct child c;

    run_child(nonblocking_child, NULL, &c);
    check_child_bits(&c, "set_nonblocking", what, COUNT(what));
}

enum {
    SHED_NB_EAGAIN,
    SHED_NB_SPARE_KEPT,
    SHED_NB_RETURNS_0,
    SHED_NB_CLIENT_CLOSED,
    SHED_NB_SPARE_AGAIN,
};

/* Whether the spare descriptor is held: with every other descriptor taken,
 * open() fails with EMFILE; had the spare been lost, its slot would be
 * free and open() would take it. */
static bool spare_is_held(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (fd == -1 && errno == EMFILE)
        return true;
    printf("open() at the limit: %d, errno %s\n", fd, errname(errno));
    if (fd != -1)
        close(fd);
    return false;
}

/* shed_connection() as an event loop calls it: on a non-blocking listener,
 * once with nobody waiting and once with a client queued, the descriptor
 * table full both times. */
static int shed_nonblocking_child(void *arg)
{
    struct fillers f;
    int failed = 0, gai;
    char port[8];

    (void)arg;
    int listenfd = tcp_listen("127.0.0.1", "0", 8, &gai);
    if (listenfd == -1 || spare_fd_reserve() == -1)
        bail_out("tcp_listen or spare_fd_reserve");
    int flags = fcntl(listenfd, F_GETFL);
    if (flags == -1 || fcntl(listenfd, F_SETFL, flags | O_NONBLOCK) == -1)
        bail_out("fcntl O_NONBLOCK");
    local_port(listenfd, port, sizeof port);
    fill_descriptor_table(&f);

    errno = 0;
    int r = shed_connection(listenfd);
    int err = errno;
    printf("shed_connection, nobody waiting: %d, errno %s\n", r, errname(err));
    if (r != -1 || err != EAGAIN)
        failed |= FAILED_BIT(SHED_NB_EAGAIN);
    if (!spare_is_held())
        failed |= FAILED_BIT(SHED_NB_SPARE_KEPT);

    /* Room for tcp_connect() (the resolver may want a descriptor of its
     * own), then the table is filled up again behind the client. */
    close(f.fd[--f.n]);
    close(f.fd[--f.n]);
    int client = tcp_connect("127.0.0.1", port, &gai);
    if (client == -1)
        bail_out("tcp_connect");
    fill_up(&f);
    int fd = accept4(listenfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd != -1 || errno != EMFILE)
        bail_out("accept() with the table full did not fail with EMFILE");

    errno = 0;
    r = shed_connection(listenfd);
    err = errno;
    printf("shed_connection, a client waiting: %d, errno %s\n", r,
           errname(err));
    if (r != 0)
        failed |= FAILED_BIT(SHED_NB_RETURNS_0);
    if (!sees_closed(client))
        failed |= FAILED_BIT(SHED_NB_CLIENT_CLOSED);
    if (!spare_is_held())
        failed |= FAILED_BIT(SHED_NB_SPARE_AGAIN);

    release_fillers(&f);
    close(client);
    close(listenfd);
    return failed;
}

static void test_shed_connection_nonblocking(void)
{
    static const char *const what[] = {
        [SHED_NB_EAGAIN] = "with nobody waiting it returns -1 with errno "
                           "EAGAIN",
        [SHED_NB_SPARE_KEPT] = "...and takes the spare back: open() at the "
                               "limit still fails with EMFILE",
        [SHED_NB_RETURNS_0] = "with a client queued and no descriptor free, "
                              "it returns 0",
        [SHED_NB_CLIENT_CLOSED] = "the shed client sees EOF or ECONNRESET",
        [SHED_NB_SPARE_AGAIN] = "the spare is held again afterwards: open() "
                                "at the limit fails with EMFILE",
    };
    struct child c;

    run_child(shed_nonblocking_child, NULL, &c);
    check_child_bits(&c, "shed_connection (non-blocking listener)", what,
                     COUNT(what));
}

/* conn_accept() (and accept_nonblock() under it) as a loop calls it: with
 * nobody waiting, with a client and room for it, and with a client and the
 * descriptor table full. */
enum {
    ACCEPT_NB_EAGAIN,
    ACCEPT_NB_CONN,
    ACCEPT_NB_FLAGS,
    ACCEPT_NB_EMFILE,
    ACCEPT_NB_CLIENT_CLOSED,
    ACCEPT_NB_SPARE_AGAIN,
};

static int accept_nonblocking_child(void *arg)
{
    struct fillers f;
    int failed = 0, gai;
    char port[8];

    (void)arg;
    int listenfd = tcp_listen("127.0.0.1", "0", 8, &gai);
    if (listenfd == -1 || spare_fd_reserve() == -1 ||
        set_nonblocking(listenfd) == -1)
        bail_out("tcp_listen, spare_fd_reserve or set_nonblocking");
    local_port(listenfd, port, sizeof port);

    errno = 0;
    struct conn *c = conn_accept(listenfd);
    int err = errno;
    printf("conn_accept, nobody waiting: %s, errno %s\n", c ? "a conn" : "NULL",
           errname(err));
    if (c != NULL || err != EAGAIN || accept_lost_client(err))
        failed |= FAILED_BIT(ACCEPT_NB_EAGAIN);

    int client = tcp_connect("127.0.0.1", port, &gai);
    if (client == -1)
        bail_out("tcp_connect");
    c = conn_accept(listenfd);
    if (c == NULL || strncmp(c->peer, "127.0.0.1:", 10) != 0)
        failed |= FAILED_BIT(ACCEPT_NB_CONN);
    if (c == NULL || !(fcntl(c->fd, F_GETFL) & O_NONBLOCK) ||
        !(fcntl(c->fd, F_GETFD) & FD_CLOEXEC))
        failed |= FAILED_BIT(ACCEPT_NB_FLAGS);
    if (c != NULL)
        conn_free(c);
    close(client);

    /* Room for tcp_connect(), then the table full behind the client. */
    fill_descriptor_table(&f);
    close(f.fd[--f.n]);
    close(f.fd[--f.n]);
    client = tcp_connect("127.0.0.1", port, &gai);
    if (client == -1)
        bail_out("tcp_connect");
    fill_up(&f);
    errno = 0;
    c = conn_accept(listenfd);
    err = errno;
    printf("conn_accept, table full: %s, errno %s\n", c ? "a conn" : "NULL",
           errname(err));
    if (c != NULL || err != EMFILE || !accept_lost_client(err))
        failed |= FAILED_BIT(ACCEPT_NB_EMFILE);
    if (!sees_closed(client))
        failed |= FAILED_BIT(ACCEPT_NB_CLIENT_CLOSED);
    if (!spare_is_held())
        failed |= FAILED_BIT(ACCEPT_NB_SPARE_AGAIN);

    release_fillers(&f);
    close(client);
    close(listenfd);
    return failed;
}

static void test_conn_accept(void)
{
    static const char *const what[] = {
        [ACCEPT_NB_EAGAIN] = "with nobody waiting it returns NULL with errno "
                             "EAGAIN, which is no lost client",
        [ACCEPT_NB_CONN] = "with a client waiting it returns its conn, the "
                           "peer's address as text",
        [ACCEPT_NB_FLAGS] = "...whose descriptor is non-blocking and "
                            "close-on-exec",
        [ACCEPT_NB_EMFILE] = "with the table full it returns NULL with errno "
                             "EMFILE, a lost client",
        [ACCEPT_NB_CLIENT_CLOSED] = "...and the client sees EOF or "
                                    "ECONNRESET, not a wait",
        [ACCEPT_NB_SPARE_AGAIN] = "...and the spare is held again: open() at "
                                  "the limit fails with EMFILE",
    };
    struct child c;

    run_child(accept_nonblocking_child, NULL, &c);
    check_child_bits(&c, "conn_accept", what, COUNT(what));
}

/* ---- err_*, log_* ------------------------------------------------------- */

static int err_ret_child(void *arg)
{
    (void)arg;
    errno = EADDRINUSE;
    err_ret("what %d", 42);
    return errno == EADDRINUSE ? 0 : 3;
}

static int err_msg_child(void *arg)
{
    (void)arg;
    errno = ECONNRESET;
    err_msg("plain %s", "message");
    return errno == ECONNRESET ? 0 : 3;
}

static int err_sys_child(void *arg)
{
    (void)arg;
    errno = ENOENT;
    err_sys("open %s", "/nowhere");
}

static int err_quit_child(void *arg)
{
    (void)arg;
    err_quit("bad %s", "thing");
}

static int logmsg_child(void *arg)
{
    (void)arg;
    errno = EINTR;
    logmsg("hello %d", 7);
    return errno == EINTR ? 0 : 3;
}

static int log_lines_child(void *arg)
{
    (void)arg;
    log_accepted("127.0.0.1:40000");
    log_closed("127.0.0.1:40000", 12);
    log_stats(3, 36);
    return 0;
}

static int log_quiet_child(void *arg)
{
    (void)arg;
    log_set_quiet(true);
    log_accepted("127.0.0.1:40000");
    log_closed("127.0.0.1:40000", 12);
    log_stats(2, 10);
    return 0;
}

static int log_stats_more_child(void *arg)
{
    log_stats_more(1, 2, arg);
    return 0;
}

static int log_stats_more_quiet_child(void *arg)
{
    (void)arg;
    log_set_quiet(true);
    log_stats_more(1, 2, "3 reads");
    return 0;
}

static int log_listening_child(void *arg)
{
    int gai;
    int fd = tcp_listen("127.0.0.1", "0", 1, &gai);
    char port[8];

    (void)arg;
    if (fd == -1)
        bail_out("tcp_listen");
    local_port(fd, port, sizeof port);
    printf("%s", port);
    log_listening(fd);
    return 0;
}

/* Messages so long that log.c's 1024-byte line must cut them: 2000 bytes,
 * with and without the errno part, then the longest that fits and one byte
 * more. */
static int long_message_child(void *arg)
{
    char msg[2001];
    size_t fit = LOG_LINE_MAX - 1 - (strlen(prog_name) + 2);

    (void)arg;
    memset(msg, 'a', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    err_msg("%s", msg);
    errno = EPIPE;
    err_ret("%s", msg);
    msg[fit] = '\0';
    err_msg("%s", msg);
    msg[fit] = 'a';
    msg[fit + 1] = '\0';
    err_msg("%s", msg);
    return 0;
}

/* Under ASan a small overflow is best: ASan names the first byte written
 * past the buffer, with a clean stack. Without it only a large overflow is
 * sure to show, by running off the top of the stack. */
#if defined(__SANITIZE_ADDRESS__)
#define OVERFLOW_PROBE_LEN 64
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OVERFLOW_PROBE_LEN 64
#endif
#endif
#ifndef OVERFLOW_PROBE_LEN
#define OVERFLOW_PROBE_LEN (1 << 20)
#endif

/* A program name longer than the whole line: argv[0] is whatever the
 * caller of exec() chose (bash: exec -a NAME). The line must still be cut
 * at LOG_LINE_MAX, the name and the message alike. */
static int long_name_child(void *arg)
{
    enum { NAME_LEN = 1100 };
    static char name[NAME_LEN + 1];
    char *msg = malloc(OVERFLOW_PROBE_LEN + 1);

    (void)arg;
    if (msg == NULL)
        bail_out("malloc");
    memset(name, 'n', NAME_LEN);
    memset(msg, 'm', OVERFLOW_PROBE_LEN);
    msg[OVERFLOW_PROBE_LEN] = '\0';
    program_invocation_short_name = name;
    err_msg("%s", msg);
    free(msg);
    return 0;
}

/* Whether a child wrote exactly want on stderr; says what it wrote if not. */
static bool stderr_is(const struct child *c, const char *want)
{
    if (c->err_len == strlen(want) && memcmp(c->err, want, c->err_len) == 0)
        return true;
    diag_bytes("want on stderr", want, strlen(want));
    diag_bytes("got on stderr", c->err, c->err_len);
    return false;
}

static void test_err_ret(void)
{
    struct child c;
    char want[256];

    snprintf(want, sizeof want,
             "%s: what 42: EADDRINUSE (Address already in use)\n", prog_name);
    run_child(err_ret_child, NULL, &c);
    check(stderr_is(&c, want),
          "err_ret: prints \"prog: what 42: EADDRINUSE (Address already in "
          "use)\"");
    if (!check(exited_with(&c, 0), "err_ret: leaves errno as it found it"))
        diag_child(&c);
}

static void test_err_msg(void)
{
    struct child c;
    char want[256];

    snprintf(want, sizeof want, "%s: plain message\n", prog_name);
    run_child(err_msg_child, NULL, &c);
    check(stderr_is(&c, want), "err_msg: prints the line without an errno "
                               "part");
    if (!check(exited_with(&c, 0), "err_msg: leaves errno as it found it"))
        diag_child(&c);
}

static void test_err_sys_and_err_quit_exit_1(void)
{
    struct child c;
    char want[256];

    snprintf(want, sizeof want,
             "%s: open /nowhere: ENOENT (No such file or directory)\n",
             prog_name);
    run_child(err_sys_child, NULL, &c);
    if (!check(exited_with(&c, 1) && stderr_is(&c, want),
               "err_sys: prints the line with errno, exits with status 1"))
        diag_child(&c);
    snprintf(want, sizeof want, "%s: bad thing\n", prog_name);
    run_child(err_quit_child, NULL, &c);
    if (!check(exited_with(&c, 1) && stderr_is(&c, want),
               "err_quit: prints the line without errno, exits with "
               "status 1"))
        diag_child(&c);
}

static void test_logmsg(void)
{
    struct child c;

    run_child(logmsg_child, NULL, &c);
    if (!check(exited_with(&c, 0) && stderr_is(&c, "hello 7\n"),
               "logmsg: prints the line without the program's name, errno "
               "kept"))
        diag_child(&c);
}

static void test_log_lines(void)
{
    struct child c;

    run_child(log_lines_child, NULL, &c);
    check(exited_with(&c, 0) &&
              stderr_is(&c, "accepted 127.0.0.1:40000\n"
                            "closed 127.0.0.1:40000 (12 bytes)\n"
                            "served 3 connections, echoed 36 bytes\n"),
          "log_accepted, log_closed, log_stats: the contract's lines");
    run_child(log_quiet_child, NULL, &c);
    check(exited_with(&c, 0) &&
              stderr_is(&c, "served 2 connections, echoed 10 bytes\n"),
          "log_set_quiet(true): log_accepted and log_closed print nothing, "
          "log_stats still prints");
}

static void test_log_stats_more(void)
{
    struct child c;

    run_child(log_stats_more_child, NULL, &c);
    check(exited_with(&c, 0) &&
              stderr_is(&c, "served 1 connections, echoed 2 bytes\n"),
          "log_stats_more: more NULL prints the log_stats line, nothing "
          "after it");
    run_child(log_stats_more_child, (void *)"3 reads", &c);
    check(exited_with(&c, 0) &&
              stderr_is(&c, "served 1 connections, echoed 2 bytes, "
                            "3 reads\n"),
          "log_stats_more: \"3 reads\" is added after \", \"");
    run_child(log_stats_more_quiet_child, NULL, &c);
    check(exited_with(&c, 0) &&
              stderr_is(&c, "served 1 connections, echoed 2 bytes, "
                            "3 reads\n"),
          "log_stats_more: prints after log_set_quiet(true), as log_stats "
          "does");
}

static void test_log_listening(void)
{
    struct child c;
    char want[128];

    run_child(log_listening_child, NULL, &c);
    snprintf(want, sizeof want, "listening on 127.0.0.1:%.8s (pid %ld)\n",
             c.out, (long)c.pid);
    if (!check(exited_with(&c, 0) && stderr_is(&c, want),
               "log_listening: \"listening on 127.0.0.1:PORT (pid N)\""))
        diag_child(&c);
}

/* Whether line (len bytes) starts with "prog: " and has one '\n', last. */
static bool one_cut_line(const char *line, size_t len)
{
    size_t prefix = strlen(prog_name);

    return len == LOG_LINE_MAX && memcmp(line, prog_name, prefix) == 0 &&
           memcmp(line + prefix, ": aaaa", 6) == 0 &&
           memchr(line, '\n', len - 1) == NULL && line[len - 1] == '\n';
}

static void test_long_messages_are_cut(void)
{
    struct child c;
    char want[LOG_LINE_MAX + 1];
    size_t prefix = strlen(prog_name) + 2;

    run_child(long_message_child, NULL, &c);
    bool sized = exited_with(&c, 0) && c.err_len == 4 * LOG_LINE_MAX;
    if (!check(sized && one_cut_line(c.err, LOG_LINE_MAX) &&
                   one_cut_line(c.err + LOG_LINE_MAX, LOG_LINE_MAX),
               "err_msg, err_ret: a 2000-byte message is cut to one "
               "%d-byte line ending in a newline",
               LOG_LINE_MAX)) {
        diag("stderr holds %zu bytes, want %d", c.err_len, 4 * LOG_LINE_MAX);
        diag_child(&c);
    }
    /* The longest message that fits comes out whole; one byte more loses
     * that byte: both lines are the same. */
    snprintf(want, sizeof want, "%s: ", prog_name);
    memset(want + prefix, 'a', LOG_LINE_MAX - 1 - prefix);
    want[LOG_LINE_MAX - 1] = '\n';
    check(sized && memcmp(c.err + 2 * LOG_LINE_MAX, want, LOG_LINE_MAX) == 0 &&
              memcmp(c.err + 3 * LOG_LINE_MAX, want, LOG_LINE_MAX) == 0,
          "err_msg: a line of exactly %d bytes is kept; one byte more is "
          "cut to it",
          LOG_LINE_MAX);
}

static void test_long_program_name_is_cut(void)
{
    struct child c;
    char want[LOG_LINE_MAX];

    memset(want, 'n', LOG_LINE_MAX - 1);
    want[LOG_LINE_MAX - 1] = '\n';
    run_child(long_name_child, NULL, &c);
    if (!check(exited_with(&c, 0) && c.err_len == LOG_LINE_MAX &&
                   memcmp(c.err, want, LOG_LINE_MAX) == 0,
               "err_msg: a program name longer than the line is cut to one "
               "%d-byte line, never overflowed",
               LOG_LINE_MAX))
        diag_child(&c);
}

/* ---- parse_number ------------------------------------------------------- */

/* stderr_off() sends stderr to /dev/null and returns the saved original,
 * for stderr_on() to put back: for calls whose complaints are expected. */
static int stderr_off(void)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved == -1 || devnull == -1 || dup2(devnull, STDERR_FILENO) == -1)
        bail_out("redirecting stderr");
    close(devnull);
    return saved;
}

static void stderr_on(int saved)
{
    if (dup2(saved, STDERR_FILENO) == -1)
        bail_out("restoring stderr");
    close(saved);
}

static void test_parse_number(void)
{
    static const char *const bad[] = {"", "4x", "-1", "101",
                                      "99999999999999999999"};
    static const char *const huge[] = {"99999999999999999999",
                                       "-99999999999999999999"};
    long v = -7;
    bool ok = parse_number("42", 0, 100, &v) == 0 && v == 42;

    ok = ok && parse_number("0", 0, 100, &v) == 0 && v == 0;
    ok = ok && parse_number("100", 0, 100, &v) == 0 && v == 100;
    check(ok, "parse_number: \"42\", \"0\" and \"100\" are in [0, 100]");

    /* parse_number() says why it rejects on stderr; these rejections are
     * expected, so their messages go to /dev/null. */
    int saved = stderr_off();
    int results[COUNT(bad)];
    long kept[COUNT(bad)];
    for (size_t i = 0; i < COUNT(bad); i++) {
        kept[i] = -7;
        results[i] = parse_number(bad[i], 0, 100, &kept[i]);
    }
    int huge_results[COUNT(huge)];
    for (size_t i = 0; i < COUNT(huge); i++)
        huge_results[i] = parse_number(huge[i], LONG_MIN, LONG_MAX, &v);
    stderr_on(saved);

    for (size_t i = 0; i < COUNT(bad); i++)
        if (!check(results[i] == -1 && kept[i] == -7,
                   "parse_number: \"%s\" is rejected with -1 for [0, 100]",
                   bad[i]))
            diag("returned %d, value %ld", results[i], kept[i]);
    /* strtol() clamps an overflow to LONG_MAX or LONG_MIN: only errno
     * (ERANGE) tells it from a number in range when the range is all of
     * long. */
    for (size_t i = 0; i < COUNT(huge); i++)
        if (!check(huge_results[i] == -1,
                   "parse_number: \"%s\" overflows long: rejected for "
                   "[LONG_MIN, LONG_MAX]",
                   huge[i]))
            diag("returned %d", huge_results[i]);
}

/* ---- parse_choice -------------------------------------------------------- */

static void test_parse_choice(void)
{
    static const char *const names[] = {"lt", "et", "et-once", NULL};
    long v = -7;

    check(parse_choice("lt", names, &v) == 0 && v == 0 &&
              parse_choice("et-once", names, &v) == 0 && v == 2,
          "parse_choice: \"lt\" is 0 and \"et-once\" is 2");
    int saved = stderr_off(); /* the rejections' messages are expected */
    int bad = parse_choice("e", names, &v), empty = parse_choice("", names, &v);
    stderr_on(saved);
    check(bad == -1 && empty == -1 && v == 2,
          "parse_choice: a prefix and \"\" are rejected, the value kept");
}

/* ---- parse_server_options, parse_client_options ------------------------- */

static const struct program_info test_program = {
    .lesson = "01-basic-socket",
    .summary = "the unit tests' pretend server",
    .default_port = 9001,
};

static const struct lesson_option lesson_options[] = {
    {'t', NULL, "N", "threads in the pool"},
    {256, "no-reap", NULL, "leave zombies, to watch them in ps"},
    {0, NULL, NULL, NULL},
};

static int lesson_ctx; /* its address is the ctx the callback must get */

/* Prints what it got, for the parent to compare; rejects -t outside
 * 1..64, as a lesson would. */
static int on_lesson_option(int key, const char *arg, void *ctx)
{
    long n;

    printf("option %d arg %s%s\n", key, arg != NULL ? arg : "(none)",
           ctx == &lesson_ctx ? "" : " (wrong ctx)");
    if (key == 't')
        return parse_number(arg, 1, 64, &n);
    return 0;
}

enum { PARSED = 42 }; /* a child's status when parsing returned */

struct parse_case {
    bool server;
    const char *args[8]; /* after the program's name, NULL-terminated */
};

/* Parses pc's command line, prints the result on stdout and exits PARSED.
 * The parsers exit() themselves on -h and on bad usage. Then logs one
 * connection, which -q must silence. */
static int parse_child(void *arg)
{
    const struct parse_case *pc = arg;
    char store[9][64];
    char *argv[10];
    int argc = 0;
    struct net_options opt;

    snprintf(store[0], sizeof store[0], "%s", prog_name);
    argv[argc] = store[argc];
    argc++;
    for (const char *const *a = pc->args; *a != NULL; a++) {
        snprintf(store[argc], sizeof store[argc], "%s", *a);
        argv[argc] = store[argc];
        argc++;
    }
    argv[argc] = NULL;
    optind = 1;
    if (pc->server)
        parse_server_options(argc, argv, &test_program, &opt, lesson_options,
                             on_lesson_option, &lesson_ctx);
    else
        parse_client_options(argc, argv, &test_program, &opt);
    printf("host=%s port=%s quiet=%d\n", opt.host, opt.port, opt.quiet);
    log_accepted("[::1]:1");
    return PARSED;
}

static const char *args_text(const struct parse_case *pc, char *buf,
                             size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (const char *const *a = pc->args; *a != NULL && len < size; a++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                len > 0 ? " " : "", *a);
    return len > 0 ? buf : "no arguments";
}

static const char *parser_name(const struct parse_case *pc)
{
    return pc->server ? "parse_server_options" : "parse_client_options";
}

/* Parsing returns: stdout shows the result and what callbacks got. */
static void expect_parsed(const struct parse_case *pc, const char *want_out,
                          const char *want_err, const char *what)
{
    struct child c;
    char args[128];

    run_child(parse_child, (void *)pc, &c);
    if (!check(exited_with(&c, PARSED) && strcmp(c.out, want_out) == 0 &&
                   strcmp(c.err, want_err) == 0,
               "%s: %s: %s", parser_name(pc), args_text(pc, args, sizeof args),
               what)) {
        diag_bytes("want on stdout", want_out, strlen(want_out));
        diag_child(&c);
    }
}

/* Bad usage: exit 2, the usage message on stderr, not on stdout (where
 * only the callback's own lines may be). */
static void expect_usage_error(const struct parse_case *pc)
{
    struct child c;
    char args[128];

    run_child(parse_child, (void *)pc, &c);
    if (!check(exited_with(&c, 2) && strstr(c.out, "usage: ") == NULL &&
                   strstr(c.out, "host=") == NULL &&
                   strstr(c.err, "usage: ") != NULL,
               "%s: %s: exits 2 with a usage message on stderr",
               parser_name(pc), args_text(pc, args, sizeof args)))
        diag_child(&c);
}

/* -h: exit 0, the usage on stdout, nothing on stderr. */
static void expect_help(const struct parse_case *pc, const char *options)
{
    struct child c;
    char args[128];
    char want[64];

    snprintf(want, sizeof want, "usage: %s %s", prog_name, options);
    run_child(parse_child, (void *)pc, &c);
    if (!check(exited_with(&c, 0) && strncmp(c.out, want, strlen(want)) == 0 &&
                   c.err_len == 0,
               "%s: %s: exits 0, \"%s...\" on stdout", parser_name(pc),
               args_text(pc, args, sizeof args), want))
        diag_child(&c);
}

/* A long option that takes no value, given one: exit 2 like any bad usage,
 * and the message must name the option as typed, as one line of text. */
static void expect_message_names(const struct parse_case *pc, const char *name)
{
    struct child c;
    char args[128];

    run_child(parse_child, (void *)pc, &c);
    const char *first_nl = memchr(c.err, '\n', c.err_len);
    size_t first_len = first_nl != NULL ? (size_t)(first_nl - c.err) : 0;
    bool has_nul = memchr(c.err, '\0', first_len) != NULL;
    bool named = memmem(c.err, first_len, name, strlen(name)) != NULL;
    if (!check(exited_with(&c, 2) && named && !has_nul,
               "%s: %s: exits 2, the message names %s, no NUL byte in it",
               parser_name(pc), args_text(pc, args, sizeof args), name))
        diag_child(&c);
}

/* options.c refuses lesson options beyond its fixed arrays with
 * err_quit("too many lesson options"). Short options must count too: each
 * takes up to two bytes of the option string. */
static int many_options_child(void *arg)
{
    enum { MANY = 45 };
    static const char letters[] =
        "abcdefgijklmnorstuvwxyzABCDEFGIJKLMNOPQRSTUVWXYZ";
    static struct lesson_option many[MANY + 1];
    char name[64];
    char *argv[] = {name, NULL};
    struct net_options opt;

    (void)arg;
    _Static_assert(sizeof letters - 1 >= MANY, "a letter per option");
    snprintf(name, sizeof name, "%s", prog_name);
    for (int i = 0; i < MANY; i++)
        many[i] = (struct lesson_option){letters[i], NULL, "N", "an option"};
    optind = 1;
    parse_server_options(1, argv, &test_program, &opt, many, on_lesson_option,
                         &lesson_ctx);
    return PARSED;
}

static void test_too_many_short_options_are_refused(void)
{
    struct child c;

    run_child(many_options_child, NULL, &c);
    if (!check(exited_with(&c, 1) &&
                   strstr(c.err, "too many lesson options") != NULL,
               "parse_server_options: 45 short lesson options are refused "
               "(err_quit, exit 1), not overflowed"))
        diag_child(&c);
}

static void test_parse_server_options(void)
{
    static const struct parse_case none = {true, {NULL}};
    static const struct parse_case set = {true,
                                          {"-H", "::1", "-p", "0", "-q", NULL}};
    static const struct parse_case t3 = {true, {"-t", "3", NULL}};
    static const struct parse_case no_reap = {true, {"--no-reap", NULL}};
    static const struct parse_case bad[] = {
        {true, {"-p", "70000", NULL}}, {true, {"-x", NULL}},
        {true, {"-p", NULL}},          {true, {"stray", NULL}},
        {true, {"-t", "0", NULL}},     {true, {"--no-such", NULL}},
    };
    static const struct parse_case help = {true, {"-h", NULL}};
    static const struct parse_case long_help = {true, {"--help", NULL}};
    static const struct parse_case no_reap_value = {true,
                                                    {"--no-reap=1", NULL}};
    static const struct parse_case help_value = {true, {"--help=x", NULL}};
    const char *defaults = "host=127.0.0.1 port=9001 quiet=0\n";

    expect_parsed(&none, defaults, "accepted [::1]:1\n",
                  "127.0.0.1, port 9001 from program_info, not quiet");
    expect_parsed(&set, "host=::1 port=0 quiet=1\n", "",
                  "sets host, port and quiet, and quiets the log");
    expect_parsed(&t3, "option 116 arg 3\nhost=127.0.0.1 port=9001 quiet=0\n",
                  "accepted [::1]:1\n",
                  "the lesson's callback gets 't' and \"3\"");
    expect_parsed(&no_reap,
                  "option 256 arg (none)\nhost=127.0.0.1 port=9001 quiet=0\n",
                  "accepted [::1]:1\n",
                  "the lesson's callback gets key 256 and no argument");
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_usage_error(&bad[i]);
    expect_help(&help, "[-H host] [-p port] [-q] [-h]");
    expect_help(&long_help, "[-H host] [-p port] [-q] [-h]");
    expect_message_names(&no_reap_value, "--no-reap");
    expect_message_names(&help_value, "--help");
}

static void test_parse_client_options(void)
{
    static const struct parse_case none = {false, {NULL}};
    static const struct parse_case set = {false,
                                          {"-H", "::1", "-p", "0", NULL}};
    static const struct parse_case quiet = {false, {"-q", NULL}};
    static const struct parse_case help = {false, {"-h", NULL}};
    const char *defaults = "host=127.0.0.1 port=9001 quiet=0\n";

    expect_parsed(&none, defaults, "accepted [::1]:1\n",
                  "127.0.0.1 and port 9001 from program_info");
    expect_parsed(&set, "host=::1 port=0 quiet=0\n", "accepted [::1]:1\n",
                  "sets host and port");
    expect_usage_error(&quiet);
    expect_help(&help, "[-H host] [-p port] [-h]");
}

/* ---- signals ------------------------------------------------------------ */

/* The totals the handler prints, and what before() leaves in them. */
static struct served handler_totals;

static void before_stop(void)
{
    static const char line[] = "before\n";

    if (write(STDERR_FILENO, line, sizeof line - 1) == -1)
        _exit(3);
}

enum { BY_HANDLER_PIPE, BY_HANDLER_RETURNED };

/* Way (a): raise(SIGTERM) runs before(), prints the line, exits 0. */
static int stop_by_handler_child(void *arg)
{
    struct sigaction sa;

    (void)arg;
    signal(SIGPIPE, SIG_DFL); /* the parent ignores it */
    atomic_init(&handler_totals.conns, 3);
    atomic_init(&handler_totals.bytes, 18446744073709551615ULL);
    stop_by_handler(&handler_totals, before_stop);
    if (sigaction(SIGPIPE, NULL, &sa) == -1 || sa.sa_handler != SIG_IGN)
        return FAILED_BIT(BY_HANDLER_PIPE);
    raise(SIGTERM);
    return FAILED_BIT(BY_HANDLER_RETURNED);
}

static void test_stop_by_handler(void)
{
    static const char *const what[] = {
        [BY_HANDLER_PIPE] = "stop_by_handler ignores SIGPIPE",
        [BY_HANDLER_RETURNED] = "stop_by_handler: SIGTERM does not return",
    };
    static const char want[] =
        "before\nserved 3 connections, echoed 18446744073709551615 bytes\n";
    struct child c;

    run_child(stop_by_handler_child, NULL, &c);
    check_child_bits(&c, "signals", what, COUNT(what));
    if (!check(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 &&
                   c.err_len == sizeof want - 1 &&
                   memcmp(c.err, want, c.err_len) == 0,
               "stop_by_handler: SIGTERM runs before(), writes the stats "
               "line and exits 0"))
        diag_child(&c);
}

static int stats_zero_child(void *arg)
{
    (void)arg;
    log_stats_signal_safe("connections", 0, 0);
    return 0;
}

static void test_log_stats_signal_safe(void)
{
    struct child c;
    static const char want[] = "served 0 connections, echoed 0 bytes\n";

    run_child(stats_zero_child, NULL, &c);
    check(c.err_len == sizeof want - 1 && memcmp(c.err, want, c.err_len) == 0,
          "log_stats_signal_safe writes 0 as one digit");
}

enum {
    BY_MASK_BLOCKED,
    BY_MASK_NOT_YET,
    BY_MASK_PENDING,
    BY_MASK_EINTR,
    BY_MASK_STOPPED,
    BY_MASK_BLOCKED_AFTER,
};

/* Way (b) with a mask: the signal waits, blocked, until pselect() opens
 * the mask; then pselect() fails with EINTR and the flag is set. */
static int stop_by_mask_child(void *arg)
{
    sigset_t waitmask, now;
    int failed = 0;

    (void)arg;
    stop_by_mask(&waitmask);
    if (sigprocmask(SIG_SETMASK, NULL, &now) == -1 ||
        !sigismember(&now, SIGINT) || !sigismember(&now, SIGTERM) ||
        sigismember(&waitmask, SIGINT) || sigismember(&waitmask, SIGTERM))
        failed |= FAILED_BIT(BY_MASK_BLOCKED);
    if (stop_requested())
        failed |= FAILED_BIT(BY_MASK_NOT_YET);
    raise(SIGINT);
    if (!stop_requested())
        failed |= FAILED_BIT(BY_MASK_PENDING);
    if (pselect(0, NULL, NULL, NULL, NULL, &waitmask) != -1 || errno != EINTR)
        failed |= FAILED_BIT(BY_MASK_EINTR);
    if (!stop_requested())
        failed |= FAILED_BIT(BY_MASK_STOPPED);
    if (sigprocmask(SIG_SETMASK, NULL, &now) == -1 ||
        !sigismember(&now, SIGINT))
        failed |= FAILED_BIT(BY_MASK_BLOCKED_AFTER);
    return failed;
}

static void test_stop_by_mask(void)
{
    static const char *const what[] = {
        [BY_MASK_BLOCKED] = "stop_by_mask blocks SIGINT and SIGTERM, and "
                            "its wait mask lets them through",
        [BY_MASK_NOT_YET] = "stop_by_mask: stop_requested() is false at "
                            "first",
        [BY_MASK_PENDING] = "stop_by_mask: a raised SIGINT, still blocked "
                            "and pending, makes stop_requested() true",
        [BY_MASK_EINTR] = "stop_by_mask: pselect() with the wait mask fails "
                          "with EINTR at once",
        [BY_MASK_STOPPED] = "stop_by_mask: stop_requested() is then true",
        [BY_MASK_BLOCKED_AFTER] = "stop_by_mask: the signals are blocked "
                                  "again after pselect()",
    };
    struct child c;

    run_child(stop_by_mask_child, NULL, &c);
    check_child_bits(&c, "signals", what, COUNT(what));
}

enum { SIGFD_QUIET, SIGFD_READS_SIGNAL, SIGFD_FLAGS };

/* Way (b) with a descriptor: a raised SIGTERM becomes readable bytes. */
static int stop_signalfd_child(void *arg)
{
    struct signalfd_siginfo si;
    int failed = 0;

    (void)arg;
    int fd = stop_signalfd();
    if (read(fd, &si, sizeof si) != -1 || errno != EAGAIN)
        failed |= FAILED_BIT(SIGFD_QUIET);
    raise(SIGTERM);
    if (read(fd, &si, sizeof si) != (ssize_t)sizeof si ||
        si.ssi_signo != SIGTERM)
        failed |= FAILED_BIT(SIGFD_READS_SIGNAL);
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC) ||
        !(fcntl(fd, F_GETFL) & O_NONBLOCK))
        failed |= FAILED_BIT(SIGFD_FLAGS);
    return failed;
}

static void test_stop_signalfd(void)
{
    static const char *const what[] = {
        [SIGFD_QUIET] = "stop_signalfd: nothing to read before a signal",
        [SIGFD_READS_SIGNAL] = "stop_signalfd: SIGTERM is read from it",
        [SIGFD_FLAGS] = "stop_signalfd: non-blocking and close-on-exec",
    };
    struct child c;

    run_child(stop_signalfd_child, NULL, &c);
    check_child_bits(&c, "signals", what, COUNT(what));
}

/* ---- options: closed standard descriptors -------------------------------- */

enum { STDFD_OPEN, STDFD_NULL };

/* Started with 0, 1 and 2 closed, a program that parses its options has
 * all three open on /dev/null before it opens anything else. */
static int std_fds_child(void *arg)
{
    static const struct program_info pi = {"NN-test", "a test", 9001};
    char name[] = "client";
    char *argv[] = {name, NULL};
    struct net_options opt;
    struct stat null, st;
    int failed = 0;

    (void)arg;
    if (stat("/dev/null", &null) == -1)
        return 1;
    close(0);
    close(1);
    close(2);
    optind = 1;
    parse_client_options(1, argv, &pi, &opt);
    for (int fd = 0; fd <= 2; fd++) {
        if (fstat(fd, &st) == -1)
            failed |= FAILED_BIT(STDFD_OPEN);
        else if (st.st_rdev != null.st_rdev)
            failed |= FAILED_BIT(STDFD_NULL);
    }
    return failed;
}

static void test_std_fds_opened(void)
{
    static const char *const what[] = {
        [STDFD_OPEN] = "parse_client_options opens 0, 1 and 2 where they "
                       "were closed",
        [STDFD_NULL] = "the closed ones are opened on /dev/null",
    };
    struct child c;

    run_child(std_fds_child, NULL, &c);
    check_child_bits(&c, "options", what, COUNT(what));
}

/* ---- conn --------------------------------------------------------------- */

/* The conn's send buffer in the tests where echoes must back up: Linux
 * doubles it and lets AF_UNIX queue about that much, 8 KiB. */
enum { SMALL_SNDBUF = 4096 };

/* A struct conn on one end of a fresh AF_UNIX socket pair, made
 * non-blocking here (not with set_nonblocking(), which has tests of its
 * own); *client gets the other end, blocking, with timeouts. sndbuf above 0
 * shrinks the conn's send buffer.
 *
 * Over AF_UNIX a write() puts its bytes in the peer's receive queue before
 * it returns, and a read() takes everything queued, up to its size: what
 * one end can take without waiting is exactly what the other has sent.
 * The tests below rely on that to know the state of both ends without
 * sleeping. */
static struct conn *conn_on_pair(int *client, int sndbuf)
{
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 40000);
    int sv[2];

    make_pair(sv);
    int flags = fcntl(sv[0], F_GETFL);
    if (flags == -1 || fcntl(sv[0], F_SETFL, flags | O_NONBLOCK) == -1)
        bail_out("fcntl O_NONBLOCK");
    if (sndbuf > 0 &&
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == -1)
        bail_out("setsockopt SO_SNDBUF");
    struct conn *c = conn_new(sv[0], (struct sockaddr *)&sin, sizeof sin);
    if (c == NULL)
        bail_out("conn_new");
    *client = sv[1];
    return c;
}

/* The client's side of a pattern stream: it sends pattern_byte(i) for
 * i = 0, 1, 2... and checks that the echo is the same sequence. */
struct pattern_client {
    int fd;
    size_t sent, received;
    size_t first_bad; /* offset of the first wrong byte back, or SIZE_MAX */
};

/* Sends up to max more bytes of the pattern, as many as the socket takes
 * without waiting; returns how many. */
static size_t pattern_send(struct pattern_client *pc, size_t max)
{
    unsigned char buf[4096];
    size_t total = 0;

    while (total < max) {
        size_t len = max - total < sizeof buf ? max - total : sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = pattern_byte(pc->sent + i);
        ssize_t n = send(pc->fd, buf, len, MSG_DONTWAIT);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            break;
        if (n <= 0)
            bail_out("the client's send");
        pc->sent += (size_t)n;
        total += (size_t)n;
    }
    return total;
}

/* Takes every byte of the echo that has come, without waiting for more,
 * and checks each against the pattern; returns how many. */
static size_t pattern_receive(struct pattern_client *pc)
{
    unsigned char buf[4096];
    size_t total = 0;

    for (;;) {
        ssize_t n = recv(pc->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            break;
        if (n == -1)
            bail_out("the client's recv");
        if (n == 0)
            break;
        for (size_t i = 0; i < (size_t)n; i++)
            if (pc->first_bad == SIZE_MAX &&
                buf[i] != pattern_byte(pc->received + i))
                pc->first_bad = pc->received + i;
        pc->received += (size_t)n;
        total += (size_t)n;
    }
    return total;
}

/* The client reads, the conn flushes, until nothing is pending. Returns
 * false if conn_flush() failed or nothing moved. */
static bool drain_and_flush(struct conn *c, struct pattern_client *pc)
{
    while (conn_pending(c) > 0) {
        size_t before = conn_pending(c);
        size_t got = pattern_receive(pc);
        if (conn_flush(c) == -1) {
            diag("conn_flush failed: %s", errname(c->error));
            return false;
        }
        if (got == 0 && conn_pending(c) == before) {
            diag("stuck with %zu bytes pending", before);
            return false;
        }
    }
    pattern_receive(pc);
    return true;
}

static void diag_conn(const struct conn *c)
{
    diag("conn: pending %zu, out %s, cap %zu, peer_done %d, error %s "
         "(failed_call %s), nbytes %llu, nreads %llu, nwrites %llu",
         conn_pending(c), c->out != NULL ? "set" : "NULL", c->out_cap,
         c->peer_done, c->error != 0 ? errname(c->error) : "0",
         c->failed_call != NULL ? c->failed_call : "NULL", c->nbytes, c->nreads,
         c->nwrites);
}

static void test_conn_echoes_straight_back(void)
{
    static const char hello[] = "hello, conn";
    const size_t len = sizeof hello - 1;
    char buf[64];
    int client;
    struct conn *c = conn_on_pair(&client, 0);

    if (!check(strcmp(c->peer, "127.0.0.1:40000") == 0 &&
                   conn_pending(c) == 0 && c->out == NULL &&
                   conn_wants_read(c) && !conn_wants_write(c) &&
                   !conn_finished(c) && c->nbytes == 0 && c->error == 0,
               "conn_new: the peer's address as text, nothing pending, no "
               "buffer; wants to read, not to write"))
        diag_conn(c);

    put(client, hello, len);
    errno = 0;
    ssize_t n = conn_read(c, sizeof buf);
    int err = errno;
    ssize_t got = recv(client, buf, sizeof buf, MSG_DONTWAIT);
    if (!check(n == (ssize_t)len && got == (ssize_t)len &&
                   memcmp(buf, hello, len) == 0,
               "conn_read: returns the %zu bytes read and writes them "
               "straight back to the client",
               len)) {
        diag("conn_read returned %zd, errno %s", n, errname(err));
        diag_bytes("the client got", buf, got > 0 ? (size_t)got : 0);
    }
    if (!check(c->nbytes == len && conn_pending(c) == 0 && c->out == NULL &&
                   !conn_wants_write(c),
               "conn_read: when the echo fits, nbytes counts it, nothing is "
               "pending and no buffer is allocated"))
        diag_conn(c);

    errno = 0;
    n = conn_read(c, sizeof buf);
    err = errno;
    if (!check(n == -1 && err == EAGAIN && c->error == 0 &&
                   c->failed_call == NULL && !c->peer_done &&
                   !conn_finished(c) && conn_wants_read(c),
               "conn_read: nothing to read gives -1 with errno EAGAIN, and "
               "records no error")) {
        diag("conn_read returned %zd, errno %s", n, errname(err));
        diag_conn(c);
    }
    if (!check(c->nreads == 2 && c->nwrites == 1,
               "conn: nreads and nwrites count system calls: two read()s "
               "(one of them EAGAIN), one write()"))
        diag_conn(c);

    if (shutdown(client, SHUT_WR) == -1)
        bail_out("shutdown");
    n = conn_read(c, sizeof buf);
    if (!check(n == 0 && c->peer_done && c->error == 0 && !conn_wants_read(c) &&
                   conn_finished(c),
               "conn_read: returns 0 at the client's shutdown(SHUT_WR) and "
               "sets peer_done; nothing pending, so conn_finished")) {
        diag("conn_read returned %zd", n);
        diag_conn(c);
    }
    conn_free(c);
    close(client);
}

/* conn_init() and conn_close() on a struct the caller owns, as a server
 * that holds the conn inside its own per-client struct uses them: init
 * sets every field, whatever was there before, and allocates nothing;
 * close closes the descriptor and frees the output buffer, and leaves the
 * struct (here on the stack: freeing it would crash under ASan). */
static void test_conn_init_and_close(void)
{
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 40000);
    static char big[16 * SMALL_SNDBUF];
    struct conn c;
    int sv[2], sndbuf = SMALL_SNDBUF;

    make_pair(sv);
    if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == -1 ||
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == -1)
        bail_out("fcntl O_NONBLOCK or setsockopt SO_SNDBUF");
    memset(&c, 0xa5, sizeof c); /* what a reused struct may hold */
    conn_init(&c, sv[0], (struct sockaddr *)&sin, sizeof sin);
    if (!check(c.fd == sv[0] && strcmp(c.peer, "127.0.0.1:40000") == 0 &&
                   c.out == NULL && conn_pending(&c) == 0 && c.out_cap == 0 &&
                   !c.peer_done && c.error == 0 && c.failed_call == NULL &&
                   c.nbytes == 0 && c.nreads == 0 && c.nwrites == 0 &&
                   conn_wants_read(&c) && !conn_finished(&c),
               "conn_init: the descriptor and the peer's address as text; "
               "every other field zero, whatever the struct held"))
        diag_conn(&c);

    int sent = conn_send(&c, big, sizeof big);
    if (!check(sent == 0 && c.out != NULL && conn_pending(&c) > 0,
               "conn_init: the conn works: a send the socket cannot take "
               "whole keeps the rest in an output buffer"))
        diag_conn(&c);

    conn_close(&c);
    errno = 0;
    int flags = fcntl(sv[0], F_GETFD);
    int err = errno;
    if (!check(flags == -1 && err == EBADF,
               "conn_close: the descriptor is closed"))
        diag("fcntl F_GETFD returned %d, errno %s", flags, errname(err));
    if (!check(c.fd == -1 && c.out == NULL && conn_pending(&c) == 0 &&
                   c.out_cap == 0 && strcmp(c.peer, "127.0.0.1:40000") == 0,
               "conn_close: the output buffer freed, fd -1, nothing "
               "pending; the struct itself is left, the peer still there"))
        diag_conn(&c);
    close(sv[1]);
}

/* A client that sends and never reads: the echo backs up into the conn's
 * buffer until the high-water mark stops the reading. Then the client
 * reads, and conn_flush() sends what was kept. */
static void test_conn_stops_reading_at_high_water(void)
{
    enum { READ_SIZE = 10000 };
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, SMALL_SNDBUF);
    size_t max_pending = 0, read_total = 0;
    unsigned long long calls = 0, with_write = 0;
    bool write_wanted = true;
    ssize_t n = 0;

    /* The loop gives up at four times the mark, for a conn that never
     * says no. */
    while (conn_wants_read(c) && read_total < 4 * CONN_HIGH_WATER) {
        pattern_send(&pc, READ_SIZE);
        bool empty = conn_pending(c) == 0;
        n = conn_read(c, READ_SIZE);
        calls++;
        if (n <= 0)
            break;
        read_total += (size_t)n;
        if (empty)
            with_write++; /* exactly one write(), whole, short or EAGAIN */
        if (conn_pending(c) > max_pending)
            max_pending = conn_pending(c);
        if (conn_pending(c) > 0 && !conn_wants_write(c))
            write_wanted = false;
    }
    diag("read %zu bytes in %llu calls, %zu pending at most", read_total, calls,
         max_pending);
    if (!check(n > 0 && max_pending > 0 && write_wanted && conn_wants_write(c),
               "conn: a client that does not read: the echo stays pending, "
               "and conn_wants_write is true while it does"))
        diag("last conn_read returned %zd", n);
    if (!check(n > 0 && !conn_wants_read(c) &&
                   conn_pending(c) >= CONN_HIGH_WATER && c->error == 0 &&
                   !c->peer_done,
               "conn_wants_read turns false once pending output reaches "
               "CONN_HIGH_WATER, not before"))
        diag_conn(c);
    check(max_pending <= CONN_HIGH_WATER + READ_SIZE,
          "conn: pending output never exceeds CONN_HIGH_WATER plus one "
          "read (%d bytes)",
          READ_SIZE);

    /* The socket is still full: this write() takes nothing. */
    size_t pending = conn_pending(c);
    int r = conn_flush(c);
    if (!check(r == 0 && conn_pending(c) == pending && c->error == 0 &&
                   c->nreads == calls && c->nwrites == with_write + 1,
               "conn: nreads and nwrites count every call, a conn_flush() "
               "write() that took nothing (EAGAIN) included")) {
        diag("conn_flush returned %d; want %llu reads, %llu writes", r, calls,
             with_write + 1);
        diag_conn(c);
    }

    bool drained = drain_and_flush(c, &pc);
    if (!check(drained && conn_pending(c) == 0 && c->out == NULL &&
                   !conn_wants_write(c) && conn_wants_read(c),
               "conn_flush, once the client reads: nothing pending, the "
               "buffer freed (out NULL), reading wanted again"))
        diag_conn(c);
    if (!check(pc.received == read_total && pc.first_bad == SIZE_MAX &&
                   c->nbytes == read_total,
               "conn: every byte read comes back once, in order, and "
               "nbytes counts them"))
        diag("read %zu, the client got %zu, first wrong at %zu, nbytes %llu",
             read_total, pc.received, pc.first_bad, c->nbytes);
    conn_free(c);
    close(pc.fd);
}

/* 1 MiB through a conn whose client sends 1000 to 5200 bytes a round and
 * reads two rounds in three, and which flushes every other round, with
 * read sizes from 1 byte to 20000: echoes go out whole, in part, or wait
 * behind pending ones, in every order. A conn that wrote new bytes ahead
 * of pending ones would scramble the stream. */
static void test_conn_keeps_order(void)
{
    enum { TOTAL = 1 << 20, MAX_ROUNDS = 100000 };
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, SMALL_SNDBUF);
    unsigned long direct = 0, behind = 0, kept = 0;
    unsigned round;

    for (round = 0; pc.received < TOTAL && round < MAX_ROUNDS; round++) {
        size_t chunk = 1000 + round % 7 * 700;
        if (pc.sent < TOTAL)
            pattern_send(&pc,
                         TOTAL - pc.sent < chunk ? TOTAL - pc.sent : chunk);
        if (round % 3 != 0)
            pattern_receive(&pc);
        if (conn_wants_read(c)) {
            size_t before = conn_pending(c);
            ssize_t n = conn_read(c, 1 + round * 7919u % 20000);
            if (n > 0 && before > 0)
                behind++;
            else if (n > 0 && conn_pending(c) == 0)
                direct++;
            else if (n > 0)
                kept++;
        }
        if (round % 2 == 0 && conn_flush(c) == -1)
            break;
        if (c->error != 0)
            break;
    }
    diag("%u rounds: %lu reads echoed whole, %lu kept in part, %lu queued "
         "behind pending output",
         round, direct, kept, behind);
    if (!check(pc.received == TOTAL && pc.first_bad == SIZE_MAX &&
                   c->error == 0 && direct > 0 && kept > 0 && behind > 0,
               "conn: 1 MiB comes back intact and in order through direct "
               "and buffered echoes, mixed")) {
        diag("the client sent %zu, got %zu back, first wrong at %zu", pc.sent,
             pc.received, pc.first_bad);
        diag_conn(c);
    }
    conn_free(c);
    close(pc.fd);
}

/* Each round the client sends 9000 bytes and reads what has come, then
 * the conn reads and flushes: the socket takes back about 8000 bytes a
 * round, so a backlog builds up that each flush only starts on. New
 * bytes are then kept behind pending ones whose start has moved into the
 * buffer: keep() must move them to the front, or copy them into a bigger
 * buffer, from where they start. Both are seen in the struct: out_start
 * back to 0 with the same capacity, or a larger capacity. */
static void test_conn_compacts_and_grows_in_order(void)
{
    enum { ROUNDS = 40, SEND = 9000 };
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, SMALL_SNDBUF);
    unsigned compacted = 0, grew = 0;

    for (int round = 0; round < ROUNDS && c->error == 0; round++) {
        pattern_send(&pc, SEND);
        pattern_receive(&pc);
        size_t start = c->out_start, cap = c->out_cap;
        bool behind = conn_pending(c) > 0;
        if (conn_wants_read(c) && conn_read(c, CONN_READ_MAX) > 0 && behind &&
            start > 0) {
            if (c->out_cap == cap && c->out_start == 0)
                compacted++;
            else if (c->out_cap > cap)
                grew++;
        }
        conn_flush(c);
    }
    bool drained = drain_and_flush(c, &pc);
    diag("the buffer compacted %u times and grew %u times with its start "
         "moved",
         compacted, grew);
    if (!check(drained && pc.received == pc.sent && pc.first_bad == SIZE_MAX &&
                   compacted > 0 && grew > 0,
               "conn: output kept behind partly flushed output stays in "
               "order as the buffer compacts and grows")) {
        diag("the client sent %zu, got %zu back, first wrong at %zu", pc.sent,
             pc.received, pc.first_bad);
        diag_conn(c);
    }
    conn_free(c);
    close(pc.fd);
}

/* The client sends more than the conn's socket takes back, then
 * half-closes: the conn has seen the end but still owes an echo. */
static void test_conn_finishes_once_drained(void)
{
    enum { LEN = 20000 };
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, SMALL_SNDBUF);
    size_t total = 0;
    ssize_t n = -1;

    if (pattern_send(&pc, LEN) != LEN || shutdown(pc.fd, SHUT_WR) == -1)
        bail_out("the client's send or shutdown");
    for (int i = 0; i < 100 && (n = conn_read(c, CONN_READ_MAX)) > 0; i++)
        total += (size_t)n;
    if (!check(n == 0 && total == LEN && c->peer_done && conn_pending(c) > 0 &&
                   !conn_finished(c) && conn_wants_write(c) &&
                   !conn_wants_read(c),
               "conn: the client half-closed with its echo still pending: "
               "peer_done, wants to write, not to read, not finished")) {
        diag("conn_read returned %zd after %zu bytes", n, total);
        diag_conn(c);
    }
    bool drained = drain_and_flush(c, &pc);
    if (!check(drained && conn_finished(c) && pc.received == LEN &&
                   pc.first_bad == SIZE_MAX,
               "conn_finished once the last pending byte has gone out"))
        diag_conn(c);
    conn_free(c);
    close(pc.fd);
}

static bool failed_in(const struct conn *c, const char *call)
{
    return c->failed_call != NULL && strcmp(c->failed_call, call) == 0;
}

/* The client sends, then closes: the conn reads the bytes, and their echo
 * has nobody to go to. */
static void test_conn_write_to_closed_client(void)
{
    int client;
    struct conn *c = conn_on_pair(&client, 0);

    signal(SIGPIPE, SIG_IGN); /* as every server does: EPIPE, not death */
    put(client, "bye", 3);
    close(client);
    errno = 0;
    ssize_t n = conn_read(c, 64);
    int err = errno;
    if (!check(n == -1 && err == EPIPE && c->error == EPIPE &&
                   failed_in(c, "write") && conn_finished(c) &&
                   !conn_wants_read(c) && !conn_wants_write(c),
               "conn_read: the echo to a client that closed fails: -1, error "
               "EPIPE, failed_call \"write\", conn_finished")) {
        diag("conn_read returned %zd, errno %s", n, errname(err));
        diag_conn(c);
    }
    conn_free(c);
}

/* A TCP client that resets (SO_LINGER {1, 0}), after sending data or
 * before: the echo fails, or the read itself does. */
static void test_conn_client_resets(bool with_data)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct sockaddr_in sin = ipv4_addr("127.0.0.1", 40000);
    int client, server;

    tcp_loopback_pair(&client, &server);
    int flags = fcntl(server, F_GETFL);
    if (flags == -1 || fcntl(server, F_SETFL, flags | O_NONBLOCK) == -1)
        bail_out("fcntl O_NONBLOCK");
    struct conn *c = conn_new(server, (struct sockaddr *)&sin, sizeof sin);
    if (c == NULL)
        bail_out("conn_new");
    if (with_data)
        put(client, "bye", 3);
    if (setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == -1)
        bail_out("setsockopt SO_LINGER");
    close(client);
    /* No events asked for: poll() waits for the reset itself (POLLHUP,
     * POLLERR), not for the data before it. */
    struct pollfd pfd = {.fd = server, .events = 0};
    if (poll(&pfd, 1, IO_TIMEOUT_SEC * 1000) != 1)
        bail_out("waiting for the reset");

    errno = 0;
    ssize_t n = conn_read(c, 64);
    int err = errno;
    bool failed = n == -1 && err == c->error && conn_finished(c) &&
                  !conn_wants_read(c) && !conn_wants_write(c);
    if (with_data) {
        if (!check(failed && (err == ECONNRESET || err == EPIPE) &&
                       failed_in(c, "write"),
                   "conn_read: the echo to a client that reset fails: -1, "
                   "error ECONNRESET or EPIPE, failed_call \"write\", "
                   "conn_finished"))
            diag_conn(c);
    } else {
        if (!check(failed && err == ECONNRESET && failed_in(c, "read"),
                   "conn_read: a reset with nothing to read: -1, error "
                   "ECONNRESET, failed_call \"read\", conn_finished"))
            diag_conn(c);
    }
    conn_free(c);
}

/* In a child: were the cap missing, the read would overrun conn_read()'s
 * stack buffer. */
static int conn_read_cap_child(void *arg)
{
    enum { EXTRA = 1000 };
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, 0);

    (void)arg;
    if (pattern_send(&pc, CONN_READ_MAX + EXTRA) != CONN_READ_MAX + EXTRA)
        bail_out("the client could not queue its bytes");
    ssize_t first = conn_read(c, 4 * CONN_READ_MAX);
    ssize_t second = conn_read(c, 4 * CONN_READ_MAX);
    printf("conn_read: %zd, then %zd\n", first, second);
    conn_free(c);
    close(pc.fd);
    return first == CONN_READ_MAX && second == EXTRA ? 0 : FAILED_BIT(0);
}

/* conn_recv() reads without echoing; conn_send() writes at once when
 * nothing is pending, keeps what the socket does not take, and keeps order
 * behind what is pending. */
static void test_conn_recv_and_send(void)
{
    struct pattern_client pc = {.first_bad = SIZE_MAX};
    struct conn *c = conn_on_pair(&pc.fd, SMALL_SNDBUF);
    unsigned char block[8192];
    char buf[64];
    size_t sent = 0;

    put(pc.fd, "ping", 4);
    ssize_t n = conn_recv(c, buf, sizeof buf);
    if (!check(n == 4 && memcmp(buf, "ping", 4) == 0 && c->nbytes == 0 &&
                   c->nwrites == 0 && conn_pending(c) == 0,
               "conn_recv: returns the bytes read and writes nothing back")) {
        diag("conn_recv returned %zd", n);
        diag_conn(c);
    }
    errno = 0;
    n = conn_recv(c, buf, 0);
    check(n == -1 && errno == EINVAL && c->nreads == 1,
          "conn_recv: size 0 fails with EINVAL without a read()");

    /* Send the pattern in blocks until some of it stays pending, then a
     * few blocks more, which must queue behind it. */
    for (int extra = 0; extra < 4 && sent < 64 * CONN_HIGH_WATER;) {
        for (size_t i = 0; i < sizeof block; i++)
            block[i] = pattern_byte(sent + i);
        if (conn_send(c, block, sizeof block) == -1)
            break;
        sent += sizeof block;
        if (conn_pending(c) > 0)
            extra++;
    }
    if (!check(c->error == 0 && conn_pending(c) > 0 && conn_wants_write(c),
               "conn_send: what the socket does not take stays pending"))
        diag_conn(c);
    bool drained = drain_and_flush(c, &pc);
    if (!check(drained && pc.received == sent && pc.first_bad == SIZE_MAX &&
                   c->nbytes == sent && c->out == NULL,
               "conn_send: the client gets all %zu bytes in order, and the "
               "buffer is freed once drained",
               sent)) {
        diag("received %zu, first bad byte at %zu", pc.received, pc.first_bad);
        diag_conn(c);
    }

    close(pc.fd);
    pc.fd = -1;
    memset(block, 'x', sizeof block);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = conn_send(c, block, sizeof block);
    int err = errno;
    if (!check(rc == -1 && (err == EPIPE || err == ECONNRESET) &&
                   c->error == err && conn_finished(c),
               "conn_send: to a client that has closed fails with EPIPE or "
               "ECONNRESET, recorded"))
        diag_conn(c);
    errno = 0;
    unsigned long long writes = c->nwrites;
    rc = conn_send(c, "y", 1);
    check(rc == -1 && errno == c->error && c->nwrites == writes,
          "conn_send: after a failure, returns the recorded error at once");
    conn_free(c);
}

static void test_conn_read_size_is_capped(void)
{
    static const char *const what[] = {
        "asked for 4 * CONN_READ_MAX with CONN_READ_MAX + 1000 bytes "
        "queued, it reads CONN_READ_MAX, then the 1000",
    };
    struct child c;

    run_child(conn_read_cap_child, NULL, &c);
    check_child_bits(&c, "conn_read", what, COUNT(what));
}

/* ---- relay, read_blocking, writen_blocking, err_connect, err_relay ------ */

/* How fake_server_main() answers what it reads. */
enum fake_mode { FAKE_ECHO, FAKE_NO_ECHO, FAKE_ECHO_PLUS_ONE };

/* The server's side of a relay: reads until the client's FIN, answers as
 * mode says, then closes. */
struct fake_server {
    int fd;
    enum fake_mode mode;
    atomic_size_t got; /* bytes read so far */
};

static void *fake_server_main(void *arg)
{
    struct fake_server *fs = arg;
    char buf[4096];
    ssize_t n;

    while ((n = read(fs->fd, buf, sizeof buf)) > 0) {
        atomic_fetch_add(&fs->got, (size_t)n);
        if (fs->mode != FAKE_NO_ECHO)
            put(fs->fd, buf, (size_t)n);
    }
    if (fs->mode == FAKE_ECHO_PLUS_ONE)
        put(fs->fd, "!", 1);
    close(fs->fd);
    return NULL;
}

/* A socket pair whose far end a fake server thread answers; the near
 * end, returned, is the client's socket. */
static int start_fake_server(pthread_t *th, struct fake_server *fs,
                             enum fake_mode mode)
{
    int sv[2];

    make_pair(sv);
    fs->fd = sv[1];
    fs->mode = mode;
    atomic_init(&fs->got, 0);
    if (pthread_create(th, NULL, fake_server_main, fs) != 0)
        bail_out("pthread_create");
    return sv[0];
}

/* A memory file holding len bytes of a pattern, read from its start. */
static int pattern_file(size_t len)
{
    unsigned char block[4096];
    int fd = memfd_create("relay-in", MFD_CLOEXEC);

    if (fd == -1)
        bail_out("memfd_create");
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof block ? len - done : sizeof block;
        for (size_t i = 0; i < n; i++)
            block[i] = (unsigned char)((done + i) * 7 + (done + i) / 251);
        put(fd, block, n);
        done += n;
    }
    if (lseek(fd, 0, SEEK_SET) == -1)
        bail_out("lseek");
    return fd;
}

/* Whether the file out holds exactly what in holds. */
static bool same_files(int in, int out)
{
    static char a[1 << 16], b[1 << 16];
    off_t off = 0;

    for (;;) {
        ssize_t na = pread(in, a, sizeof a, off);
        ssize_t nb = pread(out, b, sizeof b, off);
        if (na != nb || na < 0)
            return false;
        if (na == 0)
            return true;
        if (memcmp(a, b, (size_t)na) != 0)
            return false;
        off += na;
    }
}

static const char *step_text(enum relay_step s)
{
    static const char *const names[] = {
        "RELAY_OK",       "RELAY_READ_STDIN",  "RELAY_WRITE_SERVER",
        "RELAY_SHUTDOWN", "RELAY_READ_SERVER", "RELAY_WRITE_STDOUT",
        "RELAY_SETUP",    "RELAY_WAIT",        "RELAY_CUT_SHORT",
        "RELAY_TOO_MUCH"};
    return (size_t)s < COUNT(names) ? names[s] : "?";
}

static void diag_status(const struct relay_status *st)
{
    diag("sent %llu, received %llu, failed %s, err %s", st->sent, st->received,
         step_text(st->failed), errname(st->err));
}

/* A file as stdin and as stdout, as in client < in > out: relay() copies
 * all of it both ways (more than its buffer), half-closes, and returns 0
 * once the server has closed. */
static void test_relay_copies_both_ways(void)
{
    enum { LEN = 3 * RELAY_BUFSIZE + 1234 };
    struct fake_server fs;
    struct relay_status st;
    pthread_t th;
    int in = pattern_file(LEN);
    int out = memfd_create("relay-out", MFD_CLOEXEC);
    int sockfd = start_fake_server(&th, &fs, FAKE_ECHO);

    if (out == -1)
        bail_out("memfd_create");
    int rc = relay(in, sockfd, out, &st);
    pthread_join(th, NULL);
    if (!check(rc == 0 && st.failed == RELAY_OK && st.sent == LEN &&
                   st.received == LEN && atomic_load(&fs.got) == LEN &&
                   same_files(in, out),
               "relay: a file in, the same file out, %d bytes each way, "
               "returns 0 after the server's close",
               LEN))
        diag_status(&st);
    close(in);
    close(out);
    close(sockfd);
}

/* Feeds a non-blocking pipe "one", then, once the server has read it,
 * "two", then closes it. */
struct slow_feed {
    int fd;
    struct fake_server *fs;
};

static void *slow_feed_main(void *arg)
{
    struct slow_feed *f = arg;

    put(f->fd, "one\n", 4);
    for (int i = 0; i < 2000 && atomic_load(&f->fs->got) < 4; i++)
        nap_us(1000);
    put(f->fd, "two\n", 4);
    close(f->fd);
    return NULL;
}

/* stdin non-blocking (the shell's flag, on a file shared with us): a
 * pipe with nothing in it yet is neither the end nor a failure. */
static void test_relay_waits_on_nonblocking_stdin(void)
{
    struct fake_server fs;
    struct slow_feed feed;
    struct relay_status st;
    pthread_t th, feeder;
    int pfd[2];
    char got[16] = "";
    int out = memfd_create("relay-out", MFD_CLOEXEC);
    int sockfd = start_fake_server(&th, &fs, FAKE_ECHO);

    if (out == -1 || pipe2(pfd, O_CLOEXEC | O_NONBLOCK) == -1)
        bail_out("memfd_create or pipe2");
    feed = (struct slow_feed){pfd[1], &fs};
    if (pthread_create(&feeder, NULL, slow_feed_main, &feed) != 0)
        bail_out("pthread_create");
    int rc = relay(pfd[0], sockfd, out, &st);
    pthread_join(feeder, NULL);
    pthread_join(th, NULL);
    ssize_t n = pread(out, got, sizeof got - 1, 0);
    if (!check(rc == 0 && st.sent == 8 && n == 8 &&
                   memcmp(got, "one\ntwo\n", 8) == 0,
               "relay: a non-blocking stdin pipe that pauses is echoed in "
               "full"))
        diag_status(&st);
    close(pfd[0]);
    close(out);
    close(sockfd);
}

/* stdin a directory: read() fails with EISDIR, and relay() returns at
 * once with it, whatever the server does. */
static void test_relay_reports_directory_stdin(void)
{
    struct fake_server fs;
    struct relay_status st;
    pthread_t th;
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int sockfd = start_fake_server(&th, &fs, FAKE_ECHO);

    if (dir == -1)
        bail_out("open /");
    errno = 0;
    int rc = relay(dir, sockfd, STDOUT_FILENO, &st);
    int err = errno;
    if (!check(rc == -1 && st.failed == RELAY_READ_STDIN && st.err == EISDIR &&
                   err == EISDIR,
               "relay: a directory as stdin fails with RELAY_READ_STDIN, "
               "EISDIR"))
        diag_status(&st);
    close(sockfd); /* the fake server reads EOF and ends */
    pthread_join(th, NULL);
    close(dir);
}

/* An echo short or long by some bytes is a failure of its own. */
static void test_relay_checks_the_echo(void)
{
    static const struct {
        enum fake_mode mode;
        enum relay_step want;
        const char *what;
    } cases[] = {
        {FAKE_NO_ECHO, RELAY_CUT_SHORT,
         "a server that closes without echoing: RELAY_CUT_SHORT"},
        {FAKE_ECHO_PLUS_ONE, RELAY_TOO_MUCH,
         "a server that echoes one byte more: RELAY_TOO_MUCH"},
    };

    for (size_t i = 0; i < COUNT(cases); i++) {
        struct fake_server fs;
        struct relay_status st;
        pthread_t th;
        int in = pattern_file(100);
        int out = memfd_create("relay-out", MFD_CLOEXEC);
        int sockfd = start_fake_server(&th, &fs, cases[i].mode);

        if (out == -1)
            bail_out("memfd_create");
        int rc = relay(in, sockfd, out, &st);
        if (!check(rc == -1 && st.failed == cases[i].want && st.err == 0 &&
                       st.sent == 100,
                   "relay: %s", cases[i].what))
            diag_status(&st);
        close(sockfd);
        pthread_join(th, NULL);
        close(in);
        close(out);
    }

    struct relay_status st = {.sent = 5, .received = 5};
    check(relay_check_echo(&st) == 0 && st.failed == RELAY_OK,
          "relay_check_echo: as many back as sent is 0");
    st = (struct relay_status){.sent = 5, .received = 4};
    check(relay_check_echo(&st) == -1 && st.failed == RELAY_CUT_SHORT,
          "relay_check_echo: fewer back is RELAY_CUT_SHORT");
    st = (struct relay_status){
        .sent = 5, .received = 4, .failed = RELAY_READ_STDIN, .err = EIO};
    check(relay_check_echo(&st) == -1 && st.failed == RELAY_READ_STDIN &&
              st.err == EIO,
          "relay_check_echo: keeps a failure recorded before it");
}

/* The blocking halves, as 02's and 03's clients use them: relay_send()
 * copies a file to the server, relay_receive() the echo to another. */
static void test_relay_send_and_receive(void)
{
    enum { LEN = 2 * RELAY_HALF_BUFSIZE + 77 };
    struct fake_server fs;
    struct relay_status st = {0};
    pthread_t th;
    int in = pattern_file(LEN);
    int out = memfd_create("relay-out", MFD_CLOEXEC);
    int sockfd = start_fake_server(&th, &fs, FAKE_ECHO);

    if (out == -1)
        bail_out("memfd_create");
    int sent = relay_send(in, sockfd, &st);
    shutdown(sockfd, SHUT_WR);
    int received = relay_receive(sockfd, out, &st);
    pthread_join(th, NULL);
    if (!check(sent == 0 && received == 0 && st.failed == RELAY_OK &&
                   st.sent == LEN && st.received == LEN && same_files(in, out),
               "relay_send, relay_receive: %d bytes there and back", LEN))
        diag_status(&st);

    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    st = (struct relay_status){0};
    if (dir == -1)
        bail_out("open /");
    check(relay_send(dir, sockfd, &st) == -1 && st.failed == RELAY_READ_STDIN &&
              st.err == EISDIR,
          "relay_send: a directory fails with RELAY_READ_STDIN, EISDIR");
    close(dir);
    close(in);
    close(out);
    close(sockfd);
}

/* A thread that writes a byte into fd once thread *tid sleeps. */
struct late_writer {
    int fd;
    atomic_int *tid;
};

static void *late_writer_main(void *arg)
{
    struct late_writer *w = arg;

    wait_until_sleeping(wait_for_tid(w->tid));
    put(w->fd, "x", 1);
    return NULL;
}

/* read_blocking() on an empty non-blocking pipe sleeps until input comes;
 * writen_blocking() into a full one sleeps until there is room, and
 * writes all of it. */
static void test_read_and_writen_blocking(void)
{
    atomic_int tid;
    struct late_writer w = {.tid = &tid};
    pthread_t th;
    int pfd[2];
    char c = 0;

    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) == -1)
        bail_out("pipe2");
    atomic_init(&tid, 0);
    w.fd = pfd[1];
    if (pthread_create(&th, NULL, late_writer_main, &w) != 0)
        bail_out("pthread_create");
    atomic_store(&tid, (int)gettid());
    ssize_t n = read_blocking(pfd[0], &c, 1);
    pthread_join(th, NULL);
    check(n == 1 && c == 'x',
          "read_blocking: an empty non-blocking pipe waits for its input");

    /* Fill the pipe, then let a thread drain it while we write more. */
    static char block[1 << 16];
    size_t filled = 0;
    ssize_t w1;
    while ((w1 = write(pfd[1], block, sizeof block)) > 0)
        filled += (size_t)w1;
    size_t want = filled + sizeof block;
    pid_t child = fork();
    if (child == -1)
        bail_out("fork");
    if (child == 0) {
        /* The reader: everything the pipe will carry, then exit. */
        char buf[4096];
        alarm(CHILD_ALARM_SEC);
        close(pfd[1]);
        for (size_t got = 0; got < want;) {
            ssize_t r = read_blocking(pfd[0], buf, sizeof buf);
            if (r <= 0)
                _exit(3);
            got += (size_t)r;
        }
        _exit(0);
    }
    ssize_t wn = writen_blocking(pfd[1], block, sizeof block);
    int status = 0;
    waitpid(child, &status, 0);
    check(wn == (ssize_t)sizeof block && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "writen_blocking: a full non-blocking pipe waits for room, and "
          "all %zu bytes arrive",
          sizeof block);
    close(pfd[0]);
    close(pfd[1]);
}

static int err_relay_child(void *arg)
{
    err_relay(arg);
}

static int err_connect_child(void *arg)
{
    static const struct net_options opt = {"127.0.0.1", "9", false};

    errno = ECONNREFUSED;
    err_connect(&opt, *(int *)arg);
}

/* The client's fatal lines: one line on stderr, exit 1. */
static void test_err_relay_and_err_connect(void)
{
    static const struct {
        struct relay_status st;
        const char *line;
    } cases[] = {
        {{10, 4, RELAY_CUT_SHORT, 0},
         "server closed the connection: echo cut short"},
        {{10, 11, RELAY_TOO_MUCH, 0},
         "server sent bytes that were never sent to it"},
        {{0, 0, RELAY_READ_STDIN, EISDIR},
         "read from stdin: EISDIR (Is a directory)"},
        {{3, 0, RELAY_WRITE_SERVER, EPIPE},
         "write to server: EPIPE (Broken pipe)"},
    };
    struct child c;
    char want[256];

    for (size_t i = 0; i < COUNT(cases); i++) {
        snprintf(want, sizeof want, "%s: %s\n", prog_name, cases[i].line);
        run_child(err_relay_child, (void *)&cases[i].st, &c);
        if (!check(exited_with(&c, 1) && stderr_is(&c, want),
                   "err_relay: \"%s\", exit 1", cases[i].line))
            diag_child(&c);
    }

    int gai_err = 0;
    snprintf(want, sizeof want,
             "%s: cannot connect to 127.0.0.1:9: ECONNREFUSED (Connection "
             "refused)\n",
             prog_name);
    run_child(err_connect_child, &gai_err, &c);
    if (!check(exited_with(&c, 1) && stderr_is(&c, want),
               "err_connect: \"cannot connect to HOST:PORT: errno\", exit 1"))
        diag_child(&c);
    gai_err = EAI_NONAME;
    snprintf(want, sizeof want, "%s: cannot resolve 127.0.0.1: %s\n", prog_name,
             gai_strerror(EAI_NONAME));
    run_child(err_connect_child, &gai_err, &c);
    if (!check(exited_with(&c, 1) && stderr_is(&c, want),
               "err_connect: \"cannot resolve HOST: reason\", exit 1"))
        diag_child(&c);
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *slash;

    alarm(20);
    prog_name = argc > 0 ? argv[0] : "test_common";
    slash = strrchr(prog_name, '/');
    if (slash != NULL)
        prog_name = slash + 1;
    catch_usr1();
    diag("%s, READLINE_BUFSIZE %d", prog_name, READLINE_BUFSIZE);

    test_readn_gathers_one_byte_writes();
    test_readn_returns_short_count_at_eof();
    test_readn_returns_0_at_immediate_eof();
    test_readn_of_0_bytes_reads_nothing();
    test_readn_reports_ebadf();

    test_writen_large_buffer_through_small_sndbuf();
    test_writen_reports_epipe();
    test_writen_takes_const_buffer();

    test_readn_retries_after_eintr();
    test_readline_retries_after_eintr();
    test_writen_retries_after_eintr();

    test_readline_returns_one_line_per_call();
    test_readline_gathers_one_byte_writes();
    test_readline_returns_partial_line_at_eof();
    test_readline_splits_overlong_line();
    test_readline_with_maxlen_2();
    test_readline_keeps_nul_bytes();
    test_readline_rejects_maxlen_below_2();
    test_readline_of_empty_input();
    test_readline_line_of_maxlen_minus_1();
    test_readline_readers_are_independent();
    test_readline_reports_error_after_partial_line();

    test_sock_ntop_ipv4();
    test_sock_ntop_ipv6();
    test_sock_ntop_longest_ipv6_fits();
    test_sock_ntop_short_salen_or_unknown_family();
    test_sock_ntop_truncates_safely();
    test_host_port();

    test_tcp_listen_and_connect_on("127.0.0.1", false);
    test_tcp_listen_and_connect_on("::1", true);
    test_tcp_listen_reports_port_in_use();
    test_tcp_connect_reports_refused();
    test_unknown_host();

    test_accept_error_is_transient();
    test_shed_connection();
    test_set_nonblocking();
    test_shed_connection_nonblocking();
    test_conn_accept();

    test_err_ret();
    test_err_msg();
    test_err_sys_and_err_quit_exit_1();
    test_logmsg();
    test_log_lines();
    test_log_stats_more();
    test_log_listening();
    test_long_messages_are_cut();
    test_long_program_name_is_cut();

    test_parse_number();
    test_parse_choice();
    test_parse_server_options();
    test_parse_client_options();
    test_too_many_short_options_are_refused();

    test_stop_by_handler();
    test_log_stats_signal_safe();
    test_stop_by_mask();
    test_stop_signalfd();
    test_std_fds_opened();

    test_conn_echoes_straight_back();
    test_conn_init_and_close();
    test_conn_stops_reading_at_high_water();
    test_conn_keeps_order();
    test_conn_compacts_and_grows_in_order();
    test_conn_finishes_once_drained();
    test_conn_write_to_closed_client();
    test_conn_client_resets(true);
    test_conn_client_resets(false);
    test_conn_read_size_is_capped();
    test_conn_recv_and_send();

    test_relay_copies_both_ways();
    test_relay_waits_on_nonblocking_stdin();
    test_relay_reports_directory_stdin();
    test_relay_checks_the_echo();
    test_relay_send_and_receive();
    test_read_and_writen_blocking();
    test_err_relay_and_err_connect();

    printf("1..%d\n", tests_run);
    return tests_failed == 0 ? 0 : 1;
}
