/* The public device API (include/opentrn/device.h): open, load, tensors by name with exact
** dtype/size checks, runs (full, timing-only, functional-only), tensors persisting between runs,
** constants, .npy binding, statistics, the trace file, and the last-error contract. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <opentrn/device.h>
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
#include "util/fileio.h"

/* y = x + c on VectorE, c a constant of 1.5 everywhere; the data moves by DMA through SBUF. */
static const char add_kernel[] =
  ".chip trn2\n"
  ".tensor x fp32 [128, 64] input\n"
  ".tensor y fp32 [128, 64] output\n"
  ".const c fp32 [128, 64] = fill(1.5)\n"
  ".engine sync\n"
  "    dma_copy q0, sb.fp32[0:128]@0[1,64], $x[64,128][1,64], s0\n"
  "    dma_copy q1, sb.fp32[0:128]@256[1,64], $c[64,128][1,64], s0\n"
  "    sem_wait s1, 1\n"
  "    dma_copy q2, $y[64,128][1,64], sb.fp32[0:128]@512[1,64], s2\n"
  "    sem_wait s2, 1\n"
  "    halt\n"
  ".engine vector\n"
  "    sem_wait s0, 2\n"
  "    tensor_tensor sb.fp32[0:128]@512[1,64], sb.fp32[0:128]@0[1,64], sb.fp32[0:128]@256[1,64], add\n"
  "    sem_inc s1\n"
  "    halt\n";

/* A bf16 copy through SBUF. */
static const char copy_bf16_kernel[] =
  ".chip trn2\n"
  ".tensor a bf16 [128, 8] input\n"
  ".tensor b bf16 [128, 8] output\n"
  ".engine sync\n"
  "    dma_copy q0, sb.bf16[0:128]@0[1,8], $a[8,128][1,8], s0\n"
  "    sem_wait s0, 1\n"
  "    dma_copy q1, $b[8,128][1,8], sb.bf16[0:128]@0[1,8], s1\n"
  "    sem_wait s1, 1\n"
  "    halt\n";

enum { N = 128 * 64 };

static ot_device *open_with(const char *kernel) {
  ot_error err;
  ot_error_clear(&err);
  ot_device *d = NULL;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  ot_program *p = NULL;
  if (ot_asm_text(kernel, "kernel.s", &p, &err)) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(p);
  ot_status s = ot_device_load(d, p);
  if (s) fprintf(stderr, "%s\n", ot_device_last_error(d));
  assert_int_equal(s, OT_OK);
  ot_program_free(p); /* the device holds its own copy */
  return d;
}

static void expect_error(ot_device *d, ot_status got, ot_status want, const char *needle) {
  if (got != want || !strstr(ot_device_last_error(d), needle))
    fprintf(stderr, "status %d (want %d), expected '%s' in: %s\n", got, want, needle, ot_device_last_error(d));
  assert_int_equal(got, want);
  assert_int_equal(ot_device_last_status(d), want);
  assert_non_null(strstr(ot_device_last_error(d), needle));
}

static const char *tmp_path(const char *file) {
  static char buf[4][1024];
  static int k;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/device_test", OT_BINARY_DIR);
  mkdir(dir, 0755);
  char *p = buf[k++ & 3];
  snprintf(p, sizeof buf[0], "%s/%s", dir, file);
  return p;
}

static void run_ok(ot_device *d, const ot_run_options *o) {
  ot_status s = ot_device_run(d, o);
  if (s) fprintf(stderr, "run failed: %s\n", ot_device_last_error(d));
  assert_int_equal(s, OT_OK);
}

/* ---- open and load ------------------------------------------------------------------------ */
static void test_open(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  ot_device *d = (ot_device *)1;
  assert_int_not_equal(ot_device_open("trn9", &d, &err), OT_OK);
  assert_null(d);
  assert_non_null(strstr(err.msg, "trn9"));
  /* From a chip description, which the device copies. */
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn1", &chip, NULL), OT_OK);
  assert_int_equal(ot_device_open_chip(chip, &d, &err), OT_OK);
  ot_chip_free(chip);
  assert_string_equal(ot_chip_name(ot_device_chip(d)), "trn1");
  assert_string_equal(ot_device_last_error(d), "");
  assert_int_equal(ot_device_last_status(d), OT_OK);
  assert_int_equal(ot_device_tensor_count(d), 0);
  ot_device_close(d);
  ot_device_close(NULL);
}

static void test_load_errors(void **state) {
  (void)state;
  ot_device *d = NULL;
  assert_int_equal(ot_device_open("trn2", &d, NULL), OT_OK);
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/cli/data/illegal.s", OT_SOURCE_DIR);
  expect_error(d, ot_device_load_file(d, path), OT_EVERIFY, "MATMUL_TILE");
  expect_error(d, ot_device_load_file(d, OT_BINARY_DIR "/no-such.s"), OT_EIO, "no-such.s");
  snprintf(path, sizeof path, "%s/tests/cli/data/syntax_error.s", OT_SOURCE_DIR);
  expect_error(d, ot_device_load_file(d, path), OT_EPARSE, "unknown instruction 'frobnicate'");
  expect_error(d, ot_device_run(d, NULL), OT_EINVAL, "no program loaded");
  ot_tensor_desc t;
  expect_error(d, ot_device_tensor_find(d, "x", &t), OT_EINVAL, "no program loaded");
  /* A program file and an assembly file load alike. */
  snprintf(path, sizeof path, "%s/examples/kernels/layernorm.s", OT_SOURCE_DIR);
  assert_int_equal(ot_device_load_file(d, path), OT_OK);
  ot_program *p = NULL;
  assert_int_equal(ot_asm_file(path, &p, NULL), OT_OK);
  assert_int_equal(ot_program_save(p, tmp_path("layernorm.prog"), NULL), OT_OK);
  ot_program_free(p);
  assert_int_equal(ot_device_load_file(d, tmp_path("layernorm.prog")), OT_OK);
  assert_int_equal(ot_device_tensor_count(d), 4);
  /* The last error stays until another call fails. */
  assert_non_null(strstr(ot_device_last_error(d), "no program loaded"));
  ot_device_close(d);
}

static void test_tensor_table(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  assert_int_equal(ot_device_tensor_count(d), 3);
  ot_tensor_desc t;
  assert_int_equal(ot_device_tensor_find(d, "c", &t), OT_OK);
  assert_string_equal(t.name, "c");
  assert_string_equal(t.role, "const");
  assert_int_equal(t.dtype, OT_DT_FP32);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.shape[0], 128);
  assert_int_equal(t.shape[1], 64);
  assert_int_equal(t.bytes, N * 4);
  assert_true(t.has_value); /* constants have their value from the load */
  assert_int_equal(ot_device_tensor(d, 0, &t), OT_OK);
  assert_string_equal(t.name, "x");
  assert_false(t.has_value);
  expect_error(d, ot_device_tensor(d, 3, &t), OT_ERANGE, "out of range");
  expect_error(d, ot_device_tensor_find(d, "z", &t), OT_ENOTFOUND, "no tensor 'z' (it has: x, y, c)");
  ot_device_close(d);
}

/* ---- writing and reading tensors ----------------------------------------------------------- */
static void test_write_mismatch(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  static float x[N];
  expect_error(d, ot_device_write(d, "x", OT_DT_BF16, x, N * 2), OT_EINVAL,
               "tensor 'x' is fp32 [128, 64] (32768 bytes): given bf16 data of 16384 bytes");
  expect_error(d, ot_device_write(d, "x", OT_DT_FP32, x, N * 4 - 4), OT_EINVAL, "given fp32 data of 32764 bytes");
  expect_error(d, ot_device_write(d, "x", OT_DT_FP32, NULL, N * 4), OT_EINVAL, "NULL");
  expect_error(d, ot_device_write(d, "q", OT_DT_FP32, x, N * 4), OT_ENOTFOUND, "no tensor 'q'");
  expect_error(d, ot_device_read(d, "y", OT_DT_FP32, x, N * 4), OT_EINVAL, "tensor 'y' (output) has no value yet");
  /* Written values read back unchanged before any run. */
  for (int i = 0; i < N; i++) x[i] = (float)i;
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, x, sizeof x), OT_OK);
  static float back[N];
  assert_int_equal(ot_device_read(d, "x", OT_DT_FP32, back, sizeof back), OT_OK);
  assert_memory_equal(back, x, sizeof x);
  ot_device_close(d);
}

static void test_missing_inputs(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  expect_error(d, ot_device_run(d, NULL), OT_EINVAL, "1 tensor(s) have no value: 'x' (input)");
  ot_run_options o;
  ot_run_options_default(&o);
  o.allow_missing = true; /* x reads as zeros */
  run_ok(d, &o);
  static float y[N];
  assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, y, sizeof y), OT_OK);
  for (int i = 0; i < N; i++) assert_true(y[i] == 1.5f);
  ot_device_close(d);
}

/* ---- running --------------------------------------------------------------------------------- */
static void check_y(ot_device *d, float scale) {
  static float y[N];
  assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, y, sizeof y), OT_OK);
  for (int i = 0; i < N; i++)
    if (y[i] != (float)i * scale + 1.5f) fail_msg("y[%d] = %g, want %g", i, (double)y[i], (double)((float)i * scale + 1.5f));
}

static void write_x(ot_device *d, float scale) {
  static float x[N];
  for (int i = 0; i < N; i++) x[i] = (float)i * scale;
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, x, sizeof x), OT_OK);
}

static void test_run_and_rerun(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  write_x(d, 1);
  run_ok(d, NULL);
  check_y(d, 1);
  ot_run_summary s;
  assert_int_equal(ot_device_summary(d, &s), OT_OK);
  assert_true(s.time_ps > 0);
  assert_true(s.insns >= 9);
  assert_true(s.hbm_read_bytes >= 2 * N * 4 && s.hbm_written_bytes >= N * 4);
  /* Again with the same tensors (they persist), then with a new input. */
  run_ok(d, NULL);
  check_y(d, 1);
  ot_run_summary s2;
  assert_int_equal(ot_device_summary(d, &s2), OT_OK);
  assert_int_equal(s2.time_ps, s.time_ps); /* deterministic */
  write_x(d, -2);
  run_ok(d, NULL);
  check_y(d, -2);
  /* Timing-only: time, no values; the tensors keep the last computed ones. */
  ot_run_options o;
  ot_run_options_default(&o);
  o.mode = OT_RUN_TIMING;
  write_x(d, 3);
  run_ok(d, &o);
  assert_int_equal(ot_device_summary(d, &s2), OT_OK);
  assert_int_equal(s2.time_ps, s.time_ps);
  check_y(d, -2);
  /* Functional-only: values, no time. */
  o.mode = OT_RUN_FUNCTIONAL;
  run_ok(d, &o);
  check_y(d, 3);
  assert_int_equal(ot_device_summary(d, &s2), OT_OK);
  assert_int_equal(s2.time_ps, 0);
  o.mode = (ot_run_mode)7;
  expect_error(d, ot_device_run(d, &o), OT_EINVAL, "run mode 7");
  ot_device_close(d);
}

static void test_results_need_a_run(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  ot_run_summary s;
  expect_error(d, ot_device_summary(d, &s), OT_EINVAL, "no run yet");
  expect_error(d, ot_device_print_stats(d, stdout), OT_EINVAL, "no run yet");
  expect_error(d, ot_device_write_trace(d, tmp_path("t.json")), OT_EINVAL, "no run yet");
  write_x(d, 1);
  run_ok(d, NULL);
  expect_error(d, ot_device_write_trace(d, tmp_path("t.json")), OT_EINVAL, "recorded no trace");
  ot_device_close(d);
}

static void test_stats(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  write_x(d, 1);
  run_ok(d, NULL);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  assert_int_equal(ot_device_print_stats(d, f), OT_OK);
  fclose(f);
  assert_non_null(strstr(buf, "simulated time"));
  assert_non_null(strstr(buf, "vector"));
  assert_non_null(strstr(buf, "HFU"));
  free(buf);
  f = open_memstream(&buf, &n);
  assert_int_equal(ot_device_print_stats_json(d, f), OT_OK);
  fclose(f);
  cJSON *j = cJSON_Parse(buf);
  assert_non_null(j);
  ot_run_summary s;
  assert_int_equal(ot_device_summary(d, &s), OT_OK);
  assert_true(cJSON_GetObjectItemCaseSensitive(j, "total_ps")->valuedouble == (double)s.time_ps);
  assert_true(cJSON_GetObjectItemCaseSensitive(j, "insns")->valuedouble == (double)s.insns);
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cores"), 0);
  const cJSON *dve = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c0, "engines"), 2);
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(dve, "engine")), "vector");
  assert_true(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(dve, "insns_by_op"), "tensor_tensor")->valuedouble == 1);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c0, "dma_queues")), 3);
  cJSON_Delete(j);
  free(buf);
  ot_device_close(d);
}

static bool temp_files_left(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/device_test", OT_BINARY_DIR);
  DIR *dd = opendir(dir);
  bool found = false;
  for (struct dirent *e; dd && (e = readdir(dd));) found = found || strstr(e->d_name, ".tmp") != NULL;
  if (dd) closedir(dd);
  return found;
}

static void test_trace_file(void **state) {
  (void)state;
  ot_device *d = open_with(add_kernel);
  write_x(d, 1);
  ot_run_options o;
  ot_run_options_default(&o);
  o.trace = true;
  run_ok(d, &o);
  const char *path = tmp_path("add.trace.json");
  assert_int_equal(ot_device_write_trace(d, path), OT_OK);
  assert_false(temp_files_left());
  char *text;
  size_t n;
  assert_int_equal(ot_file_read(path, &text, &n, NULL), OT_OK);
  cJSON *j = cJSON_Parse(text);
  assert_non_null(j);
  int insns = 0, waits = 0, dmas = 0;
  const cJSON *ev;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(j, "traceEvents")) {
    const char *cat = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "cat"));
    if (!cat) continue;
    insns += !strcmp(cat, "insn");
    waits += !strcmp(cat, "wait");
    dmas += !strcmp(cat, "dma");
  }
  assert_int_equal(dmas, 3);
  assert_true(insns >= 4 && waits >= 3);
  assert_non_null(strstr(text, "\"name\": \"wait s0 >= 2\""));
  assert_non_null(strstr(text, "tensor_tensor"));
  cJSON_Delete(j);
  free(text);
  /* An unwritable path fails cleanly and leaves no temporary file behind. */
  expect_error(d, ot_device_write_trace(d, tmp_path("no/such/dir/t.json")), OT_EIO, "no/such/dir/t.json");
  assert_false(temp_files_left());
  ot_device_close(d);
}

/* ---- .npy binding ------------------------------------------------------------------------------ */
static void test_npy_binding(void **state) {
  (void)state;
  ot_device *d = open_with(copy_bf16_kernel);
  assert_string_equal(ot_device_npy_descr(OT_DT_BF16), "<u2");
  assert_string_equal(ot_device_npy_descr(OT_DT_FP8E4M3), "|u1");
  assert_string_equal(ot_device_npy_descr(OT_DT_TF32), "<f4");
  uint16_t a[128 * 8];
  for (int i = 0; i < 128 * 8; i++) a[i] = ot_f32_to_bf16((float)i - 100.0f);
  uint64_t shape[2] = {128, 8}, wrong[2] = {8, 128};
  assert_int_equal(ot_npy_write(tmp_path("a.npy"), OT_DT_UINT16, shape, 2, a, NULL), OT_OK);
  assert_int_equal(ot_npy_write(tmp_path("a_shape.npy"), OT_DT_UINT16, wrong, 2, a, NULL), OT_OK);
  assert_int_equal(ot_npy_write(tmp_path("a_f2.npy"), OT_DT_FP16, shape, 2, a, NULL), OT_OK);
  expect_error(d, ot_device_write_npy(d, "a", tmp_path("a_shape.npy")), OT_EINVAL,
               "tensor 'a' is bf16 [128, 8]: expected an array of dtype '<u2' (its bits) and shape [128, 8], the file "
               "holds '<u2' [8, 128]");
  expect_error(d, ot_device_write_npy(d, "a", tmp_path("a_f2.npy")), OT_EINVAL, "holds '<f2' [128, 8]");
  expect_error(d, ot_device_write_npy(d, "a", tmp_path("none.npy")), OT_EIO, "none.npy");
  expect_error(d, ot_device_read_npy(d, "b", tmp_path("b.npy")), OT_EINVAL, "has no value yet");
  assert_int_equal(ot_device_write_npy(d, "a", tmp_path("a.npy")), OT_OK);
  run_ok(d, NULL);
  assert_int_equal(ot_device_read_npy(d, "b", tmp_path("b.npy")), OT_OK);
  ot_npy b;
  assert_int_equal(ot_npy_read(tmp_path("b.npy"), &b, NULL), OT_OK);
  assert_int_equal(b.dtype, OT_DT_UINT16);
  assert_int_equal(b.ndim, 2);
  assert_int_equal(b.shape[0], 128);
  assert_int_equal(b.shape[1], 8);
  assert_memory_equal(b.data, a, sizeof a);
  ot_npy_free(&b);
  ot_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_open),           cmocka_unit_test(test_load_errors),
    cmocka_unit_test(test_tensor_table),   cmocka_unit_test(test_write_mismatch),
    cmocka_unit_test(test_missing_inputs), cmocka_unit_test(test_run_and_rerun),
    cmocka_unit_test(test_results_need_a_run), cmocka_unit_test(test_stats),
    cmocka_unit_test(test_trace_file),     cmocka_unit_test(test_npy_binding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
