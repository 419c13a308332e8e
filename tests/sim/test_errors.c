/* Run-time errors: each names the engine, the program counter and the instruction's text, and
** says what was expected.  Never a crash, never a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

static void expect_run_error(const char *text, const ot_sim_options *opt, const char *needle1, const char *needle2) {
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(text);
  assert_non_null(p);
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, opt, &err);
  assert_null(s);
  assert_int_equal(err.code, OT_ERUNTIME);
  if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
    fprintf(stderr, "expected '%s' and '%s' in:\n%s\n", needle1, needle2 ? needle2 : "", err.msg);
  assert_non_null(strstr(err.msg, needle1));
  if (needle2) assert_non_null(strstr(err.msg, needle2));
  ot_program_free(p);
  ot_chip_free(chip);
}

static void test_deadlock(void **state) {
  (void)state;
  expect_run_error(".engine vector\n sem_wait s1, 1\n sem_inc s2\n.engine scalar\n sem_wait s2, 1\n sem_inc s1\n",
                   NULL, "deadlock", "core 0 scalar pc 0 (line 5) `sem_wait s2, 1` waits for s2 >= 1 (s2 = 0)");
  expect_run_error(".engine vector\n sem_wait s1, 1\n sem_inc s2\n.engine scalar\n sem_wait s2, 1\n sem_inc s1\n",
                   NULL, "core 0 vector pc 0 (line 2) `sem_wait s1, 1`", "semaphores of core 0: all 0");
  /* a barrier that one engine never reaches */
  expect_run_error(".engine vector\n barrier\n.engine scalar\n sem_wait s0, 1\n barrier\n", NULL, "deadlock", "waits at a barrier");
}

static void test_runaway(void **state) {
  (void)state;
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.insn_budget = 1000;
  expect_run_error(".engine sync\nspin:\n br spin\n", &o, "runaway: the instruction budget of 1000 is exhausted", "`br L0`");
}

static void test_out_of_bounds_with_register(void **state) {
  (void)state;
  /* Statically fine (offset 0); at run time r1 pushes it past the 224 KiB partition. */
  expect_run_error(".engine vector\n reg_set r1, 229000\n memset sb.fp32[0:128]@0+r1[1,512], 0\n", NULL,
                   "core 0 vector pc 1 (line 3) `memset sb.fp32[0:128]@0+r1[1,512], 0`", "229376");
}

static void test_uninitialised_read(void **state) {
  (void)state;
  const char *text = ".engine vector\n tensor_copy sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@4096[1,4]\n";
  expect_run_error(text, NULL, "core 0 vector pc 0 (line 2)", "never written");
  /* as a warning instead, the run completes and counts it */
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(text);
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.uninit_is_error = false;
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, &o, &err);
  assert_non_null(s);
  assert_true(ot_sim_get_stats(s)->warnings >= 1);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

static void test_psum_accumulate_uninitialised(void **state) {
  (void)state;
  expect_run_error(".engine vector\n memset sb.bf16[0:128]@0[1,512], 1\n sem_inc s0\n"
                   ".engine tensor\n sem_wait s0, 1\n ldweights sb.bf16[0:128]@0[1,128]\n"
                   " matmul ps.fp32[0:128]@0[1,512], sb.bf16[0:128]@0[1,512], acc=1\n",
                   NULL, "core 0 tensor pc 2 (line 7)", "uninitialised PSUM");
}

static void test_nan_trap(void **state) {
  (void)state;
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.trap_nonfinite = true;
  expect_run_error(".engine vector\n memset sb.fp32[0:128]@0[1,4], 0\n reciprocal sb.fp32[0:128]@64[1,4], sb.fp32[0:128]@0[1,4]\n",
                   &o, "core 0 vector pc 1 (line 3) `reciprocal", "Inf");
}

/* Out-of-range indices that the verifier would reject are still caught at run time. */
static void test_unverified_program(void **state) {
  (void)state;
  expect_run_error(".engine sync\n sem_inc s250\n", NULL, "semaphore s250 does not exist", NULL);
  expect_run_error(".engine sync\n reg_set r250, 1\n", NULL, "register r250 does not exist", NULL);
  expect_run_error(".tensor x fp32 [4] input\n.engine sync\n dma_copy q99, sb.fp32[0:1]@0[1,4], $x, s0\n", NULL,
                   "DMA queue q99 does not exist", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_deadlock),
    cmocka_unit_test(test_runaway),
    cmocka_unit_test(test_out_of_bounds_with_register),
    cmocka_unit_test(test_uninitialised_read),
    cmocka_unit_test(test_psum_accumulate_uninitialised),
    cmocka_unit_test(test_nan_trap),
    cmocka_unit_test(test_unverified_program),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
