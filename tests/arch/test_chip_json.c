/* Chip JSON: custom chips, every class of bad input, the show --json round trip, and a
** deterministic mutation run that must never crash (run it under OT_SANITIZE=ON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/chip_int.h"

/* Loads text as `origin`, expects `code`, and checks the message has every piece given. */
static void expect_reject(const char *text, ot_status code, ...) {
  ot_chip *c = (ot_chip *)1;
  ot_error err;
  ot_error_clear(&err);
  ot_status st = ot_chip_load_json(text, "bad.json", &c, &err);
  if (st != code) fail_msg("expected status %d, got %d for %s: %s", code, st, text, err.msg);
  assert_null(c);
  assert_true(err.count >= 1);
  va_list ap;
  va_start(ap, code);
  for (const char *piece; (piece = va_arg(ap, const char *));)
    if (!strstr(err.msg, piece)) fail_msg("message lacks \"%s\":\n%s", piece, err.msg);
  va_end(ap);
}

static ot_chip *load_ok(const char *text, const char *origin) {
  ot_chip *c = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status st = ot_chip_load_json(text, origin, &c, &err);
  if (st != OT_OK) fail_msg("rejected: %s", err.msg);
  assert_non_null(c);
  return c;
}

static void test_malformed(void **state) {
  (void)state;
  expect_reject("{\n  \"base\": \"trn2\",\n  \"sbuf\": {\"partitions\": 128,,}\n}", OT_EPARSE,
                "bad.json:3:30:", "malformed JSON", "near ',}'", NULL);
  expect_reject("{\"base\": \"trn2\"", OT_EPARSE, "bad.json:1:16:", "unexpected end of input", NULL);
  expect_reject("{\"base\": \"trn2\"} trailing", OT_EPARSE, "bad.json:1:18:", "near 'trailing'", NULL);
  expect_reject("{\n\n   nope}", OT_EPARSE, "bad.json:3:4:", "near 'nope}'", NULL);
  expect_reject("{\"base\": \"trn2\",\n}", OT_EPARSE, "bad.json:2:1:", "near '}'", NULL);
  expect_reject("{\"base\" \"trn2\"}", OT_EPARSE, "bad.json:1:9:", NULL);
  expect_reject("{\"base\": \"trn2\" \"name\": \"x\"}", OT_EPARSE, "bad.json:1:17:", NULL);
  expect_reject("{\"base\": tru}", OT_EPARSE, "bad.json:1:10:", NULL);
}

static void test_empty_and_root(void **state) {
  (void)state;
  expect_reject("", OT_EPARSE, "bad.json", "empty file", NULL);
  expect_reject("  \n\t ", OT_EPARSE, "bad.json", "empty file", NULL);
  expect_reject("[1, 2]", OT_EPARSE, "bad.json", "top level is a list", "JSON object", NULL);
  expect_reject("42", OT_EPARSE, "bad.json", "top level is a number", NULL);
  expect_reject("\"trn2\"", OT_EPARSE, "bad.json", "top level is a string", NULL);
}

static void test_unknown_field(void **state) {
  (void)state;
  expect_reject("{\"base\": \"trn2\", \"sbuf\": {\"bytes_per_partiton\": 1}}", OT_EINVAL, "bad.json",
                "unknown field 'sbuf.bytes_per_partiton'", "did you mean 'sbuf.bytes_per_partition'", NULL);
  expect_reject("{\"base\": \"trn2\", \"sbuff\": {}}", OT_EINVAL, "bad.json", "unknown field 'sbuff'",
                "did you mean 'sbuf'", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"bytes_per_partition\": 4}}", OT_EINVAL,
                "unknown field 'tensor.bytes_per_partition'", "bytes_per_partition'?", NULL);
  expect_reject("{\"base\": \"trn2\", \"qqqqqqqqqqqqqqqqqq\": 1}", OT_EINVAL, "unknown field 'qqqqqqqqqqqqqqqqqq'",
                "opentrn chip fields", NULL);
  expect_reject("{\"base\": \"trn2\", \"sbuf\": 5}", OT_EINVAL, "'sbuf' is a section", "got 5", NULL);
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": {\"valeu\": 8}}}", OT_EINVAL, "psum.banks",
                "unknown key \"valeu\"", NULL);
}

static void test_wrong_type(void **state) {
  (void)state;
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": \"eight\"}}", OT_EINVAL, "bad.json", "psum.banks",
                "string \"eight\"", "an integer in 1..64", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"clock_ghz\": true}}", OT_EINVAL, "tensor.clock_ghz",
                "got true", "a number in 0.01..100 GHz", NULL);
  expect_reject("{\"base\": \"trn2\", \"ports\": {\"vector_scalar_share_psum\": 1}}", OT_EINVAL,
                "ports.vector_scalar_share_psum", "true or false", "got 1", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"dtypes\": [\"bf16\", \"fp9\"]}}", OT_EINVAL,
                "tensor.dtypes", "unknown data type \"fp9\"", "fp8e4m3", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"dtypes\": \"bf16\"}}", OT_EINVAL, "tensor.dtypes",
                "a list of data-type names", NULL);
  expect_reject("{\"base\": \"trn2\", \"name\": \"bad name!\"}", OT_EINVAL, "\"name\"", "string \"bad name!\"",
                NULL);
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": {\"value\": 8, \"source\": \"\"}}}", OT_EINVAL,
                "psum.banks", "non-empty string", NULL);
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": {\"value\": 8, \"source\": \"x\", \"assumed\": \"y\"}}}",
                OT_EINVAL, "psum.banks", "not both", NULL);
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": {\"source\": \"x\"}}}", OT_EINVAL, "psum.banks",
                "without \"value\"", NULL);
}

static void test_out_of_range(void **state) {
  (void)state;
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": 100}}", OT_ERANGE, "bad.json", "psum.banks",
                "= 100", "out of range", "1..64", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"clock_ghz\": 0}}", OT_ERANGE, "tensor.clock_ghz", "= 0",
                "0.01..100 GHz", NULL);
  expect_reject("{\"base\": \"trn2\", \"sbuf\": {\"bytes_per_partition\": -1}}", OT_ERANGE,
                "sbuf.bytes_per_partition", "= -1", "1..4294967296 B", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"rows\": 127.5}}", OT_ERANGE, "tensor.rows", "127.5",
                "not an integer", NULL);
  expect_reject("{\"base\": \"trn2\", \"hbm\": {\"bandwidth_gbps\": 1e999}}", OT_ERANGE, "hbm.bandwidth_gbps",
                "GB/s", NULL);
}

static void test_base(void **state) {
  (void)state;
  expect_reject("{\"name\": \"x\", \"sbuf\": {\"partitions\": 64}}", OT_EINVAL, "bad.json", "missing \"base\"",
                "trn1, trn2, trn3", NULL);
  expect_reject("{\"base\": \"trn5\"}", OT_ENOTFOUND, "bad.json", "'trn5' is not a preset", "did you mean",
                "trn1, trn2, trn3", NULL);
  expect_reject("{\"base\": \"h100\"}", OT_ENOTFOUND, "'h100' is not a preset", "trn1, trn2, trn3", NULL);
  expect_reject("{\"base\": 2}", OT_EINVAL, "\"base\" is 2", "preset name", NULL);
}

static void test_inconsistent(void **state) {
  (void)state;
  expect_reject("{\"base\": \"trn2\", \"psum\": {\"banks\": 7}}", OT_EINVAL, "bad.json", "inconsistent fields",
                "psum.bytes_per_partition (16384 B)", "psum.banks (7)", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"rows\": 256}}", OT_EINVAL, "inconsistent fields",
                "tensor.rows (256)", "sbuf.partitions (128)", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"moving_fmax\": 8192, \"moving_fmax_16bit\": 8192}}",
                OT_EINVAL, "tensor.moving_fmax (8192)", "psum.bytes_per_partition (16384 B)", NULL);
  expect_reject("{\"base\": \"trn3\", \"tensor\": {\"moving_fmax\": 8192}, \"psum\": {\"bytes_per_partition\": 8192}}",
                OT_EINVAL, "tensor.moving_fmax (8192)", "tensor.moving_fmax_16bit (8192)", NULL);
  expect_reject("{\"base\": \"trn2\", \"tensor\": {\"dtypes\": [\"bf16\"]}}", OT_EINVAL, "tensor.fp8_rate",
                "no fp8 type", NULL);
  expect_reject("{\"base\": \"trn2\", \"link\": {\"count\": 0}}", OT_EINVAL, "link.count (0)",
                "link.chip_gbps (1280 GB/s)", NULL);
  expect_reject("{\"base\": \"trn1\", \"vector\": {\"dtypes\": []}}", OT_EINVAL, "vector.dtypes is empty", NULL);
}

static void test_all_errors_reported(void **state) {
  (void)state;
  ot_chip *c = NULL;
  ot_error err;
  ot_error_clear(&err);
  const char *text = "{\"base\": \"trn2\", \"sbuf\": {\"partitons\": 1}, \"psum\": {\"banks\": 0}, "
                     "\"psum\": {\"banks\": 8}}";
  assert_int_not_equal(ot_chip_load_json(text, "many.json", &c, &err), OT_OK);
  assert_true(err.count >= 3);
  assert_non_null(strstr(err.msg, "sbuf.partitons"));
  assert_non_null(strstr(err.msg, "psum.banks' = 0"));
  assert_non_null(strstr(err.msg, "given twice"));
}

static void test_custom_chip(void **state) {
  (void)state;
  ot_chip *c = load_ok("{\"base\": \"trn2\", \"name\": \"my-chip\", \"sbuf\": {\"bytes_per_partition\": 393216},"
                       " \"tensor\": {\"cols\": {\"value\": 64, \"assumed\": \"half-width array\"}, \"stationary_fmax\": 64},"
                       " \"hbm.bandwidth_gbps\": 4000}", "my.json");
  assert_string_equal(ot_chip_name(c), "my-chip");
  assert_string_equal(ot_chip_base(c), "trn2");
  assert_int_equal(c->sbuf.bytes_per_partition, 393216);
  assert_int_equal(c->tensor.cols, 64);
  assert_true(c->hbm.bandwidth_gbps == 4000);
  assert_string_equal(ot_chip_source(c, "sbuf.bytes_per_partition"), "set in my.json");
  assert_string_equal(ot_chip_source(c, "tensor.cols"), "assumed: half-width array");
  assert_non_null(strstr(ot_chip_source(c, "sbuf.partitions"), "A2"));
  assert_int_equal(c->cores_per_chip, 8); /* from the base */
  assert_true(ot_chip_peak_tflops_core(c, "bf16") > 39.0 && ot_chip_peak_tflops_core(c, "bf16") < 40.0);
  ot_chip_free(c);
  /* Without "name", the chip is named after its file. */
  c = load_ok("{\"base\": \"trn1\"}", "configs/chips/big-sbuf.json");
  assert_string_equal(ot_chip_name(c), "big-sbuf");
  ot_chip_free(c);
}

/* Preset -> show --json -> load gives the same fields, the same provenance, the same name. */
static void round_trip(const ot_chip *a) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_chip_print_json(a, f, &err), OT_OK);
  fclose(f);
  ot_chip *b = load_ok(buf, "roundtrip.json");
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    if (!chip_field_same(a, b, i)) fail_msg("%s: field %s differs after the round trip", a->name, chip_fields[i].path);
    assert_string_equal(a->source[i], b->source[i]);
  }
  assert_string_equal(a->name, b->name);
  assert_string_equal(b->base, a->base[0] ? a->base : a->name);
  ot_chip_free(b);
  free(buf);
}

static void test_round_trip(void **state) {
  (void)state;
  for (const char *const *n = ot_chip_preset_names(); *n; n++) {
    ot_chip *c = NULL;
    assert_int_equal(ot_chip_preset(*n, &c, NULL), OT_OK);
    round_trip(c);
    ot_chip_free(c);
  }
  ot_chip *c = load_ok("{\"base\": \"trn3\", \"name\": \"odd\", \"tensor\": {\"clock_ghz\": 2.123456789}, "
                       "\"sequencer\": {\"sem_latency_ns\": {\"value\": 0.1, \"source\": \"quote \\\" and \\\\ \\n\"}}}",
                       "odd.json");
  round_trip(c);
  ot_chip_free(c);
}

static char *write_temp(const char *text, size_t len) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/ot_chip_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
  return path;
}

static void test_files(void **state) {
  (void)state;
  ot_chip *c = (ot_chip *)1;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_chip_load_file("/nonexistent/chip.json", &c, &err), OT_EIO);
  assert_null(c);
  assert_non_null(strstr(err.msg, "/nonexistent/chip.json"));
  ot_error_clear(&err);
  assert_int_equal(ot_chip_load_file("/tmp", &c, &err), OT_EIO); /* a directory */
  ot_error_clear(&err);
  char *path = write_temp("{\"base\": \"trn2\"}\n\0junk", 22);
  assert_int_equal(ot_chip_load_file(path, &c, &err), OT_EPARSE);
  assert_non_null(strstr(err.msg, ":2:1:"));
  unlink(path);
  ot_error_clear(&err);
  const char *inconsistent = "{\"base\": \"trn2\",\n \"psum\": {\"banks\": 9}}";
  path = write_temp(inconsistent, strlen(inconsistent));
  assert_int_equal(ot_chip_load_file(path, &c, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, path));
  unlink(path);
  ot_error_clear(&err);
  assert_int_equal(ot_chip_open("trn9", &c, &err), OT_ENOTFOUND);
  assert_non_null(strstr(err.msg, "neither a preset"));
  assert_non_null(strstr(err.msg, "did you mean"));
  assert_int_equal(ot_chip_open("trn2", &c, NULL), OT_OK);
  ot_chip_free(c);
  char file[512];
  snprintf(file, sizeof file, "%s/configs/chips/trn1.json", OT_SOURCE_DIR);
  assert_int_equal(ot_chip_open(file, &c, &err), OT_EINVAL); /* a preset file has no "base" */
  assert_int_equal(ot_chip_load_json(NULL, "x", &c, NULL), OT_EINVAL);
  assert_int_equal(ot_chip_preset("nope", &c, NULL), OT_ENOTFOUND);
}

/* Mutations of a real description: each load must succeed or fail with a message, never crash
** or leak (the sanitizer build checks the latter). */
static void test_mutations(void **state) {
  (void)state;
  const char *seed = chip_preset_text("trn2");
  size_t n = strlen(seed);
  char *buf = malloc(n + 64);
  assert_non_null(buf);
  /* Turn the preset into a custom chip so mutations exercise the custom path too. */
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 3000; round++) {
    size_t len = (size_t)snprintf(buf, n + 64, "{\"base\": \"trn2\", %s", seed + 1);
    for (int m = 0; m < 1 + round % 4; m++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      if (len == 0) break;
      size_t at = (size_t)(x % len);
      switch ((x >> 32) % 4) {
      case 0: buf[at] = (char)(" {}[]\",:0123456789.-etrufanl\\x"[(x >> 40) % 30]); break;
      case 1: memmove(buf + at, buf + at + 1, len - at); len--; break; /* delete */
      case 2: len = at; buf[len] = '\0'; break;                        /* truncate */
      default: buf[at] = (char)(x >> 48); if (!buf[at]) buf[at] = '#'; break;
      }
    }
    ot_chip *c = NULL;
    ot_error err;
    ot_error_clear(&err);
    ot_status st = ot_chip_load_json(buf, "mutant.json", &c, &err);
    if (st == OT_OK) { assert_non_null(c); ot_chip_free(c); }
    else { assert_null(c); assert_true(err.msg[0] != '\0'); }
  }
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_empty_and_root),
    cmocka_unit_test(test_unknown_field),
    cmocka_unit_test(test_wrong_type),
    cmocka_unit_test(test_out_of_range),
    cmocka_unit_test(test_base),
    cmocka_unit_test(test_inconsistent),
    cmocka_unit_test(test_all_errors_reported),
    cmocka_unit_test(test_custom_chip),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_files),
    cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
