/* The compiler driver: check, fuse, place tensors in HBM, lower every node, finish streams. */
#include <stdlib.h>
#include <string.h>

#include "compiler/lower.h"
#include "compiler/lower_wcopy.h"

void ot_compile_options_default(ot_compile_options *o) {
  memset(o, 0, sizeof *o);
  o->matmul_dtype = OT_DT_BF16;
  o->fuse = true;
  o->schedule = true;
}

/* ---- the lowering table ------------------------------------------------------------------------ */
/* Usually an alias (the output shares the input's bytes, see place_tensors); a reshape whose
** output is a graph output has its own named tensor and is one HBM-to-HBM DMA. */
static ot_status lower_reshape(lower_ctx *c, const ot_gnode *n) {
  const kir_hbm *x = &c->hbm[n->in[0]], *y = &c->hbm[n->out[0]];
  if (x->off == y->off) return OT_OK;
  uint64_t ne = (uint64_t)ot_gtensor_elems(&c->g->t[n->in[0]]);
  for (uint64_t at = 0; at < ne; at += 1u << 30) { /* AP sizes are 32-bit */
    int64_t st[1] = {1};
    uint32_t sz[1] = {(uint32_t)(ne - at < (1u << 30) ? ne - at : (1u << 30))};
    kir_dma(c->k, kir_hbm_ap(y, at, 1, st, sz), kir_hbm_ap(x, at, 1, st, sz), OT_ENG_COUNT);
  }
  return kir_status(c->k);
}

lower_fn lower_for(ot_gop op) {
  switch (op) {
  case OT_GOP_MATMUL: return lower_matmul;
  case OT_GOP_LINEAR: return lower_linear;
  case OT_GOP_RESHAPE: return lower_reshape;
  case OT_GOP_KV_WRITE: return lower_kv_write;
  default: {
    lower_fn f = lower_for_elementwise(op);
    if (!f) f = lower_for_attention(op);
    return f ? f : lower_for_optim(op);
  }
  }
}

/* ---- fusion ------------------------------------------------------------------------------------ */
static uint32_t *count_uses(const ot_graph *g) {
  uint32_t *uses = calloc(g->n_t ? g->n_t : 1, sizeof *uses);
  if (!uses) return NULL;
  for (uint32_t i = 0; i < g->n_node; i++)
    for (uint32_t j = 0; j < g->node[i].n_in; j++)
      if (g->node[i].in[j] != OT_TID_NONE) uses[g->node[i].in[j]]++;
  return uses;
}

static bool is_last_two_swap(const ot_gnode *n, const ot_gtensor *x) {
  if (n->op != OT_GOP_TRANSPOSE || x->ndim < 2 || n->n_list != x->ndim) return false;
  for (unsigned d = 0; d + 2 < x->ndim; d++)
    if (n->list[d] != (int64_t)d) return false;
  return n->list[x->ndim - 2] == x->ndim - 1 && n->list[x->ndim - 1] == x->ndim - 2;
}

static bool same_shape(const ot_gtensor *a, const ot_gtensor *b) {
  if (a->ndim != b->ndim) return false;
  for (unsigned d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

/* The matmul/linear node whose result t is, looking through an activation fused into it. */
static int32_t gemm_producer(const lower_ctx *c, ot_tid t) {
  const ot_graph *g = c->g;
  int32_t p = g->t[t].producer;
  if (p < 0) return -1;
  if (c->fused_away[p] && (g->node[p].op == OT_GOP_GELU || g->node[p].op == OT_GOP_SILU)) p = g->t[g->node[p].in[0]].producer;
  if (p < 0 || c->fused_away[p] || (g->node[p].op != OT_GOP_MATMUL && g->node[p].op != OT_GOP_LINEAR)) return -1;
  return p;
}

/* A residual add of a matmul/linear result (no other use) and a tensor of the same shape that
** exists before the matmul runs: the add happens in the matmul's epilogue, before the single
** rounding to the output type (one HBM round trip less; fp32 results are identical, bf16 ones
** skip the intermediate rounding of the matmul result). */
static void fuse_residual(lower_ctx *c, const uint32_t *uses, uint32_t i) {
  const ot_graph *g = c->g;
  const ot_gnode *n = &g->node[i];
  if (n->op != OT_GOP_ADD || c->fused_away[i]) return;
  const ot_gtensor *y = &g->t[n->out[0]];
  for (int side = 0; side < 2; side++) {
    ot_tid x = n->in[side], r = n->in[1 - side];
    int32_t p = gemm_producer(c, x);
    if (p < 0 || uses[x] != 1 || g->t[x].is_output || c->epi[p].residual != OT_TID_NONE) continue;
    if (!same_shape(&g->t[x], y) || !same_shape(&g->t[r], y) || g->t[x].dtype != y->dtype) continue;
    if (g->t[r].producer >= p) continue; /* r must be ready when the matmul runs */
    if (g->node[p].op == OT_GOP_MATMUL && g->t[g->node[p].in[1]].ndim > 2) continue; /* batched b */
    c->epi[p].residual = r;
    c->fused_away[i] = true;
    /* the matmul (and any activation folded into it) writes the add's output */
    for (ot_tid t = x;; t = g->node[g->t[t].producer].in[0]) {
      c->hbm_alias[t] = n->out[0];
      if (g->t[t].producer == p) break;
    }
    return;
  }
}

/* An add of an embedding table's gradient (embedding_bwd: zeros plus scatter-added rows, its only
** use) and another gradient of the same table computed earlier (GPT-2's tied wte: the lm_head's
** dW): the embedding_bwd scatter-adds its rows straight into that gradient, which becomes the
** add's output; no zeroed table, no add over the whole table (docs/compiler-attention.md).  Rows
** repeated in the batch are added one after another onto the other gradient, (a + d1) + d2, where
** the reference computes a + (d1 + d2): fp32 rounding order only. */
static void fuse_scatter_accumulate(lower_ctx *c, const uint32_t *uses, uint32_t i) {
  const ot_graph *g = c->g;
  const ot_gnode *n = &g->node[i];
  if (n->op != OT_GOP_ADD || c->fused_away[i] || !kir_has_indirect_dma()) return;
  const ot_gtensor *y = &g->t[n->out[0]];
  for (int side = 0; side < 2; side++) {
    ot_tid d = n->in[side], a = n->in[1 - side];
    int32_t q = g->t[d].producer, pa = g->t[a].producer;
    if (q < 0 || g->node[q].op != OT_GOP_EMBEDDING_BWD || c->fused_away[q]) continue;
    if (pa < 0 || pa >= q || c->fused_away[pa] || g->node[pa].op == OT_GOP_RESHAPE) continue; /* a complete first */
    if (uses[d] != 1 || uses[a] != 1 || g->t[d].is_output || g->t[a].is_output) continue;
    if (c->hbm_alias[d] != OT_TID_NONE || c->hbm_alias[a] != OT_TID_NONE || c->hbm_alias[n->out[0]] != OT_TID_NONE) continue;
    if (!same_shape(&g->t[a], y) || !same_shape(&g->t[d], y) || y->dtype != OT_DT_FP32 || g->t[a].dtype != OT_DT_FP32) continue;
    c->epi[q].accumulate = true;
    c->fused_away[i] = true;
    c->hbm_alias[a] = n->out[0];
    c->hbm_alias[d] = n->out[0];
    return;
  }
}

/* ---- attention head split and merge ---------------------------------------------------------- */
/* A transpose swapping axes 1 and 2 of a 4-D tensor: [B, S, H, D] <-> [B, H, S, D]. */
static bool is_head_swap(const ot_gnode *n, const ot_gtensor *x) {
  if (n->op != OT_GOP_TRANSPOSE || x->ndim != 4 || n->n_list != 4) return false;
  return n->list[0] == 0 && n->list[1] == 2 && n->list[2] == 1 && n->list[3] == 3;
}

/* A reshape of row-major [.., H*D] rows into [B, S, H, D] (the same bytes, heads split). */
static bool is_head_split(const ot_graph *g, const ot_gnode *r) {
  if (r->op != OT_GOP_RESHAPE) return false;
  const ot_gtensor *x = &g->t[r->in[0]], *y = &g->t[r->out[0]];
  return y->ndim == 4 && x->ndim >= 1 && x->shape[x->ndim - 1] == y->shape[2] * y->shape[3];
}

/* Uses of t other than by the attention_bwd that differentiates attention node fwd (it reads
** the same views as the forward: lower_attn_bwd.c). */
static uint32_t uses_but_backward(const lower_ctx *c, const uint32_t *uses, ot_tid t, int32_t fwd) {
  const ot_graph *g = c->g;
  uint32_t u = uses[t];
  for (uint32_t i = 0; i < g->n_node && u > 1 && fwd >= 0; i++) {
    const ot_gnode *b = &g->node[i];
    if (b->op != OT_GOP_ATTENTION_BWD || b->forward != fwd) continue;
    for (uint32_t j = 0; j < b->n_in; j++)
      if (b->in[j] == t) u--;
  }
  return u;
}

/* A reshape of [B,S,H,D] into rows of H*D elements (the heads merged, the inverse of a split). */
static bool is_head_merge(const ot_graph *g, const ot_gnode *r) {
  if (r->op != OT_GOP_RESHAPE) return false;
  const ot_gtensor *x = &g->t[r->in[0]], *y = &g->t[r->out[0]];
  return x->ndim == 4 && y->ndim >= 1 && y->shape[y->ndim - 1] == x->shape[2] * x->shape[3];
}

/* Attention input t = transpose(0,2,1,3) of reshape(x) [B,S,H,D], neither with another use (but
** the backward of the attention node fwd): the transpose is folded (the attention reads each
** head's [S, D] rows straight out of x with a row stride of H*D; lower_attn.c's attn_view); the
** reshape stays an alias. */
static bool fuse_attention_input(lower_ctx *c, const uint32_t *uses, ot_tid t, int32_t fwd) {
  const ot_graph *g = c->g;
  int32_t p = g->t[t].producer;
  if (p < 0 || c->fused_away[p] || uses_but_backward(c, uses, t, fwd) != 1 || g->t[t].is_output) return false;
  ot_tid x = g->node[p].in[0];
  int32_t r = g->t[x].producer;
  if (!is_head_swap(&g->node[p], &g->t[x]) || r < 0 || uses[x] != 1 || g->t[x].is_output) return false;
  if (!is_head_split(g, &g->node[r]) || g->t[g->node[r].in[0]].is_output) return false;
  c->fused_away[p] = true;
  c->hbm_alias[t] = x;
  return true;
}

/* A split along the last axis whose every output only feeds a folded head split: the views read
** the columns of its input directly (no copies). */
static void fuse_attention_split(lower_ctx *c, const uint32_t *uses, uint32_t i) {
  const ot_graph *g = c->g;
  const ot_gnode *n = &g->node[i];
  if (n->op != OT_GOP_SPLIT || c->fused_away[i]) return;
  const ot_gtensor *x = &g->t[n->in[0]];
  int64_t axis = n->i[0] < 0 ? n->i[0] + x->ndim : n->i[0];
  if (axis != (int64_t)x->ndim - 1 || x->is_output) return;
  for (uint32_t k = 0; k < n->n_out; k++) {
    ot_tid o = n->out[k];
    if (uses[o] != 1 || g->t[o].is_output) return;
    bool viewed = false;
    for (uint32_t j = 0; j < g->n_node && !viewed; j++) {
      const ot_gnode *r = &g->node[j];
      if (r->op != OT_GOP_RESHAPE || r->in[0] != o) continue;
      for (uint32_t m = 0; m < g->n_node && !viewed; m++)
        viewed = c->fused_away[m] && g->node[m].op == OT_GOP_TRANSPOSE && g->node[m].in[0] == r->out[0];
    }
    if (!viewed) return;
  }
  c->fused_away[i] = true;
  for (uint32_t k = 0; k < n->n_out; k++) c->hbm_alias[n->out[k]] = n->in[0];
}

/* The attention output y [B,H,S,D] feeding only transpose(0,2,1,3) (and the backward of the
** attention node fwd): the attention writes each head's rows into the transpose's [B,S,H,D]
** output (row stride H*D), which the merging reshape then aliases.  Returns the transpose. */
static int32_t fuse_attention_output(lower_ctx *c, const uint32_t *uses, ot_tid y, int32_t fwd) {
  const ot_graph *g = c->g;
  if (uses_but_backward(c, uses, y, fwd) != 1 || g->t[y].is_output) return -1;
  for (uint32_t j = 0; j < g->n_node; j++) {
    const ot_gnode *m = &g->node[j];
    if (m->n_in < 1 || m->in[0] != y || m->op == OT_GOP_ATTENTION_BWD) continue;
    if (!is_head_swap(m, &g->t[y]) || c->fused_away[j]) return -1;
    c->fused_away[j] = true;
    c->hbm_alias[y] = m->out[0];
    return (int32_t)j;
  }
  return -1;
}

/* The only node reading t, or -1. */
static int32_t sole_reader(const ot_graph *g, const uint32_t *uses, ot_tid t) {
  if (uses[t] != 1) return -1;
  for (uint32_t j = 0; j < g->n_node; j++)
    for (uint32_t k = 0; k < g->node[j].n_in; k++)
      if (g->node[j].in[k] == t) return (int32_t)j;
  return -1;
}

/* Whether the gradient dq, dk or dv (out) of an attention_bwd flows only through transpose(0,2,1,3)
** and a merging reshape into a concat; sets the transpose, the merged tensor and the concat. */
static bool grad_to_concat(const lower_ctx *c, const uint32_t *uses, ot_tid out, int32_t *tr, ot_tid *merged,
                           int32_t *cat) {
  const ot_graph *g = c->g;
  *tr = sole_reader(g, uses, out);
  if (*tr < 0 || c->fused_away[*tr] || !is_head_swap(&g->node[*tr], &g->t[out]) || g->t[out].is_output) return false;
  ot_tid to = g->node[*tr].out[0];
  int32_t r = sole_reader(g, uses, to);
  if (r < 0 || !is_head_merge(g, &g->node[r]) || g->t[to].is_output) return false; /* concat columns = H*D each */
  *merged = g->node[r].out[0];
  *cat = sole_reader(g, uses, *merged);
  return *cat >= 0 && g->node[*cat].op == OT_GOP_CONCAT && !g->t[*merged].is_output;
}

/* The gradients dq, dk, dv of an attention_bwd, each leaving through a head merge (transpose +
** reshape, as the forward's output) into one concat along the last axis (the backward of the
** qkv split): all of it folded, each gradient written straight into its columns of the concat's
** output (lower_attn.c's attn_view_output), no copies. */
static void fuse_attention_grads(lower_ctx *c, const uint32_t *uses, const ot_gnode *n) {
  const ot_graph *g = c->g;
  int32_t tr[3], cat[3];
  ot_tid merged[3];
  for (uint32_t j = 0; j < 3; j++)
    if (!grad_to_concat(c, uses, n->out[j], &tr[j], &merged[j], &cat[j]) || cat[j] != cat[0]) return;
  const ot_gnode *cn = &g->node[cat[0]];
  const ot_gtensor *y = &g->t[cn->out[0]];
  int64_t axis = cn->i[0] < 0 ? cn->i[0] + y->ndim : cn->i[0];
  if (cn->n_in != 3 || axis != (int64_t)y->ndim - 1 || c->fused_away[cat[0]]) return; /* y may be an output */
  for (uint32_t j = 0; j < 3; j++)
    if (cn->in[j] != merged[j]) return;
  c->fused_away[cat[0]] = true;
  for (uint32_t j = 0; j < 3; j++) {
    c->fused_away[tr[j]] = true;
    c->hbm_alias[n->out[j]] = cn->out[0];
    c->hbm_alias[g->node[tr[j]].out[0]] = cn->out[0];
    c->hbm_alias[merged[j]] = cn->out[0];
  }
}

/* Fold the head split (split + reshape + transpose) and merge (transpose + reshape) around an
** attention with as many keys as queries into the attention's loads and stores: each was an
** HBM-to-HBM copy with 128-byte runs. */
static void fuse_attention_views(lower_ctx *c, const uint32_t *uses) {
  const ot_graph *g = c->g;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if ((n->op != OT_GOP_ATTENTION && n->op != OT_GOP_ATTENTION_BWD) || n->n_in < 3 || n->n_out < 1) continue;
    const ot_gtensor *q = &g->t[n->in[0]], *k = &g->t[n->in[1]];
    if (q->ndim != 4 || k->ndim != 4 || q->shape[2] != k->shape[2]) continue;
    if (n->op == OT_GOP_ATTENTION_BWD) { /* its q, k, v and y are the forward's: folded with it */
      if (n->n_in > 4) fuse_attention_input(c, uses, n->in[4], -1); /* dy */
      if (n->n_out == 3) fuse_attention_grads(c, uses, n);
      continue;
    }
    for (unsigned j = 0; j < 3; j++) fuse_attention_input(c, uses, n->in[j], (int32_t)i);
    fuse_attention_output(c, uses, n->out[0], (int32_t)i);
  }
  for (uint32_t i = 0; i < g->n_node; i++) fuse_attention_split(c, uses, i);
}

/* A matmul whose result leaves PSUM as it is (no activation, bias, residual or second output
** folded in, stored as computed): room for another epilogue. */
static bool epilogue_plain(const lower_epilogue *e) {
  return e->act == OT_ACT_COPY && e->act_out == OT_TID_NONE && e->residual == OT_TID_NONE && e->bias == OT_TID_NONE &&
         e->dact < 0 && !e->y_t;
}

/* An activation's backward whose dy is a matmul's result read by nothing else (the MLP's
** down-projection dx in training): dy * act'(x) is computed as the result leaves PSUM, by the
** derivative program of the separate pass (lower_elem_pw.c) on the same fp32 values -- the same
** bits -- so dy's HBM round trip (fp32: GPT-2 124M, 2 x 1024 rows, 50 MB per layer) and the
** pass that waited for all of dy go, and the next GEMM starts on the first rows. */
#define FUSE_DACT_MIN_SBUF (128u * 1024u) /* bytes per partition (trn1 - trn3: 192 KiB) */

static void fuse_act_backward(lower_ctx *c, const uint32_t *uses, uint32_t i) {
  const ot_graph *g = c->g;
  const ot_gnode *n = &g->node[i];
  if ((n->op != OT_GOP_GELU_BWD && n->op != OT_GOP_SILU_BWD) || c->fused_away[i]) return;
  ot_tid x = n->in[0], dy = n->in[1], y = n->out[0];
  int32_t p = g->t[dy].producer;
  if (p < 0 || c->fused_away[p] || g->node[p].op != OT_GOP_MATMUL) return;
  if (!epilogue_plain(&c->epi[p])) return;
  if (uses[dy] != 1 || g->t[dy].is_output || g->t[dy].dtype != OT_DT_FP32 || g->t[y].dtype != OT_DT_FP32) return;
  if (!same_shape(&g->t[dy], &g->t[y]) || !same_shape(&g->t[x], &g->t[y]) || g->t[x].producer >= p) return;
  if (g->t[g->node[p].in[1]].ndim > 2) return; /* batched b */
  /* the epilogue's x tiles and temporaries take up to 32 KiB per partition beside the GEMM's own
  ** buffers; a chip with less SBUF keeps the separate pass (which tiles to what is left) */
  if (c->chip->sbuf.bytes_per_partition < FUSE_DACT_MIN_SBUF) return;
  c->epi[p].dact = (int32_t)i;
  c->fused_away[i] = true;
  c->hbm_alias[dy] = y; /* the matmul writes the gradient directly */
}

/* A cross_entropy whose logits come straight out of a matmul: the GEMM epilogue takes each row's
** max and sum of exp(x - max) over every PSUM bank of columns (VectorE / ScalarE reading PSUM while
** the TensorE computes the next bank), so the cross_entropy combines ~V / 512 pairs per row
** instead of reading all the logits back from HBM (GPT-2: 412 MB per core at 2 x 1024 rows, and
** a VectorE and a ScalarE pass that waited for the whole GEMM). */
static void fuse_ce_statistics(lower_ctx *c, uint32_t i) {
  const ot_graph *g = c->g;
  const ot_gnode *n = &g->node[i];
  if (n->op != OT_GOP_CROSS_ENTROPY || c->fused_away[i]) return;
  ot_tid x = n->in[0];
  int32_t p = g->t[x].producer;
  if (p < 0 || c->fused_away[p] || g->node[p].op != OT_GOP_MATMUL) return;
  if (!epilogue_plain(&c->epi[p])) return;
  if (g->t[x].ndim != 2 || g->t[x].dtype != OT_DT_FP32 || g->t[g->node[p].in[1]].ndim != 2) return;
  c->epi[p].ce_stats = true;
}

/* Fold (1) a transpose of the last two axes into the matmul that consumes it as a: the GEMM
** loads a K-major layout directly, with no PE transposes; (2) gelu/silu applied to a matmul or
** linear: the activation runs while the result leaves PSUM (where the result has other readers,
** training's activation backward, the GEMM stores both: act_out);
** (3) residual adds into the GEMM epilogue; (4) a linear feeding only another linear stores its
** result transposed for it (lower_fuse_linear_chain); (5) the attention's head views; (6) an
** embedding gradient added to another gradient of its table (fuse_scatter_accumulate); (7) an
** activation's backward into the GEMM that computes its dy (fuse_act_backward); (8) the
** statistics of a cross_entropy into the GEMM of its logits (fuse_ce_statistics). */
static void fuse(lower_ctx *c, const uint32_t *uses) {
  const ot_graph *g = c->g;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (n->op != OT_GOP_MATMUL && n->op != OT_GOP_LINEAR) continue;
    ot_tid a = n->in[0];
    int32_t p = g->t[a].producer;
    if (p >= 0 && uses[a] == 1 && !g->t[a].is_output && is_last_two_swap(&g->node[p], &g->t[g->node[p].in[0]]) &&
        (n->op == OT_GOP_LINEAR ? g->t[g->node[p].in[0]].ndim == 2 : true)) {
      c->fused_away[p] = true;
      c->a_transposed[i] = true;
      c->hbm_alias[a] = g->node[p].in[0];
    }
  }
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (n->op != OT_GOP_GELU && n->op != OT_GOP_SILU) continue;
    ot_tid x = n->in[0];
    int32_t p = g->t[x].producer;
    if (p < 0 || (g->node[p].op != OT_GOP_MATMUL && g->node[p].op != OT_GOP_LINEAR)) continue;
    if (c->epi[p].act != OT_ACT_COPY || c->epi[p].act_out != OT_TID_NONE) continue;
    int act = n->op == OT_GOP_SILU ? OT_ACT_SILU : n->i[0] ? OT_ACT_GELU_TANH : OT_ACT_GELU;
    c->fused_away[i] = true;
    if (uses[x] != 1 || g->t[x].is_output) { /* x read elsewhere too (the activation's backward): both */
      c->epi[p].act_out = n->out[0];
      c->epi[p].act2 = act;
      continue;
    }
    c->epi[p].act = act;
    c->hbm_alias[x] = n->out[0]; /* the matmul writes the activation's output directly */
  }
  for (uint32_t i = 0; i < g->n_node; i++) fuse_residual(c, uses, i);
  for (uint32_t i = 0; i < g->n_node; i++) fuse_scatter_accumulate(c, uses, i);
  for (uint32_t i = 0; i < g->n_node; i++) fuse_act_backward(c, uses, i);
  for (uint32_t i = 0; i < g->n_node; i++) fuse_ce_statistics(c, i);
  lower_fuse_linear_chain(c, uses);
  fuse_attention_views(c, uses);
}

/* ---- HBM placement ---------------------------------------------------------------------------- */
static int tensor_role(const ot_gtensor *t) {
  if (t->role == OT_GROLE_INPUT) return OT_ROLE_INPUT;
  if (t->role == OT_GROLE_WEIGHT) return OT_ROLE_WEIGHT;
  if (t->role == OT_GROLE_CONST) return OT_ROLE_CONST;
  return t->is_output ? OT_ROLE_OUTPUT : OT_ROLE_SCRATCH;
}

static ot_tid alias_root(const lower_ctx *c, ot_tid t) {
  for (int guard = 0; guard < 64 && c->hbm_alias[t] != OT_TID_NONE; guard++) t = c->hbm_alias[t];
  return t;
}

/* Whether attention node n (keys as long as its queries: its head views are folded) reads input
** j rounded to the matmul type: q, k, v (lower_attn*.c loads them so).  (The backward's y and dy
** are loaded in fp32 for the row sums D_i: kept in 16 bits they saved nothing measurable, GPT-2
** 124M one trn2 core 54.12 -> 54.16 ms, and would round D_i's inputs.) */
static bool attention_operand(const lower_ctx *c, const ot_gnode *n, uint32_t j) {
  if ((n->op != OT_GOP_ATTENTION && n->op != OT_GOP_ATTENTION_BWD) || n->n_in < 3 || j >= 3) return false;
  const ot_gtensor *q = &c->g->t[n->in[0]], *k = &c->g->t[n->in[1]];
  return q->ndim == 4 && k->ndim == 4 && q->shape[2] == k->shape[2];
}

/* A sum over a leading axis (not the last): lower_elem_reduce.c sums those rows on the TensorE,
** a ones vector times the rows as loaded -- a bias gradient beside the matmuls of its dy. */
static bool row_sum(const lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = &c->g->t[n->in[0]];
  int64_t axis = n->i[0] < 0 ? n->i[0] + x->ndim : n->i[0];
  return n->op == OT_GOP_REDUCE_SUM && x->ndim >= 2 && axis >= 0 && axis < (int64_t)x->ndim - 1;
}

static bool is_view_op(ot_gop op) {
  return op == OT_GOP_RESHAPE || op == OT_GOP_TRANSPOSE || op == OT_GOP_SPLIT || op == OT_GOP_CONCAT;
}

/* Whether node n, reading u (whose bytes are root t's) as input j, takes the values rounded to the
** matmul type anyway, or does not read t's bytes at all: 1 a matmul operand or an activation
** backward's x (counted), 2 a row sum or no access (a view whose output shares t's bytes, an
** activation folded into the GEMM that writes t: it reads PSUM), 0 anything else. */
static int rounding_reader(const lower_ctx *c, const ot_gnode *n, uint32_t j, ot_tid t) {
  bool fused = c->fused_away[n - c->g->node];
  if (is_view_op((ot_gop)n->op) && (fused || n->op == OT_GOP_RESHAPE)) {
    for (uint32_t q = 0; q < n->n_out; q++)
      if (alias_root(c, n->out[q]) != t || c->g->t[n->out[q]].is_output) return 0;
    return 2;
  }
  if (n->op == OT_GOP_GELU_BWD || n->op == OT_GOP_SILU_BWD) /* evaluated at x as kept, as autocast saves it; */
    return j == 0 ? 1 : fused ? 2 : 0;                         /* folded, its dy is the GEMM's PSUM */
  if (fused) return (n->op == OT_GOP_GELU || n->op == OT_GOP_SILU) ? 2 : 0;
  if (((n->op == OT_GOP_MATMUL || n->op == OT_GOP_LINEAR) && j < 2) || attention_operand(c, n, j)) return 1;
  if ((n->op == OT_GOP_CROSS_ENTROPY || n->op == OT_GOP_CROSS_ENTROPY_BWD) && j == 0) return 1; /* the logits */
  return row_sum(c, n) ? 2 : 0;
}

/* Whether every reader of t's bytes (t or a tensor sharing them) takes them rounded to the matmul
** type (rounding_reader), and at least one is a matmul operand or an activation backward: in a
** 16-bit matmul type each rounds the elements as it loads them -- the row sums and the
** activation backward too, as under mixed precision (PyTorch autocast's linear backward sums a
** 16-bit dy for the bias, its gelu saves a 16-bit input for the backward). */
static bool read_by_matmuls_only(const lower_ctx *c, ot_tid t) {
  const ot_graph *g = c->g;
  uint32_t counted = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    for (uint32_t j = 0; j < n->n_in; j++) {
      if (n->in[j] == OT_TID_NONE || alias_root(c, n->in[j]) != t) continue;
      int r = rounding_reader(c, n, j, t);
      if (r == 0) return false;
      if (r == 1) counted++;
    }
  }
  return counted > 0;
}

/* Producers whose lowerings compute their output on an engine and write it in the type it is
** kept in (c->hbm[out].dtype), rounding as they write: norms, activations and their gradients,
** the logits gradient, GEMMs (as results leave PSUM), the attention and its backward. */
static bool rounds_on_write(ot_gop op) {
  switch (op) {
  case OT_GOP_LAYERNORM: case OT_GOP_RMSNORM: case OT_GOP_GELU: case OT_GOP_SILU: case OT_GOP_SWIGLU:
  case OT_GOP_GELU_BWD: case OT_GOP_SILU_BWD: case OT_GOP_CROSS_ENTROPY_BWD: case OT_GOP_MATMUL: case OT_GOP_LINEAR:
  case OT_GOP_ATTENTION: case OT_GOP_ATTENTION_BWD:
    return true;
  default: return false;
  }
}

/* Whether every node that writes t's bytes (t's producer, or the node whose output a folded view
** puts there: the attention's y into its head merge, dq, dk, dv into their concat; an activation
** or its backward folded into a GEMM, which writes for it) writes them in the type t is kept in. */
static bool written_rounded(const lower_ctx *c, ot_tid t) {
  const ot_graph *g = c->g;
  uint32_t writers = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (is_view_op((ot_gop)n->op) && (c->fused_away[i] || n->op == OT_GOP_RESHAPE)) continue; /* writes nothing */
    for (uint32_t q = 0; q < n->n_out; q++) {
      if (n->out[q] == OT_TID_NONE || alias_root(c, n->out[q]) != t) continue;
      if (!rounds_on_write((ot_gop)n->op) || g->t[n->out[q]].is_output) return false;
      writers++;
    }
  }
  return writers > 0;
}

/* The type a tensor is kept in: its own, except an fp32 value that only matmuls in a 16-bit type
** read, as operands: they round each element to that type as they load it, so keeping it rounded
** gives them the same values (the rounding moves to the producer) and halves its HBM traffic --
** the logits gradient (GPT-2 124M, 2 x 1024 rows per core: 412 MB written and read twice, now
** 206 MB), a layernorm's output (read by the next linear and its weight gradient), the MLP's
** activation and its gradient, the attention's q, k, v (c_attn's output: the attention loads
** them in the matmul type; GPT-2 124M, one trn2 core B2 55.68 -> 55.49 ms).  A bias gradient (a
** row sum) beside a tensor's matmuls then sums the rounded values, as autocast does: the MLP's
** activation gradient is kept rounded too, its HBM traffic halved and the sum a bf16 matmul
** (55.49 -> 54.78 ms); so are the attention's dq, dk, dv (54.78 -> 54.27 ms), and a pre-activation
** that its activation's backward reads (autocast saves it in 16 bits; 54.27 -> 54.12 ms). */
static ot_dtype storage_dtype(const lower_ctx *c, ot_tid t) {
  const ot_gtensor *x = &c->g->t[t];
  ot_dtype mm = c->opt->matmul_dtype;
  if (x->dtype != OT_DT_FP32 || x->is_output || x->role != OT_GROLE_VALUE || x->producer < 0 ||
      !written_rounded(c, t) || ot_dtype_size(mm) != 2 || !read_by_matmuls_only(c, t))
    return (ot_dtype)x->dtype;
  return mm;
}

/* The width of the column blocks t is kept in, or 0 (row-major).  The logits gradient [N, V] of a
** cross_entropy backward, read only as the a operand of matmuls (lm_head's dx GEMM, [N, V] x
** [V, D], and, through a folded transpose, its weight gradient): kept as V / w blocks of [N, w]
** (w the loss's chunk of columns, the last block narrower), so that each chunk the backward
** stores, all rows of w columns, is one contiguous range.  Its readers walk the vocabulary (the
** dx GEMM split over k, the weight gradient by vocabulary rows) and start as the first chunks
** land: kir orders accesses by byte ranges, and in row-major order the range of any rows' chunk
** spans every later chunk of those rows. */
static uint32_t column_block(const lower_ctx *c, ot_tid t) {
  const ot_graph *g = c->g;
  const ot_gtensor *x = &g->t[t];
  if (x->is_output || x->ndim != 2 || x->producer < 0 || g->node[x->producer].op != OT_GOP_CROSS_ENTROPY_BWD) return 0;
  uint32_t w = lower_ce_chunk_cols(c->chip, (uint32_t)x->shape[1]);
  if ((int64_t)w >= x->shape[1]) return 0;
  uint32_t readers = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    for (uint32_t j = 0; j < n->n_in; j++) {
      if (n->in[j] == OT_TID_NONE || alias_root(c, n->in[j]) != t) continue;
      if (n->op == OT_GOP_TRANSPOSE && c->fused_away[i]) continue; /* its matmul reads t's bytes */
      if (n->op != OT_GOP_MATMUL || j != 0 || c->fused_away[i] || g->t[n->in[0]].ndim != 2) return 0;
      readers++;
    }
  }
  return readers ? w : 0;
}

static ot_status place_tensors(lower_ctx *c) {
  const ot_graph *g = c->g;
  /* reshapes alias their input unless their output is a named graph output */
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (n->op == OT_GOP_RESHAPE && c->hbm_alias[n->out[0]] == OT_TID_NONE && !g->t[n->out[0]].is_output &&
        !g->t[n->in[0]].is_output)
      c->hbm_alias[n->out[0]] = n->in[0];
    if (n->op == OT_GOP_ADAMW) { /* in place: p, m, v */
      c->hbm_alias[n->out[0]] = n->in[0];
      c->hbm_alias[n->out[1]] = n->in[2];
      c->hbm_alias[n->out[2]] = n->in[3];
    }
    if (n->op == OT_GOP_KV_WRITE) c->hbm_alias[n->out[0]] = n->in[0]; /* in place: the cache */
  }
  bool *placed = calloc(g->n_t ? g->n_t : 1, sizeof *placed);
  if (!placed) return kir_fail(c->k, OT_ENOMEM, "out of memory");
  for (uint32_t t = 0; t < g->n_t && !kir_status(c->k); t++) {
    ot_tid r = alias_root(c, (ot_tid)t);
    if (placed[r]) continue;
    const ot_gtensor *x = &g->t[r];
    placed[r] = true;
    if (c->preplaced && c->preplaced[r].index >= 0) { c->hbm[r] = c->preplaced[r]; continue; } /* shared */
    uint64_t shape[OT_GRAPH_MAX_DIMS];
    unsigned nd = x->ndim ? x->ndim : 1;
    for (unsigned d = 0; d < nd; d++) shape[d] = x->ndim ? (uint64_t)x->shape[d] : 1;
    const char *name = x->name;
    char named[320];
    if (c->name_suffix && *c->name_suffix && (x->role == OT_GROLE_INPUT || x->role == OT_GROLE_VALUE)) {
      snprintf(named, sizeof named, "%s%s", x->name, c->name_suffix);
      name = named;
    }
    char tnamed[330];
    if (nd >= 2 && lower_stores_transposed(c, r)) { /* [.., N] held as [N, rows]: named so */
      uint64_t rows = 1;
      for (unsigned d = 0; d + 1 < nd; d++) rows *= shape[d];
      shape[0] = shape[nd - 1];
      shape[1] = rows;
      nd = 2;
      snprintf(tnamed, sizeof tnamed, "%s^T", name);
      name = tnamed;
    }
    char cnamed[344];
    if ((c->col_block[r] = column_block(c, r))) { /* [N, V] held as column blocks of w: named so */
      snprintf(cnamed, sizeof cnamed, "%s^C%u", name, c->col_block[r]);
      name = cnamed;
    }
    kir_tensor(c->k, name, storage_dtype(c, r), nd, shape, tensor_role(x), x->data, &c->hbm[r]);
  }
  for (uint32_t t = 0; t < g->n_t; t++) {
    c->hbm[t] = c->hbm[alias_root(c, (ot_tid)t)];
    c->col_block[t] = c->col_block[alias_root(c, (ot_tid)t)];
  }
  free(placed);
  return kir_status(c->k);
}

/* ---- driver ------------------------------------------------------------------------------------ */
/* Every node that is not folded into another must have a lowering: all are listed at once. */
static ot_status check_lowerable(const lower_ctx *c, ot_error *err) {
  const ot_graph *g = c->g;
  ot_status st = OT_OK;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    if (c->fused_away[i] || lower_for((ot_gop)n->op)) continue;
    st = ot_error_set(err, OT_EUNSUPPORTED, "node '%s' (%s): the compiler has no lowering for %s yet", n->name,
                      ot_gop_table[n->op].name, ot_gop_table[n->op].name);
  }
  return st;
}

static void ctx_free(lower_ctx *c) {
  free(c->hbm);
  free(c->fused_away);
  free(c->epi);
  free(c->a_transposed);
  free(c->hbm_alias);
  free(c->col_block);
}

static ot_status ctx_init(lower_ctx *c, const ot_graph *g, const ot_chip *chip, const ot_compile_options *opt) {
  memset(c, 0, sizeof *c);
  c->g = g;
  c->chip = chip;
  c->opt = opt;
  size_t nt = g->n_t ? g->n_t : 1, nn = g->n_node ? g->n_node : 1;
  c->hbm = calloc(nt, sizeof *c->hbm);
  c->hbm_alias = malloc(nt * sizeof *c->hbm_alias);
  c->fused_away = calloc(nn, sizeof *c->fused_away);
  c->epi = calloc(nn, sizeof *c->epi);
  c->a_transposed = calloc(nn, sizeof *c->a_transposed);
  c->col_block = calloc(nt, sizeof *c->col_block);
  if (!c->hbm || !c->hbm_alias || !c->fused_away || !c->epi || !c->a_transposed || !c->col_block) return OT_ENOMEM;
  for (size_t t = 0; t < nt; t++) c->hbm_alias[t] = OT_TID_NONE;
  for (size_t i = 0; i < nn; i++) {
    c->epi[i].act = OT_ACT_COPY;
    c->epi[i].bias = c->epi[i].residual = c->epi[i].act_out = OT_TID_NONE;
    c->epi[i].saved.index = c->epi[i].ce_part.index = -1;
    c->epi[i].dact = -1;
  }
  return OT_OK;
}

/* ---- lowering order ---------------------------------------------------------------------------- */
/* Each engine runs its instructions in program order, so a weight gradient lowered where the
** graph has it (between two steps of the backward's chain) makes the chain's next step wait for
** it on the TensorE.  A node nobody reads for a while (a weight or bias gradient, read by the
** optimizer at the end) is therefore lowered after the next DEFER_CRITICAL nodes that are not:
** the TensorE then works on it while a chain node waits for its inputs or for the other engines
** (the MLP's dx GEMM whose epilogue is the gelu backward, a layernorm backward).  kir's list
** scheduler reorders only within its window and behind the SBUF buffers nodes reuse.  Tensors
** never share HBM bytes except through aliases, so moving a reader later is safe unless a node in
** between writes in place (the checks below). */
#define DEFER_MIN_DISTANCE 8 /* nodes before the first reader of a deferrable node's outputs */
/* Chain nodes a deferred node waits for.  GPT-2 124M training step, one trn2 core, B2 x 1024:
** 1: 60.08 ms, 2: 60.06, 3: 59.88, 4: 59.77, 5: 59.91, 6: 60.30, 8: 60.24 (not deferring: 60.31). */
#define DEFER_CRITICAL 4

/* first[t]: the first node that reads tensor t (an HBM root); -1 where another tensor shares t's
** bytes (its writers stay in place).  A node folded into another reads where that one is lowered,
** which may be earlier (an epilogue): it counts at its earliest producing input, so whatever it
** reads is never moved past it. */
static void uses_first(const lower_ctx *c, int32_t *first) {
  const ot_graph *g = c->g;
  for (uint32_t t = 0; t < g->n_t; t++) first[t] = INT32_MAX;
  for (uint32_t t = 0; t < g->n_t; t++)
    if (alias_root(c, (ot_tid)t) != (ot_tid)t) first[alias_root(c, (ot_tid)t)] = -1;
  for (uint32_t j = g->n_node; j-- > 0;) {
    const ot_gnode *n = &g->node[j];
    int32_t at = (int32_t)j;
    for (uint32_t q = 0; c->fused_away[j] && q < n->n_in; q++)
      if (n->in[q] != OT_TID_NONE && g->t[n->in[q]].producer >= 0 && g->t[n->in[q]].producer < at) at = g->t[n->in[q]].producer;
    for (uint32_t q = 0; q < n->n_in; q++)
      if (n->in[q] != OT_TID_NONE && at < first[alias_root(c, n->in[q])]) first[alias_root(c, n->in[q])] = at;
  }
}

/* The first node after i that reads one of i's outputs (through their HBM roots); -1: i writes
** bytes another tensor shares. */
static int32_t node_first_reader(const lower_ctx *c, const int32_t *first, uint32_t i) {
  int32_t f = INT32_MAX;
  for (uint32_t q = 0; q < c->g->node[i].n_out; q++) {
    ot_tid t = c->g->node[i].out[q];
    if (t == OT_TID_NONE) continue;
    ot_tid r = alias_root(c, t);
    if (r != t) return -1; /* written into another tensor's bytes: keep it where it is */
    if (first[r] < f) f = first[r];
  }
  return f;
}

static bool node_deferrable(const lower_ctx *c, const int32_t *first, uint32_t i) {
  const ot_gnode *n = &c->g->node[i];
  if (n->op != OT_GOP_MATMUL && n->op != OT_GOP_LINEAR && n->op != OT_GOP_REDUCE_SUM) return false;
  int32_t f = node_first_reader(c, first, i);
  return f >= 0 && (int64_t)f >= (int64_t)i + DEFER_MIN_DISTANCE;
}

/* Node j writes into bytes that existed before it (an optimizer step, a KV cache write, a
** scatter-add into a gradient): nothing read before it may move past it. */
static bool node_writes_in_place(const lower_ctx *c, uint32_t j) {
  const ot_gnode *n = &c->g->node[j];
  return n->op == OT_GOP_ADAMW || n->op == OT_GOP_KV_WRITE || c->epi[j].accumulate;
}

static void lower_node(lower_ctx *c, uint32_t i) {
  const ot_gnode *n = &c->g->node[i];
  kir_set_origin(c->k, n->name);
  if (n->op == OT_GOP_ATTENTION && c->g->t[n->in[0]].shape[2] != c->g->t[n->in[1]].shape[2])
    lower_attention_kv(c, n); /* decode: queries against a longer KV cache */
  else
    lower_for((ot_gop)n->op)(c, n);
}

static ot_status lower_all(lower_ctx *c) {
  const ot_graph *g = c->g;
  int32_t *first = malloc((g->n_t ? g->n_t : 1) * sizeof *first);
  uint32_t *pend = malloc((g->n_node ? g->n_node : 1) * sizeof *pend), np = 0;
  uint32_t *age = calloc(g->n_node ? g->n_node : 1, sizeof *age); /* chain nodes lowered since deferred */
  if (!first || !pend || !age) {
    free(first);
    free(pend);
    free(age);
    return kir_fail(c->k, OT_ENOMEM, "out of memory");
  }
  uses_first(c, first);
  for (uint32_t i = 0; i < g->n_node && !kir_status(c->k); i++) {
    if (c->fused_away[i]) continue;
    if (node_deferrable(c, first, i)) {
      pend[np++] = i;
      continue;
    }
    /* deferred nodes that i reads (or that must not move past it) go first */
    uint32_t keep = 0;
    for (uint32_t p = 0; p < np; p++) {
      if (node_writes_in_place(c, i) || node_first_reader(c, first, pend[p]) <= (int32_t)i) lower_node(c, pend[p]);
      else pend[keep++] = pend[p];
    }
    np = keep;
    lower_node(c, i);
    keep = 0;
    for (uint32_t p = 0; p < np; p++) {
      if (++age[pend[p]] >= DEFER_CRITICAL) lower_node(c, pend[p]);
      else pend[keep++] = pend[p];
    }
    np = keep;
  }
  for (uint32_t p = 0; p < np && !kir_status(c->k); p++) lower_node(c, pend[p]);
  free(first);
  free(pend);
  free(age);
  return kir_status(c->k);
}

static void stats_fill(const lower_ctx *c, ot_compile_stats *out) {
  kir_stats ks;
  kir_get_stats(c->k, &ks);
  memset(out, 0, sizeof *out);
  for (int e = 0; e < OT_ENG_COUNT && e < 5; e++) out->insns[e] = ks.insns[e];
  out->dmas = ks.dmas;
  out->waits = ks.waits;
  out->waits_elided = ks.waits_elided;
  out->signals = ks.signals;
  out->sbuf_peak = ks.sbuf_peak;
  out->psum_peak = ks.psum_peak;
  for (uint32_t i = 0; i < c->g->n_node; i++) {
    if (c->fused_away[i]) out->nodes_fused++;
    else out->nodes_lowered++;
  }
}

ot_status lower_graph_into(kir *k, const ot_graph *g, const ot_chip *chip, const ot_compile_options *opt,
                           const lower_place_opts *po, kir_hbm *hbm_out, ot_compile_stats *stats, ot_error *err) {
  lower_ctx c;
  if (ctx_init(&c, g, chip, opt)) {
    ctx_free(&c);
    return ot_error_set(err, OT_ENOMEM, "out of memory");
  }
  c.k = k;
  if (po) {
    c.name_suffix = po->name_suffix;
    c.preplaced = po->preplaced;
    c.elem_range = po->elem_range;
    c.norm_split = po->norm_split;
  }
  uint32_t *uses = count_uses(g);
  if (!uses) kir_fail(k, OT_ENOMEM, "out of memory");
  else if (opt->fuse) fuse(&c, uses);
  free(uses);
  ot_status st = OT_OK;
  if (!kir_status(k) && (st = check_lowerable(&c, err))) {
    ctx_free(&c);
    return st;
  }
  if (!kir_status(k)) place_tensors(&c);
  if (!kir_status(k) && po && po->after_place) po->after_place(&c, po->arg);
  if (!kir_status(k)) lower_all(&c);
  st = kir_status(k);
  if (st) ot_error_set(err, st, "%s", kir_error(k)->msg);
  if (!st && hbm_out) memcpy(hbm_out, c.hbm, (g->n_t ? g->n_t : 1) * sizeof *hbm_out);
  if (!st && stats) stats_fill(&c, stats);
  ctx_free(&c);
  return st;
}

ot_status ot_compile(const ot_graph *g, const ot_chip *chip, const ot_compile_options *opt, ot_program **out,
                     ot_error *err) {
  *out = NULL;
  ot_compile_options defaults;
  if (!opt) { ot_compile_options_default(&defaults); opt = &defaults; }
  if (ot_graph_status(g)) return ot_error_set(err, ot_graph_status(g), "graph: %s", ot_graph_error(g));
  if (opt->matmul_dtype != OT_DT_BF16 && opt->matmul_dtype != OT_DT_FP32)
    return ot_error_set(err, OT_EUNSUPPORTED, "matmul type %s: supported are bf16 and fp32", ot_dtype_name(opt->matmul_dtype));
  ot_status st = ot_graph_check(g, chip, err);
  if (st) return st;
  ot_program *p = ot_program_new();
  if (!p) return ot_error_set(err, OT_ENOMEM, "out of memory");
  size_t cn = strnlen(chip->name, sizeof p->chip - 1); /* the file header holds 27 characters */
  memcpy(p->chip, chip->name, cn);
  p->chip[cn] = 0;
  lower_ctx c;
  kir *k = NULL;
  if (ctx_init(&c, g, chip, opt) || kir_new(chip, p, &k, err)) {
    ctx_free(&c);
    ot_program_free(p);
    return err && err->code ? err->code : ot_error_set(err, OT_ENOMEM, "out of memory");
  }
  c.k = k;
  kir_set_schedule(k, opt->schedule);
  uint32_t *uses = count_uses(g);
  if (!uses) kir_fail(k, OT_ENOMEM, "out of memory");
  else if (opt->fuse) fuse(&c, uses);
  free(uses);
  if (!kir_status(k) && check_lowerable(&c, err)) {
    kir_free(k);
    ctx_free(&c);
    ot_program_free(p);
    return err->code;
  }
  if (!kir_status(k)) place_tensors(&c);
  kir_hbm *wcopy = malloc((g->n_t ? g->n_t : 1) * sizeof *wcopy);
  lower_wcopy w = {opt->weight_copies, 1, 0, 0, wcopy};
  if (!wcopy) kir_fail(k, OT_ENOMEM, "out of memory");
  else if (!kir_status(k) && !lower_wcopy_place(&c, &w)) lower_wcopy_emit(&c, &w);
  if (!kir_status(k)) lower_all(&c);
  free(wcopy);
  st = kir_status(k) ? ot_error_set(err, kir_status(k), "%s", kir_error(k)->msg) : kir_finish(k, err);
  if (!st && opt->stats) stats_fill(&c, opt->stats);
  kir_free(k);
  ctx_free(&c);
  if (st) { ot_program_free(p); return st; }
  *out = p;
  return OT_OK;
}
