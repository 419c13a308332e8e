/* Embedding lookup and its backward (scatter-add).
**
** With KIR_DMA_HAS_INDEX (kir.h: kir_dma_op passes the index AP of dma_gather /
** dma_scatter_add) they are indirect DMAs:
**   forward   per tile of 128 ids: ids [128, 1] int32 -> SBUF, dma_gather of the table rows into
**             [128, D], stored (bit-exact; an id outside [0, V) is a run-time error naming it);
**   backward  dtable is zeroed (a zero tile stored over every row), then per tile of 128 ids:
**             ids and dy rows (fp32) -> SBUF, dma_scatter_add into dtable; kir orders the
**             scatter-adds (each writes the whole table range), so duplicates accumulate in
**             index order, as the reference.
** FALLBACK (without it): the exact one-hot formulation (docs/compiler-attention.md):
**   forward   y[i, :] = sum_v onehot[v, i] table[v, :]: for each tile of 128 ids, the ids are
**             broadcast to every partition, onehot^T [128 table rows, ids] = (id - v0 == p)
**             (GpSimd tensor_scalar against a partition iota), and the matmuls over the table's
**             128-row blocks accumulate in PSUM;
**   backward  dtable[v, :] = sum_i onehot[i, v] dy[i, :]: for each 128-row block of the table,
**             onehot [ids, 128] = (iota == id - v0) per id tile and the matmuls over the id tiles
**             accumulate in PSUM in index order; every row is written (zeros included).
** The matmuls run on fp32 operands whatever the compile options: a product with 1.0 or 0.0 is
** exact and the sum has one nonzero term per id (forward) or adds the dy rows in index order
** (backward), so both are exact (bit-identical to the reference).  An id outside [0, V) gives a
** zero row (forward) or is dropped (backward), where the reference reports an error. */
#include <string.h>

#include "compiler/lower_attn_int.h"

#define EMB_DMAX 2048u            /* D columns: up to four fp32 PSUM banks of 512 */
#define EMB_RESIDENT (64u * 1024u) /* bytes per partition for resident ids + dy (backward) */

typedef struct {
  kir *k;
  uint32_t P, n, V, D, nd, ND;    /* ND: PSUM column chunks of nd <= 512 */
  kir_hbm ids, tab, dy, y;
  ot_dtype ydt;
  kir_buf iota, idb[2], idf[2], oh[2], tb[2], yb[2], acc[4];
  uint32_t rot;
} emb_run;

static ot_status emb_alloc(emb_run *r, uint32_t idcols, uint32_t ohcols, uint32_t tbcols, uint32_t nidf) {
  kir *k = r->k;
  kir_alloc(k, OT_MEM_SBUF, r->P, r->P * 4, &r->iota);
  for (int i = 0; i < 2; i++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, idcols * 4, &r->idb[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, ohcols * 4, &r->oh[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, tbcols * 4, &r->tb[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, r->D * attn_esz(r->ydt), &r->yb[i]);
    if (i < (int)nidf) kir_alloc(k, OT_MEM_SBUF, r->P, idcols * 4, &r->idf[i]);
  }
  for (uint32_t j = 0; j < r->ND; j++) kir_alloc(k, OT_MEM_PSUM, r->P, r->nd * 4, &r->acc[j]);
  return kir_status(k);
}

static void emb_release(emb_run *r) {
  kir_release(r->k, &r->iota);
  for (int i = 0; i < 2; i++) {
    kir_buf *b[] = {&r->idb[i], &r->idf[i], &r->oh[i], &r->tb[i], &r->yb[i]};
    for (size_t j = 0; j < sizeof b / sizeof b[0]; j++) kir_release(r->k, b[j]);
  }
  for (int j = 0; j < 4; j++) kir_release(r->k, &r->acc[j]);
}

/* acc[*] [np, D] (fp32 PSUM) into yb in the output type, stored as rows [row0, row0+np). */
static void emb_evacuate(emb_run *r, uint32_t np, uint64_t row0) {
  const kir_buf *yb = &r->yb[r->rot++ % 2];
  for (uint32_t j = 0; j < r->ND; j++) {
    uint32_t d0 = j * r->nd, nd = lower_min_u32(r->nd, r->D - d0);
    kir_copy(r->k, j % 2 ? OT_ENG_VECTOR : OT_ENG_SCALAR, kir_ap2(yb, np, d0, nd, r->ydt),
             kir_ap2(&r->acc[j], np, 0, nd, OT_DT_FP32));
  }
  attn_store_rows(r->k, &r->y, row0 * r->D, r->D, yb, 0, r->ydt, np, r->D);
}

/* One matmul per PSUM column chunk: acc[j] (+)= stationary^T . moving[:, chunk j]. */
static void emb_matmuls(emb_run *r, ot_ap stat, const kir_buf *mov, uint32_t kp, uint32_t mp, bool acc) {
  for (uint32_t j = 0; j < r->ND; j++) {
    uint32_t d0 = j * r->nd, nd = lower_min_u32(r->nd, r->D - d0);
    ot_ap dst = kir_ap2(&r->acc[j], mp, 0, nd, OT_DT_FP32), mv = kir_ap2(mov, kp, d0, nd, OT_DT_FP32);
    if (j == 0) kir_matmul(r->k, dst, stat, mv, acc);
    else kir_matmul_moving(r->k, dst, mv, acc);
  }
}

#if defined(KIR_DMA_HAS_INDEX)
/* ---- indirect DMA ------------------------------------------------------------------------- */
/* The table / dtable as the 2-D HBM pattern [rows, D] of the indirect DMAs. */
static ot_ap emb_table_ap(const kir_hbm *t, uint32_t rows, uint32_t D) {
  int64_t hs[2] = {(int64_t)D, 1};
  uint32_t hz[2] = {rows, D};
  return kir_hbm_ap(t, 0, 2, hs, hz);
}

static ot_status emb_gather(emb_run *r) {
  kir *k = r->k;
  for (uint32_t i0 = 0, t = 0; i0 < r->n && !kir_status(k); i0 += r->P, t++) {
    uint32_t ni = lower_min_u32(r->P, r->n - i0);
    const kir_buf *idb = &r->idb[t % 2], *yb = &r->yb[t % 2];
    attn_load_rows(k, idb, 0, OT_DT_INT32, &r->ids, i0, ni, 1, 1);
    ot_ap idx = kir_ap2(idb, ni, 0, 1, OT_DT_INT32);
    kir_dma_op(k, OT_OP_DMA_GATHER, kir_ap2(yb, ni, 0, r->D, r->ydt), emb_table_ap(&r->tab, r->V, r->D), &idx, OT_ENG_COUNT);
    attn_store_rows(k, &r->y, (uint64_t)i0 * r->D, r->D, yb, 0, r->ydt, ni, r->D);
  }
  return kir_status(k);
}

/* dtable = 0: a zero tile stored over every row. */
static void emb_zero_table(emb_run *r) {
  kir *k = r->k;
  uint32_t zr = lower_min_u32(lower_ceil_div(r->V, r->P), lower_min_u32(16, (16u * 1024u) / (r->D * 4) + 1));
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(&r->tb[0], r->P, 0, zr * r->D, OT_DT_FP32), 0.0f);
  for (uint32_t v0 = 0; v0 < r->V && !kir_status(k);) { /* zr 128-row blocks per store */
    uint32_t full = lower_min_u32(zr, (r->V - v0) / r->P);
    if (full) {
      int64_t hs[3] = {(int64_t)r->D, (int64_t)r->P * r->D, 1};
      uint32_t hz[3] = {r->P, full, r->D};
      kir_dma(k, kir_hbm_ap(&r->y, (uint64_t)v0 * r->D, 3, hs, hz), kir_ap2(&r->tb[0], r->P, 0, full * r->D, OT_DT_FP32),
              OT_ENG_COUNT);
      v0 += full * r->P;
    } else {
      attn_store_rows(k, &r->y, (uint64_t)v0 * r->D, r->D, &r->tb[0], 0, OT_DT_FP32, r->V - v0, r->D);
      v0 = r->V;
    }
  }
}

/* accumulate: onto the table's other gradient (lower_epilogue.accumulate), not onto zeros. */
static ot_status emb_scatter(emb_run *r, bool accumulate) {
  kir *k = r->k;
  if (!accumulate) emb_zero_table(r);
  for (uint32_t i0 = 0, t = 0; i0 < r->n && !kir_status(k); i0 += r->P, t++) {
    uint32_t ni = lower_min_u32(r->P, r->n - i0);
    const kir_buf *idb = &r->idb[t % 2], *db = &r->oh[t % 2];
    attn_load_rows(k, idb, 0, OT_DT_INT32, &r->ids, i0, ni, 1, 1);
    attn_load_rows(k, db, 0, OT_DT_FP32, &r->dy, (uint64_t)i0 * r->D, ni, r->D, r->D);
    ot_ap idx = kir_ap2(idb, ni, 0, 1, OT_DT_INT32);
    kir_dma_op(k, OT_OP_DMA_SCATTER_ADD, emb_table_ap(&r->y, r->V, r->D), kir_ap2(db, ni, 0, r->D, OT_DT_FP32), &idx,
               OT_ENG_COUNT);
  }
  return kir_status(k);
}
#endif

static void emb_fwd_tile(emb_run *r, uint32_t i0, uint32_t ni) {
  kir *k = r->k;
  uint32_t s = r->rot % 2;
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {r->P, ni};
  kir_dma(k, kir_ap2(&r->idb[s], r->P, 0, ni, OT_DT_INT32), kir_hbm_ap(&r->ids, i0, 2, hs, hz), OT_ENG_COUNT);
  ot_ap idf = kir_ap2(&r->idf[s], r->P, 0, ni, OT_DT_FP32);
  kir_copy(k, OT_ENG_GPSIMD, idf, kir_ap2(&r->idb[s], r->P, 0, ni, OT_DT_INT32));
  for (uint32_t v0 = 0, b = 0; v0 < r->V && !kir_status(k); v0 += r->P, b++) {
    uint32_t nv = lower_min_u32(r->P, r->V - v0);
    const kir_buf *oh = &r->oh[b % 2], *tb = &r->tb[b % 2];
    attn_load_rows(k, tb, 0, OT_DT_FP32, &r->tab, (uint64_t)v0 * r->D, nv, r->D, r->D);
    ot_ap o = kir_ap2(oh, nv, 0, ni, OT_DT_FP32), idv = kir_ap2(&r->idf[s], nv, 0, ni, OT_DT_FP32);
    ot_ap pv = attn_col(&r->iota, nv, 0);
    kir_ts(k, OT_ENG_GPSIMD, o, idv, OT_ALU_SUB, (float)v0, NULL, OT_ALU_EQ, 0.0f, &pv);
    emb_matmuls(r, o, tb, nv, ni, v0 > 0);
  }
  emb_evacuate(r, ni, i0);
}

ot_status lower_embedding(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *ids = &c->g->t[n->in[0]], *tab = &c->g->t[n->in[1]];
  emb_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.P = attn_parts(c->chip);
  r.n = (uint32_t)ot_gtensor_elems(ids);
  r.V = (uint32_t)tab->shape[0];
  r.D = (uint32_t)tab->shape[1];
  r.ids = c->hbm[n->in[0]];
  r.tab = c->hbm[n->in[1]];
  r.y = c->hbm[n->out[0]];
  r.ydt = (ot_dtype)c->g->t[n->out[0]].dtype;
  if (r.n == 0 || r.V == 0 || r.D == 0) return OT_OK;
#if defined(KIR_DMA_HAS_INDEX)
  kir_alloc(c->k, OT_MEM_SBUF, r.P, 4, &r.idb[0]);
  kir_alloc(c->k, OT_MEM_SBUF, r.P, 4, &r.idb[1]);
  kir_alloc(c->k, OT_MEM_SBUF, r.P, r.D * attn_esz(r.ydt), &r.yb[0]);
  kir_alloc(c->k, OT_MEM_SBUF, r.P, r.D * attn_esz(r.ydt), &r.yb[1]);
  if (!kir_status(c->k)) emb_gather(&r);
  emb_release(&r);
  return kir_status(c->k);
#endif
  if (r.D > EMB_DMAX)
    return kir_fail(c->k, OT_EUNSUPPORTED, "embedding of width D = %u: the one-hot matmul keeps a row in %u PSUM banks; supported: D <= %u",
                    r.D, EMB_DMAX / 512, EMB_DMAX);
  r.nd = lower_min_u32(512, r.D);
  r.ND = lower_ceil_div(r.D, r.nd);
  if (emb_alloc(&r, r.P, r.P, r.D, 2)) { emb_release(&r); return kir_status(c->k); }
  kir_iota(c->k, attn_col(&r.iota, r.P, 0), 0, 1, NULL);
  for (uint32_t i0 = 0; i0 < r.n && !kir_status(c->k); i0 += r.P) emb_fwd_tile(&r, i0, lower_min_u32(r.P, r.n - i0));
  emb_release(&r);
  return kir_status(c->k);
}

/* ---- backward ------------------------------------------------------------------------------- */
/* ids of tile t as fp32 [ni, 1] in idf column t (resident) or column 0 of a rotating slot, and
** dy rows [ni, D] fp32 in tb. */
static void emb_bwd_load(emb_run *r, uint32_t t, uint32_t ni, const kir_buf *idf, uint32_t col, const kir_buf *tb,
                         uint32_t tcol) {
  kir *k = r->k;
  uint32_t i0 = t * r->P;
  attn_load_rows(k, &r->idb[0], col, OT_DT_INT32, &r->ids, i0, ni, 1, 1);
  kir_copy(k, OT_ENG_GPSIMD, attn_col(idf, ni, col), kir_ap2(&r->idb[0], ni, col, 1, OT_DT_INT32));
  attn_load_rows(k, tb, tcol, OT_DT_FP32, &r->dy, (uint64_t)i0 * r->D, ni, r->D, r->D);
}

ot_status lower_embedding_bwd(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *ids = &c->g->t[n->in[0]];
  emb_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.P = attn_parts(c->chip);
  r.n = (uint32_t)ot_gtensor_elems(ids);
  r.V = (uint32_t)n->i[0];
  r.D = (uint32_t)c->g->t[n->out[0]].shape[1];
  r.ids = c->hbm[n->in[0]];
  r.dy = c->hbm[n->in[1]];
  r.y = c->hbm[n->out[0]];
  r.ydt = OT_DT_FP32;
  if (r.V == 0 || r.D == 0) return OT_OK;
#if defined(KIR_DMA_HAS_INDEX)
  {
    uint32_t zr = lower_min_u32(lower_ceil_div(r.V, r.P), lower_min_u32(16, (16u * 1024u) / (r.D * 4) + 1));
    kir_alloc(c->k, OT_MEM_SBUF, r.P, zr * r.D * 4, &r.tb[0]);
    for (int i = 0; i < 2; i++) {
      kir_alloc(c->k, OT_MEM_SBUF, r.P, 4, &r.idb[i]);
      kir_alloc(c->k, OT_MEM_SBUF, r.P, r.D * 4, &r.oh[i]);
    }
    if (!kir_status(c->k)) emb_scatter(&r, c->epi[n - c->g->node].accumulate);
    emb_release(&r);
    return kir_status(c->k);
  }
#endif
  if (r.D > EMB_DMAX)
    return kir_fail(c->k, OT_EUNSUPPORTED, "embedding_bwd of width D = %u: the one-hot matmul keeps a row in %u PSUM banks; supported: D <= %u",
                    r.D, EMB_DMAX / 512, EMB_DMAX);
  r.nd = lower_min_u32(512, r.D);
  r.ND = lower_ceil_div(r.D, r.nd);
  uint32_t nt = lower_ceil_div(r.n, r.P);
  bool resident = (uint64_t)nt * (r.D * 4 + 8) <= EMB_RESIDENT;
  uint32_t cols = resident ? (nt ? nt : 1) : 1, tcols = resident ? (nt ? nt : 1) * r.D : r.D;
  if (emb_alloc(&r, cols, r.P, tcols, 2)) { emb_release(&r); return kir_status(c->k); }
  int32_t steps[4] = {1, 0, 0, 0};
  kir_iota(c->k, kir_ap2(&r.iota, r.P, 0, r.P, OT_DT_FP32), 0, 0, steps);
  for (uint32_t v0 = 0, b = 0; v0 < r.V && !kir_status(c->k); v0 += r.P, b++) {
    uint32_t nv = lower_min_u32(r.P, r.V - v0);
    if (nt == 0) { /* no ids: zero rows */
      for (uint32_t j = 0; j < r.ND; j++) kir_memset(c->k, OT_ENG_VECTOR, kir_ap2(&r.acc[j], nv, 0, r.nd, OT_DT_FP32), 0.0f);
    }
    for (uint32_t t = 0; t < nt && !kir_status(c->k); t++) {
      uint32_t ni = lower_min_u32(r.P, r.n - t * r.P), slot = resident ? 0 : (b * nt + t) % 2;
      uint32_t col = resident ? t : 0, tcol = resident ? t * r.D : 0;
      const kir_buf *idf = &r.idf[slot], *tb = &r.tb[slot], *oh = &r.oh[(b * nt + t) % 2];
      if (!resident || v0 == 0) emb_bwd_load(&r, t, ni, idf, col, tb, tcol);
      ot_ap o = kir_ap2(oh, ni, 0, nv, OT_DT_FP32), id = attn_col(idf, ni, col);
      kir_ts(c->k, OT_ENG_GPSIMD, o, kir_ap2(&r.iota, ni, 0, nv, OT_DT_FP32), OT_ALU_ADD, (float)v0, NULL, OT_ALU_EQ, 0.0f, &id);
      for (uint32_t j = 0; j < r.ND; j++) {
        uint32_t d0 = j * r.nd, nd = lower_min_u32(r.nd, r.D - d0);
        ot_ap dst = kir_ap2(&r.acc[j], nv, 0, nd, OT_DT_FP32), mv = kir_ap2(tb, ni, tcol + d0, nd, OT_DT_FP32);
        if (j == 0) kir_matmul(c->k, dst, o, mv, t > 0);
        else kir_matmul_moving(c->k, dst, mv, t > 0);
      }
    }
    emb_evacuate(&r, nv, v0);
  }
  emb_release(&r);
  return kir_status(c->k);
}
