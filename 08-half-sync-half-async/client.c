/* 08-half-sync-half-async/client.c -- a pipelining client: the relay of
 * common/relay.c, many requests in flight on one connection.
 *
 * Model:   one thread, the socket non-blocking. relay() waits in poll()
 *          for stdin, for room in the socket, or for the echo, and does
 *          whichever is ready. It never waits for an echo before sending
 *          more: every chunk it writes is a request the server may be
 *          working on while the next ones travel, so the server's workers
 *          see several requests of this one connection at once, and the
 *          server must put their replies back in order. At stdin's EOF it
 *          half-closes (shutdown SHUT_WR) once everything is sent, then
 *          reads until the server closes.
 * Cost:    the bytes in flight are bounded by the relay's 64 KiB buffer
 *          and the kernel's socket buffers: a server that stops reading
 *          (its queue full) stops this client too, and stdin waits.
 * Observe: strace -e trace=poll,read,write,shutdown
 *            ./08-half-sync-half-async/client < /etc/services > /dev/null
 *            reads of stdin and writes to the socket run ahead of the
 *            reads of the echo.
 * See also: 05-poll/client.c (the same file), common/relay.c,
 *           07-reactor/client.c (before), 09-leader-follower/client.c.
 *
 * Run it:  ./08-half-sync-half-async/client < /etc/services |
 *            cmp - /etc/services
 */
#include <unistd.h>

#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "08-half-sync-half-async", "a pipelining echo client: stdin to stdout",
        9008};
    struct net_options opt;
    struct relay_status st;
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (relay(STDIN_FILENO, sockfd, STDOUT_FILENO, &st) == -1)
        err_relay(&st);
    return 0;
}
