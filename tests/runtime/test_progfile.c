/* Program files: a valid file round-trips; every malformed variant (truncated at every length,
** bad magic, wrong version, wrong checksum, offsets and counts out of range) is rejected with a
** message naming the failed check, never a crash (this test also runs under ASan/UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include "isa/program.h"
#include "runtime/progfile.h"

static void *valid(size_t *n) {
  char path[512];
  snprintf(path, sizeof path, "%s/examples/kernels/layernorm.s", OT_SOURCE_DIR);
  ot_program *p = NULL;
  assert_int_equal(ot_asm_file(path, &p, NULL), OT_OK);
  /* A constant and a provenance tag, so every section is non-empty. */
  float k[3] = {1, 2, 3};
  ot_tensor_info c = {.name = "k", .dtype = OT_DT_FP32, .role = OT_ROLE_CONST, .ndim = 1, .shape = {3}, .offset = 1 << 20, .data = (uint8_t *)k};
  assert_int_equal(ot_program_add_tensor(p, &c, NULL), OT_OK);
  p->streams[0].insns[0].tag = ot_program_intern(p, "layer0.ln");
  void *bytes;
  assert_int_equal(ot_program_serialize(p, &bytes, n, NULL), OT_OK);
  ot_program_free(p);
  return bytes;
}

static void put32(uint8_t *b, size_t at, uint32_t v) { for (int i = 0; i < 4; i++) b[at + i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *b, size_t at, uint64_t v) { put32(b, at, (uint32_t)v); put32(b, at + 4, (uint32_t)(v >> 32)); }
static uint32_t get32(const uint8_t *b, size_t at) { return (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16 | (uint32_t)b[at + 3] << 24; }

/* Recompute the checksum so a test reaches the check behind it. */
static void reseal(uint8_t *b, size_t n) {
  put32(b, 24, 0);
  put32(b, 24, (uint32_t)crc32(0L, b, (uInt)n));
}

static void expect_reject(const uint8_t *b, size_t n, const char *needle) {
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_program_deserialize(b, n, &p, &err);
  assert_int_not_equal(s, OT_OK);
  assert_null(p);
  if (needle && !strstr(err.msg, needle)) fprintf(stderr, "expected '%s' in: %s\n", needle, err.msg);
  if (needle) assert_non_null(strstr(err.msg, needle));
}

static void test_valid_loads(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_deserialize(b, n, &p, &err), OT_OK);
  assert_string_equal(ot_program_chip(p), "trn2");
  assert_int_equal(p->n_tensors, 5);
  assert_string_equal(ot_program_string(p, p->streams[0].insns[0].tag), "layer0.ln");
  ot_program_free(p);
  free(b);
}

static void test_truncated_at_every_length(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n);
  for (size_t len = 0; len < n; len++) {
    uint8_t *copy = malloc(len ? len : 1); /* exact-size buffer: ASan catches any over-read */
    memcpy(copy, b, len);
    expect_reject(copy, len, NULL);
    free(copy);
  }
  free(b);
}

static void test_bad_header_fields(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n), *c = malloc(n);
  memcpy(c, b, n); c[0] = 'X'; expect_reject(c, n, "bad magic");
  memcpy(c, b, n); c[8] = 9; reseal(c, n); expect_reject(c, n, "format version 9");
  memcpy(c, b, n); c[n / 2] ^= 0x40; expect_reject(c, n, "checksum mismatch");
  memcpy(c, b, n); put32(c, 12, 128); reseal(c, n); expect_reject(c, n, "header size");
  memcpy(c, b, n); put32(c, 32, 77); reseal(c, n); expect_reject(c, n, "encoding version");
  memcpy(c, b, n); put32(c, 28, 0x7FFFFFFF); reseal(c, n); expect_reject(c, n, "sections declared");
  free(c);
  free(b);
}

/* Section table entry i's field at byte offset off. */
static size_t entry(unsigned i, unsigned off) { return OT_PROG_HEADER_SIZE + i * OT_PROG_SECTION_SIZE + off; }

static int find_section(const uint8_t *b, uint32_t kind) {
  for (unsigned i = 0; i < get32(b, 28); i++) if (get32(b, entry(i, 0)) == kind) return (int)i;
  return -1;
}

static void test_bad_sections(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n), *c = malloc(n);
  int st = find_section(b, OT_SEC_STREAM), te = find_section(b, OT_SEC_TENSORS), de = find_section(b, OT_SEC_DESCRIPTORS);
  assert_true(st >= 0 && te >= 0 && de >= 0);
  memcpy(c, b, n); put64(c, entry((unsigned)st, 16), n + 64); reseal(c, n); expect_reject(c, n, "outside the file");
  memcpy(c, b, n); put64(c, entry((unsigned)st, 24), UINT64_MAX - 4); reseal(c, n); expect_reject(c, n, "outside the file");
  memcpy(c, b, n); put64(c, entry((unsigned)st, 16), 8); reseal(c, n); expect_reject(c, n, "outside the file");
  memcpy(c, b, n); put32(c, entry((unsigned)st, 0), 42); reseal(c, n); expect_reject(c, n, "unknown kind");
  memcpy(c, b, n); put32(c, entry((unsigned)st, 12), 0xFFFFFFFF); reseal(c, n); expect_reject(c, n, "cannot fit");
  memcpy(c, b, n); put32(c, entry((unsigned)st, 12), get32(b, entry((unsigned)st, 12)) - 1); reseal(c, n); expect_reject(c, n, "DEBUG section");
  memcpy(c, b, n); put32(c, entry((unsigned)st, 8), 17); reseal(c, n); expect_reject(c, n, "engine 17");
  memcpy(c, b, n); put32(c, entry((unsigned)te, 12), 0x7FFFFFFF); reseal(c, n); expect_reject(c, n, "TENSORS");
  memcpy(c, b, n); put64(c, entry((unsigned)de, 24), 0); put32(c, entry((unsigned)de, 12), 0); reseal(c, n); expect_reject(c, n, "descriptor offset");
  free(c);
  free(b);
}

static void test_bad_tensor_entries(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n), *c = malloc(n);
  int te = find_section(b, OT_SEC_TENSORS);
  size_t t0 = (size_t)get32(b, entry((unsigned)te, 16));
  size_t tk = t0 + 4 * OT_PROG_TENSOR_SIZE; /* the constant, last */
  memcpy(c, b, n); put32(c, t0, 0xFFFFFF); reseal(c, n); expect_reject(c, n, "name offset");
  memcpy(c, b, n); c[t0 + 4] = 200; reseal(c, n); expect_reject(c, n, "dtype 200");
  memcpy(c, b, n); put64(c, t0 + 8, 0); reseal(c, n); expect_reject(c, n, "dimension 0");
  memcpy(c, b, n); put64(c, t0 + 8, UINT64_MAX); reseal(c, n); expect_reject(c, n, "dimension 0");
  memcpy(c, b, n); put64(c, tk + 48, 1u << 30); reseal(c, n); expect_reject(c, n, "outside CONSTS");
  memcpy(c, b, n); put64(c, tk + 48, UINT64_MAX); reseal(c, n); expect_reject(c, n, "constant without");
  free(c);
  free(b);
}

/* Random byte flips with a valid checksum: every one is either loaded or rejected cleanly. */
static void test_random_corruption(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = valid(&n), *c = malloc(n);
  uint64_t x = 12345;
  for (int rep = 0; rep < 3000; rep++) {
    memcpy(c, b, n);
    for (int k = 0; k < 1 + rep % 4; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      c[64 + (x >> 33) % (n - 64)] ^= (uint8_t)(1u << ((x >> 20) % 8));
    }
    reseal(c, n);
    ot_program *p = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_program_deserialize(c, n, &p, &err) == OT_OK) ot_program_free(p);
    else assert_true(err.msg[0] != '\0');
  }
  free(c);
  free(b);
}

static void test_save_is_atomic_and_load_reports_path(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/test_progfile_tmp.prog", OT_BINARY_DIR);
  ot_program *p = ot_program_new();
  assert_int_equal(ot_program_save(p, path, NULL), OT_OK);
  ot_program *q = NULL;
  assert_int_equal(ot_program_load(path, &q, NULL), OT_OK);
  ot_program_free(q);
  /* Saving into a directory that does not exist fails and leaves nothing behind. */
  ot_error err;
  ot_error_clear(&err);
  assert_int_not_equal(ot_program_save(p, "/nonexistent-dir/x.prog", &err), OT_OK);
  assert_non_null(strstr(err.msg, "/nonexistent-dir/x.prog"));
  ot_error_clear(&err);
  assert_int_not_equal(ot_program_load("/nonexistent-dir/x.prog", &q, &err), OT_OK);
  assert_non_null(strstr(err.msg, "cannot open"));
  remove(path);
  ot_program_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid_loads),
    cmocka_unit_test(test_truncated_at_every_length),
    cmocka_unit_test(test_bad_header_fields),
    cmocka_unit_test(test_bad_sections),
    cmocka_unit_test(test_bad_tensor_entries),
    cmocka_unit_test(test_random_corruption),
    cmocka_unit_test(test_save_is_atomic_and_load_reports_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
