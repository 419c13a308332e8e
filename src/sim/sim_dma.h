/* DMA transfers: each queue runs its transfers in order; the transfers in flight on a core share
** its DMA engines' bandwidth, and those touching HBM share the chip's HBM bandwidth. */
#ifndef OT_SIM_DMA_H
#define OT_SIM_DMA_H

#include "sim/sim_int.h"

typedef struct {
  /* what to do at completion */
  uint32_t core, queue, sem;
  uint32_t stream, pc;       /* the triggering instruction */
  ot_view dst, src;
  /* timing */
  ot_ps ready;               /* issue end + start latency: earliest start */
  ot_ps start;               /* when it began moving data */
  double remaining;          /* cost-bytes left (bytes plus small-chunk overhead) */
  double rate;               /* cost-bytes per picosecond now */
  uint64_t bytes;            /* bytes moved (stats) */
  bool hbm;                  /* touches HBM */
  bool active;
  uint32_t next;             /* next transfer in the same queue, or UINT32_MAX */
  uint32_t *race_clock;      /* race checker: the issuer's vector clock at the trigger (owned) */
} ot_dma_xfer;

typedef struct {
  ot_dma_xfer *x;
  uint32_t n, cap;
  uint32_t *head, *tail;     /* per (core, queue): first and last pending transfer, UINT32_MAX if none */
  uint32_t cores, queues;
  ot_ps now;                 /* time the rates were last applied */
  double core_bw, hbm_bw;    /* bytes per picosecond */
  uint32_t in_flight;
} ot_dma;

ot_status ot_dma_init(ot_dma *d, const ot_chip *chip, uint32_t cores, ot_error *err);
void ot_dma_free(ot_dma *d);
/* Cost-bytes of a transfer: each contiguous run below dma.small_transfer_bytes pays an overhead
** that grows to dma.min_efficient_bytes as the run shrinks to nothing (the small-transfer penalty). */
double ot_dma_cost_bytes(const ot_chip *chip, const ot_view *dst, const ot_view *src, uint64_t *bytes);
/* Queue a transfer (copied); returns its index or UINT32_MAX on out-of-memory. */
uint32_t ot_dma_push(ot_dma *d, const ot_dma_xfer *x);
/* Time of the next DMA event (a start or a completion), or UINT64_MAX if none pending. */
ot_ps ot_dma_next_event(const ot_dma *d);
/* Advance to time t (must be the next event time): applies progress, starts what can start.
** Completed transfers are appended to done[] (up to cap; returns how many). */
uint32_t ot_dma_advance(ot_dma *d, ot_ps t, uint32_t *done, uint32_t cap);
bool ot_dma_idle(const ot_dma *d);

#endif
