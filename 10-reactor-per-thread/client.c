/* 10-reactor-per-thread/client.c -- 05's client: the relay of common/relay.c.
 *
 * Model:   one process, one thread. relay() waits in poll() until stdin
 *          has input, the socket can take more, or the echo has arrived,
 *          and does whichever is ready. The server runs one such loop
 *          per thread; a client with one connection needs only one, so
 *          it keeps the loop of 05 to 09.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room.
 * Observe: strace -f -e trace=poll,read,write,shutdown
 *            ./10-reactor-per-thread/client < /etc/services > /dev/null
 *            one thread: stdin's reads, the socket's writes and reads and
 *            stdout's writes all under one id.
 * See also: 05-poll/client.c (the same file), common/relay.c,
 *           03-pthread-pool/client.c (a thread per direction).
 *
 * Run it:  ./10-reactor-per-thread/client < /etc/services | cmp - /etc/services
 */
#include <unistd.h>

#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "10-reactor-per-thread",
        "an echo client: poll() on stdin and the socket", 9010};
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
