/* The comparison: one row per chip with throughput, chip-hours, dollars and energy for the
** workload, in the rental or owner view.  GPU throughput is the roofline model (or a measured
** figure the user gives); Trainium throughput is what the simulator measured, or nothing. */
#include <math.h>
#include <string.h>

#include "cost/cost_int.h"

typedef struct {
  const ot_cost_params *p;
  const ot_cost_options *opt;
  ot_cost_result *r;
} compare_ctx;

static double param(const ot_cost_params *p, const char *chip, const char *field) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", chip, field);
  double v = ot_cost_param(p, key);
  return isnan(v) ? 0 : v;
}

static int chip_known(const ot_cost_params *p, const char *chip) {
  char key[128];
  snprintf(key, sizeof key, "%s.power_w", chip);
  return !isnan(ot_cost_param(p, key));
}

/* ---- prices ----------------------------------------------------------------------------- */
/* $/chip-h in the chosen view, or 0 with row->note saying what is missing. */
static double row_price(const compare_ctx *c, const char *key_chip, ot_cost_row *row) {
  const ot_cost_params *p = c->p;
  if (c->opt->view == OT_COST_OWNER) {
    cost_owner_inputs in = {param(p, key_chip, "capex"), ot_cost_param(p, "owner.lifetime_years"),
                            ot_cost_param(p, "owner.dep_rate_per_year"), ot_cost_param(p, "owner.network_fraction"),
                            row->power_w, param(p, key_chip, "server_mult"), ot_cost_param(p, "owner.tdp_fraction"),
                            ot_cost_param(p, "owner.pue"), ot_cost_param(p, "owner.usd_per_kwh")};
    if (in.capex <= 0) {
      snprintf(row->note, sizeof row->note, "no public capex: --set %s.capex=USD (incl. server)", key_chip);
      return 0;
    }
    cost_owner_hour h;
    cost_owner_per_hour(&in, &h);
    row->owner_hw = h.hw, row->owner_network = h.network, row->owner_energy = h.energy;
    return h.total;
  }
  double own = param(p, key_chip, "price_per_hour");
  if (own > 0) return own;
  int market = c->opt->prices == OT_COST_PRICES_MARKET;
  double v = param(p, key_chip, market ? "price_market" : "price_aws");
  if (market && v <= 0 && row->trainium) v = param(p, key_chip, "price_aws"); /* only AWS rents Trainium */
  if (v <= 0)
    snprintf(row->note, sizeof row->note, "no public %s price: --set %s.price_per_hour=USD%s", market ? "market" : "AWS", key_chip,
             market ? "" : " or --prices market");
  return v;
}

/* ---- money and energy from throughput ---------------------------------------------------- */
/* Fill chip-hours, cost and energy from tokens/s per chip (and for training the run's FLOPs). */
static void row_money(const compare_ctx *c, const char *key_chip, ot_cost_row *row) {
  const ot_cost_workload *w = &c->opt->work;
  double goodput = ot_cost_param(c->p, "goodput");
  if (w->task == OT_COST_TRAIN) {
    /* Work in FLOPs so a --flops override applies to every chip alike. */
    double rate = row->tokens_per_s * c->r->flops_per_token;
    row->chip_hours = c->r->total_flops / (rate * 3600.0) / goodput;
  } else {
    row->chip_hours = 1e6 / (row->tokens_per_s * 3600.0) / goodput;
  }
  row->energy_kwh = cost_energy_kwh(row->power_w, param(c->p, key_chip, "server_mult"), ot_cost_param(c->p, "owner.tdp_fraction"),
                                    ot_cost_param(c->p, "owner.pue"), row->chip_hours);
  row->cost = row->price_per_hour > 0 ? row->chip_hours * row->price_per_hour : -1;
  if (row->price_per_hour <= 0 && row->status == OT_COST_ROW_OK) row->status = OT_COST_ROW_NO_PRICE;
}

static int chips_per_replica(const ot_cost_shape *s, const ot_cost_workload *w, double hbm_gb, double usable) {
  double bpp = w->precision == OT_COST_FP8 ? 1 : 2;
  double need = ot_cost_shape_matmul_params(s) * bpp + w->batch * cost_kv_bytes(s, w->prompt + w->output, bpp);
  double k = ceil(need / (hbm_gb * 1e9 * usable));
  return k < 1 ? 1 : (int)k;
}

/* ---- GPU rows: the roofline model --------------------------------------------------------- */
static double eff(const ot_cost_params *p, const char *chip, const char *field) {
  double v = param(p, chip, field);
  return v > 0 ? v : ot_cost_param(p, field);
}

static void gpu_throughput(const compare_ctx *c, const char *g, ot_cost_row *row) {
  const ot_cost_options *o = c->opt;
  double mfu = eff(c->p, g, "mfu"), mbu = eff(c->p, g, "mbu");
  if (o->work.task == OT_COST_TRAIN) {
    row->tokens_per_s = row->peak_tflops * 1e12 * mfu / c->r->flops_per_token;
    snprintf(row->basis, sizeof row->basis, "model: roofline, MFU %.2f", mfu);
    return;
  }
  int k = row->chips_per_replica;
  double bpp = o->work.precision == OT_COST_FP8 ? 1 : 2;
  cost_roofline roof = {k * row->peak_tflops * 1e12, k * row->hbm_tbps * 1e12, mfu, mbu, bpp, bpp};
  cost_serve_time t;
  cost_serve_roofline(&o->shape, &o->work, &roof, &t);
  row->ttft_s = t.ttft_s, row->tpot_s = t.tpot_s;
  row->tokens_per_s = o->work.batch * o->work.output / (t.prefill_s + t.decode_s) / k;
  snprintf(row->basis, sizeof row->basis, "model: roofline, MFU %.2f, MBU %.2f", mfu, mbu);
}

static void gpu_row(const compare_ctx *c, const char *g, ot_cost_row *row) {
  const ot_cost_params *p = c->p;
  const ot_cost_workload *w = &c->opt->work;
  snprintf(row->chip, sizeof row->chip, "%s", g);
  double bf16 = param(p, g, "peak_bf16_tflops"), fp8 = param(p, g, "peak_fp8_tflops");
  row->peak_tflops = w->precision == OT_COST_FP8 && fp8 > 0 ? fp8 : bf16;
  row->hbm_tbps = param(p, g, "hbm_tbps");
  row->hbm_gb = param(p, g, "hbm_gb");
  row->power_w = param(p, g, "power_w");
  row->price_per_hour = row_price(c, g, row);
  if (w->precision == OT_COST_FP8 && fp8 <= 0) snprintf(row->note, sizeof row->note, "no fp8: runs at the bf16 rate");
  row->chips_per_replica = chips_per_replica(&c->opt->shape, w, row->hbm_gb, ot_cost_param(p, "serve.hbm_usable"));
  double measured = param(p, g, "measured_tokens_per_s");
  if (measured > 0) {
    row->tokens_per_s = measured;
    snprintf(row->basis, sizeof row->basis, "measured (%s.measured_tokens_per_s)", g);
  } else {
    gpu_throughput(c, g, row);
  }
  row_money(c, g, row);
}

/* ---- Trainium rows: the simulator --------------------------------------------------------- */
/* Layers + LM head, at the layer's measured rate: the head's share of the work in FLOPs. */
static double head_factor_train(const ot_cost_shape *s) {
  return 1 + 3 * cost_head_fwd_flops(s) / (s->layers * cost_layer_train_flops(s));
}

static double head_factor_params(const ot_cost_shape *s) {
  return 1 + (double)s->d_model * s->vocab / (s->layers * ot_cost_shape_layer_params(s));
}

/* Tokens/s per chip from simulated figures; 0 with a note when the phase is missing. */
static double trn_rate(const compare_ctx *c, const ot_chip *chip, const ot_cost_trn_figures *f, ot_cost_row *row) {
  const ot_cost_shape *s = &c->opt->shape;
  const ot_cost_workload *w = &c->opt->work;
  double rep = f->cores_used > 0 ? (double)ot_chip_cores(chip) / f->cores_used : 1;
  if (w->task == OT_COST_TRAIN) {
    if (f->train_s <= 0 || f->train_tokens <= 0) {
      snprintf(row->note, sizeof row->note, "not simulated: no training step measured (pass --stats of a fwd+bwd layer)");
      return 0;
    }
    double s_per_token = s->layers * f->train_s / f->train_tokens * head_factor_train(s);
    return rep / s_per_token;
  }
  if (f->prefill_s <= 0 || f->decode_s <= 0 || f->prefill_tokens <= 0 || f->decode_batch <= 0) {
    snprintf(row->note, sizeof row->note, "not simulated: serving needs a prefill layer (--stats) and a decode-step layer (--decode-stats)");
    return 0;
  }
  double hf = head_factor_params(s);
  double prefill = s->layers * f->prefill_s * (w->batch * w->prompt / f->prefill_tokens) * hf;
  double step = s->layers * f->decode_s * (w->batch / f->decode_batch) * hf;
  row->ttft_s = prefill;
  row->tpot_s = step;
  if (f->decode_batch != w->batch)
    snprintf(row->note, sizeof row->note, "decode simulated at batch %g, scaled linearly to %g", f->decode_batch, w->batch);
  return rep * w->batch * w->output / (prefill + w->output * step);
}

static void trn_row(const compare_ctx *c, int i, ot_cost_row *row) {
  const ot_chip *chip = c->opt->trn[i];
  const ot_cost_workload *w = &c->opt->work;
  const ot_cost_params *p = c->p;
  const char *name = ot_chip_name(chip);
  const char *key = chip_known(p, name) ? name : chip_known(p, ot_chip_base(chip)) ? ot_chip_base(chip) : NULL;
  snprintf(row->chip, sizeof row->chip, "%s", name);
  row->trainium = 1;
  /* fp8 work takes the faster of the chip's fp8 and MXFP8 matmul (Trn3 doubles only MXFP8). */
  double core_tf = ot_chip_peak_tflops_core(chip, "bf16");
  if (w->precision == OT_COST_FP8) {
    double fp8 = ot_chip_peak_tflops_core(chip, "fp8"), mx = ot_chip_peak_tflops_core(chip, "mxfp8");
    core_tf = fp8 > mx ? fp8 : mx > 0 ? mx : core_tf;
  }
  row->peak_tflops = core_tf * ot_chip_cores(chip);
  double gbps = 0, bytes = 0;
  ot_error ignore; /* both fields exist in every chip description */
  ot_error_clear(&ignore);
  ot_chip_get(chip, "hbm.bandwidth_gbps", &gbps, &ignore);
  ot_chip_get(chip, "hbm.bytes", &bytes, &ignore);
  row->hbm_tbps = gbps / 1000, row->hbm_gb = bytes / 1e9;
  row->power_w = key ? param(p, key, "power_w") : 0;
  row->price_per_hour = key ? row_price(c, key, row) : 0;
  if (!key) snprintf(row->note, sizeof row->note, "no price or power for chip '%s' (not a preset nor based on one)", name);
  else if (strcmp(key, name) && !*row->note) snprintf(row->note, sizeof row->note, "price and power of its base chip %s", key);
  row->chips_per_replica = chips_per_replica(&c->opt->shape, w, row->hbm_gb, ot_cost_param(p, "serve.hbm_usable"));
  double measured = key ? param(p, key, "measured_tokens_per_s") : 0;
  ot_cost_trn_figures fig;
  const ot_cost_trn_figures *f = c->opt->trn_figures[i];
  if (measured > 0) {
    row->tokens_per_s = measured;
    snprintf(row->basis, sizeof row->basis, "measured (%s.measured_tokens_per_s)", key);
  } else {
    if (!f && c->opt->measure) {
      memset(&fig, 0, sizeof fig);
      ot_error e2;
      ot_error_clear(&e2);
      if (!c->opt->measure(chip, &c->opt->shape, w, &fig, &e2)) f = &fig;
    }
    row->tokens_per_s = f ? trn_rate(c, chip, f, row) : 0;
    if (row->tokens_per_s > 0) snprintf(row->basis, sizeof row->basis, "simulated (1 layer x %d)", c->opt->shape.layers);
  }
  if (row->tokens_per_s <= 0) {
    row->status = OT_COST_ROW_NOT_SIMULATED;
    snprintf(row->basis, sizeof row->basis, "not simulated: needs the compiler (pass --stats)");
    row->cost = -1;
    return;
  }
  row_money(c, key ? key : name, row);
}

/* ---- the whole table ---------------------------------------------------------------------- */
static void workload_flops(const ot_cost_options *o, ot_cost_result *r) {
  const ot_cost_shape *s = &o->shape;
  if (o->work.task == OT_COST_TRAIN) {
    r->flops_per_token = cost_train_flops_per_token(s);
    r->total_flops = o->work.flops > 0 ? o->work.flops : r->flops_per_token * o->work.tokens;
    /* Keep FLOPs per token consistent with an override, so tokens/s stays a true rate. */
    if (o->work.flops > 0) r->flops_per_token = o->work.flops / o->work.tokens;
  } else {
    r->flops_per_token = s->layers * cost_layer_fwd_flops(s, o->work.prompt + o->work.output / 2) + cost_head_fwd_flops(s);
    r->total_flops = 0;
  }
}

static ot_status check_options(const ot_cost_params *p, const ot_cost_options *o, ot_error *err) {
  const ot_cost_workload *w = &o->work;
  if (o->shape.layers <= 0 || o->shape.d_model <= 0 || o->shape.heads <= 0 || o->shape.head_dim <= 0 || o->shape.kv_heads <= 0)
    return ot_error_set(err, OT_EINVAL, "model '%s': layers, d_model, heads, kv_heads and head_dim must be positive", o->shape.name);
  if (w->task == OT_COST_TRAIN && !(w->tokens > 0))
    return ot_error_set(err, OT_EINVAL, "train: --tokens must be positive (got %g)", w->tokens);
  if (w->task == OT_COST_SERVE && !(w->prompt >= 0 && w->output >= 1 && w->batch >= 1 && w->output <= 1e7))
    return ot_error_set(err, OT_EINVAL, "serve: need --prompt >= 0, --output 1..1e7 and --batch >= 1 (got %g, %g, %g)", w->prompt,
                        w->output, w->batch);
  if (o->n_gpus > OT_COST_MAX_CHIPS || o->n_trn > OT_COST_MAX_CHIPS)
    return ot_error_set(err, OT_EINVAL, "at most %d GPUs and %d Trainium chips", OT_COST_MAX_CHIPS, OT_COST_MAX_CHIPS);
  for (int i = 0; i < o->n_gpus; i++)
    if (!chip_known(p, o->gpus[i]) || param(p, o->gpus[i], "peak_bf16_tflops") <= 0)
      return ot_error_set(err, OT_EINVAL, "unknown GPU '%s': expected a100, h100, h200 or b200", o->gpus[i]);
  return OT_OK;
}

/* What a chip must achieve, relative to the reference, to be claim.saving cheaper: its cost per
** peak unit over (1 - saving) x the reference's.  Needs no throughput, so it is known before
** the simulator has run. */
static void breakeven(const ot_cost_params *p, ot_cost_result *r, const char *ref) {
  double keep = 1 - ot_cost_param(p, "claim.saving");
  const ot_cost_row *rr = NULL;
  for (int i = 0; i < r->n_rows; i++)
    if (!strcmp(r->rows[i].chip, ref) && r->rows[i].price_per_hour > 0) rr = &r->rows[i];
  for (int i = 0; rr && i < r->n_rows; i++) {
    ot_cost_row *row = &r->rows[i];
    if (row == rr || row->price_per_hour <= 0) continue;
    row->breakeven_mfu_ratio = row->usd_per_pflop_hour / (keep * rr->usd_per_pflop_hour);
    row->breakeven_mbu_ratio = row->usd_per_tbps_hour / (keep * rr->usd_per_tbps_hour);
  }
}

ot_status ot_cost_compare(const ot_cost_params *p, const ot_cost_options *opt, ot_cost_result *out, ot_error *err) {
  memset(out, 0, sizeof *out);
  ot_status st = check_options(p, opt, err);
  if (st) return st;
  out->opt = *opt;
  workload_flops(opt, out);
  compare_ctx c = {p, &out->opt, out};
  for (int i = 0; i < opt->n_trn; i++) trn_row(&c, i, &out->rows[out->n_rows++]);
  for (int i = 0; i < opt->n_gpus; i++) gpu_row(&c, opt->gpus[i], &out->rows[out->n_rows++]);
  const char *ref = opt->reference ? opt->reference : "h100";
  const ot_cost_row *rr = NULL;
  for (int i = 0; i < out->n_rows; i++)
    if (!strcmp(out->rows[i].chip, ref) && out->rows[i].cost > 0) rr = &out->rows[i];
  for (int i = 0; i < out->n_rows; i++) {
    ot_cost_row *row = &out->rows[i];
    if (rr && row->cost > 0) row->ratio = row->cost / rr->cost;
    if (row->price_per_hour > 0 && row->peak_tflops > 0) row->usd_per_pflop_hour = row->price_per_hour / (row->peak_tflops / 1000);
    if (row->price_per_hour > 0 && row->hbm_tbps > 0) row->usd_per_tbps_hour = row->price_per_hour / row->hbm_tbps;
  }
  breakeven(p, out, ref);
  return OT_OK;
}
