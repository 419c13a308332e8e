/* Stochastic rounding: the generator is the published splitmix64, results are reproducible from
** the seed, SR only ever picks one of the two neighbours of x, it is unbiased on average, the
** round-up frequency matches the distance, and the Neuron fp16 example (trainium.md §7) holds. */
#include "num_test.h"

#include <math.h>

static ot_cvt sr_cvt(ot_rng *r, bool saturate) {
  ot_cvt c = {OT_ROUND_STOCHASTIC, saturate, r};
  return c;
}

/* splitmix64's published outputs for seed 0 are 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
** 0x06c45d188009454f; ot_rng_u32 returns their high halves. */
static void test_rng_golden(void **state) {
  (void)state;
  ot_rng r;
  ot_rng_seed(&r, 0);
  assert_int_equal(ot_rng_u32(&r), 0xE220A839u);
  assert_int_equal(ot_rng_u32(&r), 0x6E789E6Au);
  assert_int_equal(ot_rng_u32(&r), 0x06C45D18u);
  ot_rng_seed(&r, 12345);
  assert_int_equal(ot_rng_u32(&r), 0x22118258u);
}

static void test_sr_reproducible(void **state) {
  (void)state;
  for (size_t k = 0; k < NT_ARRAY_LEN(nt_narrow_floats); k++) {
    ot_dtype t = nt_narrow_floats[k];
    ot_rng a, b, c;
    ot_rng_seed(&a, 42);
    ot_rng_seed(&b, 42);
    ot_rng_seed(&c, 43);
    ot_cvt ca = sr_cvt(&a, false), cb = sr_cvt(&b, false), cc = sr_cvt(&c, false);
    uint64_t s = 7;
    int differ = 0;
    for (int i = 0; i < 20000; i++) {
      float x = nt_f32((nt_rand32(&s) & 0x807FFFFFu) | (0x7Fu << 23)); /* [1, 2) and (-2, -1] */
      uint32_t ra = ot_f32_to_bits(x, t, &ca);
      assert_int_equal(ra, ot_f32_to_bits(x, t, &cb));
      differ += ra != ot_f32_to_bits(x, t, &cc);
    }
    assert_true(differ > 100); /* another seed gives another stream */
  }
}

/* SR returns RZ(x) or the next encoding away from zero, never anything else, and exact values
** stay exact. */
static void test_sr_neighbours(void **state) {
  (void)state;
  ot_rng r;
  ot_rng_seed(&r, 1);
  ot_cvt c = sr_cvt(&r, false);
  uint64_t s = 99;
  for (size_t k = 0; k < NT_ARRAY_LEN(nt_narrow_floats); k++) {
    ot_dtype t = nt_narrow_floats[k];
    double max = ot_dtype_max(t);
    for (int i = 0; i < 20000; i++) {
      float x = (float)((double)nt_rand32(&s) / 4294967296.0 * max * ((i & 1) ? -1 : 1));
      float y = ot_bits_to_f32(ot_f32_to_bits(x, t, &c), t);
      float lo = ot_bits_to_f32(ot_f32_to_bits(x, t, NULL), t); /* RNE is one of the two */
      if (y != lo) {
        /* y and lo must be adjacent and bracket x. */
        float dn = fminf(y, lo), up = fmaxf(y, lo);
        assert_true(dn <= x && x <= up);
        uint32_t ey = ot_f32_to_bits(y, t, NULL), el = ot_f32_to_bits(lo, t, NULL);
        uint32_t d = (ey > el ? ey - el : el - ey) >> num_fmt_of(t)->container_shift;
        if (d != 1) fail_msg("%s: SR(%a) = %a, RNE %a: not neighbours", ot_dtype_name(t), x, y, lo);
      }
      assert_true(ot_bits_to_f32(ot_f32_to_bits(y, t, &c), t) == y); /* exact stays exact */
    }
  }
}

/* Mean of many SR roundings of x is x, and the round-up frequency is the distance in ulps. */
static void check_unbiased(ot_dtype t, float x, uint64_t seed) {
  const int n = 200000;
  ot_rng r;
  ot_rng_seed(&r, seed);
  ot_cvt c = sr_cvt(&r, false);
  float lo = ot_bits_to_f32(ot_f32_to_bits(x, t, NULL), t); /* a neighbour of x */
  double sum = 0, ulp = 0;
  int up = 0;
  for (int i = 0; i < n; i++) {
    double y = (double)ot_bits_to_f32(ot_f32_to_bits(x, t, &c), t);
    sum += y;
    if (y != (double)lo) {
      up++;
      ulp = fabs(y - (double)lo);
    }
  }
  assert_true(up > 0 && up < n);
  double mean = sum / n;
  double p = fabs((double)x - (double)lo) / ulp; /* probability of leaving lo */
  double sigma = ulp * sqrt(p * (1 - p) / n);
  if (fabs(mean - (double)x) > 5 * sigma || fabs((double)up / n - p) > 0.01)
    fail_msg("%s: SR mean of %a is %a (sigma %a), p %.4f observed %.4f", ot_dtype_name(t), x,
             mean, sigma, p, (double)up / n);
}

static void test_sr_unbiased(void **state) {
  (void)state;
  check_unbiased(OT_DT_BF16, 1.0f + 0x1p-7f / 3, 1);        /* 1/3 ulp above 1 */
  check_unbiased(OT_DT_BF16, -3.1415926f, 2);
  check_unbiased(OT_DT_FP16, 0.1f, 3);
  check_unbiased(OT_DT_FP16, 0x1p-24f * 0.3f, 4);          /* below the min subnormal */
  check_unbiased(OT_DT_FP8E4M3, 200.0f, 5);
  check_unbiased(OT_DT_FP8E4M3FN, 0.7f, 6);
  check_unbiased(OT_DT_FP8E5M2, -1000.0f, 7);
  check_unbiased(OT_DT_FP8E3M4, 0.01f, 8);                 /* subnormal range */
  check_unbiased(OT_DT_TF32, 1.0f + 0x1p-10f * 0.9f, 9);
}

/* trainium.md §7: fp16, start at 1024, add 0.5 2048 times rounding each step.  RNE stays at
** 1024 (1024.5 is a tie to even); SR rounds up half the time and ends near 2048 (Neuron's
** run gave 2056).  One run is a sum of 2048 coin flips of 0.5: its standard deviation is
** about 22.6 (1.1%), so +-2% holds for ~93% of seeds.  We assert it for the documented seed
** (2026), for at least 85% of 64 seeds, and the mean of the 64 runs to within 0.5% (~3.6 of
** its standard deviations). */
static float accumulate(const ot_cvt *cvt) {
  uint16_t acc = ot_f32_to_fp16(1024.0f);
  for (int i = 0; i < 2048; i++)
    acc = (uint16_t)ot_f32_to_bits(ot_fp16_to_f32(acc) + 0.5f, OT_DT_FP16, cvt);
  return ot_fp16_to_f32(acc);
}

static float accumulate_sr(uint64_t seed) {
  ot_rng r;
  ot_rng_seed(&r, seed);
  ot_cvt c = sr_cvt(&r, false);
  return accumulate(&c);
}

static void test_sr_neuron_example(void **state) {
  (void)state;
  ot_cvt rne = {OT_ROUND_NEAREST_EVEN, false, NULL};
  assert_true(accumulate(&rne) == 1024.0f);
  assert_true(accumulate(NULL) == 1024.0f);
  float v = accumulate_sr(2026);
  if (fabs(v - 2048.0) > 0.02 * 2048) fail_msg("SR accumulation gave %g, want 2048 +- 2%%", (double)v);
  assert_true(v == accumulate_sr(2026)); /* reproducible */
  double total = 0;
  int within = 0;
  const int seeds = 64;
  for (int seed = 0; seed < seeds; seed++) {
    v = accumulate_sr((uint64_t)seed);
    within += fabs(v - 2048.0) <= 0.02 * 2048;
    total += v;
  }
  if (within < seeds * 85 / 100) fail_msg("only %d of %d SR runs within 2%% of 2048", within, seeds);
  assert_true(fabs(total / seeds - 2048.0) < 0.005 * 2048);
}

/* Near the max SR may round past it: to Inf normally, to max when saturating. */
static void test_sr_overflow(void **state) {
  (void)state;
  ot_rng r;
  ot_rng_seed(&r, 5);
  ot_cvt plain = sr_cvt(&r, false), sat = sr_cvt(&r, true);
  int inf = 0, max = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t b = ot_f32_to_bits(65520.0f, OT_DT_FP16, &plain); /* halfway to 65536 */
    inf += b == 0x7C00u;
    max += b == 0x7BFFu;
    assert_int_equal(ot_f32_to_bits(65535.0f, OT_DT_FP16, &sat), 0x7BFFu);
    assert_int_equal(ot_f32_to_bits(-1e9f, OT_DT_FP8E4M3FN, &sat), 0xFEu);
  }
  assert_int_equal(inf + max, 1000);
  assert_true(inf > 400 && max > 400);
  /* No Inf in e4m3fn: SR past 448 gives NaN. */
  int nan = 0;
  for (int i = 0; i < 1000; i++) nan += ot_f32_to_bits(470.0f, OT_DT_FP8E4M3FN, &plain) == 0x7Fu;
  assert_true(nan > 600 && nan < 1000); /* P = (470 - 448) / 32 */
}

/* SR draws exactly one number per value, so a bulk conversion equals element-wise stores from
** the same seed; without a generator SR falls back to RNE. */
static void test_sr_bulk_and_fallback(void **state) {
  (void)state;
  enum { N = 1000 };
  float src[N];
  uint16_t bulk[N], each[N];
  for (int i = 0; i < N; i++) src[i] = (i % 7 == 0) ? 1.0f : 1.0f + (float)i * 0x1p-12f;
  ot_rng a, b;
  ot_rng_seed(&a, 77);
  ot_rng_seed(&b, 77);
  ot_cvt ca = sr_cvt(&a, false), cb = sr_cvt(&b, false);
  ot_convert(bulk, OT_DT_BF16, src, OT_DT_FP32, N, &ca);
  for (int i = 0; i < N; i++) ot_store_f32(each, (size_t)i, OT_DT_BF16, src[i], &cb);
  assert_memory_equal(bulk, each, sizeof bulk);
  assert_int_equal(a.state, b.state);
  ot_rng_seed(&b, 77);
  for (int i = 0; i < N; i++) (void)ot_rng_u32(&b);
  assert_int_equal(a.state, b.state); /* one draw each, exact values included */

  ot_cvt none = {OT_ROUND_STOCHASTIC, false, NULL};
  for (int i = 0; i < N; i++)
    assert_int_equal(ot_f32_to_bits(src[i], OT_DT_BF16, &none), ot_f32_to_bf16(src[i]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rng_golden),
    cmocka_unit_test(test_sr_reproducible),
    cmocka_unit_test(test_sr_neighbours),
    cmocka_unit_test(test_sr_unbiased),
    cmocka_unit_test(test_sr_neuron_example),
    cmocka_unit_test(test_sr_overflow),
    cmocka_unit_test(test_sr_bulk_and_fallback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
