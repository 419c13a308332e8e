/* Integer conversions: fp32 -> int rounds to nearest even, saturates, NaN -> 0; int -> fp32 is
** exact up to 2^24 and rounds like a C cast beyond; int <-> int saturates; memory is little
** endian; int -> narrow float rounds once. */
#include "num_test.h"

#include <float.h>
#include <math.h>

typedef struct {
  ot_dtype t;
  float in;
  int64_t out;
} nt_icase;

static void test_f32_to_int_cases(void **state) {
  (void)state;
  const float nan = nt_f32(0x7FC00000u), nnan = nt_f32(0xFFC00001u);
  const float inf = nt_f32(0x7F800000u);
  const nt_icase cases[] = {
    {OT_DT_INT8, 0.5f, 0},      {OT_DT_INT8, 1.5f, 2},        {OT_DT_INT8, 2.5f, 2},
    {OT_DT_INT8, 3.5f, 4},      {OT_DT_INT8, -0.5f, 0},       {OT_DT_INT8, -1.5f, -2},
    {OT_DT_INT8, -2.5f, -2},    {OT_DT_INT8, 2.5000002f, 3},  {OT_DT_INT8, 0.49999997f, 0},
    {OT_DT_INT8, 127.4f, 127},  {OT_DT_INT8, 127.5f, 127},    {OT_DT_INT8, 200.0f, 127},
    {OT_DT_INT8, -128.5f, -128}, {OT_DT_INT8, -129.0f, -128}, {OT_DT_INT8, -1000.0f, -128},
    {OT_DT_INT8, nan, 0},       {OT_DT_INT8, nnan, 0},        {OT_DT_INT8, inf, 127},
    {OT_DT_INT8, -inf, -128},   {OT_DT_INT8, 0x1p-149f, 0},   {OT_DT_INT8, -0.0f, 0},
    {OT_DT_UINT8, -1.0f, 0},    {OT_DT_UINT8, -0.5f, 0},      {OT_DT_UINT8, 254.5f, 254},
    {OT_DT_UINT8, 255.5f, 255}, {OT_DT_UINT8, 300.0f, 255},   {OT_DT_UINT8, nan, 0},
    {OT_DT_UINT8, -inf, 0},     {OT_DT_INT16, 32767.5f, 32767}, {OT_DT_INT16, -32768.5f, -32768},
    {OT_DT_INT16, 1e9f, 32767}, {OT_DT_INT16, -1e9f, -32768}, {OT_DT_INT16, 1234.5f, 1234},
    {OT_DT_UINT16, 65535.5f, 65535}, {OT_DT_UINT16, 65534.5f, 65534}, {OT_DT_UINT16, -3.0f, 0},
    {OT_DT_UINT16, inf, 65535},
    {OT_DT_INT32, 2147483520.0f, 2147483520}, /* largest float below 2^31 */
    {OT_DT_INT32, 2147483648.0f, INT32_MAX},  {OT_DT_INT32, -2147483648.0f, INT32_MIN},
    {OT_DT_INT32, -2147483904.0f, INT32_MIN}, {OT_DT_INT32, FLT_MAX, INT32_MAX},
    {OT_DT_INT32, 8388608.5f, 8388608},       /* 2^23 + 0.5 is not an fp32; this is 2^23 */
    {OT_DT_INT32, 4194304.5f, 4194304},       /* 2^22 + 0.5: tie to even */
    {OT_DT_INT32, 4194305.5f, 4194306},
    {OT_DT_INT32, nan, 0},
    {OT_DT_UINT32, 4294967040.0f, 4294967040}, /* largest float below 2^32 */
    {OT_DT_UINT32, 4294967296.0f, UINT32_MAX}, {OT_DT_UINT32, -1.0f, 0},
    {OT_DT_UINT32, inf, UINT32_MAX},
  };
  for (size_t i = 0; i < NT_ARRAY_LEN(cases); i++) {
    const nt_icase *c = &cases[i];
    uint32_t want = (uint32_t)(uint64_t)c->out & (ot_dtype_size(c->t) == 4 ? 0xFFFFFFFFu
                                                : ot_dtype_size(c->t) == 2 ? 0xFFFFu : 0xFFu);
    uint32_t got = ot_f32_to_bits(c->in, c->t, NULL);
    if (got != want)
      fail_msg("case %zu: %s(%a) = 0x%x, want 0x%x", i, ot_dtype_name(c->t), (double)c->in, got,
               want);
    /* Saturate and SR options do not change integer results. */
    ot_rng r;
    ot_rng_seed(&r, 1);
    ot_cvt sr = {OT_ROUND_STOCHASTIC, true, &r};
    assert_int_equal(ot_f32_to_bits(c->in, c->t, &sr), want);
  }
}

/* Integer encodings decode with sign extension, and to fp32 like a C cast (RNE). */
static void test_int_to_f32(void **state) {
  (void)state;
  assert_true(ot_bits_to_f32(0xFFu, OT_DT_INT8) == -1.0f);
  assert_true(ot_bits_to_f32(0xFFu, OT_DT_UINT8) == 255.0f);
  assert_true(ot_bits_to_f32(0x8000u, OT_DT_INT16) == -32768.0f);
  assert_true(ot_bits_to_f32(0x8000u, OT_DT_UINT16) == 32768.0f);
  assert_true(ot_bits_to_f32(0x80000000u, OT_DT_INT32) == -2147483648.0f);
  assert_true(ot_bits_to_f32(0x7FFFFFFFu, OT_DT_INT32) == 2147483648.0f);
  assert_true(ot_bits_to_f32(0xFFFFFFFFu, OT_DT_UINT32) == 4294967296.0f);
  assert_true(ot_bits_to_f32(16777217u, OT_DT_INT32) == 16777216.0f); /* tie to even */
  assert_true(ot_bits_to_f32(16777219u, OT_DT_INT32) == 16777220.0f); /* tie to even (up) */
  assert_true(ot_bits_to_f32(16777218u, OT_DT_UINT32) == 16777218.0f);
  assert_true(ot_bits_to_f32(0u, OT_DT_INT32) == 0.0f);
  assert_int_equal(nt_bits(ot_bits_to_f32(0u, OT_DT_INT32)), 0u); /* +0, not -0 */
  /* Every 16-bit integer is exact; random 32-bit ones match the C cast (RNE by default). */
  for (uint32_t i = 0; i < 65536; i++) {
    assert_true(ot_bits_to_f32(i, OT_DT_INT16) == (float)(int16_t)i);
    assert_true(ot_bits_to_f32(i, OT_DT_UINT16) == (float)i);
  }
  uint64_t s = 3;
  for (int i = 0; i < 300000; i++) {
    uint32_t u = nt_rand32(&s) >> (i % 32);
    assert_int_equal(nt_bits(ot_bits_to_f32(u, OT_DT_UINT32)), nt_bits((float)u));
    assert_int_equal(nt_bits(ot_bits_to_f32(u, OT_DT_INT32)), nt_bits((float)(int32_t)u));
  }
}

/* fp32 -> int32 agrees with a reference computed in double: the nearer of floor(x) and
** floor(x) + 1, exact ties to the even one, then clamped. */
static void test_f32_to_int32_sweep(void **state) {
  (void)state;
  uint64_t s = 11;
  for (int i = 0; i < 300000; i++) {
    uint32_t b = nt_rand32(&s);
    int ex = (int)(nt_rand32(&s) % 36) - 3; /* |x| from 2^-3 to 2^32 */
    b = (b & 0x807FFFFFu) | ((uint32_t)(ex + 127) << 23);
    double x = (double)nt_f32(b);
    double f = floor(x), frac = x - f, r;
    if (frac > 0.5) r = f + 1;
    else if (frac < 0.5) r = f;
    else r = fmod(f, 2.0) == 0 ? f : f + 1;
    int64_t want = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : (int64_t)r;
    assert_int_equal(ot_f32_to_bits(nt_f32(b), OT_DT_INT32, NULL), (uint32_t)want);
  }
}

/* Little-endian element access and saturating integer <-> integer conversion. */
static void test_int_memory(void **state) {
  (void)state;
  unsigned char buf[8] = {0};
  ot_store_f32(buf, 1, OT_DT_INT16, -2.0f, NULL);
  assert_int_equal(buf[2], 0xFE);
  assert_int_equal(buf[3], 0xFF);
  assert_true(ot_load_f32(buf, 1, OT_DT_INT16) == -2.0f);
  ot_store_f32(buf, 1, OT_DT_UINT32, 305419776.0f, NULL); /* 0x12345600, exact in fp32 */
  const unsigned char le[] = {0x00, 0x56, 0x34, 0x12};
  assert_memory_equal(buf + 4, le, 4);
  assert_true(ot_load_f32(buf, 1, OT_DT_UINT32) == 305419776.0f);

  const int32_t src[] = {0, -1, 127, 128, -129, INT32_MAX, INT32_MIN, 16777217};
  int8_t i8[8];
  uint8_t u8[8];
  int32_t i32[8];
  uint32_t u32[8];
  ot_convert(i8, OT_DT_INT8, src, OT_DT_INT32, 8, NULL);
  ot_convert(u8, OT_DT_UINT8, src, OT_DT_INT32, 8, NULL);
  ot_convert(i32, OT_DT_INT32, src, OT_DT_INT32, 8, NULL);
  ot_convert(u32, OT_DT_UINT32, src, OT_DT_INT32, 8, NULL);
  const int8_t want8[] = {0, -1, 127, 127, -128, 127, -128, 127};
  const uint8_t wantu8[] = {0, 0, 127, 128, 0, 255, 0, 255};
  const uint32_t wantu32[] = {0, 0, 127, 128, 0, INT32_MAX, 0, 16777217};
  assert_memory_equal(i8, want8, sizeof want8);
  assert_memory_equal(u8, wantu8, sizeof wantu8);
  assert_memory_equal(i32, src, sizeof src); /* exact, not via fp32 */
  assert_memory_equal(u32, wantu32, sizeof wantu32);
  const uint32_t big[] = {UINT32_MAX, 2147483648u};
  int32_t back[2];
  ot_convert(back, OT_DT_INT32, big, OT_DT_UINT32, 2, NULL);
  assert_int_equal(back[0], INT32_MAX);
  assert_int_equal(back[1], INT32_MAX);
}

/* int -> narrow float rounds the integer once.  2^24 + 2^16 + 1 -> bf16 is 2^24 + 2^17 (above
** the halfway point 2^24 + 2^16); through fp32 it would first tie to 2^24 + 2^16 and then tie
** again to 2^24. */
static void test_int_to_float_single_rounding(void **state) {
  (void)state;
  const int32_t v[] = {16777216 + 65536 + 1, -(16777216 + 65536 + 1), 300, -7};
  uint16_t bf[4], h[4];
  ot_convert(bf, OT_DT_BF16, v, OT_DT_INT32, 4, NULL);
  assert_int_equal(bf[0], 0x4B81u);
  assert_int_equal(bf[1], 0xCB81u);
  assert_int_equal(bf[2], 0x4396u); /* 300 exactly */
  assert_int_equal(bf[3], 0xC0E0u);
  assert_int_equal(ot_f32_to_bf16((float)v[0]), 0x4B80u); /* the double-rounded answer */
  ot_convert(h, OT_DT_FP16, v, OT_DT_INT32, 4, NULL);
  assert_int_equal(h[0], 0x7C00u); /* overflow -> Inf */
  ot_cvt sat = {OT_ROUND_NEAREST_EVEN, true, NULL};
  ot_convert(h, OT_DT_FP16, v, OT_DT_INT32, 4, &sat);
  assert_int_equal(h[1], 0xFBFFu);
  /* narrow float -> int goes through the exact fp32 value */
  const uint16_t hb[] = {0x4100u /* 2.5 */, 0xC100u, 0x7E00u /* NaN */, 0x7C00u /* Inf */};
  int8_t out[4];
  ot_convert(out, OT_DT_INT8, hb, OT_DT_FP16, 4, NULL);
  const int8_t want[] = {2, -2, 0, 127};
  assert_memory_equal(out, want, sizeof want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_f32_to_int_cases),
    cmocka_unit_test(test_int_to_f32),
    cmocka_unit_test(test_f32_to_int32_sweep),
    cmocka_unit_test(test_int_memory),
    cmocka_unit_test(test_int_to_float_single_rounding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
