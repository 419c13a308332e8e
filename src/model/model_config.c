/* Model configurations: presets, Hugging Face config.json in and out, validation, the expected
** tensor list (the one place that knows each family's tensor names and shapes) and the
** parameter count derived from it. */
#include "model/model_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"

/* Upper bounds that keep every product below in 64 bits and reject absurd inputs early. */
#define CFG_MAX_VOCAB (1u << 24)
#define CFG_MAX_DIM (1u << 20)
#define CFG_MAX_LAYERS 4096u
#define CFG_MAX_POSITIONS (1u << 24)

const char *model_family_name(ot_model_family f) { return f == OT_MODEL_LLAMA ? "llama" : "gpt2"; }

void model_shape_format(const uint64_t *shape, uint32_t ndim, char *buf, size_t cap) {
  size_t used = 0;
  if (!cap) return;
  buf[0] = '\0';
  used += (size_t)snprintf(buf, cap, "[");
  for (uint32_t i = 0; i < ndim && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
  if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* ---- presets ---------------------------------------------------------------------------- */

static ot_model_config cfg_gpt2(const char *name, uint32_t hidden, uint32_t layers, uint32_t heads) {
  ot_model_config c;
  memset(&c, 0, sizeof c);
  c.family = OT_MODEL_GPT2;
  snprintf(c.name, sizeof c.name, "%s", name);
  c.vocab_size = 50257;
  c.max_position_embeddings = 1024;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.n_heads = c.n_kv_heads = heads;
  c.head_dim = hidden / heads;
  c.intermediate_size = 4 * hidden;
  c.norm_eps = 1e-5f;
  c.tie_word_embeddings = true;
  c.initializer_range = 0.02f;
  c.bos_token_id = c.eos_token_id = OT_GPT2_EOT;
  return c;
}

static ot_model_config cfg_llama_1b(void) {
  ot_model_config c;
  memset(&c, 0, sizeof c);
  c.family = OT_MODEL_LLAMA;
  snprintf(c.name, sizeof c.name, "llama-3.2-1b");
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.hidden_size = 2048;
  c.num_hidden_layers = 16;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 64;
  c.intermediate_size = 8192;
  c.norm_eps = 1e-5f;
  c.rope_theta = 500000.0f;
  c.rope_scaling = OT_ROPE_SCALING_LLAMA3;
  c.rope_factor = 32.0f;
  c.rope_low_freq_factor = 1.0f;
  c.rope_high_freq_factor = 4.0f;
  c.rope_original_max_position_embeddings = 8192;
  c.tie_word_embeddings = true;
  c.initializer_range = 0.02f;
  c.bos_token_id = 128000;
  c.eos_token_id = 128001;
  return c;
}

/* Tiny models use the byte tokenizer with <|endoftext|> (257 ids, end of text = 256). */
static ot_model_config cfg_tiny(ot_model_family f) {
  ot_model_config c;
  if (f == OT_MODEL_GPT2) {
    c = cfg_gpt2("gpt2-tiny", 64, 2, 4);
  } else {
    c = cfg_llama_1b();
    snprintf(c.name, sizeof c.name, "llama-tiny");
    c.hidden_size = 64;
    c.num_hidden_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.intermediate_size = 176;
    c.rope_theta = 10000.0f;
    c.rope_scaling = OT_ROPE_SCALING_NONE;
    c.rope_factor = c.rope_low_freq_factor = c.rope_high_freq_factor = 0.0f;
    c.rope_original_max_position_embeddings = 0;
    c.tie_word_embeddings = false;
  }
  c.vocab_size = 257;
  c.max_position_embeddings = 128;
  c.bos_token_id = c.eos_token_id = 256;
  return c;
}

static const char *const preset_names[] = {"gpt2", "gpt2-medium", "llama-3.2-1b", "gpt2-tiny", "llama-tiny"};
#define PRESET_COUNT (sizeof preset_names / sizeof preset_names[0])

const char *ot_model_config_preset_name(size_t i) { return i < PRESET_COUNT ? preset_names[i] : NULL; }

ot_status ot_model_config_preset(const char *name, ot_model_config *out, ot_error *err) {
  if (!name || !out) return ot_error_set(err, OT_EINVAL, "model config preset: NULL argument");
  if (!strcmp(name, "gpt2")) *out = cfg_gpt2("gpt2", 768, 12, 12);
  else if (!strcmp(name, "gpt2-medium")) *out = cfg_gpt2("gpt2-medium", 1024, 24, 16);
  else if (!strcmp(name, "llama-3.2-1b")) *out = cfg_llama_1b();
  else if (!strcmp(name, "gpt2-tiny")) *out = cfg_tiny(OT_MODEL_GPT2);
  else if (!strcmp(name, "llama-tiny")) *out = cfg_tiny(OT_MODEL_LLAMA);
  else
    return ot_error_set(err, OT_ENOTFOUND,
                        "no model preset '%s' (presets: gpt2, gpt2-medium, llama-3.2-1b, gpt2-tiny, llama-tiny; "
                        "or give a config.json or a directory holding one)", name);
  return OT_OK;
}

/* ---- validation ------------------------------------------------------------------------- */

typedef struct {
  const char *origin;
  ot_error *err;
  ot_status status;
} cfg_check;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void check_fail(cfg_check *k, ot_status code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(k->err, code, "%s: %s", k->origin, msg);
  if (k->status == OT_OK) k->status = code;
}

static void check_range(cfg_check *k, const char *key, uint32_t v, uint32_t max) {
  if (v < 1 || v > max) check_fail(k, OT_ERANGE, "%s is %u, expected 1..%u", key, v, max);
}

static void check_shapes(cfg_check *k, const ot_model_config *c) {
  if (c->n_heads && c->hidden_size % c->n_heads && c->head_dim * c->n_heads != c->hidden_size)
    check_fail(k, OT_EINVAL, "hidden_size %u is not divisible by n_heads %u", c->hidden_size, c->n_heads);
  else if (c->family == OT_MODEL_GPT2 && c->head_dim * c->n_heads != c->hidden_size)
    check_fail(k, OT_EINVAL, "head_dim %u x n_heads %u = %u, expected hidden_size %u", c->head_dim, c->n_heads,
               c->head_dim * c->n_heads, c->hidden_size);
  if (c->n_kv_heads && c->n_heads % c->n_kv_heads)
    check_fail(k, OT_EINVAL, "n_heads %u is not divisible by n_kv_heads %u (each key/value head serves a whole "
               "group of query heads)", c->n_heads, c->n_kv_heads);
  if (c->n_kv_heads > c->n_heads)
    check_fail(k, OT_EINVAL, "n_kv_heads %u exceeds n_heads %u", c->n_kv_heads, c->n_heads);
  if (c->family == OT_MODEL_GPT2 && c->n_kv_heads != c->n_heads)
    check_fail(k, OT_EINVAL, "gpt2 has no grouped-query attention: n_kv_heads %u, expected n_heads %u",
               c->n_kv_heads, c->n_heads);
  if (c->family == OT_MODEL_GPT2 && !c->tie_word_embeddings)
    check_fail(k, OT_EUNSUPPORTED, "gpt2 ties lm_head to the token embedding: tie_word_embeddings false is not "
               "supported");
  if (c->family == OT_MODEL_LLAMA && c->head_dim % 2)
    check_fail(k, OT_EINVAL, "head_dim %u is odd, expected even (rotary embeddings rotate pairs)", c->head_dim);
}

static void check_floats(cfg_check *k, const ot_model_config *c) {
  if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
    check_fail(k, OT_ERANGE, "norm epsilon is %g, expected in (0, 1)", (double)c->norm_eps);
  if (!(c->initializer_range >= 0.0f && c->initializer_range < 10.0f))
    check_fail(k, OT_ERANGE, "initializer_range is %g, expected in [0, 10)", (double)c->initializer_range);
  if (c->family != OT_MODEL_LLAMA) return;
  if (!(c->rope_theta > 1.0f && isfinite(c->rope_theta)))
    check_fail(k, OT_ERANGE, "rope_theta is %g, expected a finite number > 1", (double)c->rope_theta);
  if (c->rope_scaling == OT_ROPE_SCALING_LLAMA3 &&
      !(c->rope_factor >= 1.0f && c->rope_high_freq_factor > c->rope_low_freq_factor &&
        c->rope_low_freq_factor > 0.0f && c->rope_original_max_position_embeddings > 0))
    check_fail(k, OT_ERANGE, "rope_scaling llama3: factor %g, low_freq_factor %g, high_freq_factor %g, "
               "original_max_position_embeddings %u; expected factor >= 1, 0 < low < high, original > 0",
               (double)c->rope_factor, (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor,
               c->rope_original_max_position_embeddings);
}

ot_status ot_model_config_validate(const ot_model_config *c, const char *origin, ot_error *err) {
  cfg_check k = {origin ? origin : "model config", err, OT_OK};
  if (!c) return ot_error_set(err, OT_EINVAL, "%s: NULL config", k.origin);
  if (c->family != OT_MODEL_GPT2 && c->family != OT_MODEL_LLAMA)
    check_fail(&k, OT_EINVAL, "family %d is neither gpt2 nor llama", (int)c->family);
  check_range(&k, "vocab_size", c->vocab_size, CFG_MAX_VOCAB);
  check_range(&k, "max_position_embeddings", c->max_position_embeddings, CFG_MAX_POSITIONS);
  check_range(&k, "hidden_size", c->hidden_size, CFG_MAX_DIM);
  check_range(&k, "num_hidden_layers", c->num_hidden_layers, CFG_MAX_LAYERS);
  check_range(&k, "n_heads", c->n_heads, CFG_MAX_DIM);
  check_range(&k, "n_kv_heads", c->n_kv_heads, CFG_MAX_DIM);
  check_range(&k, "head_dim", c->head_dim, CFG_MAX_DIM);
  check_range(&k, "intermediate_size", c->intermediate_size, CFG_MAX_DIM * 8);
  if (k.status == OT_OK) check_shapes(&k, c);
  check_floats(&k, c);
  return k.status;
}

/* ---- the expected tensors --------------------------------------------------------------- */

static void emit(model_spec_fn fn, void *ctx, uint32_t ndim, uint64_t d0, uint64_t d1, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static void emit(model_spec_fn fn, void *ctx, uint32_t ndim, uint64_t d0, uint64_t d1, const char *fmt, ...) {
  ot_model_tensor_spec s;
  memset(&s, 0, sizeof s);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s.name, sizeof s.name, fmt, ap);
  va_end(ap);
  s.ndim = ndim;
  s.shape[0] = d0;
  s.shape[1] = ndim > 1 ? d1 : 0;
  if (fn) fn(ctx, &s);
}

static size_t specs_gpt2(const ot_model_config *c, model_spec_fn fn, void *ctx) {
  uint64_t h = c->hidden_size, in = c->intermediate_size;
  emit(fn, ctx, 2, c->vocab_size, h, "wte.weight");
  emit(fn, ctx, 2, c->max_position_embeddings, h, "wpe.weight");
  for (uint32_t l = 0; l < c->num_hidden_layers; l++) {
    emit(fn, ctx, 1, h, 0, "h.%u.ln_1.weight", l);
    emit(fn, ctx, 1, h, 0, "h.%u.ln_1.bias", l);
    emit(fn, ctx, 2, h, 3 * h, "h.%u.attn.c_attn.weight", l); /* Conv1D: [in, out] */
    emit(fn, ctx, 1, 3 * h, 0, "h.%u.attn.c_attn.bias", l);
    emit(fn, ctx, 2, h, h, "h.%u.attn.c_proj.weight", l);
    emit(fn, ctx, 1, h, 0, "h.%u.attn.c_proj.bias", l);
    emit(fn, ctx, 1, h, 0, "h.%u.ln_2.weight", l);
    emit(fn, ctx, 1, h, 0, "h.%u.ln_2.bias", l);
    emit(fn, ctx, 2, h, in, "h.%u.mlp.c_fc.weight", l);
    emit(fn, ctx, 1, in, 0, "h.%u.mlp.c_fc.bias", l);
    emit(fn, ctx, 2, in, h, "h.%u.mlp.c_proj.weight", l);
    emit(fn, ctx, 1, h, 0, "h.%u.mlp.c_proj.bias", l);
  }
  emit(fn, ctx, 1, h, 0, "ln_f.weight");
  emit(fn, ctx, 1, h, 0, "ln_f.bias");
  return 4 + 12 * (size_t)c->num_hidden_layers;
}

static size_t specs_llama(const ot_model_config *c, model_spec_fn fn, void *ctx) {
  uint64_t h = c->hidden_size, in = c->intermediate_size;
  uint64_t q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim;
  emit(fn, ctx, 2, c->vocab_size, h, "model.embed_tokens.weight");
  for (uint32_t l = 0; l < c->num_hidden_layers; l++) {
    emit(fn, ctx, 2, q, h, "model.layers.%u.self_attn.q_proj.weight", l); /* Linear: [out, in] */
    emit(fn, ctx, 2, kv, h, "model.layers.%u.self_attn.k_proj.weight", l);
    emit(fn, ctx, 2, kv, h, "model.layers.%u.self_attn.v_proj.weight", l);
    emit(fn, ctx, 2, h, q, "model.layers.%u.self_attn.o_proj.weight", l);
    emit(fn, ctx, 2, in, h, "model.layers.%u.mlp.gate_proj.weight", l);
    emit(fn, ctx, 2, in, h, "model.layers.%u.mlp.up_proj.weight", l);
    emit(fn, ctx, 2, h, in, "model.layers.%u.mlp.down_proj.weight", l);
    emit(fn, ctx, 1, h, 0, "model.layers.%u.input_layernorm.weight", l);
    emit(fn, ctx, 1, h, 0, "model.layers.%u.post_attention_layernorm.weight", l);
  }
  emit(fn, ctx, 1, h, 0, "model.norm.weight");
  size_t n = 2 + 9 * (size_t)c->num_hidden_layers;
  if (!c->tie_word_embeddings) {
    emit(fn, ctx, 2, c->vocab_size, h, "lm_head.weight");
    n++;
  }
  return n;
}

size_t model_specs_each(const ot_model_config *c, model_spec_fn fn, void *ctx) {
  return c->family == OT_MODEL_LLAMA ? specs_llama(c, fn, ctx) : specs_gpt2(c, fn, ctx);
}

static void spec_sum(void *ctx, const ot_model_tensor_spec *s) {
  *(uint64_t *)ctx += s->ndim > 1 ? s->shape[0] * s->shape[1] : s->shape[0];
}

uint64_t ot_model_config_param_count(const ot_model_config *c) {
  if (!c || ot_model_config_validate(c, NULL, NULL) != OT_OK) return 0;
  uint64_t n = 0;
  model_specs_each(c, spec_sum, &n);
  return n;
}

typedef struct {
  ot_model_tensor_spec *specs;
  size_t n;
} spec_list;

static void spec_collect(void *ctx, const ot_model_tensor_spec *s) {
  spec_list *l = ctx;
  l->specs[l->n++] = *s;
}

ot_status ot_model_tensor_specs(const ot_model_config *c, ot_model_tensor_spec **specs, size_t *count,
                                ot_error *err) {
  *specs = NULL;
  *count = 0;
  ot_status s = ot_model_config_validate(c, NULL, err);
  if (s != OT_OK) return s;
  size_t n = model_specs_each(c, NULL, NULL);
  spec_list l = {calloc(n, sizeof *l.specs), 0};
  if (!l.specs) return ot_error_set(err, OT_ENOMEM, "model tensor list: out of memory (%zu tensors)", n);
  model_specs_each(c, spec_collect, &l);
  *specs = l.specs;
  *count = l.n;
  return OT_OK;
}

/* ---- config.json ------------------------------------------------------------------------ */

typedef struct {
  cfg_check k;
  const cJSON *root;
} cfg_reader;

/* An optional non-negative integer key; absent or null leaves *out unchanged. */
static void read_uint(cfg_reader *r, const char *key, uint32_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
  if (!v || cJSON_IsNull(v)) return;
  if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) v = cJSON_GetArrayItem(v, 0); /* eos lists */
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
  if (!cJSON_IsNumber(v) || d < 0 || d > 4294967295.0 || d != floor(d)) {
    check_fail(&r->k, OT_EPARSE, "key '%s' must be a non-negative integer", key);
    return;
  }
  *out = (uint32_t)d;
}

static void read_float(cfg_reader *r, const char *key, float *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
  if (!v || cJSON_IsNull(v)) return;
  if (!cJSON_IsNumber(v)) { check_fail(&r->k, OT_EPARSE, "key '%s' must be a number", key); return; }
  *out = (float)v->valuedouble;
}

static void read_bool(cfg_reader *r, const char *key, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
  if (!v || cJSON_IsNull(v)) return;
  if (!cJSON_IsBool(v)) { check_fail(&r->k, OT_EPARSE, "key '%s' must be true or false", key); return; }
  *out = cJSON_IsTrue(v);
}

static const char *read_string(cfg_reader *r, const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return NULL;
  if (!cJSON_IsString(v)) { check_fail(&r->k, OT_EPARSE, "key '%s' must be a string", key); return NULL; }
  return v->valuestring;
}

static void require(cfg_reader *r, const char *key) {
  if (!cJSON_GetObjectItemCaseSensitive(r->root, key))
    check_fail(&r->k, OT_EPARSE, "missing key '%s'", key);
}

static void check_activation(cfg_reader *r, const char *key, const char *const *ok, size_t n) {
  const char *act = read_string(r, r->root, key);
  if (!act) return;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(act, ok[i])) return;
  check_fail(&r->k, OT_EUNSUPPORTED, "%s '%.40s' is not supported, expected '%s'", key, act, ok[0]);
}

static void parse_gpt2(cfg_reader *r, ot_model_config *c) {
  static const char *const acts[] = {"gelu_new", "gelu_pytorch_tanh"};
  *c = cfg_gpt2("gpt2", 768, 12, 12);
  const char *keys[] = {"n_embd", "n_layer", "n_head", "vocab_size"};
  for (size_t i = 0; i < 4; i++) require(r, keys[i]);
  read_uint(r, "vocab_size", &c->vocab_size);
  read_uint(r, "n_ctx", &c->max_position_embeddings);
  read_uint(r, "n_positions", &c->max_position_embeddings);
  read_uint(r, "n_embd", &c->hidden_size);
  read_uint(r, "n_layer", &c->num_hidden_layers);
  read_uint(r, "n_head", &c->n_heads);
  c->n_kv_heads = c->n_heads;
  c->head_dim = c->n_heads ? c->hidden_size / c->n_heads : 0;
  c->intermediate_size = 4 * c->hidden_size;
  read_uint(r, "n_inner", &c->intermediate_size);
  read_float(r, "layer_norm_epsilon", &c->norm_eps);
  read_float(r, "initializer_range", &c->initializer_range);
  read_bool(r, "tie_word_embeddings", &c->tie_word_embeddings);
  read_uint(r, "bos_token_id", &c->bos_token_id);
  read_uint(r, "eos_token_id", &c->eos_token_id);
  check_activation(r, "activation_function", acts, 2);
}

static void parse_rope_scaling(cfg_reader *r, ot_model_config *c) {
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
  if (!rs || cJSON_IsNull(rs)) return;
  if (!cJSON_IsObject(rs)) { check_fail(&r->k, OT_EPARSE, "key 'rope_scaling' must be an object or null"); return; }
  const char *type = read_string(r, rs, "rope_type");
  if (!type) type = read_string(r, rs, "type");
  if (!type || strcmp(type, "llama3")) {
    check_fail(&r->k, OT_EUNSUPPORTED, "rope_scaling type '%.40s' is not supported, expected 'llama3' or null",
               type ? type : "(none)");
    return;
  }
  cfg_reader sub = {r->k, rs};
  c->rope_scaling = OT_ROPE_SCALING_LLAMA3;
  read_float(&sub, "factor", &c->rope_factor);
  read_float(&sub, "low_freq_factor", &c->rope_low_freq_factor);
  read_float(&sub, "high_freq_factor", &c->rope_high_freq_factor);
  read_uint(&sub, "original_max_position_embeddings", &c->rope_original_max_position_embeddings);
  r->k.status = sub.k.status;
}

static void parse_llama(cfg_reader *r, ot_model_config *c) {
  static const char *const acts[] = {"silu"};
  memset(c, 0, sizeof *c);
  c->family = OT_MODEL_LLAMA;
  c->norm_eps = 1e-6f;
  c->rope_theta = 10000.0f;
  c->initializer_range = 0.02f;
  c->max_position_embeddings = 2048;
  c->bos_token_id = 1;
  c->eos_token_id = 2;
  const char *keys[] = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                        "vocab_size"};
  for (size_t i = 0; i < 5; i++) require(r, keys[i]);
  read_uint(r, "vocab_size", &c->vocab_size);
  read_uint(r, "max_position_embeddings", &c->max_position_embeddings);
  read_uint(r, "hidden_size", &c->hidden_size);
  read_uint(r, "num_hidden_layers", &c->num_hidden_layers);
  read_uint(r, "num_attention_heads", &c->n_heads);
  c->n_kv_heads = c->n_heads;
  read_uint(r, "num_key_value_heads", &c->n_kv_heads);
  c->head_dim = c->n_heads ? c->hidden_size / c->n_heads : 0;
  read_uint(r, "head_dim", &c->head_dim);
  read_uint(r, "intermediate_size", &c->intermediate_size);
  read_float(r, "rms_norm_eps", &c->norm_eps);
  read_float(r, "rope_theta", &c->rope_theta);
  read_float(r, "initializer_range", &c->initializer_range);
  read_bool(r, "tie_word_embeddings", &c->tie_word_embeddings);
  read_uint(r, "bos_token_id", &c->bos_token_id);
  read_uint(r, "eos_token_id", &c->eos_token_id);
  check_activation(r, "hidden_act", acts, 1);
  bool bias = false;
  read_bool(r, "attention_bias", &bias);
  read_bool(r, "mlp_bias", &bias);
  if (bias) check_fail(&r->k, OT_EUNSUPPORTED, "attention_bias/mlp_bias true is not supported (Llama has none)");
  parse_rope_scaling(r, c);
}

ot_status ot_model_config_parse(const char *json, size_t len, const char *origin, ot_model_config *out,
                                ot_error *err) {
  cfg_reader r = {{origin ? origin : "config.json", err, OT_OK}, NULL};
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ot_error_set(err, OT_EPARSE, "%s: not a JSON object (expected a Hugging Face config.json)", r.k.origin);
  }
  r.root = root;
  const char *type = read_string(&r, root, "model_type");
  ot_model_config c;
  if (type && !strcmp(type, "gpt2")) parse_gpt2(&r, &c);
  else if (type && !strcmp(type, "llama")) parse_llama(&r, &c);
  else
    check_fail(&r.k, type ? OT_EUNSUPPORTED : OT_EPARSE, "model_type '%.40s', expected 'gpt2' or 'llama'",
               type ? type : "(missing)");
  if (r.k.status == OT_OK) {
    const char *name = read_string(&r, root, "_name_or_path");
    snprintf(c.name, sizeof c.name, "%s", name && *name ? name : type);
  }
  cJSON_Delete(root);
  if (r.k.status != OT_OK) return r.k.status;
  ot_status s = ot_model_config_validate(&c, r.k.origin, err);
  if (s == OT_OK) *out = c;
  return s;
}

ot_status ot_model_config_load(const char *spec, ot_model_config *out, ot_error *err) {
  if (!spec) return ot_error_set(err, OT_EINVAL, "model config: NULL name");
  struct stat st;
  if (stat(spec, &st) != 0) {
    size_t n = strlen(spec);
    if (strchr(spec, '/') || (n > 5 && !strcmp(spec + n - 5, ".json")))
      return ot_error_set(err, OT_EIO, "%s: no such file or directory (expected a config.json, a directory "
                          "holding one, or a preset name)", spec);
    return ot_model_config_preset(spec, out, err);
  }
  char path[4096];
  if (S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/config.json", spec);
  else snprintf(path, sizeof path, "%s", spec);
  char *text = NULL;
  size_t n = 0;
  ot_status s = ot_file_read(path, &text, &n, err);
  if (s != OT_OK) return s;
  s = ot_model_config_parse(text, n, path, out, err);
  free(text);
  return s;
}

/* ---- writing ---------------------------------------------------------------------------- */

static void add_num(cJSON *o, const char *key, double v) { cJSON_AddNumberToObject(o, key, v); }

/* The shortest decimal that reads back as the same float ("1e-05", not "9.99999975e-06"). */
static void add_float(cJSON *o, const char *key, float v) {
  char buf[32];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  cJSON_AddRawToObject(o, key, buf);
}

static void json_gpt2(cJSON *o, const ot_model_config *c) {
  cJSON_AddStringToObject(o, "model_type", "gpt2");
  cJSON_AddStringToObject(o, "activation_function", "gelu_new");
  add_num(o, "vocab_size", c->vocab_size);
  add_num(o, "n_positions", c->max_position_embeddings);
  add_num(o, "n_embd", c->hidden_size);
  add_num(o, "n_layer", c->num_hidden_layers);
  add_num(o, "n_head", c->n_heads);
  add_num(o, "n_inner", c->intermediate_size);
  add_float(o, "layer_norm_epsilon", c->norm_eps);
}

static void json_llama(cJSON *o, const ot_model_config *c) {
  cJSON_AddStringToObject(o, "model_type", "llama");
  cJSON_AddStringToObject(o, "hidden_act", "silu");
  add_num(o, "vocab_size", c->vocab_size);
  add_num(o, "max_position_embeddings", c->max_position_embeddings);
  add_num(o, "hidden_size", c->hidden_size);
  add_num(o, "num_hidden_layers", c->num_hidden_layers);
  add_num(o, "num_attention_heads", c->n_heads);
  add_num(o, "num_key_value_heads", c->n_kv_heads);
  add_num(o, "head_dim", c->head_dim);
  add_num(o, "intermediate_size", c->intermediate_size);
  add_float(o, "rms_norm_eps", c->norm_eps);
  add_float(o, "rope_theta", c->rope_theta);
  if (c->rope_scaling == OT_ROPE_SCALING_LLAMA3) {
    cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
    if (!rs) return;
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    add_float(rs, "factor", c->rope_factor);
    add_float(rs, "low_freq_factor", c->rope_low_freq_factor);
    add_float(rs, "high_freq_factor", c->rope_high_freq_factor);
    add_num(rs, "original_max_position_embeddings", c->rope_original_max_position_embeddings);
  }
}

ot_status ot_model_config_to_json(const ot_model_config *c, char **json, ot_error *err) {
  *json = NULL;
  ot_status s = ot_model_config_validate(c, NULL, err);
  if (s != OT_OK) return s;
  cJSON *o = cJSON_CreateObject();
  if (!o) return ot_error_set(err, OT_ENOMEM, "model config: out of memory");
  cJSON_AddStringToObject(o, "_name_or_path", c->name);
  if (c->family == OT_MODEL_LLAMA) json_llama(o, c);
  else json_gpt2(o, c);
  cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
  add_float(o, "initializer_range", c->initializer_range);
  add_num(o, "bos_token_id", c->bos_token_id);
  add_num(o, "eos_token_id", c->eos_token_id);
  *json = cJSON_Print(o);
  cJSON_Delete(o);
  return *json ? OT_OK : ot_error_set(err, OT_ENOMEM, "model config: out of memory");
}

ot_status ot_model_config_save(const ot_model_config *c, const char *path, ot_error *err) {
  char *json = NULL;
  ot_status s = ot_model_config_to_json(c, &json, err);
  if (s != OT_OK) return s;
  size_t n = strlen(json);
  char *text = realloc(json, n + 2); /* end with a newline, as editors do */
  if (!text) { free(json); return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path); }
  text[n] = '\n';
  text[n + 1] = '\0';
  s = ot_file_write_atomic(path, text, n + 1, err);
  free(text);
  return s;
}
