/* Graph builder: shape and dtype inference of every op, default names, and every kind of
** builder error (sticky, precise, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compiler/graph_int.h"

static void expect_shape(const ot_graph *g, ot_tid t, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  assert_true(ot_graph_valid(g, t));
  const ot_gtensor *x = ot_graph_tensor(g, t);
  char a[128], b[128];
  ot_gtensor_describe(x, a, sizeof a);
  ot_gtensor e = {0};
  e.dtype = (uint8_t)dt;
  e.ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim; d++) e.shape[d] = shape[d];
  ot_gtensor_describe(&e, b, sizeof b);
  if (strcmp(a, b)) fail_msg("tensor '%s' is %s, expected %s", x->name, a, b);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) (sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define EXPECT(g, t, dt, ...) expect_shape(g, t, dt, (unsigned)NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))

static void expect_error(const ot_graph *g, const char *part) {
  assert_int_not_equal(ot_graph_status(g), OT_OK);
  if (!strstr(ot_graph_error(g), part)) fail_msg("error '%s' lacks '%s'", ot_graph_error(g), part);
}

static ot_tid in(ot_graph *g, const char *name, ot_dtype dt, unsigned nd, const int64_t *s) {
  return ot_graph_input(g, name, dt, nd, s);
}

static void test_matmul_linear(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid a = in(g, "a", OT_DT_BF16, 3, SHAPE(4, 128, 64));
  ot_tid b = ot_graph_weight(g, "b", OT_DT_FP32, 2, SHAPE(64, 32));
  ot_tid bt = ot_graph_weight(g, "bt", OT_DT_FP32, 2, SHAPE(32, 64));
  ot_tid bb = in(g, "bb", OT_DT_BF16, 3, SHAPE(4, 64, 16));
  EXPECT(g, ot_graph_matmul(g, "m", a, b, false), OT_DT_BF16, 4, 128, 32);
  EXPECT(g, ot_graph_matmul(g, "mt", a, bt, true), OT_DT_BF16, 4, 128, 32);
  EXPECT(g, ot_graph_matmul(g, "mb", a, bb, false), OT_DT_BF16, 4, 128, 16);
  ot_tid x = in(g, "x", OT_DT_FP32, 2, SHAPE(128, 768));
  ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, SHAPE(768, 3072));
  ot_tid wo = ot_graph_weight(g, "wo", OT_DT_FP32, 2, SHAPE(3072, 768));
  ot_tid bias = ot_graph_weight(g, "bias", OT_DT_FP32, 1, SHAPE(3072));
  EXPECT(g, ot_graph_linear(g, "fc", x, w, bias, false), OT_DT_FP32, 128, 3072);
  EXPECT(g, ot_graph_linear(g, NULL, x, wo, OT_TID_NONE, true), OT_DT_FP32, 128, 3072);
  assert_int_equal(ot_graph_status(g), OT_OK);
  assert_string_equal(g->node[g->n_node - 1].name, "linear_1");
  /* the message of the brief */
  ot_tid w2 = ot_graph_weight(g, "w2", OT_DT_FP32, 2, SHAPE(512, 3072));
  assert_int_equal(ot_graph_linear(g, "fc2", x, w2, OT_TID_NONE, false), OT_TID_NONE);
  expect_error(g, "node 'fc2' (linear): x [128, 768] and w [512, 3072]: x's last dim 768 must equal w's dim 0 (in)");
  /* sticky */
  assert_int_equal(ot_graph_softmax(g, "s", x), OT_TID_NONE);
  ot_graph_free(g);

  g = ot_graph_new();
  a = in(g, "a", OT_DT_BF16, 2, SHAPE(8, 64));
  b = in(g, "b", OT_DT_BF16, 2, SHAPE(32, 16));
  assert_int_equal(ot_graph_matmul(g, "mm", a, b, false), OT_TID_NONE);
  expect_error(g, "a's last dim 64 (K) must equal b's dim 0 32");
  ot_graph_free(g);
  g = ot_graph_new();
  a = in(g, "a", OT_DT_BF16, 3, SHAPE(2, 8, 64));
  b = in(g, "b", OT_DT_BF16, 3, SHAPE(3, 64, 16));
  assert_int_equal(ot_graph_matmul(g, "mm", a, b, false), OT_TID_NONE);
  expect_error(g, "batched b's leading dim 0 is 3");
  ot_graph_free(g);
  g = ot_graph_new();
  x = in(g, "x", OT_DT_BF16, 2, SHAPE(8, 64));
  w = in(g, "w", OT_DT_BF16, 2, SHAPE(64, 16));
  bias = in(g, "bias", OT_DT_BF16, 1, SHAPE(64));
  assert_int_equal(ot_graph_linear(g, "fc", x, w, bias, false), OT_TID_NONE);
  expect_error(g, "bias must be [16]");
  ot_graph_free(g);
}

static void test_elementwise(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid a = in(g, "a", OT_DT_BF16, 3, SHAPE(2, 5, 7));
  ot_tid b = in(g, "b", OT_DT_FP32, 1, SHAPE(7));
  ot_tid c = in(g, "c", OT_DT_FP32, 2, SHAPE(5, 7));
  ot_tid s = in(g, "s", OT_DT_FP32, 0, NULL);
  EXPECT(g, ot_graph_add(g, "add", a, b), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_sub(g, "sub", a, c), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_mul(g, "mul", a, a), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_mul(g, "mul_s", a, s), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_scale(g, "scale", a, 0.5f), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_gelu(g, "gelu", a, true), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_silu(g, "silu", a), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_swiglu(g, "sw", a, a), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_softmax(g, "sm", a), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_layernorm(g, "ln", a, b, b, 1e-5f), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_rmsnorm(g, "rms", a, b, 1e-6f), OT_DT_BF16, 2, 5, 7);
  EXPECT(g, ot_graph_cast(g, "cast", a, OT_DT_FP32), OT_DT_FP32, 2, 5, 7);
  assert_int_equal(ot_graph_status(g), OT_OK);
  /* b is not a suffix of a */
  assert_int_equal(ot_graph_add(g, "bad", c, a), OT_TID_NONE);
  expect_error(g, "node 'bad' (add): a [5, 7] and b [2, 5, 7]: b must have a's shape or a suffix");
  ot_graph_free(g);

  g = ot_graph_new();
  a = in(g, "a", OT_DT_BF16, 2, SHAPE(5, 7));
  b = in(g, "b", OT_DT_FP32, 1, SHAPE(6));
  assert_int_equal(ot_graph_layernorm(g, "ln", a, b, b, 1e-5f), OT_TID_NONE);
  expect_error(g, "gamma must be [7]");
  ot_graph_free(g);
  g = ot_graph_new();
  a = in(g, "a", OT_DT_BF16, 2, SHAPE(5, 7));
  b = in(g, "b", OT_DT_BF16, 2, SHAPE(5, 6));
  assert_int_equal(ot_graph_swiglu(g, "sw", a, b), OT_TID_NONE);
  expect_error(g, "up must have gate's shape");
  ot_graph_free(g);
}

static void test_embedding_rope_attention(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid ids = in(g, "ids", OT_DT_INT32, 2, SHAPE(4, 16));
  ot_tid table = ot_graph_weight(g, "wte", OT_DT_FP32, 2, SHAPE(50257, 768));
  EXPECT(g, ot_graph_embedding(g, "emb", ids, table), OT_DT_FP32, 4, 16, 768);
  ot_tid q = in(g, "q", OT_DT_BF16, 4, SHAPE(2, 8, 16, 64));
  ot_tid k = in(g, "k", OT_DT_BF16, 4, SHAPE(2, 2, 16, 64));
  EXPECT(g, ot_graph_rope(g, "rope", q, 10000.0f, 0), OT_DT_BF16, 2, 8, 16, 64);
  EXPECT(g, ot_graph_attention(g, "attn", q, k, k, true, 0.0f), OT_DT_BF16, 2, 8, 16, 64);
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_tid k3 = in(g, "k3", OT_DT_BF16, 4, SHAPE(2, 3, 16, 64));
  assert_int_equal(ot_graph_attention(g, "gqa", q, k3, k3, true, 0.0f), OT_TID_NONE);
  expect_error(g, "q's heads 8 must be a multiple of k's heads 3 (grouped-query attention)");
  ot_graph_free(g);

  g = ot_graph_new();
  ot_tid x = in(g, "x", OT_DT_BF16, 4, SHAPE(1, 2, 3, 5));
  assert_int_equal(ot_graph_rope(g, "r", x, 10000.0f, 0), OT_TID_NONE);
  expect_error(g, "head dim D = 5 must be even");
  ot_graph_free(g);
  g = ot_graph_new();
  ids = in(g, "ids", OT_DT_FP32, 1, SHAPE(4));
  table = in(g, "t", OT_DT_FP32, 2, SHAPE(10, 4));
  assert_int_equal(ot_graph_embedding(g, "e", ids, table), OT_TID_NONE);
  expect_error(g, "input 0 (ids) 'ids' is fp32, expected integer ids (int32)");
  ot_graph_free(g);
  g = ot_graph_new();
  ids = in(g, "ids", OT_DT_INT32, 1, SHAPE(4));
  assert_int_equal(ot_graph_softmax(g, "s", ids), OT_TID_NONE);
  expect_error(g, "input 0 (x) 'ids' is int32, expected a float type");
  ot_graph_free(g);
}

static void test_shape_ops(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = in(g, "x", OT_DT_BF16, 3, SHAPE(2, 6, 8));
  EXPECT(g, ot_graph_transpose(g, "t", x, 3, SHAPE(0, 2, 1)), OT_DT_BF16, 2, 8, 6);
  EXPECT(g, ot_graph_reshape(g, "r", x, 4, SHAPE(2, 6, 2, -1)), OT_DT_BF16, 2, 6, 2, 4);
  EXPECT(g, ot_graph_reshape(g, "r2", x, 2, SHAPE(-1, 8)), OT_DT_BF16, 12, 8);
  ot_tid y = in(g, "y", OT_DT_BF16, 3, SHAPE(2, 3, 8));
  ot_tid xs[2] = {x, y};
  EXPECT(g, ot_graph_concat(g, "cat", 2, xs, -2), OT_DT_BF16, 2, 9, 8);
  assert_int_equal(g->node[g->n_node - 1].i[0], 1);  /* axis normalised */
  ot_tid outs[3];
  EXPECT(g, ot_graph_split(g, "sp", x, -1, 3, SHAPE(2, 2, 4), outs), OT_DT_BF16, 2, 6, 2);
  EXPECT(g, outs[2], OT_DT_BF16, 2, 6, 4);
  assert_string_equal(ot_graph_tensor(g, outs[1])->name, "sp.1");
  assert_int_equal(ot_graph_find(g, "sp.2"), outs[2]);
  EXPECT(g, ot_graph_slice(g, "sl", x, 1, 1, -1), OT_DT_BF16, 2, 4, 8);
  EXPECT(g, ot_graph_reduce_sum(g, "rs", x, -1, false), OT_DT_BF16, 2, 6);
  EXPECT(g, ot_graph_reduce_max(g, "rm", x, 1, true), OT_DT_BF16, 2, 1, 8);
  EXPECT(g, ot_graph_reduce_mean(g, "rmean", x, 0, false), OT_DT_BF16, 6, 8);
  ot_tid logits = in(g, "logits", OT_DT_FP32, 2, SHAPE(16, 100));
  ot_tid tgt = in(g, "tgt", OT_DT_INT32, 1, SHAPE(16));
  EXPECT(g, ot_graph_cross_entropy(g, "loss", logits, tgt), OT_DT_FP32, 1);
  ot_tid v = in(g, "v", OT_DT_FP32, 1, SHAPE(8));
  assert_int_equal(ot_graph_status(g), OT_OK);
  ot_graph_free(g);

  struct { const char *part; } cases[] = {
    {"perm entry 1 is 0; perm must be a permutation of 0..2"},
    {"cannot reshape 96 elements to [5, -1]"},
    {"sizes [2, 2, 2] add up to 6, must equal axis 2's 8"},
    {"slice [3:2] of axis 1 is empty"},
    {"axis 3 is out of range, expected -3 to 2"},
    {"inputs must have the same dtype and dims except axis 0"},
  };
  for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    g = ot_graph_new();
    x = in(g, "x", OT_DT_BF16, 3, SHAPE(2, 6, 8));
    y = in(g, "y", OT_DT_BF16, 3, SHAPE(2, 3, 8));
    ot_tid xy[2] = {x, y};
    switch (c) {
    case 0: ot_graph_transpose(g, "t", x, 3, SHAPE(0, 0, 1)); break;
    case 1: ot_graph_reshape(g, "r", x, 2, SHAPE(5, -1)); break;
    case 2: ot_graph_split(g, "s", x, 2, 3, SHAPE(2, 2, 2), NULL); break;
    case 3: ot_graph_slice(g, "s", x, 1, 3, 2); break;
    case 4: ot_graph_reduce_sum(g, "s", x, 3, false); break;
    default: ot_graph_concat(g, "c", 2, xy, 0); break;
    }
    expect_error(g, cases[c].part);
    ot_graph_free(g);
  }
  (void)v;
}

static void test_backward_ops(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = in(g, "x", OT_DT_BF16, 2, SHAPE(4, 8));
  ot_tid gam = in(g, "gamma", OT_DT_FP32, 1, SHAPE(8));
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_LAYERNORM_BWD);
  ot_tid lin[3] = {x, gam, x};
  p.in = lin;
  p.n_in = 3;
  int32_t n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  assert_int_equal(g->node[n].n_out, 3);
  EXPECT(g, g->node[n].out[0], OT_DT_BF16, 4, 8);
  EXPECT(g, g->node[n].out[1], OT_DT_FP32, 8);
  EXPECT(g, g->node[n].out[2], OT_DT_FP32, 8);
  assert_string_equal(ot_graph_tensor(g, g->node[n].out[2])->name, "layernorm_bwd_0.2");

  ot_tid ids = in(g, "ids", OT_DT_INT32, 1, SHAPE(4));
  ot_gnode_init(&p, OT_GOP_EMBEDDING_BWD);
  p.i[0] = 100;
  ot_tid ein[2] = {ids, x};
  p.in = ein;
  p.n_in = 2;
  n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  EXPECT(g, g->node[n].out[0], OT_DT_FP32, 100, 8);

  ot_tid q = in(g, "q", OT_DT_BF16, 4, SHAPE(1, 4, 8, 16));
  ot_tid k = in(g, "k", OT_DT_FP32, 4, SHAPE(1, 2, 8, 16));
  ot_gnode_init(&p, OT_GOP_ATTENTION_BWD);
  ot_tid ain[5] = {q, k, k, q, q};
  p.in = ain;
  p.n_in = 5;
  n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  EXPECT(g, g->node[n].out[0], OT_DT_BF16, 1, 4, 8, 16);
  EXPECT(g, g->node[n].out[2], OT_DT_FP32, 1, 2, 8, 16);

  ot_tid r = ot_graph_reduce_sum(g, "r", x, 0, false);  /* [8] */
  ot_gnode_init(&p, OT_GOP_BROADCAST);
  p.list[0] = 3; p.list[1] = 4; p.list[2] = 8;
  p.n_list = 3;
  p.in = &r;
  p.n_in = 1;
  n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  EXPECT(g, g->node[n].out[0], OT_DT_BF16, 3, 4, 8);

  ot_tid logits = in(g, "logits", OT_DT_BF16, 2, SHAPE(4, 10));
  ot_tid dl = in(g, "dloss", OT_DT_FP32, 1, SHAPE(1));
  ot_gnode_init(&p, OT_GOP_CROSS_ENTROPY_BWD);
  ot_tid cin[3] = {logits, ids, dl};
  p.in = cin;
  p.n_in = 3;
  n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  EXPECT(g, g->node[n].out[0], OT_DT_BF16, 4, 10);

  const ot_gop unary_bwd[] = {OT_GOP_SOFTMAX_BWD, OT_GOP_GELU_BWD, OT_GOP_SILU_BWD};
  for (unsigned j = 0; j < 3; j++) {
    ot_gnode_init(&p, unary_bwd[j]);
    ot_tid uin[2] = {x, x};
    p.in = uin;
    p.n_in = 2;
    n = ot_graph_add_node(g, &p);
    assert_true(n >= 0);
    EXPECT(g, g->node[n].out[0], OT_DT_BF16, 4, 8);
  }
  ot_gnode_init(&p, OT_GOP_SWIGLU_BWD);
  ot_tid sin[3] = {x, x, x};
  p.in = sin;
  p.n_in = 3;
  n = ot_graph_add_node(g, &p);
  assert_int_equal(g->node[n].n_out, 2);
  ot_gnode_init(&p, OT_GOP_RMSNORM_BWD);
  p.in = lin;
  p.n_in = 3;
  n = ot_graph_add_node(g, &p);
  assert_int_equal(g->node[n].n_out, 2);
  EXPECT(g, g->node[n].out[1], OT_DT_FP32, 8);
  assert_int_equal(ot_graph_status(g), OT_OK);

  ot_gnode_init(&p, OT_GOP_BROADCAST);
  p.list[0] = 4; p.list[1] = 7;
  p.n_list = 2;
  p.in = &r;
  p.n_in = 1;
  assert_int_equal(ot_graph_add_node(g, &p), -1);
  expect_error(g, "cannot broadcast to [4, 7]: x's dim 0 is 8, expected 1 or 7");
  ot_graph_free(g);
}

static void test_optimiser_ops(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid p = ot_graph_weight(g, "p", OT_DT_FP32, 2, SHAPE(4, 8));
  ot_tid q = ot_graph_weight(g, "q", OT_DT_FP32, 1, SHAPE(3));
  ot_tid hyper = ot_graph_input(g, "hyper", OT_DT_FP32, 1, SHAPE(6));
  ot_gnode n;
  ot_gnode_init(&n, OT_GOP_GLOBAL_NORM);
  ot_tid gin[2] = {p, q};
  n.in = gin;
  n.n_in = 2;
  int32_t k = ot_graph_add_node(g, &n);
  assert_true(k >= 0);
  ot_tid norm = g->node[k].out[0];
  EXPECT(g, norm, OT_DT_FP32, 1);
  ot_gnode_init(&n, OT_GOP_ADAMW);
  assert_true(n.f[0] == 0.9f && n.f[1] == 0.999f);
  ot_tid ain[6] = {p, p, p, p, norm, hyper};
  n.in = ain;
  n.n_in = 6;
  k = ot_graph_add_node(g, &n);
  assert_true(k >= 0);
  assert_int_equal(g->node[k].n_out, 3);
  EXPECT(g, g->node[k].out[2], OT_DT_FP32, 4, 8);
  ain[3] = q;
  assert_int_equal(ot_graph_add_node(g, &n), -1);
  expect_error(g, "p [4, 8] and v [3]: v must have p's shape");
  ot_graph_free(g);
}

static void test_every_op_has_inference(void **state) {
  (void)state;
  for (int op = 0; op < OT_GOP_COUNT; op++) {
    ot_gop parsed;
    assert_true(ot_gop_parse(ot_gop_table[op].name, &parsed));
    assert_int_equal(parsed, op);
    int nin = ot_gop_table[op].n_in;
    for (int k = 0; k < (nin < 0 ? 1 : nin); k++)  /* every op has a row in graph_infer.c's input table */
      if (strcmp(ot_gop_input_name((ot_gop)op, (unsigned)k), "input") == 0)
        fail_msg("op %s: input %d has no name in graph_infer.c", ot_gop_table[op].name, k);
    ot_gattr a[OT_GOP_MAX_ATTRS];
    unsigned na = ot_gop_attrs((ot_gop)op, a);
    for (unsigned k = 0; k < na; k++) assert_true(strchr("fibls", a[k].kind) != NULL);
  }
  assert_false(ot_gop_parse("frob", NULL));
  ot_gattr a;
  assert_true(ot_gop_attr_find(OT_GOP_ROPE, "inverse", &a));
  assert_int_equal(a.kind, 'b');
  assert_int_equal(a.slot, 1);
  assert_true(ot_gop_attr_find(OT_GOP_CAST, "dtype", &a));
  assert_int_equal((int)a.def, OT_DT_FP32);
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_LAYERNORM);
  assert_true(p.f[0] == 1e-5f);
  ot_gnode_init(&p, OT_GOP_REDUCE_SUM);
  assert_int_equal(p.i[0], -1);
}

static void test_builder_errors(void **state) {
  (void)state;
  /* NULL graph */
  assert_int_equal(ot_graph_input(NULL, "x", OT_DT_FP32, 0, NULL), OT_TID_NONE);
  assert_int_equal(ot_graph_add(NULL, "x", 0, 0), OT_TID_NONE);
  ot_graph_output(NULL, 0, "y");
  assert_int_equal(ot_graph_status(NULL), OT_EINVAL);
  assert_non_null(ot_graph_error(NULL));
  ot_graph_free(NULL);

  struct { const char *part; } cases[] = {
    {"input: a name is required (NULL given)"},                             /* 0 */
    {"input 'x': duplicate name: a tensor 'x' already exists"},             /* 1 */
    {"input 'y': dtype 99 is not a data type"},                             /* 2 */
    {"input 'y': 5 dims, at most 4"},                                       /* 3 */
    {"input 'y': dim 1 is 0, expected >= 1"},                               /* 4 */
    {"input 'y': more than 2^48 elements"},                                 /* 5 */
    {"node 'n' (add): input 1 (b) is tensor id 42, not a tensor of this graph"}, /* 6 */
    {"node 'n' (add): duplicate name: a node 'n' already exists"},          /* 7 */
    {"const 'c': data is NULL"},                                            /* 8 */
    {"output 'z': tensor id -7 is not a tensor"},                           /* 9 */
    {"rename of tensor 'n' to 'x': duplicate name"},                        /* 10 */
    {"node 't' (transpose): perm has 9 entries (at most 8)"},               /* 11 */
    {"node 'c' (concat): 0 inputs given, expected 1 to 1024"},              /* 12 */
    {"node of op add: the name is empty"},                                  /* 13 */
    {"node 'r' (reshape): x [1, 1, 1, 1]: the new shape has more elements"}, /* 14 */
    {"node 'n' (linear): input 2 (bias) is tensor id -1, not a tensor"},    /* 15 -- only via add_node? no */
    {"node 'lin' (linear): input 1 (w) is tensor id -1"},                  /* 16 */
    {"node 'ca' (cast): dtype 77 is not a data type"},                      /* 17 */
    {"node 'x': op 999 is not an op"},                                      /* 18 */
    {"node 'sp' (split): x [4, 4]: sizes is empty"},                        /* 19 */
    {"node 'e' (embedding): table [1, 1, 1, 1]: expected 2 dims, got 4"},   /* 20 */
  };
  for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ot_graph *g = ot_graph_new();
    ot_tid x = in(g, "x", OT_DT_FP32, 2, SHAPE(4, 4));
    ot_tid one = in(g, "one", OT_DT_FP32, 4, SHAPE(1, 1, 1, 1));
    switch (c) {
    case 0: in(g, NULL, OT_DT_FP32, 1, SHAPE(4)); break;
    case 1: in(g, "x", OT_DT_FP32, 1, SHAPE(4)); break;
    case 2: in(g, "y", (ot_dtype)99, 1, SHAPE(4)); break;
    case 3: in(g, "y", OT_DT_FP32, 5, SHAPE(1, 1, 1, 1, 1)); break;
    case 4: in(g, "y", OT_DT_FP32, 2, SHAPE(4, 0)); break;
    case 5: in(g, "y", OT_DT_FP32, 4, SHAPE(INT64_MAX, INT64_MAX, 2, 2)); break;
    case 6: ot_graph_add(g, "n", x, 42); break;
    case 7: ot_graph_add(g, "n", x, x); ot_graph_add(g, "n", x, x); break;
    case 8: ot_graph_const(g, "c", OT_DT_FP32, 1, SHAPE(4), NULL); break;
    case 9: ot_graph_output(g, -7, "z"); break;
    case 10: ot_graph_output(g, ot_graph_add(g, "n", x, x), "x"); break;
    case 11: ot_graph_transpose(g, "t", x, 9, SHAPE(0, 1, 2, 3, 4, 5, 6, 7, 8)); break;
    case 12: ot_graph_concat(g, "c", 0, NULL, 0); break;
    case 13: ot_graph_add(g, "", x, x); break;
    case 14: ot_graph_reshape(g, "r", one, 2, SHAPE(INT64_MAX, 2)); break;
    case 15: {
      ot_gnode p;
      ot_gnode_init(&p, OT_GOP_LINEAR);
      ot_tid i3[3] = {x, x, -1};
      p.in = i3; p.n_in = 3; p.name = (char *)"n";
      p.in[2] = -2;
      ot_graph_add_node(g, &p);
      break;
    }
    case 16: ot_graph_linear(g, "lin", x, OT_TID_NONE, OT_TID_NONE, false); break;
    case 17: ot_graph_cast(g, "ca", x, (ot_dtype)77); break;
    case 18: {
      ot_gnode p;
      ot_gnode_init(&p, OT_GOP_ADD);
      p.op = 999;
      p.name = (char *)"x";
      ot_graph_add_node(g, &p);
      break;
    }
    case 19: ot_graph_split(g, "sp", x, 0, 0, NULL, NULL); break;
    default: {
      ot_tid ids = ot_graph_input(g, "ids", OT_DT_INT32, 2, SHAPE(4, 4));
      ot_graph_embedding(g, "e", ids, one);
      break;
    }
    }
    if (c == 15) { expect_error(g, "node 'n' (linear): input 2 (bias) is tensor id -2"); }
    else expect_error(g, cases[c].part);
    /* everything after the first error is refused without a crash */
    assert_int_equal(ot_graph_add(g, NULL, x, x), OT_TID_NONE);
    ot_graph_free(g);
  }
}

static void test_names_and_outputs(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = in(g, "x", OT_DT_FP32, 1, SHAPE(4));
  ot_tid a0 = ot_graph_add(g, NULL, x, x);
  ot_tid a1 = ot_graph_add(g, NULL, a0, x);
  assert_string_equal(ot_graph_tensor(g, a0)->name, "add_0");
  assert_string_equal(ot_graph_tensor(g, a1)->name, "add_1");
  ot_tid u = ot_graph_add(g, "add_3", a1, x);
  ot_tid a2 = ot_graph_add(g, NULL, u, x);  /* add_3 is taken: skips to add_4 */
  assert_string_equal(ot_graph_tensor(g, a2)->name, "add_4");
  ot_graph_output(g, a2, "y");
  ot_graph_output(g, a2, "y");
  ot_graph_output(g, a2, NULL);
  assert_int_equal(ot_graph_status(g), OT_OK);
  assert_true(ot_graph_tensor(g, a2)->is_output);
  assert_int_equal(ot_graph_find(g, "y"), a2);
  assert_int_equal(ot_graph_find(g, "add_4"), OT_TID_NONE);
  assert_int_equal(ot_graph_find(g, NULL), OT_TID_NONE);
  float data[4] = {1, 2, 3, 4};
  ot_tid c = ot_graph_const(g, "c", OT_DT_FP32, 1, SHAPE(4), data);
  assert_memory_equal(ot_graph_tensor(g, c)->data, data, sizeof data);
  char buf[64];
  assert_string_equal(ot_gtensor_describe(ot_graph_tensor(g, x), buf, sizeof buf), "[4] fp32");
  ot_gtensor s = {0};
  s.dtype = OT_DT_BF16;
  assert_string_equal(ot_gtensor_describe(&s, buf, sizeof buf), "[] bf16");
  ot_graph_output(g, a2, "z");
  expect_error(g, "already an output");
  ot_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_matmul_linear),
    cmocka_unit_test(test_elementwise),
    cmocka_unit_test(test_embedding_rope_attention),
    cmocka_unit_test(test_shape_ops),
    cmocka_unit_test(test_backward_ops),
    cmocka_unit_test(test_optimiser_ops),
    cmocka_unit_test(test_every_op_has_inference),
    cmocka_unit_test(test_builder_errors),
    cmocka_unit_test(test_names_and_outputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
