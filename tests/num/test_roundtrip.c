/* Exhaustive round trips: every encoding of every narrow float format goes bits -> fp32 ->
** bits unchanged (NaNs included, per the NaN rule in docs/numerics.md), and the decoded values
** have the structure the format promises (NaN/Inf counts, strictly increasing magnitudes). */
#include "num_test.h"

/* Expected NaN and Inf encodings of each format: 2 * (payloads) for IEEE-style formats. */
static void expect_specials(ot_dtype t, uint32_t *nans, uint32_t *infs) {
  const num_fmt *f = num_fmt_of(t);
  if (f->nan == NUM_NAN_ALL_ONES) {
    *nans = 2;
    *infs = 0;
  } else {
    *nans = 2 * ((UINT32_C(1) << f->man_bits) - 1);
    *infs = 2;
  }
}

static void check_roundtrip(ot_dtype t) {
  uint32_t n = nt_enc_count(t), nans = 0, infs = 0, want_nans, want_infs;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t enc = nt_enc_at(t, i);
    float x = ot_bits_to_f32(enc, t);
    uint32_t back = ot_f32_to_bits(x, t, NULL);
    if (back != enc)
      fail_msg("%s: 0x%x -> fp32 0x%08x -> 0x%x", ot_dtype_name(t), enc, nt_bits(x), back);
    if (nt_is_nan_bits(nt_bits(x))) nans++;
    if ((nt_bits(x) & 0x7FFFFFFFu) == 0x7F800000u) infs++;
  }
  expect_specials(t, &want_nans, &want_infs);
  assert_int_equal(nans, want_nans);
  assert_int_equal(infs, want_infs);
}

static void test_roundtrip_all_formats(void **state) {
  (void)state;
  for (size_t k = 0; k < NT_ARRAY_LEN(nt_narrow_floats); k++) check_roundtrip(nt_narrow_floats[k]);
}

/* Positive finite encodings 0..max decode to strictly increasing values, and negative ones
** mirror them: the encoding order is the value order, with no gaps or duplicates. */
static void check_monotonic(ot_dtype t) {
  const num_fmt *f = num_fmt_of(t);
  uint32_t maxenc = num_fmt_max_enc(f);
  uint32_t sign = UINT32_C(1) << (f->exp_bits + f->man_bits);
  float prev = -1.0f;
  for (uint32_t i = 0; i <= maxenc; i++) {
    float x = ot_bits_to_f32(nt_enc_at(t, i), t);
    float nx = ot_bits_to_f32(nt_enc_at(t, i | sign), t);
    if (!(x > prev)) fail_msg("%s: 0x%x decodes to %a, not above %a", ot_dtype_name(t), i, x, prev);
    assert_int_equal(nt_bits(nx), nt_bits(x) ^ 0x80000000u);
    prev = x;
  }
  assert_true((double)prev == ot_dtype_max(t));
}

static void test_decode_monotonic(void **state) {
  (void)state;
  for (size_t k = 0; k < NT_ARRAY_LEN(nt_narrow_floats); k++) check_monotonic(nt_narrow_floats[k]);
}

/* The same round trip through memory: ot_convert fmt -> fp32 -> fmt over all encodings. */
static void check_convert_roundtrip(ot_dtype t) {
  uint32_t n = nt_enc_count(t);
  size_t sz = ot_dtype_size(t);
  unsigned char *src = test_malloc(n * sz), *dst = test_malloc(n * sz);
  float *mid = test_malloc(n * sizeof *mid);
  for (uint32_t i = 0; i < n; i++)
    for (size_t b = 0; b < sz; b++) src[i * sz + b] = (unsigned char)(nt_enc_at(t, i) >> (8 * b));
  ot_convert(mid, OT_DT_FP32, src, t, n, NULL);
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(nt_bits(mid[i]), nt_bits(ot_bits_to_f32(nt_enc_at(t, i), t)));
  ot_convert(dst, t, mid, OT_DT_FP32, n, NULL);
  assert_memory_equal(src, dst, n * sz);
  test_free(src);
  test_free(dst);
  test_free(mid);
}

static void test_convert_roundtrip(void **state) {
  (void)state;
  for (size_t k = 0; k < NT_ARRAY_LEN(nt_narrow_floats); k++)
    check_convert_roundtrip(nt_narrow_floats[k]);
}

/* fp32 itself: a sample of patterns of every class is the identity. */
static void test_fp32_identity(void **state) {
  (void)state;
  uint64_t s = 0x1234;
  for (int i = 0; i < 200000; i++) {
    uint32_t b = nt_rand32(&s);
    if (i < 4) b = (uint32_t[]){0x7F800001u, 0xFFBFFFFFu, 0x00000001u, 0x80000000u}[i];
    assert_int_equal(ot_f32_to_bits(nt_f32(b), OT_DT_FP32, NULL), b);
    assert_int_equal(nt_bits(ot_bits_to_f32(b, OT_DT_FP32)), b);
  }
}

/* tf32 keeps only the top 19 bits; the 13 low container bits are ignored on decode. */
static void test_tf32_container(void **state) {
  (void)state;
  assert_int_equal(nt_bits(ot_bits_to_f32(0x3F801FFFu, OT_DT_TF32)), 0x3F800000u);
  assert_int_equal(ot_f32_to_bits(nt_f32(0x3F800FFFu), OT_DT_TF32, NULL), 0x3F800000u);
  for (uint32_t i = 0; i < (1u << 19); i += 97)
    assert_int_equal(ot_f32_to_bits(ot_bits_to_f32(i << 13, OT_DT_TF32), OT_DT_TF32, NULL) & 0x1FFFu, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_all_formats),
    cmocka_unit_test(test_decode_monotonic),
    cmocka_unit_test(test_convert_roundtrip),
    cmocka_unit_test(test_fp32_identity),
    cmocka_unit_test(test_tf32_container),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
