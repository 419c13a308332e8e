/* Indirect DMA: dma_gather and dma_scatter_add.
**   - values against plain C references over random tables, layouts, types (bit-exact same-type
**     gathers, bf16 <-> fp32 casts), index patterns with duplicates (accumulated in index order);
**   - run-time errors: out-of-range and negative indices (naming engine, pc, instruction, value,
**     position and row count; nothing written), never-written indices and sources, unverified
**     shapes, the NaN/Inf trap, a missing idx view; random unverified operands never crash;
**   - through the event loop: an embedding forward (gather) and backward (scatter-add), the
**     transfer times against the per-row cost formula, timing-only runs (no index values), and the
**     race checker treating the whole table as touched, shape errors at issue; the example kernel
**     examples/kernels/embedding.s against the same references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim/sim_dma.h"
#include "test_exec_util.h"
#include "sim_test_util.h"

/* ---- the value semantics, without the event loop ------------------------------------------ */
static ot_status run_ind(xt_env *e) {
  ot_view d, s, ix;
  ot_error_clear(&e->err);
  e->site.engine = OT_ENG_SYNC;
  ot_status st = ot_view_resolve(&d, &e->insn.o[1].ap, e->regs, e->chip, &e->site, &e->err);
  if (st == OT_OK) st = ot_view_resolve(&s, &e->insn.o[2].ap, e->regs, e->chip, &e->site, &e->err);
  if (st == OT_OK) st = ot_view_resolve(&ix, &e->insn.o[3].ap, e->regs, e->chip, &e->site, &e->err);
  return st != OT_OK ? st : ot_exec_dma_views(&e->x, &e->insn, &d, &s, &ix);
}

static void set_ind(xt_env *e, ot_opcode op, ot_ap dst, ot_ap src, ot_ap idx) {
  ot_insn_init(&e->insn, op);
  e->insn.o[1].ap = dst, e->insn.o[2].ap = src, e->insn.o[3].ap = idx;
}

/* A table [R rows, C cols] at base: row pitch >= C (gaps), inner stride 1 or 2. */
static ot_ap table_ap(ot_dtype t, uint64_t base, uint32_t R, uint32_t C, uint32_t inner) {
  ot_ap a = xt_ap(OT_MEM_HBM, t, 0, 0, base);
  a.ndim = 2;
  a.dim[0] = (ot_dim){(int32_t)(C * inner + xt_below(7)), R};
  a.dim[1] = (ot_dim){(int32_t)inner, C};
  return a;
}

/* An int32 [P, K] index pattern at byte 'off' of each partition, filled with idx. */
static ot_ap put_indices(xt_env *e, uint32_t P, uint32_t K, uint64_t off, const int32_t *idx) {
  ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, P, off, K);
  if (K == 1 && xt_below(2)) a.ndim = 0; /* one element per partition, no free dims */
  xt_put_bits(e, &a, (const uint32_t *)idx);
  return a;
}

static uint32_t rand_bits(ot_dtype t) {
  if (t == OT_DT_FP32) return ot_f32_to_bits(xt_uniform(-100, 100), t, NULL);
  if (ot_dtype_size(t) == 4) return (uint32_t)xt_next();
  return (uint32_t)xt_next() & ((1u << (8 * ot_dtype_size(t))) - 1);
}

static void test_gather_values(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  e->x.cvt.round = OT_ROUND_STOCHASTIC; /* DMA casts ignore it: always RNE */
  xt_seed(71);
  static const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16, OT_DT_INT32, OT_DT_FP8E4M3};
  for (int it = 0; it < 80; it++) {
    ot_dtype st = types[xt_below(5)], dt = xt_below(2) ? st : types[xt_below(3)];
    if (it % 5 == 0) st = OT_DT_BF16, dt = OT_DT_FP32; /* the embedding case */
    uint32_t R = 1 + xt_below(300), C = 1 + xt_below(70), P = xt_rand_parts(), K = 1 + (xt_below(3) ? 0 : xt_below(4));
    uint64_t base = (1ull << OT_HBM_PAGE_BITS) * (1 + xt_below(3)) - xt_below(3000) * 4; /* rows across pages */
    ot_ap tab = table_ap(st, base, R, C, 1 + (xt_below(4) == 0));
    uint32_t *tin = malloc(4ull * R * C), *got = malloc(4ull * P * K * C);
    for (uint64_t i = 0; i < (uint64_t)R * C; i++) tin[i] = rand_bits(st);
    xt_put_bits(e, &tab, tin);
    int32_t *idx = malloc(4ull * P * K);
    for (uint32_t i = 0; i < P * K; i++) idx[i] = i && xt_below(4) == 0 ? idx[xt_below(i)] : (int32_t)xt_below(R);
    ot_ap ix = put_indices(e, P, K, 0, idx);
    uint64_t span;
    ot_ap dst = xt_rand_ap(OT_MEM_SBUF, dt, 0, P, 4096, K * C, &span);
    set_ind(e, OT_OP_DMA_GATHER, dst, tab, ix);
    assert_int_equal(run_ind(e), OT_OK);
    xt_get_bits(e, &dst, got);
    for (uint32_t i = 0; i < P * K; i++)
      for (uint32_t c = 0; c < C; c++) {
        uint32_t s = tin[(uint64_t)idx[i] * C + c];
        uint32_t want = st == dt ? s : ot_f32_to_bits(ot_bits_to_f32(s, st), dt, NULL);
        if (got[(uint64_t)i * C + c] != want)
          fail_msg("gather %s -> %s, row %u (index %d) col %u: %08x, want %08x", ot_dtype_name(st), ot_dtype_name(dt), i,
                   idx[i], c, got[(uint64_t)i * C + c], want);
      }
    ot_view v;
    assert_int_equal(ot_view_resolve(&v, &dst, NULL, e->chip, &e->site, &e->err), OT_OK);
    assert_true(ot_view_is_written(&e->x.mem, &v, NULL));
    free(tin), free(got), free(idx);
  }
  xt_env_free(e);
}

static void test_scatter_add_values(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(72);
  static const ot_dtype ttypes[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP16};
  static const ot_dtype stypes[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_INT32};
  for (int it = 0; it < 80; it++) {
    ot_dtype tt = ttypes[xt_below(3)], st = stypes[xt_below(3)];
    uint32_t R = 1 + xt_below(xt_below(2) ? 4 : 300), C = 1 + xt_below(70), P = xt_rand_parts(), K = 1 + xt_below(3);
    uint64_t base = 3 * (1ull << OT_HBM_PAGE_BITS) - xt_below(3000) * 4;
    ot_ap tab = table_ap(tt, base, R, C, 1 + (xt_below(4) == 0));
    uint64_t n = (uint64_t)R * C, m = (uint64_t)P * K * C;
    float *ref = malloc(4 * n), *src = malloc(4 * m);
    uint32_t *tb = malloc(4 * n), *sb = malloc(4 * m), *got = malloc(4 * n);
    for (uint64_t i = 0; i < n; i++) tb[i] = ot_f32_to_bits(xt_uniform(-4, 4), tt, NULL), ref[i] = ot_bits_to_f32(tb[i], tt);
    for (uint64_t i = 0; i < m; i++) {
      sb[i] = st == OT_DT_INT32 ? (uint32_t)xt_range(-9, 9) : ot_f32_to_bits(xt_uniform(-2, 2), st, NULL);
      src[i] = ot_bits_to_f32(sb[i], st);
    }
    xt_put_bits(e, &tab, tb);
    int32_t *idx = malloc(4ull * P * K);
    for (uint32_t i = 0; i < P * K; i++) idx[i] = (int32_t)xt_below(R); /* R small: many duplicates */
    ot_ap ix = put_indices(e, P, K, 8192, idx);
    uint64_t span;
    ot_ap sap = xt_rand_ap(OT_MEM_SBUF, st, 0, P, 0, K * C, &span);
    xt_put_bits(e, &sap, sb);
    set_ind(e, OT_OP_DMA_SCATTER_ADD, tab, sap, ix);
    assert_int_equal(run_ind(e), OT_OK);
    /* reference: row updates in index order, fp32 add, rounded to the table's type each time */
    for (uint32_t i = 0; i < P * K; i++)
      for (uint32_t c = 0; c < C; c++) {
        float *t = &ref[(uint64_t)idx[i] * C + c];
        *t = ot_bits_to_f32(ot_f32_to_bits(*t + src[(uint64_t)i * C + c], tt, NULL), tt);
      }
    xt_get_bits(e, &tab, got);
    for (uint64_t i = 0; i < n; i++)
      if (got[i] != ot_f32_to_bits(ref[i], tt, NULL))
        fail_msg("scatter_add %s += %s element %llu: %08x, want %08x", ot_dtype_name(tt), ot_dtype_name(st),
                 (unsigned long long)i, got[i], ot_f32_to_bits(ref[i], tt, NULL));
    free(ref), free(src), free(tb), free(sb), free(got), free(idx);
  }
  xt_env_free(e);
}

static void test_indirect_errors(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap tab = xt_ap(OT_MEM_HBM, OT_DT_FP32, 0, 0, 1 << 20);
  tab.ndim = 2, tab.dim[0] = (ot_dim){8, 1000}, tab.dim[1] = (ot_dim){1, 8};
  int32_t idx[4] = {0, 999, 1000, 3};
  ot_ap ix = put_indices(e, 4, 1, 0, idx);
  ot_ap dst = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 64, 8);
  /* out of range: the message names the site, the value, its position and the row count */
  set_ind(e, OT_OP_DMA_GATHER, dst, tab, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "core 0 sync pc 0 `dma_gather q0, ",
                         "idx[2] (partition 2, element 0) = 1000 is outside the table's 1000 rows (0..999)"));
  ot_view v;
  assert_int_equal(ot_view_resolve(&v, &dst, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_false(ot_view_is_written(&e->x.mem, &v, NULL)); /* nothing was written */
  idx[2] = -7;
  ix = put_indices(e, 4, 1, 0, idx);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "idx[2] (partition 2, element 0) = -7 is outside the table's 1000 rows", NULL));
  /* scatter-add: out of range writes nothing, not even the rows before the bad index */
  float ones[32];
  for (int i = 0; i < 32; i++) ones[i] = 1;
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 64, 8);
  xt_put_f32(e, &src, ones);
  set_ind(e, OT_OP_DMA_SCATTER_ADD, tab, src, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "`dma_scatter_add q0, ", "= -7 is outside the table's 1000 rows (0..999)"));
  uint32_t row0[8];
  ot_ap r0 = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 1 << 20, 8);
  xt_get_bits(e, &r0, row0);
  for (int i = 0; i < 8; i++) assert_int_equal(row0[i], 0);
  /* never-written indices; never-written scatter source */
  set_ind(e, OT_OP_DMA_GATHER, dst, tab, xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 4, 4096, 1));
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "idx reads SBUF bytes that were never written", NULL));
  idx[2] = 2;
  ix = put_indices(e, 4, 1, 0, idx);
  set_ind(e, OT_OP_DMA_SCATTER_ADD, tab, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 8192, 8), ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src reads SBUF bytes that were never written", NULL));
  /* unverified shapes */
  ot_ap fix = ix;
  fix.dtype = OT_DT_FP32;
  set_ind(e, OT_OP_DMA_GATHER, dst, tab, fix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "idx is fp32; indices are int32", NULL));
  set_ind(e, OT_OP_DMA_GATHER, xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 4, 64, 9), tab, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst holds 9 elements per partition; 1 indices per partition x 8 columns expected", NULL));
  set_ind(e, OT_OP_DMA_GATHER, dst, xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 0, 8), ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "src: the table must be a non-empty 2-D HBM pattern", NULL));
  set_ind(e, OT_OP_DMA_GATHER, dst, tab, xt_dense(OT_MEM_SBUF, OT_DT_INT32, 0, 2, 0, 1));
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "idx is [2 partitions, 1 indices], dst spans 4 partitions", NULL));
  ot_ap itab = tab;
  itab.dtype = OT_DT_INT32;
  set_ind(e, OT_OP_DMA_SCATTER_ADD, itab, src, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst is int32; dma_scatter_add accumulates into a float table", NULL));
  set_ind(e, OT_OP_DMA_SCATTER_ADD, src, tab, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst (the table) must be in HBM, src and idx in SBUF", NULL));
  /* no idx view through the two-view entry point */
  set_ind(e, OT_OP_DMA_GATHER, dst, tab, ix);
  ot_view dv, sv;
  assert_int_equal(ot_view_resolve(&dv, &dst, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_int_equal(ot_view_resolve(&sv, &tab, NULL, e->chip, &e->site, &e->err), OT_OK);
  ot_error_clear(&e->err);
  assert_int_equal(ot_exec_dma(&e->x, &e->insn, &dv, &sv), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "idx: missing access pattern", NULL));
  /* the NaN/Inf trap on a scatter-add result */
  e->x.trap_nonfinite = true;
  float big[32];
  for (int i = 0; i < 32; i++) big[i] = 3e38f;
  xt_put_f32(e, &src, big);
  int32_t same[4] = {5, 5, 5, 5};
  ix = put_indices(e, 4, 1, 0, same);
  set_ind(e, OT_OP_DMA_SCATTER_ADD, tab, src, ix);
  assert_int_equal(run_ind(e), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "writes +Inf to dst row 5, column 0 (update 1)", NULL));
  xt_env_free(e);
}

/* Random unverified operands: a result or a message naming the site, never a crash. */
static void test_random_unverified(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(73);
  memset(e->core.sbuf.written, 0xFF, (e->core.sbuf.partitions * e->core.sbuf.part_bytes + 7) / 8);
  for (uint32_t p = 0; p < 128; p++) /* small indices at byte 0 of every partition */
    for (int k = 0; k < 16; k++) {
      int32_t v = xt_below(500) ? xt_range(0, 40) : xt_range(-2, -1); /* a few bad ones */
      memcpy(e->core.sbuf.data + p * e->core.sbuf.part_bytes + 4 * k, &v, 4);
    }
  unsigned ok = 0;
  for (int it = 0; it < 3000; it++) {
    bool gather = xt_below(2);
    bool sane = xt_below(3) == 0; /* mostly legal operands, so many reach the data movement */
    uint32_t P = 1 + xt_below(sane || xt_below(4) ? 128 : 200), K = sane ? 1 + xt_below(3) : xt_below(4);
    uint32_t C = sane ? 1 + xt_below(12) : xt_below(12), R = sane ? 41 + xt_below(20) : xt_below(50);
    ot_dtype tt = sane ? (xt_below(2) ? OT_DT_FP32 : OT_DT_BF16) : (ot_dtype)xt_below(OT_DT_COUNT);
    ot_ap tab = xt_ap(OT_MEM_HBM, tt, 0, 0, xt_below(5) ? 4 * xt_below(1 << 20) : xt_next() % (200ull << 30));
    tab.ndim = (uint8_t)(sane || xt_below(8) ? 2 : xt_below(5));
    tab.dim[0] = (ot_dim){sane ? (int32_t)(C + xt_below(3)) : xt_range(-20, 20), R};
    tab.dim[1] = (ot_dim){sane ? 1 : xt_range(-2, 3), C};
    ot_ap sb = xt_dense(sane || xt_below(10) ? OT_MEM_SBUF : OT_MEM_PSUM, (ot_dtype)xt_below(OT_DT_COUNT), 0, P,
                        256 + 4 * xt_below(64), K * C + (!sane && xt_below(8) == 0));
    ot_ap ix = xt_dense(OT_MEM_SBUF, sane || xt_below(8) ? OT_DT_INT32 : OT_DT_FP32, 0, sane || xt_below(8) ? P : 1 + xt_below(128), 0, K);
    e->x.trap_nonfinite = xt_below(4) == 0;
    set_ind(e, gather ? OT_OP_DMA_GATHER : OT_OP_DMA_SCATTER_ADD, gather ? sb : tab, gather ? tab : sb, ix);
    ot_status st = run_ind(e);
    assert_true(st == OT_OK || st == OT_ERUNTIME);
    assert_true(st == OT_OK ? e->err.count == 0 : e->err.count >= 1 && strstr(e->err.msg, "core 0 ") != NULL);
    ok += st == OT_OK;
  }
  fprintf(stderr, "%u of 3000 random indirect DMAs ran, the rest were refused with a message\n", ok);
  assert_true(ok > 100);
  xt_env_free(e);
}

/* ---- through the event loop ---------------------------------------------------------------- */
#define V 1000
#define D 64
static const char *const embedding =
  ".tensor emb fp32 [1000, 64] input\n"
  ".tensor ids int32 [128, 1] input\n"
  ".tensor out fp32 [128, 64] output\n"
  ".tensor gemb fp32 [1000, 64] output\n"
  ".engine sync\n"
  " dma_copy q0, sb.int32[0:128]@0, $ids, s0\n"
  " sem_wait s0, 1\n"
  " dma_gather q1, sb.fp32[0:128]@64[1,64], $emb, sb.int32[0:128]@0, s1\n"
  " sem_wait s1, 1\n"
  " dma_copy q0, $out, sb.fp32[0:128]@64[1,64], s0\n"
  " dma_scatter_add q2, $gemb, sb.fp32[0:128]@64[1,64], sb.int32[0:128]@0, s2\n"
  " sem_wait s0, 2\n"
  " sem_wait s2, 1\n";

static const ot_tensor_info *tensor(const ot_program *p, const char *name) {
  for (uint32_t t = 0; t < p->n_tensors; t++)
    if (!strcmp(p->tensors[t].name, name)) return &p->tensors[t];
  return NULL;
}

/* Run the embedding program with ids; fills out and gemb (when not NULL); returns the simulator. */
static ot_sim *run_embedding(const ot_chip *chip, const ot_program *p, ot_sim_mode mode, bool race, const int32_t *ids,
                             const float *emb, ot_error *err) {
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.mode = mode, o.trace = true, o.race_check = race;
  ot_sim *s = NULL;
  assert_int_equal(ot_sim_new(chip, p, &o, &s, err), OT_OK);
  float *zero = calloc(V * D, sizeof *zero);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "emb")->offset, emb, 4 * V * D, err), OT_OK);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "ids")->offset, ids, 4 * 128, err), OT_OK);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "gemb")->offset, zero, 4 * V * D, err), OT_OK);
  free(zero);
  if (ot_sim_run(s, err)) { ot_sim_free(s); return NULL; }
  return s;
}

static const ot_trace_event *queue_event(const ot_sim *s, uint32_t q) {
  const ot_trace *t = ot_sim_get_trace(s);
  for (size_t i = 0; i < t->n; i++)
    if (t->ev[i].track_kind == OT_TRACK_QUEUE && t->ev[i].track == q) return &t->ev[i];
  return NULL;
}

static void test_embedding_end_to_end(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(embedding);
  assert_non_null(p);
  assert_int_equal(ot_program_verify(p, chip, NULL), OT_OK);
  xt_seed(74);
  float *emb = malloc(4 * V * D), *out = malloc(4 * 128 * D), *g = malloc(4 * V * D), *ref = calloc(V * D, 4);
  int32_t ids[128];
  for (int i = 0; i < V * D; i++) emb[i] = xt_uniform(-1, 1);
  for (int i = 0; i < 128; i++) ids[i] = i >= 32 && xt_below(2) ? ids[xt_below((uint32_t)i)] : (int32_t)xt_below(V);
  ids[127] = V - 1, ids[126] = 0;
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = run_embedding(chip, p, OT_SIM_FULL, true, ids, emb, &err);
  if (!s) fail_msg("%s", err.msg);
  assert_int_equal(err.count, 0); /* no race, no warning */
  assert_int_equal(ot_sim_hbm_read(s, tensor(p, "out")->offset, out, 4 * 128 * D, &err), OT_OK);
  assert_int_equal(ot_sim_hbm_read(s, tensor(p, "gemb")->offset, g, 4 * V * D, &err), OT_OK);
  for (int i = 0; i < 128; i++)
    for (int c = 0; c < D; c++) {
      assert_true(out[i * D + c] == emb[ids[i] * D + c]);
      ref[ids[i] * D + c] = ref[ids[i] * D + c] + out[i * D + c];
    }
  assert_memory_equal(g, ref, 4 * V * D);
  /* time: each 256-byte row is one descriptor paying the small-transfer overhead */
  double bw = chip->dma.engines * chip->dma.engine_gbps; /* bytes/ns */
  double row = D * 4, over = row < chip->dma.small_bytes ? chip->dma.min_efficient_bytes * (1 - row / chip->dma.small_bytes) : 0;
  double gather_ps = 128 * (row + over) / bw * 1000.0;
  const ot_trace_event *ge = queue_event(s, 1), *se = queue_event(s, 2), *ce = queue_event(s, 0);
  assert_non_null(ge), assert_non_null(se), assert_non_null(ce);
  if (fabs((double)ge->dur - gather_ps) > 2) fail_msg("gather took %llu ps, expected %.1f", (unsigned long long)ge->dur, gather_ps);
  /* the scatter-add reads and writes each row; it shares the engines with the copy on q0 for a while,
  ** so it takes at least twice the gather's time */
  assert_true((double)se->dur >= 2 * gather_ps - 2);
  ot_ps total = ot_sim_get_stats(s)->total;
  ot_sim_free(s);
  /* timing-only: no index values, the same time */
  for (int i = 0; i < 128; i++) ids[i] = 1 << 30; /* would be out of range with values */
  s = run_embedding(chip, p, OT_SIM_TIMING, false, ids, emb, &err);
  if (!s) fail_msg("%s", err.msg);
  assert_int_equal(ot_sim_get_stats(s)->total, total);
  ot_sim_free(s);
  /* full mode: the out-of-range index is an error naming the site */
  ot_error_clear(&err);
  assert_null(run_embedding(chip, p, OT_SIM_FULL, false, ids, emb, &err));
  if (!strstr(err.msg, "core 0 sync pc 2 (line 8) `dma_gather q1, ") ||
      !strstr(err.msg, "idx[0] (partition 0, element 0) = 1073741824 is outside the table's 1000 rows (0..999)"))
    fail_msg("%s", err.msg);
  free(emb), free(out), free(g), free(ref);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* Gather and scatter-add alone on a queue, time against the per-row formula, incl. a big-row case. */
static void test_indirect_time(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  static const struct { const char *text; double rows, row_bytes, factor; } cases[] = {
    {".tensor t bf16 [500, 4096] input\n.engine sync\n dma_copy q0, sb.int32[0:128]@0[1,2], $t[2048,128][1,2], s0\n"
     " sem_wait s0, 1\n dma_gather q3, sb.fp32[0:128]@64[1,8192], $t, sb.int32[0:128]@0[1,2], s1\n sem_wait s1, 1\n",
     256, 4096 * 4, 1},
    {".tensor t fp32 [500, 16] input\n.engine sync\n dma_copy q0, sb.int32[0:64]@0, $t[16,64][1,1], s0\n"
     " dma_copy q0, sb.fp32[0:64]@64[1,16], $t[16,64][1,16], s0\n sem_wait s0, 2\n"
     " dma_scatter_add q3, $t, sb.fp32[0:64]@64[1,16], sb.int32[0:64]@0, s1\n sem_wait s1, 1\n",
     64, 16 * 4, 2},
  };
  double bw = chip->dma.engines * chip->dma.engine_gbps;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ot_program *p = st_asm(cases[i].text);
    assert_non_null(p);
    assert_int_equal(ot_program_verify(p, chip, NULL), OT_OK);
    ot_sim_options o;
    ot_sim_options_default(&o);
    o.trace = true, o.mode = OT_SIM_TIMING;
    ot_error err;
    ot_error_clear(&err);
    ot_sim *s = st_run(chip, p, &o, &err);
    if (!s) fail_msg("%s", err.msg);
    /* bf16 -> fp32: the run is the finer side's (2-byte) row, the moved bytes the wider type's */
    double run = i == 0 ? 4096 * 2 : cases[i].row_bytes, rb = cases[i].row_bytes;
    double over = run < chip->dma.small_bytes ? chip->dma.min_efficient_bytes * (1 - run / chip->dma.small_bytes) : 0;
    double expect = cases[i].factor * cases[i].rows * (rb + ceil(rb / run) * over) / bw * 1000.0;
    const ot_trace_event *ev = queue_event(s, 3);
    assert_non_null(ev);
    if (fabs((double)ev->dur - expect) > 2) fail_msg("case %zu: %llu ps, expected %.1f", i, (unsigned long long)ev->dur, expect);
    assert_int_equal(ot_sim_get_stats(s)->queue[3].bytes, (uint64_t)(cases[i].rows * rb));
    ot_sim_free(s);
    ot_program_free(p);
  }
  ot_chip_free(chip);
}

/* The race checker sees the whole table: a gather and an unordered write to any row race. */
static void test_indirect_races(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  static const struct { const char *text; bool race; } cases[] = {
    /* another queue writes row 999 of the table while the gather may read it */
    {".tensor t fp32 [1000, 8] input\n.engine sync\n dma_copy q0, sb.int32[0:4]@0, $t[8,4][1,1], s0\n"
     " sem_wait s0, 1\n dma_gather q1, sb.fp32[0:4]@64[1,8], $t, sb.int32[0:4]@0, s1\n"
     " dma_copy q2, $t@31968[8,1][1,8], sb.fp32[0:1]@256[1,8], s2\n sem_wait s1, 1\n sem_wait s2, 1\n", true},
    /* the same, ordered */
    {".tensor t fp32 [1000, 8] input\n.engine sync\n dma_copy q0, sb.int32[0:4]@0, $t[8,4][1,1], s0\n"
     " sem_wait s0, 1\n dma_gather q1, sb.fp32[0:4]@64[1,8], $t, sb.int32[0:4]@0, s1\n sem_wait s1, 1\n"
     " dma_copy q2, $t@31968[8,1][1,8], sb.fp32[0:1]@256[1,8], s2\n sem_wait s2, 1\n", false},
    /* an engine overwrites the indices while the scatter-add may read them */
    {".tensor t fp32 [1000, 8] input\n.engine sync\n dma_copy q0, sb.int32[0:4]@0, $t[8,4][1,1], s0\n"
     " dma_copy q0, sb.fp32[0:4]@64[1,8], $t[8,4][1,8], s0\n sem_wait s0, 2\n sem_inc s3\n"
     " dma_scatter_add q1, $t, sb.fp32[0:4]@64[1,8], sb.int32[0:4]@0, s1\n sem_wait s1, 1\n"
     ".engine gpsimd\n sem_wait s3, 1\n iota sb.int32[0:4]@0, 0\n", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ot_program *p = st_asm(cases[i].text);
    assert_non_null(p);
    ot_sim_options o;
    ot_sim_options_default(&o);
    o.race_check = true, o.uninit_is_error = false;
    ot_sim *s = NULL;
    ot_error err;
    ot_error_clear(&err);
    assert_int_equal(ot_sim_new(chip, p, &o, &s, &err), OT_OK);
    float *zero = calloc(1000 * 8, 4);
    ot_sim_hbm_write(s, p->tensors[0].offset, zero, 4 * 1000 * 8, NULL);
    free(zero);
    ot_sim_run(s, &err);
    bool found = strstr(err.msg, "race (") != NULL;
    if (found != cases[i].race) fail_msg("case %zu: expected %s, got:\n%s", i, cases[i].race ? "a race" : "none", err.msg);
    if (found) assert_non_null(strstr(err.msg, i == 2 ? "dma_scatter_add" : "dma_gather"));
    ot_sim_free(s);
    ot_program_free(p);
  }
  ot_chip_free(chip);
}

/* An unverified program with a broken shape is refused when the DMA is issued, in every mode. */
static void test_issue_time_shape_error(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(".tensor t fp32 [100, 8] input\n.engine sync\n nop\n"
                         " dma_gather q0, sb.fp32[0:4]@64[1,9], $t, sb.int32[0:4]@0, s0\n sem_wait s0, 1\n");
  assert_non_null(p);
  for (int mode = 0; mode < 3; mode++) {
    ot_sim_options o;
    ot_sim_options_default(&o);
    o.mode = (ot_sim_mode)mode;
    ot_error err;
    ot_error_clear(&err);
    assert_null(st_run(chip, p, &o, &err));
    if (!strstr(err.msg, "core 0 sync pc 1 (line 4) `dma_gather q0, ") ||
        !strstr(err.msg, "dst holds 9 elements per partition; 1 indices per partition x 8 columns expected"))
      fail_msg("%s", err.msg);
  }
  ot_program_free(p);
  ot_chip_free(chip);
}

/* examples/kernels/embedding.s: forward and backward values, with the race checker on. */
static void test_embedding_example(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  char path[512];
  snprintf(path, sizeof path, "%s/examples/kernels/embedding.s", OT_SOURCE_DIR);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_file(path, &p, &err)) fail_msg("%s", err.msg);
  assert_int_equal(ot_program_verify(p, chip, NULL), OT_OK);
  enum { NV = 4096, ND = 128, NT = 256 };
  uint16_t *tab = malloc(2ull * NV * ND);
  float *dout = malloc(4 * NT * ND), *out = malloc(4 * NT * ND), *g = malloc(4ull * NV * ND), *ref = calloc((size_t)NV * ND, 4);
  int32_t ids[NT];
  xt_seed(75);
  for (size_t i = 0; i < (size_t)NV * ND; i++) tab[i] = (uint16_t)ot_f32_to_bits(xt_uniform(-1, 1), OT_DT_BF16, NULL);
  for (int i = 0; i < NT * ND; i++) dout[i] = xt_uniform(-1, 1);
  for (int i = 0; i < NT; i++) ids[i] = i >= 8 && xt_below(3) == 0 ? ids[xt_below((uint32_t)i)] : (int32_t)xt_below(NV);
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.race_check = true;
  ot_sim *s = NULL;
  assert_int_equal(ot_sim_new(chip, p, &o, &s, &err), OT_OK);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "table")->offset, tab, 2ull * NV * ND, &err), OT_OK);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "ids")->offset, ids, sizeof ids, &err), OT_OK);
  assert_int_equal(ot_sim_hbm_write(s, tensor(p, "dout")->offset, dout, 4 * NT * ND, &err), OT_OK);
  if (ot_sim_run(s, &err)) fail_msg("%s", err.msg);
  assert_int_equal(err.count, 0);
  assert_int_equal(ot_sim_hbm_read(s, tensor(p, "out")->offset, out, 4 * NT * ND, &err), OT_OK);
  assert_int_equal(ot_sim_hbm_read(s, tensor(p, "dtable")->offset, g, 4ull * NV * ND, &err), OT_OK);
  for (int t = 0; t < NT; t++)
    for (int c = 0; c < ND; c++) assert_true(out[t * ND + c] == ot_bits_to_f32(tab[(size_t)ids[t] * ND + c], OT_DT_BF16));
  for (int pp = 0; pp < 128; pp++) /* index order p*2 + k: tokens p, 128 + p */
    for (int k = 0; k < 2; k++) {
      int t = pp + 128 * k;
      for (int c = 0; c < ND; c++) ref[(size_t)ids[t] * ND + c] = ref[(size_t)ids[t] * ND + c] + dout[t * ND + c];
    }
  assert_memory_equal(g, ref, 4ull * NV * ND);
  ot_sim_free(s);
  free(tab), free(dout), free(out), free(g), free(ref);
  ot_program_free(p);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_gather_values),
    cmocka_unit_test(test_scatter_add_values),
    cmocka_unit_test(test_indirect_errors),
    cmocka_unit_test(test_random_unverified),
    cmocka_unit_test(test_embedding_end_to_end),
    cmocka_unit_test(test_indirect_time),
    cmocka_unit_test(test_indirect_races),
    cmocka_unit_test(test_embedding_example),
    cmocka_unit_test(test_issue_time_shape_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
