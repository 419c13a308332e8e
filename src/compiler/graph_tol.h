/* How close a computed tensor must be to its reference: the one definition shared by the
** reference evaluator's tests against PyTorch (tests/compiler/ref_harness.h), the compiled
** programs' tests (test_device_torch.c) and --check-numerics (src/model/numerics.c).
**
** Element i passes when
**     |x[i] - ref[i]| <= atol * scale + rtol * |ref[i]|,   scale = max_j |ref[j]|
** (atol is relative to the tensor's scale, so a value near zero in a tensor of large values is
** not held to an impossible relative bound).  Pairs (docs/autodiff.md):
**   fp32 values against an fp32/float64 reference: atol 2e-6, rtol 2e-5;
**   bf16 values, and every value computed with bf16 operands anywhere upstream: 2e-2, 2e-2
**   (about 5 bf16 ulps: a bf16 rounding is 2^-9 relative, and errors add along a chain). */
#ifndef OT_COMPILER_GRAPH_TOL_H
#define OT_COMPILER_GRAPH_TOL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#define OT_TOL_FP32_ATOL 2e-6
#define OT_TOL_FP32_RTOL 2e-5
#define OT_TOL_BF16_ATOL 2e-2
#define OT_TOL_BF16_RTOL 2e-2

typedef struct {
  double atol, rtol;
} ot_tol;

/* The fp32 pair, or the bf16 pair when anything upstream is computed in bf16 (lowp). */
static inline ot_tol ot_tol_pair(bool lowp) {
  ot_tol t = {lowp ? OT_TOL_BF16_ATOL : OT_TOL_FP32_ATOL, lowp ? OT_TOL_BF16_RTOL : OT_TOL_FP32_RTOL};
  return t;
}

typedef struct {
  double scale;    /* max |ref| */
  double max_abs;  /* max |x - ref| (infinite if x holds a NaN or an infinity) */
  double max_rel;  /* max_abs / scale */
  double worst;    /* max |x - ref| / (atol * scale + rtol * |ref|): <= 1 passes */
  int64_t at;      /* element of the worst ratio */
} ot_tol_err;

/* Compare n values with their reference. */
static inline ot_tol_err ot_tol_compare(const float *x, const float *ref, int64_t n, ot_tol tol) {
  ot_tol_err e = {0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i++) e.scale = fmax(e.scale, fabs((double)ref[i]));
  double scale = e.scale > 0 ? e.scale : 1e-30;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)x[i] - (double)ref[i]);
    if (isnan(d) || isinf(x[i])) d = INFINITY;
    double r = d / (tol.atol * scale + tol.rtol * fabs((double)ref[i]));
    e.max_abs = fmax(e.max_abs, d);
    if (r > e.worst || (i == 0 && r >= e.worst)) {
      e.worst = r;
      e.at = i;
    }
  }
  e.max_rel = e.max_abs / scale;
  return e;
}

#endif
