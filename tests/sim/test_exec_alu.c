/* The element-wise ALU: tensor_tensor, tensor_scalar, scalar_tensor_tensor and tensor_reduce
** against plain references over random shapes, strided patterns and types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_exec_util.h"

/* ---- references -------------------------------------------------------------------------------- */
static float ref_max(float x, float y) { return isnan(x) || isnan(y) ? (isnan(x) ? x : y) : x > y ? x : y; }
static float ref_min(float x, float y) { return isnan(x) || isnan(y) ? (isnan(x) ? x : y) : x < y ? x : y; }

static float ref_f32(int op, float x, float y) {
  switch (op) {
  case OT_ALU_BYPASS: return x;
  case OT_ALU_ADD: return x + y;
  case OT_ALU_SUB: return x - y;
  case OT_ALU_MUL: return x * y;
  case OT_ALU_DIV: return x / y;
  case OT_ALU_MAX: return ref_max(x, y);
  case OT_ALU_MIN: return ref_min(x, y);
  case OT_ALU_POW: return powf(x, y);
  case OT_ALU_ABS_MAX: return ref_max(fabsf(x), fabsf(y));
  case OT_ALU_ABS_MIN: return ref_min(fabsf(x), fabsf(y));
  case OT_ALU_EQ: return x == y ? 1.0f : 0.0f;
  case OT_ALU_NE: return x != y ? 1.0f : 0.0f;
  case OT_ALU_GE: return x >= y ? 1.0f : 0.0f;
  case OT_ALU_GT: return x > y ? 1.0f : 0.0f;
  case OT_ALU_LE: return x <= y ? 1.0f : 0.0f;
  case OT_ALU_LT: return x < y ? 1.0f : 0.0f;
  case OT_ALU_LOGICAL_AND: return x != 0 && y != 0 ? 1.0f : 0.0f;
  case OT_ALU_LOGICAL_OR: return x != 0 || y != 0 ? 1.0f : 0.0f;
  case OT_ALU_LOGICAL_XOR: return (x != 0) != (y != 0) ? 1.0f : 0.0f;
  case OT_ALU_ABS: return fabsf(x);
  case OT_ALU_SQUARE: return x * x;
  case OT_ALU_RELU: return isnan(x) ? x : x > 0 ? x : 0.0f;
  case OT_ALU_RSQRT: return 1.0f / sqrtf(x);
  case OT_ALU_RECIPROCAL: return 1.0f / x;
  default: return NAN;
  }
}

/* Bit-vector ops on integer values (the integer domain). */
static int64_t ref_bits(int op, int64_t x, int64_t y) {
  uint32_t a = (uint32_t)x, b = (uint32_t)y;
  switch (op) {
  case OT_ALU_AND: return a & b;
  case OT_ALU_OR: return a | b;
  case OT_ALU_XOR: return a ^ b;
  case OT_ALU_SHL: return b >= 32 ? 0 : a << b;
  case OT_ALU_SHR: return b >= 32 ? 0 : a >> b;
  default: return ~a; /* invert */
  }
}

static int64_t int_value(uint32_t raw, ot_dtype t) {
  switch (t) {
  case OT_DT_INT8: return (int8_t)raw;
  case OT_DT_INT16: return (int16_t)raw;
  case OT_DT_INT32: return (int32_t)raw;
  default: return raw;
  }
}

static uint32_t truncate_to(int64_t v, ot_dtype t) {
  size_t es = ot_dtype_size(t);
  return es == 4 ? (uint32_t)v : (uint32_t)v & ((1u << (8 * es)) - 1);
}

static const int float_ops[] = {OT_ALU_BYPASS, OT_ALU_ADD, OT_ALU_SUB, OT_ALU_MUL, OT_ALU_DIV, OT_ALU_MAX, OT_ALU_MIN,
                                OT_ALU_POW, OT_ALU_ABS_MAX, OT_ALU_ABS_MIN, OT_ALU_EQ, OT_ALU_NE, OT_ALU_GE, OT_ALU_GT,
                                OT_ALU_LE, OT_ALU_LT, OT_ALU_LOGICAL_AND, OT_ALU_LOGICAL_OR, OT_ALU_LOGICAL_XOR,
                                OT_ALU_ABS, OT_ALU_SQUARE, OT_ALU_RELU, OT_ALU_RSQRT, OT_ALU_RECIPROCAL};
#define N_FLOAT_OPS (sizeof float_ops / sizeof float_ops[0])
static const ot_dtype float_types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16, OT_DT_FP8E4M3, OT_DT_INT32, OT_DT_INT8, OT_DT_UINT16};

/* Small values with ties and zeros, so comparisons and logic see both outcomes. */
static void rand_small(float *v, uint64_t n, ot_dtype t) {
  xt_rand_vals(v, n, t, -4, 4);
  for (uint64_t i = 0; i < n; i++)
    if (xt_below(6) == 0) v[i] = ot_bits_to_f32(ot_f32_to_bits((float)xt_range(-1, 2), t, NULL), t);
}

/* ---- tensor_tensor ----------------------------------------------------------------------------- */
static void run_tt_float(xt_env *e, int op, ot_dtype at, ot_dtype bt, ot_dtype dt, uint32_t P, uint32_t F, bool in_psum) {
  uint64_t span, n = (uint64_t)P * F;
  ot_ap a = xt_rand_ap(in_psum ? OT_MEM_PSUM : OT_MEM_SBUF, at, 0, P, 0, F, &span);
  ot_ap b = xt_rand_ap(OT_MEM_SBUF, bt, 0, P, 8192, F, &span);
  ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 16384, F, &span);
  float *x = malloc(n * 4), *y = malloc(n * 4);
  uint32_t *got = malloc(n * 4), *want = malloc(n * 4);
  rand_small(x, n, at);
  rand_small(y, n, bt);
  if (op == OT_ALU_POW) for (uint64_t i = 0; i < n; i++) x[i] = fabsf(x[i]);
  xt_put_f32(e, &a, x);
  xt_put_f32(e, &b, y);
  ot_insn_init(&e->insn, OT_OP_TENSOR_TENSOR);
  e->insn.o[0].ap = d, e->insn.o[1].ap = a, e->insn.o[2].ap = b, e->insn.o[3].i = op;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &d, got);
  for (uint64_t i = 0; i < n; i++) want[i] = ot_f32_to_bits(ref_f32(op, x[i], y[i]), dt, NULL);
  if (!xt_same_bits(got, want, n, ot_alu_name(op))) fail();
  free(x), free(y), free(got), free(want);
}

static void test_tensor_tensor_float(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(21);
  for (int it = 0; it < 150; it++) {
    ot_dtype at = float_types[xt_below(7)], bt = float_types[xt_below(7)], dt = float_types[xt_below(7)];
    if (!ot_dtype_is_float(at)) bt = at; /* keep the integer domain's operands integers */
    run_tt_float(e, float_ops[xt_below(N_FLOAT_OPS)], at, bt, dt, xt_rand_parts(), xt_rand_free(), xt_below(2));
  }
  xt_env_free(e);
}

static void run_tt_bits(xt_env *e, int op, ot_dtype at, ot_dtype bt, ot_dtype dt, uint32_t P, uint32_t F) {
  uint64_t span, n = (uint64_t)P * F;
  ot_ap a = xt_rand_ap(OT_MEM_SBUF, at, 0, P, 0, F, &span);
  ot_ap b = xt_rand_ap(OT_MEM_SBUF, bt, 0, P, 8192, F, &span);
  ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 16384, F, &span);
  uint32_t *x = malloc(n * 4), *y = malloc(n * 4), *got = malloc(n * 4), *want = malloc(n * 4);
  for (uint64_t i = 0; i < n; i++) {
    x[i] = truncate_to((int64_t)xt_next(), at);
    y[i] = op == OT_ALU_SHL || op == OT_ALU_SHR ? (uint32_t)xt_below(40) : truncate_to((int64_t)xt_next(), bt);
  }
  xt_put_bits(e, &a, x);
  xt_put_bits(e, &b, y);
  ot_insn_init(&e->insn, OT_OP_TENSOR_TENSOR);
  e->insn.o[0].ap = d, e->insn.o[1].ap = a, e->insn.o[2].ap = b, e->insn.o[3].i = op;
  assert_int_equal(xt_exec(e, OT_ENG_GPSIMD), OT_OK);
  xt_get_bits(e, &d, got);
  for (uint64_t i = 0; i < n; i++) want[i] = truncate_to(ref_bits(op, int_value(x[i], at), int_value(y[i], bt)), dt);
  if (!xt_same_bits(got, want, n, ot_alu_name(op))) fail();
  free(x), free(y), free(got), free(want);
}

static void test_tensor_tensor_bitvec(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(22);
  static const int ops[] = {OT_ALU_AND, OT_ALU_OR, OT_ALU_XOR, OT_ALU_SHL, OT_ALU_SHR, OT_ALU_INVERT};
  static const ot_dtype ints[] = {OT_DT_INT32, OT_DT_UINT32, OT_DT_INT16, OT_DT_UINT8, OT_DT_INT8};
  for (int it = 0; it < 80; it++)
    run_tt_bits(e, ops[xt_below(6)], ints[xt_below(5)], ints[xt_below(5)], ints[xt_below(5)], xt_rand_parts(), xt_rand_free());
  /* float domain: the fp32 pattern.  and with 0x7FFFFFFF-like masks clears the sign. */
  ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 2), m = xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 1, 64, 2);
  ot_ap d = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 128, 2);
  float x[2] = {-2.5f, 3.0f}, r[2];
  uint32_t mask[2] = {0x7FFFFFFFu, 0x7FFFFFFFu};
  xt_put_f32(e, &a, x);
  xt_put_bits(e, &m, mask);
  ot_insn_init(&e->insn, OT_OP_TENSOR_TENSOR);
  e->insn.o[0].ap = d, e->insn.o[1].ap = a, e->insn.o[2].ap = m, e->insn.o[3].i = OT_ALU_AND;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_f32(e, &d, r);
  assert_true(r[0] == 2.5f && r[1] == 3.0f);
  xt_env_free(e);
}

/* ---- tensor_scalar / scalar_tensor_tensor ------------------------------------------------------ */
/* A per-partition operand: an immediate or a [P, 1] pattern at off; values in v[P]. */
static void set_scalar(xt_env *e, ot_operand *o, uint32_t P, uint64_t off, float *v) {
  if (xt_below(2)) {
    o->tag = OT_TAG_IMM;
    o->f = (float)xt_range(-3, 3) * 0.75f;
    for (uint32_t p = 0; p < P; p++) v[p] = o->f;
    return;
  }
  o->tag = OT_TAG_AP;
  o->ap = xt_ap(OT_MEM_SBUF, xt_below(2) ? OT_DT_FP32 : OT_DT_BF16, 0, P, off);
  xt_rand_vals(v, P, (ot_dtype)o->ap.dtype, -3, 3);
  xt_put_f32(e, &o->ap, v);
}

static void test_tensor_scalar(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(23);
  for (int it = 0; it < 150; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype st = float_types[xt_below(4)], dt = float_types[xt_below(7)];
    int op0 = float_ops[xt_below(N_FLOAT_OPS)], op1 = float_ops[xt_below(N_FLOAT_OPS)];
    if (op0 == OT_ALU_POW) op0 = OT_ALU_MUL;
    ot_ap src = xt_rand_ap(OT_MEM_SBUF, st, 0, P, 0, F, &span), d = xt_rand_ap(OT_MEM_PSUM, dt, 0, P, 0, F, &span);
    float *x = malloc(n * 4), s0[128], s1[128];
    uint32_t *got = malloc(n * 4), *want = malloc(n * 4);
    rand_small(x, n, st);
    xt_put_f32(e, &src, x);
    ot_insn_init(&e->insn, OT_OP_TENSOR_SCALAR);
    e->insn.o[0].ap = d, e->insn.o[1].ap = src, e->insn.o[2].i = op0, e->insn.o[4].i = op1;
    set_scalar(e, &e->insn.o[3], P, 8192, s0);
    set_scalar(e, &e->insn.o[5], P, 8196, s1);
    assert_int_equal(xt_exec(e, OT_ENG_SCALAR), OT_OK);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++)
      want[i] = ot_f32_to_bits(ref_f32(op1, ref_f32(op0, x[i], s0[i / F]), s1[i / F]), dt, NULL);
    if (!xt_same_bits(got, want, n, "tensor_scalar")) fail();
    free(x), free(got), free(want);
  }
  xt_env_free(e);
}

static void test_tensor_scalar_shift_immediate(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 2, 0, 3), d = xt_dense(OT_MEM_SBUF, OT_DT_INT16, 0, 2, 64, 3);
  uint32_t x[6] = {1, 2, 3, 0xFFFFFFFFu, 0x80000000u, 7}, got[6];
  xt_put_bits(e, &src, x);
  ot_insn_init(&e->insn, OT_OP_TENSOR_SCALAR); /* (x << 4) & 0xFF0: immediates are integers here */
  e->insn.o[0].ap = d, e->insn.o[1].ap = src, e->insn.o[2].i = OT_ALU_SHL, e->insn.o[3].f = 4;
  e->insn.o[4].i = OT_ALU_AND, e->insn.o[5].f = 4080;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &d, got);
  uint32_t want[6] = {0x10, 0x20, 0x30, 0xFF0, 0, 0x70};
  assert_memory_equal(got, want, sizeof want);
  xt_env_free(e);
}

static void test_scalar_tensor_tensor(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(24);
  for (int it = 0; it < 100; it++) {
    uint32_t P = xt_rand_parts(), F = xt_rand_free();
    uint64_t span, n = (uint64_t)P * F;
    ot_dtype at = float_types[xt_below(3)], bt = float_types[xt_below(3)], dt = float_types[xt_below(3)];
    int op0 = float_ops[1 + xt_below(6)], op1 = float_ops[xt_below(N_FLOAT_OPS)];
    ot_ap a = xt_rand_ap(OT_MEM_SBUF, at, 0, P, 0, F, &span), b = xt_rand_ap(OT_MEM_PSUM, bt, 0, P, 0, F, &span);
    ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 16384, F, &span);
    float *x = malloc(n * 4), *y = malloc(n * 4), s0[128];
    uint32_t *got = malloc(n * 4), *want = malloc(n * 4);
    rand_small(x, n, at);
    rand_small(y, n, bt);
    xt_put_f32(e, &a, x);
    xt_put_f32(e, &b, y);
    ot_insn_init(&e->insn, OT_OP_SCALAR_TENSOR_TENSOR);
    e->insn.o[0].ap = d, e->insn.o[1].ap = a, e->insn.o[2].i = op0, e->insn.o[4].i = op1, e->insn.o[5].ap = b;
    set_scalar(e, &e->insn.o[3], P, 8192, s0);
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
    xt_get_bits(e, &d, got);
    for (uint64_t i = 0; i < n; i++) want[i] = ot_f32_to_bits(ref_f32(op1, ref_f32(op0, x[i], s0[i / F]), y[i]), dt, NULL);
    if (!xt_same_bits(got, want, n, "scalar_tensor_tensor")) fail();
    free(x), free(y), free(got), free(want);
  }
  xt_env_free(e);
}

/* ---- tensor_reduce ----------------------------------------------------------------------------- */
static void run_reduce(xt_env *e, int op, ot_dtype st, ot_dtype dt, uint32_t P, uint32_t F, bool negate) {
  uint64_t span;
  ot_ap src = xt_rand_ap(OT_MEM_SBUF, st, 0, P, 0, F, &span);
  int axes = 1 + (int)xt_below(src.ndim);
  uint64_t G = 1;
  for (int d = src.ndim - axes; d < src.ndim; d++) G *= src.dim[d].size;
  uint64_t kept = F / G, n = (uint64_t)P * F;
  ot_ap d = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 16384, (uint32_t)kept, &span);
  float *x = malloc(n * 4);
  uint32_t *raw = malloc(n * 4), *got = malloc(P * kept * 4), *want = malloc(P * kept * 4);
  bool bits = ot_alu_class_of(op) == OT_ALU_BITVEC;
  if (bits) for (uint64_t i = 0; i < n; i++) raw[i] = truncate_to((int64_t)xt_next(), st);
  else {
    xt_rand_vals(x, n, st, op == OT_ALU_MUL ? 0.5f : -4, op == OT_ALU_MUL ? 1.5f : 4);
    for (uint64_t i = 0; i < n; i++) if (xt_below(5) == 0) x[i] = 0.0f;
    for (uint64_t i = 0; i < n; i++) raw[i] = ot_f32_to_bits(x[i], st, NULL);
  }
  xt_put_bits(e, &src, raw);
  ot_insn_init(&e->insn, OT_OP_TENSOR_REDUCE);
  e->insn.o[0].ap = d, e->insn.o[1].ap = src, e->insn.o[2].i = op, e->insn.o[3].i = axes, e->insn.o[4].i = negate;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &d, got);
  for (uint64_t g = 0; g < P * kept; g++) {
    if (bits) {
      int64_t r = int_value(raw[g * G], st);
      for (uint64_t j = 1; j < G; j++) r = ref_bits(op, r, int_value(raw[g * G + j], st));
      want[g] = truncate_to(negate ? -(int64_t)(int32_t)(uint32_t)r : r, dt);
    } else {
      bool logic = ot_alu_class_of(op) == OT_ALU_LOGIC;
      float r = logic ? (x[g * G] != 0 ? 1.0f : 0.0f) : x[g * G];
      for (uint64_t j = 1; j < G; j++) r = ref_f32(op, r, x[g * G + j]);
      want[g] = ot_f32_to_bits(negate ? -r : r, dt, NULL);
    }
  }
  if (!xt_same_bits(got, want, P * kept, ot_alu_name(op))) fail_msg("axes %d of %u dims", axes, src.ndim);
  free(x), free(raw), free(got), free(want);
}

static void test_tensor_reduce(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(25);
  static const int fops[] = {OT_ALU_ADD, OT_ALU_SUB, OT_ALU_MUL, OT_ALU_MAX, OT_ALU_MIN, OT_ALU_LOGICAL_AND, OT_ALU_LOGICAL_OR,
                             OT_ALU_LOGICAL_XOR};
  static const int bops[] = {OT_ALU_AND, OT_ALU_OR, OT_ALU_XOR};
  static const ot_dtype ints[] = {OT_DT_INT32, OT_DT_UINT16, OT_DT_INT8};
  for (int it = 0; it < 120; it++) {
    run_reduce(e, fops[xt_below(8)], float_types[xt_below(3)], float_types[xt_below(3)], xt_rand_parts(), xt_rand_free(),
               xt_below(2));
    run_reduce(e, bops[xt_below(3)], ints[xt_below(3)], ints[xt_below(3)], xt_rand_parts(), xt_rand_free(), xt_below(2));
  }
  /* not a reduction operator; dst of the wrong size */
  ot_insn_init(&e->insn, OT_OP_TENSOR_REDUCE);
  e->insn.o[0].ap = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 0, 1);
  e->insn.o[1].ap = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 64, 8);
  e->insn.o[2].i = OT_ALU_DIV, e->insn.o[3].i = 1;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "'div' is not a reduction operator", NULL));
  e->insn.o[2].i = OT_ALU_ADD;
  e->insn.o[0].ap.dim[0].size = 2;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst is [4 partitions, 2 elements]", "leaves [4, 1]"));
  e->insn.o[3].i = 2;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "axes=2, src has 1 free dimensions", NULL));
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_tensor_tensor_float),
    cmocka_unit_test(test_tensor_tensor_bitvec),
    cmocka_unit_test(test_tensor_scalar),
    cmocka_unit_test(test_tensor_scalar_shift_immediate),
    cmocka_unit_test(test_scalar_tensor_tensor),
    cmocka_unit_test(test_tensor_reduce),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
