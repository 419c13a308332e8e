/* safetensors: files written by Python (json + numpy + torch, no safetensors library) read in C
** and files written in C checked value for value in Python (tests/model/st_ref.py); f32, bf16
** and f16 with torch's rounding; every corruption -- truncation at every length, header length,
** bad JSON, unknown dtypes, offsets out of the data, size mismatches, overlaps, duplicates -- is
** rejected with a message naming the file, the tensor, what was expected and what was found. */
#include "model_test.h"

#include <math.h>

static float pattern(uint64_t i) { return (float)((double)(i % 97) * 0.37 - 11.5 + 1e-3 * (double)i); }

static float *pattern_buf(uint64_t n) {
  float *v = malloc((n ? n : 1) * sizeof *v);
  for (uint64_t i = 0; i < n; i++) v[i] = pattern(i);
  return v;
}

/* ---- interop with Python ---------------------------------------------------------------- */

static void test_read_python_file(void **state) {
  (void)state;
  const char *dir = mt_dir("st_py");
  char args[600];
  snprintf(args, sizeof args, "write %s", dir);
  mt_python("st_ref.py", args);
  ot_safetensors *st = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_safetensors_open(mt_path(dir, "py_types.safetensors"), &st, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(ot_safetensors_count(st), 6);
  assert_string_equal(ot_safetensors_metadata(st, "format"), "pt");
  assert_null(ot_safetensors_metadata(st, "nope"));
  const char *names[] = {"a_f32", "b_f16", "c_bf16"};
  const ot_dtype types[] = {OT_DT_FP32, OT_DT_FP16, OT_DT_BF16};
  const uint64_t counts[] = {6, 4, 6};
  for (int k = 0; k < 3; k++) {
    const ot_st_tensor *t = ot_safetensors_find(st, names[k]);
    assert_non_null(t);
    assert_int_equal(t->dtype, types[k]);
    assert_int_equal(t->count, counts[k]);
    float got[6];
    assert_int_equal(ot_safetensors_read_f32(st, names[k], got, counts[k], NULL), OT_OK);
    for (uint64_t i = 0; i < counts[k]; i++) {
      float want = pattern(i);
      if (types[k] == OT_DT_FP16) want = ot_fp16_to_f32(ot_f32_to_fp16(want));
      if (types[k] == OT_DT_BF16) want = ot_bf16_to_f32(ot_f32_to_bf16(want)); /* torch rounded: same bits */
      assert_true(got[i] == want);
    }
  }
  const ot_st_tensor *a = ot_safetensors_find(st, "a_f32");
  assert_int_equal(a->ndim, 2);
  assert_int_equal(a->shape[1], 3);
  const ot_st_tensor *d = ot_safetensors_find(st, "d_scalar");
  assert_int_equal(d->ndim, 0);
  assert_int_equal(d->count, 1);
  const ot_st_tensor *e = ot_safetensors_find(st, "e_empty");
  assert_int_equal(e->count, 0);
  const ot_st_tensor *f = ot_safetensors_find(st, "f_i64");
  assert_int_equal(f->dtype, OT_DT_COUNT);
  assert_string_equal(f->st_dtype, "I64");
  float x[3];
  ot_error_clear(&err);
  mt_expect(ot_safetensors_read_f32(st, "f_i64", x, 3, &err), &err, "'f_i64'", "dtype I64", "float", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_read_f32(st, "a_f32", x, 3, &err), &err, "'a_f32'", "6 elements, expected 3", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_read_f32(st, "zz", x, 3, &err), &err, "no tensor 'zz'", NULL);
  ot_safetensors_close(st);
}

static void test_write_for_python(void **state) {
  (void)state;
  const char *dir = mt_dir("st_py");
  float *v = pattern_buf(1000);
  ot_st_tensor ts[3];
  memset(ts, 0, sizeof ts);
  ts[0] = (ot_st_tensor){.name = "w", .dtype = OT_DT_FP32, .ndim = 2, .shape = {20, 50}, .data = v};
  ts[1] = (ot_st_tensor){.name = "b.bias", .dtype = OT_DT_FP32, .ndim = 1, .shape = {7}, .data = v};
  ts[2] = (ot_st_tensor){.name = "s", .dtype = OT_DT_FP32, .ndim = 0, .data = v};
  const char *meta[] = {"producer", "opentrn", NULL};
  const char *files[] = {"c_f32.safetensors", "c_bf16.safetensors", "c_f16.safetensors"};
  const ot_dtype as[] = {OT_DT_COUNT, OT_DT_BF16, OT_DT_FP16};
  for (int k = 0; k < 3; k++) assert_int_equal(ot_safetensors_save(mt_path(dir, files[k]), ts, 3, as[k], meta, NULL), OT_OK);
  char args[600];
  snprintf(args, sizeof args, "check %s", dir);
  mt_python("st_ref.py", args);
  /* And back in C: the header is padded to 8 bytes and the bf16 values are the rounded ones. */
  ot_safetensors *st = NULL;
  assert_int_equal(ot_safetensors_open(mt_path(dir, files[1]), &st, NULL), OT_OK);
  float got[1000];
  assert_int_equal(ot_safetensors_read_f32(st, "w", got, 1000, NULL), OT_OK);
  for (int i = 0; i < 1000; i++) assert_true(got[i] == ot_bf16_to_f32(ot_f32_to_bf16(v[i])));
  ot_safetensors_close(st);
  size_t n = 0;
  char *raw = mt_read(mt_path(dir, files[0]), &n);
  assert_int_equal((8 + (size_t)(uint8_t)raw[0] + ((size_t)(uint8_t)raw[1] << 8)) % 8, 0);
  free(raw);
  free(v);
}

static void test_save_rejects(void **state) {
  (void)state;
  const char *dir = mt_dir("st_save");
  float v[4] = {0};
  ot_st_tensor ts[2] = {{.name = "a", .dtype = OT_DT_FP32, .ndim = 1, .shape = {4}, .data = v},
                        {.name = "a", .dtype = OT_DT_FP32, .ndim = 1, .shape = {4}, .data = v}};
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_save(mt_path(dir, "x.safetensors"), ts, 2, OT_DT_COUNT, NULL, &err), &err,
            "tensor 'a' given twice", NULL);
  ts[1].name = "__metadata__";
  ot_error_clear(&err);
  mt_expect(ot_safetensors_save(mt_path(dir, "x.safetensors"), ts, 2, OT_DT_COUNT, NULL, &err), &err, "no usable name", NULL);
  ts[1].name = "b";
  ts[1].dtype = OT_DT_TF32;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_save(mt_path(dir, "x.safetensors"), ts, 2, OT_DT_COUNT, NULL, &err), &err,
            "'b'", "tf32 has no safetensors dtype", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_save(mt_path(dir, "x.safetensors"), ts, 1, OT_DT_INT8, NULL, &err), &err,
            "cannot save as int8", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_save("/no/such/dir/x.safetensors", ts, 1, OT_DT_COUNT, NULL, &err), &err,
            "/no/such/dir/x.safetensors", NULL);
  /* A failed save leaves the old file untouched: write one, then fail over it. */
  assert_int_equal(ot_safetensors_save(mt_path(dir, "keep.safetensors"), ts, 1, OT_DT_COUNT, NULL, NULL), OT_OK);
  ot_error_clear(&err);
  assert_int_not_equal(ot_safetensors_save(mt_path(dir, "keep.safetensors"), ts, 2, OT_DT_COUNT, NULL, &err), OT_OK);
  ot_safetensors *st = NULL;
  assert_int_equal(ot_safetensors_open(mt_path(dir, "keep.safetensors"), &st, NULL), OT_OK);
  assert_int_equal(ot_safetensors_count(st), 1);
  ot_safetensors_close(st);
}

/* ---- corrupt files ---------------------------------------------------------------------- */

/* An image: 8-byte length, header (JSON text), data_size bytes of data. */
static uint8_t *image(const char *header, size_t data_size, size_t *size) {
  size_t h = strlen(header);
  *size = 8 + h + data_size;
  uint8_t *b = calloc(*size, 1);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
  memcpy(b + 8, header, h);
  return b;
}

static void expect_bad(const char *header, size_t data_size, const char *n1, const char *n2) {
  size_t size = 0;
  uint8_t *b = image(header, data_size, &size);
  ot_safetensors *st = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_safetensors_parse(b, size, "bad.safetensors", &st, &err);
  assert_null(st);
  mt_expect(s, &err, "bad.safetensors", n1, n2, NULL);
  free(b);
}

static void test_corrupt_headers(void **state) {
  (void)state;
  const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  size_t size;
  uint8_t *b = image(ok, 8, &size);
  ot_safetensors *st = NULL;
  assert_int_equal(ot_safetensors_parse(b, size, "ok", &st, NULL), OT_OK);
  ot_safetensors_close(st);
  free(b);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "malformed", NULL);
  expect_bad("[1,2]", 0, "does not start with '{'", NULL);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "after the JSON", NULL);
  expect_bad("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'", "unknown dtype 'Q7'");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'a'",
             "run past the data section (4 bytes");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'a': 8 data bytes, expected 12",
             "F32 shape [3]");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "'a'", "shape[0]");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "'a'", "shape[0]");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "'a'", "\"shape\" must be a list");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "at most 8", NULL);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "'a'", "begin <= end");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'a'", "\"data_offsets\"");
  expect_bad("{\"a\":7}", 8, "'a'", "expected an object");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "'a' and 'b' overlap", NULL);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "'a' appears twice", NULL);
  expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "'k' is not a string");
  expect_bad("{\"__metadata__\":[]}", 0, "__metadata__", "object of strings");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
             "overflows", NULL);
  /* Header length beyond the file, and absurdly large. */
  b = image(ok, 8, &size);
  b[0] = 0xFF;
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_parse(b, size, "len.safetensors", &st, &err), &err, "len.safetensors",
            "header length 255 does not fit", NULL);
  b[7] = 0x10;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_parse(b, size, "len.safetensors", &st, &err), &err, "limit is 100 MB", NULL);
  free(b);
}

/* A valid file cut at every length fails cleanly (and never reads outside the buffer: this test
** runs under ASan, on exact-size copies). */
static void test_truncated_everywhere(void **state) {
  (void)state;
  const char *dir = mt_dir("st_trunc");
  float v[30];
  for (int i = 0; i < 30; i++) v[i] = pattern((uint64_t)i);
  ot_st_tensor ts[2] = {{.name = "x", .dtype = OT_DT_FP32, .ndim = 2, .shape = {3, 5}, .data = v},
                        {.name = "y", .dtype = OT_DT_FP32, .ndim = 1, .shape = {15}, .data = v + 15}};
  assert_int_equal(ot_safetensors_save(mt_path(dir, "t.safetensors"), ts, 2, OT_DT_BF16, NULL, NULL), OT_OK);
  size_t n = 0;
  char *full = mt_read(mt_path(dir, "t.safetensors"), &n);
  for (size_t k = 0; k < n; k++) {
    uint8_t *cut = malloc(k ? k : 1);
    memcpy(cut, full, k);
    ot_safetensors *st = NULL;
    ot_error err;
    ot_error_clear(&err);
    ot_status s = ot_safetensors_parse(cut, k, "cut.safetensors", &st, &err);
    assert_int_not_equal(s, OT_OK);
    assert_null(st);
    assert_non_null(strstr(err.msg, "cut.safetensors"));
    free(cut);
  }
  /* The file on disk, truncated: the message says so. */
  mt_write(mt_path(dir, "short.safetensors"), full, n - 3);
  ot_safetensors *st = NULL;
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_safetensors_open(mt_path(dir, "short.safetensors"), &st, &err), &err, "short.safetensors", "'y'",
            "truncated", NULL);
  mt_write(mt_path(dir, "empty.safetensors"), "", 0);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_open(mt_path(dir, "empty.safetensors"), &st, &err), &err, "0 bytes", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_open(mt_path(dir, "nope.safetensors"), &st, &err), &err, "nope.safetensors",
            "cannot open", NULL);
  ot_error_clear(&err);
  mt_expect(ot_safetensors_open(dir, &st, &err), &err, "not a regular file", NULL);
  free(full);
}

/* Random bit flips in the header never crash the reader. */
static void test_bit_flips(void **state) {
  (void)state;
  const char *dir = mt_dir("st_trunc");
  size_t n = 0;
  char *full = mt_read(mt_path(dir, "t.safetensors"), &n);
  uint64_t x = 0x243F6A8885A308D3u;
  for (int round = 0; round < 3000; round++) {
    uint8_t *b = malloc(n);
    memcpy(b, full, n);
    for (int f = 0; f < 1 + round % 4; f++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t at = (size_t)(x % (n < 200 ? n : 200));
      b[at] ^= (uint8_t)(1u << ((x >> 20) % 8));
    }
    ot_safetensors *st = NULL;
    if (ot_safetensors_parse(b, n, "flip", &st, NULL) == OT_OK) {
      for (size_t i = 0; i < ot_safetensors_count(st); i++) {
        const ot_st_tensor *t = ot_safetensors_at(st, i);
        assert_true((const uint8_t *)t->data + t->bytes <= b + n);
      }
      ot_safetensors_close(st);
    }
    free(b);
  }
  free(full);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_read_python_file),
    cmocka_unit_test(test_write_for_python),
    cmocka_unit_test(test_save_rejects),
    cmocka_unit_test(test_corrupt_headers),
    cmocka_unit_test(test_truncated_everywhere),
    cmocka_unit_test(test_bit_flips),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
