/* --check-numerics (numerics.h): the report as text, and the checks `opentrn train` (initial
** weights, first batch) and `opentrn fit` (seeded random weights and tokens) run. */
#include <stdlib.h>
#include <string.h>

#include "model/numerics.h"

/* ---- the report ----------------------------------------------------------------------------- */

/* Width of the name column: the longest node name (model names run to 50 characters). */
static int num_name_width(const numerics_report *r) {
  size_t w = 4;
  for (uint32_t i = 0; i < r->n_nodes; i++)
    if (strlen(r->nodes[i].name) > w) w = strlen(r->nodes[i].name);
  return w > 64 ? 64 : (int)w;
}

static void num_print_row(FILE *out, int w, const numerics_node *n) {
  char part[32] = "";
  if (n->n_out_compared < n->n_out) snprintf(part, sizeof part, " (%u/%u out)", n->n_out_compared, n->n_out);
  fprintf(out, "  %5u %-*s %-17s %-14s %-5s %10.3e %10.3e %8.3g  %s%s\n", n->index, w, n->name, n->op, n->shape,
          ot_dtype_name(n->dtype), n->max_abs, n->max_rel, n->worst, n->ok ? "ok" : "FAIL", part);
}

static void num_print_header(FILE *out, int w) {
  fprintf(out, "  %5s %-*s %-17s %-14s %-5s %10s %10s %8s  %s\n", "node", w, "name", "op", "shape", "dtype", "max abs",
          "max rel", "err/tol", "ok");
}

static const numerics_report *num_sort_report; /* qsort has no context argument */

static int num_by_worst(const void *a, const void *b) {
  const numerics_node *x = &num_sort_report->nodes[*(const uint32_t *)a];
  const numerics_node *y = &num_sort_report->nodes[*(const uint32_t *)b];
  if (x->worst != y->worst) return x->worst < y->worst ? 1 : -1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static void num_print_worst(const numerics_report *r, FILE *out, unsigned worst) {
  uint32_t *idx = malloc((r->compared ? r->compared : 1) * sizeof *idx), k = 0;
  if (!idx) return;
  for (uint32_t i = 0; i < r->n_nodes; i++)
    if (r->nodes[i].state == NUMERICS_COMPARED) idx[k++] = i;
  num_sort_report = r;
  qsort(idx, k, sizeof *idx, num_by_worst);
  if (worst > k) worst = k;
  fprintf(out, "the %u compared nodes closest to (or past) their tolerance:\n", worst);
  num_print_header(out, num_name_width(r));
  for (uint32_t i = 0; i < worst; i++) num_print_row(out, num_name_width(r), &r->nodes[idx[i]]);
  free(idx);
}

static void num_print_fused(const numerics_report *r, FILE *out) {
  if (!r->fused) return;
  fprintf(out, "fused away (output never materialised; checked through the node it is folded into):\n");
  unsigned col = 0;
  for (uint32_t i = 0; i < r->n_nodes; i++) {
    const numerics_node *n = &r->nodes[i];
    if (n->state != NUMERICS_FUSED) continue;
    size_t w = strlen(n->name) + strlen(n->fused_into) + 6;
    if (col && col + w > 100) { fputc('\n', out); col = 0; }
    col += (unsigned)fprintf(out, "%s%s -> %s", col ? ", " : "  ", n->name, n->fused_into);
  }
  fputc('\n', out);
}

/* The race checker's warnings: a count and the first two (each names its graph node). */
static void num_print_races(const numerics_report *r, FILE *out) {
  if (!r->races || !r->races[0]) return;
  unsigned n = 0;
  for (const char *p = r->races; *p; p++) n += *p == '\n' || (!p[1] && *p != '\n');
  fprintf(out, "race checker: %u unsynchronised access%s in the compiled program (values may depend on timing):\n", n,
          n == 1 ? "" : "es");
  const char *p = r->races;
  for (unsigned k = 0; k < 2 && *p; k++) {
    const char *e = strchr(p, '\n');
    int len = e ? (int)(e - p) : (int)strlen(p);
    fprintf(out, "  %.*s\n", len, p);
    p = e ? e + 1 : p + len;
  }
}

void numerics_print(const numerics_report *r, FILE *out, unsigned worst) {
  fprintf(out, "tolerance per element: |device - reference| <= %.0e x max|reference| + %.0e x |reference| (%s)\n",
          r->atol, r->rtol, r->lowp ? "bf16 TensorE operands, fp32 accumulation" : "fp32 TensorE operands");
  fprintf(out, "  (max rel = max abs / max|reference| of the tensor; err/tol = the largest element error over its "
          "tolerance, <= 1 passes)\n");
  fprintf(out, "nodes: %u = %u compared + %u fused away + %u integer-only; %u out of tolerance\n", r->n_nodes,
          r->compared, r->fused, r->skipped, r->failed);
  if (r->first_bad >= 0) {
    fprintf(out, "first node out of tolerance (topological order):\n");
    num_print_header(out, num_name_width(r));
    num_print_row(out, num_name_width(r), &r->nodes[r->first_bad]);
  }
  num_print_worst(r, out, worst);
  num_print_fused(r, out);
  num_print_races(r, out);
  if (r->first_bad < 0) {
    fprintf(out, "numerics: ok (every compared node within tolerance)\n");
    return;
  }
  const numerics_node *n = &r->nodes[r->first_bad];
  fprintf(out, "numerics: FAILED: first node out of tolerance '%s' (%s, %s %s): max abs err %.3e, max rel err %.3e "
          "(of max|reference|); at %s device %.6g, reference %.6g, %.1fx the tolerance\n",
          n->name, n->op, n->shape, ot_dtype_name(n->dtype), n->max_abs, n->max_rel, n->at, (double)n->dev,
          (double)n->ref, n->worst);
}

/* ---- the runs -------------------------------------------------------------------------------- */

typedef struct {
  ot_model_config cfg;
  ot_chip *chip;
  ot_model_params params;
  bool have_params;
  int32_t *ids, *targets;
} num_setup;

static void num_setup_free(num_setup *s) {
  ot_chip_free(s->chip);
  if (s->have_params) ot_model_params_free(&s->params);
  free(s->ids);
  free(s->targets);
}

static ot_status num_run_print(num_setup *s, uint32_t batch, uint32_t seq, bool fp32, FILE *out, bool *passed,
                               ot_error *err) {
  numerics_opts o = {.config = &s->cfg, .params = &s->params, .ids = s->ids, .targets = s->targets, .batch = batch,
                     .seq = seq, .chip = s->chip, .fp32 = fp32, .fuse = true};
  numerics_report r;
  if (out)
    fprintf(out, "check-numerics: %s, batch %u x sequence %u on a simulated %s, %s: the training step's forward, "
            "loss and gradients against the fp32 host reference\n", s->cfg.name, batch, seq, ot_chip_name(s->chip),
            fp32 ? "fp32 matmuls" : "bf16 matmul operands");
  if (out) fflush(out);
  ot_status st = numerics_check(&o, &r, err);
  if (st) return st;
  if (out) numerics_print(&r, out, 10);
  *passed = r.first_bad < 0;
  numerics_report_free(&r);
  return OT_OK;
}

/* Window [batch, seq + 1] into ids [batch * seq] and next-token targets. */
static ot_status num_split_window(num_setup *s, const uint32_t *w, uint32_t batch, uint32_t seq, ot_error *err) {
  size_t rows = (size_t)batch * seq;
  s->ids = malloc(rows * sizeof *s->ids);
  s->targets = malloc(rows * sizeof *s->targets);
  if (!s->ids || !s->targets) return ot_error_set(err, OT_ENOMEM, "check-numerics: out of memory");
  for (uint32_t b = 0; b < batch; b++)
    for (uint32_t i = 0; i < seq; i++) {
      s->ids[(size_t)b * seq + i] = (int32_t)w[(size_t)b * (seq + 1) + i];
      s->targets[(size_t)b * seq + i] = (int32_t)w[(size_t)b * (seq + 1) + i + 1];
    }
  return OT_OK;
}

/* The first training batch, as train.c's loader gives it (same tokenizer choice, options, seed). */
static ot_status num_first_batch(num_setup *s, const train_opts *o, ot_error *err) {
  uint32_t v = s->cfg.vocab_size;
  ot_tokenizer *tok = NULL;
  ot_dataset *ds = NULL;
  ot_dataset_opts d = {o->batch, o->seq, o->eval_fraction, o->seed, o->cache_dir, 0};
  ot_status st = OT_OK;
  if (o->data) {
    st = v <= 257 ? ot_tokenizer_bytes_new(v == 257, &tok, err)
                  : ot_tokenizer_load_dir(o->tokenizer_dir ? o->tokenizer_dir : "data/gpt2", &tok, err);
    if (!st) st = ot_dataset_open(o->data, tok, &d, &ds, err);
  } else if (o->tokens) {
    st = ot_dataset_from_tokens(o->tokens, o->n_tokens, &d, &ds, err);
  } else {
    st = ot_error_set(err, OT_EINVAL, "check-numerics: no data (a text file or tokens)");
  }
  uint32_t *w = st ? NULL : malloc((size_t)o->batch * (o->seq + 1) * sizeof *w);
  if (!st && !w) st = ot_error_set(err, OT_ENOMEM, "check-numerics: out of memory");
  if (!st) ot_dataset_next_batch(ds, w);
  if (!st) st = num_split_window(s, w, o->batch, o->seq, err);
  free(w);
  ot_dataset_free(ds);
  ot_tokenizer_free(tok);
  return st;
}

static ot_status num_train_setup(num_setup *s, const train_opts *o, ot_error *err) {
  if (o->resume_dir)
    return ot_error_set(err, OT_EUNSUPPORTED, "check-numerics: checks the initial weights (a seeded initialisation "
                        "or --init FILE), not a resumed checkpoint: give --init DIR/model-*.safetensors instead");
  if (!o->batch || !o->seq) return ot_error_set(err, OT_EINVAL, "check-numerics: batch and sequence must be at least 1");
  if (o->config) s->cfg = *o->config;
  else if (ot_model_config_load(o->model, &s->cfg, err)) return err->code;
  if (ot_chip_open(o->chip ? o->chip : "trn2", &s->chip, err)) return err->code;
  ot_status st = o->init ? ot_model_params_load(&s->cfg, o->init, &s->params, err)
                         : ot_model_params_alloc(&s->cfg, &s->params, err);
  if (st) return st;
  s->have_params = true;
  if (!o->init) ot_model_params_init(&s->params, o->seed);
  return num_first_batch(s, o, err);
}

ot_status numerics_check_train(const train_opts *o, FILE *out, bool *passed, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  *passed = false;
  num_setup s;
  memset(&s, 0, sizeof s);
  ot_status st = num_train_setup(&s, o, err);
  if (!st) st = num_run_print(&s, o->batch, o->seq, o->fp32, out, passed, err);
  num_setup_free(&s);
  return st;
}

ot_status numerics_check_random(const ot_model_config *c, const char *chip, uint32_t batch, uint32_t seq, bool fp32,
                                uint64_t seed, FILE *out, bool *passed, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  *passed = false;
  num_setup s;
  memset(&s, 0, sizeof s);
  s.cfg = *c;
  size_t rows = (size_t)batch * seq;
  ot_status st = ot_chip_open(chip ? chip : "trn2", &s.chip, err);
  if (!st) st = ot_model_params_alloc(&s.cfg, &s.params, err);
  s.have_params = !st;
  if (!st) {
    ot_model_params_init(&s.params, seed);
    s.ids = malloc((rows ? rows : 1) * sizeof *s.ids);
    s.targets = malloc((rows ? rows : 1) * sizeof *s.targets);
    if (!s.ids || !s.targets) st = ot_error_set(err, OT_ENOMEM, "check-numerics: out of memory");
  }
  ot_rng rng;
  ot_rng_seed(&rng, seed);
  for (size_t i = 0; !st && i < rows; i++) { /* uniform ids: (u32 * V) >> 32 */
    s.ids[i] = (int32_t)(((uint64_t)ot_rng_u32(&rng) * c->vocab_size) >> 32);
    s.targets[i] = (int32_t)(((uint64_t)ot_rng_u32(&rng) * c->vocab_size) >> 32);
  }
  if (!st) st = num_run_print(&s, batch, seq, fp32, out, passed, err);
  num_setup_free(&s);
  return st;
}
