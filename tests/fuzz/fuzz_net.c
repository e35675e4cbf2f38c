/* tests/fuzz/fuzz_net.c -- libFuzzer harness for sock_ntop() and
 * host_port(), the two functions of net.c that turn bytes into text.
 *
 * Input: byte 0 is the size of the caller's buffer (0 to 255), byte 1
 * picks the function (even: sock_ntop, odd: host_port), the rest is its
 * argument:
 *   - sock_ntop: the address itself, salen being its length (at most a
 *     struct sockaddr_storage). Its text, given room, fits SOCK_NTOP_LEN,
 *     and for IPv4 and IPv6 parses back, with inet_pton(), to the same
 *     address and port.
 *   - host_port: the host, a NUL, the port. Its text is "host:port", or
 *     "[host]:port" when host has a ':'; it fits HOST_PORT_LEN whenever the
 *     host fits a DNS name (255 bytes) and the port 5 digits.
 * With any buffer size, the text is the full text cut to size - 1 bytes
 * and a NUL, as snprintf() cuts, and nothing is written past the buffer:
 * the buffer and the address come from malloc() at their exact size, so
 * that AddressSanitizer catches a byte read or written outside them.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

enum { BIG = 512 }; /* room for any text these functions make here */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static _Noreturn void check_failed(const char *what, int line)
{
    fprintf(stderr, "fuzz_net.c:%d: check failed: %s\n", line, what);
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    if (p == NULL)
        abort();
    return p;
}

/* What a buffer of size bytes must hold when the whole text is full. */
static void check_cut(const char *buf, size_t size, const char *full)
{
    size_t len = strlen(full);

    if (size == 0)
        return;
    size_t keep = len < size - 1 ? len : size - 1;
    CHECK(memcmp(buf, full, keep) == 0 && buf[keep] == '\0');
}

/* "1.2.3.4:80" or "[::1]:80" back to an address and a port. */
static void check_parses_back(const struct sockaddr *sa, const char *text)
{
    char host[BIG];
    const char *colon = strrchr(text, ':');
    unsigned char addr[sizeof(struct in6_addr)];
    unsigned long port;
    char *end;

    CHECK(colon != NULL);
    port = strtoul(colon + 1, &end, 10);
    CHECK(end != colon + 1 && *end == '\0');
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        snprintf(host, sizeof host, "%.*s", (int)(colon - text), text);
        CHECK(inet_pton(AF_INET, host, addr) == 1);
        CHECK(memcmp(addr, &sin->sin_addr, sizeof sin->sin_addr) == 0);
        CHECK(port == ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        CHECK(text[0] == '[' && colon[-1] == ']');
        snprintf(host, sizeof host, "%.*s", (int)(colon - text - 2), text + 1);
        CHECK(inet_pton(AF_INET6, host, addr) == 1);
        CHECK(memcmp(addr, &sin6->sin6_addr, sizeof sin6->sin6_addr) == 0);
        CHECK(port == ntohs(sin6->sin6_port));
    }
}

static void fuzz_sock_ntop(const uint8_t *data, size_t size, size_t bufsize)
{
    char full[BIG];
    socklen_t salen = size < sizeof(struct sockaddr_storage)
                          ? (socklen_t)size
                          : (socklen_t)sizeof(struct sockaddr_storage);
    struct sockaddr *sa;
    char *buf;

    /* sock_ntop() reads sa_family whatever salen says: every caller has an
     * address from accept() or getsockname(), which always has one. */
    if (salen < sizeof(sa_family_t))
        return;
    sa = xmalloc(salen);
    buf = xmalloc(bufsize);
    memcpy(sa, data, salen);

    CHECK(sock_ntop(sa, salen, full, sizeof full) == full);
    CHECK(strlen(full) < SOCK_NTOP_LEN);
    if ((sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) ||
        (sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)))
        check_parses_back(sa, full);

    CHECK(sock_ntop(sa, salen, buf, bufsize) == buf);
    check_cut(buf, bufsize, full);
    free(buf);
    free(sa);
}

static void fuzz_host_port(const uint8_t *data, size_t size, size_t bufsize)
{
    /* host, NUL, port: copies with a NUL at their exact end. */
    const uint8_t *nul = memchr(data, '\0', size);
    size_t hostlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *rest = nul ? nul + 1 : data + size;
    size_t portlen = strnlen((const char *)rest, (size_t)(data + size - rest));
    char *host = xmalloc(hostlen + 1);
    char *port = xmalloc(portlen + 1);
    char *buf = xmalloc(bufsize);
    char full[2 * BIG], want[2 * BIG];

    memcpy(host, data, hostlen);
    host[hostlen] = '\0';
    memcpy(port, rest, portlen);
    port[portlen] = '\0';

    bool brackets = strchr(host, ':') != NULL;
    snprintf(want, sizeof want, brackets ? "[%s]:%s" : "%s:%s", host, port);
    CHECK(host_port(host, port, full, sizeof full) == full);
    if (strlen(want) < sizeof full - 1)
        CHECK(strcmp(full, want) == 0);
    if (hostlen <= 255 && portlen <= 5)
        CHECK(strlen(want) < HOST_PORT_LEN);

    CHECK(host_port(host, port, buf, bufsize) == buf);
    check_cut(buf, bufsize, want);
    free(buf);
    free(port);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[1] % 2 == 0)
        fuzz_sock_ntop(data + 2, size - 2, data[0]);
    else
        fuzz_host_port(data + 2, size - 2, data[0]);
    return 0;
}
