/* Run-time errors of the value semantics: each names the site and says what was expected; and
** random unverified instructions never crash or touch memory out of bounds (run this under
** -DOT_SANITIZE=ON to make that check sharp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_exec_util.h"

static void set2(xt_env *e, ot_opcode op, ot_ap dst, ot_ap src) {
  ot_insn_init(&e->insn, op);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
}

static void test_out_of_bounds_register(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap dst = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 0, 512);
  dst.reg = 1 + 3;
  e->regs[3] = 229000;
  ot_insn_init(&e->insn, OT_OP_MEMSET);
  e->insn.o[0].ap = dst;
  e->insn.line = 9;
  e->site.pc = 4;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_int_equal(e->err.code, OT_ERUNTIME);
  assert_true(xt_msg_has(e, "core 0 vector pc 4 (line 9) `memset sb.fp32[0:128]@0+r3[1,512], 0`: dst: bytes 229000..231047",
                         "an SBUF partition holds 229376"));
  /* PSUM, through a negative register */
  ot_ap ps = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 4, 16, 4);
  ps.reg = 1 + 7;
  e->regs[7] = -32;
  set2(e, OT_OP_TENSOR_COPY, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 0, 4), ps);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src: negative address (offset 16 + r7 (-32) = -16)", NULL));
  xt_env_free(e);
}

static void test_uninitialised_read(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 1024, 8);
  float v[32] = {0};
  xt_put_f32(e, &src, v);
  uint64_t byte = 2 * e->core.sbuf.part_bytes + 1024 + 5 * 4 + 1; /* partition 2, element 5, its second byte */
  e->core.sbuf.written[byte >> 3] &= (uint8_t)~(1u << (byte & 7));
  set2(e, OT_OP_TENSOR_COPY, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 0, 8), src);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src reads SBUF bytes that were never written: element 21 (partition 2, free index 5)", NULL));
  e->x.check_uninit = false;
  e->warnings = 0;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  assert_int_equal(e->warnings, 1);
  assert_int_equal(e->err.count, 0);
  xt_env_free(e);
}

static void load_stationary(xt_env *e, uint32_t K, uint32_t M) {
  ot_ap s = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, K, 0, M);
  float *v = calloc((size_t)K * M, sizeof *v);
  xt_put_f32(e, &s, v);
  free(v);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = s;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
}

static void test_matmul_errors(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap mov = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 64, 4096, 32);
  float z[64 * 32] = {0};
  xt_put_f32(e, &mov, z);
  ot_insn mm;
  ot_insn_init(&mm, OT_OP_MATMUL);
  mm.o[0].ap = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 16, 0, 32), mm.o[1].ap = mov;
  e->insn = mm;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "core 0 tensor pc 0", "no stationary loaded: ldweights must precede matmul"));
  load_stationary(e, 32, 16);
  e->insn = mm;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "mov spans 64 partitions, the stationary loaded by ldweights is [K=32, M=16]", NULL));
  load_stationary(e, 64, 8);
  e->insn = mm;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst spans 16 partitions", "dst needs M = 8"));
  load_stationary(e, 64, 16);
  e->insn = mm;
  e->insn.o[0].ap.dim[0].size = 31;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst has 31 elements per partition, mov 32", NULL));
  e->insn = mm;
  e->insn.o[0].ap.dtype = OT_DT_BF16;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst is bf16; matmul writes fp32 PSUM (or bf16 from generation 4; this chip is 3)", NULL));
  /* accumulate into a bank no matmul wrote, then into one a memset overwrote */
  e->insn = mm;
  e->insn.o[2].i = 1;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "accumulating into an uninitialised PSUM bank: dst element 0 (partition 0, free index 0)", NULL));
  e->insn = mm;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  ot_insn_init(&e->insn, OT_OP_MEMSET);
  e->insn.o[0].ap = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 3, 1, 40, 2);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  e->insn = mm;
  e->insn.o[2].i = 1;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "uninitialised PSUM bank: dst element 106 (partition 3, free index 10)", NULL));
  /* a stationary larger than the PE array */
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 0, 129);
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src: stationary [128, 129], the PE array holds up to [128 rows, 128 columns]", NULL));
  xt_env_free(e);
}

static void test_nonfinite_trap(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  e->x.trap_nonfinite = true;
  static const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP8E4M3FN};
  for (int t = 0; t < 3; t++) {
    ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 0, 4), b = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 64, 4);
    float x[8] = {1, 1, 1, 1, 1, 1, 0, 1}, y[8] = {1, 2, 4, 8, 1, 1, 0, 0};
    xt_put_f32(e, &a, x);
    xt_put_f32(e, &b, y);
    ot_insn_init(&e->insn, OT_OP_TENSOR_TENSOR);
    e->insn.o[0].ap = xt_dense(OT_MEM_SBUF, types[t], 0, 2, 128, 4), e->insn.o[1].ap = a, e->insn.o[2].ap = b;
    e->insn.o[3].i = OT_ALU_DIV;
    assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
    assert_true(xt_msg_has(e, "writes NaN to dst element 6 (partition 1, free index 2)", NULL)); /* 0/0 comes first */
  }
  /* off: the same instruction completes */
  e->x.trap_nonfinite = false;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_OK);
  xt_env_free(e);
}

static void test_malformed_instructions(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap ok = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 4);
  float v[4] = {1, 2, 3, 4};
  xt_put_f32(e, &ok, v);
  set2(e, OT_OP_TENSOR_COPY, xt_ap(OT_MEM_NONE, 0, 0, 0, 0), ok);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: missing access pattern", NULL));
  ot_insn_init(&e->insn, OT_OP_TENSOR_TENSOR);
  e->insn.o[0].ap = e->insn.o[1].ap = e->insn.o[2].ap = ok, e->insn.o[3].i = 77;
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "op: ALU operation 77 unknown", NULL));
  set2(e, OT_OP_ACTIVATE, ok, ok);
  e->insn.o[2].i = -1;
  assert_int_equal(xt_exec(e, OT_ENG_SCALAR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "func: activation function -1 unknown", NULL));
  set2(e, OT_OP_TENSOR_COPY, ok, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 5));
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst is [1 partitions, 4 elements], src [1, 5]", NULL));
  /* control instructions have no values; DMA goes through ot_exec_dma */
  ot_insn_init(&e->insn, OT_OP_SEM_INC);
  assert_int_equal(xt_exec(e, OT_ENG_SYNC), OT_OK);
  ot_insn_init(&e->insn, OT_OP_DMA_COPY);
  assert_int_equal(xt_exec(e, OT_ENG_SYNC), OT_ERUNTIME);
  e->insn.op = 999;
  assert_int_equal(xt_exec(e, OT_ENG_SYNC), OT_ERUNTIME);
  /* a context without SRAM is an error, not a crash */
  e->x.mem.core = NULL;
  set2(e, OT_OP_TENSOR_COPY, ok, ok);
  assert_int_equal(xt_exec(e, OT_ENG_VECTOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "the simulator has no SBUF of the chip's size", NULL));
  e->x.mem.core = &e->core;
  xt_env_free(e);
}

/* ---- robustness: random unverified instructions ----------------------------------------------- */
static void rand_ap(ot_ap *a, uint8_t mems, bool optional) {
  memset(a, 0, sizeof *a);
  if (optional && xt_below(3) == 0) return;
  static const uint8_t mlist[] = {OT_MEM_SBUF, OT_MEM_PSUM, OT_MEM_HBM};
  do a->mem = mlist[xt_below(3)]; while (xt_below(4) && !(mems & OT_MEM_BIT(a->mem)));
  if (xt_below(50) == 0) a->mem = (uint8_t)xt_below(8);
  a->dtype = (uint8_t)(xt_below(30) ? xt_below(OT_DT_COUNT) : xt_below(40));
  a->ndim = (uint8_t)xt_below(xt_below(40) ? 4 : 7);
  a->reg = xt_below(4) ? 0 : (uint8_t)xt_below(70);
  a->part_start = (uint16_t)(xt_below(4) ? 0 : xt_below(140));
  a->part_count = (uint16_t)(xt_below(5) ? 1 + xt_below(128) : xt_below(300));
  a->offset = a->mem == OT_MEM_HBM ? xt_next() % (100ull << 30) : xt_below(3) ? xt_below(1 << 14) : xt_below(1 << 19);
  for (unsigned d = 0; d < 4; d++) {
    a->dim[d].size = xt_below(10) ? xt_below(40) : (uint32_t)xt_next();
    a->dim[d].stride = xt_below(10) ? xt_range(-40, 40) : (int32_t)xt_next();
  }
}

static void rand_insn(ot_insn *in, ot_opcode op) {
  ot_insn_init(in, op);
  const ot_opcode_info *info = &ot_opcodes[op];
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand_spec *s = &info->operands[k];
    ot_operand *o = &in->o[k];
    switch (s->kind) {
    case OT_OK_AP: rand_ap(&o->ap, s->mems, s->optional); break;
    case OT_OK_VAL:
      if (xt_below(2)) o->tag = OT_TAG_AP, rand_ap(&o->ap, s->mems, false);
      else o->tag = OT_TAG_IMM, o->f = xt_uniform(-50, 50);
      break;
    case OT_OK_F32: o->f = xt_below(10) ? xt_uniform(-10, 10) : NAN; break;
    case OT_OK_I32: o->i = xt_below(4) ? xt_range(-5, 5) : (int32_t)xt_next(); break;
    case OT_OK_ALU: o->i = xt_below(20) ? (int32_t)xt_below(OT_ALU_COUNT) : xt_range(-3, 60); break;
    case OT_OK_ACT: o->i = xt_below(20) ? (int32_t)xt_below(OT_ACT_COUNT) : xt_range(-3, 60); break;
    case OT_OK_PAT: for (int d = 0; d < 4; d++) o->pat[d] = xt_below(4) ? xt_range(-9, 9) : (int32_t)xt_next(); break;
    case OT_OK_FLAG: o->i = (int32_t)xt_below(3); break;
    default: o->i = (int32_t)xt_below(8); break;
    }
  }
}

static void test_random_unverified_never_crash(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(61);
  for (int i = 0; i < 256; i++) e->regs[i] = xt_below(2) ? xt_range(-64, 64) : (int32_t)xt_next();
  /* make everything readable so many instructions get past the uninitialised check */
  memset(e->core.sbuf.written, 0xFF, (e->core.sbuf.partitions * e->core.sbuf.part_bytes + 7) / 8);
  memset(e->core.psum.written, 0xFF, (e->core.psum.partitions * e->core.psum.part_bytes + 7) / 8);
  e->x.check_uninit = xt_below(2);
  unsigned ok = 0, total = 0;
  for (int it = 0; it < 12000; it++) {
    ot_opcode op = (ot_opcode)xt_below(OT_OP_COUNT);
    rand_insn(&e->insn, op);
    e->x.trap_nonfinite = xt_below(4) == 0;
    ot_status st;
    if (op == OT_OP_DMA_COPY || op == OT_OP_DMA_TRANSPOSE) {
      ot_view d, s;
      ot_error_clear(&e->err);
      st = ot_view_resolve(&d, &e->insn.o[1].ap, e->regs, e->chip, &e->site, &e->err);
      if (st == OT_OK) st = ot_view_resolve(&s, &e->insn.o[2].ap, e->regs, e->chip, &e->site, &e->err);
      if (st == OT_OK) st = ot_exec_dma(&e->x, &e->insn, &d, &s);
    } else {
      st = xt_exec(e, (ot_engine)xt_below(OT_ENG_COUNT));
    }
    assert_true(st == OT_OK || st == OT_ERUNTIME);
    assert_true(st == OT_OK ? e->err.count == 0 : e->err.count >= 1 && strstr(e->err.msg, "core 0 "));
    ok += st == OT_OK, total++;
  }
  fprintf(stderr, "%u of %u random instructions ran, the rest were refused with a message\n", ok, total);
  assert_true(ok > 500);
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_out_of_bounds_register),
    cmocka_unit_test(test_uninitialised_read),
    cmocka_unit_test(test_matmul_errors),
    cmocka_unit_test(test_nonfinite_trap),
    cmocka_unit_test(test_malformed_instructions),
    cmocka_unit_test(test_random_unverified_never_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
