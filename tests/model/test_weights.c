/* Model weights: seeded initialisation (deterministic, the documented statistics), saving and
** loading parameter sets in f32/bf16/f16 with the Hugging Face names, a GPT-2 checkpoint in
** GPT2LMHeadModel's layout written by Python (transformer. prefix, attn.bias buffers, bf16),
** and the check of a file against a configuration: missing tensors, wrong shapes and dtypes,
** unexpected tensors, each named with what was expected and what was found. */
#include "model_test.h"

#include <math.h>

static ot_model_params params(const char *preset, uint64_t seed) {
  ot_model_config c;
  assert_int_equal(ot_model_config_preset(preset, &c, NULL), OT_OK);
  ot_model_params p;
  assert_int_equal(ot_model_params_alloc(&c, &p, NULL), OT_OK);
  ot_model_params_init(&p, seed);
  return p;
}

static void stats(const ot_model_param *m, double *mean, double *std) {
  double s = 0, s2 = 0;
  for (uint64_t i = 0; i < m->count; i++) s += m->data[i], s2 += (double)m->data[i] * m->data[i];
  *mean = s / (double)m->count;
  *std = sqrt(s2 / (double)m->count - *mean * *mean);
}

static void test_init(void **state) {
  (void)state;
  ot_model_params a = params("gpt2-tiny", 42), b = params("gpt2-tiny", 42), c = params("gpt2-tiny", 43);
  assert_int_equal(a.total, ot_model_config_param_count(&a.config));
  assert_memory_equal(a.slab, b.slab, a.total * sizeof(float));
  assert_memory_not_equal(a.slab, c.slab, a.total * sizeof(float));
  double mean, std;
  stats(ot_model_params_find(&a, "wte.weight"), &mean, &std);
  assert_true(fabs(mean) < 0.002 && fabs(std - 0.02) < 0.001);
  stats(ot_model_params_find(&a, "h.1.mlp.c_proj.weight"), &mean, &std); /* 0.02 / sqrt(2 * 2 layers) */
  assert_true(fabs(std - 0.01) < 0.001);
  ot_model_param *ln = ot_model_params_find(&a, "h.0.ln_1.weight"), *bias = ot_model_params_find(&a, "h.0.ln_1.bias");
  for (uint64_t i = 0; i < ln->count; i++) assert_true(ln->data[i] == 1.0f && bias->data[i] == 0.0f);
  ot_model_param *cb = ot_model_params_find(&a, "h.0.attn.c_attn.bias");
  for (uint64_t i = 0; i < cb->count; i++) assert_true(cb->data[i] == 0.0f);
  assert_null(ot_model_params_find(&a, "lm_head.weight"));
  /* A tensor's values depend on the seed and its name only, not on the other tensors. */
  ot_model_config deeper = a.config;
  deeper.num_hidden_layers = 3;
  ot_model_params d;
  assert_int_equal(ot_model_params_alloc(&deeper, &d, NULL), OT_OK);
  ot_model_params_init(&d, 42);
  const char *same[] = {"wte.weight", "wpe.weight", "h.1.attn.c_attn.weight"};
  for (int i = 0; i < 3; i++)
    assert_memory_equal(ot_model_params_find(&d, same[i])->data, ot_model_params_find(&a, same[i])->data,
                        ot_model_params_find(&a, same[i])->count * sizeof(float));
  ot_model_params_free(&a);
  ot_model_params_free(&b);
  ot_model_params_free(&c);
  ot_model_params_free(&d);
  ot_model_params l = params("llama-tiny", 1);
  ot_model_param *n = ot_model_params_find(&l, "model.norm.weight");
  for (uint64_t i = 0; i < n->count; i++) assert_true(n->data[i] == 1.0f);
  stats(ot_model_params_find(&l, "lm_head.weight"), &mean, &std);
  assert_true(fabs(std - 0.02) < 0.002);
  ot_model_params_free(&l);
}

static void test_save_load(void **state) {
  (void)state;
  const char *dir = mt_dir("weights");
  const char *presets[] = {"gpt2-tiny", "llama-tiny"};
  const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16};
  for (int k = 0; k < 2; k++)
    for (int t = 0; t < 3; t++) {
      ot_model_params p = params(presets[k], 7);
      const char *path = mt_path(dir, "m.safetensors");
      assert_int_equal(ot_model_params_save(&p, path, types[t], NULL), OT_OK);
      ot_model_params q;
      ot_error err;
      ot_error_clear(&err);
      ot_status s = ot_model_params_load(&p.config, path, &q, &err);
      if (s) fprintf(stderr, "%s\n", err.msg);
      assert_int_equal(s, OT_OK);
      assert_int_equal(q.total, p.total);
      for (uint64_t i = 0; i < p.total; i++) {
        float want = p.slab[i];
        if (types[t] == OT_DT_BF16) want = ot_bf16_to_f32(ot_f32_to_bf16(want));
        if (types[t] == OT_DT_FP16) want = ot_fp16_to_f32(ot_f32_to_fp16(want));
        assert_true(q.slab[i] == want);
      }
      ot_safetensors *st = NULL;
      assert_int_equal(ot_safetensors_open(path, &st, NULL), OT_OK);
      assert_int_equal(ot_safetensors_check(st, &p.config, types[t], NULL), OT_OK);
      assert_string_equal(ot_safetensors_metadata(st, "format"), "pt");
      ot_safetensors_close(st);
      ot_model_params_free(&q);
      ot_model_params_free(&p);
    }
  ot_model_params p = params("gpt2-tiny", 1);
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_model_params_save(&p, mt_path(dir, "x"), OT_DT_INT8, &err), &err, "cannot save parameters as int8", NULL);
  ot_model_params_free(&p);
}

/* GPT2LMHeadModel's own layout, written by Python: "transformer." names, causal-mask buffers. */
static void test_python_gpt2_checkpoint(void **state) {
  (void)state;
  const char *dir = mt_dir("st_py");
  char args[600];
  snprintf(args, sizeof args, "write %s", dir);
  mt_python("st_ref.py", args);
  ot_model_config c;
  assert_int_equal(ot_model_config_preset("gpt2-tiny", &c, NULL), OT_OK);
  ot_model_params p;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_model_params_load(&c, mt_path(dir, "py_gpt2_tiny.safetensors"), &p, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  ot_model_param *m = ot_model_params_find(&p, "h.1.mlp.c_fc.weight");
  for (uint64_t i = 0; i < m->count; i++) {
    float want = (float)((double)(i % 97) * 0.37 - 11.5 + 1e-3 * (double)i);
    assert_true(m->data[i] == ot_bf16_to_f32(ot_f32_to_bf16(want)));
  }
  ot_model_params_free(&p);
  /* The same file is not a llama, nor a 3-layer gpt2. */
  ot_safetensors *st = NULL;
  assert_int_equal(ot_safetensors_open(mt_path(dir, "py_gpt2_tiny.safetensors"), &st, NULL), OT_OK);
  c.num_hidden_layers = 3;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_check(st, &c, OT_DT_COUNT, &err), &err, "py_gpt2_tiny.safetensors: missing tensor "
            "'h.2.ln_1.weight' (expected shape [64], F32, BF16 or F16)", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_check(st, &c, OT_DT_FP32, &err), &err,
            "tensor 'transformer.wte.weight': found BF16 [257, 64], expected F32 [257, 64]", NULL);
  assert_int_equal(ot_model_config_preset("llama-tiny", &c, NULL), OT_OK);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_check(st, &c, OT_DT_COUNT, &err), &err, "missing tensor 'model.embed_tokens.weight'",
            "unexpected tensor 'transformer.wte.weight' (BF16 [257, 64]): not part of a llama model with 2 layers",
            "more missing tensors", "more unexpected tensors", NULL);
  ot_safetensors_close(st);
}

/* Write a gpt2-tiny file with one tensor changed by edit(), then check it. */
static void check_edited(void (*edit)(ot_st_tensor *ts, size_t *n, float *spare), const char *n1, const char *n2) {
  const char *dir = mt_dir("weights");
  ot_model_params p = params("gpt2-tiny", 3);
  ot_st_tensor ts[64];
  memset(ts, 0, sizeof ts);
  size_t n = p.count;
  for (size_t i = 0; i < n; i++)
    ts[i] = (ot_st_tensor){.name = p.params[i].name, .dtype = OT_DT_FP32, .ndim = p.params[i].ndim,
                           .shape = {p.params[i].shape[0], p.params[i].shape[1]}, .data = p.params[i].data};
  edit(ts, &n, p.slab);
  const char *path = mt_path(dir, "edited.safetensors");
  assert_int_equal(ot_safetensors_save(path, ts, n, OT_DT_COUNT, NULL, NULL), OT_OK);
  ot_model_params q;
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_model_params_load(&p.config, path, &q, &err), &err, "edited.safetensors", n1, n2, NULL);
  assert_null(q.slab);
  ot_model_params_free(&p);
}

static void drop_c_fc_bias(ot_st_tensor *ts, size_t *n, float *spare) {
  (void)spare;
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(ts[i].name, "h.1.mlp.c_fc.bias")) { memmove(ts + i, ts + i + 1, (*n - i - 1) * sizeof *ts); (*n)--; }
}

static void transpose_c_attn(ot_st_tensor *ts, size_t *n, float *spare) {
  (void)spare;
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(ts[i].name, "h.0.attn.c_attn.weight")) { ts[i].shape[0] = 192; ts[i].shape[1] = 64; }
}

static void int_ln_f(ot_st_tensor *ts, size_t *n, float *spare) {
  (void)spare;
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(ts[i].name, "ln_f.weight")) ts[i].dtype = OT_DT_INT32;
}

static void add_extra(ot_st_tensor *ts, size_t *n, float *spare) {
  ts[(*n)++] = (ot_st_tensor){.name = "h.0.attn.rotary", .dtype = OT_DT_FP32, .ndim = 1, .shape = {4}, .data = spare};
  ts[(*n)++] = (ot_st_tensor){.name = "h.0.attn.bias", .dtype = OT_DT_FP32, .ndim = 1, .shape = {4}, .data = spare};
}

static void test_check_reports(void **state) {
  (void)state;
  check_edited(drop_c_fc_bias, "missing tensor 'h.1.mlp.c_fc.bias' (expected shape [256], F32, BF16 or F16)", NULL);
  check_edited(transpose_c_attn, "tensor 'h.0.attn.c_attn.weight': found F32 [192, 64], expected F32 [64, 192]", NULL);
  check_edited(int_ln_f, "tensor 'ln_f.weight': found I32 [64], expected F32/BF16/F16 [64]", NULL);
  check_edited(add_extra, "unexpected tensor 'h.0.attn.rotary' (F32 [4])", NULL);
}

/* The real GPT-2 124M layout: its names and shapes pass the check (one layer, since every layer
** has the same names and shapes, so the f16 file stays under 100 MB). */
static void test_gpt2_124m_layout(void **state) {
  (void)state;
  ot_model_config c;
  assert_int_equal(ot_model_config_preset("gpt2", &c, NULL), OT_OK);
  c.num_hidden_layers = 1; /* same names and shapes per layer; 1 layer keeps the file at 95 MB in f16 */
  ot_model_tensor_spec *s = NULL;
  size_t n = 0;
  assert_int_equal(ot_model_tensor_specs(&c, &s, &n, NULL), OT_OK);
  uint64_t biggest = 50257ull * 768;
  uint16_t *zeros = calloc(biggest, sizeof *zeros);
  ot_st_tensor ts[32];
  for (size_t i = 0; i < n; i++)
    ts[i] = (ot_st_tensor){.name = s[i].name, .dtype = OT_DT_FP16, .ndim = s[i].ndim,
                           .shape = {s[i].shape[0], s[i].shape[1]}, .data = zeros};
  const char *path = mt_path(mt_dir("weights"), "gpt2_layout.safetensors");
  assert_int_equal(ot_safetensors_save(path, ts, n, OT_DT_COUNT, NULL, NULL), OT_OK);
  ot_safetensors *st = NULL;
  assert_int_equal(ot_safetensors_open(path, &st, NULL), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  ot_status r = ot_safetensors_check(st, &c, OT_DT_FP16, &err);
  if (r) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(r, OT_OK);
  const ot_st_tensor *w = ot_safetensors_find(st, "h.0.attn.c_attn.weight");
  assert_int_equal(w->shape[0], 768);
  assert_int_equal(w->shape[1], 2304);
  ot_safetensors_close(st);
  free(zeros);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_init),
    cmocka_unit_test(test_save_load),
    cmocka_unit_test(test_python_gpt2_checkpoint),
    cmocka_unit_test(test_check_reports),
    cmocka_unit_test(test_gpt2_124m_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
