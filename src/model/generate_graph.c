/* The step graphs of generation (generate.h): S new tokens per row at positions pos..pos+S-1,
** keys and values appended to the per-layer caches in place (kv_write), attention over the
** cache's first pos+S rows, logits of the last position only.  Names follow the Hugging Face
** modules (and model_graph.c), so programs of different steps share their weight and cache
** tensors by name (ot_device_load_keep). */
#include "model/generate_int.h"
#include "model/model_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static const char *gg_name(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, 128, fmt, ap);
  va_end(ap);
  return buf;
}

/* The tensor for Hugging Face weight name: its derived form if it has one that replaces it
** (*transposed tells whether that is [in, out] from an [out, in] original), else itself. */
static ot_tid gg_lookup(gg_ctx *x, const char *name, bool *transposed) {
  if (transposed) *transposed = false;
  for (size_t i = 0; i < x->n_dv; i++)
    if (x->dv[i].replaces && !strcmp(x->specs[x->dv[i].src].name, name)) {
      if (transposed) *transposed = x->dv[i].transpose;
      return x->dw[i];
    }
  for (size_t i = 0; i < x->n_specs; i++)
    if (!strcmp(x->specs[i].name, name)) return x->w[i];
  return OT_TID_NONE;
}

/* nn.Linear (Llama): weight [out, in], or its derived [in, out] form. */
static ot_tid gg_nn_linear(gg_ctx *x, const char *node, ot_tid h, const char *p, const char *wname) {
  char name[OT_TENSOR_NAME_MAX];
  bool t = false;
  snprintf(name, sizeof name, "%s.%s", p, wname);
  ot_tid w = gg_lookup(x, name, &t);
  return ot_graph_linear(x->g, node, h, w, OT_TID_NONE, !t);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static ot_tid gg_w(gg_ctx *x, const char *fmt, ...) {
  char name[OT_TENSOR_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return gg_lookup(x, name, NULL);
}

/* [B, S, H*hd] -> [B, H, S, hd]. */
static ot_tid gg_heads(gg_ctx *x, const char *p, const char *what, ot_tid t, int64_t heads) {
  char n[128];
  int64_t shape[4] = {x->B, x->S, heads, x->c->head_dim}, perm[4] = {0, 2, 1, 3};
  t = ot_graph_reshape(x->g, gg_name(n, "%s.%s.split_heads", p, what), t, 4, shape);
  return ot_graph_transpose(x->g, gg_name(n, "%s.%s.to_bhsd", p, what), t, 4, perm);
}

static ot_tid gg_merge(gg_ctx *x, const char *p, ot_tid t) {
  char n[128];
  int64_t shape[3] = {x->B, x->S, (int64_t)x->c->n_heads * x->c->head_dim}, perm[4] = {0, 2, 1, 3};
  t = ot_graph_transpose(x->g, gg_name(n, "%s.to_bshd", p), t, 4, perm);
  return ot_graph_reshape(x->g, gg_name(n, "%s.merge_heads", p), t, 3, shape);
}

/* Append k, v [B, Hkv, S, hd] to the layer's caches and attend: the prefill (pos 0) attends to
** its own k and v (no copy of the cache), a decode step to the cache's first pos+S rows. */
static ot_tid gg_attend(gg_ctx *x, const char *p, ot_tid q, ot_tid k, ot_tid v) {
  char n[128];
  int64_t cs[4] = {x->B, x->c->n_kv_heads, x->ctx, x->c->head_dim};
  if (x->cache_dt != OT_DT_FP32) {
    k = ot_graph_cast(x->g, gg_name(n, "%s.k_cast", p), k, x->cache_dt);
    v = ot_graph_cast(x->g, gg_name(n, "%s.v_cast", p), v, x->cache_dt);
  }
  ot_tid kc = ot_graph_input(x->g, gg_name(n, "%s.k_cache", p), x->cache_dt, 4, cs);
  ot_tid vc = ot_graph_input(x->g, gg_name(n, "%s.v_cache", p), x->cache_dt, 4, cs);
  ot_tid k2 = ot_graph_kv_write(x->g, gg_name(n, "%s.k_write", p), kc, k, x->pos);
  ot_tid v2 = ot_graph_kv_write(x->g, gg_name(n, "%s.v_write", p), vc, v, x->pos);
  if (x->pos > 0) {
    k = ot_graph_slice(x->g, gg_name(n, "%s.k_ctx", p), k2, 2, 0, x->pos + x->S);
    v = ot_graph_slice(x->g, gg_name(n, "%s.v_ctx", p), v2, 2, 0, x->pos + x->S);
  }
  return ot_graph_attention(x->g, p, q, k, v, true, 0.0f);
}

/* ---- GPT-2 ------------------------------------------------------------------------------- */
static ot_tid gpt2_block(gg_ctx *x, unsigned l, ot_tid r) {
  char n[128], p[64];
  int64_t D = x->c->hidden_size, sizes[3] = {D, D, D};
  float eps = x->c->norm_eps;
  snprintf(p, sizeof p, "h.%u.attn", l);
  ot_tid h = ot_graph_layernorm(x->g, gg_name(n, "h.%u.ln_1", l), r, gg_w(x, "h.%u.ln_1.weight", l),
                                gg_w(x, "h.%u.ln_1.bias", l), eps);
  ot_tid qkv = ot_graph_linear(x->g, gg_name(n, "%s.c_attn", p), h, gg_w(x, "%s.c_attn.weight", p),
                               gg_w(x, "%s.c_attn.bias", p), false);
  ot_tid t3[3];
  ot_graph_split(x->g, gg_name(n, "%s.split_qkv", p), qkv, 2, 3, sizes, t3);
  int64_t H = x->c->n_heads;
  ot_tid a = gg_attend(x, p, gg_heads(x, p, "q", t3[0], H), gg_heads(x, p, "k", t3[1], H), gg_heads(x, p, "v", t3[2], H));
  a = ot_graph_linear(x->g, gg_name(n, "%s.c_proj", p), gg_merge(x, p, a), gg_w(x, "%s.c_proj.weight", p),
                      gg_w(x, "%s.c_proj.bias", p), false);
  r = ot_graph_add(x->g, gg_name(n, "%s.residual", p), r, a);
  h = ot_graph_layernorm(x->g, gg_name(n, "h.%u.ln_2", l), r, gg_w(x, "h.%u.ln_2.weight", l),
                         gg_w(x, "h.%u.ln_2.bias", l), eps);
  snprintf(p, sizeof p, "h.%u.mlp", l);
  ot_tid f = ot_graph_linear(x->g, gg_name(n, "%s.c_fc", p), h, gg_w(x, "%s.c_fc.weight", p),
                             gg_w(x, "%s.c_fc.bias", p), false);
  f = ot_graph_gelu(x->g, gg_name(n, "%s.gelu", p), f, true);
  f = ot_graph_linear(x->g, gg_name(n, "%s.c_proj", p), f, gg_w(x, "%s.c_proj.weight", p),
                      gg_w(x, "%s.c_proj.bias", p), false);
  return ot_graph_add(x->g, gg_name(n, "%s.residual", p), r, f);
}

static ot_tid gpt2_body(gg_ctx *x, ot_tid ids) {
  ot_tid tok = ot_graph_embedding(x->g, "wte", ids, gg_w(x, "wte.weight"));
  ot_tid pos = ot_graph_slice(x->g, "wpe", gg_w(x, "wpe.weight"), 0, x->pos, x->pos + x->S);
  ot_tid r = ot_graph_add(x->g, "embed", tok, pos);
  for (unsigned l = 0; l < x->c->num_hidden_layers; l++) r = gpt2_block(x, l, r);
  return r;
}

/* ---- Llama ------------------------------------------------------------------------------- */
static ot_tid llama_block(gg_ctx *x, unsigned l, ot_tid r) {
  char n[128], p[64];
  float eps = x->c->norm_eps, theta = x->c->rope_theta;
  ot_rope_llama3 rs = model_graph_rope_scaling(x->c);
  snprintf(p, sizeof p, "model.layers.%u.self_attn", l);
  ot_tid h = ot_graph_rmsnorm(x->g, gg_name(n, "model.layers.%u.input_layernorm", l), r,
                              gg_w(x, "model.layers.%u.input_layernorm.weight", l), eps);
  ot_tid q = gg_nn_linear(x, gg_name(n, "%s.q_proj", p), h, p, "q_proj.weight");
  ot_tid k = gg_nn_linear(x, gg_name(n, "%s.k_proj", p), h, p, "k_proj.weight");
  ot_tid v = gg_nn_linear(x, gg_name(n, "%s.v_proj", p), h, p, "v_proj.weight");
  q = ot_graph_rope_scaled(x->g, gg_name(n, "%s.q_rope", p), gg_heads(x, p, "q", q, x->c->n_heads), theta, x->pos, &rs);
  k = ot_graph_rope_scaled(x->g, gg_name(n, "%s.k_rope", p), gg_heads(x, p, "k", k, x->c->n_kv_heads), theta, x->pos,
                           &rs);
  v = gg_heads(x, p, "v", v, x->c->n_kv_heads);
  ot_tid a = gg_merge(x, p, gg_attend(x, p, q, k, v));
  a = gg_nn_linear(x, gg_name(n, "%s.o_proj", p), a, p, "o_proj.weight");
  r = ot_graph_add(x->g, gg_name(n, "%s.residual", p), r, a);
  snprintf(p, sizeof p, "model.layers.%u.mlp", l);
  h = ot_graph_rmsnorm(x->g, gg_name(n, "model.layers.%u.post_attention_layernorm", l), r,
                       gg_w(x, "model.layers.%u.post_attention_layernorm.weight", l), eps);
  ot_tid gate = gg_nn_linear(x, gg_name(n, "%s.gate_proj", p), h, p, "gate_proj.weight");
  ot_tid up = gg_nn_linear(x, gg_name(n, "%s.up_proj", p), h, p, "up_proj.weight");
  ot_tid s = ot_graph_swiglu(x->g, gg_name(n, "%s.swiglu", p), gate, up);
  s = gg_nn_linear(x, gg_name(n, "%s.down_proj", p), s, p, "down_proj.weight");
  return ot_graph_add(x->g, gg_name(n, "%s.residual", p), r, s);
}

static ot_tid llama_body(gg_ctx *x, ot_tid ids) {
  ot_tid r = ot_graph_embedding(x->g, "model.embed_tokens", ids, gg_w(x, "model.embed_tokens.weight"));
  for (unsigned l = 0; l < x->c->num_hidden_layers; l++) r = llama_block(x, l, r);
  return r;
}

/* Final norm and head on the last position only: logits [B, V]. */
static ot_tid gg_head(gg_ctx *x, ot_tid r) {
  bool llama = x->c->family == OT_MODEL_LLAMA;
  int64_t rows[2] = {x->B, x->c->hidden_size};
  r = ot_graph_slice(x->g, "last", r, 1, x->S - 1, x->S);
  r = ot_graph_reshape(x->g, "last.rows", r, 2, rows);
  if (llama) r = ot_graph_rmsnorm(x->g, "model.norm", r, gg_w(x, "model.norm.weight"), x->c->norm_eps);
  else r = ot_graph_layernorm(x->g, "ln_f", r, gg_w(x, "ln_f.weight"), gg_w(x, "ln_f.bias"), x->c->norm_eps);
  for (size_t i = 0; i < x->n_dv; i++) /* the head, made [D, V] by the preparation program */
    if (!strcmp(x->dv[i].name, "lm_head.weight.T")) return ot_graph_matmul(x->g, "lm_head", r, x->dw[i], false);
  return OT_TID_NONE;
}

/* ---- derived weights and the preparation graph ------------------------------------------ */
static bool gen_is_table(const ot_model_tensor_spec *s) {
  return !strcmp(s->name, "wte.weight") || !strcmp(s->name, "wpe.weight") || !strcmp(s->name, "model.embed_tokens.weight");
}

static void gen_derive(gen_derived *d, size_t src, const char *name, const char *suffix, bool t, ot_dtype dt, bool repl) {
  snprintf(d->name, sizeof d->name, "%s%s", name, suffix);
  d->src = src;
  d->transpose = t;
  d->dtype = dt;
  d->replaces = repl;
}

size_t gen_derived_list(const ot_model_config *c, const ot_model_tensor_spec *specs, size_t n_specs, bool fp32,
                        gen_derived *out) {
  ot_dtype mm = fp32 ? OT_DT_FP32 : OT_DT_BF16;
  bool llama = c->family == OT_MODEL_LLAMA;
  size_t n = 0, table = n_specs, head = n_specs;
  for (size_t i = 0; i < n_specs; i++) {
    const ot_model_tensor_spec *s = &specs[i];
    if (!strcmp(s->name, llama ? "model.embed_tokens.weight" : "wte.weight")) table = i;
    if (!strcmp(s->name, "lm_head.weight")) { head = i; continue; }
    if (s->ndim != 2 || gen_is_table(s)) continue;
    if (llama) gen_derive(&out[n++], i, s->name, ".T", true, mm, true);
    else if (!fp32) gen_derive(&out[n++], i, s->name, ".bf16", false, mm, true);
  }
  if (head < n_specs) gen_derive(&out[n++], head, "lm_head.weight", ".T", true, mm, true);
  else if (table < n_specs) gen_derive(&out[n++], table, "lm_head.weight", ".T", true, mm, false);
  return n;
}

ot_status gen_prep_build(const ot_model_config *c, const ot_model_tensor_spec *specs, size_t n_specs,
                         const gen_derived *dv, size_t n_dv, ot_graph **out, ot_error *err) {
  ot_graph *g = ot_graph_new();
  *out = NULL;
  if (!g) return ot_error_set(err, OT_ENOMEM, "out of memory");
  for (size_t i = 0; i < n_specs; i++) {
    int64_t shape[2] = {(int64_t)specs[i].shape[0], (int64_t)specs[i].shape[1]};
    ot_graph_weight(g, specs[i].name, OT_DT_FP32, specs[i].ndim, shape);
  }
  for (size_t i = 0; i < n_dv; i++) {
    char n[OT_TENSOR_NAME_MAX + 32];
    ot_tid t = ot_graph_find(g, specs[dv[i].src].name);
    int64_t perm[2] = {1, 0};
    if (dv[i].transpose) t = ot_graph_transpose(g, (snprintf(n, sizeof n, "%s.transpose", dv[i].name), n), t, 2, perm);
    if (dv[i].dtype != OT_DT_FP32) t = ot_graph_cast(g, (snprintf(n, sizeof n, "%s.cast", dv[i].name), n), t, dv[i].dtype);
    if (!dv[i].transpose && dv[i].dtype == OT_DT_FP32) /* a plain copy (never listed today) */
      t = ot_graph_scale(g, (snprintf(n, sizeof n, "%s.copy", dv[i].name), n), t, 1.0f);
    ot_graph_output(g, t, dv[i].name);
  }
  if (ot_graph_status(g)) {
    ot_status s = ot_error_set(err, ot_graph_status(g), "generation: weight preparation graph of %s: %s", c->name,
                               ot_graph_error(g));
    ot_graph_free(g);
    return s;
  }
  *out = g;
  return OT_OK;
}

ot_status gen_graph_build(gg_ctx *x, ot_graph **out, ot_error *err) {
  *out = NULL;
  x->g = ot_graph_new();
  if (!x->g) return ot_error_set(err, OT_ENOMEM, "out of memory");
  for (size_t i = 0; i < x->n_specs; i++) { /* the originals still used, then the derived */
    const ot_model_tensor_spec *s = &x->specs[i];
    int64_t shape[2] = {(int64_t)s->shape[0], (int64_t)s->shape[1]};
    bool replaced = false;
    for (size_t j = 0; j < x->n_dv; j++) replaced = replaced || (x->dv[j].src == i && x->dv[j].replaces);
    x->w[i] = replaced ? OT_TID_NONE : ot_graph_weight(x->g, s->name, OT_DT_FP32, s->ndim, shape);
  }
  for (size_t j = 0; j < x->n_dv; j++) {
    const ot_model_tensor_spec *s = &x->specs[x->dv[j].src];
    int64_t shape[2] = {(int64_t)s->shape[x->dv[j].transpose ? 1 : 0], (int64_t)s->shape[x->dv[j].transpose ? 0 : 1]};
    x->dw[j] = ot_graph_weight(x->g, x->dv[j].name, x->dv[j].dtype, 2, shape);
  }
  int64_t is[2] = {x->B, x->S};
  ot_tid ids = ot_graph_input(x->g, "ids", OT_DT_INT32, 2, is);
  ot_tid r = x->c->family == OT_MODEL_LLAMA ? llama_body(x, ids) : gpt2_body(x, ids);
  ot_graph_output(x->g, gg_head(x, r), "logits");
  if (ot_graph_status(x->g)) {
    ot_status s = ot_error_set(err, ot_graph_status(x->g), "generation graph of %s (%lld tokens at position %lld): %s",
                               x->c->name, (long long)x->S, (long long)x->pos, ot_graph_error(x->g));
    ot_graph_free(x->g);
    x->g = NULL;
    return s;
  }
  *out = x->g;
  return OT_OK;
}
