/* matmul and linear: a blocked GEMM on the TensorE.
**
** TensorE computes dst[M,N] = stationary[K,M]^T . moving[K,N] with the contraction K on the
** partitions, so both operands are needed as K-major tiles:
**   A^T: an m-block of A (up to `mt_blk` x 128 rows) is made K-major once and stays in SBUF for
**        every n-block (the reuse that makes the kernel compute-bound, as in the optimised NKI
**        matmul of reference §5.2); from a [K, M] layout it is loaded directly, from [M, K] it
**        is loaded row-major and transposed 128 x 128 at a time on the PE array;
**   B:   streamed in chunks of `kc` k-tiles x one n-block through `B_BUFS` rotating buffers
**        (direct from [K, N], or through PE transposes from [N, K]);
**   C:   each (m-tile, n-tile) accumulates over all k-tiles in its own PSUM bank, then leaves
**        PSUM through the epilogue (bias, activation, cast) into a staging tile that is stored.
** Loads are issued by the Sync engine on rotating DMA queues; kir makes every buffer reuse wait
** only for the readers of its previous contents, so loads run ahead of the TensorE. */
#include <stdio.h>
#include <string.h>

#include "compiler/lower_bcast.h"
#include "compiler/kir_attn.h"
#include "compiler/kir_more.h"
#include "compiler/lower.h"
#include "compiler/lower_elem_int.h"

#define B_BUFS 4
#define NAT_BUFS 4                    /* row-major tiles waiting for their PE transposes (at most) */
#define NAT_BUDGET (32u * 1024u)      /* bytes per partition for all of them */
#define STAGE_BUFS 4
#define B_RES_SETS 2
#define A_BUDGET (96u * 1024u)       /* bytes per partition for the resident A^T block */
#define CHUNK_BYTES (8u * 1024u)      /* bytes per partition of one B load */
#define B_RES_BUDGET (32u * 1024u)    /* bytes per partition of one resident B slice (two are kept) */
#define DACT_UNITS 4                  /* [m-tile, bank] tiles of a dact epilogue in flight (temporaries) */
#define B_ALL_BUDGET (40u * 1024u)    /* bytes per partition of all of B, kept on chip (b_all) */
#define B_ALL_MT 2                    /* m-tiles per m-block in b_all */
#define CE_STATS_BUDGET (24u * 1024u) /* bytes per partition of a cross-entropy's partial statistics */
#define KS_ACC_BUDGET (64u * 1024u)   /* ksplit: bytes per partition of C in fp32 */
#define KS_B_BUDGET (24u * 1024u)     /* ksplit: bytes per partition of one k-block of B (two are kept) */
#define KS_MIN_KT 8u                  /* ksplit: the fewest k-tiles per k-block worth it */

typedef struct {
  uint32_t batches;
  uint64_t M, K, N;
  kir_hbm a, b, y, bias, resid;
  uint64_t a_bs, b_bs, y_bs;         /* batch strides in elements (b_bs 0: shared) */
  bool a_km, b_nk, has_bias, has_resid;
  uint32_t a_cb;                     /* A's stored rows kept in column blocks of this width (lower.h col_block), or 0 */
  bool bias_rows;                    /* the bias is per row of y (y^T computed: one per output partition) */
  int act;
  bool has_act_out;                  /* also act2(y) into act_out, from y as stored */
  int act2;
  kir_hbm act_out;
  const ot_gnode *dact;              /* y * act'(dact_x): the folded activation backward (NULL: none) */
  kir_hbm dact_x;
  ot_dtype mm, ydt;
  bool ce_stats;                     /* also each row's -max and sum-exp per bank of columns (lower.h) ... */
  const char *ce_name;               /* ... into a new scratch tensor of this name ... */
  kir_hbm *ce_part;                  /* ... returned here (index stays < 0 where they do not fit), */
  uint32_t *ce_chunks;               /* with the number of column chunks */
} gemm;

typedef struct {
  kir *k;
  const gemm *g;
  uint32_t P, MT, NT, KT, mt_blk, nt_blk, kc;
  kir_buf at, b[B_BUFS], stage[STAGE_BUFS], bias, tmp, rbuf[STAGE_BUFS], stage2[STAGE_BUFS];
  bool stream_a;                     /* A^T does not fit: streamed with B, k-chunk by k-chunk */
  bool b_res;                        /* B slices resident, all of A^T resident: each read once */
  bool b_all;                        /* all of B resident, m-blocks outside (A^T double-buffered) */
  bool ksplit;                       /* A streamed, k-blocks outside (gemm_ksplit): C summed in SBUF */
  uint32_t kb, k_lo, k_hi;           /* k-tiles per k-block; the k-tiles gemm_block sums now */
  bool dma_t;                        /* A [M, K] made K-major by dma_transpose (no PE transposes) */
  bool dma_tb;                       /* B [N, K] likewise */
  kir_buf cacc;                      /* ksplit: C in fp32, [m-tile][N] per partition */
  kir_buf bres[2], at2;
  kir_buf as[B_BUFS];
  kir_buf acc[8], tp[2];             /* PSUM accumulators, transpose blocks */
  kir_buf anat[NAT_BUFS];            /* rows to transpose (A from [M, K], B from [N, K]) */
  kir_buf xbuf[STAGE_BUFS], dtmp[DACT_UNITS][2]; /* dact: x tiles, the program's temporaries */
  elem_pw dprog;                     /* dact: the activation backward's program */
  uint32_t nb_rot, st_rot, tp_rot, nat_rot, nat_n, dt_rot;
  uint32_t nsets, set_rot;           /* PSUM accumulator sets (mt_blk x nt_blk banks each), rotated by block */
  bool ce;                           /* ce_stats taken: cst holds them, [m-tile][-max x cnch, sum-exp x cnch] */
  kir_buf cst, cjunk;
  uint32_t cnch, cp_rot;
} gemm_run;

uint32_t lower_min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
uint32_t lower_ceil_div(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

static uint32_t esz(ot_dtype t) { return (uint32_t)ot_dtype_size(t); }

/* ---- PE transposes: rows [np partitions, nf] of src (SBUF) into K-major dst columns ---------- */
/* Transpose `nblk` blocks src[:, j*P .. +kp_j] (each [np, <=P]) and copy block j to
** dst_col(j): dst partitions [0,kp) at element offset dcol + j*dstep.  All blocks but the last
** are full (P columns). */
static void transpose_blocks(gemm_run *r, const kir_buf *src, uint32_t np, uint32_t soff, uint32_t nf, const kir_buf *dst,
                             uint32_t dcol, uint32_t dstep) {
  kir *k = r->k;
  ot_dtype t = r->g->mm;
  uint32_t per = r->tp[0].bytes / (np * 0 + r->P * esz(t)); /* blocks per PSUM transpose buffer */
  if (per == 0) per = 1;
  uint32_t nblk = lower_ceil_div(nf, r->P);
  for (uint32_t j0 = 0; j0 < nblk; j0 += per) {
    uint32_t cnt = lower_min_u32(per, nblk - j0);
    const kir_buf *tp = &r->tp[r->tp_rot++ % 2];
    uint32_t full = 0;
    for (uint32_t j = 0; j < cnt; j++) {
      uint32_t kp = lower_min_u32(r->P, nf - (j0 + j) * r->P);
      kir_transpose(k, kir_ap2(tp, kp, j * r->P, np, t), kir_ap2(src, np, soff + (j0 + j) * r->P, kp, t));
      if (kp == r->P) full++;
    }
    /* copy the full blocks with one instruction, a partial last block alone */
    if (full) {
      int32_t ss[2] = {(int32_t)r->P, 1}, ds[2] = {(int32_t)dstep, 1};
      uint32_t sz[2] = {full, np};
      ot_ap s = kir_ap(tp, 0, r->P, 0, t, 2, ss, sz);
      ot_ap d = kir_ap(dst, 0, r->P, (dcol + j0 * dstep) * esz(t), t, 2, ds, sz);
      kir_copy(k, OT_ENG_SCALAR, d, s);
    }
    if (full < cnt) {
      uint32_t kp = nf - (j0 + full) * r->P;
      kir_copy(k, OT_ENG_SCALAR, kir_ap2(dst, kp, dcol + (j0 + full) * dstep, np, t), kir_ap2(tp, kp, full * r->P, np, t));
    }
  }
}

/* ---- A^T of one m-block, k-tiles kt0 .. kt0+kcn: dst[kp, (kt - kt0) * mcols + m] ---------- */
/* Columns [c0, c0 + n) of A's stored rows as far as the end of c0's column block (g->a_cb). */
static uint32_t a_piece(const gemm *g, uint64_t c0, uint32_t n) {
  if (!g->a_cb) return n;
  uint64_t end = (c0 / g->a_cb + 1) * g->a_cb;
  return c0 + n <= end ? n : (uint32_t)(end - c0);
}

/* Stored rows [r0, r0 + nr) x columns [c0, c0 + nc) of A ([rows, cols], row-major or in column
** blocks: block b holds columns b * cb .. of every row, rows of min(cb, cols - b * cb)), the
** columns within one block. */
static ot_ap a_hbm(const gemm *g, uint64_t base, uint64_t rows, uint64_t cols, uint64_t r0, uint32_t nr, uint64_t c0,
                   uint32_t nc) {
  uint64_t w = cols, off = r0 * cols + c0;
  if (g->a_cb) {
    uint64_t b = c0 / g->a_cb;
    w = cols - b * g->a_cb < g->a_cb ? cols - b * g->a_cb : g->a_cb;
    off = b * g->a_cb * rows + r0 * w + (c0 - b * g->a_cb);
  }
  int64_t hs[2] = {(int64_t)w, 1};
  uint32_t hz[2] = {nr, nc};
  return kir_hbm_ap(&g->a, base + off, 2, hs, hz);
}

static void load_at(gemm_run *r, const kir_buf *dst, uint32_t bt, uint64_t m0, uint32_t mrows, uint32_t mcols,
                    uint32_t kt0, uint32_t kcn) {
  const gemm *g = r->g;
  uint64_t base = bt * g->a_bs;
  if (g->a_km) { /* a is [K, M]: k-tile rows are contiguous runs of m */
    for (uint32_t kt = kt0; kt < kt0 + kcn; kt++) {
      uint32_t kp = lower_min_u32(r->P, (uint32_t)(g->K - (uint64_t)kt * r->P));
      for (uint32_t c = 0, n; c < mrows; c += n) {
        n = a_piece(g, m0 + c, mrows - c);
        ot_ap src = a_hbm(g, base, g->K, g->M, (uint64_t)kt * r->P, kp, m0 + c, n);
        kir_dma(r->k, kir_ap2(dst, kp, (kt - kt0) * mcols + c, n, g->mm), src, OT_ENG_COUNT);
      }
    }
    return;
  }
  uint32_t kcols = lower_min_u32(kcn * r->P, (uint32_t)(g->K - (uint64_t)kt0 * r->P));
  if (r->dma_t) { /* a is [M, K]: each k-tile's columns of the m-block's rows transposed by the DMA */
    for (uint32_t kt = kt0; kt < kt0 + kcn; kt++) {
      uint32_t kp = lower_min_u32(r->P, (uint32_t)(g->K - (uint64_t)kt * r->P));
      kir_dma_transpose(r->k, kir_ap2(dst, kp, (kt - kt0) * mcols, mrows, g->mm),
                        a_hbm(g, base, g->M, g->K, m0, mrows, (uint64_t)kt * r->P, kp), OT_ENG_COUNT);
    }
    return;
  }
  /* a is [M, K]: load 128 rows at a time and transpose them on the PE array */
  for (uint32_t mi = 0; mi * r->MT < mrows; mi++) {
    uint32_t mp = lower_min_u32(r->MT, mrows - mi * r->MT);
    const kir_buf *nat = &r->anat[r->nat_rot++ % r->nat_n];
    for (uint32_t c = 0, n; c < kcols; c += n) {
      n = a_piece(g, (uint64_t)kt0 * r->P + c, kcols - c);
      ot_ap src = a_hbm(g, base, g->M, g->K, m0 + (uint64_t)mi * r->MT, mp, (uint64_t)kt0 * r->P + c, n);
      kir_dma(r->k, kir_ap2(nat, mp, c, n, g->mm), src, OT_ENG_COUNT);
    }
    transpose_blocks(r, nat, mp, 0, kcols, dst, mi * r->MT, mcols);
  }
}

/* ---- B chunk: bbuf[kp, kk * ncols + n] for k-tiles kt0 .. kt0+kcn -------------------------- */
#define LOAD_B_BYTES (64u * 1024u) /* a transfer's size: ~2-4 us on one queue */
static void load_b(gemm_run *r, const kir_buf *bb, uint32_t boff, uint32_t bt, uint32_t kt0, uint32_t kcn, uint64_t n0,
                   uint32_t ncols) {
  const gemm *g = r->g;
  uint64_t base = bt * g->b_bs;
  if (!g->b_nk) { /* b is [K, N] */
    uint32_t full = 0;
    while (full < kcn && (uint64_t)(kt0 + full + 1) * r->P <= g->K) full++;
    /* k-tile rows in transfers of about LOAD_B_BYTES (partition p, free (kk, n)): spread over
    ** the queues, they arrive together, and the first matmuls need only the first ones */
    uint32_t per = lower_ceil_div(LOAD_B_BYTES, (uint64_t)r->P * ncols * esz(g->mm));
    for (uint32_t f0 = 0; f0 < full; f0 += per) {
      uint32_t nk = lower_min_u32(per, full - f0);
      int64_t hs[3] = {(int64_t)g->N, (int64_t)(r->P * g->N), 1};
      uint32_t hz[3] = {r->P, nk, ncols};
      int32_t ss[2] = {(int32_t)ncols, 1};
      uint32_t sz[2] = {nk, ncols};
      kir_dma(r->k, kir_ap(bb, 0, r->P, (boff + f0 * ncols) * esz(g->mm), g->mm, 2, ss, sz),
              kir_hbm_ap(&g->b, base + (uint64_t)(kt0 + f0) * r->P * g->N + n0, 3, hs, hz), OT_ENG_COUNT);
    }
    if (full < kcn) {
      uint32_t kp = (uint32_t)(g->K - (uint64_t)(kt0 + full) * r->P);
      int64_t hs[2] = {(int64_t)g->N, 1};
      uint32_t hz[2] = {kp, ncols};
      kir_dma(r->k, kir_ap2(bb, kp, boff + full * ncols, ncols, g->mm),
              kir_hbm_ap(&g->b, base + (uint64_t)(kt0 + full) * r->P * g->N + n0, 2, hs, hz), OT_ENG_COUNT);
    }
    return;
  }
  if (r->dma_tb) { /* b is [N, K]: each k-tile's columns of the n-block's rows transposed by the DMA */
    for (uint32_t kk = 0; kk < kcn; kk++) {
      uint32_t kp = lower_min_u32(r->P, (uint32_t)(g->K - (uint64_t)(kt0 + kk) * r->P));
      int64_t hs[2] = {(int64_t)g->K, 1};
      uint32_t hz[2] = {ncols, kp};
      kir_dma_transpose(r->k, kir_ap2(bb, kp, boff + kk * ncols, ncols, g->mm),
                        kir_hbm_ap(&g->b, base + n0 * g->K + (uint64_t)(kt0 + kk) * r->P, 2, hs, hz), OT_ENG_COUNT);
    }
    return;
  }
  /* b is [N, K]: 128 rows of b (n) x the chunk's k columns, transposed on the PE array */
  uint32_t kcols = lower_min_u32(kcn * r->P, (uint32_t)(g->K - (uint64_t)kt0 * r->P));
  for (uint32_t ns = 0; ns * r->P < ncols; ns++) {
    uint32_t np = lower_min_u32(r->P, ncols - ns * r->P);
    int64_t hs[2] = {(int64_t)g->K, 1};
    uint32_t hz[2] = {np, kcols};
    const kir_buf *nat = &r->anat[r->nat_rot++ % r->nat_n];
    kir_dma(r->k, kir_ap2(nat, np, 0, kcols, g->mm),
            kir_hbm_ap(&g->b, base + (n0 + (uint64_t)ns * r->P) * g->K + (uint64_t)kt0 * r->P, 2, hs, hz), OT_ENG_COUNT);
    transpose_blocks(r, nat, np, 0, kcols, bb, boff + ns * r->P, ncols);
  }
}

/* ---- leaving PSUM: epilogue, cast, store ---------------------------------------------------- */
/* The copy of a logits tile to the staging tile, on the VectorE and the ScalarE in turn. */
static void ce_copy_out(gemm_run *r, ot_ap out, ot_ap cur) {
  if (r->cp_rot++ % 2) kir_copy(r->k, OT_ENG_VECTOR, out, cur);
  else kir_activate(r->k, OT_ENG_SCALAR, out, cur, OT_ACT_COPY, 1.0f, NULL, NULL, NULL);
}

/* Logits leaving PSUM (columns c0.. of rows m..): -max on the VectorE, sum exp(x - max) on the
** ScalarE (into the statistics), the copy to the staging tile on either, in turn, so that neither
** falls behind the TensorE.  Logits kept in 16 bits (compile.c: the loss reads them as autocast's
** does, the linear's 16-bit output upcast) have their statistics taken from the rounded copy, so
** that the loss and its backward see the same values. */
static void evacuate_ce(gemm_run *r, uint64_t m, uint32_t mp, uint64_t c0, uint32_t nn, ot_ap cur, ot_ap out) {
  kir *k = r->k;
  uint32_t base = (uint32_t)(m / r->MT) * 2 * r->cnch, j = (uint32_t)(c0 / r->NT);
  ot_ap nm = kir_ap2(&r->cst, mp, base + j, 1, OT_DT_FP32), l = kir_ap2(&r->cst, mp, base + r->cnch + j, 1, OT_DT_FP32);
  bool rounded = out.dtype != OT_DT_FP32;
  if (rounded) ce_copy_out(r, out, cur);
  ot_ap x = rounded ? out : cur;
  kir_reduce(k, nm, x, OT_ALU_MAX, 1, true);
  kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->cjunk, mp, 0, nn, OT_DT_FP32), x, OT_ACT_EXP, 1.0f, NULL, &nm, &l);
  if (!rounded) ce_copy_out(r, out, cur);
}

/* y = act(acc + bias) + residual, in fp32, rounded once into the staging tile: the VectorE adds,
** the ScalarE applies the activation (one fp32 slot per PSUM bank, so the VectorE runs ahead). */
static void evacuate(gemm_run *r, uint32_t bt, uint64_t m, uint32_t mp, uint64_t n0, uint32_t ncols, uint32_t mi) {
  const gemm *g = r->g;
  kir *k = r->k;
  uint32_t slot = r->st_rot++ % STAGE_BUFS;
  const kir_buf *st = &r->stage[slot];
  int64_t hs[2] = {(int64_t)g->N, 1};
  uint32_t hz[2] = {mp, ncols};
  ot_dtype rdt = (ot_dtype)g->resid.dtype;
  if (g->has_resid)
    kir_dma(k, kir_ap2(&r->rbuf[slot], mp, 0, ncols, rdt), kir_hbm_ap(&g->resid, bt * g->y_bs + m * g->N + n0, 2, hs, hz), OT_ENG_COUNT);
  for (uint32_t ni = 0; ni * r->NT < ncols; ni++) {
    uint32_t nn = lower_min_u32(r->NT, ncols - ni * r->NT);
    ot_ap cur = kir_ap2(&r->acc[mi * r->nt_blk + ni], mp, 0, nn, OT_DT_FP32);
    ot_ap out = kir_ap2(st, mp, ni * r->NT, nn, g->ydt);
    ot_ap tmp = kir_ap2(&r->tmp, mp, (mi * r->nt_blk + ni) * r->NT, nn, OT_DT_FP32);
    bool act = g->act != OT_ACT_COPY;
    if (r->ce) {
      evacuate_ce(r, m, mp, n0 + ni * r->NT, nn, cur, out);
      continue;
    }
    if (g->has_bias && g->bias_rows) { /* act(acc + bias) in one ScalarE pass: the bias is per partition */
      ot_ap bcol = kir_ap2(&r->bias, mp, (uint32_t)(m / r->MT), 1, OT_DT_FP32);
      kir_activate(k, OT_ENG_SCALAR, out, cur, g->act, 1.0f, NULL, &bcol, NULL);
      continue;
    }
    if (g->has_bias) {
      ot_ap d = act || g->has_resid ? tmp : out;
      kir_tt(k, OT_ENG_VECTOR, d, cur, kir_ap2(&r->bias, mp, (uint32_t)n0 + ni * r->NT, nn, OT_DT_FP32), OT_ALU_ADD);
      cur = d;
    }
    if (act || (!g->has_bias && !g->has_resid)) { /* the activation, or a plain copy out of PSUM */
      ot_ap d = g->has_resid ? tmp : out;
      kir_activate(k, OT_ENG_SCALAR, d, cur, g->act, 1.0f, NULL, NULL, NULL);
      cur = d;
    }
    if (g->has_resid) kir_tt(k, OT_ENG_VECTOR, out, cur, kir_ap2(&r->rbuf[slot], mp, ni * r->NT, nn, rdt), OT_ALU_ADD);
    if (g->has_act_out) /* from y as stored: what a separate activation node would read */
      kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->stage2[slot], mp, ni * r->NT, nn, (ot_dtype)g->act_out.dtype), out, g->act2,
                   1.0f, NULL, NULL, NULL);
  }
  kir_dma(k, kir_hbm_ap(&g->y, bt * g->y_bs + m * g->N + n0, 2, hs, hz), kir_ap2(st, mp, 0, ncols, g->ydt), OT_ENG_COUNT);
  if (g->has_act_out)
    kir_dma(k, kir_hbm_ap(&g->act_out, bt * g->y_bs + m * g->N + n0, 2, hs, hz),
            kir_ap2(&r->stage2[slot], mp, 0, ncols, (ot_dtype)g->act_out.dtype), OT_ENG_COUNT);
}

/* ksplit: one k-block's sums of an m-tile leave PSUM into C in SBUF (copied by the first k-block,
** added by the others, in k order); the last k-block's add writes y's type into the staging tile,
** which is stored.  (A split GEMM has at least two k-blocks: gemm_plan_ksplit.) */
static void evacuate_ksplit(gemm_run *r, uint64_t m, uint32_t mp, uint32_t ncols, uint32_t mi) {
  const gemm *g = r->g;
  kir *k = r->k;
  bool first = r->k_lo == 0, last = r->k_hi == r->KT;
  const kir_buf *st = &r->stage[r->st_rot++ % STAGE_BUFS];
  uint32_t row = (uint32_t)(m / r->MT) * ncols;
  for (uint32_t ni = 0; ni * r->NT < ncols; ni++) {
    uint32_t nn = lower_min_u32(r->NT, ncols - ni * r->NT);
    ot_ap cur = kir_ap2(&r->acc[mi * r->nt_blk + ni], mp, 0, nn, OT_DT_FP32);
    ot_ap c = kir_ap2(&r->cacc, mp, row + ni * r->NT, nn, OT_DT_FP32);
    if (first) kir_activate(k, OT_ENG_SCALAR, c, cur, OT_ACT_COPY, 1.0f, NULL, NULL, NULL);
    else kir_tt(k, OT_ENG_VECTOR, last ? kir_ap2(st, mp, ni * r->NT, nn, g->ydt) : c, c, cur, OT_ALU_ADD);
  }
  if (!last) return;
  int64_t hs[2] = {(int64_t)g->N, 1};
  uint32_t hz[2] = {mp, ncols};
  kir_dma(k, kir_hbm_ap(&g->y, m * g->N, 2, hs, hz), kir_ap2(st, mp, 0, ncols, g->ydt), OT_ENG_COUNT);
}

/* y = dy * act'(x) for the m-tiles of one block, dy the accumulators: the activation backward's
** own program (lower_elem_pw.c), its instructions interleaved over DACT_UNITS / 2 [m-tile, bank]
** tiles at a time so that one engine works on a tile while another finishes the previous one.
** Instructions that read dy run on the VectorE (PSUM; the engines share one ALU semantics, so
** the bits do not depend on which). */
static void evacuate_dact_tiles(gemm_run *r, uint32_t bt, uint64_t m0, uint32_t mrows, uint64_t n0, uint32_t ncols,
                                uint32_t s0, uint32_t mi0, uint32_t mc) {
  const gemm *g = r->g;
  kir *k = r->k;
  ot_dtype xdt = elem_load_dtype(&g->dact_x);
  /* y kept in 16 bits: the program's last instruction writes it rounded into the second staging
  ** tile, and the store moves half the bytes */
  bool y16 = esz(g->ydt) == 2;
  int64_t hs[2] = {(int64_t)g->N, 1};
  uint32_t ntiles = lower_ceil_div(ncols, r->NT), slot[DACT_UNITS];
  for (uint32_t i = 0; i < mc; i++) {
    uint32_t mi = mi0 + i, hz[2] = {lower_min_u32(r->MT, mrows - mi * r->MT), ncols};
    slot[i] = r->st_rot++ % STAGE_BUFS;
    kir_dma(k, kir_ap2(&r->xbuf[slot[i]], hz[0], 0, ncols, xdt),
            kir_hbm_ap(&g->dact_x, bt * g->y_bs + (m0 + (uint64_t)mi * r->MT) * g->N + n0, 2, hs, hz), OT_ENG_COUNT);
  }
  const uint32_t per = DACT_UNITS / 2, units = mc * ntiles;
  for (uint32_t u0 = 0; u0 < units; u0 += per) {
    ot_ap ap[DACT_UNITS / 2][3 * ELEM_MAX_IO];
    uint32_t nu = lower_min_u32(per, units - u0);
    for (uint32_t u = 0; u < nu; u++) {
      uint32_t i = (u0 + u) / ntiles, ni = (u0 + u) % ntiles, t = r->dt_rot++ % DACT_UNITS, mi = mi0 + i;
      uint32_t mp = lower_min_u32(r->MT, mrows - mi * r->MT), nn = lower_min_u32(r->NT, ncols - ni * r->NT);
      ap[u][ELEM_X(0)] = kir_ap2(&r->xbuf[slot[i]], mp, ni * r->NT, nn, xdt);
      ap[u][ELEM_X(1)] = kir_ap2(&r->acc[(s0 + mi) * r->nt_blk + ni], mp, 0, nn, OT_DT_FP32);
      ap[u][ELEM_Y(0)] = kir_ap2(&r->stage[slot[i]], mp, ni * r->NT, nn, OT_DT_FP32);
      if (y16) ap[u][ELEM_Y(1)] = kir_ap2(&r->stage2[slot[i]], mp, ni * r->NT, nn, g->ydt);
      for (unsigned j = 0; j < r->dprog.n_tmp; j++) ap[u][ELEM_T(j)] = kir_ap2(&r->dtmp[t][j], mp, 0, nn, OT_DT_FP32);
    }
    for (unsigned s = 0; s < r->dprog.n_prog; s++) {
      elem_insn in = r->dprog.prog[s];
      bool reads_dy = in.a == ELEM_X(1) || ((in.kind == ELEM_TT || in.kind == ELEM_STT) && in.b == ELEM_X(1));
      if (reads_dy && in.kind != ELEM_ACT) in.eng = OT_ENG_VECTOR;
      if (y16 && s + 1 == r->dprog.n_prog && in.dst == ELEM_Y(0)) in.dst = ELEM_Y(1); /* rounds as it writes */
      for (uint32_t u = 0; u < nu; u++) elem_insn_exec(k, u0 + u, ap[u], &in);
    }
  }
  for (uint32_t i = 0; i < mc; i++) {
    uint32_t mi = mi0 + i, hz[2] = {lower_min_u32(r->MT, mrows - mi * r->MT), ncols};
    kir_dma(k, kir_hbm_ap(&g->y, bt * g->y_bs + (m0 + (uint64_t)mi * r->MT) * g->N + n0, 2, hs, hz),
            y16 ? kir_ap2(&r->stage2[slot[i]], hz[0], 0, ncols, g->ydt) : kir_ap2(&r->stage[slot[i]], hz[0], 0, ncols, OT_DT_FP32),
            OT_ENG_COUNT);
  }
}

/* m-tiles a few at a time: each one's x and staging tiles stay in their slot until stored. */
static void evacuate_dact(gemm_run *r, uint32_t bt, uint64_t m0, uint32_t mrows, uint64_t n0, uint32_t ncols, uint32_t s0) {
  uint32_t mtiles = lower_ceil_div(mrows, r->MT), ntiles = lower_ceil_div(ncols, r->NT);
  uint32_t mc = ntiles >= DACT_UNITS / 2 ? 1 : DACT_UNITS / 2 / ntiles;
  for (uint32_t mi0 = 0; mi0 < mtiles; mi0 += mc)
    evacuate_dact_tiles(r, bt, m0, mrows, n0, ncols, s0, mi0, lower_min_u32(mc, mtiles - mi0));
}

/* The bias row on every partition (repeated by the TensorE, lower_bcast.c), loaded once for the
** whole GEMM; a per-row bias as columns instead: element (p, j) = bias[j * MT + p], m-tile j's bias column. */
static void load_bias(gemm_run *r) {
  if (r->g->bias_rows) {
    uint32_t M = (uint32_t)r->g->M, nfull = M / r->MT, rem = M % r->MT;
    if (nfull) {
      int64_t hs[2] = {1, (int64_t)r->MT};
      uint32_t hz[2] = {r->MT, nfull};
      kir_dma(r->k, kir_ap2(&r->bias, r->MT, 0, nfull, OT_DT_FP32), kir_hbm_ap(&r->g->bias, 0, 2, hs, hz), OT_ENG_COUNT);
    }
    if (rem) {
      int64_t hs = 1;
      kir_dma(r->k, kir_ap2(&r->bias, rem, nfull, 1, OT_DT_FP32), kir_hbm_ap(&r->g->bias, (uint64_t)nfull * r->MT, 1, &hs, &rem),
              OT_ENG_COUNT);
    }
    return;
  }
  ot_ap dst = kir_ap2(&r->bias, r->P, 0, (uint32_t)r->g->N, OT_DT_FP32);
  if (lower_bcast_row_sbuf(r->k, &r->g->bias, 0, (uint32_t)r->g->N, r->P, dst)) return;
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {r->P, (uint32_t)r->g->N};
  kir_dma(r->k, dst, kir_hbm_ap(&r->g->bias, 0, 2, hs, hz), OT_ENG_COUNT);
}

/* ---- one n-block of one m-block ------------------------------------------------------------- */
/* A K-major operand held on chip: element (kt, col) at (kt - kt_base) * stride + col0 + col. */
typedef struct { const kir_buf *buf; uint32_t stride, col0, kt_base; } kview;

/* a / b NULL: that operand is streamed in k-chunks through rotating buffers. */
static void gemm_block(gemm_run *r, uint32_t bt, uint64_t m0, uint32_t mrows, uint32_t mcols, uint64_t n0, uint32_t ncols,
                       const kview *a, const kview *b) {
  const gemm *g = r->g;
  uint32_t mtiles = lower_ceil_div(mrows, r->MT);
  uint32_t s0 = (r->set_rot++ % r->nsets) * r->mt_blk; /* the set's first bank, in m-tiles */
  for (uint32_t kt0 = r->k_lo; kt0 < r->k_hi; kt0 += r->kc) {
    uint32_t kcn = lower_min_u32(r->kc, r->k_hi - kt0);
    kview av = a ? *a : (kview){&r->as[r->nb_rot % B_BUFS], mcols, 0, kt0};
    kview bv = b ? *b : (kview){&r->b[r->nb_rot % B_BUFS], ncols, 0, kt0};
    r->nb_rot++;
    if (!a) load_at(r, av.buf, bt, m0, mrows, mcols, kt0, kcn);
    if (!b) load_b(r, bv.buf, 0, bt, kt0, kcn, n0, ncols);
    for (uint32_t kk = 0; kk < kcn; kk++) {
      uint32_t kt = kt0 + kk;
      uint32_t kp = lower_min_u32(r->P, (uint32_t)(g->K - (uint64_t)kt * r->P));
      for (uint32_t mi = 0; mi < mtiles; mi++) {
        uint32_t mp = lower_min_u32(r->MT, mrows - mi * r->MT);
        ot_ap stat = kir_ap2(av.buf, kp, (kt - av.kt_base) * av.stride + av.col0 + mi * r->MT, mp, g->mm);
        for (uint32_t ni = 0; ni * r->NT < ncols; ni++) {
          uint32_t nn = lower_min_u32(r->NT, ncols - ni * r->NT);
          ot_ap mov = kir_ap2(bv.buf, kp, (kt - bv.kt_base) * bv.stride + bv.col0 + ni * r->NT, nn, g->mm);
          ot_ap dst = kir_ap2(&r->acc[(s0 + mi) * r->nt_blk + ni], mp, 0, nn, OT_DT_FP32);
          if (ni == 0) kir_matmul(r->k, dst, stat, mov, kt > r->k_lo);
          else kir_matmul_moving(r->k, dst, mov, kt > r->k_lo); /* same stationary: MultiplyMoving only */
        }
      }
    }
  }
  if (g->dact) {
    evacuate_dact(r, bt, m0, mrows, n0, ncols, s0);
    return;
  }
  for (uint32_t mi = 0; mi < mtiles && r->ksplit; mi++)
    evacuate_ksplit(r, m0 + (uint64_t)mi * r->MT, lower_min_u32(r->MT, mrows - mi * r->MT), ncols, s0 + mi);
  for (uint32_t mi = 0; mi < mtiles && !r->ksplit; mi++)
    evacuate(r, bt, m0 + (uint64_t)mi * r->MT, lower_min_u32(r->MT, mrows - mi * r->MT), n0, ncols, s0 + mi);
}

/* ---- planning and buffers ------------------------------------------------------------------- */
/* A streamed (its m-block's A^T over all of K does not fit) re-reads all of B for every m-block:
** lm_head's dx GEMM of GPT-2 124M (dlogits [2048, 50257] x W [50257, 768] per core) read W's
** 77 MB 5.3 times.  Where C fits in SBUF in fp32 and one n-block spans N, split K instead:
** k-blocks outside, each k-block of B loaded once (two alternate), every m-block inside, its sums
** over the k-block added into C (fp32, in k order: the sum rounds once more per k-block than
** PSUM's alone).  Only for a plain epilogue (a cast): the matmul's gradient GEMMs. */
static void gemm_plan_ksplit(gemm_run *r, uint32_t mtiles) {
  const gemm *g = r->g;
  bool plain = !g->has_bias && !g->has_resid && g->act == OT_ACT_COPY && !g->has_act_out && !g->dact && !g->ce_stats;
  uint64_t acc = (uint64_t)mtiles * g->N * 4, kb = KS_B_BUDGET / (g->N * esz(g->mm));
  if (!r->stream_a || !plain || g->batches != 1 || mtiles <= r->mt_blk || g->N > (uint64_t)r->nt_blk * r->NT ||
      acc > KS_ACC_BUDGET || kb < KS_MIN_KT || r->KT <= kb)
    return;
  r->ksplit = true;
  r->kb = (uint32_t)kb;
  if (r->dma_t && (!g->b_nk || r->dma_tb)) /* no PE transposes: their two PSUM banks hold accumulators */
    r->mt_blk = lower_min_u32(lower_min_u32(kir_chip(r->k)->psum.banks, 8) / r->nt_blk, mtiles);
}

static ot_status gemm_plan(gemm_run *r) {
  const gemm *g = r->g;
  const ot_chip *chip = kir_chip(r->k);
  r->P = chip->tensor.rows < chip->sbuf.partitions ? chip->tensor.rows : chip->sbuf.partitions;
  r->MT = chip->tensor.stationary_fmax < r->P ? chip->tensor.stationary_fmax : r->P;
  r->NT = chip->tensor.moving_fmax;
  uint32_t bank_f32 = (uint32_t)(chip->psum.bytes_per_partition / (chip->psum.banks ? chip->psum.banks : 1) / 4);
  if (r->NT > bank_f32) r->NT = bank_f32;
  r->KT = lower_ceil_div(g->K, r->P);
  r->nsets = 1;
  /* A [M, K] made K-major by the DMA where the chip can (Trn2+) and A is kept in the matmul type:
  ** no PE transposes, no PSUM copies (GPT-2 124M, one trn2 core B2: 52.66 -> 51.25 ms; the lm_head
  ** dx GEMM's copies held the TensorE behind the ScalarE, busy with the loss backward beside it);
  ** B [N, K] likewise (the weights' bf16 copies of the dx GEMMs: 51.25 -> 50.97 ms).  The PSUM
  ** banks the PE transposes would use stay unused: giving them to accumulators reshapes the
  ** blocks, measured slower (51.40 ms; the block forward 0.393 -> 0.401 ms), except in ksplit. */
  r->dma_t = chip->dma.transpose && !g->a_km && esz(g->mm) == 2 && g->a.dtype == (uint8_t)g->mm &&
             (!g->a_cb || g->a_cb % r->P == 0);
  r->dma_tb = chip->dma.transpose && g->b_nk && esz(g->mm) == 2 && g->b.dtype == (uint8_t)g->mm; /* B [N, K] too */
  bool transposes = !g->a_km || g->b_nk;
  uint32_t banks = chip->psum.banks - (transposes ? 2 : 0);
  if (banks > 8) banks = 8;
  uint32_t ntiles = lower_ceil_div(g->N, r->NT), mtiles = lower_ceil_div(g->M, r->MT);
  r->nt_blk = lower_min_u32(2, ntiles);
  if (r->nt_blk > banks) r->nt_blk = banks;
  r->mt_blk = lower_min_u32(banks / r->nt_blk, mtiles);
  while (r->mt_blk > 1 && (uint64_t)r->KT * r->mt_blk * r->MT * esz(g->mm) > A_BUDGET) r->mt_blk--;
  if (g->has_bias && !g->bias_rows && g->N * 4 > A_BUDGET / 2)
    return kir_fail(r->k, OT_EUNSUPPORTED, "bias of %llu elements: the kernel keeps the bias row on chip, at most %u elements",
                    (unsigned long long)g->N, A_BUDGET / 8);
  /* A^T of even one m-tile over all of K does not fit: spill -- re-read A from HBM for every
  ** n-block, streamed beside B (correct, and slower by the extra A traffic) */
  r->stream_a = (uint64_t)r->KT * r->mt_blk * r->MT * esz(g->mm) > A_BUDGET;
  if (r->stream_a) r->mt_blk = lower_min_u32(banks / r->nt_blk, mtiles);
  /* The schedule above reads B once per m-block.  When all of A^T (every m-tile over all of K)
  ** fits, and a K x 512 slice of B fits twice, keep both on chip instead: n-blocks outside,
  ** m-blocks inside, every operand byte read from HBM once -- what GEMMs with few rows (a batch
  ** of tokens times a weight matrix) need to stay compute-bound. */
  /* Except when one n-block spans all of a small B: m-blocks of whole rows then finish one after
  ** the other, so the next op (a layernorm over the rows) starts on the first ones while B is
  ** re-read cheaply (attn.c_proj of GPT-2: trn1 block 447 -> 435 us). */
  bool rows_first = !g->b_nk && ntiles <= r->nt_blk && (uint64_t)r->KT * g->N * esz(g->mm) <= B_RES_BUDGET;
  if (!r->stream_a && !rows_first && mtiles > r->mt_blk && (uint64_t)r->KT * g->M * esz(g->mm) <= A_BUDGET &&
      (uint64_t)r->KT * r->NT * esz(g->mm) <= B_RES_BUDGET) {
    r->b_res = true;
    r->nt_blk = 1;
    r->mt_blk = lower_min_u32(banks, mtiles);
    /* two sets of half the banks: an m-block's matmuls run while the previous one's banks are
    ** evacuated (each matmul loads its own stationary here, so smaller m-blocks cost nothing).
    ** GPT-2 block trn2: 466 -> 438 us.  Not where VectorE and ScalarE share the PSUM port (NC-v2):
    ** measured slower there (trn1 435 -> 442 us: c_attn and c_fc slower, mlp.c_proj faster; sets
    ** for the GEMMs without PE transposes only: 438 us), cause not found. */
    if (B_RES_SETS > 1 && banks >= 2 && mtiles > banks / 2 && !chip->ports.vector_scalar_share_psum) {
      r->nsets = 2;
      r->mt_blk = banks / 2;
    }
  }
  /* All of B on chip, m-blocks of B_ALL_MT tiles outside: A [M, K] mostly comes from a row-wise
  ** op (a layernorm) that stores its rows a tile after another; an m-block then starts as soon as
  ** its own rows are stored, where the schedules above need six or all of them for their first
  ** matmuls (GPT-2 c_attn and c_fc after ln_1 / ln_2).  Also with A K-major (a weight gradient
  ** X^T dY, X^T folded): the schedule above re-reads B for every m-block of the weight's rows --
  ** lm_head.bwd.db of GPT-2 124M, 2 x 1024 rows per core, read X 99 times (584 MB); one core's
  ** training step 69.0 -> 67.4 ms on trn2, 93.6 -> 83.7 ms on trn1. */
  uint64_t b_all_bytes = (uint64_t)r->KT * g->N * esz(g->mm);
  if (!r->stream_a && mtiles > B_ALL_MT && b_all_bytes <= B_ALL_BUDGET &&
      kir_largest_free(r->k, OT_MEM_SBUF) >= b_all_bytes + 2u * r->KT * B_ALL_MT * r->MT * esz(g->mm) + 64u * 1024u) {
    r->b_all = true;
    r->b_res = false;
    r->nt_blk = 1;
    r->mt_blk = B_ALL_MT;
    r->nsets = lower_min_u32(banks / B_ALL_MT, 8 / B_ALL_MT);
  }
  gemm_plan_ksplit(r, mtiles);
  r->k_lo = 0;
  r->k_hi = r->KT;
  uint32_t ncols = lower_min_u32(r->nt_blk * r->NT, (uint32_t)g->N);
  uint32_t mcols = lower_min_u32(r->mt_blk * r->MT, (uint32_t)g->M);
  uint32_t widest = r->stream_a && mcols > ncols ? mcols : ncols;
  r->kc = CHUNK_BYTES / (widest * esz(g->mm));
  if (r->kc < 1) r->kc = 1;
  if (r->kc > r->KT) r->kc = r->KT;
  return OT_OK;
}

static ot_status gemm_alloc(gemm_run *r) {
  const gemm *g = r->g;
  kir *k = r->k;
  uint32_t mcols = lower_min_u32(r->mt_blk * r->MT, (uint32_t)g->M);
  uint32_t ncols = lower_min_u32(r->nt_blk * r->NT, (uint32_t)g->N);
  if (r->stream_a)
    for (int i = 0; i < B_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->kc * mcols * esz(g->mm), &r->as[i]);
  else
    kir_alloc(k, OT_MEM_SBUF, r->P, r->KT * (r->b_res ? (uint32_t)g->M : mcols) * esz(g->mm), &r->at);
  if (r->b_all) {
    kir_alloc(k, OT_MEM_SBUF, r->P, r->KT * mcols * esz(g->mm), &r->at2);
    kir_alloc(k, OT_MEM_SBUF, r->P, r->KT * (uint32_t)g->N * esz(g->mm), &r->bres[0]);
  }
  if (r->b_res)
    for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->KT * ncols * esz(g->mm), &r->bres[i]);
  if (r->ksplit) {
    for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->kb * ncols * esz(g->mm), &r->bres[i]);
    kir_alloc(k, OT_MEM_SBUF, r->P, lower_ceil_div(g->M, r->MT) * (uint32_t)g->N * 4, &r->cacc);
  }
  for (int i = 0; i < B_BUFS && !r->ksplit; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->kc * ncols * esz(g->mm), &r->b[i]);
  /* (a dact epilogue's program works in fp32 there, y doubling as a temporary; the store rounds) */
  for (int i = 0; i < STAGE_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, ncols * (g->dact ? 4 : esz(g->ydt)), &r->stage[i]);
  for (int i = 0; i < STAGE_BUFS && g->has_act_out; i++)
    kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz((ot_dtype)g->act_out.dtype), &r->stage2[i]);
  for (int i = 0; i < STAGE_BUFS && g->dact && esz(g->ydt) == 2; i++)
    kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz(g->ydt), &r->stage2[i]);
  if (g->has_bias)
    kir_alloc(k, OT_MEM_SBUF, r->P, (g->bias_rows ? lower_ceil_div(g->M, r->MT) : (uint32_t)g->N) * 4, &r->bias);
  if ((g->has_bias && g->act != OT_ACT_COPY) || g->has_resid)
    kir_alloc(k, OT_MEM_SBUF, r->P, r->nsets * r->mt_blk * r->nt_blk * r->NT * 4, &r->tmp);
  if (g->has_resid)
    for (int i = 0; i < STAGE_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz((ot_dtype)g->resid.dtype), &r->rbuf[i]);
  if (g->dact) {
    for (int i = 0; i < STAGE_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz(elem_load_dtype(&g->dact_x)), &r->xbuf[i]);
    for (int i = 0; i < DACT_UNITS; i++)
      for (unsigned j = 0; j < r->dprog.n_tmp; j++) kir_alloc(k, OT_MEM_SBUF, r->P, r->NT * 4, &r->dtmp[i][j]);
  }
  if ((!g->a_km && !r->dma_t) || (g->b_nk && !r->dma_tb)) {
    uint32_t nat = g->a_km || r->stream_a ? r->kc * r->P : (uint32_t)g->K;
    if (g->b_nk && r->kc * r->P > nat) nat = r->kc * r->P;
    /* several row tiles in flight: each load overlaps the previous tile's transposes */
    uint32_t want = lower_min_u32(NAT_BUFS, NAT_BUDGET / (nat * esz(g->mm)));
    kir_alloc(k, OT_MEM_SBUF, r->P, nat * esz(g->mm), &r->anat[0]);
    /* the extra ones only where SBUF has room (the last SBUF buffers of the run): a GEMM beside
    ** large live tensors (GPT-2 training, batch 2 x 1024) keeps one and stays correct */
    for (r->nat_n = 1; r->nat_n < want && kir_largest_free(k, OT_MEM_SBUF) >= nat * esz(g->mm); r->nat_n++)
      kir_alloc(k, OT_MEM_SBUF, r->P, nat * esz(g->mm), &r->anat[r->nat_n]);
    uint32_t bank = (uint32_t)(kir_chip(k)->psum.bytes_per_partition / kir_chip(k)->psum.banks);
    for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_PSUM, r->P, bank, &r->tp[i]);
  }
  for (uint32_t i = 0; i < r->nsets * r->mt_blk * r->nt_blk; i++) kir_alloc(k, OT_MEM_PSUM, r->P, r->NT * 4, &r->acc[i]);
  return kir_status(k);
}

/* Every buffer of the run (SBUF and PSUM), allocated or not; returns how many. */
static unsigned gemm_bufs(gemm_run *r, kir_buf **all) {
  unsigned n = 0;
  kir_buf *one[] = {&r->at, &r->at2, &r->bias, &r->tmp, &r->tp[0], &r->tp[1], &r->bres[0], &r->bres[1], &r->cst, &r->cjunk,
                    &r->cacc};
  for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) all[n++] = one[i];
  for (int i = 0; i < 8; i++) all[n++] = &r->acc[i];
  for (int i = 0; i < B_BUFS; i++) { all[n++] = &r->as[i]; all[n++] = &r->b[i]; }
  for (int i = 0; i < NAT_BUFS; i++) all[n++] = &r->anat[i];
  for (int i = 0; i < STAGE_BUFS; i++) {
    all[n++] = &r->stage[i]; all[n++] = &r->rbuf[i]; all[n++] = &r->stage2[i]; all[n++] = &r->xbuf[i];
  }
  for (int i = 0; i < DACT_UNITS; i++) { all[n++] = &r->dtmp[i][0]; all[n++] = &r->dtmp[i][1]; }
  return n;
}
#define GEMM_NBUFS (11 + 8 + 2 * B_BUFS + NAT_BUFS + 4 * STAGE_BUFS + 2 * DACT_UNITS)

static void gemm_release(gemm_run *r) {
  kir_buf *all[GEMM_NBUFS];
  unsigned n = gemm_bufs(r, all);
  for (unsigned i = 0; i < n; i++) {
    kir_release(r->k, all[i]);
    memset(all[i], 0, sizeof *all[i]);
  }
}

/* The SBUF buffers at the top of the largest free range rather than at its bottom, where the
** previous op's buffers were (first fit): the loads of the weights and first tiles then need not
** wait for that op's last readers of the same bytes.  Only when the first placement was one
** contiguous range and a hole that large is left beside the pad, so the second always fits. */
static ot_status gemm_alloc_high(gemm_run *r) {
  kir *k = r->k;
  if (gemm_alloc(r)) return kir_status(k);
  kir_buf *all[GEMM_NBUFS];
  unsigned n = gemm_bufs(r, all);
  uint32_t lo = UINT32_MAX, hi = 0, total = 0;
  for (unsigned i = 0; i < n; i++) {
    if (!all[i]->bytes || all[i]->mem != OT_MEM_SBUF) continue;
    if (all[i]->off < lo) lo = all[i]->off;
    if (all[i]->off + all[i]->bytes > hi) hi = all[i]->off + all[i]->bytes;
    total += all[i]->bytes;
  }
  uint32_t span = hi > lo ? hi - lo : 0;
  if (span != total) return OT_OK; /* fragmented: keep the first-fit placement */
  gemm_release(r);
  uint32_t avail = kir_largest_free(k, OT_MEM_SBUF);
  kir_buf pad = {0};
  if (avail >= span + 128u && kir_alloc(k, OT_MEM_SBUF, r->P, (avail - span) / 64u * 64u - 64u, &pad) == OT_OK &&
      kir_largest_free(k, OT_MEM_SBUF) < span) { /* the pad took the only hole that large: place as before */
    kir_release(k, &pad);
    pad.bytes = 0;
  }
  gemm_alloc(r);
  kir_release(k, &pad);
  return kir_status(k);
}

/* n-blocks outside, m-blocks inside; A^T of all rows and the n-block's B slice on chip. */
static void gemm_b_resident(gemm_run *r, uint32_t bt, uint32_t mb, uint32_t nbk) {
  const gemm *g = r->g;
  load_at(r, &r->at, bt, 0, (uint32_t)g->M, (uint32_t)g->M, 0, r->KT);
  for (uint64_t n0 = 0; n0 < g->N && !kir_status(r->k); n0 += nbk) {
    uint32_t ncols = (uint32_t)(g->N - n0 < nbk ? g->N - n0 : nbk);
    const kir_buf *bs = &r->bres[r->nb_rot++ % 2];
    for (uint32_t kt0 = 0; kt0 < r->KT; kt0 += r->kc) /* in chunks: the first matmuls start early */
      load_b(r, bs, kt0 * ncols, bt, kt0, lower_min_u32(r->kc, r->KT - kt0), n0, ncols);
    kview bv = {bs, ncols, 0, 0};
    for (uint64_t m0 = 0; m0 < g->M; m0 += mb) {
      kview av = {&r->at, (uint32_t)g->M, (uint32_t)m0, 0};
      gemm_block(r, bt, m0, (uint32_t)(g->M - m0 < mb ? g->M - m0 : mb), (uint32_t)g->M, n0, ncols, &av, &bv);
    }
  }
}

/* b_all: B once, n-block by n-block (block j at element K-tiles x n0, its k-tile kt at + kt x
** ncols); then m-blocks, each with its own A^T buffer (two alternate), over every n-block. */
static void gemm_b_all(gemm_run *r, uint32_t bt, uint32_t mb, uint32_t nbk) {
  const gemm *g = r->g;
  for (uint64_t n0 = 0; (bt == 0 || g->b_bs) && n0 < g->N && !kir_status(r->k); n0 += nbk) { /* B shared by batches: once */
    uint32_t ncols = (uint32_t)(g->N - n0 < nbk ? g->N - n0 : nbk);
    for (uint32_t kt0 = 0; kt0 < r->KT; kt0 += r->kc)
      load_b(r, &r->bres[0], (uint32_t)(r->KT * n0) + kt0 * ncols, bt, kt0, lower_min_u32(r->kc, r->KT - kt0), n0, ncols);
  }
  uint32_t i = 0;
  for (uint64_t m0 = 0; m0 < g->M && !kir_status(r->k); m0 += mb, i++) {
    uint32_t mrows = (uint32_t)(g->M - m0 < mb ? g->M - m0 : mb);
    const kir_buf *at = i % 2 ? &r->at2 : &r->at;
    load_at(r, at, bt, m0, mrows, mb, 0, r->KT);
    kview av = {at, mb, 0, 0};
    for (uint64_t n0 = 0; n0 < g->N && !kir_status(r->k); n0 += nbk) {
      uint32_t ncols = (uint32_t)(g->N - n0 < nbk ? g->N - n0 : nbk);
      kview bv = {&r->bres[0], ncols, (uint32_t)(r->KT * n0), 0};
      gemm_block(r, bt, m0, mrows, mb, n0, ncols, &av, &bv);
    }
  }
}

/* ksplit: k-blocks outside, each k-block of B loaded once; every m-block inside (A streamed). */
static void gemm_ksplit(gemm_run *r, uint32_t mb) {
  const gemm *g = r->g;
  uint32_t ncols = (uint32_t)g->N, j = 0, mcols = lower_min_u32(mb, (uint32_t)g->M);
  for (uint32_t k0 = 0; k0 < r->KT && !kir_status(r->k); k0 += r->kb, j++) {
    uint32_t kn = lower_min_u32(r->kb, r->KT - k0);
    const kir_buf *bs = &r->bres[j % 2];
    for (uint32_t kt0 = k0; kt0 < k0 + kn; kt0 += r->kc)
      load_b(r, bs, (kt0 - k0) * ncols, 0, kt0, lower_min_u32(r->kc, k0 + kn - kt0), 0, ncols);
    kview bv = {bs, ncols, 0, k0};
    r->k_lo = k0;
    r->k_hi = k0 + kn;
    for (uint64_t m0 = 0; m0 < g->M && !kir_status(r->k); m0 += mb)
      gemm_block(r, 0, m0, (uint32_t)(g->M - m0 < mb ? g->M - m0 : mb), mcols, 0, ncols, NULL, &bv);
  }
}

/* The cross-entropy statistics (g->ce_stats): their buffers beside the GEMM's where SBUF has room
** for them, and the tensor they go to. */
static ot_status gemm_ce_begin(gemm_run *r) {
  const gemm *g = r->g;
  kir *k = r->k;
  uint32_t mtiles = lower_ceil_div(g->M, r->MT);
  r->cnch = lower_ceil_div(g->N, r->NT);
  uint64_t bytes = (uint64_t)mtiles * 2 * r->cnch * 4;
  if (!g->ce_stats || g->batches != 1 || bytes > CE_STATS_BUDGET || !kir_can_alloc(k, OT_MEM_SBUF, (uint32_t)bytes))
    return OT_OK;
  kir_alloc(k, OT_MEM_SBUF, r->P, (uint32_t)bytes, &r->cst);
  if (!kir_can_alloc(k, OT_MEM_SBUF, r->NT * 4)) {
    kir_release(k, &r->cst);
    memset(&r->cst, 0, sizeof r->cst);
    return OT_OK;
  }
  kir_alloc(k, OT_MEM_SBUF, r->P, r->NT * 4, &r->cjunk);
  uint64_t shape[2] = {g->M, 2ull * r->cnch};
  if (kir_tensor(k, g->ce_name, OT_DT_FP32, 2, shape, OT_ROLE_SCRATCH, NULL, g->ce_part)) return kir_status(k);
  *g->ce_chunks = r->cnch;
  r->ce = true;
  return OT_OK;
}

/* Every m-tile's statistics to HBM, once all columns have passed. */
static void gemm_ce_end(gemm_run *r) {
  const gemm *g = r->g;
  uint32_t w = 2 * r->cnch;
  for (uint64_t m = 0; r->ce && m < g->M; m += r->MT) {
    uint32_t mp = (uint32_t)(g->M - m < r->MT ? g->M - m : r->MT);
    int64_t hs[2] = {w, 1};
    uint32_t hz[2] = {mp, w};
    kir_dma(r->k, kir_hbm_ap(g->ce_part, m * w, 2, hs, hz), kir_ap2(&r->cst, mp, (uint32_t)(m / r->MT) * w, w, OT_DT_FP32),
            OT_ENG_COUNT);
  }
}

static ot_status gemm_lower(kir *k, const gemm *g) {
  gemm_run r;
  memset(&r, 0, sizeof r);
  r.k = k;
  r.g = g;
  if (g->dact) {
    r.dprog.n = g->dact;
    elem_act_bwd_body(&r.dprog);
  }
  if (gemm_plan(&r) || gemm_alloc_high(&r) || gemm_ce_begin(&r)) { gemm_release(&r); return kir_status(k); }
  uint32_t mb = r.mt_blk * r.MT, nbk = r.nt_blk * r.NT;
  if (g->has_bias) load_bias(&r);
  for (uint32_t bt = 0; bt < g->batches && !kir_status(k); bt++) {
    if (r.b_res) {
      gemm_b_resident(&r, bt, mb, nbk);
      continue;
    }
    if (r.b_all) {
      gemm_b_all(&r, bt, mb, nbk);
      continue;
    }
    if (r.ksplit) {
      gemm_ksplit(&r, mb);
      continue;
    }
    for (uint64_t m0 = 0; m0 < g->M && !kir_status(k); m0 += mb) {
      uint32_t mrows = (uint32_t)(g->M - m0 < mb ? g->M - m0 : mb);
      uint32_t mcols = lower_min_u32(mb, (uint32_t)g->M);
      kview av = {&r.at, mcols, 0, 0};
      if (!r.stream_a) load_at(&r, &r.at, bt, m0, mrows, mcols, 0, r.KT);
      for (uint64_t n0 = 0; n0 < g->N && !kir_status(k); n0 += nbk)
        gemm_block(&r, bt, m0, mrows, mcols, n0, (uint32_t)(g->N - n0 < nbk ? g->N - n0 : nbk), r.stream_a ? NULL : &av, NULL);
    }
  }
  gemm_ce_end(&r);
  gemm_release(&r);
  return kir_status(k);
}

/* ---- graph ops -------------------------------------------------------------------------------- */
static uint64_t lead(const ot_gtensor *t, unsigned keep) {
  uint64_t n = 1;
  for (unsigned d = 0; d + keep < t->ndim; d++) n *= (uint64_t)t->shape[d];
  return n;
}

static void gemm_epilogue(const lower_ctx *c, const ot_gnode *n, gemm *g) {
  g->act = OT_ACT_COPY;
  const lower_epilogue *e = c->epi ? &c->epi[n - c->g->node] : NULL;
  if (e && e->act != OT_ACT_COPY) g->act = e->act;
  if (e && e->bias != OT_TID_NONE) { g->has_bias = true; g->bias = c->hbm[e->bias]; }
  if (e && e->residual != OT_TID_NONE) { g->has_resid = true; g->resid = c->hbm[e->residual]; }
  if (e && e->act_out != OT_TID_NONE) { g->has_act_out = true; g->act_out = c->hbm[e->act_out]; g->act2 = e->act2; }
  if (e && e->dact >= 0) {
    g->dact = &c->g->node[e->dact];
    g->dact_x = c->hbm[g->dact->in[0]];
  }
  g->ce_stats = e && e->ce_stats;
}

/* Where a matmul reads operand t: a weight's matmul-type copy where there is one (compile_dp.c:
** the same values the loads would round to), else t's own bytes. */
static kir_hbm mm_operand(const lower_ctx *c, ot_tid t) {
  kir_hbm h = c->hbm[t];
  if (!c->mm_copy || h.dtype != OT_DT_FP32) return h;
  for (uint32_t u = 0; u < c->g->n_t; u++)
    if (c->mm_copy[u].index >= 0 && c->hbm[u].off == h.off && c->mm_copy[u].dtype == (uint8_t)c->opt->matmul_dtype)
      return c->mm_copy[u];
  return h;
}

static void matmul_gemm(const lower_ctx *c, const ot_gnode *n, gemm *g) {
  const ot_gtensor *b = &c->g->t[n->in[1]], *y = &c->g->t[n->out[0]];
  memset(g, 0, sizeof *g);
  g->b_nk = n->i[0] != 0;
  g->M = (uint64_t)y->shape[y->ndim - 2];
  g->N = (uint64_t)y->shape[y->ndim - 1];
  g->K = (uint64_t)b->shape[g->b_nk ? b->ndim - 1 : b->ndim - 2];
  g->batches = (uint32_t)lead(y, 2);
  g->a = mm_operand(c, n->in[0]);
  g->a_km = c->a_transposed && c->a_transposed[n - c->g->node];
  g->a_cb = c->col_block ? c->col_block[n->in[0]] : 0;
  g->a_bs = g->M * g->K;
  g->b = mm_operand(c, n->in[1]);
  g->b_bs = b->ndim > 2 ? g->K * g->N : 0;
  g->y = c->hbm[n->out[0]];
  g->y_bs = g->M * g->N;
  g->mm = c->opt->matmul_dtype;
  g->ydt = (ot_dtype)g->y.dtype; /* the type y is kept in (compile.c storage_dtype) */
  gemm_epilogue(c, n, g);
  /* b shared by every batch, a and y row-major: the batches are one taller GEMM (as linear's
  ** leading dims are), so B is read -- and, from [N, K], transposed -- once, not per batch
  ** (GPT-2's dx GEMMs at B2: each weight read and PE-transposed twice) */
  if (g->batches > 1 && !g->b_bs && !g->a_km && !g->bias_rows) {
    g->M *= g->batches;
    g->batches = 1;
  }
}

ot_status lower_matmul(lower_ctx *c, const ot_gnode *n) {
  gemm g;
  matmul_gemm(c, n, &g);
  char name[300];
  if (g.ce_stats) {
    snprintf(name, sizeof name, "%s.ce_part%s", n->name, c->name_suffix ? c->name_suffix : "");
    g.ce_name = name;
    g.ce_part = &c->epi[n - c->g->node].ce_part;
    g.ce_chunks = &c->epi[n - c->g->node].ce_chunks;
  }
  return gemm_lower(c->k, &g);
}

uint32_t lower_matmul_b_passes(lower_ctx *c, const ot_gnode *n) {
  if (n->op != OT_GOP_MATMUL) return 1;
  gemm g;
  matmul_gemm(c, n, &g);
  if (g.has_bias) return 1; /* (gemm_plan may refuse a long bias row: not this question's concern) */
  gemm_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.g = &g;
  if (gemm_plan(&r)) return 1;
  if (r.b_res || r.b_all) return 1;
  return lower_ceil_div(g.M, (uint64_t)r.mt_blk * r.MT) * g.batches;
}

ot_status lower_linear(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = &c->g->t[n->in[0]], *y = &c->g->t[n->out[0]];
  gemm g;
  memset(&g, 0, sizeof g);
  g.b_nk = n->i[0] != 0;
  g.K = (uint64_t)x->shape[x->ndim - 1];
  g.N = (uint64_t)y->shape[y->ndim - 1];
  g.M = lead(x, 1); /* every leading dim folds into M: one weight for all rows */
  g.batches = 1;
  g.a = mm_operand(c, n->in[0]);
  g.a_km = c->a_transposed && c->a_transposed[n - c->g->node];
  g.b = mm_operand(c, n->in[1]);
  g.y = c->hbm[n->out[0]];
  g.mm = c->opt->matmul_dtype;
  g.ydt = (ot_dtype)g.y.dtype;
  gemm_epilogue(c, n, &g);
  if (n->n_in > 2 && n->in[2] != OT_TID_NONE) { g.has_bias = true; g.bias = c->hbm[n->in[2]]; }
  if (c->epi && c->epi[n - c->g->node].y_t) { /* y^T = w^T x^T: w the stationary, x the moving operand */
    gemm t = g;
    t.M = g.N;
    t.N = g.M;
    t.a = g.b;
    t.a_km = !g.b_nk;
    t.b = g.a;
    t.b_nk = !g.a_km;
    t.bias_rows = true;
    return gemm_lower(c->k, &t);
  }
  return gemm_lower(c->k, &g);
}

/* ---- y^T between two linears -------------------------------------------------------------- */
/* The linear node whose result is t, looking through an activation fused into it; -1 if none. */
static int32_t linear_producer(const lower_ctx *c, ot_tid t) {
  const ot_graph *g = c->g;
  int32_t p = g->t[t].producer;
  if (p >= 0 && c->fused_away[p] && (g->node[p].op == OT_GOP_GELU || g->node[p].op == OT_GOP_SILU))
    p = g->t[g->node[p].in[0]].producer;
  if (p < 0 || c->fused_away[p] || g->node[p].op != OT_GOP_LINEAR) return -1;
  return p;
}

void lower_fuse_linear_chain(lower_ctx *c, const uint32_t *uses) {
  const ot_graph *g = c->g;
  uint32_t P = c->chip->tensor.rows;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (n->op != OT_GOP_LINEAR || c->fused_away[i] || c->a_transposed[i]) continue;
    ot_tid x = n->in[0];
    int32_t p = linear_producer(c, x);
    if (p < 0 || uses[x] != 1 || g->t[x].is_output || c->epi[p].residual != OT_TID_NONE || c->epi[p].y_t ||
        c->epi[p].act_out != OT_TID_NONE)
      continue;
    const ot_gtensor *y = &g->t[g->node[p].out[0]];
    if (lead(y, 1) < P || (uint64_t)y->shape[y->ndim - 1] < P) continue; /* a few rows: y is fine as it is */
    c->epi[p].y_t = true;
    c->a_transposed[i] = true;
  }
}

bool lower_stores_transposed(const lower_ctx *c, ot_tid t) {
  int32_t p = c->epi ? linear_producer(c, t) : -1;
  return p >= 0 && c->epi[p].y_t;
}
