/* The dtype table: names, sizes and the float format descriptors behind OT_DTYPE_MAP. */
#include "num/num_internal.h"

#include <string.h>

typedef struct {
  const char *name;
  unsigned bytes;
  bool is_float;
} num_dtype_info;

static const num_dtype_info num_dtypes[OT_DT_COUNT] = {
#define OT_X(id, name, bytes, isf, e, m) [OT_DT_##id] = {name, bytes, isf},
  OT_DTYPE_MAP(OT_X)
#undef OT_X
};

/* NKI names (nki.language dtypes) for the same formats, so kernels' dtype names parse too. */
static const struct { const char *alias; ot_dtype t; } num_aliases[] = {
  {"float32", OT_DT_FP32},         {"tfloat32", OT_DT_TF32},
  {"bfloat16", OT_DT_BF16},        {"float16", OT_DT_FP16},
  {"float8_e4m3", OT_DT_FP8E4M3},  {"float8_e4m3fn", OT_DT_FP8E4M3FN},
  {"float8_e5m2", OT_DT_FP8E5M2},
};

/* Float formats.  The exponent/mantissa widths must agree with OT_DTYPE_MAP; a test checks. */
static const num_fmt num_fmts[OT_DT_COUNT] = {
  [OT_DT_FP32] = {8, 23, 127, true, NUM_NAN_IEEE, 0},
  [OT_DT_TF32] = {8, 10, 127, true, NUM_NAN_IEEE, 13},
  [OT_DT_BF16] = {8, 7, 127, true, NUM_NAN_IEEE, 0},
  [OT_DT_FP16] = {5, 10, 15, true, NUM_NAN_IEEE, 0},
  /* Neuron "FP8_EXP4 (IEEE-754)": the top exponent is reserved, so the max is 240. */
  [OT_DT_FP8E4M3] = {4, 3, 7, true, NUM_NAN_IEEE, 0},
  /* OCP E4M3FN: no Inf, only S.1111.111 is NaN, so the max is 448. */
  [OT_DT_FP8E4M3FN] = {4, 3, 7, false, NUM_NAN_ALL_ONES, 0},
  [OT_DT_FP8E5M2] = {5, 2, 15, true, NUM_NAN_IEEE, 0},
  /* cFP8 with the default bias 3 (the bias control is not public, trainium.md §8 item 9). */
  [OT_DT_FP8E3M4] = {3, 4, 3, true, NUM_NAN_IEEE, 0},
};

const num_fmt *num_fmt_of(ot_dtype t) {
  if ((unsigned)t >= OT_DT_COUNT || !num_dtypes[t].is_float) return NULL;
  return &num_fmts[t];
}

const char *ot_dtype_name(ot_dtype t) {
  return (unsigned)t < OT_DT_COUNT ? num_dtypes[t].name : "?";
}

bool ot_dtype_parse(const char *name, ot_dtype *out) {
  if (!name) return false;
  for (unsigned i = 0; i < OT_DT_COUNT; i++) {
    if (strcmp(name, num_dtypes[i].name) == 0) {
      if (out) *out = (ot_dtype)i;
      return true;
    }
  }
  for (size_t i = 0; i < sizeof num_aliases / sizeof num_aliases[0]; i++) {
    if (strcmp(name, num_aliases[i].alias) == 0) {
      if (out) *out = num_aliases[i].t;
      return true;
    }
  }
  return false;
}

size_t ot_dtype_size(ot_dtype t) {
  return (unsigned)t < OT_DT_COUNT ? num_dtypes[t].bytes : 0;
}

bool ot_dtype_is_float(ot_dtype t) {
  return (unsigned)t < OT_DT_COUNT && num_dtypes[t].is_float;
}

double ot_dtype_max(ot_dtype t) {
  const num_fmt *f = num_fmt_of(t);
  if (f) return (double)num_bits_f32(num_fmt_decode(f, num_fmt_max_enc(f) << f->container_shift));
  int64_t lo, hi;
  if (num_int_range(t, &lo, &hi)) return (double)hi; /* integers: the largest value */
  return 0.0;
}
