/* `opentrn chip`: output, exit codes (0 ok, 1 rejected, 2 usage), --help on every subcommand,
** running from any directory, and the show --json -> check -> show round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/cli_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>



static void test_help_and_usage(void **state) {
  (void)state;
  cli_expect("chip --help", 0, "usage: opentrn chip");
  cli_expect("chip list --help", 0, "usage: opentrn chip list");
  cli_expect("chip show --help", 0, "usage: opentrn chip show");
  cli_expect("chip check -h", 0, "usage: opentrn chip check");
  cli_expect("chip fields --help", 0, "usage: opentrn chip fields");
  cli_expect("chip", 2, "usage: opentrn chip");
  cli_expect("chip frob", 2, "unknown subcommand 'frob'");
  cli_expect("chip show", 2, "needs a preset name");
  cli_expect("chip show trn2 --bogus", 2, "unknown option '--bogus'");
  cli_expect("chip show trn2 trn3", 2, "one chip");
  cli_expect("chip check", 2, "at least one file");
  cli_expect("chip list extra", 2, "no arguments");
  cli_expect("chip fields --x", 2, "unknown argument");
}

static void test_show_and_list(void **state) {
  (void)state;
  cli_expect("chip list", 0, "trn3   NeuronCore-v4   8 cores");
  cli_expect("chip show trn2", 0, "roofline ridge (bf16)");
  cli_expect("chip show trn1", 0, "A1 §2.2 (TensorE 2.8 GHz)");
  cli_expect("chip show trn3", 0, "mxfp8");
  cli_expect("chip show trn2 --json", 0, "\"peak_dense_tflops\"");
  cli_expect("chip fields", 0, "sbuf.bytes_per_partition");
  cli_expect("chip fields --markdown", 0, "### Field reference");
  cli_expect("chip show trn9", 1, "neither a preset");
}

static void test_check(void **state) {
  (void)state;
  char args[1024];
  snprintf(args, sizeof args, "chip check '%s/configs/chips/example-trn2-48mib-sbuf.json' trn1",
           OT_SOURCE_DIR);
  cli_expect(args, 0, "ok (chip trn2-48mib-sbuf, based on trn2)");
  char path[] = "/tmp/ot_chip_cli_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char bad[] = "{\"base\": \"trn2\", \"psum\": {\"banks\": \"eight\"}}";
  assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
  close(fd);
  snprintf(args, sizeof args, "chip check '%s'", path);
  cli_expect(args, 1, "field 'psum.banks': expected an integer in 1..64, got string \"eight\"");
  snprintf(args, sizeof args, "chip check trn2 '%s'", path);
  cli_expect(args, 1, "trn2: ok");
  unlink(path);
}

/* show --json output is a chip file: check accepts it and showing it again gives the same text. */
static void test_json_round_trip(void **state) {
  (void)state;
  char *first = NULL, *second = NULL, args[256];
  assert_int_equal(cli_run("chip show trn3 --json", &first), 0);
  char path[] = "/tmp/ot_chip_json_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, first, strlen(first)), (ssize_t)strlen(first));
  close(fd);
  snprintf(args, sizeof args, "chip check '%s'", path);
  cli_expect(args, 0, "ok (chip trn3, based on trn3)");
  snprintf(args, sizeof args, "chip show '%s' --json", path);
  assert_int_equal(cli_run(args, &second), 0);
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
