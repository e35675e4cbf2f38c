/* 04-select/client.c -- select() on stdin and the socket: batch input done
 * right.
 *
 * Model:   one process, one thread. select() waits until stdin has input,
 *          the socket can take more, or the echo has arrived, and the
 *          client does whichever is ready. It keeps sending while the echo
 *          comes back, instead of waiting for each line (01's client). At
 *          stdin's EOF it half-closes (shutdown SHUT_WR) once everything
 *          read has been sent, then reads until the server closes.
 * Cost:    the socket is non-blocking and what it cannot take waits in a
 *          buffer; stdin is read only while that buffer has room. Writing
 *          with a blocking writen() instead could deadlock on large input:
 *          we would sleep in write() while the server, its output to us
 *          unread, has stopped reading from us.
 * Observe: strace -e trace=pselect6,read,write,shutdown ./04-select/client
 *            reads of stdin and of the socket interleaved, the shutdown
 *            right after the last write to the socket.
 * See also: common/relay.c for the steps this loop calls, the half-close
 *           among them (every later client shares them, and their loop,
 *           relay()); 01-basic-socket/client.c (stop-and-wait),
 *           05-poll/client.c.
 *
 * Run it:  ./04-select/client < /etc/services | cmp - /etc/services
 */
#include <errno.h>
#include <sys/select.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "options.h"
#include "relay.h"
#include "signals.h"

/* relay() with select(): the steps of common/relay.c, each called when
 * its descriptor is ready. Returns as relay() does. */
static int relay_select(struct relay *rl)
{
    while (!rl->closed) {
        fd_set rset, wset;
        FD_ZERO(&rset);
        FD_ZERO(&wset);
        if (relay_wants_stdin(rl))
            FD_SET(rl->in, &rset);
        if (relay_pending(rl) > 0)
            FD_SET(rl->sockfd, &wset);
        FD_SET(rl->sockfd, &rset);
        if (select(rl->sockfd + 1, &rset, &wset, NULL, NULL) == -1) {
            if (errno == EINTR)
                continue;
            return relay_fail(&rl->st, RELAY_WAIT);
        }
        if (FD_ISSET(rl->in, &rset) && relay_from_stdin(rl) == -1)
            return -1;
        if (FD_ISSET(rl->sockfd, &wset) && relay_to_server(rl) == -1)
            return -1;
        if (FD_ISSET(rl->sockfd, &rset) && relay_from_server(rl) == -1)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct program_info pi = {
        "04-select", "an echo client: select() on stdin and the socket", 9004};
    static struct relay rl; /* 64 KiB: too big for a polite stack frame */
    struct net_options opt;
    int sockfd, gai_err;

    parse_client_options(argc, argv, &pi, &opt);
    sigpipe_ignore(); /* a server that vanishes is an error, not a kill */
    sockfd = tcp_connect(opt.host, opt.port, &gai_err);
    if (sockfd == -1)
        err_connect(&opt, gai_err);
    if (sockfd >= FD_SETSIZE)
        err_quit("descriptor %d is not below FD_SETSIZE", sockfd);
    if (relay_start(&rl, STDIN_FILENO, sockfd, STDOUT_FILENO) == -1 ||
        relay_select(&rl) == -1)
        err_relay(&rl.st);
    return 0;
}
