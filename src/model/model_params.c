/* A model's parameters in f32: allocation in one slab, seeded initialisation, and loading and
** saving as safetensors with the Hugging Face names.
**
** Random initialisation (the documented RNG): each tensor has its own stream, a splitmix64
** counter (ot_rng) seeded with seed XOR the FNV-1a 64-bit hash of the tensor's name.  Normal
** variates come from Box-Muller on pairs of 53-bit uniforms, u1 in (0, 1], u2 in [0, 1):
** z0 = sqrt(-2 ln u1) cos(2 pi u2), z1 = ... sin(...), used in that order, computed in double
** and rounded once to f32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_config.h"
#include "model/safetensors.h"

typedef struct {
  ot_model_params *p;
  size_t i;
  uint64_t offset;
} params_fill;

static void params_add(void *ctx, const ot_model_tensor_spec *s) {
  params_fill *f = ctx;
  ot_model_param *m = &f->p->params[f->i++];
  memcpy(m->name, s->name, sizeof m->name);
  m->ndim = s->ndim;
  m->shape[0] = s->shape[0];
  m->shape[1] = s->shape[1];
  m->count = s->ndim > 1 ? s->shape[0] * s->shape[1] : s->shape[0];
  m->data = f->p->slab ? f->p->slab + f->offset : NULL;
  f->offset += m->count;
}

ot_status ot_model_params_alloc(const ot_model_config *c, ot_model_params *out, ot_error *err) {
  memset(out, 0, sizeof *out);
  ot_status s = ot_model_config_validate(c, NULL, err);
  if (s != OT_OK) return s;
  out->config = *c;
  out->count = model_specs_each(c, NULL, NULL);
  out->total = ot_model_config_param_count(c);
  out->params = calloc(out->count, sizeof *out->params);
  out->slab = out->total <= SIZE_MAX / sizeof(float) ? calloc((size_t)out->total, sizeof(float)) : NULL;
  if (!out->params || !out->slab) {
    uint64_t total = out->total;
    ot_model_params_free(out);
    return ot_error_set(err, OT_ENOMEM, "%s: out of memory for %llu parameters (%.1f MiB in f32)", c->name,
                        (unsigned long long)total, (double)total * 4.0 / 1048576.0);
  }
  params_fill f = {out, 0, 0};
  model_specs_each(c, params_add, &f);
  return OT_OK;
}

void ot_model_params_free(ot_model_params *p) {
  if (!p) return;
  free(p->params);
  free(p->slab);
  memset(p, 0, sizeof *p);
}

ot_model_param *ot_model_params_find(const ot_model_params *p, const char *name) {
  for (size_t i = 0; p && name && i < p->count; i++)
    if (!strcmp(p->params[i].name, name)) return &p->params[i];
  return NULL;
}

/* ---- initialisation --------------------------------------------------------------------- */

static uint64_t fnv1a64(const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  return h;
}

static double uniform53(ot_rng *r) {
  uint64_t hi = ot_rng_u32(r), lo = ot_rng_u32(r);
  return (double)(((hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
}

static void fill_normal(float *x, uint64_t n, double std, ot_rng *r) {
  const double two_pi = 6.283185307179586476925286766559;
  for (uint64_t i = 0; i < n; i += 2) {
    double u1 = 1.0 - uniform53(r), u2 = uniform53(r);
    double rad = sqrt(-2.0 * log(u1));
    x[i] = (float)(std * rad * cos(two_pi * u2));
    if (i + 1 < n) x[i + 1] = (float)(std * rad * sin(two_pi * u2));
  }
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n >= m && !strcmp(s + n - m, tail);
}

static void fill_const(float *x, uint64_t n, float v) {
  for (uint64_t i = 0; i < n; i++) x[i] = v;
}

/* Hugging Face's _init_weights: norms 1 (bias 0), biases 0, matrices normal; GPT-2 scales its
** residual projections by 1/sqrt(2 * layers) (the GPT-2 paper's rule). */
static void init_one(ot_model_param *m, const ot_model_config *c, uint64_t seed) {
  bool norm = strstr(m->name, "ln_") || strstr(m->name, "layernorm") || !strcmp(m->name, "model.norm.weight");
  if (norm) { fill_const(m->data, m->count, ends_with(m->name, ".bias") ? 0.0f : 1.0f); return; }
  if (m->ndim == 1) { fill_const(m->data, m->count, 0.0f); return; }
  double std = c->initializer_range;
  if (c->family == OT_MODEL_GPT2 && ends_with(m->name, ".c_proj.weight"))
    std /= sqrt(2.0 * c->num_hidden_layers);
  ot_rng r;
  ot_rng_seed(&r, seed ^ fnv1a64(m->name));
  fill_normal(m->data, m->count, std, &r);
}

void ot_model_params_init(ot_model_params *p, uint64_t seed) {
  for (size_t i = 0; p && i < p->count; i++) init_one(&p->params[i], &p->config, seed);
}

/* ---- files ------------------------------------------------------------------------------ */

ot_status ot_model_params_load(const ot_model_config *c, const char *path, ot_model_params *out, ot_error *err) {
  memset(out, 0, sizeof *out);
  ot_safetensors *st = NULL;
  ot_status s = ot_safetensors_open(path, &st, err);
  if (s == OT_OK) s = ot_safetensors_check(st, c, OT_DT_COUNT, err);
  if (s == OT_OK) s = ot_model_params_alloc(c, out, err);
  for (size_t i = 0; s == OT_OK && i < out->count; i++) {
    ot_model_param *m = &out->params[i];
    const ot_st_tensor *t = ot_safetensors_find(st, m->name);
    char pre[OT_TENSOR_NAME_MAX + 16];
    if (!t) { /* checked above: the GPT2LMHeadModel spelling */
      snprintf(pre, sizeof pre, "transformer.%s", m->name);
      t = ot_safetensors_find(st, pre);
    }
    s = ot_safetensors_read_f32(st, t ? t->name : m->name, m->data, m->count, err);
  }
  ot_safetensors_close(st);
  if (s != OT_OK) ot_model_params_free(out);
  return s;
}

ot_status ot_model_params_save(const ot_model_params *p, const char *path, ot_dtype dtype, ot_error *err) {
  if (dtype != OT_DT_FP32 && dtype != OT_DT_BF16 && dtype != OT_DT_FP16)
    return ot_error_set(err, OT_EINVAL, "%s: cannot save parameters as %s (expected fp32, bf16 or fp16)", path,
                        ot_dtype_name(dtype));
  ot_st_tensor *ts = calloc(p->count ? p->count : 1, sizeof *ts);
  if (!ts) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < p->count; i++) {
    ts[i].name = p->params[i].name;
    ts[i].dtype = OT_DT_FP32;
    ts[i].ndim = p->params[i].ndim;
    ts[i].shape[0] = p->params[i].shape[0];
    ts[i].shape[1] = p->params[i].shape[1];
    ts[i].data = p->params[i].data;
  }
  const char *meta[] = {"format", "pt", "producer", "opentrn", NULL};
  ot_status s = ot_safetensors_save(path, ts, p->count, dtype, meta, err);
  free(ts);
  return s;
}
