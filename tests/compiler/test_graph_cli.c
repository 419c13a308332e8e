/* `opentrn check` and `opentrn graph`: exit codes (0 ok, 1 rejected, 2 usage), every problem
** listed, messages naming file:line, and the docs command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char cli[] = OT_BINARY_DIR "/opentrn";
#define DATA OT_SOURCE_DIR "/tests/compiler/graph_data/"

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

static void test_check(void **state) {
  (void)state;
  expect("check --help", 0, "usage: opentrn check");
  expect("check", 2, "no graph file given");
  expect("check a.json b.json", 2, "more than one graph file");
  expect("check " DATA "mlp.json --frob", 2, "unknown or incomplete option '--frob'");
  expect("check " DATA "mlp.json --chip trn2", 0, "mlp.json: 5 nodes, all supported on trn2");
  expect("check " DATA "mlp.json --dump", 0, "  fc = linear(ln, fc.w, fc.b) w_out_in=false -> fc [128, 3072] bf16");
  expect("check " DATA "mlp.json --chip no-such-chip", 1, "no-such-chip");
  expect("check " DATA "unsupported.json --chip trn2", 1, "unsupported.json: 3 unsupported on trn2");
  expect("check " DATA "unsupported.json", 1, "node 'attn' (attention, line 11): q [1, 4, 64, 256] bf16: head dim D = 256");
  expect("check " DATA "unsupported.json", 1, "node 'probs' (softmax, line 12): x [8, 100000] fp32: last dim 100000");
  expect("check " DATA "unsupported.json", 1, "node 'act' (silu, line 13): x [64, 64] fp16 'h': fp16 is not supported yet");
  expect("check " DATA "broken.json", 1,
         "broken.json:9: node 'fc' (linear): x [128, 768] and w [512, 3072]: x's last dim 768 must equal w's dim 0 (in)");
  expect("check /no/such/graph.json", 1, "/no/such/graph.json");
}

static void test_graph_cmd(void **state) {
  (void)state;
  expect("graph --help", 0, "usage: opentrn graph");
  expect("graph", 2, "expected a graph file or --doc");
  expect("graph --frob", 2, "unknown option '--frob'");
  expect("graph --doc", 0, "# OpenTRN graphs");
  expect("graph " DATA "mlp.json", 0, "  res = add(x, proj) -> y [128, 768] bf16 (output)");
  expect("graph " DATA "broken.json", 1, "broken.json:9:");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_check),
    cmocka_unit_test(test_graph_cmd),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
