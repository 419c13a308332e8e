/* NumPy .npy files: our writer and reader round-trip every supported type and shape, numpy
** (Debian's /usr/bin/python3, which must have numpy: this test fails without it, it does not
** skip) reads what we write and we read what numpy writes, value for value; and malformed
** files -- truncated at every length, bad magic, bad versions, broken header dicts, Fortran
** order, big-endian and unsupported types -- are rejected with a message naming the problem,
** never a crash (this test also runs under ASan/UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "runtime/npy.h"

static const ot_dtype types[] = {OT_DT_FP32, OT_DT_FP16, OT_DT_INT8, OT_DT_UINT8,
                                 OT_DT_INT16, OT_DT_UINT16, OT_DT_INT32, OT_DT_UINT32};
#define NTYPES (sizeof types / sizeof types[0])

typedef struct { const char *key; uint32_t ndim; uint64_t shape[3]; } shape_case;
static const shape_case shapes[] = {{"s", 0, {0}}, {"e", 2, {0, 3}}, {"v", 1, {7}}, {"m", 3, {2, 3, 4}}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static uint64_t shape_count(const shape_case *s) {
  uint64_t n = 1;
  for (uint32_t i = 0; i < s->ndim; i++) n *= s->shape[i];
  return n;
}

/* The rule npy_ref.py uses: floats i * 0.25 - 3, integers (i * 37 + 5) wrapped to the type (so
** the little-endian bytes are the low bytes of that number, signed or not). */
static void *expected(ot_dtype t, uint64_t n) {
  size_t es = ot_dtype_size(t);
  uint8_t *b = calloc(n ? n * es : 1, 1);
  for (uint64_t i = 0; i < n; i++) {
    float f = (float)i * 0.25f - 3.0f;
    if (t == OT_DT_FP32) memcpy(b + i * 4, &f, 4);
    else if (t == OT_DT_FP16) {
      uint16_t h = ot_f32_to_fp16(f);
      b[i * 2] = (uint8_t)h, b[i * 2 + 1] = (uint8_t)(h >> 8);
    } else {
      uint64_t v = i * 37 + 5;
      for (size_t k = 0; k < es; k++) b[i * es + k] = (uint8_t)(v >> (8 * k));
    }
  }
  return b;
}

static const char *kind(ot_dtype t) { return ot_npy_descr(t) + 1; }

static char *path_in(const char *dir, const char *file) {
  static char buf[4][1024];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, sizeof buf[0], "%s/%s", dir, file);
  return p;
}

static const char *make_dir(const char *name) {
  static char dir[2][512];
  static int k;
  char *d = dir[k++ & 1];
  snprintf(d, sizeof dir[0], "%s/%s", OT_BINARY_DIR, name);
  mkdir(d, 0755);
  return d;
}

static void expect_reject(const void *b, size_t n, const char *needle) {
  ot_npy a;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_npy_parse(b, n, "t.npy", &a, &err);
  if (s == OT_OK) fprintf(stderr, "accepted (%zu bytes), expected '%s'\n", n, needle ? needle : "an error");
  assert_int_not_equal(s, OT_OK);
  assert_null(a.data);
  assert_true(err.msg[0] != '\0');
  if (needle && !strstr(err.msg, needle)) fprintf(stderr, "expected '%s' in: %s\n", needle, err.msg);
  if (needle) assert_non_null(strstr(err.msg, needle));
}

/* ---- round trip --------------------------------------------------------------------------- */
static void test_round_trip(void **state) {
  (void)state;
  for (size_t t = 0; t < NTYPES; t++)
    for (size_t k = 0; k < NSHAPES; k++)
      for (int version = 1; version <= 2; version++) {
        uint64_t n = shape_count(&shapes[k]);
        void *want = expected(types[t], n);
        void *img;
        size_t size;
        assert_int_equal(ot_npy_serialize(types[t], shapes[k].shape, shapes[k].ndim, want, version, &img, &size, NULL), OT_OK);
        assert_int_equal((size - n * ot_dtype_size(types[t])) % 64, 0); /* data aligned like numpy's */
        ot_npy a;
        ot_error err;
        ot_error_clear(&err);
        assert_int_equal(ot_npy_parse(img, size, "rt", &a, &err), OT_OK);
        assert_int_equal(a.dtype, types[t]);
        assert_int_equal(a.ndim, shapes[k].ndim);
        for (uint32_t d = 0; d < a.ndim; d++) assert_int_equal(a.shape[d], shapes[k].shape[d]);
        assert_int_equal(a.count, n);
        assert_int_equal(a.bytes, n * ot_dtype_size(types[t]));
        if (n) assert_memory_equal(a.data, want, a.bytes);
        ot_npy_free(&a);
        free(img);
        free(want);
      }
}

static void test_write_file_atomic(void **state) {
  (void)state;
  const char *dir = make_dir("npy_atomic");
  const char *p = path_in(dir, "a.npy");
  int32_t v[3] = {1, -2, 3};
  uint64_t shape[1] = {3};
  assert_int_equal(ot_npy_write(p, OT_DT_INT32, shape, 1, v, NULL), OT_OK);
  ot_npy a;
  assert_int_equal(ot_npy_read(p, &a, NULL), OT_OK);
  assert_memory_equal(a.data, v, sizeof v);
  ot_npy_free(&a);
  /* A write that cannot happen (no such directory) reports an error and leaves nothing. */
  ot_error err;
  ot_error_clear(&err);
  assert_int_not_equal(ot_npy_write(path_in(dir, "no/such/dir/a.npy"), OT_DT_INT32, shape, 1, v, &err), OT_OK);
  assert_non_null(strstr(err.msg, "no/such/dir/a.npy"));
  /* bf16 has no numpy type: the writer refuses it (its bits travel as uint16). */
  ot_error_clear(&err);
  assert_int_equal(ot_npy_write(p, OT_DT_BF16, shape, 1, v, &err), OT_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "bf16"));
}

/* ---- numpy interop ------------------------------------------------------------------------ */
static void run_python(const char *mode, const char *dir) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s %s/tests/runtime/npy_ref.py %s %s", OT_PYTHON, OT_SOURCE_DIR, mode, dir);
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "'%s' failed (status %d): numpy is required for this test\n", cmd, rc);
  assert_int_equal(rc, 0);
}

static void test_read_numpy_files(void **state) {
  (void)state;
  const char *dir = make_dir("npy_from_numpy");
  run_python("write", dir);
  for (size_t t = 0; t < NTYPES; t++)
    for (size_t k = 0; k < NSHAPES; k++)
      for (int version = 1; version <= 2; version++) {
        char file[64];
        snprintf(file, sizeof file, "%s_%s_v%d.npy", kind(types[t]), shapes[k].key, version);
        ot_npy a;
        ot_error err;
        ot_error_clear(&err);
        ot_status s = ot_npy_read(path_in(dir, file), &a, &err);
        if (s) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(s, OT_OK);
        uint64_t n = shape_count(&shapes[k]);
        void *want = expected(types[t], n);
        assert_int_equal(a.dtype, types[t]);
        assert_int_equal(a.ndim, shapes[k].ndim);
        for (uint32_t d = 0; d < a.ndim; d++) assert_int_equal(a.shape[d], shapes[k].shape[d]);
        assert_int_equal(a.bytes, n * ot_dtype_size(types[t]));
        if (n) assert_memory_equal(a.data, want, a.bytes);
        free(want);
        ot_npy_free(&a);
      }
}

static void expect_file_reject(const char *dir, const char *file, ot_status code, const char *needle) {
  ot_npy a;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_npy_read(path_in(dir, file), &a, &err);
  if (!strstr(err.msg, needle)) fprintf(stderr, "%s: expected '%s' in: %s\n", file, needle, err.msg);
  assert_int_equal(s, code);
  assert_non_null(strstr(err.msg, needle));
  assert_non_null(strstr(err.msg, file));
}

static void test_reject_numpy_files(void **state) {
  (void)state;
  const char *dir = make_dir("npy_from_numpy");
  run_python("write", dir);
  expect_file_reject(dir, "fortran.npy", OT_EUNSUPPORTED, "Fortran-order");
  expect_file_reject(dir, "bigendian.npy", OT_EUNSUPPORTED, "big-endian data ('>f4')");
  expect_file_reject(dir, "float64.npy", OT_EUNSUPPORTED, "float64");
  expect_file_reject(dir, "bool.npy", OT_EUNSUPPORTED, "unsupported dtype '|b1'");
  expect_file_reject(dir, "structured.npy", OT_EPARSE, "structured dtypes");
}

static void test_numpy_reads_ours(void **state) {
  (void)state;
  const char *dir = make_dir("npy_to_numpy");
  for (size_t t = 0; t < NTYPES; t++)
    for (size_t k = 0; k < NSHAPES; k++)
      for (int version = 1; version <= 2; version++) {
        uint64_t n = shape_count(&shapes[k]);
        void *want = expected(types[t], n), *img;
        size_t size;
        assert_int_equal(ot_npy_serialize(types[t], shapes[k].shape, shapes[k].ndim, want, version, &img, &size, NULL), OT_OK);
        char file[64];
        snprintf(file, sizeof file, "%s_%s_v%d.npy", kind(types[t]), shapes[k].key, version);
        FILE *f = fopen(path_in(dir, file), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(img, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
        free(img);
        free(want);
      }
  run_python("check", dir);
}

/* ---- malformed input ---------------------------------------------------------------------- */
static void test_truncated_at_every_length(void **state) {
  (void)state;
  float v[6] = {1, 2, 3, 4, 5, 6};
  uint64_t shape[2] = {2, 3};
  for (int version = 1; version <= 2; version++) {
    void *img;
    size_t n;
    assert_int_equal(ot_npy_serialize(OT_DT_FP32, shape, 2, v, version, &img, &n, NULL), OT_OK);
    for (size_t len = 0; len < n; len++) {
      uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan catches any over-read */
      memcpy(copy, img, len);
      expect_reject(copy, len, len < 8 ? "truncated" : NULL);
      free(copy);
    }
    /* One byte too many is rejected too. */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, img, n);
    longer[n] = 0;
    expect_reject(longer, n + 1, "trailing bytes");
    free(longer);
    free(img);
  }
}

/* A v1.0 file with the given header text (padded and terminated by '\n') and data bytes. */
static uint8_t *with_header(const char *dict, size_t data, size_t *n) {
  size_t hlen = strlen(dict) + 1;
  *n = 10 + hlen + data;
  uint8_t *b = calloc(*n, 1);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hlen;
  b[9] = (uint8_t)(hlen >> 8);
  memcpy(b + 10, dict, hlen - 1);
  b[10 + hlen - 1] = '\n';
  return b;
}

static void expect_header(const char *dict, size_t data, ot_status ok, const char *needle) {
  size_t n;
  uint8_t *b = with_header(dict, data, &n);
  if (ok == OT_OK) {
    ot_npy a;
    ot_error err;
    ot_error_clear(&err);
    ot_status s = ot_npy_parse(b, n, "t.npy", &a, &err);
    if (s) fprintf(stderr, "%s: %s\n", dict, err.msg);
    assert_int_equal(s, OT_OK);
    ot_npy_free(&a);
  } else {
    expect_reject(b, n, needle);
  }
  free(b);
}

static void test_header_variants(void **state) {
  (void)state;
  /* Accepted: any key order, either quote, no trailing comma, Python 2's long suffix. */
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, OT_OK, NULL);
  expect_header("{\"shape\": (2,3), \"fortran_order\": False, \"descr\": \"<f4\"}", 24, OT_OK, NULL);
  expect_header("{'descr':'<i2','fortran_order':False,'shape':(3L,)}", 6, OT_OK, NULL);
  expect_header("{'descr': '|u1', 'fortran_order': False, 'shape': ()}", 1, OT_OK, NULL);
  expect_header("{'descr': '<u1', 'fortran_order': False, 'shape': (4,)}", 4, OT_OK, NULL);
  /* Rejected, each naming what is wrong. */
  expect_header("", 0, OT_EPARSE, "expected '{'");
  expect_header("[1, 2]", 0, OT_EPARSE, "expected '{'");
  expect_header("{'descr': '<f4', 'fortran_order': False}", 0, OT_EPARSE, "no 'shape' key");
  expect_header("{'shape': (1,), 'fortran_order': False}", 4, OT_EPARSE, "no 'descr' key");
  expect_header("{'descr': '<f4', 'shape': (1,)}", 4, OT_EPARSE, "no 'fortran_order' key");
  expect_header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "duplicate key");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, OT_EPARSE, "unexpected key");
  expect_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", 4, OT_EPARSE, "True or False");
  expect_header("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}", 4, OT_EPARSE, "True or False");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4, OT_EPARSE, "non-negative integer");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", 8, OT_EPARSE, "expected ',' or ')'");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': 4}", 16, OT_EPARSE, "expected '('");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 4, OT_EPARSE, "too large");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 4, OT_EPARSE,
                "too large");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", 4, OT_EPARSE, "after the header dict");
  expect_header("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, NULL);
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4, OT_EPARSE, "expected ',' or '}'");
  expect_header("{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "expected ':'");
  expect_header("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "unexpected character");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                "1,1,1,1,1,1,1)}", 4, OT_EPARSE, "more than 32");
  expect_header("{'descr': 'f4', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "unsupported dtype 'f4'");
  expect_header("{'descr': '|f4', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "little-endian");
  expect_header("{'descr': '<f16', 'fortran_order': False, 'shape': (1,)}", 16, OT_EUNSUPPORTED, "unsupported dtype");
  expect_header("{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}", 12, OT_EUNSUPPORTED, "unsupported dtype");
  expect_header("{'descr': '', 'fortran_order': False, 'shape': (1,)}", 4, OT_EPARSE, "unsupported dtype ''");
  expect_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 23, OT_EPARSE, "truncated");
  /* A NUL and other bytes inside the header. */
  size_t n;
  uint8_t *b = with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, &n);
  b[12] = 0;
  expect_reject(b, n, "0x00");
  free(b);
}

static void test_bad_preamble(void **state) {
  (void)state;
  float v = 1;
  uint64_t shape[1] = {1};
  void *img;
  size_t n;
  assert_int_equal(ot_npy_serialize(OT_DT_FP32, shape, 1, &v, 1, &img, &n, NULL), OT_OK);
  uint8_t *b = img;
  b[1] = 'X';
  expect_reject(b, n, "bad magic");
  b[1] = 'N';
  b[6] = 4;
  expect_reject(b, n, "version 4.0");
  b[6] = 1;
  b[7] = 1;
  expect_reject(b, n, "version 1.1");
  b[7] = 0;
  b[8] = 0xff, b[9] = 0xff; /* header longer than the file */
  expect_reject(b, n, "truncated");
  expect_reject("PK\x03\x04 zip archive", 18, "bad magic");
  free(img);
  ot_npy a;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_npy_read(OT_BINARY_DIR "/no-such-file.npy", &a, &err), OT_EIO);
  assert_non_null(strstr(err.msg, "no-such-file.npy"));
}

/* Random byte changes in the preamble and header (fixed seed): every result is a clean accept or
** a clean reject; ASan/UBSan would catch any read outside the buffer. */
static void test_mutations(void **state) {
  (void)state;
  int16_t v[6] = {1, 2, 3, 4, 5, 6};
  uint64_t shape[2] = {2, 3};
  void *img;
  size_t n;
  assert_int_equal(ot_npy_serialize(OT_DT_INT16, shape, 2, v, 1, &img, &n, NULL), OT_OK);
  static const char alphabet[] = "{}()[],:' \"\\\n0123456789<>|fiuTFLdescrhapton_x\x00\x93\xff";
  uint64_t rng = 0x9e3779b97f4a7c15u;
  uint8_t *copy = malloc(n);
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(copy, img, n);
    for (int k = 0; k < 1 + iter % 4; k++) {
      rng = rng * 6364136223846793005u + 1442695040888963407u;
      size_t at = (size_t)(rng >> 33) % (n - 12);
      copy[at] = (uint8_t)alphabet[(rng >> 13) % (sizeof alphabet - 1)];
    }
    ot_npy a;
    ot_error err;
    ot_error_clear(&err);
    if (ot_npy_parse(copy, n, "m.npy", &a, &err) == OT_OK) {
      assert_int_equal(a.bytes + 0, a.count * ot_dtype_size(a.dtype));
      ot_npy_free(&a);
    } else {
      assert_true(err.msg[0] != '\0');
      assert_null(a.data);
    }
  }
  free(copy);
  free(img);
}

static void test_shape_format(void **state) {
  (void)state;
  char buf[64];
  uint64_t s[3] = {128, 1024, 7};
  ot_npy_shape_format(s, 3, buf, sizeof buf);
  assert_string_equal(buf, "[128, 1024, 7]");
  ot_npy_shape_format(s, 0, buf, sizeof buf);
  assert_string_equal(buf, "[]");
  ot_npy_shape_format(s, 3, buf, 8);
  assert_string_equal(buf, "[128...");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_write_file_atomic),
    cmocka_unit_test(test_read_numpy_files),
    cmocka_unit_test(test_reject_numpy_files),
    cmocka_unit_test(test_numpy_reads_ours),
    cmocka_unit_test(test_truncated_at_every_length),
    cmocka_unit_test(test_header_variants),
    cmocka_unit_test(test_bad_preamble),
    cmocka_unit_test(test_mutations),
    cmocka_unit_test(test_shape_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
