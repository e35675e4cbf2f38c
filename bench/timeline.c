/* bench/timeline.c -- draws an strace log as a timeline of who blocks where.
 *
 * Reads the output of `strace -f -ttt -T -yy` (one file, every thread's
 * lines mixed, "<unfinished ...>" and "<... resumed>" pairs included) and
 * writes an SVG to stdout: one lane per thread or process, each system call
 * a bar from its start to its end, coloured by what the thread was doing
 * (waiting for readiness, waiting in accept, reading, writing, handing work
 * over, anything else), with the connection it served where the descriptor
 * says so (-yy prints a socket's two addresses: the client's port names
 * the connection). It writes a short summary per lane to the -s file.
 * scripts/trace runs a lesson under strace and calls it.
 *
 * Run it:  bench/timeline -t TITLE [-n NAMES] [-m MARKS] [-l PORT]
 *              [-s SUMMARY] STRACE_LOG > trace.svg
 *   NAMES   lines "TID NAME" (from /proc/PID/task/TID/comm), for threads
 *           that did not name themselves under the tracer's eyes
 *   MARKS   lines "EPOCH_SECONDS LABEL": what the load did when
 *   PORT    the client port of the connection to call "late"
 *
 * The time drawn starts at the call that wrote "listening on": what the
 * program did before it served anyone (the loader, the set-up) is left out.
 */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "svg.h"

enum { MAX_LANES = 300, MAX_CONNS = 512, MAX_MARKS = 32, MAX_READY = 4 };
enum { NO_CONN = -1 };

/* What a call was doing, in the order the legend lists them. */
enum kind {
    K_WAIT,
    K_ACCEPT,
    K_HANDWAIT,
    K_READ,
    K_WRITE,
    K_HANDOVER,
    K_OTHER,
    NKINDS
};
static const char *const kind_name[NKINDS] = {
    "waiting for readiness: select, poll, epoll_wait, io_uring_enter",
    "waiting in accept",
    "waiting for a handover: futex wait (a lock, a condition variable)",
    "reading a client",
    "writing to a client",
    "handing over: futex wake, eventfd read or write",
    "anything else: close, epoll_ctl, the log, nanosleep ..."};
static const char *const kind_class[NKINDS] = {
    "wait", "accept", "handwait", "read", "write", "handover", "other"};
static const char *const kind_colour[NKINDS] = {"#a6cee3", "#b2df8a", "#d9c3e8",
                                                "#1f4e9c", "#e4572e", "#7b2d9e",
                                                "#b0b0b0"};
/* Sleeps are drawn flat and pale, work tall and dark: the eye finds the
 * work. */
static const double kind_height[NKINDS] = {14, 14, 14, 24, 24, 24, 18};

struct call {
    int lane;
    double t0, t1;
    enum kind kind;
    char name[20];
    char result[40];      /* what it returned: "17", "-1 EAGAIN ..." */
    int conn;             /* the connection it served, or NO_CONN */
    int ready[MAX_READY]; /* for a wait: connections it returned */
    int nready;
    int fd; /* its first argument, a descriptor, or -1 */
};

struct lane {
    double asleep, first, last;
    double pending_t; /* when the pending call (below) started */
    int tid, tgid;
    int ncalls;
    int waits, accepts, handwaits, reads, writes, handovers;
    bool process; /* started by fork(), not by pthread_create() */
    bool uring;   /* it waits in io_uring_enter */
    /* The first half of a call the tracer split, waiting for its end. */
    bool pending;
    char name[16];
    bool served[MAX_CONNS];
    char pending_text[1024];
};

struct conn {
    int port;
    bool late;
};

struct mark {
    double t;
    char label[64];
};

/* The fds of each process that name a connection: per thread group. */
struct fdmap {
    int tgid, fd, conn;
};

static struct lane lanes[MAX_LANES];
static int nlanes;
static struct call *calls;
static size_t ncalls, calls_cap;
static struct conn conns[MAX_CONNS];
static int nconns;
static struct mark marks[MAX_MARKS];
static int nmarks;
static struct fdmap *fdmaps;
static size_t nfdmaps, fdmaps_cap;
static int late_port = -1;
static double start_time = -1, end_time;

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    *cap = *cap ? *cap * 2 : 256;
    p = realloc(p, *cap * size);
    if (p == NULL)
        err_sys("realloc");
    return p;
}

/* The number at p, in a trace that strace wrote: 0 where there is none. */
static int int_at(const char *p)
{
    return (int)strtol(p, NULL, 10);
}

/* fopen(), or the end of the program with the reason. */
static FILE *open_or_die(const char *path, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (f == NULL)
        err_sys("%s", path);
    return f;
}

static void copy_name(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static struct lane *lane_of(int tid)
{
    for (int i = 0; i < nlanes; i++)
        if (lanes[i].tid == tid)
            return &lanes[i];
    if (nlanes == MAX_LANES)
        err_quit("more than %d threads", MAX_LANES);
    struct lane *l = &lanes[nlanes++];
    memset(l, 0, sizeof *l);
    l->tid = l->tgid = tid;
    l->first = -1;
    return l;
}

static int conn_of_port(int port)
{
    for (int i = 0; i < nconns; i++)
        if (conns[i].port == port)
            return i;
    if (nconns == MAX_CONNS)
        return NO_CONN;
    conns[nconns].port = port;
    conns[nconns].late = port == late_port;
    return nconns++;
}

static void conn_label(int c, char *buf, size_t size)
{
    if (conns[c].late)
        snprintf(buf, size, "late :%d", conns[c].port);
    else
        snprintf(buf, size, "c%d :%d", c + 1, conns[c].port);
}

static void fd_set_conn(int tgid, int fd, int conn)
{
    for (size_t i = 0; i < nfdmaps; i++)
        if (fdmaps[i].tgid == tgid && fdmaps[i].fd == fd) {
            fdmaps[i].conn = conn;
            return;
        }
    fdmaps = grow(fdmaps, &fdmaps_cap, nfdmaps + 1, sizeof *fdmaps);
    fdmaps[nfdmaps++] = (struct fdmap){tgid, fd, conn};
}

static int fd_conn(int tgid, int fd)
{
    for (size_t i = 0; i < nfdmaps; i++)
        if (fdmaps[i].tgid == tgid && fdmaps[i].fd == fd)
            return fdmaps[i].conn;
    return NO_CONN;
}

/* A descriptor as -yy prints it, "8<TCP:[127.0.0.1:9->127.0.0.1:5016]>":
 * parses it at p. Sets *fd, the client's port (or -1: not a connected
 * socket), and whether it is an eventfd; returns the end, or NULL. */
static const char *parse_fd(const char *p, int *fd, int *port, bool *evfd)
{
    char *end;
    long n = strtol(p, &end, 10);

    if (end == p || *end != '<')
        return NULL;
    *fd = (int)n;
    *port = -1;
    *evfd = strncmp(end, "<anon_inode:[eventfd]>", 22) == 0;
    const char *close = strstr(end, "]>");
    const char *arrow = strstr(end, "->");
    if (strncmp(end, "<TCP", 4) == 0 && close && arrow && arrow < close) {
        const char *colon = close;
        while (colon > arrow && *colon != ':')
            colon--;
        *port = int_at(colon + 1);
    }
    return close ? close + 2 : end + 1;
}

static bool is_one_of(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static enum kind classify(const char *name, int port, bool evfd, bool wake)
{
    static const char *const waits[] = {
        "select",      "pselect6",     "poll",           "ppoll", "epoll_wait",
        "epoll_pwait", "epoll_pwait2", "io_uring_enter", NULL};
    static const char *const reads[] = {"read", "readv", "recvfrom", "recvmsg",
                                        NULL};
    static const char *const writes[] = {"write", "writev", "sendto", "sendmsg",
                                         NULL};

    if (is_one_of(name, waits))
        return K_WAIT;
    if (strcmp(name, "accept") == 0 || strcmp(name, "accept4") == 0)
        return K_ACCEPT;
    if (strcmp(name, "futex") == 0)
        return wake ? K_HANDOVER : K_HANDWAIT;
    if (is_one_of(name, reads) || is_one_of(name, writes)) {
        if (evfd)
            return K_HANDOVER;
        if (port >= 0)
            return is_one_of(name, reads) ? K_READ : K_WRITE;
    }
    return K_OTHER;
}

/* The descriptors a wait returned, from "{fd=8," (poll) or "in [5 8]"
 * (select) in rest, as connections. Not epoll's: its data={u32=...} is
 * whatever the program stored there (a descriptor, an index, a pointer). */
static void parse_ready(struct call *c, int tgid, const char *rest)
{
    c->nready = 0;
    for (const char *p = strstr(rest, "fd="); p; p = strstr(p + 1, "fd=")) {
        int conn = fd_conn(tgid, int_at(p + 3));
        if (conn != NO_CONN && c->nready < MAX_READY)
            c->ready[c->nready++] = conn;
    }
    const char *in = strstr(rest, "in [");
    if (in) {
        char *end;
        for (const char *p = in + 4; *p && *p != ']'; p = end) {
            long fd = strtol(p, &end, 10);
            if (end == p)
                break;
            int conn = fd_conn(tgid, (int)fd);
            if (conn != NO_CONN && c->nready < MAX_READY)
                c->ready[c->nready++] = conn;
        }
    }
}

/* pthread_setname_np() as the tracer sees it: a thread naming itself,
 * prctl(PR_SET_NAME, "worker"), or naming another through
 * write(5</proc/42/task/43/comm>, "worker", 6). */
static void name_thread(struct lane *l, const char *call, const char *text)
{
    const char *task = strstr(text, "/task/");
    const char *name = NULL;

    if (strcmp(call, "prctl") == 0 && strstr(text, "PR_SET_NAME, \""))
        name = strstr(text, "PR_SET_NAME, \"") + 14;
    if (strcmp(call, "write") == 0 && task && strstr(text, "/comm>, \"")) {
        l = lane_of(int_at(task + 6));
        name = strstr(text, "/comm>, \"") + 9;
    }
    const char *q = name ? strchr(name, '"') : NULL;
    if (q)
        copy_name(l->name, sizeof l->name, name, (size_t)(q - name));
}

static bool is_accept(const char *call)
{
    return strcmp(call, "accept") == 0 || strcmp(call, "accept4") == 0;
}

/* The result of an accept, "8<TCP:[...->...:5016]>": the descriptor now
 * names that connection in l's process. Returns the client's port, or
 * port when the result names none (EAGAIN). */
static int accepted(const struct lane *l, const char *result, int port)
{
    int nfd, nport;
    bool evfd;

    if (parse_fd(result, &nfd, &nport, &evfd) && nport >= 0) {
        fd_set_conn(l->tgid, nfd, conn_of_port(nport));
        return nport;
    }
    return port;
}

/* A clone() or fork() that returned child: its lane, a thread of l's
 * process or a process of its own, with a copy of the parent's fds. */
static void started(const struct lane *l, const char *call, const char *text,
                    int child)
{
    if (child <= 0 || (strncmp(call, "clone", 5) != 0 &&
                       strcmp(call, "fork") != 0 && strcmp(call, "vfork") != 0))
        return;
    int tgid = l->tgid; /* lane_of() may add a lane; l stays where it is */
    struct lane *cl = lane_of(child);
    bool thread = strstr(text, "CLONE_THREAD") != NULL;
    cl->tgid = thread ? tgid : child;
    cl->process = !thread;
    if (!thread)
        for (size_t i = 0, n = nfdmaps; i < n; i++)
            if (fdmaps[i].tgid == tgid)
                fd_set_conn(child, fdmaps[i].fd, fdmaps[i].conn);
}

/* One whole call: "name(args) = result <duration>", started at t. */
static void add_call(struct lane *l, double t, const char *text)
{
    const char *paren = strchr(text, '(');
    if (paren == NULL || paren == text)
        return;
    struct call c = {.lane = (int)(l - lanes), .t0 = t, .conn = NO_CONN};
    copy_name(c.name, sizeof c.name, text, (size_t)(paren - text));

    int fd = -1, port = -1;
    bool evfd = false;
    if (!parse_fd(paren + 1, &fd, &port, &evfd))
        fd = -1;
    /* The result: a new descriptor (accept), or a new thread or process
     * (clone, fork). */
    const char *eq = strstr(text, ") = ");
    const char *result = eq ? eq + 4 : NULL;
    if (result) { /* up to the duration, " <0.000012>" */
        size_t len = strcspn(result, "<");
        while (len > 0 && result[len - 1] == ' ')
            len--;
        copy_name(c.result, sizeof c.result, result, len);
    }
    bool accept = is_accept(c.name);
    if (result && accept)
        port = accepted(l, result, port);
    if (result)
        started(l, c.name, text, int_at(result));
    name_thread(l, c.name, text);

    c.fd = fd;
    c.kind = classify(c.name, port, evfd, strstr(text, "FUTEX_WAKE") != NULL);
    if (port >= 0) {
        c.conn = conn_of_port(port);
        if (fd >= 0 && !accept)
            fd_set_conn(l->tgid, fd, c.conn);
    }
    if (c.kind == K_WAIT && result)
        parse_ready(&c, l->tgid, result);
    if (strcmp(c.name, "close") == 0 && fd >= 0)
        fd_set_conn(l->tgid, fd, NO_CONN);

    const char *lt = strrchr(text, '<');
    double dur =
        lt && isdigit((unsigned char)lt[1]) ? strtod(lt + 1, NULL) : -1;
    c.t1 = dur >= 0 ? t + dur : -1; /* -1: ends when the trace ends */
    if (strcmp(c.name, "exit_group") == 0 || strcmp(c.name, "exit") == 0)
        c.t1 = t; /* it never returns, and takes no time worth drawing */
    if (start_time < 0 && strstr(text, "\"listening on "))
        start_time = t;
    if (c.t1 > end_time)
        end_time = c.t1;
    calls = grow(calls, &calls_cap, ncalls + 1, sizeof *calls);
    calls[ncalls++] = c;
}

static void parse_line(char *line)
{
    char *p;
    long tid = strtol(line, &p, 10);
    if (p == line)
        return;
    double t = strtod(p, &p);
    while (*p == ' ')
        p++;
    line[strcspn(line, "\n")] = '\0';
    if (t > end_time)
        end_time = t;
    struct lane *l = lane_of((int)tid);
    if (*p == '-' || *p == '+')
        return; /* a signal, an exit: "--- SIGTERM ..." "+++ exited" */
    const char *unfinished = strstr(p, " <unfinished ...>");
    if (unfinished) {
        l->pending = true;
        l->pending_t = t;
        copy_name(l->pending_text, sizeof l->pending_text, p,
                  (size_t)(unfinished - p));
        return;
    }
    if (strncmp(p, "<... ", 5) == 0) {
        const char *rest = strstr(p, " resumed>");
        if (!l->pending || rest == NULL)
            return;
        char whole[2048];
        snprintf(whole, sizeof whole, "%s%s", l->pending_text, rest + 9);
        l->pending = false;
        add_call(l, l->pending_t, whole);
        return;
    }
    add_call(l, t, p);
}

static void read_names(const char *path)
{
    FILE *f = open_or_die(path, "r");
    char line[256], *name;

    while (fgets(line, sizeof line, f)) {
        int tid = (int)strtol(line, &name, 10);
        name += strspn(name, " ");
        size_t len = strcspn(name, "\n");
        for (int i = 0; i < nlanes; i++)
            if (len > 0 && lanes[i].tid == tid && lanes[i].name[0] == '\0')
                copy_name(lanes[i].name, sizeof lanes[i].name, name, len);
    }
    fclose(f);
}

/* A thread that never named itself carries its process's name: no role. */
static void forget_inherited_names(void)
{
    for (int i = 1; i < nlanes; i++)
        if (strcmp(lanes[i].name, lanes[0].name) == 0)
            lanes[i].name[0] = '\0';
}

static void read_marks(const char *path)
{
    FILE *f = open_or_die(path, "r");
    char line[256], *label;

    while (nmarks < MAX_MARKS && fgets(line, sizeof line, f)) {
        struct mark *m = &marks[nmarks];
        m->t = strtod(line, &label);
        label += strspn(label, " ");
        size_t len = strcspn(label, "\n");
        if (label != line && len > 0) {
            copy_name(m->label, sizeof m->label, label, len);
            nmarks++;
        }
    }
    fclose(f);
}

/* Clips every call to the window drawn, and counts it for its lane. */
static void clip_and_count(void)
{
    for (size_t i = 0; i < ncalls; i++) {
        struct call *c = &calls[i];
        struct lane *l = &lanes[c->lane];
        if (c->t1 < 0)
            c->t1 = end_time; /* cut short by the exit */
        if (c->t1 < start_time) {
            c->lane = -1; /* before the server listened: not drawn */
            continue;
        }
        if (c->t0 < start_time)
            c->t0 = start_time;
        l->ncalls++;
        l->asleep += c->t1 - c->t0;
        if (l->first < 0 || c->t0 < l->first)
            l->first = c->t0;
        if (c->t1 > l->last)
            l->last = c->t1;
        int *count[NKINDS] = {&l->waits, &l->accepts, &l->handwaits,
                              &l->reads, &l->writes,  &l->handovers,
                              NULL};
        if (count[c->kind])
            (*count[c->kind])++;
        if (strcmp(c->name, "io_uring_enter") == 0)
            l->uring = true;
        if (c->conn != NO_CONN &&
            (c->kind == K_READ || c->kind == K_WRITE || c->kind == K_ACCEPT))
            l->served[c->conn] = true;
    }
}

/* Whether several threads take turns at one epoll instance: see
 * has_turns(). */
static bool turns;

/* A lane's label: the name the thread gave itself, else what it is. */
static void lane_label(const struct lane *l, int i, char *buf, size_t size)
{
    const char *role = l->name[0] ? l->name : "thread";
    if (i == 0)
        role = l->uring     ? "main: ring loop"
               : l->waits   ? "main: event loop"
               : l->accepts ? "main: acceptor"
                            : "main";
    if (i == 0 && l->waits && turns)
        role = "main";
    else if (l->process && !l->name[0])
        role = "child process";
    snprintf(buf, size, "%s %d", role, l->tid);
}

/* Lanes drawn: those with a call in the window, main first. */
static int drawn[MAX_LANES], ndrawn;

static void write_summary(FILE *f)
{
    char label[64], c[32];

    fprintf(f,
            "# %d lanes, %d connections; %.3f s from \"listening on\" "
            "to the end\n",
            ndrawn, nconns, end_time - start_time);
    fprintf(f, "# asleep: time inside system calls (a thread in a call "
               "that blocks sleeps);\n# working: the rest of its life, "
               "between calls\n");
    for (int d = 0; d < ndrawn; d++) {
        const struct lane *l = &lanes[drawn[d]];
        double life = l->last - l->first;
        lane_label(l, d, label, sizeof label);
        fprintf(f,
                "lane %d %s: %d calls (%d waits, %d accepts, %d futex "
                "waits, %d reads, %d writes, %d handovers), asleep %.3f "
                "s, working %.3f s; served",
                d + 1, label, l->ncalls, l->waits, l->accepts, l->handwaits,
                l->reads, l->writes, l->handovers, l->asleep, life - l->asleep);
        int n = 0;
        for (int k = 0; k < nconns; k++)
            if (l->served[k]) {
                conn_label(k, c, sizeof c);
                fprintf(f, " %s", c);
                n++;
            }
        fprintf(f, "%s\n", n ? "" : " none");
    }
}

enum { WIDTH = 1400, LEFT = 170, RIGHT = 330, TOP = 168, LANE_H = 38 };

static void draw_legend(double y)
{
    double x = 20;
    char text[80];
    for (int k = 0; k < NKINDS; k++) {
        /* Rows of three: the names are long. */
        int col = k % 3, row = k / 3;
        double lx = x + col * 450.0, ly = y + row * 17.0;
        printf("<rect x='%.1f' y='%.1f' width='14' height='11' "
               "fill='%s'/>\n",
               lx, ly - 10, kind_colour[k]);
        svg_text(lx + 20, ly, "start", "", kind_name[k]);
    }
    if (late_port >= 0) {
        double lx = x + 450, ly = y + 2 * 17;
        printf("<path d='M%.1f %.1f l-4 -7 h8 z' fill='#111'/>\n", lx + 7,
               ly - 1);
        snprintf(text, sizeof text, "a call for the late client (port %d)",
                 late_port);
        svg_text(lx + 20, ly, "start", "", text);
    }
}

static void draw_call(const struct svg_panel *p, const struct call *c, double y,
                      int lane_no)
{
    double x0 = svg_px(p, (c->t0 - start_time));
    double x1 = svg_px(p, (c->t1 - start_time));
    double w = x1 - x0 < 2 ? 2 : x1 - x0;
    char text[160], conn[32] = "";

    if (c->conn != NO_CONN)
        conn_label(c->conn, conn, sizeof conn);
    double h = kind_height[c->kind], top = y - h / 2;
    /* A read and the write that echoes it often share a pixel: the read
     * takes the upper half of the lane, the write the lower. */
    if (c->kind == K_READ || c->kind == K_WRITE) {
        h /= 2;
        top = c->kind == K_READ ? y - h : y;
    }
    printf("<rect x='%.2f' y='%.1f' width='%.2f' height='%.0f' fill='%s' "
           "class='%s' data-lane='%d' data-tid='%d' data-conn='%s'>",
           x0, top, w, h, kind_colour[c->kind], kind_class[c->kind], lane_no,
           lanes[c->lane].tid, conn);
    printf("<title>");
    snprintf(text, sizeof text, "%s %s= %s (%.3f ms, at %.4f s)", c->name, conn,
             c->result[0] ? c->result : "?", (c->t1 - c->t0) * 1000,
             c->t0 - start_time);
    svg_put_text(text);
    printf("</title></rect>\n");
    /* A triangle over the end of each call for the late client: which
     * lane served it shows at a glance, however thin the bar. */
    if (c->conn != NO_CONN && conns[c->conn].late)
        printf("<path d='M%.1f %.1f l-4 -7 h8 z' fill='#111' "
               "class='late'/>\n",
               x0 + w - 1, y - kind_height[c->kind] / 2 - 1);
    /* Inside a bar wide enough: what it is, and for whom. */
    if (w > 60) {
        if (c->conn == NO_CONN && c->nready > 0) {
            char who[32];
            conn_label(c->ready[0], who, sizeof who);
            snprintf(text, sizeof text, "%s → %s%s", c->name, who,
                     c->nready > 1 ? " ..." : "");
        } else {
            snprintf(text, sizeof text, "%s %s", c->name, conn);
        }
        /* What does not fit (at about 6.5 px a character) shrinks to the
         * call's name, or to nothing. */
        size_t fit = (size_t)((w - 6) / 6.5);
        if (strlen(text) > fit)
            snprintf(text, sizeof text, "%s",
                     strlen(c->name) <= fit ? c->name : "");
        svg_text(x0 + 3, top + h / 2 + 3.5, "start",
                 c->kind >= K_READ && c->kind <= K_HANDOVER
                     ? "font-size='10' fill='white'"
                     : "font-size='10' fill='#222'",
                 text);
    }
}

/* Several threads waiting on one epoll instance take turns (09's
 * leader/followers): the one inside the wait holds the turn. Returns
 * whether the trace shows such turns. */
static bool has_turns(void)
{
    for (size_t i = 0; i < ncalls; i++) {
        const struct call *a = &calls[i];
        if (a->lane < 0 || a->kind != K_WAIT ||
            strncmp(a->name, "epoll_", 6) != 0)
            continue;
        /* Another thread of the same process, waiting on the same
         * instance (10's loops each wait on their own: no turns). */
        for (size_t j = i + 1; j < ncalls; j++) {
            const struct call *b = &calls[j];
            if (b->lane >= 0 && b->lane != a->lane && b->kind == K_WAIT &&
                b->fd == a->fd && lanes[b->lane].tgid == lanes[a->lane].tgid &&
                strncmp(b->name, "epoll_", 6) == 0)
                return true;
        }
    }
    return false;
}

static void draw(const char *title)
{
    struct svg_panel p = {.left = LEFT, .top = TOP};
    int lane_no[MAX_LANES];
    char text[160];

    p.width = WIDTH - LEFT - RIGHT;
    p.height = LANE_H * ndrawn + (turns ? LANE_H : 0);
    p.x.label = "seconds since the server said \"listening on\"";
    svg_axis_fit_close(&p.x, end_time - start_time);
    svg_begin(WIDTH, (int)(TOP + p.height + 60), title);
    snprintf(text, sizeof text,
             "one lane per thread or process; each bar one system call, "
             "from its start to its end (strace -f -T); hover a bar for "
             "its details");
    svg_text(20, 48, "start", "fill='#444'", text);
    draw_legend(72);
    if (turns)
        svg_text(20, 124, "start", "fill='#444'",
                 "gold band: the thread inside epoll_wait holds the "
                 "leader's turn; the top row says whose turn it is");
    svg_axis_x(&p);
    if (nmarks > 0)
        svg_text(LEFT - 8, TOP - 24, "end", "fill='#555'", "the load:");

    for (int i = 0; i < nlanes; i++)
        lane_no[i] = -1;
    double y0 = TOP + (turns ? LANE_H : 0);
    for (int d = 0; d < ndrawn; d++) {
        const struct lane *l = &lanes[drawn[d]];
        double y = y0 + LANE_H * d + LANE_H / 2.0;
        lane_no[drawn[d]] = d;
        if (d % 2)
            printf("<rect x='%d' y='%.1f' width='%.1f' height='%d' "
                   "fill='#f4f4f4'/>\n",
                   LEFT, y - LANE_H / 2.0, p.width, LANE_H);
        lane_label(l, d, text, sizeof text);
        svg_text(LEFT - 8, y + 4, "end", "class='lane'", text);
        snprintf(text, sizeof text, "%d calls, %.0f ms asleep, %.1f ms working",
                 l->ncalls, l->asleep * 1000,
                 (l->last - l->first - l->asleep) * 1000);
        svg_text(LEFT + p.width + 10, y + 4, "start", "font-size='11'", text);
    }
    if (turns) {
        svg_text(LEFT - 8, TOP + LANE_H / 2.0 + 4, "end", "font-weight='bold'",
                 "leader's turn");
        for (size_t i = 0; i < ncalls; i++) {
            const struct call *c = &calls[i];
            if (c->lane < 0 || c->kind != K_WAIT)
                continue;
            double x0 = svg_px(&p, (c->t0 - start_time));
            double x1 = svg_px(&p, (c->t1 - start_time));
            int d = lane_no[c->lane];
            printf("<rect x='%.2f' y='%.1f' width='%.2f' height='%d' "
                   "fill='#f6d55c' opacity='0.55' class='turn'/>\n",
                   x0, y0 + LANE_H * d + 2.0, x1 - x0, LANE_H - 4);
            printf("<rect x='%.2f' y='%d' width='%.2f' height='%d' "
                   "fill='#f6d55c' stroke='white' stroke-width='0.5' "
                   "class='turn' data-lane='%d'/>\n",
                   x0, TOP + 8, x1 - x0, LANE_H - 16, d + 1);
            if (x1 - x0 > 24) {
                snprintf(text, sizeof text, "%d", lanes[c->lane].tid);
                svg_text((x0 + x1) / 2, TOP + LANE_H / 2.0 + 4, "middle",
                         "font-size='10'", text);
            }
        }
    }
    /* The sleeps first, then the work over them. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ncalls; i++) {
            const struct call *c = &calls[i];
            bool work = c->kind >= K_READ && c->kind <= K_HANDOVER;
            if (c->lane < 0 || work != (pass == 1))
                continue;
            int d = lane_no[c->lane];
            draw_call(&p, c, y0 + LANE_H * d + LANE_H / 2.0, d + 1);
        }
    for (int m = 0; m < nmarks; m++) {
        double x = svg_px(&p, (marks[m].t - start_time));
        if (marks[m].t < start_time || marks[m].t > end_time)
            continue;
        printf("<line x1='%.1f' y1='%d' x2='%.1f' y2='%.1f' "
               "stroke='#555' stroke-dasharray='3 3'/>\n",
               x, TOP - 34 + 13 * (m % 2), x, TOP + p.height);
        svg_text(x + 3, TOP - 24 + 13 * (m % 2), "start",
                 "font-size='11' fill='#333' class='mark'", marks[m].label);
    }
    svg_end();
}

static void usage(void)
{
    fprintf(stderr, "usage: timeline [-t TITLE] [-n NAMES] [-m MARKS] "
                    "[-l PORT] [-s SUMMARY] STRACE_LOG\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *title = "strace timeline", *names = NULL, *marks_path = NULL;
    const char *summary = NULL;
    char line[8192];
    int opt;

    while ((opt = getopt(argc, argv, "t:n:m:l:s:")) != -1) {
        switch (opt) {
        case 't':
            title = optarg;
            break;
        case 'n':
            names = optarg;
            break;
        case 'm':
            marks_path = optarg;
            break;
        case 'l':
            late_port = int_at(optarg);
            break;
        case 's':
            summary = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    FILE *f = open_or_die(argv[optind], "r");
    while (fgets(line, sizeof line, f))
        parse_line(line);
    fclose(f);
    /* A call the tracer never saw end: the exit cut it short. */
    for (int i = 0; i < nlanes; i++)
        if (lanes[i].pending)
            add_call(&lanes[i], lanes[i].pending_t, lanes[i].pending_text);
    if (ncalls == 0)
        err_quit("%s: no system calls found", argv[optind]);
    if (start_time < 0)
        start_time = calls[0].t0;
    if (names)
        read_names(names);
    forget_inherited_names();
    if (marks_path)
        read_marks(marks_path);
    clip_and_count();
    turns = has_turns();
    for (int i = 0; i < nlanes; i++)
        if (lanes[i].ncalls > 0)
            drawn[ndrawn++] = i;
    if (summary) {
        FILE *s = open_or_die(summary, "w");
        write_summary(s);
        if (fclose(s) != 0)
            err_sys("%s", summary);
    }
    draw(title);
    return 0;
}
