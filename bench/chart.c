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

struct axis {
    bool log;
    double lo, hi; /* the data range, widened to round numbers */
    const char *label;
};

struct chart {
    struct series s[MAX_SERIES];
    int nseries;
    struct axis x, y;
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
        if ((c->x.log && x <= 0) || (c->y.log && y <= 0) || !isfinite(x) ||
            !isfinite(y))
            continue;
        struct series *s = series_named(c, line);
        if (s->n < MAX_POINTS) {
            s->x[s->n] = x;
            s->y[s->n] = y;
            s->n++;
        }
    }
}

/* The range of the data on one axis, widened to powers of ten (log) or to
 * zero and a round number (linear). */
static void fit(struct axis *a, const struct chart *c, bool is_x)
{
    double lo = INFINITY, hi = -INFINITY;

    for (int i = 0; i < c->nseries; i++)
        for (int j = 0; j < c->s[i].n; j++) {
            double v = is_x ? c->s[i].x[j] : c->s[i].y[j];
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    if (!isfinite(lo)) {
        lo = 1;
        hi = 10;
    }
    if (a->log) {
        a->lo = pow(10, floor(log10(lo)));
        a->hi = pow(10, ceil(log10(hi)));
        if (a->hi <= a->lo)
            a->hi = a->lo * 10;
    } else {
        double step = pow(10, floor(log10(hi > 0 ? hi : 1)));
        a->lo = 0;
        a->hi = ceil(hi / step) * step;
        if (a->hi <= 0)
            a->hi = 1;
    }
}

/* Where value v lands between 0 and 1 along the axis. */
static double frac(const struct axis *a, double v)
{
    if (a->log)
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static double px(const struct chart *c, double x)
{
    return LEFT + frac(&c->x, x) * (WIDTH - LEFT - RIGHT);
}

static double py(const struct chart *c, double y)
{
    return HEIGHT - BOTTOM - frac(&c->y, y) * (HEIGHT - TOP - BOTTOM);
}

/* "1k", "20M", "0.5": short tick labels. */
static void tick_text(double v, char *buf, size_t size)
{
    static const char *const suffix[] = {"", "k", "M", "G"};
    int k = 0;

    while (fabs(v) >= 1000 && k < 3) {
        v /= 1000;
        k++;
    }
    snprintf(buf, size, "%g%s", v, suffix[k]);
}

/* Grid lines and labels: at powers of ten on a log axis, at five even
 * steps on a linear one. */
static void draw_ticks(const struct chart *c, bool is_x)
{
    const struct axis *a = is_x ? &c->x : &c->y;
    char text[32];
    int steps = 5;

    for (int i = 0;; i++) {
        double v =
            a->log ? a->lo * pow(10, i) : a->lo + (a->hi - a->lo) * i / steps;
        if (v > a->hi * 1.0001)
            break;
        tick_text(v, text, sizeof text);
        if (is_x) {
            double x = px(c, v);
            printf("<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' class='grid'/>\n",
                   x, TOP, x, HEIGHT - BOTTOM);
            printf("<text x='%.1f' y='%d' text-anchor='middle'>%s</text>\n", x,
                   HEIGHT - BOTTOM + 18, text);
        } else {
            double y = py(c, v);
            printf("<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' class='grid'/>\n",
                   LEFT, y, WIDTH - RIGHT, y);
            printf("<text x='%d' y='%.1f' text-anchor='end'>%s</text>\n",
                   LEFT - 8, y + 4, text);
        }
    }
}

/* Writes s with the characters XML reserves escaped. */
static void put_text(const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", stdout);
            break;
        case '>':
            fputs("&gt;", stdout);
            break;
        case '&':
            fputs("&amp;", stdout);
            break;
        case '\'':
            fputs("&apos;", stdout);
            break;
        default:
            putchar(*s);
        }
    }
}

static void draw(const struct chart *c)
{
    printf("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
           "viewBox='0 0 %d %d' font-family='sans-serif' font-size='12'>\n",
           WIDTH, HEIGHT, WIDTH, HEIGHT);
    printf("<style>.grid{stroke:#ddd;stroke-width:1}"
           ".axis{stroke:#333;stroke-width:1}</style>\n");
    printf("<rect width='100%%' height='100%%' fill='white'/>\n");
    printf("<text x='%d' y='28' font-size='15' font-weight='bold'>", LEFT);
    put_text(c->title);
    printf("</text>\n");
    draw_ticks(c, true);
    draw_ticks(c, false);
    printf("<line x1='%d' y1='%d' x2='%d' y2='%d' class='axis'/>\n", LEFT,
           HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM);
    printf("<line x1='%d' y1='%d' x2='%d' y2='%d' class='axis'/>\n", LEFT, TOP,
           LEFT, HEIGHT - BOTTOM);
    printf("<text x='%d' y='%d' text-anchor='middle'>",
           (LEFT + WIDTH - RIGHT) / 2, HEIGHT - 18);
    put_text(c->x.label);
    printf("</text>\n<text transform='translate(18 %d) rotate(-90)' "
           "text-anchor='middle'>",
           (TOP + HEIGHT - BOTTOM) / 2);
    put_text(c->y.label);
    printf("</text>\n");

    for (int i = 0; i < c->nseries; i++) {
        const struct series *s = &c->s[i];
        const char *colour = palette[i];
        printf("<polyline fill='none' stroke='%s' stroke-width='2' points='",
               colour);
        for (int j = 0; j < s->n; j++)
            printf("%.1f,%.1f ", px(c, s->x[j]), py(c, s->y[j]));
        printf("'/>\n");
        for (int j = 0; j < s->n; j++)
            printf("<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                   px(c, s->x[j]), py(c, s->y[j]), colour);
        int ly = TOP + 10 + i * 20;
        printf("<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' "
               "stroke-width='3'/>\n",
               WIDTH - RIGHT + 15, ly, WIDTH - RIGHT + 35, ly, colour);
        printf("<text x='%d' y='%d'>", WIDTH - RIGHT + 42, ly + 4);
        put_text(s->name);
        printf("</text>\n");
    }
    printf("</svg>\n");
}

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: chart [--logx] [--logy] [--title T] [--xlabel X] "
                    "[--ylabel Y] < points > chart.svg\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct chart c = {.title = "", .x.label = "", .y.label = ""};

    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--logx") == 0)
            c.x.log = true;
        else if (strcmp(argv[i], "--logy") == 0)
            c.y.log = true;
        else if (strcmp(argv[i], "--title") == 0 && next)
            c.title = argv[++i];
        else if (strcmp(argv[i], "--xlabel") == 0 && next)
            c.x.label = argv[++i];
        else if (strcmp(argv[i], "--ylabel") == 0 && next)
            c.y.label = argv[++i];
        else
            usage();
    }
    read_points(&c);
    fit(&c.x, &c, true);
    fit(&c.y, &c, false);
    draw(&c);
    return 0;
}
