/* The simulator as the runtime sees it: a chip running one program.  Internals: sim_int.h. */
#ifndef OT_SIM_H
#define OT_SIM_H

#include <stdio.h>

#include "sim/sim_int.h"

typedef struct {
  ot_sim_mode mode;          /* full (values + time), timing-only, functional-only */
  ot_timing_model timing;    /* Neuron cost formulas, or SCALE-Sim's non-overlapped array */
  bool stochastic_rounding;  /* stores round stochastically (seeded) instead of RNE */
  uint64_t seed;
  bool uninit_is_error;      /* reading never-written SBUF/PSUM: error (true) or warning */
  bool trap_nonfinite;       /* an instruction writing NaN/Inf is an error */
  bool race_check;           /* report unsynchronised conflicting accesses */
  bool trace;                /* record trace events */
  uint64_t insn_budget;      /* executed-instruction limit (runaway loops); 0 = 100 million */
} ot_sim_options;

void ot_sim_options_default(ot_sim_options *o);

/* ---- statistics -------------------------------------------------------------------------- */
/* X(id, name) -- why an engine was idle. */
#define OT_IDLE_MAP(X)                 \
  X(SEMAPHORE, "semaphore wait")       \
  X(BARRIER,   "barrier")              \
  X(PORT,      "port conflict")        \
  X(DONE,      "finished before the end")

typedef enum {
#define OT_X(id, name) OT_IDLE_##id,
  OT_IDLE_MAP(OT_X)
#undef OT_X
  OT_IDLE_COUNT
} ot_idle_reason;

const char *ot_idle_reason_name(ot_idle_reason r);

typedef struct {
  ot_ps busy;                        /* time executing instructions */
  ot_ps idle[OT_IDLE_COUNT];         /* idle time by reason (sums with busy to total) */
  ot_ps *idle_sem;                   /* idle waiting on each semaphore (chip semaphores) */
  uint64_t insns;                    /* instructions executed */
  uint64_t insn_by_op[OT_OP_COUNT];
  uint64_t busy_cycles;              /* at the engine's clock */
} ot_engine_stats;

typedef struct {
  uint64_t transfers, bytes;
  ot_ps busy;                        /* time with a transfer in flight */
} ot_queue_stats;

typedef struct {
  uint64_t read, written;            /* bytes */
} ot_mem_traffic;

typedef struct {
  ot_ps total;                       /* simulated time from start to the last event */
  uint32_t cores, queues, semaphores;
  ot_engine_stats *eng;              /* [core * OT_ENG_COUNT + engine] */
  uint32_t *sem_signallers;          /* [core * semaphores + s]: who incremented it, bit e = engine e,
                                     ** bit OT_SIGNAL_DMA = a DMA completion, bit OT_SIGNAL_REMOTE =
                                     ** another core (sem_inc core=, dma_copy sem_core=) */
  uint64_t *sem_remote_from;         /* [core * semaphores + s]: bit c = core c sent it a remote increment */
  uint64_t remote_signals;           /* remote semaphore increments delivered (all cores) */
  ot_queue_stats *queue;             /* [core * queues + q] */
  ot_mem_traffic mem[OT_MEM_COUNT];  /* indexed by ot_mem */
  uint64_t model_flops;              /* matmul FLOPs (2*K*M*N) */
  uint64_t transpose_flops;          /* TensorE transposes, counted by HFU only */
  double hfu, mfu, mbu;              /* fractions (0..1), as the Neuron profiler defines them */
  double tensor_util;                /* TensorE busy time / total, averaged over cores */
  uint64_t warnings;
  /* By provenance tag (the graph node a compiled instruction came from; docs/compiler.md). */
  uint32_t n_tags;
  uint32_t *tag_off;                 /* [n_tags] string-pool offsets, ascending */
  const char *strings;               /* the program's string pool (tag names) */
  ot_ps *tag_busy;                   /* [n_tags * OT_ENG_COUNT] engine busy time */
  ot_ps *tag_dma;                    /* [n_tags] DMA transfer time (start to completion) */
  uint64_t *tag_insns;               /* [n_tags] instructions executed */
  ot_ps *tag_first, *tag_last;       /* [n_tags] first start and last end of its work (span) */
} ot_sim_stats;

/* Per-tag statistics: set up from the program's instruction tags, add, free. */
ot_status ot_sim_stats_tags_init(ot_sim_stats *st, const ot_program *p, ot_error *err);
/* engine < OT_ENG_COUNT: busy time of that engine (and one instruction); OT_ENG_COUNT: DMA time. */
void ot_sim_stats_tag_add(ot_sim_stats *st, uint32_t tag, unsigned engine, ot_ps start, ot_ps end);
void ot_sim_stats_tags_free(ot_sim_stats *st);

#define OT_SIGNAL_DMA 31
#define OT_SIGNAL_REMOTE 30

/* "DMA", "tensor", "sync+DMA", "sync+core1+core3", ... for the signallers of semaphore sem of core
** (buf returned); remote increments name the sending core. */
const char *ot_sim_stats_signallers(const ot_sim_stats *s, uint32_t core, uint32_t sem, char *buf, size_t cap);

/* Print statistics as a table or as JSON. */
void ot_sim_stats_print(const ot_sim_stats *s, const ot_chip *chip, FILE *out);
ot_status ot_sim_stats_json(const ot_sim_stats *s, const ot_chip *chip, FILE *out, ot_error *err);

/* ---- trace ------------------------------------------------------------------------------- */
typedef enum { OT_TRACK_ENGINE, OT_TRACK_QUEUE } ot_track_kind;
typedef enum { OT_EV_INSN, OT_EV_WAIT, OT_EV_DMA } ot_event_kind;

typedef struct {
  ot_ps start, dur;
  uint32_t core;
  uint8_t track_kind;                /* ot_track_kind */
  uint8_t kind;                      /* ot_event_kind */
  uint16_t track;                    /* engine (ot_engine) or DMA queue index */
  uint32_t name;                     /* offset in the trace's string pool (disassembly text) */
  uint32_t tag;                      /* offset of the provenance tag, 0 if none */
} ot_trace_event;

typedef struct {
  ot_trace_event *ev;
  size_t n, cap;
  char *strings;                     /* NUL-separated; offset 0 is "" */
  size_t strings_len, strings_cap;
  void *index;                       /* sim_trace.c's intern table (equal strings share one offset) */
} ot_trace;

/* Append an event / intern a string (returns 0 on out-of-memory, which drops the event). */
bool ot_trace_add(ot_trace *t, const ot_trace_event *e);
uint32_t ot_trace_string(ot_trace *t, const char *s);
void ot_trace_free(ot_trace *t);
/* Chrome / Perfetto trace-event JSON: one process per core, one thread per engine and per DMA
** queue, one complete ("X") event per instruction named by its disassembly; waits visible. */
ot_status ot_trace_write_json(const ot_trace *t, const ot_chip *chip, FILE *out, ot_error *err);

/* ---- the race checker (sim_race.c) ------------------------------------------------------- */
/* Threads: per core, the OT_ENG_COUNT engines, then one per DMA queue. */
typedef struct ot_race ot_race;
ot_status ot_race_new(const ot_chip *chip, uint32_t cores, ot_race **out, ot_error *err);
void ot_race_free(ot_race *r);
uint32_t ot_race_engine_thread(const ot_race *r, uint32_t core, ot_engine e);
uint32_t ot_race_queue_thread(const ot_race *r, uint32_t core, uint32_t q);
/* An access by thread tid through view v; site names the instruction (or the DMA's trigger).
** Reports a race (into err, as a warning-class message) when the access conflicts with an
** earlier access by another thread that does not happen-before it.  Returns races found. */
unsigned ot_race_access(ot_race *r, uint32_t tid, const ot_mem_ctx *m, const ot_view *v, bool write,
                        const ot_site *site, ot_error *err);
/* Synchronisation: a semaphore increment by tid; a wait on sem that tid passed; a DMA transfer
** issued by tid on queue thread qtid (the transfer happens after the issuer's earlier work). */
void ot_race_sem_inc(ot_race *r, uint32_t tid, uint32_t core, uint32_t sem);
void ot_race_sem_acquire(ot_race *r, uint32_t tid, uint32_t core, uint32_t sem);
void ot_race_dma_issue(ot_race *r, uint32_t issuer_tid, uint32_t qtid);
/* (ot_race_dma_issue joins at once.  The event loop instead keeps each transfer's issue clock with
** ot_race_clock_snapshot and joins it when the transfer runs, ot_race_clock_acquire in sim_race.h:
** a later trigger on the same queue must not lend an earlier transfer its ordering.) */
/* Barrier: every listed thread's clock becomes the join of all of them. */
void ot_race_barrier(ot_race *r, const uint32_t *tids, uint32_t n);

/* ---- the simulator ----------------------------------------------------------------------- */
/* The chip and program must outlive the simulator. */
ot_status ot_sim_new(const ot_chip *chip, const ot_program *prog, const ot_sim_options *opt, ot_sim **out,
                     ot_error *err);
void ot_sim_free(ot_sim *s);
ot_status ot_sim_hbm_write(ot_sim *s, uint64_t off, const void *src, uint64_t n, ot_error *err);
ot_status ot_sim_hbm_read(const ot_sim *s, uint64_t off, void *dst, uint64_t n, ot_error *err);
/* Whether a run may have written bytes [off, off + n) of HBM (per 1 MiB page; the host's own
** ot_sim_hbm_write calls before ot_sim_run do not count). */
bool ot_sim_hbm_written(const ot_sim *s, uint64_t off, uint64_t n);
/* Run the program to completion (every engine halted or at the end of its stream, every DMA
** done).  Deadlocks, runaway loops and run-time errors end the run with a message. */
ot_status ot_sim_run(ot_sim *s, ot_error *err);
const ot_sim_stats *ot_sim_get_stats(const ot_sim *s);
const ot_trace *ot_sim_get_trace(const ot_sim *s);

#endif
