/* Lowering: one function per graph op writes its tiles through kir (kir.h).  Each graph tensor
** lives in HBM (c->hbm[t]); a lowering loads what it needs, computes on chip and stores its
** outputs, so ops compose in any order and kir orders them by their HBM accesses. */
#ifndef OT_COMPILER_LOWER_H
#define OT_COMPILER_LOWER_H

#include <opentrn/compile.h>

#include "compiler/graph.h"
#include "compiler/kir.h"

/* Per node: an epilogue fused in (applied while results leave PSUM), and what one lowering leaves
** for another. */
typedef struct {
  int act;                 /* ot_act_func (OT_ACT_COPY: none) */
  ot_tid bias;             /* [N] added before act, OT_TID_NONE if none */
  ot_tid residual;         /* [.., M, N] added after act, OT_TID_NONE if none */
  ot_tid act_out;          /* also act2(y) into this tensor (y read elsewhere too), OT_TID_NONE if none */
  int act2;
  int32_t dact;            /* y * act'(x) instead of y: the gelu_bwd / silu_bwd node folded in (-1: none) */
  bool y_t;                /* linear: y stored transposed, [N, M] (its one consumer, a linear, reads it K-major) */
  bool accumulate;         /* embedding_bwd: scatter-add into the output as it stands (an add fused in) */
  kir_hbm saved;           /* statistics a forward leaves for its backward (cross_entropy: -max, sum-exp
                           ** per row); index < 0: none */
  bool ce_stats;           /* matmul: its result is the logits of a cross_entropy; the epilogue also
                           ** leaves each row's -max and sum-exp per PSUM bank of columns ... */
  kir_hbm ce_part;         /* ... here, [M, 2 x ce_chunks] fp32 (the -max of every chunk, then the
                           ** sum-exps), once lowered; index < 0: none (the cross_entropy reads the logits) */
  uint32_t ce_chunks;
} lower_epilogue;

/* A global norm shared out among data-parallel cores (compile_dp.c): this core sums the squares
** of elements [lo, hi) of the norm's inputs laid end to end, writes that partial sum into entry
** `rank` of `partials`, signals the other taking part on semaphore sem and waits for their
** increments, then adds the n partial sums in rank order and takes the square root: the same
** bits on every core. */
typedef struct {
  uint64_t mask;           /* the cores taking part, this one included (ranks in core order) */
  unsigned rank, n;
  uint64_t lo, hi;
  kir_hbm partials;        /* [n] fp32, shared by the cores */
  uint32_t sem;
  bool presummed;          /* entry `rank` already holds this core's sum (the all-reduce summed the
                           ** squares of its slice, lower_collective.h lc_norm): exchange only */
} lower_norm_split;

typedef struct {
  kir *k;
  const ot_graph *g;
  const ot_chip *chip;
  const ot_compile_options *opt;
  kir_hbm *hbm;            /* per graph tensor */
  bool *fused_away;        /* per node: folded into another node's lowering */
  lower_epilogue *epi;     /* per node: epilogue folded into this node */
  bool *a_transposed;      /* per matmul node: input a is the (fused) transpose's input, [.., K, M] */
  ot_tid *hbm_alias;       /* per tensor: shares the HBM bytes of another tensor, or OT_TID_NONE */
  uint32_t *col_block;     /* per tensor: kept in column blocks of this width (compile.c column_block), or 0 */
  /* Placement hooks (lower_graph_into; NULL/empty for ot_compile): */
  const char *name_suffix; /* appended to the program names of input and value tensors ("@c3") */
  const kir_hbm *preplaced;/* per tensor: index >= 0 = already in the program (shared), not placed again */
  const uint64_t *elem_range; /* per node i: elements [2i] .. [2i+1] of an adamw (hi 0: all), or NULL */
  const lower_norm_split *norm_split; /* the global_norm's share on this core, or NULL: all of it */
  const kir_hbm *mm_copy;  /* per tensor: a matmul-type copy of weight t (index >= 0) that matmuls read
                           ** instead of t's bytes (compile_dp.c), or NULL */
} lower_ctx;

typedef ot_status (*lower_fn)(lower_ctx *c, const ot_gnode *n);

/* The lowering of op, NULL if the compiler cannot lower it yet. */
lower_fn lower_for(ot_gop op);
/* Element-wise, normalisation, softmax, reduction and data-movement ops (lower_elem*.c). */
lower_fn lower_for_elementwise(ot_gop op);
/* Attention, rotary embedding, embedding lookup and cross-entropy (lower_attn*.c). */
lower_fn lower_for_attention(ot_gop op);
/* Attention whose keys and values are longer than its queries (a KV cache; lower_attn_kv.c). */
ot_status lower_attention_kv(lower_ctx *c, const ot_gnode *n);
/* kv_write: new rows into a KV cache, in place (lower_kv.c). */
ot_status lower_kv_write(lower_ctx *c, const ot_gnode *n);
/* global_norm and adamw (lower_optim.c). */
lower_fn lower_for_optim(ot_gop op);

ot_status lower_matmul(lower_ctx *c, const ot_gnode *n);
/* How many times matmul n's lowering would read its operand b from HBM (1: once; a GEMM whose
** A^T cannot stay on chip re-reads B for every m-block). */
uint32_t lower_matmul_b_passes(lower_ctx *c, const ot_gnode *n);
ot_status lower_linear(lower_ctx *c, const ot_gnode *n);
/* A linear whose result (through a fused gelu/silu) feeds only another linear, with at least 128
** rows and 128 columns: it computes and stores y^T (the weight as the stationary operand, the
** bias applied per partition with the activation) and the next linear loads it K-major, without
** PE transposes.  Run after the activation and residual fusions. */
void lower_fuse_linear_chain(lower_ctx *c, const uint32_t *uses);
/* Whether graph tensor t (an HBM alias root) is stored transposed by lower_fuse_linear_chain. */
bool lower_stores_transposed(const lower_ctx *c, ot_tid t);
/* Columns per chunk of a cross_entropy (and its backward) over V classes on chip (lower_attn_ce.c). */
uint32_t lower_ce_chunk_cols(const ot_chip *chip, uint32_t V);

/* compile.c's pipeline on a caller's kir (ot_compile uses it with po = NULL; compile_dp.c once
** per core): fuse, check every node has a lowering, place the graph's tensors in HBM, lower every
** node.  po->name_suffix is appended to the names of input and value tensors (weights and
** constants keep their names); a tensor whose po->preplaced[t].index >= 0 uses that HBM tensor
** instead of a new one.  hbm_out (per graph tensor, may be NULL) receives the placement. */
typedef struct {
  const char *name_suffix;
  const kir_hbm *preplaced;
  const uint64_t *elem_range; /* per node i: an adamw updates elements [2i] .. [2i+1] only (hi 0: all) */
  const lower_norm_split *norm_split; /* a global_norm computes this share and exchanges it */
  /* called once the tensors are placed, before any node is lowered (may set c->mm_copy) */
  ot_status (*after_place)(lower_ctx *c, void *arg);
  void *arg;
} lower_place_opts;
ot_status lower_graph_into(kir *k, const ot_graph *g, const ot_chip *chip, const ot_compile_options *opt,
                           const lower_place_opts *po, kir_hbm *hbm_out, ot_compile_stats *stats, ot_error *err);

/* Shared helpers (lower_util.c). */
uint32_t lower_min_u32(uint32_t a, uint32_t b);
uint32_t lower_ceil_div(uint64_t a, uint64_t b);

#endif
