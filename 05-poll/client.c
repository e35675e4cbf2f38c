/* 05-poll/client.c -- poll() on stdin and the socket: 04's client, with
 * poll(), and from here on the relay every later client shares.
 *
 * Model:   one process, one thread. relay() (common/relay.c) waits in
 *          poll() until stdin has input, the socket can take more, or the
 *          echo has arrived, and does whichever is ready. It keeps sending
 *          while the echo comes back. At stdin's EOF it half-closes
 *          (shutdown SHUT_WR) once everything read has been sent, then
 *          reads until the server closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room (see
 *          04-select/client.c for the deadlock a blocking write risks).
 * Observe: strace -e trace=poll,read,write,shutdown ./05-poll/client
 *            two pollfd entries, stdin's asking for POLLIN until its EOF.
 * See also: 04-select/client.c (the same steps under select()),
 *           common/relay.c, 06-epoll-lt-et/client.c (after).
 *
 * Run it:  ./05-poll/client < /etc/services | cmp - /etc/services
 */
#include <unistd.h>

#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "05-poll", "an echo client: poll() on stdin and the socket", 9005};
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
