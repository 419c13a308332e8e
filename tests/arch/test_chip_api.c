/* Chip API: the field table itself, ot_chip_get/set with range checks, clone, check, print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/chip_int.h"

static ot_chip *trn2(void) {
  ot_chip *c = NULL;
  assert_int_equal(ot_chip_preset("trn2", &c, NULL), OT_OK);
  return c;
}

/* The table is well formed: unique paths, a doc line each, sane ranges, sections contiguous (the
** printers group by section in table order). */
static void test_table(void **state) {
  (void)state;
  assert_true(CHIP_FIELD_COUNT > 60);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const chip_field *f = &chip_fields[i];
    assert_int_equal(chip_field_find(f->path), i);
    assert_true(strlen(f->doc) > 5);
    if (f->kind != CHIP_BOOL && f->kind != CHIP_DTYPES) assert_true(f->min <= f->max);
    const char *dot = strrchr(f->path, '.');
    if (!dot) continue;
    size_t sl = (size_t)(dot - f->path);
    for (int j = 0; j + 1 < i; j++) /* a section seen before must continue up to here */
      if (!strncmp(chip_fields[j].path, f->path, sl) && chip_fields[j].path[sl] == '.')
        assert_true(!strncmp(chip_fields[i - 1].path, f->path, sl));
  }
  assert_true(chip_field_is_section("sbuf"));
  assert_false(chip_field_is_section("sbuf.partitions"));
  assert_false(chip_field_is_section("sbu"));
}

static void test_get_set(void **state) {
  (void)state;
  ot_chip *c = trn2();
  ot_error err;
  double v = 0;
  ot_error_clear(&err);
  assert_int_equal(ot_chip_get(c, "sbuf.bytes_per_partition", &v, &err), OT_OK);
  assert_true(v == 229376);
  assert_int_equal(ot_chip_set(c, "sbuf.bytes_per_partition", 393216, &err), OT_OK);
  assert_int_equal(ot_chip_get(c, "sbuf.bytes_per_partition", &v, &err), OT_OK);
  assert_true(v == 393216);
  assert_string_equal(ot_chip_source(c, "sbuf.bytes_per_partition"), "set by ot_chip_set");
  assert_int_equal(ot_chip_set(c, "tensor.clock_ghz", 3.1, &err), OT_OK);
  assert_true(c->eng[OT_ENG_TENSOR].clock_ghz == 3.1);
  assert_int_equal(ot_chip_set(c, "ports.vector_scalar_share_psum", 1, &err), OT_OK);
  assert_true(c->ports.vector_scalar_share_psum);
  assert_int_equal(ot_chip_get(c, "ports.vector_scalar_share_psum", &v, &err), OT_OK);
  assert_true(v == 1);

  ot_error_clear(&err);
  assert_int_equal(ot_chip_set(c, "psum.banks", 65, &err), OT_ERANGE);
  assert_non_null(strstr(err.msg, "psum.banks"));
  assert_non_null(strstr(err.msg, "1..64"));
  ot_error_clear(&err);
  assert_int_equal(ot_chip_set(c, "psum.banks", 2.5, &err), OT_ERANGE);
  assert_non_null(strstr(err.msg, "integer"));
  ot_error_clear(&err);
  assert_int_equal(ot_chip_set(c, "ports.vector_scalar_share_psum", 2, &err), OT_ERANGE);
  ot_error_clear(&err);
  assert_int_equal(ot_chip_set(c, "tensor.dtypes", 1, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "list of data types"));
  ot_error_clear(&err);
  assert_int_equal(ot_chip_get(c, "sbuf.partitons", &v, &err), OT_ENOTFOUND);
  assert_non_null(strstr(err.msg, "did you mean 'sbuf.partitions'"));
  assert_int_equal(ot_chip_get(c, NULL, &v, NULL), OT_EINVAL);
  assert_int_equal(ot_chip_get(NULL, "sbuf.partitions", &v, NULL), OT_EINVAL);
  assert_null(ot_chip_source(c, "nope"));
  ot_chip_free(c);
}

/* ot_chip_set checks one field; ot_chip_check ties them together afterwards. */
static void test_check_after_set(void **state) {
  (void)state;
  ot_chip *c = trn2();
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_chip_set(c, "psum.banks", 7, &err), OT_OK);
  assert_int_equal(ot_chip_check(c, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "chip 'trn2': inconsistent fields"));
  assert_non_null(strstr(err.msg, "psum.banks (7)"));
  assert_int_equal(ot_chip_set(c, "psum.banks", 4, NULL), OT_OK);
  ot_error_clear(&err);
  assert_int_equal(ot_chip_check(c, &err), OT_OK);
  assert_int_equal(ot_chip_check(NULL, NULL), OT_EINVAL);
  ot_chip_free(c);
}

static void test_clone(void **state) {
  (void)state;
  ot_chip *a = trn2();
  ot_chip *b = ot_chip_clone(a);
  assert_non_null(b);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    assert_true(chip_field_same(a, b, i));
    assert_string_equal(a->source[i], b->source[i]);
    assert_ptr_not_equal(a->source[i], b->source[i]);
  }
  assert_int_equal(ot_chip_set(b, "hbm.stacks", 8, NULL), OT_OK);
  assert_int_equal(a->hbm.stacks, 4);
  ot_chip_free(a);
  ot_chip_free(b);
  assert_null(ot_chip_clone(NULL));
  ot_chip_free(NULL);
}

static char *capture_print(const ot_chip *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  ot_chip_print(c, f);
  fclose(f);
  return buf;
}

/* `chip show`: every field with its value, unit and provenance, then the derived figures. */
static void test_print(void **state) {
  (void)state;
  ot_chip *c = trn2();
  char *text = capture_print(c);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const char *last = strrchr(chip_fields[i].path, '.');
    char line[512];
    chip_field_format(c, i, line, sizeof line);
    if (!strstr(text, last ? last + 1 : chip_fields[i].path) || !strstr(text, line) || !strstr(text, c->source[i]))
      fail_msg("chip show lacks field %s (%s, %s)", chip_fields[i].path, line, c->source[i]);
  }
  static const char *const pieces[] = {
    "229376 B (224 KiB)", "2.4 GHz", "assumed: ", "[conflict]", "derived", "bf16", "fp8e4m3",
    "28 MiB per core, 224 MiB per chip", "2 MiB per core, 16 MiB per chip", "96 GiB per chip",
    "2900 GB/s per chip (362.5 GB/s per core", "368 GB/s per core (16 engines x 23 GB/s)",
    "roofline ridge (bf16)", "FLOP/byte per core", "byte/FLOP"};
  for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++)
    if (!strstr(text, pieces[k])) fail_msg("chip show lacks \"%s\":\n%s", pieces[k], text);
  free(text);
  ot_chip_free(c);
  assert_int_equal(ot_chip_preset("trn3", &c, NULL), OT_OK);
  text = capture_print(c);
  assert_non_null(strstr(text, "mxfp8"));
  free(text);
  ot_chip_free(c);
}

static void test_suggest(void **state) {
  (void)state;
  char hint[128];
  assert_true(chip_field_suggest("tensor.clock_gz", hint, sizeof hint));
  assert_string_equal(hint, "tensor.clock_ghz");
  assert_true(chip_field_suggest("nmae", hint, sizeof hint));
  assert_string_equal(hint, "name");
  assert_true(chip_field_suggest("vectr", hint, sizeof hint));
  assert_string_equal(hint, "vector");
  assert_false(chip_field_suggest("zzzzzzzzzzzzzzzz", hint, sizeof hint));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_table),
    cmocka_unit_test(test_get_set),
    cmocka_unit_test(test_check_after_set),
    cmocka_unit_test(test_clone),
    cmocka_unit_test(test_print),
    cmocka_unit_test(test_suggest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
