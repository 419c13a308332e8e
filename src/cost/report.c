/* `opentrn report`: one self-contained HTML file (no scripts, no network) with inline SVG charts
** drawn by gnuplot: per-engine utilisation and timeline, a roofline with each run on it, the loss
** curve, and the cost comparison.  Data are read here; drawing is report_plot.c's. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cost/report_int.h"
#include "util/fileio.h"

#define MAX_LANES 64
#define MAX_TRACE_EVENTS 200000

typedef struct {
  const char *path;
  cJSON *root;
  char chip[64];
  double seconds, flops, hbm_bytes, insns, mfu, mbu;
  int cores_used;
} stats_info;

typedef struct {
  const ot_report_inputs *in;
  plotter pl;
  stats_info st[OT_COST_MAX_CHIPS];
  int n_st;
  ot_chip *chip;
  FILE *html;
  char *html_text;
  size_t html_len;
  /* which charts were drawn */
  int util[OT_COST_MAX_CHIPS], timeline, roofline, loss, cost;
  char notes[2048];
} report;

static void note(report *r, const char *text) {
  size_t n = strlen(r->notes);
  snprintf(r->notes + n, sizeof r->notes - n, "%s\n", text);
}

/* ---- HTML helpers ------------------------------------------------------------------------- */
static void html_text(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '&': fputs("&amp;", f); break;
      case '"': fputs("&quot;", f); break;
      default: fputc(*s, f);
    }
  }
}

static double num(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static cJSON *read_json(const char *path, ot_error *err) {
  char *text = NULL;
  size_t n = 0;
  if (ot_file_read(path, &text, &n, err)) return NULL;
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) ot_error_set(err, OT_EPARSE, "%s: not valid JSON", path);
  return root;
}

/* ---- statistics ---------------------------------------------------------------------------- */
static ot_status stats_load(stats_info *s, const char *path, ot_error *err) {
  s->path = path;
  if (!(s->root = read_json(path, err))) return err->code;
  const cJSON *chip = cJSON_GetObjectItemCaseSensitive(s->root, "chip");
  const cJSON *flops = cJSON_GetObjectItemCaseSensitive(s->root, "flops");
  const cJSON *hbm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s->root, "memory"), "hbm");
  if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s->root, "total_ps")) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s->root, "cores")))
    return ot_error_set(err, OT_EPARSE, "%s: not `opentrn run --json` statistics (expected total_ps and cores)", path);
  snprintf(s->chip, sizeof s->chip, "%s", cJSON_IsString(chip) ? chip->valuestring : "");
  s->seconds = num(s->root, "total_ps") * 1e-12;
  s->flops = num(flops, "model");
  s->hbm_bytes = num(hbm, "read_bytes") + num(hbm, "written_bytes");
  s->insns = num(s->root, "insns");
  s->mfu = num(s->root, "mfu_percent");
  s->mbu = num(s->root, "mbu_percent");
  const cJSON *core;
  cJSON_ArrayForEach(core, cJSON_GetObjectItemCaseSensitive(s->root, "cores")) {
    double insns = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(core, "engines")) insns += num(e, "insns");
    s->cores_used += insns > 0;
  }
  return OT_OK;
}

/* Stacked bars: busy and each idle reason, as % of the run, per engine that ran. */
static ot_status chart_util(report *r, int k, ot_error *err) {
  const stats_info *s = &r->st[k];
  char name[32], file[48], path[PLOT_PATH_MAX + 48];
  snprintf(name, sizeof name, "util%d", k);
  snprintf(file, sizeof file, "util%d.dat", k);
  FILE *f = plot_data(&r->pl, file, err);
  if (!f) return err->code;
  const char *reasons[8];
  int n_reasons = 0, rows = 0;
  double total_ps = s->seconds * 1e12;
  const cJSON *core;
  cJSON_ArrayForEach(core, cJSON_GetObjectItemCaseSensitive(s->root, "cores")) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(core, "engines")) {
      if (num(e, "insns") <= 0) continue;
      const cJSON *idle = cJSON_GetObjectItemCaseSensitive(e, "idle_ps"), *c;
      if (!n_reasons) cJSON_ArrayForEach(c, idle) if (n_reasons < 8) reasons[n_reasons++] = c->string;
      const cJSON *en = cJSON_GetObjectItemCaseSensitive(e, "engine");
      char label[64];
      plot_label(cJSON_IsString(en) ? en->valuestring : "?", label, sizeof label);
      fprintf(f, "c%d/%s %.4f", (int)num(core, "core"), label, 100 * num(e, "busy_ps") / total_ps);
      for (int i = 0; i < n_reasons; i++) fprintf(f, " %.4f", 100 * num(idle, reasons[i]) / total_ps);
      fputc('\n', f);
      rows++;
    }
  }
  fclose(f);
  if (!rows) return OT_OK;
  static const char *const colours[] = {"#2b7bba", "#f0a030", "#9467bd", "#d62728", "#c7c7c7", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f"};
  plot_path(&r->pl, file, path, sizeof path);
  plot_output(&r->pl, name, 860, 380);
  fprintf(r->pl.script,
          "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.9 border -1\nset boxwidth 0.7\n"
          "set yrange [0:100]\nset ylabel '%% of simulated time'\nset key outside right top\nset xtics rotate by -30\n"
          "plot '%s' using 2:xtic(1) title 'busy' lc rgb '%s'",
          path, colours[0]);
  for (int i = 0; i < n_reasons; i++) {
    char label[48];
    plot_label(reasons[i], label, sizeof label);
    fprintf(r->pl.script, ", '' using %d title 'idle: %s' lc rgb '%s'", i + 3, label, colours[(i + 1) % 9]);
  }
  fputc('\n', r->pl.script);
  r->util[k] = 1;
  return OT_OK;
}

/* ---- roofline ------------------------------------------------------------------------------- */
static ot_status chart_roofline(report *r, ot_error *err) {
  if (!r->chip) return OT_OK;
  int cores = ot_chip_cores(r->chip);
  double peak = ot_chip_peak_tflops_core(r->chip, "bf16"), fp32 = ot_chip_peak_tflops_core(r->chip, "fp32"), gbps = 0;
  if (ot_chip_get(r->chip, "hbm.bandwidth_gbps", &gbps, err)) return err->code;
  double bw = gbps / cores / 1000; /* TB/s per core: an even share, as the simulator's MBU */
  FILE *f = plot_data(&r->pl, "kernels.dat", err);
  if (!f) return err->code;
  double xmax = peak / bw * 8, ymin = peak, xmin = 1;
  int n = 0;
  for (int k = 0; k < r->n_st; k++) {
    const stats_info *s = &r->st[k];
    if (s->flops <= 0 || s->hbm_bytes <= 0 || s->cores_used <= 0) {
      char t[320];
      snprintf(t, sizeof t, "%s: not on the roofline (it has %s).", s->path, s->flops <= 0 ? "no matmul FLOPs" : "no HBM traffic");
      note(r, t);
      continue;
    }
    double ai = s->flops / s->hbm_bytes, tf = s->flops / s->seconds / s->cores_used / 1e12;
    const char *base = strrchr(s->path, '/');
    char label[96];
    plot_label(base ? base + 1 : s->path, label, sizeof label);
    fprintf(f, "%.6g %.6g %s\n", ai, tf, label);
    if (ai * 4 > xmax) xmax = ai * 4;
    if (ai / 4 < xmin) xmin = ai / 4;
    if (tf < ymin) ymin = tf;
    n++;
  }
  fclose(f);
  char path[PLOT_PATH_MAX + 48], chip[64];
  plot_path(&r->pl, "kernels.dat", path, sizeof path);
  plot_label(ot_chip_name(r->chip), chip, sizeof chip);
  plot_output(&r->pl, "roofline", 860, 460);
  fprintf(r->pl.script,
          "set logscale xy\nset xrange [%g:%g]\nset yrange [%g:%g]\nset samples 400\n"
          "set xlabel 'arithmetic intensity (FLOP per HBM byte)'\nset ylabel 'TFLOP/s per NeuronCore'\n"
          "set key right bottom\nbw = %.9g\npk = %.9g\npk32 = %.9g\n"
          "roof(x) = x*bw < pk ? x*bw : pk\nroof32(x) = x*bw < pk32 ? x*bw : pk32\n"
          "set arrow from pk/bw, %g to pk/bw, pk nohead dashtype 2 lc rgb '#888888'\n"
          "set label 'ridge %.0f FLOP/B' at pk/bw, %g offset 1,1 textcolor rgb '#555555'\n"
          "plot roof(x) title sprintf('%s bf16 roof: %%.1f TFLOP/s, %%.0f GB/s HBM per core', pk, bw*1000) lw 2 lc rgb '#2b7bba', "
          "roof32(x) title 'fp32 roof' lw 1.5 dashtype 2 lc rgb '#555555'",
          xmin, xmax, ymin / 20, peak * 2, bw, peak, fp32, ymin / 20, peak / bw, ymin / 10, chip);
  if (n)
    fprintf(r->pl.script, ", '%s' using 1:2 with points pt 7 ps 1.5 lc rgb '#d62728' title 'runs (kernels)', "
                          "'' using 1:2:3 with labels offset 0,1.2 notitle", path);
  fputc('\n', r->pl.script);
  r->roofline = 1;
  return OT_OK;
}

/* ---- trace timeline ------------------------------------------------------------------------- */
typedef struct { double pid, tid; char name[64]; } lane;

static int lane_of(lane *lanes, int *n, double pid, double tid) {
  for (int i = 0; i < *n; i++)
    if (lanes[i].pid == pid && lanes[i].tid == tid) return i;
  if (*n == MAX_LANES) return -1;
  lanes[*n].pid = pid, lanes[*n].tid = tid;
  snprintf(lanes[*n].name, sizeof lanes[*n].name, "c%g/t%g", pid - 1, tid);
  return (*n)++;
}

static int lane_cmp(const void *a, const void *b) {
  const lane *x = a, *y = b;
  return x->pid != y->pid ? (x->pid < y->pid ? -1 : 1) : x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* Lanes first (threads and anything with complete events), in pid/tid order as Perfetto shows. */
static int timeline_lanes(const cJSON *events, lane *lanes) {
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, events) {
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph"), *name = cJSON_GetObjectItemCaseSensitive(e, "name");
    int thread = cJSON_IsString(name) && !strcmp(name->valuestring, "thread_name");
    if (cJSON_IsString(ph) && (!strcmp(ph->valuestring, "X") || (!strcmp(ph->valuestring, "M") && thread)))
      lane_of(lanes, &n, num(e, "pid"), num(e, "tid"));
  }
  qsort(lanes, (size_t)n, sizeof lanes[0], lane_cmp);
  return n;
}

static ot_status chart_timeline(report *r, ot_error *err) {
  cJSON *root = read_json(r->in->trace, err);
  if (!root) return err->code;
  const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "traceEvents"), *e;
  if (!cJSON_IsArray(events)) {
    cJSON_Delete(root);
    return ot_error_set(err, OT_EPARSE, "%s: not a trace (expected a traceEvents array)", r->in->trace);
  }
  lane lanes[MAX_LANES];
  int n_lanes = timeline_lanes(events, lanes), count = 0;
  static const char *const cats[] = {"insn", "wait", "dma"};
  FILE *f[3] = {NULL, NULL, NULL};
  int used[3] = {0, 0, 0};
  for (int c = 0; c < 3; c++) {
    char file[32];
    snprintf(file, sizeof file, "tl_%s.dat", cats[c]);
    if (!(f[c] = plot_data(&r->pl, file, err))) break;
  }
  cJSON_ArrayForEach(e, events) {
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph"), *name = cJSON_GetObjectItemCaseSensitive(e, "name");
    if (!cJSON_IsString(ph) || !f[2]) continue;
    int is_x = !strcmp(ph->valuestring, "X");
    int is_thread = !strcmp(ph->valuestring, "M") && cJSON_IsString(name) && !strcmp(name->valuestring, "thread_name");
    if (!is_x && !is_thread) continue;
    int l = lane_of(lanes, &n_lanes, num(e, "pid"), num(e, "tid"));
    if (l < 0) continue;
    if (is_thread) {
      const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "args"), "name");
      if (cJSON_IsString(nm)) {
        char label[40];
        plot_label(nm->valuestring, label, sizeof label);
        snprintf(lanes[l].name, sizeof lanes[l].name, "c%g %s", lanes[l].pid - 1, label);
      }
    }
    if (strcmp(ph->valuestring, "X") || count >= MAX_TRACE_EVENTS) continue;
    const cJSON *cat = cJSON_GetObjectItemCaseSensitive(e, "cat");
    int c = cJSON_IsString(cat) && !strcmp(cat->valuestring, "wait") ? 1 : cJSON_IsString(cat) && !strcmp(cat->valuestring, "dma") ? 2 : 0;
    double ts = num(e, "ts"), dur = num(e, "dur");
    fprintf(f[c], "%.6f %d %.6f 0.35\n", ts + dur / 2, l, dur / 2);
    used[c] = 1;
    count++;
  }
  for (int c = 0; c < 3; c++)
    if (f[c]) fclose(f[c]);
  cJSON_Delete(root);
  if (err->code) return err->code;
  if (!count) return OT_OK;
  if (count >= MAX_TRACE_EVENTS) note(r, "timeline: only the first 200,000 trace events are drawn.");
  plot_output(&r->pl, "timeline", 960, 120 + 26 * n_lanes);
  fprintf(r->pl.script, "set yrange [%d.5:-0.5]\nset xlabel 'simulated time (us)'\nset key outside right top\nset ytics (", n_lanes - 1);
  for (int i = 0; i < n_lanes; i++) fprintf(r->pl.script, "%s'%s' %d", i ? ", " : "", lanes[i].name, i);
  fprintf(r->pl.script, ")\nset grid noytics\nset style fill solid 0.85 noborder\nplot ");
  static const char *const titles[] = {"instruction", "semaphore wait", "DMA transfer"};
  static const char *const colours[] = {"#2b7bba", "#f0a030", "#2ca02c"};
  int first = 1;
  for (int c = 0; c < 3; c++) {
    if (!used[c]) continue;
    char file[32], path[PLOT_PATH_MAX + 48];
    snprintf(file, sizeof file, "tl_%s.dat", cats[c]);
    plot_path(&r->pl, file, path, sizeof path);
    fprintf(r->pl.script, "%s'%s' using 1:2:3:4 with boxxyerror title '%s' lc rgb '%s'", first ? "" : ", ", path, titles[c], colours[c]);
    first = 0;
  }
  fputc('\n', r->pl.script);
  r->timeline = 1;
  return OT_OK;
}

/* ---- loss curve ----------------------------------------------------------------------------- */
static ot_status chart_loss(report *r, ot_error *err) {
  char *text = NULL;
  size_t len = 0;
  if (ot_file_read(r->in->loss, &text, &len, err)) return err->code;
  FILE *f = plot_data(&r->pl, "loss.dat", err);
  int n = 0, line = 0;
  for (char *save = NULL, *s = f ? strtok_r(text, "\n", &save) : NULL; s; s = strtok_r(NULL, "\n", &save)) {
    line++;
    char *end;
    double step = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == s || (*end != ',' && *end != ' ')) {
      if (n == 0 && line == 1) continue; /* a header line */
      ot_error_set(err, OT_EPARSE, "%s:%d: expected 'step,loss'", r->in->loss, line);
      break;
    }
    double loss = strtod(end + 1, &end);
    if (!isfinite(step) || !isfinite(loss)) continue;
    fprintf(f, "%.9g %.9g\n", step, loss);
    n++;
  }
  if (f) fclose(f);
  free(text);
  if (err->code) return err->code;
  if (!n) return ot_error_set(err, OT_EPARSE, "%s: no 'step,loss' rows", r->in->loss);
  char path[PLOT_PATH_MAX + 48];
  plot_path(&r->pl, "loss.dat", path, sizeof path);
  plot_output(&r->pl, "loss", 860, 380);
  fprintf(r->pl.script, "set xlabel 'step'\nset ylabel 'loss'\nset key right top\n"
                        "plot '%s' using 1:2 with lines lw 2 lc rgb '#2b7bba' title 'training loss'\n", path);
  r->loss = 1;
  return OT_OK;
}

/* ---- cost comparison ------------------------------------------------------------------------ */
static ot_status chart_cost(report *r, cJSON *cost, ot_error *err) {
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(cost, "rows"), *row;
  const cJSON *unit = cJSON_GetObjectItemCaseSensitive(cost, "unit");
  if (!cJSON_IsArray(rows)) return ot_error_set(err, OT_EPARSE, "%s: not `opentrn cost --json` output (expected rows)", r->in->cost);
  FILE *f = plot_data(&r->pl, "cost.dat", err);
  if (!f) return err->code;
  int n = 0, i = 0;
  cJSON_ArrayForEach(row, rows) {
    const cJSON *chip = cJSON_GetObjectItemCaseSensitive(row, "chip"), *c = cJSON_GetObjectItemCaseSensitive(row, "cost");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(row, "kind");
    if (!cJSON_IsString(chip) || !cJSON_IsNumber(c)) continue;
    char label[64];
    plot_label(chip->valuestring, label, sizeof label);
    int trn = cJSON_IsString(kind) && !strncmp(kind->valuestring, "trainium", 8);
    fprintf(f, "%d %s %.9g %d\n", i++, label, c->valuedouble, trn);
    n++;
  }
  fclose(f);
  if (!n) {
    note(r, "cost: no chip has a cost yet (Trainium rows need simulated figures; GPUs need a price).");
    return OT_OK;
  }
  char path[PLOT_PATH_MAX + 48], u[96];
  plot_path(&r->pl, "cost.dat", path, sizeof path);
  plot_label(cJSON_IsString(unit) ? unit->valuestring : "USD", u, sizeof u);
  plot_output(&r->pl, "cost", 860, 380);
  fprintf(r->pl.script,
          "set style fill solid 0.85 border -1\nset boxwidth 0.6\nset ylabel '%s'\nset yrange [0:*]\nset xrange [-0.6:%d.6]\n"
          "set key off\nset grid noxtics\n"
          "plot '%s' using 1:3:($4 > 0.5 ? 0xff7f0e : 0x2b7bba):xtic(2) with boxes lc rgb variable, "
          "'' using 1:3:(sprintf('%%.4g', $3)) with labels offset 0,0.8\n",
          u, n - 1, path);
  r->cost = 1;
  return OT_OK;
}

/* ---- the page ------------------------------------------------------------------------------- */
static void embed(report *r, const char *name, const char *title, const char *caption) {
  char *svg = plot_svg(&r->pl, name);
  fprintf(r->html, "<section>\n<h2>");
  html_text(r->html, title);
  fprintf(r->html, "</h2>\n<p class=\"cap\">");
  html_text(r->html, caption);
  fprintf(r->html, "</p>\n<figure>%s</figure>\n</section>\n", svg ? svg : "<p>(chart missing)</p>");
  free(svg);
}

static void html_stats_table(report *r) {
  fprintf(r->html, "<section>\n<h2>Runs</h2>\n<table>\n<tr><th>statistics</th><th>chip</th><th>cores</th><th>simulated time (us)</th>"
                   "<th>instructions</th><th>matmul FLOPs</th><th>HBM bytes</th><th>MFU %%</th><th>MBU %%</th></tr>\n");
  for (int k = 0; k < r->n_st; k++) {
    const stats_info *s = &r->st[k];
    fprintf(r->html, "<tr><td>");
    html_text(r->html, s->path);
    fprintf(r->html, "</td><td>");
    html_text(r->html, s->chip);
    fprintf(r->html, "</td><td>%d</td><td>%.3f</td><td>%.0f</td><td>%.4g</td><td>%.4g</td><td>%.2f</td><td>%.2f</td></tr>\n", s->cores_used,
            s->seconds * 1e6, s->insns, s->flops, s->hbm_bytes, s->mfu, s->mbu);
  }
  fprintf(r->html, "</table>\n</section>\n");
}

static void html_cost_table(report *r, const cJSON *cost) {
  const cJSON *row, *unit = cJSON_GetObjectItemCaseSensitive(cost, "unit");
  fprintf(r->html, "<table>\n<tr><th>chip</th><th>basis</th><th>");
  html_text(r->html, cJSON_IsString(unit) ? unit->valuestring : "cost");
  fprintf(r->html, "</th><th>vs reference</th><th>note</th></tr>\n");
  cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(cost, "rows")) {
    const char *fields[] = {"chip", "basis"};
    fprintf(r->html, "<tr>");
    for (int i = 0; i < 2; i++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, fields[i]);
      fprintf(r->html, "<td>");
      html_text(r->html, cJSON_IsString(v) ? v->valuestring : "");
      fprintf(r->html, "</td>");
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "cost"), *ratio = cJSON_GetObjectItemCaseSensitive(row, "ratio_vs_reference");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(row, "note");
    if (cJSON_IsNumber(c)) fprintf(r->html, "<td>%.4g</td>", c->valuedouble);
    else fprintf(r->html, "<td>&#8212;</td>");
    if (cJSON_IsNumber(ratio)) fprintf(r->html, "<td>%.2fx</td><td>", ratio->valuedouble);
    else fprintf(r->html, "<td>&#8212;</td><td>");
    html_text(r->html, cJSON_IsString(nt) ? nt->valuestring : "");
    fprintf(r->html, "</td></tr>\n");
  }
  fprintf(r->html, "</table>\n");
}

static void html_page(report *r, const cJSON *cost) {
  const char *title = r->in->title ? r->in->title : "OpenTRN run report";
  fprintf(r->html, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>");
  html_text(r->html, title);
  fprintf(r->html, "</title>\n<style>\nbody{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
                   "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
                   "th{background:#f0f0f0}td:first-child{text-align:left}.cap{color:#555}figure{margin:0}"
                   "section{margin-bottom:2.5em}pre{background:#f7f7f7;padding:8px}\n</style>\n</head>\n<body>\n<h1>");
  html_text(r->html, title);
  fprintf(r->html, "</h1>\n<p class=\"cap\">Simulated on OpenTRN (a cycle-approximate model, not hardware). "
                   "Charts drawn by gnuplot; this file needs no network.</p>\n");
  if (r->n_st) html_stats_table(r);
  for (int k = 0; k < r->n_st; k++) {
    if (!r->util[k]) continue;
    char name[32], title2[320];
    snprintf(name, sizeof name, "util%d", k);
    snprintf(title2, sizeof title2, "Per-engine utilisation: %s", r->st[k].path);
    embed(r, name, title2, "Busy time and each reason an engine sat idle, as a share of the simulated run (from the statistics).");
  }
  if (r->timeline) embed(r, "timeline", "Per-engine timeline", "One bar per instruction, semaphore wait and DMA transfer (from the trace).");
  if (r->roofline) {
    char cap[320];
    snprintf(cap, sizeof cap, "Roofline of one NeuronCore of %s (peak and HBM share from the chip description); each statistics file is a point.",
             ot_chip_name(r->chip));
    embed(r, "roofline", "Roofline", cap);
  }
  if (r->loss) embed(r, "loss", "Training loss", r->in->loss);
  if (cost) {
    if (r->cost) embed(r, "cost", "Cost comparison", "Blue: GPUs (roofline model, not measured). Orange: Trainium-class (simulated).");
    else fprintf(r->html, "<section>\n<h2>Cost comparison</h2>\n");
    html_cost_table(r, cost);
    if (!r->cost) fprintf(r->html, "</section>\n");
  }
  if (*r->notes) {
    fprintf(r->html, "<section>\n<h2>Notes</h2>\n<pre>");
    html_text(r->html, r->notes);
    fprintf(r->html, "</pre>\n</section>\n");
  }
  fprintf(r->html, "</body>\n</html>\n");
}

static ot_status open_chip(report *r, ot_error *err) {
  const char *name = r->in->chip ? r->in->chip : r->n_st ? r->st[0].chip : NULL;
  if (!name || !*name) return OT_OK;
  if (ot_chip_open(name, &r->chip, err)) return ot_error_set(err, err->code, "roofline: cannot open chip '%s' (give --chip)", name);
  return OT_OK;
}

static ot_status build(report *r, cJSON **cost, ot_error *err) {
  const ot_report_inputs *in = r->in;
  for (int k = 0; k < in->n_stats; k++)
    if (stats_load(&r->st[r->n_st++], in->stats[k], err)) return err->code;
  if (in->cost && !(*cost = read_json(in->cost, err))) return err->code;
  ot_status st = open_chip(r, err);
  if (!st) st = plot_begin(&r->pl, err);
  for (int k = 0; !st && k < r->n_st; k++) st = chart_util(r, k, err);
  if (!st && in->trace) st = chart_timeline(r, err);
  if (!st && r->n_st) st = chart_roofline(r, err);
  if (!st && in->loss) st = chart_loss(r, err);
  if (!st && *cost) st = chart_cost(r, *cost, err);
  if (!st) st = plot_run(&r->pl, err);
  return st;
}

ot_status ot_report_write(const ot_report_inputs *in, const char *out_path, ot_error *err) {
  static report r; /* large; one report at a time */
  memset(&r, 0, sizeof r);
  r.in = in;
  cJSON *cost = NULL;
  ot_status st = build(&r, &cost, err);
  if (!st) {
    r.html = open_memstream(&r.html_text, &r.html_len);
    if (!r.html) st = ot_error_set(err, OT_ENOMEM, "out of memory for the report");
  }
  if (!st) {
    html_page(&r, cost);
    fclose(r.html);
    st = ot_file_write_atomic(out_path, r.html_text, r.html_len, err);
  }
  free(r.html_text);
  plot_end(&r.pl);
  cJSON_Delete(cost);
  for (int k = 0; k < r.n_st; k++) cJSON_Delete(r.st[k].root);
  ot_chip_free(r.chip);
  return st;
}
