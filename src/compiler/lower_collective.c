/* Reduce across the cores of one chip into the root copy (lower_collective.h; docs/data-parallel.md). */
#include <stdlib.h>
#include <string.h>

#include "compiler/lower_collective.h"

#define LC_FREE 2048u          /* fp32 elements per partition of a tile (8 KiB) */
#define LC_MIN_RUN 64u         /* fp32 elements per partition of a short range's tile (256 B DMA runs) */
#define LC_TMP 3u              /* buffers for the other copies' tiles (more measured slower: 6 -> +10 %) */
/* The adds of a tile go to two engines by columns, each element's chain still in core order (so
** the same bits): the VectorE's fp32 tensor_tensor took 4.4 us per [128, 2048] tile and bound
** the whole all-reduce (7 adds a tile against 22 us of loads).  Share of the columns on the
** VectorE, the rest on the GpSimd: bench_allreduce, trn2, 8 cores, GPT-2's 124M gradients
** 2335 us with the VectorE alone; 34 %: 1882 us (50 %: 1940, 25 %: 2057). */
#define LC_VECTOR_SHARE 34u

ot_ap lc_flat_ap(const kir_hbm *b, uint64_t elems) {
  /* exactly the tensor's bytes: a wider range would order later accesses to the tensors placed
  ** after it behind the wait (GPT-2's wte copy, 36.8 x 2^20 elements, covered 400 KB beyond it) */
  if (elems <= UINT32_MAX) {
    int64_t st = 1;
    uint32_t sz = (uint32_t)elems;
    return kir_hbm_ap(b, 0, 1, &st, &sz);
  }
  int64_t st[2] = {1 << 20, 1}; /* conservatively [ceil(elems / 2^20), 2^20] */
  uint32_t sz[2] = {(uint32_t)((elems + (1u << 20) - 1) >> 20), 1u << 20};
  return kir_hbm_ap(b, 0, 2, st, sz);
}

/* Columns [*c0, *c0 + *n) of an f-column tile are engine part e's (0: VectorE, 1: GpSimd). */
static ot_engine lc_part(uint32_t f, int e, uint32_t *c0, uint32_t *n) {
  uint32_t fv = f < 2 ? f : (uint32_t)((uint64_t)f * LC_VECTOR_SHARE / 100);
  *c0 = e ? fv : 0;
  *n = e ? f - fv : fv;
  return e ? OT_ENG_GPSIMD : OT_ENG_VECTOR;
}

/* The squares of a slice's reduced values (lc_norm): summed per partition into col by the
** ScalarE (idle in the all-reduce), added into sum [P, 1] by the VectorE. */
typedef struct {
  kir_buf sq, col, sum, ones, ps, res;
} lc_squares;

static void squares_add(kir *k, const lc_squares *q, ot_ap tile, uint32_t p, uint32_t f) {
  ot_ap col = kir_ap2(&q->col, p, 0, 1, OT_DT_FP32), sum = kir_ap2(&q->sum, p, 0, 1, OT_DT_FP32);
  kir_activate(k, OT_ENG_SCALAR, kir_ap2(&q->sq, p, 0, f, OT_DT_FP32), tile, OT_ACT_SQUARE, 1.0f, NULL, NULL, &col);
  kir_tt(k, OT_ENG_VECTOR, sum, sum, col, OT_ALU_ADD);
}

/* Sum the range [lo, hi) of tensor t on core c: load from every copy, add in core order, scale,
** store into the root copy (copies[0]); with q, also the squares.  Buffers rotate so that loads
** of the next tile overlap this one. */
static ot_status reduce_range(kir *k, unsigned cores, const kir_hbm *copies, uint64_t lo, uint64_t hi, float scale,
                              const kir_buf *acc, const kir_buf *tmp, unsigned *turn, const lc_squares *q) {
  const uint32_t P = kir_chip(k)->sbuf.partitions;
  while (lo < hi && !kir_status(k)) {
    uint64_t rem = hi - lo;
    uint32_t f, p;
    if (rem >= LC_FREE) {
      f = LC_FREE;
      p = (uint32_t)(rem / LC_FREE < P ? rem / LC_FREE : P);
    } else { /* a short range (a bias, a tensor's end) across partitions, LC_MIN_RUN elements each
             ** at least: the adds no longer run on one lane */
      f = (uint32_t)((rem + P - 1) / P);
      if (f < LC_MIN_RUN) f = rem < LC_MIN_RUN ? (uint32_t)rem : LC_MIN_RUN;
      p = (uint32_t)(rem / f);
    }
    int64_t st[2] = {f, 1};
    uint32_t sz[2] = {p, f};
    const kir_buf *a = &acc[*turn % 2];
    ot_ap sa = kir_ap2(a, p, 0, f, OT_DT_FP32);
    kir_dma(k, sa, kir_hbm_ap(&copies[0], lo, 2, st, sz), OT_ENG_COUNT);
    for (unsigned j = 1; j < cores; j++) {
      const kir_buf *b = &tmp[(*turn * (cores - 1) + j) % LC_TMP];
      ot_ap sb = kir_ap2(b, p, 0, f, OT_DT_FP32);
      kir_dma(k, sb, kir_hbm_ap(&copies[j], lo, 2, st, sz), OT_ENG_COUNT);
      for (int e = 0; e < 2; e++) {
        uint32_t c0, n;
        ot_engine eng = lc_part(f, e, &c0, &n);
        ot_ap da = kir_ap2(a, p, c0, n, OT_DT_FP32), db = kir_ap2(b, p, c0, n, OT_DT_FP32);
        if (n) kir_tt(k, eng, da, da, db, OT_ALU_ADD);
      }
    }
    if (scale != 1.0f)
      for (int e = 0; e < 2; e++) {
        uint32_t c0, n;
        ot_engine eng = lc_part(f, e, &c0, &n);
        ot_ap da = kir_ap2(a, p, c0, n, OT_DT_FP32);
        if (n) kir_ts(k, eng, da, da, OT_ALU_MUL, scale, NULL, OT_ALU_BYPASS, 0.0f, NULL);
      }
    kir_dma(k, kir_hbm_ap(&copies[0], lo, 2, st, sz), sa, OT_ENG_VECTOR);
    if (q) squares_add(k, q, sa, p, f);
    lo += (uint64_t)p * f;
    (*turn)++;
  }
  return kir_status(k);
}

static void squares_begin(kir *k, lc_squares *q) {
  const uint32_t P = kir_chip(k)->sbuf.partitions;
  kir_alloc(k, OT_MEM_SBUF, P, LC_FREE * 4, &q->sq);
  kir_alloc(k, OT_MEM_SBUF, P, 4, &q->col);
  kir_alloc(k, OT_MEM_SBUF, P, 4, &q->sum);
  kir_alloc(k, OT_MEM_SBUF, P, 4, &q->ones);
  kir_alloc(k, OT_MEM_SBUF, 1, 4, &q->res);
  kir_alloc(k, OT_MEM_PSUM, 1, 4, &q->ps);
  kir_memset(k, OT_ENG_VECTOR, kir_ap2(&q->sum, P, 0, 1, OT_DT_FP32), 0.0f);
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(&q->ones, P, 0, 1, OT_DT_FP32), 1.0f);
}

/* The partitions' sums added on the TensorE (fp32) into partials[c]. */
static void squares_end(kir *k, lc_squares *q, const lc_norm *norm, unsigned c) {
  const uint32_t P = kir_chip(k)->sbuf.partitions;
  kir_matmul(k, kir_ap2(&q->ps, 1, 0, 1, OT_DT_FP32), kir_ap2(&q->sum, P, 0, 1, OT_DT_FP32),
             kir_ap2(&q->ones, P, 0, 1, OT_DT_FP32), false);
  kir_copy(k, OT_ENG_VECTOR, kir_ap2(&q->res, 1, 0, 1, OT_DT_FP32), kir_ap2(&q->ps, 1, 0, 1, OT_DT_FP32));
  int64_t st[1] = {1};
  uint32_t one[1] = {1};
  kir_dma(k, kir_hbm_ap(&norm->partials, c, 1, st, one), kir_ap2(&q->res, 1, 0, 1, OT_DT_FP32), OT_ENG_COUNT);
  kir_buf all[] = {q->sq, q->col, q->sum, q->ones, q->res, q->ps};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) kir_release(k, &all[i]);
}

static ot_status reduce_slice(kir *k, unsigned c, unsigned cores, unsigned n_t, const kir_hbm *bufs,
                              const uint64_t *elems, float scale, kir_hbm *copies, const lc_norm *norm) {
  uint64_t total = 0;
  for (unsigned t = 0; t < n_t; t++) total += elems[t];
  /* core c owns elements [c * total / cores, (c + 1) * total / cores) of the concatenation */
  uint64_t s_lo = total / cores * c + total % cores * c / cores;
  uint64_t s_hi = total / cores * (c + 1) + total % cores * (c + 1) / cores;
  kir_buf acc[2], tmp[LC_TMP];
  const uint32_t P = kir_chip(k)->sbuf.partitions;
  for (int i = 0; i < 2; i++) kir_alloc(k, OT_MEM_SBUF, P, LC_FREE * 4, &acc[i]);
  for (unsigned i = 0; i < LC_TMP; i++) kir_alloc(k, OT_MEM_SBUF, P, LC_FREE * 4, &tmp[i]);
  lc_squares q = {0};
  if (norm) squares_begin(k, &q);
  unsigned turn = 0;
  uint64_t base = 0;
  for (unsigned t = 0; t < n_t && !kir_status(k); t++) {
    uint64_t lo = s_lo > base ? s_lo - base : 0, hi = s_hi - base < elems[t] ? s_hi - base : elems[t];
    if (s_hi > base && lo < hi) {
      for (unsigned j = 0; j < cores; j++) copies[j] = bufs[(size_t)t * cores + j];
      reduce_range(k, cores, copies, lo, hi, scale, acc, tmp, &turn, norm && norm->in_norm[t] ? &q : NULL);
    }
    base += elems[t];
    if (base >= s_hi) break;
  }
  if (norm) squares_end(k, &q, norm, c);
  for (unsigned i = 0; i < LC_TMP; i++) kir_release(k, &tmp[i]);
  for (int i = 0; i < 2; i++) kir_release(k, &acc[i]);
  return kir_status(k);
}

ot_status lower_allreduce(kir *const *k, unsigned cores, unsigned n_t, const kir_hbm *bufs, const uint64_t *elems,
                          float scale, const lc_sems *sems, const lc_norm *norm) {
  if (cores < 1 || cores > 64) return kir_fail(k[0], OT_EINVAL, "all-reduce across %u cores (1..64)", cores);
  for (unsigned t = 0; t < n_t; t++)
    for (unsigned c = 0; c < cores; c++)
      if (bufs[(size_t)t * cores + c].dtype != OT_DT_FP32)
        return kir_fail(k[c], OT_EUNSUPPORTED, "all-reduce of a %s tensor: only fp32 is supported",
                        ot_dtype_name((ot_dtype)bufs[(size_t)t * cores + c].dtype));
  if (cores == 1) {
    if (scale == 1.0f) return OT_OK;
  }
  uint64_t all = cores >= 64 ? ~0ull : (1ull << cores) - 1;
  int32_t expect = (int32_t)((cores - 1) * (sems->epoch + 1));
  ot_ap *theirs = malloc(((size_t)n_t * cores + 1) * sizeof *theirs);
  kir_hbm *copies = malloc(cores * sizeof *copies);
  if (!theirs || !copies) {
    free(theirs);
    free(copies);
    return kir_fail(k[0], OT_ENOMEM, "out of memory");
  }
  ot_status st = OT_OK;
  for (unsigned c = 0; c < cores && !st; c++) {
    /* 1. my copy is complete: tell the others; wait until theirs are */
    kir_remote_signal(k[c], OT_ENG_SYNC, all, sems->sem_ready);
    unsigned n = 0;
    for (unsigned t = 0; t < n_t; t++)
      for (unsigned j = 0; j < cores; j++)
        if (j != c) theirs[n++] = lc_flat_ap(&bufs[(size_t)t * cores + j], elems[t]);
    if (cores > 1) kir_remote_wait(k[c], OT_ENG_SYNC, sems->sem_ready, expect, theirs, n);
    /* 2. reduce my slice of every copy, write it into the root copy */
    reduce_slice(k[c], c, cores, n_t, bufs, elems, scale, copies, norm);
    /* 3. my slice is in the root copy: tell the others; wait until every slice of it is */
    if (cores > 1) {
      kir_remote_signal(k[c], OT_ENG_SYNC, all, sems->sem_done);
      n = 0;
      for (unsigned t = 0; t < n_t; t++) theirs[n++] = lc_flat_ap(&bufs[(size_t)t * cores], elems[t]);
      kir_remote_wait(k[c], OT_ENG_SYNC, sems->sem_done, expect, theirs, n);
    }
    st = kir_status(k[c]);
  }
  free(theirs);
  free(copies);
  return st;
}
