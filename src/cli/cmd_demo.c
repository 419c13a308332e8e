/* opentrn demo: the main job so far -- show the trn2 chip, then assemble, verify, save, load
** and disassemble an example kernel. */
#include <opentrn/chip.h>
#include <opentrn/program.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#ifndef OT_EXAMPLES_DIR
#define OT_EXAMPLES_DIR "examples/kernels"
#endif

static const char demo_usage[] =
  "usage: opentrn demo [--chip CHIP] [KERNEL.s]\n"
  "  Show CHIP (default trn2), then assemble, verify, save, reload and disassemble KERNEL\n"
  "  (default: " OT_EXAMPLES_DIR "/matmul_tiled.s).\n";

static int fail(const ot_error *err, const char *step) {
  fprintf(stderr, "opentrn demo: %s failed: %s\n%s\n", step, ot_status_str(err->code), err->msg);
  return CLI_REJECTED;
}

static int demo_program(const ot_chip *chip, const char *kernel) {
  ot_error err;
  ot_error_clear(&err);
  ot_program *prog = NULL, *back = NULL;
  char out[] = "/tmp/opentrn-demo-XXXXXX";
  int rc = CLI_OK;
  printf("\n== assemble %s\n", kernel);
  if (ot_asm_file(kernel, &prog, &err)) return fail(&err, "assembly");
  printf("%zu instructions\n\n== verify for %s\n", ot_program_insn_count(prog), ot_chip_name(chip));
  if (ot_program_verify(prog, chip, &err)) { rc = fail(&err, "verification"); goto done; }
  printf("no violations\n\n== save, reload, disassemble\n");
  int fd = mkstemp(out);
  if (fd < 0) { fprintf(stderr, "opentrn demo: cannot create a temporary file\n"); rc = CLI_REJECTED; goto done; }
  fclose(fdopen(fd, "w"));
  if (ot_program_save(prog, out, &err) || ot_program_load(out, &back, &err)) { rc = fail(&err, "program file"); goto done; }
  ot_disasm(back, stdout, &err);
done:
  remove(out);
  ot_program_free(prog);
  ot_program_free(back);
  return rc;
}

int cli_demo(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(demo_usage, stdout); return CLI_OK; }
  const char *chip_name = "trn2", *kernel = OT_EXAMPLES_DIR "/matmul_tiled.s";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--chip") && i + 1 < argc) chip_name = argv[++i];
    else if (argv[i][0] == '-') { fprintf(stderr, "opentrn demo: unknown option '%s'\n%s", argv[i], demo_usage); return CLI_USAGE; }
    else kernel = argv[i];
  }
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  if (ot_chip_open(chip_name, &chip, &err)) return fail(&err, "loading the chip");
  printf("== chip %s\n", ot_chip_name(chip));
  ot_chip_print(chip, stdout);
  int rc = demo_program(chip, kernel);
  ot_chip_free(chip);
  return rc;
}
