/* Trainium-side throughput: the figures the simulator measured for one transformer layer.
**
** Two ways in, one struct out (ot_cost_trn_figures):
**   - ot_cost_trn_measure: the compiler builds one transformer layer of the model (GPT-2 or
**     Llama form), the simulator runs it timing-only on one NeuronCore: forward + backward for
**     training; for serving a prefill and one decode step against a KV cache (kv_write +
**     attention with more keys than queries) at the workload's batch and mean context.
**   - ot_cost_trn_from_stats: the JSON of `opentrn run --json` for a layer someone ran.
** The cost model never guesses a Trainium number: without figures the row is "not simulated". */
#include <cjson/cJSON.h>
#include <string.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>
#include <opentrn/graph.h>
#include <stdio.h>

#include "cost/cost_int.h"

/* ---- one layer, compiled and simulated ------------------------------------------------------- */
/* Per-layer instruction counts grow with tokens x parameters; a layer is simulated on at most
** this many matmul-FLOPs' worth of tokens (the cost is per token, so fewer tokens give the same
** rate once the tiles are full), keeping compile memory and time small for 70B-class layers. */
#define LAYER_FLOP_BUDGET 4e12

typedef struct {
  ot_graph *g;
  const ot_cost_shape *s;
  ot_dtype wdt;          /* weights: fp32 masters for training, bf16 for serving */
  int64_t T;             /* tokens (batch 1) */
} layer_ctx;

static ot_tid layer_weight(layer_ctx *c, const char *name, int64_t a, int64_t b) {
  int64_t sh[2] = {a, b};
  return ot_graph_weight(c->g, name, c->wdt, b ? 2 : 1, sh);
}

/* [T, h*hd] -> [1, h, T, hd] */
static ot_tid layer_heads(layer_ctx *c, const char *name, ot_tid x, int64_t h) {
  char a[64], b[64];
  snprintf(a, sizeof a, "%s.heads", name);
  snprintf(b, sizeof b, "%s.bhsd", name);
  int64_t s4[4] = {1, c->T, h, c->s->head_dim}, perm[4] = {0, 2, 1, 3};
  return ot_graph_transpose(c->g, b, ot_graph_reshape(c->g, a, x, 4, s4), 4, perm);
}

static ot_tid layer_attention(layer_ctx *c, ot_tid x) {
  const ot_cost_shape *s = c->s;
  ot_graph *g = c->g;
  int64_t dq = (int64_t)s->heads * s->head_dim, dkv = (int64_t)s->kv_heads * s->head_dim;
  ot_tid q, k, v;
  /* Weights are kept [in, out] (K-major, what the GEMM reads without transposes) for every
  ** family: their layout is the compiler's choice, made once when a checkpoint is loaded. */
  if (s->gated_mlp) { /* Llama: separate projections, no bias, rotary positions */
    q = ot_graph_linear(g, "attn.q_proj", x, layer_weight(c, "attn.q_proj.weight", s->d_model, dq), OT_TID_NONE, false);
    k = ot_graph_linear(g, "attn.k_proj", x, layer_weight(c, "attn.k_proj.weight", s->d_model, dkv), OT_TID_NONE, false);
    v = ot_graph_linear(g, "attn.v_proj", x, layer_weight(c, "attn.v_proj.weight", s->d_model, dkv), OT_TID_NONE, false);
    q = ot_graph_rope(g, "attn.q_rope", layer_heads(c, "q", q, s->heads), 500000.0f, 0);
    k = ot_graph_rope(g, "attn.k_rope", layer_heads(c, "k", k, s->kv_heads), 500000.0f, 0);
    v = layer_heads(c, "v", v, s->kv_heads);
  } else { /* GPT-2: one fused projection with bias */
    ot_tid qkv = ot_graph_linear(g, "attn.c_attn", x, layer_weight(c, "attn.c_attn.weight", s->d_model, dq + 2 * dkv),
                                 layer_weight(c, "attn.c_attn.bias", dq + 2 * dkv, 0), false);
    ot_tid p[3];
    int64_t sizes[3] = {dq, dkv, dkv};
    ot_graph_split(g, "attn.split", qkv, 1, 3, sizes, p);
    q = layer_heads(c, "q", p[0], s->heads);
    k = layer_heads(c, "k", p[1], s->kv_heads);
    v = layer_heads(c, "v", p[2], s->kv_heads);
  }
  ot_tid y = ot_graph_attention(g, "attn", q, k, v, true, 0.0f);
  int64_t perm[4] = {0, 2, 1, 3}, s2[2] = {c->T, dq};
  ot_tid merged = ot_graph_reshape(g, "attn.merge", ot_graph_transpose(g, "attn.bshd", y, 4, perm), 2, s2);
  if (s->gated_mlp)
    return ot_graph_linear(g, "attn.o_proj", merged, layer_weight(c, "attn.o_proj.weight", dq, s->d_model), OT_TID_NONE, false);
  return ot_graph_linear(g, "attn.c_proj", merged, layer_weight(c, "attn.c_proj.weight", dq, s->d_model),
                         layer_weight(c, "attn.c_proj.bias", s->d_model, 0), false);
}

static ot_tid layer_mlp(layer_ctx *c, ot_tid x) {
  const ot_cost_shape *s = c->s;
  ot_graph *g = c->g;
  if (s->gated_mlp) {
    ot_tid gate = ot_graph_linear(g, "mlp.gate_proj", x, layer_weight(c, "mlp.gate_proj.weight", s->d_model, s->d_ff), OT_TID_NONE, false);
    ot_tid up = ot_graph_linear(g, "mlp.up_proj", x, layer_weight(c, "mlp.up_proj.weight", s->d_model, s->d_ff), OT_TID_NONE, false);
    return ot_graph_linear(g, "mlp.down_proj", ot_graph_swiglu(g, "mlp.swiglu", gate, up),
                           layer_weight(c, "mlp.down_proj.weight", s->d_ff, s->d_model), OT_TID_NONE, false);
  }
  ot_tid h = ot_graph_gelu(g, "mlp.gelu", ot_graph_linear(g, "mlp.c_fc", x, layer_weight(c, "mlp.c_fc.weight", s->d_model, s->d_ff),
                                                          layer_weight(c, "mlp.c_fc.bias", s->d_ff, 0), false), true);
  return ot_graph_linear(g, "mlp.c_proj", h, layer_weight(c, "mlp.c_proj.weight", s->d_ff, s->d_model),
                         layer_weight(c, "mlp.c_proj.bias", s->d_model, 0), false);
}

static ot_tid layer_norm(layer_ctx *c, const char *name, ot_tid x) {
  char w[64], b[64];
  snprintf(w, sizeof w, "%s.weight", name);
  snprintf(b, sizeof b, "%s.bias", name);
  if (c->s->gated_mlp) return ot_graph_rmsnorm(c->g, name, x, layer_weight(c, w, c->s->d_model, 0), 1e-5f);
  return ot_graph_layernorm(c->g, name, x, layer_weight(c, w, c->s->d_model, 0), layer_weight(c, b, c->s->d_model, 0), 1e-5f);
}

/* One pre-norm transformer layer on T tokens: x [T, d] bf16 -> [T, d]. */
static ot_tid layer_build(layer_ctx *c, ot_tid x) {
  ot_graph *g = c->g;
  ot_tid h = ot_graph_add(g, "res_1", x, layer_attention(c, layer_norm(c, "ln_1", x)));
  return ot_graph_add(g, "res_2", h, layer_mlp(c, layer_norm(c, "ln_2", h)));
}

static ot_status layer_time(const ot_chip *chip, ot_graph *g, double *seconds, ot_error *err) {
  ot_program *p = NULL;
  ot_device *d = NULL;
  ot_status st = ot_compile(g, chip, NULL, &p, err);
  if (!st) st = ot_device_open_chip(chip, &d, err);
  if (!st && (st = ot_device_load(d, p))) ot_error_set(err, st, "%s", ot_device_last_error(d));
  if (!st) {
    ot_run_options o;
    ot_run_options_default(&o);
    o.mode = OT_RUN_TIMING;
    o.insn_budget = 2000000000ull;
    if ((st = ot_device_run(d, &o))) ot_error_set(err, st, "%s", ot_device_last_error(d));
  }
  ot_run_summary sum;
  if (!st && !(st = ot_device_summary(d, &sum))) *seconds = (double)sum.time_ps * 1e-12;
  ot_device_close(d);
  ot_program_free(p);
  return st;
}

/* ---- one decode step: B new tokens against a KV cache of C positions ------------------------- */
/* [B, h*hd] -> [B, h, 1, hd] */
static ot_tid step_heads(layer_ctx *c, const char *name, ot_tid x, int64_t B, int64_t h) {
  char a[64], b[64];
  snprintf(a, sizeof a, "%s.heads", name);
  snprintf(b, sizeof b, "%s.bhsd", name);
  int64_t s4[4] = {B, 1, h, c->s->head_dim}, perm[4] = {0, 2, 1, 3};
  return ot_graph_transpose(c->g, b, ot_graph_reshape(c->g, a, x, 4, s4), 4, perm);
}

static ot_tid step_attention(layer_ctx *c, ot_tid x, int64_t B, int64_t C) {
  const ot_cost_shape *s = c->s;
  ot_graph *g = c->g;
  int64_t dq = (int64_t)s->heads * s->head_dim, dkv = (int64_t)s->kv_heads * s->head_dim;
  ot_tid q, k, v;
  if (s->gated_mlp) {
    q = ot_graph_linear(g, "attn.q_proj", x, layer_weight(c, "attn.q_proj.weight", s->d_model, dq), OT_TID_NONE, false);
    k = ot_graph_linear(g, "attn.k_proj", x, layer_weight(c, "attn.k_proj.weight", s->d_model, dkv), OT_TID_NONE, false);
    v = ot_graph_linear(g, "attn.v_proj", x, layer_weight(c, "attn.v_proj.weight", s->d_model, dkv), OT_TID_NONE, false);
    q = ot_graph_rope(g, "attn.q_rope", step_heads(c, "q", q, B, s->heads), 500000.0f, C - 1);
    k = ot_graph_rope(g, "attn.k_rope", step_heads(c, "k", k, B, s->kv_heads), 500000.0f, C - 1);
    v = step_heads(c, "v", v, B, s->kv_heads);
  } else {
    ot_tid qkv = ot_graph_linear(g, "attn.c_attn", x, layer_weight(c, "attn.c_attn.weight", s->d_model, dq + 2 * dkv),
                                 layer_weight(c, "attn.c_attn.bias", dq + 2 * dkv, 0), false);
    ot_tid p[3];
    int64_t sizes[3] = {dq, dkv, dkv};
    ot_graph_split(g, "attn.split", qkv, 1, 3, sizes, p);
    q = step_heads(c, "q", p[0], B, s->heads);
    k = step_heads(c, "k", p[1], B, s->kv_heads);
    v = step_heads(c, "v", p[2], B, s->kv_heads);
  }
  int64_t cs[4] = {B, s->kv_heads, C, s->head_dim};
  ot_tid kc = ot_graph_kv_write(g, "attn.k_cache", ot_graph_input(g, "k_cache", OT_DT_BF16, 4, cs), k, C - 1);
  ot_tid vc = ot_graph_kv_write(g, "attn.v_cache", ot_graph_input(g, "v_cache", OT_DT_BF16, 4, cs), v, C - 1);
  ot_tid y = ot_graph_attention(g, "attn", q, kc, vc, true, 0.0f);
  int64_t perm[4] = {0, 2, 1, 3}, s2[2] = {B, dq};
  ot_tid merged = ot_graph_reshape(g, "attn.merge", ot_graph_transpose(g, "attn.bshd", y, 4, perm), 2, s2);
  if (s->gated_mlp)
    return ot_graph_linear(g, "attn.o_proj", merged, layer_weight(c, "attn.o_proj.weight", dq, s->d_model), OT_TID_NONE, false);
  return ot_graph_linear(g, "attn.c_proj", merged, layer_weight(c, "attn.c_proj.weight", dq, s->d_model),
                         layer_weight(c, "attn.c_proj.bias", s->d_model, 0), false);
}

/* One layer's decode step for B sequences whose context (the new token included) is C. */
static ot_status layer_decode(const ot_chip *chip, const ot_cost_shape *s, int64_t B, int64_t C, double *seconds, ot_error *err) {
  layer_ctx c = {ot_graph_new(), s, OT_DT_BF16, B};
  int64_t xs[2] = {B, s->d_model};
  ot_tid x = ot_graph_input(c.g, "x", OT_DT_BF16, 2, xs);
  ot_tid h = ot_graph_add(c.g, "res_1", x, step_attention(&c, layer_norm(&c, "ln_1", x), B, C));
  ot_graph_output(c.g, ot_graph_add(c.g, "res_2", h, layer_mlp(&c, layer_norm(&c, "ln_2", h))), "y");
  ot_status st = ot_graph_status(c.g) ? ot_error_set(err, ot_graph_status(c.g), "%s", ot_graph_error(c.g))
                                      : layer_time(chip, c.g, seconds, err);
  ot_graph_free(c.g);
  return st;
}

static int64_t layer_tokens(const ot_cost_shape *s, double want) {
  double per_token = 6 * ot_cost_shape_layer_params(s);
  int64_t t = 128;
  while (t * 2 <= want && (double)(t * 2) * per_token <= LAYER_FLOP_BUDGET) t *= 2;
  return t;
}

/* Simulate one phase: training (forward + backward) or a forward over T tokens. */
static ot_status layer_phase(const ot_chip *chip, const ot_cost_shape *s, bool train, int64_t T, double *seconds, ot_error *err) {
  layer_ctx c = {ot_graph_new(), s, train ? OT_DT_FP32 : OT_DT_BF16, T};
  int64_t xs[2] = {T, s->d_model};
  ot_tid y = layer_build(&c, ot_graph_input(c.g, "x", OT_DT_BF16, 2, xs));
  ot_status st = OT_OK;
  if (train) { /* any scalar of the output drives the same backward work */
    int64_t flat[1] = {T * s->d_model};
    ot_tid loss = ot_graph_reduce_sum(c.g, "loss", ot_graph_reshape(c.g, "y.flat", y, 1, flat), 0, false);
    if (!ot_graph_status(c.g)) st = ot_graph_backward(c.g, loss, err);
  } else {
    ot_graph_output(c.g, y, "y");
  }
  if (ot_graph_status(c.g)) st = ot_error_set(err, ot_graph_status(c.g), "%s", ot_graph_error(c.g));
  if (!st) st = layer_time(chip, c.g, seconds, err);
  ot_graph_free(c.g);
  return st;
}

ot_status ot_cost_trn_measure(const ot_chip *chip, const ot_cost_shape *shape, const ot_cost_workload *w,
                              ot_cost_trn_figures *out, ot_error *err) {
  if (!chip || !shape || !w || !out) return ot_error_set(err, OT_EINVAL, "ot_cost_trn_measure: NULL argument");
  bool train = w->task == OT_COST_TRAIN;
  int64_t T = layer_tokens(shape, train ? shape->seq : (w->prompt > 0 ? w->prompt : shape->seq));
  double sec = 0;
  ot_status st = layer_phase(chip, shape, train, T, &sec, err);
  if (st) return st;
  out->cores_used = 1;
  size_t n = strlen(out->source);
  if (train) {
    out->train_s = sec;
    out->train_tokens = (double)T;
    snprintf(out->source + n, sizeof out->source - n,
             "%scompiled and simulated (timing-only) on one NeuronCore of %s: one %s layer, forward + backward over %lld tokens",
             n ? "; " : "", ot_chip_name(chip), shape->name, (long long)T);
    return OT_OK;
  }
  out->prefill_s = sec;
  out->prefill_tokens = (double)T;
  /* decode at the mean context of the output, at the workload's batch */
  int64_t B = w->batch >= 1 ? (int64_t)w->batch : 1, C = (int64_t)(w->prompt + w->output / 2);
  if (C < 1) C = 1;
  if ((st = layer_decode(chip, shape, B, C, &sec, err))) return st;
  out->decode_s = sec;
  out->decode_batch = (double)B;
  out->decode_context = (double)C;
  snprintf(out->source + n, sizeof out->source - n,
           "%scompiled and simulated (timing-only) on one NeuronCore of %s: one %s layer, prefill over %lld tokens and a "
           "decode step of %lld sequences at context %lld",
           n ? "; " : "", ot_chip_name(chip), shape->name, (long long)T, (long long)B, (long long)C);
  return OT_OK;
}

static double num_field(const cJSON *o, const char *name, int *ok) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!cJSON_IsNumber(v)) {
    *ok = 0;
    return 0;
  }
  return v->valuedouble;
}

/* NeuronCores that executed at least one instruction. */
static int cores_used(const cJSON *root) {
  int n = 0;
  const cJSON *core;
  cJSON_ArrayForEach(core, cJSON_GetObjectItemCaseSensitive(root, "cores")) {
    double insns = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(core, "engines")) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "insns");
      if (cJSON_IsNumber(v)) insns += v->valuedouble;
    }
    n += insns > 0;
  }
  return n;
}

/* FLOPs of one layer per token in the phase the stats are of. */
static double phase_flops(const ot_cost_shape *s, const ot_cost_workload *w, int decode) {
  if (w->task == OT_COST_TRAIN) return cost_layer_train_flops(s);
  if (decode) return cost_layer_fwd_flops(s, w->prompt + w->output / 2);
  return cost_layer_fwd_flops(s, (w->prompt + 1) / 2);
}

static ot_status stats_read(const cJSON *root, const char *origin, double *seconds, double *flops, ot_error *err) {
  int ok = 1;
  double ps = num_field(root, "total_ps", &ok);
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "flops");
  *flops = cJSON_IsObject(f) ? num_field(f, "model", &ok) : (ok = 0, 0);
  if (!ok) return ot_error_set(err, OT_EPARSE, "%s: not `opentrn run --json` statistics: expected numbers total_ps and flops.model", origin);
  if (ps <= 0) return ot_error_set(err, OT_EINVAL, "%s: total_ps is %g: the run took no simulated time", origin, ps);
  *seconds = ps * 1e-12;
  return OT_OK;
}

ot_status ot_cost_trn_from_stats(const char *json_text, const char *origin, const ot_cost_shape *shape,
                                 const ot_cost_workload *w, int decode, double tokens,
                                 ot_cost_trn_figures *out, char *chip_name, size_t chip_cap, ot_error *err) {
  cJSON *root = cJSON_Parse(json_text);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ot_error_set(err, OT_EPARSE, "%s: not valid JSON statistics (write them with `opentrn run ... --json > %s`)", origin, origin);
  }
  double seconds = 0, flops = 0;
  ot_status st = stats_read(root, origin, &seconds, &flops, err);
  const cJSON *chip = cJSON_GetObjectItemCaseSensitive(root, "chip");
  if (!st && !cJSON_IsString(chip)) st = ot_error_set(err, OT_EPARSE, "%s: field 'chip' must name the chip the run used", origin);
  if (!st && tokens <= 0 && flops <= 0)
    st = ot_error_set(err, OT_EINVAL, "%s: the run has no matmul FLOPs, so the tokens it processed cannot be inferred: give them (--stats-tokens N)", origin);
  if (!st) {
    int inferred = tokens <= 0;
    if (inferred) tokens = flops / phase_flops(shape, w, decode);
    int used = cores_used(root);
    out->cores_used = used;
    snprintf(chip_name, chip_cap, "%s", chip->valuestring);
    const char *phase = w->task == OT_COST_TRAIN ? "fwd+bwd" : decode ? "decode step" : "prefill";
    size_t n = strlen(out->source);
    snprintf(out->source + n, sizeof out->source - n, "%ssimulated %s: %s (1 layer, %.3f us on %d core(s) of %s, %.4g tokens%s) x %d layers",
             n ? "; " : "", phase, origin, seconds * 1e6, used, chip->valuestring, tokens, inferred ? " inferred from its FLOPs" : "",
             shape->layers);
    if (w->task == OT_COST_TRAIN) out->train_s = seconds, out->train_tokens = tokens;
    else if (decode) out->decode_s = seconds, out->decode_batch = tokens, out->decode_context = w->prompt + w->output / 2;
    else out->prefill_s = seconds, out->prefill_tokens = tokens;
  }
  cJSON_Delete(root);
  return st;
}
