/* Generation (src/model/generate.c) and the KV-cache support under it: attention over a KV
** cache (Skv > Sq) and kv_write compiled and run on the simulator against the reference
** evaluator; a device program change that keeps tensors (ot_device_load_keep); greedy
** generation in fp32 mode token-identical to PyTorch (tiny GPT-2, tiny Llama); a GPT-2 124M-
** shaped model from a Hugging Face-layout safetensors file; sampling determinism; errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "compiler/graph.h"
#include "compiler/device_io.h"
#include "model/generate.h"
#include "model/torch_model.h"

/* ---- compiled graph vs reference ------------------------------------------------------------ */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float leaf_value(uint64_t *s, ot_dtype dt) {
  float v = -1.0f + 2.0f * (float)((double)(rng_next(s) >> 11) / 9007199254740992.0);
  return dt == OT_DT_BF16 ? ot_bf16_to_f32(ot_f32_to_bf16(v)) : v;
}




/* |got - ref| <= tol * max|ref| + tol * |ref| per element. */
static void compare(const char *label, const char *name, size_t n, const float *got, const float *ref, double tol) {
  double scale = 0, worst = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
  if (scale == 0) scale = 1;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= tol * scale + tol * fabs(ref[i]))) {
      fprintf(stderr, "%s: %s[%zu] = %.9g, reference %.9g\n", label, name, i, got[i], ref[i]);
      fail();
    }
    if (e / scale > worst) worst = e / scale;
  }
  printf("  %-40s %-6s max err/scale %.3g\n", label, name, worst);
}

/* Random leaves, reference, compile, run (race check, NaN trap), compare the outputs; `cache`
** (if not NULL) is the in-place kv_write result, read back under the cache tensor's name. */
static void run_graph(const char *label, ot_graph *g, ot_dtype mm, double tol, const char *cache, ot_tid cache_out) {
  assert_int_equal(ot_graph_status(g), OT_OK);
  float **vals = calloc(g->n_t, sizeof *vals);
  assert_non_null(vals);
  uint64_t seed = 11;
  for (uint32_t t = 0; t < g->n_t; t++) {
    if (g->t[t].producer >= 0) continue;
    size_t n = (size_t)ot_gtensor_elems(&g->t[t]);
    vals[t] = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(vals[t]);
    for (size_t i = 0; i < n; i++) vals[t][i] = leaf_value(&seed, (ot_dtype)g->t[t].dtype);
  }
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, vals, &err), OT_OK);
  ot_program *p = dev_compile(g, mm);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  for (uint32_t t = 0; t < g->n_t; t++)
    if (g->t[t].role == OT_GROLE_INPUT || g->t[t].role == OT_GROLE_WEIGHT) dev_put(d, &g->t[t], vals[t]);
  dev_run_checked(d, label, true);
  for (uint32_t t = 0; t < g->n_t; t++) {
    bool is_cache = cache && (ot_tid)t == cache_out;
    if (!g->t[t].is_output && !is_cache) continue;
    size_t n = (size_t)ot_gtensor_elems(&g->t[t]);
    float *got = malloc(n * sizeof *got + 4);
    assert_non_null(got);
    dev_get(d, is_cache ? cache : g->t[t].name, &g->t[t], got);
    compare(label, is_cache ? cache : g->t[t].name, n, got, vals[t], tol);
    free(got);
  }
  ot_device_close(d);
  ot_program_free(p);
  for (uint32_t t = 0; t < g->n_t; t++) free(vals[t]);
  free(vals);
}

/* ---- attention over a KV cache ---------------------------------------------------------------- */
typedef struct {
  int64_t B, Hq, Hkv, Sq, Skv, D;
  bool causal, bf16;
} kv_case;

static void kv_attn_run(const kv_case *c) {
  char label[128];
  snprintf(label, sizeof label, "attn_kv B%lld Hq%lld Hkv%lld Sq%lld Skv%lld D%lld%s%s", (long long)c->B,
           (long long)c->Hq, (long long)c->Hkv, (long long)c->Sq, (long long)c->Skv, (long long)c->D,
           c->causal ? " causal" : "", c->bf16 ? " bf16" : "");
  ot_graph *g = ot_graph_new();
  int64_t qs[4] = {c->B, c->Hq, c->Sq, c->D}, ks[4] = {c->B, c->Hkv, c->Skv, c->D};
  ot_dtype dt = c->bf16 ? OT_DT_BF16 : OT_DT_FP32;
  ot_tid q = ot_graph_input(g, "q", dt, 4, qs), k = ot_graph_input(g, "k", dt, 4, ks);
  ot_tid v = ot_graph_input(g, "v", dt, 4, ks);
  ot_graph_output(g, ot_graph_attention(g, "attn", q, k, v, c->causal, 0.0f), "y");
  run_graph(label, g, c->bf16 ? OT_DT_BF16 : OT_DT_FP32, c->bf16 ? 2e-2 : 1e-5, NULL, OT_TID_NONE);
  ot_graph_free(g);
}

static void test_attention_kv(void **state) {
  (void)state;
  kv_case cases[] = {
    {1, 1, 1, 1, 5, 16, true, false},     {1, 2, 2, 1, 130, 64, true, false},
    {2, 4, 2, 3, 37, 16, true, false},    {1, 2, 1, 1, 600, 64, true, false},
    {1, 2, 2, 5, 1030, 32, true, true},   {1, 2, 2, 4, 300, 64, false, false},
    {1, 1, 1, 130, 700, 16, true, false}, {1, 3, 1, 17, 513, 128, true, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) kv_attn_run(&cases[i]);
}

/* Shape rule: fewer keys than queries is an error; autodiff refuses a KV cache. */
static void test_attention_kv_rules(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  int64_t qs[4] = {1, 2, 8, 16}, ks[4] = {1, 2, 4, 16};
  ot_tid q = ot_graph_input(g, "q", OT_DT_FP32, 4, qs), k = ot_graph_input(g, "k", OT_DT_FP32, 4, ks);
  assert_int_equal(ot_graph_attention(g, "attn", q, k, k, true, 0.0f), OT_TID_NONE);
  assert_non_null(strstr(ot_graph_error(g), "Skv >= S"));
  ot_graph_free(g);

  g = ot_graph_new();
  int64_t q1[4] = {1, 2, 1, 16}, k1[4] = {1, 2, 4, 16}, one = 1;
  ot_tid qw = ot_graph_weight(g, "q", OT_DT_FP32, 4, q1);
  ot_tid kk = ot_graph_input(g, "k", OT_DT_FP32, 4, k1);
  ot_tid y = ot_graph_attention(g, "attn", qw, kk, kk, true, 0.0f);
  ot_tid loss = ot_graph_reduce_sum(g, "loss", ot_graph_reshape(g, "flat", y, 1, (int64_t[]){32}), 0, true);
  (void)one;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "KV cache"));
  ot_graph_free(g);
}

/* ---- kv_write ------------------------------------------------------------------------------------ */
static void kv_write_run(int64_t B, int64_t H, int64_t smax, int64_t S, int64_t D, int64_t pos, ot_dtype dt) {
  char label[128];
  snprintf(label, sizeof label, "kv_write B%lld H%lld Smax%lld S%lld D%lld pos%lld %s", (long long)B, (long long)H,
           (long long)smax, (long long)S, (long long)D, (long long)pos, ot_dtype_name(dt));
  ot_graph *g = ot_graph_new();
  int64_t cs[4] = {B, H, smax, D}, ns[4] = {B, H, S, D};
  ot_tid c = ot_graph_input(g, "cache", dt, 4, cs), n = ot_graph_input(g, "new", dt, 4, ns);
  ot_tid y = ot_graph_kv_write(g, "kvw", c, n, pos);
  assert_int_not_equal(y, OT_TID_NONE);
  run_graph(label, g, OT_DT_FP32, 0.0, "cache", y);
  ot_graph_free(g);
}

static void test_kv_write(void **state) {
  (void)state;
  kv_write_run(1, 1, 8, 1, 16, 0, OT_DT_FP32);
  kv_write_run(2, 3, 16, 1, 8, 15, OT_DT_FP32);
  kv_write_run(2, 2, 32, 5, 64, 7, OT_DT_BF16);
  /* then attention reads the updated cache in the same program */
  ot_graph *g = ot_graph_new();
  int64_t cs[4] = {1, 2, 16, 32}, ns[4] = {1, 2, 1, 32}, kv[4] = {1, 2, 6, 32};
  ot_tid kc = ot_graph_input(g, "k_cache", OT_DT_FP32, 4, cs), vc = ot_graph_input(g, "v_cache", OT_DT_FP32, 4, cs);
  ot_tid q = ot_graph_input(g, "q", OT_DT_FP32, 4, ns), kn = ot_graph_input(g, "k_new", OT_DT_FP32, 4, ns);
  ot_tid vn = ot_graph_input(g, "v_new", OT_DT_FP32, 4, ns);
  ot_tid k2 = ot_graph_kv_write(g, "kw", kc, kn, 5), v2 = ot_graph_kv_write(g, "vw", vc, vn, 5);
  ot_tid ks = ot_graph_slice(g, "k_ctx", k2, 2, 0, 6), vs = ot_graph_slice(g, "v_ctx", v2, 2, 0, 6);
  (void)kv;
  ot_graph_output(g, ot_graph_attention(g, "attn", q, ks, vs, true, 0.0f), "y");
  run_graph("kv_write + attention", g, OT_DT_FP32, 1e-5, "k_cache", k2);
  ot_graph_free(g);
}

static void test_kv_write_rules(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  int64_t cs[4] = {1, 2, 8, 16}, ns[4] = {1, 2, 2, 16};
  ot_tid c = ot_graph_input(g, "cache", OT_DT_FP32, 4, cs), n = ot_graph_input(g, "new", OT_DT_FP32, 4, ns);
  assert_int_equal(ot_graph_kv_write(g, "kvw", c, n, 7), OT_TID_NONE);
  assert_non_null(strstr(ot_graph_error(g), "outside the cache"));
  ot_graph_free(g);
  g = ot_graph_new();
  c = ot_graph_input(g, "cache", OT_DT_FP32, 4, cs);
  n = ot_graph_input(g, "new", OT_DT_BF16, 4, ns);
  assert_int_equal(ot_graph_kv_write(g, "kvw", c, n, 0), OT_TID_NONE);
  assert_non_null(strstr(ot_graph_error(g), "cache's dtype"));
  ot_graph_free(g);
}

/* ---- ot_device_load_keep ------------------------------------------------------------------------ */
/* y = x * w (+ b): programs with and without b, x of two lengths. */
static ot_program *keep_prog(int64_t rows, bool bias, bool w_bf16) {
  ot_graph *g = ot_graph_new();
  int64_t xs[2] = {rows, 8}, ws[1] = {8};
  ot_tid x = ot_graph_input(g, "x", OT_DT_FP32, 2, xs);
  ot_tid w = ot_graph_weight(g, "w", w_bf16 ? OT_DT_BF16 : OT_DT_FP32, 1, ws);
  if (w_bf16) w = ot_graph_cast(g, "w32", w, OT_DT_FP32);
  ot_tid y = ot_graph_mul(g, "mul", x, w);
  if (bias) y = ot_graph_add(g, "add", y, ot_graph_weight(g, "b", OT_DT_FP32, 1, ws));
  ot_graph_output(g, y, "y");
  ot_program *p = dev_compile(g, OT_DT_FP32);
  ot_graph_free(g);
  return p;
}

static void test_load_keep(void **state) {
  (void)state;
  ot_error err;
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  ot_program *a = keep_prog(4, true, false), *b = keep_prog(2, false, false), *c = keep_prog(2, false, true);
  float w[8], bb[8], x[32], y[32];
  for (int i = 0; i < 8; i++) { w[i] = (float)i; bb[i] = 100.0f; }
  for (int i = 0; i < 32; i++) x[i] = 1.0f;
  assert_int_equal(ot_device_load(d, a), OT_OK);
  assert_int_equal(ot_device_write(d, "w", OT_DT_FP32, w, sizeof w), OT_OK);
  assert_int_equal(ot_device_write(d, "b", OT_DT_FP32, bb, sizeof bb), OT_OK);
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, x, sizeof x), OT_OK);
  assert_int_equal(ot_device_run(d, NULL), OT_OK);
  /* b keeps w (same name, dtype, shape); x [2, 8] differs from [4, 8]: no value */
  assert_int_equal(ot_device_load_keep(d, b), OT_OK);
  ot_tensor_desc t;
  assert_int_equal(ot_device_tensor_find(d, "w", &t), OT_OK);
  assert_true(t.has_value);
  assert_int_equal(ot_device_tensor_find(d, "x", &t), OT_OK);
  assert_false(t.has_value);
  assert_int_equal(ot_device_run(d, NULL), OT_EINVAL); /* x missing */
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, x, 16 * sizeof(float)), OT_OK);
  assert_int_equal(ot_device_run(d, NULL), OT_OK);
  assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, y, 16 * sizeof(float)), OT_OK);
  for (int i = 0; i < 16; i++) assert_true(y[i] == (float)(i % 8));
  /* w as bf16: the dtype differs, nothing kept; a plain load keeps nothing either */
  assert_int_equal(ot_device_load_keep(d, c), OT_OK);
  assert_int_equal(ot_device_tensor_find(d, "w", &t), OT_OK);
  assert_false(t.has_value);
  assert_int_equal(ot_device_load_keep(d, b), OT_OK);
  assert_int_equal(ot_device_tensor_find(d, "w", &t), OT_OK);
  assert_false(t.has_value);
  assert_int_equal(ot_device_load_keep(d, NULL), OT_EINVAL);
  ot_program_free(a);
  ot_program_free(b);
  ot_program_free(c);
  ot_device_close(d);
}

/* ---- generation vs PyTorch ---------------------------------------------------------------------- */
static void gen_expect(ot_status s, const ot_error *err, const char *needle) {
  if (s == OT_OK) fprintf(stderr, "accepted, expected an error with '%s'\n", needle);
  assert_int_not_equal(s, OT_OK);
  if (!strstr(err->msg, needle)) fprintf(stderr, "expected '%s' in: %s\n", needle, err->msg);
  assert_non_null(strstr(err->msg, needle));
}

static generator *gen_open_ok(const ot_model_config *c, const char *weights, uint32_t batch, uint32_t ctx,
                              const gen_opts *o) {
  generator *g = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = gen_open(c, weights, 7, batch, ctx, o, &g, &err);
  if (s) fprintf(stderr, "gen_open: %s\n", err.msg);
  assert_int_equal(s, OT_OK);
  return g;
}

/* Greedy fp32 generation of n tokens after 2 prompts of 5 tokens, against torch's. */
static void gen_vs_torch(const char *preset) {
  enum { B = 2, L = 5, N = 20 };
  ot_model_config c;
  ot_error err;
  assert_int_equal(ot_model_config_preset(preset, &c, &err), OT_OK);
  const char *dir = mt_dir(preset);
  ot_model_params p;
  tm_params(&c, 3, &p);
  tm_write_model(dir, &p);
  ot_model_params_free(&p);
  uint32_t prompts[B * L] = {10, 200, 33, 7, 99, 5, 5, 250, 1, 64};
  char job[256];
  snprintf(job, sizeof job, "{\"prompts\": [[10, 200, 33, 7, 99], [5, 5, 250, 1, 64]], \"n\": %d}", N);
  mt_write(mt_path(dir, "job.json"), job, strlen(job));
  char args[1100];
  snprintf(args, sizeof args, "%s", dir);
  mt_python("generate_torch.py", args);
  size_t n = 0;
  char *ref = mt_read(mt_path(dir, "ref_ids.bin"), &n);
  assert_int_equal(n, B * N * sizeof(int32_t));
  gen_opts o;
  gen_opts_default(&o);
  o.fp32 = true;
  o.stop_at_eos = false;
  generator *g = gen_open_ok(&c, mt_path(dir, "weights.safetensors"), B, L + N, &o);
  uint32_t out[B * N];
  gen_stats st;
  ot_status s = gen_run(g, prompts, L, N, out, NULL, NULL, &st, &err);
  if (s) fprintf(stderr, "gen_run: %s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(st.new_tokens, N);
  assert_int_equal(st.steps, N);
  int32_t want[B * N];
  memcpy(want, ref, sizeof want);
  for (int i = 0; i < B * N; i++) {
    if ((int32_t)out[i] != want[i])
      fprintf(stderr, "%s row %d token %d: ours %u, torch %d\n", preset, i / N, i % N, out[i], want[i]);
    assert_int_equal(out[i], (uint32_t)want[i]);
  }
  printf("%s: %d x %d greedy tokens identical to torch; TTFT %.3f ms, TPOT %.3f ms simulated\n", preset, B, N,
         (double)st.prefill_ps * 1e-9, (double)st.decode_ps * 1e-9 / (N - 1));
  free(ref);
  gen_free(g);
}

static void test_greedy_gpt2_vs_torch(void **state) {
  (void)state;
  gen_vs_torch("gpt2-tiny");
}

static void test_greedy_llama_vs_torch(void **state) {
  (void)state;
  gen_vs_torch("llama-tiny");
}

/* ---- sampling ------------------------------------------------------------------------------------- */
static void sample_run(const ot_model_config *c, const gen_opts *o, uint32_t *out, uint32_t n) {
  generator *g = gen_open_ok(c, NULL, 1, 4 + n, o);
  uint32_t prompt[4] = {1, 2, 3, 4};
  ot_error err;
  assert_int_equal(gen_run(g, prompt, 4, n, out, NULL, NULL, NULL, &err), OT_OK);
  gen_free(g);
}

static void test_sampling_seeded(void **state) {
  (void)state;
  ot_model_config c;
  ot_error err;
  assert_int_equal(ot_model_config_preset("gpt2-tiny", &c, &err), OT_OK);
  gen_opts o;
  gen_opts_default(&o);
  o.stop_at_eos = false;
  o.temperature = 1.5f;
  o.top_k = 50;
  o.top_p = 0.95f;
  o.seed = 42;
  uint32_t a[12], b[12], d[12];
  sample_run(&c, &o, a, 12);
  sample_run(&c, &o, b, 12);
  assert_memory_equal(a, b, sizeof a);
  o.seed = 43;
  sample_run(&c, &o, d, 12);
  assert_memory_not_equal(a, d, sizeof a);
  /* the sampler itself: top-k 1 is greedy, top-p keeps the smallest sufficient set */
  float logits[5] = {0.0f, 3.0f, 1.0f, 3.0f, -2.0f};
  gen_cand cand[5];
  uint64_t rng = 1;
  gen_opts so;
  gen_opts_default(&so);
  assert_int_equal(gen_sample(logits, 5, &so, &rng, cand), 1); /* greedy: lowest id on ties */
  so.temperature = 1.0f;
  so.top_k = 1;
  for (int i = 0; i < 20; i++) assert_int_equal(gen_sample(logits, 5, &so, &rng, cand), 1);
  so.top_k = 0;
  so.top_p = 0.5f; /* ids 1 and 3 hold ~0.88 of the mass; id 1 alone ~0.44 < 0.5 */
  bool seen[5] = {false};
  for (int i = 0; i < 200; i++) seen[gen_sample(logits, 5, &so, &rng, cand)] = true;
  assert_true(seen[1] && seen[3] && !seen[0] && !seen[2] && !seen[4]);
}

/* ---- GPT-2 124M shapes, Hugging Face file layout ------------------------------------------------- */
/* The real gpt2 model.safetensors: Conv1D weights [in, out], no "transformer." prefix, and the
** causal-mask buffers "h.<l>.attn.bias" [1, 1, 1024, 1024]; random values.  2 layers (the 124M
** shapes otherwise), fp32 mode (the preparation program then only transposes the head) and 2
** tokens keep the full-mode run fast: the 50257 x 768 embedding dominates it. */
static void test_gpt2_124m_layout(void **state) {
  (void)state;
  ot_model_config c;
  ot_error err;
  assert_int_equal(ot_model_config_preset("gpt2", &c, &err), OT_OK);
  c.num_hidden_layers = 2;
  ot_model_params p;
  assert_int_equal(ot_model_params_alloc(&c, &p, &err), OT_OK);
  ot_model_params_init(&p, 5);
  size_t n = p.count + c.num_hidden_layers;
  ot_st_tensor *ts = calloc(n, sizeof *ts);
  float *mask = calloc(1024 * 1024, sizeof *mask);
  assert_non_null(ts);
  assert_non_null(mask);
  for (int i = 0; i < 1024; i++)
    for (int j = 0; j <= i; j++) mask[i * 1024 + j] = 1.0f;
  char names[2][32];
  for (size_t i = 0; i < p.count; i++) {
    ts[i].name = p.params[i].name;
    ts[i].dtype = OT_DT_FP32;
    ts[i].ndim = p.params[i].ndim;
    memcpy(ts[i].shape, p.params[i].shape, sizeof p.params[i].shape);
    ts[i].data = p.params[i].data;
  }
  for (uint32_t l = 0; l < c.num_hidden_layers; l++) {
    ot_st_tensor *t = &ts[p.count + l];
    snprintf(names[l], sizeof names[l], "h.%u.attn.bias", l);
    t->name = names[l];
    t->dtype = OT_DT_FP32;
    t->ndim = 4;
    t->shape[0] = t->shape[1] = 1;
    t->shape[2] = t->shape[3] = 1024;
    t->data = mask;
  }
  const char *path = mt_path(mt_dir("gpt2_124m"), "model.safetensors");
  const char *meta[] = {"format", "pt", NULL};
  assert_int_equal(ot_safetensors_save(path, ts, n, OT_DT_COUNT, meta, &err), OT_OK);
  free(ts);
  free(mask);
  ot_model_params_free(&p);
  gen_opts o;
  gen_opts_default(&o);
  o.stop_at_eos = false;
  o.fp32 = true;
  generator *g = gen_open_ok(&c, path, 1, 8, &o);
  uint32_t prompt[4] = {464, 2068, 7586, 21831}, out[2];
  gen_stats st;
  ot_status s = gen_run(g, prompt, 4, 2, out, NULL, NULL, &st, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(st.steps, 2);
  for (int i = 0; i < 2; i++) assert_true(out[i] < c.vocab_size);
  printf("gpt2 (2 layers, 124M shapes): tokens %u %u; TTFT %.3f ms, TPOT %.3f ms simulated, wall %.2f s (compile %.2f s, "
         "run %.2f s)\n", out[0], out[1], (double)st.prefill_ps * 1e-9, (double)st.decode_ps * 1e-9, st.wall_s,
         st.compile_s, st.run_s);
  gen_free(g);
}

/* ---- errors ---------------------------------------------------------------------------------------- */
static void test_generate_errors(void **state) {
  (void)state;
  ot_model_config c;
  ot_error err;
  generator *g = NULL;
  assert_int_equal(ot_model_config_preset("gpt2-tiny", &c, &err), OT_OK);
  gen_opts o;
  gen_opts_default(&o);
  /* longer than the context: at open and at run */
  gen_expect(gen_open(&c, NULL, 1, 1, c.max_position_embeddings + 1, &o, &g, &err), &err, "longer than the context");
  g = gen_open_ok(&c, NULL, 1, 10, &o);
  uint32_t prompt[12] = {0}, out[8];
  gen_expect(gen_run(g, prompt, 8, 3, out, NULL, NULL, NULL, &err), &err, "longer than the 10-token context");
  gen_expect(gen_run(g, prompt, 0, 3, out, NULL, NULL, NULL, &err), &err, "empty");
  prompt[1] = 999;
  gen_expect(gen_run(g, prompt, 2, 1, out, NULL, NULL, NULL, &err), &err, "outside the vocabulary");
  gen_free(g);
  /* weights: a missing file, and a file of another config (mismatched shapes) */
  gen_expect(gen_open(&c, "/nonexistent/model.safetensors", 1, 1, 4, &o, &g, &err), &err, "/nonexistent");
  ot_model_config other = c;
  other.hidden_size = 32;
  other.head_dim = 8;
  ot_model_params p;
  assert_int_equal(ot_model_params_alloc(&other, &p, &err), OT_OK);
  const char *path = mt_path(mt_dir("gen_errors"), "other.safetensors");
  assert_int_equal(ot_model_params_save(&p, path, OT_DT_FP32, &err), OT_OK);
  ot_model_params_free(&p);
  gen_expect(gen_open(&c, path, 1, 1, 4, &o, &g, &err), &err, "wte.weight");
  /* a configuration the chip cannot hold */
  ot_model_config big;
  assert_int_equal(ot_model_config_preset("gpt2", &big, &err), OT_OK);
  big.num_hidden_layers = 400;
  big.hidden_size = 4096;
  big.n_heads = 32;
  big.n_kv_heads = 32;
  big.head_dim = 128;
  big.intermediate_size = 16384;
  gen_expect(gen_open(&big, NULL, 1, 1, 8, &o, &g, &err), &err, "does not fit chip trn2");
  assert_non_null(strstr(err.msg, "GiB"));
}

/* ---- the command line ------------------------------------------------------------------------ */
static int cli_run(const char *args, const char *out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/opentrn generate %s > %s 2>&1", OT_BINARY_DIR, args, out);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_generate(void **state) {
  (void)state;
  const char *out = mt_path(mt_dir("gen_cli"), "out.txt");
  size_t n = 0;
  assert_int_equal(cli_run("--model llama-tiny --prompt 'Hello' --prompt 'World' --max-tokens 4 --temperature 0.7 "
                           "--top-k 20 --seed 5", out), 0);
  char *text = mt_read(out, &n);
  assert_non_null(strstr(text, "time to first token"));
  assert_non_null(strstr(text, "time per output token"));
  assert_non_null(strstr(text, "tokens/s"));
  assert_non_null(strstr(text, "host wall"));
  free(text);
  assert_int_equal(cli_run("--model gpt2-tiny --prompt 'Hello' --max-tokens 200", out), 1);
  text = mt_read(out, &n);
  assert_non_null(strstr(text, "longer than the context"));
  free(text);
  assert_int_equal(cli_run("--model gpt2-tiny --prompt 'ab' --prompt 'abc'", out), 1);
  text = mt_read(out, &n);
  assert_non_null(strstr(text, "same token count"));
  free(text);
  assert_int_equal(cli_run("--model gpt2-tiny --prompt x --bogus 1", out), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_attention_kv),
    cmocka_unit_test(test_attention_kv_rules),
    cmocka_unit_test(test_kv_write),
    cmocka_unit_test(test_kv_write_rules),
    cmocka_unit_test(test_load_keep),
    cmocka_unit_test(test_greedy_gpt2_vs_torch),
    cmocka_unit_test(test_greedy_llama_vs_torch),
    cmocka_unit_test(test_sampling_seeded),
    cmocka_unit_test(test_gpt2_124m_layout),
    cmocka_unit_test(test_generate_errors),
    cmocka_unit_test(test_cli_generate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
