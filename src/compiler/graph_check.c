/* ot_graph_check: everything the compiler cannot lower for a chip, every node in one pass.
**
** Two kinds of rules: data types (one rule for every node, from each input's kind in
** graph_infer.c) and per-op limits (check_rules below, one function per op that has any).
** The lowering team extends the table as it learns limits; each message names the node, its
** op and shapes, the limit with both numbers, and what is supported. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arch/chip_int.h"
#include "compiler/graph_int.h"

typedef struct {
  const ot_graph *g;
  const ot_chip *chip;
  const ot_gnode *n;
  ot_error *err;
  unsigned problems;
} check_ctx;

static void problem(check_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void problem(check_ctx *c, const char *fmt, ...) {
  char msg[900], where[48] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->n->line) snprintf(where, sizeof where, ", line %u", c->n->line);
  ot_error_set(c->err, OT_EUNSUPPORTED, "node '%s' (%s%s): %s", c->n->name, ot_gop_table[c->n->op].name, where, msg);
  c->problems++;
}

static const ot_gtensor *input(const check_ctx *c, unsigned k) {
  return k < c->n->n_in && c->n->in[k] != OT_TID_NONE ? &c->g->t[c->n->in[k]] : NULL;
}

/* "q [1, 12, 128, 256] bf16" */
static const char *describe(const check_ctx *c, unsigned k, char *buf, size_t size) {
  char d[160];
  snprintf(buf, size, "%s %s", ot_gop_input_name((ot_gop)c->n->op, k), ot_gtensor_describe(input(c, k), d, sizeof d));
  return buf;
}

static int64_t last_dim(const ot_gtensor *t) { return t && t->ndim ? t->shape[t->ndim - 1] : 1; }

/* ---- data types -------------------------------------------------------------------------- */

static bool float_ok(unsigned dt) { return dt == OT_DT_FP32 || dt == OT_DT_BF16; }

static void check_dtypes(check_ctx *c) {
  for (uint32_t k = 0; k < c->n->n_in; k++) {
    const ot_gtensor *t = input(c, k);
    if (!t) continue;
    char kind = ot_gop_input_kind((ot_gop)c->n->op, k), d[200];
    const char *dt = ot_dtype_name((ot_dtype)t->dtype);
    if (kind == 'f' && !float_ok(t->dtype))
      problem(c, "%s '%s': %s is not supported yet; float tensors must be fp32 or bf16", describe(c, k, d, sizeof d),
              t->name, dt);
    else if (kind == 'i' && t->dtype != OT_DT_INT32)
      problem(c, "%s '%s': %s ids are not supported; ids and targets must be int32", describe(c, k, d, sizeof d),
              t->name, dt);
    else if (kind == 'a' && !float_ok(t->dtype) && t->dtype != OT_DT_INT32)
      problem(c, "%s '%s': %s is not supported yet; tensors must be fp32, bf16 or int32", describe(c, k, d, sizeof d),
              t->name, dt);
  }
  if (c->n->op == OT_GOP_CAST) {
    int64_t dt = c->n->i[0];
    if (dt != OT_DT_FP32 && dt != OT_DT_BF16 && dt != OT_DT_INT32)
      problem(c, "cast to %s is not supported yet; supported: fp32, bf16, int32", ot_dtype_name((ot_dtype)dt));
  }
}

/* ---- per-op limits ----------------------------------------------------------------------- */

/* The head dim sits on the partitions (q k^T contracts over D on the PE rows). */
static void rule_head_dim(check_ctx *c) {
  uint32_t parts = c->chip->sbuf.partitions;
  int64_t D = last_dim(input(c, 0));
  char d[200];
  if (D > parts)
    problem(c, "%s: head dim D = %lld exceeds the %u partitions of %s; supported: D <= %u", describe(c, 0, d, sizeof d),
            (long long)D, parts, c->chip->name, parts);
  if (c->n->op == OT_GOP_ROPE && D % 2)
    problem(c, "%s: head dim D = %lld is odd; supported: even D (rotate_half)", describe(c, 0, d, sizeof d), (long long)D);
}

/* Row-wise ops keep a whole row in one instruction's free size on the Vector engine. */
static void rule_row_free(check_ctx *c) {
  uint32_t fmax = c->chip->eng[OT_ENG_VECTOR].free_max_sbuf;
  int64_t D = last_dim(input(c, 0));
  char d[200];
  if (D > fmax)
    problem(c, "%s: last dim %lld exceeds the vector engine's free size limit of %u elements on %s "
               "(vector.free_max_sbuf); supported: last dim <= %u", describe(c, 0, d, sizeof d), (long long)D, fmax,
            c->chip->name, fmax);
}

/* Cross-entropy walks the vocabulary in chunks (no free-size limit), but compares class indices
** as fp32 (iota + chunk start == target): exact only below 2^24. */
static void rule_ce_classes(check_ctx *c) {
  const int64_t limit = (int64_t)1 << 24;
  int64_t V = last_dim(input(c, 0));
  char d[200];
  if (V > limit)
    problem(c, "%s: %lld classes; supported: at most 2^24 = %lld (class indices compared as fp32)",
            describe(c, 0, d, sizeof d), (long long)V, (long long)limit);
}

/* Row indices are int32 offsets into the table. */
static void rule_vocab(check_ctx *c) {
  const int64_t limit = (int64_t)1 << 31;
  int64_t rows = c->n->op == OT_GOP_EMBEDDING ? (input(c, 1) ? input(c, 1)->shape[0] : 0) : c->n->i[0];
  char d[200];
  if (rows >= limit)
    problem(c, "%s: %lld table rows; supported: fewer than 2^31 = %lld (int32 ids)",
            c->n->op == OT_GOP_EMBEDDING ? describe(c, 1, d, sizeof d) : "dtable", (long long)rows, (long long)limit);
}

typedef void (*check_rule)(check_ctx *c);

/* Ops without an entry have no limit beyond data types: matmul (any M, K, N; batched b),
** transpose of any permutation (DMA), reshape, concat, split, slice, reductions, ... */
static const check_rule check_rules[OT_GOP_COUNT] = {
  [OT_GOP_ATTENTION] = rule_head_dim,
  [OT_GOP_ATTENTION_BWD] = rule_head_dim,
  [OT_GOP_ROPE] = rule_head_dim,
  [OT_GOP_SOFTMAX] = rule_row_free,
  [OT_GOP_SOFTMAX_BWD] = rule_row_free,
  [OT_GOP_LAYERNORM] = rule_row_free,
  [OT_GOP_LAYERNORM_BWD] = rule_row_free,
  [OT_GOP_RMSNORM] = rule_row_free,
  [OT_GOP_RMSNORM_BWD] = rule_row_free,
  [OT_GOP_CROSS_ENTROPY] = rule_ce_classes,
  [OT_GOP_CROSS_ENTROPY_BWD] = rule_ce_classes,
  [OT_GOP_EMBEDDING] = rule_vocab,
  [OT_GOP_EMBEDDING_BWD] = rule_vocab,
};

ot_status ot_graph_check(const ot_graph *g, const ot_chip *chip, ot_error *err) {
  if (!g || !chip) return ot_error_set(err, OT_EINVAL, "ot_graph_check: no %s", g ? "chip" : "graph"), OT_EINVAL;
  if (g->err.code) {
    ot_error_set(err, g->err.code, "the graph has an error: %s", g->err.msg);
    return g->err.code;
  }
  check_ctx c = {g, chip, NULL, err, 0};
  for (uint32_t k = 0; k < g->n_node; k++) {
    c.n = &g->node[k];
    if (c.n->op >= OT_GOP_COUNT) continue;
    check_dtypes(&c);
    if (check_rules[c.n->op]) check_rules[c.n->op](&c);
  }
  return c.problems ? OT_EUNSUPPORTED : OT_OK;
}
