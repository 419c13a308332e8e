/* opentrn fit: how much device memory a model takes, by part, and the largest batch and
** sequence that fit -- from the tensors of the very graph the compiler would compile (every one
** lives in device HBM), without compiling it. */
#include <opentrn/chip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "compiler/graph.h"
#include "model/model_graph.h"
#include "model/numerics.h"

static const char fit_usage[] =
  "usage: opentrn fit --model M [--chip CHIP] [--batch B] [--seq S] [--task train|infer] [--cores N|all]\n"
  "                   [--check-numerics [--fp32] [--seed N]]\n"
  "  Device memory of a model by part -- weights, gradients, optimizer state, activations, KV\n"
  "  cache -- for a training step (default) or inference, and the largest batch and sequence\n"
  "  that fit in the chip's HBM.  M: a preset (gpt2, gpt2-medium, llama-tiny, ...) or a\n"
  "  config.json (or its directory).  Defaults: trn2, batch 8, seq = the model's context.\n"
  "  --cores N|all: as `opentrn train --cores` (default 1).  One core's program has its share of\n"
  "  the chip's HBM (HBM / cores per chip); a data-parallel one has all of it, with one copy of the\n"
  "  weights and optimizer state and a gradient copy per core (batch = the global batch).\n"
  "  --check-numerics: if it fits, also run the training step's forward, loss and gradients\n"
  "  once on the simulated chip with seeded random weights and tokens (--seed, 1) and compare\n"
  "  every node with the fp32 host reference (docs/training.md, \"Checking numerics\"); --fp32\n"
  "  for fp32 matmul operands.  Exit status 1 if a node is out of tolerance.\n";

typedef struct { double weights, grads, optim, acts, kv; } fit_parts;

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* Sort every tensor of the graph into its part (names follow model_graph.h). */
static double tensor_bytes(const ot_gtensor *t) {
  return (double)ot_gtensor_elems(t) * (double)ot_dtype_size((ot_dtype)t->dtype);
}

static void fit_classify(const ot_graph *g, fit_parts *p) {
  memset(p, 0, sizeof *p);
  for (uint32_t i = 0; i < g->n_t; i++) {
    const ot_gtensor *t = &g->t[i];
    if (t->role != OT_GROLE_WEIGHT) continue;
    if (ends_with(t->name, ".m") || ends_with(t->name, ".v")) p->optim += tensor_bytes(t);
    else p->weights += tensor_bytes(t);
    if (t->grad != OT_TID_NONE) p->grads += tensor_bytes(&g->t[t->grad]); /* a weight's gradient */
  }
  double all = 0;
  for (uint32_t i = 0; i < g->n_t; i++) all += tensor_bytes(&g->t[i]);
  p->acts = all - p->weights - p->optim - p->grads; /* everything else the program keeps */
}

static ot_status fit_measure(const ot_model_config *c, model_graph_kind kind, uint32_t batch, uint32_t seq, fit_parts *p,
                             ot_error *err) {
  model_graph_opts o;
  model_graph_opts_default(&o, batch, seq, kind);
  model_graph mg;
  ot_status st = model_graph_build(c, &o, &mg, err);
  if (st) return st;
  fit_classify(mg.g, p);
  model_graph_free(&mg);
  if (kind == MODEL_GRAPH_FORWARD) /* generation: a bf16 K and V cache per layer, the whole context */
    p->kv = 2.0 * c->num_hidden_layers * batch * c->n_kv_heads * c->head_dim * (double)seq * 2;
  return OT_OK;
}

static double fit_total(const fit_parts *p) { return p->weights + p->grads + p->optim + p->acts + p->kv; }

typedef struct {
  const char *model, *chip, *task;
  unsigned batch, seq;
  int cores;         /* --cores; 0 = all of the chip's */
  bool check, fp32;  /* --check-numerics, --fp32 */
  uint64_t seed;
} fit_args;

static int fit_parse(int argc, char **argv, fit_args *a) {
  memset(a, 0, sizeof *a);
  a->chip = "trn2";
  a->task = "train";
  a->batch = 8;
  a->cores = 1;
  a->seed = 1;
  for (int i = 1; i < argc; i++) {
    bool val = i + 1 < argc;
    if (!strcmp(argv[i], "--check-numerics")) a->check = true;
    else if (!strcmp(argv[i], "--fp32")) a->fp32 = true;
    else if (!strcmp(argv[i], "--seed") && val) {
      char *end;
      a->seed = strtoull(argv[++i], &end, 10);
      if (!*argv[i] || *end) {
        fprintf(stderr, "opentrn fit: --seed takes a non-negative integer, not '%s'\n%s", argv[i], fit_usage);
        return CLI_USAGE;
      }
    } else if (!strcmp(argv[i], "--cores") && val) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (!strcmp(argv[i], "all")) a->cores = 0;
      else if (*end || v < 1 || v > 1024) {
        fprintf(stderr, "opentrn fit: --cores takes a positive integer or 'all', not '%s'\n%s", argv[i], fit_usage);
        return CLI_USAGE;
      } else a->cores = (int)v;
    } else if (!strcmp(argv[i], "--model") && val) a->model = argv[++i];
    else if (!strcmp(argv[i], "--chip") && val) a->chip = argv[++i];
    else if (!strcmp(argv[i], "--task") && val) a->task = argv[++i];
    else if ((!strcmp(argv[i], "--batch") || !strcmp(argv[i], "--seq")) && val) {
      char *end;
      long v = strtol(argv[i + 1], &end, 10);
      if (*end || v < 1 || v > 1 << 24) {
        fprintf(stderr, "opentrn fit: %s takes a positive integer, not '%s'\n%s", argv[i], argv[i + 1], fit_usage);
        return CLI_USAGE;
      }
      if (!strcmp(argv[i], "--batch")) a->batch = (unsigned)v; else a->seq = (unsigned)v;
      i++;
    } else {
      fprintf(stderr, "opentrn fit: unknown or incomplete option '%s'\n%s", argv[i], fit_usage);
      return CLI_USAGE;
    }
  }
  if (!a->model) { fprintf(stderr, "opentrn fit: no --model\n%s", fit_usage); return CLI_USAGE; }
  if (strcmp(a->task, "train") && strcmp(a->task, "infer")) {
    fprintf(stderr, "opentrn fit: --task is train or infer, not '%s'\n%s", a->task, fit_usage);
    return CLI_USAGE;
  }
  return CLI_OK;
}

static void fit_print(const fit_args *a, const ot_model_config *c, const char *chip, double hbm, int cores, int chip_cores,
                      unsigned seq, const fit_parts *p) {
  double gib = 1024.0 * 1024.0 * 1024.0, total = fit_total(p);
  printf("%s on %s, %s, batch %u x seq %u, ", c->name, chip,
         !strcmp(a->task, "train") ? "a training step (forward, backward, AdamW)" : "inference (prefill + KV cache)",
         a->batch, seq);
  if (cores == 1) printf("one NeuronCore (its share of HBM: %.2f GiB of the chip's %d cores' ", hbm / gib, chip_cores);
  else printf("data-parallel on %d NeuronCores (HBM: ", cores);
  printf("%.2f GiB):\n", (cores == 1 ? hbm * chip_cores : hbm) / gib);
  printf("  %-34s %10.3f GiB\n", "weights (fp32 masters)", p->weights / gib);
  if (p->grads > 0) printf("  %-34s %10.3f GiB%s\n", "gradients (fp32)", p->grads / gib, cores > 1 ? "  (a copy per core)" : "");
  if (p->optim > 0) printf("  %-34s %10.3f GiB\n", "optimizer state (AdamW m, v; fp32)", p->optim / gib);
  printf("  %-34s %10.3f GiB  (every intermediate the compiled program keeps in HBM)\n", "activations and inputs", p->acts / gib);
  if (p->kv > 0) printf("  %-34s %10.3f GiB  (bf16 K and V, every layer, the whole context)\n", "KV cache", p->kv / gib);
  printf("  %-34s %10.3f GiB  -> %s (%.1f%% of HBM)\n", "total", total / gib, total <= hbm ? "fits" : "DOES NOT FIT",
         100 * total / hbm);
}

/* Largest n with fixed + n * per <= hbm (per > 0), capped. */
static unsigned fit_largest(double hbm, double fixed, double per, unsigned cap) {
  if (per <= 0 || fixed > hbm) return 0;
  double n = (hbm - fixed) / per;
  return n >= cap ? cap : (unsigned)n;
}

/* --check-numerics with seeded random weights and tokens (model/numerics.h). */
static int fit_check_numerics(const fit_args *a, const ot_model_config *c, unsigned seq) {
  ot_error err;
  ot_error_clear(&err);
  bool passed = false;
  putchar('\n');
  fflush(stdout); /* the memory figures first: the check takes a while on larger models */
  if (numerics_check_random(c, a->chip, a->batch, seq, a->fp32, a->seed, stdout, &passed, &err)) {
    fprintf(stderr, "opentrn fit: %s\n", err.msg);
    return CLI_REJECTED;
  }
  return passed ? CLI_OK : CLI_REJECTED;
}

int cli_fit(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(fit_usage, stdout); return CLI_OK; }
  fit_args a;
  int rc = fit_parse(argc, argv, &a);
  if (rc) return rc;
  ot_error err;
  ot_error_clear(&err);
  ot_model_config c;
  ot_chip *chip = NULL;
  double hbm = 0;
  if (ot_model_config_load(a.model, &c, &err) || ot_chip_open(a.chip, &chip, &err) || ot_chip_get(chip, "hbm.bytes", &hbm, &err)) {
    fprintf(stderr, "opentrn fit: %s\n", err.msg);
    ot_chip_free(chip);
    return CLI_REJECTED;
  }
  int chip_cores = ot_chip_cores(chip), cores = a.cores ? a.cores : chip_cores;
  if (cores > chip_cores) {
    fprintf(stderr, "opentrn fit: --cores %d, but %s has %d NeuronCores\n", cores, ot_chip_name(chip), chip_cores);
    ot_chip_free(chip);
    return CLI_REJECTED;
  }
  if (cores == 1 && chip_cores > 1) hbm /= chip_cores; /* what the compiler gives one core's program */
  unsigned seq = a.seq ? a.seq : c.max_position_embeddings, ctx = c.max_position_embeddings;
  model_graph_kind kind = !strcmp(a.task, "train") ? MODEL_GRAPH_TRAIN : MODEL_GRAPH_FORWARD;
  fit_parts p, p1, p2;
  /* the parts at the asked size, and two small builds for what one more sequence or token costs */
  if (fit_measure(&c, kind, a.batch, seq, &p, &err) || fit_measure(&c, kind, 1, seq, &p1, &err) ||
      fit_measure(&c, kind, 2, seq, &p2, &err)) {
    fprintf(stderr, "opentrn fit: %s\n", err.msg);
    ot_chip_free(chip);
    return CLI_REJECTED;
  }
  if (kind == MODEL_GRAPH_TRAIN) /* the data-parallel program keeps each core's gradients */
    p.grads *= cores, p1.grads *= cores, p2.grads *= cores;
  fit_print(&a, &c, ot_chip_name(chip), hbm, cores, chip_cores, seq, &p);
  double per_seq = fit_total(&p2) - fit_total(&p1), fixed = fit_total(&p1) - per_seq;
  unsigned max_b = fit_largest(hbm, fixed, per_seq, 1u << 20);
  /* activations and the KV cache grow with batch x seq tokens: per token at this batch */
  unsigned max_s = fit_largest(hbm, fixed, per_seq * a.batch / seq, ctx);
  printf("largest batch at seq %u: %u;  largest seq at batch %u: %u (the model's context is %u)\n", seq, max_b, a.batch,
         max_s, ctx);
  ot_chip_free(chip);
  if (fit_total(&p) > hbm) return CLI_REJECTED;
  return a.check ? fit_check_numerics(&a, &c, seq) : CLI_OK;
}
