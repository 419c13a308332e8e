/* --check-numerics (src/model/numerics.c): the training step's graph (forward, loss, gradients)
** of a tiny GPT-2 and a tiny Llama compiled and run on the simulated trn2 against the host's fp32
** reference evaluator, node by node.
**   - passes: every compared node within tolerance (bf16 operands: the bf16 pair; --fp32: the
**     fp32 pair), compared + fused + integer-only = the graph's nodes, and the fused count is
**     the compiler's own (ot_compile_stats.nodes_fused); without fusion every node is compared;
**   - catches faults: one element of an intermediate overwritten on the device after the run is
**     the first (and only) failing node, with the injected error as its max abs error; a weight
**     changed on the device only makes its first consumer fail -- a node that fusion folded
**     away is reported as fused and the failure is named at the node it is folded into. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph.h"
#include <opentrn/compile.h>
#include <opentrn/num.h>
#include "model/model_graph.h"
#include "model/numerics.h"

#define NT_B 2
#define NT_S 16

typedef struct {
  ot_model_config cfg;
  ot_model_params params;
  ot_chip *chip;
  int32_t ids[NT_B * NT_S], targets[NT_B * NT_S];
} nt_case;

/* vocab: a vocabulary size in place of the preset's (0: the preset's). */
static void nt_setup_vocab(nt_case *c, const char *preset, uint32_t vocab) {
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_model_config_preset(preset, &c->cfg, &err), OT_OK);
  if (vocab) c->cfg.vocab_size = vocab;
  assert_int_equal(ot_model_params_alloc(&c->cfg, &c->params, &err), OT_OK);
  ot_model_params_init(&c->params, 7);
  assert_int_equal(ot_chip_open("trn2", &c->chip, &err), OT_OK);
  static const char text[] = "In the beginning God created the heaven and the earth. And the earth was";
  for (int i = 0; i < NT_B * NT_S; i++) {
    c->ids[i] = (unsigned char)text[i % (int)(sizeof text - 1)];
    c->targets[i] = (unsigned char)text[(i + 1) % (int)(sizeof text - 1)];
  }
}

static void nt_setup(nt_case *c, const char *preset) { nt_setup_vocab(c, preset, 0); }

static void nt_teardown(nt_case *c) {
  ot_model_params_free(&c->params);
  ot_chip_free(c->chip);
}

static numerics_opts nt_opts(nt_case *c, bool fp32, bool fuse) {
  numerics_opts o = {.config = &c->cfg, .params = &c->params, .ids = c->ids, .targets = c->targets, .batch = NT_B,
                     .seq = NT_S, .chip = c->chip, .fp32 = fp32, .fuse = fuse};
  return o;
}

static void nt_run(const numerics_opts *o, numerics_report *r) {
  ot_error err;
  ot_error_clear(&err);
  ot_status s = numerics_check(o, r, &err);
  if (s) fail_msg("numerics_check: %s", err.msg);
  numerics_print(r, stdout, 5);
}

/* The graph's node count (MODEL_GRAPH_GRADS) for the counts' cross-check. */
/* The graph's node count, and in *heads the reshapes that split or merge attention heads (views
** of a folded head split or merge when the compiler folds those: not materialised either). */
static uint32_t nt_graph_nodes(const nt_case *c, uint32_t *heads) {
  model_graph_opts go;
  model_graph mg;
  ot_error err;
  model_graph_opts_default(&go, NT_B, NT_S, MODEL_GRAPH_GRADS);
  assert_int_equal(model_graph_build(&c->cfg, &go, &mg, &err), OT_OK);
  uint32_t n = mg.g->n_node;
  *heads = 0;
  for (uint32_t i = 0; i < n; i++)
    if (mg.g->node[i].op == OT_GOP_RESHAPE && (strstr(mg.g->node[i].name, "split_heads") || strstr(mg.g->node[i].name, "merge_heads")))
      (*heads)++;
  model_graph_free(&mg);
  return n;
}

static void nt_expect_pass_vocab(const char *preset, uint32_t vocab, bool fp32, bool fuse) {
  nt_case c;
  nt_setup_vocab(&c, preset, vocab);
  numerics_opts o = nt_opts(&c, fp32, fuse);
  numerics_report r;
  nt_run(&o, &r);
  assert_int_equal(r.failed, 0);
  assert_int_equal(r.first_bad, -1);
  assert_true(r.compared > 0);
  uint32_t heads;
  assert_int_equal(r.n_nodes, nt_graph_nodes(&c, &heads));
  assert_int_equal(r.compared + r.fused + r.skipped, r.n_nodes);
  /* every node the compiler folds away leaves at least one output unmaterialised; the tied
  ** embedding's gradient add leaves two (both of its inputs are written into its output); a
  ** head-split or merge reshape of a folded view holds no tensor of its own either */
  assert_true(r.fused >= r.nodes_fused_by_compiler);
  assert_true(r.fused <= r.nodes_fused_by_compiler + 1 + (fuse ? heads : 0));
  assert_string_equal(r.races, ""); /* the run had the race checker on */
  if (fuse) assert_true(r.fused > 0);
  else assert_int_equal(r.fused, 0);
  assert_true(fp32 ? r.atol == 2e-6 && r.rtol == 2e-5 : r.atol == 2e-2 && r.rtol == 2e-2);
  for (uint32_t i = 0; i < r.n_nodes; i++) /* every compared node read all its outputs, with real errors */
    if (r.nodes[i].state == NUMERICS_COMPARED) {
      assert_int_equal(r.nodes[i].n_out_compared, r.nodes[i].n_out);
      assert_true(r.nodes[i].worst <= 1.0 && r.nodes[i].max_abs >= 0);
    }
  numerics_report_free(&r);
  nt_teardown(&c);
}

static void nt_expect_pass(const char *preset, bool fp32, bool fuse) { nt_expect_pass_vocab(preset, 0, fp32, fuse); }

static void test_gpt2_bf16(void **state) { (void)state; nt_expect_pass("gpt2-tiny", false, true); }
/* A vocabulary wider than the loss's 2048-column chunk: the logits gradient is kept in column
** blocks ("<name>^C2048", compile.c column_block) and read back through them -- the loss
** backward is compared, not reported as fused. */
static void test_gpt2_wide_vocab(void **state) {
  (void)state;
  nt_expect_pass_vocab("gpt2-tiny", 2100, false, true);
  nt_case c;
  nt_setup_vocab(&c, "gpt2-tiny", 2100);
  numerics_opts o = nt_opts(&c, false, true);
  numerics_report r;
  nt_run(&o, &r);
  bool seen = false;
  for (uint32_t i = 0; i < r.n_nodes; i++)
    if (!strcmp(r.nodes[i].op, "cross_entropy_bwd")) {
      seen = true;
      assert_int_equal(r.nodes[i].state, NUMERICS_COMPARED);
    }
  assert_true(seen);
  numerics_report_free(&r);
  nt_teardown(&c);
}
static void test_gpt2_fp32(void **state) { (void)state; nt_expect_pass("gpt2-tiny", true, true); }
static void test_gpt2_unfused(void **state) { (void)state; nt_expect_pass("gpt2-tiny", false, false); }
static void test_llama_bf16(void **state) { (void)state; nt_expect_pass("llama-tiny", false, true); }
static void test_llama_fp32(void **state) { (void)state; nt_expect_pass("llama-tiny", true, true); }

/* Which values the compiler keeps rounded to bf16 (compile.c storage_dtype): those that only
** bf16 matmuls read, as operands (directly, through a folded transpose, a reshape or a split;
** an attention's q, k, v), row sums beside them and activation backwards (their x), produced by
** a norm, an activation, its gradient, the cross-entropy backward or a GEMM; nothing in fp32
** mode. */
static void nt_expect_dtype(ot_device *d, const char *name, ot_dtype want) {
  ot_tensor_desc desc;
  if (ot_device_tensor_find(d, name, &desc)) fail_msg("tensor %s not in the program", name);
  if (desc.dtype != want) fail_msg("%s kept in %s, expected %s", name, ot_dtype_name(desc.dtype), ot_dtype_name(want));
}

static void test_storage_types(void **state) {
  (void)state;
  nt_case c;
  nt_setup(&c, "gpt2-tiny");
  model_graph_opts go;
  model_graph mg;
  ot_error err;
  ot_error_clear(&err);
  model_graph_opts_default(&go, NT_B, NT_S, MODEL_GRAPH_GRADS);
  assert_int_equal(model_graph_build(&c.cfg, &go, &mg, &err), OT_OK);
  for (int fp32 = 0; fp32 < 2; fp32++) {
    ot_compile_options o;
    ot_compile_options_default(&o);
    o.matmul_dtype = fp32 ? OT_DT_FP32 : OT_DT_BF16;
    ot_program *p;
    ot_device *d;
    assert_int_equal(ot_compile(mg.g, c.chip, &o, &p, &err), OT_OK);
    assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
    assert_int_equal(ot_device_load(d, p), OT_OK);
    ot_dtype low = fp32 ? OT_DT_FP32 : OT_DT_BF16;
    nt_expect_dtype(d, "h.0.ln_1", low);                /* c_attn and its weight gradient */
    nt_expect_dtype(d, "h.0.mlp.gelu", low);            /* mlp.c_proj and its weight gradient */
    nt_expect_dtype(d, "h.0.mlp.gelu.bwd.grad", low); /* c_fc's dx and dw GEMMs; its bias gradient sums the
                                                        ** rounded values (a row sum, as under autocast) */
    nt_expect_dtype(d, "loss.bwd.grad", low);           /* lm_head's gradients */
    nt_expect_dtype(d, "h.0.mlp.c_fc", low);            /* the pre-activation the gelu backward reads (as
                                                        ** autocast saves it: in 16 bits) */
    nt_expect_dtype(d, "h.0.attn.c_attn", low);         /* q, k, v: read by the attention (its loads round) */
    nt_expect_dtype(d, "h.0.attn.split_qkv.bwd.dx", low); /* dq, dk, dv: c_attn's gradients (and bias sum) */
    nt_expect_dtype(d, "h.0.attn.residual", OT_DT_FP32); /* read by ln_2 */
    nt_expect_dtype(d, "lm_head", low);                 /* the logits (no graph output here): the loss reads
                                                        ** them as autocast's linear returns them */
    ot_device_close(d);
    ot_program_free(p);
  }
  model_graph_free(&mg);
  nt_teardown(&c);
}

/* ---- faults ------------------------------------------------------------------------------- */

typedef struct {
  const char *tensor;  /* device tensor to change */
  size_t element;
  float delta;         /* added to that element */
  float scale;         /* or, if not 0, every element multiplied by it */
} nt_fault;

/* The fault, on an fp32 tensor or one kept in bf16 (compile.c storage_dtype: only matmuls read it). */
static ot_status nt_inject(ot_device *d, void *arg) {
  const nt_fault *f = arg;
  ot_tensor_desc desc;
  if (ot_device_tensor_find(d, f->tensor, &desc) || (desc.dtype != OT_DT_FP32 && desc.dtype != OT_DT_BF16)) return OT_ENOTFOUND;
  size_t es = desc.dtype == OT_DT_FP32 ? 4 : 2, n = (size_t)(desc.bytes / es);
  float *v = malloc(n * sizeof *v);
  uint16_t *h = desc.dtype == OT_DT_BF16 ? malloc(desc.bytes) : NULL;
  bool bad = !v || (desc.dtype == OT_DT_BF16 && !h);
  if (!bad && !h) bad = ot_device_read(d, f->tensor, OT_DT_FP32, v, desc.bytes) != OT_OK;
  if (!bad && h) {
    bad = ot_device_read(d, f->tensor, OT_DT_BF16, h, desc.bytes) != OT_OK;
    for (size_t i = 0; !bad && i < n; i++) v[i] = ot_bf16_to_f32(h[i]);
  }
  if (bad) { free(v); free(h); return OT_EINVAL; }
  if (f->scale != 0) for (size_t i = 0; i < n; i++) v[i] *= f->scale;
  else v[f->element] += f->delta;
  if (h) {
    for (size_t i = 0; i < n; i++) h[i] = ot_f32_to_bf16(v[i]);
    ot_status s = ot_device_write(d, f->tensor, OT_DT_BF16, h, desc.bytes);
    free(v);
    free(h);
    return s;
  }
  ot_status s = ot_device_write(d, f->tensor, OT_DT_FP32, v, desc.bytes);
  free(v);
  return s;
}

static const numerics_node *nt_node(const numerics_report *r, const char *name) {
  for (uint32_t i = 0; i < r->n_nodes; i++)
    if (!strcmp(r->nodes[i].name, name)) return &r->nodes[i];
  fail_msg("no node '%s' in the report", name);
  return NULL;
}

/* The output tensor of node name in the GRADS graph (its name on the device). */
static void nt_output_name(const nt_case *c, const char *node, char *out, size_t cap) {
  model_graph_opts go;
  model_graph mg;
  ot_error err;
  model_graph_opts_default(&go, NT_B, NT_S, MODEL_GRAPH_GRADS);
  assert_int_equal(model_graph_build(&c->cfg, &go, &mg, &err), OT_OK);
  out[0] = 0;
  for (uint32_t i = 0; i < mg.g->n_node; i++)
    if (!strcmp(mg.g->node[i].name, node)) snprintf(out, cap, "%s", mg.g->t[mg.g->node[i].out[0]].name);
  model_graph_free(&mg);
  if (!out[0]) fail_msg("no node '%s' in the graph", node);
}

/* An intermediate overwritten after the run: exactly that node fails, with the injected error. */
static void nt_corrupt_intermediate(const char *preset, const char *node, bool fp32) {
  nt_case c;
  nt_setup(&c, preset);
  char tensor[128];
  nt_output_name(&c, node, tensor, sizeof tensor);
  nt_fault f = {tensor, 5, 0.25f, 0};
  numerics_opts o = nt_opts(&c, fp32, true);
  o.after_run = nt_inject;
  o.hook_arg = &f;
  numerics_report r;
  nt_run(&o, &r);
  assert_true(r.first_bad >= 0);
  const numerics_node *bad = &r.nodes[r.first_bad];
  assert_string_equal(bad->name, node);
  /* later nodes were computed from the true value; only reshapes viewing the same bytes fail too */
  for (uint32_t i = (uint32_t)r.first_bad + 1; i < r.n_nodes; i++)
    if (!r.nodes[i].ok) assert_string_equal(r.nodes[i].op, "reshape");
  assert_true(fabs(bad->max_abs - 0.25) < 0.02); /* the injected error (plus the node's own small error) */
  assert_true(bad->max_rel > 0);
  assert_true(bad->worst > 1.0);
  assert_true(fabs((double)(bad->dev - bad->ref) - 0.25) < 0.02);
  numerics_report_free(&r);
  nt_teardown(&c);
}

static void test_fault_gpt2_intermediate(void **state) {
  (void)state;
  nt_corrupt_intermediate("gpt2-tiny", "h.1.ln_2", false);
}

static void test_fault_llama_intermediate(void **state) {
  (void)state;
  nt_corrupt_intermediate("llama-tiny", "model.layers.1.mlp.swiglu", true);
}

/* A weight wrong on the device only: its linear is fused into the residual add (the add runs
** in the GEMM's epilogue), which is where the failure is named. */
static void test_fault_gpt2_weight(void **state) {
  (void)state;
  nt_case c;
  nt_setup(&c, "gpt2-tiny");
  nt_fault f = {"h.1.attn.c_proj.weight", 0, 0, 1.01f};
  numerics_opts o = nt_opts(&c, true, true);
  o.before_run = nt_inject;
  o.hook_arg = &f;
  numerics_report r;
  nt_run(&o, &r);
  const numerics_node *fc = nt_node(&r, "h.1.attn.c_proj");
  assert_int_equal(fc->state, NUMERICS_FUSED);
  assert_true(r.first_bad >= 0);
  assert_string_equal(fc->fused_into, "h.1.attn.residual");
  assert_string_equal(r.nodes[r.first_bad].name, "h.1.attn.residual");
  assert_true(r.nodes[r.first_bad].index > fc->index);
  for (int32_t i = 0; i < r.first_bad; i++) assert_true(r.nodes[i].ok);
  numerics_report_free(&r);
  nt_teardown(&c);
}

static ot_status nt_fail_hook(ot_device *d, void *arg) {
  (void)d;
  (void)arg;
  return OT_EIO;
}

/* Bad inputs and a failing hook are errors with a message, never a report. */
static void test_errors(void **state) {
  (void)state;
  nt_case c;
  nt_setup(&c, "gpt2-tiny");
  numerics_opts o = nt_opts(&c, false, true);
  numerics_report r;
  ot_error err;
  c.ids[3] = 257; /* the byte vocabulary has 257 ids */
  assert_int_equal(numerics_check(&o, &r, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "token 3 (id 257, target"));
  assert_non_null(strstr(err.msg, "outside the vocabulary [0, 257)"));
  assert_null(r.nodes);
  c.ids[3] = 1;
  o.after_run = nt_fail_hook;
  assert_int_equal(numerics_check(&o, &r, &err), OT_EIO);
  assert_non_null(strstr(err.msg, "after-run hook failed"));
  assert_null(r.nodes);
  train_opts t;
  train_opts_default(&t);
  t.model = "gpt2-tiny";
  t.resume_dir = "somewhere";
  bool passed = true;
  assert_int_equal(numerics_check_train(&t, NULL, &passed, &err), OT_EUNSUPPORTED);
  assert_false(passed);
  assert_non_null(strstr(err.msg, "not a resumed checkpoint"));
  nt_teardown(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_gpt2_bf16),
    cmocka_unit_test(test_gpt2_fp32),
    cmocka_unit_test(test_gpt2_unfused),
    cmocka_unit_test(test_llama_bf16),
    cmocka_unit_test(test_llama_fp32),
    cmocka_unit_test(test_fault_gpt2_intermediate),
    cmocka_unit_test(test_fault_llama_intermediate),
    cmocka_unit_test(test_fault_gpt2_weight),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_storage_types),
    cmocka_unit_test(test_gpt2_wide_vocab),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
