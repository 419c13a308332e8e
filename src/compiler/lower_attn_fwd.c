/* Attention forward with transposed scores: two passes, no online rescaling (D < 128).
**
** Why (docs/compiler-attention.md, "transposed-score forward"): lower_attn.c's online kernel
** reads every score chunk from PSUM three times on the VectorE/ScalarE (max, exp, P^T copy) and
** transposes P on the PE; on NC-v2 those two engines share one PSUM port, which bounds it.  Here
** P^T comes straight out of the exp, and each score is read from PSUM twice:
**   pass 1, per 128-row query tile, its visible keys (chunks of 512, adjacent PSUM banks):
**     S = (scale Q) K^T [+ I . mask]                     TensorE (attn_scores, as lower_attn.c)
**     -m = -rowmax S                                      VectorE tensor_reduce (negated), one per
**                                                         tile; on NC-v2 from a ScalarE copy of S
**                                                         in the 16-bit matmul type (see p1copy)
**     row D of Q^T_aug = -m                               SBUF-to-SBUF DMA (column -> row)
**   pass 2, per block of up to four query tiles (512 query columns) and 128-key block:
**     S^T - m = K_aug Q^T_aug [+ I . mask^T]              TensorE: K^T_aug [D+1, S] has a row of
**                                                         ones, so row D adds -m to every column
**     P^T = exp(S^T - m)                                  ScalarE, PSUM -> SBUF (matmul type)
**     [O | l] += P [V | 1]                                TensorE: stationary P^T (queries out);
**                                                         V_aug's ones column gives l = rowsum P
**   y = O / l (VectorE, from PSUM), stored.
** With a backward in the graph, each row's -m (as the exps saw it, in the matmul type) and l go to
** "<node>.stats" [2, B x Hq x S] fp32: the backward then needs no statistics pass of its own.
** The S x S scores never leave the chip.  Every exp sees the row's final max (rounded to the
** matmul type: any value near the max works), so nothing is rescaled; l sums the same P that
** multiplies V.  Software pipeline over all blocks of all kv heads (engine streams are in
** order): block n+2's Q loads and transposes, block n+1's pass 1 and block n's pass 2 are
** emitted in that order; the kv heads' K^T_aug / V_aug rotate over three resident slots, the
** next head's load emitted when a head's first block begins. */
#include <string.h>

#include "compiler/lower_attn_int.h"

#define TF_BT 4   /* query tiles per block: 512 query columns, one fp32 PSUM bank of S^T */
#define TF_LA 2    /* pass 2: key blocks whose scores are emitted ahead of the PV in work */
#define TF_NB 3   /* query blocks in flight: one in pass 2, the next in pass 1, the one after loading */
#define TF_KV 3   /* kv heads resident: blocks of two heads in flight, the next head loading */
#define TF_NO 2   /* [O | l] PSUM sets (blocks in pass 2 or finishing) */
#define TF_NS 6   /* score banks (PSUM, at most: as many as are left), shared by the two passes */
#define TF_NP 4   /* P^T buffers (SBUF) */
#define TF_LOAD_TILES 2 /* 128-row K or V tiles per DMA where a DMA trigger is cheap */
#define TF_NC 3   /* bf16 copies of pass-1 scores (SBUF), where the ScalarE copies them */

typedef struct {
  uint32_t hq, q0, nq, col, kend; /* col: the tile's first column in the block's Q^T_aug */
  uint64_t qoff, yoff;
} tf_tile;

typedef struct {
  tf_tile t[TF_BT];
  uint32_t b, nt, ncols, slot, oslot, h; /* b: batch; h: the kv head's resident slot */
  bool uni; /* DMAs batched and full tiles of one head, consecutive rows: one DMA loads its Q, one stores its y */
} tf_block;

typedef struct {
  kir *k;
  const attn_shape *a;
  uint32_t P, KT, W, nchunk;                        /* W = D + 1 */
  kir_buf kT[TF_KV], vn[TF_KV], knat[TF_KV], tpk;  /* resident K^T_aug [W, S], V_aug, K rows per kv head */
  kir_buf qn[TF_NB], nmb[TF_NB], st[TF_NB], ysb[TF_NB]; /* per block: Q rows, -m, chunk maxima, y */
  kir_buf qTa[TF_NB], ops[TF_NO];                  /* Q^T_aug [W, 512]; [O | l] per tile (PSUM) */
  kir_buf sps[TF_NS], pT[TF_NP], tp, masks, maskT;  /* maskT: [P, P] mask^T, then the identity */
  uint32_t rot_s, rot_p, ns, rot_c, lt;
  bool p1copy, batch; /* pass-1 scores copied by the ScalarE; DMAs batched per block */
  kir_buf ssb[TF_NC];
  const kir_hbm *saved;                             /* statistics for the backward, or NULL */
  kir_buf lsb[TF_NB];                               /* a block's l, out of PSUM for the store */
} tf_run;

/* S rows at element `base` of t (rows `stride` apart) into nat [P, KT x W]: tile kt at column
** kt*W, D columns (column D of each tile is the ones column, set once), r->lt tiles per DMA:
** where triggers are cheap the transfers spread over the queues, so a head's keys arrive in a
** fraction of the time one queue takes. */
static void tf_load_tiles(tf_run *r, const kir_hbm *t, uint64_t base, uint64_t stride, const kir_buf *nat) {
  const attn_shape *a = r->a;
  uint32_t P = r->P, full = a->S / P, rest = a->S - full * P;
  for (uint32_t t0 = 0; t0 < full; t0 += r->lt) {
    uint32_t n = lower_min_u32(r->lt, full - t0);
    int64_t hs[3] = {(int64_t)stride, (int64_t)P * (int64_t)stride, 1};
    uint32_t hz[3] = {P, n, a->D};
    int32_t ss[2] = {(int32_t)r->W, 1};
    uint32_t sz[2] = {n, a->D};
    kir_dma(r->k, kir_ap(nat, 0, P, t0 * r->W * attn_esz(a->mm), a->mm, 2, ss, sz),
            kir_hbm_ap(t, base + (uint64_t)t0 * P * stride, 3, hs, hz), OT_ENG_COUNT);
  }
  if (rest) attn_load_rows(r->k, nat, full * r->W, a->mm, t, base + (uint64_t)full * P * stride, rest, a->D, stride);
}

/* The ones column (element D of every W-element tile) of nat. */
static void tf_ones_column(tf_run *r, const kir_buf *nat) {
  int32_t ss[1] = {(int32_t)r->W};
  uint32_t sz[1] = {r->KT};
  kir_memset(r->k, OT_ENG_GPSIMD, kir_ap(nat, 0, r->P, r->a->D * attn_esz(r->a->mm), r->a->mm, 1, ss, sz), 1.0f);
}

/* K^T_aug and V_aug of kv head (b, g) into slot h. */
static void tf_load_kv(tf_run *r, uint32_t b, uint32_t g, uint32_t h) {
  const attn_shape *a = r->a;
  attn_shape aw = *a;
  aw.D = r->W; /* the transposes move D + 1 columns per tile */
  tf_load_tiles(r, &a->k, attn_view_at(&a->vk, b, g, 0), a->vk.ss, &r->knat[h]);
  tf_load_tiles(r, &a->v, attn_view_at(&a->vv, b, g, 0), a->vv.ss, &r->vn[h]);
  attn_transpose_tiles(r->k, &aw, &r->knat[h], &r->tpk, &r->kT[h]);
}

/* Causal: maskT [P, P] (key p, query j): 0 where j >= p, else ATTN_NEG_FILL, then the identity
** (pass 2's diagonal squares); lower_attn.c's diagonal masks (pass 1). */
static void tf_masks_init(tf_run *r) {
  kir *k = r->k;
  uint32_t P = r->P;
  int32_t up = 1, down = -1;
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(&r->maskT, P, 0, 2 * P, r->a->mm), 0.0f);
  ot_ap m = kir_ap2(&r->maskT, P, 0, P, r->a->mm), id = kir_ap2(&r->maskT, P, P, P, r->a->mm);
  kir_affine_select(k, m, m, OT_ALU_GE, 0, -1, 1, &up, ATTN_NEG_FILL);
  kir_affine_select(k, id, id, OT_ALU_NE, 0, 1, 1, &down, 1.0f);
  attn_masks_init(k, &r->masks, P, r->a->mm);
}

/* rows [0, P) x tiles [0, nt) x D of a uniform block's HBM rows (row stride ss) at eoff. */
static ot_ap tf_block_hbm(const tf_run *r, const kir_hbm *t, uint64_t eoff, uint64_t ss, uint32_t nt) {
  int64_t hs[3] = {(int64_t)ss, (int64_t)r->P * (int64_t)ss, 1};
  uint32_t hz[3] = {r->P, nt, r->a->D};
  return kir_hbm_ap(t, eoff, 3, hs, hz);
}

/* [P, nt, D] of a per-block buffer (tile i at column i*D). */
static ot_ap tf_block_sb(const tf_run *r, const kir_buf *b, uint32_t nt, ot_dtype dt) {
  int32_t ss[2] = {(int32_t)r->a->D, 1};
  uint32_t sz[2] = {nt, r->a->D};
  return kir_ap(b, 0, r->P, 0, dt, 2, ss, sz);
}

/* Start block bl (its tiles' q0 and hq set): Q rows, Q^T of each tile into the PSUM buffer tp. */
static void tf_block_begin(tf_run *r, uint32_t b, tf_block *bl) {
  const attn_shape *a = r->a;
  bl->uni = r->batch;
  bl->b = b;
  for (uint32_t i = 0; i < bl->nt; i++) {
    tf_tile *t = &bl->t[i];
    t->nq = lower_min_u32(r->P, a->S - t->q0);
    t->qoff = attn_view_at(&a->vq, b, t->hq, t->q0);
    t->yoff = attn_view_at(&a->vy, b, t->hq, t->q0);
    t->kend = a->causal ? t->q0 + t->nq : a->S;
    t->col = bl->ncols;
    bl->ncols += t->nq;
    bl->uni = bl->uni && t->nq == r->P && t->hq == bl->t[0].hq && t->q0 == bl->t[0].q0 + i * r->P;
  }
  const kir_buf *qn = &r->qn[bl->slot];
  if (bl->uni)
    kir_dma(r->k, tf_block_sb(r, qn, bl->nt, a->mm), tf_block_hbm(r, &a->q, bl->t[0].qoff, a->vq.ss, bl->nt), OT_ENG_COUNT);
  else
    for (uint32_t i = 0; i < bl->nt; i++)
      attn_load_rows(r->k, qn, i * a->D, a->mm, &a->q, bl->t[i].qoff, bl->t[i].nq, a->D, a->vq.ss);
  for (uint32_t i = 0; i < bl->nt; i++)
    kir_transpose(r->k, kir_ap2(&r->tp, a->D, bl->t[i].col, bl->t[i].nq, a->mm),
                  kir_ap2(qn, bl->t[i].nq, i * a->D, a->D, a->mm));
}

/* (scale Q)^T of the whole block out of PSUM in one copy, into rows 0..D-1 of its Q^T_aug (pass 1
** reads those rows); the ScalarE where it shares the PSUM port with the VectorE (NC-v2), which
** carries pass 1's reductions, else the VectorE (the ScalarE carries the exps). */
static void tf_block_qT(tf_run *r, const tf_block *bl) {
  const attn_shape *a = r->a;
  ot_engine e = kir_chip(r->k)->ports.vector_scalar_share_psum ? OT_ENG_SCALAR : OT_ENG_VECTOR;
  kir_ts(r->k, e, kir_ap2(&r->qTa[bl->slot], a->D, 0, bl->ncols, a->mm), kir_ap2(&r->tp, a->D, 0, bl->ncols, a->mm),
         OT_ALU_MUL, a->scale, NULL, OT_ALU_BYPASS, 0.0f, NULL);
}

/* Row D of the block's Q^T_aug = -m: the per-tile columns made one row by small SBUF-to-SBUF
** DMAs (any start partition; no PE transpose, no PSUM read), cast to the matmul type; one DMA for
** a uniform block (element (p, i) to column i*P + p).  Issued by the GpSimd, otherwise idle. */
static void tf_neg_max_row(tf_run *r, const tf_block *bl, ot_dtype ndt) {
  const attn_shape *a = r->a;
  const kir_buf *q = &r->qTa[bl->slot], *nmb = &r->nmb[bl->slot];
  if (bl->uni) {
    int32_t ds[2] = {1, (int32_t)r->P};
    uint32_t dz[2] = {r->P, bl->nt};
    kir_dma(r->k, kir_ap(q, a->D, 1, 0, a->mm, 2, ds, dz), kir_ap2(nmb, r->P, 0, bl->nt, ndt), OT_ENG_GPSIMD);
    return;
  }
  for (uint32_t i = 0; i < bl->nt; i++) {
    int32_t one[1] = {1};
    uint32_t n1[1] = {bl->t[i].nq};
    kir_dma(r->k, kir_ap(q, a->D, 1, bl->t[i].col * attn_esz(a->mm), a->mm, 1, one, n1), kir_ap2(nmb, bl->t[i].nq, i, 1, ndt),
            OT_ENG_GPSIMD);
  }
}

/* nch score banks for one tile, consecutive in the rotation; *span = one PSUM range [P, nch x
** KCHUNK] over them when they are adjacent and a chunk fills its bank (one reduction per row). */
static uint32_t tf_score_banks(tf_run *r, uint32_t nch, kir_buf *span) {
  uint32_t bank = attn_bank_bytes(kir_chip(r->k)), j = r->rot_s % r->ns;
  memset(span, 0, sizeof *span);
  if (nch > r->ns || KCHUNK * 4 != bank) { r->rot_s += nch; return j; }
  if (j + nch > r->ns) r->rot_s += r->ns - j, j = 0;
  r->rot_s += nch;
  for (uint32_t c = 1; c < nch; c++)
    if (r->sps[j + c].off != r->sps[j].off + c * bank) return j;
  *span = r->sps[j];
  span->bytes = nch * bank;
  return j;
}

/* Pass 1 of a block: each tile's negated row max over its visible keys (scores in adjacent banks,
** one reduction per row where they are), then row D of Q^T_aug. */
static void tf_pass1(tf_run *r, const tf_block *bl, uint32_t h) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  const kir_buf *st = &r->st[bl->slot];
  ot_dtype ndt = r->p1copy ? a->mm : OT_DT_FP32; /* the type of -m (nmb) */
  for (uint32_t i = 0; i < bl->nt; i++) {
    const tf_tile *t = &bl->t[i];
    uint32_t nch = lower_ceil_div(t->kend, KCHUNK);
    ot_ap qT = kir_ap2(&r->qTa[bl->slot], a->D, t->col, t->nq, a->mm);
    kir_buf span;
    uint32_t j = tf_score_banks(r, nch, &span);
    bool cp = r->p1copy && span.bytes;
    ot_ap nm = kir_ap2(&r->nmb[bl->slot], t->nq, i, 1, ndt);
    for (uint32_t ci = 0; ci < nch; ci++) {
      uint32_t c0 = ci * KCHUNK;
      ot_ap sc = attn_scores(k, a, &r->sps[(j + ci) % r->ns], &r->masks, qT, &r->kT[h], t->q0, t->nq, c0,
                             lower_min_u32(KCHUNK, t->kend - c0));
      if (!span.bytes) kir_reduce(k, nch == 1 ? nm : attn_col(st, t->nq, i * r->nchunk + ci), sc, OT_ALU_MAX, 1, true);
    }
    if (cp) { /* ScalarE copy to bf16 SBUF (1.4 GHz), VectorE max at 2 per cycle off the PSUM port */
      const kir_buf *sb = &r->ssb[r->rot_c++ % TF_NC];
      kir_copy(k, OT_ENG_SCALAR, kir_ap2(sb, t->nq, 0, t->kend, a->mm), kir_ap2(&span, t->nq, 0, t->kend, OT_DT_FP32));
      kir_reduce(k, nm, kir_ap2(sb, t->nq, 0, t->kend, a->mm), OT_ALU_MAX, 1, true);
    } else if (span.bytes) kir_reduce(k, nm, kir_ap2(&span, t->nq, 0, t->kend, OT_DT_FP32), OT_ALU_MAX, 1, true);
    else if (nch > 1) kir_reduce(k, nm, kir_ap2(st, t->nq, i * r->nchunk, nch, OT_DT_FP32), OT_ALU_MIN, 1, false);
  }
  tf_neg_max_row(r, bl, ndt);
}

/* Pass 2, key block kb: S^T - m (+ mask^T on the diagonal tile) and P^T = exp of it; returns
** the P^T buffer index and sets *ia (first tile that sees these keys) and *c_lo (its column). */
static uint32_t tf_scores_t(tf_run *r, const tf_block *bl, uint32_t h, uint32_t kb, uint32_t *ia, uint32_t *c_lo) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t k0 = kb * r->P, nkb = lower_min_u32(r->P, a->S - k0), i0 = 0;
  while (i0 < bl->nt && bl->t[i0].kend <= k0) i0++; /* tiles ordered by kend: the rest see kb */
  uint32_t lo = bl->t[i0].col, n = bl->ncols - lo;
  const kir_buf *sb = &r->sps[r->rot_s++ % r->ns];
  ot_ap st = kir_ap2(sb, nkb, 0, n, OT_DT_FP32);
  kir_matmul(k, st, kir_ap2(&r->kT[h], r->W, k0, nkb, a->mm), kir_ap2(&r->qTa[bl->slot], r->W, lo, n, a->mm), false);
  for (uint32_t i = i0; a->causal && i < bl->nt; i++)
    if (bl->t[i].q0 == k0) /* the diagonal square: key k0+p is masked for query q0+j < k0+p */
      kir_matmul(k, kir_ap2(sb, nkb, bl->t[i].col - lo, bl->t[i].nq, OT_DT_FP32), kir_ap2(&r->maskT, nkb, r->P, nkb, a->mm),
                 kir_ap2(&r->maskT, nkb, 0, bl->t[i].nq, a->mm), true);
  uint32_t pi = r->rot_p++ % TF_NP;
  kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->pT[pi], nkb, 0, n, a->mm), st, OT_ACT_EXP, 1.0f, NULL, NULL, NULL);
  *ia = i0;
  *c_lo = lo;
  return pi;
}

/* [O | l] += P [V | 1] for the tiles from ia that see key block kb (P^T buffer pi). */
static void tf_pv(tf_run *r, const tf_block *bl, uint32_t h, uint32_t kb, uint32_t pi, uint32_t ia, uint32_t lo) {
  const attn_shape *a = r->a;
  uint32_t k0 = kb * r->P, nkb = lower_min_u32(r->P, a->S - k0);
  for (uint32_t i = ia; i < bl->nt; i++) {
    const tf_tile *t = &bl->t[i];
    kir_matmul(r->k, kir_ap2(&r->ops[bl->oslot], t->nq, i * r->W, r->W, OT_DT_FP32),
               kir_ap2(&r->pT[pi], nkb, t->col - lo, t->nq, a->mm), kir_ap2(&r->vn[h], nkb, kb * r->W, r->W, a->mm), kb > 0);
  }
}

/* The block's -m (row D of Q^T_aug, the matmul type widened exactly) and l (copied out of the
** [O | l] PSUM) to rows 0 and 1 of the saved statistics, at row (b Hq + hq) S + q: one DMA each
** for a uniform block, else one per tile.  Issued by the GpSimd, like the stores of y. */
static void tf_save_stats(tf_run *r, const tf_block *bl) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint64_t R = (uint64_t)a->B * a->Hq * a->S;
  const kir_buf *q = &r->qTa[bl->slot], *ops = &r->ops[bl->oslot], *lsb = &r->lsb[bl->slot];
  for (uint32_t i = 0, n = bl->uni ? 1 : bl->nt; i < n; i++) {
    const tf_tile *t = &bl->t[i];
    uint32_t nq = bl->uni ? bl->ncols : t->nq, np = bl->uni ? r->P : t->nq, ntl = bl->uni ? bl->nt : 1;
    uint64_t row = ((uint64_t)bl->b * a->Hq + t->hq) * a->S + t->q0;
    int32_t one[1] = {1}, ws[1] = {(int32_t)r->W};
    uint32_t n1[1] = {nq}, nt1[1] = {ntl};
    int64_t hs1[1] = {1}, hs2[2] = {1, (int64_t)r->P};
    uint32_t hz1[1] = {nq}, hz2[2] = {np, ntl};
    kir_dma(k, kir_hbm_ap(r->saved, row, 1, hs1, hz1), kir_ap(q, a->D, 1, t->col * attn_esz(a->mm), a->mm, 1, one, n1),
            OT_ENG_GPSIMD);
    kir_copy(k, OT_ENG_VECTOR, kir_ap2(lsb, np, i, ntl, OT_DT_FP32),
             kir_ap(ops, 0, np, (i * r->W + a->D) * 4, OT_DT_FP32, 1, ws, nt1));
    kir_dma(k, kir_hbm_ap(r->saved, R + row, 2, hs2, hz2), kir_ap2(lsb, np, i, ntl, OT_DT_FP32), OT_ENG_GPSIMD);
  }
}

/* Pass 2 of a block over its key blocks (each key block's scores emitted TF_LA blocks ahead of
** its PV, so the in-order TensorE stream does not wait on each exp), then y = O / l, stored. */
static void tf_pass2(tf_run *r, const tf_block *bl, uint32_t h) {
  const attn_shape *a = r->a;
  uint32_t kmax = 0;
  for (uint32_t i = 0; i < bl->nt; i++) kmax = bl->t[i].kend > kmax ? bl->t[i].kend : kmax;
  uint32_t nkb = lower_ceil_div(kmax, r->P), R = TF_LA + 1; /* ring of the key blocks ahead */
  uint32_t ia[TF_LA + 1], lo[TF_LA + 1], pi[TF_LA + 1];
  for (uint32_t kb = 0; kb < nkb && kb < TF_LA; kb++) pi[kb % R] = tf_scores_t(r, bl, h, kb, &ia[kb % R], &lo[kb % R]);
  for (uint32_t kb = 0; kb < nkb && !kir_status(r->k); kb++) {
    uint32_t n = kb + TF_LA;
    if (n < nkb) pi[n % R] = tf_scores_t(r, bl, h, n, &ia[n % R], &lo[n % R]);
    tf_pv(r, bl, h, kb, pi[kb % R], ia[kb % R], lo[kb % R]);
  }
  const kir_buf *ysb = &r->ysb[bl->slot];
  for (uint32_t i = 0; i < bl->nt; i++) {
    const tf_tile *t = &bl->t[i];
    ot_ap l = kir_ap2(&r->ops[bl->oslot], t->nq, i * r->W + a->D, 1, OT_DT_FP32);
    ot_ap o = kir_ap2(&r->ops[bl->oslot], t->nq, i * r->W, a->D, OT_DT_FP32);
    kir_ts(r->k, OT_ENG_VECTOR, kir_ap2(ysb, t->nq, i * a->D, a->D, a->ydt), o, OT_ALU_DIV, 0.0f, &l, OT_ALU_BYPASS, 0.0f, NULL);
  }
  if (r->saved) tf_save_stats(r, bl);
  /* stores issued by the GpSimd (otherwise idle; a DMA trigger costs the issuing engine) */
  if (bl->uni)
    kir_dma(r->k, tf_block_hbm(r, &a->y, bl->t[0].yoff, a->vy.ss, bl->nt), tf_block_sb(r, ysb, bl->nt, a->ydt),
            OT_ENG_GPSIMD);
  else
    for (uint32_t i = 0; i < bl->nt; i++) {
      int64_t hs[2] = {(int64_t)a->vy.ss, 1};
      uint32_t hz[2] = {bl->t[i].nq, a->D};
      kir_dma(r->k, kir_hbm_ap(&a->y, bl->t[i].yoff, 2, hs, hz), kir_ap2(ysb, bl->t[i].nq, i * a->D, a->D, a->ydt),
              OT_ENG_GPSIMD);
    }
}

/* All query tiles, kv head by kv head, each head's in (row tile, head) order (so kend never
** decreases within a block), TF_BT per block, as one software pipeline: at step n, block n
** begins (Q rows, Q^T), block n-1 runs pass 1, block n-2 pass 2. */
static void tf_blocks(tf_run *r) {
  const attn_shape *a = r->a;
  uint32_t grp = a->Hq / a->Hkv, total = grp * r->KT, per = lower_ceil_div(total, TF_BT), heads = a->B * a->Hkv;
  uint32_t nblk = heads * per;
  tf_block blk[TF_NB];
  tf_load_kv(r, 0, 0, 0);
  for (uint32_t step = 0; step < nblk + 2 && !kir_status(r->k); step++) {
    if (step < nblk) { /* block `step`: Q rows and Q^T */
      uint32_t hi = step / per, bi = step % per;
      tf_block *nx = &blk[step % TF_NB];
      memset(nx, 0, sizeof *nx);
      nx->slot = step % TF_NB;
      nx->oslot = step % TF_NO;
      nx->h = hi % TF_KV;
      nx->nt = lower_min_u32(TF_BT, total - bi * TF_BT);
      for (uint32_t i = 0, done = bi * TF_BT; i < nx->nt; i++, done++) {
        nx->t[i].q0 = (done / grp) * r->P;
        nx->t[i].hq = (hi % a->Hkv) * grp + done % grp;
      }
      tf_block_begin(r, hi / a->Hkv, nx);
      tf_block_qT(r, nx);
    }
    if (step >= 1 && step - 1 < nblk) tf_pass1(r, &blk[(step - 1) % TF_NB], blk[(step - 1) % TF_NB].h);
    if (step >= 2) tf_pass2(r, &blk[(step - 2) % TF_NB], blk[(step - 2) % TF_NB].h);
    /* the next kv head once its first block has begun: its slot's last reader (a block of the
    ** head TF_KV before, at most two steps behind) was emitted above */
    uint32_t hn = step / per + 1;
    if (step < nblk && step % per == 0 && hn < heads) tf_load_kv(r, hn / a->Hkv, hn % a->Hkv, hn % TF_KV);
  }
}

static ot_status tf_alloc(tf_run *r) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t P = r->P, e = attn_esz(a->mm), bank = attn_bank_bytes(kir_chip(k));
  for (int i = 0; i < TF_KV; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, a->S * e, &r->kT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, r->KT * r->W * e, &r->vn[i]);
  }
  for (int i = 0; i < TF_KV; i++) kir_alloc(k, OT_MEM_SBUF, P, r->KT * r->W * e, &r->knat[i]);
  for (uint32_t i = 0; i < TF_NB; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, TF_BT * a->D * e, &r->qn[i]);
    kir_alloc(k, OT_MEM_SBUF, P, TF_BT * 4, &r->nmb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, TF_BT * r->nchunk * 4, &r->st[i]);
    kir_alloc(k, OT_MEM_SBUF, P, TF_BT * a->D * attn_esz(a->ydt), &r->ysb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, TF_BT * P * e, &r->qTa[i]);
    if (r->saved) kir_alloc(k, OT_MEM_SBUF, P, TF_BT * 4, &r->lsb[i]);

  }
  for (uint32_t i = 0; i < TF_NO; i++) kir_alloc(k, OT_MEM_PSUM, P, TF_BT * r->W * 4, &r->ops[i]);
  for (uint32_t i = 0; i < TF_NP; i++) kir_alloc(k, OT_MEM_SBUF, P, TF_BT * P * e, &r->pT[i]);
  for (uint32_t i = 0; r->p1copy && i < TF_NC; i++) kir_alloc(k, OT_MEM_SBUF, P, r->nchunk * KCHUNK * e, &r->ssb[i]);
  kir_alloc(k, OT_MEM_PSUM, P, TF_BT * P * e, &r->tp);
  kir_alloc(k, OT_MEM_PSUM, P, bank, &r->tpk);
  for (r->ns = 0; r->ns < TF_NS && kir_largest_free(k, OT_MEM_PSUM) >= bank; r->ns++)
    kir_alloc(k, OT_MEM_PSUM, P, bank, &r->sps[r->ns]);
  if (r->ns < 2)
    return kir_fail(k, OT_EUNSUPPORTED, "attention: PSUM holds %u score banks besides its other tiles; 2 needed", r->ns);
  if (a->causal) {
    kir_alloc(k, OT_MEM_SBUF, P, 2 * P * e, &r->maskT);
    kir_alloc(k, OT_MEM_SBUF, P, (ATTN_MASKS * KCHUNK + P) * e, &r->masks);
  }
  return kir_status(k);
}

static void tf_release(tf_run *r) {
  kir *k = r->k;
  for (int i = 0; i < TF_KV; i++) { kir_release(k, &r->kT[i]); kir_release(k, &r->vn[i]); }
  for (uint32_t i = 0; i < TF_NB; i++) {
    kir_release(k, &r->qn[i]);
    kir_release(k, &r->nmb[i]);
    kir_release(k, &r->st[i]);
    kir_release(k, &r->ysb[i]);
    kir_release(k, &r->qTa[i]);
    kir_release(k, &r->lsb[i]);
  }
  for (uint32_t i = 0; i < TF_NO; i++) kir_release(k, &r->ops[i]);
  for (uint32_t i = 0; i < TF_NP; i++) kir_release(k, &r->pT[i]);
  for (uint32_t i = 0; i < TF_NC; i++) kir_release(k, &r->ssb[i]);
  for (uint32_t i = 0; i < TF_NS; i++) kir_release(k, &r->sps[i]);
  kir_release(k, &r->tp);
  kir_release(k, &r->tpk);
  for (int i = 0; i < TF_KV; i++) kir_release(k, &r->knat[i]);
  kir_release(k, &r->maskT);
  kir_release(k, &r->masks);
}

bool attn_fwd_t_fits(const ot_chip *chip, const attn_shape *a) {
  uint32_t P = attn_parts(chip), bank = attn_bank_bytes(chip), e = attn_esz(a->mm);
  uint32_t W = a->D + 1, obytes = TF_BT * W * 4;
  uint64_t banks = 2u + 1u + TF_NO * (uint64_t)lower_ceil_div(obytes, bank) + 1u; /* scores, K^T, [O|l], Q^T */
  uint64_t kd = (uint64_t)lower_ceil_div(a->S, P) * W * e; /* else lower_attn.c's kernel, which keeps less */
  return W <= P && TF_KV * ((uint64_t)a->S * e + 2 * kd) <= RESIDENT_BUDGET && obytes <= bank && TF_BT * P * e <= bank &&
         KCHUNK * 4 <= bank && banks * bank <= chip->psum.bytes_per_partition;
}

ot_status lower_attention_t(lower_ctx *c, const attn_shape *a, const kir_hbm *saved) {
  tf_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.a = a;
  r.saved = saved;
  r.P = attn_parts(c->chip);
  r.KT = lower_ceil_div(a->S, r.P);
  r.W = a->D + 1;
  r.nchunk = lower_ceil_div(a->S, KCHUNK);
  /* a DMA trigger costs its engine dma.issue_ns: where that is small (trn1: 50 ns), transfers are
  ** split over more queues; where it is large (trn2: 600 ns), batched per block */
  r.batch = c->chip->dma.issue_ns > 100.0;
  r.lt = r.batch ? r.KT : TF_LOAD_TILES;
  /* NC-v2 (VectorE and ScalarE share the PSUM port): the ScalarE copies pass-1 scores to SBUF in
  ** the 16-bit matmul type faster than the VectorE reduces them from PSUM, and the VectorE's max
  ** then runs at two elements per cycle off the port (trn1 GPT-2 attention 145.8 -> 143.1 us) */
  r.p1copy = attn_esz(a->mm) == 2 && c->chip->ports.vector_scalar_share_psum;
  uint64_t e = attn_esz(a->mm), kd = (uint64_t)r.KT * r.W * e;
  if (attn_check(c->k, a, r.P, "attention", TF_KV * ((uint64_t)a->S * e + 2 * kd))) return kir_status(c->k);
  if (tf_alloc(&r)) { tf_release(&r); return kir_status(c->k); }
  for (int i = 0; i < TF_KV; i++) { tf_ones_column(&r, &r.knat[i]); tf_ones_column(&r, &r.vn[i]); }
  if (a->causal) tf_masks_init(&r);
  tf_blocks(&r);
  tf_release(&r);
  return kir_status(c->k);
}
