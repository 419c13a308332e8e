/* Cross-entropy (mean over rows of logsumexp(row) - row[target]) and its backward.
**
** Rows go on the partitions (128 per tile); the vocabulary is walked in chunks of up to
** CE_CHUNK columns with an online max / sum-exp, as in flash attention:
**   c = rowmax(x)            VectorE tensor_reduce
**   m' = max(m, c)           VectorE
**   e = exp(x - m'), r = sum ScalarE activate (bias = -m', red = r)
**   l = l exp(m - m') + r    ScalarE, VectorE
** Where the GEMM of the logits left each row's -max and sum-exp per chunk of columns (lower.h
** ce_stats), the forward only combines those (ce_stats_combine) and gathers the target logits.
** Otherwise the target logit is picked in the same pass: (iota == target - c0) * x on the GpSimd
** (tensor_scalar, tensor_tensor), summed by a ScalarE copy's `red` (one nonzero term, so the
** pick is exact); the VectorE keeps only the row max.
** Forward: loss_row = (ln l + m) - pick; the rows are summed in order by a ones-vector matmul
** accumulating into one PSUM word across row tiles (fp32, k order = row order, as the
** reference), then divided by N.  Backward: a second pass per chunk writes
** exp(x - m - ln l) (dloss / N) - onehot (dloss / N) (the chunk is reloaded unless the row fits
** one chunk). */
#include <stdio.h>
#include <string.h>

#include "compiler/lower_attn_int.h"

#define CE_CHUNK 2048u /* columns per chunk (8 KiB fp32 per partition), capped by the chip's free size */
#define CE_PAIR 2u   /* row tiles processed together, chunk stages interleaved */
#define CE_NX 4u     /* logits chunk buffers */
#define CE_COLS_TILES 64u /* row tiles (of 128) up to which the backward walks columns outer */

/* stats columns beyond attention's online-softmax ones (ST_*, scale 1) */
enum { C_TGTI = ST_COLS, C_TGT, C_PICK, C_PCH, C_LG, C_LOSS, C_G, C_ONE, C_IDX, C_IDXI, C_NLSE, C_TC, C_COLS };

typedef struct {
  kir *k;
  uint32_t N, V, P, VC, nch;
  kir_hbm x, tgt, y, dloss;
  kir_hbm saved;                    /* [N, 2]: -max and sum-exp per row (forward writes, backward reads) */
  bool has_saved;
  kir_hbm part;                     /* forward: [N, 2 x pn] -max and sum-exp per column chunk, from the GEMM
                                    ** of the logits (lower.h ce_stats); index < 0: none */
  uint32_t pn;
  kir_buf pb[CE_PAIR], wb[CE_PAIR];
  ot_dtype xdt, ydt;                /* the logits as kept (compile.c: 16 bits under a 16-bit matmul type) */
  bool bwd, gather;                 /* gather: the forward picks the target logits by indirect DMA */
  kir_buf io, xb[CE_NX], eb[CE_PAIR], tmp[CE_PAIR], st[CE_COLS_TILES], outb[CE_PAIR], tot;
  uint32_t nst;                     /* statistics buffers: CE_PAIR, or every row tile (columns outer) */
  bool cols;                        /* backward, columns outer (ce_bwd_columns) */
  bool yblk;                        /* backward: y kept in column blocks of VC */
  uint32_t rot_x, rot_o;
} ce_run;

/* A row tile in flight: rows [r0, r0+nr), slot i (stats, exp, temporaries); its current chunk. */
typedef struct {
  uint32_t r0, nr, mcol;
  const kir_buf *st, *eb, *tmp, *xb;
} ce_tile;

/* Load columns [c0, c0+vc) of the tile's rows as fp32 into the next chunk buffer. */
static void ce_load(ce_run *r, ce_tile *t, uint32_t c0, uint32_t vc) {
  t->xb = &r->xb[r->rot_x++ % CE_NX];
  attn_load_rows(r->k, t->xb, 0, r->xdt, &r->x, (uint64_t)t->r0 * r->V + c0, t->nr, vc, r->V);
}

/* onehot = (iota + c0 == target) into the tile's tmp (GpSimd). */
static ot_ap ce_onehot(ce_run *r, const ce_tile *t, uint32_t c0, uint32_t vc) {
  ot_ap oh = kir_ap2(t->tmp, t->nr, 0, vc, OT_DT_FP32), tg = attn_col(t->st, t->nr, C_TGT);
  kir_ts(r->k, OT_ENG_GPSIMD, oh, kir_ap2(&r->io, t->nr, 0, vc, OT_DT_FP32), OT_ALU_ADD, (float)c0, NULL, OT_ALU_EQ, 0.0f,
         &tg);
  return oh;
}

/* pick[p] = x[r0 + p, target[p]], gathered from HBM: the tile's rows as a table of one-element
** rows, index p * V + target (exact in fp32 while P * V < 2^24, ce_lower checks). */
static void ce_gather_pick(ce_run *r, const ce_tile *t) {
  kir *k = r->k;
  ot_ap ix = attn_col(t->st, t->nr, C_IDX), ii = kir_ap2(t->st, t->nr, C_IDXI, 1, OT_DT_INT32);
  kir_iota(k, ix, 0, (int32_t)r->V, NULL);
  kir_tt(k, OT_ENG_GPSIMD, ix, ix, attn_col(t->st, t->nr, C_TGT), OT_ALU_ADD);
  kir_copy(k, OT_ENG_GPSIMD, ii, ix);
  int64_t hs[2] = {1, 1};
  uint32_t hz[2] = {t->nr * r->V, 1};
  kir_dma_op(k, OT_OP_DMA_GATHER, attn_col(t->st, t->nr, C_PICK), kir_hbm_ap(&r->x, (uint64_t)t->r0 * r->V, 2, hs, hz), &ii,
             OT_ENG_COUNT);
}

/* Per row tile: targets (int32 -> fp32) and, for the backward, g = dloss / N on every row. */
static void ce_tile_setup(ce_run *r, const ce_tile *t) {
  kir *k = r->k;
  attn_load_rows(k, t->st, C_TGTI, OT_DT_INT32, &r->tgt, t->r0, t->nr, 1, 1);
  kir_copy(k, OT_ENG_GPSIMD, attn_col(t->st, t->nr, C_TGT), kir_ap2(t->st, t->nr, C_TGTI, 1, OT_DT_INT32));
  if (!r->bwd) {
    if (r->gather) ce_gather_pick(r, t);
    return;
  }
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {t->nr, 1};
  ot_ap g = attn_col(t->st, t->nr, C_G);
  kir_dma(k, g, kir_hbm_ap(&r->dloss, 0, 2, hs, hz), OT_ENG_COUNT);
  kir_ts(k, OT_ENG_VECTOR, g, g, OT_ALU_DIV, (float)r->N, NULL, OT_ALU_BYPASS, 0.0f, NULL);
}

/* One chunk of the statistics pass for every tile (and, forward, the target pick). */
static void ce_stats_chunk(ce_run *r, ce_tile *t, uint32_t nt, uint32_t c0, bool pick) {
  kir *k = r->k;
  uint32_t vc = lower_min_u32(r->VC, r->V - c0);
  bool first = c0 == 0;
  for (uint32_t i = 0; i < nt; i++) ce_load(r, &t[i], c0, vc);
  for (uint32_t i = 0; i < nt; i++)
    t[i].mcol = attn_online_chunk(k, t[i].st, t[i].mcol, first, kir_ap2(t[i].xb, t[i].nr, 0, vc, r->xdt), t[i].nr,
                                  kir_ap2(t[i].eb, t[i].nr, 0, vc, OT_DT_FP32));
  if (!pick || r->gather) return;
  for (uint32_t i = 0; i < nt; i++) { /* (onehot * x) summed by a ScalarE copy's red: exact */
    ot_ap oh = ce_onehot(r, &t[i], c0, vc), pch = attn_col(t[i].st, t[i].nr, first ? C_PICK : C_PCH);
    kir_tt(k, OT_ENG_GPSIMD, oh, oh, kir_ap2(t[i].xb, t[i].nr, 0, vc, r->xdt), OT_ALU_MUL);
    kir_activate(k, OT_ENG_SCALAR, kir_ap2(t[i].eb, t[i].nr, 0, vc, OT_DT_FP32), oh, OT_ACT_COPY, 1.0f, NULL, NULL, &pch);
    if (!first) {
      ot_ap pk = attn_col(t[i].st, t[i].nr, C_PICK);
      kir_tt(k, OT_ENG_VECTOR, pk, pk, pch, OT_ALU_ADD);
    }
  }
}

/* The tile's -max (column mcol) and sum-exp (ST_L) to the saved statistics, or back from them. */
static void ce_stats_io(ce_run *r, const ce_tile *t, bool load) {
  if (!r->has_saved) return;
  int64_t hs[2] = {2, 1};
  uint32_t hz[2] = {t->nr, 1};
  uint32_t cols[2] = {t->mcol, ST_L};
  for (uint32_t j = 0; j < 2; j++) {
    ot_ap h = kir_hbm_ap(&r->saved, (uint64_t)t->r0 * 2 + j, 2, hs, hz), s = attn_col(t->st, t->nr, cols[j]);
    if (load) kir_dma(r->k, s, h, OT_ENG_COUNT);
    else kir_dma(r->k, h, s, OT_ENG_COUNT);
  }
}

/* The row statistics from the GEMM's per-chunk ones: -M = min_c (-m_c), l = sum_c l_c exp(m_c - M). */
static void ce_stats_combine(ce_run *r, ce_tile *t, uint32_t i) {
  kir *k = r->k;
  uint32_t nr = t->nr, pn = r->pn;
  int64_t hs[2] = {2 * (int64_t)pn, 1};
  uint32_t hz[2] = {nr, 2 * pn};
  kir_dma(k, kir_ap2(&r->pb[i], nr, 0, 2 * pn, OT_DT_FP32), kir_hbm_ap(&r->part, (uint64_t)t->r0 * 2 * pn, 2, hs, hz),
          OT_ENG_COUNT);
  ot_ap nms = kir_ap2(&r->pb[i], nr, 0, pn, OT_DT_FP32), ls = kir_ap2(&r->pb[i], nr, pn, pn, OT_DT_FP32);
  ot_ap nm = attn_col(t->st, nr, t->mcol), w = kir_ap2(&r->wb[i], nr, 0, pn, OT_DT_FP32);
  kir_reduce(k, nm, nms, OT_ALU_MIN, 1, false);
  kir_activate(k, OT_ENG_SCALAR, w, nms, OT_ACT_EXP, -1.0f, NULL, &nm, NULL); /* exp(m_c - M) */
  kir_tt(k, OT_ENG_VECTOR, w, w, ls, OT_ALU_MUL);
  kir_reduce(k, attn_col(t->st, nr, ST_L), w, OT_ALU_ADD, 1, false);
}

/* Forward: the tiles' losses, summed in row order into the PSUM total. */
static void ce_fwd_tiles(ce_run *r, ce_tile *t, uint32_t nt) {
  kir *k = r->k;
  for (uint32_t i = 0; i < nt; i++) ce_tile_setup(r, &t[i]);
  for (uint32_t i = 0; i < nt && r->part.index >= 0; i++) ce_stats_combine(r, &t[i], i);
  for (uint32_t c0 = 0; c0 < r->V && !kir_status(k) && r->part.index < 0; c0 += r->VC) ce_stats_chunk(r, t, nt, c0, true);
  for (uint32_t i = 0; i < nt; i++) { /* loss = ln l + m - pick, with the column holding -m */
    const kir_buf *st = t[i].st;
    uint32_t nr = t[i].nr;
    ot_ap lg = attn_col(st, nr, C_LG), nm = attn_col(st, nr, t[i].mcol), pick = attn_col(st, nr, C_PICK);
    ot_ap loss = attn_col(st, nr, C_LOSS);
    kir_activate(k, OT_ENG_SCALAR, lg, attn_col(st, nr, ST_L), OT_ACT_LOG, 1.0f, NULL, NULL, NULL);
    kir_ts(k, OT_ENG_VECTOR, loss, lg, OT_ALU_SUB, 0.0f, &nm, OT_ALU_SUB, 0.0f, &pick);
    kir_matmul(k, kir_ap2(&r->tot, 1, 0, 1, OT_DT_FP32), loss, attn_col(st, nr, C_ONE), t[i].r0 > 0);
    ce_stats_io(r, &t[i], false);
  }
}

/* nlse = -m - ln l of the tile's rows. */
static void ce_nlse(ce_run *r, const ce_tile *t) {
  const kir_buf *st = t->st;
  uint32_t nr = t->nr;
  kir_activate(r->k, OT_ENG_SCALAR, attn_col(st, nr, C_LG), attn_col(st, nr, ST_L), OT_ACT_LOG, 1.0f, NULL, NULL, NULL);
  kir_tt(r->k, OT_ENG_VECTOR, attn_col(st, nr, C_NLSE), attn_col(st, nr, t->mcol), attn_col(st, nr, C_LG), OT_ALU_SUB);
}

/* p = exp(x - m - ln l) of the tile's chunk (loaded in t->xb) into t->eb, on the ScalarE. */
static void ce_grad_exp(ce_run *r, const ce_tile *t, uint32_t vc) {
  ot_ap nlse = attn_col(t->st, t->nr, C_NLSE), e = kir_ap2(t->eb, t->nr, 0, vc, OT_DT_FP32);
  kir_activate(r->k, OT_ENG_SCALAR, e, kir_ap2(t->xb, t->nr, 0, vc, r->xdt), OT_ACT_EXP, 1.0f, NULL, &nlse, NULL);
}

/* The chunk's gradient p g - onehot g (onehot g on the GpSimd, the rest in one VectorE pass
** writing the output type), stored. */
static void ce_grad_store(ce_run *r, const ce_tile *t, uint32_t c0, uint32_t vc) {
  kir *k = r->k;
  const kir_buf *st = t->st;
  uint32_t nr = t->nr;
  ot_ap g = attn_col(st, nr, C_G), tc = attn_col(st, nr, C_TC), e = kir_ap2(t->eb, nr, 0, vc, OT_DT_FP32);
  ot_ap ohg = kir_ap2(t->tmp, nr, 0, vc, OT_DT_FP32);
  kir_ts(k, OT_ENG_GPSIMD, tc, attn_col(st, nr, C_TGT), OT_ALU_SUB, (float)c0, NULL, OT_ALU_BYPASS, 0.0f, NULL);
  kir_ts(k, OT_ENG_GPSIMD, ohg, kir_ap2(&r->io, nr, 0, vc, OT_DT_FP32), OT_ALU_EQ, 0.0f, &tc, OT_ALU_MUL, 0.0f, &g);
  const kir_buf *ob = &r->outb[r->rot_o++ % CE_PAIR];
  kir_stt(k, kir_ap2(ob, nr, 0, vc, r->ydt), e, OT_ALU_MUL, 0.0f, &g, OT_ALU_SUB, ohg);
  if (r->yblk) /* kept in column blocks of VC (compile.c column_block): the chunk is block c0 / VC */
    attn_store_rows(k, &r->y, (uint64_t)c0 * r->N + (uint64_t)t->r0 * vc, vc, ob, 0, r->ydt, nr, vc);
  else
    attn_store_rows(k, &r->y, (uint64_t)t->r0 * r->V + c0, r->V, ob, 0, r->ydt, nr, vc);
}

/* Backward: pass 1 (statistics; loaded instead when the forward saved them), pass 2 (gradient
** chunks: p g - onehot g, with p = exp(x - m - ln l) straight from the ScalarE; onehot g from
** the GpSimd, the rest in one VectorE pass writing the output type). */
static void ce_bwd_tiles(ce_run *r, ce_tile *t, uint32_t nt) {
  kir *k = r->k;
  for (uint32_t i = 0; i < nt; i++) ce_tile_setup(r, &t[i]);
  for (uint32_t i = 0; i < nt && r->has_saved; i++) ce_stats_io(r, &t[i], true);
  for (uint32_t c0 = 0; c0 < r->V && !kir_status(k) && !r->has_saved; c0 += r->VC) ce_stats_chunk(r, t, nt, c0, false);
  for (uint32_t i = 0; i < nt; i++) ce_nlse(r, &t[i]);
  for (uint32_t c0 = 0; c0 < r->V && !kir_status(k); c0 += r->VC) {
    uint32_t vc = lower_min_u32(r->VC, r->V - c0);
    if (r->nch > 1 || r->has_saved)
      for (uint32_t i = 0; i < nt; i++) ce_load(r, &t[i], c0, vc);
    for (uint32_t i = 0; i < nt; i++) ce_grad_exp(r, &t[i], vc);
    for (uint32_t i = 0; i < nt; i++) ce_grad_store(r, &t[i], c0, vc);
  }
}

/* Backward with the statistics saved, columns outer: every row tile's statistics first, then
** each chunk of columns across all the row tiles, so that the gradient's readers, which walk the
** vocabulary (lm_head's dx GEMM split over k, its weight gradient by blocks of vocabulary rows),
** start on its first columns rather than after its last rows. */
static void ce_bwd_columns(ce_run *r, ce_tile *t, uint32_t nt) {
  kir *k = r->k;
  for (uint32_t i = 0; i < nt; i++) {
    ce_tile_setup(r, &t[i]);
    ce_stats_io(r, &t[i], true);
    ce_nlse(r, &t[i]);
  }
  uint32_t step = 0;
  for (uint32_t c0 = 0; c0 < r->V && !kir_status(k); c0 += r->VC) {
    uint32_t vc = lower_min_u32(r->VC, r->V - c0);
    for (uint32_t i = 0; i < nt; i++, step++) {
      t[i].eb = &r->eb[step % CE_PAIR];
      t[i].tmp = &r->tmp[step % CE_PAIR];
      ce_load(r, &t[i], c0, vc);
      ce_grad_exp(r, &t[i], vc);
      ce_grad_store(r, &t[i], c0, vc);
    }
  }
}

static ot_status ce_alloc(ce_run *r) {
  kir *k = r->k;
  for (uint32_t i = 0; i < CE_PAIR && r->part.index >= 0; i++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, 2 * r->pn * 4, &r->pb[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, r->pn * 4, &r->wb[i]);
  }
  kir_alloc(k, OT_MEM_SBUF, r->P, r->VC * 4, &r->io);
  for (uint32_t i = 0; i < CE_NX; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->VC * attn_esz(r->xdt), &r->xb[i]);
  for (uint32_t i = 0; i < CE_PAIR; i++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, r->VC * 4, &r->eb[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, r->VC * 4, &r->tmp[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, r->bwd ? r->VC * attn_esz(r->ydt) : 4, &r->outb[i]);
  }
  for (uint32_t i = 0; i < r->nst; i++) kir_alloc(k, OT_MEM_SBUF, r->P, C_COLS * 4, &r->st[i]);
  if (!r->bwd) kir_alloc(k, OT_MEM_PSUM, 1, 4, &r->tot);
  return kir_status(k);
}

static void ce_release(ce_run *r) {
  kir_release(r->k, &r->io);
  kir_release(r->k, &r->tot);
  for (uint32_t i = 0; i < CE_NX; i++) kir_release(r->k, &r->xb[i]);
  for (uint32_t i = 0; i < CE_PAIR; i++) {
    kir_release(r->k, &r->eb[i]);
    kir_release(r->k, &r->tmp[i]);
    kir_release(r->k, &r->outb[i]);
    kir_release(r->k, &r->pb[i]);
    kir_release(r->k, &r->wb[i]);
  }
  for (uint32_t i = 0; i < r->nst; i++) kir_release(r->k, &r->st[i]);
}

/* Columns per chunk: CE_CHUNK, at most the smallest per-instruction free size (SBUF) of the
** engines a chunk passes through, and at most V. */
uint32_t lower_ce_chunk_cols(const ot_chip *chip, uint32_t V) {
  static const ot_engine used[3] = {OT_ENG_VECTOR, OT_ENG_SCALAR, OT_ENG_GPSIMD};
  uint32_t vc = lower_min_u32(CE_CHUNK, V ? V : 1);
  for (uint32_t i = 0; i < 3; i++) vc = lower_min_u32(vc, chip->eng[used[i]].free_max_sbuf);
  return vc;
}

/* The forward leaves each row's -max and sum-exp in HBM ("<node>.stats", [N, 2] fp32); its
** backward (node.forward, same logits and targets) loads them instead of a statistics pass over
** the logits: the same values, so the gradient is bit-identical, and one read of the logits
** and a VectorE and a ScalarE pass over them less. */
static ot_status ce_saved_stats(lower_ctx *c, const ot_gnode *n, ce_run *r) {
  lower_epilogue *e = &c->epi[n - c->g->node];
  if (!r->bwd) {
    char name[300];
    snprintf(name, sizeof name, "%s.stats%s", n->name, c->name_suffix ? c->name_suffix : "");
    uint64_t shape[2] = {r->N, 2};
    if (kir_tensor(c->k, name, OT_DT_FP32, 2, shape, OT_ROLE_SCRATCH, NULL, &e->saved)) return kir_status(c->k);
    r->saved = e->saved;
    r->has_saved = true;
    return OT_OK;
  }
  int32_t f = n->forward;
  if (f < 0 || c->epi[f].saved.index < 0 || c->g->node[f].op != OT_GOP_CROSS_ENTROPY) return OT_OK;
  const ot_gnode *fw = &c->g->node[f];
  if (c->hbm[fw->in[0]].off != c->hbm[n->in[0]].off || c->hbm[fw->in[1]].off != c->hbm[n->in[1]].off) return OT_OK;
  r->saved = c->epi[f].saved;
  r->has_saved = true;
  return OT_OK;
}

static ot_status ce_lower(lower_ctx *c, const ot_gnode *n, bool bwd) {
  const ot_gtensor *lg = &c->g->t[n->in[0]];
  ce_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.bwd = bwd;
  r.N = (uint32_t)lg->shape[0];
  r.V = (uint32_t)lg->shape[1];
  r.P = c->chip->sbuf.partitions;
  r.VC = lower_ce_chunk_cols(c->chip, r.V);
  r.nch = lower_ceil_div(r.V, r.VC);
  r.x = c->hbm[n->in[0]];
  r.tgt = c->hbm[n->in[1]];
  r.y = c->hbm[n->out[0]];
  r.xdt = (ot_dtype)r.x.dtype;
  r.ydt = (ot_dtype)c->hbm[n->out[0]].dtype; /* the gradient may be kept in the matmul type (compile.c) */
  if (bwd) r.dloss = c->hbm[n->in[2]];
  uint32_t blk = bwd && c->col_block ? c->col_block[n->out[0]] : 0;
  if (blk && blk != r.VC)
    return kir_fail(c->k, OT_EINVAL, "cross_entropy_bwd '%s': gradient kept in column blocks of %u, chunks of %u", n->name, blk,
                    r.VC);
  r.yblk = blk != 0;
  r.gather = kir_has_indirect_dma() && (uint64_t)r.P * r.V < (1u << 24); /* indirect DMA; exact index */
  r.part.index = -1;
  int32_t p = c->g->t[n->in[0]].producer;
  if (!bwd && r.gather && p >= 0 && c->epi[p].ce_part.index >= 0) { /* (the pick needs the gather) */
    r.part = c->epi[p].ce_part;
    r.pn = c->epi[p].ce_chunks;
  }
  if (ce_saved_stats(c, n, &r)) return kir_status(c->k);
  if (r.N == 0 || r.V == 0)
    return kir_fail(c->k, OT_EUNSUPPORTED, "cross_entropy of logits [%u, %u]: supported are N >= 1 and V >= 1", r.N, r.V);
  uint32_t tiles = lower_ceil_div(r.N, r.P);
  r.cols = bwd && r.has_saved && tiles <= CE_COLS_TILES;
  r.nst = r.cols ? tiles : CE_PAIR;
  if (ce_alloc(&r)) { ce_release(&r); return kir_status(c->k); }
  int32_t steps[4] = {1, 0, 0, 0};
  kir_iota(c->k, kir_ap2(&r.io, r.P, 0, r.VC, OT_DT_FP32), 0, 0, steps);
  for (uint32_t i = 0; i < CE_PAIR && !bwd; i++) kir_memset(c->k, OT_ENG_GPSIMD, attn_col(&r.st[i], r.P, C_ONE), 1.0f);
  uint32_t per = r.cols ? tiles : CE_PAIR;
  for (uint32_t r0 = 0; r0 < r.N && !kir_status(c->k); r0 += per * r.P) {
    ce_tile t[CE_COLS_TILES];
    uint32_t nt = 0;
    for (uint32_t i = 0; i < per && r0 + i * r.P < r.N; i++, nt++) {
      memset(&t[i], 0, sizeof t[i]);
      t[i].r0 = r0 + i * r.P;
      t[i].nr = lower_min_u32(r.P, r.N - t[i].r0);
      t[i].mcol = ST_M0;
      t[i].st = &r.st[i];
      t[i].eb = &r.eb[i % CE_PAIR];
      t[i].tmp = &r.tmp[i % CE_PAIR];
    }
    if (r.cols) ce_bwd_columns(&r, t, nt);
    else if (bwd) ce_bwd_tiles(&r, t, nt);
    else ce_fwd_tiles(&r, t, nt);
  }
  if (!bwd) { /* mean over rows, leaving PSUM */
    kir_ts(c->k, OT_ENG_VECTOR, attn_col(&r.outb[0], 1, 0), kir_ap2(&r.tot, 1, 0, 1, OT_DT_FP32), OT_ALU_DIV, (float)r.N,
           NULL, OT_ALU_BYPASS, 0.0f, NULL);
    attn_store_rows(c->k, &r.y, 0, 1, &r.outb[0], 0, OT_DT_FP32, 1, 1);
  }
  ce_release(&r);
  return kir_status(c->k);
}

ot_status lower_cross_entropy(lower_ctx *c, const ot_gnode *n) { return ce_lower(c, n, false); }
ot_status lower_cross_entropy_bwd(lower_ctx *c, const ot_gnode *n) { return ce_lower(c, n, true); }
