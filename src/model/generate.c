/* Generation: prefill + decode with the KV cache in device HBM (generate.h, docs/generation.md). */
#include "model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/compile.h>

#include "arch/chip_int.h"
#include "model/generate_int.h"

struct generator {
  ot_model_config c;
  gen_opts o;
  uint32_t B, ctx;
  ot_device *d;
  ot_model_params params;          /* until the first program is loaded */
  bool weights_on_device;
  ot_model_tensor_spec *specs;
  size_t n_specs;
  ot_tid *w;
  gen_derived *dv;                 /* weights in the step programs' form (generate_int.h) */
  size_t n_dv;
  ot_tid *dw;
  bool caches_ready;
  ot_program *prefill;             /* the last prefill program and its length */
  uint32_t prefill_len;
  ot_program **decode;             /* [ctx]: the decode program of position pos */
  gen_cand *cand;                  /* [vocab] */
  float *logits;                   /* [B, vocab] */
  uint64_t rng;
};

void gen_opts_default(gen_opts *o) {
  memset(o, 0, sizeof *o);
  o->chip = "trn2";
  o->mode = OT_RUN_FULL;
  o->top_p = 1.0f;
  o->seed = 1;
  o->stop_at_eos = true;
}

static double gen_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- memory ------------------------------------------------------------------------------- */
uint64_t gen_device_bytes(const ot_model_config *c, uint32_t batch, uint32_t ctx, bool fp32) {
  uint64_t weights = ot_model_config_param_count(c) * 4u;
  uint64_t cache = 2ull * c->num_hidden_layers * batch * c->n_kv_heads * (uint64_t)ctx * c->head_dim * (fp32 ? 4u : 2u);
  return weights + cache;
}

/* The largest step (the prefill of ctx tokens) also needs its activations: about a dozen
** [B, S, max(D, I)] fp32 tensors per layer and the logits. */
static uint64_t gen_activation_bytes(const ot_model_config *c, uint32_t batch, uint32_t ctx) {
  uint64_t wide = c->intermediate_size > c->hidden_size ? c->intermediate_size : c->hidden_size;
  return (uint64_t)batch * ctx * 4u * (12u * wide * c->num_hidden_layers + c->vocab_size);
}

static ot_status gen_check_fits(const generator *g, const ot_chip *chip, ot_error *err) {
  uint64_t need = gen_device_bytes(&g->c, g->B, g->ctx, g->o.fp32), act = gen_activation_bytes(&g->c, g->B, g->ctx);
  uint64_t weights = ot_model_config_param_count(&g->c) * 4u, have = chip->hbm.bytes;
  if (need + act <= have) return OT_OK;
  return ot_error_set(err, OT_ENOMEM,
                      "model %s does not fit chip %s: it needs about %.2f GiB of device HBM (weights %.2f GiB fp32, "
                      "KV caches %.2f GiB for %u rows of %u tokens, activations %.2f GiB); the chip has %.2f GiB",
                      g->c.name, chip->name, (double)(need + act) / 1073741824.0, (double)weights / 1073741824.0,
                      (double)(need - weights) / 1073741824.0, g->B, g->ctx, (double)act / 1073741824.0,
                      (double)have / 1073741824.0);
}

/* ---- open, free ------------------------------------------------------------------------------ */
static ot_status gen_check_config(const ot_model_config *c, uint32_t batch, uint32_t ctx, ot_error *err) {
  if (!batch || !ctx) return ot_error_set(err, OT_EINVAL, "generate: batch %u and context %u must be at least 1", batch, ctx);
  if (ctx > c->max_position_embeddings)
    return ot_error_set(err, OT_EINVAL, "generate: %u tokens (prompt + new) are longer than the context of %s "
                        "(max_position_embeddings %u)", ctx, c->name, c->max_position_embeddings);
  return OT_OK;
}

static ot_status gen_load_weights(generator *g, const char *weights, uint64_t seed, ot_error *err) {
  if (weights) return ot_model_params_load(&g->c, weights, &g->params, err);
  ot_status s = ot_model_params_alloc(&g->c, &g->params, err);
  if (!s) ot_model_params_init(&g->params, seed);
  return s;
}

ot_status gen_open(const ot_model_config *c, const char *weights, uint64_t seed, uint32_t batch, uint32_t ctx,
                   const gen_opts *o, generator **out, ot_error *err) {
  *out = NULL;
  ot_status s = ot_model_config_validate(c, c->name, err);
  if (s || (s = gen_check_config(c, batch, ctx, err))) return s;
  generator *g = calloc(1, sizeof *g);
  if (!g) return ot_error_set(err, OT_ENOMEM, "out of memory");
  g->c = *c;
  if (o) g->o = *o;
  else gen_opts_default(&g->o);
  g->B = batch;
  g->ctx = ctx;
  g->rng = g->o.seed;
  ot_chip *chip = NULL;
  s = ot_chip_preset(g->o.chip, &chip, NULL) == OT_OK ? OT_OK : ot_chip_load_file(g->o.chip, &chip, err);
  if (!s) s = gen_check_fits(g, chip, err);
  if (!s) s = ot_device_open_chip(chip, &g->d, err);
  ot_chip_free(chip);
  if (!s) s = ot_model_tensor_specs(c, &g->specs, &g->n_specs, err);
  g->w = s ? NULL : calloc(g->n_specs ? g->n_specs : 1, sizeof *g->w);
  g->dv = s ? NULL : calloc(g->n_specs + 1, sizeof *g->dv);
  g->dw = s ? NULL : calloc(g->n_specs + 1, sizeof *g->dw);
  if (g->dv) g->n_dv = gen_derived_list(c, g->specs, g->n_specs, g->o.fp32, g->dv);
  g->decode = s ? NULL : calloc(ctx, sizeof *g->decode);
  g->cand = s ? NULL : malloc((size_t)c->vocab_size * sizeof *g->cand);
  g->logits = s ? NULL : malloc((size_t)c->vocab_size * batch * sizeof *g->logits);
  if (!s && (!g->w || !g->dv || !g->dw || !g->decode || !g->cand || !g->logits)) s = ot_error_set(err, OT_ENOMEM, "out of memory");
  if (!s) s = gen_load_weights(g, weights, seed, err);
  if (s) { gen_free(g); return s; }
  *out = g;
  return OT_OK;
}

void gen_free(generator *g) {
  if (!g) return;
  ot_device_close(g->d);
  ot_model_params_free(&g->params);
  free(g->specs);
  free(g->w);
  free(g->dv);
  free(g->dw);
  ot_program_free(g->prefill);
  for (uint32_t i = 0; g->decode && i < g->ctx; i++) ot_program_free(g->decode[i]);
  free(g->decode);
  free(g->cand);
  free(g->logits);
  free(g);
}

/* ---- programs ------------------------------------------------------------------------------ */
static ot_status gen_compile(generator *g, uint32_t S, uint32_t pos, ot_program **out, ot_error *err) {
  gg_ctx x;
  memset(&x, 0, sizeof x);
  x.c = &g->c;
  x.specs = g->specs;
  x.n_specs = g->n_specs;
  x.w = g->w;
  x.dv = g->dv;
  x.n_dv = g->n_dv;
  x.dw = g->dw;
  x.B = g->B;
  x.S = S;
  x.pos = pos;
  x.ctx = g->ctx;
  x.cache_dt = g->o.fp32 ? OT_DT_FP32 : OT_DT_BF16;
  ot_graph *graph = NULL;
  ot_status s = gen_graph_build(&x, &graph, err);
  if (s) return s;
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.matmul_dtype = g->o.fp32 ? OT_DT_FP32 : OT_DT_BF16;
  s = ot_compile(graph, ot_device_chip(g->d), &co, out, err);
  ot_graph_free(graph);
  return s;
}

/* The program of a step (compiled once, then reused). */
static ot_status gen_program(generator *g, uint32_t S, uint32_t pos, ot_program **out, ot_error *err) {
  ot_program **slot = pos == 0 ? &g->prefill : &g->decode[pos];
  if (pos == 0 && g->prefill && g->prefill_len != S) {
    ot_program_free(g->prefill);
    g->prefill = NULL;
  }
  if (!*slot) {
    ot_status s = gen_compile(g, S, pos, slot, err);
    if (s) return s;
    if (pos == 0) g->prefill_len = S;
  }
  *out = *slot;
  return OT_OK;
}

static ot_status gen_dev_fail(generator *g, const char *what, ot_error *err) {
  return ot_error_set(err, ot_device_last_status(g->d), "generate: %s: %s", what, ot_device_last_error(g->d));
}

/* Once: the preparation program takes the Hugging Face weights (then dropped on the host) and
** makes the derived ones (generate_int.h); the first step program keeps them by name. */
static ot_status gen_prepare(generator *g, gen_stats *st, ot_error *err) {
  ot_graph *graph = NULL;
  ot_program *p = NULL;
  double t0 = gen_now();
  ot_status s = gen_prep_build(&g->c, g->specs, g->n_specs, g->dv, g->n_dv, &graph, err);
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.matmul_dtype = g->o.fp32 ? OT_DT_FP32 : OT_DT_BF16;
  if (!s) s = ot_compile(graph, ot_device_chip(g->d), &co, &p, err);
  ot_graph_free(graph);
  st->compile_s += gen_now() - t0;
  if (!s && ot_device_load(g->d, p)) s = gen_dev_fail(g, "loading the weight preparation program", err);
  ot_program_free(p);
  for (size_t i = 0; !s && i < g->params.count; i++) {
    const ot_model_param *w = &g->params.params[i];
    if (ot_device_write(g->d, w->name, OT_DT_FP32, w->data, (size_t)w->count * sizeof(float)))
      s = gen_dev_fail(g, "writing the weights", err);
  }
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = g->o.mode;
  t0 = gen_now();
  if (!s && ot_device_run(g->d, &ro)) s = gen_dev_fail(g, "weight preparation", err);
  st->run_s += gen_now() - t0;
  ot_run_summary sum;
  if (!s && !ot_device_summary(g->d, &sum)) st->prep_ps = sum.time_ps;
  if (s) return s;
  g->weights_on_device = true;
  ot_model_params_free(&g->params);
  memset(&g->params, 0, sizeof g->params);
  return OT_OK;
}

/* After the first step program's load: zeroed caches (rows past the context are never read,
** but every input needs a value). */
static ot_status gen_zero_caches(generator *g, ot_error *err) {
  size_t n = ot_device_tensor_count(g->d);
  for (size_t i = 0; i < n; i++) {
    ot_tensor_desc t;
    if (ot_device_tensor(g->d, i, &t) || strcmp(t.role, "input") || !strstr(t.name, "_cache")) continue;
    void *zero = calloc(1, (size_t)t.bytes ? (size_t)t.bytes : 1);
    if (!zero) return ot_error_set(err, OT_ENOMEM, "out of memory for the KV cache '%s'", t.name);
    ot_status s = ot_device_write(g->d, t.name, t.dtype, zero, (size_t)t.bytes);
    free(zero);
    if (s) return gen_dev_fail(g, "clearing the KV caches", err);
  }
  g->caches_ready = true;
  return OT_OK;
}

/* One step: S tokens per row at pos; fills g->logits (full mode) and adds its simulated time. */
static ot_status gen_step(generator *g, const int32_t *ids, uint32_t S, uint32_t pos, uint64_t *time_ps,
                          gen_stats *st, ot_error *err) {
  ot_program *p = NULL;
  double t0 = gen_now();
  ot_status s = gen_program(g, S, pos, &p, err);
  st->compile_s += gen_now() - t0;
  if (s) return s;
  if (!g->weights_on_device && (s = gen_prepare(g, st, err))) return s;
  if (ot_device_load_keep(g->d, p)) return gen_dev_fail(g, "loading the step program", err);
  if (!g->caches_ready && (s = gen_zero_caches(g, err))) return s;
  if (ot_device_write(g->d, "ids", OT_DT_INT32, ids, (size_t)g->B * S * sizeof *ids))
    return gen_dev_fail(g, "writing the token ids", err);
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = g->o.mode;
  t0 = gen_now();
  if (ot_device_run(g->d, &ro)) return gen_dev_fail(g, pos ? "decode step" : "prefill", err);
  st->run_s += gen_now() - t0;
  ot_run_summary sum;
  if (ot_device_summary(g->d, &sum)) return gen_dev_fail(g, "run summary", err);
  *time_ps += sum.time_ps;
  st->steps++;
  if (g->o.mode == OT_RUN_TIMING) return OT_OK;
  if (ot_device_read(g->d, "logits", OT_DT_FP32, g->logits, (size_t)g->B * g->c.vocab_size * sizeof(float)))
    return gen_dev_fail(g, "reading the logits", err);
  return OT_OK;
}

/* ---- sampling ------------------------------------------------------------------------------ */
static uint64_t gen_rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int gen_cand_cmp(const void *a, const void *b) { /* descending logit, then ascending id */
  const gen_cand *x = a, *y = b;
  if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static uint32_t gen_argmax(const float *logits, uint32_t vocab) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < vocab; i++)
    if (logits[i] > logits[best]) best = i;
  return best;
}

uint32_t gen_sample(const float *logits, uint32_t vocab, const gen_opts *o, uint64_t *rng, gen_cand *cand) {
  if (!(o->temperature > 0.0f) || vocab < 2) return gen_argmax(logits, vocab);
  for (uint32_t i = 0; i < vocab; i++) cand[i] = (gen_cand){logits[i], i};
  qsort(cand, vocab, sizeof *cand, gen_cand_cmp);
  uint32_t n = o->top_k && o->top_k < vocab ? o->top_k : vocab;
  double total = 0;
  for (uint32_t i = 0; i < n; i++) { /* weights exp((l - max) / T), kept in the logit slot */
    double w = exp(((double)cand[i].logit - cand[0].logit) / o->temperature);
    cand[i].logit = (float)w;
    total += (float)w;
  }
  if (o->top_p > 0.0f && o->top_p < 1.0f) { /* smallest prefix with probability >= top_p */
    double cum = 0;
    for (uint32_t i = 0; i < n; i++) {
      cum += cand[i].logit;
      if (cum >= o->top_p * total) { n = i + 1; total = cum; break; }
    }
  }
  double u = (double)(gen_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0) * total, cum = 0;
  for (uint32_t i = 0; i < n; i++) {
    cum += cand[i].logit;
    if (u < cum) return cand[i].id;
  }
  return cand[n - 1].id;
}

/* ---- the loop ------------------------------------------------------------------------------- */
static ot_status gen_check_run(const generator *g, const uint32_t *prompts, uint32_t len, uint32_t max_new,
                               ot_error *err) {
  if (!len) return ot_error_set(err, OT_EINVAL, "generate: the prompt is empty (at least one token is needed)");
  if ((uint64_t)len + max_new > g->ctx)
    return ot_error_set(err, OT_EINVAL, "generate: a prompt of %u tokens + %u new tokens is longer than the %u-token "
                        "context opened (model %s: max_position_embeddings %u)", len, max_new, g->ctx, g->c.name,
                        g->c.max_position_embeddings);
  for (uint64_t i = 0; i < (uint64_t)g->B * len; i++)
    if (prompts[i] >= g->c.vocab_size)
      return ot_error_set(err, OT_EINVAL, "generate: prompt row %llu token %llu is id %u, outside the vocabulary of %u",
                          (unsigned long long)(i / len), (unsigned long long)(i % len), prompts[i], g->c.vocab_size);
  return OT_OK;
}

/* Pick every row's next token into next (timing mode: 0); true when every row has ended. */
static bool gen_pick(generator *g, uint32_t *next, bool *ended) {
  bool all = true;
  for (uint32_t b = 0; b < g->B; b++) {
    if (ended[b]) { next[b] = g->c.eos_token_id; continue; }
    next[b] = g->o.mode == OT_RUN_TIMING ? 0
                                          : gen_sample(g->logits + (size_t)b * g->c.vocab_size, g->c.vocab_size, &g->o,
                                                       &g->rng, g->cand);
    if (g->o.stop_at_eos && g->o.mode != OT_RUN_TIMING && next[b] == g->c.eos_token_id) ended[b] = true;
    all = all && ended[b];
  }
  return all;
}

ot_status gen_run(generator *g, const uint32_t *prompts, uint32_t len, uint32_t max_new, uint32_t *out,
                  gen_token_fn on_token, void *cb_ctx, gen_stats *st, ot_error *err) {
  gen_stats local;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  double t0 = gen_now();
  ot_status s = gen_check_run(g, prompts, len, max_new, err);
  if (s || !max_new) return s;
  st->device_bytes = gen_device_bytes(&g->c, g->B, g->ctx, g->o.fp32);
  int32_t *ids = malloc((size_t)g->B * len * sizeof *ids);
  uint32_t *next = malloc(g->B * sizeof *next);
  bool *ended = calloc(g->B, sizeof *ended);
  if (!ids || !next || !ended) s = ot_error_set(err, OT_ENOMEM, "out of memory");
  for (uint64_t i = 0; !s && i < (uint64_t)g->B * len; i++) ids[i] = (int32_t)prompts[i];
  bool done = false;
  for (uint32_t k = 0; !s && k < max_new && !done; k++) {
    uint32_t S = k == 0 ? len : 1, pos = k == 0 ? 0 : len + k - 1;
    s = gen_step(g, ids, S, pos, k == 0 ? &st->prefill_ps : &st->decode_ps, st, err);
    if (s) break;
    done = gen_pick(g, next, ended);
    for (uint32_t b = 0; b < g->B; b++) {
      out[(size_t)b * max_new + k] = next[b];
      ids[b] = (int32_t)next[b]; /* the next step's input: one token per row */
    }
    st->new_tokens = k + 1;
    if (on_token) on_token(cb_ctx, next, g->B);
  }
  for (uint32_t b = 0; !s && b < g->B; b++) /* rows that stopped early: the rest is eos */
    for (uint32_t k = st->new_tokens; k < max_new; k++) out[(size_t)b * max_new + k] = g->c.eos_token_id;
  free(ids);
  free(next);
  free(ended);
  st->wall_s = gen_now() - t0;
  return s;
}
