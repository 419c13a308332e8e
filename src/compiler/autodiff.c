/* Reverse-mode automatic differentiation of a graph from a scalar loss.
**
** The forward nodes are walked from last to first; a node whose output has a gradient and one
** of whose inputs depends on a weight appends the nodes of its backward, built from forward ops
** where they suffice (matmul with transpose_b, transpose, reshape, reduce_sum, broadcast, scale,
** mul, slice, concat) and the *_bwd ops otherwise.  A tensor used several times gets the sum of
** its contributions (add nodes, in the order the consumers are visited: last consumer first).
**
** Every backward node is named "<forward node>.bwd.<what>" and has node.forward set, so
** messages and listings name the user's node.  Each weight's gradient is fp32, named
** "<weight>.grad", marked as an output and recorded in t->grad.  Inputs (role input) get no
** gradient: declare a tensor as a weight to differentiate with respect to it.  Details and the
** list of backward formulas: docs/autodiff.md. */
#include "compiler/graph.h"
#include "compiler/graph_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  ot_graph *g;
  ot_error *err;
  ot_tid *grad;     /* per tensor: its gradient so far (OT_TID_NONE: none yet) */
  bool *needs;      /* per tensor: depends on a weight, so its gradient is wanted */
  int32_t *from;    /* per tensor: the forward node of its last gradient contribution */
  int32_t fwd;      /* forward node being differentiated */
} ad_ctx;

/* A tensor's shape and dtype, copied: g->t moves when nodes are appended. */
typedef struct {
  unsigned ndim;
  int64_t shape[OT_GRAPH_MAX_DIMS];
  ot_dtype dtype;
  int64_t elems;
} ad_shape;

static ad_shape ad_shape_of(const ad_ctx *c, ot_tid t) {
  const ot_gtensor *ts = &c->g->t[t];
  ad_shape s;
  memset(&s, 0, sizeof s);
  s.ndim = ts->ndim;
  memcpy(s.shape, ts->shape, sizeof s.shape);
  s.dtype = (ot_dtype)ts->dtype;
  s.elems = ot_gtensor_elems(ts);
  return s;
}

static int ad_axis(int64_t axis, unsigned ndim) {
  if (axis < 0) axis += ndim;
  return axis >= 0 && axis < (int64_t)ndim ? (int)axis : -1;
}

/* The builder's error (sticky in g->err) copied to err, prefixed with where autodiff was. */
static ot_status ad_fail_builder(const ad_ctx *c) {
  const char *fw = c->fwd >= 0 ? c->g->node[c->fwd].name : "(gradient seed)";
  return ot_error_set(c->err, c->g->err.code ? c->g->err.code : OT_EINVAL,
                      "autodiff of node '%s': %s", fw, c->g->err.code ? c->g->err.msg : "node not added");
}

/* "<forward>.bwd.<what>", made unique with a numeric suffix if needed. */
static void ad_name(const ad_ctx *c, const char *what, char *buf, size_t size) {
  const char *fw = c->fwd >= 0 ? c->g->node[c->fwd].name : "loss";
  snprintf(buf, size, "%s.bwd.%s", fw, what);
  for (unsigned n = 2;; n++) {
    bool taken = ot_graph_find(c->g, buf) != OT_TID_NONE;
    for (uint32_t k = 0; !taken && k < c->g->n_node; k++) taken = !strcmp(c->g->node[k].name, buf);
    if (!taken) return;
    snprintf(buf, size, "%s.bwd.%s.%u", fw, what, n);
  }
}

/* Append proto with inputs in[0..n_in) named after what; returns the node index or -1. */
static int32_t ad_emit_node(ad_ctx *c, ot_gnode *p, const char *what, const ot_tid *in, uint32_t n_in) {
  char name[256];
  ad_name(c, what, name, sizeof name);
  p->name = name;
  p->in = (ot_tid *)(uintptr_t)in;  /* read only: add_node copies it */
  p->n_in = n_in;
  p->forward = c->fwd;
  int32_t idx = ot_graph_add_node(c->g, p);
  if (idx >= 0) c->g->node[idx].forward = c->fwd;
  return idx;
}

static ot_tid ad_emit(ad_ctx *c, ot_gnode *p, const char *what, const ot_tid *in, uint32_t n_in) {
  int32_t idx = ad_emit_node(c, p, what, in, n_in);
  return idx < 0 ? OT_TID_NONE : c->g->node[idx].out[0];
}

/* ---- small builders (each returns OT_TID_NONE after a builder error) --------------------- */
static ot_tid ad_unary(ad_ctx *c, ot_gop op, const char *what, ot_tid x) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, op);
  return ad_emit(c, &p, what, &x, 1);
}

static ot_tid ad_binary(ad_ctx *c, ot_gop op, const char *what, ot_tid a, ot_tid b) {
  if (a == OT_TID_NONE || b == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, op);
  ot_tid in[2] = {a, b};
  return ad_emit(c, &p, what, in, 2);
}

static ot_tid ad_list_op(ad_ctx *c, ot_gop op, const char *what, ot_tid x, unsigned n, const int64_t *list) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, op);
  p.n_list = n;
  for (unsigned d = 0; d < n; d++) p.list[d] = list[d];
  return ad_emit(c, &p, what, &x, 1);
}

static ot_tid ad_reshape(ad_ctx *c, const char *what, ot_tid x, unsigned n, const int64_t *shape) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ad_shape s = ad_shape_of(c, x);
  if (s.ndim == n && !memcmp(s.shape, shape, n * sizeof *shape)) return x;
  return ad_list_op(c, OT_GOP_RESHAPE, what, x, n, shape);
}

/* x viewed as [rows, last]: leading dims flattened. */
static ot_tid ad_rows(ad_ctx *c, const char *what, ot_tid x, int64_t last) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  int64_t shape[2] = {ad_shape_of(c, x).elems / last, last};
  return ad_reshape(c, what, x, 2, shape);
}

/* Swap the last two axes. */
static ot_tid ad_transpose_last2(ad_ctx *c, const char *what, ot_tid x) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  unsigned n = ad_shape_of(c, x).ndim;
  int64_t perm[OT_GRAPH_MAX_DIMS];
  for (unsigned d = 0; d < n; d++) perm[d] = d;
  perm[n - 2] = n - 1;
  perm[n - 1] = n - 2;
  return ad_list_op(c, OT_GOP_TRANSPOSE, what, x, n, perm);
}

static ot_tid ad_matmul(ad_ctx *c, const char *what, ot_tid a, ot_tid b, bool tb) {
  if (a == OT_TID_NONE || b == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_MATMUL);
  p.i[0] = tb;
  ot_tid in[2] = {a, b};
  return ad_emit(c, &p, what, in, 2);
}

static ot_tid ad_reduce(ad_ctx *c, ot_gop op, const char *what, ot_tid x, int64_t axis, bool keepdim) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, op);
  p.i[0] = axis;
  p.i[1] = keepdim;
  return ad_emit(c, &p, what, &x, 1);
}

static ot_tid ad_scale(ad_ctx *c, const char *what, ot_tid x, float s) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SCALE);
  p.f[0] = s;
  return ad_emit(c, &p, what, &x, 1);
}

static ot_tid ad_cast(ad_ctx *c, const char *what, ot_tid x, ot_dtype dt) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  if (ad_shape_of(c, x).dtype == dt) return x;
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_CAST);
  p.i[0] = dt;
  return ad_emit(c, &p, what, &x, 1);
}

static ot_tid ad_slice(ad_ctx *c, const char *what, ot_tid x, int64_t axis, int64_t start, int64_t end) {
  if (x == OT_TID_NONE) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SLICE);
  p.i[0] = axis;
  p.i[1] = start;
  p.i[2] = end;
  return ad_emit(c, &p, what, &x, 1);
}

/* A zero constant named after what (its data: zero bytes, zero in every dtype). */
static ot_tid ad_zeros(ad_ctx *c, const char *what, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  int64_t n = 1;
  for (unsigned d = 0; d < ndim; d++) n *= shape[d];
  void *zero = calloc((size_t)n, ot_dtype_size(dt));
  if (!zero) {
    ot_error_set(c->err, OT_ENOMEM, "autodiff of node '%s': out of memory for a zero constant",
                 c->g->node[c->fwd].name);
    return OT_TID_NONE;
  }
  char name[256];
  ad_name(c, what, name, sizeof name);
  ot_tid t = ot_graph_const(c->g, name, dt, ndim, shape, zero);
  free(zero);
  return t;
}

/* ---- gradient bookkeeping --------------------------------------------------------------- */
/* Add d to the gradient of x (if x wants one); d must have x's element count. */
static void ad_accum(ad_ctx *c, ot_tid x, ot_tid d, const char *what) {
  if (x == OT_TID_NONE || !c->needs[x] || d == OT_TID_NONE) return;
  ad_shape s = ad_shape_of(c, x);
  d = ad_reshape(c, what, d, s.ndim, s.shape);
  if (d == OT_TID_NONE) return;
  c->from[x] = c->fwd;
  if (c->grad[x] == OT_TID_NONE) {
    c->grad[x] = d;
    return;
  }
  char acc[64];
  snprintf(acc, sizeof acc, "%s.acc", what);
  c->grad[x] = ad_binary(c, OT_GOP_ADD, acc, c->grad[x], d);
}

/* dy summed down to b's shape, b being dy's shape or a suffix of it (binary broadcast). */
static ot_tid ad_unbroadcast(ad_ctx *c, const char *what, ot_tid dy, ot_tid b) {
  ad_shape sb = ad_shape_of(c, b), sy = ad_shape_of(c, dy);
  if (sb.elems == sy.elems) return dy;
  ot_tid r = ad_reduce(c, OT_GOP_REDUCE_SUM, what, ad_rows(c, "unbc.rows", dy, sb.elems), 0, false);
  return r;  /* reshaped to b's shape by ad_accum */
}

/* ---- per-op backward -------------------------------------------------------------------- */
typedef ot_status (*ad_fn)(ad_ctx *c, const ot_gnode *n, ot_tid dy);

static bool ad_wants(const ad_ctx *c, const ot_gnode *n, unsigned k) {
  return k < n->n_in && n->in[k] != OT_TID_NONE && c->needs[n->in[k]];
}

static ot_status ad_bwd_MATMUL(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid a = n->in[0], b = n->in[1];
  bool tb = n->i[0] != 0;
  if (ad_wants(c, n, 0)) ad_accum(c, a, ad_matmul(c, "da", dy, b, !tb), "da");
  if (!ad_wants(c, n, 1)) return OT_OK;
  ad_shape sa = ad_shape_of(c, a), sb = ad_shape_of(c, b), sy = ad_shape_of(c, dy);
  ot_tid db;
  if (sb.ndim == 2) {  /* shared b: flatten the leading dims into the contraction */
    ot_tid a2 = ad_rows(c, "db.a2", a, sa.shape[sa.ndim - 1]);
    ot_tid dy2 = ad_rows(c, "db.dy2", dy, sy.shape[sy.ndim - 1]);
    db = tb ? ad_matmul(c, "db", ad_transpose_last2(c, "db.dyT", dy2), a2, false)
            : ad_matmul(c, "db", ad_transpose_last2(c, "db.aT", a2), dy2, false);
  } else {
    db = tb ? ad_matmul(c, "db", ad_transpose_last2(c, "db.dyT", dy), a, false)
            : ad_matmul(c, "db", ad_transpose_last2(c, "db.aT", a), dy, false);
  }
  ad_accum(c, b, db, "db");
  return OT_OK;
}

static ot_status ad_bwd_LINEAR(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid x = n->in[0], w = n->in[1];
  bool out_in = n->i[0] != 0;
  if (ad_wants(c, n, 0)) ad_accum(c, x, ad_matmul(c, "dx", dy, w, !out_in), "dx");
  ad_shape sx = ad_shape_of(c, x), sy = ad_shape_of(c, dy);
  int64_t in = sx.ndim ? sx.shape[sx.ndim - 1] : 1, out = sy.ndim ? sy.shape[sy.ndim - 1] : 1;
  bool want_w = ad_wants(c, n, 1), want_b = ad_wants(c, n, 2);
  ot_tid dy2 = want_w || want_b ? ad_rows(c, "dy2", dy, out) : OT_TID_NONE;
  if (want_w) {
    ot_tid x2 = ad_rows(c, "dw.x2", x, in);
    ot_tid dw = out_in ? ad_matmul(c, "dw", ad_transpose_last2(c, "dw.dyT", dy2), x2, false)
                       : ad_matmul(c, "dw", ad_transpose_last2(c, "dw.xT", x2), dy2, false);
    ad_accum(c, w, dw, "dw");
  }
  if (want_b) ad_accum(c, n->in[2], ad_reduce(c, OT_GOP_REDUCE_SUM, "db", dy2, 0, false), "db");
  return OT_OK;
}

/* add, sub, mul: b is a's shape or a suffix of it. */
static ot_status ad_binary_bwd(ad_ctx *c, const ot_gnode *n, ot_tid dy, ot_gop op) {
  ot_tid a = n->in[0], b = n->in[1];
  if (ad_wants(c, n, 0)) ad_accum(c, a, op == OT_GOP_MUL ? ad_binary(c, OT_GOP_MUL, "da", dy, b) : dy, "da");
  if (!ad_wants(c, n, 1)) return OT_OK;
  ot_tid d = op == OT_GOP_MUL ? ad_binary(c, OT_GOP_MUL, "db.prod", dy, a) : dy;
  d = ad_unbroadcast(c, "db.sum", d, b);
  if (op == OT_GOP_SUB) d = ad_scale(c, "db", d, -1.0f);
  ad_accum(c, b, d, "db");
  return OT_OK;
}
static ot_status ad_bwd_ADD(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_binary_bwd(c, n, dy, OT_GOP_ADD); }
static ot_status ad_bwd_SUB(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_binary_bwd(c, n, dy, OT_GOP_SUB); }
static ot_status ad_bwd_MUL(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_binary_bwd(c, n, dy, OT_GOP_MUL); }

static ot_status ad_bwd_SCALE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_accum(c, n->in[0], ad_scale(c, "dx", dy, n->f[0]), "dx");
  return OT_OK;
}

/* A *_bwd node with inputs in[0..n_in) and its outputs given to targets[k] (NONE: unused). */
static ot_status ad_fused(ad_ctx *c, const ot_gnode *n, ot_gop op, const ot_tid *in, uint32_t n_in,
                          const ot_tid *targets, unsigned n_targets) {
  ot_gnode p;
  ot_gnode_init(&p, op);
  memcpy(p.f, n->f, sizeof p.f);  /* eps, scale, tanh, causal: same slots as the forward op */
  memcpy(p.i, n->i, sizeof p.i);
  int32_t idx = ad_emit_node(c, &p, "grad", in, n_in);
  if (idx < 0) return OT_OK;  /* reported by the caller from g->err */
  static const char *const what[] = {"d0", "d1", "d2"};
  for (unsigned k = 0; k < n_targets && k < c->g->node[idx].n_out; k++)
    if (targets[k] != OT_TID_NONE) ad_accum(c, targets[k], c->g->node[idx].out[k], what[k]);
  return OT_OK;
}

static ot_status ad_bwd_SOFTMAX(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[2] = {n->out[0], dy};
  return ad_fused(c, n, OT_GOP_SOFTMAX_BWD, in, 2, n->in, 1);
}

static ot_status ad_bwd_LAYERNORM(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[3] = {n->in[0], n->in[1], dy};
  return ad_fused(c, n, OT_GOP_LAYERNORM_BWD, in, 3, n->in, 3);
}

static ot_status ad_bwd_RMSNORM(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[3] = {n->in[0], n->in[1], dy};
  return ad_fused(c, n, OT_GOP_RMSNORM_BWD, in, 3, n->in, 2);
}

static ot_status ad_bwd_GELU(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[2] = {n->in[0], dy};
  return ad_fused(c, n, OT_GOP_GELU_BWD, in, 2, n->in, 1);
}

static ot_status ad_bwd_SILU(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[2] = {n->in[0], dy};
  return ad_fused(c, n, OT_GOP_SILU_BWD, in, 2, n->in, 1);
}

static ot_status ad_bwd_SWIGLU(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[3] = {n->in[0], n->in[1], dy};
  return ad_fused(c, n, OT_GOP_SWIGLU_BWD, in, 3, n->in, 2);
}

static ot_status ad_bwd_EMBEDDING(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_EMBEDDING_BWD);
  p.i[0] = ad_shape_of(c, n->in[1]).shape[0];  /* rows = V */
  ot_tid in[2] = {n->in[0], dy};
  ad_accum(c, n->in[1], ad_emit(c, &p, "dtable", in, 2), "dtable");
  return OT_OK;
}

static ot_status ad_bwd_ROPE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_ROPE);
  memcpy(p.f, n->f, sizeof p.f);
  memcpy(p.i, n->i, sizeof p.i);
  p.i[1] = !n->i[1];  /* the rotation by the negative angle is the transpose */
  ad_accum(c, n->in[0], ad_emit(c, &p, "dx", &dy, 1), "dx");
  return OT_OK;
}

static ot_status ad_bwd_ATTENTION(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  int64_t sq = ad_shape_of(c, n->in[0]).shape[2], skv = ad_shape_of(c, n->in[1]).shape[2];
  if (sq != skv) /* attention over a KV cache is for generation only */
    return ot_error_set(c->err, OT_EUNSUPPORTED, "autodiff of node '%s' (attention): %lld queries against %lld keys "
                        "(a KV cache) has no backward; supported: as many keys as queries", n->name, (long long)sq,
                        (long long)skv);
  ot_tid in[5] = {n->in[0], n->in[1], n->in[2], n->out[0], dy};
  return ad_fused(c, n, OT_GOP_ATTENTION_BWD, in, 5, n->in, 3);
}

static ot_status ad_bwd_CROSS_ENTROPY(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ot_tid in[3] = {n->in[0], n->in[1], dy};
  return ad_fused(c, n, OT_GOP_CROSS_ENTROPY_BWD, in, 3, n->in, 1);
}

static ot_status ad_bwd_TRANSPOSE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  int64_t inv[OT_GNODE_MAX_LIST];
  for (unsigned d = 0; d < n->n_list && d < OT_GNODE_MAX_LIST; d++) {
    int ax = ad_axis(n->list[d], n->n_list);
    if (ax < 0) return ot_error_set(c->err, OT_EINVAL, "autodiff of node '%s' (transpose): perm entry %u "
                                    "is %lld, not an axis", n->name, d, (long long)n->list[d]);
    inv[ax] = d;
  }
  ad_accum(c, n->in[0], ad_list_op(c, OT_GOP_TRANSPOSE, "dx", dy, n->n_list, inv), "dx");
  return OT_OK;
}

static ot_status ad_bwd_RESHAPE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_accum(c, n->in[0], dy, "dx");  /* ad_accum reshapes to x's shape */
  return OT_OK;
}

static ot_status ad_bwd_CONCAT(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_shape sy = ad_shape_of(c, dy);
  int ax = ad_axis(n->i[0], sy.ndim);
  int64_t off = 0;
  for (unsigned k = 0; ax >= 0 && k < n->n_in; k++) {
    int64_t len = ad_shape_of(c, n->in[k]).shape[ax];
    char what[32];
    snprintf(what, sizeof what, "dx%u", k);
    if (ad_wants(c, n, k)) ad_accum(c, n->in[k], ad_slice(c, what, dy, ax, off, off + len), what);
    off += len;
  }
  return OT_OK;
}

/* dx = the output gradients joined, zeros where an output has none. */
static ot_status ad_bwd_SPLIT(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  (void)dy;
  ot_tid parts[OT_GNODE_MAX_LIST];
  ot_dtype dt = OT_DT_FP32;
  for (unsigned k = 0; k < n->n_out; k++)
    if (c->grad[n->out[k]] != OT_TID_NONE) dt = ad_shape_of(c, c->grad[n->out[k]]).dtype;
  for (unsigned k = 0; k < n->n_out && k < OT_GNODE_MAX_LIST; k++) {
    ad_shape so = ad_shape_of(c, n->out[k]);
    ot_tid gk = c->grad[n->out[k]];
    char what[32];
    snprintf(what, sizeof what, "zero%u", k);
    parts[k] = gk != OT_TID_NONE ? ad_cast(c, what, gk, dt) : ad_zeros(c, what, dt, so.ndim, so.shape);
    if (parts[k] == OT_TID_NONE) return OT_OK;
  }
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_CONCAT);
  p.i[0] = n->i[0];
  ad_accum(c, n->in[0], ad_emit(c, &p, "dx", parts, n->n_out), "dx");
  return OT_OK;
}

/* dx = [zeros before, dy, zeros after] along the axis. */
static ot_status ad_bwd_SLICE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_shape sx = ad_shape_of(c, n->in[0]), sy = ad_shape_of(c, dy);
  int ax = ad_axis(n->i[0], sx.ndim);
  if (ax < 0) return OT_OK;
  int64_t start = n->i[1] < 0 ? n->i[1] + sx.shape[ax] : n->i[1], len = sy.shape[ax];
  int64_t before = start, after = sx.shape[ax] - start - len;
  ot_tid parts[3];
  unsigned np = 0;
  ad_shape z = sx;
  if (before > 0) {
    z.shape[ax] = before;
    parts[np++] = ad_zeros(c, "zero.before", sy.dtype, z.ndim, z.shape);
  }
  parts[np++] = dy;
  if (after > 0) {
    z.shape[ax] = after;
    parts[np++] = ad_zeros(c, "zero.after", sy.dtype, z.ndim, z.shape);
  }
  for (unsigned k = 0; k < np; k++)
    if (parts[k] == OT_TID_NONE) return OT_OK;
  if (np == 1) {
    ad_accum(c, n->in[0], dy, "dx");
    return OT_OK;
  }
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_CONCAT);
  p.i[0] = ax;
  ad_accum(c, n->in[0], ad_emit(c, &p, "dx", parts, np), "dx");
  return OT_OK;
}

/* t (a reduction's result) with the reduced axis put back as size 1. */
static ot_tid ad_keepdim(ad_ctx *c, const char *what, ot_tid t, const ad_shape *sx, int ax) {
  ad_shape k = *sx;
  k.shape[ax] = 1;
  return ad_reshape(c, what, t, k.ndim, k.shape);
}

static ot_tid ad_broadcast_to(ad_ctx *c, const char *what, ot_tid t, const ad_shape *s) {
  return ad_list_op(c, OT_GOP_BROADCAST, what, t, s->ndim, s->shape);
}

static ot_status ad_reduce_bwd(ad_ctx *c, const ot_gnode *n, ot_tid dy, bool mean) {
  ad_shape sx = ad_shape_of(c, n->in[0]);
  int ax = ad_axis(n->i[0], sx.ndim);
  if (ax < 0) return OT_OK;
  ot_tid d = mean ? ad_scale(c, "dy.mean", dy, 1.0f / (float)sx.shape[ax]) : dy;
  d = ad_broadcast_to(c, "dx", ad_keepdim(c, "dy.keepdim", d, &sx, ax), &sx);
  ad_accum(c, n->in[0], d, "dx");
  return OT_OK;
}
static ot_status ad_bwd_REDUCE_SUM(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_reduce_bwd(c, n, dy, false); }
static ot_status ad_bwd_REDUCE_MEAN(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_reduce_bwd(c, n, dy, true); }

/* The maximum's one-hot mask, ties sharing equally (as torch.amax): softmax over the axis of
** (x - max) * 1e38, which is exactly 1 at a unique maximum and 0 elsewhere (a difference of
** two floats is 0 only when they are equal, and any non-zero one times 1e38 is < -88, whose
** exp is 0).  Non-last axes are moved last and back. */
static ot_tid ad_max_mask(ad_ctx *c, const ot_gnode *n, const ad_shape *sx, int ax) {
  ot_tid y = ad_broadcast_to(c, "max.b", ad_keepdim(c, "max.k", n->out[0], sx, ax), sx);
  ot_tid d = ad_scale(c, "max.sharp", ad_binary(c, OT_GOP_SUB, "max.diff", n->in[0], y), 1e38f);
  int64_t perm[OT_GRAPH_MAX_DIMS];
  for (unsigned k = 0; k < sx->ndim; k++) perm[k] = k;
  perm[ax] = sx->ndim - 1;
  perm[sx->ndim - 1] = ax;
  bool last = (unsigned)ax == sx->ndim - 1;
  if (!last) d = ad_list_op(c, OT_GOP_TRANSPOSE, "max.t", d, sx->ndim, perm);
  d = ad_unary(c, OT_GOP_SOFTMAX, "max.mask", d);
  return last ? d : ad_list_op(c, OT_GOP_TRANSPOSE, "max.mask.t", d, sx->ndim, perm);
}

static ot_status ad_bwd_REDUCE_MAX(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_shape sx = ad_shape_of(c, n->in[0]);
  int ax = ad_axis(n->i[0], sx.ndim);
  if (ax < 0) return OT_OK;
  ot_tid mask = ad_max_mask(c, n, &sx, ax);
  ot_tid d = ad_broadcast_to(c, "dy.b", ad_keepdim(c, "dy.keepdim", dy, &sx, ax), &sx);
  ad_accum(c, n->in[0], ad_binary(c, OT_GOP_MUL, "dx", d, mask), "dx");
  return OT_OK;
}

static ot_status ad_bwd_CAST(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_accum(c, n->in[0], ad_cast(c, "dx", dy, ad_shape_of(c, n->in[0]).dtype), "dx");
  return OT_OK;
}

/* broadcast's backward sums over the repeated axes: leading ones first, then size-1 ones. */
static ot_status ad_bwd_BROADCAST(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  ad_shape sx = ad_shape_of(c, n->in[0]), sy = ad_shape_of(c, dy);
  ot_tid d = dy;
  unsigned lead = sy.ndim - sx.ndim;
  if (lead > 0) {
    int64_t shape[OT_GRAPH_MAX_DIMS + 1], lead_n = 1;
    for (unsigned k = 0; k < lead; k++) lead_n *= sy.shape[k];
    shape[0] = lead_n;
    for (unsigned k = 0; k < sx.ndim; k++) shape[k + 1] = sy.shape[lead + k];
    d = ad_reduce(c, OT_GOP_REDUCE_SUM, "dx.lead", ad_reshape(c, "dy.lead", d, sx.ndim + 1, shape), 0, false);
  }
  for (unsigned k = 0; k < sx.ndim; k++)
    if (sx.shape[k] == 1 && sy.shape[lead + k] != 1) d = ad_reduce(c, OT_GOP_REDUCE_SUM, "dx.axis", d, k, true);
  ad_accum(c, n->in[0], d, "dx");
  return OT_OK;
}

static ot_status ad_unsupported(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  (void)dy;
  return ot_error_set(c->err, OT_EUNSUPPORTED, "autodiff: node '%s' (op %s) lies between the weights and "
                      "the loss, but %s has no backward (supported: every forward op of graph_ops.def and "
                      "broadcast; not the *_bwd ops, so no second derivatives, nor the optimiser ops)", n->name,
                      ot_gop_table[n->op].name, ot_gop_table[n->op].name);
}
#define AD_UNSUPPORTED(id) \
  static ot_status ad_bwd_##id(ad_ctx *c, const ot_gnode *n, ot_tid dy) { return ad_unsupported(c, n, dy); }
AD_UNSUPPORTED(SOFTMAX_BWD)
AD_UNSUPPORTED(LAYERNORM_BWD)
AD_UNSUPPORTED(RMSNORM_BWD)
AD_UNSUPPORTED(GELU_BWD)
AD_UNSUPPORTED(SILU_BWD)
AD_UNSUPPORTED(SWIGLU_BWD)
AD_UNSUPPORTED(EMBEDDING_BWD)
AD_UNSUPPORTED(ATTENTION_BWD)
AD_UNSUPPORTED(CROSS_ENTROPY_BWD)
AD_UNSUPPORTED(GLOBAL_NORM)
AD_UNSUPPORTED(ADAMW)
#undef AD_UNSUPPORTED

/* Writing a KV cache is an inference step: nothing to differentiate. */
static ot_status ad_bwd_KV_WRITE(ad_ctx *c, const ot_gnode *n, ot_tid dy) {
  (void)dy;
  return ot_error_set(c->err, OT_EUNSUPPORTED, "autodiff: node '%s' (kv_write) lies between the weights and the "
                      "loss; kv_write (a KV-cache update for generation) has no backward", n->name);
}

static const ad_fn ad_table[OT_GOP_COUNT] = {
#define GOP(id, name, nin, nout, attrs, doc) ad_bwd_##id,
#include "compiler/graph_ops.def"
#undef GOP
};

/* ---- driver ----------------------------------------------------------------------------- */
/* needs[t]: t is a float weight, or a float output of a node with such an input. */
static void ad_mark_needs(ad_ctx *c) {
  const ot_graph *g = c->g;
  for (uint32_t t = 0; t < g->n_t; t++)
    c->needs[t] = g->t[t].role == OT_GROLE_WEIGHT && g->t[t].dtype != OT_DT_INT32;
  for (uint32_t k = 0; k < g->n_node; k++) {
    const ot_gnode *n = &g->node[k];
    bool any = false;
    for (uint32_t j = 0; j < n->n_in; j++) any |= n->in[j] != OT_TID_NONE && c->needs[n->in[j]];
    for (uint32_t j = 0; j < n->n_out; j++) c->needs[n->out[j]] = any && g->t[n->out[j]].dtype != OT_DT_INT32;
  }
}

static ot_status ad_check_loss(const ot_graph *g, ot_tid loss, ot_error *err) {
  if (!ot_graph_valid(g, loss))
    return ot_error_set(err, OT_EINVAL, "autodiff: loss tensor id %d is not a tensor of this graph (it has %u)",
                        (int)loss, g->n_t);
  const ot_gtensor *t = &g->t[loss];
  if (t->ndim > 1 || ot_gtensor_elems(t) != 1) {
    char buf[96];
    return ot_error_set(err, OT_EINVAL, "autodiff: loss '%s' is %s; expected a scalar ([1] or []): reduce it "
                        "first (reduce_mean, cross_entropy)", t->name, ot_gtensor_describe(t, buf, sizeof buf));
  }
  return OT_OK;
}

/* Is tid d the gradient of some other weight already, or a leaf (the seed)? Then a weight's
** gradient needs its own copy to carry its own name. */
static bool ad_grad_shared(const ad_ctx *c, ot_tid d) {
  if (c->g->t[d].producer < 0) return true;
  for (uint32_t t = 0; t < c->g->n_t; t++)
    if (c->g->t[t].role == OT_GROLE_WEIGHT && c->g->t[t].grad == d) return true;
  return false;
}

/* Each weight's gradient: fp32, its own tensor, named "<weight>.grad", an output. */
static ot_status ad_finish_weights(ad_ctx *c, uint32_t n_leaves_t) {
  for (uint32_t w = 0; w < n_leaves_t; w++) {
    if (c->g->t[w].role != OT_GROLE_WEIGHT || c->grad[w] == OT_TID_NONE) continue;
    c->fwd = c->from[w];  /* the copy or cast belongs to the last consumer's backward */
    char what[256], gname[256];
    snprintf(what, sizeof what, "%s.fp32", c->g->t[w].name);
    snprintf(gname, sizeof gname, "%s.grad", c->g->t[w].name);
    ot_tid d = c->grad[w];
    if (ad_shape_of(c, d).dtype != OT_DT_FP32) d = ad_cast(c, what, d, OT_DT_FP32);
    else if (ad_grad_shared(c, d)) d = ad_scale(c, what, d, 1.0f);
    if (d == OT_TID_NONE) return ad_fail_builder(c);
    ot_graph_output(c->g, d, gname);
    if (c->g->err.code) return ad_fail_builder(c);
    c->g->t[w].grad = d;
  }
  return OT_OK;
}

static ot_status ad_seed(ad_ctx *c, ot_tid loss) {
  ad_shape s = ad_shape_of(c, loss);
  float one = 1.0f;
  char name[256];
  snprintf(name, sizeof name, "%s.grad_seed", c->g->t[loss].name);
  c->grad[loss] = ot_graph_const(c->g, name, OT_DT_FP32, s.ndim, s.shape, &one);
  return c->grad[loss] == OT_TID_NONE ? ad_fail_builder(c) : OT_OK;
}

static ot_status ad_run(ad_ctx *c, ot_tid loss, uint32_t n_fwd) {
  ot_status st = ad_seed(c, loss);
  for (int32_t k = (int32_t)n_fwd - 1; !st && k >= 0; k--) {
    ot_gnode n = c->g->node[k];  /* a copy: g->node moves as nodes are appended */
    bool has = false, wants = false;
    for (uint32_t j = 0; j < n.n_out; j++) has |= c->grad[n.out[j]] != OT_TID_NONE;
    for (uint32_t j = 0; j < n.n_in; j++) wants |= ad_wants(c, &n, j);
    if (!has || !wants) continue;
    c->fwd = k;
    st = ad_table[n.op](c, &n, c->grad[n.out[0]]);
    if (!st && c->g->err.code) st = ad_fail_builder(c);
  }
  return st;
}

ot_status ot_graph_backward(ot_graph *g, ot_tid loss, ot_error *err) {
  if (!g) return ot_error_set(err, OT_EINVAL, "autodiff: graph is NULL");
  if (g->err.code) return ot_error_set(err, g->err.code, "autodiff: the graph has an error: %s", g->err.msg);
  ot_status st = ad_check_loss(g, loss, err);
  if (st) return st;
  for (uint32_t k = 0; k < g->n_node; k++)
    if (g->node[k].forward >= 0)
      return ot_error_set(err, OT_EINVAL, "autodiff: the graph already has backward nodes ('%s'); "
                          "ot_graph_backward runs once per graph", g->node[k].name);
  /* The per-tensor arrays cover the forward tensors: only they are differentiated. */
  uint32_t n_t0 = g->n_t, n_fwd = g->n_node;
  ad_ctx c = {g, err, malloc((n_t0 + 1) * sizeof(ot_tid)), malloc((n_t0 + 1) * sizeof(bool)),
              malloc((n_t0 + 1) * sizeof(int32_t)), -1};
  if (c.grad && c.needs && c.from) {
    for (uint32_t t = 0; t < n_t0; t++) {
      c.grad[t] = OT_TID_NONE;
      c.from[t] = -1;
    }
    ad_mark_needs(&c);
    st = ad_run(&c, loss, n_fwd);
    if (!st) st = ad_finish_weights(&c, n_t0);
  } else {
    st = ot_error_set(err, OT_ENOMEM, "autodiff: out of memory for %u tensors", n_t0);
  }
  free(c.grad);
  free(c.needs);
  free(c.from);
  return st;
}

ot_tid ot_graph_grad(const ot_graph *g, ot_tid w) {
  if (!g || !ot_graph_valid(g, w)) return OT_TID_NONE;
  return g->t[w].grad;
}
