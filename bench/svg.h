/* bench/svg.h -- the few SVG pieces that the suite's pictures share: the
 * document, escaped text, and a plot area with axes that fit round
 * numbers. bench/chart draws the benchmark's charts with them, and
 * bench/timeline the pictures of make trace. Everything is written to stdout.
 */
#ifndef SVG_H
#define SVG_H

#include <stdbool.h>
#include <stddef.h>

/* One axis of a plot area: linear from zero, or logarithmic. */
struct svg_axis {
    bool log;
    double lo, hi; /* the data range, widened to round numbers */
    const char *label;
};

/* A plot area: its place in the picture, in pixels, and its two axes. */
struct svg_panel {
    double left, top, width, height;
    struct svg_axis x, y;
};

/* Opens the document (white background, a title at the top left) and
 * closes it. */
void svg_begin(int width, int height, const char *title);
void svg_end(void);

/* Writes s with the characters XML reserves escaped. */
void svg_put_text(const char *s);

/* A line of text at (x, y); anchor is "start", "middle" or "end"; extra
 * is more attributes ("" for none), e.g. "font-weight='bold'". */
void svg_text(double x, double y, const char *anchor, const char *extra,
              const char *s);

/* Widens [lo, hi] to round numbers: powers of ten on a log axis, zero and a
 * multiple of a power of ten on a linear one. */
void svg_axis_fit(struct svg_axis *a, double lo, double hi);

/* Widens [0, hi] on a linear axis to five steps of 1, 2, 2.5 or 5 times a
 * power of ten, so that the top is close to the data and every tick (see
 * svg_axis_x) a round number: 0-115 000 becomes 0-125 000 in steps of
 * 25 000, where svg_axis_fit would give 0-200 000. */
void svg_axis_fit_close(struct svg_axis *a, double hi);

/* Where a value lands, in pixels, in the panel. */
double svg_px(const struct svg_panel *p, double x);
double svg_py(const struct svg_panel *p, double y);

/* "1k", "20M", "0.5": short tick labels. */
void svg_tick_text(double v, char *buf, size_t size);

/* Grid lines, tick labels, the axis line and the axis label of one axis. */
void svg_axis_x(const struct svg_panel *p);
void svg_axis_y(const struct svg_panel *p);

#endif
