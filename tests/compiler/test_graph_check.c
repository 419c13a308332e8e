/* ot_graph_check: every unsupported node is listed in one pass, each with its shapes, the
** limit with both numbers and what is supported; supported graphs pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compiler/graph_int.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static ot_chip *trn2(void) {
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  return chip;
}

static void expect_parts(const char *msg, const char *const *parts, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (!strstr(msg, parts[k])) fail_msg("check report lacks '%s':\n%s", parts[k], msg);
}

static void test_supported(void **state) {
  (void)state;
  ot_chip *chip = trn2();
  ot_graph *g = ot_graph_new();
  ot_tid x = ot_graph_input(g, "x", OT_DT_BF16, 3, SHAPE(4, 128, 768));
  ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, SHAPE(768, 3072));
  ot_tid y = ot_graph_linear(g, "fc", x, w, OT_TID_NONE, false);
  y = ot_graph_transpose(g, "t", y, 3, SHAPE(2, 0, 1));
  ot_tid bb = ot_graph_input(g, "bb", OT_DT_BF16, 3, SHAPE(4, 768, 64));
  ot_graph_matmul(g, "bmm", x, bb, false);
  ot_tid q = ot_graph_input(g, "q", OT_DT_BF16, 4, SHAPE(1, 12, 128, 128));
  ot_graph_attention(g, "attn", q, q, q, true, 0.0f);
  ot_graph_softmax(g, "sm", ot_graph_input(g, "wide", OT_DT_FP32, 2, SHAPE(2, 65536)));
  ot_graph_cross_entropy(g, "ce", ot_graph_input(g, "logits", OT_DT_FP32, 2, SHAPE(2, 128256)), /* Llama-3 vocab */
                         ot_graph_input(g, "tgt", OT_DT_INT32, 1, SHAPE(2)));
  ot_graph_output(g, y, "y");
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_check(g, chip, &err)) fail_msg("%s", err.msg);
  assert_int_equal(err.count, 0);
  ot_graph_free(g);
  ot_chip_free(chip);
}

static void test_every_problem_listed(void **state) {
  (void)state;
  ot_chip *chip = trn2();
  ot_graph *g = ot_graph_new();
  ot_tid q = ot_graph_input(g, "q", OT_DT_BF16, 4, SHAPE(1, 12, 128, 256));
  ot_graph_attention(g, "attn", q, q, q, true, 0.0f);           /* D 256 > 128 */
  ot_graph_rope(g, "rope", q, 10000.0f, 0);                      /* D 256 > 128 */
  ot_tid wide = ot_graph_input(g, "wide", OT_DT_FP32, 2, SHAPE(2, 100000));
  ot_graph_softmax(g, "sm", wide);                                /* 100000 > 65536 */
  ot_tid gw = ot_graph_weight(g, "gw", OT_DT_FP32, 1, SHAPE(100000));
  ot_graph_layernorm(g, "ln", wide, gw, gw, 1e-5f);
  ot_tid h = ot_graph_input(g, "h", OT_DT_FP16, 2, SHAPE(128, 64));
  ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, SHAPE(64, 64));
  ot_graph_matmul(g, "mm16", h, w, false);                        /* fp16 input */
  ot_tid ids = ot_graph_input(g, "ids8", OT_DT_INT8, 1, SHAPE(16));
  ot_tid big = ot_graph_weight(g, "big", OT_DT_BF16, 2, SHAPE((int64_t)1 << 31, 2));
  ot_graph_embedding(g, "emb", ids, big);                         /* int8 ids, 2^31 rows */
  ot_graph_cast(g, "c8", w, OT_DT_FP8E4M3);                       /* cast to fp8 */
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_check(g, chip, &err), OT_EUNSUPPORTED);
  assert_int_equal(err.code, OT_EUNSUPPORTED);
  const char *parts[] = {
    "node 'attn' (attention): q [1, 12, 128, 256] bf16: head dim D = 256 exceeds the 128 partitions of trn2; "
    "supported: D <= 128",
    "node 'rope' (rope): x [1, 12, 128, 256] bf16: head dim D = 256 exceeds the 128 partitions",
    "node 'sm' (softmax): x [2, 100000] fp32: last dim 100000 exceeds the vector engine's free size limit of 65536 "
    "elements on trn2 (vector.free_max_sbuf); supported: last dim <= 65536",
    "node 'ln' (layernorm): x [2, 100000] fp32: last dim 100000 exceeds",
    "node 'mm16' (matmul): a [128, 64] fp16 'h': fp16 is not supported yet; float tensors must be fp32 or bf16",
    "node 'emb' (embedding): ids [16] int8 'ids8': int8 ids are not supported; ids and targets must be int32",
    "node 'emb' (embedding): table [2147483648, 2] bf16: 2147483648 table rows; supported: fewer than 2^31",
    "node 'c8' (cast): cast to fp8e4m3 is not supported yet; supported: fp32, bf16, int32",
  };
  expect_parts(err.msg, parts, sizeof parts / sizeof parts[0]);
  assert_int_equal(err.count, 8);
  ot_graph_free(g);
  ot_chip_free(chip);
}

/* Cross-entropy walks any vocabulary in chunks (the forward and its backward); only class
** indices beyond fp32's exact integers are refused. */
static void test_cross_entropy_classes(void **state) {
  (void)state;
  ot_chip *chip = trn2();
  ot_graph *g = ot_graph_new();
  ot_tid lg = ot_graph_weight(g, "lg", OT_DT_FP32, 2, SHAPE(1, ((int64_t)1 << 24) + 1));
  ot_graph_cross_entropy(g, "ce", lg, ot_graph_input(g, "tg", OT_DT_INT32, 1, SHAPE(1)));
  ot_graph_cross_entropy(g, "ce2", ot_graph_weight(g, "lg2", OT_DT_FP32, 2, SHAPE(1, (int64_t)1 << 24)),
                         ot_graph_input(g, "tg2", OT_DT_INT32, 1, SHAPE(1))); /* 2^24 classes: fine */
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_check(g, chip, &err), OT_EUNSUPPORTED);
  const char *parts[] = {"node 'ce' (cross_entropy): logits [1, 16777217] fp32: 16777217 classes; supported: at "
                         "most 2^24 = 16777216 (class indices compared as fp32)"};
  expect_parts(err.msg, parts, 1);
  assert_int_equal(err.count, 1);
  ot_graph_free(g);
  ot_chip_free(chip);
}

static void test_check_file_lines_and_errors(void **state) {
  (void)state;
  ot_chip *chip = trn2();
  const char *text =
      "{\"format\": \"opentrn-graph\", \"version\": 1,\n"
      " \"tensors\": [{\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp16\", \"shape\": [4, 8]}],\n"
      " \"nodes\": [\n"
      "  {\"name\": \"a\", \"op\": \"gelu\", \"inputs\": [\"x\"]},\n"
      "  {\"name\": \"b\", \"op\": \"silu\", \"inputs\": [\"a\"]}\n"
      " ]}\n";
  ot_graph *g = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_parse_json(text, "f.json", &g, &err), OT_OK);
  assert_int_equal(ot_graph_check(g, chip, &err), OT_EUNSUPPORTED);
  const char *parts[] = {"node 'a' (gelu, line 4): x [4, 8] fp16 'x': fp16 is not supported yet",
                         "node 'b' (silu, line 5): x [4, 8] fp16 'a'"};
  expect_parts(err.msg, parts, 2);
  ot_graph_free(g);
  /* a graph with a builder error, and missing arguments */
  g = ot_graph_new();
  ot_graph_softmax(g, "s", 99);
  ot_error_clear(&err);
  assert_int_not_equal(ot_graph_check(g, chip, &err), OT_OK);
  assert_non_null(strstr(err.msg, "the graph has an error"));
  assert_int_equal(ot_graph_check(NULL, chip, NULL), OT_EINVAL);
  assert_int_equal(ot_graph_check(g, NULL, NULL), OT_EINVAL);
  ot_graph_free(g);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_supported),
    cmocka_unit_test(test_every_problem_listed),
    cmocka_unit_test(test_cross_entropy_classes),
    cmocka_unit_test(test_check_file_lines_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
