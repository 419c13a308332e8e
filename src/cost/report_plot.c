/* Charts for the HTML report, drawn by gnuplot (Debian gnuplot-nox) into SVG files in a private
** temporary directory, then read back to be embedded inline.  One gnuplot process draws every
** chart of a report; its messages are kept for the error report. */
#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cost/cost_int.h"
#include "cost/report_int.h"
#include "util/fileio.h"

extern char **environ;

const char *cost_find_program(const char *name, char *buf, size_t cap) {
  const char *env = strcmp(name, "gnuplot") ? NULL : getenv("OT_GNUPLOT");
  if (env && *env) {
    snprintf(buf, cap, "%s", env);
    return access(buf, X_OK) ? NULL : buf;
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/bin:/bin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    if (n && (size_t)snprintf(buf, cap, "%.*s/%s", (int)n, path, name) < cap && !access(buf, X_OK)) return buf;
    path += n + (end != NULL);
  }
  return NULL;
}

ot_status plot_begin(plotter *pl, ot_error *err) {
  memset(pl, 0, sizeof *pl);
  if (!cost_find_program("gnuplot", pl->gnuplot, sizeof pl->gnuplot))
    return ot_error_set(err, OT_EUNSUPPORTED,
                        "gnuplot not found on PATH (the report draws its charts with it): install it with "
                        "`apt-get install gnuplot-nox`, or point OT_GNUPLOT at the binary");
  const char *tmp = getenv("TMPDIR");
  snprintf(pl->dir, sizeof pl->dir, "%s/opentrn-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(pl->dir)) return ot_error_set(err, OT_EIO, "cannot make a temporary directory %s: %s", pl->dir, strerror(errno));
  pl->script = open_memstream(&pl->script_text, &pl->script_len);
  if (!pl->script) {
    rmdir(pl->dir);
    return ot_error_set(err, OT_ENOMEM, "out of memory for the gnuplot script");
  }
  /* Work inside the directory: file names in the SVGs (plot tooltips) stay short and the same. */
  fprintf(pl->script, "set encoding utf8\ncd '%s'\n", pl->dir);
  return OT_OK;
}

static const char *plot_track(plotter *pl, const char *name) {
  if (pl->n_files < PLOT_MAX_FILES) snprintf(pl->files[pl->n_files++], sizeof pl->files[0], "%s/%s", pl->dir, name);
  return pl->n_files <= PLOT_MAX_FILES ? pl->files[pl->n_files - 1] : NULL;
}

FILE *plot_data(plotter *pl, const char *name, ot_error *err) {
  const char *path = plot_track(pl, name);
  FILE *f = path ? fopen(path, "w") : NULL;
  if (!f) ot_error_set(err, OT_EIO, "cannot write chart data %s/%s", pl->dir, name);
  return f;
}

void plot_output(plotter *pl, const char *name, int width, int height) {
  char svg[64];
  snprintf(svg, sizeof svg, "%s.svg", name);
  const char *path = plot_track(pl, svg) ? svg : NULL;
  fprintf(pl->script,
          "reset\nset terminal svg size %d,%d noenhanced font 'sans,11' background rgb 'white'\nset output '%s'\n"
          "set border lc rgb '#555555'\nset grid lc rgb '#dddddd'\n",
          width, height, path ? path : "/dev/null");
}

void plot_path(const plotter *pl, const char *name, char *buf, size_t cap) {
  (void)pl; /* the script runs in pl->dir */
  snprintf(buf, cap, "%s", name);
}

ot_status plot_run(plotter *pl, ot_error *err) {
  fprintf(pl->script, "unset output\n");
  fclose(pl->script);
  pl->script = NULL;
  const char *script = plot_track(pl, "charts.gp"), *log = plot_track(pl, "gnuplot.log");
  if (!script || !log) return ot_error_set(err, OT_ERUNTIME, "report: too many chart files");
  if (ot_file_write_atomic(script, pl->script_text, pl->script_len, err)) return err->code;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  char *argv[] = {pl->gnuplot, (char *)script, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, pl->gnuplot, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) return ot_error_set(err, OT_ERUNTIME, "cannot run %s: %s", pl->gnuplot, strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status)) {
    char *text = NULL;
    size_t n = 0;
    ot_error ignore;
    ot_error_clear(&ignore);
    ot_file_read(log, &text, &n, &ignore);
    ot_status st = ot_error_set(err, OT_ERUNTIME, "gnuplot failed drawing the charts (script %s):\n%.1500s", script, text ? text : "");
    free(text);
    pl->keep = 1; /* leave the script for whoever debugs it */
    return st;
  }
  return OT_OK;
}

char *plot_svg(plotter *pl, const char *name) {
  char path[PLOT_PATH_MAX + 40], *text = NULL;
  size_t n = 0;
  snprintf(path, sizeof path, "%s/%s.svg", pl->dir, name);
  ot_error ignore;
  ot_error_clear(&ignore);
  if (ot_file_read(path, &text, &n, &ignore)) return NULL;
  /* Inline SVG in HTML starts at <svg: drop the XML declaration and DOCTYPE. */
  char *start = strstr(text, "<svg");
  if (!start) {
    free(text);
    return NULL;
  }
  memmove(text, start, strlen(start) + 1);
  return text;
}

void plot_end(plotter *pl) {
  if (pl->script) fclose(pl->script);
  free(pl->script_text);
  pl->script_text = NULL;
  if (pl->keep || !*pl->dir) return;
  for (int i = 0; i < pl->n_files; i++) unlink(pl->files[i]);
  rmdir(pl->dir);
}

/* Labels go into gnuplot strings in single quotes: keep a safe subset of characters. */
void plot_label(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (; *in && o + 1 < cap; in++) {
    unsigned char c = (unsigned char)*in;
    out[o++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._-/+:()%$ ,", c) ? (char)c : '_';
  }
  out[o] = '\0';
}
