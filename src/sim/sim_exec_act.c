/* ScalarE's activate: y = func(x * scale + bias), optionally red[p] = sum of y over the free
** elements.  Every function of act_funcs.def is the exact mathematical function evaluated in
** fp32 with C's float libm, by the formula written next to it (and in
** docs/simulator-semantics.md).  The hardware instead evaluates piecewise polynomials (PWP
** tables, trainium.md §2.6) whose segments are not public, so results differ from it in the
** last bits, and outside a function's valid range we give the exact function where the
** hardware's result is undefined. */
#include <math.h>

#include "sim/sim_exec_int.h"

#define SQRT1_2 0.70710678118654752f   /* 1/sqrt(2) */
#define SQRT_2_PI 0.79788456080286536f /* sqrt(2/pi) */
#define INV_SQRT_2PI 0.39894228040143268f /* 1/sqrt(2 pi) */
#define TWO_SQRT_PI 1.12837916709551257f  /* 2/sqrt(pi) */

static float act_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */
static float act_softplus(float x) { return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x))); }

static float act_gelu(float x) { return 0.5f * x * (1.0f + erff(x * SQRT1_2)); }

/* d/dx x*Phi(x) = Phi(x) + x*phi(x). */
static float act_gelu_dx(float x) {
  float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
  float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
  return cdf + x * pdf;
}

static float act_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(SQRT_2_PI * (x + 0.044715f * x * x * x)));
}

/* d/dx x*s(1.702x) = s + 1.702 x s (1 - s). */
static float act_gelu_sigmoid_dx(float x) {
  float s = act_sigmoid(1.702f * x);
  return s + 1.702f * x * s * (1.0f - s);
}

/* d/dx x*s(x) = s (1 + x (1 - s)). */
static float act_silu_dx(float x) {
  float s = act_sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

/* Keeps NaN (a comparison-based max would turn it into 0). */
static float act_relu(float x) { return x > 0.0f || isnan(x) ? x : 0.0f; }

static float act_sign(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x; } /* +-0 and NaN kept */

float ot_act_apply(int func, float x, float alpha) {
  switch (func) {
  case OT_ACT_COPY: return x;
  case OT_ACT_SQUARE: return x * x;
  case OT_ACT_SIGMOID: return act_sigmoid(x);
  case OT_ACT_RELU: return act_relu(x);
  case OT_ACT_PRELU: return x >= 0.0f || isnan(x) ? x : alpha * x;
  case OT_ACT_GELU: return act_gelu(x);
  case OT_ACT_GELU_DX: return act_gelu_dx(x);
  case OT_ACT_GELU_TANH: return act_gelu_tanh(x);
  case OT_ACT_GELU_SIGMOID: return x * act_sigmoid(1.702f * x);
  case OT_ACT_GELU_SIGMOID_DX: return act_gelu_sigmoid_dx(x);
  case OT_ACT_SILU: return x * act_sigmoid(x);
  case OT_ACT_SILU_DX: return act_silu_dx(x);
  case OT_ACT_TANH: return tanhf(x);
  case OT_ACT_SOFTPLUS: return act_softplus(x);
  case OT_ACT_MISH: return x * tanhf(act_softplus(x));
  case OT_ACT_ERF: return erff(x);
  case OT_ACT_ERF_DX: return TWO_SQRT_PI * expf(-(x * x));
  case OT_ACT_EXP: return expf(x);
  case OT_ACT_SIGN: return act_sign(x);
  case OT_ACT_ABS: return fabsf(x);
  case OT_ACT_LOG: return logf(x);
  case OT_ACT_SIN: return sinf(x);
  case OT_ACT_ARCTAN: return atanf(x);
  case OT_ACT_SQRT: return sqrtf(x);
  case OT_ACT_RSQRT: return 1.0f / sqrtf(x);
  case OT_ACT_RECIPROCAL: return 1.0f / x;
  default: return NAN;
  }
}

/* red: one fp32 sum per partition, over y before y is rounded to dst's type, in element order
** starting from +0. */
static ot_status act_sums(ot_exec_op *e, const float *y, uint32_t P, uint64_t F, float **sum) {
  const ot_view *red = &e->v[6];
  if (red->parts != P || red->free_elems != 1)
    return exec_fail(e, "red: [%u partitions, %llu elements], expected a per-partition [%u, 1]", red->parts,
                     (unsigned long long)red->free_elems, P);
  if (!(*sum = exec_alloc(e, P, sizeof **sum))) return OT_ENOMEM;
  for (uint32_t p = 0; p < P; p++) {
    float s = 0.0f;
    for (uint64_t f = 0; f < F; f++) s = s + y[p * F + f];
    (*sum)[p] = s;
  }
  return OT_OK;
}

/* x = func(x * scale + bias) in place; an absent bias adds nothing (so -0 stays -0). */
static void act_apply_all(float *x, const float *scale, const float *bias, int func, float alpha, uint32_t P,
                          uint64_t F) {
  for (uint32_t p = 0; p < P; p++)
    for (uint64_t f = 0; f < F; f++) {
      float t = x[p * F + f] * scale[p]; /* rounded, then the add rounded: no FMA */
      if (bias) t = t + bias[p];
      x[p * F + f] = ot_act_apply(func, t, alpha);
    }
}

ot_status exec_activate(ot_exec_op *e) {
  int func = e->in->o[2].i;
  if (func < 0 || func >= OT_ACT_COUNT) return exec_fail(e, "func: activation function %d unknown", func);
  ot_status st = exec_same_shape(e, 0, 1);
  if (st != OT_OK) return st;
  uint32_t P = e->v[1].parts;
  uint64_t F = e->v[1].free_elems;
  float *x, *scale, *bias = NULL, *sum = NULL;
  if ((st = exec_read_f32(e, 1, &x)) != OT_OK) return st;
  if ((st = exec_per_partition(e, 3, P, 1.0f, &scale)) != OT_OK) return st;
  if (e->has[4] && (st = exec_per_partition(e, 4, P, 0.0f, &bias)) != OT_OK) return st;
  act_apply_all(x, scale, bias, func, e->in->o[5].f, P, F);
  if (e->has[6] && (st = act_sums(e, x, P, F, &sum)) != OT_OK) return st;
  if ((st = exec_write_f32(e, 0, x, false)) != OT_OK) return st;
  return sum ? exec_write_f32(e, 6, sum, false) : OT_OK;
}
