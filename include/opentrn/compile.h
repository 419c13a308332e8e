/* OpenTRN compiler: a graph (include/opentrn/graph.h) into a program for one NeuronCore.
**
**   ot_compile_options o; ot_compile_options_default(&o);
**   ot_program *p;
**   if (ot_compile(g, chip, &o, &p, &err)) fprintf(stderr, "%s", err.msg);
**   ot_program_save(p, "block.prog", &err);
**
** Every graph tensor becomes a named tensor of the program in device HBM (inputs, weights,
** constants and outputs keep their graph names; intermediates are scratch), so the runtime
** (include/opentrn/device.h) binds them by name.  Every instruction carries the name of the
** graph node it came from: listings, traces, statistics and run-time errors name the node. */
#ifndef OPENTRN_COMPILE_H
#define OPENTRN_COMPILE_H

#include <opentrn/chip.h>
#include <opentrn/graph.h>
#include <opentrn/num.h>
#include <opentrn/program.h>
#include <opentrn/status.h>

/* What the compiler produced (filled when options.stats is set). */
typedef struct {
  uint64_t insns[5];        /* per engine: sync, tensor, vector, scalar, gpsimd (data-path and DMA issue) */
  uint64_t dmas;            /* DMA transfers */
  uint64_t waits;           /* semaphore waits emitted */
  uint64_t waits_elided;    /* dependencies already implied by an earlier wait (no instruction) */
  uint64_t signals;         /* semaphore increments emitted */
  uint32_t sbuf_peak, psum_peak;  /* bytes per partition in use at the peak */
  uint32_t nodes_lowered, nodes_fused;
} ot_compile_stats;

/* Which fp32 weights get a copy in the matmul type (16-bit matmul types only) at the start of the
** program for the matmuls to read (docs/data-parallel.md, "Weight copies"). */
typedef enum {
  OT_WCOPY_AUTO = 0, /* those a GEMM re-reads from HBM at least 3 times (default) */
  OT_WCOPY_NONE,     /* none */
  OT_WCOPY_ALL       /* every weight a matmul reads */
} ot_weight_copies;

typedef struct {
  ot_dtype matmul_dtype;   /* TensorE operand type: OT_DT_BF16 (mixed precision, default) or OT_DT_FP32 */
  bool fuse;               /* fusion passes (bias + activation, transpose into matmul) */
  bool schedule;           /* list-schedule instructions across engines (else emission order) */
  ot_compile_stats *stats; /* if not NULL, filled on success */
  ot_weight_copies weight_copies;
} ot_compile_options;

void ot_compile_options_default(ot_compile_options *o);

ot_status ot_compile(const ot_graph *g, const ot_chip *chip, const ot_compile_options *opt, ot_program **out,
                     ot_error *err);

/* Data-parallel training step across `cores` NeuronCores of one chip (docs/data-parallel.md), in
** one program:
**   - every graph input is split along its first dimension: core c reads its own program tensor
**     "<input>@c<c>" holding rows [c*B/cores, (c+1)*B/cores) (B must divide among the cores);
**   - weights and constants are one program tensor each, read by every core;
**   - every other tensor of the forward and backward pass is per core ("<name>@c<c>");
**   - every gradient "<w>.grad" and every scalar fp32 output (the loss) is all-reduced to the MEAN
**     over the cores (summed in core order, then x 1/cores), so each core's loss and gradients
**     are those of the whole batch (the loss being a mean over the batch, as single-core);
**   - the adamw nodes are shared out among the cores (largest weight first, to the least loaded
**     core); each core that has some computes global_norm itself from its own "<w>.grad@c<c>"
**     (the output is "grad_norm" on core 0, "grad_norm@c<c>" elsewhere, all equal) and updates
**     its weights (and moments) in place.  An optimizer graph with other nodes depending on
**     them runs whole on core 0.
** The all-reduce runs through HBM and DMA with remote semaphores; its instructions are tagged
** "allreduce" (statistics by tag give its simulated time).  cores = 1 is a plain single-core
** compile with the per-core names.  opt->stats, if set, describes core 0's forward + backward. */
ot_status ot_compile_data_parallel(const ot_graph *g, const ot_chip *chip, unsigned cores,
                                   const ot_compile_options *opt, ot_program **out, ot_error *err);

#endif
