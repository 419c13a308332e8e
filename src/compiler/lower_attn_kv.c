/* Attention against a KV cache longer than the queries (generation: prefill continuation and
** decode).  q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D], Skv > Sq; causal aligns the last query with
** the last key: query i sees keys j <= i + off, off = Skv - Sq.
**
** Tile plan (docs/compiler-attention.md, "attention over a KV cache"): per kv head (b, g), the
** Skv keys are loaded once (K rows and V rows, one DMA each for the full 128-key tiles) and K is
** made K^T [D, Skv] by PE transposes; two kv heads are in flight (the next head's loads are
** emitted first).  Every query head of the GQA group reuses them: per 128-row query tile, Q^T
** is made once (pre-scaled), then the visible keys [0, kend) are walked in chunks of 512:
**   S = (scale Q) K^T                                         TensorE, one fp32 PSUM bank
**   chunk crossing the causal edge: S -> SBUF, affine_select   VectorE copy, GpSimd (-1e30 fill)
**   online softmax (shared with lower_attn.c)                 VectorE max, ScalarE exp
**   P^T by 128-key blocks, O_c = P V                          TensorE, accumulating in PSUM
**   O = O alpha + O_c                                         VectorE
** and y = O / l in y's type.  The scores never leave the chip.  The causal edge moves by one key
** per query row and starts at an arbitrary key (off), so its mask is made per crossing chunk
** (one affine_select) instead of from lower_attn.c's four fixed diagonal tiles. */
#include <string.h>

#include "compiler/lower_attn_int.h"

#define KV_NQ 2 /* query-tile buffer sets */
#define KV_NC 2 /* key-chunk buffer sets */

typedef struct {
  kir *k;
  const attn_shape *a;  /* S = Sq */
  attn_shape kv;        /* the same with S = Skv (the tile loads of K and V) */
  uint32_t P, off;
  kir_buf kT[2], vn[2], knat, tpk;
  kir_buf qn[KV_NQ], qT[KV_NQ], oacc[KV_NQ], ysb[KV_NQ], st[KV_NQ];
  kir_buf psb[KV_NC], pTsb[KV_NC], ssb[KV_NC];
  kir_buf sps[KV_NC], pTps[KV_NC], ops[KV_NC], tp;
  uint32_t rot_q, rot_c;
} kv_run;

/* K^T and V of kv head (b, g) into the resident buffers of slot h. */
static void kv_load_head(kv_run *r, uint32_t b, uint32_t g, uint32_t h) {
  uint64_t base = ((uint64_t)b * r->a->Hkv + g) * r->kv.S * r->a->D;
  attn_load_tiles(r->k, &r->kv, &r->kv.k, base, &r->knat);
  attn_load_tiles(r->k, &r->kv, &r->kv.v, base, &r->vn[h]);
  attn_transpose_tiles(r->k, &r->kv, &r->knat, &r->tpk, &r->kT[h]);
}

/* Scores of query rows [q0, q0+nq) against keys [c0, c0+nk): in PSUM, or (a chunk that crosses
** the causal edge) copied to SBUF with the invisible keys set to -1e30. */
static ot_ap kv_scores(kv_run *r, uint32_t qi, uint32_t cr, uint32_t h, uint32_t q0, uint32_t nq, uint32_t c0,
                       uint32_t nk) {
  const attn_shape *a = r->a;
  ot_ap s = kir_ap2(&r->sps[cr], nq, 0, nk, OT_DT_FP32);
  kir_matmul(r->k, s, kir_ap2(&r->qT[qi], a->D, 0, nq, a->mm), kir_ap2(&r->kT[h], a->D, c0, nk, a->mm), false);
  if (!a->causal || c0 + nk - 1 <= q0 + r->off) return s; /* every key visible to every row */
  ot_ap m = kir_ap2(&r->ssb[cr], nq, 0, nk, OT_DT_FP32);
  int32_t step = -1; /* keep key c0 + j where (q0 + off - c0) + p - j >= 0 */
  kir_copy(r->k, OT_ENG_VECTOR, m, s);
  kir_affine_select(r->k, m, m, OT_ALU_GE, (int32_t)(q0 + r->off) - (int32_t)c0, 1, 1, &step, ATTN_NEG_FILL);
  return m;
}

/* O_c = P V for keys [c0, c0+nk): P^T by 128-key blocks through the PE, accumulating in PSUM. */
static void kv_pv(kv_run *r, uint32_t cr, uint32_t h, uint32_t nq, uint32_t c0, uint32_t nk) {
  const attn_shape *a = r->a;
  uint32_t P = r->P, nblk = lower_ceil_div(nk, P);
  for (uint32_t j = 0; j < nblk; j++) {
    uint32_t nkb = lower_min_u32(P, nk - j * P);
    kir_transpose(r->k, kir_ap2(&r->pTps[cr], nkb, j * P, nq, a->mm), kir_ap2(&r->psb[cr], nq, j * P, nkb, a->mm));
    kir_copy(r->k, j % 2 ? OT_ENG_VECTOR : OT_ENG_SCALAR, kir_ap2(&r->pTsb[cr], nkb, j * P, nq, a->mm),
             kir_ap2(&r->pTps[cr], nkb, j * P, nq, a->mm));
  }
  for (uint32_t j = 0; j < nblk; j++) {
    uint32_t nkb = lower_min_u32(P, nk - j * P), kt = c0 / P + j;
    kir_matmul(r->k, kir_ap2(&r->ops[cr], nq, 0, a->D, OT_DT_FP32), kir_ap2(&r->pTsb[cr], nkb, j * P, nq, a->mm),
               kir_ap2(&r->vn[h], nkb, kt * a->D, a->D, a->mm), j > 0);
  }
}

/* One query tile: rows [q0, q0+nq) of query head hq against the resident keys of slot h. */
static void kv_tile(kv_run *r, uint32_t b, uint32_t hq, uint32_t h, uint32_t q0) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t nq = lower_min_u32(r->P, a->S - q0), qi = r->rot_q++ % KV_NQ, mcol = ST_M0;
  uint64_t qoff = (((uint64_t)b * a->Hq + hq) * a->S + q0) * a->D;
  uint32_t kend = a->causal ? q0 + nq + r->off : r->kv.S;
  attn_load_rows(k, &r->qn[qi], 0, a->mm, &a->q, qoff, nq, a->D, a->D);
  attn_make_qT(k, a, &r->tp, &r->qn[qi], 0, nq, &r->qT[qi]);
  ot_ap o = kir_ap2(&r->oacc[qi], nq, 0, a->D, OT_DT_FP32);
  for (uint32_t c0 = 0; c0 < kend && !kir_status(k); c0 += KCHUNK) {
    uint32_t nk = lower_min_u32(KCHUNK, kend - c0), cr = r->rot_c++ % KV_NC;
    ot_ap s = kv_scores(r, qi, cr, h, q0, nq, c0, nk);
    mcol = attn_online_chunk(k, &r->st[qi], mcol, c0 == 0, s, nq, kir_ap2(&r->psb[cr], nq, 0, nk, a->mm));
    kv_pv(r, cr, h, nq, c0, nk);
    ot_ap oc = kir_ap2(&r->ops[cr], nq, 0, a->D, OT_DT_FP32);
    if (c0 == 0) {
      kir_copy(k, OT_ENG_SCALAR, o, oc);
    } else {
      ot_ap al = attn_col(&r->st[qi], nq, ST_ALPHA);
      kir_stt(k, o, o, OT_ALU_MUL, 0.0f, &al, OT_ALU_ADD, oc);
    }
  }
  ot_ap l = attn_col(&r->st[qi], nq, ST_L);
  kir_ts(k, OT_ENG_VECTOR, kir_ap2(&r->ysb[qi], nq, 0, a->D, a->ydt), o, OT_ALU_DIV, 0.0f, &l, OT_ALU_BYPASS, 0.0f,
         NULL);
  attn_store_rows(k, &a->y, qoff, a->D, &r->ysb[qi], 0, a->ydt, nq, a->D);
}

static ot_status kv_alloc(kv_run *r) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t P = r->P, e = attn_esz(a->mm), bank = attn_bank_bytes(kir_chip(k));
  uint32_t kt = lower_ceil_div(r->kv.S, P);
  for (int i = 0; i < 2; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, r->kv.S * e, &r->kT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, kt * a->D * e, &r->vn[i]);
  }
  kir_alloc(k, OT_MEM_SBUF, P, kt * a->D * e, &r->knat);
  for (int i = 0; i < KV_NQ; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, a->D * e, &r->qn[i]);
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->qT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, a->D * 4, &r->oacc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, a->D * attn_esz(a->ydt), &r->ysb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, ST_COLS * 4, &r->st[i]);
  }
  for (int i = 0; i < KV_NC; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * e, &r->psb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * e, &r->pTsb[i]);
    if (a->causal) kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * 4, &r->ssb[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * 4 < bank ? KCHUNK * 4 : bank, &r->sps[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * e < bank ? KCHUNK * e : bank, &r->pTps[i]);
    kir_alloc(k, OT_MEM_PSUM, P, a->D * 4, &r->ops[i]);
  }
  kir_alloc(k, OT_MEM_PSUM, P, P * e, &r->tp);
  kir_alloc(k, OT_MEM_PSUM, P, bank, &r->tpk);
  return kir_status(k);
}

static void kv_release(kv_run *r) {
  for (int i = 0; i < 2; i++) {
    kir_release(r->k, &r->kT[i]);
    kir_release(r->k, &r->vn[i]);
  }
  for (int i = 0; i < KV_NQ; i++) {
    kir_buf *b[] = {&r->qn[i], &r->qT[i], &r->oacc[i], &r->ysb[i], &r->st[i]};
    for (size_t j = 0; j < sizeof b / sizeof b[0]; j++) kir_release(r->k, b[j]);
  }
  for (int i = 0; i < KV_NC; i++) {
    kir_buf *b[] = {&r->psb[i], &r->pTsb[i], &r->ssb[i], &r->sps[i], &r->pTps[i], &r->ops[i]};
    for (size_t j = 0; j < sizeof b / sizeof b[0]; j++) kir_release(r->k, b[j]);
  }
  kir_release(r->k, &r->knat);
  kir_release(r->k, &r->tp);
  kir_release(r->k, &r->tpk);
}

ot_status lower_attention_kv(lower_ctx *c, const ot_gnode *n) {
  attn_shape a;
  attn_shape_read(c, n, &a);
  kv_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.a = &a;
  r.kv = a;
  r.kv.S = (uint32_t)c->g->t[n->in[1]].shape[2];
  r.off = r.kv.S - a.S;
  r.P = attn_parts(c->chip);
  if (a.S == 0 || a.D == 0 || a.B == 0 || a.Hq == 0) return OT_OK;
  uint64_t e = attn_esz(a.mm), kd = (uint64_t)lower_ceil_div(r.kv.S, r.P) * a.D * e;
  if (attn_check(c->k, &r.kv, r.P, "attention over a KV cache", 2 * ((uint64_t)r.kv.S * e + kd) + kd))
    return kir_status(c->k);
  if (kv_alloc(&r)) { kv_release(&r); return kir_status(c->k); }
  uint32_t heads = a.B * a.Hkv, grp = a.Hq / a.Hkv;
  kv_load_head(&r, 0, 0, 0);
  for (uint32_t i = 0; i < heads && !kir_status(c->k); i++) {
    uint32_t b = i / a.Hkv, g = i % a.Hkv;
    if (i + 1 < heads) kv_load_head(&r, (i + 1) / a.Hkv, (i + 1) % a.Hkv, (i + 1) % 2);
    for (uint32_t j = 0; j < grp; j++)
      for (uint32_t q0 = 0; q0 < a.S && !kir_status(c->k); q0 += r.P) kv_tile(&r, b, g * grp + j, i % 2, q0);
  }
  kv_release(&r);
  return kir_status(c->k);
}
