/* ScalarE activate: every activation function against double-precision math within a stated
** tolerance (an independent check of the fp32 formulas), and the instruction (scale, bias,
** alpha, red, rounding) bit for bit against a plain reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_exec_util.h"

static double d_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double d_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double d_cdf(double x) { return 0.5 * (1.0 + erf(x / sqrt(2.0))); }

/* The functions of act_funcs.def in double precision, from their definitions. */
static double ref_act(int f, double x, double alpha) {
  const double pi = 3.14159265358979323846;
  switch (f) {
  case OT_ACT_COPY: return x;
  case OT_ACT_SQUARE: return x * x;
  case OT_ACT_SIGMOID: return d_sigmoid(x);
  case OT_ACT_RELU: return x > 0 ? x : 0;
  case OT_ACT_PRELU: return x >= 0 ? x : alpha * x;
  case OT_ACT_GELU: return x * d_cdf(x);
  case OT_ACT_GELU_DX: return d_cdf(x) + x * exp(-0.5 * x * x) / sqrt(2 * pi);
  case OT_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
  case OT_ACT_GELU_SIGMOID: return x * d_sigmoid(1.702 * x);
  case OT_ACT_GELU_SIGMOID_DX: {
    double s = d_sigmoid(1.702 * x);
    return s + 1.702 * x * s * (1 - s);
  }
  case OT_ACT_SILU: return x * d_sigmoid(x);
  case OT_ACT_SILU_DX: return d_sigmoid(x) * (1 + x * (1 - d_sigmoid(x)));
  case OT_ACT_TANH: return tanh(x);
  case OT_ACT_SOFTPLUS: return d_softplus(x);
  case OT_ACT_MISH: return x * tanh(d_softplus(x));
  case OT_ACT_ERF: return erf(x);
  case OT_ACT_ERF_DX: return 2 / sqrt(pi) * exp(-x * x);
  case OT_ACT_EXP: return exp(x);
  case OT_ACT_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
  case OT_ACT_ABS: return fabs(x);
  case OT_ACT_LOG: return log(x);
  case OT_ACT_SIN: return sin(x);
  case OT_ACT_ARCTAN: return atan(x);
  case OT_ACT_SQRT: return sqrt(x);
  case OT_ACT_RSQRT: return 1 / sqrt(x);
  default: return 1 / x; /* reciprocal */
  }
}

/* An input in the function's valid range (act_funcs.def), sampled to cover every scale. */
static float act_input(int f) {
  switch (f) {
  case OT_ACT_LOG: case OT_ACT_SQRT: case OT_ACT_RSQRT: return expf(xt_uniform(-14, 14));
  case OT_ACT_RECIPROCAL: return (xt_below(2) ? -1 : 1) * expf(xt_uniform(-14, 14));
  case OT_ACT_SIN: return xt_uniform(-3.14159f, 3.14159f);
  case OT_ACT_ARCTAN: return xt_uniform(-1.5707f, 1.5707f);
  case OT_ACT_EXP: return xt_uniform(-80, 80);
  default: return xt_below(4) ? xt_uniform(-6, 6) : xt_uniform(-30, 30);
  }
}

/* Tolerance: |got - ref| <= 1e-5 |ref| + 1e-6.  fp32 evaluation of these formulas is good to a
** few ulps except where terms cancel near a zero of the function (gelu_dx, the _dx tails), which
** the absolute 1e-6 covers. */
static void test_functions_vs_double(void **state) {
  (void)state;
  xt_seed(31);
  for (int f = 0; f < OT_ACT_COUNT; f++) {
    for (int i = 0; i < 20000; i++) {
      float x = act_input(f), alpha = 0.1f;
      double got = ot_act_apply(f, x, alpha), want = ref_act(f, x, alpha);
      double err = fabs(got - want), tol = 1e-5 * fabs(want) + 1e-6;
      if (!(err <= tol)) fail_msg("%s(%.9g) = %.9g, double says %.9g", ot_act_name(f), (double)x, got, want);
    }
  }
  /* specials */
  assert_true(isnan(ot_act_apply(OT_ACT_RELU, NAN, 0)));
  assert_true(signbit(ot_act_apply(OT_ACT_SIGN, -0.0f, 0)));
  assert_true(ot_act_apply(OT_ACT_SOFTPLUS, 100.0f, 0) == 100.0f); /* no overflow through e^x */
  assert_true(ot_act_apply(OT_ACT_SIGMOID, -200.0f, 0) == 0.0f);
  assert_true(isnan(ot_act_apply(99, 1.0f, 0)));
  assert_true(fabsf(ot_act_apply(OT_ACT_SIN, 9.0f, 0) - sinf(9.0f)) == 0); /* exact function out of range */
}

/* ---- the instruction ---------------------------------------------------------------------------- */
static void run_activate(xt_env *e, int f, ot_dtype st, ot_dtype dt, uint32_t P, uint32_t F) {
  uint64_t span, n = (uint64_t)P * F;
  ot_ap src = xt_rand_ap(xt_below(2) ? OT_MEM_SBUF : OT_MEM_PSUM, st, 0, P, 0, F, &span);
  ot_ap dst = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 8192, F, &span);
  float *x = malloc(n * 4), scale[128], bias[128], red[128], want_red[128];
  uint32_t *got = malloc(n * 4), *want = malloc(n * 4);
  for (uint64_t i = 0; i < n; i++) x[i] = ot_bits_to_f32(ot_f32_to_bits(act_input(f), st, NULL), st);
  xt_put_f32(e, &src, x);
  ot_insn_init(&e->insn, OT_OP_ACTIVATE);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src, e->insn.o[2].i = f;
  if (f == OT_ACT_PRELU) e->insn.o[5].f = 0.25f;
  bool has_bias = xt_below(2), has_red = xt_below(2);
  if (xt_below(2)) {
    e->insn.o[3].tag = OT_TAG_AP, e->insn.o[3].ap = xt_ap(OT_MEM_SBUF, OT_DT_FP32, 0, P, 16384);
    xt_rand_vals(scale, P, OT_DT_FP32, 0.5f, 1.5f);
    xt_put_f32(e, &e->insn.o[3].ap, scale);
  } else {
    e->insn.o[3].f = xt_below(2) ? 1.0f : 0.75f;
    for (uint32_t p = 0; p < P; p++) scale[p] = e->insn.o[3].f;
  }
  if (has_bias) {
    e->insn.o[4].ap = xt_ap(OT_MEM_SBUF, OT_DT_BF16, 0, P, 16388);
    xt_rand_vals(bias, P, OT_DT_BF16, -0.5f, 0.5f);
    xt_put_f32(e, &e->insn.o[4].ap, bias);
  }
  if (has_red) e->insn.o[6].ap = xt_ap(OT_MEM_PSUM, OT_DT_FP32, 0, P, 8192);
  assert_int_equal(xt_exec(e, OT_ENG_SCALAR), OT_OK);
  for (uint32_t p = 0; p < P; p++) {
    float sum = 0;
    for (uint32_t i = 0; i < F; i++) {
      float t = x[p * F + i] * scale[p];
      if (has_bias) t = t + bias[p];
      float y = ot_act_apply(f, t, e->insn.o[5].f);
      sum = sum + y;
      want[p * F + i] = ot_f32_to_bits(y, dt, NULL);
    }
    want_red[p] = sum;
  }
  xt_get_bits(e, &dst, got);
  if (!xt_same_bits(got, want, n, ot_act_name(f))) fail();
  if (has_red) {
    xt_get_f32(e, &e->insn.o[6].ap, red);
    if (!xt_same_f32(red, want_red, P, "red")) fail();
  }
  free(x), free(got), free(want);
}

static void test_activate(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(32);
  static const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16};
  for (int it = 0; it < 120; it++)
    run_activate(e, (int)xt_below(OT_ACT_COUNT), types[xt_below(3)], types[xt_below(3)], xt_rand_parts(), xt_rand_free());
  xt_env_free(e);
}

/* The softmax kernel's activate: exp(x - max) with its row sums. */
static void test_activate_exp_red(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap x = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 0, 3), b = xt_ap(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 64);
  ot_ap y = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 128, 3), r = xt_ap(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 256);
  float xv[6] = {1, 2, 3, 0, 0, 0}, bv[2] = {-3, 0}, yv[6], rv[2];
  xt_put_f32(e, &x, xv);
  xt_put_f32(e, &b, bv);
  ot_insn_init(&e->insn, OT_OP_ACTIVATE);
  e->insn.o[0].ap = y, e->insn.o[1].ap = x, e->insn.o[2].i = OT_ACT_EXP, e->insn.o[4].ap = b, e->insn.o[6].ap = r;
  assert_int_equal(xt_exec(e, OT_ENG_SCALAR), OT_OK);
  xt_get_f32(e, &y, yv);
  xt_get_f32(e, &r, rv);
  assert_true(yv[2] == 1.0f && yv[1] == expf(-1.0f) && yv[0] == expf(-2.0f));
  assert_true(rv[0] == (0.0f + expf(-2.0f)) + expf(-1.0f) + 1.0f);
  assert_true(rv[1] == 3.0f);
  /* red must be [P, 1] */
  e->insn.o[6].ap.ndim = 1, e->insn.o[6].ap.dim[0] = (ot_dim){1, 2};
  assert_int_equal(xt_exec(e, OT_ENG_SCALAR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "red: [2 partitions, 2 elements], expected a per-partition [2, 1]", NULL));
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_functions_vs_double),
    cmocka_unit_test(test_activate),
    cmocka_unit_test(test_activate_exp_red),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
