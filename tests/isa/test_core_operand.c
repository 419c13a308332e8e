/* The remote-semaphore operands: sem_inc core= and dma_copy sem_core= (a CORE operand).  Old
** programs keep their encoding (the operand is a trailing word written only when given), the
** text round-trips, the decoder rejects an explicit "this core" word, and the verifier checks the
** core against the chip ([CORE]). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "isa_test_util.h"
#include "isa/verify.h"

static ot_program *assemble(const char *text) {
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "test", &p, &err)) fprintf(stderr, "%s\n", err.msg);
  return p;
}

static size_t encode_one(const ot_insn *in, uint32_t *w, size_t cap) {
  ot_wbuf st = {0}, d = {0};
  assert_int_equal(ot_insn_encode(in, &st, &d, NULL), OT_OK);
  assert_true(st.n <= cap);
  memcpy(w, st.w, st.n * sizeof *w);
  size_t n = st.n;
  ot_wbuf_free(&st);
  ot_wbuf_free(&d);
  return n;
}

static void test_encoding_of_old_programs_is_unchanged(void **state) {
  (void)state;
  ot_insn in;
  uint32_t w[16];
  ot_insn_init(&in, OT_OP_SEM_INC);
  assert_int_equal(in.o[2].i, OT_CORE_SELF);
  in.o[0].i = 3;
  /* version-1 sem_inc: word 0, sem, delta -- exactly as before the operand existed */
  assert_int_equal(encode_one(&in, w, 16), 3);
  assert_int_equal(w[0], OT_W0_MAKE(OT_OP_SEM_INC, 3));
  assert_int_equal(w[1], 3);
  assert_int_equal(w[2], 1);
  ot_insn back;
  size_t used = 0;
  assert_int_equal(ot_insn_decode(w, 3, NULL, 0, &back, &used, NULL), OT_OK);
  assert_int_equal(used, 3);
  assert_int_equal(back.o[2].i, OT_CORE_SELF);
  /* with core=5: one more word */
  in.o[2].i = 5;
  assert_int_equal(encode_one(&in, w, 16), 4);
  assert_int_equal(w[0], OT_W0_MAKE(OT_OP_SEM_INC, 4));
  assert_int_equal(w[3], 5);
  assert_int_equal(ot_insn_decode(w, 4, NULL, 0, &back, &used, NULL), OT_OK);
  assert_int_equal(back.o[2].i, 5);
  /* an explicit -1 word is not a valid encoding (the default is written by leaving it out) */
  w[3] = 0xFFFFFFFFu;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_insn_decode(w, 4, NULL, 0, &back, &used, &err), OT_EFORMAT);
  assert_non_null(strstr(err.msg, "core"));
  /* dma_copy: the same, after the descriptor offset and sem */
  ot_insn_init(&in, OT_OP_DMA_COPY);
  in.o[1].ap = (ot_ap){.mem = OT_MEM_HBM, .dtype = OT_DT_FP32, .ndim = 1, .dim = {{1, 4}}};
  in.o[2].ap = (ot_ap){.mem = OT_MEM_HBM, .dtype = OT_DT_FP32, .ndim = 1, .offset = 64, .dim = {{1, 4}}};
  in.o[3].i = 2;
  assert_int_equal(encode_one(&in, w, 16), 4); /* w0, q, descriptor offset, sem */
  in.o[4].i = 7;
  assert_int_equal(encode_one(&in, w, 16), 5);
  assert_int_equal(w[4], 7);
}

static void test_text_round_trip(void **state) {
  (void)state;
  const char *text = ".chip trn2\n.tensor a fp32 [4, 8] input\n.tensor b fp32 [4, 8] output\n"
                     ".engine sync\n  dma_copy q0, $b, $a, s2, sem_core=1\n  sem_inc s5, delta=2, core=1\n  sem_inc s6\n"
                     ".engine sync core 1\n  sem_wait s2, 1\n  sem_wait s5, 2\n  sem_inc s1, core=0\n";
  ot_program *p = assemble(text);
  assert_non_null(p);
  char *dis = tu_disasm(p);
  assert_non_null(strstr(dis, "s2, sem_core=1"));
  assert_non_null(strstr(dis, "sem_inc s5, delta=2, core=1"));
  assert_non_null(strstr(dis, "sem_inc s1, core=0"));
  assert_null(strstr(dis, "sem_inc s6,")); /* the default is not printed */
  ot_program *back = assemble(dis);
  assert_non_null(back);
  assert_false(tu_programs_differ(p, back));
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  assert_int_equal(ot_program_verify(p, chip, NULL), OT_OK);
  ot_chip_free(chip);
  free(dis);
  ot_program_free(back);
  ot_program_free(p);
}

static void test_verifier_checks_the_core(void **state) {
  (void)state;
  static const char *const bad[] = {
      ".engine sync\n sem_inc s1, core=8\n",                                        /* trn2: cores 0..7 */
      ".engine sync\n dma_copy q0, sb.fp32[0:128]@0[1,4], $x[512,128][1,4], s0, sem_core=9\n",
  };
  ot_chip *trn2 = NULL, *trn1 = NULL;
  assert_int_equal(ot_chip_preset("trn2", &trn2, NULL), OT_OK);
  assert_int_equal(ot_chip_preset("trn1", &trn1, NULL), OT_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[512];
    snprintf(text, sizeof text, ".tensor x fp32 [512, 128] input\n%s", bad[i]);
    ot_program *p = assemble(text);
    assert_non_null(p);
    ot_error err;
    ot_error_clear(&err);
    assert_int_equal(ot_program_verify(p, trn2, &err), OT_EVERIFY);
    assert_non_null(strstr(err.msg, "[CORE]"));
    ot_program_free(p);
  }
  /* core=1 is fine on trn2 (8 cores) and on trn1 (2 cores); core=2 only on trn2 */
  ot_program *p = assemble(".engine sync\n sem_inc s1, core=2\n");
  assert_int_equal(ot_program_verify(p, trn2, NULL), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_verify(p, trn1, &err), OT_EVERIFY);
  assert_non_null(strstr(err.msg, "cores 0..1"));
  ot_program_free(p);
  ot_chip_free(trn2);
  ot_chip_free(trn1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encoding_of_old_programs_is_unchanged),
      cmocka_unit_test(test_text_round_trip),
      cmocka_unit_test(test_verifier_checks_the_core),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
