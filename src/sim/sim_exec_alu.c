/* The element-wise ALU of VectorE / ScalarE / GpSimdE: tensor_tensor, tensor_scalar,
** scalar_tensor_tensor and tensor_reduce, over the operations of alu_ops.def.
**
** Lanes are fp32 values, except around BITVEC operations, which work on 32-bit patterns.
** An instruction's domain is integer when its main input (src / a) has an integer type, else
** float; the domain decides how a lane crosses between the two forms:
**   memory element -> bits: integers by value (sign/zero-extended), floats as the fp32 pattern
**   immediate      -> bits: its value as int32 (round to nearest even, saturated)
**   fp32 -> bits, bits -> fp32 between stages: by value (int32) in the integer domain, by
**                  reinterpreting the fp32 pattern in the float domain
**   bits -> dst:   integer dst by value (the low bits), float dst as an fp32 pattern, rounded.
** docs/simulator-semantics.md has the full table. */
#include <math.h>
#include <string.h>

#include "sim/sim_exec_int.h"

/* ---- the operations ------------------------------------------------------------------------ */
/* max/min propagate NaN (a NaN operand gives a NaN result), like PyTorch's maximum. */
static float alu_max(float x, float y) { return x > y || isnan(x) ? x : y; }
static float alu_min(float x, float y) { return x < y || isnan(x) ? x : y; }
static float alu_bool(bool b) { return b ? 1.0f : 0.0f; }

float ot_alu_apply_f32(int op, float x, float y) {
  switch (op) {
  case OT_ALU_BYPASS: return x;
  case OT_ALU_ADD: return x + y;
  case OT_ALU_SUB: return x - y;
  case OT_ALU_MUL: return x * y;
  case OT_ALU_DIV: return x / y;
  case OT_ALU_MAX: return alu_max(x, y);
  case OT_ALU_MIN: return alu_min(x, y);
  case OT_ALU_POW: return powf(x, y);
  case OT_ALU_ABS_MAX: return alu_max(fabsf(x), fabsf(y));
  case OT_ALU_ABS_MIN: return alu_min(fabsf(x), fabsf(y));
  case OT_ALU_EQ: return alu_bool(x == y);
  case OT_ALU_NE: return alu_bool(x != y);
  case OT_ALU_GE: return alu_bool(x >= y);
  case OT_ALU_GT: return alu_bool(x > y);
  case OT_ALU_LE: return alu_bool(x <= y);
  case OT_ALU_LT: return alu_bool(x < y);
  case OT_ALU_LOGICAL_AND: return alu_bool(x != 0.0f && y != 0.0f);
  case OT_ALU_LOGICAL_OR: return alu_bool(x != 0.0f || y != 0.0f);
  case OT_ALU_LOGICAL_XOR: return alu_bool((x != 0.0f) != (y != 0.0f));
  case OT_ALU_ABS: return fabsf(x);
  case OT_ALU_SQUARE: return x * x;
  case OT_ALU_RELU: return alu_max(x, 0.0f);
  case OT_ALU_RSQRT: return 1.0f / sqrtf(x);
  case OT_ALU_RECIPROCAL: return 1.0f / x;
  default: return NAN;
  }
}

uint32_t ot_alu_apply_bits(int op, uint32_t x, uint32_t y) {
  switch (op) {
  case OT_ALU_AND: return x & y;
  case OT_ALU_OR: return x | y;
  case OT_ALU_XOR: return x ^ y;
  case OT_ALU_SHL: return y >= 32 ? 0 : x << y; /* shift counts are unsigned; >= 32 clears */
  case OT_ALU_SHR: return y >= 32 ? 0 : x >> y;
  case OT_ALU_INVERT: return ~x;
  default: return 0;
  }
}

/* ---- lanes --------------------------------------------------------------------------------- */
typedef struct {
  float *f;      /* fp32 form, or NULL */
  uint32_t *b;   /* bit form, or NULL */
  uint64_t n;
} alu_vec;

static uint32_t pattern_of(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static float float_of(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint32_t int_of(float f) { return ot_f32_to_bits(f, OT_DT_INT32, NULL); }

/* Integer memory element -> its value as a 32-bit two's complement pattern. */
static uint32_t int_extend(uint32_t raw, ot_dtype t) {
  switch (t) {
  case OT_DT_INT8: return (uint32_t)(int32_t)(int8_t)(uint8_t)raw;
  case OT_DT_INT16: return (uint32_t)(int32_t)(int16_t)(uint16_t)raw;
  default: return raw; /* unsigned types zero-extend; int32/uint32 are already 32 bits */
  }
}

static ot_status alu_need_bits(ot_exec_op *e, alu_vec *v, bool dom_int) {
  if (v->b) return OT_OK;
  if (!(v->b = exec_alloc(e, v->n, sizeof *v->b))) return OT_ENOMEM;
  for (uint64_t i = 0; i < v->n; i++) v->b[i] = dom_int ? int_of(v->f[i]) : pattern_of(v->f[i]);
  return OT_OK;
}

static ot_status alu_need_f32(ot_exec_op *e, alu_vec *v, bool dom_int) {
  if (v->f) return OT_OK;
  if (!(v->f = exec_alloc(e, v->n, sizeof *v->f))) return OT_ENOMEM;
  for (uint64_t i = 0; i < v->n; i++) v->f[i] = dom_int ? (float)(int32_t)v->b[i] : float_of(v->b[i]);
  return OT_OK;
}

/* Operand k from memory, in both forms. */
static ot_status alu_load(ot_exec_op *e, unsigned k, alu_vec *v) {
  const ot_view *w = &e->v[k];
  uint32_t *raw;
  ot_status st = exec_read_bits(e, k, &raw);
  if (st != OT_OK) return st;
  v->n = ot_view_elems(w);
  if (!(v->f = exec_alloc(e, v->n, sizeof *v->f))) return OT_ENOMEM;
  ot_bits_to_f32_n(w->dtype, raw, v->f, v->n);
  v->b = raw;
  bool is_float = ot_dtype_is_float(w->dtype);
  for (uint64_t i = 0; i < v->n; i++) v->b[i] = is_float ? pattern_of(v->f[i]) : int_extend(raw[i], w->dtype);
  return OT_OK;
}

/* A per-partition operand (VAL k): a [P, 1] pattern from memory, or an immediate. */
static ot_status alu_scalar(ot_exec_op *e, unsigned k, uint32_t P, alu_vec *v) {
  if (e->has[k]) {
    if (e->v[k].parts != P || e->v[k].free_elems != 1)
      return exec_fail(e, "%s: [%u partitions, %llu elements], expected a per-partition [%u, 1]", exec_name(e, k),
                       e->v[k].parts, (unsigned long long)e->v[k].free_elems, P);
    return alu_load(e, k, v);
  }
  ot_status st = exec_per_partition(e, k, P, 0.0f, &v->f);
  if (st != OT_OK) return st;
  v->n = P;
  if (!(v->b = exec_alloc(e, P, sizeof *v->b))) return OT_ENOMEM;
  for (uint32_t p = 0; p < P; p++) v->b[p] = int_of(v->f[p]);
  return OT_OK;
}

static ot_status alu_check_op(ot_exec_op *e, unsigned k) {
  int op = e->in->o[k].i;
  if (op < 0 || op >= OT_ALU_COUNT) return exec_fail(e, "%s: ALU operation %d unknown", exec_name(e, k), op);
  return OT_OK;
}

/* x = x <op> y over P x F lanes; y has one lane per element or, when per_part, per partition. */
static ot_status alu_stage(ot_exec_op *e, int op, bool dom_int, alu_vec *x, alu_vec *y, uint32_t P, uint64_t F,
                           bool per_part) {
  ot_status st;
  if (ot_alu_class_of(op) == OT_ALU_BITVEC) {
    if ((st = alu_need_bits(e, x, dom_int)) != OT_OK || (st = alu_need_bits(e, y, dom_int)) != OT_OK) return st;
    uint32_t *out = exec_alloc(e, x->n, sizeof *out);
    if (!out) return OT_ENOMEM;
    for (uint32_t p = 0; p < P; p++)
      for (uint64_t f = 0; f < F; f++) {
        uint64_t i = p * F + f;
        out[i] = ot_alu_apply_bits(op, x->b[i], y->b[per_part ? p : i]);
      }
    x->b = out, x->f = NULL;
    return OT_OK;
  }
  if ((st = alu_need_f32(e, x, dom_int)) != OT_OK || (st = alu_need_f32(e, y, dom_int)) != OT_OK) return st;
  float *out = exec_alloc(e, x->n, sizeof *out);
  if (!out) return OT_ENOMEM;
  for (uint32_t p = 0; p < P; p++)
    for (uint64_t f = 0; f < F; f++) {
      uint64_t i = p * F + f;
      out[i] = ot_alu_apply_f32(op, x->f[i], y->f[per_part ? p : i]);
    }
  x->f = out, x->b = NULL;
  return OT_OK;
}

/* Store lanes into operand k: fp32 results rounded; bit results by the dst's kind. */
static ot_status alu_store(ot_exec_op *e, unsigned k, const alu_vec *x) {
  ot_dtype t = e->v[k].dtype;
  if (x->f) return exec_write_f32(e, k, x->f, false);
  if (!ot_dtype_is_float(t)) {
    uint32_t mask = ot_dtype_size(t) == 4 ? 0xFFFFFFFFu : (1u << (8 * ot_dtype_size(t))) - 1u;
    uint32_t *out = exec_alloc(e, x->n, sizeof *out);
    if (!out) return OT_ENOMEM;
    for (uint64_t i = 0; i < x->n; i++) out[i] = x->b[i] & mask;
    return exec_write_bits(e, k, out, false);
  }
  float *f = exec_alloc(e, x->n, sizeof *f);
  if (!f) return OT_ENOMEM;
  for (uint64_t i = 0; i < x->n; i++) f[i] = float_of(x->b[i]);
  return exec_write_f32(e, k, f, false);
}

static bool dom_int_of(const ot_exec_op *e, unsigned k) { return !ot_dtype_is_float(e->v[k].dtype); }

/* ---- instructions -------------------------------------------------------------------------- */
ot_status exec_tensor_tensor(ot_exec_op *e) {
  ot_status st;
  if ((st = alu_check_op(e, 3)) || (st = exec_same_shape(e, 0, 1)) || (st = exec_same_shape(e, 0, 2))) return st;
  alu_vec a, b;
  if ((st = alu_load(e, 1, &a)) != OT_OK || (st = alu_load(e, 2, &b)) != OT_OK) return st;
  st = alu_stage(e, e->in->o[3].i, dom_int_of(e, 1), &a, &b, e->v[1].parts, e->v[1].free_elems, false);
  return st != OT_OK ? st : alu_store(e, 0, &a);
}

ot_status exec_tensor_scalar(ot_exec_op *e) {
  ot_status st;
  if ((st = alu_check_op(e, 2)) || (st = alu_check_op(e, 4)) || (st = exec_same_shape(e, 0, 1))) return st;
  uint32_t P = e->v[1].parts;
  uint64_t F = e->v[1].free_elems;
  bool dom = dom_int_of(e, 1);
  alu_vec x, s0, s1;
  if ((st = alu_load(e, 1, &x)) || (st = alu_scalar(e, 3, P, &s0)) || (st = alu_scalar(e, 5, P, &s1))) return st;
  if ((st = alu_stage(e, e->in->o[2].i, dom, &x, &s0, P, F, true)) != OT_OK) return st;
  if ((st = alu_stage(e, e->in->o[4].i, dom, &x, &s1, P, F, true)) != OT_OK) return st;
  return alu_store(e, 0, &x);
}

ot_status exec_scalar_tensor_tensor(ot_exec_op *e) {
  ot_status st;
  if ((st = alu_check_op(e, 2)) || (st = alu_check_op(e, 4)) || (st = exec_same_shape(e, 0, 1)) ||
      (st = exec_same_shape(e, 0, 5)))
    return st;
  uint32_t P = e->v[1].parts;
  uint64_t F = e->v[1].free_elems;
  bool dom = dom_int_of(e, 1);
  alu_vec a, s0, b;
  if ((st = alu_load(e, 1, &a)) || (st = alu_scalar(e, 3, P, &s0)) || (st = alu_load(e, 5, &b))) return st;
  if ((st = alu_stage(e, e->in->o[2].i, dom, &a, &s0, P, F, true)) != OT_OK) return st;
  if ((st = alu_stage(e, e->in->o[4].i, dom, &a, &b, P, F, false)) != OT_OK) return st;
  return alu_store(e, 0, &a);
}

/* ---- tensor_reduce ------------------------------------------------------------------------- */
/* Elements per reduced group (the innermost `axes` dims) and groups kept per partition. */
static ot_status reduce_shape(ot_exec_op *e, uint64_t *group, uint64_t *kept) {
  const ot_view *src = &e->v[1];
  int32_t axes = e->in->o[3].i;
  uint32_t nd = src->ndim ? src->ndim : 1;
  if (axes < 1 || (uint32_t)axes > nd) return exec_fail(e, "axes=%d, src has %u free dimensions", axes, src->ndim);
  *group = 1, *kept = 1;
  uint32_t outer = src->ndim > (uint32_t)axes ? src->ndim - (uint32_t)axes : 0; /* dims kept */
  for (uint32_t d = 0; d < src->ndim; d++) {
    if (d < outer) *kept *= src->size[d];
    else *group *= src->size[d];
  }
  if (*group == 0 && *kept) return exec_fail(e, "src: the reduced dimensions are empty");
  if (e->v[0].parts != src->parts || e->v[0].free_elems != *kept)
    return exec_fail(e, "dst is [%u partitions, %llu elements], reducing %d axes of src [%u, %llu] leaves [%u, %llu]",
                     e->v[0].parts, (unsigned long long)e->v[0].free_elems, axes, src->parts,
                     (unsigned long long)src->free_elems, src->parts, (unsigned long long)*kept);
  return OT_OK;
}

/* Fold each group of G lanes of x in order into out (n / G lanes). */
static void reduce_groups(int op, const alu_vec *x, uint64_t G, alu_vec *out) {
  bool bits = out->b != NULL, logic = ot_alu_class_of(op) == OT_ALU_LOGIC;
  for (uint64_t g = 0; g < out->n; g++) {
    uint64_t i = g * G;
    if (bits) {
      uint32_t r = x->b[i];
      for (uint64_t j = 1; j < G; j++) r = ot_alu_apply_bits(op, r, x->b[i + j]);
      out->b[g] = r;
    } else {
      float r = logic ? alu_bool(x->f[i] != 0.0f) : x->f[i];
      for (uint64_t j = 1; j < G; j++) r = ot_alu_apply_f32(op, r, x->f[i + j]);
      out->f[g] = r;
    }
  }
}

static void reduce_negate(alu_vec *v, bool dom_int) {
  for (uint64_t i = 0; i < v->n; i++) {
    if (v->f) v->f[i] = -v->f[i];
    else v->b[i] = dom_int ? 0u - v->b[i] : v->b[i] ^ 0x80000000u; /* fp32 pattern: flip the sign */
  }
}

ot_status exec_tensor_reduce(ot_exec_op *e) {
  int op = e->in->o[2].i;
  if (!ot_alu_reduce_ok(op)) return exec_fail(e, "op: '%s' is not a reduction operator", ot_alu_name(op));
  uint64_t G = 1, kept = 1;
  ot_status st = reduce_shape(e, &G, &kept);
  if (st != OT_OK) return st;
  alu_vec x, out = {NULL, NULL, ot_view_elems(&e->v[0])};
  if ((st = alu_load(e, 1, &x)) != OT_OK) return st;
  bool bits = ot_alu_class_of(op) == OT_ALU_BITVEC;
  if (bits ? !(out.b = exec_alloc(e, out.n, sizeof *out.b)) : !(out.f = exec_alloc(e, out.n, sizeof *out.f)))
    return OT_ENOMEM;
  if (out.n) reduce_groups(op, &x, G, &out);
  if (e->in->o[4].i) reduce_negate(&out, dom_int_of(e, 1));
  return alu_store(e, 0, &out);
}
