/* options.c -- the shared command line; see options.h. */
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

enum { MAX_OPTIONS = 32 };

/* "-t N" or "--no-reap": an option as the usage text shows it. */
static void option_name(const struct lesson_option *o, char *buf, size_t size)
{
    const char *arg = o->arg_name ? o->arg_name : "";
    const char *sep = o->arg_name ? " " : "";

    if (o->long_name)
        snprintf(buf, size, "--%s%s%s", o->long_name, sep, arg);
    else
        snprintf(buf, size, "-%c%s%s", o->key, sep, arg);
}

/* One row of the usage text: the option, then what it does. */
static void print_row(FILE *fp, const char *option, const char *help)
{
    fprintf(fp, "  %-16s %s\n", option, help);
}

static void print_usage(FILE *fp, const struct program_info *pi, bool server,
                        const struct lesson_option *extra)
{
    char name[40], help[80];

    fprintf(fp, "usage: %s [-H host] [-p port]%s [-h]",
            program_invocation_short_name, server ? " [-q]" : "");
    for (const struct lesson_option *o = extra; o && o->key; o++) {
        option_name(o, name, sizeof name);
        fprintf(fp, " [%s]", name);
    }
    fprintf(fp, "\n%s: %s\n\n", pi->lesson, pi->summary);
    if (server) {
        print_row(fp, "-H host", "address to listen on (default 127.0.0.1;");
        print_row(fp, "", "0.0.0.0 or :: accepts other hosts too)");
        snprintf(help, sizeof help,
                 "port to listen on (default %d; 0: the kernel chooses)",
                 pi->default_port);
        print_row(fp, "-p port", help);
        print_row(fp, "-q", "no per-connection log lines");
    } else {
        print_row(fp, "-H host", "server to connect to (default 127.0.0.1)");
        snprintf(help, sizeof help, "server's port (default %d)",
                 pi->default_port);
        print_row(fp, "-p port", help);
    }
    print_row(fp, "-h", "print this help and exit");
    for (const struct lesson_option *o = extra; o && o->key; o++) {
        option_name(o, name, sizeof name);
        print_row(fp, name, o->help);
    }
}

static _Noreturn void usage_error(const struct program_info *pi, bool server,
                                  const struct lesson_option *extra)
{
    print_usage(stderr, pi, server, extra);
    exit(2);
}

int parse_number(const char *arg, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        err_msg("'%s' is not a number from %ld to %ld", arg, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_choice(const char *arg, const char *const names[], long *out)
{
    char list[256] = "";
    size_t n = 0;

    for (long i = 0; names[i] != NULL; i++) {
        if (strcmp(arg, names[i]) == 0) {
            *out = i;
            return 0;
        }
        n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0,
                              "%s%s", i ? ", " : "", names[i]);
    }
    err_msg("'%s' is not one of: %s", arg, list);
    return -1;
}

/* A program started with descriptor 0, 1 or 2 closed would hand that
 * number to its first socket, and then read its input from it, or write
 * its log lines into it. /dev/null takes each closed one first. Any
 * failure here is fatal, but has nowhere to be reported: exit 1. */
static void open_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* open() returns the lowest free number: fd itself. */
        if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            _exit(1);
    }
}

static void parse(int argc, char **argv, const struct program_info *pi,
                  bool server, struct net_options *opt,
                  const struct lesson_option *extra, lesson_option_fn fn,
                  void *ctx)
{
    /* '+': stop at the first non-option; ':': report a missing value as
     * ':' so that we, not getopt, word the message. */
    char shortopts[3 * MAX_OPTIONS];
    struct option longopts[MAX_OPTIONS + 2] = {
        {"help", no_argument, NULL, 'h'},
    };
    size_t nlong = 1;
    int c;
    long port;

    open_std_fds();
    opterr = 0; /* we print our own messages */
    snprintf(shortopts, sizeof shortopts, "+:H:p:h%s", server ? "q" : "");
    for (const struct lesson_option *o = extra; o && o->key; o++) {
        /* Room for one more of either kind: a long option, or a letter
         * with its ':' and the string's NUL. */
        if (nlong == MAX_OPTIONS || strlen(shortopts) + 3 > sizeof shortopts)
            err_quit("too many lesson options");
        if (o->long_name) {
            longopts[nlong++] = (struct option){
                o->long_name, o->arg_name ? required_argument : no_argument,
                NULL, o->key};
        } else {
            size_t len = strlen(shortopts);
            shortopts[len++] = (char)o->key;
            if (o->arg_name)
                shortopts[len++] = ':';
            shortopts[len] = '\0';
        }
    }

    opt->host = "127.0.0.1";
    snprintf(opt->port, sizeof opt->port, "%d", pi->default_port);
    opt->quiet = false;

    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            opt->host = optarg;
            break;
        case 'p':
            if (parse_number(optarg, 0, 65535, &port) == -1)
                usage_error(pi, server, extra);
            snprintf(opt->port, sizeof opt->port, "%ld", port);
            break;
        case 'q':
            opt->quiet = true;
            break;
        case 'h':
            print_usage(stdout, pi, server, extra);
            exit(0);
        case ':':
            err_msg("option %s needs a value", argv[optind - 1]);
            usage_error(pi, server, extra);
        case '?':
            if (strncmp(argv[optind - 1], "--", 2) != 0)
                err_msg("unknown option -%c", optopt);
            else if (optopt != 0) /* a known long option, given a value */
                err_msg("option %s takes no value", argv[optind - 1]);
            else
                err_msg("unknown option %s", argv[optind - 1]);
            usage_error(pi, server, extra);
        default:
            if (fn == NULL || fn(c, optarg, ctx) == -1)
                usage_error(pi, server, extra);
            break;
        }
    }
    if (optind < argc) {
        err_msg("unexpected argument '%s'", argv[optind]);
        usage_error(pi, server, extra);
    }
    if (*opt->host == '\0') {
        err_msg("-H needs a host name or address");
        usage_error(pi, server, extra);
    }
    log_set_quiet(opt->quiet);
}

void parse_server_options(int argc, char **argv, const struct program_info *pi,
                          struct net_options *opt,
                          const struct lesson_option *extra,
                          lesson_option_fn fn, void *ctx)
{
    parse(argc, argv, pi, true, opt, extra, fn, ctx);
}

void parse_client_options(int argc, char **argv, const struct program_info *pi,
                          struct net_options *opt)
{
    parse(argc, argv, pi, false, opt, NULL, NULL, NULL);
}

void err_listen(const struct net_options *opt, int gai_err)
{
    char where[HOST_PORT_LEN];

    if (gai_err != 0)
        err_quit("cannot resolve %s: %s", opt->host, gai_strerror(gai_err));
    err_sys("cannot listen on %s",
            host_port(opt->host, opt->port, where, sizeof where));
}
