/* Matmul-type copies of fp32 weights (lower_wcopy.h).
**
** The GEMMs read fp32 weights and round them to the matmul type as they load them, every time;
** a GEMM whose A^T cannot stay on chip reads its B once per m-block (GPT-2 124M, 2 x 1024 rows
** per core: lm_head.bwd.da reads the fp32 wte [50257, 768] 6 times, 922 MB).  Such a weight is
** rounded once, at the start of the program, into a copy -- on several cores (compile_dp.c) a
** shared one, each core its share of the elements, then the cores wait for one another (remote
** semaphore, on the GpSimd: the same wait on the Sync engine, which issues the step's loads, made
** the whole 8-core step 3.6 ms slower, cause not found) -- and the matmuls read the copy: the
** same values, half the bytes.  Only for weights
** some GEMM reads at least WCOPY_MIN_PASSES times: copying every weight that matmuls read (each
** read once or twice) made the 8-core step slower, 54.14 -> 54.80 ms, though fewer bytes move
** (cause not found either); wte alone: 54.14 -> 53.36 ms. */
#include <stdio.h>
#include <stdlib.h>

#include "compiler/lower_collective.h"
#include "compiler/lower_wcopy.h"

#define WCOPY_MIN_PASSES 3u
#define WCOPY_CHUNK (1u << 20) /* elements per copying DMA */

/* The most times one matmul or linear reads weight t from HBM (0: none reads it). */
static uint32_t weight_passes(lower_ctx *c, ot_tid t) {
  uint32_t most = 0;
  for (uint32_t i = 0; i < c->g->n_node; i++) {
    const ot_gnode *n = &c->g->node[i];
    if ((n->op != OT_GOP_MATMUL && n->op != OT_GOP_LINEAR) || c->fused_away[i]) continue;
    bool as_b = c->hbm[n->in[1]].off == c->hbm[t].off, as_a = c->hbm[n->in[0]].off == c->hbm[t].off;
    uint32_t p = as_b && n->op == OT_GOP_MATMUL ? lower_matmul_b_passes(c, n) : as_a || as_b ? 1u : 0u;
    if (p > most) most = p;
  }
  return most;
}

ot_status lower_wcopy_place(lower_ctx *c, lower_wcopy *w) {
  const ot_graph *cg = c->g;
  ot_dtype mm = c->opt->matmul_dtype;
  for (uint32_t t = 0; t < cg->n_t && !kir_status(c->k); t++) {
    const ot_gtensor *x = &cg->t[t];
    w->copy[t].index = -1;
    if (x->role != OT_GROLE_WEIGHT || x->dtype != OT_DT_FP32 || ot_dtype_size(mm) != 2 || w->mode == OT_WCOPY_NONE) continue;
    uint32_t passes = weight_passes(c, (ot_tid)t);
    if (passes == 0 || (w->mode == OT_WCOPY_AUTO && passes < WCOPY_MIN_PASSES)) continue;
    char name[300];
    uint64_t shape[OT_GRAPH_MAX_DIMS];
    for (unsigned i = 0; i < x->ndim; i++) shape[i] = (uint64_t)x->shape[i];
    snprintf(name, sizeof name, "%s.%s", x->name, ot_dtype_name(mm));
    kir_tensor(c->k, name, mm, x->ndim, shape, OT_ROLE_SCRATCH, NULL, &w->copy[t]);
  }
  return kir_status(c->k);
}

ot_status lower_wcopy_emit(lower_ctx *c, const lower_wcopy *w) {
  const ot_graph *cg = c->g;
  c->mm_copy = w->copy;
  uint64_t total = 0;
  unsigned n = 0;
  for (uint32_t t = 0; t < cg->n_t; t++)
    if (w->copy[t].index >= 0) { total += (uint64_t)ot_gtensor_elems(&cg->t[t]); n++; }
  if (!n) return OT_OK;
  uint64_t lo = total / w->cores * w->core + total % w->cores * w->core / w->cores;
  uint64_t hi = total / w->cores * (w->core + 1) + total % w->cores * (w->core + 1) / w->cores, base = 0;
  ot_ap *aps = malloc(n * sizeof *aps);
  if (!aps) return kir_fail(c->k, OT_ENOMEM, "out of memory");
  unsigned na = 0;
  kir_set_origin(c->k, "weight_copies");
  for (uint32_t t = 0; t < cg->n_t && !kir_status(c->k); t++) {
    if (w->copy[t].index < 0) continue;
    uint64_t e = (uint64_t)ot_gtensor_elems(&cg->t[t]);
    aps[na++] = lc_flat_ap(&w->copy[t], e);
    for (uint64_t at = lo > base ? lo - base : 0; at < e && base + at < hi; at += WCOPY_CHUNK) {
      uint64_t end = at + WCOPY_CHUNK < e ? at + WCOPY_CHUNK : e;
      if (base + end > hi) end = hi - base;
      int64_t st[1] = {1};
      uint32_t sz[1] = {(uint32_t)(end - at)};
      kir_dma(c->k, kir_hbm_ap(&w->copy[t], at, 1, st, sz), kir_hbm_ap(&c->hbm[t], at, 1, st, sz), OT_ENG_COUNT);
    }
    base += e;
  }
  if (w->cores > 1 && !kir_status(c->k)) {
    uint32_t sem = w->sem;
    uint64_t all = w->cores >= 64 ? ~0ull : (1ull << w->cores) - 1;
    if (sem >= c->chip->seq.semaphores)
      kir_fail(c->k, OT_EUNSUPPORTED, "the weight copies need semaphore %u; chip %s has %u", sem, c->chip->name,
               c->chip->seq.semaphores);
    else if (!kir_remote_signal(c->k, OT_ENG_GPSIMD, all, sem))
      kir_remote_wait(c->k, OT_ENG_GPSIMD, sem, (int32_t)(w->cores - 1), aps, na);
  }
  free(aps);
  return kir_status(c->k);
}

