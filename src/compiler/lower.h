/* Lowering: one function per graph op writes its tiles through kir (kir.h).  Each graph tensor
** lives in HBM (c->hbm[t]); a lowering loads what it needs, computes on chip and stores its
** outputs, so ops compose in any order and kir orders them by their HBM accesses. */
#ifndef OT_COMPILER_LOWER_H
#define OT_COMPILER_LOWER_H

#include <opentrn/compile.h>

#include "compiler/graph.h"
#include "compiler/kir.h"

/* A fused epilogue applied while results leave PSUM. */
typedef struct {
  int act;                 /* ot_act_func (OT_ACT_COPY: none) */
  ot_tid bias;             /* [N] added before act, OT_TID_NONE if none */
  ot_tid residual;         /* [.., M, N] added after act, OT_TID_NONE if none */
} lower_epilogue;

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
} lower_ctx;

typedef ot_status (*lower_fn)(lower_ctx *c, const ot_gnode *n);

/* The lowering of op, NULL if the compiler cannot lower it yet. */
lower_fn lower_for(ot_gop op);
/* Element-wise, normalisation, softmax, reduction and data-movement ops (lower_elem*.c). */
lower_fn lower_for_elementwise(ot_gop op);
/* Attention, rotary embedding, embedding lookup and cross-entropy (lower_attn*.c). */
lower_fn lower_for_attention(ot_gop op);
/* global_norm and adamw (lower_optim.c). */
lower_fn lower_for_optim(ot_gop op);

ot_status lower_matmul(lower_ctx *c, const ot_gnode *n);
ot_status lower_linear(lower_ctx *c, const ot_gnode *n);

/* Shared helpers (lower_util.c). */
uint32_t lower_min_u32(uint32_t a, uint32_t b);
uint32_t lower_ceil_div(uint64_t a, uint64_t b);

#endif
