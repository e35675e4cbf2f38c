/* options.h -- the command line every server and client shares.
 *
 *     server [-H host] [-p port] [-q] [-h] [lesson options]
 *     client [-H host] [-p port] [-h]
 *
 * -h prints the usage on stdout and exits 0. A bad option, a bad value or
 * a stray argument prints what is wrong and the usage on stderr and exits 2.
 *
 * Parsing is the first thing every program does, so it also makes sure
 * that descriptors 0, 1 and 2 are open, on /dev/null where they were
 * closed: otherwise the first socket would take one of their numbers, and
 * a log line or the client's input would go through it.
 */
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stdbool.h>

struct net_options {
    const char *host; /* -H: default "127.0.0.1" */
    char port[8];     /* -p: default the lesson's port, 0..65535 as text */
    bool quiet;       /* -q (servers only): no per-connection log lines */
};

/* What a program says about itself in its usage text. */
struct program_info {
    const char *lesson;  /* the lesson's folder, "NN-name" */
    const char *summary; /* one line: what this program is */
    int default_port;    /* 9000 + the lesson's number */
};

/* An option of the lesson's own, such as "-t N" or "--no-reap". */
struct lesson_option {
    int key;               /* the short letter, or a value above 255 */
    const char *long_name; /* "no-reap", or NULL for a short option only */
    const char *arg_name;  /* "N" if it takes an argument, else NULL */
    const char *help;      /* one line for the usage text */
};

/* Called once per lesson option met, with its argument (NULL if it takes
 * none). Returns 0, or -1 to reject the value: parsing then prints the
 * usage and exits 2. ctx is passed through. */
typedef int (*lesson_option_fn)(int key, const char *arg, void *ctx);

/* Parses a server's command line into opt; the lesson's own options, a
 * list ended by an entry with key 0, go to fn. extra and fn may be NULL.
 * Also applies -q to the log (log_set_quiet). */
void parse_server_options(int argc, char **argv, const struct program_info *pi,
                          struct net_options *opt,
                          const struct lesson_option *extra,
                          lesson_option_fn fn, void *ctx);

/* Parses a client's command line: -H, -p and -h only. */
void parse_client_options(int argc, char **argv, const struct program_info *pi,
                          struct net_options *opt);

/* The contract's line for a server that cannot listen, and exit 1: the
 * name did not resolve (gai_err, from tcp_listen()), or the address could
 * not be bound (errno). */
_Noreturn void err_listen(const struct net_options *opt, int gai_err);

/* For lesson options: parses arg as a whole decimal number in [min, max].
 * Returns 0, or -1 after printing what is wrong. */
int parse_number(const char *arg, long min, long max, long *out);

/* For lesson options: finds arg among names (a list ending with NULL) and
 * stores its index. Returns 0, or -1 after printing the choices. */
int parse_choice(const char *arg, const char *const names[], long *out);

#endif
