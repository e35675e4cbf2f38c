/* 06-epoll-lt-et/client.c -- 05's client: the relay of common/relay.c,
 * which waits in poll(), not in epoll.
 *
 * Model:   one process, one thread. relay() waits in poll() until stdin
 *          has input, the socket can take more, or the echo has arrived,
 *          and does whichever is ready. At stdin's EOF it half-closes
 *          (shutdown SHUT_WR) once everything read has been sent, then
 *          reads until the server closes.
 * Cost:    why not epoll: it refuses regular files and /dev/null (EPERM),
 *          which a client's stdin often is, where poll() reports a file
 *          as always readable, which is what a file is; and for two
 *          descriptors a kept interest list saves nothing.
 * Observe: strace -e trace=poll,epoll_ctl ./06-epoll-lt-et/client
 *            < /etc/services > /dev/null
 *            poll() on descriptors 0 and 3, and no epoll_ctl at all.
 * See also: 05-poll/client.c (before, the same file), common/relay.c,
 *           07-reactor/client.c (after).
 *
 * Run it:  ./06-epoll-lt-et/client < /etc/services | cmp - /etc/services
 */
#include <unistd.h>

#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "06-epoll-lt-et", "an echo client: poll() on stdin and the socket",
        9006};
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
