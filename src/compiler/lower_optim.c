/* The optimiser ops: global_norm (gradient clipping) and adamw (graph_ops.def).
**
** Both see their tensors as flat arrays: elements [c*P*F, (c+1)*P*F) form chunk c, a [P, F]
** tile with F contiguous elements on each partition (the layout does not matter for sums and
** element-wise updates, and long contiguous runs keep the DMA efficient).  A tail that does not
** fill a chunk is a [rows, F] tile plus one [1, r] row. */
#include <string.h>

#include "compiler/kir_more.h"
#include "compiler/lower.h"

#define FLAT_F 1024u                  /* elements per partition per chunk */

typedef struct { uint64_t off; uint32_t parts, f; } flat_chunk;

/* The chunks of a flat array of n elements, in order; returns how many (at most cap). */
static uint32_t flat_chunks(uint64_t n, uint32_t P, flat_chunk *out, uint32_t cap) {
  uint32_t c = 0;
  uint64_t at = 0, full = (uint64_t)P * FLAT_F;
  while (n - at >= full && c < cap) { out[c++] = (flat_chunk){at, P, FLAT_F}; at += full; }
  uint64_t rows = (n - at) / FLAT_F;
  if (rows && c < cap) { out[c++] = (flat_chunk){at, (uint32_t)rows, FLAT_F}; at += rows * FLAT_F; }
  if (n > at && c < cap) out[c++] = (flat_chunk){at, 1, (uint32_t)(n - at)};
  return c;
}

static uint64_t flat_count(uint64_t n, uint32_t P) {
  uint64_t full = n / ((uint64_t)P * FLAT_F), rest = n % ((uint64_t)P * FLAT_F);
  return full + (rest >= FLAT_F) + (rest % FLAT_F != 0);
}

static ot_ap flat_hbm(const kir_hbm *t, const flat_chunk *c) {
  int64_t st[2] = {c->f, 1};
  uint32_t sz[2] = {c->parts, c->f};
  return kir_hbm_ap(t, c->off, 2, st, sz);
}

static uint32_t partitions(const lower_ctx *c) { return c->chip->sbuf.partitions; }

/* ---- global_norm ---------------------------------------------------------------------------- */
/* Squares summed per partition into one column per chunk (ScalarE activate with red=), the
** columns summed on the VectorE, the partitions summed by a ones-vector matmul on the TensorE
** (fp32, products exact), then sqrt.  Order: chunk columns in input order, then partitions.
** Shared out (c->norm_split): the same over this core's elements only, then norm_exchange. */

/* Calls fn(arg, input index, first element, end) for each input's part of [lo, hi), the inputs
** laid end to end. */
typedef void (*norm_part_fn)(void *arg, uint32_t i, uint64_t at, uint64_t end);
static void norm_parts(const lower_ctx *c, const ot_gnode *n, uint64_t lo, uint64_t hi, norm_part_fn fn, void *arg) {
  uint64_t base = 0;
  for (uint32_t i = 0; i < n->n_in && base < hi; i++) {
    uint64_t ne = (uint64_t)ot_gtensor_elems(&c->g->t[n->in[i]]);
    uint64_t at = lo > base ? lo - base : 0, end = hi - base < ne ? hi - base : ne;
    if (at < end) fn(arg, i, at, end);
    base += ne;
  }
}

typedef struct {
  lower_ctx *c;
  const ot_gnode *n;
  uint64_t cols;
  uint32_t col, rot;
  kir_buf acc, tile[3], sq;
} norm_run;

static void norm_count(void *arg, uint32_t i, uint64_t at, uint64_t end) {
  norm_run *r = arg;
  (void)i;
  r->cols += flat_count(end - at, partitions(r->c));
}

static void norm_squares(void *arg, uint32_t i, uint64_t at, uint64_t end) {
  norm_run *r = arg;
  kir *k = r->c->k;
  const kir_hbm *x = &r->c->hbm[r->n->in[i]];
  while (at < end && !kir_status(k)) {
    flat_chunk ch; /* one chunk at a time: flat_chunks on the remaining elements gives the next one */
    flat_chunks(end - at, partitions(r->c), &ch, 1);
    ch.off += at;
    const kir_buf *t = &r->tile[r->rot++ % 3];
    kir_dma(k, kir_ap2(t, ch.parts, 0, ch.f, OT_DT_FP32), flat_hbm(x, &ch), OT_ENG_COUNT);
    ot_ap red = kir_ap2(&r->acc, ch.parts, r->col++, 1, OT_DT_FP32);
    kir_activate(k, OT_ENG_SCALAR, kir_ap2(&r->sq, ch.parts, 0, ch.f, OT_DT_FP32), kir_ap2(t, ch.parts, 0, ch.f, OT_DT_FP32),
                 OT_ACT_SQUARE, 1.0f, NULL, NULL, &red);
    at += (uint64_t)ch.parts * ch.f;
  }
}

/* res [1, 1] = this core's sum of squares; written to its entry of the partials, exchanged with
** the other cores (remote semaphore), the n partials added in rank order into res. */
static void norm_exchange(lower_ctx *c, const lower_norm_split *sp, const kir_buf *res, const kir_buf *all) {
  kir *k = c->k;
  int64_t st[1] = {1};
  uint32_t one[1] = {1}, n[1] = {sp->n};
  ot_ap mine = kir_ap2(res, 1, 0, 1, OT_DT_FP32);
  if (!sp->presummed) kir_dma(k, kir_hbm_ap(&sp->partials, sp->rank, 1, st, one), mine, OT_ENG_COUNT);
  kir_remote_signal(k, OT_ENG_SYNC, sp->mask, sp->sem);
  ot_ap theirs[64];
  unsigned m = 0;
  for (unsigned j = 0; j < sp->n; j++)
    if (j != sp->rank) theirs[m++] = kir_hbm_ap(&sp->partials, j, 1, st, one);
  kir_remote_wait(k, OT_ENG_SYNC, sp->sem, (int32_t)m, theirs, m);
  kir_dma(k, kir_ap2(all, 1, 0, sp->n, OT_DT_FP32), kir_hbm_ap(&sp->partials, 0, 1, st, n), OT_ENG_COUNT);
  kir_reduce(k, mine, kir_ap2(all, 1, 0, sp->n, OT_DT_FP32), OT_ALU_ADD, 1, false);
}

static ot_status lower_global_norm(lower_ctx *c, const ot_gnode *n) {
  kir *k = c->k;
  uint32_t P = partitions(c);
  const lower_norm_split *sp = c->norm_split;
  uint64_t lo = sp ? sp->lo : 0, hi = sp ? sp->hi : UINT64_MAX;
  if (sp && sp->presummed) lo = hi = 0; /* nothing of its own to sum */
  norm_run r;
  memset(&r, 0, sizeof r);
  r.c = c;
  r.n = n;
  norm_parts(c, n, lo, hi, norm_count, &r);
  if (r.cols * 4 > 64 * 1024)
    return kir_fail(k, OT_EUNSUPPORTED, "global_norm over %llu chunks of %u x %u elements: at most %u chunks",
                    (unsigned long long)r.cols, P, FLAT_F, 64 * 1024 / 4);
  uint32_t cols = (uint32_t)(r.cols ? r.cols : 1);
  kir_buf colsum, ones, res, ps, all;
  kir_alloc(k, OT_MEM_SBUF, P, cols * 4, &r.acc);
  for (int i = 0; i < 3; i++) kir_alloc(k, OT_MEM_SBUF, P, FLAT_F * 4, &r.tile[i]);
  kir_alloc(k, OT_MEM_SBUF, P, FLAT_F * 4, &r.sq);
  kir_alloc(k, OT_MEM_SBUF, P, 4, &colsum);
  kir_alloc(k, OT_MEM_SBUF, P, 4, &ones);
  kir_alloc(k, OT_MEM_SBUF, 1, 4, &res);
  kir_alloc(k, OT_MEM_SBUF, 1, (sp ? sp->n : 1) * 4, &all);
  kir_alloc(k, OT_MEM_PSUM, 1, 4, &ps);
  if (kir_status(k)) return kir_status(k);
  kir_memset(k, OT_ENG_VECTOR, kir_ap2(&r.acc, P, 0, cols, OT_DT_FP32), 0.0f);
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(&ones, P, 0, 1, OT_DT_FP32), 1.0f);
  norm_parts(c, n, lo, hi, norm_squares, &r);
  kir_reduce(k, kir_ap2(&colsum, P, 0, 1, OT_DT_FP32), kir_ap2(&r.acc, P, 0, cols, OT_DT_FP32), OT_ALU_ADD, 1, false);
  kir_matmul(k, kir_ap2(&ps, 1, 0, 1, OT_DT_FP32), kir_ap2(&colsum, P, 0, 1, OT_DT_FP32), kir_ap2(&ones, P, 0, 1, OT_DT_FP32),
             false);
  ot_ap y = kir_ap2(&res, 1, 0, 1, OT_DT_FP32);
  if (sp) {
    kir_copy(k, OT_ENG_VECTOR, y, kir_ap2(&ps, 1, 0, 1, OT_DT_FP32));
    norm_exchange(c, sp, &res, &all);
    kir_ts(k, OT_ENG_VECTOR, y, y, OT_ALU_POW, 0.5f, NULL, OT_ALU_BYPASS, 0.0f, NULL);
  } else {
    kir_ts(k, OT_ENG_VECTOR, y, kir_ap2(&ps, 1, 0, 1, OT_DT_FP32), OT_ALU_POW, 0.5f, NULL, OT_ALU_BYPASS, 0.0f, NULL);
  }
  int64_t st[1] = {1};
  uint32_t sz[1] = {1};
  kir_dma(k, kir_hbm_ap(&c->hbm[n->out[0]], 0, 1, st, sz), y, OT_ENG_COUNT);
  kir_buf bufs[] = {r.acc, r.tile[0], r.tile[1], r.tile[2], r.sq, colsum, ones, res, all, ps};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) kir_release(k, &bufs[i]);
  return kir_status(k);
}

/* ---- adamw ----------------------------------------------------------------------------------- */
/* Chunks in flight, as many as SBUF holds up to this (2 at least).  GPT-2 124M training step,
** one core B2, trn2 / trn1, and trn2 8 cores B16: 2 slots 58.02 / 71.95 / 49.19 ms, 3: 57.47 /
** 71.91 / 49.12, 4: 57.00 / 71.96 / 49.10, 6: 56.76 / 72.59 / 49.06 (on NC-v2, where the VectorE
** and GpSimd share an SBUF port, more chunks in flight contend for it). */
#define ADAMW_SLOTS 4
enum { H_LR, H_WD, H_EPS, H_BC1, H_BC2, H_MAXN, H_COUNT };
enum { S_CLIP, S_DECAY, S_NSTEP, S_SBC2, S_TMP, S_MASK, S_COUNT };

typedef struct {
  kir *k;
  uint32_t P;
  kir_buf hyper, norm, sc;            /* [P, 6] broadcast, [P, 1] broadcast, per-partition scalars */
  uint32_t slots;
  kir_buf p[ADAMW_SLOTS], g[ADAMW_SLOTS], m[ADAMW_SLOTS], v[ADAMW_SLOTS], t1[ADAMW_SLOTS], t2[ADAMW_SLOTS];
} adamw_run;

static ot_ap col(const kir_buf *b, uint32_t P, uint32_t j) { return kir_ap2(b, P, j, 1, OT_DT_FP32); }

/* Per-partition scalars, identical on every partition: clip factor, 1 - lr*wd, -lr/(1-b1^t),
** sqrt(1/(1-b2^t)). */
static void adamw_scalars(adamw_run *r, const kir_hbm *hyper, const kir_hbm *norm) {
  kir *k = r->k;
  uint32_t P = r->P;
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {P, H_COUNT}, nz[2] = {P, 1};
  kir_dma(k, kir_ap2(&r->hyper, P, 0, H_COUNT, OT_DT_FP32), kir_hbm_ap(hyper, 0, 2, hs, hz), OT_ENG_COUNT);
  kir_dma(k, kir_ap2(&r->norm, P, 0, 1, OT_DT_FP32), kir_hbm_ap(norm, 0, 2, hs, nz), OT_ENG_COUNT);
  ot_ap h_lr = col(&r->hyper, P, H_LR), h_maxn = col(&r->hyper, P, H_MAXN);
  ot_ap clip = col(&r->sc, P, S_CLIP), tmp = col(&r->sc, P, S_TMP), mask = col(&r->sc, P, S_MASK);
  ot_ap decay = col(&r->sc, P, S_DECAY), nstep = col(&r->sc, P, S_NSTEP), sbc2 = col(&r->sc, P, S_SBC2);
  /* clip = max_norm > 0 ? min(1, max_norm / (norm + 1e-6)) : 1 */
  kir_ts(k, OT_ENG_VECTOR, tmp, col(&r->norm, P, 0), OT_ALU_ADD, 1e-6f, NULL, OT_ALU_BYPASS, 0, NULL);
  kir_tt(k, OT_ENG_VECTOR, clip, h_maxn, tmp, OT_ALU_DIV);
  kir_ts(k, OT_ENG_VECTOR, clip, clip, OT_ALU_MIN, 1.0f, NULL, OT_ALU_SUB, 1.0f, NULL);
  kir_ts(k, OT_ENG_VECTOR, mask, h_maxn, OT_ALU_GT, 0.0f, NULL, OT_ALU_BYPASS, 0, NULL);
  kir_ts(k, OT_ENG_VECTOR, clip, clip, OT_ALU_MUL, 0, &mask, OT_ALU_ADD, 1.0f, NULL);
  /* decay = 1 - lr*wd; nstep = -lr * bc1; sbc2 = sqrt(bc2) */
  kir_tt(k, OT_ENG_VECTOR, tmp, h_lr, col(&r->hyper, P, H_WD), OT_ALU_MUL);
  kir_ts(k, OT_ENG_VECTOR, decay, tmp, OT_ALU_MUL, -1.0f, NULL, OT_ALU_ADD, 1.0f, NULL);
  kir_tt(k, OT_ENG_VECTOR, tmp, h_lr, col(&r->hyper, P, H_BC1), OT_ALU_MUL);
  kir_ts(k, OT_ENG_VECTOR, nstep, tmp, OT_ALU_MUL, -1.0f, NULL, OT_ALU_BYPASS, 0, NULL);
  kir_ts(k, OT_ENG_VECTOR, sbc2, col(&r->hyper, P, H_BC2), OT_ALU_POW, 0.5f, NULL, OT_ALU_BYPASS, 0, NULL);
}

/* One chunk, in torch.optim.AdamW's order of operations; no weight decay step without the
** node's decay attribute (a param group with weight_decay 0).  The operations are spread over
** three engines (the same ALU operations give the same bits on any of them): the VectorE keeps
** the three scalar_tensor_tensor (its own), the ScalarE the two tensor_scalar of the denominator,
** the GpSimd the rest.  With seven on the VectorE it bound AdamW (GPT-2 124M on one trn2 core:
** the optimizer 16 -> 13 ms).  Temporaries per slot: the next chunk's work need not wait. */
static void adamw_chunk(adamw_run *r, const kir_hbm *t[4], const flat_chunk *ch, uint32_t slot, const ot_gnode *n) {
  float b1 = n->f[0], b2 = n->f[1];
  kir *k = r->k;
  uint32_t np = ch->parts, f = ch->f;
  ot_ap p = kir_ap2(&r->p[slot], np, 0, f, OT_DT_FP32), g = kir_ap2(&r->g[slot], np, 0, f, OT_DT_FP32);
  ot_ap m = kir_ap2(&r->m[slot], np, 0, f, OT_DT_FP32), v = kir_ap2(&r->v[slot], np, 0, f, OT_DT_FP32);
  ot_ap t1 = kir_ap2(&r->t1[slot], np, 0, f, OT_DT_FP32), t2 = kir_ap2(&r->t2[slot], np, 0, f, OT_DT_FP32);
  ot_ap clip = col(&r->sc, np, S_CLIP), decay = col(&r->sc, np, S_DECAY), nstep = col(&r->sc, np, S_NSTEP);
  ot_ap sbc2 = col(&r->sc, np, S_SBC2), eps = col(&r->hyper, np, H_EPS);
  ot_ap dst[4] = {p, g, m, v};
  for (int i = 0; i < 4; i++) kir_dma(k, dst[i], flat_hbm(t[i], ch), OT_ENG_COUNT);
  kir_ts(k, OT_ENG_GPSIMD, g, g, OT_ALU_MUL, 0, &clip, OT_ALU_BYPASS, 0, NULL);          /* g' = g * clip */
  if (n->i[0]) kir_ts(k, OT_ENG_GPSIMD, p, p, OT_ALU_MUL, 0, &decay, OT_ALU_BYPASS, 0, NULL); /* p *= 1 - lr*wd */
  kir_tt(k, OT_ENG_GPSIMD, t1, g, m, OT_ALU_SUB);                                        /* m.lerp_(g', 1-b1) */
  kir_stt(k, m, t1, OT_ALU_MUL, 1.0f - b1, NULL, OT_ALU_ADD, m);
  kir_tt(k, OT_ENG_GPSIMD, t2, g, g, OT_ALU_MUL);                                        /* v = v*b2 + (1-b2) g'^2 */
  kir_ts(k, OT_ENG_GPSIMD, v, v, OT_ALU_MUL, b2, NULL, OT_ALU_BYPASS, 0, NULL);
  kir_stt(k, v, t2, OT_ALU_MUL, 1.0f - b2, NULL, OT_ALU_ADD, v);
  kir_ts(k, OT_ENG_SCALAR, t1, v, OT_ALU_POW, 0.5f, NULL, OT_ALU_MUL, 0, &sbc2);        /* sqrt(v)/sqrt(1-b2^t) */
  kir_ts(k, OT_ENG_SCALAR, t1, t1, OT_ALU_ADD, 0, &eps, OT_ALU_BYPASS, 0, NULL);        /* + eps */
  kir_tt(k, OT_ENG_GPSIMD, t1, m, t1, OT_ALU_DIV);                                       /* m / denom */
  kir_stt(k, p, t1, OT_ALU_MUL, 0, &nstep, OT_ALU_ADD, p);                            /* p -= step * ... */
  ot_ap src[3] = {p, m, v};
  const kir_hbm *out[3] = {t[0], t[2], t[3]};
  for (int i = 0; i < 3; i++) kir_dma(k, flat_hbm(out[i], ch), src[i], OT_ENG_COUNT);
}

static ot_status lower_adamw(lower_ctx *c, const ot_gnode *n) {
  adamw_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.P = partitions(c);
  kir *k = c->k;
  kir_alloc(k, OT_MEM_SBUF, r.P, H_COUNT * 4, &r.hyper);
  kir_alloc(k, OT_MEM_SBUF, r.P, 4, &r.norm);
  kir_alloc(k, OT_MEM_SBUF, r.P, S_COUNT * 4, &r.sc);
  uint32_t fit = kir_largest_free(k, OT_MEM_SBUF) / (6u * FLAT_F * 4u);
  r.slots = fit < 2 ? 2 : fit > ADAMW_SLOTS ? ADAMW_SLOTS : fit;
  for (uint32_t i = 0; i < r.slots; i++) {
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.p[i]);
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.g[i]);
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.m[i]);
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.v[i]);
  }
  for (uint32_t i = 0; i < r.slots; i++) {
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.t1[i]);
    kir_alloc(k, OT_MEM_SBUF, r.P, FLAT_F * 4, &r.t2[i]);
  }
  if (!kir_status(k)) {
    adamw_scalars(&r, &c->hbm[n->in[5]], &c->hbm[n->in[4]]);
    const kir_hbm *t[4] = {&c->hbm[n->in[0]], &c->hbm[n->in[1]], &c->hbm[n->in[2]], &c->hbm[n->in[3]]};
    uint64_t end = (uint64_t)ot_gtensor_elems(&c->g->t[n->in[0]]), at = 0;
    const uint64_t *range = c->elem_range ? &c->elem_range[2 * (size_t)(n - c->g->node)] : NULL;
    if (range && range[1]) { at = range[0]; end = range[1]; } /* this core's share (compile_dp.c) */
    uint32_t slot = 0;
    while (at < end && !kir_status(k)) {
      flat_chunk ch;
      flat_chunks(end - at, r.P, &ch, 1);
      ch.off += at;
      adamw_chunk(&r, t, &ch, slot, n);
      at += (uint64_t)ch.parts * ch.f;
      slot = (slot + 1) % r.slots;
    }
  }
  kir_release(k, &r.hyper);
  kir_release(k, &r.norm);
  kir_release(k, &r.sc);
  for (uint32_t i = 0; i < r.slots; i++) {
    kir_buf *b[6] = {&r.p[i], &r.g[i], &r.m[i], &r.v[i], &r.t1[i], &r.t2[i]};
    for (int j = 0; j < 6; j++) kir_release(k, b[j]);
  }
  return kir_status(k);
}

lower_fn lower_for_optim(ot_gop op) {
  switch (op) {
  case OT_GOP_GLOBAL_NORM: return lower_global_norm;
  case OT_GOP_ADAMW: return lower_adamw;
  default: return NULL;
  }
}
