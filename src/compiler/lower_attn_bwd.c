/* Attention backward (flash style): dq, dk, dv recomputing the probabilities tile by tile.
**
** For each batch b and kv head g: K^T and V^T [D, S] (PE transposes) and K [128 keys, S/128 x D]
** stay in SBUF with fp32 accumulators dK, dV [128 keys, S/128 x D] (zeroed first).  For each
** query head h of the group and each 128-row query tile (Q, Q^T, dY, dY^T, Y loaded once):
**   D_i = rowsum(dY * Y)                                   VectorE
**   pass 1, chunks of 512 keys: S = (scale Q) K^T, online max m / sum l (as the forward);
**           nlse = -(m + ln l)                              ScalarE ln, VectorE
**   pass 2, blocks of 128 keys up to the diagonal:
**     S = Q K^T (masked on the diagonal)                   TensorE (+ VectorE copy, GpSimd select)
**     P = exp(S + nlse)                                     ScalarE (normalised probabilities)
**     dP = dY V^T                                           TensorE
**     dS = (dP - D_i) * P, in the matmul type               VectorE stt; or, 16-bit matmul type
**                                                           with separate PSUM ports: ScalarE
**                                                           dP - D_i (bias), VectorE 16-bit mul
**     dV[blk] += P^T dY    (stationary P as is: q on partitions)      TensorE
**     dK[blk] += dS^T Q                                                TensorE
**     dQ += dS K[blk]      (dS^T through the PE), accumulating in one PSUM bank
**   The softmax scale multiplies dQ and dK once, when they leave PSUM (ScalarE copy's free
**   pre-scale), not every dS block.
**   dK, dV accumulate in PSUM, one bank each, across every query tile of the kv head when
**   S/128 x D fp32 fits a bank (GPT-2: S <= 1024 at D = 64), else per block in PSUM and into
**   fp32 SBUF accumulators by the VectorE.  dQ leaves PSUM once per query tile; dK, dV once
**   per kv head (summed over the group). */
#include <string.h>

#include "compiler/lower_attn_int.h"

#define BWD_BLK KCHUNK /* keys per pass-2 block: one fp32 PSUM bank of scores */
#define BWD_PAIR 2u  /* query tiles whose blocks are interleaved */
#define BWD_NQ 4u    /* query-tile buffer sets */
#define BWD_NB 2u    /* block buffer sets */
#define BWD_PACC_KT 512u /* key tiles of a PSUM bank of dK at D = 1 */

/* stats columns beyond the forward's */
enum { BS_DI = ST_COLS, BS_NDI, BS_LNL, BS_NLSE, BS_COLS };

typedef struct {
  kir *k;
  const attn_shape *a;
  kir_hbm yv, dy, dq, dk, dv;
  ot_dtype dqt, dkt, dvt;
  uint32_t P, KT;
  kir_buf kT[2], vT[2], kn[2], dka, dva, vnat, tpk;  /* per kv head (two in flight) */
  kir_buf qn[BWD_NQ], qT[BWD_NQ], dyf[BWD_NQ], dyn[BWD_NQ], dyT[BWD_NQ], yf[BWD_NQ], st[BWD_NQ], dqo[BWD_NQ]; /* per query tile */
  kir_buf psb[BWD_NB], dss[BWD_NB], dsT[BWD_NB], junk, kvo; /* per block */
  kir_buf sps[BWD_NB], dps[BWD_NB], dvp[BWD_NB], dkp[BWD_NB], dqp[BWD_NQ], tp; /* PSUM */
  kir_buf masks;
  uint32_t rot_q, rot_b, h;
  bool pacc;                /* dK, dV accumulate in PSUM (one bank each), not in SBUF */
  bool split_ds;            /* dS in two steps (ScalarE, VectorE) instead of one VectorE stt */
  kir_buf pdk, pdv;
  uint8_t started[BWD_PACC_KT]; /* pacc: key tile kt has its first contribution emitted */
} bwd_run;

/* K (kept natural for dQ), K^T and V^T of kv head (b, g) into slot h. */
static void bwd_load_kv(bwd_run *r, uint32_t b, uint32_t g, uint32_t h) {
  const attn_shape *a = r->a;
  uint64_t base = ((uint64_t)b * a->Hkv + g) * a->S * a->D;
  attn_load_tiles(r->k, a, &a->k, base, &r->kn[h]);
  attn_load_tiles(r->k, a, &a->v, base, &r->vnat);
  attn_transpose_tiles(r->k, a, &r->kn[h], &r->tpk, &r->kT[h]);
  attn_transpose_tiles(r->k, a, &r->vnat, &r->tpk, &r->vT[h]);
}

/* dK, dV accumulators of kv head (b, g) to HBM in the output types. */
static void bwd_store_kv(bwd_run *r, uint32_t b, uint32_t g) {
  const attn_shape *a = r->a;
  uint64_t base = ((uint64_t)b * a->Hkv + g) * a->S * a->D;
  for (uint32_t kt = 0; kt < r->KT; kt++) {
    uint32_t nk = lower_min_u32(r->P, a->S - kt * r->P);
    const kir_buf *acc[2] = {r->pacc ? &r->pdk : &r->dka, r->pacc ? &r->pdv : &r->dva};
    const kir_hbm *out[2] = {&r->dk, &r->dv};
    ot_dtype dt[2] = {r->dkt, r->dvt};
    for (int j = 0; j < 2; j++) {
      ot_ap o = kir_ap2(&r->kvo, nk, j * a->D, a->D, dt[j]), in = kir_ap2(acc[j], nk, kt * a->D, a->D, OT_DT_FP32);
      if (j) kir_copy(r->k, OT_ENG_VECTOR, o, in);
      else kir_activate(r->k, OT_ENG_SCALAR, o, in, OT_ACT_COPY, a->scale, NULL, NULL, NULL); /* dK = scale dS^T Q */
      attn_store_rows(r->k, out[j], base + (uint64_t)kt * r->P * a->D, a->D, &r->kvo, j * a->D, dt[j], nk, a->D);
    }
  }
}

/* Query-tile operands: Q, Q^T, dY (fp32 and mm), dY^T, and D_i = rowsum(dY * Y). */
static void bwd_load_q(bwd_run *r, uint32_t qi, uint64_t qoff, uint32_t nq) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t D = a->D;
  attn_load_rows(k, &r->qn[qi], 0, a->mm, &a->q, qoff, nq, D, D);
  attn_make_qT(k, a, &r->tp, &r->qn[qi], nq, &r->qT[qi]);
  attn_load_rows(k, &r->dyf[qi], 0, OT_DT_FP32, &r->dy, qoff, nq, D, D);
  attn_load_rows(k, &r->yf[qi], 0, OT_DT_FP32, &r->yv, qoff, nq, D, D);
  kir_copy(k, OT_ENG_GPSIMD, kir_ap2(&r->dyn[qi], nq, 0, D, a->mm), kir_ap2(&r->dyf[qi], nq, 0, D, OT_DT_FP32));
  attn_transpose(k, OT_ENG_VECTOR, &r->tp, 0, kir_ap2(&r->dyn[qi], nq, 0, D, a->mm), nq, D, a->mm, &r->dyT[qi], 0, a->mm);
  kir_tt(k, OT_ENG_GPSIMD, kir_ap2(&r->yf[qi], nq, 0, D, OT_DT_FP32), kir_ap2(&r->dyf[qi], nq, 0, D, OT_DT_FP32),
         kir_ap2(&r->yf[qi], nq, 0, D, OT_DT_FP32), OT_ALU_MUL);
  kir_reduce(k, attn_col(&r->st[qi], nq, BS_DI), kir_ap2(&r->yf[qi], nq, 0, D, OT_DT_FP32), OT_ALU_ADD, 1, false);
  if (r->split_ds)
    kir_ts(k, OT_ENG_GPSIMD, attn_col(&r->st[qi], nq, BS_NDI), attn_col(&r->st[qi], nq, BS_DI), OT_ALU_MUL, -1.0f, NULL,
           OT_ALU_BYPASS, 0.0f, NULL);
}

/* A query tile in flight: rows [q0, q0+nq) of query head hq, its buffers slot qi; per block,
** the block buffers slot bi and the probabilities / scaled dS. */
typedef struct {
  uint32_t hq, q0, nq, qi, kend, bi, nkb;
  uint8_t acc[BWD_BLK / 128]; /* pacc: per 128-key sub-block, continue its accumulation group */
  uint64_t qoff;
  ot_ap p, dss;
} bwd_tile;

/* Pass 1 for the tiles t[0..nt): row max and sum over the visible keys, chunk by chunk
** interleaved across the tiles, then nlse = -m - ln l. */
static void bwd_stats(bwd_run *r, bwd_tile *t, uint32_t nt) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t mcol[BWD_PAIR];
  ot_ap sc[BWD_PAIR];
  for (uint32_t i = 0; i < nt; i++) mcol[i] = ST_M0;
  for (uint32_t c0 = 0; !kir_status(k); c0 += KCHUNK) {
    bool any = false;
    for (uint32_t i = 0; i < nt; i++) {
      if (c0 >= t[i].kend) continue;
      any = true;
      sc[i] = attn_scores(k, a, &r->sps[r->rot_b++ % BWD_NB], &r->masks, kir_ap2(&r->qT[t[i].qi], a->D, 0, t[i].nq, a->mm),
                          &r->kT[r->h], t[i].q0, t[i].nq, c0, lower_min_u32(KCHUNK, t[i].kend - c0));
    }
    if (!any) break;
    for (uint32_t i = 0; i < nt; i++)
      if (c0 < t[i].kend)
        mcol[i] = attn_online_chunk(k, &r->st[t[i].qi], mcol[i], c0 == 0, sc[i], t[i].nq,
                                    kir_ap2(&r->junk, t[i].nq, 0, lower_min_u32(KCHUNK, t[i].kend - c0), OT_DT_FP32));
  }
  for (uint32_t i = 0; i < nt; i++) {
    const kir_buf *st = &r->st[t[i].qi];
    ot_ap lnl = attn_col(st, t[i].nq, BS_LNL), m = attn_col(st, t[i].nq, mcol[i]);
    kir_activate(k, OT_ENG_SCALAR, lnl, attn_col(st, t[i].nq, ST_L), OT_ACT_LOG, 1.0f, NULL, NULL, NULL);
    kir_tt(k, OT_ENG_VECTOR, attn_col(st, t[i].nq, BS_NLSE), m, lnl, OT_ALU_SUB); /* -m - ln l */
  }
}

/* dacc[:, kt*D ..] += stationary^T . moving, through the PSUM buffer ps. */
static void bwd_accumulate(bwd_run *r, const kir_buf *ps, ot_ap stat, ot_ap mov, uint32_t nkb, const kir_buf *dacc,
                           uint32_t kt, bool acc) {
  uint32_t D = r->a->D;
  if (r->pacc) { /* straight into the head's PSUM accumulator */
    kir_matmul(r->k, kir_ap2(dacc, nkb, kt * D, D, OT_DT_FP32), stat, mov, acc);
    return;
  }
  ot_ap p = kir_ap2(ps, nkb, 0, D, OT_DT_FP32), sacc = kir_ap2(dacc, nkb, kt * D, D, OT_DT_FP32);
  kir_matmul(r->k, p, stat, mov, false);
  kir_tt(r->k, OT_ENG_VECTOR, sacc, sacc, p, OT_ALU_ADD);
}


/* dS^T of tile ti's 512-key block through the PE: 128-key sub-blocks transposed into the dP bank
** (free once the stt has read it), copied out in one instruction when every sub-block is a full
** 128 x 128 square, else one copy per sub-block.  The copy goes to the VectorE (16-bit PSUM reads
** at 2x: trn2 attention_bwd 698 -> 667 us) unless it shares the PSUM port with the ScalarE
** (NC-v2: the ScalarE, trn1 2.434 -> 2.428 ms for the block). */
static void bwd_ds_transpose(bwd_run *r, const bwd_tile *ti, uint32_t nsub) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t nq = ti->nq, bi = ti->bi;
  bool full = nq == r->P && ti->nkb == nsub * r->P;
  ot_engine e = kir_chip(k)->ports.vector_scalar_share_psum ? OT_ENG_SCALAR : OT_ENG_VECTOR;
  for (uint32_t j = 0; j < nsub; j++) {
    uint32_t nk = lower_min_u32(r->P, ti->nkb - j * r->P);
    kir_transpose(k, kir_ap2(&r->dps[bi], nk, j * r->P, nq, a->mm), kir_ap2(&r->dss[bi], nq, j * r->P, nk, a->mm));
    if (!full)
      kir_copy(k, e, kir_ap2(&r->dsT[bi], nk, j * r->P, nq, a->mm), kir_ap2(&r->dps[bi], nk, j * r->P, nq, a->mm));
  }
  if (full)
    kir_copy(k, e, kir_ap2(&r->dsT[bi], r->P, 0, nsub * r->P, a->mm),
             kir_ap2(&r->dps[bi], r->P, 0, nsub * r->P, a->mm));
}

/* Pass 2, key block [k0, k0+512) of every tile in t[0..nt) that reaches it, stage by stage
** across the tiles (software pipelining of the in-order engine streams).  Scores, exp, dP and
** dS take the whole block (one instruction each); dV, dK, dS^T and dQ go by 128-key sub-blocks
** (the PE's stationary side). */
static void bwd_blocks(bwd_run *r, bwd_tile *t, uint32_t nt, uint32_t k0) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t D = a->D, P = r->P, kt0 = k0 / P, nsub[BWD_PAIR];
  ot_ap sc[BWD_PAIR];
  for (uint32_t i = 0; i < nt; i++) {
    if (k0 >= t[i].kend) continue;
    t[i].bi = r->rot_b++ % BWD_NB;
    t[i].nkb = lower_min_u32(BWD_BLK, t[i].kend - k0);
    nsub[i] = lower_ceil_div(t[i].nkb, P);
    for (uint32_t j = 0; j < nsub[i]; j++) {
      t[i].acc[j] = r->pacc && r->started[kt0 + j];
      if (r->pacc) r->started[kt0 + j] = 1;
    }
    sc[i] = attn_scores(k, a, &r->sps[t[i].bi], &r->masks, kir_ap2(&r->qT[t[i].qi], D, 0, t[i].nq, a->mm), &r->kT[r->h],
                        t[i].q0, t[i].nq, k0, t[i].nkb);
  }
  for (uint32_t i = 0; i < nt; i++) { /* P = exp(S - m - ln l) */
    if (k0 >= t[i].kend) continue;
    ot_ap nlse = attn_col(&r->st[t[i].qi], t[i].nq, BS_NLSE);
    t[i].p = kir_ap2(&r->psb[t[i].bi], t[i].nq, 0, t[i].nkb, a->mm);
    kir_activate(k, OT_ENG_SCALAR, t[i].p, sc[i], OT_ACT_EXP, 1.0f, NULL, &nlse, NULL);
  }
  for (uint32_t i = 0; i < nt; i++) /* dP = dY V^T */
    if (k0 < t[i].kend)
      kir_matmul(k, kir_ap2(&r->dps[t[i].bi], t[i].nq, 0, t[i].nkb, OT_DT_FP32), kir_ap2(&r->dyT[t[i].qi], D, 0, t[i].nq, a->mm),
                 kir_ap2(&r->vT[r->h], D, k0, t[i].nkb, a->mm), false);
  for (uint32_t i = 0; i < nt; i++) { /* dS = (dP - D_i) P, in the matmul type (scale: when dQ, dK leave PSUM) */
    if (k0 >= t[i].kend) continue;
    uint32_t nq = t[i].nq, nkb = t[i].nkb, bi = t[i].bi;
    ot_ap di = attn_col(&r->st[t[i].qi], nq, BS_DI);
    t[i].dss = kir_ap2(&r->dss[bi], nq, 0, nkb, a->mm);
    ot_ap dp = kir_ap2(&r->dps[bi], nq, 0, nkb, OT_DT_FP32);
    if (r->split_ds) { /* ScalarE: dP - D_i out of PSUM (bias); VectorE: a 16-bit SBUF product at 1 per cycle */
      ot_ap ndi = attn_col(&r->st[t[i].qi], nq, BS_NDI);
      kir_activate(k, OT_ENG_SCALAR, t[i].dss, dp, OT_ACT_COPY, 1.0f, NULL, &ndi, NULL);
      kir_tt(k, OT_ENG_VECTOR, t[i].dss, t[i].dss, t[i].p, OT_ALU_MUL);
    } else {
      kir_stt(k, t[i].dss, dp, OT_ALU_SUB, 0.0f, &di, OT_ALU_MUL, t[i].p);
    }
  }
  for (uint32_t i = 0; i < nt; i++) /* dV += P^T dY */
    for (uint32_t j = 0; k0 < t[i].kend && j < nsub[i]; j++) {
      uint32_t nk = lower_min_u32(P, t[i].nkb - j * P);
      bwd_accumulate(r, &r->dvp[t[i].bi], kir_ap2(&r->psb[t[i].bi], t[i].nq, j * P, nk, a->mm),
                     kir_ap2(&r->dyn[t[i].qi], t[i].nq, 0, D, a->mm), nk, r->pacc ? &r->pdv : &r->dva, kt0 + j, t[i].acc[j]);
    }
  for (uint32_t i = 0; i < nt; i++) /* dK += dS^T Q */
    for (uint32_t j = 0; k0 < t[i].kend && j < nsub[i]; j++) {
      uint32_t nk = lower_min_u32(P, t[i].nkb - j * P);
      bwd_accumulate(r, &r->dkp[t[i].bi], kir_ap2(&r->dss[t[i].bi], t[i].nq, j * P, nk, a->mm),
                     kir_ap2(&r->qn[t[i].qi], t[i].nq, 0, D, a->mm), nk, r->pacc ? &r->pdk : &r->dka, kt0 + j, t[i].acc[j]);
    }
  for (uint32_t i = 0; i < nt; i++) /* dS^T */
    if (k0 < t[i].kend) bwd_ds_transpose(r, &t[i], nsub[i]);
  for (uint32_t i = 0; i < nt; i++) /* dQ += dS K */
    for (uint32_t j = 0; k0 < t[i].kend && j < nsub[i]; j++) {
      uint32_t nk = lower_min_u32(P, t[i].nkb - j * P);
      kir_matmul(k, kir_ap2(&r->dqp[t[i].qi], t[i].nq, 0, D, OT_DT_FP32), kir_ap2(&r->dsT[t[i].bi], nk, j * P, t[i].nq, a->mm),
                 kir_ap2(&r->kn[r->h], nk, (kt0 + j) * D, D, a->mm), k0 + j > 0);
    }
}

/* Up to BWD_PAIR query tiles of batch b: loads and statistics, then pass 2 block by block. */
static void bwd_tiles(bwd_run *r, uint32_t b, bwd_tile *t, uint32_t nt) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  for (uint32_t i = 0; i < nt; i++) {
    t[i].nq = lower_min_u32(r->P, a->S - t[i].q0);
    t[i].qi = r->rot_q++ % BWD_NQ;
    t[i].qoff = (((uint64_t)b * a->Hq + t[i].hq) * a->S + t[i].q0) * a->D;
    t[i].kend = a->causal ? t[i].q0 + t[i].nq : a->S;
    bwd_load_q(r, t[i].qi, t[i].qoff, t[i].nq);
  }
  uint32_t kmax = 0;
  bwd_stats(r, t, nt);
  for (uint32_t i = 0; i < nt; i++)
    if (t[i].kend > kmax) kmax = t[i].kend;
  for (uint32_t k0 = 0; k0 < kmax && !kir_status(k); k0 += BWD_BLK) bwd_blocks(r, t, nt, k0);
  for (uint32_t i = 0; i < nt; i++) {
    uint32_t qi = t[i].qi, nq = t[i].nq;
    kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->dqo[qi], nq, 0, a->D, r->dqt), kir_ap2(&r->dqp[qi], nq, 0, a->D, OT_DT_FP32),
                 OT_ACT_COPY, a->scale, NULL, NULL, NULL);
    attn_store_rows(k, &r->dq, t[i].qoff, a->D, &r->dqo[qi], 0, r->dqt, nq, a->D);
  }
}

/* Every query tile of kv head (b, g) in (row tile, head) order, BWD_PAIR at a time. */
static void bwd_kv_head(bwd_run *r, uint32_t b, uint32_t g) {
  const attn_shape *a = r->a;
  uint32_t grp = a->Hq / a->Hkv, total = grp * r->KT;
  bwd_tile t[BWD_PAIR];
  for (uint32_t done = 0; done < total && !kir_status(r->k);) {
    uint32_t nt = lower_min_u32(BWD_PAIR, total - done);
    for (uint32_t i = 0; i < nt; i++) {
      memset(&t[i], 0, sizeof t[i]);
      t[i].q0 = ((done + i) / grp) * r->P;
      t[i].hq = g * grp + (done + i) % grp;
    }
    bwd_tiles(r, b, t, nt);
    done += nt;
  }
}

static ot_status bwd_alloc(bwd_run *r) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t P = r->P, e = attn_esz(a->mm), D = a->D, KD = r->KT * D;
  for (int i = 0; i < 2; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, a->S * e, &r->kT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, a->S * e, &r->vT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, KD * e, &r->kn[i]);
  }
  kir_alloc(k, OT_MEM_SBUF, P, KD * e, &r->vnat);
  r->pacc = KD * 4 <= attn_bank_bytes(kir_chip(k)) && r->KT <= BWD_PACC_KT;
  if (r->pacc) {
    kir_alloc(k, OT_MEM_PSUM, P, KD * 4, &r->pdk);
    kir_alloc(k, OT_MEM_PSUM, P, KD * 4, &r->pdv);
  } else {
    kir_alloc(k, OT_MEM_SBUF, P, KD * 4, &r->dka);
    kir_alloc(k, OT_MEM_SBUF, P, KD * 4, &r->dva);
  }
  kir_alloc(k, OT_MEM_SBUF, P, KCHUNK * 4, &r->junk);
  kir_alloc(k, OT_MEM_SBUF, P, 2 * D * 4, &r->kvo);
  kir_alloc(k, OT_MEM_PSUM, P, P * e, &r->tp);
  if (a->causal) kir_alloc(k, OT_MEM_SBUF, P, (ATTN_MASKS * KCHUNK + P) * e, &r->masks);
  for (uint32_t i = 0; i < BWD_NQ; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, D * e, &r->qn[i]);
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->qT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, D * 4, &r->dyf[i]);
    kir_alloc(k, OT_MEM_SBUF, P, D * e, &r->dyn[i]);
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->dyT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, D * 4, &r->yf[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BS_COLS * 4, &r->st[i]);
    kir_alloc(k, OT_MEM_SBUF, P, D * 4, &r->dqo[i]);
    kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dqp[i]);
  }
  for (uint32_t i = 0; i < BWD_NB; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->psb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->dss[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->dsT[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * 4, &r->sps[i]);
    if (i == 0) r->tpk = r->sps[0]; /* K, V transposes share the first score bank */
    kir_alloc(k, OT_MEM_PSUM, P, BWD_BLK * 4, &r->dps[i]);
    if (!r->pacc) {
      kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dvp[i]);
      kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dkp[i]);
    }
  }
  return kir_status(k);
}

static void bwd_release(bwd_run *r) {
  kir_buf *one[] = {&r->dka, &r->dva, &r->pdk, &r->pdv, &r->vnat, &r->junk, &r->kvo, &r->tp, &r->masks};
  kir_buf *two[] = {r->kT, r->vT, r->kn};
  kir_buf *nq[] = {r->qn, r->qT, r->dyf, r->dyn, r->dyT, r->yf, r->st, r->dqo, r->dqp};
  kir_buf *nb[] = {r->psb, r->dss, r->dsT, r->sps, r->dps, r->dvp, r->dkp};
  for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) kir_release(r->k, one[i]);
  for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
    for (int j = 0; j < 2; j++) kir_release(r->k, &two[i][j]);
  for (size_t i = 0; i < sizeof nq / sizeof nq[0]; i++)
    for (uint32_t j = 0; j < BWD_NQ; j++) kir_release(r->k, &nq[i][j]);
  for (size_t i = 0; i < sizeof nb / sizeof nb[0]; i++)
    for (uint32_t j = 0; j < BWD_NB; j++) kir_release(r->k, &nb[i][j]);
}

ot_status lower_attention_bwd(lower_ctx *c, const ot_gnode *n) {
  attn_shape a;
  attn_shape_read(c, n, &a);
  bwd_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.a = &a;
  r.P = attn_parts(c->chip);
  r.KT = lower_ceil_div(a.S, r.P);
  r.split_ds = attn_esz(a.mm) == 2 && !c->chip->ports.vector_scalar_share_psum;
  r.yv = c->hbm[n->in[3]];
  r.dy = c->hbm[n->in[4]];
  r.dq = c->hbm[n->out[0]];
  r.dk = c->hbm[n->out[1]];
  r.dv = c->hbm[n->out[2]];
  r.dqt = (ot_dtype)c->g->t[n->out[0]].dtype;
  r.dkt = (ot_dtype)c->g->t[n->out[1]].dtype;
  r.dvt = (ot_dtype)c->g->t[n->out[2]].dtype;
  if (a.S == 0 || a.D == 0 || a.B == 0 || a.Hq == 0) return OT_OK;
  uint64_t e = attn_esz(a.mm), kd = (uint64_t)r.KT * a.D;
  if (attn_check(c->k, &a, r.P, "attention_bwd", 2 * (2 * (uint64_t)a.S * e + kd * e) + kd * e + 2 * kd * 4))
    return kir_status(c->k);
  if (bwd_alloc(&r)) { bwd_release(&r); return kir_status(c->k); }
  if (a.causal) attn_masks_init(c->k, &r.masks, r.P, a.mm);
  /* kv heads in order, the next head's K, K^T, V^T prefetched into the other slot */
  uint32_t heads = a.B * a.Hkv;
  bwd_load_kv(&r, 0, 0, 0);
  for (uint32_t i = 0; i < heads && !kir_status(c->k); i++) {
    uint32_t b = i / a.Hkv, g = i % a.Hkv;
    if (i + 1 < heads) bwd_load_kv(&r, (i + 1) / a.Hkv, (i + 1) % a.Hkv, (i + 1) % 2);
    r.h = i % 2;
    if (r.pacc) {
      memset(r.started, 0, sizeof r.started);
    } else {
      kir_memset(c->k, OT_ENG_GPSIMD, kir_ap2(&r.dka, r.P, 0, r.KT * a.D, OT_DT_FP32), 0.0f);
      kir_memset(c->k, OT_ENG_GPSIMD, kir_ap2(&r.dva, r.P, 0, r.KT * a.D, OT_DT_FP32), 0.0f);
    }
    bwd_kv_head(&r, b, g);
    bwd_store_kv(&r, b, g);
  }
  bwd_release(&r);
  return kir_status(c->k);
}
