/* opentrn demo: the main job so far -- show the trn2 chip; assemble, verify, save, load and
** disassemble an example kernel; then run the tiled matmul on the simulated chip, check its
** result against a plain C matmul and print its statistics. */
#include <opentrn/chip.h>
#include <opentrn/device.h>
#include <opentrn/num.h>
#include <opentrn/program.h>
#include <stdint.h>
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
  "  (default: " OT_EXAMPLES_DIR "/matmul_tiled.s), and run the tiled bf16 matmul on the\n"
  "  simulated CHIP, checked against a C matmul, with its statistics.\n";

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

static int demo_run(const ot_chip *chip) {
  printf("\n== run %s/matmul_tiled.s on a simulated %s (values and time)\n", OT_EXAMPLES_DIR, ot_chip_name(chip));
  ot_error err;
  ot_error_clear(&err);
  ot_device *dev = NULL;
  uint16_t *at = malloc(1024 * 512 * 2), *b = malloc(1024 * 2048 * 2);
  float *c = malloc(512 * 2048 * 4);
  int rc = CLI_OK;
  ot_run_options o;
  ot_run_options_default(&o);
  if (!at || !b || !c) { fprintf(stderr, "opentrn demo: out of memory\n"); rc = CLI_REJECTED; goto done; }
  fill_bf16(at, 1024 * 512, 1);
  fill_bf16(b, 1024 * 2048, 2);
  if (ot_device_open_chip(chip, &dev, &err)) { rc = fail(&err, "opening the device"); goto done; }
  if (ot_device_load_file(dev, OT_EXAMPLES_DIR "/matmul_tiled.s") || ot_device_write(dev, "at", OT_DT_BF16, at, 1024 * 512 * 2) ||
      ot_device_write(dev, "b", OT_DT_BF16, b, 1024 * 2048 * 2) || ot_device_run(dev, &o) ||
      ot_device_read(dev, "c", OT_DT_FP32, c, 512 * 2048 * 4)) {
    fprintf(stderr, "opentrn demo: %s\n", ot_device_last_error(dev));
    rc = CLI_REJECTED;
    goto done;
  }
  long bad = check_matmul(at, b, c);
  printf("C = A @ B [512 x 1024] @ [1024 x 2048]: %s against a C reference (fp32 accumulation in k order)\n\n",
         bad ? "MISMATCH" : "bit-exact");
  ot_device_print_stats(dev, stdout);
  if (bad) rc = CLI_REJECTED;
done:
  ot_device_close(dev);
  free(at);
  free(b);
  free(c);
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
  if (rc == CLI_OK) rc = demo_run(chip);
  ot_chip_free(chip);
  return rc;
}
