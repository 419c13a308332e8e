/* The generic encoder against an independent oracle: for each narrow float format, a sorted
** table of every finite value, a binary search for the neighbours of |x|, and round to nearest
** (ties to the even encoding) decided with exact double arithmetic.  Overflow is decided the
** IEEE way: the value past the max is max + ulp, and |x| overflows if it rounds to that.
** Inputs: every value, every midpoint between neighbours, the fp32 values one ulp either side
** of each midpoint, and random fp32 patterns across the format's range. */
#include "num_test.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  ot_dtype t;
  const num_fmt *f;
  uint32_t maxenc;
  uint32_t sign;   /* sign bit of the (unshifted) encoding */
  double *val;     /* val[e] for e = 0..maxenc+1; maxenc+1 is the virtual max + ulp */
} nt_table;

static void table_build(nt_table *tb, ot_dtype t) {
  tb->t = t;
  tb->f = num_fmt_of(t);
  tb->maxenc = num_fmt_max_enc(tb->f);
  tb->sign = UINT32_C(1) << (tb->f->exp_bits + tb->f->man_bits);
  tb->val = test_malloc((tb->maxenc + 2) * sizeof *tb->val);
  for (uint32_t e = 0; e <= tb->maxenc; e++)
    tb->val[e] = (double)ot_bits_to_f32(e << tb->f->container_shift, t);
  tb->val[tb->maxenc + 1] = 2 * tb->val[tb->maxenc] - tb->val[tb->maxenc - 1];
}

/* Oracle: the encoding of x (fp32 bits) under RNE; saturate clamps overflow to max. */
static uint32_t table_round(const nt_table *tb, uint32_t xb, bool saturate) {
  uint32_t sign = (xb >> 31) ? tb->sign : 0;
  double a = fabs((double)nt_f32(xb));
  /* One past max is Inf (exponent all ones, mantissa 0) or, in e4m3fn, the NaN S.1111.111. */
  uint32_t over = saturate ? tb->maxenc : tb->maxenc + 1;
  if (a >= tb->val[tb->maxenc + 1]) return (sign | over) << tb->f->container_shift;
  uint32_t lo = 0, hi = tb->maxenc + 1; /* invariant: val[lo] <= a < val[hi] */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (tb->val[mid] <= a) lo = mid; else hi = mid;
  }
  /* Exact: a and its neighbours are fp32 values whose scales differ by far less than 2^29 (the
  ** inputs stay within a few binades of the format's range), so each difference fits in the
  ** 53 bits of a double. */
  double dlo = a - tb->val[lo], dhi = tb->val[hi] - a;
  uint32_t e = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1u) ? hi : lo;
  if (e > tb->maxenc) e = over;
  return (sign | e) << tb->f->container_shift;
}

static void check_one(const nt_table *tb, uint32_t xb, size_t *count) {
  for (int sat = 0; sat < 2; sat++) {
    ot_cvt cvt = {OT_ROUND_NEAREST_EVEN, sat != 0, NULL};
    uint32_t want = table_round(tb, xb, sat != 0);
    uint32_t got = ot_f32_to_bits(nt_f32(xb), tb->t, &cvt);
    if (got != want)
      fail_msg("%s%s: fp32 0x%08x (%a) -> 0x%x, oracle 0x%x", ot_dtype_name(tb->t),
               sat ? " sat" : "", xb, (double)nt_f32(xb), got, want);
    (*count)++;
  }
}

static void check_format(ot_dtype t) {
  nt_table tb;
  table_build(&tb, t);
  size_t count = 0;
  for (uint32_t e = 0; e <= tb.maxenc; e++) {
    float mid = (float)((tb.val[e] + tb.val[e + 1]) / 2); /* exact: one more bit than the format */
    assert_true((double)mid == (tb.val[e] + tb.val[e + 1]) / 2);
    uint32_t m = nt_bits(mid), v = nt_bits((float)tb.val[e]);
    uint32_t probes[] = {v, m, m - 1, m + 1, v | 0x80000000u, m | 0x80000000u,
                         (m + 1) | 0x80000000u, (m - 1) | 0x80000000u};
    for (size_t k = 0; k < NT_ARRAY_LEN(probes); k++) check_one(&tb, probes[k], &count);
  }
  /* Random fp32 patterns whose exponent spans the format's range and a little beyond. */
  uint64_t s = 0xC0FFEE ^ (uint64_t)t;
  int emin = 1 - tb.f->bias - tb.f->man_bits - 3, emax = tb.f->bias + 3;
  for (int i = 0; i < 100000; i++) {
    uint32_t r = nt_rand32(&s);
    int ex = emin + (int)(r % (uint32_t)(emax - emin + 1));
    uint32_t bexp = ex + 127 < 0 ? 0 : ex + 127 > 254 ? 254 : (uint32_t)(ex + 127);
    check_one(&tb, (r & 0x807FFFFFu) | (bexp << 23), &count);
  }
  assert_true(count >= 2 * (8 * (size_t)tb.maxenc + 100000));
  test_free(tb.val);
}

static void test_oracle_fp8(void **state) {
  (void)state;
  check_format(OT_DT_FP8E4M3);
  check_format(OT_DT_FP8E4M3FN);
  check_format(OT_DT_FP8E5M2);
  check_format(OT_DT_FP8E3M4);
}

static void test_oracle_fp16(void **state) {
  (void)state;
  check_format(OT_DT_FP16);
}

static void test_oracle_bf16(void **state) {
  (void)state;
  check_format(OT_DT_BF16);
}

static void test_oracle_tf32(void **state) {
  (void)state;
  check_format(OT_DT_TF32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_oracle_fp8),
    cmocka_unit_test(test_oracle_fp16),
    cmocka_unit_test(test_oracle_bf16),
    cmocka_unit_test(test_oracle_tf32),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
