/* `opentrn cost` and `opentrn report` through the command line: exit statuses (0 ok, 1 rejected,
** 2 usage), the messages, the buyer's table, and a well-formed self-contained HTML report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cost/cost_int.h"
#include "util/fileio.h"

#define OPENTRN OT_BINARY_DIR "/opentrn"

static char out_buf[1 << 20];

/* Run a shell command; returns its exit status, output (stdout and stderr) in out_buf. */
static int run(const char *cmd) {
  char full[4096];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  assert_non_null(p);
  size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
  out_buf[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const char *cmd, int status, const char *text) {
  int got = run(cmd);
  if (got != status || (text && !strstr(out_buf, text)))
    fail_msg("%s\n  exit %d (want %d), output:\n%s\n  (want it to contain '%s')", cmd, got, status, out_buf, text ? text : "");
}

static void test_usage_errors(void **state) {
  (void)state;
  expect(OPENTRN " cost --help", 0, "usage: opentrn cost");
  expect(OPENTRN " cost --model gpt2 --task train", 2, "--task train needs --tokens");
  expect(OPENTRN " cost --model gpt2 --task fly --tokens 1", 2, "--task is train or serve, not 'fly'");
  expect(OPENTRN " cost --model gpt2 --tokens many", 2, "--tokens takes a non-negative number");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --frob", 2, "unknown option '--frob'");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --view", 2, "--view needs a value");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --view buyer", 2, "--view is rental or owner");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 stray", 2, "unexpected argument 'stray'");
  expect(OPENTRN " report", 2, "nothing to report");
  expect(OPENTRN " report --loss x.csv", 2, "no output file");
}

static void test_rejected(void **state) {
  (void)state;
  expect(OPENTRN " cost --model gpt-9 --tokens 1e9", 1, "unknown model 'gpt-9'");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --set h100.mfu=2", 1, "field 'h100.mfu' = 2 is out of range");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --set h100.muf=0.3", 1, "field 'h100.muf' is not a cost assumption");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --gpus h100,v100", 1, "unknown GPU 'v100'");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --chips trn9", 1, "");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --assumptions " OT_BINARY_DIR "/no-such.json", 1, "no-such.json");
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --stats " OT_SOURCE_DIR "/README.md", 1, "README.md: not valid JSON statistics");
  expect(OPENTRN " report --loss " OT_BINARY_DIR "/no-such.csv -o " OT_BINARY_DIR "/r.html", 1, "no-such.csv");
}

/* The table a buyer reads: GPU rows priced, Trainium rows honest, assumptions listed. */
static void test_table(void **state) {
  (void)state;
  expect(OPENTRN " cost --model gpt2 --task train --tokens 1e9", 0, "simulated (1 layer x 12)");
  assert_non_null(strstr(out_buf, "h100         463181         0.5997         -     6.880             4.13"));
  assert_non_null(strstr(out_buf, "roofline MODEL"));
  assert_non_null(strstr(out_buf, "h100.price_aws             6.88 $/h       [3P, 2026-11-09]"));
  /* cost.md §7 from the command line: GPT-3 175B, 3.14e23 FLOPs, H100 p5 on-demand, MFU 40%. */
  expect(OPENTRN " cost --model gpt3-175b --tokens 300e9 --flops 3.14e23 --chips none --gpus h100,h200", 0, "1,516,295");
  assert_non_null(strstr(out_buf, "1,743,739"));
  expect(OPENTRN " cost --model gpt3-175b --tokens 300e9 --flops 3.14e23 --chips none --gpus h100 --prices market", 0, "517,920.51");
  expect(OPENTRN " cost --model llama-3-8b --task serve --prompt 512 --output 256 --batch 8 --view owner --chips trn1", 0, "owner view per chip-hour");
  assert_non_null(strstr(out_buf, "trn1.capex"));
  expect(OPENTRN " cost --defaults", 0, "h100.peak_bf16_tflops");
  /* Wall-clock days on a cluster: 0.5997 H100-hours on 2 GPUs = 0.0125 days. */
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --count 2 --chips none --gpus h100", 0, "0.5997    0.0125");
  /* The break-even a Trainium chip must reach, from prices and peaks (AWS list vs H100). */
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --chips trn2 --gpus h100", 0, "trn2   MFU >= 0.34 (training, prefill)   MBU >= 0.44 (decode)");
}

static void test_json(void **state) {
  (void)state;
  expect(OPENTRN " cost --model gpt2 --tokens 1e9 --json --chips trn2 --set h100.price_per_hour=2", 0, "\"rows\"");
  cJSON *o = cJSON_Parse(out_buf);
  assert_non_null(o);
  const cJSON *rows = cJSON_GetObjectItem(o, "rows"), *row;
  int seen = 0;
  cJSON_ArrayForEach(row, rows) {
    const char *chip = cJSON_GetObjectItem(row, "chip")->valuestring;
    if (!strcmp(chip, "trn2")) {
      assert_true(cJSON_GetObjectItem(row, "cost")->valuedouble > 0); /* from the simulated layer */
      seen++;
    }
    if (!strcmp(chip, "h100")) {
      assert_true(cJSON_GetObjectItem(row, "price_per_chip_hour")->valuedouble == 2);
      seen++;
    }
  }
  assert_int_equal(seen, 2);
  cJSON_Delete(o);
}

/* ---- the report --------------------------------------------------------------------------- */
/* Tags balance (void elements and self-closing tags aside), and nothing points off the file. */
static void assert_well_formed(const char *html) {
  static const char *const voids[] = {"meta", "br", "img", "hr", "link", "input", "!DOCTYPE"};
  char stack[256][32];
  int depth = 0;
  for (const char *p = strchr(html, '<'); p; p = strchr(p + 1, '<')) {
    if (!strncmp(p, "<!--", 4)) {
      p = strstr(p, "-->");
      assert_non_null(p);
      continue;
    }
    const char *end = strchr(p, '>');
    assert_non_null(end);
    int closing = p[1] == '/';
    const char *name = p + 1 + closing;
    size_t n = strcspn(name, " \t\n/>");
    assert_true(n > 0 && n < 32);
    int isvoid = end[-1] == '/' || name[0] == '?';
    for (size_t k = 0; k < sizeof voids / sizeof voids[0]; k++) isvoid |= strlen(voids[k]) == n && !strncmp(name, voids[k], n);
    if (closing) {
      assert_true(depth > 0);
      depth--;
      if (strlen(stack[depth]) != n || strncmp(stack[depth], name, n)) fail_msg("</%.*s> closes <%s>", (int)n, name, stack[depth]);
    } else if (!isvoid) {
      assert_true(depth < 256);
      snprintf(stack[depth++], sizeof stack[0], "%.*s", (int)n, name);
    }
    p = end;
  }
  assert_int_equal(depth, 0);
  assert_null(strstr(html, "http://www.w3.org/1999/xhtml\" src")); /* no external resources */
  assert_null(strstr(html, "<script src"));
  assert_null(strstr(html, "<link "));
}

static void test_report(void **state) {
  (void)state;
  char buf[256];
  if (!cost_find_program("gnuplot", buf, sizeof buf)) skip();
  const char *d = OT_BINARY_DIR;
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           OPENTRN " run " OT_SOURCE_DIR "/examples/kernels/matmul_tiled.s --chip trn2 --mode timing --allow-missing --json > %s/cost_mm.json && "
           OPENTRN " run " OT_SOURCE_DIR "/examples/kernels/matmul_tiled.s --chip trn2 --mode timing --allow-missing --trace %s/cost_mm.trace.json && "
           "printf 'step,loss\\n0,10.5\\n1,7.25\\n2,5.0\\n3,4.1\\n' > %s/cost_loss.csv && "
           OPENTRN " cost --model gpt2 --tokens 1e9 --stats %s/cost_mm.json --json > %s/cost_cost.json",
           d, d, d, d, d);
  expect(cmd, 0, NULL);
  snprintf(cmd, sizeof cmd,
           OPENTRN " report --stats %s/cost_mm.json --trace %s/cost_mm.trace.json --loss %s/cost_loss.csv --cost %s/cost_cost.json "
           "--title 'A <test> report' -o %s/cost_report.html",
           d, d, d, d, d);
  expect(cmd, 0, "wrote");
  char *html = NULL;
  size_t n = 0;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_file_read(OT_BINARY_DIR "/cost_report.html", &html, &n, &err), OT_OK);
  assert_well_formed(html);
  int svgs = 0;
  for (const char *p = strstr(html, "<svg"); p; p = strstr(p + 1, "<svg")) svgs++;
  assert_int_equal(svgs, 5); /* utilisation, timeline, roofline, loss, cost */
  assert_non_null(strstr(html, "<title>A &lt;test&gt; report</title>"));
  assert_non_null(strstr(html, "Roofline of one NeuronCore of trn2"));
  assert_non_null(strstr(html, "simulated"));
  assert_null(strstr(html, "<?xml"));
  free(html);
  /* gnuplot missing: a clear message, exit 1. */
  snprintf(cmd, sizeof cmd, "OT_GNUPLOT=/nonexistent " OPENTRN " report --loss %s/cost_loss.csv -o %s/cost_r2.html", d, d);
  expect(cmd, 1, "gnuplot not found");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_usage_errors), cmocka_unit_test(test_rejected), cmocka_unit_test(test_table),
    cmocka_unit_test(test_json),         cmocka_unit_test(test_report),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
