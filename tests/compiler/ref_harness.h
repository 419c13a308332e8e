/* Shared by test_graph_ref.c and test_autodiff.c: graphs checked against PyTorch.
**
** Each case builds a small forward graph with random leaves (fixed seed).  main() builds every
** case, writes one spec (graph structure as JSON, leaf values as raw float32) and runs
** tests/compiler/torch_ref.py once with OT_PYTHON (/usr/bin/python3, Debian's python3-torch);
** then one cmocka test per case runs ot_graph_backward (when the case has a loss) and
** ot_graph_eval_ref and compares every node output and every weight's gradient with torch's.
**
** Comparison (docs/autodiff.md): |ours - torch| <= atol * scale + rtol * |torch| per element,
** scale = the largest |torch| of the tensor; fp32 and bf16 tensors have their own (atol, rtol);
** gradients use the bf16 pair when the case computes anything in bf16.  The largest errors are
** printed per tensor ("max err/scale"), the numbers docs/autodiff.md reports. */
#ifndef OT_TESTS_REF_HARNESS_H
#define OT_TESTS_REF_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "compiler/graph.h"
#include "compiler/graph_int.h"
#include "compiler/graph_tol.h"

#define RH_MAX_T 512

/* Tolerances (docs/autodiff.md): the one definition in compiler/graph_tol.h, which
** --check-numerics uses too. */
#define RH_FP32_ATOL OT_TOL_FP32_ATOL
#define RH_FP32_RTOL OT_TOL_FP32_RTOL
#define RH_BF16_ATOL OT_TOL_BF16_ATOL
#define RH_BF16_RTOL OT_TOL_BF16_RTOL

typedef struct rh_case rh_case;
typedef void (*rh_build_fn)(rh_case *c);

struct rh_case {
  const char *name;
  rh_build_fn build;
  bool want_grad;        /* add a loss (if build did not set one) and compare gradients */
  /* filled by the harness */
  ot_graph *g;
  ot_tid loss;
  bool lowp;             /* some tensor is bf16: gradients get the bf16 tolerance */
  uint32_t n_t;          /* tensors of the forward graph */
  float *leaf[RH_MAX_T]; /* leaf values by tensor id (inputs, weights, consts) */
  double *ref;
  size_t n_ref;
  uint64_t rng;
  char build_error[1024];
};

static char rh_python_error[8192];

/* ---- random leaves ------------------------------------------------------------------------ */
static double rh_uniform(rh_case *c) { /* [0, 1), splitmix64 */
  uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static float rh_store(ot_dtype dt, float v) { return dt == OT_DT_BF16 ? ot_bf16_to_f32(ot_f32_to_bf16(v)) : v; }

static int64_t rh_elems(unsigned ndim, const int64_t *shape) {
  int64_t n = 1;
  for (unsigned d = 0; d < ndim; d++) n *= shape[d];
  return n;
}

static float *rh_random(rh_case *c, ot_dtype dt, int64_t n, float lo, float hi) {
  float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  assert_non_null(v);
  for (int64_t i = 0; i < n; i++) v[i] = rh_store(dt, lo + (hi - lo) * (float)rh_uniform(c));
  return v;
}

static void rh_keep(rh_case *c, ot_tid t, float *v) {
  if (t == OT_TID_NONE || t >= RH_MAX_T) {
    free(v);
    return;
  }
  c->leaf[t] = v;
}

/* A weight with values uniform in [lo, hi). */
static ot_tid rh_weight_r(rh_case *c, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape, float lo,
                          float hi) {
  ot_tid t = ot_graph_weight(c->g, name, dt, ndim, shape);
  rh_keep(c, t, rh_random(c, dt, rh_elems(ndim, shape), lo, hi));
  return t;
}
static ot_tid rh_weight(rh_case *c, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  return rh_weight_r(c, name, dt, ndim, shape, -1.0f, 1.0f);
}

/* An input (no gradient) with values uniform in [-1, 1). */
static ot_tid rh_input(rh_case *c, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  ot_tid t = ot_graph_input(c->g, name, dt, ndim, shape);
  rh_keep(c, t, rh_random(c, dt, rh_elems(ndim, shape), -1.0f, 1.0f));
  return t;
}

/* int32 ids in [0, range). */
static ot_tid rh_ids(rh_case *c, const char *name, unsigned ndim, const int64_t *shape, int64_t range) {
  ot_tid t = ot_graph_input(c->g, name, OT_DT_INT32, ndim, shape);
  int64_t n = rh_elems(ndim, shape);
  float *v = malloc((size_t)n * sizeof *v);
  assert_non_null(v);
  for (int64_t i = 0; i < n; i++) v[i] = (float)(int64_t)(rh_uniform(c) * (double)range);
  rh_keep(c, t, v);
  return t;
}

/* A constant with values uniform in [-1, 1). */
static ot_tid rh_const(rh_case *c, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  int64_t n = rh_elems(ndim, shape);
  float *v = rh_random(c, dt, n, -1.0f, 1.0f);
  void *raw = malloc((size_t)n * ot_dtype_size(dt));
  assert_non_null(raw);
  ot_convert(raw, dt, v, OT_DT_FP32, (size_t)n, NULL);
  ot_tid t = ot_graph_const(c->g, name, dt, ndim, shape, raw);
  free(raw);
  rh_keep(c, t, v);
  return t;
}

/* loss = sum(y * r), r a random constant of y's shape and dtype: dloss/dy = r.  Summed in two
** levels (rows, then the row sums) to keep the fp32 rounding of the loss itself small. */
static ot_tid rh_sum_loss(rh_case *c, ot_tid y) {
  if (y == OT_TID_NONE) return OT_TID_NONE;
  const ot_gtensor *t = ot_graph_tensor(c->g, y);
  unsigned nd = t->ndim;
  int64_t shape[OT_GRAPH_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  int64_t last = nd ? shape[nd - 1] : 1, n = ot_gtensor_elems(t);
  int64_t rows[2] = {n / last, last}, flat[2] = {1, n / last};
  ot_dtype dt = (ot_dtype)t->dtype;
  ot_tid r = rh_const(c, "loss.r", dt, nd, shape);
  ot_tid p = ot_graph_reshape(c->g, "loss.rows", ot_graph_mul(c->g, "loss.mul", y, r), 2, rows);
  ot_tid s = ot_graph_reshape(c->g, "loss.flat", ot_graph_reduce_sum(c->g, "loss.rowsum", p, 1, false), 2, flat);
  return ot_graph_reduce_sum(c->g, "loss", s, 1, false);
}

/* ---- spec and reference file ------------------------------------------------------------ */
static const char *rh_role(unsigned r) {
  static const char *const names[] = {
#define OT_X(id, name) name,
      OT_GROLE_MAP(OT_X)
#undef OT_X
  };
  return r < OT_GROLE_COUNT ? names[r] : "?";
}

static void rh_json_ints(FILE *f, const int64_t *v, unsigned n) {
  fputc('[', f);
  for (unsigned k = 0; k < n; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)v[k]);
  fputc(']', f);
}

static void rh_json_tensor(FILE *f, const ot_gtensor *t, bool last) {
  fprintf(f, "    {\"name\": \"%s\", \"role\": \"%s\", \"dtype\": \"%s\", \"shape\": ", t->name, rh_role(t->role),
          ot_dtype_name((ot_dtype)t->dtype));
  rh_json_ints(f, t->shape, t->ndim);
  fprintf(f, "}%s\n", last ? "" : ",");
}

static void rh_json_node(FILE *f, const ot_gnode *n, bool last) {
  int64_t ids[64];
  fprintf(f, "    {\"name\": \"%s\", \"op\": \"%s\", \"in\": ", n->name, ot_gop_table[n->op].name);
  for (unsigned k = 0; k < n->n_in && k < 64; k++) ids[k] = n->in[k];
  rh_json_ints(f, ids, n->n_in < 64 ? n->n_in : 64);
  fprintf(f, ", \"out\": ");
  for (unsigned k = 0; k < n->n_out && k < 64; k++) ids[k] = n->out[k];
  rh_json_ints(f, ids, n->n_out < 64 ? n->n_out : 64);
  fprintf(f, ", \"f\": [");
  for (unsigned k = 0; k < OT_GNODE_MAX_F; k++) fprintf(f, "%s%.9g", k ? ", " : "", (double)n->f[k]);
  fprintf(f, "], \"i\": ");
  rh_json_ints(f, n->i, OT_GNODE_MAX_I);
  fprintf(f, ", \"list\": ");
  rh_json_ints(f, n->list, n->n_list);
  fprintf(f, "}%s\n", last ? "" : ",");
}

static void rh_paths(const char *prog, const rh_case *c, const char *what, char *buf, size_t size) {
  snprintf(buf, size, "%s/compiler_ref/%s.%s.%s", OT_BINARY_DIR, prog, c->name, what);
}

static bool rh_write_case(FILE *f, const char *prog, rh_case *c, bool last) {
  char data[1024], out[1024];
  rh_paths(prog, c, "in.f32", data, sizeof data);
  rh_paths(prog, c, "torch.f64", out, sizeof out);
  FILE *d = fopen(data, "wb");
  if (!d) return false;
  for (uint32_t t = 0; t < c->n_t; t++) {
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    if (ts->role != OT_GROLE_VALUE) fwrite(c->leaf[t], sizeof(float), (size_t)ot_gtensor_elems(ts), d);
  }
  fclose(d);
  fprintf(f, "  {\"name\": \"%s\", \"data\": \"%s\", \"out\": \"%s\", \"loss\": %d,\n   \"tensors\": [\n", c->name, data,
          out, (int)c->loss);
  for (uint32_t t = 0; t < c->n_t; t++) rh_json_tensor(f, ot_graph_tensor(c->g, (ot_tid)t), t + 1 == c->n_t);
  fprintf(f, "   ],\n   \"nodes\": [\n");
  for (uint32_t k = 0; k < c->g->n_node; k++) rh_json_node(f, &c->g->node[k], k + 1 == c->g->n_node);
  fprintf(f, "   ]}%s\n", last ? "" : ",");
  return true;
}

static void rh_build(rh_case *c, uint64_t seed) {
  c->g = ot_graph_new();
  c->rng = seed;
  c->loss = OT_TID_NONE;
  c->build(c);
  if (c->want_grad && c->loss == OT_TID_NONE && c->g->n_node)
    c->loss = rh_sum_loss(c, c->g->node[c->g->n_node - 1].out[0]);
  c->n_t = c->g->n_t;
  for (uint32_t t = 0; t < c->n_t; t++) c->lowp |= ot_graph_tensor(c->g, (ot_tid)t)->dtype == OT_DT_BF16;
  if (ot_graph_status(c->g)) snprintf(c->build_error, sizeof c->build_error, "%s", ot_graph_error(c->g));
  else if (c->n_t > RH_MAX_T) snprintf(c->build_error, sizeof c->build_error, "too many tensors");
}

static bool rh_load(const char *prog, rh_case *c) {
  char path[1024];
  rh_paths(prog, c, "torch.f64", path, sizeof path);
  FILE *f = fopen(path, "rb");
  unsigned char h[16];
  if (!f) return false;
  bool ok = fread(h, 1, 16, f) == 16 && !memcmp(h, "OTGRREF1", 8);
  uint64_t n = 0;
  for (int k = 0; ok && k < 8; k++) n |= (uint64_t)h[8 + k] << (8 * k);
  c->ref = ok ? malloc((size_t)(n ? n : 1) * sizeof(double)) : NULL;
  ok = ok && c->ref && fread(c->ref, sizeof(double), (size_t)n, f) == n;
  c->n_ref = (size_t)n;
  fclose(f);
  return ok;
}

/* Build every case, run torch once, load its answers.  Problems are kept for the tests. */
static void rh_prepare(const char *prog, rh_case *cases, size_t n) {
  char dir[512], spec[1024];
  snprintf(dir, sizeof dir, "%s/compiler_ref", OT_BINARY_DIR);
  mkdir(dir, 0777);
  snprintf(spec, sizeof spec, "%s/%s.spec.json", dir, prog);
  FILE *f = fopen(spec, "w");
  if (!f) {
    snprintf(rh_python_error, sizeof rh_python_error, "cannot write %s", spec);
    return;
  }
  fprintf(f, "{\"cases\": [\n");
  size_t n_ok = 0, written = 0;
  for (size_t k = 0; k < n; k++) {
    rh_build(&cases[k], 0x5EED0000u + k * 7919u);
    n_ok += !cases[k].build_error[0];
  }
  for (size_t k = 0; k < n; k++)
    if (!cases[k].build_error[0]) rh_write_case(f, prog, &cases[k], ++written == n_ok);
  fprintf(f, "]}\n");
  fclose(f);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' '%s/tests/compiler/torch_ref.py' '%s'", OT_PYTHON, OT_SOURCE_DIR, spec);
  int rc = system(cmd);
  int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code != 0) {
    snprintf(rh_python_error, sizeof rh_python_error, "PyTorch reference failed (exit code %d%s): this test needs "
             "%s with numpy and torch (Debian python3-numpy, python3-torch); command: %s", code,
             code == 127 ? ", interpreter not found" : "", OT_PYTHON, cmd);
    return;
  }
  for (size_t k = 0; k < n; k++)
    if (!cases[k].build_error[0] && !rh_load(prog, &cases[k]))
      snprintf(cases[k].build_error, sizeof cases[k].build_error, "cannot read torch's answer for %s", cases[k].name);
}

/* ---- comparison ------------------------------------------------------------------------- */
typedef struct {
  double max_abs, max_norm; /* largest |ours - torch|, and that over the tensor's scale */
  double worst;             /* largest |diff| / (atol * scale + rtol * |torch|): <= 1 passes */
} rh_err;

static rh_err rh_compare(const float *ours, const double *ref, int64_t n, bool lowp) {
  double scale = 0.0, atol = lowp ? RH_BF16_ATOL : RH_FP32_ATOL, rtol = lowp ? RH_BF16_RTOL : RH_FP32_RTOL;
  rh_err e = {0, 0, 0};
  for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
  if (scale == 0.0) scale = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)ours[i] - ref[i]);
    if (!(d == d) || isinf(ours[i])) d = INFINITY;
    e.max_abs = fmax(e.max_abs, d);
    e.worst = fmax(e.worst, d / (atol * scale + rtol * fabs(ref[i])));
  }
  e.max_norm = e.max_abs / scale;
  return e;
}

static bool rh_check(const rh_case *c, const char *kind, const char *tname, const char *op, const float *ours,
                     const double *ref, int64_t n, bool lowp) {
  rh_err e = rh_compare(ours, ref, n, lowp);
  bool ok = e.worst <= 1.0;
  print_message("[vs torch] %-20s %-4s %-14s %-28s max_abs %.3e  max_err/scale %.3e  (%s tol) %s\n", c->name, kind, op,
                tname, e.max_abs, e.max_norm, lowp ? "bf16" : "fp32", ok ? "" : "FAIL");
  return ok;
}

/* The values array: copies of the inputs and weights; constants fill themselves. */
static float **rh_values(const rh_case *c) {
  float **v = calloc(c->g->n_t, sizeof *v);
  assert_non_null(v);
  for (uint32_t t = 0; t < c->n_t; t++) {
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    if (ts->role != OT_GROLE_INPUT && ts->role != OT_GROLE_WEIGHT) continue;
    size_t bytes = (size_t)ot_gtensor_elems(ts) * sizeof(float);
    v[t] = malloc(bytes);
    assert_non_null(v[t]);
    memcpy(v[t], c->leaf[t], bytes);
  }
  return v;
}

static void rh_values_free(const ot_graph *g, float **v) {
  for (uint32_t t = 0; t < g->n_t; t++) free(v[t]);
  free(v);
}

static const char *rh_op_of(const ot_graph *g, ot_tid t) {
  int32_t p = ot_graph_tensor(g, t)->producer;
  return p >= 0 ? ot_gop_table[g->node[p].op].name : "leaf";
}

/* Forward values of every node output, then gradients of every weight. */
static void rh_run_case(void **state) {
  rh_case *c = *state;
  if (rh_python_error[0]) fail_msg("%s", rh_python_error);
  if (c->build_error[0]) fail_msg("case %s: %s", c->name, c->build_error);
  ot_error err;
  ot_error_clear(&err);
  if (c->loss != OT_TID_NONE && ot_graph_backward(c->g, c->loss, &err)) fail_msg("case %s: %s", c->name, err.msg);
  float **v = rh_values(c);
  if (ot_graph_eval_ref(c->g, v, &err)) fail_msg("case %s: %s", c->name, err.msg);
  size_t off = 0, bad = 0;
  for (uint32_t t = 0; t < c->n_t; t++) {
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    int64_t n = ot_gtensor_elems(ts);
    assert_true(off + (size_t)n <= c->n_ref);
    if (ts->role == OT_GROLE_VALUE && ts->dtype != OT_DT_INT32)
      bad += !rh_check(c, "fwd", ts->name, rh_op_of(c->g, (ot_tid)t), v[t], c->ref + off, n, ts->dtype == OT_DT_BF16);
    off += (size_t)n;
  }
  for (uint32_t t = 0; t < c->n_t; t++) {
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    if (ts->role != OT_GROLE_WEIGHT) continue;
    int64_t n = ot_gtensor_elems(ts);
    assert_true(off + (size_t)n <= c->n_ref);
    ot_tid gt = ot_graph_grad(c->g, (ot_tid)t);
    if (c->loss != OT_TID_NONE) {
      if (gt == OT_TID_NONE) {
        print_error("case %s: weight %s has no gradient\n", c->name, ts->name);
        bad++;
      } else {
        assert_int_equal(ot_graph_tensor(c->g, gt)->dtype, OT_DT_FP32);
        bad += !rh_check(c, "grad", ts->name, "", v[gt], c->ref + off, n, c->lowp);
      }
    }
    off += (size_t)n;
  }
  assert_int_equal(off, c->n_ref);
  rh_values_free(c->g, v);
  if (bad) fail_msg("case %s: %zu tensors differ from PyTorch beyond the tolerance", c->name, bad);
}

static void rh_free(rh_case *cases, size_t n) {
  for (size_t k = 0; k < n; k++) {
    for (unsigned t = 0; t < RH_MAX_T; t++) free(cases[k].leaf[t]);
    free(cases[k].ref);
    ot_graph_free(cases[k].g);
  }
}

/* Run the cases as one cmocka group named prog with run (rh_run_case: the host reference
** evaluator), plus extra plain tests. */
static int rh_main_with(const char *prog, rh_case *cases, size_t n, CMUnitTestFunction run, const struct CMUnitTest *extra,
                        size_t n_extra) {
  rh_prepare(prog, cases, n);
  struct CMUnitTest *tests = calloc(n + n_extra, sizeof *tests);
  if (!tests) return 1;
  for (size_t k = 0; k < n; k++) {
    tests[k].name = cases[k].name;
    tests[k].test_func = run;
    tests[k].initial_state = &cases[k];
  }
  for (size_t k = 0; k < n_extra; k++) tests[n + k] = extra[k];
  int rc = _cmocka_run_group_tests(prog, tests, n + n_extra, NULL, NULL);
  free(tests);
  rh_free(cases, n);
  return rc;
}

static inline int rh_main(const char *prog, rh_case *cases, size_t n, const struct CMUnitTest *extra, size_t n_extra) {
  return rh_main_with(prog, cases, n, rh_run_case, extra, n_extra);
}

#endif
