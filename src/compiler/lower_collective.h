/* Collectives across the NeuronCores of one chip, through HBM and DMA, synchronised with remote
** semaphores (sem_inc core=).  docs/data-parallel.md describes the algorithm and its order. */
#ifndef OT_COMPILER_LOWER_COLLECTIVE_H
#define OT_COMPILER_LOWER_COLLECTIVE_H

#include "compiler/kir.h"

/* The semaphores and call count of a collective protocol: two free semaphore ids (the same on
** every core, from kir_free_sem_base up) and how many all-reduces used them before (waits are
** cumulative counts). */
typedef struct {
  uint32_t sem_ready, sem_done;
  uint32_t epoch;              /* 0 for the first all-reduce on these semaphores */
} lc_sems;

/* All-reduce of fp32 tensors across cores into one root copy (k[c] writes core c's streams; all
** share one program): n_t tensors of elems[t] elements, core c's copy of tensor t at
** bufs[t * cores + c].  Afterwards core 0's copy (the root) holds scale * (sum over cores),
** summed in core order:
**     r = (((copy_0 + copy_1) + copy_2) + ... + copy_{cores-1}) * scale     (fp32, RNE each step)
** so the result is the same bits for every run; the other copies keep their core's own values.
** The cores share HBM, so a reader on any core reads the root copy: no all-gather.  A reduce-
** scatter over HBM: the tensors are concatenated and cut into `cores` contiguous slices; core c
** loads slice c of every copy, sums them on its VectorE, and writes the result into slice c of
** the root copy.  Each core first fences and signals sem_ready to the others (its copy is
** complete), waits for theirs, reduces its slice, then fences and signals sem_done, and waits for
** theirs before anything later on it touches the root copy.  Instructions are tagged with kir's
** current origin. */
/* A whole tensor of elems elements as one flat HBM pattern (what a remote wait covers). */
ot_ap lc_flat_ap(const kir_hbm *b, uint64_t elems);

/* Optionally, while its slice is in SBUF, each core also sums the squares of the reduced values
** of the tensors with in_norm[t] and writes that sum into partials[c] (fp32 [cores]): the
** partial sums of a global norm shared out by the all-reduce's slices (lower.h
** lower_norm_split.presummed), so that no second pass reads the gradients for it. */
typedef struct {
  kir_hbm partials;
  const bool *in_norm;         /* per tensor */
} lc_norm;

ot_status lower_allreduce(kir *const *k, unsigned cores, unsigned n_t, const kir_hbm *bufs, const uint64_t *elems,
                          float scale, const lc_sems *sems, const lc_norm *norm);

#endif
