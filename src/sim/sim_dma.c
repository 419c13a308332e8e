/* The DMA model: a fluid simulation.  Between events every transfer in flight moves at a fixed
** rate: its core's DMA bandwidth (engines x per-engine bandwidth) shared equally among the core's
** transfers in flight, and, if it touches HBM, at most an equal share of the chip's HBM bandwidth.
** Rates are recomputed whenever a transfer starts or completes.  A transfer may start once its
** queue's previous transfer has completed and its start latency has passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_dma.h"

#define NONE UINT32_MAX

ot_status ot_dma_init(ot_dma *d, const ot_chip *chip, uint32_t cores, ot_error *err) {
  memset(d, 0, sizeof *d);
  d->cores = cores;
  d->queues = chip->dma.queues;
  size_t nq = (size_t)cores * d->queues;
  d->head = malloc(nq * sizeof *d->head);
  d->tail = malloc(nq * sizeof *d->tail);
  if (!d->head || !d->tail) return ot_error_set(err, OT_ENOMEM, "out of memory for DMA queues");
  for (size_t i = 0; i < nq; i++) d->head[i] = d->tail[i] = NONE;
  /* GB/s = bytes/ns = 1e-3 bytes/ps */
  d->core_bw = chip->dma.engines * chip->dma.engine_gbps * 1e-3;
  d->hbm_bw = chip->hbm.bandwidth_gbps * 1e-3;
  return OT_OK;
}

void ot_dma_free(ot_dma *d) {
  for (uint32_t i = 0; i < d->n; i++) free(d->x[i].race_clock);
  free(d->x);
  free(d->head);
  free(d->tail);
  memset(d, 0, sizeof *d);
}

/* Length in bytes of the innermost contiguous run of a view (dims merged while contiguous). */
static uint64_t contiguous_run(const ot_view *v) {
  uint64_t run = v->esize;
  for (int d = (int)v->ndim - 1; d >= 0; d--) {
    if (v->size[d] == 1) continue;
    if (v->stride[d] != (int64_t)run) break;
    run *= v->size[d];
  }
  return run;
}

/* moved bytes in contiguous runs of run bytes, each below dma.small_transfer_bytes paying overhead. */
static double runs_cost(const ot_chip *chip, uint64_t moved, uint64_t run) {
  if (run == 0) run = 1;
  double runs = ceil((double)moved / (double)run);
  double overhead = 0;
  if (run < chip->dma.small_bytes)
    overhead = chip->dma.min_efficient_bytes * (1.0 - (double)run / chip->dma.small_bytes);
  return (double)moved + runs * overhead;
}

double ot_dma_cost_bytes(const ot_chip *chip, const ot_view *dst, const ot_view *src, uint64_t *bytes) {
  uint64_t elems = (uint64_t)src->parts * src->free_elems;
  uint64_t moved = elems * (src->esize > dst->esize ? src->esize : dst->esize);
  *bytes = moved;
  /* The descriptors are as fine as the finer side's contiguous runs. */
  uint64_t rs = contiguous_run(src), rd = contiguous_run(dst);
  return runs_cost(chip, moved, rs < rd ? rs : rd);
}

/* ---- indirect DMA ---------------------------------------------------------------------------- */
bool ot_dma_is_indirect(unsigned op) { return op == OT_OP_DMA_GATHER || op == OT_OP_DMA_SCATTER_ADD; }

bool ot_dma_indirect_shape(unsigned op, const ot_view *dst, const ot_view *src, const ot_view *idx, char *msg,
                           size_t cap) {
  bool gather = op == OT_OP_DMA_GATHER;
  const ot_view *t = gather ? src : dst, *sb = gather ? dst : src;
  const char *tn = gather ? "src" : "dst", *sn = gather ? "dst" : "src";
  if (t->mem != OT_MEM_HBM || sb->mem != OT_MEM_SBUF || idx->mem != OT_MEM_SBUF) {
    snprintf(msg, cap, "%s (the table) must be in HBM, %s and idx in SBUF", tn, sn);
    return false;
  }
  if (t->ndim != 2 || t->size[0] == 0 || t->size[1] == 0) {
    snprintf(msg, cap, "%s: the table must be a non-empty 2-D HBM pattern [rows, cols], not %u-D with %llu elements", tn,
             t->ndim, (unsigned long long)t->free_elems);
    return false;
  }
  if (idx->dtype != OT_DT_INT32) {
    snprintf(msg, cap, "idx is %s; indices are int32", ot_dtype_name(idx->dtype));
    return false;
  }
  if (idx->parts != sb->parts || idx->free_elems == 0) {
    snprintf(msg, cap, "idx is [%u partitions, %llu indices], %s spans %u partitions; expected [%u, K >= 1]", idx->parts,
             (unsigned long long)idx->free_elems, sn, sb->parts, sb->parts);
    return false;
  }
  uint64_t cols = t->size[1], k = idx->free_elems;
  if (sb->free_elems % cols || sb->free_elems / cols != k) {
    snprintf(msg, cap, "%s holds %llu elements per partition; %llu indices per partition x %llu columns expected",
             sn, (unsigned long long)sb->free_elems, (unsigned long long)k, (unsigned long long)cols);
    return false;
  }
  if (!gather && !ot_dtype_is_float(t->dtype)) {
    snprintf(msg, cap, "dst is %s; dma_scatter_add accumulates into a float table", ot_dtype_name(t->dtype));
    return false;
  }
  return true;
}

double ot_dma_indirect_cost(const ot_chip *chip, unsigned op, const ot_view *dst, const ot_view *src,
                            const ot_view *idx, uint64_t *bytes) {
  bool gather = op == OT_OP_DMA_GATHER;
  const ot_view *t = gather ? src : dst, *sb = gather ? dst : src;
  uint64_t cols = t->ndim == 2 ? t->size[1] : t->free_elems;
  uint64_t rows = (uint64_t)idx->parts * idx->free_elems;
  /* One row of the table (1-D), and the SBUF side's run capped at a row. */
  ot_view row = *t;
  row.ndim = 1, row.parts = 1;
  row.stride[0] = t->ndim == 2 ? t->stride[1] : (int64_t)t->esize;
  row.size[0] = (uint32_t)cols, row.free_elems = cols;
  uint64_t rt = contiguous_run(&row), rs = contiguous_run(sb);
  if (rs > cols * sb->esize) rs = cols * sb->esize;
  uint64_t row_bytes = cols * (t->esize > sb->esize ? t->esize : sb->esize);
  *bytes = rows * row_bytes;
  return (double)rows * runs_cost(chip, row_bytes, rt < rs ? rt : rs) * (gather ? 1.0 : 2.0);
}

uint32_t ot_dma_push(ot_dma *d, const ot_dma_xfer *x) {
  if (d->n == d->cap) {
    uint32_t cap = d->cap ? d->cap * 2 : 64;
    ot_dma_xfer *nx = realloc(d->x, (size_t)cap * sizeof *nx);
    if (!nx) return NONE;
    d->x = nx;
    d->cap = cap;
  }
  uint32_t i = d->n++;
  d->x[i] = *x;
  d->x[i].active = false;
  d->x[i].next = NONE;
  size_t q = (size_t)x->core * d->queues + x->queue;
  if (d->tail[q] == NONE) d->head[q] = i;
  else d->x[d->tail[q]].next = i;
  d->tail[q] = i;
  d->in_flight++;
  return i;
}

static void recompute_rates(ot_dma *d) {
  uint32_t *per_core = calloc(d->cores ? d->cores : 1, sizeof *per_core);
  uint32_t hbm_active = 0;
  size_t nq = (size_t)d->cores * d->queues;
  for (size_t q = 0; q < nq; q++) {
    uint32_t h = d->head[q];
    if (h == NONE || !d->x[h].active) continue;
    if (per_core) per_core[d->x[h].core]++;
    hbm_active += d->x[h].hbm;
  }
  for (size_t q = 0; q < nq; q++) {
    uint32_t h = d->head[q];
    if (h == NONE || !d->x[h].active) continue;
    ot_dma_xfer *x = &d->x[h];
    double r = d->core_bw / (per_core && per_core[x->core] ? per_core[x->core] : 1);
    if (x->hbm && hbm_active && d->hbm_bw / hbm_active < r) r = d->hbm_bw / hbm_active;
    x->rate = r;
  }
  free(per_core);
}

static ot_ps completion_time(const ot_dma *d, const ot_dma_xfer *x) {
  if (x->remaining <= 0) return d->now;
  double dt = ceil(x->remaining / x->rate);
  return d->now + (ot_ps)dt;
}

ot_ps ot_dma_next_event(const ot_dma *d) {
  ot_ps best = UINT64_MAX;
  size_t nq = (size_t)d->cores * d->queues;
  for (size_t q = 0; q < nq; q++) {
    uint32_t h = d->head[q];
    if (h == NONE) continue;
    const ot_dma_xfer *x = &d->x[h];
    ot_ps t = x->active ? completion_time(d, x) : (x->ready > d->now ? x->ready : d->now);
    if (t < best) best = t;
  }
  return best;
}

uint32_t ot_dma_advance(ot_dma *d, ot_ps t, uint32_t *done, uint32_t cap) {
  size_t nq = (size_t)d->cores * d->queues;
  double dt = (double)(t - d->now);
  uint32_t nd = 0;
  /* Progress, then completions: a transfer whose completion time has come is done (the
  ** ceil() in completion_time may leave a sliver of a byte, which is not real work). */
  for (size_t q = 0; q < nq; q++) {
    uint32_t h = d->head[q];
    if (h == NONE || !d->x[h].active) continue;
    ot_dma_xfer *x = &d->x[h];
    ot_ps due = completion_time(d, x);
    x->remaining -= x->rate * dt;
    if (due <= t || x->remaining <= 1e-9) {
      x->remaining = 0;
      x->active = false;
      if (nd < cap) done[nd++] = h;
      d->head[q] = x->next;
      if (x->next == NONE) d->tail[q] = NONE;
      d->in_flight--;
    }
  }
  d->now = t;
  /* Starts: each queue's head may start once ready. */
  for (size_t q = 0; q < nq; q++) {
    uint32_t h = d->head[q];
    if (h == NONE || d->x[h].active || d->x[h].ready > t) continue;
    d->x[h].active = true;
    d->x[h].start = t;
  }
  recompute_rates(d);
  return nd;
}

bool ot_dma_idle(const ot_dma *d) { return d->in_flight == 0; }
