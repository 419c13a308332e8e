/* opentrn: the command-line front end.  Thin: parses arguments and calls the library. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} cli_command;

static const cli_command commands[] = {
  {"chip",   cli_chip,   "show or check chip descriptions (presets trn1, trn2, trn3, or JSON)"},
  {"asm",    cli_asm,    "assemble a kernel (.s) into a program file (.prog)"},
  {"disasm", cli_disasm, "print a program file as assembly"},
  {"verify", cli_verify, "check a program (or kernel source) against a chip's rules"},
  {"fit",    cli_fit,    "device memory of a model by part, and the largest batch and sequence that fit"},
  {"compile", cli_compile, "compile a graph (JSON, docs/graph.md) into a program, with an annotated listing"},
  {"check",  cli_check,  "list every graph node a chip cannot run (JSON graph, docs/graph.md), all in one pass"},
  {"graph",  cli_graph,  "print a graph file's listing, or the graph reference (--doc: docs/graph.md)"},
  {"run",    cli_run,    "run a program on a simulated chip: .npy inputs and outputs, stats, trace"},
  {"isa",    cli_isa,    "print the instruction-set reference (docs/isa.md)"},
  {"cost",   cli_cost,   "cost of training or serving on simulated Trainium chips vs NVIDIA GPUs"},
  {"report", cli_report, "one self-contained HTML report (charts) from run statistics, loss and cost"},
  {"train",  cli_train,  "train a GPT-2 or Llama model on a text file on a simulated chip (docs/training.md)"},
  {"generate", cli_generate, "generate text with a GPT-2 or Llama model on a simulated chip (docs/generation.md)"},
  {"demo",   cli_demo,   "the main job: show the trn2 chip, assemble, verify and disassemble a kernel"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: opentrn <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'opentrn <command> --help' describes a command.\n"
               "exit status: 0 success, 1 input rejected, 2 usage error\n");
}

int cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  return 0;
}

int cli_usage_fail(const char *cmd, const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "opentrn %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n%s", usage);
  va_end(ap);
  return CLI_USAGE;
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "--version")) { printf("opentrn 0.1.0\n"); return CLI_OK; }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "opentrn: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
