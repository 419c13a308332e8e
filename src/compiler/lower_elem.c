/* Element-wise, normalisation, softmax, reduction and data-movement lowerings: the dispatch
** and the helpers every lower_elem*.c file shares (docs/compiler-kernels.md has the engine plan
** of each op). */
#include "compiler/lower_elem_int.h"

lower_fn lower_for_elementwise(ot_gop op) {
  switch (op) {
  case OT_GOP_ADD:
  case OT_GOP_SUB:
  case OT_GOP_MUL: return lower_elem_binary;
  case OT_GOP_SCALE:
  case OT_GOP_GELU:
  case OT_GOP_SILU: return lower_elem_unary;
  case OT_GOP_SWIGLU: return lower_elem_swiglu;
  case OT_GOP_GELU_BWD:
  case OT_GOP_SILU_BWD: return lower_elem_act_bwd;
  case OT_GOP_SWIGLU_BWD: return lower_elem_swiglu_bwd;
  case OT_GOP_CAST: return lower_elem_cast;
  case OT_GOP_SOFTMAX: return lower_elem_softmax;
  case OT_GOP_SOFTMAX_BWD: return lower_elem_softmax_bwd;
  case OT_GOP_LAYERNORM: return lower_elem_layernorm;
  case OT_GOP_LAYERNORM_BWD: return lower_elem_layernorm_bwd;
  case OT_GOP_RMSNORM: return lower_elem_rmsnorm;
  case OT_GOP_RMSNORM_BWD: return lower_elem_rmsnorm_bwd;
  case OT_GOP_REDUCE_SUM:
  case OT_GOP_REDUCE_MAX:
  case OT_GOP_REDUCE_MEAN: return lower_elem_reduce;
  case OT_GOP_TRANSPOSE: return lower_elem_transpose;
  case OT_GOP_CONCAT: return lower_elem_concat;
  case OT_GOP_SPLIT: return lower_elem_split;
  case OT_GOP_SLICE: return lower_elem_slice;
  case OT_GOP_BROADCAST: return lower_elem_broadcast;
  default: return NULL;
  }
}

/* ---- helpers ----------------------------------------------------------------------------- */
uint32_t elem_parts(const lower_ctx *c) {
  uint32_t p = c->chip->sbuf.partitions;
  return p < c->chip->psum.partitions ? p : c->chip->psum.partitions;
}

const ot_gtensor *elem_in(const lower_ctx *c, const ot_gnode *n, unsigned k) { return &c->g->t[n->in[k]]; }
const ot_gtensor *elem_out(const lower_ctx *c, const ot_gnode *n, unsigned k) { return &c->g->t[n->out[k]]; }

uint64_t elem_last(const ot_gtensor *t) { return t->ndim ? (uint64_t)t->shape[t->ndim - 1] : 1; }

uint64_t elem_rows(const ot_gtensor *t) {
  uint64_t n = 1;
  for (unsigned d = 0; d + 1 < t->ndim; d++) n *= (uint64_t)t->shape[d];
  return n;
}

ot_ap elem_tile(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n) { return kir_ap2(b, np, eoff, n, OT_DT_FP32); }

ot_ap elem_tile_dt(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n, ot_dtype dt) {
  return kir_ap2(b, np, eoff, n, dt);
}

/* Input tiles keep a bf16 tensor's type: the engines read bf16 exactly as fp32 values, and the
** load moves half the bytes (the DMA cost counts the wider side of a converting copy). */
ot_dtype elem_load_dtype(const kir_hbm *t) { return t->dtype == OT_DT_BF16 ? OT_DT_BF16 : OT_DT_FP32; }

ot_ap elem_col(const kir_buf *b, uint32_t np, uint32_t col) { return kir_ap2(b, np, col, 1, OT_DT_FP32); }

ot_ap elem_hbm_rows(const kir_hbm *t, uint64_t eoff, uint32_t np, uint64_t stride, uint32_t n) {
  int64_t hs[2] = {(int64_t)stride, 1};
  uint32_t hz[2] = {np, n};
  return kir_hbm_ap(t, eoff, 2, hs, hz);
}

void elem_around(const ot_gtensor *t, unsigned axis, uint64_t *outer, uint64_t *len, uint64_t *inner) {
  *outer = *inner = 1;
  for (unsigned d = 0; d < axis; d++) *outer *= (uint64_t)t->shape[d];
  *len = (uint64_t)t->shape[axis];
  for (unsigned d = axis + 1; d < t->ndim; d++) *inner *= (uint64_t)t->shape[d];
}

uint32_t elem_sbuf_avail(const lower_ctx *c) {
  uint32_t free = kir_largest_free(c->k, OT_MEM_SBUF);
  return free < ELEM_SBUF_BUDGET ? free : ELEM_SBUF_BUDGET;
}

/* GpSimd runs tensor_tensor at 1.2 GHz (2N cycles, no MIN_II floor) and the VectorE at
** 0.96 GHz (2N): splitting element-wise work between them roughly doubles its rate and leaves
** the VectorE time for reductions. */
ot_engine elem_alt_engine(uint32_t tile) { return tile % 2 ? OT_ENG_GPSIMD : OT_ENG_VECTOR; }
