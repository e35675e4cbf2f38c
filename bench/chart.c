/* bench/chart.c -- draws small multiples of line charts as SVG, with no
 * plotting package.
 *
 * Reads stdin, one record a line, fields separated by tabs:
 *   panel TITLE [YLABEL]                starts a panel (a small chart)
 *   point SERIES X Y YMIN YMAX FLAG     a point of a line in that panel;
 *                                       FLAG "break" marks a breaking point
 * and writes to stdout one SVG picture: the panels in a grid, all with the
 * same axes so that they compare at a glance (or, with --own-y, each with
 * the y axis that fits its own points), each with its own legend.
 * Each point is drawn with its spread (a bar from YMIN to YMAX); a breaking
 * point (errors or stalls) is a cross, and its line stops there. Every
 * series has the same colour, marker and dash in every picture: the style
 * table below, one line per model of bench/run. Variants of one lesson
 * share its colour and differ by marker fill and dash.
 * bench/report feeds it columns of bench/results/results.csv.
 *
 * Run it:  printf 'panel\tA\npoint\tbare loop\t1\t10\t9\t11\tok\n' |
 *              bench/chart --logx --title T --xlabel x --ylabel y > c.svg
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "svg.h"

enum { MAX_PANELS = 8, MAX_SERIES = 8, MAX_POINTS = 16 };

/* The geometry of one panel's cell, in pixels; the plot's own size is
 * --plot's (300x210 by default). */
enum {
    PLOT_LEFT = 72, /* tick labels and the y label */
    PLOT_RIGHT = 28,
    PLOT_TOP = 30,   /* the panel's title */
    LEGEND_TOP = 48, /* below the plot: tick labels and the x label */
    LEGEND_ROW = 17,
    LEGEND_ROWS = 4, /* two columns of four: seven lines and the cross */
    HEADER = 64      /* the picture's title and the key */
};

enum marker { CIRCLE, SQUARE, TRIANGLE, TRIANGLE_DOWN, DIAMOND };

/* One model's look, the same in every chart. */
struct style {
    const char *name;
    const char *colour;
    enum marker marker;
    bool hollow;
    const char *dash; /* stroke-dasharray, "" for a solid line */
};

/* Colours after Okabe and Ito and after Tol, told apart by most readers,
 * colour-blind ones included; the marker tells them apart in grey too. */
static const struct style styles[] = {
    {"bare loop", "#222222", CIRCLE, true, "5,3"},
    {"01 basic-socket", "#E69F00", CIRCLE, false, ""},
    {"02 fork-server", "#56B4E9", SQUARE, false, ""},
    {"03 pool -t 4", "#009E73", TRIANGLE, false, ""},
    {"04 select", "#D55E00", DIAMOND, false, ""},
    {"05 poll", "#0072B2", SQUARE, false, ""},
    {"06 lt", "#CC79A7", TRIANGLE, false, ""},
    {"06 et", "#CC79A7", TRIANGLE_DOWN, true, "6,3"},
    {"07 epoll", "#882255", CIRCLE, false, ""},
    {"07 poll", "#882255", SQUARE, true, "6,3"},
    {"07 select", "#882255", DIAMOND, true, "2,2"},
    {"08 -t 2", "#999933", SQUARE, false, ""},
    {"08 -t 4", "#999933", SQUARE, true, "6,3"},
    {"09 -t 2", "#332288", TRIANGLE, false, ""},
    {"09 -t 4", "#332288", TRIANGLE, true, "6,3"},
    {"10 -t 1", "#44AA99", DIAMOND, false, ""},
    {"10 -t 2", "#44AA99", DIAMOND, true, "6,3"},
    {"11 proactor", "#117733", TRIANGLE_DOWN, false, ""},
};
static const struct style unknown = {"", "#888888", CIRCLE, true, "1,2"};

static const struct style *style_of(const char *name)
{
    for (size_t i = 0; i < sizeof styles / sizeof styles[0]; i++)
        if (strcmp(styles[i].name, name) == 0)
            return &styles[i];
    return &unknown;
}

struct point {
    double x, y, ylo, yhi;
    bool broke;
};

struct series {
    char name[48];
    int n;
    struct point p[MAX_POINTS];
};

struct panel {
    char title[96], ylabel[64];
    struct svg_axis y;
    int nseries;
    struct series s[MAX_SERIES];
};

struct chart {
    struct panel panels[MAX_PANELS];
    int npanels, cols;
    int plot_w, plot_h;
    bool own_y;
    const char *title, *note;
    struct svg_axis x, y;
};

static void copy_name(char *to, size_t size, const char *from)
{
    size_t len = strlen(from);

    if (len >= size)
        len = size - 1; /* a long name is cut */
    memcpy(to, from, len);
    to[len] = '\0';
}

static struct series *series_named(struct panel *pn, const char *name)
{
    for (int i = 0; i < pn->nseries; i++)
        if (strcmp(pn->s[i].name, name) == 0)
            return &pn->s[i];
    if (pn->nseries == MAX_SERIES)
        err_quit("panel %s: more than %d series", pn->title, MAX_SERIES);
    struct series *s = &pn->s[pn->nseries++];
    copy_name(s->name, sizeof s->name, name);
    return s;
}

/* Splits line at tabs into at most max fields; returns how many. */
static int split(char *line, char **f, int max)
{
    int n = 0;

    line[strcspn(line, "\n")] = '\0';
    while (n < max) {
        f[n++] = line;
        line = strchr(line, '\t');
        if (line == NULL)
            break;
        *line++ = '\0';
    }
    return n;
}

/* Reads the panels and their points; a point that a log axis cannot show
 * is left out. */
static void read_input(struct chart *c)
{
    char line[512], *f[7];

    while (fgets(line, sizeof line, stdin) != NULL) {
        int n = split(line, f, 7);
        if ((n == 2 || n == 3) && strcmp(f[0], "panel") == 0) {
            if (c->npanels == MAX_PANELS)
                err_quit("more than %d panels", MAX_PANELS);
            struct panel *pn = &c->panels[c->npanels++];
            copy_name(pn->title, sizeof pn->title, f[1]);
            copy_name(pn->ylabel, sizeof pn->ylabel, n == 3 ? f[2] : "");
            continue;
        }
        if (n != 7 || strcmp(f[0], "point") != 0 || c->npanels == 0)
            continue;
        struct point pt = {strtod(f[2], NULL), strtod(f[3], NULL),
                           strtod(f[4], NULL), strtod(f[5], NULL),
                           strcmp(f[6], "break") == 0};
        if ((c->x.log && pt.x <= 0) || (c->y.log && pt.y <= 0) ||
            !isfinite(pt.x) || !isfinite(pt.y))
            continue;
        if (!(pt.ylo <= pt.y) || (c->y.log && pt.ylo <= 0))
            pt.ylo = pt.y;
        if (!(pt.yhi >= pt.y))
            pt.yhi = pt.y;
        struct series *s = series_named(&c->panels[c->npanels - 1], f[1]);
        if (s->n < MAX_POINTS)
            s->p[s->n++] = pt;
    }
}

static void fit_y(struct svg_axis *a, double lo, double hi)
{
    if (a->log)
        svg_axis_fit(a, lo, hi);
    else
        svg_axis_fit_close(a, hi);
}

/* The axes: one x for every panel, and one y for every panel too, or with
 * --own-y one for each; fitted to the points and their spread. */
static void fit(struct chart *c)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;

    for (int k = 0; k < c->npanels; k++) {
        struct panel *pn = &c->panels[k];
        double plo = INFINITY, phi = -INFINITY;
        for (int i = 0; i < pn->nseries; i++) {
            const struct series *s = &pn->s[i];
            for (int j = 0; j < s->n; j++) {
                xlo = fmin(xlo, s->p[j].x);
                xhi = fmax(xhi, s->p[j].x);
                if (s->p[j].broke)
                    continue; /* off the scale, it is drawn on its edge */
                plo = fmin(plo, s->p[j].ylo);
                phi = fmax(phi, s->p[j].yhi);
            }
        }
        pn->y = c->y;
        fit_y(&pn->y, plo, phi);
        ylo = fmin(ylo, plo);
        yhi = fmax(yhi, phi);
    }
    svg_axis_fit(&c->x, xlo, xhi);
    fit_y(&c->y, ylo, yhi);
    for (int k = 0; k < c->npanels; k++) {
        struct panel *pn = &c->panels[k];
        if (!c->own_y)
            pn->y = c->y;
        if (*pn->ylabel)
            pn->y.label = pn->ylabel;
    }
}

static void draw_marker(const struct style *st, double x, double y)
{
    const char *fill = st->hollow ? "white" : st->colour;

    printf("<g fill='%s' stroke='%s' stroke-width='1.5'>", fill, st->colour);
    switch (st->marker) {
    case CIRCLE:
        printf("<circle cx='%.1f' cy='%.1f' r='4'/>", x, y);
        break;
    case SQUARE:
        printf("<rect x='%.1f' y='%.1f' width='7' height='7'/>", x - 3.5,
               y - 3.5);
        break;
    case TRIANGLE:
        printf("<path d='M%.1f %.1fl4.5 8h-9z'/>", x, y - 5);
        break;
    case TRIANGLE_DOWN:
        printf("<path d='M%.1f %.1fl4.5 -8h-9z'/>", x, y + 5);
        break;
    case DIAMOND:
        printf("<path d='M%.1f %.1fl5 5l-5 5l-5 -5z'/>", x, y - 5);
        break;
    }
    printf("</g>\n");
}

/* A breaking point: a cross, larger than any marker. */
static void draw_cross(const char *colour, double x, double y)
{
    printf("<path d='M%.1f %.1fl12 12m0 -12l-12 12' stroke='%s' "
           "stroke-width='3' stroke-linecap='round'/>\n",
           x - 6, y - 6, colour);
}

/* Where y lands, kept inside the plot: a breaking point off the scale
 * (the axes are fitted to the points that did not break) sits on its top
 * edge, with its value written beside it. */
static double py(const struct svg_panel *p, double y)
{
    return svg_py(p, fmax(fmin(y, p->y.hi), p->y.lo));
}

/* One line: its spread bars, the line up to its first breaking point, its
 * markers, and the cross. dx shifts it sideways a little, so that the bars
 * of lines that meet stay apart. */
static void draw_series(const struct svg_panel *p, const struct series *s,
                        double dx)
{
    const struct style *st = style_of(s->name);
    int last = s->n - 1;

    for (int j = 0; j < s->n; j++)
        if (s->p[j].broke) {
            last = j;
            break;
        }
    for (int j = 0; j <= last; j++) {
        double x = svg_px(p, s->p[j].x) + dx;
        if (s->p[j].yhi > s->p[j].ylo)
            printf("<path d='M%.1f %.1fV%.1fM%.1f %.1fh6M%.1f %.1fh6' "
                   "stroke='%s' stroke-width='1.2' opacity='0.7'/>\n",
                   x, py(p, s->p[j].ylo), py(p, s->p[j].yhi), x - 3,
                   py(p, s->p[j].ylo), x - 3, py(p, s->p[j].yhi), st->colour);
    }
    printf("<polyline fill='none' stroke='%s' stroke-width='2' "
           "stroke-dasharray='%s' points='",
           st->colour, *st->dash ? st->dash : "none");
    for (int j = 0; j <= last; j++)
        printf("%.1f,%.1f ", svg_px(p, s->p[j].x) + dx, py(p, s->p[j].y));
    printf("'/>\n");
    for (int j = 0; j <= last; j++) {
        double x = svg_px(p, s->p[j].x) + dx, y = py(p, s->p[j].y);
        if (s->p[j].broke)
            draw_cross(st->colour, x, y);
        else
            draw_marker(st, x, y);
        if (s->p[j].y > p->y.hi) {
            char text[32];
            snprintf(text, sizeof text,
                     s->p[j].y >= 100 ? "\u2191 %.0f" : "\u2191 %.3g",
                     s->p[j].y);
            svg_text(x - 9, y + 4, "end", "", text);
        }
    }
}

/* A legend entry: a stretch of the line with its marker, and the name. */
static void draw_key(const struct style *st, double x, double y,
                     const char *name)
{
    printf("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' "
           "stroke-width='2' stroke-dasharray='%s'/>\n",
           x, y, x + 26, y, st->colour, *st->dash ? st->dash : "none");
    draw_marker(st, x + 13, y);
    svg_text(x + 33, y + 4, "start", "", name);
}

static void draw_panel(const struct chart *c, const struct panel *pn,
                       double left, double top)
{
    struct svg_panel p = {.left = left + PLOT_LEFT,
                          .top = top + PLOT_TOP,
                          .width = c->plot_w,
                          .height = c->plot_h,
                          .x = c->x,
                          .y = pn->y};

    svg_text(p.left + c->plot_w / 2.0, top + 18, "middle",
             "font-size='13' font-weight='bold'", pn->title);
    svg_axis_x(&p);
    svg_axis_y(&p);
    for (int i = 0; i < pn->nseries; i++)
        draw_series(&p, &pn->s[i], (i - (pn->nseries - 1) / 2.0) * 2.5);
    for (int i = 0; i < pn->nseries; i++) {
        int column = i / LEGEND_ROWS, row = i % LEGEND_ROWS;
        draw_key(style_of(pn->s[i].name), left + PLOT_LEFT - 40 + column * 190,
                 top + PLOT_TOP + c->plot_h + LEGEND_TOP + row * LEGEND_ROW,
                 pn->s[i].name);
    }
}

static void draw(const struct chart *c)
{
    int rows = (c->npanels + c->cols - 1) / c->cols;
    int cell_w = PLOT_LEFT + c->plot_w + PLOT_RIGHT;
    int cell_h = PLOT_TOP + c->plot_h + LEGEND_TOP + LEGEND_ROW * LEGEND_ROWS;
    int width = c->cols * cell_w + 20, height = HEADER + rows * cell_h;

    svg_begin(width, height, c->title);
    if (c->note != NULL)
        svg_text(20, 48, "start", "fill='#444'", c->note);
    draw_cross("#444", width - 200, 44);
    svg_text(width - 186, 48, "start", "fill='#444'",
             "breaking point (see the table)");
    for (int k = 0; k < c->npanels; k++) {
        int column = k % c->cols, row = k / c->cols;
        draw_panel(c, &c->panels[k], 10 + column * cell_w,
                   HEADER + row * cell_h);
    }
    svg_end();
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: chart [--logx] [--logy] [--own-y] [--cols N] "
                    "[--plot WxH]\n"
                    "             [--title T] [--note N] [--xlabel X] "
                    "[--ylabel Y] < input > out.svg\n");
    exit(2);
}

/* A whole number in [min, max] (common/options.h), or the usage. */
static long number(const char *arg, long min, long max)
{
    long v;

    if (parse_number(arg, min, max, &v) == -1)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    static struct chart c = {
        .title = "", .cols = 3, .plot_w = 300, .plot_h = 210};

    c.x.label = c.y.label = "";
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--logx") == 0)
            c.x.log = true;
        else if (strcmp(argv[i], "--logy") == 0)
            c.y.log = true;
        else if (strcmp(argv[i], "--own-y") == 0)
            c.own_y = true;
        else if (strcmp(argv[i], "--cols") == 0 && next)
            c.cols = (int)number(argv[++i], 1, 8);
        else if (strcmp(argv[i], "--plot") == 0 && next) {
            char *x = strchr(argv[++i], 'x');
            if (x == NULL)
                usage();
            *x = '\0';
            c.plot_w = (int)number(argv[i], 100, 2000);
            c.plot_h = (int)number(x + 1, 100, 2000);
        } else if (strcmp(argv[i], "--title") == 0 && next)
            c.title = argv[++i];
        else if (strcmp(argv[i], "--note") == 0 && next)
            c.note = argv[++i];
        else if (strcmp(argv[i], "--xlabel") == 0 && next)
            c.x.label = argv[++i];
        else if (strcmp(argv[i], "--ylabel") == 0 && next)
            c.y.label = argv[++i];
        else
            usage();
    }
    read_input(&c);
    if (c.npanels == 0)
        err_quit("no panel in the input");
    fit(&c);
    draw(&c);
    return 0;
}
