/* Training (src/model/train.c): a 10-step loss trajectory and the final weights against
** torch.optim.AdamW + clip_grad_norm_ on the same batches (tests/model/model_torch.py, float64),
** the schedule, bit-identical resume from a checkpoint, checkpoint errors, evaluation and the
** `opentrn train` command.  Tolerances (docs/training.md), fp32 matmuls:
**   losses: |ours - torch| <= 1e-5 * |torch| (measured max 2.6e-7 relative)
**   weights after 10 steps: atol 2e-4 x scale, rtol 1e-3 (measured max 4.2e-5 x scale: AdamW's
**   first steps move every weight by about lr whatever the gradient's size, so tiny gradient
**   differences near zero show up in the weights)
** Weight decay only for weights of 2+ dims (torch: two param groups); one step with a large decay
** (0.5, lr 1e-2: a norm gain near 1 would move by 5e-3, 4x the tolerance) checks that split. */
#include "model/torch_model.h"

#include <sys/wait.h>

#include "model/train.h"

#define TT_B 2
#define TT_S 16
#define TT_STEPS 10
#define TT_TOKENS 4000

static uint32_t tt_tokens[TT_TOKENS];

/* Tokens with some structure (a repeating phrase with noise) so that the loss falls. */
static void tt_make_tokens(void) {
  static const char phrase[] = "In the beginning God created the heaven and the earth. ";
  uint64_t s = 3;
  for (size_t i = 0; i < TT_TOKENS; i++) {
    uint32_t c = (uint32_t)(unsigned char)phrase[i % (sizeof phrase - 1)];
    tt_tokens[i] = tm_uniform(&s) > 0.8f ? (uint32_t)((tm_uniform(&s) + 1) * 128) % 257 : c;
  }
}

static void tt_opts(train_opts *o, const char *preset) {
  train_opts_default(o);
  o->model = preset;
  o->tokens = tt_tokens;
  o->n_tokens = TT_TOKENS;
  o->batch = TT_B;
  o->seq = TT_S;
  o->steps = TT_STEPS;
  o->warmup = 3;
  o->lr = 3e-3;
  o->min_lr = 3e-4;
  o->weight_decay = 0.1;
  o->max_norm = 0.5;
  o->eval_batches = 2;
  o->fp32 = true;
}

/* job.json for model_torch.py train: the batch shape, the betas and every step's hyper. */
static void tt_write_job(const char *dir, const train_opts *o) {
  char buf[8192];
  int n = snprintf(buf, sizeof buf, "{\"batch\": %d, \"seq\": %d, \"steps\": %u, \"beta1\": %.9g, \"beta2\": %.9g, \"hyper\": [",
                   TT_B, TT_S, (unsigned)o->steps, (double)o->beta1, (double)o->beta2);
  for (uint32_t s = 0; s < o->steps; s++) {
    float h[6];
    train_hyper(o, s, h);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%s[%.9g, %.9g, %.9g, %.9g, %.9g, %.9g]", s ? ", " : "", (double)h[0],
                  (double)h[1], (double)h[2], (double)h[3], (double)h[4], (double)h[5]);
  }
  n += snprintf(buf + n, sizeof buf - (size_t)n, "]}\n");
  mt_write(mt_path(dir, "job.json"), buf, (size_t)n);
}

/* Greedy generation (fp32, the whole window recomputed per token, sliding past the context)
** is token-identical to torch's from the same weights. */
static void tt_generate(trainer *t, const ot_model_params *p, const char *dir) {
  ot_error err;
  ot_error_clear(&err);
  static const uint32_t prompt[5] = {65, 110, 100, 32, 71};
  uint32_t *out = NULL;
  char job[256];
  tm_write_model(dir, p);
  snprintf(job, sizeof job, "{\"prompt\": [65, 110, 100, 32, 71], \"n\": 20, \"seq\": %d}\n", TT_S);
  mt_write(mt_path(dir, "job.json"), job, strlen(job));
  assert_int_equal(train_generate(t, prompt, 5, 20, 0.0, 1, &out, &err), OT_OK);
  char arg[1024];
  snprintf(arg, sizeof arg, "generate %s", dir);
  mt_python("model_torch.py", arg);
  ot_safetensors *st;
  assert_int_equal(ot_safetensors_open(mt_path(dir, "ref.safetensors"), &st, &err), OT_OK);
  float *ref = tm_ref(st, "ids", 20);
  printf("greedy:");
  for (int i = 0; i < 20; i++) printf(" %u/%g", out[i], (double)ref[i]);
  printf("\n");
  for (int i = 0; i < 20; i++) assert_int_equal(out[i], (uint32_t)ref[i]);
  free(ref);
  free(out);
  ot_safetensors_close(st);
}

/* steps (<= TT_STEPS) AdamW steps of opts o (tt_opts with changes) from seeded weights, against
** torch; with gen, greedy generation from the result too. */
static void tt_trajectory_with(const char *preset, const char *dirname, train_opts o, bool gen) {
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  ot_model_params p0, p1;
  const int steps = (int)o.steps;
  const char *dir = mt_dir(dirname);
  assert_int_equal(ot_model_config_preset(preset, &cfg, &err), OT_OK);
  tm_params(&cfg, 11, &p0);
  tm_write_model(dir, &p0);
  o.init = mt_path(dir, "weights.safetensors");
  trainer *t;
  ot_status s = train_open(&o, &t, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  /* windows from our own generator: every step's batch is known to both sides */
  static uint32_t win[TT_STEPS][TT_B * (TT_S + 1)];
  static int32_t win32[TT_STEPS * TT_B * (TT_S + 1)];
  float losses[TT_STEPS];
  uint64_t r = 17;
  assert_true(steps >= 1 && steps <= TT_STEPS);
  memset(win32, 0, sizeof win32);
  for (int k = 0; k < steps; k++) {
    for (int b = 0; b < TT_B; b++) {
      size_t start = (size_t)((tm_uniform(&r) + 1) * 0.5f * (TT_TOKENS - TT_S - 2));
      for (int i = 0; i <= TT_S; i++) win[k][b * (TT_S + 1) + i] = tt_tokens[start + (size_t)i];
    }
    for (int i = 0; i < TT_B * (TT_S + 1); i++) win32[k * TT_B * (TT_S + 1) + i] = (int32_t)win[k][i];
    train_step_info info;
    assert_int_equal(train_step_on(t, win[k], &info, &err), OT_OK);
    losses[k] = info.loss;
  }
  assert_int_equal(train_params(t, &p1, &err), OT_OK);
  if (gen) tt_generate(t, &p1, mt_dir(strcmp(preset, "gpt2-tiny") ? "gen_llama" : "gen_gpt2"));
  train_free(t);
  tm_write_ints(mt_path(dir, "windows.bin"), win32, (size_t)steps * TT_B * (TT_S + 1));
  tt_write_job(dir, &o);
  char arg[1024];
  snprintf(arg, sizeof arg, "train %s", dir);
  mt_python("model_torch.py", arg);
  ot_safetensors *st;
  assert_int_equal(ot_safetensors_open(mt_path(dir, "ref.safetensors"), &st, &err), OT_OK);
  float *ref = tm_ref(st, "losses", (uint64_t)steps);
  bool ok = true;
  printf("%s: %d AdamW steps (lr %g, weight decay %g), fp32 matmuls, against torch (float64)\n", preset, steps, o.lr,
         o.weight_decay);
  for (int k = 0; k < steps; k++) {
    printf("  step %2d loss %.6f torch %.6f rel %.1e\n", k + 1, (double)losses[k], (double)ref[k],
           fabs((double)losses[k] - ref[k]) / fabs((double)ref[k]));
    ok &= fabs((double)losses[k] - ref[k]) <= 1e-5 * fabs((double)ref[k]);
  }
  if (steps > 1) assert_true(losses[steps - 1] < losses[0]);
  free(ref);
  for (size_t i = 0; i < p1.count; i++) {
    float *w = tm_ref(st, p1.params[i].name, p1.params[i].count);
    ok &= tm_close(p1.params[i].name, p1.params[i].data, w, p1.params[i].count, 2e-4, 1e-3);
    free(w);
  }
  assert_true(ok);
  ot_safetensors_close(st);
  ot_model_params_free(&p0);
  ot_model_params_free(&p1);
}

static void tt_trajectory(const char *preset, const char *dirname) {
  train_opts o;
  tt_make_tokens();
  tt_opts(&o, preset);
  tt_trajectory_with(preset, dirname, o, true);
}

/* One step with a large weight decay: decayed matmul weights and embeddings, undecayed biases and
** norm gains, as torch.optim.AdamW with two param groups. */
static void tt_decay_step(const char *preset, const char *dirname) {
  train_opts o;
  tt_make_tokens();
  tt_opts(&o, preset);
  o.steps = 1;
  o.warmup = 1;
  o.lr = 1e-2;
  o.min_lr = 1e-2;
  o.weight_decay = 0.5;
  tt_trajectory_with(preset, dirname, o, false);
}

static void test_decay_groups_vs_torch(void **state) {
  (void)state;
  tt_decay_step("gpt2-tiny", "train_decay_gpt2");
  tt_decay_step("llama-tiny", "train_decay_llama");
}

static void test_gpt2_trajectory_vs_torch(void **state) {
  (void)state;
  tt_trajectory("gpt2-tiny", "train_gpt2");
}

static void test_llama_trajectory_vs_torch(void **state) {
  (void)state;
  tt_trajectory("llama-tiny", "train_llama");
}

static void test_schedule(void **state) {
  (void)state;
  train_opts o;
  train_opts_default(&o);
  o.steps = 100;
  o.warmup = 10;
  o.lr = 1e-3;
  o.min_lr = 1e-4;
  assert_true(fabs(train_lr(&o, 0) - 1e-4) < 1e-12);  /* (s + 1) / warmup */
  assert_true(fabs(train_lr(&o, 9) - 1e-3) < 1e-12);
  assert_true(fabs(train_lr(&o, 10) - 1e-3) < 1e-12); /* cosine from the peak */
  assert_true(fabs(train_lr(&o, 55) - 5.5e-4) < 1e-9); /* half way */
  assert_true(fabs(train_lr(&o, 100) - 1e-4) < 1e-12);
  float h[6];
  o.beta1 = 0.9f;
  o.beta2 = 0.95f;
  train_hyper(&o, 0, h);
  assert_true(fabs(h[3] - 10.0) < 1e-4 && fabs(h[4] - 20.0) < 1e-3);
}

static void tt_read_file_eq(const char *a, const char *b) {
  size_t na, nb;
  char *x = mt_read(a, &na), *y = mt_read(b, &nb);
  assert_int_equal(na, nb);
  assert_memory_equal(x, y, na);
  free(x);
  free(y);
}

/* N steps straight == N/2, checkpoint, resume, N/2: the same losses and weights and moments,
** bit for bit (bf16 matmuls: the default path). */
static void test_resume_bit_identical(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  train_opts o;
  trainer *t;
  train_step_info info;
  float straight[6], resumed[6];
  const char *ck = mt_dir("train_ck"), *end_a = mt_dir("train_end_a"), *end_b = mt_dir("train_end_b");
  tt_make_tokens();
  tt_opts(&o, "gpt2-tiny");
  o.steps = 6;
  o.fp32 = false;
  assert_int_equal(train_open(&o, &t, &err), OT_OK);
  for (int k = 0; k < 6; k++) {
    assert_int_equal(train_step(t, &info, &err), OT_OK);
    straight[k] = info.loss;
    if (k == 2) assert_int_equal(train_save(t, ck, &err), OT_OK);
  }
  assert_int_equal(train_save(t, end_a, &err), OT_OK);
  train_free(t);
  o.resume_dir = ck;
  ot_status s = train_open(&o, &t, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_int_equal(train_step_count(t), 3);
  for (int k = 3; k < 6; k++) {
    assert_int_equal(train_step(t, &info, &err), OT_OK);
    resumed[k] = info.loss;
  }
  assert_int_equal(train_save(t, end_b, &err), OT_OK);
  train_free(t);
  for (int k = 3; k < 6; k++) {
    printf("step %d: straight %.9g resumed %.9g\n", k + 1, (double)straight[k], (double)resumed[k]);
    assert_memory_equal(&straight[k], &resumed[k], sizeof(float));
  }
  tt_read_file_eq(mt_path(end_a, "model-00000006.safetensors"), mt_path(end_b, "model-00000006.safetensors"));
  tt_read_file_eq(mt_path(end_a, "state.json"), mt_path(end_b, "state.json"));
}

static void test_checkpoint_errors(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  train_opts o;
  trainer *t;
  const char *ck = mt_dir("train_bad");
  tt_make_tokens();
  tt_opts(&o, "gpt2-tiny");
  o.steps = 2;
  assert_int_equal(train_open(&o, &t, &err), OT_OK);
  assert_int_equal(train_save(t, ck, &err), OT_OK);
  train_free(t);
  /* a truncated weights file */
  size_t n;
  char *w = mt_read(mt_path(ck, "model-00000000.safetensors"), &n);
  mt_write(mt_path(ck, "model-00000000.safetensors"), w, n / 2);
  free(w);
  o.resume_dir = ck;
  mt_expect(train_open(&o, &t, &err), &err, "model-00000000.safetensors", NULL);
  assert_null(t);
  /* a state file that is not one */
  mt_write(mt_path(ck, "state.json"), "{\"step\": 3}", 11);
  mt_expect(train_open(&o, &t, &err), &err, "state.json", "not an OpenTRN training state", NULL);
  /* a model the chip cannot hold: refused before compiling, with what it needs and has */
  train_opts big;
  tt_opts(&big, "gpt2");
  big.tokens = NULL;
  big.batch = 256;
  big.seq = 1024;
  mt_expect(train_open(&big, &t, &err), &err, "needs", "GiB of device HBM", "chip trn2 has 96.00 GiB", NULL);
  printf("%s\n", err.msg);
  /* a sequence longer than the context */
  o.resume_dir = NULL;
  o.seq = 200;
  mt_expect(train_open(&o, &t, &err), &err, "sequence length 200", "context", NULL);
}

/* Evaluation and the command line: `opentrn train` on a small text file prints a line per step,
** the held-out loss and a summary, and writes a checkpoint that it can resume. */
static void test_cli(void **state) {
  (void)state;
  const char *dir = mt_dir("train_cli");
  char text[6000], cmd[2048];
  for (size_t i = 0; i < sizeof text; i++) text[i] = "and the earth was without form, and void; "[i % 42];
  mt_write(mt_path(dir, "text.txt"), text, sizeof text);
  snprintf(cmd, sizeof cmd,
           "%s/opentrn train --model gpt2-tiny --data %s --steps 4 --batch 2 --seq 16 --warmup 2 --eval-every 2 "
           "--eval-batches 2 --checkpoint %s/ck > %s 2>&1",
           OT_BINARY_DIR, mt_path(dir, "text.txt"), dir, mt_path(dir, "out.txt"));
  int rc = system(cmd);
  size_t n;
  char *out = mt_read(mt_path(dir, "out.txt"), &n);
  printf("%s", out);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "step 4/4 | loss"));
  assert_non_null(strstr(out, "step 1/4 | loss"));
  assert_non_null(strstr(out, "tok/s"));
  assert_non_null(strstr(out, "MFU"));
  assert_non_null(strstr(out, "held-out loss"));
  free(out);
  snprintf(cmd, sizeof cmd, "%s/opentrn train --data %s --steps 6 --resume %s/ck > %s 2>&1", OT_BINARY_DIR,
           mt_path(dir, "text.txt"), dir, mt_path(dir, "out2.txt"));
  rc = system(cmd);
  out = mt_read(mt_path(dir, "out2.txt"), &n);
  printf("%s", out);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "step 5/6"));
  assert_null(strstr(out, "step 4/6"));
  free(out);
  /* a bad value: exit 2, the message says what was expected */
  static const char *const bad[][2] = {
    {"--steps x", "bad value 'x' for --steps: expected a non-negative integer"},
    {"--cores 0", "bad value '0' for --cores: expected a positive integer or 'all'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(cmd, sizeof cmd, "%s/opentrn train --model gpt2-tiny --data %s %s > %s 2>&1", OT_BINARY_DIR,
             mt_path(dir, "text.txt"), bad[i][0], mt_path(dir, "out3.txt"));
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    out = mt_read(mt_path(dir, "out3.txt"), &n);
    assert_non_null(strstr(out, bad[i][1]));
    free(out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_schedule),
    cmocka_unit_test(test_gpt2_trajectory_vs_torch),
    cmocka_unit_test(test_llama_trajectory_vs_torch),
    cmocka_unit_test(test_decay_groups_vs_torch),
    cmocka_unit_test(test_resume_bit_identical),
    cmocka_unit_test(test_checkpoint_errors),
    cmocka_unit_test(test_cli),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
