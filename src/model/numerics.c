/* --check-numerics (numerics.h): the training step's graph on the simulated chip against the
** host's fp32 reference evaluator, node by node in topological order. */
#include "model/numerics.h"

#include <opentrn/compile.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph.h"
#include "compiler/graph_tol.h"
#include "model/model_graph.h"

/* What one check holds while it runs. */
typedef struct {
  const numerics_opts *o;
  model_graph mg;
  ot_device *dev;
  float **ref;      /* reference value of every graph tensor */
  float *buf;       /* a device tensor read back as floats (the largest tensor) */
  void *raw;        /* its bytes */
  ot_tol tol;
  numerics_report *r;
  ot_error *err;
} num_ctx;

static ot_status num_dev_fail(const num_ctx *c, const char *what) {
  ot_status s = ot_device_last_status(c->dev);
  return ot_error_set(c->err, s ? s : OT_EINVAL, "check-numerics: %s: %s", what, ot_device_last_error(c->dev));
}

static char *num_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void num_shape_str(const ot_gtensor *t, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "[");
  for (unsigned d = 0; d < t->ndim && n > 0 && (size_t)n < cap; d++)
    n += snprintf(buf + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
  if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
}

/* Flat element i of t as "[i0, i1, ...]". */
static void num_index_str(const ot_gtensor *t, int64_t i, char *buf, size_t cap) {
  int64_t idx[OT_GRAPH_MAX_DIMS];
  for (int d = (int)t->ndim - 1; d >= 0; d--) {
    idx[d] = t->shape[d] ? i % t->shape[d] : 0;
    i = t->shape[d] ? i / t->shape[d] : 0;
  }
  int n = snprintf(buf, cap, "[");
  for (unsigned d = 0; d < t->ndim && n > 0 && (size_t)n < cap; d++)
    n += snprintf(buf + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)idx[d]);
  if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
}

/* ---- the device side ----------------------------------------------------------------------- */

static ot_status num_compile_load(num_ctx *c) {
  ot_compile_options co;
  ot_compile_stats st;
  ot_compile_options_default(&co);
  co.matmul_dtype = c->o->fp32 ? OT_DT_FP32 : OT_DT_BF16;
  co.fuse = c->o->fuse;
  co.stats = &st;
  ot_program *prog = NULL;
  ot_status s = ot_compile(c->mg.g, c->o->chip, &co, &prog, c->err);
  if (s) return s;
  c->r->nodes_fused_by_compiler = st.nodes_fused;
  s = ot_device_open_chip(c->o->chip, &c->dev, c->err);
  if (!s && ot_device_load(c->dev, prog)) s = num_dev_fail(c, "loading the program");
  ot_program_free(prog);
  return s;
}

static ot_status num_write_inputs(num_ctx *c) {
  const ot_model_params *p = c->o->params;
  size_t rows = (size_t)c->o->batch * c->o->seq;
  for (size_t i = 0; i < p->count; i++)
    if (ot_device_write(c->dev, p->params[i].name, OT_DT_FP32, p->params[i].data, (size_t)p->params[i].count * 4))
      return num_dev_fail(c, "writing the weights");
  if (ot_device_write(c->dev, "ids", OT_DT_INT32, c->o->ids, rows * 4) ||
      ot_device_write(c->dev, "targets", OT_DT_INT32, c->o->targets, rows * 4))
    return num_dev_fail(c, "writing the batch");
  return OT_OK;
}

static ot_status num_device_run(num_ctx *c) {
  ot_status s = num_compile_load(c);
  if (!s) s = num_write_inputs(c);
  if (!s && c->o->before_run && (s = c->o->before_run(c->dev, c->o->hook_arg)))
    ot_error_set(c->err, s, "check-numerics: the before-run hook failed (%s)", ot_status_str(s));
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.race_check = true;
  if (!s && ot_device_run(c->dev, &ro)) s = num_dev_fail(c, "running the training step's graph");
  if (!s && !(c->r->races = num_strdup(ot_device_run_log(c->dev))))
    s = ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  if (!s && c->o->after_run && (s = c->o->after_run(c->dev, c->o->hook_arg)))
    ot_error_set(c->err, s, "check-numerics: the after-run hook failed (%s)", ot_status_str(s));
  return s;
}

/* The program tensor holding graph tensor t's value, or NULL if fusion folded it away: t's own
** name, or, for a reshape that aliases its input, the tensor holding the input (same bytes).  An
** fp32 tensor may be kept in bf16 where only bf16 matmuls read it (the logits gradient): compared
** as it is kept. */
static const char *num_source(const num_ctx *c, ot_tid t) {
  const ot_graph *g = c->mg.g;
  for (int depth = 0; depth < 64; depth++) {
    const ot_gtensor *x = &g->t[t];
    ot_tensor_desc d;
    if (ot_device_tensor_find(c->dev, x->name, &d) == OT_OK)
      return d.has_value && (d.dtype == (ot_dtype)x->dtype || (x->dtype == OT_DT_FP32 && d.dtype == OT_DT_BF16)) ? x->name
                                                                                                          : NULL;
    if (x->producer < 0 || g->node[x->producer].op != OT_GOP_RESHAPE) return NULL;
    t = g->node[x->producer].in[0];
  }
  return NULL;
}

/* Read n elements of device tensor name (fp32 or bf16) into c->buf. */
static ot_status num_read(num_ctx *c, const char *name, int64_t n) {
  ot_tensor_desc d;
  if (ot_device_tensor_find(c->dev, name, &d)) return num_dev_fail(c, "reading back");
  size_t esz = ot_dtype_size(d.dtype);
  if (d.bytes != (uint64_t)n * esz)
    return ot_error_set(c->err, OT_EINVAL, "check-numerics: device tensor '%s' has %llu bytes, expected %lld x %zu",
                        name, (unsigned long long)d.bytes, (long long)n, esz);
  if (ot_device_read(c->dev, name, d.dtype, c->raw, (size_t)d.bytes)) return num_dev_fail(c, "reading back");
  for (int64_t i = 0; i < n; i++) {
    if (d.dtype == OT_DT_BF16) c->buf[i] = ot_bf16_to_f32(((const uint16_t *)c->raw)[i]);
    else c->buf[i] = ((const float *)c->raw)[i];
  }
  return OT_OK;
}

/* The device tensor that holds [rows, cols] tensor x in column blocks (compile.c column_block:
** "<name>^C<w>", block b holding columns [b w, b w + w) of every row, the last block narrower):
** its name into name and w, or 0 where there is none. */
static uint32_t num_blocked(num_ctx *c, const ot_gtensor *x, char *name, size_t cap) {
  size_t n = strlen(x->name), count = ot_device_tensor_count(c->dev);
  for (size_t i = 0; x->ndim == 2 && i < count; i++) {
    ot_tensor_desc d;
    if (ot_device_tensor(c->dev, i, &d) || strncmp(d.name, x->name, n) || strncmp(d.name + n, "^C", 2)) continue;
    unsigned long w = strtoul(d.name + n + 2, NULL, 10);
    if (!w || w > UINT32_MAX || !d.has_value || (size_t)snprintf(name, cap, "%s", d.name) >= cap) return 0;
    return (uint32_t)w;
  }
  return 0;
}

/* c->buf, read in column blocks of w, back to row-major [rows, cols]. */
static ot_status num_unblock(num_ctx *c, uint64_t rows, uint64_t cols, uint32_t w) {
  uint64_t n = rows * cols;
  float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  for (uint64_t b0 = 0; b0 < cols; b0 += w) {
    uint64_t wb = cols - b0 < w ? cols - b0 : w;
    for (uint64_t r = 0; r < rows; r++)
      memcpy(&v[r * cols + b0], &c->buf[b0 * rows + r * wb], (size_t)wb * sizeof *v);
  }
  memcpy(c->buf, v, (size_t)n * sizeof *v);
  free(v);
  return OT_OK;
}

/* ---- the reference side -------------------------------------------------------------------- */

static ot_status num_ref_leaf(num_ctx *c, ot_tid t) {
  const ot_gtensor *x = &c->mg.g->t[t];
  int64_t n = ot_gtensor_elems(x);
  float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  c->ref[t] = v;
  if (t == c->mg.ids || t == c->mg.targets) {
    const int32_t *src = t == c->mg.ids ? c->o->ids : c->o->targets;
    for (int64_t i = 0; i < n; i++) v[i] = (float)src[i];
    return OT_OK;
  }
  const ot_model_param *p = ot_model_params_find(c->o->params, x->name);
  if (!p || p->count != (uint64_t)n)
    return ot_error_set(c->err, OT_EINVAL, "check-numerics: no weight '%s' of %lld values in the parameters", x->name,
                        (long long)n);
  memcpy(v, p->data, (size_t)n * sizeof *v);
  return OT_OK;
}

static ot_status num_ref_eval(num_ctx *c) {
  const ot_graph *g = c->mg.g;
  c->ref = calloc(g->n_t ? g->n_t : 1, sizeof *c->ref);
  if (!c->ref) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  for (uint32_t t = 0; t < g->n_t; t++) {
    uint8_t role = g->t[t].role;
    if ((role == OT_GROLE_INPUT || role == OT_GROLE_WEIGHT) && num_ref_leaf(c, (ot_tid)t)) return c->err->code;
  }
  return ot_graph_eval_ref(g, c->ref, c->err);
}

/* ---- comparison ----------------------------------------------------------------------------- */

/* The first node after `after` that reads tensor t (the node a fused output is folded into). */
static const char *num_consumer(const ot_graph *g, uint32_t after, ot_tid t) {
  for (uint32_t j = after + 1; j < g->n_node; j++)
    for (uint32_t k = 0; k < g->node[j].n_in; k++)
      if (g->node[j].in[k] == t) return g->node[j].name;
  return "?";
}

static ot_status num_compare_output(num_ctx *c, numerics_node *nd, ot_tid t) {
  const ot_gtensor *x = &c->mg.g->t[t];
  const char *src = num_source(c, t);
  char blocked[400];
  uint32_t w = src ? 0 : num_blocked(c, x, blocked, sizeof blocked);
  if (w) src = blocked;
  if (!src) return OT_OK;
  int64_t n = ot_gtensor_elems(x);
  if (num_read(c, src, n)) return c->err->code;
  if (w && num_unblock(c, (uint64_t)x->shape[0], (uint64_t)x->shape[1], w)) return c->err->code;
  ot_tol_err e = ot_tol_compare(c->buf, c->ref[t], n, c->tol);
  nd->n_out_compared++;
  if (e.max_abs > nd->max_abs || nd->n_out_compared == 1) nd->max_abs = e.max_abs;
  if (e.max_rel > nd->max_rel) nd->max_rel = e.max_rel;
  if (e.worst > nd->worst || nd->n_out_compared == 1) {
    nd->worst = e.worst;
    nd->dev = n ? c->buf[e.at] : 0;
    nd->ref = n ? c->ref[t][e.at] : 0;
    num_index_str(x, e.at, nd->at, sizeof nd->at);
  }
  return OT_OK;
}

static ot_status num_compare_node(num_ctx *c, uint32_t i) {
  const ot_graph *g = c->mg.g;
  const ot_gnode *n = &g->node[i];
  numerics_node *nd = &c->r->nodes[i];
  nd->index = i;
  nd->name = num_strdup(n->name);
  nd->op = ot_gop_table[n->op].name;
  nd->n_out = n->n_out;
  if (!nd->name) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  if (n->n_out) {
    num_shape_str(&g->t[n->out[0]], nd->shape, sizeof nd->shape);
    nd->dtype = (ot_dtype)g->t[n->out[0]].dtype;
  }
  bool all_int = true;
  for (uint32_t k = 0; k < n->n_out; k++) {
    if (g->t[n->out[k]].dtype == OT_DT_INT32) continue;
    all_int = false;
    if (num_compare_output(c, nd, n->out[k])) return c->err->code;
  }
  nd->ok = true;
  if (all_int) nd->state = NUMERICS_SKIPPED;
  else if (!nd->n_out_compared) {
    nd->state = NUMERICS_FUSED;
    nd->fused_into = num_strdup(num_consumer(g, i, n->out[0]));
    if (!nd->fused_into) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  } else {
    nd->ok = nd->worst <= 1.0;
  }
  return OT_OK;
}

static void num_tally(numerics_report *r) {
  r->first_bad = -1;
  for (uint32_t i = 0; i < r->n_nodes; i++) {
    const numerics_node *nd = &r->nodes[i];
    if (nd->state == NUMERICS_FUSED) r->fused++;
    else if (nd->state == NUMERICS_SKIPPED) r->skipped++;
    else r->compared++;
    if (!nd->ok) {
      r->failed++;
      if (r->first_bad < 0) r->first_bad = (int32_t)i;
    }
  }
}

static ot_status num_compare_all(num_ctx *c) {
  const ot_graph *g = c->mg.g;
  int64_t most = 1;
  for (uint32_t t = 0; t < g->n_t; t++)
    if (ot_gtensor_elems(&g->t[t]) > most) most = ot_gtensor_elems(&g->t[t]);
  c->buf = malloc((size_t)most * sizeof *c->buf);
  c->raw = malloc((size_t)most * 4);
  c->r->nodes = calloc(g->n_node ? g->n_node : 1, sizeof *c->r->nodes);
  if (!c->buf || !c->raw || !c->r->nodes) return ot_error_set(c->err, OT_ENOMEM, "check-numerics: out of memory");
  c->r->n_nodes = g->n_node;
  for (uint32_t i = 0; i < g->n_node; i++)
    if (num_compare_node(c, i)) return c->err->code;
  num_tally(c->r);
  return OT_OK;
}

static ot_status num_check_opts(const numerics_opts *o, ot_error *err) {
  if (!o || !o->config || !o->params || !o->ids || !o->targets || !o->chip || !o->batch || !o->seq)
    return ot_error_set(err, OT_EINVAL, "check-numerics: a config, weights, ids, targets, a chip, and batch and "
                        "sequence of at least 1 are required");
  uint32_t v = o->config->vocab_size;
  for (size_t i = 0; i < (size_t)o->batch * o->seq; i++)
    if (o->ids[i] < 0 || (uint32_t)o->ids[i] >= v || o->targets[i] < 0 || (uint32_t)o->targets[i] >= v)
      return ot_error_set(err, OT_EINVAL, "check-numerics: token %zu (id %d, target %d) is outside the vocabulary "
                          "[0, %u)", i, o->ids[i], o->targets[i], v);
  return OT_OK;
}

ot_status numerics_check(const numerics_opts *o, numerics_report *out, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  memset(out, 0, sizeof *out);
  out->first_bad = -1;
  if (num_check_opts(o, err)) return err->code;
  num_ctx c = {.o = o, .r = out, .err = err, .tol = ot_tol_pair(!o->fp32)};
  out->lowp = !o->fp32;
  out->atol = c.tol.atol;
  out->rtol = c.tol.rtol;
  model_graph_opts go;
  model_graph_opts_default(&go, o->batch, o->seq, MODEL_GRAPH_GRADS);
  ot_status s = model_graph_build(o->config, &go, &c.mg, err);
  if (!s) s = num_device_run(&c);
  if (!s) s = num_ref_eval(&c);
  if (!s) s = num_compare_all(&c);
  for (uint32_t t = 0; c.ref && t < c.mg.g->n_t; t++) free(c.ref[t]);
  free(c.ref);
  free(c.buf);
  free(c.raw);
  ot_device_close(c.dev);
  if (c.mg.g) model_graph_free(&c.mg);
  if (s) numerics_report_free(out);
  return s;
}

void numerics_report_free(numerics_report *r) {
  if (!r) return;
  for (uint32_t i = 0; r->nodes && i < r->n_nodes; i++) {
    free(r->nodes[i].name);
    free(r->nodes[i].fused_into);
  }
  free(r->nodes);
  free(r->races);
  memset(r, 0, sizeof *r);
  r->first_bad = -1;
}
