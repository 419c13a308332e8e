/* DMA data movement: dma_copy (raw bytes, casts through fp32 with RNE, paged HBM, overlap) and
** dma_transpose, against the test's own addressing model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_exec_util.h"

/* Run e->insn (a DMA) with views resolved from its own APs. */
static ot_status run_dma(xt_env *e) {
  ot_view d, s;
  ot_error_clear(&e->err);
  e->site.engine = OT_ENG_SYNC;
  ot_status st = ot_view_resolve(&d, &e->insn.o[1].ap, e->regs, e->chip, &e->site, &e->err);
  if (st == OT_OK) st = ot_view_resolve(&s, &e->insn.o[2].ap, e->regs, e->chip, &e->site, &e->err);
  return st != OT_OK ? st : ot_exec_dma(&e->x, &e->insn, &d, &s);
}

static void set_dma(xt_env *e, ot_opcode op, ot_ap dst, ot_ap src) {
  ot_insn_init(&e->insn, op);
  e->insn.o[1].ap = dst, e->insn.o[2].ap = src;
}

/* An HBM pattern of P x F elements: [P rows at a random pitch][F] with random inner layout. */
static ot_ap hbm_rows(ot_dtype t, uint64_t base, uint32_t P, uint32_t F) {
  uint64_t span;
  ot_ap a = xt_rand_ap(OT_MEM_HBM, t, 0, 0, base, F, &span);
  if (P > 1 && a.ndim < 4) { /* rows outermost */
    memmove(&a.dim[1], &a.dim[0], a.ndim * sizeof a.dim[0]);
    a.ndim++;
    a.dim[0].size = P;
    a.dim[0].stride = (int32_t)(span / ot_dtype_size(t) + xt_below(5));
  }
  return a;
}

static void run_copy_case(xt_env *e, ot_dtype st, ot_dtype dt, uint32_t P, uint32_t F, bool to_hbm) {
  uint64_t span, n = (uint64_t)P * F;
  ot_ap sb = xt_rand_ap(OT_MEM_SBUF, to_hbm ? st : dt, 0, P, 0, F, &span);
  uint64_t base = (1ull << OT_HBM_PAGE_BITS) * (1 + xt_below(4)) - xt_below(5000); /* across page boundaries */
  ot_ap hb = hbm_rows(to_hbm ? dt : st, base, P, F);
  ot_ap src = to_hbm ? sb : hb, dst = to_hbm ? hb : sb;
  uint32_t *in = malloc(n * 4), *got = malloc(n * 4);
  uint32_t mask = ot_dtype_size(st) == 4 ? 0xFFFFFFFFu : (1u << (8 * ot_dtype_size(st))) - 1;
  for (uint64_t i = 0; i < n; i++) in[i] = (uint32_t)xt_next() & mask;
  xt_put_bits(e, &src, in);
  set_dma(e, OT_OP_DMA_COPY, dst, src);
  assert_int_equal(run_dma(e), OT_OK);
  xt_get_bits(e, &dst, got);
  for (uint64_t i = 0; i < n; i++) {
    uint32_t want = st == dt ? in[i] : ot_f32_to_bits(ot_bits_to_f32(in[i], st), dt, NULL); /* RNE, always */
    if (got[i] != want) fail_msg("dma %s -> %s element %llu: %08x, want %08x", ot_dtype_name(st), ot_dtype_name(dt),
                                 (unsigned long long)i, got[i], want);
  }
  if (!to_hbm) { /* the destination now counts as written */
    ot_view v;
    assert_int_equal(ot_view_resolve(&v, &dst, NULL, e->chip, &e->site, &e->err), OT_OK);
    assert_true(ot_view_is_written(&e->x.mem, &v, NULL));
  }
  free(in), free(got);
}

static void test_dma_copy(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  e->x.cvt.round = OT_ROUND_STOCHASTIC; /* DMA casts ignore it: always RNE */
  xt_seed(51);
  static const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16, OT_DT_FP8E5M2, OT_DT_INT32, OT_DT_UINT8};
  for (int it = 0; it < 120; it++) {
    ot_dtype st = types[xt_below(6)], dt = xt_below(2) ? st : types[xt_below(6)];
    run_copy_case(e, st, dt, xt_rand_parts(), xt_rand_free(), xt_below(2));
  }
  xt_env_free(e);
}

static void test_dma_hbm_pages(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  /* broadcast one HBM row to 128 partitions (partition stride 0, like the layernorm kernel) */
  ot_ap row = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 5ull << 30, 16);
  float v[16], got[128 * 16];
  for (int i = 0; i < 16; i++) v[i] = (float)i - 3.5f;
  xt_put_f32(e, &row, v);
  ot_ap bcast = row;
  bcast.ndim = 2, bcast.dim[0] = (ot_dim){0, 128}, bcast.dim[1] = (ot_dim){1, 16};
  ot_ap sb = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 256, 16);
  set_dma(e, OT_OP_DMA_COPY, sb, bcast);
  assert_int_equal(run_dma(e), OT_OK);
  xt_get_f32(e, &sb, got);
  for (int i = 0; i < 128 * 16; i++) assert_true(got[i] == v[i % 16]);
  /* never-written HBM reads as zeros, and reading allocates nothing */
  ot_ap cold = xt_dense(OT_MEM_HBM, OT_DT_BF16, 0, 0, 40ull << 30, 64);
  ot_ap sb2 = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 1, 0, 64);
  set_dma(e, OT_OP_DMA_COPY, sb2, cold);
  assert_int_equal(run_dma(e), OT_OK);
  xt_get_f32(e, &sb2, got);
  for (int i = 0; i < 64; i++) assert_true(got[i] == 0.0f);
  uint64_t pages = 0;
  for (uint64_t i = 0; i < e->hbm.n_pages; i++) pages += e->hbm.pages[i] != NULL;
  assert_int_equal(pages, 1);
  xt_env_free(e);
}

/* Source and destination overlap: every element is read before any is written. */
static void test_dma_overlap(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 2, 0, 8), b = xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 2, 4, 8);
  uint32_t in[16], got[16];
  for (int i = 0; i < 16; i++) in[i] = (uint32_t)i;
  xt_put_bits(e, &a, in);
  set_dma(e, OT_OP_DMA_COPY, b, a); /* shift right by one element within each partition */
  assert_int_equal(run_dma(e), OT_OK);
  xt_get_bits(e, &b, got);
  assert_memory_equal(got, in, sizeof in);
  /* the same in HBM */
  ot_ap h = xt_dense(OT_MEM_HBM, OT_DT_FP16, 0, 0, 1000, 100), h2 = xt_dense(OT_MEM_HBM, OT_DT_FP16, 0, 0, 1002, 100);
  uint32_t hin[100], hgot[100];
  for (int i = 0; i < 100; i++) hin[i] = (uint32_t)(0x3C00 + i);
  xt_put_bits(e, &h, hin);
  set_dma(e, OT_OP_DMA_COPY, h, h2); /* shift left */
  uint32_t expect[100];
  for (int i = 0; i < 99; i++) expect[i] = hin[i + 1];
  expect[99] = 0;
  assert_int_equal(run_dma(e), OT_OK);
  xt_get_bits(e, &h, hgot);
  assert_memory_equal(hgot, expect, sizeof expect);
  xt_env_free(e);
}

static void test_dma_transpose(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(52);
  for (int it = 0; it < 40; it++) {
    ot_dtype t = xt_below(2) ? OT_DT_BF16 : OT_DT_FP32;
    uint32_t R = 1 + xt_below(128), C = 1 + xt_below(128);
    bool from_hbm = xt_below(2);
    ot_ap src = from_hbm ? xt_dense(OT_MEM_HBM, t, 0, 0, 7777 * ot_dtype_size(t), C) : xt_dense(OT_MEM_SBUF, t, 0, R, 0, C);
    if (from_hbm) src.ndim = 2, src.dim[1] = src.dim[0], src.dim[0] = (ot_dim){(int32_t)C + 3, R};
    ot_ap dst = xt_dense(OT_MEM_SBUF, t, 0, C, 4096, R);
    uint32_t *in = malloc(4ull * R * C), *got = malloc(4ull * R * C);
    for (uint32_t i = 0; i < R * C; i++) in[i] = (uint32_t)xt_next() & (t == OT_DT_BF16 ? 0xFFFFu : 0xFFFFFFFFu);
    xt_put_bits(e, &src, in);
    set_dma(e, OT_OP_DMA_TRANSPOSE, dst, src);
    assert_int_equal(run_dma(e), OT_OK);
    xt_get_bits(e, &dst, got);
    for (uint32_t r = 0; r < R; r++)
      for (uint32_t c = 0; c < C; c++) assert_int_equal(got[c * R + r], in[r * C + c]);
    free(in), free(got);
  }
  /* wrong shapes and types */
  set_dma(e, OT_OP_DMA_TRANSPOSE, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 0, 4), xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 64, 8));
  assert_int_equal(run_dma(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src is [2, 8], dst [4, 4]; expected dst [8, 2]", NULL));
  set_dma(e, OT_OP_DMA_TRANSPOSE, xt_dense(OT_MEM_SBUF, OT_DT_FP8E4M3, 0, 4, 0, 4), xt_dense(OT_MEM_SBUF, OT_DT_FP8E4M3, 0, 4, 64, 4));
  assert_int_equal(run_dma(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "DMA transpose needs one 2- or 4-byte type", NULL));
  xt_env_free(e);
}

static void test_dma_errors(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  /* element counts differ */
  set_dma(e, OT_OP_DMA_COPY, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 0, 4), xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 0, 15));
  assert_int_equal(run_dma(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "core 0 sync pc 0 `dma_copy", "dst holds 16 elements, src 15"));
  /* never-written SBUF source */
  set_dma(e, OT_OP_DMA_COPY, xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 0, 16), xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 512, 4));
  assert_int_equal(run_dma(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src reads SBUF bytes that were never written", "partition 0, free index 0"));
  e->x.check_uninit = false; /* a warning instead */
  e->warnings = 0;
  assert_int_equal(run_dma(e), OT_OK);
  assert_int_equal(e->warnings, 1);
  /* NaN trap: a cast that overflows to Inf is caught, naming the element */
  e->x.trap_nonfinite = true;
  ot_ap src = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 4096, 4), dst = xt_dense(OT_MEM_SBUF, OT_DT_FP16, 0, 1, 0, 4);
  float v[4] = {1, 2, 1e6f, 4};
  xt_put_f32(e, &src, v);
  set_dma(e, OT_OP_DMA_COPY, dst, src);
  assert_int_equal(run_dma(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "writes +Inf to dst element 2", NULL));
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dma_copy),
    cmocka_unit_test(test_dma_hbm_pages),
    cmocka_unit_test(test_dma_overlap),
    cmocka_unit_test(test_dma_transpose),
    cmocka_unit_test(test_dma_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
