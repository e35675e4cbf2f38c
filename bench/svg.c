/* bench/svg.c -- see svg.h. */
#include "svg.h"

#include <math.h>
#include <stdio.h>

void svg_begin(int width, int height, const char *title)
{
    printf("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
           "viewBox='0 0 %d %d' font-family='sans-serif' font-size='12'>\n",
           width, height, width, height);
    printf("<style>.grid{stroke:#ddd;stroke-width:1}"
           ".axis{stroke:#333;stroke-width:1}</style>\n");
    printf("<rect width='100%%' height='100%%' fill='white'/>\n");
    svg_text(20, 28, "start", "font-size='15' font-weight='bold'", title);
}

void svg_end(void)
{
    printf("</svg>\n");
}

void svg_put_text(const char *s)
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

void svg_text(double x, double y, const char *anchor, const char *extra,
              const char *s)
{
    printf("<text x='%.1f' y='%.1f' text-anchor='%s' %s>", x, y, anchor, extra);
    svg_put_text(s);
    printf("</text>\n");
}

void svg_axis_fit(struct svg_axis *a, double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi)) {
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
static double frac(const struct svg_axis *a, double v)
{
    if (a->log)
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

double svg_px(const struct svg_panel *p, double x)
{
    return p->left + frac(&p->x, x) * p->width;
}

double svg_py(const struct svg_panel *p, double y)
{
    return p->top + p->height - frac(&p->y, y) * p->height;
}

void svg_tick_text(double v, char *buf, size_t size)
{
    static const char *const suffix[] = {"", "k", "M", "G"};
    int k = 0;

    while (fabs(v) >= 1000 && k < 3) {
        v /= 1000;
        k++;
    }
    snprintf(buf, size, "%g%s", v, suffix[k]);
}

/* The values that get a grid line: powers of ten on a log axis, five even
 * steps on a linear one. Returns how many it wrote (at most max). */
static int ticks(const struct svg_axis *a, double *v, int max)
{
    int n = 0;

    for (int i = 0; n < max; i++) {
        double t =
            a->log ? a->lo * pow(10, i) : a->lo + (a->hi - a->lo) * i / 5;
        if (t > a->hi * 1.0001)
            break;
        v[n++] = t;
    }
    return n;
}

void svg_axis_x(const struct svg_panel *p)
{
    double v[16], bottom = p->top + p->height;
    char text[32];
    int n = ticks(&p->x, v, 16);

    for (int i = 0; i < n; i++) {
        double x = svg_px(p, v[i]);
        printf("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='grid'/>\n",
               x, p->top, x, bottom);
        svg_tick_text(v[i], text, sizeof text);
        svg_text(x, bottom + 16, "middle", "", text);
    }
    printf("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='axis'/>\n",
           p->left, bottom, p->left + p->width, bottom);
    svg_text(p->left + p->width / 2, bottom + 34, "middle", "", p->x.label);
}

void svg_axis_y(const struct svg_panel *p)
{
    double v[16];
    char text[32];
    int n = ticks(&p->y, v, 16);

    for (int i = 0; i < n; i++) {
        double y = svg_py(p, v[i]);
        printf("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='grid'/>\n",
               p->left, y, p->left + p->width, y);
        svg_tick_text(v[i], text, sizeof text);
        svg_text(p->left - 8, y + 4, "end", "", text);
    }
    printf("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='axis'/>\n",
           p->left, p->top, p->left, p->top + p->height);
    printf("<text transform='translate(%.1f %.1f) rotate(-90)' "
           "text-anchor='middle'>",
           p->left - 58, p->top + p->height / 2);
    svg_put_text(p->y.label);
    printf("</text>\n");
}
