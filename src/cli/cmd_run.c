/* opentrn run: load a program on a simulated chip, bind .npy inputs, run, and write outputs,
** statistics and a trace.  Everything here goes through the public device API. */
#include <errno.h>
#include <opentrn/device.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char run_usage[] =
  "usage: opentrn run PROGRAM.prog|KERNEL.s [options]\n"
  "  Run a program on a simulated chip.\n"
  "  --chip CHIP            preset (trn1, trn2, trn3) or chip JSON (default: the program's .chip)\n"
  "  --in NAME=FILE.npy     value of tensor NAME (repeatable); shape and dtype must be the tensor's,\n"
  "                         bf16 as uint16 ('<u2') and fp8 as uint8 ('|u1') bits\n"
  "  --out NAME=FILE.npy    write tensor NAME after the run (repeatable), in the same convention\n"
  "  --allow-missing        input/weight tensors without --in read as zeros (default: an error)\n"
  "  --trace FILE.json      Chrome / Perfetto trace (open in ui.perfetto.dev or chrome://tracing)\n"
  "  --stats                print statistics (busy/idle per engine, DMA, traffic, HFU/MFU/MBU)\n"
  "  --json                 statistics as JSON on stdout (implies --stats)\n"
  "  --mode full|timing|functional   values and time (default) / time only / values only\n"
  "  --scalesim             TensorE timing by SCALE-Sim's non-overlapped formula\n"
  "  --sr [--seed N]        stochastic rounding, seeded (default seed 1)\n"
  "  --uninit warn|error    reading never-written SBUF/PSUM (default: error)\n"
  "  --nan-trap             an instruction writing NaN or Inf is an error\n"
  "  --race-check           report unsynchronised conflicting accesses\n"
  "  --budget N             stop after N executed instructions (default 100 million)\n"
  "  Exit status: 0 success, 1 rejected (bad program, file, tensor or run-time error), 2 usage.\n";

typedef struct { const char *name, *path; } binding;

typedef struct {
  const char *prog, *chip, *trace;
  binding *in, *out;
  int n_in, n_out;
  int stats, json;
  ot_run_options opt;
} run_args;

#define usage_error(...) cli_usage_fail("run", run_usage, __VA_ARGS__)

static int parse_binding(const char *arg, binding *b) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1]) return 0;
  /* argv strings are ours to split: the name ends at '='. */
  ((char *)arg)[eq - arg] = '\0';
  b->name = arg;
  b->path = eq + 1;
  return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-') return 0;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end) return 0;
  *out = v;
  return 1;
}

static int parse_mode(const char *s, ot_run_mode *m) {
  if (!strcmp(s, "full")) *m = OT_RUN_FULL;
  else if (!strcmp(s, "timing")) *m = OT_RUN_TIMING;
  else if (!strcmp(s, "functional")) *m = OT_RUN_FUNCTIONAL;
  else return 0;
  return 1;
}

/* Options that take a value; returns CLI_OK, CLI_USAGE, or -1 if opt is not one of them. */
static int parse_valued(run_args *a, const char *opt, char *val) {
  if (!strcmp(opt, "--chip")) a->chip = val;
  else if (!strcmp(opt, "--trace")) a->trace = val;
  else if (!strcmp(opt, "--in") || !strcmp(opt, "--out")) {
    binding *b = opt[2] == 'i' ? &a->in[a->n_in++] : &a->out[a->n_out++];
    if (!parse_binding(val, b)) return usage_error("%s takes NAME=FILE.npy", opt);
  } else if (!strcmp(opt, "--mode")) {
    if (!parse_mode(val, &a->opt.mode)) return usage_error("--mode is full, timing or functional, not '%s'", val);
  } else if (!strcmp(opt, "--seed")) {
    if (!parse_u64(val, &a->opt.seed)) return usage_error("--seed takes a non-negative integer, not '%s'", val);
  } else if (!strcmp(opt, "--budget")) {
    if (!parse_u64(val, &a->opt.insn_budget) || !a->opt.insn_budget)
      return usage_error("--budget takes a positive integer, not '%s'", val);
  } else if (!strcmp(opt, "--uninit")) {
    if (strcmp(val, "warn") && strcmp(val, "error")) return usage_error("--uninit is warn or error, not '%s'", val);
    a->opt.uninit_is_error = !strcmp(val, "error");
  } else {
    return -1;
  }
  return CLI_OK;
}

static int parse_flag(run_args *a, const char *opt) {
  if (!strcmp(opt, "--stats")) a->stats = 1;
  else if (!strcmp(opt, "--json")) a->stats = a->json = 1;
  else if (!strcmp(opt, "--scalesim")) a->opt.scalesim = true;
  else if (!strcmp(opt, "--sr")) a->opt.stochastic_rounding = true;
  else if (!strcmp(opt, "--race-check")) a->opt.race_check = true;
  else if (!strcmp(opt, "--nan-trap")) a->opt.nan_trap = true;
  else if (!strcmp(opt, "--allow-missing")) a->opt.allow_missing = true;
  else return 0;
  return 1;
}

static int parse_args(int argc, char **argv, run_args *a) {
  static const char *const valued[] = {"--chip", "--trace", "--in", "--out", "--mode", "--seed", "--budget", "--uninit"};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (parse_flag(a, s)) continue;
    bool takes = false;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) takes = takes || !strcmp(s, valued[k]);
    if (takes) {
      if (i + 1 >= argc) return usage_error("%s needs a value", s);
      int rc = parse_valued(a, s, argv[++i]);
      if (rc) return rc;
    } else if (s[0] == '-' && s[1]) {
      return usage_error("unknown option '%s'", s);
    } else if (a->prog) {
      return usage_error("more than one program ('%s')", s);
    } else {
      a->prog = s;
    }
  }
  if (!a->prog) return usage_error("%s", "no program given");
  if (a->n_out && a->opt.mode == OT_RUN_TIMING)
    return usage_error("%s", "--out needs values, which --mode timing does not compute");
  a->opt.trace = a->trace != NULL;
  return CLI_OK;
}

/* ---- running ------------------------------------------------------------------------------- */
static int rejected(const char *what, const char *msg) {
  fprintf(stderr, "opentrn run: %s%s%s\n", what, *msg ? ": " : "", msg);
  return CLI_REJECTED;
}

static int open_device(const run_args *a, ot_device **d) {
  ot_error err;
  ot_error_clear(&err);
  ot_program *prog = NULL;
  if (ot_program_open(a->prog, &prog, &err)) return rejected(ot_status_str(err.code), err.msg);
  const char *chip = a->chip ? a->chip : ot_program_chip(prog);
  int rc = CLI_OK;
  if (!chip || !*chip) {
    fprintf(stderr, "opentrn run: no chip: give --chip or a .chip line in %s\n%s", a->prog, run_usage);
    rc = CLI_USAGE;
  } else if (ot_device_open(chip, d, &err)) {
    rc = rejected(ot_status_str(err.code), err.msg);
  } else if (ot_device_load(*d, prog)) {
    rc = rejected(a->prog, ot_device_last_error(*d));
  }
  ot_program_free(prog);
  return rc;
}

static int bind_inputs(ot_device *d, const run_args *a) {
  for (int i = 0; i < a->n_in; i++)
    if (ot_device_write_npy(d, a->in[i].name, a->in[i].path)) return rejected("--in", ot_device_last_error(d));
  return CLI_OK;
}

static int write_results(ot_device *d, const run_args *a) {
  for (int i = 0; i < a->n_out; i++)
    if (ot_device_read_npy(d, a->out[i].name, a->out[i].path)) return rejected("--out", ot_device_last_error(d));
  if (a->trace && ot_device_write_trace(d, a->trace)) return rejected("--trace", ot_device_last_error(d));
  if (a->json && ot_device_print_stats_json(d, stdout)) return rejected("--json", ot_device_last_error(d));
  if (a->stats && !a->json && ot_device_print_stats(d, stdout)) return rejected("--stats", ot_device_last_error(d));
  return CLI_OK;
}

static void print_summary(ot_device *d, const run_args *a) {
  static const char *const modes[] = {"full", "timing", "functional"};
  ot_run_summary s;
  if (ot_device_summary(d, &s)) return;
  printf("%s: %llu instructions, %.3f us simulated on %s (%s)\n", a->prog, (unsigned long long)s.insns,
         (double)s.time_ps / 1e6, ot_chip_name(ot_device_chip(d)), modes[a->opt.mode]);
}

int cli_run(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(run_usage, stdout);
    return CLI_OK;
  }
  run_args a;
  memset(&a, 0, sizeof a);
  ot_run_options_default(&a.opt);
  /* At most every argument is a binding: no fixed limit on --in / --out. */
  a.in = calloc((size_t)argc, sizeof *a.in);
  a.out = calloc((size_t)argc, sizeof *a.out);
  int rc = !a.in || !a.out ? rejected("out of memory", "") : parse_args(argc, argv, &a);
  ot_device *d = NULL;
  if (!rc) rc = open_device(&a, &d);
  if (!rc) rc = bind_inputs(d, &a);
  if (!rc && ot_device_run(d, &a.opt)) rc = rejected(a.prog, ot_device_last_error(d));
  if (d && *ot_device_run_log(d)) fprintf(stderr, "opentrn run: warnings:\n%s\n", ot_device_run_log(d));
  if (!rc && !a.json) print_summary(d, &a);
  if (!rc) rc = write_results(d, &a);
  ot_device_close(d);
  free(a.in);
  free(a.out);
  return rc;
}
