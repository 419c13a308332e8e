/* Hand-computed conversions per format: max values, min normals and subnormals, ties to even,
** overflow to Inf/NaN, saturation, signed zero and NaN payloads.  Inputs are given as fp32 bit
** patterns so every case is exact; the comment says the value. */
#include "num_test.h"

enum { RNE = 0, SAT = 1 };

typedef struct {
  ot_dtype t;
  uint32_t in;  /* fp32 bits */
  int mode;     /* RNE or SAT (RNE with saturate) */
  uint32_t out; /* expected encoding */
} nt_case;

static const nt_case nt_cases[] = {
  /* bf16 (1/8/7): ties, max, min subnormal, overflow, specials */
  {OT_DT_BF16, 0x3F808000u, RNE, 0x3F80u},  /* 1 + 2^-8: tie, 0x3F80 is even */
  {OT_DT_BF16, 0x3F818000u, RNE, 0x3F82u},  /* tie, 0x3F81 odd -> up */
  {OT_DT_BF16, 0x3F808001u, RNE, 0x3F81u},  /* just above the tie */
  {OT_DT_BF16, 0x3F807FFFu, RNE, 0x3F80u},  /* just below the tie */
  {OT_DT_BF16, 0x7F7F0000u, RNE, 0x7F7Fu},  /* max 3.3895314e38 */
  {OT_DT_BF16, 0x7F7F7FFFu, RNE, 0x7F7Fu},  /* below max + ulp/2 */
  {OT_DT_BF16, 0x7F7F8000u, RNE, 0x7F80u},  /* max + ulp/2: tie to even = Inf */
  {OT_DT_BF16, 0x7F7FFFFFu, RNE, 0x7F80u},  /* FLT_MAX -> Inf */
  {OT_DT_BF16, 0x7F7FFFFFu, SAT, 0x7F7Fu},
  {OT_DT_BF16, 0xFF7FFFFFu, SAT, 0xFF7Fu},
  {OT_DT_BF16, 0x00010000u, RNE, 0x0001u},  /* min subnormal 2^-133 */
  {OT_DT_BF16, 0x00008000u, RNE, 0x0000u},  /* 2^-134: tie -> 0 */
  {OT_DT_BF16, 0x00008001u, RNE, 0x0001u},
  {OT_DT_BF16, 0x00018000u, RNE, 0x0002u},  /* 1.5 * 2^-133: tie -> 2 */
  {OT_DT_BF16, 0x80008000u, RNE, 0x8000u},  /* -2^-134 -> -0 */
  {OT_DT_BF16, 0x00800000u, RNE, 0x0080u},  /* min normal 2^-126 */
  {OT_DT_BF16, 0x007F8000u, RNE, 0x0080u},  /* largest subnormal + ulp/2 carries into normal */
  {OT_DT_BF16, 0x80000000u, RNE, 0x8000u},  /* -0 */
  {OT_DT_BF16, 0x7F800000u, RNE, 0x7F80u},
  {OT_DT_BF16, 0xFF800000u, RNE, 0xFF80u},
  {OT_DT_BF16, 0x7F800000u, SAT, 0x7F7Fu},  /* Inf saturates too */
  {OT_DT_BF16, 0xFF800000u, SAT, 0xFF7Fu},
  {OT_DT_BF16, 0x7FC00000u, RNE, 0x7FC0u},
  {OT_DT_BF16, 0x7FC00000u, SAT, 0x7FC0u},  /* NaN stays NaN */
  {OT_DT_BF16, 0x7F800001u, RNE, 0x7FC0u},  /* payload truncates to 0: quiet bit set */
  {OT_DT_BF16, 0xFFA00000u, RNE, 0xFFA0u},  /* sign and payload kept */
  /* fp16 (1/5/10) */
  {OT_DT_FP16, 0x3F800000u, RNE, 0x3C00u},  /* 1 */
  {OT_DT_FP16, 0xC0000000u, RNE, 0xC000u},  /* -2 */
  {OT_DT_FP16, 0x3F801000u, RNE, 0x3C00u},  /* 1 + 2^-11: tie -> even */
  {OT_DT_FP16, 0x3F803000u, RNE, 0x3C02u},  /* 1 + 3*2^-11: tie -> even (up) */
  {OT_DT_FP16, 0x477FE000u, RNE, 0x7BFFu},  /* max 65504 */
  {OT_DT_FP16, 0x477FEFFFu, RNE, 0x7BFFu},  /* 65519.996 */
  {OT_DT_FP16, 0x477FF000u, RNE, 0x7C00u},  /* 65520 = max + ulp/2 -> Inf */
  {OT_DT_FP16, 0x477FF000u, SAT, 0x7BFFu},
  {OT_DT_FP16, 0xC77FF000u, RNE, 0xFC00u},
  {OT_DT_FP16, 0x47800000u, RNE, 0x7C00u},  /* 65536 */
  {OT_DT_FP16, 0x33800000u, RNE, 0x0001u},  /* min subnormal 2^-24 */
  {OT_DT_FP16, 0x33000000u, RNE, 0x0000u},  /* 2^-25: tie -> 0 */
  {OT_DT_FP16, 0x33000001u, RNE, 0x0001u},
  {OT_DT_FP16, 0x33C00000u, RNE, 0x0002u},  /* 3*2^-25: tie -> 2 */
  {OT_DT_FP16, 0x38800000u, RNE, 0x0400u},  /* min normal 2^-14 */
  {OT_DT_FP16, 0x387FC000u, RNE, 0x03FFu},  /* largest subnormal */
  {OT_DT_FP16, 0x80000000u, RNE, 0x8000u},
  {OT_DT_FP16, 0x7F800000u, RNE, 0x7C00u},
  {OT_DT_FP16, 0xFF800000u, SAT, 0xFBFFu},
  {OT_DT_FP16, 0x7FC00000u, RNE, 0x7E00u},
  {OT_DT_FP16, 0x7F800001u, RNE, 0x7E00u},
  {OT_DT_FP16, 0xFF802000u, RNE, 0xFC01u},  /* signalling payload kept */
  /* fp8e4m3, Neuron IEEE-style (bias 7, max 240) */
  {OT_DT_FP8E4M3, 0x3F800000u, RNE, 0x38u}, /* 1 */
  {OT_DT_FP8E4M3, 0x43700000u, RNE, 0x77u}, /* max 240 */
  {OT_DT_FP8E4M3, 0x4377FFFFu, RNE, 0x77u}, /* 247.99998 */
  {OT_DT_FP8E4M3, 0x43780000u, RNE, 0x78u}, /* 248 = max + ulp/2 -> Inf */
  {OT_DT_FP8E4M3, 0x43780000u, SAT, 0x77u},
  {OT_DT_FP8E4M3, 0x43800000u, RNE, 0x78u}, /* 256 -> Inf */
  {OT_DT_FP8E4M3, 0xC47A0000u, SAT, 0xF7u}, /* -1000 -> -240 */
  {OT_DT_FP8E4M3, 0xC47A0000u, RNE, 0xF8u}, /* -1000 -> -Inf */
  {OT_DT_FP8E4M3, 0x3C800000u, RNE, 0x08u}, /* min normal 2^-6 */
  {OT_DT_FP8E4M3, 0x3B000000u, RNE, 0x01u}, /* min subnormal 2^-9 */
  {OT_DT_FP8E4M3, 0x3A800000u, RNE, 0x00u}, /* 2^-10: tie -> 0 */
  {OT_DT_FP8E4M3, 0x3B400000u, RNE, 0x02u}, /* 3*2^-10: tie -> 2 */
  {OT_DT_FP8E4M3, 0x3F880000u, RNE, 0x38u}, /* 1.0625: tie -> 1 */
  {OT_DT_FP8E4M3, 0x3F980000u, RNE, 0x3Au}, /* 1.1875: tie -> 1.25 */
  {OT_DT_FP8E4M3, 0x80000000u, RNE, 0x80u},
  {OT_DT_FP8E4M3, 0x7F800000u, RNE, 0x78u},
  {OT_DT_FP8E4M3, 0xFF800000u, SAT, 0xF7u},
  {OT_DT_FP8E4M3, 0x7FC00000u, RNE, 0x7Cu},
  {OT_DT_FP8E4M3, 0x7F800001u, RNE, 0x7Cu},
  {OT_DT_FP8E4M3, 0xFFE00000u, RNE, 0xFEu},
  /* fp8e4m3fn, OCP (no Inf, NaN = S.1111.111, max 448) */
  {OT_DT_FP8E4M3FN, 0x3F800000u, RNE, 0x38u},
  {OT_DT_FP8E4M3FN, 0x43800000u, RNE, 0x78u}, /* 256 is finite here */
  {OT_DT_FP8E4M3FN, 0x43E00000u, RNE, 0x7Eu}, /* max 448 */
  {OT_DT_FP8E4M3FN, 0x43E80000u, RNE, 0x7Eu}, /* 464: tie between 448 (even) and 480 */
  {OT_DT_FP8E4M3FN, 0x43E80001u, RNE, 0x7Fu}, /* above the tie -> NaN */
  {OT_DT_FP8E4M3FN, 0x43F00000u, RNE, 0x7Fu}, /* 480 -> NaN */
  {OT_DT_FP8E4M3FN, 0xC3F00000u, RNE, 0xFFu}, /* -480 -> -NaN */
  {OT_DT_FP8E4M3FN, 0x43F00000u, SAT, 0x7Eu},
  {OT_DT_FP8E4M3FN, 0xC9742400u, SAT, 0xFEu}, /* -1e6 -> -448 */
  {OT_DT_FP8E4M3FN, 0x7F800000u, RNE, 0x7Fu}, /* Inf -> NaN */
  {OT_DT_FP8E4M3FN, 0xFF800000u, RNE, 0xFFu},
  {OT_DT_FP8E4M3FN, 0x7F800000u, SAT, 0x7Eu},
  {OT_DT_FP8E4M3FN, 0xFF800000u, SAT, 0xFEu},
  {OT_DT_FP8E4M3FN, 0x7FC00000u, RNE, 0x7Fu},
  {OT_DT_FP8E4M3FN, 0xFFC00000u, SAT, 0xFFu}, /* NaN stays NaN under saturate */
  {OT_DT_FP8E4M3FN, 0x3B000000u, RNE, 0x01u}, /* min subnormal 2^-9 */
  {OT_DT_FP8E4M3FN, 0x3C800000u, RNE, 0x08u}, /* min normal 2^-6 */
  {OT_DT_FP8E4M3FN, 0x80000000u, RNE, 0x80u},
  /* fp8e5m2 (bias 15, max 57344) */
  {OT_DT_FP8E5M2, 0x3F800000u, RNE, 0x3Cu},
  {OT_DT_FP8E5M2, 0x3F900000u, RNE, 0x3Cu}, /* 1.125: tie -> 1 */
  {OT_DT_FP8E5M2, 0x3FB00000u, RNE, 0x3Eu}, /* 1.375: tie -> 1.5 */
  {OT_DT_FP8E5M2, 0x47600000u, RNE, 0x7Bu}, /* max 57344 */
  {OT_DT_FP8E5M2, 0x476FFFFFu, RNE, 0x7Bu}, /* 61439.996 */
  {OT_DT_FP8E5M2, 0x47700000u, RNE, 0x7Cu}, /* 61440 = max + ulp/2 -> Inf */
  {OT_DT_FP8E5M2, 0x47700000u, SAT, 0x7Bu},
  {OT_DT_FP8E5M2, 0x37800000u, RNE, 0x01u}, /* min subnormal 2^-16 */
  {OT_DT_FP8E5M2, 0x37000000u, RNE, 0x00u}, /* 2^-17: tie -> 0 */
  {OT_DT_FP8E5M2, 0x38800000u, RNE, 0x04u}, /* min normal 2^-14 */
  {OT_DT_FP8E5M2, 0x80000000u, RNE, 0x80u},
  {OT_DT_FP8E5M2, 0xFF800000u, RNE, 0xFCu},
  {OT_DT_FP8E5M2, 0x7FC00000u, RNE, 0x7Eu},
  {OT_DT_FP8E5M2, 0x7F800001u, RNE, 0x7Eu},
  {OT_DT_FP8E5M2, 0x7FA00000u, RNE, 0x7Du}, /* signalling payload 01 kept */
  /* fp8e3m4 (cFP8, bias 3, max 15.5) */
  {OT_DT_FP8E3M4, 0x3F800000u, RNE, 0x30u},
  {OT_DT_FP8E3M4, 0x41780000u, RNE, 0x6Fu}, /* max 15.5 */
  {OT_DT_FP8E3M4, 0x417BFFFFu, RNE, 0x6Fu}, /* 15.749999 */
  {OT_DT_FP8E3M4, 0x417C0000u, RNE, 0x70u}, /* 15.75 = max + ulp/2 -> Inf */
  {OT_DT_FP8E3M4, 0x417C0000u, SAT, 0x6Fu},
  {OT_DT_FP8E3M4, 0xC1800000u, SAT, 0xEFu}, /* -16 -> -15.5 */
  {OT_DT_FP8E3M4, 0x3E800000u, RNE, 0x10u}, /* min normal 0.25 */
  {OT_DT_FP8E3M4, 0x3C800000u, RNE, 0x01u}, /* min subnormal 2^-6 */
  {OT_DT_FP8E3M4, 0x3C000000u, RNE, 0x00u}, /* 2^-7: tie -> 0 */
  {OT_DT_FP8E3M4, 0x3CC00000u, RNE, 0x02u}, /* 3*2^-7: tie -> 2 */
  {OT_DT_FP8E3M4, 0x80000000u, RNE, 0x80u},
  {OT_DT_FP8E3M4, 0x7F800000u, RNE, 0x70u},
  {OT_DT_FP8E3M4, 0x7FC00000u, RNE, 0x78u},
  /* tf32 (1/8/10 in 32 bits) */
  {OT_DT_TF32, 0x3F801000u, RNE, 0x3F800000u}, /* 1 + 2^-11: tie -> even */
  {OT_DT_TF32, 0x3F803000u, RNE, 0x3F804000u}, /* tie -> even (up) */
  {OT_DT_TF32, 0x3F801001u, RNE, 0x3F802000u},
  {OT_DT_TF32, 0x7F7FE000u, RNE, 0x7F7FE000u}, /* max */
  {OT_DT_TF32, 0x7F7FF000u, RNE, 0x7F800000u}, /* max + ulp/2 -> Inf */
  {OT_DT_TF32, 0x7F7FFFFFu, SAT, 0x7F7FE000u},
  {OT_DT_TF32, 0x00002000u, RNE, 0x00002000u}, /* min subnormal 2^-136 */
  {OT_DT_TF32, 0x00001000u, RNE, 0x00000000u}, /* tie -> 0 */
  {OT_DT_TF32, 0x80000000u, RNE, 0x80000000u},
  {OT_DT_TF32, 0x7F800001u, RNE, 0x7FC00000u}, /* quiet bit set */
  {OT_DT_TF32, 0xFF802000u, RNE, 0xFF802000u}, /* payload kept */
  /* fp32: identity, except that saturate clamps Inf */
  {OT_DT_FP32, 0x7F800000u, SAT, 0x7F7FFFFFu},
  {OT_DT_FP32, 0xFF800000u, RNE, 0xFF800000u},
  {OT_DT_FP32, 0x00000001u, RNE, 0x00000001u},
  {OT_DT_FP32, 0x7FA00001u, SAT, 0x7FA00001u},
};

static void test_encode_cases(void **state) {
  (void)state;
  for (size_t i = 0; i < NT_ARRAY_LEN(nt_cases); i++) {
    const nt_case *c = &nt_cases[i];
    ot_cvt cvt = {OT_ROUND_NEAREST_EVEN, c->mode == SAT, NULL};
    uint32_t got = ot_f32_to_bits(nt_f32(c->in), c->t, &cvt);
    /* The generic encoder must agree even where a fast path answered. */
    uint32_t gen = num_fmt_encode(num_fmt_of(c->t), c->in, &cvt);
    if (got != c->out || gen != c->out)
      fail_msg("case %zu: %s(0x%08x)%s = 0x%x (generic 0x%x), want 0x%x", i, ot_dtype_name(c->t),
               c->in, c->mode == SAT ? " sat" : "", got, gen, c->out);
  }
}

/* NULL options mean RNE without saturation. */
static void test_null_cvt(void **state) {
  (void)state;
  assert_int_equal(ot_f32_to_bits(nt_f32(0x477FF000u), OT_DT_FP16, NULL), 0x7C00u);
  assert_int_equal(ot_f32_to_bits(nt_f32(0x43E80001u), OT_DT_FP8E4M3FN, NULL), 0x7Fu);
}

typedef struct {
  ot_dtype t;
  uint32_t enc;
  double value;
} nt_decode_case;

static const nt_decode_case nt_decodes[] = {
  {OT_DT_BF16, 0x7F7Fu, 3.3895313892515355e38}, {OT_DT_BF16, 0x0001u, 0x1p-133},
  {OT_DT_BF16, 0x0080u, 0x1p-126},              {OT_DT_FP16, 0x7BFFu, 65504.0},
  {OT_DT_FP16, 0x0001u, 0x1p-24},               {OT_DT_FP16, 0x0400u, 0x1p-14},
  {OT_DT_FP16, 0x03FFu, 1023 * 0x1p-24},        {OT_DT_FP8E4M3, 0x77u, 240.0},
  {OT_DT_FP8E4M3, 0x01u, 0x1p-9},               {OT_DT_FP8E4M3, 0x08u, 0x1p-6},
  {OT_DT_FP8E4M3, 0xF7u, -240.0},               {OT_DT_FP8E4M3FN, 0x7Eu, 448.0},
  {OT_DT_FP8E4M3FN, 0x78u, 256.0},              {OT_DT_FP8E4M3FN, 0x01u, 0x1p-9},
  {OT_DT_FP8E5M2, 0x7Bu, 57344.0},              {OT_DT_FP8E5M2, 0x01u, 0x1p-16},
  {OT_DT_FP8E5M2, 0x04u, 0x1p-14},              {OT_DT_FP8E3M4, 0x6Fu, 15.5},
  {OT_DT_FP8E3M4, 0x01u, 0x1p-6},               {OT_DT_FP8E3M4, 0x10u, 0.25},
  {OT_DT_TF32, 0x7F7FE000u, 3.4011621342146535e38}, {OT_DT_TF32, 0x00002000u, 0x1p-136},
};

static void test_decode_cases(void **state) {
  (void)state;
  for (size_t i = 0; i < NT_ARRAY_LEN(nt_decodes); i++) {
    const nt_decode_case *c = &nt_decodes[i];
    double got = (double)ot_bits_to_f32(c->enc, c->t);
    if (got != c->value)
      fail_msg("%s 0x%x decodes to %a, want %a", ot_dtype_name(c->t), c->enc, got, c->value);
  }
  /* Signed zero and the specials. */
  assert_int_equal(nt_bits(ot_bits_to_f32(0x80u, OT_DT_FP8E4M3FN)), 0x80000000u);
  assert_int_equal(nt_bits(ot_bits_to_f32(0xF8u, OT_DT_FP8E4M3)), 0xFF800000u);
  assert_int_equal(nt_bits(ot_bits_to_f32(0x70u, OT_DT_FP8E3M4)), 0x7F800000u);
  assert_true(nt_is_nan_bits(nt_bits(ot_bits_to_f32(0xFFu, OT_DT_FP8E4M3FN))));
  assert_int_equal(nt_bits(ot_bits_to_f32(0xFFu, OT_DT_FP8E4M3FN)) >> 31, 1);
  assert_true(nt_is_nan_bits(nt_bits(ot_bits_to_f32(0x7Fu, OT_DT_FP8E4M3))));
}

static void test_dtype_max(void **state) {
  (void)state;
  assert_true(ot_dtype_max(OT_DT_FP8E4M3) == 240.0);
  assert_true(ot_dtype_max(OT_DT_FP8E4M3FN) == 448.0);
  assert_true(ot_dtype_max(OT_DT_FP8E5M2) == 57344.0);
  assert_true(ot_dtype_max(OT_DT_FP8E3M4) == 15.5);
  assert_true(ot_dtype_max(OT_DT_FP16) == 65504.0);
  assert_true(ot_dtype_max(OT_DT_BF16) == 3.3895313892515355e38);
  assert_true(ot_dtype_max(OT_DT_TF32) == 3.4011621342146535e38);
  assert_true(ot_dtype_max(OT_DT_FP32) == 3.4028234663852886e38);
  assert_true(ot_dtype_max(OT_DT_INT8) == 127.0);
  assert_true(ot_dtype_max(OT_DT_UINT32) == 4294967295.0);
  assert_true(ot_dtype_max(OT_DT_COUNT) == 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode_cases),
    cmocka_unit_test(test_null_cvt),
    cmocka_unit_test(test_decode_cases),
    cmocka_unit_test(test_dtype_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
