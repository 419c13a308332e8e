/* Helpers shared by the numerics tests (header-only, static). */
#ifndef OT_TESTS_NUM_TEST_H
#define OT_TESTS_NUM_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <opentrn/num.h>

#include "num/num_internal.h"

#define NT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static inline uint32_t nt_bits(float x) { return num_f32_bits(x); }
static inline float nt_f32(uint32_t b) { return num_bits_f32(b); }

static inline int nt_is_nan_bits(uint32_t b) { return (b & 0x7FFFFFFFu) > 0x7F800000u; }

/* Tests' own deterministic generator (xorshift64*), independent of ot_rng. */
static inline uint64_t nt_rand64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(0x2545F4914F6CDD1D);
}
static inline uint32_t nt_rand32(uint64_t *s) { return (uint32_t)(nt_rand64(s) >> 32); }

/* Every float dtype with a narrower-than-fp32 encoding, for loops over formats. */
static const ot_dtype nt_narrow_floats[] = {
  OT_DT_TF32, OT_DT_BF16, OT_DT_FP16, OT_DT_FP8E4M3, OT_DT_FP8E4M3FN, OT_DT_FP8E5M2, OT_DT_FP8E3M4,
};

/* Number of distinct encodings and the step between consecutive ones in the container. */
static inline uint32_t nt_enc_count(ot_dtype t) {
  const num_fmt *f = num_fmt_of(t);
  return UINT32_C(1) << num_fmt_width(f);
}
static inline uint32_t nt_enc_at(ot_dtype t, uint32_t i) {
  return i << num_fmt_of(t)->container_shift;
}

#endif
