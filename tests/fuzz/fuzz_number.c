/* tests/fuzz/fuzz_number.c -- libFuzzer harness for parse_number().
 *
 * The input's first byte picks the bounds, its low four bits min and its
 * high four bits max, from the table in bound(); the rest, up to the first
 * NUL, is the argument. parse_number() must never crash, must put its
 * result within [min, max] when it returns 0, and must agree with
 * reference_parse(), a second implementation written from what the
 * option's value may be: the same verdict, and the same number.
 *
 * parse_server_options() and parse_client_options() are not fuzzed here:
 * they exit() on every bad command line, and getopt keeps its place in
 * globals, so each input would need a fork of its own, where libFuzzer
 * sees no coverage. Their only parsing of a value is this function.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

/* Where check_failed() writes: the real stderr, kept by
 * LLVMFuzzerInitialize() before descriptor 2 goes to /dev/null. */
static int report_fd = STDERR_FILENO;

static _Noreturn void check_failed(const char *what, int line)
{
    dprintf(report_fd, "fuzz_number.c:%d: check failed: %s\n", line, what);
    abort();
}

/* parse_number() prints a line on stderr for every bad argument: most of
 * the inputs. Sending stderr to /dev/null with dup2() here would silence
 * libFuzzer's progress and the sanitizers' reports as well, since they go
 * to the same descriptor. libFuzzer's -close_fd_mask=2 does it properly:
 * it keeps a duplicate of stderr for itself and the sanitizers, then points
 * descriptor 2 at /dev/null. LLVMFuzzerInitialize() runs before libFuzzer
 * reads its flags, so we add that flag to the command line, and keep a
 * duplicate of our own for check_failed(). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char quiet[] = "-close_fd_mask=2";
    static char **args; /* static: still reachable for LeakSanitizer */
    int fd = dup(STDERR_FILENO);

    if (fd != -1)
        report_fd = fd;
    args = calloc((size_t)*argc + 2, sizeof *args);
    if (args == NULL)
        return 0; /* then the run is merely noisy */
    memcpy(args, *argv, (size_t)*argc * sizeof *args);
    args[(*argc)++] = quiet;
    *argv = args;
    return 0;
}

/* The bounds worth trying: the ends of long and int, of a port number,
 * and the small numbers around 0. */
static long bound(unsigned i)
{
    static const long bounds[16] = {
        LONG_MIN, LONG_MIN + 1,
        INT_MIN,  -65536,
        -1,       0,
        1,        2,
        9,        10,
        65535,    65536,
        INT_MAX,  LONG_MAX - 1,
        LONG_MAX, 1000,
    };
    return bounds[i % 16];
}

/* What parse_number() should accept, written without strtol(): optional
 * white space, which strtol() skips and parse_number() therefore allows;
 * an optional sign; one or more decimal digits; nothing after them; a
 * value that fits in a long and lies in [min, max]. Returns whether arg
 * is accepted, with its value in *out. */
static bool reference_parse(const char *s, long min, long max, long *out)
{
    bool negative = false;
    unsigned long magnitude = 0;
    /* LONG_MIN's magnitude is one more than LONG_MAX's. */
    unsigned long limit;

    while (*s != '\0' && strchr(" \t\n\v\f\r", *s) != NULL)
        s++;
    if (*s == '+' || *s == '-')
        negative = *s++ == '-';
    limit = negative ? (unsigned long)LONG_MAX + 1 : (unsigned long)LONG_MAX;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned digit = (unsigned)(*s - '0');
        if (magnitude > (limit - digit) / 10)
            return false; /* out of range for a long */
        magnitude = magnitude * 10 + digit;
    }
    if (*s != '\0')
        return false;
    if (negative)
        *out = magnitude == 0 ? 0 : -(long)(magnitude - 1) - 1;
    else
        *out = (long)magnitude;
    return *out >= min && *out <= max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;

    long min = bound(data[0] & 0x0f);
    long max = bound(data[0] >> 4);
    /* The argument as a C string: a copy with a NUL at its exact end. */
    char *arg = malloc(size);
    long got = 0, want = 0;

    if (arg == NULL)
        abort();
    memcpy(arg, data + 1, size - 1);
    arg[size - 1] = '\0';

    int ret = parse_number(arg, min, max, &got);
    bool ok = reference_parse(arg, min, max, &want);

    CHECK(ret == 0 || ret == -1);
    if (ret == 0)
        CHECK(got >= min && got <= max);
    CHECK((ret == 0) == ok);
    if (ok)
        CHECK(got == want);
    free(arg);
    return 0;
}
