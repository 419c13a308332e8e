/* opentrn train: train a GPT-2 or Llama model on a text file on a simulated chip (src/model/train.h,
** docs/training.md). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/numerics.h"
#include "model/train.h"

static const char train_usage[] =
  "usage: opentrn train --model CONFIG --data FILE --steps N [options]\n"
  "  Train on a simulated chip: one compiled program runs forward, backward, gradient clipping\n"
  "  and AdamW per step; weights and moments stay in device HBM.  One line per step: loss,\n"
  "  learning rate, gradient norm, simulated step time and tokens/s, MFU, host ETA.\n"
  "  CONFIG: a preset (gpt2-tiny, llama-tiny, gpt2, ...), a config.json or a directory holding one.\n"
  "options:\n"
  "  --chip CHIP          trn2 (default), trn1, trn3 or a chip JSON file\n"
  "  --batch B --seq S    batch size (8) and sequence length (64); B is the global batch\n"
  "  --cores N|all        data-parallel over N NeuronCores of the chip (1; all = every core):\n"
  "                       each takes B/N rows, gradients are all-reduced on the simulated chip\n"
  "                       (B must divide by N; evaluation and generation run on one core)\n"
  "  --lr X --min-lr X    peak (1e-3) and final (1e-4) learning rate: warm-up, then cosine\n"
  "  --warmup N           warm-up steps (10)\n"
  "  --weight-decay X     AdamW weight decay (0.1), on matrices and embeddings (not biases, norm gains)\n"
  "  --max-norm X         clip the global gradient norm to X (1.0; 0 = no clipping)\n"
  "  --seed N             weights and data order (1)\n"
  "  --eval-every K       held-out loss every K steps (0 = never) over --eval-batches N (8)\n"
  "  --init FILE          start from these safetensors weights instead of a seeded initialisation\n"
  "  --checkpoint DIR     save weights, AdamW moments and state to DIR at the end (and every\n"
  "                       --checkpoint-every K steps)\n"
  "  --resume DIR         continue a checkpoint bit-identically (model, batch, seq, seed from it)\n"
  "  --tokenizer DIR      GPT-2 BPE files for vocabularies above 257 (default data/gpt2)\n"
  "  --fp32               fp32 TensorE operands (default bf16 operands, fp32 accumulation)\n"
  "  --check-numerics     first run the step's forward, loss and gradients once on the device\n"
  "                       (initial weights, first batch) and compare every node with the fp32\n"
  "                       host reference; name the first node out of tolerance.  Alone: stop\n"
  "                       there (exit 0 if all within tolerance, 1 if not); with --steps: train\n"
  "                       only if it passes (docs/training.md, \"Checking numerics\")\n"
  "  --quiet              print only the summary\n";

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v > 0xFFFFFFFFul) return -1;
  *out = (uint32_t)v;
  return 0;
}

static int parse_f64(const char *s, double *out) {
  char *end;
  *out = strtod(s, &end);
  return (!*s || *end) ? -1 : 0;
}

/* Options that take a number; returns 1 if name was one of them, -1 on a bad value. */
static int train_number_opt(train_opts *o, const char *name, const char *v) {
  static const struct { const char *name; size_t off; } u32s[] = {
    {"--steps", offsetof(train_opts, steps)}, {"--batch", offsetof(train_opts, batch)},
    {"--seq", offsetof(train_opts, seq)}, {"--warmup", offsetof(train_opts, warmup)},
    {"--eval-every", offsetof(train_opts, eval_every)}, {"--eval-batches", offsetof(train_opts, eval_batches)},
    {"--checkpoint-every", offsetof(train_opts, checkpoint_every)}};
  static const struct { const char *name; size_t off; } f64s[] = {
    {"--lr", offsetof(train_opts, lr)}, {"--min-lr", offsetof(train_opts, min_lr)},
    {"--weight-decay", offsetof(train_opts, weight_decay)}, {"--max-norm", offsetof(train_opts, max_norm)}};
  for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
    if (!strcmp(name, u32s[i].name)) return parse_u32(v, (uint32_t *)((char *)o + u32s[i].off)) ? -1 : 1;
  for (size_t i = 0; i < sizeof f64s / sizeof f64s[0]; i++)
    if (!strcmp(name, f64s[i].name)) return parse_f64(v, (double *)((char *)o + f64s[i].off)) ? -1 : 1;
  if (!strcmp(name, "--cores")) {
    if (!strcmp(v, "all")) o->cores = TRAIN_CORES_ALL;
    else if (parse_u32(v, &o->cores) || !o->cores || o->cores == TRAIN_CORES_ALL) return -1;
    return 1;
  }
  if (!strcmp(name, "--seed")) {
    char *end;
    o->seed = strtoull(v, &end, 10);
    return (*v && !*end) ? 1 : -1;
  }
  return 0;
}

/* The library's message without its own "train: " prefix (the command line adds "opentrn train: "). */
static const char *train_msg(const char *m) { return strncmp(m, "train: ", 7) ? m : m + 7; }

/* What a bad value of option name should have been (for the message). */
static const char *train_expects(const char *name) {
  if (!strcmp(name, "--cores")) return "a positive integer or 'all'";
  if (!strcmp(name, "--lr") || !strcmp(name, "--min-lr") || !strcmp(name, "--weight-decay") || !strcmp(name, "--max-norm"))
    return "a number";
  return "a non-negative integer";
}

static int train_string_opt(train_opts *o, const char *name, const char *v) {
  if (!strcmp(name, "--model")) o->model = v;
  else if (!strcmp(name, "--data")) o->data = v;
  else if (!strcmp(name, "--chip")) o->chip = v;
  else if (!strcmp(name, "--init")) o->init = v;
  else if (!strcmp(name, "--checkpoint")) o->checkpoint_dir = v;
  else if (!strcmp(name, "--resume")) o->resume_dir = v;
  else if (!strcmp(name, "--tokenizer")) o->tokenizer_dir = v;
  else return 0;
  return 1;
}

static int train_parse(int argc, char **argv, train_opts *o, bool *check) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--fp32")) { o->fp32 = true; continue; }
    if (!strcmp(a, "--check-numerics")) { *check = true; continue; }
    if (!strcmp(a, "--quiet")) { o->quiet = true; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "opentrn train: '%s' needs a value (or is unknown)\n%s", a, train_usage); return -1; }
    int r = train_number_opt(o, a, argv[i + 1]);
    if (r < 0) { fprintf(stderr, "opentrn train: bad value '%s' for %s: expected %s\n", argv[i + 1], a, train_expects(a)); return -1; }
    if (!r && !train_string_opt(o, a, argv[i + 1])) {
      fprintf(stderr, "opentrn train: unknown option '%s'\n%s", a, train_usage);
      return -1;
    }
    i++;
  }
  if (!o->data) { fprintf(stderr, "opentrn train: --data FILE is required\n%s", train_usage); return -1; }
  return 0;
}

/* --check-numerics (model/numerics.h): CLI_OK if every node is within tolerance. */
static int train_check_numerics(const train_opts *o) {
  ot_error err;
  ot_error_clear(&err);
  bool passed = false;
  if (numerics_check_train(o, stdout, &passed, &err)) {
    fprintf(stderr, "opentrn train: %s\n", train_msg(err.msg));
    return CLI_REJECTED;
  }
  return passed ? CLI_OK : CLI_REJECTED;
}

int cli_train(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(train_usage, stdout); return CLI_OK; }
  train_opts o;
  train_opts_default(&o);
  uint32_t default_steps = o.steps;
  bool check = false;
  o.steps = UINT32_MAX; /* tells whether --steps was given (it decides whether training follows a check) */
  if (train_parse(argc, argv, &o, &check)) return CLI_USAGE;
  bool steps_given = o.steps != UINT32_MAX;
  if (!steps_given) o.steps = default_steps;
  if (check) {
    int rc = train_check_numerics(&o);
    if (rc != CLI_OK || !steps_given) return rc;
  }
  ot_error err;
  ot_error_clear(&err);
  trainer *t = NULL;
  if (train_open(&o, &t, &err) || train_run(t, stdout, &err)) {
    fprintf(stderr, "opentrn train: %s\n", train_msg(err.msg));
    train_free(t);
    return CLI_REJECTED;
  }
  train_free(t);
  return CLI_OK;
}
