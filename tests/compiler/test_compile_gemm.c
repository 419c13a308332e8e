/* The GEMM lowering (matmul, linear, fused transpose / bias / activation) compiled and run on
** the simulator, against a double-precision host reference of the same bf16- or fp32-rounded
** operands.  Every run is race-checked: kir's semaphores must order every conflicting access. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "compiler/kir.h"
#include "compiler/device_io.h"
#include "util/fileio.h"

static float bf16_round(float x) { return ot_bf16_to_f32(ot_f32_to_bf16(x)); }

static void fill(float *v, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
}

static double gelu_tanh(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

typedef struct {
  int64_t M, K, N, batch;
  bool transpose_b, a_km, linear, bias, gelu, bf16;
} gemm_case;



/* y[b, m, n] = sum_k a[b, m, k] * w[(b,) k, n] (+ bias[n]) (gelu) */
static void reference(const gemm_case *gc, const float *a, const float *w, const float *bias, double *y) {
  for (int64_t b = 0; b < gc->batch; b++)
    for (int64_t m = 0; m < gc->M; m++)
      for (int64_t n = 0; n < gc->N; n++) {
        double s = 0;
        for (int64_t k = 0; k < gc->K; k++) {
          float av = gc->a_km ? a[b * gc->M * gc->K + k * gc->M + m] : a[(b * gc->M + m) * gc->K + k];
          float wv = gc->transpose_b ? w[n * gc->K + k] : w[k * gc->N + n];
          if (gc->bf16) { av = bf16_round(av); wv = bf16_round(wv); }
          s += (double)av * wv;
        }
        if (gc->bias) s += bias[n];
        if (gc->gelu) s = gelu_tanh(s);
        y[(b * gc->M + m) * gc->N + n] = s;
      }
}

static ot_graph *build(const gemm_case *gc, bool a_bf16) {
  ot_graph *g = ot_graph_new();
  int64_t as[3], ws[2], bs[1] = {gc->N};
  unsigned and = 0;
  if (gc->batch > 1) as[and++] = gc->batch;
  if (gc->a_km) { as[and++] = gc->K; as[and++] = gc->M; } else { as[and++] = gc->M; as[and++] = gc->K; }
  ws[0] = gc->transpose_b ? gc->N : gc->K;
  ws[1] = gc->transpose_b ? gc->K : gc->N;
  ot_tid a = ot_graph_input(g, "a", a_bf16 ? OT_DT_BF16 : OT_DT_FP32, and, as);
  /* (a bf16 w is an input: a weight read transposed would get a K-major matmul-type copy) */
  ot_tid w = a_bf16 ? ot_graph_input(g, "w", OT_DT_BF16, 2, ws) : ot_graph_weight(g, "w", OT_DT_FP32, 2, ws);
  if (gc->a_km) {
    int64_t perm[3] = {0, 1, 2};
    perm[and - 2] = and - 1;
    perm[and - 1] = and - 2;
    a = ot_graph_transpose(g, "a.T", a, and, perm);
  }
  ot_tid y;
  if (gc->linear) {
    ot_tid bias = gc->bias ? ot_graph_weight(g, "bias", OT_DT_FP32, 1, bs) : OT_TID_NONE;
    y = ot_graph_linear(g, "fc", a, w, bias, gc->transpose_b);
  } else {
    y = ot_graph_matmul(g, "mm", a, w, gc->transpose_b);
  }
  if (gc->gelu) y = ot_graph_gelu(g, "act", y, true);
  ot_graph_output(g, y, "y");
  return g;
}

/* a_bf16: a and w in bf16 (the matmul type) rather than fp32: on trn2 the DMA then makes a [M, K]
** and a transposed w [N, K] K-major (dma_transpose), with no PE transposes. */
static void run_case_typed(const gemm_case *gc, bool a_bf16) {
  ot_graph *g = build(gc, a_bf16);
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_program *p = dev_compile(g, gc->bf16 ? OT_DT_BF16 : OT_DT_FP32);
  ot_error err;
  ot_error_clear(&err);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  size_t na = (size_t)(gc->batch * gc->M * gc->K), nw = (size_t)(gc->K * gc->N), ny = (size_t)(gc->batch * gc->M * gc->N);
  float *a = malloc(na * sizeof *a), *w = malloc(nw * sizeof *w), *bias = malloc((size_t)gc->N * sizeof *bias);
  float *y = malloc(ny * sizeof *y);
  double *ref = malloc(ny * sizeof *ref);
  fill(a, na, 1);
  fill(w, nw, 2);
  fill(bias, (size_t)gc->N, 3);
  if (a_bf16) {
    uint16_t *h = malloc((na > nw ? na : nw) * sizeof *h);
    for (size_t i = 0; i < na; i++) h[i] = ot_f32_to_bf16(a[i]);
    assert_int_equal(ot_device_write(d, "a", OT_DT_BF16, h, na * 2), OT_OK);
    for (size_t i = 0; i < nw; i++) h[i] = ot_f32_to_bf16(w[i]);
    assert_int_equal(ot_device_write(d, "w", OT_DT_BF16, h, nw * 2), OT_OK);
    free(h);
  } else {
    assert_int_equal(ot_device_write(d, "a", OT_DT_FP32, a, na * 4), OT_OK);
    assert_int_equal(ot_device_write(d, "w", OT_DT_FP32, w, nw * 4), OT_OK);
  }
  if (gc->bias) assert_int_equal(ot_device_write(d, "bias", OT_DT_FP32, bias, (size_t)gc->N * 4), OT_OK);
  dev_run_checked(d, "gemm", false);
  if (a_bf16) { /* y takes a's type: bf16, one rounding of the fp32 result */
    uint16_t *y16 = malloc(ny * sizeof *y16);
    assert_int_equal(ot_device_read(d, "y", OT_DT_BF16, y16, ny * 2), OT_OK);
    for (size_t i = 0; i < ny; i++) y[i] = ot_bf16_to_f32(y16[i]);
    free(y16);
  } else {
    assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, y, ny * 4), OT_OK);
  }
  reference(gc, a, w, bias, ref);
  double tol = a_bf16 ? 1.0 / 256 : 1e-5 * sqrt((double)gc->K) + 1e-6;
  for (size_t i = 0; i < ny; i++)
    if (fabs(y[i] - ref[i]) > tol * (1 + fabs(ref[i]))) {
      fprintf(stderr, "M=%lld K=%lld N=%lld: y[%zu] = %.8g, reference %.8g\n", (long long)gc->M, (long long)gc->K,
              (long long)gc->N, i, y[i], ref[i]);
      fail();
    }
  free(a); free(w); free(bias); free(y); free(ref);
  ot_device_close(d);
  ot_program_free(p);
  ot_graph_free(g);
}

static void run_case(const gemm_case *gc) { run_case_typed(gc, false); }

static void test_matmul_odd_shapes(void **state) {
  (void)state;
  gemm_case cases[] = {
    {7, 129, 1000, 1, false, false, false, false, false, false},
    {1, 1, 1, 1, false, false, false, false, false, false},
    {300, 200, 130, 1, false, false, false, false, false, true},
    {129, 257, 70, 2, false, false, false, false, false, true},
    {200, 300, 600, 1, false, false, true, true, true, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
  /* the bf16 cases again with A in bf16: dma_transpose, partial k- and m-tiles */
  for (size_t i = 2; i < sizeof cases / sizeof cases[0]; i++) run_case_typed(&cases[i], true);
}

/* K so long that A^T of one m-tile does not fit in the kernel's SBUF budget: A is streamed. */
static void test_matmul_spill_long_k(void **state) {
  (void)state;
  gemm_case c = {5, 25000, 3, 1, false, false, false, false, false, false};
  run_case(&c);
  gemm_case d = {130, 25000, 20, 1, true, false, false, false, false, false};
  run_case(&d);
}

/* A streamed over more m-blocks than one (7 m-tiles, 6 PSUM banks) and B longer than one k-block
** (25000 x 40 fp32: 196 k-tiles, 153 to a k-block): k-blocks outside, C summed in SBUF in fp32
** (lower_matmul.c gemm_plan_ksplit), each k-block of B read once. */
static void test_matmul_split_k(void **state) {
  (void)state;
  gemm_case c = {800, 25000, 40, 1, false, false, false, false, false, false};
  run_case(&c);
}

/* All of B on chip, m-blocks of two tiles outside (b_all): many m-blocks with a partial last one,
** several n-blocks with a partial last one, bias and gelu in the epilogue, a batch sharing B. */
static void test_linear_rows_outer(void **state) {
  (void)state;
  gemm_case c = {1000, 300, 700, 1, false, false, true, true, true, true};
  run_case(&c);
  gemm_case d = {520, 130, 1030, 1, false, false, true, true, false, false};
  run_case(&d);
  gemm_case e = {300, 130, 600, 2, false, false, false, false, false, true}; /* B shared by 2 batches: loaded once */
  run_case(&e);
}

static void test_matmul_transpose_b(void **state) {
  (void)state;
  gemm_case c = {130, 140, 150, 1, true, false, false, false, false, true};
  run_case(&c);
  gemm_case d = {300, 200, 130, 1, true, false, false, false, false, true};
  run_case_typed(&c, true); /* a and w in bf16: both made K-major by dma_transpose */
  run_case_typed(&d, true);
}

static void test_matmul_fused_transpose_a(void **state) {
  (void)state;
  gemm_case c = {200, 300, 100, 1, false, true, false, false, false, true};
  run_case(&c);
  /* a weight gradient's shape (A K-major from the fold, rows = the weight's): all of B on chip
  ** (b_all), many m-blocks, a partial last m-tile and n-block */
  gemm_case d = {1000, 700, 300, 1, false, true, false, false, false, true};
  run_case(&d);
  gemm_case e = {333, 260, 530, 1, false, true, false, false, false, false};
  run_case(&e);
}

/* gelu of a linear whose result is read elsewhere too (a graph output here; in training, the
** gelu's backward): the GEMM stores both (compile.c fuse, act_out), the gelu node folded away. */
static void test_linear_gelu_both_outputs(void **state) {
  (void)state;
  gemm_case gc = {300, 200, 600, 1, false, false, true, true, false, true};
  ot_graph *g = ot_graph_new();
  int64_t as[2] = {gc.M, gc.K}, ws[2] = {gc.K, gc.N}, bs[1] = {gc.N};
  ot_tid a = ot_graph_input(g, "a", OT_DT_FP32, 2, as);
  ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, ws);
  ot_tid bias = ot_graph_weight(g, "bias", OT_DT_FP32, 1, bs);
  ot_tid h = ot_graph_linear(g, "fc", a, w, bias, false);
  ot_tid y = ot_graph_gelu(g, "act", h, true);
  ot_graph_output(g, h, "h");
  ot_graph_output(g, y, "y");
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_compile_stats stats;
  ot_program *p = dev_compile_stats(g, "trn2", OT_DT_BF16, &stats);
  assert_int_equal(stats.nodes_fused, 1); /* the gelu */
  ot_error err;
  ot_error_clear(&err);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  size_t na = (size_t)(gc.M * gc.K), nw = (size_t)(gc.K * gc.N), ny = (size_t)(gc.M * gc.N);
  float *av = malloc(na * 4), *wv = malloc(nw * 4), *bv = malloc((size_t)gc.N * 4), *hv = malloc(ny * 4), *yv = malloc(ny * 4);
  double *ref = malloc(ny * sizeof *ref);
  fill(av, na, 1);
  fill(wv, nw, 2);
  fill(bv, (size_t)gc.N, 3);
  assert_int_equal(ot_device_write(d, "a", OT_DT_FP32, av, na * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "w", OT_DT_FP32, wv, nw * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "bias", OT_DT_FP32, bv, (size_t)gc.N * 4), OT_OK);
  dev_run_checked(d, "gemm two outputs", false);
  assert_int_equal(ot_device_read(d, "h", OT_DT_FP32, hv, ny * 4), OT_OK);
  assert_int_equal(ot_device_read(d, "y", OT_DT_FP32, yv, ny * 4), OT_OK);
  reference(&gc, av, wv, bv, ref);
  double tol = 1e-5 * sqrt((double)gc.K) + 1e-6;
  for (size_t i = 0; i < ny; i++) {
    assert_true(fabs(hv[i] - ref[i]) <= tol * (1 + fabs(ref[i])));
    /* the gelu of h as stored (what a separate gelu node would read) */
    assert_true(fabs(yv[i] - gelu_tanh(hv[i])) <= 1e-5 * (1 + fabs(gelu_tanh(hv[i]))));
  }
  free(av); free(wv); free(bv); free(hv); free(yv); free(ref);
  ot_device_close(d);
  ot_program_free(p);
  ot_graph_free(g);
}

/* The activation backward folded into the GEMM that computes its dy (x.grad = gelu_bwd(x, r w2^T)
** of loss = sum(gelu(x) w2 * r)): the same bits as the separate pass (fusion off), and the
** derivative against a double-precision reference; M, N not multiples of the tiles. */
static ot_graph *act_bwd_graph(int64_t M, int64_t N, int64_t P, int act) {
  ot_graph *g = ot_graph_new();
  int64_t xs[2] = {M, N}, ws[2] = {N, P}, rs[2] = {M, P};
  ot_tid x = ot_graph_weight(g, "x", OT_DT_FP32, 2, xs);
  ot_tid w2 = ot_graph_weight(g, "w2", OT_DT_FP32, 2, ws);
  ot_tid r = ot_graph_input(g, "r", OT_DT_FP32, 2, rs);
  ot_tid t = act == 2 ? ot_graph_silu(g, "act", x) : ot_graph_gelu(g, "act", x, act == 0);
  ot_tid z = ot_graph_mul(g, "zr", ot_graph_matmul(g, "z", t, w2, false), r);
  ot_tid loss = ot_graph_reduce_sum(g, "loss", ot_graph_reduce_sum(g, "rows", z, 1, false), 0, false);
  ot_graph_output(g, loss, "loss");
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  assert_int_equal(ot_graph_status(g), OT_OK);
  return g;
}

static double act_dx(int act, double x) {
  if (act == 2) { double s = 1 / (1 + exp(-x)); return s * (1 + x * (1 - s)); }
  if (act == 1) return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) * 0.3989422804014327; /* 1 / sqrt(2 pi) */
  double k = 0.7978845608028654, c = 0.044715, t = tanh(k * (x + c * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
}

static void act_bwd_run(const ot_graph *g, ot_dtype mm, bool fuse, int64_t M, int64_t N, int64_t P, float *xg,
                        ot_compile_stats *stats) {
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.matmul_dtype = mm;
  o.fuse = fuse;
  o.stats = stats;
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, &err), OT_OK);
  ot_program *p = NULL;
  assert_int_equal(ot_compile(g, chip, &o, &p, &err), OT_OK);
  ot_chip_free(chip);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  size_t nx = (size_t)(M * N), nw = (size_t)(N * P), nr = (size_t)(M * P);
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *r = malloc(nr * 4);
  fill(x, nx, 11);
  for (size_t i = 0; i < nx; i++) x[i] *= 3.0f; /* over the curved part of the activation */
  fill(w, nw, 12);
  fill(r, nr, 13);
  assert_int_equal(ot_device_write(d, "x", OT_DT_FP32, x, nx * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "w2", OT_DT_FP32, w, nw * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "r", OT_DT_FP32, r, nr * 4), OT_OK);
  dev_run_checked(d, "activation backward", false);
  assert_int_equal(ot_device_read(d, "x.grad", OT_DT_FP32, xg, nx * 4), OT_OK);
  free(x); free(w); free(r);
  ot_device_close(d);
  ot_program_free(p);
}

static void test_act_bwd_epilogue(void **state) {
  (void)state;
  const int64_t M = 300, N = 600, P = 200;
  size_t nx = (size_t)(M * N);
  float *a = malloc(nx * 4), *b = malloc(nx * 4), *x = malloc(nx * 4), *w = malloc((size_t)(N * P) * 4),
        *r = malloc((size_t)(M * P) * 4);
  fill(x, nx, 11);
  for (size_t i = 0; i < nx; i++) x[i] *= 3.0f;
  fill(w, (size_t)(N * P), 12);
  fill(r, (size_t)(M * P), 13);
  for (int act = 0; act < 3; act++) {
    ot_graph *g = act_bwd_graph(M, N, P, act);
    ot_compile_stats on, off;
    act_bwd_run(g, OT_DT_BF16, true, M, N, P, a, &on);
    act_bwd_run(g, OT_DT_BF16, false, M, N, P, b, &off);
    assert_int_equal(off.nodes_fused, 0);
    assert_int_equal(on.nodes_fused, 2); /* the weight gradient's transpose and the activation backward */
    assert_memory_equal(a, b, nx * 4); /* the same program on the same fp32 values */
    act_bwd_run(g, OT_DT_FP32, true, M, N, P, a, NULL);
    for (int64_t m = 0; m < M; m += 7)
      for (int64_t n = 0; n < N; n++) {
        double dy = 0;
        for (int64_t q = 0; q < P; q++) dy += (double)r[m * P + q] * w[n * P + q];
        double want = dy * act_dx(act, x[m * N + n]);
        assert_true(fabs(a[m * N + n] - want) <= 1e-5 * (1 + fabs(want)) * sqrt((double)P));
      }
    ot_graph_free(g);
  }
  free(a); free(b); free(x); free(w); free(r);
}

static void test_linear_bias_gelu(void **state) {
  (void)state;
  gemm_case c = {65, 96, 600, 1, false, false, true, true, true, true};
  run_case(&c);
  gemm_case d = {33, 64, 40, 1, true, false, true, true, false, false};
  run_case(&d);
}

/* A small linear "fc" compiled (fp32) and loaded on a trn2 device with its inputs written;
** a[5] = NaN when asked.  The caller runs it and frees *g, *p and the device. */
static ot_device *fc_device(bool nan, ot_graph **g, ot_program **p) {
  gemm_case gc = {8, 16, 24, 1, false, false, true, false, false, false};
  *g = build(&gc, false);
  *p = dev_compile(*g, OT_DT_FP32);
  ot_error err;
  ot_error_clear(&err);
  ot_device *d;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, *p), OT_OK);
  float a[8 * 16], w[16 * 24];
  fill(a, 8 * 16, 1);
  fill(w, 16 * 24, 2);
  if (nan) a[5] = NAN;
  assert_int_equal(ot_device_write(d, "a", OT_DT_FP32, a, sizeof a), OT_OK);
  assert_int_equal(ot_device_write(d, "w", OT_DT_FP32, w, sizeof w), OT_OK);
  return d;
}

static void fc_free(ot_device *d, ot_graph *g, ot_program *p) {
  ot_device_close(d);
  ot_program_free(p);
  ot_graph_free(g);
}

/* A run-time error in compiled code names the graph node, not only the instruction. */
static void test_runtime_error_names_node(void **state) {
  (void)state;
  ot_graph *g;
  ot_program *p;
  ot_device *d = fc_device(true, &g, &p);
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.nan_trap = true;
  assert_int_not_equal(ot_device_run(d, &ro), OT_OK);
  const char *msg = ot_device_last_error(d);
  if (!strstr(msg, "(graph node 'fc')")) fprintf(stderr, "message: %s\n", msg);
  assert_non_null(strstr(msg, "(graph node 'fc')"));
  fc_free(d, g, p);
}

/* The trace names each instruction's graph node (args.tag), as the statistics do. */
static void test_trace_names_node(void **state) {
  (void)state;
  ot_graph *g;
  ot_program *p;
  ot_device *d = fc_device(false, &g, &p);
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.trace = true;
  assert_int_equal(ot_device_run(d, &ro), OT_OK);
  const char *path = OT_BINARY_DIR "/gemm_trace_tags.json";
  assert_int_equal(ot_device_write_trace(d, path), OT_OK);
  char *text;
  size_t n;
  assert_int_equal(ot_file_read(path, &text, &n, NULL), OT_OK);
  remove(path);
  cJSON *j = cJSON_Parse(text);
  assert_non_null(j);
  int tagged = 0, other = 0;
  const cJSON *ev;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(j, "traceEvents")) {
    const char *cat = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "cat"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "name"));
    if (!cat || !strcmp(cat, "wait") || (name && !strcmp(name, "halt"))) continue; /* a stream's end: no node */
    const char *tag = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "args"), "tag"));
    if (tag && !strcmp(tag, "fc")) tagged++;
    else other++, fprintf(stderr, "event tagged %s: %s\n", tag ? tag : "(none)", name ? name : "");
  }
  assert_true(tagged > 10);
  assert_int_equal(other, 0);
  cJSON_Delete(j);
  free(text);
  fc_free(d, g, p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_matmul_odd_shapes),
    cmocka_unit_test(test_matmul_transpose_b),
    cmocka_unit_test(test_linear_rows_outer),
    cmocka_unit_test(test_matmul_spill_long_k),
    cmocka_unit_test(test_matmul_split_k),
    cmocka_unit_test(test_matmul_fused_transpose_a),
    cmocka_unit_test(test_linear_bias_gelu),
    cmocka_unit_test(test_linear_gelu_both_outputs),
    cmocka_unit_test(test_act_bwd_epilogue),
    cmocka_unit_test(test_runtime_error_names_node),
    cmocka_unit_test(test_trace_names_node),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
