/* The attention-family lowerings (lower_attn*.c) compiled and run on the simulator: attention
** forward and backward (causal and not, grouped-query), rope, embedding forward and backward,
** cross-entropy forward and backward.  Each case is a small graph with random leaves, compiled
** with ot_compile, run with the race checker and the NaN/Inf trap, and compared with the host
** reference evaluator ot_graph_eval_ref (fp32).  Tolerances (docs/compiler-attention.md):
** |got - ref| <= atol * max|ref| + rtol * |ref| per element, fp32 matmuls (1e-5, 1e-5) unless
** a case says otherwise, bf16 matmuls (2e-2, 2e-2).  The largest errors are printed. */
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

#include "compiler/graph.h"
#include "compiler/device_io.h"
#include "isa/program.h"

typedef struct {
  ot_dtype mm;          /* matmul operand type */
  double atol, rtol;
  int32_t id_max;       /* int32 leaves: uniform in [0, id_max) */
  float lo, hi;         /* float leaves: uniform in [lo, hi) */
  uint32_t seed;
} case_opts;

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static float leaf_value(uint64_t *s, const ot_gtensor *t, const case_opts *o) {
  uint64_t r = rng_next(s);
  if (t->dtype == OT_DT_INT32) return (float)(int32_t)(r % (uint64_t)o->id_max);
  float v = o->lo + (o->hi - o->lo) * (float)((double)(r >> 11) / 9007199254740992.0);
  return t->dtype == OT_DT_BF16 ? ot_bf16_to_f32(ot_f32_to_bf16(v)) : v;
}




/* Compare one output; returns the largest error relative to max|ref|. */
static double compare(const char *label, const ot_gtensor *t, const float *got, const float *ref, const case_opts *o) {
  size_t n = (size_t)ot_gtensor_elems(t);
  double scale = 0, worst = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
  if (scale == 0) scale = 1;
  size_t bad = n;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= o->atol * scale + o->rtol * fabs(ref[i])) && bad == n) bad = i;
    if (!(e / scale <= worst)) worst = e / scale;
  }
  printf("  %-34s %-10s max err/scale %.3g (scale %.3g)\n", label, t->name, worst, scale);
  if (bad < n) {
    fprintf(stderr, "%s: %s[%zu] = %.9g, reference %.9g\n", label, t->name, bad, got[bad], ref[bad]);
    fail();
  }
  return worst;
}

/* The chip the cases compile for and run on: trn2, and trn1 for the NeuronCore-v2 paths (VectorE
** and ScalarE share the PSUM port there, and the attention kernels place work differently). */
static const char *test_chip = "trn2";

/* Random leaves, reference, compile, run (race check, NaN trap), compare every graph output. */
static void run_graph(const char *label, ot_graph *g, const case_opts *o) {
  assert_int_equal(ot_graph_status(g), OT_OK);
  float **vals = calloc(g->n_t, sizeof *vals);
  assert_non_null(vals);
  uint64_t seed = o->seed;
  for (uint32_t t = 0; t < g->n_t; t++) {
    const ot_gtensor *x = &g->t[t];
    if (x->producer >= 0) continue;
    size_t n = (size_t)ot_gtensor_elems(x);
    vals[t] = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(vals[t]);
    for (size_t i = 0; i < n; i++)
      vals[t][i] = x->data ? ((const float *)x->data)[i] : leaf_value(&seed, x, o);
  }
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, vals, &err), OT_OK);
  ot_program *p = dev_compile_for(g, test_chip, o->mm);
  ot_device *d;
  assert_int_equal(ot_device_open(test_chip, &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, p), OT_OK);
  for (uint32_t t = 0; t < g->n_t; t++)
    if (g->t[t].role == OT_GROLE_INPUT || g->t[t].role == OT_GROLE_WEIGHT) dev_put(d, &g->t[t], vals[t]);
  dev_run_checked(d, label, true);
  ot_run_summary sum;
  if (ot_device_summary(d, &sum) == OT_OK) printf("%s: %.2f us simulated, %llu instructions\n", label,
                                                  (double)sum.time_ps / 1e6, (unsigned long long)sum.insns);
  for (uint32_t t = 0; t < g->n_t; t++) {
    if (!g->t[t].is_output) continue;
    float *got = malloc((size_t)ot_gtensor_elems(&g->t[t]) * sizeof *got + 4);
    assert_non_null(got);
    dev_get(d, g->t[t].name, &g->t[t], got);
    compare(label, &g->t[t], got, vals[t], o);
    free(got);
  }
  ot_device_close(d);
  ot_program_free(p);
  for (uint32_t t = 0; t < g->n_t; t++) free(vals[t]);
  free(vals);
}

static case_opts opts_fp32(uint32_t seed) {
  case_opts o = {OT_DT_FP32, 1e-5, 1e-5, 1, -1.0f, 1.0f, seed};
  return o;
}

static case_opts opts_bf16(uint32_t seed) {
  case_opts o = {OT_DT_BF16, 2e-2, 2e-2, 1, -1.0f, 1.0f, seed};
  return o;
}

/* ---- attention ---------------------------------------------------------------------------- */
typedef struct {
  int64_t B, Hq, Hkv, S, D;
  bool causal;
  float scale;
  bool bf16;            /* bf16 matmuls */
  bool io_bf16;         /* bf16 tensors */
} attn_case;

static ot_graph *attn_graph(const attn_case *ac, bool backward) {
  ot_graph *g = ot_graph_new();
  int64_t qs[4] = {ac->B, ac->Hq, ac->S, ac->D}, ks[4] = {ac->B, ac->Hkv, ac->S, ac->D};
  ot_dtype dt = ac->io_bf16 ? OT_DT_BF16 : OT_DT_FP32;
  ot_tid q = ot_graph_input(g, "q", dt, 4, qs);
  ot_tid k = ot_graph_input(g, "k", dt, 4, ks);
  ot_tid v = ot_graph_input(g, "v", dt, 4, ks);
  if (!backward) {
    ot_graph_output(g, ot_graph_attention(g, "attn", q, k, v, ac->causal, ac->scale), "y");
    return g;
  }
  ot_tid y = ot_graph_input(g, "y", dt, 4, qs);
  ot_tid dy = ot_graph_input(g, "dy", dt, 4, qs);
  ot_gnode proto;
  memset(&proto, 0, sizeof proto);
  ot_tid in[5] = {q, k, v, y, dy};
  proto.op = OT_GOP_ATTENTION_BWD;
  proto.name = "attn_bwd";
  proto.in = in;
  proto.n_in = 5;
  proto.f[0] = ac->scale;
  proto.i[0] = ac->causal;
  proto.forward = -1;
  int32_t ni = ot_graph_add_node(g, &proto);
  assert_true(ni >= 0);
  ot_graph_output(g, g->node[ni].out[0], "dq");
  ot_graph_output(g, g->node[ni].out[1], "dk");
  ot_graph_output(g, g->node[ni].out[2], "dv");
  return g;
}

/* "attention<kind> B.. Hq.. Hkv.. S.. D.. [causal] [bf16] [bf16-io]" */
static void attn_label(char *label, size_t n, const char *kind, const attn_case *ac) {
  snprintf(label, n, "attention%s B%lld Hq%lld Hkv%lld S%lld D%lld%s%s%s", kind, (long long)ac->B, (long long)ac->Hq,
           (long long)ac->Hkv, (long long)ac->S, (long long)ac->D, ac->causal ? " causal" : "", ac->bf16 ? " bf16" : "",
           ac->io_bf16 ? " bf16-io" : "");
}

static void attn_run(const attn_case *ac, bool backward) {
  char label[128];
  attn_label(label, sizeof label, backward ? "_bwd" : "", ac);
  ot_graph *g = attn_graph(ac, backward);
  case_opts o = ac->bf16 ? opts_bf16(7) : opts_fp32(7);
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_attention_forward(void **state) {
  (void)state;
  attn_case cases[] = {
    {1, 2, 2, 7, 16, true, 0, false, false},
    {1, 1, 1, 1, 16, true, 0, false, false},
    {1, 1, 1, 1, 64, false, 0, false, false},
    {1, 4, 2, 129, 64, true, 0, false, false},
    {2, 2, 1, 200, 16, false, 0.3f, false, false},
    {1, 2, 2, 200, 64, true, 0, true, true},
    {1, 1, 1, 530, 16, true, 0, false, false},
    {1, 2, 1, 130, 128, true, 0, true, false},
    {1, 2, 1, 520, 16, false, 0, false, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_run(&cases[i], false);
}

/* The head split (split of [B*S, (Hq + 2 Hkv) D] rows, reshape, transpose(0,2,1,3)) and merge
** (transpose, reshape) around the attention, which compile.c folds into its loads and stores. */
static void attn_heads_run(int64_t B, int64_t Hq, int64_t Hkv, int64_t S, int64_t D, bool bf16, bool train) {
  ot_graph *g = ot_graph_new();
  int64_t C = Hq * D, Ckv = Hkv * D, xs[2] = {B * S, C + 2 * Ckv}, sizes[3] = {C, Ckv, Ckv};
  int64_t perm[4] = {0, 2, 1, 3}, ys[2] = {B * S, C};
  ot_dtype dt = bf16 ? OT_DT_BF16 : OT_DT_FP32;
  ot_tid x = train ? ot_graph_weight(g, "x", dt, 2, xs) : ot_graph_input(g, "x", dt, 2, xs), p[3], hd[3];
  ot_graph_split(g, "split", x, 1, 3, sizes, p);
  for (int j = 0; j < 3; j++) {
    int64_t s4[4] = {B, S, j ? Hkv : Hq, D};
    char n1[16], n2[16];
    snprintf(n1, sizeof n1, "r%d", j);
    snprintf(n2, sizeof n2, "t%d", j);
    hd[j] = ot_graph_transpose(g, n2, ot_graph_reshape(g, n1, p[j], 4, s4), 4, perm);
  }
  ot_tid y = ot_graph_attention(g, "attn", hd[0], hd[1], hd[2], true, 0.0f);
  ot_tid out = ot_graph_reshape(g, "merge", ot_graph_transpose(g, "bshd", y, 4, perm), 2, ys);
  if (train) { /* loss = sum(out * w): the backward's head views and the qkv concat fold too */
    ot_tid s = ot_graph_mul(g, "ow", out, ot_graph_input(g, "w", dt, 2, ys));
    s = ot_graph_reduce_sum(g, "sum0", ot_graph_reduce_sum(g, "sum1", s, 1, false), 0, false);
    ot_graph_output(g, s, "loss");
    ot_error err;
    ot_error_clear(&err);
    assert_int_equal(ot_graph_backward(g, s, &err), OT_OK);
  } else {
    ot_graph_output(g, out, "out");
  }
  char label[112];
  snprintf(label, sizeof label, "attention head views%s B%lld Hq%lld Hkv%lld S%lld D%lld%s", train ? " fwd+bwd" : "",
           (long long)B, (long long)Hq, (long long)Hkv, (long long)S, (long long)D, bf16 ? " bf16" : "");
  case_opts o = bf16 ? opts_bf16(11) : opts_fp32(11);
  if (train) { /* every view folded: the transposes, the split and the concat are gone */
    ot_compile_stats st;
    ot_program *pr = dev_compile_stats(g, test_chip, o.mm, &st);
    assert_int_equal(st.nodes_fused, 5 + 5); /* q, k, v, y transposes, split; dy, dq, dk, dv transposes, concat */
    assert_non_null(ot_program_find_tensor(pr, "attn.stats"));
    ot_program_free(pr);
  }
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_attention_head_views(void **state) {
  (void)state;
  attn_heads_run(1, 2, 2, 200, 64, true, false);
  attn_heads_run(2, 4, 2, 130, 16, false, false);
  attn_heads_run(1, 3, 3, 256, 32, false, false);
  attn_heads_run(1, 2, 2, 200, 64, true, true);
  attn_heads_run(2, 4, 2, 130, 16, false, true);
}

static void test_attention_backward(void **state) {
  (void)state;
  attn_case cases[] = {
    {1, 2, 2, 7, 16, true, 0, false, false},
    {1, 1, 1, 1, 16, true, 0, false, false},
    {1, 1, 1, 1, 64, false, 0, false, false},
    {1, 4, 2, 129, 64, true, 0, false, false},
    {2, 2, 1, 200, 16, false, 0.3f, false, false},
    {1, 2, 2, 200, 64, true, 0, true, true},
    {1, 1, 1, 530, 16, true, 0, false, false},
    {1, 2, 1, 130, 128, true, 0, true, false},
    {1, 2, 1, 520, 16, false, 0, false, false},
    {1, 2, 1, 650, 128, true, 0, true, false}, /* dK, dV too big for a PSUM bank: SBUF accumulators */
    {1, 1, 1, 700, 128, false, 0, false, false},
    {1, 1, 1, 512, 128, true, 0, false, false}, /* dK, dV fill a bank each: no bank left for K/V transposes */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_run(&cases[i], true);
}

/* Forward and backward in one graph (loss = sum(y * w)): the transposed forward saves each row's
** -m and l (S > 128) and the backward loads them instead of its statistics pass
** (attn_saved_stats); the gradients are checked against the reference like the standalone
** backward's. */
static void attn_train_run(const attn_case *ac) {
  ot_graph *g = ot_graph_new();
  int64_t qs[4] = {ac->B, ac->Hq, ac->S, ac->D}, ks[4] = {ac->B, ac->Hkv, ac->S, ac->D};
  ot_dtype dt = ac->io_bf16 ? OT_DT_BF16 : OT_DT_FP32;
  ot_tid q = ot_graph_weight(g, "q", dt, 4, qs), k = ot_graph_weight(g, "k", dt, 4, ks), v = ot_graph_weight(g, "v", dt, 4, ks);
  ot_tid w = ot_graph_input(g, "w", dt, 4, qs);
  ot_tid y = ot_graph_attention(g, "attn", q, k, v, ac->causal, ac->scale);
  ot_tid s = ot_graph_mul(g, "yw", y, w);
  for (int ax = 3; ax >= 0; ax--) {
    char name[16];
    snprintf(name, sizeof name, "sum%d", ax);
    s = ot_graph_reduce_sum(g, name, s, ax, false);
  }
  ot_graph_output(g, s, "loss");
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, s, &err), OT_OK);
  char label[128];
  attn_label(label, sizeof label, " fwd+bwd", ac);
  case_opts o = ac->bf16 ? opts_bf16(23) : opts_fp32(23);
  ot_program *p = dev_compile_for(g, test_chip, o.mm);
  /* the forward saved its statistics: above one 128-row tile (below, the backward's own pass is cheaper) */
  if (ac->S > 128) assert_non_null(ot_program_find_tensor(p, "attn.stats"));
  else assert_null(ot_program_find_tensor(p, "attn.stats"));
  ot_program_free(p);
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_attention_train(void **state) {
  (void)state;
  attn_case cases[] = {
    {1, 2, 2, 7, 16, true, 0, false, false},
    {1, 4, 2, 129, 64, true, 0, false, false},
    {2, 2, 1, 200, 16, false, 0.3f, false, false},
    {1, 2, 2, 200, 64, true, 0, true, true},
    {1, 1, 1, 1100, 64, true, 0, true, false}, /* several query chunks of 8 tiles */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_train_run(&cases[i]);
}

static void test_attention_trn1(void **state) {
  test_chip = "trn1";
  test_attention_forward(state);
  test_attention_head_views(state);
  test_attention_backward(state);
  test_attention_train(state);
  test_chip = "trn2";
}

/* Shapes beyond the tile plans fail to compile with OT_EUNSUPPORTED and a message naming them. */
static void expect_unsupported(ot_graph *g, const char *needle) {
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_compile_options o;
  ot_compile_options_default(&o);
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, &err), OT_OK);
  ot_program *p = NULL;
  assert_int_equal(ot_compile(g, chip, &o, &p, &err), OT_EUNSUPPORTED);
  ot_chip_free(chip);
  assert_null(p);
  printf("  expected error: %s\n", err.msg);
  assert_non_null(strstr(err.msg, needle));
}

static void test_attention_limits(void **state) {
  (void)state;
  attn_case longs = {1, 1, 1, 16384, 128, true, 0, false, false};
  ot_graph *g = attn_graph(&longs, false);
  expect_unsupported(g, "S = 16384");
  ot_graph_free(g);
  g = attn_graph(&longs, true);
  expect_unsupported(g, "attention_bwd sequence length S = 16384");
  ot_graph_free(g);
  attn_case wide = {1, 1, 1, 8, 256, true, 0, false, false};
  g = attn_graph(&wide, false);
  expect_unsupported(g, "D = 256");
  ot_graph_free(g);
}

/* ---- rope ---------------------------------------------------------------------------------- */
static void rope_run(int64_t B, int64_t H, int64_t S, int64_t D, float theta, int64_t offset, bool inverse, bool bf16) {
  ot_graph *g = ot_graph_new();
  int64_t xs[4] = {B, H, S, D};
  ot_tid x = ot_graph_input(g, "x", bf16 ? OT_DT_BF16 : OT_DT_FP32, 4, xs);
  ot_gnode proto;
  memset(&proto, 0, sizeof proto);
  proto.op = OT_GOP_ROPE;
  proto.name = "rope";
  proto.in = &x;
  proto.n_in = 1;
  proto.f[0] = theta;
  proto.i[0] = offset;
  proto.i[1] = inverse;
  proto.forward = -1;
  int32_t ni = ot_graph_add_node(g, &proto);
  assert_true(ni >= 0);
  ot_graph_output(g, g->node[ni].out[0], "y");
  char label[128];
  snprintf(label, sizeof label, "rope B%lld H%lld S%lld D%lld off%lld%s%s", (long long)B, (long long)H, (long long)S,
           (long long)D, (long long)offset, inverse ? " inverse" : "", bf16 ? " bf16" : "");
  /* the table is computed in double here, in fp32 (powf, cosf) by the reference: angles up to
  ** ~300 rad differ by a few fp32 ulps of the angle */
  case_opts o = opts_fp32(11);
  o.atol = bf16 ? 8e-3 : 2e-5;
  o.rtol = bf16 ? 8e-3 : 2e-5;
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_rope(void **state) {
  (void)state;
  rope_run(1, 2, 7, 16, 10000.0f, 0, false, false);
  rope_run(2, 3, 1, 64, 10000.0f, 5, false, false);
  rope_run(1, 2, 200, 64, 10000.0f, 3, true, false);
  rope_run(1, 40, 129, 16, 500000.0f, 0, false, false);
  rope_run(1, 2, 130, 64, 10000.0f, 0, false, true);
}

/* ---- cross-entropy ------------------------------------------------------------------------- */
static void ce_run(int64_t N, int64_t V, bool backward, bool bf16, float spread) {
  ot_graph *g = ot_graph_new();
  int64_t ls[2] = {N, V}, one = 1;
  ot_tid lg = ot_graph_input(g, "logits", bf16 ? OT_DT_BF16 : OT_DT_FP32, 2, ls);
  ot_tid tg = ot_graph_input(g, "targets", OT_DT_INT32, 1, &N);
  if (!backward) {
    ot_graph_output(g, ot_graph_cross_entropy(g, "ce", lg, tg), "loss");
  } else {
    ot_tid dl = ot_graph_input(g, "dloss", OT_DT_FP32, 1, &one);
    ot_tid in[3] = {lg, tg, dl};
    ot_gnode proto;
    memset(&proto, 0, sizeof proto);
    proto.op = OT_GOP_CROSS_ENTROPY_BWD;
    proto.name = "ce_bwd";
    proto.in = in;
    proto.n_in = 3;
    proto.forward = -1;
    int32_t ni = ot_graph_add_node(g, &proto);
    assert_true(ni >= 0);
    ot_graph_output(g, g->node[ni].out[0], "dlogits");
  }
  char label[128];
  snprintf(label, sizeof label, "cross_entropy%s N%lld V%lld%s", backward ? "_bwd" : "", (long long)N, (long long)V,
           bf16 ? " bf16" : "");
  case_opts o = opts_fp32(13);
  o.id_max = (int32_t)V;
  o.lo = -spread;
  o.hi = spread;
  if (bf16) o.atol = o.rtol = 8e-3;
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_cross_entropy(void **state) {
  (void)state;
  ce_run(7, 1000, false, false, 4.0f);
  ce_run(1, 1, false, false, 4.0f);
  ce_run(200, 1000, false, false, 30.0f);
  ce_run(2, 50257, false, false, 8.0f);
  ce_run(130, 5000, false, true, 8.0f);
  /* the target logits are gathered (indirect DMA, index p * V + target exact in fp32) up to
  ** 128 V < 2^24; a larger vocabulary picks them with a one-hot pass */
  ce_run(3, 140000, false, false, 8.0f);
}

/* Forward and backward in one graph: the backward loads the statistics the forward saved
** instead of its own pass over the logits (checked when written: the same errors against the
** reference, to the last digit, as with the statistics pass: 1.75e-08 and 1.63e-08). */
static void ce_train_run(int64_t N, int64_t V) {
  ot_graph *g = ot_graph_new();
  int64_t ls[2] = {N, V};
  ot_tid lg = ot_graph_weight(g, "logits", OT_DT_FP32, 2, ls);
  ot_tid tg = ot_graph_input(g, "targets", OT_DT_INT32, 1, &N);
  ot_tid loss = ot_graph_cross_entropy(g, "ce", lg, tg);
  ot_graph_output(g, loss, "loss");
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  assert_true(ot_graph_tensor(g, ot_graph_grad(g, lg))->is_output); /* "logits.grad" */
  char label[96];
  snprintf(label, sizeof label, "cross_entropy fwd+bwd N%lld V%lld", (long long)N, (long long)V);
  case_opts o = opts_fp32(17);
  o.id_max = (int32_t)V;
  o.lo = -8.0f;
  o.hi = 8.0f;
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_cross_entropy_bwd(void **state) {
  (void)state;
  ce_train_run(130, 3000);
  ce_train_run(2, 50257);
  ce_run(7, 1000, true, false, 4.0f);
  ce_run(129, 1000, true, false, 30.0f);
  ce_run(2, 50257, true, false, 8.0f);
  ce_run(130, 300, true, true, 8.0f);
}

/* Logits from a matmul (x W^T, W [V, D] as a tied embedding is) into the cross-entropy: the GEMM's
** epilogue leaves each row's -max and sum-exp per bank of columns (the program has the tensor
** "lm.ce_part") and the forward combines them instead of a pass over the logits; loss and every
** gradient against the reference (fp32 matmuls), rows and columns not multiples of the tiles.
** With 9000 classes the backward walks columns outer and keeps the gradient in column blocks. */
static void ce_gemm_run(int64_t N, int64_t D, int64_t V, bool train) {
  ot_graph *g = ot_graph_new();
  int64_t xs[2] = {N, D}, ws[2] = {V, D};
  ot_tid x = ot_graph_weight(g, "x", OT_DT_FP32, 2, xs);
  ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, ws);
  ot_tid tg = ot_graph_input(g, "targets", OT_DT_INT32, 1, &N);
  ot_tid loss = ot_graph_cross_entropy(g, "ce", ot_graph_matmul(g, "lm", x, w, true), tg);
  ot_graph_output(g, loss, "loss");
  ot_error err;
  ot_error_clear(&err);
  if (train) assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  ot_program *p = dev_compile_for(g, test_chip, OT_DT_FP32);
  assert_non_null(ot_program_find_tensor(p, "lm.ce_part"));
  /* the logits gradient in column blocks of the loss's chunks (compile.c column_block): its GEMMs
  ** read it so; 2048 columns a chunk on trn2 */
  if (train && V > 2048) assert_non_null(ot_program_find_tensor(p, "ce.bwd.grad^C2048"));
  ot_program_free(p);
  char label[96];
  snprintf(label, sizeof label, "matmul+cross_entropy%s N%lld D%lld V%lld", train ? " fwd+bwd" : "", (long long)N,
           (long long)D, (long long)V);
  case_opts o = opts_fp32(19);
  o.id_max = (int32_t)V;
  o.lo = -2.0f;
  o.hi = 2.0f;
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_cross_entropy_gemm_stats(void **state) {
  (void)state;
  ce_gemm_run(130, 64, 1000, false);
  ce_gemm_run(130, 64, 1000, true);
  ce_gemm_run(3, 96, 9000, true); /* 18 banks of columns, the last partial */
}

/* ---- embedding ------------------------------------------------------------------------------ */
static void emb_run(unsigned nd, const int64_t *ishape, int64_t V, int64_t D, bool backward, bool bf16) {
  ot_graph *g = ot_graph_new();
  ot_tid ids = ot_graph_input(g, "ids", OT_DT_INT32, nd, ishape);
  int64_t n = 1;
  for (unsigned d = 0; d < nd; d++) n *= ishape[d];
  if (!backward) {
    int64_t ts[2] = {V, D};
    ot_tid tab = ot_graph_weight(g, "table", bf16 ? OT_DT_BF16 : OT_DT_FP32, 2, ts);
    ot_graph_output(g, ot_graph_embedding(g, "emb", ids, tab), "y");
  } else {
    int64_t ds[4];
    for (unsigned d = 0; d < nd; d++) ds[d] = ishape[d];
    ds[nd] = D;
    ot_tid dy = ot_graph_input(g, "dy", bf16 ? OT_DT_BF16 : OT_DT_FP32, nd + 1, ds);
    ot_tid in[2] = {ids, dy};
    ot_gnode proto;
    memset(&proto, 0, sizeof proto);
    proto.op = OT_GOP_EMBEDDING_BWD;
    proto.name = "emb_bwd";
    proto.in = in;
    proto.n_in = 2;
    proto.i[0] = V;
    proto.forward = -1;
    int32_t ni = ot_graph_add_node(g, &proto);
    assert_true(ni >= 0);
    ot_graph_output(g, g->node[ni].out[0], "dtable");
  }
  char label[128];
  snprintf(label, sizeof label, "embedding%s n%lld V%lld D%lld%s", backward ? "_bwd" : "", (long long)n, (long long)V,
           (long long)D, bf16 ? " bf16" : "");
  case_opts o = opts_bf16(17); /* bf16 matmul option: the lowering must still be exact */
  o.id_max = (int32_t)V;
  o.atol = o.rtol = 0;
  run_graph(label, g, &o);
  ot_graph_free(g);
}

static void test_embedding(void **state) {
  (void)state;
  int64_t s1[2] = {2, 7}, s2[1] = {129}, s3[1] = {1}, s4[3] = {2, 2, 50};
  emb_run(2, s1, 1000, 64, false, false);
  emb_run(1, s2, 1000, 16, false, true);
  emb_run(1, s3, 1, 16, false, false);
  emb_run(3, s4, 50, 600, false, false);
}

static void test_embedding_bwd(void **state) {
  (void)state;
  int64_t s1[2] = {2, 7}, s2[1] = {200}, s3[1] = {1}, s4[2] = {3, 100};
  emb_run(2, s1, 1000, 64, true, false);
  emb_run(1, s2, 50, 16, true, false);
  emb_run(1, s3, 3, 16, true, true);
  emb_run(2, s4, 130, 600, true, false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_attention_forward),
    cmocka_unit_test(test_attention_head_views),
    cmocka_unit_test(test_attention_backward),
    cmocka_unit_test(test_attention_train),
    cmocka_unit_test(test_attention_trn1),
    cmocka_unit_test(test_attention_limits),
    cmocka_unit_test(test_rope),
    cmocka_unit_test(test_cross_entropy),
    cmocka_unit_test(test_cross_entropy_bwd),
    cmocka_unit_test(test_cross_entropy_gemm_stats),
    cmocka_unit_test(test_embedding),
    cmocka_unit_test(test_embedding_bwd),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
