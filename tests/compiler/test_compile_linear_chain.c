/* Two linears in a row (an MLP: linear, gelu, linear), compiled and run on the simulator: the
** first computes y^T (the weight as the stationary operand, the bias per partition with the
** activation) and stores it K-major as "<name>^T", the second reads it without PE transposes
** (lower_fuse_linear_chain).  Checked against a double-precision host reference of the same
** fp32 operands, with the race checker on, for shapes that are not multiples of 128. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <opentrn/compile.h>
#include <opentrn/device.h>
#include "compiler/device_io.h"

static void fill(float *v, size_t n, uint32_t seed, float scale) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = scale * ((float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
}

static double gelu_tanh(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

typedef struct {
  int64_t B, S, K, H, N;   /* x [B, S, K] (B = 0: x [S, K]); w1 [K, H] (or [H, K]); w2 [H, N] */
  bool w1_out_in, gelu, resid;
  const char *want;        /* the transposed tensor the program must hold, NULL: none */
} chain_case;

/* h = gelu(x w1 + b1) rounded to fp32 as the device stores it; y = h w2 + b2 (+ r). */
static void reference(const chain_case *cc, const float *x, const float *w1, const float *b1, const float *w2,
                      const float *b2, const float *r, double *y) {
  int64_t M = (cc->B ? cc->B : 1) * cc->S;
  float *h = malloc((size_t)(cc->H ? cc->H : 1) * sizeof *h);
  assert_non_null(h);
  for (int64_t m = 0; m < M; m++) {
    for (int64_t j = 0; j < cc->H; j++) {
      double s = 0;
      for (int64_t k = 0; k < cc->K; k++) s += (double)x[m * cc->K + k] * (cc->w1_out_in ? w1[j * cc->K + k] : w1[k * cc->H + j]);
      s += b1[j];
      h[j] = (float)(cc->gelu ? gelu_tanh(s) : s);
    }
    for (int64_t n = 0; n < cc->N; n++) {
      double s = 0;
      for (int64_t j = 0; j < cc->H; j++) s += (double)h[j] * w2[j * cc->N + n];
      y[m * cc->N + n] = s + b2[n] + (cc->resid ? r[m * cc->N + n] : 0.0);
    }
  }
  free(h);
}

static void run_chain(const chain_case *cc) {
  int64_t M = (cc->B ? cc->B : 1) * cc->S;
  ot_graph *g = ot_graph_new();
  int64_t xs[3] = {cc->B, cc->S, cc->K}, rs[3] = {cc->B, cc->S, cc->N};
  unsigned nd = cc->B ? 3 : 2;
  int64_t w1s[2] = {cc->w1_out_in ? cc->H : cc->K, cc->w1_out_in ? cc->K : cc->H}, w2s[2] = {cc->H, cc->N};
  ot_tid x = ot_graph_input(g, "x", OT_DT_FP32, nd, cc->B ? xs : xs + 1);
  ot_tid w1 = ot_graph_weight(g, "w1", OT_DT_FP32, 2, w1s), b1 = ot_graph_weight(g, "b1", OT_DT_FP32, 1, &cc->H);
  ot_tid w2 = ot_graph_weight(g, "w2", OT_DT_FP32, 2, w2s), b2 = ot_graph_weight(g, "b2", OT_DT_FP32, 1, &cc->N);
  ot_tid h = ot_graph_linear(g, "fc", x, w1, b1, cc->w1_out_in);
  if (cc->gelu) h = ot_graph_gelu(g, "h", h, true);
  ot_tid y = ot_graph_linear(g, "proj", h, w2, b2, false);
  if (cc->resid) y = ot_graph_add(g, "res", ot_graph_input(g, "r", OT_DT_FP32, nd, cc->B ? rs : rs + 1), y);
  ot_graph_output(g, y, "y");
  assert_int_equal(ot_graph_status(g), OT_OK);

  ot_program *p = dev_compile(g, OT_DT_FP32);
  ot_error err;
  ot_error_clear(&err);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  ot_tensor_desc desc;
  if (cc->want) {
    assert_int_equal(ot_device_tensor_find(d, cc->want, &desc), OT_OK);
    assert_int_equal(desc.bytes, (uint64_t)(M * cc->H * 4));
  } else {
    assert_int_not_equal(ot_device_tensor_find(d, "h^T", &desc), OT_OK);
    assert_int_not_equal(ot_device_tensor_find(d, "fc^T", &desc), OT_OK);
  }

  size_t nx = (size_t)(M * cc->K), nw1 = (size_t)(cc->K * cc->H), nw2 = (size_t)(cc->H * cc->N), ny = (size_t)(M * cc->N);
  float *xv = malloc(nx * 4), *w1v = malloc(nw1 * 4), *b1v = malloc((size_t)cc->H * 4), *w2v = malloc(nw2 * 4);
  float *b2v = malloc((size_t)cc->N * 4), *rv = malloc(ny * 4), *yv = malloc(ny * 4);
  double *ref = malloc(ny * sizeof *ref);
  assert_true(xv && w1v && b1v && w2v && b2v && rv && yv && ref);
  fill(xv, nx, 1, 1.0f);
  fill(w1v, nw1, 2, 0.3f);
  fill(b1v, (size_t)cc->H, 3, 0.5f);
  fill(w2v, nw2, 4, 0.2f);
  fill(b2v, (size_t)cc->N, 5, 0.5f);
  fill(rv, ny, 6, 1.0f);
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, xv, nx * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "w1", OT_DT_FP32, w1v, nw1 * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "b1", OT_DT_FP32, b1v, (size_t)cc->H * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "w2", OT_DT_FP32, w2v, nw2 * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "b2", OT_DT_FP32, b2v, (size_t)cc->N * 4), OT_OK);
  if (cc->resid) assert_int_equal(ot_device_write(d, "r", OT_DT_FP32, rv, ny * 4), OT_OK);
  dev_run_checked(d, "linear chain", false);
  assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, yv, ny * 4), OT_OK);
  reference(cc, xv, w1v, b1v, w2v, b2v, rv, ref);
  double tol = 1e-5 * sqrt((double)(cc->K + cc->H)) + 1e-6;
  for (size_t i = 0; i < ny; i++)
    if (fabs(yv[i] - ref[i]) > tol * (1 + fabs(ref[i]))) {
      fprintf(stderr, "S=%lld K=%lld H=%lld N=%lld: y[%zu] = %.8g, reference %.8g\n", (long long)cc->S, (long long)cc->K,
              (long long)cc->H, (long long)cc->N, i, yv[i], ref[i]);
      fail();
    }
  free(xv); free(w1v); free(b1v); free(w2v); free(b2v); free(rv); free(yv); free(ref);
  ot_device_close(d);
  ot_program_free(p);
  ot_graph_free(g);
}

/* Rows and hidden features not multiples of 128: partial m-tiles and a partial bias column. */
static void test_mlp_odd_shapes(void **state) {
  (void)state;
  chain_case a = {0, 200, 96, 300, 70, false, true, false, "h^T"};
  run_chain(&a);
  chain_case b = {2, 100, 129, 257, 130, true, true, true, "h^T"}; /* [B, S, K] rows, w1 [H, K], residual */
  run_chain(&b);
  chain_case c = {0, 130, 64, 128, 40, false, false, false, "fc^T"}; /* no activation */
  run_chain(&c);
}

/* Fewer than 128 rows: y keeps its layout (no transposed tensor), still correct. */
static void test_mlp_few_rows(void **state) {
  (void)state;
  chain_case a = {0, 7, 96, 300, 70, false, true, false, NULL};
  run_chain(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mlp_odd_shapes),
    cmocka_unit_test(test_mlp_few_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
