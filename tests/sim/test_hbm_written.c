/* Which HBM pages a run wrote (ot_sim_hbm_written): the runtime copies back only those tensors,
** so a page written by a DMA must count, one only read (or written by the host before the run)
** must not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim/sim_test_util.h"

#define MIB (1024ull * 1024ull)

static const char prog_text[] =
  ".chip trn2\n"
  ".tensor a fp32 [512, 1024] input @0\n"
  ".tensor b fp32 [512, 1024] output @4194304\n"
  ".engine sync\n"
  "    dma_copy q0, sb.fp32[0:128]@0[1,16], $a[1024,128][1,16], s0\n"
  "    sem_wait s0, 1\n"
  "    dma_copy q1, $b[1024,128][1,16], sb.fp32[0:128]@0[1,16], s1\n"
  "    sem_wait s1, 1\n"
  "    halt\n";

static void test_written_pages(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(prog_text);
  assert_non_null(chip);
  assert_non_null(p);
  ot_sim_options o;
  ot_sim_options_default(&o);
  ot_sim *s = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_sim_new(chip, p, &o, &s, &err), OT_OK);
  float *a = calloc(512 * 1024, sizeof *a);
  assert_non_null(a);
  for (size_t i = 0; i < 512 * 1024; i++) a[i] = (float)i;
  assert_int_equal(ot_sim_hbm_write(s, 0, a, 2 * MIB, &err), OT_OK); /* the host's upload */
  assert_true(ot_sim_hbm_written(s, 0, 2 * MIB));                    /* not tracking yet: "maybe" */
  assert_int_equal(ot_sim_run(s, &err), OT_OK);
  assert_false(ot_sim_hbm_written(s, 0, 2 * MIB));        /* a: uploaded and read, not written */
  assert_true(ot_sim_hbm_written(s, 4 * MIB, 2 * MIB));   /* b: the store's page */
  assert_true(ot_sim_hbm_written(s, 4 * MIB + 100, 1));   /* any byte of that page */
  assert_false(ot_sim_hbm_written(s, 5 * MIB, 1 * MIB));  /* b's second page: untouched */
  assert_false(ot_sim_hbm_written(s, 8 * MIB, 1 * MIB));  /* nothing there */
  assert_false(ot_sim_hbm_written(s, 4 * MIB, 0));        /* an empty range */
  float got[16];
  assert_int_equal(ot_sim_hbm_read(s, 4 * MIB + 1024 * 4, got, sizeof got, &err), OT_OK);
  for (int j = 0; j < 16; j++) assert_true(got[j] == (float)(1024 + j)); /* row 1, columns 0..15 */
  ot_sim_free(s);
  free(a);
  ot_program_free(p);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_written_pages)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
