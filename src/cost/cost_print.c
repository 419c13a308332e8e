/* The comparison for people (a table with every assumption under it) and for programs (JSON,
** read back by `opentrn report --cost`). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "cost/cost_int.h"

static const char *task_name(const ot_cost_result *r) { return r->opt.work.task == OT_COST_TRAIN ? "train" : "serve"; }
static const char *view_name(const ot_cost_result *r) { return r->opt.view == OT_COST_OWNER ? "owner" : "rental"; }
static const char *prices_name(const ot_cost_result *r) { return r->opt.prices == OT_COST_PRICES_MARKET ? "market" : "aws"; }
static const char *prec_name(const ot_cost_result *r) { return r->opt.work.precision == OT_COST_FP8 ? "fp8" : "bf16"; }
static const char *ref_name(const ot_cost_result *r) { return r->opt.reference ? r->opt.reference : "h100"; }

/* 1234567.891 -> "1,234,567.89" (two decimals below 1e6, none above). */
static const char *fmt_money(double v, char *buf, size_t cap) {
  if (v < 0) return "-";
  char raw[64];
  snprintf(raw, sizeof raw, "%.*f", v >= 1e6 ? 0 : 2, v);
  const char *dot = strchr(raw, '.');
  size_t int_len = dot ? (size_t)(dot - raw) : strlen(raw), o = 0;
  for (size_t i = 0; i < int_len && o + 2 < cap; i++) {
    if (i && (int_len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = raw[i];
  }
  snprintf(buf + o, cap - o, "%s", dot ? dot : "");
  return buf;
}

/* A known (positive) figure with `prec` decimals ('f'), significant digits ('g') or as a ratio
** ('x'); "-" when unknown. */
static const char *fmt_num(double v, char style, int prec, char *buf, size_t cap) {
  if (!(v > 0)) return "-";
  if (style == 'g') snprintf(buf, cap, "%.*g", prec, v);
  else if (style == 'x') snprintf(buf, cap, v >= 0.01 ? "%.*fx" : "%.*gx", prec, v);
  else snprintf(buf, cap, "%.*f", prec, v);
  return buf;
}

/* Width of the chip column: the longest name (custom chips can be long). */
static int chip_width(const ot_cost_result *r) {
  int w = 6;
  for (int i = 0; i < r->n_rows; i++)
    if ((int)strlen(r->rows[i].chip) > w) w = (int)strlen(r->rows[i].chip);
  return w;
}

static void print_header(const ot_cost_result *r, FILE *out) {
  const ot_cost_shape *s = &r->opt.shape;
  const ot_cost_workload *w = &r->opt.work;
  if (w->task == OT_COST_TRAIN)
    fprintf(out, "opentrn cost: training %s on %g tokens (%s)\n", s->name, w->tokens, prec_name(r));
  else
    fprintf(out, "opentrn cost: serving %s, prompt %g + output %g tokens, batch %g (%s)\n", s->name, w->prompt, w->output,
            w->batch, prec_name(r));
  fprintf(out, "model %s: %.4g parameters (%.4g in matmuls), %d layers, d_model %d, %d heads (%d kv) x %d, d_ff %d, vocab %d, seq %d\n",
          s->name, ot_cost_shape_total_params(s), ot_cost_shape_matmul_params(s), s->layers, s->d_model, s->heads, s->kv_heads,
          s->head_dim, s->d_ff, s->vocab, s->seq);
  if (w->task == OT_COST_TRAIN)
    fprintf(out, "work: %.4g FLOPs (%s)\n", r->total_flops,
            w->flops > 0 ? "given with --flops" : "6·N + 12·layers·d_attn·seq per token, x tokens");
  else
    fprintf(out, "work: %.4g FLOPs per output token at the mean context (2·N + 4·layers·d_attn·context)\n", r->flops_per_token);
  fprintf(out, "view: %s%s%s\n\n", view_name(r),
          r->opt.view == OT_COST_OWNER ? " (capex amortised + networking share + energy, per chip-hour)" : ", prices: ",
          r->opt.view == OT_COST_OWNER ? "" : r->opt.prices == OT_COST_PRICES_MARKET ? "open-market GPU rental (Trainium: AWS)" : "AWS list");
}

/* Wall-clock days of the run on opt.count chips (ideal scaling), "-" when unknown. */
static const char *fmt_days(const ot_cost_result *r, const ot_cost_row *row, char *buf, size_t cap) {
  if (row->status == OT_COST_ROW_NOT_SIMULATED || !(r->opt.count > 0)) return "-";
  snprintf(buf, cap, "%.3g", row->chip_hours / r->opt.count / 24);
  return buf;
}

static void print_train_rows(const ot_cost_result *r, FILE *out) {
  int cw = chip_width(r);
  if (r->opt.count > 0) fprintf(out, "(days: wall-clock on %g chips of each kind, ideal scaling, goodput included)\n", r->opt.count);
  fprintf(out, "%-*s %12s %14s %9s %9s %16s %12s %8s  %s\n", cw, "chip", "tok/s/chip", "chip-hours", "days", "$/chip-h", "$ per run",
          "energy kWh", "vs ref", "basis");
  for (int i = 0; i < r->n_rows; i++) {
    const ot_cost_row *row = &r->rows[i];
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
    fprintf(out, "%-*s %12s %14s %9s %9s %16s %12s %8s  %s\n", cw, row->chip, fmt_num(row->tokens_per_s, 'f', 0, a, sizeof a),
            fmt_num(row->status != OT_COST_ROW_NOT_SIMULATED ? row->chip_hours : 0, 'g', 4, b, sizeof b), fmt_days(r, row, g, sizeof g),
            fmt_num(row->price_per_hour, 'f', 3, c, sizeof c), fmt_money(row->cost, d, sizeof d),
            fmt_num(row->status != OT_COST_ROW_NOT_SIMULATED ? row->energy_kwh : 0, 'g', 4, e, sizeof e),
            fmt_num(row->ratio, 'x', 2, f, sizeof f), row->basis);
  }
}

static void print_serve_rows(const ot_cost_result *r, FILE *out) {
  int cw = chip_width(r);
  fprintf(out, "%-*s %12s %6s %9s %9s %9s %12s %10s %8s  %s\n", cw, "chip", "out tok/s", "chips", "TTFT s", "TPOT ms", "$/chip-h",
          "$/M out tok", "kWh/M tok", "vs ref", "basis");
  fprintf(out, "%-*s %12s %6s\n", cw, "", "per chip", "/repl.");
  for (int i = 0; i < r->n_rows; i++) {
    const ot_cost_row *row = &r->rows[i];
    int ok = row->status != OT_COST_ROW_NOT_SIMULATED;
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
    fprintf(out, "%-*s %12s %6s %9s %9s %9s %12s %10s %8s  %s\n", cw, row->chip, fmt_num(row->tokens_per_s, 'f', 0, a, sizeof a),
            fmt_num(row->chips_per_replica, 'f', 0, h, sizeof h), fmt_num(ok ? row->ttft_s : 0, 'g', 4, b, sizeof b),
            fmt_num(ok ? row->tpot_s * 1e3 : 0, 'g', 4, c, sizeof c), fmt_num(row->price_per_hour, 'f', 3, d, sizeof d),
            row->cost >= 0 ? (snprintf(e, sizeof e, "%.4f", row->cost), e) : "-",
            fmt_num(ok ? row->energy_kwh : 0, 'g', 4, f, sizeof f), fmt_num(row->ratio, 'x', 2, g, sizeof g), row->basis);
  }
}

/* The reference's efficiency: its own setting, else the global one. */
static double ref_eff(const ot_cost_result *r, const ot_cost_params *p, const char *field) {
  char key[96];
  snprintf(key, sizeof key, "%s.%s", ref_name(r), field);
  double v = ot_cost_param(p, key);
  return v > 0 ? v : ot_cost_param(p, field);
}

/* What each Trainium chip must reach to cost claim.saving less than the reference. */
static void print_breakeven(const ot_cost_result *r, const ot_cost_params *p, int cw, FILE *out) {
  int any = 0;
  for (int i = 0; i < r->n_rows; i++) any |= r->rows[i].trainium && r->rows[i].breakeven_mfu_ratio > 0;
  if (!any) return;
  double mfu = ref_eff(r, p, "mfu"), mbu = ref_eff(r, p, "mbu");
  fprintf(out, "\nbreak-even: to cost %.0f%% less than %s (at its MFU %.2f, MBU %.2f), a chip must reach\n"
               "(from prices and peaks alone; the simulator says whether it does; above 1 = impossible):\n",
          100 * ot_cost_param(p, "claim.saving"), ref_name(r), mfu, mbu);
  for (int i = 0; i < r->n_rows; i++) {
    const ot_cost_row *row = &r->rows[i];
    if (!row->trainium || row->breakeven_mfu_ratio <= 0) continue;
    double c = row->breakeven_mfu_ratio * mfu, m = row->breakeven_mbu_ratio * mbu;
    fprintf(out, "  %-*s MFU >= %.2f%s (training, prefill)   MBU >= %.2f%s (decode)\n", cw, row->chip, c, c > 1 ? " impossible" : "", m,
            m > 1 ? " impossible" : "");
  }
}

static void print_merit(const ot_cost_result *r, const ot_cost_params *p, FILE *out) {
  int cw = chip_width(r);
  fprintf(out, "\nfigures of merit (peak, %s; Trainium peaks from the chip descriptions):\n", prec_name(r));
  fprintf(out, "%-*s %12s %9s %8s %8s %12s %14s\n", cw, "chip", "peak TFLOPS", "HBM TB/s", "HBM GB", "power W", "$/peak-PF-h", "$/(TB/s)-h");
  for (int i = 0; i < r->n_rows; i++) {
    const ot_cost_row *row = &r->rows[i];
    char a[32], b[32];
    fprintf(out, "%-*s %12.1f %9.3f %8.1f %8.0f %12s %14s\n", cw, row->chip, row->peak_tflops, row->hbm_tbps, row->hbm_gb, row->power_w,
            fmt_num(row->usd_per_pflop_hour, 'f', 3, a, sizeof a), fmt_num(row->usd_per_tbps_hour, 'f', 3, b, sizeof b));
  }
  print_breakeven(r, p, cw, out);
  if (r->opt.view == OT_COST_OWNER) {
    fprintf(out, "\nowner view per chip-hour: %-10s %10s %10s %10s\n", "hardware", "network", "energy", "total");
    for (int i = 0; i < r->n_rows; i++) {
      const ot_cost_row *row = &r->rows[i];
      if (row->price_per_hour > 0)
        fprintf(out, "  %-22s %10.4f %10.4f %10.4f %10.4f\n", row->chip, row->owner_hw, row->owner_network, row->owner_energy,
                row->price_per_hour);
    }
  }
}

static void print_notes(const ot_cost_result *r, FILE *out) {
  fprintf(out, "\nnotes:\n");
  fprintf(out, "  - GPU rows are a roofline MODEL (peak x MFU for compute, HBM bandwidth x MBU for memory), not a measurement;\n"
               "    a measured figure replaces it: --set <chip>.measured_tokens_per_s=N (or \"measured_tokens_per_s\" in --assumptions).\n");
  fprintf(out, "  - Trainium rows come only from the simulator: one transformer layer simulated (timing-only) and scaled by the\n"
               "    layer count (plus the LM head at the layer's rate); idle NeuronCores are assumed to run replicas.\n");
  if (r->opt.work.task == OT_COST_SERVE)
    fprintf(out, "  - serving: a replica spans 'chips' chips (weights + KV cache in HBM x serve.hbm_usable), ideal tensor\n"
                 "    parallelism with no communication cost; cost is per million output tokens, prefill included.\n");
  fprintf(out, "  - 'vs ref' = cost / %s cost; energy = power x server multiplier x TDP fraction x PUE x paid chip-hours.\n",
          ref_name(r));
  for (int i = 0; i < r->n_rows; i++) {
    const ot_cost_row *row = &r->rows[i];
    if (*row->note) fprintf(out, "  - %s: %s\n", row->chip, row->note);
    if (row->trainium && r->opt.trn_figures[i] && *r->opt.trn_figures[i]->source)
      fprintf(out, "  - %s: %s\n", row->chip, r->opt.trn_figures[i]->source);
  }
}

/* Keys worth printing for this comparison: globals and the rows' chips, in table order. */
static int key_relevant(const ot_cost_result *r, const ot_cost_params *p, const cost_param_def *d) {
  const char *dot = strchr(d->key, '.');
  int owner = r->opt.view == OT_COST_OWNER, serve = r->opt.work.task == OT_COST_SERVE;
  if (!dot) return strcmp(d->key, "mbu") || serve;
  if (!strncmp(d->key, "serve.", 6)) return serve;
  if (!strncmp(d->key, "owner.", 6))
    return owner || !strcmp(d->key, "owner.pue") || !strcmp(d->key, "owner.tdp_fraction");
  int chip_in_table = 0;
  for (int i = 0; i < r->n_rows; i++) {
    size_t n = strlen(r->rows[i].chip);
    chip_in_table |= n == (size_t)(dot - d->key) && !strncmp(d->key, r->rows[i].chip, n);
  }
  if (!chip_in_table) return 0;
  const char *f = dot + 1;
  int is_set = strcmp(ot_cost_params_origin(p, d->key), "default") != 0;
  if (!strcmp(f, "capex")) return owner;
  if (!strcmp(f, "price_aws")) return !owner && (r->opt.prices == OT_COST_PRICES_AWS || !strncmp(d->key, "trn", 3));
  if (!strcmp(f, "price_market")) return !owner && r->opt.prices == OT_COST_PRICES_MARKET;
  if (!strcmp(f, "price_per_hour") || !strcmp(f, "measured_tokens_per_s") || !strcmp(f, "mfu") || !strcmp(f, "mbu")) return is_set;
  if (!strcmp(f, "peak_fp8_tflops")) return r->opt.work.precision == OT_COST_FP8;
  return 1;
}

static void print_assumptions(const ot_cost_result *r, const ot_cost_params *p, FILE *out) {
  fprintf(out, "\nassumptions (change with --set key=value or --assumptions file.json; all: opentrn cost --defaults):\n");
  for (size_t i = 0; i < cost_param_count; i++) {
    const cost_param_def *d = &cost_param_table[i];
    if (!key_relevant(r, p, d)) continue;
    const char *origin = ot_cost_params_origin(p, d->key);
    char val[48];
    snprintf(val, sizeof val, "%g%s%s", ot_cost_param(p, d->key), *d->unit ? " " : "", d->unit);
    if (strcmp(origin, "default")) fprintf(out, "  %-26s %-14s set by %s (default %g)\n", d->key, val, origin, d->value);
    else fprintf(out, "  %-26s %-14s [%s, %s] %s\n", d->key, val, d->tag, d->date, d->source);
  }
}

void ot_cost_result_print(const ot_cost_result *r, const ot_cost_params *p, FILE *out) {
  print_header(r, out);
  if (r->opt.work.task == OT_COST_TRAIN) print_train_rows(r, out);
  else print_serve_rows(r, out);
  print_merit(r, p, out);
  print_notes(r, out);
  print_assumptions(r, p, out);
}

/* ---- JSON ------------------------------------------------------------------------------- */
static void json_num(cJSON *o, const char *name, double v) {
  if (isfinite(v)) cJSON_AddNumberToObject(o, name, v);
  else cJSON_AddNullToObject(o, name);
}

/* Unknown figures (negative or zero where zero means "unknown") are null, never a made-up 0. */
static void json_known(cJSON *o, const char *name, double v) {
  if (v > 0) cJSON_AddNumberToObject(o, name, v);
  else cJSON_AddNullToObject(o, name);
}

static cJSON *json_row(const ot_cost_result *r, const ot_cost_row *row) {
  static const char *const status[] = {"ok", "not_simulated", "no_price"};
  cJSON *o = cJSON_CreateObject();
  int ok = row->status != OT_COST_ROW_NOT_SIMULATED;
  cJSON_AddStringToObject(o, "chip", row->chip);
  cJSON_AddStringToObject(o, "kind", row->trainium ? "trainium (simulated)" : "gpu (model)");
  cJSON_AddStringToObject(o, "status", status[row->status]);
  cJSON_AddStringToObject(o, "basis", row->basis);
  cJSON_AddStringToObject(o, "note", row->note);
  json_num(o, "peak_tflops", row->peak_tflops);
  json_num(o, "hbm_tbps", row->hbm_tbps);
  json_num(o, "hbm_gb", row->hbm_gb);
  json_known(o, "power_w", row->power_w);
  json_known(o, "price_per_chip_hour", row->price_per_hour);
  json_known(o, "tokens_per_s_per_chip", row->tokens_per_s);
  json_known(o, "chip_hours", ok ? row->chip_hours : 0);
  if (r->opt.work.task == OT_COST_TRAIN) json_known(o, "wall_days", ok && r->opt.count > 0 ? row->chip_hours / r->opt.count / 24 : 0);
  json_known(o, r->opt.work.task == OT_COST_TRAIN ? "usd_per_run" : "usd_per_million_output_tokens", row->cost);
  json_known(o, "cost", row->cost);
  json_known(o, "energy_kwh", ok ? row->energy_kwh : 0);
  json_known(o, "ratio_vs_reference", row->ratio);
  json_known(o, "usd_per_peak_pflop_hour", row->usd_per_pflop_hour);
  json_known(o, "usd_per_tbps_hour", row->usd_per_tbps_hour);
  json_known(o, "breakeven_mfu_ratio", row->breakeven_mfu_ratio);
  json_known(o, "breakeven_mbu_ratio", row->breakeven_mbu_ratio);
  if (r->opt.work.task == OT_COST_SERVE) {
    json_known(o, "ttft_s", ok ? row->ttft_s : 0);
    json_known(o, "tpot_s", ok ? row->tpot_s : 0);
    cJSON_AddNumberToObject(o, "chips_per_replica", row->chips_per_replica);
  }
  if (r->opt.view == OT_COST_OWNER && row->price_per_hour > 0) {
    cJSON *b = cJSON_AddObjectToObject(o, "owner_per_chip_hour");
    json_num(b, "hardware", row->owner_hw);
    json_num(b, "network", row->owner_network);
    json_num(b, "energy", row->owner_energy);
  }
  return o;
}

static cJSON *json_result(const ot_cost_result *r, const ot_cost_params *p) {
  cJSON *o = cJSON_CreateObject();
  cJSON *w = cJSON_AddObjectToObject(o, "workload");
  cJSON_AddStringToObject(w, "task", task_name(r));
  cJSON_AddStringToObject(w, "model", r->opt.shape.name);
  cJSON_AddStringToObject(w, "precision", prec_name(r));
  json_num(w, "parameters", ot_cost_shape_total_params(&r->opt.shape));
  if (r->opt.work.task == OT_COST_TRAIN) {
    json_num(w, "tokens", r->opt.work.tokens);
    json_num(w, "flops", r->total_flops);
  } else {
    json_num(w, "prompt", r->opt.work.prompt);
    json_num(w, "output", r->opt.work.output);
    json_num(w, "batch", r->opt.work.batch);
  }
  json_num(w, "flops_per_token", r->flops_per_token);
  cJSON_AddStringToObject(o, "view", view_name(r));
  cJSON_AddStringToObject(o, "prices", prices_name(r));
  cJSON_AddStringToObject(o, "reference", ref_name(r));
  cJSON_AddStringToObject(o, "unit", r->opt.work.task == OT_COST_TRAIN ? "USD per run" : "USD per million output tokens");
  cJSON_AddStringToObject(o, "gpu_basis", "roofline model, not a measurement (replace with <chip>.measured_tokens_per_s)");
  cJSON *rows = cJSON_AddArrayToObject(o, "rows");
  for (int i = 0; i < r->n_rows; i++) cJSON_AddItemToArray(rows, json_row(r, &r->rows[i]));
  cJSON *a = cJSON_AddArrayToObject(o, "assumptions");
  for (size_t i = 0; i < cost_param_count; i++) {
    const cost_param_def *d = &cost_param_table[i];
    if (!key_relevant(r, p, d)) continue;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "key", d->key);
    json_num(j, "value", ot_cost_param(p, d->key));
    cJSON_AddStringToObject(j, "unit", d->unit);
    cJSON_AddStringToObject(j, "origin", ot_cost_params_origin(p, d->key));
    cJSON_AddStringToObject(j, "tag", d->tag);
    cJSON_AddStringToObject(j, "date", d->date);
    cJSON_AddStringToObject(j, "source", d->source);
    cJSON_AddItemToArray(a, j);
  }
  return o;
}

ot_status ot_cost_result_json(const ot_cost_result *r, const ot_cost_params *p, FILE *out, ot_error *err) {
  cJSON *o = json_result(r, p);
  char *text = o ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  if (!text) return ot_error_set(err, OT_ENOMEM, "out of memory formatting the cost table as JSON");
  fputs(text, out);
  fputc('\n', out);
  cJSON_free(text);
  if (fflush(out) || ferror(out)) return ot_error_set(err, OT_EIO, "writing the cost table failed");
  return OT_OK;
}
