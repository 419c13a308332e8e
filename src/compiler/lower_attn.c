/* Attention (flash-style forward), the pieces the backward shares, and the dispatch of the
** attention-family lowerings.  lower_attention uses lower_attn_fwd.c's transposed-score kernel
** wherever its plan fits (D < 128, attn_fwd_t_fits); the online kernel below otherwise.
**
** Tile plan (docs/compiler-attention.md): for each batch b and kv head g, K^T [D, S] (PE
** transposes, four 128-key tiles per PSUM bank) and V [128 keys, S/128 tiles x D] stay resident
** in SBUF (two heads in flight: the next is prefetched); for each query head of the group and
** each 128-row query tile, Q^T [D, nq] is made once, pre-scaled, then the key range (up to the
** diagonal when causal) is walked in chunks of up to 512 keys:
**   S = (scale Q) K^T [+ I . mask on the diagonal]            TensorE, one fp32 PSUM bank
**   -m' = min(-m, -rowmax S)                                  VectorE (negated max)
**   P = exp(S - m'), r = rowsum P                             ScalarE activate (bias, red)
**   alpha = exp(m - m'), l = l alpha + r                      ScalarE, VectorE
**   P^T (128-key blocks through the PE, one copy), O_c = P V  TensorE, accumulating in PSUM
**   O = O alpha + O_c                                         VectorE scalar_tensor_tensor
** and finally y = O / l, stored in y's type.  The S x S scores never leave the chip.  Two query
** tiles go together, their chunks interleaved stage by stage (the engines' streams are in order,
** so this is what lets one tile's TensorE work overlap the other's softmax). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compiler/lower_attn_int.h"

#define FWD_NQ 8   /* query-tile buffer sets (at most): a group in work, the next group loading */
#define FWD_NC 4   /* key-chunk buffer sets (at most; PSUM: one score bank each) */
#define FWD_PAIR 4 /* query tiles whose chunks are interleaved (at most; attn_plan) */

/* The contiguous layout of [B, H, S, D]. */
static attn_view attn_view_plain(uint32_t H, uint32_t S, uint32_t D) {
  attn_view v = {0, (uint64_t)H * S * D, (uint64_t)S * D, D};
  return v;
}

/* Input t read through a head split folded by compile.c: t = transpose(0,2,1,3) of a reshape
** [B,S,H,D] of rows of H*D elements, maybe columns [off, off + H*D) of a split's input. */
attn_view attn_view_input(const lower_ctx *c, ot_tid t, uint32_t S, uint32_t D) {
  const ot_graph *g = c->g;
  uint32_t H = (uint32_t)g->t[t].shape[1];
  attn_view v = attn_view_plain(H, S, D);
  int32_t p = g->t[t].producer;
  if (p < 0 || !c->fused_away[p] || g->node[p].op != OT_GOP_TRANSPOSE) return v;
  int32_t r = g->t[g->node[p].in[0]].producer; /* the reshape */
  ot_tid u = g->node[r].in[0];
  uint64_t row = (uint64_t)H * D, off = 0;
  int32_t sp = g->t[u].producer;
  if (sp >= 0 && c->fused_away[sp] && g->node[sp].op == OT_GOP_SPLIT) {
    const ot_gnode *n = &g->node[sp];
    const ot_gtensor *x = &g->t[n->in[0]];
    row = (uint64_t)x->shape[x->ndim - 1];
    for (uint32_t k = 0; k < n->n_out && n->out[k] != u; k++) off += (uint64_t)n->list[k];
  }
  v.off = off;
  v.ss = row;
  v.sh = D;
  v.sb = (uint64_t)S * row;
  return v;
}

/* Output y written through a head merge folded by compile.c: y's consumer transpose(0,2,1,3)
** was dropped and y lives in its [B, S, H, D] output; or, where that output's merging reshape
** feeds a folded concat along the last axis (an attention_bwd's gradients), in its columns of
** the concat's output. */
attn_view attn_view_output(const lower_ctx *c, ot_tid y, uint32_t S, uint32_t D) {
  const ot_graph *g = c->g;
  uint32_t H = (uint32_t)g->t[y].shape[1];
  for (uint32_t j = 0; j < g->n_node; j++) {
    const ot_gnode *m = &g->node[j];
    if (!c->fused_away[j] || m->op != OT_GOP_TRANSPOSE || m->n_in < 1 || m->in[0] != y) continue;
    attn_view v = {0, (uint64_t)S * H * D, D, (uint64_t)H * D};
    for (uint32_t r = 0; r < g->n_node; r++) { /* the merge, then a folded concat of merges */
      if (g->node[r].op != OT_GOP_RESHAPE || g->node[r].in[0] != m->out[0]) continue;
      ot_tid merged = g->node[r].out[0];
      for (uint32_t q = 0; q < g->n_node; q++) {
        const ot_gnode *cn = &g->node[q];
        if (cn->op != OT_GOP_CONCAT || !c->fused_away[q]) continue;
        uint64_t off = 0;
        for (uint32_t k = 0; k < cn->n_in; k++) {
          const ot_gtensor *x = &g->t[cn->in[k]];
          if (cn->in[k] == merged) {
            const ot_gtensor *o = &g->t[cn->out[0]];
            v.off = off;
            v.ss = (uint64_t)o->shape[o->ndim - 1];
            v.sb = (uint64_t)S * v.ss;
            return v;
          }
          off += (uint64_t)x->shape[x->ndim - 1];
        }
      }
    }
    return v;
  }
  return attn_view_plain(H, S, D);
}

/* The shape and attributes of an attention or attention_bwd node (inputs q, k, v first). */
void attn_shape_read(lower_ctx *c, const ot_gnode *n, attn_shape *a) {
  const ot_gtensor *q = &c->g->t[n->in[0]], *k = &c->g->t[n->in[1]];
  memset(a, 0, sizeof *a);
  a->B = (uint32_t)q->shape[0];
  a->Hq = (uint32_t)q->shape[1];
  a->Hkv = (uint32_t)k->shape[1];
  a->S = (uint32_t)q->shape[2];
  a->D = (uint32_t)q->shape[3];
  a->scale = n->f[0] != 0.0f ? n->f[0] : 1.0f / sqrtf((float)a->D);
  a->causal = n->i[0] != 0;
  a->q = c->hbm[n->in[0]];
  a->k = c->hbm[n->in[1]];
  a->v = c->hbm[n->in[2]];
  a->y = c->hbm[n->out[0]];
  a->vq = attn_view_input(c, n->in[0], a->S, a->D);
  a->vk = attn_view_input(c, n->in[1], (uint32_t)k->shape[2], a->D);
  a->vv = attn_view_input(c, n->in[2], (uint32_t)k->shape[2], a->D);
  a->vy = attn_view_output(c, n->out[0], a->S, a->D);
  a->mm = c->opt->matmul_dtype;
  a->ydt = (ot_dtype)c->hbm[n->out[0]].dtype; /* the type y is kept in (compile.c storage_dtype) */
}

typedef struct {
  kir *k;
  const attn_shape *a;
  uint32_t P, KT;
  kir_buf kT[2], vn[2], knat, tpk;           /* resident K^T, V (two kv heads in flight) */
  kir_buf qn[FWD_NQ], qT[FWD_NQ], oacc[FWD_NQ], ysb[FWD_NQ], st[FWD_NQ]; /* per query tile */
  kir_buf psb[FWD_NC], pTsb[FWD_NC];                      /* per key chunk */
  kir_buf sps[FWD_NC], pTps[FWD_NC], ops[FWD_NC], tp;                  /* PSUM */
  kir_buf masks;                                                       /* causal diagonal masks */
  uint32_t rot_h, rot_q, rot_c, rot_t;
  uint32_t nc, pair;                 /* chunk sets and interleaved tiles in use (attn_plan) */
} attn_run;

/* A query tile in flight: rows [q0, q0+nq) of query head hq, its buffers slot qi. */
typedef struct {
  uint32_t hq, q0, nq, qi, mcol, kend, cr;
  uint64_t qoff, yoff;
} attn_tile;

void attn_tiles_dma(kir *k, const kir_buf *buf, uint32_t boff, ot_dtype dt, const kir_hbm *t, uint64_t eoff, uint32_t rows,
                    uint32_t cols, uint64_t stride, bool store) {
  uint32_t P = kir_chip(k)->tensor.rows, full = rows / P, rest = rows - full * P;
  if (full) { /* partition p, free (tile, column): row kt*P + p */
    int64_t hs[3] = {(int64_t)stride, (int64_t)P * (int64_t)stride, 1};
    uint32_t hz[3] = {P, full, cols};
    int32_t ss[2] = {(int32_t)cols, 1};
    uint32_t sz[2] = {full, cols};
    ot_ap sb = kir_ap(buf, 0, P, boff * attn_esz(dt), dt, 2, ss, sz), hb = kir_hbm_ap(t, eoff, 3, hs, hz);
    kir_dma(k, store ? hb : sb, store ? sb : hb, OT_ENG_COUNT);
  }
  if (!rest) return;
  uint32_t roff = boff + full * cols;
  uint64_t reoff = eoff + (uint64_t)full * P * stride;
  if (store) attn_store_rows(k, t, reoff, stride, buf, roff, dt, rest, cols);
  else attn_load_rows(k, buf, roff, dt, t, reoff, rest, cols, stride);
}

void attn_load_tiles(kir *k, const attn_shape *a, const kir_hbm *t, uint64_t base, const kir_buf *nat) {
  attn_tiles_dma(k, nat, 0, a->mm, t, base, a->S, a->D, a->D, false);
}

void attn_transpose_tiles(kir *k, const attn_shape *a, const kir_buf *nat, const kir_buf *tp, const kir_buf *dstT) {
  uint32_t P = kir_chip(k)->tensor.rows, KT = lower_ceil_div(a->S, P);
  uint32_t per = tp->bytes / (P * attn_esz(a->mm)); /* tiles per PSUM transpose buffer */
  if (per == 0) per = 1;
  for (uint32_t t0 = 0, n = 0; t0 < KT; t0 += per, n++) {
    uint32_t cnt = lower_min_u32(per, KT - t0), cols = 0;
    for (uint32_t j = 0; j < cnt; j++) {
      uint32_t nk = lower_min_u32(P, a->S - (t0 + j) * P);
      kir_transpose(k, kir_ap2(tp, a->D, j * P, nk, a->mm), kir_ap2(nat, nk, (t0 + j) * a->D, a->D, a->mm));
      cols += nk;
    }
    kir_copy(k, n % 2 ? OT_ENG_VECTOR : OT_ENG_SCALAR, kir_ap2(dstT, a->D, t0 * P, cols, a->mm), kir_ap2(tp, a->D, 0, cols, a->mm));
  }
}

/* K^T and V of kv head (b, g) into the resident buffers of slot h. */
static void attn_load_kv(attn_run *r, uint32_t b, uint32_t g, uint32_t h) {
  const attn_shape *a = r->a;
  const attn_view *vk = &a->vk, *vv = &a->vv;
  attn_tiles_dma(r->k, &r->knat, 0, a->mm, &a->k, attn_view_at(vk, b, g, 0), a->S, a->D, vk->ss, false);
  attn_tiles_dma(r->k, &r->vn[h], 0, a->mm, &a->v, attn_view_at(vv, b, g, 0), a->S, a->D, vv->ss, false);
  attn_transpose_tiles(r->k, a, &r->knat, &r->tpk, &r->kT[h]);
}

uint32_t attn_online_chunk(kir *k, const kir_buf *st, uint32_t mcol, bool first, ot_ap src, uint32_t nq, ot_ap pdst) {
  uint32_t mnew = first ? mcol : (mcol == ST_M0 ? ST_M1 : ST_M0);
  ot_ap nc = attn_col(st, nq, ST_CMAX), mo = attn_col(st, nq, mcol), mn = attn_col(st, nq, mnew);
  ot_ap rs = attn_col(st, nq, first ? ST_L : ST_RSUM);
  kir_reduce(k, first ? mn : nc, src, OT_ALU_MAX, 1, true);
  if (!first) kir_tt(k, OT_ENG_VECTOR, mn, mo, nc, OT_ALU_MIN); /* -max(m, c) = min(-m, -c) */
  kir_activate(k, OT_ENG_SCALAR, pdst, src, OT_ACT_EXP, 1.0f, NULL, &mn, &rs);
  if (!first) {
    ot_ap al = attn_col(st, nq, ST_ALPHA), l = attn_col(st, nq, ST_L);
    kir_activate(k, OT_ENG_SCALAR, al, mo, OT_ACT_EXP, -1.0f, NULL, &mn, NULL); /* exp(m - m') */
    kir_ts(k, OT_ENG_VECTOR, l, l, OT_ALU_MUL, 0.0f, &al, OT_ALU_ADD, 0.0f, &rs);
  }
  return mnew;
}

void attn_masks_init(kir *k, const kir_buf *masks, uint32_t P, ot_dtype mm) {
  int32_t step = -1;
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(masks, P, 0, ATTN_MASKS * KCHUNK + P, mm), 0.0f);
  for (uint32_t v = 0; v < ATTN_MASKS; v++) {
    ot_ap m = kir_ap2(masks, P, v * KCHUNK, KCHUNK, mm);
    kir_affine_select(k, m, m, OT_ALU_GE, (int32_t)(v * P), 1, 1, &step, ATTN_NEG_FILL);
  }
  ot_ap id = kir_ap2(masks, P, ATTN_MASKS * KCHUNK, P, mm); /* 1 where p == j */
  kir_affine_select(k, id, id, OT_ALU_NE, 0, 1, 1, &step, 1.0f);
}

ot_ap attn_scores(kir *k, const attn_shape *a, const kir_buf *sps, const kir_buf *masks, ot_ap qT, const kir_buf *kT,
                  uint32_t q0, uint32_t nq, uint32_t c0, uint32_t nk) {
  ot_ap s = kir_ap2(sps, nq, 0, nk, OT_DT_FP32);
  bool diag = a->causal && c0 + nk - 1 > q0;
  kir_matmul(k, s, qT, kir_ap2(kT, a->D, c0, nk, a->mm), false);
  if (diag && c0 + nk == q0 + nq) { /* ends at the diagonal: only its last nq x nq square has masked keys
    ** (mask tile 0; the columns before are 0), so the PE adds the mask there alone */
    ot_ap sq = kir_ap2(sps, nq, q0 - c0, nq, OT_DT_FP32);
    kir_matmul(k, sq, kir_ap2(masks, nq, ATTN_MASKS * KCHUNK, nq, a->mm), kir_ap2(masks, nq, 0, nq, a->mm), true);
  } else if (diag) { /* crosses the diagonal: S += I . mask on the PE (0 where key c0+j <= query q0+p, else -1e30) */
    uint32_t v = (q0 - c0) / kir_chip(k)->tensor.rows;
    kir_matmul(k, s, kir_ap2(masks, nq, ATTN_MASKS * KCHUNK, nq, a->mm), kir_ap2(masks, nq, v * KCHUNK, nk, a->mm), true);
  }
  return s;
}

void attn_make_qT(kir *k, const attn_shape *a, const kir_buf *tp, const kir_buf *qn, uint32_t qcol, uint32_t nq,
                  const kir_buf *qT) {
  kir_transpose(k, kir_ap2(tp, a->D, 0, nq, a->mm), kir_ap2(qn, nq, qcol, a->D, a->mm));
  /* the ScalarE carries the exps: where VectorE and ScalarE have their own PSUM ports (NC-v3 on)
  ** the VectorE scales (trn2 GPT-2 block: -2%); on NC-v2 they share one and the ScalarE does */
  ot_engine e = kir_chip(k)->ports.vector_scalar_share_psum ? OT_ENG_SCALAR : OT_ENG_VECTOR;
  kir_ts(k, e, kir_ap2(qT, a->D, 0, nq, a->mm), kir_ap2(tp, a->D, 0, nq, a->mm), OT_ALU_MUL, a->scale, NULL,
         OT_ALU_BYPASS, 0.0f, NULL);
}

/* O_c = P V for the chunk's keys [c0, c0+nk): P^T by 128-key blocks, accumulating in PSUM. */
static void attn_pv(attn_run *r, const attn_tile *t, uint32_t c0, uint32_t nk, uint32_t h) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t cr = t->cr, nq = t->nq;
  const kir_buf *tp = &r->pTps[cr], *pT = &r->pTsb[cr], *psb = &r->psb[cr];
  uint32_t nblk = lower_ceil_div(nk, r->P), full = nk / r->P;
  for (uint32_t j = 0; j < nblk; j++) {
    uint32_t nkb = lower_min_u32(r->P, nk - j * r->P);
    kir_transpose(k, kir_ap2(tp, nkb, j * r->P, nq, a->mm), kir_ap2(psb, nq, j * r->P, nkb, a->mm));
  }
  if (full) { /* the full 128-key blocks leave PSUM in one copy, a partial last block alone */
    int32_t st[2] = {(int32_t)r->P, 1};
    uint32_t sz[2] = {full, nq};
    kir_copy(k, OT_ENG_SCALAR, kir_ap(pT, 0, r->P, 0, a->mm, 2, st, sz), kir_ap(tp, 0, r->P, 0, a->mm, 2, st, sz));
  }
  if (full < nblk)
    kir_copy(k, OT_ENG_SCALAR, kir_ap2(pT, nk - full * r->P, full * r->P, nq, a->mm),
             kir_ap2(tp, nk - full * r->P, full * r->P, nq, a->mm));
  for (uint32_t j = 0; j < nblk; j++) {
    uint32_t nkb = lower_min_u32(r->P, nk - j * r->P), kt = c0 / r->P + j;
    kir_matmul(k, kir_ap2(&r->ops[cr], nq, 0, a->D, OT_DT_FP32), kir_ap2(pT, nkb, j * r->P, nq, a->mm),
               kir_ap2(&r->vn[h], nkb, kt * a->D, a->D, a->mm), j > 0);
  }
}

/* O = O exp(m - m') + O_c (the first chunk: O = O_c). */
static void attn_update(attn_run *r, const attn_tile *t, bool first) {
  const attn_shape *a = r->a;
  ot_ap o = kir_ap2(&r->oacc[t->qi], t->nq, 0, a->D, OT_DT_FP32), oc = kir_ap2(&r->ops[t->cr], t->nq, 0, a->D, OT_DT_FP32);
  if (first) kir_copy(r->k, OT_ENG_SCALAR, o, oc);
  else {
    ot_ap al = attn_col(&r->st[t->qi], t->nq, ST_ALPHA);
    kir_stt(r->k, o, o, OT_ALU_MUL, 0.0f, &al, OT_ALU_ADD, oc);
  }
}

/* Key chunk c0 of the tiles t[0..nt): stage by stage across the tiles, so that every in-order
** engine stream alternates between independent dependency chains (software pipelining). */
static bool attn_chunk(attn_run *r, attn_tile *t, uint32_t nt, uint32_t c0, uint32_t h) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  ot_ap s[FWD_PAIR];
  bool any = false;
  for (uint32_t i = 0; i < nt; i++) {
    if (c0 >= t[i].kend) continue;
    any = true;
    t[i].cr = r->rot_c++ % r->nc;
    s[i] = attn_scores(k, a, &r->sps[t[i].cr], &r->masks, kir_ap2(&r->qT[t[i].qi], a->D, 0, t[i].nq, a->mm),
                       &r->kT[h], t[i].q0, t[i].nq, c0, lower_min_u32(KCHUNK, t[i].kend - c0));
  }
  for (uint32_t i = 0; i < nt; i++)
    if (c0 < t[i].kend)
      t[i].mcol = attn_online_chunk(k, &r->st[t[i].qi], t[i].mcol, c0 == 0, s[i], t[i].nq,
                                    kir_ap2(&r->psb[t[i].cr], t[i].nq, 0, lower_min_u32(KCHUNK, t[i].kend - c0), a->mm));
  for (uint32_t i = 0; i < nt; i++)
    if (c0 < t[i].kend) attn_pv(r, &t[i], c0, lower_min_u32(KCHUNK, t[i].kend - c0), h);
  for (uint32_t i = 0; i < nt; i++)
    if (c0 < t[i].kend) attn_update(r, &t[i], c0 == 0);
  return any;
}

/* Start a query tile: Q rows and Q^T. */
static void attn_tile_begin(attn_run *r, uint32_t b, attn_tile *t) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  t->nq = lower_min_u32(r->P, a->S - t->q0);
  t->qi = r->rot_q++ % (2 * r->pair);
  t->qoff = attn_view_at(&a->vq, b, t->hq, t->q0);
  t->yoff = attn_view_at(&a->vy, b, t->hq, t->q0);
  t->kend = a->causal ? t->q0 + t->nq : a->S;
  t->mcol = ST_M0;
  const kir_buf *qn = &r->qn[t->qi];
  attn_load_rows(k, qn, 0, a->mm, &a->q, t->qoff, t->nq, a->D, a->vq.ss);
  attn_make_qT(k, a, &r->tp, qn, 0, t->nq, &r->qT[t->qi]);
}

/* Finish a query tile: y = O / l in y's type, stored. */
static void attn_tile_end(attn_run *r, const attn_tile *t) {
  const attn_shape *a = r->a;
  ot_ap l = attn_col(&r->st[t->qi], t->nq, ST_L);
  const kir_buf *ysb = &r->ysb[t->qi];
  kir_ts(r->k, OT_ENG_VECTOR, kir_ap2(ysb, t->nq, 0, a->D, a->ydt), kir_ap2(&r->oacc[t->qi], t->nq, 0, a->D, OT_DT_FP32),
         OT_ALU_DIV, 0.0f, &l, OT_ALU_BYPASS, 0.0f, NULL);
  attn_store_rows(r->k, &a->y, t->yoff, a->vy.ss, ysb, 0, a->ydt, t->nq, a->D);
}

/* Up to FWD_PAIR query tiles (already begun) processed together, their chunks interleaved stage
** by stage; the next group's Q loads and transposes (nx, nnx tiles) are emitted first, so they
** sit ahead of this group's work in every engine's stream. */
static void attn_tiles(attn_run *r, uint32_t b, uint32_t h, attn_tile *t, uint32_t nt, attn_tile *nx, uint32_t nnx) {
  for (uint32_t i = 0; i < nnx; i++) attn_tile_begin(r, b, &nx[i]);
  for (uint32_t c0 = 0; !kir_status(r->k) && attn_chunk(r, t, nt, c0, h); c0 += KCHUNK) {
  }
  for (uint32_t i = 0; i < nt; i++) attn_tile_end(r, &t[i]);
}

/* Every query tile of kv head (b, g), in (row tile, head) order, FWD_PAIR at a time with a
** one-group lookahead. */
static void attn_kv_head(attn_run *r, uint32_t b, uint32_t g, uint32_t h) {
  const attn_shape *a = r->a;
  uint32_t grp = a->Hq / a->Hkv, total = grp * r->KT;
  attn_tile grpA[FWD_PAIR], grpB[FWD_PAIR], *cur = grpA, *nxt = grpB;
  uint32_t ncur = 0, done = 0;
  for (uint32_t pass = 0; !kir_status(r->k); pass++) {
    uint32_t nn = lower_min_u32(r->pair, total - done);
    for (uint32_t i = 0; i < nn; i++) {
      memset(&nxt[i], 0, sizeof nxt[i]);
      nxt[i].q0 = ((done + i) / grp) * r->P;
      nxt[i].hq = g * grp + (done + i) % grp;
    }
    done += nn;
    if (pass == 0) {
      for (uint32_t i = 0; i < nn; i++) attn_tile_begin(r, b, &nxt[i]);
    } else {
      attn_tiles(r, b, h, cur, ncur, nxt, nn);
    }
    attn_tile *sw = cur;
    cur = nxt;
    nxt = sw;
    ncur = nn;
    if (nn == 0) break;
  }
}

/* Four query tiles interleaved over four chunk sets where the PSUM holds those (a score bank,
** P^T in the matmul type and O_c per set, plus the Q^T and K^T transpose buffers: GPT-2's bf16
** D = 64 fills trn1/trn2's 8 banks but for 768 bytes); else two tiles over three sets, as fp32
** P^T or D = 128 need. */
static void attn_plan(attn_run *r) {
  const ot_chip *chip = kir_chip(r->k);
  uint64_t bank = attn_bank_bytes(chip), ptb = KCHUNK * attn_esz(r->a->mm);
  uint64_t need = 5u * bank + 4u * ptb + 4u * r->a->D * 4u + (uint64_t)r->P * attn_esz(r->a->mm);
  bool wide = ptb <= bank && need <= chip->psum.bytes_per_partition;
  r->nc = wide ? 4u : 3u;
  r->pair = wide ? 4u : 2u;
}

static ot_status attn_alloc(attn_run *r) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t P = r->P, e = attn_esz(a->mm), bank = attn_bank_bytes(kir_chip(k));
  for (int i = 0; i < 2; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, a->S * e, &r->kT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, r->KT * a->D * e, &r->vn[i]);
  }
  for (uint32_t i = 0; i < 2 * r->pair; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, a->D * e, &r->qn[i]);
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->qT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, a->D * 4, &r->oacc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, a->D * attn_esz(a->ydt), &r->ysb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, ST_COLS * 4, &r->st[i]);
  }
  for (uint32_t i = 0; i < r->nc; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * e, &r->psb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * e, &r->pTsb[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * 4 < bank ? KCHUNK * 4 : bank, &r->sps[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * e < bank ? KCHUNK * e : bank, &r->pTps[i]);
    kir_alloc(k, OT_MEM_PSUM, P, a->D * 4, &r->ops[i]);
  }
  kir_alloc(k, OT_MEM_PSUM, P, P * e, &r->tp);
  kir_alloc(k, OT_MEM_PSUM, P, bank, &r->tpk);
  kir_alloc(k, OT_MEM_SBUF, P, r->KT * a->D * e, &r->knat);
  if (a->causal) kir_alloc(k, OT_MEM_SBUF, P, (ATTN_MASKS * KCHUNK + P) * e, &r->masks);
  return kir_status(k);
}

static void attn_release(attn_run *r) {
  kir_buf *two[] = {r->kT, r->vn};
  kir_buf *nq[] = {r->qn, r->qT, r->oacc, r->ysb, r->st};
  kir_buf *nc[] = {r->psb, r->pTsb, r->sps, r->pTps, r->ops};
  for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
    for (int j = 0; j < 2; j++) kir_release(r->k, &two[i][j]);
  for (size_t i = 0; i < sizeof nq / sizeof nq[0]; i++)
    for (int j = 0; j < FWD_NQ; j++) kir_release(r->k, &nq[i][j]);
  for (size_t i = 0; i < sizeof nc / sizeof nc[0]; i++)
    for (int j = 0; j < FWD_NC; j++) kir_release(r->k, &nc[i][j]);
  kir_release(r->k, &r->tp);
  kir_release(r->k, &r->tpk);
  kir_release(r->k, &r->knat);
  kir_release(r->k, &r->masks);
}

ot_status attn_check(kir *k, const attn_shape *a, uint32_t P, const char *what, uint64_t resident) {
  const ot_chip *chip = kir_chip(k);
  if (a->D > P)
    return kir_fail(k, OT_EUNSUPPORTED, "%s head dim D = %u: the kernel puts D on the %u PE rows; supported: D <= %u", what,
                    a->D, P, P);
  if (P != 128 || KCHUNK * 4 > attn_bank_bytes(chip))
    return kir_fail(k, OT_EUNSUPPORTED, "%s needs 128 PE rows and a PSUM bank of %u bytes per partition; %s has %u rows and %u",
                    what, KCHUNK * 4, chip->name, P, attn_bank_bytes(chip));
  if (resident > RESIDENT_BUDGET)
    return kir_fail(k, OT_EUNSUPPORTED,
                    "%s sequence length S = %u with D = %u: the per-kv-head tiles that stay in SBUF (K^T, V, K, "
                    "accumulators) need %llu bytes per partition, the kernel keeps at most %u; supported: shorter S",
                    what, a->S, a->D, (unsigned long long)resident, RESIDENT_BUDGET);
  return OT_OK;
}

/* The forward saves its statistics for sequences longer than this: below, the backward's own
** statistics pass over a single tile is cheaper than the DMAs that store and load them (GPT-2
** tiny, S = 64: +18 us per forward and +36 us per backward with them). */
#define ATTN_SAVE_MIN_S 128u

/* Whether some attention_bwd of the graph differentiates node n (then its forward saves its
** statistics). */
static bool attn_has_backward(const lower_ctx *c, const ot_gnode *n) {
  int32_t self = (int32_t)(n - c->g->node);
  for (uint32_t i = 0; i < c->g->n_node; i++)
    if (c->g->node[i].op == OT_GOP_ATTENTION_BWD && c->g->node[i].forward == self) return true;
  return false;
}

static bool attn_same_shape(const attn_shape *x, const attn_shape *y) {
  return x->B == y->B && x->Hq == y->Hq && x->Hkv == y->Hkv && x->S == y->S && x->D == y->D && x->scale == y->scale &&
         x->causal == y->causal;
}

bool attn_saved_stats(lower_ctx *c, const ot_gnode *n, const attn_shape *a, kir_hbm *out) {
  int32_t f = n->forward;
  if (f < 0 || (uint32_t)f >= c->g->n_node || c->epi[f].saved.index < 0 || c->g->node[f].op != OT_GOP_ATTENTION)
    return false;
  attn_shape fa;
  attn_shape_read(c, &c->g->node[f], &fa);
  if (!attn_same_shape(&fa, a)) return false;
  *out = c->epi[f].saved;
  return true;
}

ot_status lower_attention(lower_ctx *c, const ot_gnode *n) {
  attn_shape a;
  attn_shape_read(c, n, &a);
  attn_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.a = &a;
  r.P = attn_parts(c->chip);
  r.KT = lower_ceil_div(a.S, r.P);
  if (a.S == 0 || a.D == 0 || a.B == 0 || a.Hq == 0) return OT_OK;
  if (attn_fwd_t_fits(c->chip, &a)) {
    lower_epilogue *e = &c->epi[n - c->g->node];
    if (attn_has_backward(c, n) && a.S > ATTN_SAVE_MIN_S) { /* statistics for the backward (attn_saved_stats) */
      char name[300];
      snprintf(name, sizeof name, "%s.stats%s", n->name, c->name_suffix ? c->name_suffix : "");
      uint64_t shape[2] = {2, (uint64_t)a.B * a.Hq * a.S};
      if (kir_tensor(c->k, name, OT_DT_FP32, 2, shape, OT_ROLE_SCRATCH, NULL, &e->saved)) return kir_status(c->k);
    }
    return lower_attention_t(c, &a, e->saved.index >= 0 ? &e->saved : NULL);
  }
  uint64_t e = attn_esz(a.mm), kd = (uint64_t)r.KT * a.D * e;
  if (attn_check(c->k, &a, r.P, "attention", 2 * ((uint64_t)a.S * e + kd) + kd)) return kir_status(c->k);
  attn_plan(&r);
  if (attn_alloc(&r)) { attn_release(&r); return kir_status(c->k); }
  if (a.causal) attn_masks_init(c->k, &r.masks, r.P, a.mm);
  /* kv heads in order; the next head's K^T and V load (other slot) is emitted before this head's
  ** work, so its DMAs and transposes run ahead of it in every stream */
  uint32_t heads = a.B * a.Hkv;
  attn_load_kv(&r, 0, 0, 0);
  for (uint32_t i = 0; i < heads && !kir_status(c->k); i++) {
    if (i + 1 < heads) attn_load_kv(&r, (i + 1) / a.Hkv, (i + 1) % a.Hkv, (i + 1) % 2);
    attn_kv_head(&r, i / a.Hkv, i % a.Hkv, i % 2);
  }
  attn_release(&r);
  return kir_status(c->k);
}

lower_fn lower_for_attention(ot_gop op) {
  switch (op) {
  case OT_GOP_ATTENTION: return lower_attention;
  case OT_GOP_ATTENTION_BWD: return lower_attention_bwd;
  case OT_GOP_ROPE: return lower_rope;
  case OT_GOP_EMBEDDING: return lower_embedding;
  case OT_GOP_EMBEDDING_BWD: return lower_embedding_bwd;
  case OT_GOP_CROSS_ENTROPY: return lower_cross_entropy;
  case OT_GOP_CROSS_ENTROPY_BWD: return lower_cross_entropy_bwd;
  default: return NULL;
  }
}
