/* opentrn compile: a graph file into a program file, with an annotated listing on request. */
#include <opentrn/compile.h>
#include <opentrn/program.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model_graph.h"

static const char compile_usage[] =
  "usage: opentrn compile GRAPH.json|MODEL [--chip CHIP] [-o OUT.prog] [--emit-asm [FILE.s]] [--fp32] [--no-fuse]\n"
  "                       [--batch B] [--seq S] [--graph forward|loss|grads|train]\n"
  "  Compile a graph (docs/graph.md) into a program for one NeuronCore of CHIP (default trn2).\n"
  "  MODEL is a built-in model (gpt2, gpt2-medium, gpt2-tiny, llama-tiny, ...) or a Hugging Face\n"
  "  config.json (or its directory): its graph for a batch of B x S tokens (default 1 x 128), as a\n"
  "  forward pass, with the loss, with every weight's gradient, or a whole training step (default).\n"
  "  -o OUT.prog     program file to write (default: GRAPH with .prog)\n"
  "  --emit-asm [F]  also write the listing: per-engine assembly, each instruction tagged with\n"
  "                  the graph node it came from (to F, or '-' / nothing for standard output)\n"
  "  --fp32          fp32 matmul operands (default: bf16 operands, fp32 accumulation)\n"
  "  --no-fuse       lower every node on its own (no bias/activation/transpose fusion)\n"
  "  --no-schedule   keep each engine's instructions in the order the lowerings emit them\n";

typedef struct {
  const char *input, *output, *chip, *listing, *graph_kind;
  bool emit_asm, fp32, no_fuse, no_schedule;
  unsigned batch, seq;
} compile_args;

static int compile_parse(int argc, char **argv, compile_args *a) {
  memset(a, 0, sizeof *a);
  a->chip = "trn2";
  a->batch = 1;
  a->seq = 128;
  a->graph_kind = "train";
  for (int i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) a->output = argv[++i];
    else if ((!strcmp(argv[i], "--batch") || !strcmp(argv[i], "--seq")) && i + 1 < argc) {
      char *end;
      long v = strtol(argv[i + 1], &end, 10);
      if (*end || v < 1 || v > 1 << 20) {
        fprintf(stderr, "opentrn compile: %s takes a positive integer, not '%s'\n%s", argv[i], argv[i + 1], compile_usage);
        return CLI_USAGE;
      }
      if (!strcmp(argv[i], "--batch")) a->batch = (unsigned)v; else a->seq = (unsigned)v;
      i++;
    } else if (!strcmp(argv[i], "--graph") && i + 1 < argc) a->graph_kind = argv[++i];
    else if (!strcmp(argv[i], "--chip") && i + 1 < argc) a->chip = argv[++i];
    else if (!strcmp(argv[i], "--emit-asm")) {
      a->emit_asm = true;
      if (i + 1 < argc && (argv[i + 1][0] != '-' || !strcmp(argv[i + 1], "-")) && strstr(argv[i + 1], ".json") == NULL)
        a->listing = argv[++i];
    } else if (!strcmp(argv[i], "--fp32")) a->fp32 = true;
    else if (!strcmp(argv[i], "--no-fuse")) a->no_fuse = true;
    else if (!strcmp(argv[i], "--no-schedule")) a->no_schedule = true;
    else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "opentrn compile: unknown or incomplete option '%s'\n%s", argv[i], compile_usage);
      return CLI_USAGE;
    } else if (!a->input) a->input = argv[i];
    else { fprintf(stderr, "opentrn compile: more than one input ('%s')\n%s", argv[i], compile_usage); return CLI_USAGE; }
  }
  if (!a->input) { fprintf(stderr, "opentrn compile: no graph file\n%s", compile_usage); return CLI_USAGE; }
  if (strcmp(a->graph_kind, "forward") && strcmp(a->graph_kind, "loss") && strcmp(a->graph_kind, "grads") &&
      strcmp(a->graph_kind, "train")) {
    fprintf(stderr, "opentrn compile: --graph is forward, loss, grads or train, not '%s'\n%s", a->graph_kind, compile_usage);
    return CLI_USAGE;
  }
  return CLI_OK;
}

static char *output_name(const char *in) {
  size_t n = strlen(in);
  char *out = malloc(n + 6);
  if (!out) return NULL;
  memcpy(out, in, n + 1);
  char *dot = strrchr(out, '.');
  if (dot && !strchr(dot, '/')) *dot = '\0';
  strcat(out, ".prog");
  return out;
}

static int write_listing(const ot_program *p, const char *path, ot_error *err) {
  if (!path || !strcmp(path, "-")) return ot_disasm(p, stdout, err) ? CLI_REJECTED : CLI_OK;
  FILE *f = fopen(path, "w");
  if (!f) { fprintf(stderr, "opentrn compile: cannot write '%s'\n", path); return CLI_REJECTED; }
  int rc = ot_disasm(p, f, err) ? CLI_REJECTED : CLI_OK;
  if (fclose(f) != 0) rc = CLI_REJECTED;
  return rc;
}

static void print_summary(const char *in, const char *out, const ot_compile_stats *s) {
  printf("%s -> %s: %u nodes lowered (%u fused into others); instructions sync %llu, tensor %llu, vector %llu, "
         "scalar %llu, gpsimd %llu; %llu DMAs; %llu semaphore waits (%llu implied, not emitted), %llu signals; "
         "peak SBUF %u B, PSUM %u B per partition\n",
         in, out, s->nodes_lowered, s->nodes_fused, (unsigned long long)s->insns[0], (unsigned long long)s->insns[1],
         (unsigned long long)s->insns[2], (unsigned long long)s->insns[3], (unsigned long long)s->insns[4],
         (unsigned long long)s->dmas, (unsigned long long)s->waits, (unsigned long long)s->waits_elided,
         (unsigned long long)s->signals, s->sbuf_peak, s->psum_peak);
}

/* A graph file (JSON), or else a built-in model / config.json built into its graph. */
static ot_status compile_graph_load(const compile_args *a, ot_graph **g, model_graph *mg, ot_error *err) {
  size_t n = strlen(a->input);
  if (n > 5 && !strcmp(a->input + n - 5, ".json") && strstr(a->input, "config.json") == NULL)
    return ot_graph_load_json(a->input, g, err);
  ot_model_config cfg;
  ot_error e2;
  ot_error_clear(&e2);
  if (ot_model_config_load(a->input, &cfg, &e2)) {
    if (n > 5 && !strcmp(a->input + n - 5, ".json")) return ot_error_set(err, e2.code, "%s", e2.msg);
    return ot_graph_load_json(a->input, g, err); /* not a model: report it as a graph file */
  }
  model_graph_kind kind = !strcmp(a->graph_kind, "forward") ? MODEL_GRAPH_FORWARD
                          : !strcmp(a->graph_kind, "loss")  ? MODEL_GRAPH_LOSS
                          : !strcmp(a->graph_kind, "grads") ? MODEL_GRAPH_GRADS
                                                            : MODEL_GRAPH_TRAIN;
  model_graph_opts mo;
  model_graph_opts_default(&mo, a->batch, a->seq, kind);
  ot_status st = model_graph_build(&cfg, &mo, mg, err);
  if (!st) { *g = mg->g; mg->g = NULL; }
  return st;
}

int cli_compile(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(compile_usage, stdout); return CLI_OK; }
  compile_args a;
  int rc = compile_parse(argc, argv, &a);
  if (rc) return rc;
  ot_error err;
  ot_error_clear(&err);
  ot_graph *g = NULL;
  ot_chip *chip = NULL;
  ot_program *p = NULL;
  char *def = a.output ? NULL : output_name(a.input);
  const char *out = a.output ? a.output : def;
  ot_compile_stats stats;
  model_graph mg;
  memset(&mg, 0, sizeof mg);
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.matmul_dtype = a.fp32 ? OT_DT_FP32 : OT_DT_BF16;
  o.fuse = !a.no_fuse;
  o.schedule = !a.no_schedule;
  o.stats = &stats;
  if (!out) { fprintf(stderr, "opentrn compile: out of memory\n"); rc = CLI_REJECTED; }
  else if (ot_chip_open(a.chip, &chip, &err) || compile_graph_load(&a, &g, &mg, &err) ||
           ot_compile(g, chip, &o, &p, &err) || ot_program_save(p, out, &err)) {
    fprintf(stderr, "opentrn compile: %s\n%s\n", ot_status_str(err.code), err.msg);
    rc = CLI_REJECTED;
  } else {
    if (a.emit_asm) rc = write_listing(p, a.listing, &err);
    if (!a.emit_asm || (a.listing && strcmp(a.listing, "-"))) print_summary(a.input, out, &stats);
  }
  ot_program_free(p);
  ot_graph_free(g);
  model_graph_free(&mg);
  ot_chip_free(chip);
  free(def);
  return rc;
}
