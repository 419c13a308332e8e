/* Element-wise data movement and generation: tensor_copy, memset, reciprocal, select, iota,
** affine_select; and VectorE's batch-norm statistics bn_stats / bn_aggr. */
#include <string.h>

#include "sim/sim_exec_int.h"

/* One element of type st (raw bits) as type dt: the bits when the types match, else through
** fp32 with the context's rounding. */
static uint32_t elem_cast(uint32_t raw, ot_dtype st, ot_dtype dt, const ot_cvt *cvt) {
  return st == dt ? raw : ot_f32_to_bits(ot_bits_to_f32(raw, st), dt, cvt);
}

/* ---- copies and fills ---------------------------------------------------------------------- */
ot_status exec_tensor_copy(ot_exec_op *e) {
  ot_status st = exec_same_shape(e, 0, 1);
  if (st != OT_OK) return st;
  if (e->v[0].dtype == e->v[1].dtype) { /* raw bits: NaN payloads and -0 survive */
    uint32_t *b;
    if ((st = exec_read_bits(e, 1, &b)) != OT_OK) return st;
    return exec_write_bits(e, 0, b, false);
  }
  float *f;
  if ((st = exec_read_f32(e, 1, &f)) != OT_OK) return st;
  return exec_write_f32(e, 0, f, false);
}

ot_status exec_memset(ot_exec_op *e) {
  uint64_t n = ot_view_elems(&e->v[0]);
  float *f = exec_alloc(e, n, sizeof *f);
  if (!f) return OT_ENOMEM;
  for (uint64_t i = 0; i < n; i++) f[i] = e->in->o[1].f;
  return exec_write_f32(e, 0, f, false);
}

ot_status exec_reciprocal(ot_exec_op *e) {
  ot_status st = exec_same_shape(e, 0, 1);
  float *f;
  if (st != OT_OK || (st = exec_read_f32(e, 1, &f)) != OT_OK) return st;
  uint64_t n = ot_view_elems(&e->v[1]);
  for (uint64_t i = 0; i < n; i++) f[i] = 1.0f / f[i];
  return exec_write_f32(e, 0, f, false);
}

/* select: dst = pred != 0 ? a : b (a NaN predicate is nonzero). */
ot_status exec_select(ot_exec_op *e) {
  ot_status st;
  if ((st = exec_same_shape(e, 0, 1)) || (st = exec_same_shape(e, 0, 2)) || (st = exec_same_shape(e, 0, 3))) return st;
  float *pred;
  uint32_t *a, *b;
  if ((st = exec_read_f32(e, 1, &pred)) || (st = exec_read_bits(e, 2, &a)) || (st = exec_read_bits(e, 3, &b))) return st;
  ot_dtype dt = e->v[0].dtype, at = e->v[2].dtype, bt = e->v[3].dtype;
  uint64_t n = ot_view_elems(&e->v[0]);
  for (uint64_t i = 0; i < n; i++) /* in place into a: element i is read before it is written */
    a[i] = pred[i] != 0.0f ? elem_cast(a[i], at, dt, &e->x->cvt) : elem_cast(b[i], bt, dt, &e->x->cvt);
  return exec_write_bits(e, 0, a, false);
}

/* ---- affine index expressions (iota, affine_select) ---------------------------------------- */
/* value = base + p * pmul + sum(steps[d] * i_d) for every element of operand k, in iteration
** order, in int64 (exact: |terms| < 2^31 * 2^32). */
static ot_status affine_values(ot_exec_op *e, unsigned k, int32_t base, int32_t pmul, const int32_t *steps,
                               int64_t **out) {
  const ot_view *v = &e->v[k];
  uint64_t n = ot_view_elems(v);
  if (!(*out = exec_alloc(e, n, sizeof **out))) return OT_ENOMEM;
  uint64_t idx[OT_AP_MAX_DIMS] = {0};
  for (uint64_t i = 0; i < n; i++) {
    uint64_t p = i / (v->free_elems ? v->free_elems : 1);
    int64_t val = (int64_t)base + (int64_t)p * pmul;
    for (uint32_t d = 0; d < v->ndim; d++) val += (int64_t)steps[d] * (int64_t)idx[d];
    (*out)[i] = val;
    for (int d = (int)v->ndim - 1; d >= 0; d--) { /* odometer, innermost first; wraps per partition */
      if (++idx[d] < v->size[d]) break;
      idx[d] = 0;
    }
  }
  return OT_OK;
}

/* An int64 value stored by value: integers saturated to the type's range, floats rounded once
** (from int32 when it fits, which ot_convert rounds once; else via fp32). */
static uint32_t int64_to_bits(int64_t v, ot_dtype t, const ot_cvt *cvt) {
  if (!ot_dtype_is_float(t)) {
    double mx = ot_dtype_max(t);
    int64_t lo = t == OT_DT_INT8 ? -128 : t == OT_DT_INT16 ? -32768 : t == OT_DT_INT32 ? INT32_MIN : 0;
    int64_t hi = (int64_t)mx;
    v = v < lo ? lo : v > hi ? hi : v;
    uint32_t mask = ot_dtype_size(t) == 4 ? 0xFFFFFFFFu : (1u << (8 * ot_dtype_size(t))) - 1u;
    return (uint32_t)(uint64_t)v & mask;
  }
  if (v < INT32_MIN || v > INT32_MAX) return ot_f32_to_bits((float)v, t, cvt);
  uint32_t u = (uint32_t)(int32_t)v;
  uint8_t in[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)}, o[4] = {0};
  ot_convert(o, t, in, OT_DT_INT32, 1, cvt);
  return (uint32_t)o[0] | (uint32_t)o[1] << 8 | (uint32_t)o[2] << 16 | (uint32_t)o[3] << 24;
}

ot_status exec_iota(ot_exec_op *e) {
  int64_t *val;
  ot_status st = affine_values(e, 0, e->in->o[1].i, e->in->o[2].i, e->in->o[3].pat, &val);
  if (st != OT_OK) return st;
  uint64_t n = ot_view_elems(&e->v[0]);
  uint32_t *bits = exec_alloc(e, n, sizeof *bits);
  if (!bits) return OT_ENOMEM;
  for (uint64_t i = 0; i < n; i++) bits[i] = int64_to_bits(val[i], e->v[0].dtype, &e->x->cvt);
  return exec_write_bits(e, 0, bits, false);
}

static bool affine_cmp(int op, int64_t v) {
  switch (op) {
  case OT_ALU_EQ: return v == 0;
  case OT_ALU_NE: return v != 0;
  case OT_ALU_GE: return v >= 0;
  case OT_ALU_GT: return v > 0;
  case OT_ALU_LE: return v <= 0;
  default: return v < 0; /* OT_ALU_LT */
  }
}

ot_status exec_affine_select(ot_exec_op *e) {
  int cmp = e->in->o[2].i;
  if (ot_alu_class_of(cmp) != OT_ALU_CMP || cmp < 0 || cmp >= OT_ALU_COUNT)
    return exec_fail(e, "cmp: '%s' is not a comparison (eq ne ge gt le lt)", ot_alu_name(cmp));
  ot_status st = exec_same_shape(e, 0, 1);
  int64_t *val;
  uint32_t *src;
  if (st || (st = affine_values(e, 0, e->in->o[3].i, e->in->o[4].i, e->in->o[5].pat, &val)) ||
      (st = exec_read_bits(e, 1, &src)))
    return st;
  ot_dtype dt = e->v[0].dtype, t = e->v[1].dtype;
  uint64_t n = ot_view_elems(&e->v[0]);
  for (uint64_t i = 0; i < n; i++)
    src[i] = affine_cmp(cmp, val[i]) ? elem_cast(src[i], t, dt, &e->x->cvt) : ot_f32_to_bits(e->in->o[6].f, dt, &e->x->cvt);
  return exec_write_bits(e, 0, src, false);
}

/* ---- batch-norm statistics ----------------------------------------------------------------- */
/* count, mean and M2 = sum (x - mean)^2 of x[0], x[step], ... (n elements), sequential fp32. */
static void bn_moments(const float *x, uint64_t n, uint64_t step, float out[3]) {
  float sum = 0.0f, m2 = 0.0f, mean = 0.0f;
  for (uint64_t i = 0; i < n; i++) sum = sum + x[i * step];
  if (n) mean = sum / (float)n;
  for (uint64_t i = 0; i < n; i++) {
    float d = x[i * step] - mean;
    m2 = m2 + d * d;
  }
  out[0] = (float)n, out[1] = mean, out[2] = m2;
}

ot_status exec_bn_stats(ot_exec_op *e) {
  ot_status st = exec_same_parts(e, 0, 1);
  if (st != OT_OK) return st;
  if (e->v[0].free_elems != 6)
    return exec_fail(e, "dst holds %llu elements per partition, bn_stats writes 6", (unsigned long long)e->v[0].free_elems);
  float *x, *out = exec_alloc(e, (uint64_t)e->v[0].parts * 6, sizeof *out);
  if (!out) return OT_ENOMEM;
  if ((st = exec_read_f32(e, 1, &x)) != OT_OK) return st;
  uint64_t F = e->v[1].free_elems;
  for (uint32_t p = 0; p < e->v[1].parts; p++) {
    const float *row = x + p * F;
    bn_moments(row, (F + 1) / 2, 2, out + p * 6);          /* even-index elements */
    bn_moments(F > 1 ? row + 1 : row, F / 2, 2, out + p * 6 + 3); /* odd-index elements */
  }
  return exec_write_f32(e, 0, out, false);
}

/* Chan et al.'s parallel combination of (n, mean, M2) b into a, in fp32. */
static void bn_combine(float a[3], const float b[3]) {
  if (b[0] == 0.0f) return;
  if (a[0] == 0.0f) { memcpy(a, b, 3 * sizeof *a); return; }
  float n = a[0] + b[0];
  float delta = b[1] - a[1];
  float mean = a[1] + delta * (b[0] / n);
  float m2 = a[2] + b[2] + delta * delta * (a[0] * b[0] / n);
  a[0] = n, a[1] = mean, a[2] = m2;
}

ot_status exec_bn_aggr(ot_exec_op *e) {
  ot_status st = exec_same_parts(e, 0, 1);
  if (st != OT_OK) return st;
  uint64_t F = e->v[1].free_elems;
  if (F == 0 || F % 3)
    return exec_fail(e, "src holds %llu elements per partition, expected (count, mean, M2) triples", (unsigned long long)F);
  if (e->v[0].free_elems != 2)
    return exec_fail(e, "dst holds %llu elements per partition, bn_aggr writes 2 (mean, var)",
                     (unsigned long long)e->v[0].free_elems);
  float *x, *out = exec_alloc(e, (uint64_t)e->v[0].parts * 2, sizeof *out);
  if (!out) return OT_ENOMEM;
  if ((st = exec_read_f32(e, 1, &x)) != OT_OK) return st;
  for (uint32_t p = 0; p < e->v[1].parts; p++) {
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (uint64_t t = 0; t < F; t += 3) bn_combine(acc, x + p * F + t);
    out[p * 2] = acc[1];
    out[p * 2 + 1] = acc[0] > 0.0f ? acc[2] / acc[0] : 0.0f;
  }
  return exec_write_f32(e, 0, out, false);
}
