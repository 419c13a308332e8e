/* Reverse-mode autodiff (ot_graph_backward) checked against torch.autograd: for every forward op
** (random shapes including 1, 7 and 129) and for a GPT-2 block and a Llama block trained on a
** cross-entropy loss, every node output and every weight's gradient of the reference evaluator
** match PyTorch within docs/autodiff.md's tolerances.  Plus the structure of the backward
** (names, node.forward, fp32 "<w>.grad" outputs, pruning) and its errors. */
#include "torch_cases.h"

/* ---- structure and errors ----------------------------------------------------------------- */
/* Backward nodes name their forward node; weight gradients are fp32 outputs "<w>.grad";
** a branch that does not reach the loss gets no backward and its weight no gradient. */
static void test_structure(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = ot_graph_input(g, "x", FP, ND(7, 5));
  ot_tid w = ot_graph_weight(g, "w", BF, ND(5, 3)), u = ot_graph_weight(g, "u", FP, ND(5, 3));
  ot_tid y = ot_graph_matmul(g, "mm", ot_graph_cast(g, "x.bf16", x, BF), w, false);
  ot_graph_matmul(g, "dead", x, u, false); /* not on the loss's path */
  ot_tid loss = ot_graph_reduce_mean(g, "loss", ot_graph_reshape(g, "flat", y, ND(1, 21)), 1, false);
  assert_int_equal(ot_graph_status(g), OT_OK);
  uint32_t n_fwd = g->n_node;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  assert_true(g->n_node > n_fwd);
  for (uint32_t k = n_fwd; k < g->n_node; k++) {
    const ot_gnode *n = &g->node[k];
    assert_true(n->forward >= 0 && (uint32_t)n->forward < n_fwd);
    const char *fw = g->node[n->forward].name;
    assert_memory_equal(n->name, fw, strlen(fw));
    assert_memory_equal(n->name + strlen(fw), ".bwd", 4);
    assert_string_not_equal(fw, "dead");
    assert_string_not_equal(fw, "x.bf16"); /* x is an input: no gradient wanted */
  }
  ot_tid gw = ot_graph_grad(g, w);
  assert_int_not_equal(gw, OT_TID_NONE);
  assert_int_equal(ot_graph_find(g, "w.grad"), gw);
  assert_int_equal(ot_graph_tensor(g, gw)->dtype, OT_DT_FP32);
  assert_true(ot_graph_tensor(g, gw)->is_output);
  assert_int_equal(ot_graph_tensor(g, gw)->shape[0], 5);
  assert_int_equal(ot_graph_grad(g, u), OT_TID_NONE);
  assert_int_equal(ot_graph_grad(g, x), OT_TID_NONE);
  /* A second backward on the same graph is refused. */
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_EINVAL);
  ot_graph_free(g);
}

/* Two weights whose gradient is one tensor get their own copies, each named. */
static void test_shared_grad(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid a = ot_graph_weight(g, "a", FP, ND(3)), b = ot_graph_weight(g, "b", FP, ND(3));
  ot_tid loss = ot_graph_reduce_sum(g, "loss", ot_graph_add(g, "s", a, b), 0, true);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  ot_tid ga = ot_graph_grad(g, a), gb = ot_graph_grad(g, b);
  assert_true(ga != OT_TID_NONE && gb != OT_TID_NONE && ga != gb);
  assert_string_equal(ot_graph_tensor(g, ga)->name, "a.grad");
  assert_string_equal(ot_graph_tensor(g, gb)->name, "b.grad");
  float *v[64] = {0};
  v[a] = calloc(3, sizeof(float));
  v[b] = calloc(3, sizeof(float));
  assert_true(g->n_t <= 64);
  assert_int_equal(ot_graph_eval_ref(g, v, &err), OT_OK);
  for (int i = 0; i < 3; i++) assert_true(v[ga][i] == 1.0f && v[gb][i] == 1.0f);
  for (uint32_t t = 0; t < g->n_t; t++) free(v[t]);
  ot_graph_free(g);
}

/* A loss that no weight reaches: nothing to do, no gradients, no error. */
static void test_no_weights(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = ot_graph_input(g, "x", FP, ND(4));
  ot_tid w = ot_graph_weight(g, "w", FP, ND(4));
  ot_graph_scale(g, "unused", w, 2.0f);
  ot_tid loss = ot_graph_reduce_sum(g, "loss", x, 0, true);
  uint32_t n = g->n_node;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_OK);
  assert_int_equal(g->n_node, n);
  assert_int_equal(ot_graph_grad(g, w), OT_TID_NONE);
  ot_graph_free(g);
}

static void test_error_non_scalar(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid y = ot_graph_scale(g, "y", ot_graph_weight(g, "w", FP, ND(7, 3)), 2.0f);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, y, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "'y'"));
  assert_non_null(strstr(err.msg, "[7, 3]"));
  assert_non_null(strstr(err.msg, "scalar"));
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, 99, &err), OT_EINVAL);
  ot_graph_free(g);
}

static void test_error_unsupported(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid w = ot_graph_weight(g, "w", FP, ND(2, 4));
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SOFTMAX_BWD);
  ot_tid in[2] = {ot_graph_softmax(g, "sm", w), w};
  p.name = "manual_bwd";
  p.in = in;
  p.n_in = 2;
  int32_t k = ot_graph_add_node(g, &p);
  assert_true(k >= 0);
  ot_tid loss = ot_graph_reduce_sum(g, "loss", ot_graph_reshape(g, "flat", g->node[k].out[0], ND(1, 8)), 1, false);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_backward(g, loss, &err), OT_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "'manual_bwd'"));
  assert_non_null(strstr(err.msg, "softmax_bwd"));
  ot_graph_free(g);
}

int main(void) {
  const struct CMUnitTest extra[] = {
      cmocka_unit_test(test_structure),
      cmocka_unit_test(test_shared_grad),
      cmocka_unit_test(test_no_weights),
      cmocka_unit_test(test_error_non_scalar),
      cmocka_unit_test(test_error_unsupported),
  };
  return rh_main("autodiff", cases, sizeof cases / sizeof cases[0], extra, sizeof extra / sizeof extra[0]);
}
