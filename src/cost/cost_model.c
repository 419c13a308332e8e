/* Transformer shapes and the arithmetic of the cost model: FLOPs and bytes per token, chip-hours,
** rental and owner prices, energy, and the serving roofline.  Pure functions; docs/cost.md
** derives each formula and tests/cost/test_cost_formulas.c checks them against hand values. */
#include <math.h>
#include <string.h>

#include "cost/cost_int.h"

/* Shapes the model stack does not carry (it trains and serves the small ones; these are only
** priced).  Public configs: Llama 3 model cards, Brown et al. 2020.  seq = training context. */
static const ot_cost_shape shape_presets[] = {
  /* name            L   d      h   kv  hd   d_ff    vocab   seq  gated tied pos */
  {"llama-3-8b",     32, 4096,  32, 8,  128, 14336, 128256, 8192, 1, 0, 0},
  {"llama-3-70b",    80, 8192,  64, 8,  128, 28672, 128256, 8192, 1, 0, 0},
  {"gpt3-175b",      96, 12288, 96, 96, 128, 49152, 50257,  2048, 0, 1, 1},
};
#define N_SHAPES (sizeof shape_presets / sizeof shape_presets[0])
#define MAX_NAMES 32

const char *const *ot_cost_shape_names(void) {
  static const char *names[MAX_NAMES + 1];
  size_t n = 0;
  for (const char *m; n < MAX_NAMES - N_SHAPES && (m = ot_model_config_preset_name(n));) names[n++] = m;
  for (size_t i = 0; i < N_SHAPES; i++) names[n++] = shape_presets[i].name;
  names[n] = NULL;
  return names;
}

void ot_cost_shape_from_config(const ot_model_config *c, ot_cost_shape *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", c->name);
  out->layers = (int)c->num_hidden_layers;
  out->d_model = (int)c->hidden_size;
  out->heads = (int)c->n_heads;
  out->kv_heads = (int)c->n_kv_heads;
  out->head_dim = (int)c->head_dim;
  out->d_ff = (int)c->intermediate_size;
  out->vocab = (int)c->vocab_size;
  /* Training context: a rope-scaled model (Llama 3.1/3.2) pre-trains at the original length. */
  uint32_t seq = c->max_position_embeddings;
  if (c->rope_scaling == OT_ROPE_SCALING_LLAMA3 && c->rope_original_max_position_embeddings) seq = c->rope_original_max_position_embeddings;
  out->seq = (int)seq;
  out->gated_mlp = c->family == OT_MODEL_LLAMA;
  out->tied_embeddings = c->tie_word_embeddings;
  out->learned_pos = c->family == OT_MODEL_GPT2;
}

static ot_status unknown_shape(const char *name, ot_error *err) {
  char list[512] = "";
  size_t n = 0;
  for (const char *const *p = ot_cost_shape_names(); *p; p++)
    n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s", n ? ", " : "", *p);
  return ot_error_set(err, OT_ENOTFOUND, "unknown model '%s': expected one of %s, or a Hugging Face config.json", name, list);
}

ot_status ot_cost_shape_preset(const char *name, ot_cost_shape *out, ot_error *err) {
  for (size_t i = 0; i < N_SHAPES; i++)
    if (!strcmp(shape_presets[i].name, name)) {
      *out = shape_presets[i];
      return OT_OK;
    }
  /* The model stack's presets and config files: one source for the models it runs. */
  ot_model_config c;
  ot_error mine;
  ot_error_clear(&mine);
  int is_file = strchr(name, '/') || strstr(name, ".json");
  if (ot_model_config_load(name, &c, is_file ? err : &mine)) return is_file ? err->code : unknown_shape(name, err);
  ot_cost_shape_from_config(&c, out);
  return OT_OK;
}

static double d_attn(const ot_cost_shape *s) { return (double)s->heads * s->head_dim; }

double ot_cost_shape_layer_params(const ot_cost_shape *s) {
  double d = s->d_model, kv = (double)s->kv_heads * s->head_dim;
  double attn = d * d_attn(s) + 2 * d * kv + d_attn(s) * d;  /* Wq, Wk, Wv, Wo */
  double mlp = (s->gated_mlp ? 3.0 : 2.0) * d * s->d_ff;
  return attn + mlp;
}

double ot_cost_shape_matmul_params(const ot_cost_shape *s) {
  return s->layers * ot_cost_shape_layer_params(s) + (double)s->d_model * s->vocab;
}

double ot_cost_shape_total_params(const ot_cost_shape *s) {
  double d = s->d_model;
  double embed = s->tied_embeddings ? 0 : d * s->vocab;  /* the head is in the matmul count */
  double pos = s->learned_pos ? (double)s->seq * d : 0;
  double norms = (2.0 * s->layers + 1) * d;
  return ot_cost_shape_matmul_params(s) + embed + pos + norms;
}

double cost_layer_fwd_flops(const ot_cost_shape *s, double ctx) {
  /* 2 FLOPs per weight, plus QK^T and AV: 2·d_attn·ctx each. */
  return 2 * ot_cost_shape_layer_params(s) + 4 * d_attn(s) * ctx;
}

double cost_layer_train_flops(const ot_cost_shape *s) { return 3 * cost_layer_fwd_flops(s, s->seq); }

double cost_head_fwd_flops(const ot_cost_shape *s) { return 2.0 * s->d_model * s->vocab; }

double cost_train_flops_per_token(const ot_cost_shape *s) {
  return s->layers * cost_layer_train_flops(s) + 3 * cost_head_fwd_flops(s);
}

double cost_kv_bytes(const ot_cost_shape *s, double ctx, double bytes_per_elem) {
  return 2.0 * s->layers * s->kv_heads * s->head_dim * ctx * bytes_per_elem;
}

/* ---- money ------------------------------------------------------------------------------ */
double cost_chip_hours(double flops, double peak_tflops, double eff) {
  return flops / (peak_tflops * 1e12 * eff * 3600.0);
}

double cost_rental(double chip_hours, double usd_per_hour, double goodput) {
  return chip_hours * usd_per_hour / goodput;
}

#define HOURS_PER_YEAR 8760.0

void cost_owner_per_hour(const cost_owner_inputs *in, cost_owner_hour *out) {
  double per_year = in->dep_rate_per_year > 0 ? in->dep_rate_per_year : 1.0 / in->lifetime_years;
  out->hw = in->capex * per_year / HOURS_PER_YEAR;
  /* Networking is a fraction f of the cluster's cost, so it adds f/(1-f) of the rest. */
  out->network = out->hw * in->network_fraction / (1.0 - in->network_fraction);
  out->energy = in->power_w / 1000.0 * in->server_mult * in->tdp_fraction * in->pue * in->usd_per_kwh;
  out->total = out->hw + out->network + out->energy;
}

double cost_energy_kwh(double power_w, double server_mult, double tdp_fraction, double pue, double hours) {
  return power_w / 1000.0 * server_mult * tdp_fraction * pue * hours;
}

/* ---- serving ----------------------------------------------------------------------------- */
static double roof_time(double flops, double bytes, const cost_roofline *r) {
  double tc = flops / (r->peak_flops * r->eta_c), tm = bytes / (r->hbm_bps * r->eta_m);
  return tc > tm ? tc : tm;
}

void cost_serve_roofline(const ot_cost_shape *s, const ot_cost_workload *w, const cost_roofline *r,
                         cost_serve_time *out) {
  double n = ot_cost_shape_matmul_params(s), B = w->batch, P = w->prompt;
  double att = 4 * d_attn(s) * s->layers;  /* attention FLOPs per token per context token */
  memset(out, 0, sizeof *out);
  out->weight_bytes = n * r->bytes_per_param;
  out->kv_bytes_max = B * cost_kv_bytes(s, P + w->output, r->bytes_per_kv);
  /* Prefill: token t of the prompt attends to t tokens (causal). */
  double pf = B * (P * 2 * n + att * P * (P + 1) / 2);
  double pb = out->weight_bytes + B * cost_kv_bytes(s, P, r->bytes_per_kv);
  out->prefill_s = roof_time(pf, pb, r);
  /* Decode: every step reads all weights and the whole KV cache so far. */
  for (double t = 1; t <= w->output; t++) {
    double ctx = P + t;
    out->decode_s += roof_time(B * (2 * n + att * ctx), out->weight_bytes + B * cost_kv_bytes(s, ctx, r->bytes_per_kv), r);
  }
  out->ttft_s = out->prefill_s;
  out->tpot_s = w->output > 0 ? out->decode_s / w->output : 0;
}
