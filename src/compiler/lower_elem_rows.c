/* Row-wise lowerings: softmax, layernorm, rmsnorm and their gradients.
**
** x [..., d] is processed as rows = product of the leading dims, one row per partition, 128
** rows per tile (the last tile partial), the whole row on the free axis so that a row's
** statistics are per-partition scalars ([P, 1] APs) the engines apply in one instruction.
** gamma / beta are loaded once and repeated along the partitions by the TensorE (lower_bcast.c).
** Column sums over all rows (dgamma, dbeta) accumulate on the TensorE: for each 128-column
** block, the tile's block is the stationary and a ones column the moving operand, so PSUM holds
** the block's sums on its partitions and a chain of acc=1 matmuls adds the rows in order 0, 1,
** 2, ... exactly as the reference evaluator does. */
#include <string.h>

#include "compiler/lower_bcast.h"
#include "compiler/lower_elem_int.h"

typedef struct {
  elem_rowop *r;
  uint32_t P, nb, group, slots;
  kir_buf buf[ELEM_BUFS][3 * ELEM_MAX_IO];
  kir_buf small[ELEM_BUFS];
} rows_run;

static unsigned rows_slot_out(const elem_rowop *r, unsigned j) {
  if (r->in_place && j == 0) return 0;
  return r->n_in + j - (r->in_place ? 1u : 0u);
}
static unsigned rows_slot_tmp(const elem_rowop *r, unsigned j) {
  return r->n_in + r->n_out - (r->in_place ? 1u : 0u) + j;
}

static uint32_t round64(uint32_t b) { return (b + 63u) / 64u * 64u; }

/* sum[p] = sum of the row t[p, :] on the ScalarE (a copy onto itself with red=), leaving the
** VectorE free: the sum is the same fp32 sequence from 0 as tensor_reduce's. */
static void rows_sum(kir *k, const ot_ap *t, const ot_ap *sum) {
  kir_activate(k, OT_ENG_SCALAR, *t, *t, OT_ACT_COPY, 1.0f, NULL, NULL, sum);
}

/* Bytes per partition of slot j: an input row in its own type, results and scratch in fp32. */
static uint32_t rows_slot_bytes(const elem_rowop *r, unsigned j) {
  bool input = j < r->n_in && !(r->in_place && j == 0);
  return round64(r->d * (input ? (uint32_t)ot_dtype_size(elem_load_dtype(&r->in[j])) : 4u));
}

/* Output 0 can be written into input 0's tile: the same 16-bit type, and the body leaves it dead. */
static bool rows_out_narrow(const elem_rowop *r) {
  ot_dtype o = (ot_dtype)r->out[0].dtype;
  return !r->in_place && o == elem_load_dtype(&r->in[0]) && ot_dtype_size(o) < 4;
}

/* How many buffer sets fit next to the broadcast vectors; fail naming the sizes if none. */
static ot_status rows_plan(rows_run *x) {
  elem_rowop *r = x->r;
  x->P = elem_parts(r->c);
  if (elem_load_dtype(&r->in[0]) != OT_DT_FP32) r->in_place = false; /* fp32 results need their own rows */
  r->out_narrow = r->out_narrow && rows_out_narrow(r);
  x->slots = r->n_in + r->n_out + r->n_tmp - (r->in_place ? 1u : 0u);
  uint64_t per_set = round64(r->n_small * 4u);
  for (unsigned j = 0; j < x->slots; j++) per_set += rows_slot_bytes(r, j);
  uint64_t fixed = (uint64_t)r->n_vec * round64(r->d * 4u) + (r->n_acc ? 64u : 0u);
  uint32_t avail = kir_largest_free(r->c->k, OT_MEM_SBUF);
  uint64_t nb = avail > fixed ? (avail - fixed) / per_set : 0;
  x->nb = (uint32_t)(nb < ELEM_BUFS ? nb : ELEM_BUFS);
  /* a group's tiles need distinct buffers, and two groups in flight keep loads ahead of compute */
  x->group = x->nb / 2 < ELEM_GROUP ? x->nb / 2 : ELEM_GROUP;
  if (x->group < 1) x->group = 1;
  if (x->nb == 0)
    return kir_fail(r->c->k, OT_EUNSUPPORTED,
                    "rows of %u elements: the kernel keeps %u row buffers and %u broadcast vectors per partition in "
                    "SBUF (%llu bytes), %u bytes per partition are free; supported: last dim <= %llu",
                    r->d, x->slots, r->n_vec, (unsigned long long)(per_set + fixed), avail,
                    (unsigned long long)(avail / 4u / (x->slots + r->n_vec)));
  return OT_OK;
}

/* Copy the broadcast vectors into PSUM, a bank per chunk, when r->vec_psum asks and the banks are
** free: the VectorE then applies them at N cycles per element instead of 2N (tensor_tensor with
** one PSUM input), which halves the cost of gamma and beta in the norms. */
static void rows_vectors_to_psum(rows_run *x) {
  elem_rowop *r = x->r;
  kir *k = r->c->k;
  const ot_chip *chip = kir_chip(k);
  uint32_t bank = chip->psum.banks ? (uint32_t)(chip->psum.bytes_per_partition / chip->psum.banks) : 0;
  r->n_pchunk = 0;
  if (!r->vec_psum || !r->n_vec || bank < 4) return;
  uint32_t pchunk = bank / 4u, n = lower_ceil_div(r->d, pchunk);
  /* one spare bank: the largest hole need not start on a bank boundary */
  if (n > ELEM_PSUM_CHUNKS || kir_largest_free(k, OT_MEM_PSUM) < (2u * n + 1u) * bank) return;
  for (unsigned j = 0; j < r->n_vec; j++)
    for (uint32_t c = 0; c < n; c++) {
      uint32_t len = r->d - c * pchunk < pchunk ? r->d - c * pchunk : pchunk;
      kir_alloc(k, OT_MEM_PSUM, x->P, len * 4u, &r->pvec[j][c]);
      kir_copy(k, OT_ENG_VECTOR, elem_tile(&r->pvec[j][c], x->P, 0, len), elem_tile(&r->vec[j], x->P, c * pchunk, len));
    }
  r->n_pchunk = n;
  r->pchunk = pchunk;
}

void elem_rows_vec_op2(elem_rowop *r, unsigned j, uint32_t np, const ot_ap *dst, const ot_ap *src, int alu) {
  kir *k = r->c->k;
  if (!r->n_pchunk) {
    kir_tt(k, OT_ENG_VECTOR, *dst, *src, elem_tile(&r->vec[j], np, 0, r->d), alu);
    return;
  }
  for (uint32_t c = 0; c < r->n_pchunk; c++) {
    uint32_t len = r->d - c * r->pchunk < r->pchunk ? r->d - c * r->pchunk : r->pchunk;
    ot_ap dpart = *dst, spart = *src;
    dpart.offset += (uint64_t)c * r->pchunk * ot_dtype_size((ot_dtype)dst->dtype);
    dpart.dim[0].size = len;
    spart.offset += (uint64_t)c * r->pchunk * ot_dtype_size((ot_dtype)src->dtype);
    spart.dim[0].size = len;
    kir_tt(k, OT_ENG_VECTOR, dpart, spart, elem_tile(&r->pvec[j][c], np, 0, len), alu);
  }
}

void elem_rows_vec_op(elem_rowop *r, unsigned j, uint32_t np, const ot_ap *dst, int alu) {
  elem_rows_vec_op2(r, j, np, dst, dst, alu);
}

static void rows_load_vectors(rows_run *x) {
  elem_rowop *r = x->r;
  kir *k = r->c->k;
  for (unsigned j = 0; j < r->n_vec; j++) {
    kir_alloc(k, OT_MEM_SBUF, x->P, r->d * 4u, &r->vec[j]);
    if (lower_bcast_row_sbuf(k, &r->vec_src[j], 0, r->d, x->P, elem_tile(&r->vec[j], x->P, 0, r->d))) continue;
    int64_t hs[2] = {0, 1};
    uint32_t hz[2] = {x->P, r->d};
    kir_dma(k, elem_tile(&r->vec[j], x->P, 0, r->d), kir_hbm_ap(&r->vec_src[j], 0, 2, hs, hz), OT_ENG_COUNT);
  }
  rows_vectors_to_psum(x);
  if (!r->n_acc) return;
  kir_alloc(k, OT_MEM_SBUF, x->P, 4, &r->ones);
  kir_memset(k, OT_ENG_GPSIMD, elem_col(&r->ones, x->P, 0), 1.0f);
  uint32_t nch = lower_ceil_div(r->d, x->P);
  for (unsigned a = 0; a < r->n_acc; a++) kir_alloc(k, OT_MEM_PSUM, x->P, nch * 4u, &r->acc[a]);
}

static void rows_alloc(rows_run *x) {
  elem_rowop *r = x->r;
  for (uint32_t s = 0; s < x->nb; s++) {
    for (unsigned j = 0; j < x->slots; j++) kir_alloc(r->c->k, OT_MEM_SBUF, x->P, rows_slot_bytes(r, j), &x->buf[s][j]);
    kir_alloc(r->c->k, OT_MEM_SBUF, x->P, r->n_small * 4u, &x->small[s]);
  }
}

static void rows_release(rows_run *x) {
  elem_rowop *r = x->r;
  kir *k = r->c->k;
  for (unsigned s = 0; s < ELEM_BUFS; s++) {
    for (unsigned j = 0; j < 3 * ELEM_MAX_IO; j++) kir_release(k, &x->buf[s][j]);
    kir_release(k, &x->small[s]);
  }
  for (unsigned j = 0; j < 2; j++) {
    for (unsigned c = 0; c < ELEM_PSUM_CHUNKS; c++) kir_release(k, &r->pvec[j][c]);
    kir_release(k, &r->vec[j]);
    kir_release(k, &r->acc[j]);
  }
  kir_release(k, &r->ones);
}

typedef struct {
  uint32_t t, np;
  uint64_t r0;
  ot_ap in[ELEM_MAX_IO], out[ELEM_MAX_IO], tmp[ELEM_MAX_TMP];
} rows_pos;

static void rows_load(rows_run *x, rows_pos *q) {
  elem_rowop *r = x->r;
  kir_buf *b = x->buf[q->t % x->nb];
  for (unsigned j = 0; j < r->n_in; j++) {
    q->in[j] = elem_tile_dt(&b[j], q->np, 0, r->d, elem_load_dtype(&r->in[j]));
    kir_dma(r->c->k, q->in[j], elem_hbm_rows(&r->in[j], q->r0 * r->d, q->np, r->d, r->d), OT_ENG_COUNT);
  }
  for (unsigned j = 0; j < r->n_out; j++) q->out[j] = elem_tile(&b[rows_slot_out(r, j)], q->np, 0, r->d);
  for (unsigned j = 0; j < r->n_tmp; j++) q->tmp[j] = elem_tile(&b[rows_slot_tmp(r, j)], q->np, 0, r->d);
}

static void rows_store(rows_run *x, const rows_pos *q) {
  elem_rowop *r = x->r;
  for (unsigned j = 0; j < r->n_out; j++)
    kir_dma(r->c->k, elem_hbm_rows(&r->out[j], q->r0 * r->d, q->np, r->d, r->d),
            j == 0 && r->out_narrow ? q->in[0] : q->out[j], r->store_sync ? OT_ENG_SYNC : OT_ENG_COUNT);
}

typedef struct {
  rows_pos q[ELEM_GROUP];
  unsigned n;
} rows_grp;

/* Steps from..to-1 (or until no body has more) of the group's tiles, interleaved: step s of every
** tile, then s + 1. */
static void rows_steps(rows_run *x, const rows_grp *g, unsigned from, unsigned to) {
  elem_rowop *r = x->r;
  bool more = true;
  for (unsigned s = from; s < to && more && !kir_status(r->c->k); s++) {
    more = false;
    for (unsigned i = 0; i < g->n; i++) {
      const rows_pos *q = &g->q[i];
      more |= r->body(r, s, q->t, q->np, q->in, q->out, q->tmp, &x->small[q->t % x->nb]);
    }
  }
}

/* The group's stores: issued by the data's writer, now; or by the Sync engine (r->store_sync),
** which would wait in its stream for the writer, so one group later (*held), data about ready. */
static void rows_stores(rows_run *x, const rows_grp *g, rows_grp *held) {
  for (unsigned i = 0; i < held->n; i++) rows_store(x, &held->q[i]);
  held->n = 0;
  if (!g) return;
  if (x->r->store_sync) *held = *g;
  else
    for (unsigned i = 0; i < g->n; i++) rows_store(x, &g->q[i]);
}

/* One group: its loads and steps; where the body splits its steps in two stages (r->stage2), the
** group's first stage is followed by the previous group's second stage and stores, so that the
** engines of the second stage work on group g - 1 while those of the first work on group g. */
static void rows_group(rows_run *x, rows_grp *g, rows_grp *prev, rows_grp *held) {
  elem_rowop *r = x->r;
  for (unsigned i = 0; i < g->n; i++) rows_load(x, &g->q[i]);
  if (!r->stage2) {
    rows_steps(x, g, 0, UINT32_MAX);
    rows_stores(x, g, held);
    return;
  }
  rows_steps(x, g, 0, r->stage2);
  if (prev->n) {
    rows_steps(x, prev, r->stage2, UINT32_MAX);
    rows_stores(x, prev, held);
  }
  *prev = *g;
}

/* PSUM column sums -> SBUF -> HBM [d]: block j's sums sit on partitions 0..127 of column j. */
static void rows_store_acc(rows_run *x, unsigned a) {
  elem_rowop *r = x->r;
  kir *k = r->c->k;
  uint32_t nfull = r->d / x->P, rem = r->d % x->P, nch = lower_ceil_div(r->d, x->P);
  kir_buf sb;
  if (kir_alloc(k, OT_MEM_SBUF, x->P, nch * 4u, &sb)) return;
  if (nfull) {
    kir_copy(k, OT_ENG_VECTOR, elem_tile(&sb, x->P, 0, nfull), elem_tile(&r->acc[a], x->P, 0, nfull));
    int64_t hs[2] = {1, (int64_t)x->P};
    uint32_t hz[2] = {x->P, nfull};
    kir_dma(k, kir_hbm_ap(&r->acc_out[a], 0, 2, hs, hz), elem_tile(&sb, x->P, 0, nfull), OT_ENG_COUNT);
  }
  if (rem) {
    kir_copy(k, OT_ENG_VECTOR, elem_col(&sb, rem, nfull), elem_col(&r->acc[a], rem, nfull));
    int64_t hs = 1;
    kir_dma(k, kir_hbm_ap(&r->acc_out[a], (uint64_t)nfull * x->P, 1, &hs, &rem), elem_col(&sb, rem, nfull), OT_ENG_COUNT);
  }
  kir_release(k, &sb);
}

ot_status elem_rows_run(elem_rowop *r) {
  rows_run x;
  memset(&x, 0, sizeof x);
  x.r = r;
  bool sched = true, lanes = false;
  if (r->in_order) sched = kir_window_order(r->c->k, false);
  if (r->in_order) lanes = kir_dma_lanes(r->c->k, true);
  if (rows_plan(&x) == OT_OK) {
    rows_alloc(&x); /* first: the vectors' staging buffers must not delay the first loads (WAR) */
    rows_load_vectors(&x);
    rows_grp g = {.n = 0}, prev = {.n = 0}, held = {.n = 0};
    uint32_t t = 0;
    for (uint64_t r0 = 0; r0 < r->rows && !kir_status(r->c->k); r0 += x.P, t++) {
      rows_pos *q = &g.q[g.n++];
      q->t = t;
      q->r0 = r0;
      q->np = (uint32_t)(r->rows - r0 < x.P ? r->rows - r0 : x.P);
      if (g.n == x.group || r0 + x.P >= r->rows) { rows_group(&x, &g, &prev, &held); g.n = 0; }
    }
    if (prev.n) {
      rows_steps(&x, &prev, r->stage2, UINT32_MAX);
      rows_stores(&x, &prev, &held);
    }
    rows_stores(&x, NULL, &held);
    for (unsigned a = 0; a < r->n_acc && !kir_status(r->c->k); a++) rows_store_acc(&x, a);
  }
  rows_release(&x);
  if (r->in_order) kir_window_order(r->c->k, sched);
  if (r->in_order) kir_dma_lanes(r->c->k, lanes);
  return kir_status(r->c->k);
}

void elem_rows_colsum(elem_rowop *r, unsigned a, uint32_t tile, uint32_t np, const ot_ap *src) {
  uint32_t P = elem_parts(r->c);
  for (uint32_t j = 0; j * P < r->d; j++) {
    uint32_t cw = r->d - j * P < P ? r->d - j * P : P;
    ot_ap stat = *src;
    stat.offset += (uint64_t)j * P * ot_dtype_size((ot_dtype)src->dtype);
    stat.dim[0].size = cw;
    int32_t one = 1;
    uint32_t sz = 1;
    ot_ap dst = kir_ap(&r->acc[a], 0, cw, j * 4u, OT_DT_FP32, 1, &one, &sz);
    kir_matmul(r->c->k, dst, stat, elem_col(&r->ones, np, 0), tile > 0);
  }
}

/* ---- set-up ------------------------------------------------------------------------------ */
static void rows_init(elem_rowop *r, lower_ctx *c, const ot_gnode *n, unsigned n_in, unsigned n_out, unsigned n_tmp,
                      unsigned n_small, elem_row_body body) {
  memset(r, 0, sizeof *r);
  const ot_gtensor *x = elem_in(c, n, 0);
  r->c = c;
  r->n = n;
  r->rows = elem_rows(x);
  r->d = (uint32_t)elem_last(x);
  r->n_in = n_in;
  r->n_out = n_out;
  r->n_tmp = n_tmp;
  r->n_small = n_small;
  r->body = body;
  r->eps = n->f[0];
}

/* Long runs of tiles (two buffer rotations or more) are emitted in the driver's order, not
** list-scheduled, as a two-stage software pipeline: steps from `stage2` on of group g - 1 follow
** the first steps of group g, and the Sync engine issues the stores one group after their data
** (it has the time: a DMA trigger costs dma.issue_ns, 600 ns on trn2, on the issuing engine; and
** the data is ready by then, so the loads behind them are not held up).  Short runs gain more
** from the list scheduler overlapping them with their neighbours.  Measured on [8192, 768]
** layernorm and [8192, 1024] softmax: docs/performance.md. */
static void rows_pipeline(elem_rowop *r, unsigned stage2) {
  if (lower_ceil_div(r->rows, elem_parts(r->c)) < 2u * ELEM_BUFS) return;
  r->in_order = true;
  r->stage2 = stage2;
  r->store_sync = true;
}

/* The way for the next tile (called at its step 0, tiles in order). */
static unsigned elem_balance_pick(elem_balance *b) {
  unsigned best = 0;
  double best_peak = 0;
  for (unsigned w = 0; w < b->n; w++) {
    double peak = 0;
    for (int e = 0; e < OT_ENG_COUNT; e++) {
      double v = b->load[e] + b->cost[w][e];
      if (b->pool_vector_gpsimd && e == OT_ENG_VECTOR)
        v += b->load[OT_ENG_GPSIMD] + b->cost[w][OT_ENG_GPSIMD];
      if (v > peak) peak = v;
    }
    if (w == 0 || peak < best_peak) { best = w; best_peak = peak; }
  }
  for (int e = 0; e < OT_ENG_COUNT; e++) b->load[e] += b->cost[best][e];
  return best;
}

/* mean and var (columns m, m+1, m = 6 * chunks) of x [np, d] by bn_stats over chunks of
** bn_stats_fmax (columns 0..m) and one bn_aggr; rstd = 1/sqrt(var + eps) in column m + 2.
** Steps 0..2 of a body. */
static uint32_t rows_bn_chunks(const elem_rowop *r) {
  uint32_t fmax = kir_chip(r->c->k)->vector.bn_stats_fmax;
  return lower_ceil_div(r->d, fmax ? fmax : 512);
}

static void rows_moments(elem_rowop *r, unsigned step, uint32_t np, const ot_ap *x, const kir_buf *small) {
  kir *k = r->c->k;
  uint32_t fmax = kir_chip(k)->vector.bn_stats_fmax, nch = rows_bn_chunks(r), m = 6 * nch;
  if (!fmax) fmax = 512;
  if (step == 0) {
    for (uint32_t j = 0; j < nch; j++) {
      ot_ap xs = *x;
      xs.offset += (uint64_t)j * fmax * ot_dtype_size((ot_dtype)x->dtype);
      xs.dim[0].size = r->d - j * fmax < fmax ? r->d - j * fmax : fmax;
      kir_bn_stats(k, elem_tile(small, np, 6 * j, 6), xs);
    }
  } else if (step == 1) {
    kir_bn_aggr(k, elem_tile(small, np, m, 2), elem_tile(small, np, 0, m));
  } else {
    ot_ap var = elem_col(small, np, m + 1);
    kir_ts(k, OT_ENG_VECTOR, elem_col(small, np, m + 2), var, OT_ALU_ADD, r->eps, NULL, OT_ALU_RSQRT, 0.0f, NULL);
  }
}

/* rstd = 1/sqrt(sum(x^2)/d + eps) into column 1 (column 0: the sum), the reference's order;
** the squares go to junk [np, d].  Steps 0..2 of a body. */
static void rows_rms(elem_rowop *r, unsigned step, uint32_t np, const ot_ap *x, const ot_ap *junk, const kir_buf *small) {
  kir *k = r->c->k;
  ot_ap ss = elem_col(small, np, 0), rstd = elem_col(small, np, 1);
  if (step == 0) kir_activate(k, OT_ENG_SCALAR, *junk, *x, OT_ACT_SQUARE, 1.0f, NULL, NULL, &ss);
  else if (step == 1) kir_ts(k, OT_ENG_VECTOR, rstd, ss, OT_ALU_DIV, (float)r->d, NULL, OT_ALU_ADD, r->eps, NULL);
  else kir_ts(k, OT_ENG_VECTOR, rstd, rstd, OT_ALU_RSQRT, 0.0f, NULL, OT_ALU_BYPASS, 0.0f, NULL);
}

static void rows_div(kir *k, const ot_ap *v, uint32_t d) {
  kir_ts(k, OT_ENG_VECTOR, *v, *v, OT_ALU_DIV, (float)d, NULL, OT_ALU_BYPASS, 0.0f, NULL);
}

/* ---- softmax ----------------------------------------------------------------------------- */
/* VectorE: -max; ScalarE: e = exp(x - max) with the row sums (red=); GpSimd: e / sum (a true
** division, as the reference: same cost as a multiply by a reciprocal, one rounding less). */
static bool body_softmax(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in, const ot_ap *out,
                         const ot_ap *tmp, const kir_buf *small) {
  (void)t;
  (void)tmp;
  kir *k = r->c->k;
  ot_ap nmax = elem_col(small, np, 0), sum = elem_col(small, np, 1);
  switch (step) {
  case 0: kir_reduce(k, nmax, in[0], OT_ALU_MAX, 1, true); return true;
  case 1: kir_activate(k, OT_ENG_SCALAR, out[0], in[0], OT_ACT_EXP, 1.0f, NULL, &nmax, &sum); return true;
  case 2: kir_ts(k, OT_ENG_GPSIMD, r->out_narrow ? in[0] : out[0], out[0], OT_ALU_DIV, 0.0f, &sum, OT_ALU_BYPASS, 0.0f, NULL); return true;
  default: return false;
  }
}

ot_status lower_elem_softmax(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 1, 1, 0, 2, body_softmax);
  r.in_place = true;
  r.out_narrow = true; /* where it can (16-bit x: not in place): x is dead after the exp */
  rows_pipeline(&r, 2); /* the division and store of group g - 1 run while group g's exp does */
  r.in[0] = c->hbm[n->in[0]];
  r.out[0] = c->hbm[n->out[0]];
  return elem_rows_run(&r);
}

/* dx = (dy - sum(dy y)) y: GpSimd products, ScalarE sum, one VectorE scalar_tensor_tensor. */
static bool body_softmax_bwd(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in, const ot_ap *out,
                             const ot_ap *tmp, const kir_buf *small) {
  (void)t;
  kir *k = r->c->k;
  ot_ap dot = elem_col(small, np, 0);
  switch (step) {
  case 0: kir_tt(k, OT_ENG_GPSIMD, tmp[0], in[1], in[0], OT_ALU_MUL); return true;
  case 1: rows_sum(k, &tmp[0], &dot); return true;
  case 2: kir_stt(k, out[0], in[1], OT_ALU_SUB, 0.0f, &dot, OT_ALU_MUL, in[0]); return true;
  default: return false;
  }
}

ot_status lower_elem_softmax_bwd(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 2, 1, 1, 1, body_softmax_bwd);
  r.in[0] = c->hbm[n->in[0]];
  r.in[1] = c->hbm[n->in[1]];
  r.out[0] = c->hbm[n->out[0]];
  return elem_rows_run(&r);
}

/* ---- layernorm --------------------------------------------------------------------------- */
/* Two ways to compute a tile's statistics, mixed tile by tile so that no engine is the bottleneck
** (elem_balance_pick; each alone leaves one engine idle half the time):
** - LN_ACT: two passes on the ScalarE in the reference's order, so they match it bit for bit:
**   sum x (a copy with red=), then sum (x - mean)^2 (Square with bias -mean, red=), the copies and
**   squares going to the output tile as scratch; the per-row scalars on the small-op engine;
** - LN_BN: bn_stats / bn_aggr and rstd on the VectorE (mean and variance differ from the two-pass
**   ones in the last bits).
** Then xhat = (x - mean) rstd on the ScalarE, gamma on the VectorE from PSUM (N cycles per element,
** not 2N), and beta: on the VectorE from PSUM where the GpSimd shares its SBUF port (NC-v2: work
** moved there would not overlap), else on the GpSimd. */
enum { LN_ACT, LN_BN };
#define LN_STAT_STEPS 6 /* steps before gamma in either way; the pipeline's second stage */

static bool ln_shared_port(const elem_rowop *r) { return kir_chip(r->c->k)->ports.vector_gpsimd_share_sbuf; }

/* LN_ACT's per-row scalars: on the ScalarE itself where it has time to spare (the statistics then
** never leave it: no waits between engines), else on the GpSimd, idle on NC-v2. */
static ot_engine ln_small_engine(const elem_rowop *r) { return ln_shared_port(r) ? OT_ENG_GPSIMD : OT_ENG_SCALAR; }

/* Steps 0..5 of LN_ACT: rstd and -mean in small columns 3 and 1, xhat in out[0]. */
static bool ln_act_steps(elem_rowop *r, unsigned step, uint32_t np, const ot_ap *in, const ot_ap *out,
                         const kir_buf *small) {
  kir *k = r->c->k;
  ot_engine se = ln_small_engine(r);
  ot_ap sum = elem_col(small, np, 0), nmean = elem_col(small, np, 1), ss = elem_col(small, np, 2);
  ot_ap rstd = elem_col(small, np, 3);
  switch (step) {
  case 0: kir_activate(k, OT_ENG_SCALAR, out[0], in[0], OT_ACT_COPY, 1.0f, NULL, NULL, &sum); break;
  case 1: kir_ts(k, se, nmean, sum, OT_ALU_DIV, (float)r->d, NULL, OT_ALU_MUL, -1.0f, NULL); break;
  case 2: kir_activate(k, OT_ENG_SCALAR, out[0], in[0], OT_ACT_SQUARE, 1.0f, NULL, &nmean, &ss); break;
  case 3: kir_ts(k, se, rstd, ss, OT_ALU_DIV, (float)r->d, NULL, OT_ALU_ADD, r->eps, NULL); break;
  case 4: kir_ts(k, se, rstd, rstd, OT_ALU_RSQRT, 0.0f, NULL, OT_ALU_BYPASS, 0.0f, NULL); break;
  default: kir_ts(k, OT_ENG_SCALAR, out[0], in[0], OT_ALU_ADD, 0.0f, &nmean, OT_ALU_MUL, 0.0f, &rstd); break;
  }
  return true;
}

/* Steps 0..5 of LN_BN: moments, rstd, (nothing at 3 and 4: each engine then meets the tiles of a
** group in the same order whichever way they take), xhat in out[0]. */
static bool ln_bn_steps(elem_rowop *r, unsigned step, uint32_t np, const ot_ap *in, const ot_ap *out,
                        const kir_buf *small) {
  uint32_t m = 6 * rows_bn_chunks(r);
  if (step < 3) {
    rows_moments(r, step, np, &in[0], small);
    return true;
  }
  if (step < 5) return true;
  ot_ap mean = elem_col(small, np, m), rstd = elem_col(small, np, m + 2);
  kir_ts(r->c->k, OT_ENG_SCALAR, out[0], in[0], OT_ALU_SUB, 0.0f, &mean, OT_ALU_MUL, 0.0f, &rstd);
  return true;
}

static bool body_layernorm(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in, const ot_ap *out,
                           const ot_ap *tmp, const kir_buf *small) {
  (void)tmp;
  if (step == 0) /* long runs balance the ways; short ones (list-scheduled) take the chip's one */
    r->way[t % ELEM_BUFS] = r->bal.n ? (uint8_t)elem_balance_pick(&r->bal) : ln_shared_port(r) ? LN_ACT : LN_BN;
  if (step < LN_STAT_STEPS)
    return r->way[t % ELEM_BUFS] == LN_ACT ? ln_act_steps(r, step, np, in, out, small) : ln_bn_steps(r, step, np, in, out, small);
  const ot_ap *y = r->out_narrow ? &in[0] : &out[0];
  if (step == LN_STAT_STEPS) elem_rows_vec_op(r, 0, np, &out[0], OT_ALU_MUL);
  else if (step > LN_STAT_STEPS + 1) return false;
  else if (ln_shared_port(r)) elem_rows_vec_op2(r, 1, np, y, &out[0], OT_ALU_ADD);
  else kir_tt(r->c->k, OT_ENG_GPSIMD, *y, out[0], elem_tile(&r->vec[1], np, 0, r->d), OT_ALU_ADD);
  return true;
}

/* Estimated engine time per tile of each way (the simulator's cost rules, sim_cost.c, at the
** chip's clocks).  The Sync engine issues the stores, one group late (rows_stores): it has the time
** (a DMA trigger costs dma.issue_ns, 600 ns on trn2, on the issuing engine), and the data is ready
** by then, so its loads are not held up. */
static void ln_balance_init(elem_rowop *r) {
  const ot_chip *ch = kir_chip(r->c->k);
  elem_balance *b = &r->bal;
  bool shared = ln_shared_port(r);
  double d = r->d;
  double v = 1.0 / ch->eng[OT_ENG_VECTOR].clock_ghz, s = 1.0 / ch->eng[OT_ENG_SCALAR].clock_ghz;
  double g = 1.0 / ch->eng[OT_ENG_GPSIMD].clock_ghz;
  ot_engine small_eng = ln_small_engine(r);
  const ot_engine_desc *se = &ch->eng[small_eng];
  double small = ((se->min_ii > 1 ? se->min_ii : 1) + se->access_start) / se->clock_ghz; /* a [P, 1] op */
  int beta = shared ? OT_ENG_VECTOR : OT_ENG_GPSIMD;
  double beta_ns = shared ? d * v : 2.0 * d * g;
  memset(b, 0, sizeof *b);
  b->n = 2;
  b->pool_vector_gpsimd = shared;
  b->cost[LN_ACT][OT_ENG_SCALAR] = (3.0 * d + 2.0 * ch->scalar.acc_read_cycles) * s;
  b->cost[LN_ACT][small_eng] += 3.0 * small;
  b->cost[LN_ACT][OT_ENG_VECTOR] += d * v;
  b->cost[LN_ACT][beta] += beta_ns;
  b->cost[LN_BN][OT_ENG_VECTOR] = 2.0 * d * v + 2.0 * ch->eng[OT_ENG_VECTOR].min_ii * v;
  b->cost[LN_BN][OT_ENG_SCALAR] = d * s;
  b->cost[LN_BN][beta] += beta_ns;
}

ot_status lower_elem_layernorm(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 1, 1, 0, 0, body_layernorm);
  r.in[0] = c->hbm[n->in[0]];
  r.out[0] = c->hbm[n->out[0]];
  r.n_vec = 2;
  r.vec_psum = true;
  r.vec_src[0] = c->hbm[n->in[1]];
  r.vec_src[1] = c->hbm[n->in[2]];
  r.out_narrow = true; /* where it can: x is dead after (x - mean) rstd */
  rows_pipeline(&r, LN_STAT_STEPS); /* gamma, beta, stores of group g - 1 run while group g's statistics do */
  if (r.in_order) ln_balance_init(&r);
  bool bn = r.bal.n || !ln_shared_port(&r); /* some tiles take LN_BN */
  r.n_small = bn ? 6 * rows_bn_chunks(&r) + 3 : 4;
  r.in_place = bn && !r.bal.n; /* LN_BN alone: xhat may overwrite fp32 x (LN_ACT reads x to the end) */
  return elem_rows_run(&r);
}

/* dx = rstd ((g - mean(g)) - xhat mean(g xhat)), g = dy gamma; computed as
** ((xhat * a) - (g - b)) * (-rstd), which rounds exactly as the reference's order does.
** dgamma, dbeta: column sums of dy xhat and dy on the TensorE. */
static bool body_layernorm_bwd(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in,
                               const ot_ap *out, const ot_ap *tmp, const kir_buf *small) {
  kir *k = r->c->k;
  const ot_ap x = in[0], dy = in[1];
  uint32_t m = 6 * rows_bn_chunks(r);
  ot_ap mean = elem_col(small, np, m), rstd = elem_col(small, np, m + 2), nrstd = elem_col(small, np, m + 3);
  ot_ap sg = elem_col(small, np, m + 4), sgx = elem_col(small, np, m + 5);
  switch (step) {
  case 0: case 1: case 2: rows_moments(r, step, np, &x, small); return true;
  case 3: kir_ts(k, OT_ENG_VECTOR, nrstd, rstd, OT_ALU_MUL, -1.0f, NULL, OT_ALU_BYPASS, 0.0f, NULL); return true;
  case 4: kir_ts(k, OT_ENG_SCALAR, tmp[0], x, OT_ALU_SUB, 0.0f, &mean, OT_ALU_MUL, 0.0f, &rstd); return true; /* xhat */
  case 5: kir_tt(k, OT_ENG_GPSIMD, tmp[1], dy, elem_tile(&r->vec[0], np, 0, r->d), OT_ALU_MUL); return true; /* g */
  case 6: rows_sum(k, &tmp[1], &sg); return true;
  case 7: kir_tt(k, OT_ENG_GPSIMD, out[0], tmp[1], tmp[0], OT_ALU_MUL); return true; /* g xhat (out as scratch) */
  case 8: rows_sum(k, &out[0], &sgx); return true;
  case 9: kir_tt(k, OT_ENG_GPSIMD, out[0], dy, tmp[0], OT_ALU_MUL); return true; /* dy xhat */
  case 10: if (r->n_acc > 0) elem_rows_colsum(r, 0, t, np, &out[0]); return true;
  case 11: if (r->n_acc > 1) elem_rows_colsum(r, 1, t, np, &dy); return true;
  case 12: rows_div(k, &sg, r->d); return true;
  case 13: rows_div(k, &sgx, r->d); return true;
  case 14: kir_ts(k, OT_ENG_VECTOR, tmp[1], tmp[1], OT_ALU_SUB, 0.0f, &sg, OT_ALU_BYPASS, 0.0f, NULL); return true;
  case 15: kir_stt(k, tmp[0], tmp[0], OT_ALU_MUL, 0.0f, &sgx, OT_ALU_SUB, tmp[1]); return true;
  case 16: kir_activate(k, OT_ENG_SCALAR, out[0], tmp[0], OT_ACT_COPY, 0.0f, &nrstd, NULL, NULL); return true;
  default: return false;
  }
}

ot_status lower_elem_layernorm_bwd(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 2, 1, 2, 0, body_layernorm_bwd);
  r.n_small = 6 * rows_bn_chunks(&r) + 6;
  r.in[0] = c->hbm[n->in[0]];
  r.in[1] = c->hbm[n->in[2]];
  r.out[0] = c->hbm[n->out[0]];
  r.n_vec = 1;
  r.vec_src[0] = c->hbm[n->in[1]];
  r.n_acc = n->n_out > 2 ? 2 : n->n_out - 1;
  for (unsigned a = 0; a < r.n_acc; a++) r.acc_out[a] = c->hbm[n->out[1 + a]];
  return elem_rows_run(&r);
}

/* ---- rmsnorm ----------------------------------------------------------------------------- */
/* ScalarE: sum of squares (red=) and x * rstd; VectorE: rstd; GpSimd: * gamma. */
static bool body_rmsnorm(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in, const ot_ap *out,
                         const ot_ap *tmp, const kir_buf *small) {
  (void)t;
  (void)tmp;
  kir *k = r->c->k;
  ot_ap rstd = elem_col(small, np, 1);
  switch (step) {
  case 0: case 1: case 2: rows_rms(r, step, np, &in[0], &out[0], small); return true;
  case 3: kir_activate(k, OT_ENG_SCALAR, out[0], in[0], OT_ACT_COPY, 0.0f, &rstd, NULL, NULL); return true;
  case 4: kir_tt(k, OT_ENG_GPSIMD, out[0], out[0], elem_tile(&r->vec[0], np, 0, r->d), OT_ALU_MUL); return true;
  default: return false;
  }
}

ot_status lower_elem_rmsnorm(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 1, 1, 0, 2, body_rmsnorm);
  r.in[0] = c->hbm[n->in[0]];
  r.out[0] = c->hbm[n->out[0]];
  r.n_vec = 1;
  r.vec_src[0] = c->hbm[n->in[1]];
  return elem_rows_run(&r);
}

/* dx = rstd (g - x rstd^2 mean(g x)), g = dy gamma, as ((x rstd rstd) a - g) (-rstd);
** dgamma = column sums of (dy x) rstd. */
static bool body_rmsnorm_bwd(elem_rowop *r, unsigned step, uint32_t t, uint32_t np, const ot_ap *in, const ot_ap *out,
                             const ot_ap *tmp, const kir_buf *small) {
  kir *k = r->c->k;
  const ot_ap x = in[0], dy = in[1];
  ot_ap rstd = elem_col(small, np, 1), nrstd = elem_col(small, np, 2), sgx = elem_col(small, np, 3);
  switch (step) {
  case 0: case 1: case 2: rows_rms(r, step, np, &x, &out[0], small); return true;
  case 3: kir_ts(k, OT_ENG_VECTOR, nrstd, rstd, OT_ALU_MUL, -1.0f, NULL, OT_ALU_BYPASS, 0.0f, NULL); return true;
  case 4: kir_tt(k, OT_ENG_GPSIMD, tmp[0], dy, elem_tile(&r->vec[0], np, 0, r->d), OT_ALU_MUL); return true; /* g */
  case 5: kir_tt(k, OT_ENG_GPSIMD, tmp[1], tmp[0], x, OT_ALU_MUL); return true; /* g x */
  case 6: rows_sum(k, &tmp[1], &sgx); return true;
  case 7: if (r->n_acc) kir_tt(k, OT_ENG_VECTOR, out[0], dy, x, OT_ALU_MUL); return true; /* out as scratch */
  case 8:
    if (r->n_acc) kir_ts(k, OT_ENG_SCALAR, out[0], out[0], OT_ALU_MUL, 0.0f, &rstd, OT_ALU_BYPASS, 0.0f, NULL);
    return true;
  case 9: if (r->n_acc) elem_rows_colsum(r, 0, t, np, &out[0]); return true;
  case 10: rows_div(k, &sgx, r->d); return true;
  case 11: kir_ts(k, OT_ENG_SCALAR, tmp[1], x, OT_ALU_MUL, 0.0f, &rstd, OT_ALU_MUL, 0.0f, &rstd); return true;
  case 12: kir_stt(k, tmp[1], tmp[1], OT_ALU_MUL, 0.0f, &sgx, OT_ALU_SUB, tmp[0]); return true;
  case 13: kir_activate(k, OT_ENG_SCALAR, out[0], tmp[1], OT_ACT_COPY, 0.0f, &nrstd, NULL, NULL); return true;
  default: return false;
  }
}

ot_status lower_elem_rmsnorm_bwd(lower_ctx *c, const ot_gnode *n) {
  elem_rowop r;
  rows_init(&r, c, n, 2, 1, 2, 4, body_rmsnorm_bwd);
  r.in[0] = c->hbm[n->in[0]];
  r.in[1] = c->hbm[n->in[2]];
  r.out[0] = c->hbm[n->out[0]];
  r.n_vec = 1;
  r.vec_src[0] = c->hbm[n->in[1]];
  r.n_acc = n->n_out > 1 ? 1 : 0;
  if (r.n_acc) r.acc_out[0] = c->hbm[n->out[1]];
  return elem_rows_run(&r);
}
