/* The simulator's internal interfaces, shared by its modules:
**
**   sim_mem.c    SBUF / PSUM / HBM storage, written-byte tracking, run-time views of APs
**   sim_exec.c   values: the semantics of every data-path instruction (and DMA data movement)
**   sim_cost.c   time: what each instruction costs, from the chip description (§5.1 formulas)
**   sim_core.c   the event loop: sequencers, semaphores, barriers, DMA queues, time
**   sim_dma.c    DMA transfers sharing queue, engine and HBM bandwidth
**   sim_race.c   the race checker (vector clocks over engines and DMA queues)
**   sim_stats.c  statistics; sim_trace.c  Perfetto / Chrome trace events
**
** Values and time are separate: sim_exec computes what an instruction does, sim_cost how long
** it takes; the core decides when.  Time is an integer number of picoseconds.
*/
#ifndef OT_SIM_INT_H
#define OT_SIM_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/chip_int.h"
#include "isa/program.h"

typedef uint64_t ot_ps; /* simulated time, picoseconds */

typedef enum { OT_SIM_FULL = 0, OT_SIM_TIMING = 1, OT_SIM_FUNCTIONAL = 2 } ot_sim_mode;
typedef enum { OT_TIMING_NEURON = 0, OT_TIMING_SCALESIM = 1 } ot_timing_model;

/* ---- memories ---------------------------------------------------------------------------- */
#define OT_HBM_PAGE_BITS 20 /* 1 MiB pages, allocated on first write; unwritten pages read 0 */

typedef struct {
  uint64_t bytes;
  uint8_t **pages;           /* bytes >> OT_HBM_PAGE_BITS entries, NULL until written */
  uint64_t n_pages;
  uint8_t *written;          /* per page, once ot_hbm_track_writes: written since (NULL: not tracked) */
} ot_hbm;

typedef struct {
  uint32_t partitions;
  uint64_t part_bytes;
  uint8_t *data;             /* partitions * part_bytes */
  uint8_t *written;          /* one bit per byte: set once any instruction or DMA wrote it */
  uint8_t *mm_written;       /* PSUM only: one bit per 4-byte element, set by matmul writes */
} ot_sram;

/* A run-time view of an access pattern: the register offset applied, bounds checked. */
typedef struct {
  ot_mem mem;
  ot_dtype dtype;
  uint32_t esize;            /* bytes per element */
  uint32_t part_start, parts;/* partitions (SBUF/PSUM); parts = 1 on HBM */
  uint64_t offset;           /* bytes: within each partition, or into HBM */
  uint32_t ndim;
  int64_t stride[OT_AP_MAX_DIMS]; /* bytes */
  uint32_t size[OT_AP_MAX_DIMS];
  uint64_t free_elems;       /* elements per partition */
} ot_view;

/* ---- one NeuronCore's state -------------------------------------------------------------- */
typedef struct ot_sim ot_sim;

typedef struct {
  ot_sram sbuf, psum;
  int64_t *sem;              /* chip->seq.semaphores counters */
  float *stationary;         /* TensorE's cached stationary tile, [rows][cols] fp32 */
  uint32_t stat_k, stat_m;   /* its shape: partitions (K) and free size (M); 0 = none loaded */
  uint8_t stat_dtype;        /* ot_dtype of the loaded stationary */
} ot_core_state;

/* ---- errors at run time ------------------------------------------------------------------ */
/* Where an instruction runs, for messages: "core 0 vector pc 12 (line 34) `tensor_copy ...`". */
typedef struct {
  const ot_program *prog;
  uint32_t core;
  ot_engine engine;
  uint32_t pc;
  const ot_insn *insn;
} ot_site;

/* Format a site into buf (always NUL-terminated). */
void ot_site_format(const ot_site *s, char *buf, size_t cap);

/* ---- sim_mem.c --------------------------------------------------------------------------- */
ot_status ot_sram_init(ot_sram *m, uint32_t partitions, uint64_t part_bytes, bool track_mm, ot_error *err);
void ot_sram_free(ot_sram *m);
ot_status ot_hbm_init(ot_hbm *h, uint64_t bytes, ot_error *err);
void ot_hbm_free(ot_hbm *h);
/* From now on, note which pages are written (a run after the host's uploads). */
ot_status ot_hbm_track_writes(ot_hbm *h);
/* Whether bytes [off, off + n) may have been written since ot_hbm_track_writes (per page; true
** when not tracking). */
bool ot_hbm_written(const ot_hbm *h, uint64_t off, uint64_t n);
/* Copy bytes in and out of HBM (pages allocated on write).  The range must be in bounds. */
ot_status ot_hbm_write(ot_hbm *h, uint64_t off, const void *src, uint64_t n);
void ot_hbm_read(const ot_hbm *h, uint64_t off, void *dst, uint64_t n);

/* Resolve ap with the issuing sequencer's registers into a view; checks that every byte is inside
** the memory (SBUF/PSUM partitions and bytes, HBM capacity).  On failure reports at site. */
ot_status ot_view_resolve(ot_view *v, const ot_ap *ap, const int32_t *regs, const ot_chip *chip,
                          const ot_site *site, ot_error *err);

/* Element access through a view.  Elements are numbered in iteration order: partition outermost,
** then the free dimensions outermost first; index i in [0, parts * free_elems). */
typedef struct {
  ot_core_state *core;       /* SBUF / PSUM of the core */
  ot_hbm *hbm;
} ot_mem_ctx;

/* Gather all elements of a view as fp32 (integers converted exactly where representable). */
void ot_view_load_f32(const ot_mem_ctx *m, const ot_view *v, float *out);
/* Scatter fp32 values into a view, rounding to its type (cvt: RNE or stochastic). */
void ot_view_store_f32(const ot_mem_ctx *m, const ot_view *v, const float *in, const ot_cvt *cvt);
/* Raw element bits (zero-extended into uint32), for bit-exact copies and bit-vector ALU ops. */
void ot_view_load_bits(const ot_mem_ctx *m, const ot_view *v, uint32_t *out);
void ot_view_store_bits(const ot_mem_ctx *m, const ot_view *v, const uint32_t *in);
/* True if every byte the view covers has been written (SBUF/PSUM; HBM is always true).  On false,
** *first_bad is the element index of the first unwritten element. */
bool ot_view_is_written(const ot_mem_ctx *m, const ot_view *v, uint64_t *first_bad);
/* PSUM: true if every element the view covers was last written by a matmul. */
bool ot_view_is_mm_written(const ot_mem_ctx *m, const ot_view *v, uint64_t *first_bad);
/* Mark the bytes of a view as written (and, for PSUM, whether by a matmul). */
void ot_view_mark_written(const ot_mem_ctx *m, const ot_view *v, bool by_matmul);

/* ---- sim_exec.c: values ------------------------------------------------------------------ */
/* Everything an instruction's semantics may touch. */
typedef struct {
  const ot_chip *chip;
  ot_mem_ctx mem;
  const int32_t *regs;       /* the issuing sequencer's registers (for AP offsets) */
  ot_cvt cvt;                /* rounding for stores (RNE or stochastic with the run's rng) */
  const ot_site *site;
  ot_error *err;
  bool check_uninit;         /* reading never-written SBUF/PSUM is an error (else a warning) */
  unsigned *warnings;        /* count of warnings issued (reported through err when an error) */
  bool trap_nonfinite;       /* NaN/Inf written by an instruction is an error */
} ot_exec_ctx;

/* Execute the values of one data-path instruction (TensorE, VectorE, ScalarE, GpSimdE ops).
** Returns OT_ERUNTIME with a message naming the site on any run-time error. */
ot_status ot_exec_insn(ot_exec_ctx *x, const ot_insn *in);

/* DMA data movement of a dma_copy / dma_transpose (dst and src already resolved). */
ot_status ot_exec_dma(ot_exec_ctx *x, const ot_insn *in, const ot_view *dst, const ot_view *src);

/* ---- sim_cost.c: time -------------------------------------------------------------------- */
typedef struct {
  uint64_t cycles;           /* engine cycles the instruction occupies its engine */
  uint64_t flops;            /* TensorE: 2*K*M*N for matmul (model FLOPs); transposes: 2*P*F*P */
  bool is_transpose_flops;   /* the FLOPs are transpose FLOPs (counted in HFU, not MFU) */
} ot_cost;

/* Cost of a data-path instruction with resolved operand views (views[k] for AP operands, others
** zeroed).  prev_dependent: the previous instruction on this engine wrote what this one reads. */
ot_cost ot_cost_insn(const ot_chip *chip, ot_engine eng, const ot_insn *in, const ot_view *views,
                     const ot_core_state *core, ot_timing_model model);

/* Engine cycles -> picoseconds at the engine's clock. */
ot_ps ot_cycles_to_ps(const ot_chip *chip, ot_engine eng, uint64_t cycles);

#endif
