/* Assembler diagnostics: file:line:column, every error in one pass, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "isa/program.h"

static void expect_error(const char *text, const char *needle) {
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_asm_text(text, "k.s", &p, &err), OT_EPARSE);
  assert_null(p);
  if (!strstr(err.msg, needle)) fprintf(stderr, "expected '%s' in:\n%s\n", needle, err.msg);
  assert_non_null(strstr(err.msg, needle));
}

static void test_messages(void **state) {
  (void)state;
  expect_error(".engine vector\n frobnicate sb.fp32[0:1]@0\n", "k.s:2:2: unknown instruction 'frobnicate'");
  expect_error(".engine vector\n memset sb.fp32[0:1]@0\n", "k.s:2:23: memset: missing operand 'value'");
  expect_error(".engine vector\n memset sb.fp33[0:1]@0, 1\n", "unknown data type 'fp33'");
  expect_error(".engine vector\n memset xb.fp32[0:1]@0, 1\n", "unknown memory 'xb'");
  expect_error(".engine sync\n br nowhere\n", "k.s:2:5: undefined label 'nowhere'");
  expect_error(" nop\n", "instruction before any .engine section");
  expect_error(".engine warp\n", "expected an engine");
  expect_error(".tensor x fp32 [4] input\n.tensor x fp32 [4] input\n", "tensor 'x' is defined twice");
  expect_error(".const c fp32 [3] = 1, 2\n", "2 values given, the shape holds 3");
  expect_error(".engine vector\n memset sb.fp32[0:1]@0, 1, value=2\n", "operand 'value' given twice");
  expect_error(".engine vector\n memset sb.fp32[0:1]@0, 1, colour=2\n", "memset has no operand 'colour'");
  expect_error(".engine vector\n tensor_copy sb.fp32[0:1]@0, $nope\n", "unknown tensor '$nope'");
  expect_error(".engine sync\n sem_inc s1, delta=99999999999\n", "out of range");
  expect_error(".engine vector\n memset sb.fp32[0:1]@0[1,2][1,2][1,2][1,2][1,2], 0\n", "more than 4 free dimensions");
  expect_error(".frob\n", "unknown directive '.frob'");
  expect_error(".engine vector\n memset sb.fp32[0:1]@0, 1e39\n", "overflows fp32");
}

static void test_all_errors_reported(void **state) {
  (void)state;
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_asm_text(".engine vector\n bad1\n bad2\n memset sb.fp32[0:1]@0, 0\n bad3\n", "k.s", &p, &err), OT_EPARSE);
  assert_int_equal(err.count, 3);
  assert_non_null(strstr(err.msg, "k.s:2:"));
  assert_non_null(strstr(err.msg, "k.s:3:"));
  assert_non_null(strstr(err.msg, "k.s:5:"));
}

/* Hostile text: every byte value, unbalanced brackets, huge numbers; must not crash. */
static void test_garbage_never_crashes(void **state) {
  (void)state;
  const char *pieces[] = {".engine vector\n", "memset ", "sb.fp32", "[0:128]", "@", "+r3", "[1,512]", ", ", "0", "[", "]",
                          "$x", ".tensor x fp32 [4] input\n", "\n", "L:", "br L", "99999999999999999999", "-", ":",
                          "tensor_scalar ", "mul", "=", "none", ".const c fp32 [2] = ", "eye", "fill(", ")", "\x01", "#"};
  uint64_t x = 99;
  char text[512];
  for (int rep = 0; rep < 20000; rep++) {
    size_t n = 0;
    int k = 1 + rep % 24;
    for (int i = 0; i < k; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const char *s = pieces[(x >> 33) % (sizeof pieces / sizeof pieces[0])];
      size_t len = strlen(s);
      if (n + len + 1 >= sizeof text) break;
      memcpy(text + n, s, len);
      n += len;
    }
    text[n] = '\0';
    ot_program *p = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_asm_text(text, "fuzz", &p, &err) == OT_OK) ot_program_free(p);
    else assert_true(err.count > 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_messages),
    cmocka_unit_test(test_all_errors_reported),
    cmocka_unit_test(test_garbage_never_crashes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
