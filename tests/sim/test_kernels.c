/* The example kernels run on the simulator and give the outputs of plain C references computed
** here: bit-exact where the semantics are exact (matmul, softmax, causal mask), within stated
** tolerances against double precision otherwise (layernorm, GELU).  The matmul's trace shows DMA
** and TensorE overlapping; runs are deterministic; timing-only gives the same time as full. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

static uint64_t rng_state = 42;
static float rnd(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static ot_program *load_kernel(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/kernels/%s.s", OT_SOURCE_DIR, name);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_file(path, &p, &err)) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(p);
  return p;
}

static void put(ot_sim *s, const ot_program *p, const char *name, const void *data) {
  const ot_tensor_info *t = ot_program_find_tensor(p, name);
  assert_non_null(t);
  assert_int_equal(ot_sim_hbm_write(s, t->offset, data, ot_tensor_bytes(t), NULL), OT_OK);
}

static void get(const ot_sim *s, const ot_program *p, const char *name, void *data) {
  const ot_tensor_info *t = ot_program_find_tensor(p, name);
  assert_non_null(t);
  assert_int_equal(ot_sim_hbm_read(s, t->offset, data, ot_tensor_bytes(t), NULL), OT_OK);
}

static ot_sim *start(const ot_chip *chip, const ot_program *p, ot_sim_mode mode) {
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.mode = mode;
  o.trace = true;
  ot_sim *s = NULL;
  assert_int_equal(ot_sim_new(chip, p, &o, &s, NULL), OT_OK);
  return s;
}

static void run(ot_sim *s) {
  ot_error err;
  ot_error_clear(&err);
  ot_status st = ot_sim_run(s, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
}

/* ---- matmul ---------------------------------------------------------------------------- */
enum { MM_M = 512, MM_K = 1024, MM_N = 2048 };

static ot_sim *run_matmul(const ot_chip *chip, const ot_program *p, ot_sim_mode mode, uint16_t *at, uint16_t *b, float *c) {
  ot_sim *s = start(chip, p, mode);
  put(s, p, "at", at);
  put(s, p, "b", b);
  run(s);
  if (c) get(s, p, "c", c);
  return s;
}

static void test_matmul(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = load_kernel("matmul_tiled");
  uint16_t *at = malloc(sizeof(uint16_t) * MM_K * MM_M), *b = malloc(sizeof(uint16_t) * MM_K * MM_N);
  float *c = malloc(sizeof(float) * MM_M * MM_N), *c2 = malloc(sizeof(float) * MM_M * MM_N);
  for (size_t i = 0; i < (size_t)MM_K * MM_M; i++) at[i] = ot_f32_to_bf16(rnd());
  for (size_t i = 0; i < (size_t)MM_K * MM_N; i++) b[i] = ot_f32_to_bf16(rnd());
  ot_sim *s = run_matmul(chip, p, OT_SIM_FULL, at, b, c);
  /* reference: fp32 accumulation in k order (products of bf16 values are exact in fp32) */
  for (int m = 0; m < MM_M; m += 37)
    for (int n = 0; n < MM_N; n += 13) {
      float acc = 0;
      for (int k = 0; k < MM_K; k++) acc = acc + ot_bf16_to_f32(at[(size_t)k * MM_M + m]) * ot_bf16_to_f32(b[(size_t)k * MM_N + n]);
      if (acc != c[(size_t)m * MM_N + n]) fprintf(stderr, "c[%d][%d] = %.9g, reference %.9g\n", m, n, (double)c[(size_t)m * MM_N + n], (double)acc);
      assert_true(acc == c[(size_t)m * MM_N + n]);
    }
  /* The trace shows DMA and TensorE overlapping: a B block arrives while matmuls run. */
  const ot_trace *t = ot_sim_get_trace(s);
  bool overlap = false;
  for (size_t i = 0; i < t->n && !overlap; i++) {
    const ot_trace_event *d = &t->ev[i];
    if (d->track_kind != OT_TRACK_QUEUE) continue;
    for (size_t j = 0; j < t->n && !overlap; j++) {
      const ot_trace_event *m = &t->ev[j];
      overlap = m->track_kind == OT_TRACK_ENGINE && m->track == OT_ENG_TENSOR && !strncmp(t->strings + m->name, "matmul", 6) &&
                m->start < d->start + d->dur && d->start < m->start + m->dur;
    }
  }
  assert_true(overlap);
  const ot_sim_stats *st = ot_sim_get_stats(s);
  assert_int_equal(st->model_flops, 2ull * MM_M * MM_K * MM_N);
  assert_true(st->mfu > 0.0 && st->mfu <= 1.0);
  ot_ps total = st->total;
  /* determinism: a second run gives the same bytes and the same time */
  ot_sim *s2 = run_matmul(chip, p, OT_SIM_FULL, at, b, c2);
  assert_memory_equal(c, c2, sizeof(float) * MM_M * MM_N);
  assert_int_equal(ot_sim_get_stats(s2)->total, total);
  /* timing-only gives the same time */
  ot_sim *s3 = run_matmul(chip, p, OT_SIM_TIMING, at, b, NULL);
  assert_int_equal(ot_sim_get_stats(s3)->total, total);
  ot_sim_free(s); ot_sim_free(s2); ot_sim_free(s3);
  free(at); free(b); free(c); free(c2);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* ---- softmax --------------------------------------------------------------------------- */
static void test_softmax(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = load_kernel("softmax");
  float x[128 * 512], y[128 * 512];
  for (int i = 0; i < 128 * 512; i++) x[i] = rnd() * 8;
  ot_sim *s = start(chip, p, OT_SIM_FULL);
  put(s, p, "x", x);
  run(s);
  get(s, p, "y", y);
  for (int r = 0; r < 128; r++) {
    const float *xr = x + r * 512;
    float mx = xr[0];
    for (int i = 1; i < 512; i++) mx = fmaxf(mx, xr[i]);
    float negm = -mx, sum = 0, e[512];
    for (int i = 0; i < 512; i++) { e[i] = expf(xr[i] * 1.0f + negm); sum = sum + e[i]; }
    float inv = 1.0f / sum;
    for (int i = 0; i < 512; i++) assert_true(y[r * 512 + i] == e[i] * inv);
    /* and it is a softmax: rows sum to 1 */
    double total = 0;
    for (int i = 0; i < 512; i++) total += y[r * 512 + i];
    assert_true(fabs(total - 1.0) < 1e-5);
  }
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* ---- layernorm ------------------------------------------------------------------------- */
static void test_layernorm(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = load_kernel("layernorm");
  static float x[128 * 512], y[128 * 512];
  float g[512], bta[512];
  for (int i = 0; i < 128 * 512; i++) x[i] = rnd() * 3 + 0.5f;
  for (int i = 0; i < 512; i++) { g[i] = 1 + rnd() * 0.1f; bta[i] = rnd() * 0.1f; }
  ot_sim *s = start(chip, p, OT_SIM_FULL);
  put(s, p, "x", x);
  put(s, p, "gamma", g);
  put(s, p, "beta", bta);
  run(s);
  get(s, p, "y", y);
  double worst = 0;
  for (int r = 0; r < 128; r++) {
    double mean = 0, var = 0;
    for (int i = 0; i < 512; i++) mean += x[r * 512 + i];
    mean /= 512;
    for (int i = 0; i < 512; i++) var += (x[r * 512 + i] - mean) * (x[r * 512 + i] - mean);
    var /= 512;
    for (int i = 0; i < 512; i++) {
      double ref = (x[r * 512 + i] - mean) / sqrt(var + 1e-5) * g[i] + bta[i];
      double d = fabs(y[r * 512 + i] - ref);
      if (d > worst) worst = d;
    }
  }
  assert_true(worst < 2e-5); /* fp32 arithmetic against double: a few fp32 ulps of O(1) values */
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* ---- GELU (bf16) ----------------------------------------------------------------------- */
static void test_gelu(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = load_kernel("gelu");
  static uint16_t x[128 * 1024], y[128 * 1024];
  for (int i = 0; i < 128 * 1024; i++) x[i] = ot_f32_to_bf16(rnd() * 6);
  ot_sim *s = start(chip, p, OT_SIM_FULL);
  put(s, p, "x", x);
  run(s);
  get(s, p, "y", y);
  for (int i = 0; i < 128 * 1024; i++) {
    double v = ot_bf16_to_f32(x[i]);
    double ref = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
    double got = ot_bf16_to_f32(y[i]);
    /* one bf16 rounding (2^-8 relative) plus fp32 evaluation error */
    assert_true(fabs(got - ref) <= fabs(ref) * (1.0 / 256) + 1e-6);
  }
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* ---- causal mask ----------------------------------------------------------------------- */
static void test_causal_mask(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = load_kernel("causal_mask");
  float in[128 * 128], out[128 * 128];
  for (int i = 0; i < 128 * 128; i++) in[i] = rnd();
  ot_sim *s = start(chip, p, OT_SIM_FULL);
  put(s, p, "s", in);
  run(s);
  get(s, p, "masked", out);
  for (int i = 0; i < 128; i++)
    for (int j = 0; j < 128; j++) {
      float want = j <= i ? in[i * 128 + j] : -INFINITY;
      assert_true(memcmp(&want, &out[i * 128 + j], 4) == 0);
    }
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* Every example runs on every preset (the same program, the chip's own timing). */
static void test_all_presets(void **state) {
  (void)state;
  const char *kernels[] = {"matmul_tiled", "softmax", "layernorm", "gelu", "causal_mask", "embedding"};
  const char *const *names = ot_chip_preset_names();
  for (size_t c = 0; names[c]; c++) {
    ot_chip *chip = st_chip(names[c]);
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
      ot_program *p = load_kernel(kernels[k]);
      ot_sim *s = start(chip, p, OT_SIM_TIMING);
      run(s);
      assert_true(ot_sim_get_stats(s)->total > 0);
      ot_sim_free(s);
      ot_program_free(p);
    }
    ot_chip_free(chip);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_matmul),
    cmocka_unit_test(test_softmax),
    cmocka_unit_test(test_layernorm),
    cmocka_unit_test(test_gelu),
    cmocka_unit_test(test_causal_mask),
    cmocka_unit_test(test_all_presets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
