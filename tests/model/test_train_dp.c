/* Data-parallel training (src/model/train.c with train_opts.cores, docs/data-parallel.md): the
** same global batch on 1, 2 and 4 NeuronCores of trn2 gives the same losses, gradient norms and
** weights; the step's simulated time includes the gradient all-reduce; evaluation and generation
** (single-core programs) work on the data-parallel trainer's weights; a batch that does not divide
** among the cores is refused with a precise message; "all" is every core of the chip.
**
** The one-core and N-core steps differ only in fp32 summation order: each core's loss and weight
** gradients are sums over its own rows, and the all-reduce adds the cores' partial means in core
** order.  Tolerances (fp32 TensorE operands; 5 steps of gpt2-tiny, global batch 4 x 16, on 2
** and 4 cores), measured maxima in brackets (the test prints them):
**   loss, gradient norm, held-out loss: |N cores - 1 core| <= 2e-6 |1 core|     [2.0e-7, 1.2e-7, 0]
**   weights after the steps: |N - 1| <= 1e-4 scale + 1e-4 |1 core|, scale = the tensor's largest
**   |weight| [4.2e-5 scale: AdamW's m / sqrt(v) moves a weight by about lr whatever its gradient's
**   size, so an fp32 difference in a small gradient shows; test_train.c's tolerance against torch
**   is 2e-4 scale for the same reason]
**   the key biases (c_attn.bias [d, 2d)): 1e-3 scale [2.7e-4 scale: their gradient is 0 in exact
**   arithmetic, so every step of theirs is AdamW on rounding noise]
**   greedy generation after the steps: the same tokens. */
#include <math.h>
#include <stdbool.h>

#include "model/model_test.h"
#include "model/train.h"

#define TD_B 4
#define TD_S 16
#define TD_STEPS 5
#define TD_TOKENS 3000
#define TD_WATOL 1e-4     /* x the tensor's largest |weight| */
#define TD_WRTOL 1e-4
#define TD_KBIAS_ATOL 1e-3 /* the key bias: its gradient is rounding noise */

static uint32_t td_tokens[TD_TOKENS];

/* A repeating phrase with seeded noise, so that the loss falls. */
static void td_make_tokens(void) {
  static const char phrase[] = "And God said, Let there be light: and there was light. ";
  uint32_t s = 11;
  for (size_t i = 0; i < TD_TOKENS; i++) {
    s = s * 1664525u + 1013904223u;
    td_tokens[i] = (s >> 24) < 40 ? (s >> 8) % 257 : (uint32_t)(unsigned char)phrase[i % (sizeof phrase - 1)];
  }
}

static const char *td_model = "gpt2-tiny";

static void td_opts(train_opts *o, uint32_t cores) {
  train_opts_default(o);
  o->model = td_model;
  o->tokens = td_tokens;
  o->n_tokens = TD_TOKENS;
  o->batch = TD_B;
  o->seq = TD_S;
  o->steps = TD_STEPS;
  o->warmup = 2;
  o->lr = 3e-3;
  o->min_lr = 3e-4;
  o->max_norm = 0.5;
  o->eval_batches = 2;
  o->fp32 = true;
  o->cores = cores;
}

typedef struct {
  uint32_t d;                  /* hidden size */
  float loss[TD_STEPS], norm[TD_STEPS];
  uint64_t sim_ps[TD_STEPS], allreduce_ps[TD_STEPS];
  ot_model_params p;
  double eval;
  uint32_t gen[8];
} td_run;

static void td_train(uint32_t cores, td_run *r) {
  ot_error err;
  ot_error_clear(&err);
  train_opts o;
  td_opts(&o, cores);
  trainer *t = NULL;
  ot_status s = train_open(&o, &t, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(train_cores(t), cores);
  r->d = train_config(t)->hidden_size;
  for (int k = 0; k < TD_STEPS; k++) {
    train_step_info info;
    assert_int_equal(train_step(t, &info, &err), OT_OK);
    assert_int_equal(info.cores, cores);
    r->loss[k] = info.loss;
    r->norm[k] = info.grad_norm;
    r->sim_ps[k] = info.sim_ps;
    r->allreduce_ps[k] = info.allreduce_ps;
  }
  assert_int_equal(train_params(t, &r->p, &err), OT_OK);
  assert_int_equal(train_eval(t, &r->eval, &err), OT_OK);
  static const uint32_t prompt[4] = {65, 110, 100, 32};
  uint32_t *gen = NULL;
  assert_int_equal(train_generate(t, prompt, 4, 8, 0.0, 1, &gen, &err), OT_OK);
  memcpy(r->gen, gen, sizeof r->gen);
  free(gen);
  train_free(t);
}

static double td_rel(double a, double b) { return fabs(a - b) / fabs(b); }

static void td_compare(const td_run *one, const td_run *n, uint32_t cores) {
  double loss = 0, norm = 0, w = 0;
  for (int k = 0; k < TD_STEPS; k++) {
    if (td_rel(n->loss[k], one->loss[k]) > loss) loss = td_rel(n->loss[k], one->loss[k]);
    if (td_rel(n->norm[k], one->norm[k]) > norm) norm = td_rel(n->norm[k], one->norm[k]);
    assert_true(td_rel(n->loss[k], one->loss[k]) <= 2e-6);
    assert_true(td_rel(n->norm[k], one->norm[k]) <= 2e-6);
  }
  assert_int_equal(n->p.count, one->p.count);
  const char *worst = "";
  double kbias = 0;
  for (size_t i = 0; i < one->p.count; i++) {
    const ot_model_param *x = &n->p.params[i], *y = &one->p.params[i];
    double scale = 0;
    for (uint64_t j = 0; j < y->count; j++)
      if (fabs(y->data[j]) > scale) scale = fabs(y->data[j]);
    bool qkv_bias = strstr(y->name, "c_attn.bias") != NULL;
    for (uint64_t j = 0; j < y->count; j++) {
      double a = x->data[j], b = y->data[j], d = fabs(a - b);
      /* The key bias adds the same amount to every score of a query row, which the softmax
      ** cancels: its gradient is 0 in exact arithmetic and rounding noise here, and AdamW's
      ** m / sqrt(v) turns noise into steps whatever its size. */
      bool key = qkv_bias && j >= one->d && j < 2ull * one->d;
      if (key && d / scale > kbias) kbias = d / scale;
      if (!key && d / scale > w) { w = d / scale; worst = y->name; }
      if (!(d <= (key ? TD_KBIAS_ATOL : TD_WATOL) * scale + TD_WRTOL * fabs(b))) {
        fprintf(stderr, "%s[%llu]: %u cores %.9g, 1 core %.9g (tensor scale %.3g)\n", y->name, (unsigned long long)j,
                cores, a, b, scale);
        fail();
      }
    }
  }
  printf("%u cores vs 1: max relative difference loss %.3g, gradient norm %.3g; max weight difference %.3g x scale "
         "(%s; key biases %.3g); held-out %.9f vs %.9f\n", cores, loss, norm, w, worst, kbias, n->eval, one->eval);
  assert_true(td_rel(n->eval, one->eval) <= 2e-6);
  assert_memory_equal(n->gen, one->gen, sizeof one->gen); /* single-core programs on the same weights */
  /* the step's time is the whole program: every core and the all-reduce */
  for (int k = 0; k < TD_STEPS; k++) {
    assert_true(n->allreduce_ps[k] > 0);
    assert_true(n->allreduce_ps[k] < n->sim_ps[k]);
    assert_int_equal(one->allreduce_ps[k], 0);
  }
  printf("%u cores: simulated step %.2f us (all-reduce %.2f us); 1 core %.2f us\n", cores, n->sim_ps[0] / 1e6,
         n->allreduce_ps[0] / 1e6, one->sim_ps[0] / 1e6);
}

static void test_dp_matches_single_core(void **state) {
  (void)state;
  td_make_tokens();
  static td_run one, two, four;
  td_train(1, &one);
  td_train(2, &two);
  td_train(4, &four);
  assert_true(one.loss[TD_STEPS - 1] < one.loss[0]); /* it trains */
  td_compare(&one, &two, 2);
  td_compare(&one, &four, 4);
  ot_model_params_free(&one.p);
  ot_model_params_free(&two.p);
  ot_model_params_free(&four.p);
}

/* Llama: rope tables are program constants, one per rope node, shared by the cores. */
static void test_dp_llama(void **state) {
  (void)state;
  td_make_tokens();
  td_model = "llama-tiny";
  static td_run one, two;
  td_train(1, &one);
  td_train(2, &two);
  td_model = "gpt2-tiny";
  assert_true(one.loss[TD_STEPS - 1] < one.loss[0]);
  td_compare(&one, &two, 2);
  ot_model_params_free(&one.p);
  ot_model_params_free(&two.p);
}

static void test_dp_errors_and_all(void **state) {
  (void)state;
  td_make_tokens();
  ot_error err;
  ot_error_clear(&err);
  train_opts o;
  trainer *t = NULL;
  td_opts(&o, 2);
  o.batch = 3;
  mt_expect(train_open(&o, &t, &err), &err, "global batch 3 does not divide among 2 NeuronCores",
            "multiple of 2", NULL);
  assert_null(t);
  td_opts(&o, 9);
  o.batch = 9;
  mt_expect(train_open(&o, &t, &err), &err, "--cores 9", "chip trn2 has 8 NeuronCores", NULL);
  td_opts(&o, TRAIN_CORES_ALL); /* every core of the chip description */
  o.batch = 4;
  mt_expect(train_open(&o, &t, &err), &err, "global batch 4 does not divide among 8 NeuronCores", NULL);
  o.chip = "trn1";
  assert_int_equal(train_open(&o, &t, &err), OT_OK);
  assert_int_equal(train_cores(t), 2);
  train_step_info info;
  assert_int_equal(train_step(t, &info, &err), OT_OK);
  assert_true(info.allreduce_ps > 0);
  assert_true(fabs(info.mfu_chip - info.mfu) < 1e-12); /* every core: the chip's MFU */
  train_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dp_matches_single_core),
      cmocka_unit_test(test_dp_llama),
      cmocka_unit_test(test_dp_errors_and_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
