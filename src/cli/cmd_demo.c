/* opentrn demo: the main job.  Show the trn2 chip in brief; run a hand-written kernel (the tiled
** bf16 matmul) checked bit for bit; then train a tiny GPT on the King James Bible on the simulated
** chip -- one compiled program per step does forward, backward, clipping and AdamW -- show the
** loss falling and the held-out loss, generate a greedy sample, and print the simulated
** throughput and MFU (docs/training.md). */
#include <opentrn/chip.h>
#include <opentrn/cost.h>
#include <opentrn/device.h>
#include <opentrn/num.h>
#include <opentrn/program.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "model/train.h"

#ifndef OT_EXAMPLES_DIR
#define OT_EXAMPLES_DIR "examples/kernels"
#endif

static const char demo_usage[] =
  "usage: opentrn demo [--chip CHIP] [--steps N] [--data FILE] [--sample N] [--quick]\n"
  "  Show CHIP (default trn2) in brief, run the tiled bf16 matmul kernel checked against a C\n"
  "  matmul, then train a tiny GPT (byte-level, 2 layers, d = 64) on the King James Bible\n"
  "  (public domain; scripts/fetch_kjv.sh, Debian bible-kjv) for N steps (default 400, a few\n"
  "  minutes on 2 cores; --quick: 40) on the simulated CHIP, and generate N bytes (default 200,\n"
  "  sampled at temperature 0.6; half as many greedily).  One compiled program per step runs\n"
  "  forward, backward, clipping and AdamW.\n";

typedef struct {
  const char *chip, *data;
  uint32_t steps, sample;
} demo_opts;

static int fail(const ot_error *err, const char *step) {
  fprintf(stderr, "opentrn demo: %s failed: %s\n%s\n", step, ot_status_str(err->code), err->msg);
  return CLI_REJECTED;
}

static double demo_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double chip_field(const ot_chip *chip, const char *path) {
  double v = 0;
  ot_error err;
  return ot_chip_get(chip, path, &v, &err) ? 0 : v;
}

static void demo_chip(const ot_chip *chip) {
  printf("== 1. the chip: a simulated %s\n", ot_chip_name(chip));
  printf("%d NeuronCores; per core a %gx%g TensorE at %g GHz (%.1f bf16 TFLOPS), SBUF %g partitions x %g KiB,\n"
         "%g GiB HBM at %g GB/s per chip ('opentrn chip show %s' lists every field with its source)\n",
         ot_chip_cores(chip), chip_field(chip, "tensor.rows"), chip_field(chip, "tensor.cols"),
         chip_field(chip, "tensor.clock_ghz"), ot_chip_peak_tflops_core(chip, "bf16"), chip_field(chip, "sbuf.partitions"),
         chip_field(chip, "sbuf.bytes_per_partition") / 1024, chip_field(chip, "hbm.bytes") / (1024.0 * 1024 * 1024),
         chip_field(chip, "hbm.bandwidth_gbps"), ot_chip_name(chip));
}

/* ---- a hand-written kernel ------------------------------------------------------------------ */

/* Seeded inputs for the matmul kernel: at = A^T [1024, 512], b [1024, 2048], both bf16. */
static void fill_bf16(uint16_t *v, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = ot_f32_to_bf16((float)((seed >> 40) / 16777216.0) - 0.5f);
  }
}

/* The matmul kernel's C against fp32 accumulation in k order, on a sample of entries. */
static long check_matmul(const uint16_t *at, const uint16_t *b, const float *c) {
  long bad = 0;
  for (int m = 0; m < 512; m += 31)
    for (int n = 0; n < 2048; n += 17) {
      float acc = 0;
      for (int k = 0; k < 1024; k++) acc = acc + ot_bf16_to_f32(at[k * 512 + m]) * ot_bf16_to_f32(b[k * 2048 + n]);
      bad += acc != c[m * 2048 + n];
    }
  return bad;
}

/* Assemble and verify the kernel (the device loads it again from the file). */
static int demo_verify(const ot_chip *chip, const char *kernel) {
  ot_error err;
  ot_program *prog = NULL;
  ot_error_clear(&err);
  if (ot_asm_file(kernel, &prog, &err)) return fail(&err, "assembly");
  int rc = ot_program_verify(prog, chip, &err) ? fail(&err, "verification") : CLI_OK;
  if (!rc) printf("assembled %zu instructions; verified for %s: no violations\n", ot_program_insn_count(prog), ot_chip_name(chip));
  ot_program_free(prog);
  return rc;
}

static int demo_kernel(const ot_chip *chip) {
  printf("\n== 2. a hand-written kernel: %s/matmul_tiled.s\n", OT_EXAMPLES_DIR);
  if (demo_verify(chip, OT_EXAMPLES_DIR "/matmul_tiled.s")) return CLI_REJECTED;
  ot_error err;
  ot_error_clear(&err);
  ot_device *dev = NULL;
  uint16_t *at = malloc(1024 * 512 * 2), *b = malloc(1024 * 2048 * 2);
  float *c = malloc(512 * 2048 * 4);
  int rc = CLI_OK;
  ot_run_summary sm;
  if (!at || !b || !c) { fprintf(stderr, "opentrn demo: out of memory\n"); rc = CLI_REJECTED; goto done; }
  fill_bf16(at, 1024 * 512, 1);
  fill_bf16(b, 1024 * 2048, 2);
  if (ot_device_open_chip(chip, &dev, &err)) { rc = fail(&err, "opening the device"); goto done; }
  if (ot_device_load_file(dev, OT_EXAMPLES_DIR "/matmul_tiled.s") || ot_device_write(dev, "at", OT_DT_BF16, at, 1024 * 512 * 2) ||
      ot_device_write(dev, "b", OT_DT_BF16, b, 1024 * 2048 * 2) || ot_device_run(dev, NULL) ||
      ot_device_read(dev, "c", OT_DT_FP32, c, 512 * 2048 * 4) || ot_device_summary(dev, &sm)) {
    fprintf(stderr, "opentrn demo: %s\n", ot_device_last_error(dev));
    rc = CLI_REJECTED;
    goto done;
  }
  long bad = check_matmul(at, b, c);
  printf("C = A @ B [512 x 1024] @ [1024 x 2048] bf16: %s against a C matmul (fp32 accumulation in k order)\n"
         "simulated %.1f us, %.1f TFLOPS, MFU %.1f%%, %llu instructions ('opentrn run --stats' for the full table)\n",
         bad ? "MISMATCH" : "bit-exact", (double)sm.time_ps * 1e-6,
         sm.time_ps ? (double)sm.model_flops / ((double)sm.time_ps * 1e-12) * 1e-12 : 0, sm.mfu * 100,
         (unsigned long long)sm.insns);
  if (bad) rc = CLI_REJECTED;
done:
  ot_device_close(dev);
  free(at);
  free(b);
  free(c);
  return rc;
}

/* ---- training a tiny GPT -------------------------------------------------------------------- */

/* Print the continuation of prompt: greedy (temperature 0) or sampled with a fixed seed. */
static int demo_generate(trainer *t, const char *prompt, uint32_t n, double temperature) {
  ot_error err;
  const ot_tokenizer *tok = train_tokenizer(t);
  uint32_t *ids = NULL, *out = NULL;
  size_t count, len;
  char *text = NULL;
  int rc = CLI_OK;
  if (ot_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &count, &err) ||
      train_generate(t, ids, count, n, temperature, 1, &out, &err) || ot_tokenizer_decode(tok, out, n, &text, &len, &err))
    rc = fail(&err, "generation");
  else
    printf("%s%s\n", prompt, text);
  free(ids);
  free(out);
  free(text);
  return rc;
}

static int demo_sample(trainer *t, uint32_t n) {
  double t0 = demo_now();
  printf("\n== 4. samples (the whole window is recomputed per byte on the simulated chip)\n"
         "greedy, %u bytes (a model this small soon repeats its likeliest word):\n", n / 2);
  if (demo_generate(t, "And God said", n / 2, 0.0)) return CLI_REJECTED;
  printf("\nsampled at temperature 0.6 (seed 1), %u bytes:\n", n);
  if (demo_generate(t, "And God said", n, 0.6)) return CLI_REJECTED;
  printf("(%.1f s host time)\n", demo_now() - t0);
  return CLI_OK;
}

static void demo_train_opts(train_opts *o, const demo_opts *d, const ot_model_config *cfg) {
  train_opts_default(o);
  o->config = cfg;
  o->data = d->data;
  o->chip = d->chip;
  o->steps = d->steps;
  o->batch = 8;
  o->seq = 64;
  o->warmup = d->steps / 20 ? d->steps / 20 : 1;
  o->lr = 3e-3;
  o->min_lr = 3e-4;
  o->weight_decay = 0.1;
  o->max_norm = 1.0;
  o->seed = 1;
  o->eval_every = d->steps / 4 ? d->steps / 4 : 1;
  o->eval_batches = 8;
  o->print_every = d->steps >= 100 ? 20 : 5;
  o->no_summary = true;
}

/* What this run cost at AWS list prices (cost module defaults, docs/cost.md): the simulated time
** on one of the chip's NeuronCores against an H100 doing the same 6N FLOPs at the cost model's
** MFU (a roofline model, not a measurement). */
static void demo_cost(const char *chip_name, double sim_s, double flops_6n) {
  ot_error err;
  ot_error_clear(&err);
  ot_cost_params *p = NULL;
  ot_chip *chip = NULL;
  if (ot_cost_params_new(&p, &err) || ot_chip_open(chip_name, &chip, &err)) {
    printf("cost: not available (%s)\n", err.msg);
    ot_cost_params_free(p);
    return;
  }
  char key[64];
  snprintf(key, sizeof key, "%s.price_aws", chip_name);
  double trn_price = ot_cost_param(p, key), h100_price = ot_cost_param(p, "h100.price_aws");
  double h100_peak = ot_cost_param(p, "h100.peak_bf16_tflops") * 1e12, mfu = ot_cost_param(p, "mfu");
  int cores = ot_chip_cores(chip);
  if (trn_price > 0 && h100_peak > 0 && mfu > 0 && cores > 0) {
    double trn = sim_s / 3600 * trn_price / cores, h100_s = flops_6n / (h100_peak * mfu), h100 = h100_s / 3600 * h100_price;
    printf("cost of this run at AWS list prices: %s $%.3g (one of %d NeuronCores for %.3f s at $%.3f per chip-hour); H100 $%.3g\n"
           "  (the same %.3g FLOPs in %.3g s at MFU %.2f -- a roofline model, not a measurement; %s/H100 = %.0fx, the tiny\n"
           "  model's MFU: 'opentrn cost --model gpt2 --task train --tokens 1e9' prices a real one with every assumption)\n",
           chip_name, trn, cores, sim_s, trn_price, h100, flops_6n, h100_s, mfu, chip_name, h100 > 0 ? trn / h100 : 0);
  }
  ot_chip_free(chip);
  ot_cost_params_free(p);
}

static void demo_summary(trainer *t, const char *chip, double wall) {
  train_totals s;
  train_get_totals(t, &s);
  double sim = (double)s.sim_ps * 1e-12;
  printf("\n== 5. summary\n"
         "trained %u steps (%llu tokens): training loss %.3f -> %.3f, held-out loss %.3f (uniform guess: 5.549)\n"
         "simulated %s, one NeuronCore: %.3f s in all, %.2f ms per step, %.0f tokens/s\n"
         "MFU %.2f%% of the TensorE bf16 peak counting the matmul FLOPs the device executed (%.2f%% counting\n"
         "  6 x parameters x tokens plus attention): a d = 64 model is far too small to fill a 128 x 128 PE array,\n"
         "  so every instruction is latency-bound (the hand-written GEMM above reaches %s)\n"
         "host wall time of the training %.0f s, %.2f s per step (the simulator computes every value)\n",
         s.steps, (unsigned long long)s.tokens, (double)s.first_loss, (double)s.last_loss, s.last_eval, chip, sim,
         sim * 1e3 / s.steps, sim > 0 ? (double)s.tokens / sim : 0, s.mfu_sum / s.steps * 100, s.mfu_6n_sum / s.steps * 100,
         "about 70% MFU", wall, wall / s.steps);
  ot_chip *c = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (!ot_chip_open(chip, &c, &err)) { /* 6N FLOPs from the analytic MFU: mfu_6n x peak x time */
    demo_cost(chip, sim, s.mfu_6n_sum / s.steps * ot_chip_peak_tflops_core(c, "bf16") * 1e12 * sim);
    ot_chip_free(c);
  }
}

static int demo_train(const demo_opts *d) {
  ot_error err;
  ot_model_config cfg;
  train_opts o;
  trainer *t = NULL;
  struct stat st;
  if (stat(d->data, &st) != 0) {
    fprintf(stderr, "opentrn demo: %s is missing: run scripts/fetch_kjv.sh (Debian packages bible-kjv, "
                    "bible-kjv-text; scripts/setup.sh installs them)\n", d->data);
    return CLI_REJECTED;
  }
  if (ot_model_config_preset("gpt2-tiny", &cfg, &err)) return fail(&err, "the model configuration");
  printf("\n== 3. train a tiny GPT on the King James Bible (public domain; %s, from Debian's bible-kjv)\n"
         "GPT-2 architecture, byte-level tokens (vocabulary 257), %u layers, d = %u, %u heads, context %u;\n"
         "AdamW (fp32 master weights and moments in device HBM), bf16 matmul operands, cosine schedule\n",
         d->data, cfg.num_hidden_layers, cfg.hidden_size, cfg.n_heads, cfg.max_position_embeddings);
  demo_train_opts(&o, d, &cfg);
  double t0 = demo_now();
  int rc = CLI_OK;
  if (train_open(&o, &t, &err) || train_run(t, stdout, &err)) rc = fail(&err, "training");
  double wall = demo_now() - t0;
  if (!rc) rc = demo_sample(t, d->sample);
  if (!rc) demo_summary(t, d->chip, wall);
  train_free(t);
  return rc;
}

static int demo_parse(int argc, char **argv, demo_opts *d) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--quick")) { d->steps = 40; d->sample = 80; continue; }
    if (!v) { fprintf(stderr, "opentrn demo: unknown option or missing value '%s'\n%s", a, demo_usage); return -1; }
    if (!strcmp(a, "--chip")) d->chip = v;
    else if (!strcmp(a, "--data")) d->data = v;
    else if (!strcmp(a, "--steps") && atoi(v) > 0) d->steps = (uint32_t)atoi(v);
    else if (!strcmp(a, "--sample") && atoi(v) > 0) d->sample = (uint32_t)atoi(v);
    else { fprintf(stderr, "opentrn demo: unknown option or bad value '%s %s'\n%s", a, v, demo_usage); return -1; }
    i++;
  }
  return 0;
}

/* data/kjv.txt of the source tree (scripts/fetch_kjv.sh writes it), next to examples/kernels. */
static void demo_data_path(char *buf, size_t cap) {
  const char *ex = OT_EXAMPLES_DIR, *tail = strstr(ex, "examples/kernels");
  int n = tail ? (int)(tail - ex) : 0;
  snprintf(buf, cap, "%.*sdata/kjv.txt", n, ex);
}

int cli_demo(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(demo_usage, stdout); return CLI_OK; }
  char data[4096];
  demo_data_path(data, sizeof data);
  demo_opts d = {"trn2", data, 400, 200};
  if (demo_parse(argc, argv, &d)) return CLI_USAGE;
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  if (ot_chip_open(d.chip, &chip, &err)) return fail(&err, "loading the chip");
  demo_chip(chip);
  int rc = demo_kernel(chip);
  ot_chip_free(chip);
  if (rc == CLI_OK) rc = demo_train(&d);
  return rc;
}
