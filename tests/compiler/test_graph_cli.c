/* `opentrn check` and `opentrn graph`: exit codes (0 ok, 1 rejected, 2 usage), every problem
** listed, messages naming file:line, and the docs command. */
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

#define DATA OT_SOURCE_DIR "/tests/compiler/graph_data/"


static void test_check(void **state) {
  (void)state;
  cli_expect("check --help", 0, "usage: opentrn check");
  cli_expect("check", 2, "no graph file given");
  cli_expect("check a.json b.json", 2, "more than one graph file");
  cli_expect("check " DATA "mlp.json --frob", 2, "unknown or incomplete option '--frob'");
  cli_expect("check " DATA "mlp.json --chip trn2", 0, "mlp.json: 5 nodes, all supported on trn2");
  cli_expect("check " DATA "mlp.json --dump", 0, "  fc = linear(ln, fc.w, fc.b) w_out_in=false -> fc [128, 3072] bf16");
  cli_expect("check " DATA "mlp.json --chip no-such-chip", 1, "no-such-chip");
  cli_expect("check " DATA "unsupported.json --chip trn2", 1, "unsupported.json: 3 unsupported on trn2");
  cli_expect("check " DATA "unsupported.json", 1, "node 'attn' (attention, line 11): q [1, 4, 64, 256] bf16: head dim D = 256");
  cli_expect("check " DATA "unsupported.json", 1, "node 'probs' (softmax, line 12): x [8, 100000] fp32: last dim 100000");
  cli_expect("check " DATA "unsupported.json", 1, "node 'act' (silu, line 13): x [64, 64] fp16 'h': fp16 is not supported yet");
  cli_expect("check " DATA "broken.json", 1,
         "broken.json:9: node 'fc' (linear): x [128, 768] and w [512, 3072]: x's last dim 768 must equal w's dim 0 (in)");
  cli_expect("check /no/such/graph.json", 1, "/no/such/graph.json");
}

static void test_graph_cmd(void **state) {
  (void)state;
  cli_expect("graph --help", 0, "usage: opentrn graph");
  cli_expect("graph", 2, "expected a graph file or --doc");
  cli_expect("graph --frob", 2, "unknown option '--frob'");
  cli_expect("graph --doc", 0, "# OpenTRN graphs");
  cli_expect("graph " DATA "mlp.json", 0, "  res = add(x, proj) -> y [128, 768] bf16 (output)");
  cli_expect("graph " DATA "broken.json", 1, "broken.json:9:");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_check),
    cmocka_unit_test(test_graph_cmd),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
