/* Internal interface of the HTML report: the gnuplot driver (report_plot.c). */
#ifndef OT_REPORT_INT_H
#define OT_REPORT_INT_H

#include <fcntl.h>
#include <opentrn/cost.h>
#include <stdio.h>

#define PLOT_MAX_FILES 48
#define PLOT_PATH_MAX 256

typedef struct {
  char gnuplot[PLOT_PATH_MAX];
  char dir[PLOT_PATH_MAX];
  char files[PLOT_MAX_FILES][PLOT_PATH_MAX + 80]; /* dir + "/" + a name of up to 63 bytes */
  int n_files;
  FILE *script;          /* the gnuplot script being written */
  char *script_text;
  size_t script_len;
  int keep;              /* leave the directory for debugging (gnuplot failed) */
} plotter;

/* Find gnuplot (clear error if missing), make a private temporary directory. */
ot_status plot_begin(plotter *pl, ot_error *err);
/* A data file in the directory, for writing. */
FILE *plot_data(plotter *pl, const char *name, ot_error *err);
/* Start a chart: the script's following commands draw `name`.svg. */
void plot_output(plotter *pl, const char *name, int width, int height);
/* How the script names a file of the directory (for `plot '...'`). */
void plot_path(const plotter *pl, const char *name, char *buf, size_t cap);
/* Run gnuplot on the script. */
ot_status plot_run(plotter *pl, ot_error *err);
/* The chart's SVG from its <svg> element on (caller frees), or NULL. */
char *plot_svg(plotter *pl, const char *name);
/* Remove the temporary files. */
void plot_end(plotter *pl);
/* A label safe inside a single-quoted gnuplot string. */
void plot_label(const char *in, char *out, size_t cap);

#endif
