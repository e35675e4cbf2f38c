/* bench/chart.c -- draws a line chart as SVG, with no plotting package.
 *
 * Reads points from stdin, one per line, "SERIES<tab>X<tab>Y", and writes
 * an SVG line chart to stdout: one line per series (in order of first
 * appearance), a legend, axes with ticks, and log scales on request.
 * bench/report feeds it columns of bench/results/results.csv.
 *
 * Run it:  printf 'a\t1\t10\na\t10\t100\n' | bench/chart --logx --logy \
 *              --title 'x and y' --xlabel x --ylabel y > chart.svg
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "svg.h"

enum { MAX_SERIES = 16, MAX_POINTS = 64 };
enum {
    WIDTH = 760,
    HEIGHT = 440,
    LEFT = 80,
    RIGHT = 200,
    TOP = 50,
    BOTTOM = 60
};

/* Colours that stay apart for most readers, colour-blind ones included. */
static const char *const palette[] = {
    "#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f",
    "#2e4057", "#e07a5f", "#3d405b", "#81b29a", "#f2cc8f", "#6d597a",
    "#b56576", "#355070", "#43aa8b", "#f94144"};

struct series {
    char name[64];
    int n;
    double x[MAX_POINTS], y[MAX_POINTS];
};

struct chart {
    struct series s[MAX_SERIES];
    int nseries;
    struct svg_panel panel;
    const char *title;
};

static struct series *series_named(struct chart *c, const char *name)
{
    for (int i = 0; i < c->nseries; i++)
        if (strcmp(c->s[i].name, name) == 0)
            return &c->s[i];
    if (c->nseries == MAX_SERIES)
        err_quit("more than %d series", MAX_SERIES);
    struct series *s = &c->s[c->nseries++];
    size_t len = strlen(name);
    if (len >= sizeof s->name)
        len = sizeof s->name - 1; /* a long name is cut */
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    return s;
}

/* Reads the points; a point that a log axis cannot show is left out. */
static void read_points(struct chart *c)
{
    char line[256];

    while (fgets(line, sizeof line, stdin) != NULL) {
        char *tab1 = strchr(line, '\t'), *tab2, *end;
        if (tab1 == NULL || (tab2 = strchr(tab1 + 1, '\t')) == NULL)
            continue;
        *tab1 = '\0';
        double x = strtod(tab1 + 1, &end), y = strtod(tab2 + 1, &end);
        if ((c->panel.x.log && x <= 0) || (c->panel.y.log && y <= 0) ||
            !isfinite(x) || !isfinite(y))
            continue;
        struct series *s = series_named(c, line);
        if (s->n < MAX_POINTS) {
            s->x[s->n] = x;
            s->y[s->n] = y;
            s->n++;
        }
    }
}

/* The range of the data on one axis, widened to round numbers. */
static void fit(struct svg_axis *a, const struct chart *c, bool is_x)
{
    double lo = INFINITY, hi = -INFINITY;

    for (int i = 0; i < c->nseries; i++)
        for (int j = 0; j < c->s[i].n; j++) {
            double v = is_x ? c->s[i].x[j] : c->s[i].y[j];
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    svg_axis_fit(a, lo, hi);
}

static void draw(const struct chart *c)
{
    const struct svg_panel *p = &c->panel;

    svg_begin(WIDTH, HEIGHT, c->title);
    svg_axis_x(p);
    svg_axis_y(p);
    for (int i = 0; i < c->nseries; i++) {
        const struct series *s = &c->s[i];
        const char *colour = palette[i];
        printf("<polyline fill='none' stroke='%s' stroke-width='2' points='",
               colour);
        for (int j = 0; j < s->n; j++)
            printf("%.1f,%.1f ", svg_px(p, s->x[j]), svg_py(p, s->y[j]));
        printf("'/>\n");
        for (int j = 0; j < s->n; j++)
            printf("<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                   svg_px(p, s->x[j]), svg_py(p, s->y[j]), colour);
        int ly = TOP + 10 + i * 20;
        printf("<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' "
               "stroke-width='3'/>\n",
               WIDTH - RIGHT + 15, ly, WIDTH - RIGHT + 35, ly, colour);
        svg_text(WIDTH - RIGHT + 42, ly + 4, "start", "", s->name);
    }
    svg_end();
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: chart [--logx] [--logy] [--title T] [--xlabel X] "
                    "[--ylabel Y] < points > chart.svg\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct chart c = {.title = "",
                             .panel = {.left = LEFT,
                                       .top = TOP,
                                       .width = WIDTH - LEFT - RIGHT,
                                       .height = HEIGHT - TOP - BOTTOM,
                                       .x.label = "",
                                       .y.label = ""}};

    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--logx") == 0)
            c.panel.x.log = true;
        else if (strcmp(argv[i], "--logy") == 0)
            c.panel.y.log = true;
        else if (strcmp(argv[i], "--title") == 0 && next)
            c.title = argv[++i];
        else if (strcmp(argv[i], "--xlabel") == 0 && next)
            c.panel.x.label = argv[++i];
        else if (strcmp(argv[i], "--ylabel") == 0 && next)
            c.panel.y.label = argv[++i];
        else
            usage();
    }
    read_points(&c);
    fit(&c.panel.x, &c, true);
    fit(&c.panel.y, &c, false);
    draw(&c);
    return 0;
}
