/* Matmul-type copies of fp32 weights, made at the start of a program for the matmuls to read
** (docs/data-parallel.md, "Weight copies"; lower_wcopy.c). */
#ifndef OT_COMPILER_LOWER_WCOPY_H
#define OT_COMPILER_LOWER_WCOPY_H

#include "compiler/lower.h"

typedef struct {
  ot_weight_copies mode;   /* which weights (ot_compile_options.weight_copies) */
  unsigned cores, core;    /* the cores sharing the copying out, and this one */
  uint32_t sem;            /* the barrier's remote semaphore (cores > 1) */
  kir_hbm *copy;           /* per graph tensor: its copy (index >= 0), filled by lower_wcopy_place */
} lower_wcopy;

/* Choose the weights and place their copies (once, on the first core). */
ot_status lower_wcopy_place(lower_ctx *c, lower_wcopy *w);
/* This core's share of the rounding, then (cores > 1) signal the others and wait for their
** shares; sets c->mm_copy so that matmuls read the copies. */
ot_status lower_wcopy_emit(lower_ctx *c, const lower_wcopy *w);

#endif
