/* One negative case per verifier rule (and a check that no rule lacks one), clean verification
** of the example kernels on every preset, and one-pass reporting of several violations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <opentrn/chip.h>

#include "isa/program.h"
#include "isa/verify.h"

#define HEAD ".tensor x fp32 [128, 512] input\n"

typedef struct {
  ot_verify_rule rule;
  const char *chip;
  const char *text;
  int32_t patch_label; /* >= 0: set the first instruction's label operand to this after assembly */
} rule_case;

/* a 4 x 4 fp32 transpose from HBM into 4 partitions, well formed */
#define DMA_T_OK ".engine sync\n dma_transpose q0, sb.fp32[0:4]@0[1,4], $x[128,4][1,4], s0\n"
static const rule_case cases[] = {
  {OT_RULE_ENGINE, "trn2", ".engine tensor\n activate sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,4], exp\n", -1},
  {OT_RULE_OPERAND_MEM, "trn2", ".engine tensor\n matmul sb.fp32[0:128]@0[1,4], sb.bf16[0:128]@0[1,4]\n", -1},
  {OT_RULE_ENGINE_MEM, "trn2", ".engine gpsimd\n tensor_copy ps.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,4]\n", -1},
  {OT_RULE_DTYPE, "trn2", ".engine tensor\n ldweights sb.int32[0:128]@0[1,128]\n", -1},
  {OT_RULE_PARTITION_START, "trn2", ".engine vector\n memset sb.fp32[16:32]@0[1,4], 0\n", -1},
  {OT_RULE_PARTITION_RANGE, "trn2", ".engine vector\n memset sb.fp32[100:64]@0[1,4], 0\n", -1},
  {OT_RULE_PARTITION_MATCH, "trn2", ".engine vector\n tensor_copy sb.fp32[0:64]@0[1,4], sb.fp32[0:128]@0[1,4]\n", -1},
  {OT_RULE_SHAPE_MATCH, "trn2", ".engine vector\n tensor_copy sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,8]\n", -1},
  {OT_RULE_ADDRESS, "trn2", ".engine vector\n memset sb.fp32[0:128]@229372[1,4], 0\n", -1},
  {OT_RULE_ALIGN, "trn2", ".engine vector\n memset sb.fp32[0:128]@2[1,4], 0\n", -1},
  {OT_RULE_AP_LIMITS, "trn2", ".engine vector\n memset sb.bf16[0:128]@0[1,70000], 0\n", -1},
  {OT_RULE_FREE_SIZE, "trn2", ".engine vector\n tensor_copy ps.bf16[0:128]@0[1,4097], sb.bf16[0:128]@0[1,4097]\n", -1},
  {OT_RULE_REGISTER, "trn2", ".engine sync\n reg_set r250, 1\n", -1},
  {OT_RULE_SEMAPHORE, "trn2", ".engine sync\n sem_inc s250\n", -1},
  {OT_RULE_CORE, "trn2", ".engine sync\n sem_inc s1, core=8\n", -1},
  {OT_RULE_QUEUE, "trn2", ".engine sync\n dma_copy q99, sb.fp32[0:128]@0[1,4], $x[512,128][1,4], s0\n", -1},
  {OT_RULE_BRANCH_TARGET, "trn2", ".engine sync\nL: br L\n", 99},
  {OT_RULE_ALU_OP, "trn2", ".engine sync\n reg_op r1, r1, pow, 2\n", -1},
  {OT_RULE_SCALAR_OPERAND, "trn2", ".engine vector\n tensor_scalar sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,4], mul, sb.fp32[0:128]@64[1,2]\n", -1},
  {OT_RULE_TT_PSUM, "trn2", ".engine vector\n tensor_tensor sb.fp32[0:128]@0[1,4], ps.fp32[0:128]@0[1,4], ps.fp32[0:128]@64[1,4], add\n", -1},
  {OT_RULE_MATMUL_TILE, "trn2", ".engine tensor\n matmul ps.fp32[0:128]@0[1,1024], sb.bf16[0:128]@0[1,1024]\n", -1},
  {OT_RULE_PSUM_DTYPE, "trn2", ".engine tensor\n matmul ps.bf16[0:128]@0[1,512], sb.bf16[0:128]@0[1,512]\n", -1},
  {OT_RULE_PSUM_BANK, "trn2", ".engine tensor\n matmul ps.fp32[0:128]@1024[1,512], sb.bf16[0:128]@0[1,512]\n", -1},
  {OT_RULE_TRANSPOSE, "trn2", ".engine vector\n transpose32 sb.fp32[0:64]@0[1,64], sb.fp32[0:64]@0[1,64]\n", -1},
  {OT_RULE_BN_STATS, "trn2", ".engine vector\n bn_stats sb.fp32[0:128]@0[1,6], sb.fp32[0:128]@64[1,1024]\n", -1},
  {OT_RULE_REDUCE_AXES, "trn2", ".engine vector\n tensor_reduce sb.fp32[0:128]@0, sb.fp32[0:128]@64[1,4], add, axes=3\n", -1},
  {OT_RULE_DMA_SHAPE, "trn2", ".engine sync\n dma_copy q0, sb.fp32[0:128]@0[1,4], $x[512,128][1,8], s0\n", -1},
  {OT_RULE_DMA_TRANSPOSE, "trn2", ".engine sync\n dma_transpose q0, sb.fp32[0:128]@0[1,4], $x[512,128][1,4], s0\n", -1},
  /* a well-formed transpose on a chip without a DMA transpose (NC-v2) */
  {OT_RULE_DMA_TRANSPOSE, "trn1", DMA_T_OK, -1},
  {OT_RULE_DMA_INDIRECT, "trn2", ".engine sync\n dma_gather q0, sb.fp32[0:128]@0[1,8], $x[512,128][1,4], sb.int32[0:128]@64, s0\n", -1},
  {OT_RULE_DMA_INDEX, "trn2", ".engine gpsimd\n dma_scatter_add q1, $x[512,128][1,4], sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@64, s0\n", -1},
  {OT_RULE_ACT_ALPHA, "trn2", ".engine scalar\n activate sb.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,4], exp, alpha=0.5\n", -1},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static ot_program *assemble(const char *body) {
  char text[2048];
  snprintf(text, sizeof text, HEAD "%s", body);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "case", &p, &err)) fprintf(stderr, "assembly failed: %s\n", err.msg);
  assert_non_null(p);
  return p;
}

static void test_each_rule_rejects(void **state) {
  (void)state;
  for (size_t i = 0; i < N_CASES; i++) {
    const rule_case *c = &cases[i];
    ot_program *p = assemble(c->text);
    if (c->patch_label >= 0) p->streams[0].insns[0].o[0].i = c->patch_label;
    ot_chip *chip;
    assert_int_equal(ot_chip_preset(c->chip, &chip, NULL), OT_OK);
    ot_error err;
    ot_error_clear(&err);
    assert_int_equal(ot_program_verify(p, chip, &err), OT_EVERIFY);
    char tag[64];
    snprintf(tag, sizeof tag, "[%s]", ot_verify_rule_name(c->rule));
    if (!strstr(err.msg, tag)) fprintf(stderr, "case %zu expected %s, got:\n%s\n", i, tag, err.msg);
    assert_non_null(strstr(err.msg, tag));
    /* The message names the engine, the program counter and the instruction text. */
    assert_non_null(strchr(err.msg, '['));
    assert_non_null(strchr(err.msg, '`'));
    ot_chip_free(chip);
    ot_program_free(p);
  }
}

/* The well-formed transpose of the trn1 case above verifies clean on trn2: only the chip's missing
** DMA transpose rejects it there, and the message names the field. */
static void test_dma_transpose_needs_the_chip(void **state) {
  (void)state;
  ot_program *p = assemble(DMA_T_OK);
  ot_chip *trn1, *trn2;
  assert_int_equal(ot_chip_preset("trn1", &trn1, NULL), OT_OK);
  assert_int_equal(ot_chip_preset("trn2", &trn2, NULL), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_verify(p, trn2, &err), OT_OK);
  assert_int_equal(ot_program_verify(p, trn1, &err), OT_EVERIFY);
  assert_non_null(strstr(err.msg, "dma.transpose is false"));
  ot_chip_free(trn1);
  ot_chip_free(trn2);
  ot_program_free(p);
}

static void test_every_rule_has_a_case(void **state) {
  (void)state;
  for (int r = 0; r < OT_RULE_COUNT; r++) {
    bool found = false;
    for (size_t i = 0; i < N_CASES; i++) found |= cases[i].rule == (ot_verify_rule)r;
    if (!found) fprintf(stderr, "rule %s has no negative test\n", ot_verify_rule_name((ot_verify_rule)r));
    assert_true(found);
  }
}

static void test_examples_verify_clean(void **state) {
  (void)state;
  const char *kernels[] = {"matmul_tiled", "softmax", "layernorm", "gelu", "causal_mask", "embedding"};
  const char *const *chips = ot_chip_preset_names();
  for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/kernels/%s.s", OT_SOURCE_DIR, kernels[k]);
    ot_program *p = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_asm_file(path, &p, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(p);
    for (size_t c = 0; chips[c]; c++) {
      ot_chip *chip;
      assert_int_equal(ot_chip_preset(chips[c], &chip, NULL), OT_OK);
      ot_error_clear(&err);
      if (ot_program_verify(p, chip, &err)) fprintf(stderr, "%s on %s:\n%s\n", kernels[k], chips[c], err.msg);
      assert_int_equal(err.count, 0);
      ot_chip_free(chip);
    }
    ot_program_free(p);
  }
}

static void test_all_violations_in_one_pass(void **state) {
  (void)state;
  ot_program *p = assemble(".engine vector\n memset sb.fp32[0:128]@2[1,4], 0\n"
                           " tensor_copy sb.fp32[0:64]@0[1,4], sb.fp32[0:128]@0[1,4]\n"
                           ".engine sync\n sem_inc s250\n");
  ot_chip *chip;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_verify(p, chip, &err), OT_EVERIFY);
  assert_int_equal(err.count, 3);
  assert_non_null(strstr(err.msg, "vector[0]"));
  assert_non_null(strstr(err.msg, "vector[1]"));
  assert_non_null(strstr(err.msg, "sync[0]"));
  ot_chip_free(chip);
  ot_program_free(p);
}

/* The same program is legal on one chip and not on another: limits come from the chip. */
static void test_limits_come_from_the_chip(void **state) {
  (void)state;
  /* 200 KiB into a partition: inside trn2's 224 KiB, outside trn1's 192 KiB. */
  ot_program *p = assemble(".engine vector\n memset sb.fp32[0:128]@204800[1,4], 0\n");
  ot_chip *trn1, *trn2;
  assert_int_equal(ot_chip_preset("trn1", &trn1, NULL), OT_OK);
  assert_int_equal(ot_chip_preset("trn2", &trn2, NULL), OT_OK);
  assert_int_equal(ot_program_verify(p, trn2, NULL), OT_OK);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_verify(p, trn1, &err), OT_EVERIFY);
  assert_non_null(strstr(err.msg, "[ADDRESS]"));
  ot_chip_free(trn1);
  ot_chip_free(trn2);
  ot_program_free(p);
}

/* dma_gather / dma_scatter_add: the legal forms verify clean; each broken shape names its rule. */
static void test_indirect_dma_rules(void **state) {
  (void)state;
  static const struct { const char *text; const char *tag; } v[] = {
    {".engine sync\n dma_gather q0, sb.bf16[0:128]@0[1,4], $x[512,128][1,4], sb.int32[0:128]@64, s0\n", NULL},
    {".engine gpsimd\n dma_gather q1, sb.fp32[0:64]@0[1,12], $x[512,128][1,4], sb.int32[0:64]@64[1,3], s0\n", NULL},
    {".engine scalar\n dma_scatter_add q2, $x[512,128][1,4], sb.bf16[0:128]@0[1,4], sb.int32[0:128]@64, s0\n", NULL},
    {".engine sync\n dma_gather q0, sb.fp32[0:128]@0[1,4], $x[512,128][1,4], sb.int32[0:64]@64, s0\n", "[DMA_INDEX]"},
    {".engine sync\n dma_gather q0, sb.fp32[0:128]@0[1,4], $x[512,128][1,4], sb.int32[0:128]@64[1,0], s0\n", "[DMA_INDEX]"},
    {".engine sync\n dma_gather q0, sb.fp32[0:128]@0[1,4], $x[2048,32][512,4][1,4], sb.int32[0:128]@64, s0\n", "[DMA_INDIRECT]"},
    {".engine sync\n dma_scatter_add q0, $x.int32[512,128][1,4], sb.fp32[0:128]@0[1,4], sb.int32[0:128]@64, s0\n", "[DMA_INDIRECT]"},
    {".engine sync\n dma_gather q0, $x[512,128][1,4], $x[512,128][1,4], sb.int32[0:128]@64, s0\n", "[OPERAND_MEM]"},
    {".engine sync\n dma_scatter_add q0, $x[512,128][1,4], sb.fp32[0:128]@0[1,4], $x.int32, s0\n", "[OPERAND_MEM]"},
    {".engine sync\n dma_gather q0, sb.fp32[0:128]@0[1,4], hbm.fp32@1000000000000[512,128][1,4], sb.int32[0:128]@64, s0\n", "[ADDRESS]"},
  };
  ot_chip *chip;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    ot_program *p = assemble(v[i].text);
    ot_error err;
    ot_error_clear(&err);
    ot_status st = ot_program_verify(p, chip, &err);
    if (v[i].tag ? st != OT_EVERIFY || !strstr(err.msg, v[i].tag) : st != OT_OK)
      fail_msg("case %zu `%s`: expected %s, got:\n%s", i, v[i].text, v[i].tag ? v[i].tag : "clean", err.msg);
    ot_program_free(p);
  }
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_each_rule_rejects),
    cmocka_unit_test(test_every_rule_has_a_case),
    cmocka_unit_test(test_dma_transpose_needs_the_chip),
    cmocka_unit_test(test_examples_verify_clean),
    cmocka_unit_test(test_all_violations_in_one_pass),
    cmocka_unit_test(test_limits_come_from_the_chip),
    cmocka_unit_test(test_indirect_dma_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
