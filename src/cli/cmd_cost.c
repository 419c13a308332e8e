/* opentrn cost: what a training run or a million served tokens costs on simulated Trainium-class
** chips and on NVIDIA GPUs, with every assumption printed.  The arithmetic is in src/cost. */
#include <errno.h>
#include <math.h>
#include <opentrn/cost.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/fileio.h"

static const char cost_usage[] =
  "usage: opentrn cost --model MODEL --task train --tokens N [options]\n"
  "       opentrn cost --model MODEL --task serve [--prompt N] [--output N] [--batch N] [options]\n"
  "       opentrn cost --defaults [--markdown]\n"
  "  Cost of a training run ($ per run) or of serving ($ per million output tokens) on simulated\n"
  "  Trainium-class chips beside NVIDIA GPUs, with time, energy and the ratio to a reference GPU.\n"
  "  --model NAME|CONFIG    gpt2, gpt2-medium, llama-3.2-1b (the model stack's presets), llama-3-8b,\n"
  "                         llama-3-70b, gpt3-175b, or a Hugging Face config.json (gpt2 or llama)\n"
  "  --task train|serve     (default train)\n"
  "  --tokens N             train: tokens to train on (e.g. 1e9)\n"
  "  --flops N              train: total FLOPs, replacing 6·N·D + attention (e.g. a published figure)\n"
  "  --seq N                context length (default: the model's)\n"
  "  --count N              train: chips in the cluster, to show wall-clock days\n"
  "  --prompt N --output N --batch N   serve: tokens in and out per request, requests per batch\n"
  "                         (defaults 512, 256, 8)\n"
  "  --precision bf16|fp8   peak rate and bytes per weight (default bf16)\n"
  "  --chips LIST           Trainium-class chips: presets or chip JSON files (default trn1,trn2,trn3;\n"
  "                         'none' for none)\n"
  "  --gpus LIST            a100,h100,h200,b200 (default all; 'none' for none)\n"
  "  --view rental|owner    $ per chip-hour rented, or owned: capex + networking + energy (default rental)\n"
  "  --prices aws|market    rental prices: AWS list or open-market GPU rental (default aws)\n"
  "  --ref CHIP             the chip the ratio is against (default h100)\n"
  "  --set KEY=VALUE        change an assumption (repeatable), e.g. --set h100.mfu=0.35\n"
  "  --assumptions FILE     assumptions JSON: {\"mfu\": 0.35, \"h100\": {\"price_per_hour\": 2.1}}\n"
  "  --stats FILE           `opentrn run --json` statistics of ONE transformer layer on a Trainium chip\n"
  "                         (train: forward+backward; serve: prefill), scaled by the layer count\n"
  "  --decode-stats FILE    serve: statistics of one layer's decode step\n"
  "  --stats-tokens N       tokens that layer run processed (default: inferred from its FLOPs)\n"
  "  --json                 the table as JSON (input of `opentrn report --cost`)\n"
  "  --defaults             every default assumption with its source and date (--markdown for docs)\n"
  "  GPU throughput is a roofline model (MFU, MBU), not a measurement: --set CHIP.measured_tokens_per_s=N\n"
  "  replaces it.  Trainium throughput comes only from the simulator: without --stats those rows say\n"
  "  'not simulated: needs the compiler'.\n"
  "  Exit status: 0 success, 1 rejected input (bad assumption, file or statistics), 2 usage.\n";

#define MAX_LIST 16
#define MAX_STATS 16

typedef struct {
  const char *model, *chips, *gpus, *ref;
  const char *stats[MAX_STATS], *decode_stats[MAX_STATS];
  int n_stats, n_decode;
  const char *sets[64], *files[MAX_STATS];
  int n_sets, n_files;
  double stats_tokens, seq;
  int json, defaults, markdown;
  ot_cost_options opt;
} cost_args;

#define usage_error(...) cli_usage_fail("cost", cost_usage, __VA_ARGS__)

static int rejected(const char *msg) {
  fprintf(stderr, "opentrn cost: %s\n", msg);
  return CLI_REJECTED;
}

static int parse_num(const char *s, double *out) {
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (!*s || errno || *end || !isfinite(v) || v < 0) return 0;
  *out = v;
  return 1;
}

static int parse_enum(const char *val, const char *a, const char *b, int *out) {
  if (!strcmp(val, a)) *out = 0;
  else if (!strcmp(val, b)) *out = 1;
  else return 0;
  return 1;
}

/* Options that take a number. */
static int parse_numeric(cost_args *a, const char *opt, const char *val) {
  struct { const char *name; double *dst; } nums[] = {
    {"--tokens", &a->opt.work.tokens}, {"--flops", &a->opt.work.flops}, {"--prompt", &a->opt.work.prompt},
    {"--output", &a->opt.work.output}, {"--batch", &a->opt.work.batch}, {"--stats-tokens", &a->stats_tokens},
    {"--seq", &a->seq}, {"--count", &a->opt.count},
  };
  for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
    if (!strcmp(opt, nums[k].name)) {
      if (!parse_num(val, nums[k].dst)) return usage_error("%s takes a non-negative number (e.g. 1e9), not '%s'", opt, val);
      return CLI_OK;
    }
  return -1;
}

static int parse_choice(cost_args *a, const char *opt, const char *val) {
  int v;
  if (!strcmp(opt, "--task")) {
    if (!parse_enum(val, "train", "serve", &v)) return usage_error("--task is train or serve, not '%s'", val);
    a->opt.work.task = v ? OT_COST_SERVE : OT_COST_TRAIN;
  } else if (!strcmp(opt, "--view")) {
    if (!parse_enum(val, "rental", "owner", &v)) return usage_error("--view is rental or owner, not '%s'", val);
    a->opt.view = v ? OT_COST_OWNER : OT_COST_RENTAL;
  } else if (!strcmp(opt, "--prices")) {
    if (!parse_enum(val, "aws", "market", &v)) return usage_error("--prices is aws or market, not '%s'", val);
    a->opt.prices = v ? OT_COST_PRICES_MARKET : OT_COST_PRICES_AWS;
  } else if (!strcmp(opt, "--precision")) {
    if (!parse_enum(val, "bf16", "fp8", &v)) return usage_error("--precision is bf16 or fp8, not '%s'", val);
    a->opt.work.precision = v ? OT_COST_FP8 : OT_COST_BF16;
  } else {
    return -1;
  }
  return CLI_OK;
}

static int push(const char **list, int *n, int cap, const char *opt, const char *val) {
  if (*n >= cap) return usage_error("%s given more than %d times", opt, cap);
  list[(*n)++] = val;
  return CLI_OK;
}

static int parse_valued(cost_args *a, const char *opt, const char *val) {
  int rc = parse_numeric(a, opt, val);
  if (rc >= 0) return rc;
  if ((rc = parse_choice(a, opt, val)) >= 0) return rc;
  if (!strcmp(opt, "--model")) a->model = val;
  else if (!strcmp(opt, "--chips")) a->chips = val;
  else if (!strcmp(opt, "--gpus")) a->gpus = val;
  else if (!strcmp(opt, "--ref")) a->ref = val;
  else if (!strcmp(opt, "--set")) return push(a->sets, &a->n_sets, 64, opt, val);
  else if (!strcmp(opt, "--assumptions")) return push(a->files, &a->n_files, MAX_STATS, opt, val);
  else if (!strcmp(opt, "--stats")) return push(a->stats, &a->n_stats, MAX_STATS, opt, val);
  else if (!strcmp(opt, "--decode-stats")) return push(a->decode_stats, &a->n_decode, MAX_STATS, opt, val);
  else return -1;
  return CLI_OK;
}

static int takes_value(const char *opt) {
  static const char *const valued[] = {"--model", "--task", "--tokens", "--flops", "--seq", "--prompt", "--output", "--batch",
                                       "--precision", "--chips", "--gpus", "--view", "--prices", "--ref", "--set",
                                       "--assumptions", "--stats", "--decode-stats", "--stats-tokens", "--count"};
  for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
    if (!strcmp(opt, valued[k])) return 1;
  return 0;
}

static int parse_args(int argc, char **argv, cost_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--json")) a->json = 1;
    else if (!strcmp(s, "--defaults")) a->defaults = 1;
    else if (!strcmp(s, "--markdown")) a->markdown = 1;
    else if (s[0] == '-' && s[1] == '-') {
      if (i + 1 >= argc) return takes_value(s) ? usage_error("%s needs a value", s) : usage_error("unknown option '%s'", s);
      int rc = parse_valued(a, s, argv[++i]);
      if (rc < 0) return usage_error("unknown option '%s'", s);
      if (rc) return rc;
    } else {
      return usage_error("unexpected argument '%s'", s);
    }
  }
  if (a->defaults) return CLI_OK;
  if (a->opt.work.task == OT_COST_TRAIN && !(a->opt.work.tokens > 0)) return usage_error("%s", "--task train needs --tokens N (N > 0)");
  if (a->opt.work.task == OT_COST_SERVE && (a->opt.work.output < 1 || a->opt.work.batch < 1))
    return usage_error("%s", "--output and --batch must be at least 1");
  if (a->n_decode && a->opt.work.task != OT_COST_SERVE) return usage_error("%s", "--decode-stats is for --task serve");
  return CLI_OK;
}

/* ---- building the options ---------------------------------------------------------------- */
/* Split a comma list in place into `out`; "none" is the empty list. */
static int split_list(char *s, const char **out, int cap) {
  int n = 0;
  if (!strcmp(s, "none")) return 0;
  for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
    if (n == cap) return -1;
    out[n++] = tok;
  }
  return n;
}

typedef struct {
  ot_chip *chips[MAX_LIST];
  ot_cost_trn_figures figs[MAX_LIST];
  char chip_list[1024], gpu_list[1024];
} cost_owned;

static int load_chips(cost_args *a, cost_owned *own) {
  snprintf(own->chip_list, sizeof own->chip_list, "%s", a->chips ? a->chips : "trn1,trn2,trn3");
  const char *names[MAX_LIST];
  int n = split_list(own->chip_list, names, MAX_LIST);
  if (n < 0) return usage_error("--chips lists more than %d chips", MAX_LIST);
  for (int i = 0; i < n; i++) {
    ot_error err;
    ot_error_clear(&err);
    if (ot_chip_open(names[i], &own->chips[i], &err)) return rejected(err.msg);
    a->opt.trn[a->opt.n_trn++] = own->chips[i];
  }
  snprintf(own->gpu_list, sizeof own->gpu_list, "%s", a->gpus ? a->gpus : "a100,h100,h200,b200");
  n = split_list(own->gpu_list, a->opt.gpus, MAX_LIST);
  if (n < 0) return usage_error("--gpus lists more than %d GPUs", MAX_LIST);
  a->opt.n_gpus = n;
  return CLI_OK;
}

/* Read one statistics file into the figures of the chip it names. */
static int load_one_stats(cost_args *a, cost_owned *own, const char *path, int decode) {
  ot_error err;
  ot_error_clear(&err);
  char *text = NULL;
  size_t len = 0;
  if (ot_file_read(path, &text, &len, &err)) return rejected(err.msg);
  ot_cost_trn_figures fig;
  memset(&fig, 0, sizeof fig);
  char chip[64] = "";
  ot_status st = ot_cost_trn_from_stats(text, path, &a->opt.shape, &a->opt.work, decode, a->stats_tokens, &fig, chip, sizeof chip, &err);
  free(text);
  if (st) return rejected(err.msg);
  for (int i = 0; i < a->opt.n_trn; i++) {
    if (strcmp(ot_chip_name(a->opt.trn[i]), chip)) continue;
    ot_cost_trn_figures *f = &own->figs[i];
    if (decode) f->decode_s = fig.decode_s, f->decode_batch = fig.decode_batch, f->decode_context = fig.decode_context;
    else if (a->opt.work.task == OT_COST_TRAIN) f->train_s = fig.train_s, f->train_tokens = fig.train_tokens;
    else f->prefill_s = fig.prefill_s, f->prefill_tokens = fig.prefill_tokens;
    f->cores_used = fig.cores_used;
    size_t n = strlen(f->source);
    snprintf(f->source + n, sizeof f->source - n, "%s%s", n ? "; " : "", fig.source);
    a->opt.trn_figures[i] = f;
    return CLI_OK;
  }
  fprintf(stderr, "opentrn cost: %s was run on chip '%s', which is not in --chips\n", path, chip);
  return CLI_REJECTED;
}

static int load_params(const cost_args *a, ot_cost_params **p) {
  ot_error err;
  ot_error_clear(&err);
  if (ot_cost_params_new(p, &err)) return rejected(err.msg);
  for (int i = 0; i < a->n_files; i++)
    if (ot_cost_params_load_file(*p, a->files[i], &err)) return rejected(err.msg);
  for (int i = 0; i < a->n_sets; i++)
    if (ot_cost_params_assign(*p, a->sets[i], &err)) return rejected(err.msg);
  return CLI_OK;
}

static int run_cost(cost_args *a, cost_owned *own, ot_cost_params *p) {
  ot_error err;
  ot_error_clear(&err);
  if (ot_cost_shape_preset(a->model ? a->model : "gpt2", &a->opt.shape, &err)) return rejected(err.msg);
  if (a->seq > 0) a->opt.shape.seq = (int)a->seq;
  int rc = load_chips(a, own);
  for (int i = 0; !rc && i < a->n_stats; i++) rc = load_one_stats(a, own, a->stats[i], 0);
  for (int i = 0; !rc && i < a->n_decode; i++) rc = load_one_stats(a, own, a->decode_stats[i], 1);
  if (rc) return rc;
  a->opt.measure = ot_cost_trn_measure;
  a->opt.reference = a->ref;
  static ot_cost_result res; /* large: off the stack */
  if (ot_cost_compare(p, &a->opt, &res, &err)) return rejected(err.msg);
  if (a->json) {
    if (ot_cost_result_json(&res, p, stdout, &err)) return rejected(err.msg);
  } else {
    ot_cost_result_print(&res, p, stdout);
  }
  return CLI_OK;
}

int cli_cost(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(cost_usage, stdout);
    return CLI_OK;
  }
  static cost_args a;
  static cost_owned own;
  memset(&a, 0, sizeof a);
  memset(&own, 0, sizeof own);
  a.opt.work.prompt = 512, a.opt.work.output = 256, a.opt.work.batch = 8;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  if (a.defaults) {
    ot_cost_params_print_reference(stdout, a.markdown);
    return CLI_OK;
  }
  ot_cost_params *p = NULL;
  rc = load_params(&a, &p);
  if (!rc) rc = run_cost(&a, &own, p);
  ot_cost_params_free(p);
  for (int i = 0; i < MAX_LIST; i++) ot_chip_free(own.chips[i]);
  return rc;
}
