/* Model graphs (src/model/model_graph.c) against PyTorch: a tiny GPT-2 and a tiny Llama with
** random weights; logits, loss and every parameter gradient of one batch, computed three ways:
** the host reference evaluator (fp32), the compiled program on a simulated trn2 with fp32 matmuls,
** and with bf16 matmul operands (the training default).  Tolerances (docs/training.md):
**   reference evaluator, device fp32:   atol 1e-5 x scale, rtol 1e-4  (measured max 7.5e-7 x scale)
**   device bf16 operands:               atol 3e-2 x scale, rtol 3e-2  (measured max 9.1e-3 x scale)
** The tiny Llama also runs with Llama-3 rope scaling (torch computes the scaled frequencies with
** Hugging Face's formula).  Also: node names, bad input (a sequence longer than the context),
** the Llama-3.2-1B preset's training and generation graphs (rope scaling on every rope node). */
#include "model/torch_model.h"

#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "compiler/graph.h"
#include "model/generate_int.h"
#include "model/model_graph.h"

#define TM_B 2
#define TM_S 16

typedef struct {
  ot_model_config cfg;
  ot_model_params p;
  int32_t ids[TM_B * TM_S], targets[TM_B * TM_S];
  const char *dir;
  ot_safetensors *ref;
  float *ref_logits;
} tm_case;

/* The case of config cfg (c->cfg already set). */
static void case_open_cfg(tm_case *c, const char *dirname) {
  ot_error err;
  ot_error_clear(&err);
  tm_params(&c->cfg, 7, &c->p);
  uint64_t s = 99;
  for (int i = 0; i < TM_B * TM_S; i++) {
    c->ids[i] = (int32_t)((tm_uniform(&s) + 1) * 0.5f * (float)c->cfg.vocab_size) % (int32_t)c->cfg.vocab_size;
    c->targets[i] = (int32_t)((tm_uniform(&s) + 1) * 0.5f * (float)c->cfg.vocab_size) % (int32_t)c->cfg.vocab_size;
  }
  c->dir = mt_dir(dirname);
  tm_write_model(c->dir, &c->p);
  char job[128];
  snprintf(job, sizeof job, "{\"batch\": %d, \"seq\": %d}\n", TM_B, TM_S);
  mt_write(mt_path(c->dir, "job.json"), job, strlen(job));
  tm_write_ints(mt_path(c->dir, "ids.bin"), c->ids, TM_B * TM_S);
  tm_write_ints(mt_path(c->dir, "targets.bin"), c->targets, TM_B * TM_S);
  char arg[1024];
  snprintf(arg, sizeof arg, "grads %s", c->dir);
  mt_python("model_torch.py", arg);
  assert_int_equal(ot_safetensors_open(mt_path(c->dir, "ref.safetensors"), &c->ref, &err), OT_OK);
  c->ref_logits = tm_ref(c->ref, "logits", (uint64_t)TM_B * TM_S * c->cfg.vocab_size);
}

static void case_open(tm_case *c, const char *preset, const char *dirname) {
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_model_config_preset(preset, &c->cfg, &err), OT_OK);
  case_open_cfg(c, dirname);
}

static void case_close(tm_case *c) {
  ot_safetensors_close(c->ref);
  ot_model_params_free(&c->p);
  free(c->ref_logits);
}

typedef struct {
  double atol, rtol, grad_atol, grad_rtol;
} tm_tol;

/* Compare the logits (where the graph has them as an output), the loss and every gradient;
** get(name, count) gives ours (malloc'd). */
typedef float *(*tm_get_fn)(void *ctx, const char *name, uint64_t count);

static void case_compare(tm_case *c, const char *label, tm_get_fn get, void *ctx, tm_tol tol, bool logits) {
  uint64_t nl = (uint64_t)TM_B * TM_S * c->cfg.vocab_size;
  bool ok = true;
  char what[160];
  printf("%s %s\n", c->cfg.name, label);
  float *v = NULL;
  if (logits) {
    v = get(ctx, "logits", nl);
    ok &= tm_close("logits", v, c->ref_logits, nl, tol.atol, tol.rtol);
    free(v);
  }
  float *rl = tm_ref(c->ref, "loss", 1);
  v = get(ctx, "loss", 1);
  ok &= tm_close("loss", v, rl, 1, tol.atol, tol.rtol);
  free(v);
  free(rl);
  for (size_t i = 0; i < c->p.count; i++) {
    const ot_model_param *w = &c->p.params[i];
    snprintf(what, sizeof what, "%s.grad", w->name);
    float *r = tm_ref(c->ref, what, w->count);
    v = get(ctx, what, w->count);
    ok &= tm_close(what, v, r, w->count, tol.grad_atol, tol.grad_rtol);
    free(v);
    free(r);
  }
  assert_true(ok);
}

/* ---- the host reference evaluator ----------------------------------------------------------- */

typedef struct {
  model_graph mg;
  float **values;
} ref_run;

static float *ref_get(void *ctx, const char *name, uint64_t count) {
  ref_run *r = ctx;
  ot_tid t = ot_graph_find(r->mg.g, name);
  assert_int_not_equal(t, OT_TID_NONE);
  float *v = malloc((size_t)count * sizeof *v);
  memcpy(v, r->values[t], (size_t)count * sizeof *v);
  return v;
}

static void check_ref(tm_case *c) {
  ot_error err;
  ot_error_clear(&err);
  model_graph_opts o;
  ref_run r;
  model_graph_opts_default(&o, TM_B, TM_S, MODEL_GRAPH_GRADS);
  o.logits_output = true;
  assert_int_equal(model_graph_build(&c->cfg, &o, &r.mg, &err), OT_OK);
  r.values = calloc(r.mg.g->n_t, sizeof *r.values);
  float *ids = malloc(sizeof c->ids), *tg = malloc(sizeof c->targets);
  for (int i = 0; i < TM_B * TM_S; i++) ids[i] = (float)c->ids[i], tg[i] = (float)c->targets[i];
  r.values[r.mg.ids] = ids;
  r.values[r.mg.targets] = tg;
  for (size_t i = 0; i < c->p.count; i++) r.values[r.mg.weights[i]] = c->p.params[i].data;
  ot_status s = ot_graph_eval_ref(r.mg.g, r.values, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  case_compare(c, "reference evaluator (fp32)", ref_get, &r, (tm_tol){1e-5, 1e-4, 1e-5, 1e-4}, true);
  for (size_t i = 0; i < c->p.count; i++) r.values[r.mg.weights[i]] = NULL;
  for (uint32_t t = 0; t < r.mg.g->n_t; t++) free(r.values[t]);
  free(r.values);
  model_graph_free(&r.mg);
}

/* ---- the compiled program on the simulated chip ------------------------------------------------ */

static float *dev_get(void *ctx, const char *name, uint64_t count) {
  float *v = malloc((size_t)count * sizeof *v);
  if (ot_device_read(ctx, name, OT_DT_FP32, v, (size_t)count * 4)) fprintf(stderr, "%s\n", ot_device_last_error(ctx));
  return v;
}

static ot_device *dev_run(tm_case *c, ot_dtype matmul, bool logits) {
  ot_error err;
  ot_error_clear(&err);
  model_graph_opts o;
  model_graph mg;
  model_graph_opts_default(&o, TM_B, TM_S, MODEL_GRAPH_GRADS);
  o.logits_output = logits;
  assert_int_equal(model_graph_build(&c->cfg, &o, &mg, &err), OT_OK);
  ot_chip *chip = NULL;
  ot_program *prog = NULL;
  ot_device *d = NULL;
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.matmul_dtype = matmul;
  assert_int_equal(ot_chip_open("trn2", &chip, &err), OT_OK);
  ot_status s = ot_compile(mg.g, chip, &co, &prog, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(ot_device_open_chip(chip, &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, prog), OT_OK);
  for (size_t i = 0; i < c->p.count; i++)
    assert_int_equal(ot_device_write(d, c->p.params[i].name, OT_DT_FP32, c->p.params[i].data, c->p.params[i].count * 4), OT_OK);
  assert_int_equal(ot_device_write(d, "ids", OT_DT_INT32, c->ids, sizeof c->ids), OT_OK);
  assert_int_equal(ot_device_write(d, "targets", OT_DT_INT32, c->targets, sizeof c->targets), OT_OK);
  s = ot_device_run(d, NULL);
  if (s) fprintf(stderr, "%s\n", ot_device_last_error(d));
  assert_int_equal(s, OT_OK);
  ot_program_free(prog);
  ot_chip_free(chip);
  model_graph_free(&mg);
  return d;
}

static void check_device(tm_case *c) {
  ot_device *d = dev_run(c, OT_DT_FP32, true);
  case_compare(c, "simulated trn2, fp32 matmuls", dev_get, d, (tm_tol){1e-5, 1e-4, 1e-5, 1e-4}, true);
  ot_device_close(d);
  /* as training compiles it: no logits output, so they are kept in bf16 (as autocast's are) */
  d = dev_run(c, OT_DT_BF16, false);
  case_compare(c, "simulated trn2, bf16 matmul operands", dev_get, d, (tm_tol){3e-2, 3e-2, 3e-2, 3e-2}, false);
  ot_device_close(d);
}

static void test_gpt2_vs_torch(void **state) {
  (void)state;
  tm_case c;
  case_open(&c, "gpt2-tiny", "graph_gpt2");
  check_ref(&c);
  check_device(&c);
  case_close(&c);
}

static void test_llama_vs_torch(void **state) {
  (void)state;
  tm_case c;
  case_open(&c, "llama-tiny", "graph_llama");
  check_ref(&c);
  check_device(&c);
  case_close(&c);
}

/* llama-tiny with Llama-3 rope scaling, scaled to its 16 positions: head dim 16 and theta 10^4
** give wavelengths 6.3, 19.9, 62.8, ...; against 32 / 1 and 32 / 4, pair 0 keeps its frequency,
** pair 1 is blended and the others are divided by 8. */
static void test_llama3_rope_vs_torch(void **state) {
  (void)state;
  tm_case c;
  ot_error err;
  assert_int_equal(ot_model_config_preset("llama-tiny", &c.cfg, &err), OT_OK);
  snprintf(c.cfg.name, sizeof c.cfg.name, "llama-tiny-rope-llama3");
  c.cfg.rope_scaling = OT_ROPE_SCALING_LLAMA3;
  c.cfg.rope_factor = 8.0f;
  c.cfg.rope_low_freq_factor = 1.0f;
  c.cfg.rope_high_freq_factor = 4.0f;
  c.cfg.rope_original_max_position_embeddings = 32;
  case_open_cfg(&c, "graph_llama3");
  check_ref(&c);
  check_device(&c);
  case_close(&c);
}

/* Nodes are named after the model part; weights after the Hugging Face tensors. */
static void test_names(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  model_graph mg;
  model_graph_opts o;
  assert_int_equal(ot_model_config_preset("gpt2-tiny", &cfg, &err), OT_OK);
  model_graph_opts_default(&o, 1, 8, MODEL_GRAPH_TRAIN);
  assert_int_equal(model_graph_build(&cfg, &o, &mg, &err), OT_OK);
  const char *names[] = {"h.1.attn.c_attn.weight", "h.1.attn.c_attn.weight.grad", "h.1.attn.c_attn.weight.m",
                         "h.1.attn.c_attn.weight.v", "wte.weight.grad", "loss", "grad_norm", "hyper"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_int_not_equal(ot_graph_find(mg.g, names[i]), OT_TID_NONE);
  bool attn = false, fc = false;
  for (uint32_t i = 0; i < mg.g->n_node; i++) {
    attn |= !strcmp(mg.g->node[i].name, "h.1.attn");
    fc |= !strcmp(mg.g->node[i].name, "h.1.mlp.c_fc");
  }
  assert_true(attn && fc);
  model_graph_free(&mg);
}

static void test_bad_input(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  model_graph mg;
  model_graph_opts o;
  assert_int_equal(ot_model_config_preset("llama-tiny", &cfg, &err), OT_OK);
  model_graph_opts_default(&o, 1, 129, MODEL_GRAPH_FORWARD);
  mt_expect(model_graph_build(&cfg, &o, &mg, &err), &err, "sequence length 129", "context", "128", NULL);
}

/* Every rope node of g carries the preset's llama3 scaling (factor 32, 1, 4, 8192); returns how
** many there are. */
static unsigned rope_nodes_scaled(const ot_graph *g, int64_t offset) {
  unsigned n = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *r = &g->node[i];
    if (r->op != OT_GOP_ROPE) continue;
    assert_true(r->f[0] == 500000.0f && r->f[1] == 32.0f && r->f[2] == 1.0f && r->f[3] == 4.0f);
    assert_int_equal(r->i[2], 8192);
    if (!r->i[1]) assert_int_equal(r->i[0], offset); /* forward nodes; the backward ones are inverse */
    n++;
  }
  return n;
}

/* Llama-3.2-1B (llama3 rope scaling) builds its training step and its generation steps. */
static void test_llama_1b_graphs(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  model_graph mg;
  model_graph_opts o;
  assert_int_equal(ot_model_config_preset("llama-3.2-1b", &cfg, &err), OT_OK);
  assert_int_equal(cfg.rope_scaling, OT_ROPE_SCALING_LLAMA3);
  model_graph_opts_default(&o, 1, 64, MODEL_GRAPH_TRAIN);
  ot_status s = model_graph_build(&cfg, &o, &mg, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(rope_nodes_scaled(mg.g, 0), 4 * cfg.num_hidden_layers); /* q, k and their backward */
  model_graph_free(&mg);
  /* generation: a prefill of 8 tokens, then a decode step at position 8 */
  ot_model_tensor_spec *specs;
  size_t n_specs;
  assert_int_equal(ot_model_tensor_specs(&cfg, &specs, &n_specs, &err), OT_OK);
  gen_derived *dv = calloc(n_specs + 1, sizeof *dv);
  ot_tid *dw = calloc(n_specs + 1, sizeof *dw), *w = calloc(n_specs, sizeof *w);
  int64_t steps[2][2] = {{8, 0}, {1, 8}};
  for (int k = 0; k < 2; k++) {
    gg_ctx x;
    memset(&x, 0, sizeof x);
    x.c = &cfg;
    x.specs = specs;
    x.n_specs = n_specs;
    x.w = w;
    x.n_dv = gen_derived_list(&cfg, specs, n_specs, false, dv);
    x.dv = dv;
    x.dw = dw;
    x.B = 1;
    x.S = steps[k][0];
    x.pos = steps[k][1];
    x.ctx = 64;
    x.cache_dt = OT_DT_BF16;
    ot_graph *g = NULL;
    s = gen_graph_build(&x, &g, &err);
    if (s) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(s, OT_OK);
    assert_int_equal(rope_nodes_scaled(g, steps[k][1]), 2 * cfg.num_hidden_layers);
    ot_graph_free(g);
  }
  free(dv);
  free(dw);
  free(w);
  free(specs);
}

/* The training step compiles for trn2 (every op, forward, backward and optimiser, lowers). */
static void test_train_step_compiles(void **state) {
  (void)state;
  const char *presets[] = {"gpt2-tiny", "llama-tiny"};
  for (int k = 0; k < 2; k++) {
    ot_error err;
    ot_model_config cfg;
    model_graph mg;
    model_graph_opts o;
    ot_chip *chip;
    ot_program *prog = NULL;
    ot_compile_options co;
    assert_int_equal(ot_model_config_preset(presets[k], &cfg, &err), OT_OK);
    model_graph_opts_default(&o, 2, 32, MODEL_GRAPH_TRAIN);
    assert_int_equal(model_graph_build(&cfg, &o, &mg, &err), OT_OK);
    assert_int_equal(ot_chip_open("trn2", &chip, &err), OT_OK);
    ot_compile_options_default(&co);
    ot_status s = ot_compile(mg.g, chip, &co, &prog, &err);
    if (s) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(s, OT_OK);
    ot_program_free(prog);
    ot_chip_free(chip);
    model_graph_free(&mg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_train_step_compiles),
    cmocka_unit_test(test_gpt2_vs_torch),
    cmocka_unit_test(test_llama_vs_torch),
    cmocka_unit_test(test_llama3_rope_vs_torch),
    cmocka_unit_test(test_llama_1b_graphs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
