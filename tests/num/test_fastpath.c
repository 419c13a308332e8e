/* The bf16 fast path and the fp16 helpers against the generic encoder/decoder: every bf16/fp16
** encoding decodes identically, and ~1.2M fp32 inputs (all 2^16 high halves with low halves
** at and around the bf16 tie, plus random patterns) encode identically. */
#include "num_test.h"

static void test_decode_all(void **state) {
  (void)state;
  for (uint32_t i = 0; i < 65536; i++) {
    assert_int_equal(nt_bits(ot_bf16_to_f32((uint16_t)i)), num_fmt_decode(num_fmt_of(OT_DT_BF16), i));
    assert_int_equal(nt_bits(ot_fp16_to_f32((uint16_t)i)), num_fmt_decode(num_fmt_of(OT_DT_FP16), i));
    assert_int_equal(nt_bits(ot_bf16_to_f32((uint16_t)i)), nt_bits(ot_bits_to_f32(i, OT_DT_BF16)));
  }
}

static void check_encode(uint32_t b) {
  float x = nt_f32(b);
  uint32_t gb = num_fmt_encode(num_fmt_of(OT_DT_BF16), b, NULL);
  uint32_t gh = num_fmt_encode(num_fmt_of(OT_DT_FP16), b, NULL);
  if (ot_f32_to_bf16(x) != gb || ot_f32_to_bits(x, OT_DT_BF16, NULL) != gb)
    fail_msg("bf16(0x%08x): fast 0x%04x, generic 0x%04x", b, ot_f32_to_bf16(x), gb);
  if (ot_f32_to_fp16(x) != gh) fail_msg("fp16(0x%08x): 0x%04x, generic 0x%04x", b, ot_f32_to_fp16(x), gh);
}

static void test_encode_sweep(void **state) {
  (void)state;
  static const uint32_t lows[] = {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, 0x1000u,
                                  0x0FFFu, 0x1001u, 0x2000u};
  uint64_t s = 17;
  size_t n = 0;
  for (uint32_t hi = 0; hi < 65536; hi++) {
    for (size_t k = 0; k < NT_ARRAY_LEN(lows); k++, n++) check_encode((hi << 16) | lows[k]);
    for (int k = 0; k < 8; k++, n++) check_encode((hi << 16) | (nt_rand32(&s) & 0xFFFFu));
  }
  assert_true(n > 1000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_decode_all),
    cmocka_unit_test(test_encode_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
