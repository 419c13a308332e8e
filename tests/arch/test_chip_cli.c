/* `opentrn chip`: output, exit codes (0 ok, 1 rejected, 2 usage), --help on every subcommand,
** running from any directory, and the show --json -> check -> show round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char cli[] = OT_BINARY_DIR "/opentrn";

/* Runs `opentrn <args>` (through sh, from /tmp so nothing depends on the working directory),
** returns its exit status and its stdout+stderr in a malloc'd string. */
static int run(const char *args, char **out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cd /tmp && '%s' %s 2>&1", cli, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (size_t got; (got = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
    n += got;
    if (n + 1 == cap) { buf = realloc(buf, cap *= 2); assert_non_null(buf); }
  }
  buf[n] = '\0';
  int status = pclose(p);
  assert_true(WIFEXITED(status));
  *out = buf;
  return WEXITSTATUS(status);
}

static void expect(const char *args, int code, const char *piece) {
  char *out = NULL;
  int rc = run(args, &out);
  if (rc != code || (piece && !strstr(out, piece)))
    fail_msg("opentrn %s: exit %d (want %d), output lacks \"%s\"?\n%s", args, rc, code, piece ? piece : "", out);
  free(out);
}

static void test_help_and_usage(void **state) {
  (void)state;
  expect("chip --help", 0, "usage: opentrn chip");
  expect("chip list --help", 0, "usage: opentrn chip list");
  expect("chip show --help", 0, "usage: opentrn chip show");
  expect("chip check -h", 0, "usage: opentrn chip check");
  expect("chip fields --help", 0, "usage: opentrn chip fields");
  expect("chip", 2, "usage: opentrn chip");
  expect("chip frob", 2, "unknown subcommand 'frob'");
  expect("chip show", 2, "needs a preset name");
  expect("chip show trn2 --bogus", 2, "unknown option '--bogus'");
  expect("chip show trn2 trn3", 2, "one chip");
  expect("chip check", 2, "at least one file");
  expect("chip list extra", 2, "no arguments");
  expect("chip fields --x", 2, "unknown argument");
}

static void test_show_and_list(void **state) {
  (void)state;
  expect("chip list", 0, "trn3   NeuronCore-v4   8 cores");
  expect("chip show trn2", 0, "roofline ridge (bf16)");
  expect("chip show trn1", 0, "A1 §2.2 (TensorE 2.8 GHz)");
  expect("chip show trn3", 0, "mxfp8");
  expect("chip show trn2 --json", 0, "\"peak_dense_tflops\"");
  expect("chip fields", 0, "sbuf.bytes_per_partition");
  expect("chip fields --markdown", 0, "### Field reference");
  expect("chip show trn9", 1, "neither a preset");
}

static void test_check(void **state) {
  (void)state;
  char args[1024];
  snprintf(args, sizeof args, "chip check '%s/configs/chips/example-trn2-48mib-sbuf.json' trn1",
           OT_SOURCE_DIR);
  expect(args, 0, "ok (chip trn2-48mib-sbuf, based on trn2)");
  char path[] = "/tmp/ot_chip_cli_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char bad[] = "{\"base\": \"trn2\", \"psum\": {\"banks\": \"eight\"}}";
  assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
  close(fd);
  snprintf(args, sizeof args, "chip check '%s'", path);
  expect(args, 1, "field 'psum.banks': expected an integer in 1..64, got string \"eight\"");
  snprintf(args, sizeof args, "chip check trn2 '%s'", path);
  expect(args, 1, "trn2: ok");
  unlink(path);
}

/* show --json output is a chip file: check accepts it and showing it again gives the same text. */
static void test_json_round_trip(void **state) {
  (void)state;
  char *first = NULL, *second = NULL, args[256];
  assert_int_equal(run("chip show trn3 --json", &first), 0);
  char path[] = "/tmp/ot_chip_json_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, first, strlen(first)), (ssize_t)strlen(first));
  close(fd);
  snprintf(args, sizeof args, "chip check '%s'", path);
  expect(args, 0, "ok (chip trn3, based on trn3)");
  snprintf(args, sizeof args, "chip show '%s' --json", path);
  assert_int_equal(run(args, &second), 0);
  assert_string_equal(first, second);
  unlink(path);
  free(first);
  free(second);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_help_and_usage),
    cmocka_unit_test(test_show_and_list),
    cmocka_unit_test(test_check),
    cmocka_unit_test(test_json_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
