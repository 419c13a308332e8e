/* Element-wise movement and generation (tensor_copy, memset, reciprocal, select, iota,
** affine_select) and the batch-norm statistics (bn_stats, bn_aggr). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_exec_util.h"

static const ot_dtype all_types[] = {OT_DT_FP32, OT_DT_TF32, OT_DT_BF16, OT_DT_FP16, OT_DT_FP8E4M3, OT_DT_FP8E4M3FN,
                                     OT_DT_FP8E5M2, OT_DT_FP8E3M4, OT_DT_INT8, OT_DT_UINT8, OT_DT_INT16, OT_DT_UINT16,
                                     OT_DT_INT32, OT_DT_UINT32};
#define N_TYPES 14

static uint32_t rand_bits(ot_dtype t) {
  size_t es = ot_dtype_size(t);
  uint32_t b = (uint32_t)xt_next();
  return es == 4 ? b : b & ((1u << (8 * es)) - 1);
}

/* ---- tensor_copy ------------------------------------------------------------------------------- */
static void run_copy(xt_env *e, ot_dtype st, ot_dtype dt, uint32_t P, uint32_t F) {
  uint64_t span, n = (uint64_t)P * F;
  ot_ap src = xt_rand_ap(xt_below(2) ? OT_MEM_SBUF : OT_MEM_PSUM, st, 0, P, 0, F, &span);
  ot_ap dst = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 8192, F, &span);
  uint32_t *in = malloc(n * 4), *got = malloc(n * 4), *want = malloc(n * 4);
  for (uint64_t i = 0; i < n; i++) in[i] = rand_bits(st); /* any pattern: NaN payloads, -0, ... */
  xt_put_bits(e, &src, in);
  ot_insn_init(&e->insn, OT_OP_TENSOR_COPY);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &dst, got);
  for (uint64_t i = 0; i < n; i++) {
    uint8_t b[4] = {0};
    ot_store_f32(b, 0, dt, ot_bits_to_f32(in[i], st), NULL);
    want[i] = st == dt ? in[i] : (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  }
  if (!xt_same_bits(got, want, n, "tensor_copy")) fail_msg("%s -> %s", ot_dtype_name(st), ot_dtype_name(dt));
  free(in), free(got), free(want);
}

static void test_tensor_copy(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(41);
  for (int it = 0; it < 200; it++) {
    ot_dtype st = all_types[xt_below(N_TYPES)];
    run_copy(e, st, xt_below(3) ? all_types[xt_below(N_TYPES)] : st, xt_rand_parts(), xt_rand_free());
  }
  xt_env_free(e);
}

static void test_copy_stochastic_rounding(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 8, 0, 64), dst = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 8, 1024, 64);
  float x[512];
  uint32_t got[512], want[512];
  for (int i = 0; i < 512; i++) x[i] = 1.0f + (float)i * 0x1p-14f;
  xt_put_f32(e, &src, x);
  ot_insn_init(&e->insn, OT_OP_TENSOR_COPY);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
  e->x.cvt.round = OT_ROUND_STOCHASTIC;
  ot_rng_seed(&e->rng, 77);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &dst, got);
  ot_rng r;
  ot_rng_seed(&r, 77);
  ot_cvt sr = {OT_ROUND_STOCHASTIC, false, &r};
  for (int i = 0; i < 512; i++) want[i] = ot_f32_to_bits(x[i], OT_DT_BF16, &sr); /* element order */
  assert_memory_equal(got, want, sizeof got);
  xt_env_free(e);
}

/* ---- memset / reciprocal ----------------------------------------------------------------------- */
static void test_memset_reciprocal(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(42);
  for (int it = 0; it < 60; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype t = all_types[xt_below(N_TYPES)];
    ot_ap d = xt_rand_ap(OT_MEM_PSUM, t, 0, P, 0, F, &span);
    float v = xt_uniform(-1000, 1000);
    ot_insn_init(&e->insn, OT_OP_MEMSET);
    e->insn.o[0].ap = d, e->insn.o[1].f = v;
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
    uint32_t *got = malloc(n * 4);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++) assert_int_equal(got[i], ot_f32_to_bits(v, t, NULL));
    /* reciprocal of it, into fp32 */
    ot_ap r = xt_rand_ap(OT_MEM_SBUF, OT_DT_FP32, 0, P, 0, F, &span);
    ot_insn_init(&e->insn, OT_OP_RECIPROCAL);
    e->insn.o[0].ap = r, e->insn.o[1].ap = d;
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
    float *f = malloc(n * 4);
    xt_get_f32(e, &r, f);
    float want = 1.0f / ot_bits_to_f32(ot_f32_to_bits(v, t, NULL), t);
    for (uint64_t i = 0; i < n; i++) assert_true(memcmp(&f[i], &want, 4) == 0 || (isnan(f[i]) && isnan(want)));
    free(got), free(f);
  }
  xt_env_free(e);
}

/* ---- select ------------------------------------------------------------------------------------ */
static void test_select(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(43);
  for (int it = 0; it < 80; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype dt = all_types[xt_below(4)], at = xt_below(2) ? dt : all_types[xt_below(4)], bt = xt_below(2) ? dt : OT_DT_FP32;
    ot_ap pred = xt_rand_ap(OT_MEM_SBUF, OT_DT_UINT8, 0, P, 0, F, &span);
    ot_ap a = xt_rand_ap(OT_MEM_SBUF, at, 0, P, 4096, F, &span), b = xt_rand_ap(OT_MEM_PSUM, bt, 0, P, 0, F, &span);
    ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 16384, F, &span);
    uint32_t *pv = malloc(n * 4), *av = malloc(n * 4), *bv = malloc(n * 4), *got = malloc(n * 4), *want = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) pv[i] = xt_below(3) ? 0 : 1 + xt_below(255), av[i] = rand_bits(at), bv[i] = rand_bits(bt);
    xt_put_bits(e, &pred, pv);
    xt_put_bits(e, &a, av);
    xt_put_bits(e, &b, bv);
    ot_insn_init(&e->insn, OT_OP_SELECT);
    e->insn.o[0].ap = d, e->insn.o[1].ap = pred, e->insn.o[2].ap = a, e->insn.o[3].ap = b;
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++) {
      uint32_t raw = pv[i] ? av[i] : bv[i];
      ot_dtype t = pv[i] ? at : bt;
      want[i] = t == dt ? raw : ot_f32_to_bits(ot_bits_to_f32(raw, t), dt, NULL);
    }
    if (!xt_same_bits(got, want, n, "select")) fail();
    free(pv), free(av), free(bv), free(got), free(want);
  }
  xt_env_free(e);
}

/* ---- iota / affine_select ---------------------------------------------------------------------- */
/* base + p * pmul + sum steps[d] * i_d, over the pattern's dims (outermost first). */
static int64_t ref_affine(const ot_ap *a, uint64_t i, int32_t base, int32_t pmul, const int32_t *steps) {
  uint64_t F = xt_free_elems(a), p = i / F, r = i % F;
  int64_t v = base + (int64_t)p * pmul;
  for (int d = a->ndim - 1; d >= 0; d--) {
    v += (int64_t)steps[d] * (int64_t)(r % a->dim[d].size);
    r /= a->dim[d].size;
  }
  return v;
}

static uint32_t ref_store_int64(int64_t v, ot_dtype t) {
  if (ot_dtype_is_float(t)) {
    if (v >= INT32_MIN && v <= INT32_MAX) { /* one rounding, from the integer */
      int32_t i = (int32_t)v;
      uint8_t out[4] = {0};
      ot_convert(out, t, &i, OT_DT_INT32, 1, NULL);
      return (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 | (uint32_t)out[3] << 24;
    }
    return ot_f32_to_bits((float)v, t, NULL);
  }
  double mx = ot_dtype_max(t), mn = t == OT_DT_INT8 ? -128 : t == OT_DT_INT16 ? -32768 : t == OT_DT_INT32 ? -2147483648.0 : 0;
  if ((double)v > mx) v = (int64_t)mx;
  if ((double)v < mn) v = (int64_t)mn;
  size_t es = ot_dtype_size(t);
  return es == 4 ? (uint32_t)v : (uint32_t)v & ((1u << (8 * es)) - 1);
}

static void test_iota(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(44);
  for (int it = 0; it < 100; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype t = all_types[xt_below(N_TYPES)];
    ot_ap d = xt_rand_ap(OT_MEM_SBUF, t, 0, P, 0, F, &span);
    int32_t base = xt_range(-1000, 1000), pmul = xt_range(-70, 70), steps[4];
    for (int k = 0; k < 4; k++) steps[k] = xt_below(8) ? xt_range(-9, 9) : (int32_t)xt_next();
    ot_insn_init(&e->insn, OT_OP_IOTA);
    e->insn.o[0].ap = d, e->insn.o[1].i = base, e->insn.o[2].i = pmul;
    memcpy(e->insn.o[3].pat, steps, sizeof steps);
    assert_int_equal(xt_exec(e, OT_ENG_GPSIMD), OT_OK);
    uint32_t *got = malloc(n * 4);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++)
      if (got[i] != ref_store_int64(ref_affine(&d, i, base, pmul, steps), t))
        fail_msg("iota %s element %llu: %08x", ot_dtype_name(t), (unsigned long long)i, got[i]);
    free(got);
  }
  xt_env_free(e);
}

static void test_affine_select(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(45);
  static const int cmps[] = {OT_ALU_EQ, OT_ALU_NE, OT_ALU_GE, OT_ALU_GT, OT_ALU_LE, OT_ALU_LT};
  for (int it = 0; it < 100; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype dt = all_types[xt_below(4)], st = xt_below(2) ? dt : all_types[xt_below(4)];
    ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 0, F, &span), s = xt_rand_ap(OT_MEM_SBUF, st, 0, P, 8192, F, &span);
    int32_t base = xt_range(-20, 20), pmul = xt_range(-2, 2), steps[4] = {xt_range(-2, 2), xt_range(-2, 2), 1, -1};
    int cmp = cmps[xt_below(6)];
    float fill = xt_below(2) ? -INFINITY : xt_uniform(-5, 5);
    uint32_t *in = malloc(n * 4), *got = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) in[i] = rand_bits(st);
    xt_put_bits(e, &s, in);
    ot_insn_init(&e->insn, OT_OP_AFFINE_SELECT);
    e->insn.o[0].ap = d, e->insn.o[1].ap = s, e->insn.o[2].i = cmp, e->insn.o[3].i = base, e->insn.o[4].i = pmul;
    memcpy(e->insn.o[5].pat, steps, sizeof steps);
    e->insn.o[6].f = fill;
    assert_int_equal(xt_exec(e, OT_ENG_GPSIMD), OT_OK);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++) {
      int64_t v = ref_affine(&d, i, base, pmul, steps);
      bool keep = cmp == OT_ALU_EQ ? v == 0 : cmp == OT_ALU_NE ? v != 0 : cmp == OT_ALU_GE ? v >= 0 : cmp == OT_ALU_GT ? v > 0
                : cmp == OT_ALU_LE ? v <= 0 : v < 0;
      uint32_t want = !keep ? ot_f32_to_bits(fill, dt, NULL) : st == dt ? in[i] : ot_f32_to_bits(ot_bits_to_f32(in[i], st), dt, NULL);
      if (got[i] != want) fail_msg("affine_select element %llu: %08x, want %08x", (unsigned long long)i, got[i], want);
    }
    free(in), free(got);
  }
  /* cmp must be a comparison */
  e->insn.o[2].i = OT_ALU_ADD;
  assert_int_equal(xt_exec(e, OT_ENG_GPSIMD), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "cmp: 'add' is not a comparison", NULL));
  xt_env_free(e);
}

/* ---- bn_stats / bn_aggr ------------------------------------------------------------------------ */
/* The documented sequential fp32 algorithm, for a bit-exact check. */
static void ref_moments(const float *x, uint32_t n, uint32_t step, float out[3]) {
  float sum = 0, mean = 0, m2 = 0;
  for (uint32_t i = 0; i < n; i++) sum += x[i * step];
  if (n) mean = sum / (float)n;
  for (uint32_t i = 0; i < n; i++) {
    float d = x[i * step] - mean;
    m2 += d * d;
  }
  out[0] = (float)n, out[1] = mean, out[2] = m2;
}

static void test_bn_stats_aggr(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(46);
  for (int it = 0; it < 60; it++) {
    uint32_t P = xt_rand_parts(), F = 1 + xt_below(512), groups = 1 + xt_below(4);
    float mu = xt_uniform(-100, 100), sigma = expf(xt_uniform(-3, 3));
    float *x = malloc(4ull * P * F * groups), *stats = malloc(24ull * P * groups), want[6], mv[256];
    double max_mean_err = 0, max_var_err = 0;
    for (uint32_t g = 0; g < groups; g++) {
      uint64_t span;
      ot_ap src = xt_rand_ap(OT_MEM_SBUF, OT_DT_FP32, 0, P, 0, F, &span);
      ot_ap dst = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, P, 8192 + 24 * g, 6);
      float *xg = x + (uint64_t)g * P * F;
      for (uint64_t i = 0; i < (uint64_t)P * F; i++) xg[i] = mu + sigma * (xt_uniform(-1, 1) + xt_uniform(-1, 1));
      xt_put_f32(e, &src, xg);
      ot_insn_init(&e->insn, OT_OP_BN_STATS);
      e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
      assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
      xt_get_f32(e, &dst, stats);
      for (uint32_t p = 0; p < P; p++) {
        ref_moments(xg + p * F, (F + 1) / 2, 2, want);
        ref_moments(xg + p * F + 1, F / 2, 2, want + 3);
        if (!xt_same_f32(stats + p * 6, want, 6, "bn_stats")) fail_msg("F=%u p=%u", F, p);
      }
    }
    ot_ap all = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, P, 8192, 6 * groups), out = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, P, 12288, 2);
    ot_insn_init(&e->insn, OT_OP_BN_AGGR);
    e->insn.o[0].ap = out, e->insn.o[1].ap = all;
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
    xt_get_f32(e, &out, mv);
    for (uint32_t p = 0; p < P; p++) { /* against a double-precision two-pass mean and variance */
      double s = 0, ss = 0, n = (double)F * groups;
      for (uint32_t g = 0; g < groups; g++) for (uint32_t i = 0; i < F; i++) s += x[(uint64_t)g * P * F + p * F + i];
      double mean = s / n;
      for (uint32_t g = 0; g < groups; g++)
        for (uint32_t i = 0; i < F; i++) ss += pow(x[(uint64_t)g * P * F + p * F + i] - mean, 2);
      double var = ss / n;
      double me = fabs(mv[p * 2] - mean) / (fabs(mean) + sigma), ve = fabs(mv[p * 2 + 1] - var) / (var + 1e-30);
      max_mean_err = me > max_mean_err ? me : max_mean_err;
      max_var_err = ve > max_var_err ? ve : max_var_err;
    }
    /* fp32 sums over <= 2048 values: the mean to ~1e-5 of (|mean| + sigma); the variance, whose
    ** single-group case carries the rounding of mean into M2, to 1e-3 relative. */
    if (max_mean_err > 2e-5 || max_var_err > 1e-3)
      fail_msg("bn_aggr F=%u groups=%u mu=%g sigma=%g: mean err %g, var err %g", F, groups, (double)mu, (double)sigma,
               max_mean_err, max_var_err);
    free(x), free(stats);
  }
  /* F = 1: the odd half is empty (count 0, mean 0, M2 0) and bn_aggr skips it */
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 1), dst = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 64, 6);
  float one = 5.0f, st6[6], mv2[2];
  xt_put_f32(e, &src, &one);
  ot_insn_init(&e->insn, OT_OP_BN_STATS);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_f32(e, &dst, st6);
  assert_true(st6[0] == 1 && st6[1] == 5 && st6[2] == 0 && st6[3] == 0 && st6[4] == 0 && st6[5] == 0);
  ot_ap mvap = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 128, 2);
  ot_insn_init(&e->insn, OT_OP_BN_AGGR);
  e->insn.o[0].ap = mvap, e->insn.o[1].ap = dst;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_f32(e, &mvap, mv2);
  assert_true(mv2[0] == 5 && mv2[1] == 0);
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_tensor_copy),
    cmocka_unit_test(test_copy_stochastic_rounding),
    cmocka_unit_test(test_memset_reciprocal),
    cmocka_unit_test(test_select),
    cmocka_unit_test(test_iota),
    cmocka_unit_test(test_affine_select),
    cmocka_unit_test(test_bn_stats_aggr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
