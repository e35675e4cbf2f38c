/* 11-proactor/client.c -- the echo client, as in 05 to 09: the lesson is
 * the server.
 *
 * Model:   one process, one thread. relay() (common/relay.c) waits in
 *          poll() until stdin has input, the socket can take more, or the
 *          echo has arrived, and does whichever is ready. At stdin's EOF
 *          it half-closes (shutdown SHUT_WR) once everything read has
 *          been sent, then reads until the server closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room.
 * Observe: strace -e trace=poll,read,write,shutdown ./11-proactor/client
 *            a Reactor of two descriptors. The client stays one: the
 *            lesson is the server, and any client works with any server.
 * See also: 05-poll/client.c (where this relay starts), common/relay.c.
 *
 * Run it:  ./11-proactor/client < /etc/services | cmp - /etc/services
 */
#include <unistd.h>

#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "11-proactor", "an echo client: poll() on stdin and the socket", 9011};
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
