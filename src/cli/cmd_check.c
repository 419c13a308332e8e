/* opentrn check: load a graph file and list every node the compiler cannot lower for a chip.
** opentrn graph: print a graph file's listing, or the graph reference (docs/graph.md). */
#include <opentrn/chip.h>
#include <opentrn/graph.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "compiler/graph_int.h"

static const char check_usage[] =
  "usage: opentrn check GRAPH.json [--chip CHIP] [--dump]\n"
  "  List every node of the graph that the compiler cannot lower for CHIP (a preset or a chip\n"
  "  JSON file; default trn2), all in one pass, with shapes, limits and what is supported.\n"
  "  --dump   print the graph's listing first\n"
  "  Exit status: 0 every node supported, 1 rejected (bad file or unsupported nodes), 2 usage.\n";

static const char graph_usage[] =
  "usage: opentrn graph GRAPH.json | --doc\n"
  "  Print a graph file's listing (leaves, then one line per node with shapes and dtypes),\n"
  "  or with --doc the graph reference as markdown (this is docs/graph.md).\n"
  "  Exit status: 0 success, 1 bad graph file, 2 usage.\n";

static int usage_error(const char *cmd, const char *what, const char *arg, const char *usage) {
  fprintf(stderr, "opentrn %s: %s%s%s%s\n%s", cmd, what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "", usage);
  return CLI_USAGE;
}

int cli_check(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(check_usage, stdout); return CLI_OK; }
  const char *file = NULL, *chip_name = "trn2";
  int dump = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--chip") && i + 1 < argc) chip_name = argv[++i];
    else if (!strcmp(argv[i], "--dump")) dump = 1;
    else if (argv[i][0] == '-' && argv[i][1]) return usage_error("check", "unknown or incomplete option", argv[i], check_usage);
    else if (file) return usage_error("check", "more than one graph file:", argv[i], check_usage);
    else file = argv[i];
  }
  if (!file) return usage_error("check", "no graph file given", NULL, check_usage);
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  ot_graph *g = NULL;
  if (ot_chip_open(chip_name, &chip, &err) || ot_graph_load_json(file, &g, &err)) {
    fprintf(stderr, "opentrn check: %s\n", err.msg);
    ot_chip_free(chip);
    return CLI_REJECTED;
  }
  if (dump) ot_graph_dump(g, stdout);
  int rc = CLI_OK;
  if (ot_graph_check(g, chip, &err)) {
    fprintf(stderr, "%s\n%s: %u unsupported on %s\n", err.msg, file, err.count, ot_chip_name(chip));
    rc = CLI_REJECTED;
  } else {
    printf("%s: %u nodes, all supported on %s\n", file, g->n_node, ot_chip_name(chip));
  }
  ot_graph_free(g);
  ot_chip_free(chip);
  return rc;
}

int cli_graph(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(graph_usage, stdout); return CLI_OK; }
  if (argc != 2) return usage_error("graph", argc < 2 ? "expected a graph file or --doc" : "unexpected argument",
                                    argc < 2 ? NULL : argv[2], graph_usage);
  if (!strcmp(argv[1], "--doc")) { ot_graph_doc_write(stdout); return CLI_OK; }
  if (argv[1][0] == '-' && argv[1][1]) return usage_error("graph", "unknown option", argv[1], graph_usage);
  ot_error err;
  ot_error_clear(&err);
  ot_graph *g = NULL;
  if (ot_graph_load_json(argv[1], &g, &err)) {
    fprintf(stderr, "opentrn graph: %s\n", err.msg);
    return CLI_REJECTED;
  }
  ot_graph_dump(g, stdout);
  ot_graph_free(g);
  return CLI_OK;
}
