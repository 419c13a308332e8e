/* opentrn asm | disasm | verify: the assembler, disassembler and verifier on the command line. */
#include <opentrn/chip.h>
#include <opentrn/program.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Chip from --chip, else the program's .chip; NULL chip with OT_OK when neither names one. */
static ot_status chip_for(const char *opt, const ot_program *prog, ot_chip **chip, ot_error *err) {
  *chip = NULL;
  const char *name = opt ? opt : ot_program_chip(prog);
  if (!name || !*name) return OT_OK;
  return ot_chip_open(name, chip, err);
}

static int report(const ot_error *err, const char *what) {
  fprintf(stderr, "opentrn %s: %s\n%s\n", what, ot_status_str(err->code), err->msg);
  return CLI_REJECTED;
}

static char *default_output(const char *in) {
  size_t n = strlen(in);
  char *out = malloc(n + 6);
  if (!out) return NULL;
  memcpy(out, in, n + 1);
  char *dot = strrchr(out, '.');
  if (dot && !strchr(dot, '/')) *dot = '\0';
  strcat(out, ".prog");
  return out;
}

typedef struct { const char *input, *output, *chip; int no_verify; } prog_args;

static int parse_args(int argc, char **argv, prog_args *a, const char *usage) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) a->output = argv[++i];
    else if (!strcmp(argv[i], "--chip") && i + 1 < argc) a->chip = argv[++i];
    else if (!strcmp(argv[i], "--no-verify")) a->no_verify = 1;
    else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "opentrn %s: unknown or incomplete option '%s'\n%s", argv[0], argv[i], usage);
      return CLI_USAGE;
    } else if (!a->input) a->input = argv[i];
    else { fprintf(stderr, "opentrn %s: more than one input ('%s')\n%s", argv[0], argv[i], usage); return CLI_USAGE; }
  }
  if (!a->input) { fprintf(stderr, "opentrn %s: no input file\n%s", argv[0], usage); return CLI_USAGE; }
  return CLI_OK;
}

static const char asm_usage[] =
  "usage: opentrn asm KERNEL.s [-o OUT.prog] [--chip CHIP] [--no-verify]\n"
  "  Assemble a kernel into a program file (default OUT: KERNEL.prog).  The program is verified\n"
  "  against CHIP (a preset or a JSON file), or the chip named by the kernel's .chip line.\n";

int cli_asm(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(asm_usage, stdout); return CLI_OK; }
  prog_args a;
  int rc = parse_args(argc, argv, &a, asm_usage);
  if (rc) return rc;
  ot_error err;
  ot_error_clear(&err);
  ot_program *prog = NULL;
  ot_chip *chip = NULL;
  char *out = a.output ? NULL : default_output(a.input);
  const char *path = a.output ? a.output : out;
  rc = CLI_OK;
  if (!path) rc = CLI_REJECTED, fprintf(stderr, "opentrn asm: out of memory\n");
  else if (ot_asm_file(a.input, &prog, &err)) rc = report(&err, "asm");
  else if (!a.no_verify && chip_for(a.chip, prog, &chip, &err)) rc = report(&err, "asm");
  else if (chip && ot_program_verify(prog, chip, &err)) rc = report(&err, "asm (verify)");
  else if (ot_program_save(prog, path, &err)) rc = report(&err, "asm");
  else printf("%s: %zu instructions -> %s%s%s\n", a.input, ot_program_insn_count(prog), path,
              chip ? ", verified for " : "", chip ? ot_chip_name(chip) : "");
  ot_program_free(prog);
  ot_chip_free(chip);
  free(out);
  return rc;
}

static const char disasm_usage[] =
  "usage: opentrn disasm PROGRAM.prog [-o OUT.s]\n"
  "  Print a program file as assembly that `opentrn asm` reads back to the same instructions.\n";

int cli_disasm(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(disasm_usage, stdout); return CLI_OK; }
  prog_args a;
  int rc = parse_args(argc, argv, &a, disasm_usage);
  if (rc) return rc;
  ot_error err;
  ot_error_clear(&err);
  ot_program *prog = NULL;
  if (ot_program_load(a.input, &prog, &err)) return report(&err, "disasm");
  FILE *out = stdout;
  char *tmp = NULL;
  if (a.output) {
    /* Write to a temporary file and rename, so a failure never clobbers an existing listing. */
    size_t n = strlen(a.output) + 8;
    tmp = malloc(n);
    if (tmp) snprintf(tmp, n, "%s.tmp", a.output);
    out = tmp ? fopen(tmp, "w") : NULL;
    if (!out) { fprintf(stderr, "opentrn disasm: cannot write %s\n", a.output); free(tmp); ot_program_free(prog); return CLI_REJECTED; }
  }
  ot_disasm(prog, out, &err);
  if (a.output) {
    int bad = ferror(out) | fclose(out);
    if (bad || rename(tmp, a.output)) { fprintf(stderr, "opentrn disasm: writing %s failed\n", a.output); remove(tmp); rc = CLI_REJECTED; }
  }
  free(tmp);
  ot_program_free(prog);
  return rc;
}

static const char verify_usage[] =
  "usage: opentrn verify PROGRAM.prog|KERNEL.s [--chip CHIP]\n"
  "  Check every instruction against CHIP's rules (default: the program's .chip) and list every\n"
  "  violation.  Exit 0 if the program is legal, 1 if not.\n";

int cli_verify(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(verify_usage, stdout); return CLI_OK; }
  prog_args a;
  int rc = parse_args(argc, argv, &a, verify_usage);
  if (rc) return rc;
  ot_error err;
  ot_error_clear(&err);
  ot_program *prog = NULL;
  ot_chip *chip = NULL;
  if (ot_program_open(a.input, &prog, &err)) return report(&err, "verify");
  if (chip_for(a.chip, prog, &chip, &err)) rc = report(&err, "verify");
  else if (!chip) { fprintf(stderr, "opentrn verify: no chip: give --chip or a .chip line\n%s", verify_usage); rc = CLI_USAGE; }
  else if (ot_program_verify(prog, chip, &err)) { fprintf(stderr, "%s: %u violation(s) on %s\n%s\n", a.input, err.count, ot_chip_name(chip), err.msg); rc = CLI_REJECTED; }
  else printf("%s: %zu instructions verified for %s\n", a.input, ot_program_insn_count(prog), ot_chip_name(chip));
  ot_program_free(prog);
  ot_chip_free(chip);
  return rc;
}

/* opentrn isa: the instruction-set reference, generated from the tables (docs/isa.md). */
#include "isa/isa_doc.h"

int cli_isa(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs("usage: opentrn isa\n  Print the instruction-set reference as markdown (this is docs/isa.md).\n", stdout);
    return CLI_OK;
  }
  if (argc > 1) { fprintf(stderr, "opentrn isa: unexpected argument '%s'\n", argv[1]); return CLI_USAGE; }
  ot_isa_doc_write(stdout);
  return CLI_OK;
}
