/* The dtype table: names, parsing, sizes, float-ness, and that the internal format descriptors
** agree with the public OT_DTYPE_MAP; plus little-endian float element access. */
#include "num_test.h"

typedef struct {
  ot_dtype t;
  const char *name;
  size_t bytes;
  int is_float, exp_bits, man_bits;
} nt_row;

static const nt_row nt_rows[] = {
#define OT_X(id, name, bytes, isf, e, m) {OT_DT_##id, name, bytes, isf, e, m},
  OT_DTYPE_MAP(OT_X)
#undef OT_X
};

static void test_table(void **state) {
  (void)state;
  assert_int_equal(NT_ARRAY_LEN(nt_rows), OT_DT_COUNT);
  for (size_t i = 0; i < NT_ARRAY_LEN(nt_rows); i++) {
    const nt_row *r = &nt_rows[i];
    ot_dtype parsed = OT_DT_COUNT;
    assert_string_equal(ot_dtype_name(r->t), r->name);
    assert_true(ot_dtype_parse(r->name, &parsed));
    assert_int_equal(parsed, r->t);
    assert_int_equal(ot_dtype_size(r->t), r->bytes);
    assert_int_equal(ot_dtype_is_float(r->t), r->is_float != 0);
    const num_fmt *f = num_fmt_of(r->t);
    if (!r->is_float) {
      assert_null(f);
      continue;
    }
    assert_non_null(f);
    assert_int_equal(f->exp_bits, r->exp_bits);
    assert_int_equal(f->man_bits, r->man_bits);
    /* The encoding fills its container exactly. */
    assert_int_equal(num_fmt_width(f) + f->container_shift, 8 * r->bytes);
    assert_true(ot_dtype_max(r->t) > 1.0);
  }
}

static void test_parse_and_bounds(void **state) {
  (void)state;
  ot_dtype t = OT_DT_COUNT;
  assert_true(ot_dtype_parse("bfloat16", &t));
  assert_int_equal(t, OT_DT_BF16);
  assert_true(ot_dtype_parse("float8_e4m3fn", &t));
  assert_int_equal(t, OT_DT_FP8E4M3FN);
  assert_true(ot_dtype_parse("float8_e4m3", &t));
  assert_int_equal(t, OT_DT_FP8E4M3);
  t = OT_DT_INT8;
  assert_false(ot_dtype_parse("fp64", &t));
  assert_false(ot_dtype_parse("", &t));
  assert_false(ot_dtype_parse("BF16", &t));
  assert_false(ot_dtype_parse("bf16 ", &t));
  assert_false(ot_dtype_parse(NULL, &t));
  assert_int_equal(t, OT_DT_INT8); /* untouched on failure */
  assert_string_equal(ot_dtype_name(OT_DT_COUNT), "?");
  assert_string_equal(ot_dtype_name((ot_dtype)-1), "?");
  assert_int_equal(ot_dtype_size(OT_DT_COUNT), 0);
  assert_false(ot_dtype_is_float(OT_DT_COUNT));
  assert_null(num_fmt_of(OT_DT_COUNT));
  /* Bad dtypes are harmless: nothing written, zero read. */
  unsigned char buf[4] = {1, 2, 3, 4};
  ot_store_f32(buf, 0, OT_DT_COUNT, 1.0f, NULL);
  const unsigned char same[] = {1, 2, 3, 4};
  assert_memory_equal(buf, same, 4);
  assert_true(ot_load_f32(buf, 0, OT_DT_COUNT) == 0.0f);
  assert_int_equal(ot_f32_to_bits(1.0f, OT_DT_COUNT, NULL), 0);
  assert_true(ot_bits_to_f32(1, OT_DT_COUNT) == 0.0f);
}

/* Floats in memory are little endian: bf16 1.0 is 80 3F, fp32 1.0 is 00 00 80 3F. */
static void test_float_memory(void **state) {
  (void)state;
  unsigned char b[16] = {0};
  ot_store_f32(b, 1, OT_DT_BF16, 1.0f, NULL);
  assert_int_equal(b[2], 0x80);
  assert_int_equal(b[3], 0x3F);
  assert_true(ot_load_f32(b, 1, OT_DT_BF16) == 1.0f);
  ot_store_f32(b, 2, OT_DT_FP8E5M2, -2.0f, NULL);
  assert_int_equal(b[2], 0xC0);
  ot_store_f32(b, 3, OT_DT_FP32, 1.0f, NULL);
  const unsigned char f32[] = {0x00, 0x00, 0x80, 0x3F};
  assert_memory_equal(b + 12, f32, 4);
  ot_store_f32(b, 0, OT_DT_TF32, 1.0f + 0x1p-20f, NULL); /* rounds away the low bits */
  assert_memory_equal(b, f32, 4);
  ot_cvt sat = {OT_ROUND_NEAREST_EVEN, true, NULL};
  ot_store_f32(b, 5, OT_DT_FP8E4M3, 1e6f, &sat);
  assert_int_equal(b[5], 0x77);
  assert_true(ot_load_f32(b, 5, OT_DT_FP8E4M3) == 240.0f);
}

/* Bulk conversion equals element-wise conversion, between every pair of float types. */
static void test_convert_pairs(void **state) {
  (void)state;
  enum { N = 512 };
  uint64_t s = 5;
  float src[N];
  for (int i = 0; i < N; i++) src[i] = nt_f32(nt_rand32(&s) & 0xC3FFFFFFu); /* |x| < 2^8 or NaN */
  for (unsigned a = 0; a < OT_DT_COUNT; a++) {
    if (!ot_dtype_is_float((ot_dtype)a)) continue;
    unsigned char mid[N * 4], out[N * 4];
    ot_convert(mid, (ot_dtype)a, src, OT_DT_FP32, N, NULL);
    for (unsigned b = 0; b < OT_DT_COUNT; b++) {
      ot_convert(out, (ot_dtype)b, mid, (ot_dtype)a, N, NULL);
      for (int i = 0; i < N; i++) {
        float x = ot_load_f32(mid, (size_t)i, (ot_dtype)a);
        unsigned char one[4];
        ot_store_f32(one, 0, (ot_dtype)b, x, NULL);
        assert_memory_equal(out + (size_t)i * ot_dtype_size((ot_dtype)b), one, ot_dtype_size((ot_dtype)b));
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_table),
    cmocka_unit_test(test_parse_and_bounds),
    cmocka_unit_test(test_float_memory),
    cmocka_unit_test(test_convert_pairs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
