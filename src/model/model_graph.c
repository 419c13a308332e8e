/* Model graphs: GPT-2 and Llama forward (and loss, backward, training step) as compiler graphs.
** See model_graph.h; the op semantics are graph_ops.def's. */
#include "model/model_graph.h"

#include "compiler/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the family builders share: the graph, the config, the batch shape and the weights by
** spec order (looked up by name, so the builders read like the Hugging Face modules). */
typedef struct {
  ot_graph *g;
  const ot_model_config *c;
  int64_t B, S;
  model_graph *mg;
} mg_ctx;

void model_graph_opts_default(model_graph_opts *o, uint32_t batch, uint32_t seq, model_graph_kind kind) {
  memset(o, 0, sizeof *o);
  o->batch = batch;
  o->seq = seq;
  o->kind = kind;
  o->beta1 = 0.9f;
  o->beta2 = 0.95f;
  o->logits_output = kind == MODEL_GRAPH_FORWARD;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static const char *mg_name(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, 128, fmt, ap);
  va_end(ap);
  return buf;
}

/* The weight called name (every name the builders use comes from the spec list). */
static ot_tid mg_w(mg_ctx *x, const char *name) {
  for (size_t i = 0; i < x->mg->n_weights; i++)
    if (!strcmp(x->mg->specs[i].name, name)) return x->mg->weights[i];
  return OT_TID_NONE;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static ot_tid mg_wf(mg_ctx *x, const char *fmt, ...) {
  char name[OT_TENSOR_NAME_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return mg_w(x, name);
}

static void mg_declare_weights(mg_ctx *x) {
  for (size_t i = 0; i < x->mg->n_weights; i++) {
    const ot_model_tensor_spec *s = &x->mg->specs[i];
    int64_t shape[2] = {(int64_t)s->shape[0], (int64_t)s->shape[1]};
    x->mg->weights[i] = ot_graph_weight(x->g, s->name, OT_DT_FP32, s->ndim, shape);
  }
}

/* [B, S, H*D] -> [B, H, S, D] (the attention op's layout). */
static ot_tid mg_heads(mg_ctx *x, const char *prefix, const char *what, ot_tid t, int64_t heads) {
  char n[128];
  int64_t hd = x->c->head_dim;
  int64_t shape[4] = {x->B, x->S, heads, hd}, perm[4] = {0, 2, 1, 3};
  t = ot_graph_reshape(x->g, mg_name(n, "%s.%s.split_heads", prefix, what), t, 4, shape);
  return ot_graph_transpose(x->g, mg_name(n, "%s.%s.to_bhsd", prefix, what), t, 4, perm);
}

/* [B, H, S, D] -> [B, S, H*D]. */
static ot_tid mg_merge_heads(mg_ctx *x, const char *prefix, ot_tid t) {
  char n[128];
  int64_t heads = x->c->n_heads, hd = x->c->head_dim;
  int64_t shape[3] = {x->B, x->S, heads * hd}, perm[4] = {0, 2, 1, 3};
  t = ot_graph_transpose(x->g, mg_name(n, "%s.to_bshd", prefix), t, 4, perm);
  return ot_graph_reshape(x->g, mg_name(n, "%s.merge_heads", prefix), t, 3, shape);
}

/* ---- GPT-2 -------------------------------------------------------------------------------- */

static ot_tid gpt2_attn(mg_ctx *x, unsigned l, ot_tid h) {
  char n[128], p[64];
  int64_t D = x->c->hidden_size, sizes[3] = {D, D, D};
  ot_tid qkv3[3];
  snprintf(p, sizeof p, "h.%u.attn", l);
  ot_tid qkv = ot_graph_linear(x->g, mg_name(n, "%s.c_attn", p), h, mg_wf(x, "%s.c_attn.weight", p),
                               mg_wf(x, "%s.c_attn.bias", p), false);
  ot_graph_split(x->g, mg_name(n, "%s.split_qkv", p), qkv, 2, 3, sizes, qkv3);
  ot_tid q = mg_heads(x, p, "q", qkv3[0], x->c->n_heads);
  ot_tid k = mg_heads(x, p, "k", qkv3[1], x->c->n_heads);
  ot_tid v = mg_heads(x, p, "v", qkv3[2], x->c->n_heads);
  ot_tid a = ot_graph_attention(x->g, p, q, k, v, true, 0.0f);
  a = mg_merge_heads(x, p, a);
  return ot_graph_linear(x->g, mg_name(n, "%s.c_proj", p), a, mg_wf(x, "%s.c_proj.weight", p),
                         mg_wf(x, "%s.c_proj.bias", p), false);
}

static ot_tid gpt2_mlp(mg_ctx *x, unsigned l, ot_tid h) {
  char n[128], p[64];
  snprintf(p, sizeof p, "h.%u.mlp", l);
  ot_tid f = ot_graph_linear(x->g, mg_name(n, "%s.c_fc", p), h, mg_wf(x, "%s.c_fc.weight", p),
                             mg_wf(x, "%s.c_fc.bias", p), false);
  f = ot_graph_gelu(x->g, mg_name(n, "%s.gelu", p), f, true);
  return ot_graph_linear(x->g, mg_name(n, "%s.c_proj", p), f, mg_wf(x, "%s.c_proj.weight", p),
                         mg_wf(x, "%s.c_proj.bias", p), false);
}

static ot_tid gpt2_block(mg_ctx *x, unsigned l, ot_tid r) {
  char n[128];
  float eps = x->c->norm_eps;
  ot_tid h = ot_graph_layernorm(x->g, mg_name(n, "h.%u.ln_1", l), r, mg_wf(x, "h.%u.ln_1.weight", l),
                                mg_wf(x, "h.%u.ln_1.bias", l), eps);
  r = ot_graph_add(x->g, mg_name(n, "h.%u.attn.residual", l), r, gpt2_attn(x, l, h));
  h = ot_graph_layernorm(x->g, mg_name(n, "h.%u.ln_2", l), r, mg_wf(x, "h.%u.ln_2.weight", l),
                         mg_wf(x, "h.%u.ln_2.bias", l), eps);
  return ot_graph_add(x->g, mg_name(n, "h.%u.mlp.residual", l), r, gpt2_mlp(x, l, h));
}

/* Token plus learned position embeddings (positions 0..S-1: a slice of wpe), the blocks, the
** final LayerNorm; returns [B*S, D]. */
static ot_tid gpt2_body(mg_ctx *x) {
  ot_tid tok = ot_graph_embedding(x->g, "wte", x->mg->ids, mg_w(x, "wte.weight"));
  ot_tid pos = ot_graph_slice(x->g, "wpe", mg_w(x, "wpe.weight"), 0, 0, x->S);
  ot_tid r = ot_graph_add(x->g, "embed", tok, pos);
  for (unsigned l = 0; l < x->c->num_hidden_layers; l++) r = gpt2_block(x, l, r);
  r = ot_graph_layernorm(x->g, "ln_f", r, mg_w(x, "ln_f.weight"), mg_w(x, "ln_f.bias"), x->c->norm_eps);
  int64_t rows[2] = {x->B * x->S, x->c->hidden_size};
  return ot_graph_reshape(x->g, "ln_f.rows", r, 2, rows);
}

/* ---- Llama -------------------------------------------------------------------------------- */

static ot_tid llama_attn(mg_ctx *x, unsigned l, ot_tid h) {
  char n[128], p[64];
  float theta = x->c->rope_theta;
  ot_rope_llama3 rs = model_graph_rope_scaling(x->c);
  snprintf(p, sizeof p, "model.layers.%u.self_attn", l);
  ot_tid q = ot_graph_linear(x->g, mg_name(n, "%s.q_proj", p), h, mg_wf(x, "%s.q_proj.weight", p), OT_TID_NONE, true);
  ot_tid k = ot_graph_linear(x->g, mg_name(n, "%s.k_proj", p), h, mg_wf(x, "%s.k_proj.weight", p), OT_TID_NONE, true);
  ot_tid v = ot_graph_linear(x->g, mg_name(n, "%s.v_proj", p), h, mg_wf(x, "%s.v_proj.weight", p), OT_TID_NONE, true);
  q = ot_graph_rope_scaled(x->g, mg_name(n, "%s.q_rope", p), mg_heads(x, p, "q", q, x->c->n_heads), theta, 0, &rs);
  k = ot_graph_rope_scaled(x->g, mg_name(n, "%s.k_rope", p), mg_heads(x, p, "k", k, x->c->n_kv_heads), theta, 0, &rs);
  v = mg_heads(x, p, "v", v, x->c->n_kv_heads);
  ot_tid a = mg_merge_heads(x, p, ot_graph_attention(x->g, p, q, k, v, true, 0.0f));
  return ot_graph_linear(x->g, mg_name(n, "%s.o_proj", p), a, mg_wf(x, "%s.o_proj.weight", p), OT_TID_NONE, true);
}

static ot_tid llama_mlp(mg_ctx *x, unsigned l, ot_tid h) {
  char n[128], p[64];
  snprintf(p, sizeof p, "model.layers.%u.mlp", l);
  ot_tid gate =
      ot_graph_linear(x->g, mg_name(n, "%s.gate_proj", p), h, mg_wf(x, "%s.gate_proj.weight", p), OT_TID_NONE, true);
  ot_tid up = ot_graph_linear(x->g, mg_name(n, "%s.up_proj", p), h, mg_wf(x, "%s.up_proj.weight", p), OT_TID_NONE, true);
  ot_tid s = ot_graph_swiglu(x->g, mg_name(n, "%s.swiglu", p), gate, up);
  return ot_graph_linear(x->g, mg_name(n, "%s.down_proj", p), s, mg_wf(x, "%s.down_proj.weight", p), OT_TID_NONE, true);
}

static ot_tid llama_block(mg_ctx *x, unsigned l, ot_tid r) {
  char n[128], p[64];
  float eps = x->c->norm_eps;
  snprintf(p, sizeof p, "model.layers.%u", l);
  ot_tid h = ot_graph_rmsnorm(x->g, mg_name(n, "%s.input_layernorm", p), r, mg_wf(x, "%s.input_layernorm.weight", p), eps);
  r = ot_graph_add(x->g, mg_name(n, "%s.self_attn.residual", p), r, llama_attn(x, l, h));
  h = ot_graph_rmsnorm(x->g, mg_name(n, "%s.post_attention_layernorm", p), r,
                       mg_wf(x, "%s.post_attention_layernorm.weight", p), eps);
  return ot_graph_add(x->g, mg_name(n, "%s.mlp.residual", p), r, llama_mlp(x, l, h));
}

static ot_tid llama_body(mg_ctx *x) {
  ot_tid r = ot_graph_embedding(x->g, "model.embed_tokens", x->mg->ids, mg_w(x, "model.embed_tokens.weight"));
  for (unsigned l = 0; l < x->c->num_hidden_layers; l++) r = llama_block(x, l, r);
  r = ot_graph_rmsnorm(x->g, "model.norm", r, mg_w(x, "model.norm.weight"), x->c->norm_eps);
  int64_t rows[2] = {x->B * x->S, x->c->hidden_size};
  return ot_graph_reshape(x->g, "model.norm.rows", r, 2, rows);
}

/* ---- heads, loss, training step ------------------------------------------------------------ */

/* Logits [B*S, V]: the tied embedding (matmul with wte, transpose_b) or lm_head ([V, D]). */
static ot_tid mg_lm_head(mg_ctx *x, ot_tid rows) {
  bool llama = x->c->family == OT_MODEL_LLAMA;
  ot_tid head = mg_w(x, "lm_head.weight");
  if (head == OT_TID_NONE) head = mg_w(x, llama ? "model.embed_tokens.weight" : "wte.weight");
  return ot_graph_matmul(x->g, "lm_head", rows, head, true);
}

/* Global norm of every gradient, then one AdamW per weight with moments "<w>.m", "<w>.v".
** Weight decay only for weights of 2 or more dims (matmul weights, embeddings), not for biases
** and norm gains: GPT-2 / nanoGPT / Hugging Face practice (decaying a gain towards 0 shrinks
** the normalised activations instead of regularising). */
static void mg_optimiser(mg_ctx *x, const model_graph_opts *o) {
  model_graph *mg = x->mg;
  ot_tid *grads = calloc(mg->n_weights ? mg->n_weights : 1, sizeof *grads);
  if (!grads) return;
  for (size_t i = 0; i < mg->n_weights; i++) grads[i] = ot_graph_grad(x->g, mg->weights[i]);
  int64_t six = 6;
  mg->hyper = ot_graph_input(x->g, "hyper", OT_DT_FP32, 1, &six);
  mg->norm = ot_graph_global_norm(x->g, "grad_norm", (unsigned)mg->n_weights, grads);
  ot_graph_output(x->g, mg->norm, "grad_norm");
  for (size_t i = 0; i < mg->n_weights; i++) {
    const ot_model_tensor_spec *s = &mg->specs[i];
    int64_t shape[2] = {(int64_t)s->shape[0], (int64_t)s->shape[1]};
    char n[OT_TENSOR_NAME_MAX + 16];
    snprintf(n, sizeof n, "%s.m", s->name);
    ot_tid m = ot_graph_weight(x->g, n, OT_DT_FP32, s->ndim, shape);
    snprintf(n, sizeof n, "%s.v", s->name);
    ot_tid v = ot_graph_weight(x->g, n, OT_DT_FP32, s->ndim, shape);
    snprintf(n, sizeof n, "%s.adamw", s->name);
    ot_graph_adamw_decay(x->g, n, mg->weights[i], grads[i], m, v, mg->norm, mg->hyper, o->beta1, o->beta2,
                         s->ndim >= 2);
  }
  free(grads);
}

static ot_status mg_check_config(const ot_model_config *c, const model_graph_opts *o, ot_error *err) {
  if (!o->batch || !o->seq)
    return ot_error_set(err, OT_EINVAL, "model graph %s: batch %u and sequence %u must be at least 1", c->name,
                        o->batch, o->seq);
  if (o->seq > c->max_position_embeddings)
    return ot_error_set(err, OT_EINVAL,
                        "model graph %s: sequence length %u is longer than the context (max_position_embeddings %u)",
                        c->name, o->seq, c->max_position_embeddings);
  return OT_OK;
}

static ot_status mg_build_graph(mg_ctx *x, const model_graph_opts *o, ot_error *err) {
  model_graph *mg = x->mg;
  int64_t ids_shape[2] = {x->B, x->S}, rows = x->B * x->S;
  mg->ids = ot_graph_input(x->g, "ids", OT_DT_INT32, 2, ids_shape);
  mg_declare_weights(x);
  ot_tid body = x->c->family == OT_MODEL_LLAMA ? llama_body(x) : gpt2_body(x);
  mg->logits = mg_lm_head(x, body);
  if (o->logits_output) ot_graph_output(x->g, mg->logits, "logits");
  if (o->kind >= MODEL_GRAPH_LOSS) {
    mg->targets = ot_graph_input(x->g, "targets", OT_DT_INT32, 1, &rows);
    mg->loss = ot_graph_cross_entropy(x->g, "loss", mg->logits, mg->targets);
    ot_graph_output(x->g, mg->loss, "loss");
  }
  if (ot_graph_status(x->g))
    return ot_error_set(err, ot_graph_status(x->g), "model graph %s: %s", x->c->name, ot_graph_error(x->g));
  if (o->kind >= MODEL_GRAPH_GRADS && ot_graph_backward(x->g, mg->loss, err)) return err->code;
  if (o->kind >= MODEL_GRAPH_TRAIN) mg_optimiser(x, o);
  if (ot_graph_status(x->g))
    return ot_error_set(err, ot_graph_status(x->g), "model graph %s: %s", x->c->name, ot_graph_error(x->g));
  return OT_OK;
}

ot_status model_graph_build(const ot_model_config *c, const model_graph_opts *o, model_graph *out, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  memset(out, 0, sizeof *out);
  out->ids = out->targets = out->logits = out->loss = out->hyper = out->norm = OT_TID_NONE;
  if (ot_model_config_validate(c, c->name, err) || mg_check_config(c, o, err)) return err->code;
  if (ot_model_tensor_specs(c, &out->specs, &out->n_weights, err)) return err->code;
  out->weights = calloc(out->n_weights, sizeof *out->weights);
  out->g = ot_graph_new();
  if (!out->weights || !out->g) {
    model_graph_free(out);
    return ot_error_set(err, OT_ENOMEM, "model graph %s: out of memory", c->name);
  }
  mg_ctx x = {out->g, c, (int64_t)o->batch, (int64_t)o->seq, out};
  ot_status s = mg_build_graph(&x, o, err);
  if (s) model_graph_free(out);
  return s;
}

ot_rope_llama3 model_graph_rope_scaling(const ot_model_config *c) {
  ot_rope_llama3 rs = {1.0f, 1.0f, 4.0f, 0};
  if (c->family == OT_MODEL_LLAMA && c->rope_scaling == OT_ROPE_SCALING_LLAMA3)
    rs = (ot_rope_llama3){c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
                           (int64_t)c->rope_original_max_position_embeddings};
  return rs;
}

void model_graph_free(model_graph *mg) {
  if (!mg) return;
  ot_graph_free(mg->g);
  free(mg->weights);
  free(mg->specs);
  memset(mg, 0, sizeof *mg);
}

uint64_t model_graph_forward_flops(const ot_model_config *c, uint32_t batch, uint32_t seq) {
  uint64_t T = (uint64_t)batch * seq, D = c->hidden_size, I = c->intermediate_size;
  uint64_t q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim;
  uint64_t per_layer = D * (q + 2 * kv) + q * D;                            /* q, k, v, o projections */
  per_layer += c->family == OT_MODEL_LLAMA ? 3 * D * I : 2 * D * I;         /* MLP */
  uint64_t matmul = 2 * T * (per_layer * c->num_hidden_layers + D * c->vocab_size);
  /* attention: q k^T and p v over the causal half (S(S+1)/2 scores per head) */
  uint64_t attn = 2 * 2 * (uint64_t)batch * c->n_heads * c->head_dim * ((uint64_t)seq * (seq + 1) / 2);
  return matmul + attn * c->num_hidden_layers;
}

uint64_t model_graph_tensor_bytes(const model_graph *mg) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < mg->g->n_t; i++) {
    const ot_gtensor *t = ot_graph_tensor(mg->g, (ot_tid)i);
    total += (uint64_t)ot_gtensor_elems(t) * ot_dtype_size((ot_dtype)t->dtype);
  }
  return total;
}
