/* Data parallelism across the cores of one chip: the all-reduce lowering (exact sums in core
** order, race-free, timed) and ot_compile_data_parallel (an MLP training step on 2 and 8 cores of
** trn2 gives the single-core step's loss, gradients and updated weights within fp32
** reduction-order tolerance). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <opentrn/chip.h>
#include <opentrn/compile.h>
#include <opentrn/graph.h>

#include "compiler/graph.h"
#include "compiler/kir.h"
#include "compiler/lower_collective.h"
#include "isa/program.h"
#include "sim/sim.h"
#include "sim/sim_race.h"

static ot_chip *chip_of(const char *name) {
  ot_chip *c = NULL;
  assert_int_equal(ot_chip_preset(name, &c, NULL), OT_OK);
  return c;
}

static uint32_t rng_state = 12345;
static float frand(void) { /* [-1, 1) */
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) & 0xFFFFFF) / (float)(1 << 23) - 1.0f;
}

static void write_t(ot_sim *s, const ot_program *p, const char *name, const void *data, size_t bytes) {
  const ot_tensor_info *t = ot_program_find_tensor(p, name);
  if (!t) fprintf(stderr, "no tensor %s\n", name);
  assert_non_null(t);
  assert_int_equal(ot_tensor_bytes(t), bytes);
  assert_int_equal(ot_sim_hbm_write(s, t->offset, data, bytes, NULL), OT_OK);
}

static void read_t(ot_sim *s, const ot_program *p, const char *name, void *data, size_t bytes) {
  const ot_tensor_info *t = ot_program_find_tensor(p, name);
  if (!t) fprintf(stderr, "no tensor %s\n", name);
  assert_non_null(t);
  assert_int_equal(ot_tensor_bytes(t), bytes);
  assert_int_equal(ot_sim_hbm_read(s, t->offset, data, bytes, NULL), OT_OK);
}

static ot_sim *run(const ot_chip *chip, const ot_program *p, bool race, ot_sim_mode mode, void (*fill)(ot_sim *, const ot_program *, void *),
                   void *arg) {
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.race_check = race;
  o.mode = mode;
  ot_sim *s = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_sim_new(chip, p, &o, &s, &err), OT_OK);
  if (fill) fill(s, p, arg);
  ot_status st = ot_sim_run(s, &err);
  if (st || err.count) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  assert_int_equal(err.count, 0); /* no race, no warning */
  return s;
}

/* Simulated time of the instructions tagged "allreduce" (first start to last end). */
static double allreduce_us(const ot_sim *s) {
  const ot_sim_stats *st = ot_sim_get_stats(s);
  for (uint32_t i = 0; i < st->n_tags; i++)
    if (!strcmp(st->strings + st->tag_off[i], "allreduce")) return (double)(st->tag_last[i] - st->tag_first[i]) / 1e6;
  return -1;
}

/* ---- the all-reduce lowering ---------------------------------------------------------------- */
typedef struct {
  unsigned cores, n_t;
  const uint64_t *elems;
  float **vals;  /* [t * cores + c] */
} ar_case;

static void ar_fill(ot_sim *s, const ot_program *p, void *arg) {
  ar_case *a = arg;
  for (unsigned t = 0; t < a->n_t; t++)
    for (unsigned c = 0; c < a->cores; c++) {
      char name[32];
      snprintf(name, sizeof name, "g%u@c%u", t, c);
      write_t(s, p, name, a->vals[t * a->cores + c], a->elems[t] * 4);
    }
}

static ot_program *build_allreduce(const ot_chip *chip, unsigned cores, unsigned n_t, const uint64_t *elems, float scale) {
  ot_program *p = ot_program_new();
  kir *k[8];
  kir_hbm bufs[8 * 8];
  for (unsigned c = 0; c < cores; c++) {
    assert_int_equal(kir_new_core(chip, p, c, &k[c], NULL), OT_OK);
    kir_set_origin(k[c], "allreduce");
    for (unsigned t = 0; t < n_t; t++) {
      char name[32];
      snprintf(name, sizeof name, "g%u@c%u", t, c);
      assert_int_equal(kir_tensor(k[c], name, OT_DT_FP32, 1, &elems[t], OT_ROLE_INPUT, NULL, &bufs[t * cores + c]), OT_OK);
    }
  }
  lc_sems sems = {kir_free_sem_base(k[0]), kir_free_sem_base(k[0]) + 1, 0};
  ot_status st = lower_allreduce(k, cores, n_t, bufs, elems, scale, &sems, NULL);
  if (st) fprintf(stderr, "%s\n", kir_error(k[0])->msg);
  assert_int_equal(st, OT_OK);
  for (unsigned c = 0; c < cores; c++) {
    ot_error err;
    ot_error_clear(&err);
    st = kir_finish(k[c], &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, OT_OK);
    kir_free(k[c]);
  }
  ot_error err;
  ot_error_clear(&err);
  st = ot_program_verify(p, chip, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  return p;
}

static void check_allreduce(unsigned cores, float scale) {
  ot_chip *chip = chip_of("trn2");
  /* sizes that exercise full tiles, partial tiles, a tail and slices crossing tensors */
  const uint64_t elems[3] = {300000, 7, 2048 * 3 + 5};
  const unsigned n_t = 3;
  float *vals[3 * 8];
  for (unsigned t = 0; t < n_t; t++)
    for (unsigned c = 0; c < cores; c++) {
      vals[t * cores + c] = malloc(elems[t] * 4);
      for (uint64_t i = 0; i < elems[t]; i++) vals[t * cores + c][i] = frand() * 100.0f;
    }
  ot_program *p = build_allreduce(chip, cores, n_t, elems, scale);
  ar_case a = {cores, n_t, elems, vals};
  ot_sim *s = run(chip, p, true, OT_SIM_FULL, ar_fill, &a);
  for (unsigned t = 0; t < n_t; t++) {
    float *want = malloc(elems[t] * 4), *got = malloc(elems[t] * 4);
    for (uint64_t i = 0; i < elems[t]; i++) {
      volatile float acc = vals[t * cores][i];
      for (unsigned c = 1; c < cores; c++) acc = acc + vals[t * cores + c][i]; /* core order */
      want[i] = acc * scale;
    }
    for (unsigned c = 0; c < cores; c++) {
      char name[32];
      snprintf(name, sizeof name, "g%u@c%u", t, c);
      read_t(s, p, name, got, elems[t] * 4);
      /* bit-exact in the root copy (core 0's); the other copies keep their core's values */
      assert_memory_equal(got, c ? vals[t * cores + c] : want, elems[t] * 4);
    }
    free(want);
    free(got);
  }
  double us = allreduce_us(s);
  const ot_sim_stats *st = ot_sim_get_stats(s);
  printf("all-reduce of %llu fp32 across %u cores of trn2: %.2f us simulated, %llu remote signals\n",
         (unsigned long long)(elems[0] + elems[1] + elems[2]), cores, us, (unsigned long long)st->remote_signals);
  assert_true(us > 0);
  assert_int_equal(st->remote_signals, 2ull * cores * (cores - 1));
  ot_sim_free(s);
  ot_program_free(p);
  for (unsigned i = 0; i < n_t * cores; i++) free(vals[i]);
  ot_chip_free(chip);
}

static void test_allreduce_2_cores(void **state) { (void)state; check_allreduce(2, 1.0f); }
static void test_allreduce_8_cores(void **state) { (void)state; check_allreduce(8, 1.0f); }
static void test_allreduce_8_cores_mean(void **state) { (void)state; check_allreduce(8, 0.125f); }

/* ---- data-parallel training step --------------------------------------------------------------- */
enum { B = 128, D = 64, H = 96, V = 32 };

typedef struct {
  unsigned cores;      /* 0 = the single-core program (plain names) */
  float *x, *w1, *b1, *w2, *hyper;
  int32_t *tgt;
} step_in;

static ot_graph *mlp_step(void) {
  ot_graph *g = ot_graph_new();
  int64_t sx[2] = {B, D}, st[1] = {B}, s1[2] = {D, H}, sb[1] = {H}, s2[2] = {H, V}, sh[1] = {6};
  ot_tid x = ot_graph_input(g, "x", OT_DT_FP32, 2, sx);
  ot_tid tgt = ot_graph_input(g, "tgt", OT_DT_INT32, 1, st);
  ot_tid w1 = ot_graph_weight(g, "w1", OT_DT_FP32, 2, s1);
  ot_tid b1 = ot_graph_weight(g, "b1", OT_DT_FP32, 1, sb);
  ot_tid w2 = ot_graph_weight(g, "w2", OT_DT_FP32, 2, s2);
  ot_tid h = ot_graph_gelu(g, "h", ot_graph_linear(g, "fc1", x, w1, b1, false), true);
  ot_tid logits = ot_graph_linear(g, "fc2", h, w2, OT_TID_NONE, false);
  ot_tid loss = ot_graph_cross_entropy(g, "loss", logits, tgt);
  ot_graph_output(g, loss, "loss");
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  ot_tid ws[3] = {w1, b1, w2}, gs[3];
  for (int i = 0; i < 3; i++) gs[i] = ot_graph_grad(g, ws[i]);
  ot_tid norm = ot_graph_global_norm(g, "norm", 3, gs);
  ot_tid hyper = ot_graph_input(g, "hyper", OT_DT_FP32, 1, sh);
  const char *mn[3] = {"w1.m", "b1.m", "w2.m"}, *vn[3] = {"w1.v", "b1.v", "w2.v"}, *an[3] = {"adamw.w1", "adamw.b1", "adamw.w2"};
  for (int i = 0; i < 3; i++) {
    const ot_gtensor *w = ot_graph_tensor(g, ws[i]);
    ot_tid m = ot_graph_weight(g, mn[i], OT_DT_FP32, w->ndim, w->shape);
    ot_tid v = ot_graph_weight(g, vn[i], OT_DT_FP32, w->ndim, w->shape);
    ot_graph_adamw(g, an[i], ws[i], gs[i], m, v, norm, hyper, 0.9f, 0.999f);
  }
  if (ot_graph_status(g)) fprintf(stderr, "%s\n", ot_graph_error(g));
  assert_int_equal(ot_graph_status(g), OT_OK);
  return g;
}

static void step_fill(ot_sim *s, const ot_program *p, void *arg) {
  step_in *in = arg;
  write_t(s, p, "w1", in->w1, D * H * 4);
  write_t(s, p, "b1", in->b1, H * 4);
  write_t(s, p, "w2", in->w2, H * V * 4);
  static float zero[D * H];
  const char *mv[6] = {"w1.m", "w1.v", "b1.m", "b1.v", "w2.m", "w2.v"};
  const size_t mvb[6] = {D * H * 4, D * H * 4, H * 4, H * 4, H * V * 4, H * V * 4};
  for (int i = 0; i < 6; i++) write_t(s, p, mv[i], zero, mvb[i]);
  write_t(s, p, "hyper", in->hyper, 6 * 4);
  if (!in->cores) {
    write_t(s, p, "x", in->x, B * D * 4);
    write_t(s, p, "tgt", in->tgt, B * 4);
    return;
  }
  unsigned rows = B / in->cores;
  for (unsigned c = 0; c < in->cores; c++) {
    char name[32];
    snprintf(name, sizeof name, "x@c%u", c);
    write_t(s, p, name, in->x + (size_t)c * rows * D, rows * D * 4);
    snprintf(name, sizeof name, "tgt@c%u", c);
    write_t(s, p, name, in->tgt + (size_t)c * rows, rows * 4);
  }
}

static void expect_close(const char *what, const float *a, const float *b, size_t n, float rtol, float atol) {
  for (size_t i = 0; i < n; i++)
    if (!(fabsf(a[i] - b[i]) <= atol + rtol * fabsf(b[i]))) {
      fprintf(stderr, "%s[%zu]: data-parallel %.9g, single-core %.9g\n", what, i, (double)a[i], (double)b[i]);
      fail();
    }
}

static float step_hyper[6] = {1e-3f, 0.01f, 1e-8f, 1.0f / (1.0f - 0.9f), 1.0f / (1.0f - 0.999f), 1.0f};

static step_in step_inputs(void) {
  step_in in = {0};
  in.x = malloc(B * D * 4);
  in.tgt = malloc(B * 4);
  in.w1 = malloc(D * H * 4);
  in.b1 = malloc(H * 4);
  in.w2 = malloc(H * V * 4);
  in.hyper = step_hyper;
  rng_state = 7;
  for (int i = 0; i < B * D; i++) in.x[i] = frand();
  for (int i = 0; i < B; i++) in.tgt[i] = (int32_t)((rng_state = rng_state * 1664525u + 1013904223u) >> 8) % V;
  for (int i = 0; i < D * H; i++) in.w1[i] = frand() * 0.2f;
  for (int i = 0; i < H; i++) in.b1[i] = frand() * 0.1f;
  for (int i = 0; i < H * V; i++) in.w2[i] = frand() * 0.2f;
  return in;
}

static void step_inputs_free(step_in *in) {
  free(in->x);
  free(in->tgt);
  free(in->w1);
  free(in->b1);
  free(in->w2);
}

static void check_dp_step(unsigned cores) {
  ot_chip *chip = chip_of("trn2");
  ot_graph *g = mlp_step();
  step_in in = step_inputs();
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.matmul_dtype = OT_DT_FP32;
  ot_error err;
  ot_error_clear(&err);
  /* single core, whole batch */
  ot_program *p1 = NULL, *pn = NULL;
  ot_status st = ot_compile(g, chip, &o, &p1, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  ot_sim *s1 = run(chip, p1, false, OT_SIM_FULL, step_fill, &in);
  /* data-parallel */
  st = ot_compile_data_parallel(g, chip, cores, &o, &pn, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  st = ot_program_verify(pn, chip, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  step_in inn = in;
  inn.cores = cores;
  ot_sim *sn = run(chip, pn, true, OT_SIM_FULL, step_fill, &inn);
  assert_non_null(ot_program_find_tensor(pn, "global_norm.partials")); /* the norm is shared out */
  float l1, ln, n1, n0, nc;
  read_t(s1, p1, "loss", &l1, 4);
  read_t(sn, pn, "loss@c0", &ln, 4); /* the root copy */
  expect_close("loss", &ln, &l1, 1, 1e-5f, 1e-6f);
  /* the global norm, shared out among the cores and exchanged: the same bits on every core */
  read_t(s1, p1, "norm", &n1, 4);
  read_t(sn, pn, "norm", &n0, 4);
  expect_close("norm", &n0, &n1, 1, 1e-5f, 0.0f);
  for (unsigned c = 1; c < cores; c++) {
    char name[32];
    snprintf(name, sizeof name, "norm@c%u", c);
    read_t(sn, pn, name, &nc, 4);
    assert_memory_equal(&nc, &n0, 4);
  }
  static const char *const ws[3] = {"w1", "b1", "w2"};
  static const size_t wn[3] = {D * H, H, H * V};
  for (int i = 0; i < 3; i++) {
    float *a = malloc(wn[i] * 4), *b = malloc(wn[i] * 4);
    char name[32];
    snprintf(name, sizeof name, "%s.grad", ws[i]);
    read_t(s1, p1, name, b, wn[i] * 4);
    snprintf(name, sizeof name, "%s.grad@c0", ws[i]); /* the root copy */
    read_t(sn, pn, name, a, wn[i] * 4);
    expect_close(name, a, b, wn[i], 1e-4f, 1e-6f);
    read_t(s1, p1, ws[i], b, wn[i] * 4); /* the updated weights */
    read_t(sn, pn, ws[i], a, wn[i] * 4);
    expect_close(ws[i], a, b, wn[i], 1e-5f, 1e-6f);
    free(a);
    free(b);
  }
  printf("data-parallel step on %u cores of trn2: %.2f us simulated (single core %.2f us); all-reduce %.2f us\n", cores,
         (double)ot_sim_get_stats(sn)->total / 1e6, (double)ot_sim_get_stats(s1)->total / 1e6, allreduce_us(sn));
  assert_true(allreduce_us(sn) > 0);
  ot_sim_free(s1);
  ot_sim_free(sn);
  ot_program_free(p1);
  ot_program_free(pn);
  step_inputs_free(&in);
  ot_graph_free(g);
  ot_chip_free(chip);
}

/* The weights' bf16 copies (compile_dp.c weight_copies): made at the start of the step, shared
** out among the cores and read by the matmuls, they change no bit of the step's results -- the
** loads rounded the fp32 weights to the same values. */
static void check_weight_copies(unsigned cores) {
  ot_chip *chip = chip_of("trn2");
  ot_graph *g = mlp_step();
  step_in in = step_inputs();
  in.cores = cores > 1 ? cores : 0;
  ot_program *p[2];
  ot_sim *s[2];
  for (int i = 0; i < 2; i++) {
    ot_compile_options o;
    ot_compile_options_default(&o);
    o.weight_copies = i ? OT_WCOPY_ALL : OT_WCOPY_NONE;
    ot_error err;
    ot_error_clear(&err);
    ot_status st = cores > 1 ? ot_compile_data_parallel(g, chip, cores, &o, &p[i], &err) : ot_compile(g, chip, &o, &p[i], &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, OT_OK);
    assert_int_equal(ot_program_verify(p[i], chip, &err), OT_OK);
    s[i] = run(chip, p[i], true, OT_SIM_FULL, step_fill, &in);
  }
  assert_null(ot_program_find_tensor(p[0], "w1.bf16"));
  assert_non_null(ot_program_find_tensor(p[1], "w1.bf16"));
  assert_non_null(ot_program_find_tensor(p[1], "w2.bf16"));
  assert_null(ot_program_find_tensor(p[1], "b1.bf16")); /* added in the epilogue, not a matmul operand */
  static const char *const dp[] = {"loss@c0", "w1.grad@c0", "b1.grad@c0", "w2.grad@c0", "w1", "b1", "w2"};
  static const char *const one[] = {"loss", "w1.grad", "b1.grad", "w2.grad", "w1", "b1", "w2"};
  const char *const *names = cores > 1 ? dp : one;
  static const size_t bytes[] = {4, D * H * 4, H * 4, H * V * 4, D * H * 4, H * 4, H * V * 4};
  for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
    float *a = malloc(bytes[i]), *b = malloc(bytes[i]);
    read_t(s[0], p[0], names[i], a, bytes[i]);
    read_t(s[1], p[1], names[i], b, bytes[i]);
    if (memcmp(a, b, bytes[i])) fprintf(stderr, "%s differs with the weight copies\n", names[i]);
    assert_memory_equal(a, b, bytes[i]);
    free(a);
    free(b);
  }
  for (int i = 0; i < 2; i++) {
    ot_sim_free(s[i]);
    ot_program_free(p[i]);
  }
  step_inputs_free(&in);
  ot_graph_free(g);
  ot_chip_free(chip);
}

static void test_dp_weight_copies(void **state) { (void)state; check_weight_copies(4); }
static void test_weight_copies_one_core(void **state) { (void)state; check_weight_copies(1); }

static void test_dp_step_2_cores(void **state) { (void)state; check_dp_step(2); }
static void test_dp_step_8_cores(void **state) { (void)state; check_dp_step(8); }

static void test_dp_errors(void **state) {
  (void)state;
  ot_chip *chip = chip_of("trn2");
  ot_graph *g = mlp_step();
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_compile_data_parallel(g, chip, 9, NULL, &p, &err), OT_EINVAL); /* trn2 has 8 */
  assert_non_null(strstr(err.msg, "8"));
  ot_error_clear(&err);
  assert_int_equal(ot_compile_data_parallel(g, chip, 3, NULL, &p, &err), OT_EINVAL); /* 128 rows / 3 */
  assert_non_null(strstr(err.msg, "must divide among 3 cores"));
  assert_null(p);
  /* one core: the per-core names, no all-reduce */
  ot_error_clear(&err);
  assert_int_equal(ot_compile_data_parallel(g, chip, 1, NULL, &p, &err), OT_OK);
  assert_non_null(ot_program_find_tensor(p, "x@c0"));
  assert_non_null(ot_program_find_tensor(p, "w1.grad@c0"));
  assert_non_null(ot_program_find_tensor(p, "w1"));
  assert_non_null(ot_program_find_tensor(p, "hyper"));
  assert_null(ot_program_find_tensor(p, "x@c1"));
  ot_program_free(p);
  ot_graph_free(g);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allreduce_2_cores),
      cmocka_unit_test(test_allreduce_8_cores),
      cmocka_unit_test(test_allreduce_8_cores_mean),
      cmocka_unit_test(test_dp_step_2_cores),
      cmocka_unit_test(test_dp_step_8_cores),
      cmocka_unit_test(test_dp_weight_copies),
      cmocka_unit_test(test_weight_copies_one_core),
      cmocka_unit_test(test_dp_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
