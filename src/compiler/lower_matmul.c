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
#include <string.h>

#include "compiler/kir_attn.h"
#include "compiler/lower.h"

#define B_BUFS 4
#define STAGE_BUFS 4
#define A_BUDGET (96u * 1024u)       /* bytes per partition for the resident A^T block */
#define CHUNK_BYTES (8u * 1024u)      /* bytes per partition of one B load */
#define B_RES_BUDGET (32u * 1024u)    /* bytes per partition of one resident B slice (two are kept) */

typedef struct {
  uint32_t batches;
  uint64_t M, K, N;
  kir_hbm a, b, y, bias, resid;
  uint64_t a_bs, b_bs, y_bs;         /* batch strides in elements (b_bs 0: shared) */
  bool a_km, b_nk, has_bias, has_resid;
  int act;
  ot_dtype mm, ydt;
} gemm;

typedef struct {
  kir *k;
  const gemm *g;
  uint32_t P, MT, NT, KT, mt_blk, nt_blk, kc;
  kir_buf at, b[B_BUFS], stage[STAGE_BUFS], bias, tmp, rbuf[STAGE_BUFS];
  bool stream_a;                     /* A^T does not fit: streamed with B, k-chunk by k-chunk */
  bool b_res;                        /* B slices resident, all of A^T resident: each read once */
  kir_buf bres[2];
  kir_buf as[B_BUFS];
  kir_buf acc[8], tp[2];             /* PSUM accumulators, transpose blocks */
  kir_buf anat;                      /* A rows (transpose path) */
  uint32_t nb_rot, st_rot, tp_rot;
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
static void load_at(gemm_run *r, const kir_buf *dst, uint32_t bt, uint64_t m0, uint32_t mrows, uint32_t mcols,
                    uint32_t kt0, uint32_t kcn) {
  const gemm *g = r->g;
  uint64_t base = bt * g->a_bs;
  if (g->a_km) { /* a is [K, M]: k-tile rows are contiguous runs of m */
    for (uint32_t kt = kt0; kt < kt0 + kcn; kt++) {
      uint32_t kp = lower_min_u32(r->P, (uint32_t)(g->K - (uint64_t)kt * r->P));
      int64_t hs[2] = {(int64_t)g->M, 1};
      uint32_t hz[2] = {kp, mrows};
      kir_dma(r->k, kir_ap2(dst, kp, (kt - kt0) * mcols, mrows, g->mm),
              kir_hbm_ap(&g->a, base + (uint64_t)kt * r->P * g->M + m0, 2, hs, hz), OT_ENG_COUNT);
    }
    return;
  }
  /* a is [M, K]: load 128 rows at a time and transpose them on the PE array */
  uint32_t kcols = lower_min_u32(kcn * r->P, (uint32_t)(g->K - (uint64_t)kt0 * r->P));
  for (uint32_t mi = 0; mi * r->MT < mrows; mi++) {
    uint32_t mp = lower_min_u32(r->MT, mrows - mi * r->MT);
    int64_t hs[2] = {(int64_t)g->K, 1};
    uint32_t hz[2] = {mp, kcols};
    kir_dma(r->k, kir_ap2(&r->anat, mp, 0, kcols, g->mm),
            kir_hbm_ap(&g->a, base + (m0 + (uint64_t)mi * r->MT) * g->K + (uint64_t)kt0 * r->P, 2, hs, hz), OT_ENG_COUNT);
    transpose_blocks(r, &r->anat, mp, 0, kcols, dst, mi * r->MT, mcols);
  }
}

/* ---- B chunk: bbuf[kp, kk * ncols + n] for k-tiles kt0 .. kt0+kcn -------------------------- */
static void load_b(gemm_run *r, const kir_buf *bb, uint32_t boff, uint32_t bt, uint32_t kt0, uint32_t kcn, uint64_t n0,
                   uint32_t ncols) {
  const gemm *g = r->g;
  uint64_t base = bt * g->b_bs;
  if (!g->b_nk) { /* b is [K, N] */
    uint32_t full = 0;
    while (full < kcn && (uint64_t)(kt0 + full + 1) * r->P <= g->K) full++;
    if (full) { /* k-tile rows kt0..kt0+full as one transfer: partition p, free (kk, n) */
      int64_t hs[3] = {(int64_t)g->N, (int64_t)(r->P * g->N), 1};
      uint32_t hz[3] = {r->P, full, ncols};
      int32_t ss[2] = {(int32_t)ncols, 1};
      uint32_t sz[2] = {full, ncols};
      kir_dma(r->k, kir_ap(bb, 0, r->P, boff * esz(g->mm), g->mm, 2, ss, sz),
              kir_hbm_ap(&g->b, base + (uint64_t)kt0 * r->P * g->N + n0, 3, hs, hz), OT_ENG_COUNT);
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
  /* b is [N, K]: 128 rows of b (n) x the chunk's k columns, transposed on the PE array */
  uint32_t kcols = lower_min_u32(kcn * r->P, (uint32_t)(g->K - (uint64_t)kt0 * r->P));
  for (uint32_t ns = 0; ns * r->P < ncols; ns++) {
    uint32_t np = lower_min_u32(r->P, ncols - ns * r->P);
    int64_t hs[2] = {(int64_t)g->K, 1};
    uint32_t hz[2] = {np, kcols};
    kir_dma(r->k, kir_ap2(&r->anat, np, 0, kcols, g->mm),
            kir_hbm_ap(&g->b, base + (n0 + (uint64_t)ns * r->P) * g->K + (uint64_t)kt0 * r->P, 2, hs, hz), OT_ENG_COUNT);
    transpose_blocks(r, &r->anat, np, 0, kcols, bb, boff + ns * r->P, ncols);
  }
}

/* ---- leaving PSUM: epilogue, cast, store ---------------------------------------------------- */
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
  }
  kir_dma(k, kir_hbm_ap(&g->y, bt * g->y_bs + m * g->N + n0, 2, hs, hz), kir_ap2(st, mp, 0, ncols, g->ydt), OT_ENG_COUNT);
}

/* The bias row on every partition (partition stride 0), loaded once for the whole GEMM. */
static void load_bias(gemm_run *r) {
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {r->P, (uint32_t)r->g->N};
  kir_dma(r->k, kir_ap2(&r->bias, r->P, 0, (uint32_t)r->g->N, OT_DT_FP32), kir_hbm_ap(&r->g->bias, 0, 2, hs, hz), OT_ENG_COUNT);
}

/* ---- one n-block of one m-block ------------------------------------------------------------- */
/* A K-major operand held on chip: element (kt, col) at (kt - kt_base) * stride + col0 + col. */
typedef struct { const kir_buf *buf; uint32_t stride, col0, kt_base; } kview;

/* a / b NULL: that operand is streamed in k-chunks through rotating buffers. */
static void gemm_block(gemm_run *r, uint32_t bt, uint64_t m0, uint32_t mrows, uint32_t mcols, uint64_t n0, uint32_t ncols,
                       const kview *a, const kview *b) {
  const gemm *g = r->g;
  uint32_t mtiles = lower_ceil_div(mrows, r->MT);
  for (uint32_t kt0 = 0; kt0 < r->KT; kt0 += r->kc) {
    uint32_t kcn = lower_min_u32(r->kc, r->KT - kt0);
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
          ot_ap dst = kir_ap2(&r->acc[mi * r->nt_blk + ni], mp, 0, nn, OT_DT_FP32);
          if (ni == 0) kir_matmul(r->k, dst, stat, mov, kt > 0);
          else kir_matmul_moving(r->k, dst, mov, kt > 0); /* same stationary: MultiplyMoving only */
        }
      }
    }
  }
  for (uint32_t mi = 0; mi < mtiles; mi++)
    evacuate(r, bt, m0 + (uint64_t)mi * r->MT, lower_min_u32(r->MT, mrows - mi * r->MT), n0, ncols, mi);
}

/* ---- planning and buffers ------------------------------------------------------------------- */
static ot_status gemm_plan(gemm_run *r) {
  const gemm *g = r->g;
  const ot_chip *chip = kir_chip(r->k);
  r->P = chip->tensor.rows < chip->sbuf.partitions ? chip->tensor.rows : chip->sbuf.partitions;
  r->MT = chip->tensor.stationary_fmax < r->P ? chip->tensor.stationary_fmax : r->P;
  r->NT = chip->tensor.moving_fmax;
  uint32_t bank_f32 = (uint32_t)(chip->psum.bytes_per_partition / (chip->psum.banks ? chip->psum.banks : 1) / 4);
  if (r->NT > bank_f32) r->NT = bank_f32;
  r->KT = lower_ceil_div(g->K, r->P);
  bool transposes = !g->a_km || g->b_nk;
  uint32_t banks = chip->psum.banks - (transposes ? 2 : 0);
  if (banks > 8) banks = 8;
  uint32_t ntiles = lower_ceil_div(g->N, r->NT), mtiles = lower_ceil_div(g->M, r->MT);
  r->nt_blk = lower_min_u32(2, ntiles);
  if (r->nt_blk > banks) r->nt_blk = banks;
  r->mt_blk = lower_min_u32(banks / r->nt_blk, mtiles);
  while (r->mt_blk > 1 && (uint64_t)r->KT * r->mt_blk * r->MT * esz(g->mm) > A_BUDGET) r->mt_blk--;
  if (g->has_bias && g->N * 4 > A_BUDGET / 2)
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
  if (!r->stream_a && mtiles > r->mt_blk && (uint64_t)r->KT * g->M * esz(g->mm) <= A_BUDGET &&
      (uint64_t)r->KT * r->NT * esz(g->mm) <= B_RES_BUDGET) {
    r->b_res = true;
    r->nt_blk = 1;
    r->mt_blk = lower_min_u32(banks, mtiles);
  }
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
  if (r->b_res)
    for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->KT * ncols * esz(g->mm), &r->bres[i]);
  for (int i = 0; i < B_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, r->kc * ncols * esz(g->mm), &r->b[i]);
  for (int i = 0; i < STAGE_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz(g->ydt), &r->stage[i]);
  if (g->has_bias) kir_alloc(k, OT_MEM_SBUF, r->P, (uint32_t)g->N * 4, &r->bias);
  if ((g->has_bias && g->act != OT_ACT_COPY) || g->has_resid)
    kir_alloc(k, OT_MEM_SBUF, r->P, r->mt_blk * r->nt_blk * r->NT * 4, &r->tmp);
  if (g->has_resid)
    for (int i = 0; i < STAGE_BUFS; i++) kir_alloc(k, OT_MEM_SBUF, r->P, ncols * esz((ot_dtype)g->resid.dtype), &r->rbuf[i]);
  if (!g->a_km || g->b_nk) {
    uint32_t nat = g->a_km || r->stream_a ? r->kc * r->P : (uint32_t)g->K;
    if (g->b_nk && r->kc * r->P > nat) nat = r->kc * r->P;
    kir_alloc(k, OT_MEM_SBUF, r->P, nat * esz(g->mm), &r->anat);
    uint32_t bank = (uint32_t)(kir_chip(k)->psum.bytes_per_partition / kir_chip(k)->psum.banks);
    for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_PSUM, r->P, bank, &r->tp[i]);
  }
  for (uint32_t i = 0; i < r->mt_blk * r->nt_blk; i++) kir_alloc(k, OT_MEM_PSUM, r->P, r->NT * 4, &r->acc[i]);
  return kir_status(k);
}

static void gemm_release(gemm_run *r) {
  kir_buf *all[] = {&r->at, &r->bias, &r->tmp, &r->anat, &r->tp[0], &r->tp[1]};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) kir_release(r->k, all[i]);
  for (int i = 0; i < 8; i++) kir_release(r->k, &r->acc[i]);
  for (int i = 0; i < B_BUFS; i++) kir_release(r->k, &r->as[i]);
  for (int i = 0; i < B_BUFS; i++) kir_release(r->k, &r->b[i]);
  for (int i = 0; i < STAGE_BUFS; i++) kir_release(r->k, &r->stage[i]);
  for (int i = 0; i < 2; i++) kir_release(r->k, &r->bres[i]);
  for (int i = 0; i < STAGE_BUFS; i++) kir_release(r->k, &r->rbuf[i]);
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

static ot_status gemm_lower(kir *k, const gemm *g) {
  gemm_run r;
  memset(&r, 0, sizeof r);
  r.k = k;
  r.g = g;
  if (gemm_plan(&r) || gemm_alloc(&r)) { gemm_release(&r); return kir_status(k); }
  uint32_t mb = r.mt_blk * r.MT, nbk = r.nt_blk * r.NT;
  if (g->has_bias) load_bias(&r);
  for (uint32_t bt = 0; bt < g->batches && !kir_status(k); bt++) {
    if (r.b_res) {
      gemm_b_resident(&r, bt, mb, nbk);
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
  gemm_release(&r);
  return kir_status(k);
}

/* ---- graph ops -------------------------------------------------------------------------------- */
static uint64_t lead(const ot_gtensor *t, unsigned keep) {
  uint64_t n = 1;
  for (unsigned d = 0; d + keep < t->ndim; d++) n *= (uint64_t)t->shape[d];
  return n;
}

static void gemm_epilogue(lower_ctx *c, const ot_gnode *n, gemm *g) {
  g->act = OT_ACT_COPY;
  const lower_epilogue *e = c->epi ? &c->epi[n - c->g->node] : NULL;
  if (e && e->act != OT_ACT_COPY) g->act = e->act;
  if (e && e->bias != OT_TID_NONE) { g->has_bias = true; g->bias = c->hbm[e->bias]; }
  if (e && e->residual != OT_TID_NONE) { g->has_resid = true; g->resid = c->hbm[e->residual]; }
}

ot_status lower_matmul(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *a = &c->g->t[n->in[0]], *b = &c->g->t[n->in[1]], *y = &c->g->t[n->out[0]];
  gemm g;
  memset(&g, 0, sizeof g);
  bool a_km = c->a_transposed && c->a_transposed[n - c->g->node];
  g.b_nk = n->i[0] != 0;
  g.M = (uint64_t)y->shape[y->ndim - 2];
  g.N = (uint64_t)y->shape[y->ndim - 1];
  g.K = (uint64_t)b->shape[g.b_nk ? b->ndim - 1 : b->ndim - 2];
  g.batches = (uint32_t)lead(y, 2);
  g.a = c->hbm[n->in[0]];
  g.a_km = a_km;
  g.a_bs = g.M * g.K;
  g.b = c->hbm[n->in[1]];
  g.b_bs = b->ndim > 2 ? g.K * g.N : 0;
  g.y = c->hbm[n->out[0]];
  g.y_bs = g.M * g.N;
  g.mm = c->opt->matmul_dtype;
  g.ydt = (ot_dtype)y->dtype;
  (void)a;
  gemm_epilogue(c, n, &g);
  return gemm_lower(c->k, &g);
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
  g.a = c->hbm[n->in[0]];
  g.a_km = c->a_transposed && c->a_transposed[n - c->g->node];
  g.b = c->hbm[n->in[1]];
  g.y = c->hbm[n->out[0]];
  g.mm = c->opt->matmul_dtype;
  g.ydt = (ot_dtype)y->dtype;
  gemm_epilogue(c, n, &g);
  if (n->n_in > 2 && n->in[2] != OT_TID_NONE) { g.has_bias = true; g.bias = c->hbm[n->in[2]]; }
  return gemm_lower(c->k, &g);
}
