/* The reference evaluator: every graph op in fp32 on the host, exactly as graph_ops.def says.
**
** It is the oracle the compiled programs are checked against (tests, --check-numerics), so it
** is written for clarity and determinism, not speed:
**   - every sum accumulates in fp32, starting from 0, in increasing index order (the innermost
**     loop of the formula as written); nothing uses double, so the results are the same on every
**     machine (the build has -ffp-contract=off);
**   - a tensor whose dtype is bf16 is rounded (RNE) to bf16 after its node computed it in fp32;
**   - leaves are used as given (bf16 leaves should hold bf16 values); a constant whose value is
**     NULL is filled from its data.
** The accumulation orders and the tolerances against PyTorch are in docs/autodiff.md. */
#include "compiler/graph_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const ot_graph *g;
  const ot_gnode *n;
  int32_t idx;      /* node index */
  float **v;
  ot_error *err;
} ref_ctx;

typedef ot_status (*ref_fn)(const ref_ctx *c);

/* ---- helpers ---------------------------------------------------------------------------- */
static const ot_gtensor *ref_in_t(const ref_ctx *c, unsigned k) { return &c->g->t[c->n->in[k]]; }
static const ot_gtensor *ref_out_t(const ref_ctx *c, unsigned k) { return &c->g->t[c->n->out[k]]; }
static const float *ref_in(const ref_ctx *c, unsigned k) {
  return c->n->in[k] == OT_TID_NONE ? NULL : c->v[c->n->in[k]];
}
static float *ref_out(const ref_ctx *c, unsigned k) { return c->v[c->n->out[k]]; }
static int64_t ref_last(const ot_gtensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static ot_status ref_fail(const ref_ctx *c, ot_status code, const char *what) {
  return ot_error_set(c->err, code, "graph node '%s' (%s, node %d): %s", c->n->name,
                      ot_gop_table[c->n->op].name, c->idx, what);
}

static ot_status ref_shape_fail(const ref_ctx *c, const char *expected) {
  char buf[512], a[96], b[96];
  const char *in0 = c->n->n_in && c->n->in[0] != OT_TID_NONE
                        ? ot_gtensor_describe(ref_in_t(c, 0), a, sizeof a) : "none";
  const char *out0 = c->n->n_out ? ot_gtensor_describe(ref_out_t(c, 0), b, sizeof b) : "none";
  snprintf(buf, sizeof buf, "shapes not handled by the reference evaluator (input %s, output %s); "
           "expected %s", in0, out0, expected);
  return ref_fail(c, OT_EINVAL, buf);
}

/* Normalise a possibly negative axis; -1 if out of range. */
static int ref_axis(int64_t axis, unsigned ndim) {
  if (axis < 0) axis += ndim;
  return axis >= 0 && axis < (int64_t)ndim ? (int)axis : -1;
}

/* Split a shape around axis: outer * len * inner. */
static void ref_around(const ot_gtensor *t, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < axis; d++) *outer *= t->shape[d];
  *len = t->shape[axis];
  for (unsigned d = (unsigned)axis + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

static float ref_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- matmul, linear ----------------------------------------------------------------------- */
/* y[M, N] = a[M, K] @ b (b [K, N], or [N, K] if tb); k ascending. */
static void ref_gemm(const float *a, const float *b, const float *bias, float *y, int64_t m, int64_t k,
                     int64_t n, bool tb) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; p++) acc += a[i * k + p] * (tb ? b[j * k + p] : b[p * n + j]);
      y[i * n + j] = bias ? acc + bias[j] : acc;
    }
}

static ot_status ref_MATMUL(const ref_ctx *c) {
  const ot_gtensor *a = ref_in_t(c, 0), *b = ref_in_t(c, 1), *y = ref_out_t(c, 0);
  bool tb = c->n->i[0] != 0;
  if (a->ndim < 2 || b->ndim < 2 || (b->ndim > 2 && b->ndim != a->ndim))
    return ref_shape_fail(c, "a [..., M, K] and b [K, N] or [..., K, N]");
  int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
  int64_t n = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
  int64_t kb = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
  int64_t batch = ot_gtensor_elems(a) / (m * k > 0 ? m * k : 1);
  if (kb != k || ot_gtensor_elems(y) != batch * m * n ||
      (b->ndim > 2 && ot_gtensor_elems(b) != batch * k * n))
    return ref_shape_fail(c, "matching contraction sizes");
  if (b->ndim == 2) {  /* shared b: one [batch*M, K] @ b */
    ref_gemm(ref_in(c, 0), ref_in(c, 1), NULL, ref_out(c, 0), batch * m, k, n, tb);
    return OT_OK;
  }
  for (int64_t s = 0; s < batch; s++)
    ref_gemm(ref_in(c, 0) + s * m * k, ref_in(c, 1) + s * k * n, NULL, ref_out(c, 0) + s * m * n, m, k,
             n, tb);
  return OT_OK;
}

static ot_status ref_LINEAR(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0), *w = ref_in_t(c, 1), *y = ref_out_t(c, 0);
  bool out_in = c->n->i[0] != 0;
  if (x->ndim < 1 || w->ndim != 2) return ref_shape_fail(c, "x [..., in] and w 2-D");
  int64_t in = ref_last(x), out = out_in ? w->shape[0] : w->shape[1];
  if ((out_in ? w->shape[1] : w->shape[0]) != in || ot_gtensor_elems(y) != ot_gtensor_elems(x) / in * out)
    return ref_shape_fail(c, "w [in, out] ([out, in] with w_out_in)");
  if (c->n->n_in > 2 && c->n->in[2] != OT_TID_NONE && ot_gtensor_elems(ref_in_t(c, 2)) != out)
    return ref_shape_fail(c, "bias [out]");
  ref_gemm(ref_in(c, 0), ref_in(c, 1), c->n->n_in > 2 ? ref_in(c, 2) : NULL, ref_out(c, 0),
           ot_gtensor_elems(x) / in, in, out, out_in);
  return OT_OK;
}

/* ---- element-wise ----------------------------------------------------------------------- */
/* b is a's shape or a suffix of it: b's index is a's modulo b's element count. */
static ot_status ref_binary(const ref_ctx *c, int kind) {
  int64_t na = ot_gtensor_elems(ref_in_t(c, 0)), nb = ot_gtensor_elems(ref_in_t(c, 1));
  if (nb < 1 || na % nb || ot_gtensor_elems(ref_out_t(c, 0)) != na)
    return ref_shape_fail(c, "b with a's shape or a suffix of it");
  const float *a = ref_in(c, 0), *b = ref_in(c, 1);
  float *y = ref_out(c, 0);
  for (int64_t i = 0; i < na; i++) {
    float bv = b[i % nb];
    y[i] = kind == 0 ? a[i] + bv : kind == 1 ? a[i] - bv : a[i] * bv;
  }
  return OT_OK;
}
static ot_status ref_ADD(const ref_ctx *c) { return ref_binary(c, 0); }
static ot_status ref_SUB(const ref_ctx *c) { return ref_binary(c, 1); }
static ot_status ref_MUL(const ref_ctx *c) { return ref_binary(c, 2); }

static ot_status ref_SCALE(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = ref_in(c, 0)[i] * c->n->f[0];
  return OT_OK;
}

static float ref_gelu(float x, bool tanh_approx) {
  if (tanh_approx) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

static float ref_gelu_grad(float x, bool tanh_approx) {
  if (tanh_approx) {
    const float k = 0.7978845608028654f;
    float t = tanhf(k * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
  }
  const float inv_sqrt_2pi = 0.3989422804014327f;
  return 0.5f * (1.0f + erff(x * 0.7071067811865476f)) + x * inv_sqrt_2pi * expf(-0.5f * x * x);
}

static float ref_silu_grad(float x) {
  float s = ref_sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

static ot_status ref_GELU(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = ref_gelu(ref_in(c, 0)[i], c->n->i[0] != 0);
  return OT_OK;
}

static ot_status ref_SILU(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = ref_in(c, 0)[i] * ref_sigmoid(ref_in(c, 0)[i]);
  return OT_OK;
}

static ot_status ref_SWIGLU(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  if (ot_gtensor_elems(ref_in_t(c, 1)) != n) return ref_shape_fail(c, "gate and up of one shape");
  const float *gt = ref_in(c, 0), *up = ref_in(c, 1);
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = gt[i] * ref_sigmoid(gt[i]) * up[i];
  return OT_OK;
}

static ot_status ref_GELU_BWD(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  if (ot_gtensor_elems(ref_in_t(c, 1)) != n) return ref_shape_fail(c, "x and dy of one shape");
  for (int64_t i = 0; i < n; i++)
    ref_out(c, 0)[i] = ref_in(c, 1)[i] * ref_gelu_grad(ref_in(c, 0)[i], c->n->i[0] != 0);
  return OT_OK;
}

static ot_status ref_SILU_BWD(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  if (ot_gtensor_elems(ref_in_t(c, 1)) != n) return ref_shape_fail(c, "x and dy of one shape");
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = ref_in(c, 1)[i] * ref_silu_grad(ref_in(c, 0)[i]);
  return OT_OK;
}

static ot_status ref_SWIGLU_BWD(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  if (ot_gtensor_elems(ref_in_t(c, 1)) != n || ot_gtensor_elems(ref_in_t(c, 2)) != n)
    return ref_shape_fail(c, "gate, up and dy of one shape");
  const float *gt = ref_in(c, 0), *up = ref_in(c, 1), *dy = ref_in(c, 2);
  for (int64_t i = 0; i < n; i++) {
    ref_out(c, 0)[i] = dy[i] * up[i] * ref_silu_grad(gt[i]);
    ref_out(c, 1)[i] = dy[i] * gt[i] * ref_sigmoid(gt[i]);
  }
  return OT_OK;
}

/* ---- row-wise: softmax, norms ------------------------------------------------------------ */
static void ref_softmax_row(const float *x, float *y, int64_t d) {
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j = 0; j < d; j++) mx = fmaxf(mx, x[j]);
  for (int64_t j = 0; j < d; j++) {
    y[j] = expf(x[j] - mx);
    sum += y[j];
  }
  for (int64_t j = 0; j < d; j++) y[j] /= sum;
}

static ot_status ref_SOFTMAX(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0);
  int64_t d = ref_last(x), rows = d ? ot_gtensor_elems(x) / d : 0;
  for (int64_t r = 0; r < rows; r++) ref_softmax_row(ref_in(c, 0) + r * d, ref_out(c, 0) + r * d, d);
  return OT_OK;
}

static ot_status ref_SOFTMAX_BWD(const ref_ctx *c) {
  const ot_gtensor *y = ref_in_t(c, 0);
  int64_t d = ref_last(y), rows = d ? ot_gtensor_elems(y) / d : 0;
  if (ot_gtensor_elems(ref_in_t(c, 1)) != ot_gtensor_elems(y)) return ref_shape_fail(c, "y and dy of one shape");
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = ref_in(c, 0) + r * d, *dy = ref_in(c, 1) + r * d;
    float dot = 0.0f;
    for (int64_t j = 0; j < d; j++) dot += dy[j] * yr[j];
    for (int64_t j = 0; j < d; j++) ref_out(c, 0)[r * d + j] = yr[j] * (dy[j] - dot);
  }
  return OT_OK;
}

/* Checks x [..., D] against the optional gamma/beta [D] of input slots 1 and 2 (slot 2 only
** when has_beta) and the output. */
static ot_status ref_norm_check(const ref_ctx *c, bool has_beta, int64_t *rows, int64_t *d) {
  const ot_gtensor *x = ref_in_t(c, 0);
  *d = ref_last(x);
  *rows = *d ? ot_gtensor_elems(x) / *d : 0;
  for (unsigned k = 1; k < (has_beta ? 3u : 2u); k++)
    if (k < c->n->n_in && c->n->in[k] != OT_TID_NONE && ot_gtensor_elems(ref_in_t(c, k)) != *d)
      return ref_shape_fail(c, "gamma and beta [D] for x [..., D]");
  return OT_OK;
}

/* mean and 1/sqrt(var + eps) of one row (biased variance, two passes). */
static void ref_ln_stats(const float *x, int64_t d, float eps, float *mean, float *rstd) {
  float s = 0.0f, v = 0.0f;
  for (int64_t j = 0; j < d; j++) s += x[j];
  *mean = s / (float)d;
  for (int64_t j = 0; j < d; j++) v += (x[j] - *mean) * (x[j] - *mean);
  *rstd = 1.0f / sqrtf(v / (float)d + eps);
}

static ot_status ref_LAYERNORM(const ref_ctx *c) {
  int64_t rows, d;
  ot_status st = ref_norm_check(c, true, &rows, &d);
  if (st) return st;
  const float *gm = ref_in(c, 1), *bt = c->n->n_in > 2 ? ref_in(c, 2) : NULL;
  for (int64_t r = 0; r < rows; r++) {
    const float *x = ref_in(c, 0) + r * d;
    float *y = ref_out(c, 0) + r * d, mean, rstd;
    ref_ln_stats(x, d, c->n->f[0], &mean, &rstd);
    for (int64_t j = 0; j < d; j++)
      y[j] = (x[j] - mean) * rstd * (gm ? gm[j] : 1.0f) + (bt ? bt[j] : 0.0f);
  }
  return OT_OK;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma, dbeta summed
** over rows in increasing row order. */
static ot_status ref_LAYERNORM_BWD(const ref_ctx *c) {
  int64_t rows, d;
  ot_status st = ref_norm_check(c, false, &rows, &d);
  if (st) return st;
  const float *gm = ref_in(c, 1);
  float *dg = c->n->n_out > 1 ? ref_out(c, 1) : NULL, *db = c->n->n_out > 2 ? ref_out(c, 2) : NULL;
  for (int64_t j = 0; j < d; j++) {
    if (dg) dg[j] = 0.0f;
    if (db) db[j] = 0.0f;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float *x = ref_in(c, 0) + r * d, *dy = ref_in(c, 2) + r * d;
    float *dx = ref_out(c, 0) + r * d, mean, rstd, sg = 0.0f, sgx = 0.0f;
    ref_ln_stats(x, d, c->n->f[0], &mean, &rstd);
    for (int64_t j = 0; j < d; j++) {
      float g = dy[j] * (gm ? gm[j] : 1.0f), xh = (x[j] - mean) * rstd;
      sg += g;
      sgx += g * xh;
      if (dg) dg[j] += dy[j] * xh;
      if (db) db[j] += dy[j];
    }
    sg /= (float)d;
    sgx /= (float)d;
    for (int64_t j = 0; j < d; j++)
      dx[j] = rstd * (dy[j] * (gm ? gm[j] : 1.0f) - sg - (x[j] - mean) * rstd * sgx);
  }
  return OT_OK;
}

static float ref_rms_rstd(const float *x, int64_t d, float eps) {
  float s = 0.0f;
  for (int64_t j = 0; j < d; j++) s += x[j] * x[j];
  return 1.0f / sqrtf(s / (float)d + eps);
}

static ot_status ref_RMSNORM(const ref_ctx *c) {
  int64_t rows, d;
  ot_status st = ref_norm_check(c, false, &rows, &d);
  if (st) return st;
  const float *gm = ref_in(c, 1);
  for (int64_t r = 0; r < rows; r++) {
    const float *x = ref_in(c, 0) + r * d;
    float rstd = ref_rms_rstd(x, d, c->n->f[0]);
    for (int64_t j = 0; j < d; j++) ref_out(c, 0)[r * d + j] = x[j] * rstd * (gm ? gm[j] : 1.0f);
  }
  return OT_OK;
}

/* dx = rstd * (g - x * rstd^2 * mean(g * x)) with g = dy * gamma; dgamma = sum_rows dy*x*rstd. */
static ot_status ref_RMSNORM_BWD(const ref_ctx *c) {
  int64_t rows, d;
  ot_status st = ref_norm_check(c, false, &rows, &d);
  if (st) return st;
  const float *gm = ref_in(c, 1);
  float *dg = c->n->n_out > 1 ? ref_out(c, 1) : NULL;
  for (int64_t j = 0; dg && j < d; j++) dg[j] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float *x = ref_in(c, 0) + r * d, *dy = ref_in(c, 2) + r * d;
    float rstd = ref_rms_rstd(x, d, c->n->f[0]), sgx = 0.0f;
    for (int64_t j = 0; j < d; j++) {
      sgx += dy[j] * (gm ? gm[j] : 1.0f) * x[j];
      if (dg) dg[j] += dy[j] * x[j] * rstd;
    }
    sgx /= (float)d;
    for (int64_t j = 0; j < d; j++)
      ref_out(c, 0)[r * d + j] = rstd * (dy[j] * (gm ? gm[j] : 1.0f) - x[j] * rstd * rstd * sgx);
  }
  return OT_OK;
}

/* ---- embedding, cross-entropy ------------------------------------------------------------ */
/* An index read from input slot: an integer in [0, rows) or an error naming the node, the
** value, its position, the ids tensor and the table ("table 'wte'" / "logits 'x'", "rows" /
** "classes"). */
static ot_status ref_index(const ref_ctx *c, unsigned slot, int64_t pos, int64_t rows, const char *table,
                           const char *unit, int64_t *out) {
  float v = ref_in(c, slot)[pos];
  if (!(v >= 0.0f && v < (float)rows && v == floorf(v))) {
    char buf[512];
    snprintf(buf, sizeof buf, "index %.9g at position %lld of '%s' is out of range for %s with %lld %s "
             "(expected an integer in [0, %lld))", (double)v, (long long)pos, ref_in_t(c, slot)->name, table,
             (long long)rows, unit, (long long)rows);
    return ref_fail(c, OT_ERANGE, buf);
  }
  *out = (int64_t)v;
  return OT_OK;
}

static ot_status ref_EMBEDDING(const ref_ctx *c) {
  const ot_gtensor *tab = ref_in_t(c, 1);
  if (tab->ndim != 2) return ref_shape_fail(c, "table [V, D]");
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0)), d = tab->shape[1];
  for (int64_t i = 0; i < n; i++) {
    int64_t row = 0; /* set by ref_index on success (initialised for -O3's flow analysis) */
    char what[256];
    snprintf(what, sizeof what, "table '%s'", tab->name);
    ot_status st = ref_index(c, 0, i, tab->shape[0], what, "rows", &row);
    if (st) return st;
    memcpy(ref_out(c, 0) + i * d, ref_in(c, 1) + row * d, (size_t)d * sizeof(float));
  }
  return OT_OK;
}

/* Scatter-add in index order: duplicates accumulate in the order they appear in ids. */
static ot_status ref_EMBEDDING_BWD(const ref_ctx *c) {
  const ot_gtensor *dt = ref_out_t(c, 0);
  if (dt->ndim != 2) return ref_shape_fail(c, "dtable [rows, D]");
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0)), d = dt->shape[1];
  if (ot_gtensor_elems(ref_in_t(c, 1)) != n * d) return ref_shape_fail(c, "dy [..., D] for ids [...]");
  float *out = ref_out(c, 0);
  memset(out, 0, (size_t)ot_gtensor_elems(dt) * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t row = 0;
    ot_status st = ref_index(c, 0, i, dt->shape[0], "the gradient table", "rows (attribute rows)", &row);
    if (st) return st;
    for (int64_t j = 0; j < d; j++) out[row * d + j] += ref_in(c, 1)[i * d + j];
  }
  return OT_OK;
}

static ot_status ref_ce_check(const ref_ctx *c, int64_t *rows, int64_t *v) {
  const ot_gtensor *lg = ref_in_t(c, 0);
  if (lg->ndim != 2 || ot_gtensor_elems(ref_in_t(c, 1)) != lg->shape[0])
    return ref_shape_fail(c, "logits [N, V] and targets [N]");
  *rows = lg->shape[0];
  *v = lg->shape[1];
  return OT_OK;
}

/* Mean over rows (summed in row order) of logsumexp(row) - row[target], max-subtracted. */
static ot_status ref_CROSS_ENTROPY(const ref_ctx *c) {
  int64_t rows = 0, v = 0;
  ot_status st = ref_ce_check(c, &rows, &v);
  float total = 0.0f;
  for (int64_t r = 0; !st && r < rows; r++) {
    const float *x = ref_in(c, 0) + r * v;
    int64_t t;
    if ((st = ref_index(c, 1, r, v, "the logits", "classes", &t))) break;
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t j = 0; j < v; j++) mx = fmaxf(mx, x[j]);
    for (int64_t j = 0; j < v; j++) sum += expf(x[j] - mx);
    total += logf(sum) + mx - x[t];
  }
  if (!st) ref_out(c, 0)[0] = total / (float)rows;
  return st;
}

static ot_status ref_CROSS_ENTROPY_BWD(const ref_ctx *c) {
  int64_t rows = 0, v = 0;
  ot_status st = ref_ce_check(c, &rows, &v);
  float g = st ? 0.0f : ref_in(c, 2)[0] / (float)rows;
  for (int64_t r = 0; !st && r < rows; r++) {
    int64_t t;
    if ((st = ref_index(c, 1, r, v, "the logits", "classes", &t))) break;
    float *dx = ref_out(c, 0) + r * v;
    ref_softmax_row(ref_in(c, 0) + r * v, dx, v);
    dx[t] -= 1.0f;
    for (int64_t j = 0; j < v; j++) dx[j] *= g;
  }
  return st;
}

/* ---- rope, attention -------------------------------------------------------------------- */
/* Angles as Hugging Face computes them, all in fp32: inv_freq = 1 / theta^(2j/D) (with the
** node's Llama-3 scaling, computed in double and rounded once: within an ulp of Hugging Face's
** fp32 tensor arithmetic), angle = p * inv_freq; then rotate_half: y[j] = x[j] cos - x[j+D/2] sin,
** y[j+D/2] = x[j+D/2] cos + x[j] sin (sin negated when inverse). */
static ot_status ref_ROPE(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0);
  if (x->ndim < 2 || x->shape[x->ndim - 1] % 2) return ref_shape_fail(c, "x [B, H, S, D] with D even");
  int64_t s = x->shape[x->ndim - 2], d = x->shape[x->ndim - 1], half = d / 2;
  int64_t outer = (s > 0 && d > 0) ? ot_gtensor_elems(x) / (s * d) : 0;
  float sign = c->n->i[1] ? -1.0f : 1.0f;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t p = 0; p < s; p++) {
      const float *xr = ref_in(c, 0) + (o * s + p) * d;
      float *yr = ref_out(c, 0) + (o * s + p) * d;
      for (int64_t j = 0; j < half; j++) {
        float inv = (float)ot_rope_scale_freq(c->n, 1.0f / powf(c->n->f[0], (float)(2 * j) / (float)d));
        float ang = (float)(c->n->i[0] + p) * inv, cs = cosf(ang), sn = sign * sinf(ang);
        yr[j] = xr[j] * cs - xr[j + half] * sn;
        yr[j + half] = xr[j + half] * cs + xr[j] * sn;
      }
    }
  return OT_OK;
}

typedef struct {
  int64_t b, hq, hkv, s, d;
  int64_t skv;      /* keys per kv head: s, or more for attention over a KV cache */
  float scale;
  bool causal;
} ref_attn;

static ot_status ref_attn_shape(const ref_ctx *c, ref_attn *a) {
  const ot_gtensor *q = ref_in_t(c, 0), *k = ref_in_t(c, 1), *v = ref_in_t(c, 2);
  bool fwd = c->n->op == OT_GOP_ATTENTION; /* only the forward takes a KV cache (Skv > S) */
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || memcmp(k->shape, v->shape, sizeof k->shape) ||
      q->shape[0] != k->shape[0] || (fwd ? k->shape[2] < q->shape[2] : q->shape[2] != k->shape[2]) ||
      q->shape[3] != k->shape[3] || k->shape[1] < 1 || q->shape[1] % k->shape[1])
    return ref_shape_fail(c, "q [B, Hq, S, D], k and v [B, Hkv, Skv, D] with Hq a multiple of Hkv and Skv >= S "
                             "(Skv = S for the backward)");
  a->skv = k->shape[2];
  a->b = q->shape[0];
  a->hq = q->shape[1];
  a->hkv = k->shape[1];
  a->s = q->shape[2];
  a->d = q->shape[3];
  a->scale = c->n->f[0] != 0.0f ? c->n->f[0] : 1.0f / sqrtf((float)a->d);
  a->causal = c->n->i[0] != 0;
  return OT_OK;
}

/* Probabilities p[0..n) of query row qi against keys kb (rows of D); returns n = keys seen. */
static int64_t ref_attn_probs(const ref_attn *a, const float *qi, const float *kb, int64_t i, float *p) {
  int64_t n = a->causal ? i + 1 + (a->skv - a->s) : a->skv; /* the last query sees the last key */
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j = 0; j < n; j++) {
    float dot = 0.0f;
    for (int64_t e = 0; e < a->d; e++) dot += qi[e] * kb[j * a->d + e];
    p[j] = dot * a->scale;
    mx = fmaxf(mx, p[j]);
  }
  for (int64_t j = 0; j < n; j++) {
    p[j] = expf(p[j] - mx);
    sum += p[j];
  }
  for (int64_t j = 0; j < n; j++) p[j] /= sum;
  return n;
}

/* Query head h reads kv head h / (Hq/Hkv) (repeat_interleave, as Hugging Face's repeat_kv). */
static int64_t ref_attn_kv(const ref_attn *a, int64_t b, int64_t h) {
  return ((b * a->hkv + h / (a->hq / a->hkv)) * a->skv) * a->d;
}

static ot_status ref_ATTENTION(const ref_ctx *c) {
  ref_attn a;
  ot_status st = ref_attn_shape(c, &a);
  if (st) return st;
  float *p = malloc((size_t)(a.skv > 0 ? a.skv : 1) * sizeof *p);
  if (!p) return ref_fail(c, OT_ENOMEM, "out of memory for the attention scores");
  for (int64_t b = 0; b < a.b; b++)
    for (int64_t h = 0; h < a.hq; h++)
      for (int64_t i = 0; i < a.s; i++) {
        int64_t qo = ((b * a.hq + h) * a.s + i) * a.d, kvo = ref_attn_kv(&a, b, h);
        int64_t n = ref_attn_probs(&a, ref_in(c, 0) + qo, ref_in(c, 1) + kvo, i, p);
        for (int64_t e = 0; e < a.d; e++) {
          float acc = 0.0f;
          for (int64_t j = 0; j < n; j++) acc += p[j] * ref_in(c, 2)[kvo + j * a.d + e];
          ref_out(c, 0)[qo + e] = acc;
        }
      }
  free(p);
  return OT_OK;
}

/* One query row of the backward: dq_i; adds into dk, dv (rows of the kv head). */
static void ref_attn_bwd_row(const ref_attn *a, const float *qi, const float *kb, const float *vb,
                             const float *yi, const float *dyi, float *dqi, float *dkb, float *dvb,
                             float *p, int64_t i) {
  int64_t n = ref_attn_probs(a, qi, kb, i, p);
  float di = 0.0f;
  for (int64_t e = 0; e < a->d; e++) di += dyi[e] * yi[e];
  for (int64_t e = 0; e < a->d; e++) dqi[e] = 0.0f;
  for (int64_t j = 0; j < n; j++) {
    float dp = 0.0f;
    for (int64_t e = 0; e < a->d; e++) dp += dyi[e] * vb[j * a->d + e];
    float ds = p[j] * (dp - di) * a->scale;
    for (int64_t e = 0; e < a->d; e++) {
      dqi[e] += ds * kb[j * a->d + e];
      dkb[j * a->d + e] += ds * qi[e];
      dvb[j * a->d + e] += p[j] * dyi[e];
    }
  }
}

/* dq, dk, dv; dk and dv sum over the query heads of a group and over query rows, in order
** (head, row) ascending.  D_i = dy_i . y_i uses the given y (flash-attention style). */
static ot_status ref_ATTENTION_BWD(const ref_ctx *c) {
  ref_attn a;
  ot_status st = ref_attn_shape(c, &a);
  if (st) return st;
  float *p = malloc((size_t)(a.s > 0 ? a.s : 1) * sizeof *p);
  if (!p) return ref_fail(c, OT_ENOMEM, "out of memory for the attention scores");
  int64_t nkv = a.b * a.hkv * a.s * a.d;
  memset(ref_out(c, 1), 0, (size_t)nkv * sizeof(float));
  memset(ref_out(c, 2), 0, (size_t)nkv * sizeof(float));
  for (int64_t b = 0; b < a.b; b++)
    for (int64_t h = 0; h < a.hq; h++)
      for (int64_t i = 0; i < a.s; i++) {
        int64_t qo = ((b * a.hq + h) * a.s + i) * a.d, kvo = ref_attn_kv(&a, b, h);
        ref_attn_bwd_row(&a, ref_in(c, 0) + qo, ref_in(c, 1) + kvo, ref_in(c, 2) + kvo, ref_in(c, 3) + qo,
                         ref_in(c, 4) + qo, ref_out(c, 0) + qo, ref_out(c, 1) + kvo, ref_out(c, 2) + kvo,
                         p, i);
      }
  free(p);
  return OT_OK;
}

/* ---- data movement ---------------------------------------------------------------------- */
static ot_status ref_RESHAPE(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  if (ot_gtensor_elems(ref_out_t(c, 0)) != n) return ref_shape_fail(c, "the same element count");
  memcpy(ref_out(c, 0), ref_in(c, 0), (size_t)n * sizeof(float));
  return OT_OK;
}

static ot_status ref_TRANSPOSE(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0), *y = ref_out_t(c, 0);
  unsigned nd = x->ndim;
  int64_t xstride[OT_GRAPH_MAX_DIMS], idx[OT_GRAPH_MAX_DIMS] = {0};
  if (c->n->n_list != nd || y->ndim != nd) return ref_shape_fail(c, "a permutation of x's axes");
  for (unsigned d = 0; d < nd; d++) {
    int ax = ref_axis(c->n->list[d], nd);
    if (ax < 0 || y->shape[d] != x->shape[ax]) return ref_shape_fail(c, "a permutation of x's axes");
  }
  int64_t st = 1;
  for (unsigned d = nd; d-- > 0;) {
    xstride[d] = st;
    st *= x->shape[d];
  }
  int64_t n = ot_gtensor_elems(y);
  for (int64_t o = 0; o < n; o++) {  /* idx walks y's index in row-major order */
    int64_t src = 0;
    for (unsigned d = 0; d < nd; d++) src += idx[d] * xstride[ref_axis(c->n->list[d], nd)];
    ref_out(c, 0)[o] = ref_in(c, 0)[src];
    for (unsigned d = nd; d-- > 0;) {
      if (++idx[d] < y->shape[d]) break;
      idx[d] = 0;
    }
  }
  return OT_OK;
}

/* Pieces of a tensor [outer, big, inner] along its middle axis: the piece [outer, len, inner] at
** offset off is written into the tensor (put) or read out of it (take). */
static void ref_piece_put(float *big, const float *piece, int64_t outer, int64_t len, int64_t inner,
                          int64_t blen, int64_t off) {
  for (int64_t o = 0; o < outer; o++)
    memcpy(big + (o * blen + off) * inner, piece + o * len * inner, (size_t)(len * inner) * sizeof(float));
}

static void ref_piece_take(float *piece, const float *big, int64_t outer, int64_t len, int64_t inner,
                           int64_t blen, int64_t off) {
  for (int64_t o = 0; o < outer; o++)
    memcpy(piece + o * len * inner, big + (o * blen + off) * inner, (size_t)(len * inner) * sizeof(float));
}

static ot_status ref_CONCAT(const ref_ctx *c) {
  const ot_gtensor *y = ref_out_t(c, 0);
  int ax = ref_axis(c->n->i[0], y->ndim);
  if (ax < 0) return ref_shape_fail(c, "an axis of the output");
  int64_t outer, ylen, inner, off = 0;
  ref_around(y, ax, &outer, &ylen, &inner);
  for (unsigned k = 0; k < c->n->n_in; k++) {
    const ot_gtensor *x = ref_in_t(c, k);
    int64_t len = x->ndim == y->ndim ? x->shape[ax] : -1;
    if (len < 0 || off + len > ylen || ot_gtensor_elems(x) != outer * len * inner)
      return ref_shape_fail(c, "inputs that differ only along axis");
    ref_piece_put(ref_out(c, 0), ref_in(c, k), outer, len, inner, ylen, off);
    off += len;
  }
  return OT_OK;
}

static ot_status ref_SPLIT(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0);
  int ax = ref_axis(c->n->i[0], x->ndim);
  if (ax < 0) return ref_shape_fail(c, "an axis of x");
  int64_t outer, xlen, inner, off = 0;
  ref_around(x, ax, &outer, &xlen, &inner);
  for (unsigned k = 0; k < c->n->n_out; k++) {
    const ot_gtensor *y = ref_out_t(c, k);
    int64_t len = y->ndim == x->ndim ? y->shape[ax] : -1;
    if (len < 0 || off + len > xlen || ot_gtensor_elems(y) != outer * len * inner)
      return ref_shape_fail(c, "outputs that cover x along axis");
    ref_piece_take(ref_out(c, k), ref_in(c, 0), outer, len, inner, xlen, off);
    off += len;
  }
  return OT_OK;
}

/* start is normalised like Python's (negative counts from the end); the length is the
** output's, as shape inference decided it. */
static ot_status ref_SLICE(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0), *y = ref_out_t(c, 0);
  int ax = ref_axis(c->n->i[0], x->ndim);
  if (ax < 0 || y->ndim != x->ndim) return ref_shape_fail(c, "an axis of x");
  int64_t outer, xlen, inner, start = c->n->i[1];
  ref_around(x, ax, &outer, &xlen, &inner);
  if (start < 0) start += xlen;
  if (start < 0 || start + y->shape[ax] > xlen) return ref_shape_fail(c, "start:end within x");
  ref_piece_take(ref_out(c, 0), ref_in(c, 0), outer, y->shape[ax], inner, xlen, start);
  return OT_OK;
}

/* kind 0 sum, 1 max, 2 mean; along the axis in increasing order. */
static ot_status ref_reduce(const ref_ctx *c, int kind) {
  const ot_gtensor *x = ref_in_t(c, 0);
  int ax = ref_axis(c->n->i[0], x->ndim);
  if (ax < 0) return ref_shape_fail(c, "an axis of x");
  int64_t outer, len, inner;
  ref_around(x, ax, &outer, &len, &inner);
  if (ot_gtensor_elems(ref_out_t(c, 0)) != outer * inner) return ref_shape_fail(c, "x without axis");
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      float acc = kind == 1 ? -INFINITY : 0.0f;
      for (int64_t l = 0; l < len; l++) {
        float v = ref_in(c, 0)[(o * len + l) * inner + i];
        acc = kind == 1 ? fmaxf(acc, v) : acc + v;
      }
      ref_out(c, 0)[o * inner + i] = kind == 2 ? acc / (float)len : acc;
    }
  return OT_OK;
}
static ot_status ref_REDUCE_SUM(const ref_ctx *c) { return ref_reduce(c, 0); }
static ot_status ref_REDUCE_MAX(const ref_ctx *c) { return ref_reduce(c, 1); }
static ot_status ref_REDUCE_MEAN(const ref_ctx *c) { return ref_reduce(c, 2); }

/* x is aligned with y's trailing axes; an axis x lacks or has with size 1 is repeated. */
static ot_status ref_BROADCAST(const ref_ctx *c) {
  const ot_gtensor *x = ref_in_t(c, 0), *y = ref_out_t(c, 0);
  if (x->ndim > y->ndim) return ref_shape_fail(c, "x with no more axes than the output");
  unsigned lead = y->ndim - x->ndim;
  int64_t xstride[OT_GRAPH_MAX_DIMS] = {0}, idx[OT_GRAPH_MAX_DIMS] = {0}, st = 1;
  for (unsigned d = y->ndim; d-- > lead;) {
    int64_t xs = x->shape[d - lead];
    if (xs != 1 && xs != y->shape[d]) return ref_shape_fail(c, "x axes of size 1 or of the output's size");
    xstride[d] = xs == 1 ? 0 : st;
    st *= xs;
  }
  int64_t n = ot_gtensor_elems(y);
  for (int64_t o = 0; o < n; o++) {
    int64_t src = 0;
    for (unsigned d = 0; d < y->ndim; d++) src += idx[d] * xstride[d];
    ref_out(c, 0)[o] = ref_in(c, 0)[src];
    for (unsigned d = y->ndim; d-- > 0;) {
      if (++idx[d] < y->shape[d]) break;
      idx[d] = 0;
    }
  }
  return OT_OK;
}

static float ref_round_to(float x, ot_dtype dt) {
  if (dt == OT_DT_FP32) return x;
  if (dt == OT_DT_INT32) return nearbyintf(x);  /* default rounding mode: to nearest even */
  return ot_bits_to_f32(ot_f32_to_bits(x, dt, NULL), dt);
}

static ot_status ref_CAST(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  ot_dtype dt = (ot_dtype)ref_out_t(c, 0)->dtype;
  for (int64_t i = 0; i < n; i++) ref_out(c, 0)[i] = ref_round_to(ref_in(c, 0)[i], dt);
  return OT_OK;
}

/* ---- KV cache ----------------------------------------------------------------------------- */
/* y = cache with rows [pos, pos + S) of axis 2 (per batch and head) replaced by new. */
static ot_status ref_KV_WRITE(const ref_ctx *c) {
  const ot_gtensor *kc = ref_in_t(c, 0), *nw = ref_in_t(c, 1);
  int64_t pos = c->n->i[0];
  if (kc->ndim != 4 || nw->ndim != 4 || pos < 0 || pos + nw->shape[2] > kc->shape[2] || kc->shape[3] != nw->shape[3] ||
      kc->shape[0] * kc->shape[1] != nw->shape[0] * nw->shape[1])
    return ref_shape_fail(c, "cache [B, H, Smax, D], new [B, H, S, D], pos + S <= Smax");
  int64_t bh = kc->shape[0] * kc->shape[1], smax = kc->shape[2], s = nw->shape[2], d = kc->shape[3];
  float *y = ref_out(c, 0);
  memcpy(y, ref_in(c, 0), (size_t)(bh * smax * d) * sizeof *y);
  for (int64_t r = 0; r < bh; r++)
    memcpy(y + (r * smax + pos) * d, ref_in(c, 1) + r * s * d, (size_t)(s * d) * sizeof *y);
  return OT_OK;
}

/* ---- optimiser ---------------------------------------------------------------------------- */
/* sqrt of the sum of squares of every input: one fp32 sum, inputs in order, elements in order. */
static ot_status ref_GLOBAL_NORM(const ref_ctx *c) {
  float acc = 0.0f;
  for (unsigned k = 0; k < c->n->n_in; k++) {
    int64_t n = ot_gtensor_elems(ref_in_t(c, k));
    for (int64_t i = 0; i < n; i++) acc += ref_in(c, k)[i] * ref_in(c, k)[i];
  }
  ref_out(c, 0)[0] = sqrtf(acc);
  return OT_OK;
}

/* The AdamW step exactly as graph_ops.def writes it, element by element in fp32. */
static ot_status ref_ADAMW(const ref_ctx *c) {
  int64_t n = ot_gtensor_elems(ref_in_t(c, 0));
  for (unsigned k = 1; k < 4; k++)
    if (ot_gtensor_elems(ref_in_t(c, k)) != n) return ref_shape_fail(c, "p, g, m and v of one shape");
  if (ot_gtensor_elems(ref_in_t(c, 4)) != 1 || ot_gtensor_elems(ref_in_t(c, 5)) != 6)
    return ref_shape_fail(c, "norm [1] and hyper [6]");
  const float *hy = ref_in(c, 5), b1 = c->n->f[0], b2 = c->n->f[1];
  float lr = hy[0], wd = c->n->i[0] ? hy[1] : 0.0f, eps = hy[2], bc1 = hy[3], bc2 = hy[4], max_norm = hy[5];
  float clip = max_norm > 0.0f ? fminf(1.0f, max_norm / (ref_in(c, 4)[0] + 1e-6f)) : 1.0f;
  for (int64_t i = 0; i < n; i++) {
    float g = ref_in(c, 1)[i] * clip, p = ref_in(c, 0)[i] * (1.0f - lr * wd);
    float m = b1 * ref_in(c, 2)[i] + (1.0f - b1) * g, v = b2 * ref_in(c, 3)[i] + (1.0f - b2) * g * g;
    ref_out(c, 0)[i] = p - lr * (m * bc1) / (sqrtf(v * bc2) + eps);
    ref_out(c, 1)[i] = m;
    ref_out(c, 2)[i] = v;
  }
  return OT_OK;
}

static const ref_fn ref_table[OT_GOP_COUNT] = {
#define GOP(id, name, nin, nout, attrs, doc) ref_##id,
#include "compiler/graph_ops.def"
#undef GOP
};

/* ---- driver ----------------------------------------------------------------------------- */
static ot_status ref_const_fill(const ot_graph *g, ot_tid t, float **values, ot_error *err) {
  const ot_gtensor *ts = &g->t[t];
  int64_t n = ot_gtensor_elems(ts);
  values[t] = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  if (!values[t]) return ot_error_set(err, OT_ENOMEM, "out of memory for constant '%s'", ts->name);
  for (int64_t i = 0; i < n; i++) values[t][i] = ot_load_f32(ts->data, (size_t)i, (ot_dtype)ts->dtype);
  return OT_OK;
}

/* Every leaf has a value (constants from their data); else name the first one missing. */
static ot_status ref_leaves(const ot_graph *g, float **values, ot_error *err) {
  for (uint32_t t = 0; t < g->n_t; t++) {
    const ot_gtensor *ts = &g->t[t];
    if (ts->producer >= 0 || values[t]) continue;
    if (ts->role == OT_GROLE_CONST && ts->data) {
      ot_status st = ref_const_fill(g, (ot_tid)t, values, err);
      if (st) return st;
      continue;
    }
    return ot_error_set(err, OT_EINVAL, "reference evaluation: %s '%s' has no value (every input, "
                        "weight and constant needs one)", ts->role == OT_GROLE_WEIGHT ? "weight" : "input",
                        ts->name);
  }
  return OT_OK;
}

static ot_status ref_node_check(const ot_graph *g, int32_t k, float **values, ot_error *err) {
  const ot_gnode *n = &g->node[k];
  if (n->op >= OT_GOP_COUNT)
    return ot_error_set(err, OT_EINVAL, "graph node '%s' (node %d): unknown op %u", n->name, k, n->op);
  for (uint32_t j = 0; j < n->n_in; j++) {
    ot_tid t = n->in[j];
    if (t == OT_TID_NONE) continue;
    if (t < 0 || (uint32_t)t >= g->n_t || !values[t])
      return ot_error_set(err, OT_EINVAL, "graph node '%s' (%s, node %d): input %u (tensor %d) is not "
                          "computed before the node", n->name, ot_gop_table[n->op].name, k, j, t);
  }
  for (uint32_t j = 0; j < n->n_out; j++) {
    ot_tid t = n->out[j];
    if (t < 0 || (uint32_t)t >= g->n_t) return ot_error_set(err, OT_EINVAL, "graph node '%s': bad output", n->name);
    int64_t cnt = ot_gtensor_elems(&g->t[t]);
    if (!values[t] && !(values[t] = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float))))
      return ot_error_set(err, OT_ENOMEM, "out of memory for '%s'", g->t[t].name);
  }
  return OT_OK;
}

/* Round every bf16 (or other narrow) output to its dtype, as the chip stores it. */
static void ref_store_round(const ot_graph *g, const ot_gnode *n, float **values) {
  for (uint32_t j = 0; j < n->n_out; j++) {
    const ot_gtensor *t = &g->t[n->out[j]];
    if (t->dtype == OT_DT_FP32) continue;
    int64_t cnt = ot_gtensor_elems(t);
    for (int64_t i = 0; i < cnt; i++) values[n->out[j]][i] = ref_round_to(values[n->out[j]][i], (ot_dtype)t->dtype);
  }
}

ot_status ot_graph_eval_ref(const ot_graph *g, float **values, ot_error *err) {
  if (!g || !values) return ot_error_set(err, OT_EINVAL, "ot_graph_eval_ref: graph and values are required");
  ot_status st = ref_leaves(g, values, err);
  for (uint32_t k = 0; !st && k < g->n_node; k++) {
    if ((st = ref_node_check(g, (int32_t)k, values, err))) break;
    ref_ctx c = {g, &g->node[k], (int32_t)k, values, err};
    if ((st = ref_table[c.n->op](&c))) break;
    ref_store_round(g, c.n, values);
  }
  return st;
}
