/* opentrn chip: list, show, check and document chip descriptions.  Thin: every decision is
** made by the library (opentrn/chip.h); this file parses arguments and picks exit codes. */
#include <opentrn/chip.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char chip_help[] =
  "usage: opentrn chip <subcommand> [options]\n\n"
  "subcommands:\n"
  "  list                     list the built-in presets\n"
  "  show NAME|FILE [--json]  every field with unit and provenance, then derived figures\n"
  "                           (peak TFLOPS, SBUF/PSUM/HBM totals, DMA bandwidth, roofline ridge)\n"
  "  check FILE|NAME...       validate chip descriptions (JSON files or preset names)\n"
  "  fields [--markdown]      the field reference (the generated part of docs/chips.md)\n\n"
  "A custom chip is a JSON file such as\n"
  "  {\"base\": \"trn2\", \"name\": \"my-chip\", \"sbuf\": {\"bytes_per_partition\": 393216}}\n"
  "It starts from the base preset and overrides the fields it gives (see docs/chips.md).\n\n"
  "exit status: 0 success, 1 input rejected, 2 usage error\n";

static const char list_help[] =
  "usage: opentrn chip list\n\n"
  "Lists the built-in presets: name, NeuronCore generation, cores and dense bf16 peak per chip.\n";

static const char show_help[] =
  "usage: opentrn chip show NAME|FILE [--json]\n\n"
  "Prints every field of a preset (trn1, trn2, trn3) or of a chip JSON file, grouped by section,\n"
  "with its unit and provenance (source document or stated assumption), then derived figures:\n"
  "dense peak TFLOPS per data type per core and per chip, SBUF and PSUM totals, HBM capacity and\n"
  "bandwidth, DMA bandwidth per core, and the bf16 roofline ridge point.\n\n"
  "  --json   print the description as JSON (fields with provenance, plus \"derived\"); the output\n"
  "           is a valid chip file: `opentrn chip check` and ot_chip_load_json read it back\n\n"
  "exit status: 0 success, 1 input rejected, 2 usage error\n";

static const char check_help[] =
  "usage: opentrn chip check FILE|NAME...\n\n"
  "Validates chip descriptions: JSON syntax (with line and column), known fields (with a\n"
  "suggestion for a misspelt one), types and ranges with units, the base preset, and the\n"
  "cross-field rules.  Prints one line per valid file; every problem goes to stderr.\n\n"
  "exit status: 0 all valid, 1 some rejected, 2 usage error\n";

static const char fields_help[] =
  "usage: opentrn chip fields [--markdown]\n\n"
  "Lists every chip field: path, type, accepted range, unit and meaning.  --markdown prints the\n"
  "generated section of docs/chips.md (field reference, preset values, assumptions, conflicts).\n";

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "opentrn chip: %s '%s'\n(try 'opentrn chip --help')\n", what, arg);
  return CLI_USAGE;
}

static int report(const ot_error *err) {
  fprintf(stderr, "%s\n", err->msg[0] ? err->msg : ot_status_str(err->code));
  return CLI_REJECTED;
}

static double field(const ot_chip *c, const char *path) {
  double v = 0.0;
  return ot_chip_get(c, path, &v, NULL) == OT_OK ? v : 0.0;
}

static int chip_list(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(list_help, stdout); return CLI_OK; }
  if (argc > 1) return usage_error("list takes no arguments, got", argv[1]);
  for (const char *const *n = ot_chip_preset_names(); *n; n++) {
    ot_chip *c = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_chip_preset(*n, &c, &err) != OT_OK) return report(&err);
    printf("%-6s NeuronCore-v%.0f  %2d cores  %6.1f dense bf16 TFLOPS per chip\n", *n,
           field(c, "generation"), ot_chip_cores(c), ot_chip_peak_tflops_core(c, "bf16") * ot_chip_cores(c));
    ot_chip_free(c);
  }
  return CLI_OK;
}

static int chip_show(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(show_help, stdout); return CLI_OK; }
  const char *target = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (argv[i][0] == '-' && argv[i][1]) return usage_error("show: unknown option", argv[i]);
    else if (target) return usage_error("show takes one chip, got a second:", argv[i]);
    else target = argv[i];
  }
  if (!target) return usage_error("show needs a preset name or a JSON file", "");
  ot_chip *c = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_chip_open(target, &c, &err) != OT_OK) return report(&err);
  int rc = CLI_OK;
  if (json) rc = ot_chip_print_json(c, stdout, &err) == OT_OK ? CLI_OK : report(&err);
  else ot_chip_print(c, stdout);
  ot_chip_free(c);
  return rc;
}

static int chip_check(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(check_help, stdout); return CLI_OK; }
  if (argc < 2) return usage_error("check needs at least one file", "");
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-' && argv[i][1]) return usage_error("check: unknown option", argv[i]);
  int rc = CLI_OK;
  for (int i = 1; i < argc; i++) {
    ot_chip *c = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_chip_open(argv[i], &c, &err) != OT_OK) { rc = report(&err); continue; }
    const char *base = ot_chip_base(c);
    printf("%s: ok (chip %s%s%s)\n", argv[i], ot_chip_name(c), base[0] ? ", based on " : ", preset", base);
    ot_chip_free(c);
  }
  return rc;
}

static int chip_fields(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(fields_help, stdout); return CLI_OK; }
  int markdown = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--markdown")) return usage_error("fields: unknown argument", argv[i]);
    markdown = 1;
  }
  ot_chip_print_reference(stdout, markdown);
  return CLI_OK;
}

int cli_chip(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*run)(int, char **);
  } subs[] = {{"list", chip_list}, {"show", chip_show}, {"check", chip_check}, {"fields", chip_fields}};
  if (argc < 2) { fputs(chip_help, stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    fputs(chip_help, stdout);
    return CLI_OK;
  }
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
    if (!strcmp(argv[1], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
  return usage_error("unknown subcommand", argv[1]);
}
