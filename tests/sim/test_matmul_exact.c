/* matmul is bit-exact whatever kernel computes it: with ordinary magnitudes the simulator may
** fuse multiply and add (every bf16 x bf16 product is exact in fp32), and with magnitudes whose
** products underflow or overflow fp32 it must not.  Both are checked against a reference that
** rounds every product and every sum, in k order. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

static const char *const KERNEL =
  ".tensor s bf16 [128, 128] input\n.tensor m bf16 [128, 512] input\n.tensor o fp32 [128, 512] output\n"
  ".engine sync\n dma_copy q0, sb.bf16[0:128]@0[1,128], $s, s0\n dma_copy q1, sb.bf16[0:128]@256[1,512], $m, s0\n"
  " sem_wait s1, 1\n dma_copy q2, $o, sb.fp32[0:128]@2048[1,512], s2\n sem_wait s2, 1\n"
  ".engine tensor\n sem_wait s0, 2\n ldweights sb.bf16[0:128]@0[1,128]\n"
  " matmul ps.fp32[0:128]@0[1,512], sb.bf16[0:128]@256[1,512]\n sem_inc s3\n"
  ".engine vector\n sem_wait s3, 1\n tensor_copy sb.fp32[0:128]@2048[1,512], ps.fp32[0:128]@0[1,512]\n sem_inc s1\n";

static uint64_t state = 7;
static float rnd(void) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((state >> 40) / 16777216.0) * 2 - 1;
}

/* One matmul with inputs scaled by 2^es (stationary) and 2^em (moving); compare with the
** reference in which every product is rounded to fp32 before it is added. */
static void check(const ot_chip *chip, const ot_program *p, int es, int em) {
  static uint16_t s[128 * 128], m[128 * 512];
  static float o[128 * 512];
  for (int i = 0; i < 128 * 128; i++) s[i] = ot_f32_to_bf16(ldexpf(rnd(), es + (int)(state >> 60) % 8));
  for (int i = 0; i < 128 * 512; i++) m[i] = ot_f32_to_bf16(ldexpf(rnd(), em - (int)(state >> 61)));
  ot_sim_options opt;
  ot_sim_options_default(&opt);
  ot_sim *sim = NULL;
  assert_int_equal(ot_sim_new(chip, p, &opt, &sim, NULL), OT_OK);
  ot_sim_hbm_write(sim, ot_program_find_tensor(p, "s")->offset, s, sizeof s, NULL);
  ot_sim_hbm_write(sim, ot_program_find_tensor(p, "m")->offset, m, sizeof m, NULL);
  ot_error err;
  ot_error_clear(&err);
  if (ot_sim_run(sim, &err)) fprintf(stderr, "%s\n", err.msg);
  ot_sim_hbm_read(sim, ot_program_find_tensor(p, "o")->offset, o, sizeof o, NULL);
  unsigned mismatches = 0;
  for (int r = 0; r < 128; r++)
    for (int c = 0; c < 512; c++) {
      volatile float acc = 0; /* volatile: one rounding per operation, whatever the compiler */
      for (int k = 0; k < 128; k++) {
        volatile float prod = ot_bf16_to_f32(s[k * 128 + r]) * ot_bf16_to_f32(m[k * 512 + c]);
        acc = acc + prod;
      }
      float a = acc;
      mismatches += memcmp(&a, &o[r * 512 + c], 4) != 0;
    }
  if (mismatches) fprintf(stderr, "scales 2^%d x 2^%d: %u mismatches\n", es, em, mismatches);
  assert_int_equal(mismatches, 0);
  ot_sim_free(sim);
}

static void test_bit_exact_across_magnitudes(void **state_) {
  (void)state_;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(KERNEL);
  assert_non_null(p);
  check(chip, p, 0, 0);        /* ordinary: the fused kernel may run */
  check(chip, p, -60, -60);    /* products near 2^-120..2^-140: some round to subnormals */
  check(chip, p, -70, -75);    /* products below the subnormal range: round to zero */
  check(chip, p, 60, 66);      /* products near 2^126..2^128: some overflow to Inf */
  check(chip, p, -100, 100);   /* mixed magnitudes, products in range */
  ot_program_free(p);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bit_exact_across_magnitudes)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
