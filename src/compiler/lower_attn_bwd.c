/* Attention backward (flash style): dq, dk, dv recomputing the probabilities tile by tile.
**
** For each batch b and kv head g: K^T and V^T [D, S] (PE transposes) and K [128 keys, S/128 x D]
** stay in SBUF with fp32 accumulators dK, dV [128 keys, S/128 x D] (zeroed first).  For each
** query head h of the group, its rows in chunks of up to 8 query tiles (Q, dY and Y of a chunk
** loaded by one DMA each, its dQ stored by one: on trn2 a DMA trigger costs its engine 600 ns,
** and a DMA per tile and operand took a third of the ScalarE's and VectorE's time):
**   D_i = rowsum(dY * Y)                                   GpSimd product, VectorE sum, per chunk
** and each 128-row query tile of the chunk (Q^T and dY^T through the PE):
**   pass 1, chunks of 512 keys: S = (scale Q) K^T, online max m / sum l (as the forward);
**           nlse = -(m + ln l)                              ScalarE ln, VectorE
**           (none where the transposed forward saved its -m and l: loaded per chunk instead,
**           so P below is the forward's own normalisation)
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
**   per kv head (summed over the group), stored by one DMA each. */
#include <string.h>

#include "compiler/lower_attn_int.h"

#define BWD_BLK KCHUNK /* keys per pass-2 block: one fp32 PSUM bank of scores */
#define BWD_PAIR 2u  /* query tiles whose blocks are interleaved */
#define BWD_NQ 4u    /* query-tile buffer sets */
#define BWD_NB 2u    /* block buffer sets */
#define BWD_PACC_KT 512u /* key tiles of a PSUM bank of dK at D = 1 */
#define BWD_NCH 2u   /* query-chunk buffer sets: one in use, the next loading */
#define BWD_CHUNK_BYTES (16u * 1024u) /* per partition, one set of a chunk's Q, dY, Y, dQ buffers */
#define BWD_KVO_BYTES (8u * 1024u)    /* per partition, dK and dV of the key tiles one store moves */

/* stats columns beyond the forward's */
enum { BS_LNL = ST_COLS, BS_NLSE, BS_COLS };

typedef struct {
  kir *k;
  const attn_shape *a;
  kir_hbm yv, dy, dq, dk, dv;
  ot_dtype dqt, dkt, dvt;
  uint32_t P, KT, QG, KVG; /* QG: query tiles per chunk; KVG: key tiles per dK / dV store */
  kir_buf kT[2], vT[2], kn[2], dka, dva, vnat, tpk;  /* per kv head (two in flight) */
  /* per query chunk: Q, dY (fp32 and matmul type), Y (then dY * Y), dQ out, D_i and -D_i */
  kir_buf qc[BWD_NCH], dyc[BWD_NCH], dync[BWD_NCH], yc[BWD_NCH], dqc[BWD_NCH], dic[BWD_NCH];
  kir_buf qT[BWD_NQ], dyT[BWD_NQ], st[BWD_NQ]; /* per query tile */
  kir_buf psb[BWD_NB], dss[BWD_NB], dsT[BWD_NB], junk, kvo; /* per block */
  kir_buf sps[BWD_NB], dps[BWD_NB], dvp[BWD_NB], dkp[BWD_NB], dqp[BWD_NQ], tp; /* PSUM */
  kir_buf masks;
  bool tpk_own;             /* the K/V transposes have a PSUM bank of their own (else sps[0]) */
  uint32_t rot_q, rot_b, h;
  int32_t kv_next;          /* slot of the next kv head, loaded, its transposes still to emit (-1: none) */
  uint32_t chunk_n, loaded; /* the query chunk in work (in the order of all chunks), chunks loaded so far */
  bool pacc;                /* dK, dV accumulate in PSUM (one bank each), not in SBUF */
  bool split_ds;            /* dS in two steps (ScalarE, VectorE) instead of one VectorE stt */
  bool saved;               /* the forward's statistics (stats) replace pass 1 */
  attn_view vy, vdy, vdq, vdk, vdv; /* layouts of y, dY and the gradients (q, k, v: a->vq ...) */
  kir_hbm stats;
  kir_buf pdk, pdv;
  uint8_t started[BWD_PACC_KT]; /* pacc: key tile kt has its first contribution emitted */
} bwd_run;

/* K (kept natural for dQ) and V of kv head (b, g) into slot h; their transposes follow
** separately (bwd_transpose_kv): the TensorE runs its stream in order, so transposes emitted with
** the next head's loads would hold the current head's work behind those loads (head-strided
** 128-byte runs: ~4 us each on trn2, a fifth of a GPT-2 head's backward). */
static void bwd_load_kv(bwd_run *r, uint32_t b, uint32_t g, uint32_t h) {
  const attn_shape *a = r->a;
  attn_tiles_dma(r->k, &r->kn[h], 0, a->mm, &a->k, attn_view_at(&a->vk, b, g, 0), a->S, a->D, a->vk.ss, false);
  attn_tiles_dma(r->k, &r->vnat, 0, a->mm, &a->v, attn_view_at(&a->vv, b, g, 0), a->S, a->D, a->vv.ss, false);
}

/* K^T and V^T of slot h, once its loads are emitted. */
static void bwd_transpose_kv(bwd_run *r, uint32_t h) {
  attn_transpose_tiles(r->k, r->a, &r->kn[h], &r->tpk, &r->kT[h]);
  attn_transpose_tiles(r->k, r->a, &r->vnat, &r->tpk, &r->vT[h]);
}

/* A run of tiles holding `rows` rows, as at most two regions: the full tiles on every partition,
** then a partial last tile on fewer (rows past the end are never read). */
typedef struct {
  uint32_t np, t0, nt;
} bwd_region;

static uint32_t bwd_regions(uint32_t P, uint32_t rows, bwd_region reg[2]) {
  uint32_t full = rows / P, n = 0;
  if (full) reg[n++] = (bwd_region){P, 0, full};
  if (rows % P) reg[n++] = (bwd_region){rows % P, full, 1};
  return n;
}

/* Region rg of a tiled buffer (tile t at element column boff + t x cols) as [np, nt, cols]. */
static ot_ap bwd_region_ap(const kir_buf *b, uint32_t boff, const bwd_region *rg, uint32_t cols, ot_dtype dt) {
  int32_t ss[2] = {(int32_t)cols, 1};
  uint32_t sz[2] = {rg->nt, cols};
  return kir_ap(b, 0, rg->np, (boff + rg->t0 * cols) * attn_esz(dt), dt, 2, ss, sz);
}

/* dK, dV accumulators of kv head (b, g) to HBM in the output types, KVG key tiles per store. */
static void bwd_store_kv(bwd_run *r, uint32_t b, uint32_t g) {
  const attn_shape *a = r->a;
  const attn_view *vo[2] = {&r->vdk, &r->vdv};
  const kir_buf *acc[2] = {r->pacc ? &r->pdk : &r->dka, r->pacc ? &r->pdv : &r->dva};
  const kir_hbm *out[2] = {&r->dk, &r->dv};
  ot_dtype dt[2] = {r->dkt, r->dvt};
  for (uint32_t kt0 = 0; kt0 < r->KT; kt0 += r->KVG) {
    uint32_t rows = lower_min_u32(r->KVG * r->P, a->S - kt0 * r->P);
    bwd_region reg[2];
    uint32_t nr = bwd_regions(r->P, rows, reg);
    for (int j = 0; j < 2; j++) {
      uint32_t ooff = j * r->KVG * a->D * 4 / attn_esz(dt[j]); /* dK, then dV, each KVG x D x 4 bytes */
      for (uint32_t i = 0; i < nr; i++) {
        ot_ap o = bwd_region_ap(&r->kvo, ooff, &reg[i], a->D, dt[j]), in = bwd_region_ap(acc[j], kt0 * a->D, &reg[i], a->D, OT_DT_FP32);
        if (j) kir_copy(r->k, OT_ENG_VECTOR, o, in);
        else kir_activate(r->k, OT_ENG_SCALAR, o, in, OT_ACT_COPY, a->scale, NULL, NULL, NULL); /* dK = scale dS^T Q */
      }
      attn_tiles_dma(r->k, &r->kvo, ooff, dt[j], out[j], attn_view_at(vo[j], b, g, kt0 * r->P), rows, a->D, vo[j]->ss, true);
    }
  }
}

/* A chunk of query rows [q0, q0 + rows) of query head hq of batch b, its buffers slot cs. */
typedef struct {
  uint32_t hq, q0, rows, cs, b;
} bwd_chunk;

/* Columns of a chunk's dic buffer, QG each: D_i, -D_i, and with saved statistics -m, l (then
** ln l) and nlse = -m - ln l. */
enum { DC_DI, DC_NDI, DC_NM, DC_L, DC_NLSE, DC_COLS };

/* A chunk's Q, dY and Y (one DMA each), dY in the matmul type, D_i = rowsum(dY * Y) and -D_i;
** with saved statistics, each row's -m and l (one DMA each) and nlse = -m - ln l. */
static void bwd_load_chunk(bwd_run *r, const bwd_chunk *ch) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t D = a->D, cs = ch->cs;
  attn_tiles_dma(k, &r->qc[cs], 0, a->mm, &a->q, attn_view_at(&a->vq, ch->b, ch->hq, ch->q0), ch->rows, D, a->vq.ss, false);
  attn_tiles_dma(k, &r->dyc[cs], 0, OT_DT_FP32, &r->dy, attn_view_at(&r->vdy, ch->b, ch->hq, ch->q0), ch->rows, D, r->vdy.ss,
                 false);
  attn_tiles_dma(k, &r->yc[cs], 0, OT_DT_FP32, &r->yv, attn_view_at(&r->vy, ch->b, ch->hq, ch->q0), ch->rows, D, r->vy.ss, false);
  uint64_t R = (uint64_t)a->B * a->Hq * a->S, srow = ((uint64_t)ch->b * a->Hq + ch->hq) * a->S + ch->q0; /* in the statistics */
  if (r->saved) {
    attn_tiles_dma(k, &r->dic[cs], DC_NM * r->QG, OT_DT_FP32, &r->stats, srow, ch->rows, 1, 1, false);
    attn_tiles_dma(k, &r->dic[cs], DC_L * r->QG, OT_DT_FP32, &r->stats, R + srow, ch->rows, 1, 1, false);
  }
  bwd_region reg[2];
  uint32_t nr = bwd_regions(r->P, ch->rows, reg);
  for (uint32_t i = 0; i < nr; i++) {
    ot_ap dyf = bwd_region_ap(&r->dyc[cs], 0, &reg[i], D, OT_DT_FP32), yf = bwd_region_ap(&r->yc[cs], 0, &reg[i], D, OT_DT_FP32);
    ot_ap di = bwd_region_ap(&r->dic[cs], 0, &reg[i], 1, OT_DT_FP32);
    kir_copy(k, OT_ENG_GPSIMD, bwd_region_ap(&r->dync[cs], 0, &reg[i], D, a->mm), dyf);
    kir_tt(k, OT_ENG_GPSIMD, yf, dyf, yf, OT_ALU_MUL);
    kir_reduce(k, di, yf, OT_ALU_ADD, 1, false);
    if (r->split_ds)
      kir_ts(k, OT_ENG_GPSIMD, bwd_region_ap(&r->dic[cs], DC_NDI * r->QG, &reg[i], 1, OT_DT_FP32), di, OT_ALU_MUL, -1.0f,
             NULL, OT_ALU_BYPASS, 0.0f, NULL);
    if (r->saved) {
      ot_ap l = bwd_region_ap(&r->dic[cs], DC_L * r->QG, &reg[i], 1, OT_DT_FP32);
      kir_activate(k, OT_ENG_SCALAR, l, l, OT_ACT_LOG, 1.0f, NULL, NULL, NULL);
      kir_tt(k, OT_ENG_VECTOR, bwd_region_ap(&r->dic[cs], DC_NLSE * r->QG, &reg[i], 1, OT_DT_FP32),
             bwd_region_ap(&r->dic[cs], DC_NM * r->QG, &reg[i], 1, OT_DT_FP32), l, OT_ALU_SUB);
    }
  }
}

/* A query tile in flight: rows [q0, q0+nq) of query head hq, tile ct of chunk slot cs, its
** buffers slot qi; per block, the block buffers slot bi and the probabilities / scaled dS. */
typedef struct {
  uint32_t hq, q0, nq, qi, cs, ct, kend, bi, nkb;
  uint8_t acc[BWD_BLK / 128]; /* pacc: per 128-key sub-block, continue its accumulation group */
  ot_ap p, dss, nlse;
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
    t[i].p = kir_ap2(&r->psb[t[i].bi], t[i].nq, 0, t[i].nkb, a->mm);
    kir_activate(k, OT_ENG_SCALAR, t[i].p, sc[i], OT_ACT_EXP, 1.0f, NULL, &t[i].nlse, NULL);
  }
  for (uint32_t i = 0; i < nt; i++) /* dP = dY V^T */
    if (k0 < t[i].kend)
      kir_matmul(k, kir_ap2(&r->dps[t[i].bi], t[i].nq, 0, t[i].nkb, OT_DT_FP32), kir_ap2(&r->dyT[t[i].qi], D, 0, t[i].nq, a->mm),
                 kir_ap2(&r->vT[r->h], D, k0, t[i].nkb, a->mm), false);
  for (uint32_t i = 0; i < nt; i++) { /* dS = (dP - D_i) P, in the matmul type (scale: when dQ, dK leave PSUM) */
    if (k0 >= t[i].kend) continue;
    uint32_t nq = t[i].nq, nkb = t[i].nkb, bi = t[i].bi;
    ot_ap di = attn_col(&r->dic[t[i].cs], nq, DC_DI * r->QG + t[i].ct);
    t[i].dss = kir_ap2(&r->dss[bi], nq, 0, nkb, a->mm);
    ot_ap dp = kir_ap2(&r->dps[bi], nq, 0, nkb, OT_DT_FP32);
    if (r->split_ds) { /* dP - D_i out of PSUM: the ScalarE (bias), every other tile the VectorE (the
                       ** ScalarE also has the exps; one trn2 core 54.12 -> 53.86 ms, all on the VectorE
                       ** 54.03); the GpSimd: the 16-bit SBUF product (N cycles at 1.2 GHz, idle here;
                       ** the VectorE has the dS^T copies out of PSUM: 55.74 -> 55.68 ms) */
      ot_ap ndi = attn_col(&r->dic[t[i].cs], nq, DC_NDI * r->QG + t[i].ct);
      if (i % 2) kir_ts(k, OT_ENG_VECTOR, t[i].dss, dp, OT_ALU_ADD, 0.0f, &ndi, OT_ALU_BYPASS, 0.0f, NULL);
      else kir_activate(k, OT_ENG_SCALAR, t[i].dss, dp, OT_ACT_COPY, 1.0f, NULL, &ndi, NULL);
      kir_tt(k, OT_ENG_GPSIMD, t[i].dss, t[i].dss, t[i].p, OT_ALU_MUL);
    } else {
      kir_stt(k, t[i].dss, dp, OT_ALU_SUB, 0.0f, &di, OT_ALU_MUL, t[i].p);
    }
  }
  for (uint32_t i = 0; i < nt; i++) /* dV += P^T dY */
    for (uint32_t j = 0; k0 < t[i].kend && j < nsub[i]; j++) {
      uint32_t nk = lower_min_u32(P, t[i].nkb - j * P);
      bwd_accumulate(r, &r->dvp[t[i].bi], kir_ap2(&r->psb[t[i].bi], t[i].nq, j * P, nk, a->mm),
                     kir_ap2(&r->dync[t[i].cs], t[i].nq, t[i].ct * D, D, a->mm), nk, r->pacc ? &r->pdv : &r->dva, kt0 + j, t[i].acc[j]);
    }
  for (uint32_t i = 0; i < nt; i++) /* dK += dS^T Q */
    for (uint32_t j = 0; k0 < t[i].kend && j < nsub[i]; j++) {
      uint32_t nk = lower_min_u32(P, t[i].nkb - j * P);
      bwd_accumulate(r, &r->dkp[t[i].bi], kir_ap2(&r->dss[t[i].bi], t[i].nq, j * P, nk, a->mm),
                     kir_ap2(&r->qc[t[i].cs], t[i].nq, t[i].ct * D, D, a->mm), nk, r->pacc ? &r->pdk : &r->dka, kt0 + j, t[i].acc[j]);
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

/* Up to BWD_PAIR query tiles of a loaded chunk: Q^T, dY^T and statistics, then pass 2 block by
** block; dQ out of PSUM into the chunk's dQ buffer. */
static void bwd_tiles(bwd_run *r, bwd_tile *t, uint32_t nt) {
  const attn_shape *a = r->a;
  kir *k = r->k;
  uint32_t D = a->D;
  for (uint32_t i = 0; i < nt; i++) {
    uint32_t qi = t[i].qi = r->rot_q++ % BWD_NQ, nq = t[i].nq = lower_min_u32(r->P, a->S - t[i].q0);
    t[i].kend = a->causal ? t[i].q0 + nq : a->S;
    attn_make_qT(k, a, &r->tp, &r->qc[t[i].cs], t[i].ct * D, nq, &r->qT[qi]);
    attn_transpose(k, OT_ENG_VECTOR, &r->tp, 0, kir_ap2(&r->dync[t[i].cs], nq, t[i].ct * D, D, a->mm), nq, D, a->mm, &r->dyT[qi],
                   0, a->mm);
  }
  uint32_t kmax = 0;
  if (!r->saved) bwd_stats(r, t, nt);
  for (uint32_t i = 0; i < nt; i++)
    t[i].nlse = r->saved ? attn_col(&r->dic[t[i].cs], t[i].nq, DC_NLSE * r->QG + t[i].ct) : attn_col(&r->st[t[i].qi], t[i].nq, BS_NLSE);
  for (uint32_t i = 0; i < nt; i++)
    if (t[i].kend > kmax) kmax = t[i].kend;
  for (uint32_t k0 = 0; k0 < kmax && !kir_status(k); k0 += BWD_BLK) bwd_blocks(r, t, nt, k0);
  for (uint32_t i = 0; i < nt; i++)
    kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->dqc[t[i].cs], t[i].nq, t[i].ct * D, D, r->dqt),
                 kir_ap2(&r->dqp[t[i].qi], t[i].nq, 0, D, OT_DT_FP32), OT_ACT_COPY, a->scale, NULL, NULL, NULL);
}

/* Chunk n in the order of the whole kernel (kv heads, the heads of each group, query chunks);
** false past the last. */
static bool bwd_chunk_at(const bwd_run *r, uint32_t n, bwd_chunk *ch) {
  const attn_shape *a = r->a;
  uint32_t grp = a->Hq / a->Hkv, nc = lower_ceil_div(r->KT, r->QG), per_kv = grp * nc, i = n / per_kv;
  if (i >= a->B * a->Hkv) return false;
  uint32_t hi = n % per_kv / nc, c0 = n % per_kv % nc * r->QG;
  *ch = (bwd_chunk){(i % a->Hkv) * grp + hi, c0 * r->P, lower_min_u32(r->QG * r->P, a->S - c0 * r->P), n % BWD_NCH, i / a->Hkv};
  return true;
}

/* Work emitted inside a chunk, ahead of its need: the next chunk's loads (behind the chunk's
** first tiles) and the next kv head's transposes (behind half of them, when its loads, issued as
** this head began, have arrived).  Emitted just before their use, the in-order TensorE would wait
** there for the head-strided 128-byte-run loads, ~3.5 us each on trn2. */
static void bwd_ahead(bwd_run *r, uint32_t done, uint32_t ntile) {
  if (r->kv_next >= 0 && 2 * done >= ntile) {
    bwd_transpose_kv(r, (uint32_t)r->kv_next);
    r->kv_next = -1;
  }
  bwd_chunk nx;
  if (r->loaded == r->chunk_n + 1 && bwd_chunk_at(r, r->chunk_n + 1, &nx)) {
    bwd_load_chunk(r, &nx);
    r->loaded++;
  }
}

/* Every query tile of kv head (b, g), head by head of the group, in chunks of QG tiles (loaded
** and their dQ stored together), BWD_PAIR tiles at a time. */
static void bwd_kv_head(bwd_run *r, uint32_t b) {
  const attn_shape *a = r->a;
  uint32_t per_kv = a->Hq / a->Hkv * lower_ceil_div(r->KT, r->QG);
  for (uint32_t c = 0; c < per_kv && !kir_status(r->k); c++, r->chunk_n++) {
    bwd_chunk ch;
    bwd_chunk_at(r, r->chunk_n, &ch);
    if (r->loaded <= r->chunk_n) {
      bwd_load_chunk(r, &ch);
      r->loaded = r->chunk_n + 1;
    }
    uint32_t ntile = lower_ceil_div(ch.rows, r->P);
    for (uint32_t done = 0; done < ntile && !kir_status(r->k);) {
      uint32_t nt = lower_min_u32(BWD_PAIR, ntile - done);
      bwd_tile t[BWD_PAIR];
      for (uint32_t i = 0; i < nt; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].hq = ch.hq;
        t[i].cs = ch.cs;
        t[i].ct = done + i;
        t[i].q0 = ch.q0 + (done + i) * r->P;
      }
      bwd_tiles(r, t, nt);
      done += nt;
      bwd_ahead(r, done, ntile);
    }
    attn_tiles_dma(r->k, &r->dqc[ch.cs], 0, r->dqt, &r->dq, attn_view_at(&r->vdq, b, ch.hq, ch.q0), ch.rows, a->D, r->vdq.ss, true);
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
  kir_alloc(k, OT_MEM_SBUF, P, 2 * r->KVG * D * 4, &r->kvo);
  kir_alloc(k, OT_MEM_PSUM, P, P * e, &r->tp);
  if (a->causal) kir_alloc(k, OT_MEM_SBUF, P, (ATTN_MASKS * KCHUNK + P) * e, &r->masks);
  for (uint32_t i = 0; i < BWD_NCH; i++) {
    uint32_t QD = r->QG * D;
    kir_alloc(k, OT_MEM_SBUF, P, QD * e, &r->qc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, QD * 4, &r->dyc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, QD * e, &r->dync[i]);
    kir_alloc(k, OT_MEM_SBUF, P, QD * 4, &r->yc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, QD * attn_esz(r->dqt), &r->dqc[i]);
    kir_alloc(k, OT_MEM_SBUF, P, DC_COLS * r->QG * 4, &r->dic[i]);
  }
  for (uint32_t i = 0; i < BWD_NQ; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->qT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, P * e, &r->dyT[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BS_COLS * 4, &r->st[i]);
    kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dqp[i]);
  }
  for (uint32_t i = 0; i < BWD_NB; i++) {
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->psb[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->dss[i]);
    kir_alloc(k, OT_MEM_SBUF, P, BWD_BLK * e, &r->dsT[i]);
    kir_alloc(k, OT_MEM_PSUM, P, KCHUNK * 4, &r->sps[i]);
    if (i == 0) r->tpk = r->sps[0]; /* K, V transposes share the first score bank, unless (below) */
    kir_alloc(k, OT_MEM_PSUM, P, BWD_BLK * 4, &r->dps[i]);
    if (!r->pacc) {
      kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dvp[i]);
      kir_alloc(k, OT_MEM_PSUM, P, D * 4, &r->dkp[i]);
    }
  }
  /* a bank left over (dK, dV in PSUM take one each, leaving one beside the score sets for
  ** D <= 64): the next kv head's K/V transposes need not wait for this head's first score bank
  ** (GPT-2 124M 8 cores 53.36 -> 53.22 ms) */
  uint32_t bank = (uint32_t)(kir_chip(k)->psum.bytes_per_partition / kir_chip(k)->psum.banks);
  if (!kir_status(k) && kir_can_alloc(k, OT_MEM_PSUM, bank) && kir_alloc(k, OT_MEM_PSUM, P, bank, &r->tpk) == OT_OK)
    r->tpk_own = true;
  return kir_status(k);
}

static void bwd_release(bwd_run *r) {
  kir_buf *one[] = {&r->dka, &r->dva, &r->pdk, &r->pdv, &r->vnat, &r->junk, &r->kvo, &r->tp, &r->masks};
  if (r->tpk_own) kir_release(r->k, &r->tpk); /* its own bank (else the first score bank's) */
  kir_buf *two[] = {r->kT, r->vT, r->kn};
  kir_buf *nq[] = {r->qT, r->dyT, r->st, r->dqp};
  kir_buf *nc[] = {r->qc, r->dyc, r->dync, r->yc, r->dqc, r->dic};
  kir_buf *nb[] = {r->psb, r->dss, r->dsT, r->sps, r->dps, r->dvp, r->dkp};
  for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) kir_release(r->k, one[i]);
  for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
    for (int j = 0; j < 2; j++) kir_release(r->k, &two[i][j]);
  for (size_t i = 0; i < sizeof nq / sizeof nq[0]; i++)
    for (uint32_t j = 0; j < BWD_NQ; j++) kir_release(r->k, &nq[i][j]);
  for (size_t i = 0; i < sizeof nb / sizeof nb[0]; i++)
    for (uint32_t j = 0; j < BWD_NB; j++) kir_release(r->k, &nb[i][j]);
  for (size_t i = 0; i < sizeof nc / sizeof nc[0]; i++)
    for (uint32_t j = 0; j < BWD_NCH; j++) kir_release(r->k, &nc[i][j]);
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
  uint32_t dqe = (uint32_t)ot_dtype_size((ot_dtype)c->g->t[n->out[0]].dtype), me = attn_esz(a.mm);
  uint32_t per_tile = a.D * (2 * me + 8 + dqe) + DC_COLS * 4; /* a chunk's bytes per partition and query tile */
  r.QG = lower_min_u32(r.KT, BWD_CHUNK_BYTES / per_tile);
  r.KVG = lower_min_u32(r.KT, BWD_KVO_BYTES / (2 * a.D * 4 + 1));
  if (r.QG == 0) r.QG = 1;
  if (r.KVG == 0) r.KVG = 1;
  r.split_ds = attn_esz(a.mm) == 2 && !c->chip->ports.vector_scalar_share_psum;
  r.saved = attn_saved_stats(c, n, &a, &r.stats);
  r.vy = attn_view_output(c, n->in[3], a.S, a.D);
  r.vdy = attn_view_input(c, n->in[4], a.S, a.D);
  r.vdq = attn_view_output(c, n->out[0], a.S, a.D);
  r.vdk = attn_view_output(c, n->out[1], a.S, a.D);
  r.vdv = attn_view_output(c, n->out[2], a.S, a.D);
  r.yv = c->hbm[n->in[3]];
  r.dy = c->hbm[n->in[4]];
  r.dq = c->hbm[n->out[0]];
  r.dk = c->hbm[n->out[1]];
  r.dv = c->hbm[n->out[2]];
  r.dqt = (ot_dtype)r.dq.dtype; /* the types they are kept in (compile.c storage_dtype) */
  r.dkt = (ot_dtype)r.dk.dtype;
  r.dvt = (ot_dtype)r.dv.dtype;
  if (a.S == 0 || a.D == 0 || a.B == 0 || a.Hq == 0) return OT_OK;
  uint64_t e = attn_esz(a.mm), kd = (uint64_t)r.KT * a.D;
  if (attn_check(c->k, &a, r.P, "attention_bwd", 2 * (2 * (uint64_t)a.S * e + kd * e) + kd * e + 2 * kd * 4))
    return kir_status(c->k);
  if (bwd_alloc(&r)) { bwd_release(&r); return kir_status(c->k); }
  if (a.causal) attn_masks_init(c->k, &r.masks, r.P, a.mm);
  /* kv heads in order, the next head's K, K^T, V^T prefetched into the other slot */
  uint32_t heads = a.B * a.Hkv;
  bwd_load_kv(&r, 0, 0, 0);
  bwd_transpose_kv(&r, 0);
  r.kv_next = -1;
  for (uint32_t i = 0; i < heads && !kir_status(c->k); i++) {
    uint32_t b = i / a.Hkv, g = i % a.Hkv;
    if (r.kv_next >= 0) bwd_transpose_kv(&r, (uint32_t)r.kv_next); /* not emitted ahead (cannot happen: S > 0) */
    r.kv_next = -1;
    if (i + 1 < heads) {
      bwd_load_kv(&r, (i + 1) / a.Hkv, (i + 1) % a.Hkv, (i + 1) % 2);
      r.kv_next = (int32_t)((i + 1) % 2);
    }
    r.h = i % 2;
    if (r.pacc) {
      memset(r.started, 0, sizeof r.started);
    } else {
      kir_memset(c->k, OT_ENG_GPSIMD, kir_ap2(&r.dka, r.P, 0, r.KT * a.D, OT_DT_FP32), 0.0f);
      kir_memset(c->k, OT_ENG_GPSIMD, kir_ap2(&r.dva, r.P, 0, r.KT * a.D, OT_DT_FP32), 0.0f);
    }
    bwd_kv_head(&r, b);
    bwd_store_kv(&r, b, g);
  }
  bwd_release(&r);
  return kir_status(c->k);
}
