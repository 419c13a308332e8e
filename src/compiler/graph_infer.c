/* Shape and dtype inference: one function per op of graph_ops.def, each checking its inputs
** and reporting a mismatch with the node's name, its op, the shapes involved and what was
** expected ("node 'fc' (linear): x [128, 768] and w [512, 3072]: x's last dim 768 must equal
** w's dim 0 (in)").  Attributes with axes are normalised in place (negative axes counted from
** the end become positive), so later passes see one form. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compiler/graph_int.h"

/* ---- the inputs of each op: names for messages, and what they must hold ------------------ */
typedef struct {
  const char *name[6];
  const char *kinds;  /* per input: 'f' float values, 'i' integer ids, 'a' any dtype */
} gop_inputs;

static const gop_inputs op_inputs[OT_GOP_COUNT] = {
  [OT_GOP_MATMUL] = {{"a", "b"}, "ff"},
  [OT_GOP_LINEAR] = {{"x", "w", "bias"}, "fff"},
  [OT_GOP_ADD] = {{"a", "b"}, "ff"},
  [OT_GOP_SUB] = {{"a", "b"}, "ff"},
  [OT_GOP_MUL] = {{"a", "b"}, "ff"},
  [OT_GOP_SCALE] = {{"x"}, "f"},
  [OT_GOP_SOFTMAX] = {{"x"}, "f"},
  [OT_GOP_LAYERNORM] = {{"x", "gamma", "beta"}, "fff"},
  [OT_GOP_RMSNORM] = {{"x", "gamma"}, "ff"},
  [OT_GOP_GELU] = {{"x"}, "f"},
  [OT_GOP_SILU] = {{"x"}, "f"},
  [OT_GOP_SWIGLU] = {{"gate", "up"}, "ff"},
  [OT_GOP_EMBEDDING] = {{"ids", "table"}, "if"},
  [OT_GOP_ROPE] = {{"x"}, "f"},
  [OT_GOP_ATTENTION] = {{"q", "k", "v"}, "fff"},
  [OT_GOP_TRANSPOSE] = {{"x"}, "a"},
  [OT_GOP_RESHAPE] = {{"x"}, "a"},
  [OT_GOP_CONCAT] = {{"x"}, "a"},
  [OT_GOP_SPLIT] = {{"x"}, "a"},
  [OT_GOP_SLICE] = {{"x"}, "a"},
  [OT_GOP_REDUCE_SUM] = {{"x"}, "f"},
  [OT_GOP_REDUCE_MAX] = {{"x"}, "f"},
  [OT_GOP_REDUCE_MEAN] = {{"x"}, "f"},
  [OT_GOP_CROSS_ENTROPY] = {{"logits", "targets"}, "fi"},
  [OT_GOP_CAST] = {{"x"}, "a"},
  [OT_GOP_KV_WRITE] = {{"cache", "new"}, "ff"},
  [OT_GOP_SOFTMAX_BWD] = {{"y", "dy"}, "ff"},
  [OT_GOP_LAYERNORM_BWD] = {{"x", "gamma", "dy"}, "fff"},
  [OT_GOP_RMSNORM_BWD] = {{"x", "gamma", "dy"}, "fff"},
  [OT_GOP_GELU_BWD] = {{"x", "dy"}, "ff"},
  [OT_GOP_SILU_BWD] = {{"x", "dy"}, "ff"},
  [OT_GOP_SWIGLU_BWD] = {{"gate", "up", "dy"}, "fff"},
  [OT_GOP_EMBEDDING_BWD] = {{"ids", "dy"}, "if"},
  [OT_GOP_ATTENTION_BWD] = {{"q", "k", "v", "y", "dy"}, "fffff"},
  [OT_GOP_CROSS_ENTROPY_BWD] = {{"logits", "targets", "dloss"}, "fif"},
  [OT_GOP_BROADCAST] = {{"x"}, "a"},
  [OT_GOP_GLOBAL_NORM] = {{"x"}, "f"},
  [OT_GOP_ADAMW] = {{"p", "g", "m", "v", "norm", "hyper"}, "ffffff"},
};

const char *ot_gop_input_name(ot_gop op, unsigned k) {
  if ((unsigned)op >= OT_GOP_COUNT) return NULL;
  int n = ot_gop_table[op].n_in;
  if (n >= 0 && (int)k >= n) return NULL;
  const char *nm = n < 0 ? op_inputs[op].name[0] : k < 6 ? op_inputs[op].name[k] : NULL;
  return nm ? nm : "input";  /* an op added to graph_ops.def before its row here */
}

bool ot_gop_input_optional(ot_gop op, unsigned k) { return op == OT_GOP_LINEAR && k == 2; }

char ot_gop_input_kind(ot_gop op, unsigned k) {
  if ((unsigned)op >= OT_GOP_COUNT || !op_inputs[op].kinds) return 'a';
  if (ot_gop_table[op].n_in < 0) return op_inputs[op].kinds[0];
  size_t n = strlen(op_inputs[op].kinds);
  return k < n ? op_inputs[op].kinds[k] : 'a';
}

/* ---- inference context ------------------------------------------------------------------- */
#define IN_MAX 6

typedef struct {
  ot_graph *g;
  ot_gnode *n;
  const char *op;
  const ot_gtensor *in[IN_MAX];   /* NULL for an absent optional input (and beyond IN_MAX) */
  char desc[IN_MAX][128];         /* "x [128, 768]" */
  ot_gtensor *out;
} ictx;

static bool bad(ictx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool bad(ictx *c, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(&c->g->err, OT_EINVAL, "node '%s' (%s): %s", c->n->name, c->op, msg);
  return false;
}

/* "x [128, 768]": the input's role name and shape. */
static const char *D(ictx *c, unsigned k) { return k < IN_MAX ? c->desc[k] : "input"; }

static void set_out(ot_gtensor *o, const int64_t *shape, unsigned ndim, unsigned dtype) {
  o->ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim; d++) o->shape[d] = shape[d];
  o->dtype = (uint8_t)dtype;
}

static void copy_out(ot_gtensor *o, const ot_gtensor *t, unsigned dtype) { set_out(o, t->shape, t->ndim, dtype); }

static int64_t last(const ot_gtensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static bool same_shape(const ot_gtensor *a, const ot_gtensor *b) {
  if (a->ndim != b->ndim) return false;
  for (unsigned d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

static bool need_rank(ictx *c, unsigned k, unsigned lo, unsigned hi) {
  unsigned nd = c->in[k]->ndim;
  if (nd >= lo && nd <= hi) return true;
  if (lo == hi) return bad(c, "%s: expected %u dims, got %u", D(c, k), lo, nd);
  return bad(c, "%s: expected %u to %u dims, got %u", D(c, k), lo, hi, nd);
}

static bool need_same(ictx *c, unsigned a, unsigned b) {
  if (same_shape(c->in[a], c->in[b])) return true;
  return bad(c, "%s and %s: %s must have %s's shape", D(c, a), D(c, b), op_inputs[c->n->op].name[b],
             op_inputs[c->n->op].name[a]);
}

/* A vector [D] matching x's last dim (layernorm's gamma and beta). */
static bool need_vec(ictx *c, unsigned x, unsigned v) {
  const ot_gtensor *t = c->in[v];
  if (t->ndim == 1 && t->shape[0] == last(c->in[x])) return true;
  return bad(c, "%s and %s: %s must be [%lld] (x's last dim)", D(c, x), D(c, v), op_inputs[c->n->op].name[v],
             (long long)last(c->in[x]));
}

/* Axis in [-ndim, ndim) made positive; counting starts from the end for negative values. */
static bool norm_axis(ictx *c, unsigned k, int64_t *axis, unsigned ndim) {
  int64_t a = *axis;
  if (ndim == 0) return bad(c, "%s: a scalar has no axis %lld", D(c, k), (long long)a);
  if (a < -(int64_t)ndim || a >= (int64_t)ndim)
    return bad(c, "%s: axis %lld is out of range, expected %d to %u", D(c, k), (long long)a, -(int)ndim, ndim - 1);
  *axis = a < 0 ? a + ndim : a;
  return true;
}

/* ---- forward ops ------------------------------------------------------------------------- */

static bool infer_matmul(ictx *c) {
  const ot_gtensor *a = c->in[0], *b = c->in[1];
  bool tb = c->n->i[0] != 0;
  if (!need_rank(c, 0, 2, 4) || !need_rank(c, 1, 2, 4)) return false;
  int64_t K = a->shape[a->ndim - 1];
  unsigned kd = b->ndim - (tb ? 1 : 2), nd = b->ndim - (tb ? 2 : 1);
  if (b->ndim > 2) {
    if (b->ndim != a->ndim) return bad(c, "%s and %s: a batched b must have a's %u dims (or be 2-D [K, N])",
                                       D(c, 0), D(c, 1), a->ndim);
    for (unsigned d = 0; d + 2 < a->ndim; d++)
      if (a->shape[d] != b->shape[d])
        return bad(c, "%s and %s: batched b's leading dim %u is %lld, must equal a's %lld", D(c, 0), D(c, 1), d,
                   (long long)b->shape[d], (long long)a->shape[d]);
  }
  if (b->shape[kd] != K)
    return bad(c, "%s and %s: a's last dim %lld (K) must equal b's dim %u %lld%s", D(c, 0), D(c, 1), (long long)K, kd,
               (long long)b->shape[kd], tb ? " (b is [N, K] with transpose_b)" : " (b is [K, N])");
  int64_t shape[OT_GRAPH_MAX_DIMS];
  memcpy(shape, a->shape, sizeof shape);
  shape[a->ndim - 1] = b->shape[nd];
  set_out(c->out, shape, a->ndim, a->dtype);
  return true;
}

static bool infer_linear(ictx *c) {
  const ot_gtensor *x = c->in[0], *w = c->in[1], *bias = c->in[2];
  bool oi = c->n->i[0] != 0;
  if (!need_rank(c, 0, 1, 4) || !need_rank(c, 1, 2, 2)) return false;
  unsigned kd = oi ? 1 : 0;
  int64_t in = last(x), out = w->shape[1 - kd];
  if (w->shape[kd] != in)
    return bad(c, "%s and %s: x's last dim %lld must equal w's dim %u (in)%s", D(c, 0), D(c, 1), (long long)in, kd,
               oi ? " (w is [out, in] with w_out_in)" : " (w is [in, out])");
  if (bias && !(bias->ndim == 1 && bias->shape[0] == out))
    return bad(c, "%s and %s: bias must be [%lld] (w's out dim)", D(c, 1), D(c, 2), (long long)out);
  int64_t shape[OT_GRAPH_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out;
  set_out(c->out, shape, x->ndim, x->dtype);
  return true;
}

/* b equals a's shape or a suffix of it. */
static bool infer_binary(ictx *c) {
  const ot_gtensor *a = c->in[0], *b = c->in[1];
  bool ok = b->ndim <= a->ndim;
  for (unsigned d = 0; ok && d < b->ndim; d++) ok = b->shape[d] == a->shape[a->ndim - b->ndim + d];
  if (!ok)
    return bad(c, "%s and %s: b must have a's shape or a suffix of it (broadcast over a's leading dims)", D(c, 0),
               D(c, 1));
  copy_out(c->out, a, a->dtype);
  return true;
}

static bool infer_same(ictx *c) {
  copy_out(c->out, c->in[0], c->in[0]->dtype);
  return true;
}

static bool infer_lastaxis(ictx *c) {
  if (!need_rank(c, 0, 1, 4)) return false;
  return infer_same(c);
}

static bool infer_layernorm(ictx *c) {
  if (!need_rank(c, 0, 1, 4) || !need_vec(c, 0, 1) || !need_vec(c, 0, 2)) return false;
  return infer_same(c);
}

static bool infer_rmsnorm(ictx *c) {
  if (!need_rank(c, 0, 1, 4) || !need_vec(c, 0, 1)) return false;
  return infer_same(c);
}

static bool infer_swiglu(ictx *c) { return need_same(c, 0, 1) && infer_same(c); }

static bool infer_embedding(ictx *c) {
  const ot_gtensor *ids = c->in[0], *table = c->in[1];
  if (!need_rank(c, 0, 0, 3) || !need_rank(c, 1, 2, 2)) return false;
  int64_t shape[OT_GRAPH_MAX_DIMS];
  for (unsigned d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
  shape[ids->ndim] = table->shape[1];
  set_out(c->out, shape, ids->ndim + 1u, table->dtype);
  return true;
}

static bool infer_rope(ictx *c) {
  if (!need_rank(c, 0, 4, 4)) return false;
  if (last(c->in[0]) % 2)
    return bad(c, "%s: head dim D = %lld must be even (rotate_half pairs element j with j + D/2)", D(c, 0),
               (long long)last(c->in[0]));
  const float *f = c->n->f;
  if (c->n->i[2] < 0 || (c->n->i[2] > 0 && !(f[1] >= 1.0f && f[2] > 0.0f && f[3] > f[2] && isfinite(f[1]) &&
                                             isfinite(f[3]))))
    return bad(c, "llama3 scaling: original_max_pos %lld, factor %g, low_freq_factor %g, high_freq_factor %g; "
               "expected original_max_pos 0 (none) or > 0 with factor >= 1 and 0 < low_freq_factor < high_freq_factor",
               (long long)c->n->i[2], (double)f[1], (double)f[2], (double)f[3]);
  return infer_same(c);
}

/* q [B, Hq, S, D], k and v [B, Hkv, S, D] with Hq a multiple of Hkv; with kv_longer (the
** forward), k and v may hold more keys than q has rows (a KV cache). */
static bool attention_shapes(ictx *c, bool kv_longer) {
  const ot_gtensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
  for (unsigned j = 0; j < 3; j++)
    if (!need_rank(c, j, 4, 4)) return false;
  if (!same_shape(k, v)) return bad(c, "%s and %s: k and v must have the same shape", D(c, 1), D(c, 2));
  bool s_ok = kv_longer ? k->shape[2] >= q->shape[2] : k->shape[2] == q->shape[2];
  if (k->shape[0] != q->shape[0] || !s_ok || k->shape[3] != q->shape[3])
    return bad(c, "%s and %s: k must be [B, Hkv, %s, D] with q's B = %lld, S = %lld and D = %lld", D(c, 0), D(c, 1),
               kv_longer ? "Skv >= S" : "S", (long long)q->shape[0], (long long)q->shape[2], (long long)q->shape[3]);
  if (q->shape[1] % k->shape[1])
    return bad(c, "%s and %s: q's heads %lld must be a multiple of k's heads %lld (grouped-query attention)", D(c, 0),
               D(c, 1), (long long)q->shape[1], (long long)k->shape[1]);
  return true;
}

static bool infer_attention(ictx *c) { return attention_shapes(c, true) && infer_same(c); }

/* cache [B, H, Smax, D], new [B, H, S, D] of the cache's dtype, pos + S <= Smax; y is the cache. */
static bool infer_kv_write(ictx *c) {
  const ot_gtensor *kc = c->in[0], *nw = c->in[1];
  int64_t pos = c->n->i[0];
  if (!need_rank(c, 0, 4, 4) || !need_rank(c, 1, 4, 4)) return false;
  if (kc->shape[0] != nw->shape[0] || kc->shape[1] != nw->shape[1] || kc->shape[3] != nw->shape[3])
    return bad(c, "%s and %s: new must be [B, H, S, D] with the cache's B = %lld, H = %lld and D = %lld", D(c, 0),
               D(c, 1), (long long)kc->shape[0], (long long)kc->shape[1], (long long)kc->shape[3]);
  if (kc->dtype != nw->dtype)
    return bad(c, "%s is %s and %s is %s: new must have the cache's dtype", D(c, 0), ot_dtype_name((ot_dtype)kc->dtype),
               D(c, 1), ot_dtype_name((ot_dtype)nw->dtype));
  if (pos < 0 || pos + nw->shape[2] > kc->shape[2])
    return bad(c, "pos %lld with %lld new rows: rows %lld..%lld lie outside the cache's %lld rows", (long long)pos,
               (long long)nw->shape[2], (long long)pos, (long long)(pos + nw->shape[2] - 1), (long long)kc->shape[2]);
  return infer_same(c);
}

static bool infer_transpose(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  if (n->n_list != x->ndim) return bad(c, "%s: perm has %u entries, expected %u (one per dim)", D(c, 0), n->n_list, x->ndim);
  bool seen[OT_GRAPH_MAX_DIMS] = {false};
  int64_t shape[OT_GRAPH_MAX_DIMS];
  for (unsigned d = 0; d < n->n_list; d++) {
    int64_t p = n->list[d];
    if (p < 0 || p >= x->ndim || seen[p])
      return bad(c, "%s: perm entry %u is %lld; perm must be a permutation of 0..%u", D(c, 0), d, (long long)p,
                 x->ndim - 1);
    seen[p] = true;
    shape[d] = x->shape[p];
  }
  set_out(c->out, shape, x->ndim, x->dtype);
  return true;
}

static bool infer_reshape(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  if (n->n_list > OT_GRAPH_MAX_DIMS) return bad(c, "shape has %u entries, at most %d", n->n_list, OT_GRAPH_MAX_DIMS);
  int64_t total = ot_gtensor_elems(x), known = 1, shape[OT_GRAPH_MAX_DIMS];
  int wild = -1;
  for (unsigned d = 0; d < n->n_list; d++) {
    int64_t s = n->list[d];
    if (s == -1 && wild < 0) { wild = (int)d; continue; }
    if (s < 1) return bad(c, "%s: new shape entry %u is %lld; expected >= 1 or a single -1", D(c, 0), d, (long long)s);
    if (s > total || known > total / s)
      return bad(c, "%s: the new shape has more elements than x's %lld", D(c, 0), (long long)total);
    known *= s;
    shape[d] = s;
  }
  char ns[160];
  ot_gshape_str(n->list, n->n_list, ns, sizeof ns);
  if (wild >= 0) {
    if (total % known) return bad(c, "%s: cannot reshape %lld elements to %s", D(c, 0), (long long)total, ns);
    shape[wild] = total / known;
  } else if (known != total) {
    return bad(c, "%s: cannot reshape %lld elements to %s (%lld elements)", D(c, 0), (long long)total, ns,
               (long long)known);
  }
  set_out(c->out, shape, n->n_list, x->dtype);
  return true;
}

static bool infer_concat(ictx *c) {
  const ot_gtensor *x0 = c->in[0];
  ot_gnode *n = c->n;
  if (!norm_axis(c, 0, &n->i[0], x0->ndim)) return false;
  unsigned ax = (unsigned)n->i[0];
  int64_t shape[OT_GRAPH_MAX_DIMS];
  memcpy(shape, x0->shape, sizeof shape);
  for (uint32_t k = 1; k < n->n_in; k++) {
    const ot_gtensor *t = &c->g->t[n->in[k]];
    char a[160], b[160];
    ot_gtensor_describe(x0, a, sizeof a);
    ot_gtensor_describe(t, b, sizeof b);
    bool ok = t->ndim == x0->ndim && t->dtype == x0->dtype;
    for (unsigned d = 0; ok && d < t->ndim; d++) ok = d == ax || t->shape[d] == x0->shape[d];
    if (!ok)
      return bad(c, "input 0 '%s' %s and input %u '%s' %s: inputs must have the same dtype and dims except axis %u",
                 ot_graph_tname(c->g, n->in[0]), a, k, ot_graph_tname(c->g, n->in[k]), b, ax);
    shape[ax] += t->shape[ax];
    if (shape[ax] > OT_GTENSOR_MAX_ELEMS) return bad(c, "the joined axis %u is longer than 2^48", ax);
  }
  set_out(c->out, shape, x0->ndim, x0->dtype);
  return true;
}

static bool infer_split(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  if (!norm_axis(c, 0, &n->i[0], x->ndim)) return false;
  unsigned ax = (unsigned)n->i[0];
  if (n->n_list < 1) return bad(c, "%s: sizes is empty, expected 1 to %d pieces", D(c, 0), OT_GNODE_MAX_LIST);
  int64_t sum = 0;
  for (unsigned k = 0; k < n->n_list; k++) {
    if (n->list[k] < 1 || n->list[k] > x->shape[ax])
      return bad(c, "%s: size %u is %lld, expected 1 to %lld", D(c, 0), k, (long long)n->list[k],
                 (long long)x->shape[ax]);
    sum += n->list[k];
  }
  if (sum != x->shape[ax]) {
    char s[160];
    return bad(c, "%s: sizes %s add up to %lld, must equal axis %u's %lld", D(c, 0),
               ot_gshape_str(n->list, n->n_list, s, sizeof s), (long long)sum, ax, (long long)x->shape[ax]);
  }
  for (unsigned k = 0; k < n->n_list; k++) {
    copy_out(&c->out[k], x, x->dtype);
    c->out[k].shape[ax] = n->list[k];
  }
  n->n_out = n->n_list;
  return true;
}

static bool infer_slice(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  if (!norm_axis(c, 0, &n->i[0], x->ndim)) return false;
  unsigned ax = (unsigned)n->i[0];
  int64_t dim = x->shape[ax], s = n->i[1], e = n->i[2];
  if (s < -dim || s > dim || e < -dim || e > dim)
    return bad(c, "%s: slice [%lld:%lld] of axis %u is out of range (the axis has %lld)", D(c, 0), (long long)s,
               (long long)e, ax, (long long)dim);
  if (s < 0) s += dim;
  if (e < 0) e += dim;
  if (s >= e)
    return bad(c, "%s: slice [%lld:%lld] of axis %u is empty; expected start < end", D(c, 0), (long long)n->i[1],
               (long long)n->i[2], ax);
  n->i[1] = s;
  n->i[2] = e;
  copy_out(c->out, x, x->dtype);
  c->out->shape[ax] = e - s;
  return true;
}

static bool infer_reduce(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  if (!norm_axis(c, 0, &n->i[0], x->ndim)) return false;
  unsigned ax = (unsigned)n->i[0];
  n->i[1] = n->i[1] != 0;
  copy_out(c->out, x, x->dtype);
  if (n->i[1]) {
    c->out->shape[ax] = 1;
  } else {
    for (unsigned d = ax; d + 1 < x->ndim; d++) c->out->shape[d] = x->shape[d + 1];
    c->out->ndim = (uint8_t)(x->ndim - 1);
  }
  return true;
}

/* logits [N, V], targets [N]. */
static bool ce_shapes(ictx *c) {
  if (!need_rank(c, 0, 2, 2) || !need_rank(c, 1, 1, 1)) return false;
  if (c->in[1]->shape[0] != c->in[0]->shape[0])
    return bad(c, "%s and %s: targets must be [%lld] (one per row of logits)", D(c, 0), D(c, 1),
               (long long)c->in[0]->shape[0]);
  return true;
}

static bool infer_cross_entropy(ictx *c) {
  if (!ce_shapes(c)) return false;
  int64_t one = 1;
  set_out(c->out, &one, 1, OT_DT_FP32);
  return true;
}

static bool infer_cast(ictx *c) {
  int64_t dt = c->n->i[0];
  if (dt < 0 || dt >= OT_DT_COUNT) return bad(c, "dtype %lld is not a data type", (long long)dt);
  copy_out(c->out, c->in[0], (unsigned)dt);
  return true;
}

/* ---- backward ops ------------------------------------------------------------------------ */

static bool infer_softmax_bwd(ictx *c) { return need_rank(c, 0, 1, 4) && need_same(c, 0, 1) && infer_same(c); }

static bool infer_norm_bwd(ictx *c) {
  if (!need_rank(c, 0, 1, 4) || !need_vec(c, 0, 1) || !need_same(c, 0, 2)) return false;
  copy_out(&c->out[0], c->in[0], c->in[0]->dtype);
  copy_out(&c->out[1], c->in[1], OT_DT_FP32);
  if (c->n->op == OT_GOP_LAYERNORM_BWD) copy_out(&c->out[2], c->in[1], OT_DT_FP32);
  return true;
}

static bool infer_act_bwd(ictx *c) { return need_same(c, 0, 1) && infer_same(c); }

static bool infer_swiglu_bwd(ictx *c) {
  if (!need_same(c, 0, 1) || !need_same(c, 0, 2)) return false;
  copy_out(&c->out[0], c->in[0], c->in[0]->dtype);
  copy_out(&c->out[1], c->in[1], c->in[1]->dtype);
  return true;
}

static bool infer_embedding_bwd(ictx *c) {
  const ot_gtensor *ids = c->in[0], *dy = c->in[1];
  if (!need_rank(c, 0, 0, 3)) return false;
  bool ok = dy->ndim == ids->ndim + 1u;
  for (unsigned d = 0; ok && d < ids->ndim; d++) ok = dy->shape[d] == ids->shape[d];
  if (!ok) return bad(c, "%s and %s: dy must be [ids' shape..., D]", D(c, 0), D(c, 1));
  if (c->n->i[0] < 1 || c->n->i[0] > OT_GTENSOR_MAX_ELEMS)
    return bad(c, "rows is %lld, expected the table's row count (>= 1)", (long long)c->n->i[0]);
  int64_t shape[2] = {c->n->i[0], last(dy)};
  set_out(c->out, shape, 2, OT_DT_FP32);
  return true;
}

static bool infer_attention_bwd(ictx *c) {
  if (!attention_shapes(c, false) || !need_same(c, 0, 3) || !need_same(c, 0, 4)) return false;
  for (unsigned k = 0; k < 3; k++) copy_out(&c->out[k], c->in[k], c->in[k]->dtype);
  return true;
}

static bool infer_cross_entropy_bwd(ictx *c) {
  const ot_gtensor *dl = c->in[2];
  if (!ce_shapes(c)) return false;
  if (ot_gtensor_elems(dl) != 1 || dl->ndim > 1) return bad(c, "%s: dloss must be [1] or a scalar", D(c, 2));
  return infer_same(c);
}

/* ---- optimiser ops ----------------------------------------------------------------------- */

static bool infer_global_norm(ictx *c) {
  int64_t one = 1;
  set_out(c->out, &one, 1, OT_DT_FP32);
  return true;
}

/* p, g, m, v: fp32 of one shape (updated in place); norm [1]; hyper [6]. */
static bool infer_adamw(ictx *c) {
  for (unsigned k = 0; k < 6; k++)
    if (c->in[k]->dtype != OT_DT_FP32)
      return bad(c, "%s is %s, expected fp32 (master weights and optimiser state)", D(c, k),
                 ot_dtype_name((ot_dtype)c->in[k]->dtype));
  for (unsigned k = 1; k < 4; k++)
    if (!need_same(c, 0, k)) return false;
  if (ot_gtensor_elems(c->in[4]) != 1 || c->in[4]->ndim > 1) return bad(c, "%s: norm must be [1]", D(c, 4));
  if (c->in[5]->ndim != 1 || c->in[5]->shape[0] != 6)
    return bad(c, "%s: hyper must be [6] {lr, weight_decay, eps, 1/(1-beta1^t), 1/(1-beta2^t), max_norm}", D(c, 5));
  for (unsigned k = 0; k < 3; k++) copy_out(&c->out[k], c->in[0], OT_DT_FP32);
  return true;
}

/* x repeated to shape: trailing dims aligned, each x dim equal or 1. */
static bool infer_broadcast(ictx *c) {
  const ot_gtensor *x = c->in[0];
  ot_gnode *n = c->n;
  char s[160];
  ot_gshape_str(n->list, n->n_list, s, sizeof s);
  if (n->n_list > OT_GRAPH_MAX_DIMS || n->n_list < x->ndim)
    return bad(c, "%s: cannot broadcast to %s (%u dims; expected %u to %d)", D(c, 0), s, n->n_list, x->ndim,
               OT_GRAPH_MAX_DIMS);
  for (unsigned d = 0; d < n->n_list; d++)
    if (n->list[d] < 1) return bad(c, "%s: target shape %s has entry %u < 1", D(c, 0), s, d);
  unsigned off = n->n_list - x->ndim;
  for (unsigned d = 0; d < x->ndim; d++)
    if (x->shape[d] != 1 && x->shape[d] != n->list[off + d])
      return bad(c, "%s: cannot broadcast to %s: x's dim %u is %lld, expected 1 or %lld", D(c, 0), s, d,
                 (long long)x->shape[d], (long long)n->list[off + d]);
  set_out(c->out, n->list, n->n_list, x->dtype);
  return true;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef bool (*infer_fn)(ictx *c);

static const infer_fn infer_table[OT_GOP_COUNT] = {
  [OT_GOP_MATMUL] = infer_matmul,
  [OT_GOP_LINEAR] = infer_linear,
  [OT_GOP_ADD] = infer_binary,
  [OT_GOP_SUB] = infer_binary,
  [OT_GOP_MUL] = infer_binary,
  [OT_GOP_SCALE] = infer_same,
  [OT_GOP_SOFTMAX] = infer_lastaxis,
  [OT_GOP_LAYERNORM] = infer_layernorm,
  [OT_GOP_RMSNORM] = infer_rmsnorm,
  [OT_GOP_GELU] = infer_same,
  [OT_GOP_SILU] = infer_same,
  [OT_GOP_SWIGLU] = infer_swiglu,
  [OT_GOP_EMBEDDING] = infer_embedding,
  [OT_GOP_ROPE] = infer_rope,
  [OT_GOP_ATTENTION] = infer_attention,
  [OT_GOP_TRANSPOSE] = infer_transpose,
  [OT_GOP_RESHAPE] = infer_reshape,
  [OT_GOP_CONCAT] = infer_concat,
  [OT_GOP_SPLIT] = infer_split,
  [OT_GOP_SLICE] = infer_slice,
  [OT_GOP_REDUCE_SUM] = infer_reduce,
  [OT_GOP_REDUCE_MAX] = infer_reduce,
  [OT_GOP_REDUCE_MEAN] = infer_reduce,
  [OT_GOP_CROSS_ENTROPY] = infer_cross_entropy,
  [OT_GOP_CAST] = infer_cast,
  [OT_GOP_KV_WRITE] = infer_kv_write,
  [OT_GOP_SOFTMAX_BWD] = infer_softmax_bwd,
  [OT_GOP_LAYERNORM_BWD] = infer_norm_bwd,
  [OT_GOP_RMSNORM_BWD] = infer_norm_bwd,
  [OT_GOP_GELU_BWD] = infer_act_bwd,
  [OT_GOP_SILU_BWD] = infer_act_bwd,
  [OT_GOP_SWIGLU_BWD] = infer_swiglu_bwd,
  [OT_GOP_EMBEDDING_BWD] = infer_embedding_bwd,
  [OT_GOP_ATTENTION_BWD] = infer_attention_bwd,
  [OT_GOP_CROSS_ENTROPY_BWD] = infer_cross_entropy_bwd,
  [OT_GOP_BROADCAST] = infer_broadcast,
  [OT_GOP_GLOBAL_NORM] = infer_global_norm,
  [OT_GOP_ADAMW] = infer_adamw,
};

/* Float inputs must hold float values and ids integers: anything else is a mistake in the
** graph, not a missing feature (ot_graph_check reports the formats the chip lacks). */
static bool check_dtypes(ictx *c) {
  for (uint32_t k = 0; k < c->n->n_in; k++) {
    ot_tid t = c->n->in[k];
    if (t == OT_TID_NONE) continue;
    ot_dtype dt = (ot_dtype)c->g->t[t].dtype;
    char kind = ot_gop_input_kind((ot_gop)c->n->op, k);
    const char *nm = ot_gop_input_name((ot_gop)c->n->op, k);
    if (kind == 'f' && !ot_dtype_is_float(dt))
      return bad(c, "input %u (%s) '%s' is %s, expected a float type (fp32, bf16)", k, nm, ot_graph_tname(c->g, t),
                 ot_dtype_name(dt));
    if (kind == 'i' && ot_dtype_is_float(dt))
      return bad(c, "input %u (%s) '%s' is %s, expected integer ids (int32)", k, nm, ot_graph_tname(c->g, t),
                 ot_dtype_name(dt));
  }
  return true;
}

bool ot_graph_infer(ot_graph *g, ot_gnode *n, ot_gtensor *outs) {
  ictx c;
  memset(&c, 0, sizeof c);
  c.g = g;
  c.n = n;
  c.op = ot_gop_table[n->op].name;
  c.out = outs;
  for (uint32_t k = 0; k < n->n_in && k < IN_MAX; k++) {
    const char *nm = ot_gop_input_name((ot_gop)n->op, k);
    if (n->in[k] == OT_TID_NONE) { snprintf(c.desc[k], sizeof c.desc[k], "%s (absent)", nm); continue; }
    c.in[k] = &g->t[n->in[k]];
    char s[112];
    snprintf(c.desc[k], sizeof c.desc[k], "%s %s", nm, ot_gshape_str(c.in[k]->shape, c.in[k]->ndim, s, sizeof s));
  }
  int nout = ot_gop_table[n->op].n_out;
  n->n_out = nout > 0 ? (uint32_t)nout : 0;
  if (!infer_table[n->op]) return bad(&c, "no shape inference for this op yet (graph_infer.c)");
  if (!check_dtypes(&c)) return false;
  return infer_table[n->op](&c);
}
