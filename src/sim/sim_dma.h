/* DMA transfers: each queue runs its transfers in order; the transfers in flight on a core share
** its DMA engines' bandwidth, and those touching HBM share the chip's HBM bandwidth. */
#ifndef OT_SIM_DMA_H
#define OT_SIM_DMA_H

#include "sim/sim_int.h"

typedef struct {
  /* what to do at completion */
  uint32_t core, queue, sem;
  uint32_t sem_core;         /* core whose semaphore the completion increments (dma_copy sem_core=) */
  uint32_t stream, pc;       /* the triggering instruction */
  ot_view dst, src;
  ot_view idx;               /* dma_gather / dma_scatter_add: the indices (mem OT_MEM_NONE otherwise) */
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
/* Indirect DMA (dma_gather, dma_scatter_add): rows of a 2-D HBM table [rows, cols] chosen by int32
** indices in SBUF.  op is the opcode; dst and src the instruction's operands (the table is src for a
** gather, dst for a scatter-add; the other one is the SBUF side [P, K*cols]); idx [P, K].
**   ot_dma_is_indirect       the opcode is one of them (operands q, dst, src, idx, sem)
**   ot_dma_indirect_shape    the shape rules with resolved views: false with a message in msg
**   ot_dma_indirect_cost     cost-bytes: every row is its own descriptor, so a row costs what a
**                            one-row DMA costs (run = the row, or less where a side is strided,
**                            small-transfer penalty below dma.small_transfer_bytes); rows = P*K;
**                            a scatter-add reads and writes every row (x2).  *bytes = rows x row
**                            bytes.  Independent of the index values (timing-only runs have none). */
bool ot_dma_is_indirect(unsigned op);
bool ot_dma_indirect_shape(unsigned op, const ot_view *dst, const ot_view *src, const ot_view *idx, char *msg,
                           size_t cap);
double ot_dma_indirect_cost(const ot_chip *chip, unsigned op, const ot_view *dst, const ot_view *src,
                            const ot_view *idx, uint64_t *bytes);

/* DMA data movement of any DMA instruction (sim_exec_dma.c): idx is the resolved index view of an
** indirect DMA (NULL for dma_copy / dma_transpose; an indirect DMA without one is an error). */
ot_status ot_exec_dma_views(ot_exec_ctx *x, const ot_insn *in, const ot_view *dst, const ot_view *src,
                            const ot_view *idx);

/* Queue a transfer (copied); returns its index or UINT32_MAX on out-of-memory. */
uint32_t ot_dma_push(ot_dma *d, const ot_dma_xfer *x);
/* Time of the next DMA event (a start or a completion), or UINT64_MAX if none pending. */
ot_ps ot_dma_next_event(const ot_dma *d);
/* Advance to time t (must be the next event time): applies progress, starts what can start.
** Completed transfers are appended to done[] (up to cap; returns how many). */
uint32_t ot_dma_advance(ot_dma *d, ot_ps t, uint32_t *done, uint32_t cap);
bool ot_dma_idle(const ot_dma *d);

#endif
