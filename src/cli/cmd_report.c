/* opentrn report: one self-contained HTML file with charts of a run (per-engine utilisation and
** timeline, roofline), a loss curve and a cost comparison.  The work is in src/cost/report*.c. */
#include <opentrn/cost.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char report_usage[] =
  "usage: opentrn report --stats STATS.json [--stats MORE.json]... [--trace T.json] [--loss LOSS.csv]\n"
  "                      [--cost COST.json] [--chip CHIP] [--title TEXT] -o REPORT.html\n"
  "  Write one self-contained HTML report (open it in any browser; it needs no network):\n"
  "  per-engine utilisation (from the statistics of `opentrn run --json`), a per-engine timeline\n"
  "  (--trace of `opentrn run --trace`), a roofline with each statistics file as a kernel (the\n"
  "  chip's ridge from its description), the loss curve (CSV: step,loss) and the cost comparison\n"
  "  (`opentrn cost --json` output).  Charts are drawn by gnuplot (Debian package gnuplot-nox).\n"
  "  --chip CHIP            chip for the roofline (default: the one named in the statistics)\n"
  "  Exit status: 0 success, 1 rejected (bad or missing file, gnuplot missing), 2 usage.\n";

#define usage_error(...) cli_usage_fail("report", report_usage, __VA_ARGS__)

static int parse_valued(ot_report_inputs *in, const char **out, const char *opt, const char *val) {
  if (!strcmp(opt, "--stats")) {
    if (in->n_stats == OT_COST_MAX_CHIPS) return usage_error("--stats given more than %d times", OT_COST_MAX_CHIPS);
    in->stats[in->n_stats++] = val;
  } else if (!strcmp(opt, "--trace")) in->trace = val;
  else if (!strcmp(opt, "--loss")) in->loss = val;
  else if (!strcmp(opt, "--cost")) in->cost = val;
  else if (!strcmp(opt, "--chip")) in->chip = val;
  else if (!strcmp(opt, "--title")) in->title = val;
  else if (!strcmp(opt, "-o") || !strcmp(opt, "--output")) *out = val;
  else return usage_error("unknown option '%s'", opt);
  return CLI_OK;
}

int cli_report(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(report_usage, stdout);
    return CLI_OK;
  }
  ot_report_inputs in;
  memset(&in, 0, sizeof in);
  const char *out = NULL;
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    if (argv[i][0] != '-') return usage_error("unexpected argument '%s'", argv[i]);
    if (i + 1 >= argc) return usage_error("%s needs a value", argv[i]);
    int rc = parse_valued(&in, &out, argv[i], argv[i + 1]);
    if (rc) return rc;
  }
  if (!in.n_stats && !in.loss && !in.cost) return usage_error("%s", "nothing to report: give --stats, --loss or --cost");
  if (!out) return usage_error("%s", "no output file: give -o REPORT.html");
  ot_error err;
  ot_error_clear(&err);
  if (ot_report_write(&in, out, &err)) {
    fprintf(stderr, "opentrn report: %s\n", err.msg);
    return CLI_REJECTED;
  }
  printf("wrote %s (open it in a browser; it is self-contained)\n", out);
  return CLI_OK;
}
