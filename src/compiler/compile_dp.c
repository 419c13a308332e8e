/* Data-parallel compilation across the NeuronCores of one chip (docs/data-parallel.md):
**   1. the graph is cut into the per-core part (forward + backward) and the optimizer part (the
**      global_norm / adamw nodes and everything that depends on them);
**   2. the per-core part is rebuilt with every input's first dimension divided by the core count
**      and lowered once per core through compile.c's pipeline (lower_graph_into) into one
**      program: inputs and values get per-core names ("ids@c3"), weights and constants are
**      placed once and read by every core;
**   3. every gradient "<w>.grad" and every scalar fp32 output (the loss) is all-reduced across the
**      cores (mean: sum in core order, times 1/cores; lower_collective.c);
**   4. the optimizer part is shared out: the adamw updates by elements, an equal run per core
**      (a large weight is split between cores), each reading that core's copy of the all-reduced
**      gradients and updating its elements of the shared weights in place; every such core
**      computes the global norm from its own copy (optim_plan_make). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"
#include "compiler/lower.h"
#include "compiler/lower_collective.h"
#include "compiler/lower_wcopy.h"

static bool is_optim_op(ot_gop op) { return op == OT_GOP_GLOBAL_NORM || op == OT_GOP_ADAMW; }

/* Nodes that run once after the all-reduce: optimizer nodes and everything depending on them. */
static bool *optim_nodes(const ot_graph *g) {
  bool *opt = calloc(g->n_node ? g->n_node : 1, sizeof *opt);
  bool *tainted = calloc(g->n_t ? g->n_t : 1, sizeof *tainted);
  if (!opt || !tainted) { free(opt); free(tainted); return NULL; }
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    bool o = is_optim_op((ot_gop)n->op);
    for (uint32_t j = 0; j < n->n_in && !o; j++) o = n->in[j] != OT_TID_NONE && tainted[n->in[j]];
    opt[i] = o;
    if (o)
      for (uint32_t j = 0; j < n->n_out; j++) tainted[n->out[j]] = true;
  }
  free(tainted);
  return opt;
}

/* Room for the inputs of the graph's widest node (global_norm takes every gradient). */
static ot_tid *in_buffer(const ot_graph *g) {
  uint32_t most = 1;
  for (uint32_t i = 0; i < g->n_node; i++)
    if (g->node[i].n_in > most) most = g->node[i].n_in;
  return malloc(most * sizeof(ot_tid));
}

static bool used_per_core(const ot_graph *g, const bool *optim, ot_tid t) {
  for (uint32_t i = 0; i < g->n_node; i++)
    for (uint32_t j = 0; j < g->node[i].n_in && !optim[i]; j++)
      if (g->node[i].in[j] == t) return true;
  return false;
}

/* The per-core graph: the non-optimizer nodes with inputs of batch / cores rows.  map[t] is the
** new id of old tensor t (OT_TID_NONE if not in the part).  Reshape targets whose first entry
** counted the whole batch are divided too. */
static ot_graph *core_graph(const ot_graph *g, const bool *optim, unsigned cores, ot_tid *map, ot_error *err) {
  ot_graph *h = ot_graph_new();
  int32_t *nmap = malloc((g->n_node ? g->n_node : 1) * sizeof *nmap);
  ot_tid *in = in_buffer(g);
  if (!h || !nmap || !in) {
    free(nmap);
    free(in);
    ot_graph_free(h);
    ot_error_set(err, OT_ENOMEM, "out of memory");
    return NULL;
  }
  for (uint32_t t = 0; t < g->n_t; t++) map[t] = OT_TID_NONE;
  for (uint32_t t = 0; t < g->n_t; t++) {
    const ot_gtensor *x = &g->t[t];
    if (x->role == OT_GROLE_VALUE) continue;
    int64_t shape[OT_GRAPH_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    if (x->role == OT_GROLE_INPUT && !used_per_core(g, optim, (ot_tid)t)) continue; /* the optimizer's (hyper) */
    if (x->role == OT_GROLE_INPUT) {
      if (x->ndim < 1 || x->shape[0] % cores) {
        ot_error_set(err, OT_EINVAL, "input '%s': its first dimension (%lld) must divide among %u cores", x->name,
                     x->ndim ? (long long)x->shape[0] : 1LL, cores);
        goto fail;
      }
      shape[0] /= cores;
      map[t] = ot_graph_input(h, x->name, (ot_dtype)x->dtype, x->ndim, shape);
    } else if (x->role == OT_GROLE_WEIGHT) {
      map[t] = ot_graph_weight(h, x->name, (ot_dtype)x->dtype, x->ndim, shape);
    } else {
      map[t] = ot_graph_const(h, x->name, (ot_dtype)x->dtype, x->ndim, shape, x->data);
    }
  }
  for (uint32_t i = 0; i < g->n_node && !ot_graph_status(h); i++) {
    const ot_gnode *n = &g->node[i];
    nmap[i] = -1;
    if (optim[i]) continue;
    ot_gnode p = *n;
    bool batched = false;
    for (uint32_t j = 0; j < n->n_in; j++) {
      in[j] = n->in[j] == OT_TID_NONE ? OT_TID_NONE : map[n->in[j]];
      if (in[j] != OT_TID_NONE && h->t[in[j]].ndim && h->t[in[j]].shape[0] != g->t[n->in[j]].shape[0]) batched = true;
    }
    p.in = in;
    p.forward = n->forward >= 0 ? nmap[n->forward] : -1;
    if (n->op == OT_GOP_RESHAPE && batched && p.n_list && p.list[0] > 0) {
      if (p.list[0] % cores) {
        ot_error_set(err, OT_EUNSUPPORTED, "reshape '%s': target first dimension %lld does not divide among %u cores",
                     n->name, (long long)p.list[0], cores);
        goto fail;
      }
      p.list[0] /= cores;
    }
    const char *names[OT_GNODE_MAX_LIST];
    for (uint32_t j = 0; j < n->n_out && j < OT_GNODE_MAX_LIST; j++) names[j] = g->t[n->out[j]].name;
    int32_t k = ot_graph_add_node_named(h, &p, names, n->n_out);
    if (k < 0) break;
    nmap[i] = k;
    for (uint32_t j = 0; j < n->n_out; j++) {
      map[n->out[j]] = h->node[k].out[j];
      h->t[h->node[k].out[j]].is_output = g->t[n->out[j]].is_output;
    }
  }
  if (ot_graph_status(h)) {
    ot_error_set(err, ot_graph_status(h), "per-core graph: %s", ot_graph_error(h));
    goto fail;
  }
  free(nmap);
  free(in);
  return h;
fail:
  free(nmap);
  free(in);
  ot_graph_free(h);
  return NULL;
}

/* The optimizer part as its own graph: its inputs that other nodes produce become inputs (bound
** to core 0's tensors), weights and constants stay leaves.  map[t]: new id of old tensor t. */
static ot_graph *optim_graph(const ot_graph *g, const bool *optim, ot_tid *map, ot_error *err) {
  ot_graph *h = ot_graph_new();
  ot_tid *in = in_buffer(g);
  if (!h || !in) {
    free(in);
    ot_graph_free(h);
    ot_error_set(err, OT_ENOMEM, "out of memory");
    return NULL;
  }
  for (uint32_t t = 0; t < g->n_t; t++) map[t] = OT_TID_NONE;
  for (uint32_t i = 0; i < g->n_node && !ot_graph_status(h); i++) {
    const ot_gnode *n = &g->node[i];
    if (!optim[i]) continue;
    for (uint32_t j = 0; j < n->n_in; j++) {
      ot_tid t = n->in[j];
      if (t != OT_TID_NONE && map[t] == OT_TID_NONE) {
        const ot_gtensor *x = &g->t[t];
        if (x->role == OT_GROLE_WEIGHT) map[t] = ot_graph_weight(h, x->name, (ot_dtype)x->dtype, x->ndim, x->shape);
        else if (x->role == OT_GROLE_CONST) map[t] = ot_graph_const(h, x->name, (ot_dtype)x->dtype, x->ndim, x->shape, x->data);
        else map[t] = ot_graph_input(h, x->name, (ot_dtype)x->dtype, x->ndim, x->shape);
      }
      in[j] = t == OT_TID_NONE ? OT_TID_NONE : map[t];
    }
    ot_gnode p = *n;
    p.in = in;
    p.forward = -1;
    const char *names[OT_GNODE_MAX_LIST];
    for (uint32_t j = 0; j < n->n_out && j < OT_GNODE_MAX_LIST; j++) names[j] = g->t[n->out[j]].name;
    int32_t k = ot_graph_add_node_named(h, &p, names, n->n_out);
    if (k < 0) break;
    for (uint32_t j = 0; j < n->n_out; j++) {
      map[n->out[j]] = h->node[k].out[j];
      h->t[h->node[k].out[j]].is_output = g->t[n->out[j]].is_output;
    }
  }
  free(in);
  if (ot_graph_status(h)) {
    ot_error_set(err, ot_graph_status(h), "optimizer graph: %s", ot_graph_error(h));
    ot_graph_free(h);
    return NULL;
  }
  return h;
}

typedef struct {
  const ot_graph *g;
  const ot_chip *chip;
  unsigned cores;
  const ot_compile_options *opt;
  ot_program *p;
  kir **k;
  ot_graph *cg;                  /* the per-core graph */
  ot_tid *cmap, *omap;           /* old tensor -> cg / a core's optimizer graph tensor */
  kir_hbm *hbm;                  /* [core * cg->n_t + t] */
  bool *optim;
  kir_hbm *wcopy;                /* per cg tensor: its matmul-type copy (index >= 0), shared by the cores */
  unsigned core;                 /* the core being lowered (weight_copies) */
  lower_norm_split sp;           /* the shared global norm (sp.n 0: none), made before the all-reduce */
  uint64_t norm_total;
  int32_t norm_node;             /* its node in g, -1 none */
} dp_ctx;

static void dp_free(dp_ctx *d) {
  for (unsigned c = 0; d->k && c < d->cores; c++) kir_free(d->k[c]);
  free(d->k);
  ot_graph_free(d->cg);
  free(d->cmap);
  free(d->omap);
  free(d->hbm);
  free(d->optim);
  free(d->wcopy);
}

/* lower_graph_into's after_place hook: core 0 chooses and places the weights' matmul-type copies
** (lower_wcopy.c); every core rounds its share of them and waits for the others' shares. */
static ot_status weight_copies(lower_ctx *c, void *arg) {
  dp_ctx *d = arg;
  lower_wcopy w = {d->opt->weight_copies, d->cores, d->core, kir_free_sem_base(c->k) + 3, d->wcopy};
  if (d->core == 0 && lower_wcopy_place(c, &w)) return kir_status(c->k);
  return lower_wcopy_emit(c, &w);
}

/* Lower the per-core graph on every core; weights and constants are placed by core 0 only. */
static ot_status lower_cores(dp_ctx *d, ot_error *err) {
  const ot_graph *cg = d->cg;
  kir_hbm *shared = malloc((cg->n_t ? cg->n_t : 1) * sizeof *shared);
  if (!shared) return ot_error_set(err, OT_ENOMEM, "out of memory");
  ot_status st = OT_OK;
  for (unsigned c = 0; c < d->cores && !st; c++) {
    if ((st = kir_new_core(d->chip, d->p, c, &d->k[c], err))) break;
    kir_set_schedule(d->k[c], d->opt->schedule);
    char suffix[16];
    snprintf(suffix, sizeof suffix, "@c%u", c);
    lower_place_opts po = {suffix, c ? shared : NULL, NULL, NULL, weight_copies, d};
    d->core = c;
    kir_hbm *mine = &d->hbm[(size_t)c * (cg->n_t ? cg->n_t : 1)];
    st = lower_graph_into(d->k[c], cg, d->chip, d->opt, &po, mine, c == 0 ? d->opt->stats : NULL, err);
    if (!st && c == 0)
      for (uint32_t t = 0; t < cg->n_t; t++) {
        shared[t] = mine[t];
        if (cg->t[t].role != OT_GROLE_WEIGHT && cg->t[t].role != OT_GROLE_CONST) shared[t].index = -1;
      }
  }
  free(shared);
  return st;
}

/* All-reduce (mean) of every gradient and every scalar fp32 output, across the cores. */
static ot_status allreduce_grads(dp_ctx *d, ot_error *err) {
  const ot_graph *cg = d->cg;
  uint32_t n = 0;
  size_t nt = cg->n_t ? cg->n_t : 1;
  kir_hbm *bufs = malloc(nt * d->cores * sizeof *bufs);
  uint64_t *elems = malloc(nt * sizeof *elems);
  bool *in_norm = calloc(nt, sizeof *in_norm);
  if (!bufs || !elems || !in_norm) {
    free(bufs); free(elems); free(in_norm);
    return ot_error_set(err, OT_ENOMEM, "out of memory");
  }
  const ot_gnode *norm = d->norm_node >= 0 ? &d->g->node[d->norm_node] : NULL;
  uint32_t flagged = 0;
  for (uint32_t t = 0; t < d->g->n_t; t++) {
    const ot_gtensor *x = &d->g->t[t];
    ot_tid r = OT_TID_NONE;
    if (x->role == OT_GROLE_WEIGHT && x->grad != OT_TID_NONE) r = d->cmap[x->grad];       /* "<w>.grad" */
    else if (x->role == OT_GROLE_VALUE && x->is_output && ot_gtensor_elems(x) == 1 && x->dtype == OT_DT_FP32 &&
             d->cmap[t] != OT_TID_NONE)
      r = d->cmap[t];                                                                     /* the loss */
    if (r == OT_TID_NONE) continue;
    if (cg->t[r].dtype != OT_DT_FP32) {
      free(bufs); free(elems);
      return ot_error_set(err, OT_EUNSUPPORTED, "gradient '%s' is %s: the all-reduce needs fp32", cg->t[r].name,
                          ot_dtype_name((ot_dtype)cg->t[r].dtype));
    }
    for (uint32_t j = 0; j < n; j++) /* the same HBM twice (an alias) is reduced once */
      if (bufs[(size_t)j * d->cores].off == d->hbm[r].off) { r = OT_TID_NONE; break; }
    if (r == OT_TID_NONE) continue;
    for (unsigned c = 0; c < d->cores; c++) bufs[(size_t)n * d->cores + c] = d->hbm[(size_t)c * nt + r];
    for (uint32_t j = 0; norm && x->role == OT_GROLE_WEIGHT && j < norm->n_in; j++)
      if (norm->in[j] == x->grad) in_norm[n] = true;
    flagged += in_norm[n];
    elems[n++] = (uint64_t)ot_gtensor_elems(&cg->t[r]);
  }
  /* the global norm's partial sums from the all-reduce's slices: when every core takes part in
  ** it (ranks = cores) and every one of its inputs is reduced exactly once */
  d->sp.presummed = norm && d->sp.n == d->cores && flagged == norm->n_in && n && d->cores > 1;
  lc_norm ln = {d->sp.partials, in_norm};
  ot_status st = OT_OK;
  if (n && d->cores > 1) {
    for (unsigned c = 0; c < d->cores; c++) kir_set_origin(d->k[c], "allreduce");
    uint32_t base = kir_free_sem_base(d->k[0]);
    if (base + 2 > d->chip->seq.semaphores)
      st = ot_error_set(err, OT_EUNSUPPORTED, "the all-reduce needs 2 semaphores beyond the compiler's %u; chip has %u", base,
                        d->chip->seq.semaphores);
    lc_sems sems = {base, base + 1, 0};
    if (!st) lower_allreduce(d->k, d->cores, n, bufs, elems, 1.0f / (float)d->cores, &sems, d->sp.presummed ? &ln : NULL);
    for (unsigned c = 0; c < d->cores && !st; c++)
      if (kir_status(d->k[c])) st = ot_error_set(err, kir_status(d->k[c]), "core %u: %s", c, kir_error(d->k[c])->msg);
  }
  free(bufs);
  free(elems);
  free(in_norm);
  return st;
}

#define OWN_NONE (-1)        /* not an optimizer node */
#define OWN_ADAMW_CORES (-2) /* every core that runs AdamW nodes (the global norm) */
#define OWN_SPLIT (-3)       /* an AdamW shared out by element ranges (optim_plan.range) */

typedef struct {
  int *own;        /* per node: its core, OWN_NONE, OWN_ADAMW_CORES or OWN_SPLIT */
  uint64_t *range; /* [(node * cores + core) * 2]: that core's elements [lo, hi) of an OWN_SPLIT node */
} optim_plan;

static void optim_plan_free(optim_plan *pl) {
  free(pl->own);
  free(pl->range);
}

/* Core c's [lo, hi) of node i (OWN_SPLIT). */
static uint64_t *plan_range(const optim_plan *pl, unsigned cores, uint32_t i, unsigned c) {
  return &pl->range[((size_t)i * cores + c) * 2];
}

/* Who runs which optimizer node.  After the all-reduce every core holds the whole gradients, so
** the AdamW updates are shared out by elements: the weights, in graph order, are laid end to end
** and cut into one equal run per core, so that a weight larger than a core's share (GPT-2's wte:
** 31 % of the parameters) is updated by several cores, each its own elements of p, m and v (in
** place; disjoint).  Every core that updates weights computes the global norm itself from its own
** copy (bit-identical on every core): no second exchange.  An optimizer node of any other kind,
** or none of kind AdamW, puts the whole optimizer on core 0. */
static ot_status optim_plan_make(const dp_ctx *d, optim_plan *pl) {
  const ot_graph *g = d->g;
  unsigned C = d->cores;
  pl->own = malloc((g->n_node ? g->n_node : 1) * sizeof *pl->own);
  pl->range = calloc((size_t)(g->n_node ? g->n_node : 1) * C * 2, sizeof *pl->range);
  if (!pl->own || !pl->range) return OT_ENOMEM;
  bool shard = C > 1, adamw = false;
  uint64_t total = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    const ot_gnode *n = &g->node[i];
    pl->own[i] = d->optim[i] ? 0 : OWN_NONE;
    if (d->optim[i] && n->op != OT_GOP_ADAMW && n->op != OT_GOP_GLOBAL_NORM) shard = false;
    if (d->optim[i] && n->op == OT_GOP_ADAMW) { adamw = true; total += (uint64_t)ot_gtensor_elems(&g->t[n->in[0]]); }
  }
  if (!(shard && adamw)) return OT_OK;
  uint64_t share = (total + C - 1) / C, fill = 0;
  unsigned c = 0;
  for (uint32_t i = 0; i < g->n_node; i++) {
    if (pl->own[i] != 0 || g->node[i].op != OT_GOP_ADAMW) continue;
    uint64_t size = (uint64_t)ot_gtensor_elems(&g->t[g->node[i].in[0]]);
    for (uint64_t at = 0; at < size;) {
      uint64_t take = c + 1 == C || size - at < share - fill ? size - at : share - fill;
      uint64_t *r = plan_range(pl, C, i, c);
      r[0] = at;
      r[1] = at + take;
      at += take;
      fill += take;
      if (fill >= share && c + 1 < C) { c++; fill = 0; }
    }
    pl->own[i] = OWN_SPLIT;
  }
  for (uint32_t i = 0; i < g->n_node; i++)
    if (g->node[i].op == OT_GOP_GLOBAL_NORM && pl->own[i] == 0) pl->own[i] = OWN_ADAMW_CORES;
  return OT_OK;
}

static bool plan_runs(const optim_plan *pl, unsigned cores, uint32_t i, unsigned c) {
  if (pl->own[i] == OWN_SPLIT) return plan_range(pl, cores, i, c)[1] > plan_range(pl, cores, i, c)[0];
  return pl->own[i] == (int)c;
}

/* Core c's part of the optimizer: its nodes and, if it has any, the global norm. */
static bool optim_mask_for(const dp_ctx *d, const optim_plan *pl, unsigned c, bool *mask) {
  bool any = false;
  for (uint32_t i = 0; i < d->g->n_node; i++) {
    mask[i] = plan_runs(pl, d->cores, i, c);
    any |= mask[i];
  }
  for (uint32_t i = 0; any && i < d->g->n_node; i++)
    if (pl->own[i] == OWN_ADAMW_CORES) mask[i] = true;
  return any;
}

/* Core c's element ranges, per node of its optimizer graph (optim_graph adds the masked nodes
** in order, one each). */
static uint64_t *optim_ranges_for(const dp_ctx *d, const optim_plan *pl, unsigned c, const bool *mask, uint32_t og_nodes) {
  uint64_t *r = calloc((size_t)(og_nodes ? og_nodes : 1) * 2, sizeof *r);
  uint32_t j = 0;
  for (uint32_t i = 0; r && i < d->g->n_node && j < og_nodes; i++) {
    if (!mask[i]) continue;
    if (pl->own[i] == OWN_SPLIT) memcpy(&r[2 * j], plan_range(pl, d->cores, i, c), 2 * sizeof *r);
    j++;
  }
  return r;
}

/* Lower core c's optimizer graph og: the gradients bound to the all-reduced root copies, weights,
** moments and hyper-parameters to the tensor the first core to use them placed (shared[], plain
** names); its values ("grad_norm") are plain on core 0 and "@c<c>" elsewhere. */
static ot_status lower_optimizer_on(dp_ctx *d, unsigned c, const ot_graph *og, const uint64_t *ranges, kir_hbm *shared,
                                   const lower_norm_split *norm, ot_error *err) {
  size_t on = og->n_t ? og->n_t : 1;
  kir_hbm *pre = malloc(on * sizeof *pre), *mine = malloc(on * sizeof *mine);
  if (!pre || !mine) { free(pre); free(mine); return ot_error_set(err, OT_ENOMEM, "out of memory"); }
  for (uint32_t t = 0; t < og->n_t; t++) pre[t].index = -1;
  for (uint32_t t = 0; t < d->g->n_t; t++) {
    ot_tid o = d->omap[t], ct = d->cmap[t];
    if (o == OT_TID_NONE || og->t[o].role == OT_GROLE_VALUE) continue;
    if (ct != OT_TID_NONE) pre[o] = d->hbm[ct]; /* the all-reduced root copy, core 0's (weights: the shared one) */
    else pre[o] = shared[t];
  }
  char suffix[16];
  snprintf(suffix, sizeof suffix, "@c%u", c);
  lower_place_opts po = {c ? suffix : NULL, pre, ranges, norm, NULL, NULL};
  ot_status st = lower_graph_into(d->k[c], og, d->chip, d->opt, &po, mine, NULL, err);
  for (uint32_t t = 0; !st && t < d->g->n_t; t++) {
    ot_tid o = d->omap[t];
    if (o != OT_TID_NONE && d->cmap[t] == OT_TID_NONE && og->t[o].role != OT_GROLE_VALUE && shared[t].index < 0)
      shared[t] = mine[o];
  }
  free(pre);
  free(mine);
  return st;
}

/* The global norm shared out among the n cores in `cores` (those that run AdamW nodes): each sums
** the squares of an equal run of the gradients laid end to end (from the root copy) and the n
** partial sums are exchanged (lower_norm_split).  Without exactly one global_norm node, or with
** one such core, every such core computes the whole norm: returns OT_OK with sp->n = 0. */
static ot_status norm_split_make(dp_ctx *d, const optim_plan *pl, uint64_t cores, unsigned n, lower_norm_split *sp,
                                 uint64_t *total, ot_error *err) {
  d->norm_node = -1;
  memset(sp, 0, sizeof *sp);
  int32_t norm = -1;
  for (uint32_t i = 0; i < d->g->n_node; i++)
    if (pl->own[i] == OWN_ADAMW_CORES && d->g->node[i].op == OT_GOP_GLOBAL_NORM) {
      if (norm >= 0) return OT_OK;
      norm = (int32_t)i;
    }
  if (norm < 0 || n < 2) return OT_OK;
  const ot_gnode *g = &d->g->node[norm];
  *total = 0;
  for (uint32_t i = 0; i < g->n_in; i++) *total += (uint64_t)ot_gtensor_elems(&d->g->t[g->in[i]]);
  sp->mask = cores;
  sp->n = n;
  sp->sem = kir_free_sem_base(d->k[0]) + 2; /* after the all-reduce's two */
  if (sp->sem >= d->chip->seq.semaphores)
    return ot_error_set(err, OT_EUNSUPPORTED, "the shared global norm needs semaphore %u; chip %s has %u", sp->sem,
                        d->chip->name, d->chip->seq.semaphores);
  uint64_t parts = n;
  if (kir_tensor(d->k[0], "global_norm.partials", OT_DT_FP32, 1, &parts, OT_ROLE_SCRATCH, NULL, &sp->partials))
    return ot_error_set(err, kir_status(d->k[0]), "%s", kir_error(d->k[0])->msg);
  d->norm_node = norm;
  return OT_OK;
}

/* Who runs which optimizer node, and the shared global norm (d->sp): before the all-reduce, which
** may sum the norm's squares for it. */
static ot_status optimizer_plan(dp_ctx *d, optim_plan *pl, ot_error *err) {
  bool *mask = malloc((d->g->n_node ? d->g->n_node : 1) * sizeof *mask);
  ot_status st = mask && !optim_plan_make(d, pl) ? OT_OK : ot_error_set(err, OT_ENOMEM, "out of memory");
  uint64_t workers = 0;
  unsigned n = 0;
  for (unsigned c = 0; c < d->cores && !st; c++)
    if (optim_mask_for(d, pl, c, mask)) workers |= 1ull << c, n++;
  if (!st) st = norm_split_make(d, pl, workers, n, &d->sp, &d->norm_total, err);
  free(mask);
  return st;
}

/* The optimizer after the all-reduce, shared out among the cores (optimizer_plan). */
static ot_status lower_optimizer(dp_ctx *d, const optim_plan *ppl, ot_error *err) {
  const optim_plan pl = *ppl;
  bool *mask = malloc((d->g->n_node ? d->g->n_node : 1) * sizeof *mask);
  kir_hbm *shared = malloc((d->g->n_t ? d->g->n_t : 1) * sizeof *shared);
  ot_status st = mask && shared ? OT_OK : ot_error_set(err, OT_ENOMEM, "out of memory");
  for (uint32_t t = 0; !st && t < d->g->n_t; t++) shared[t].index = -1;
  uint64_t total = d->norm_total;
  unsigned n = d->sp.n, rank = 0;
  lower_norm_split sp = d->sp;
  for (unsigned c = 0; c < d->cores && !st; c++) {
    if (!optim_mask_for(d, &pl, c, mask)) continue;
    if (sp.n) { /* rank r's run of the norm's elements, cut as the all-reduce cuts its slices */
      sp.rank = rank++;
      sp.lo = total / n * sp.rank + total % n * sp.rank / n;
      sp.hi = total / n * (sp.rank + 1) + total % n * (sp.rank + 1) / n;
    }
    ot_graph *og = optim_graph(d->g, mask, d->omap, err);
    uint64_t *ranges = og ? optim_ranges_for(d, &pl, c, mask, og->n_node) : NULL;
    if (!og) st = err && err->code ? err->code : OT_ENOMEM;
    else if (!ranges) st = ot_error_set(err, OT_ENOMEM, "out of memory");
    else st = lower_optimizer_on(d, c, og, ranges, shared, sp.n ? &sp : NULL, err);
    free(ranges);
    ot_graph_free(og);
  }
  free(mask);
  free(shared);
  return st;
}

ot_status ot_compile_data_parallel(const ot_graph *g, const ot_chip *chip, unsigned cores, const ot_compile_options *opt,
                                   ot_program **out, ot_error *err) {
  *out = NULL;
  ot_compile_options defaults;
  if (!opt) { ot_compile_options_default(&defaults); opt = &defaults; }
  if (ot_graph_status(g)) return ot_error_set(err, ot_graph_status(g), "graph: %s", ot_graph_error(g));
  if (cores < 1 || cores > chip->cores_per_chip || cores > 64)
    return ot_error_set(err, OT_EINVAL, "data-parallel over %u cores: chip %s has %u", cores, chip->name, chip->cores_per_chip);
  if (opt->matmul_dtype != OT_DT_BF16 && opt->matmul_dtype != OT_DT_FP32)
    return ot_error_set(err, OT_EUNSUPPORTED, "matmul type %s: supported are bf16 and fp32", ot_dtype_name(opt->matmul_dtype));
  ot_status st = ot_graph_check(g, chip, err);
  if (st) return st;
  dp_ctx d;
  memset(&d, 0, sizeof d);
  d.g = g;
  d.chip = chip;
  d.cores = cores;
  d.opt = opt;
  size_t nt = g->n_t ? g->n_t : 1;
  d.optim = optim_nodes(g);
  d.cmap = malloc(nt * sizeof *d.cmap);
  d.omap = malloc(nt * sizeof *d.omap);
  d.k = calloc(cores, sizeof *d.k);
  if (!d.optim || !d.cmap || !d.omap || !d.k || !(d.p = ot_program_new())) {
    dp_free(&d);
    return ot_error_set(err, OT_ENOMEM, "out of memory");
  }
  size_t cn = strnlen(chip->name, sizeof d.p->chip - 1);
  memcpy(d.p->chip, chip->name, cn);
  d.p->chip[cn] = 0;
  if (!(d.cg = core_graph(g, d.optim, cores, d.cmap, err))) st = err && err->code ? err->code : OT_ENOMEM;
  for (uint32_t t = 0; !st && t < g->n_t; t++) /* gradients keep their own HBM (no fusion aliases them) */
    if (g->t[t].role == OT_GROLE_WEIGHT && g->t[t].grad != OT_TID_NONE && d.cmap[g->t[t].grad] != OT_TID_NONE)
      d.cg->t[d.cmap[g->t[t].grad]].is_output = true;
  bool any_optim = false;
  for (uint32_t i = 0; i < g->n_node; i++) any_optim |= d.optim[i];
  if (!st && (!(d.hbm = malloc((size_t)cores * (d.cg->n_t ? d.cg->n_t : 1) * sizeof *d.hbm)) ||
              !(d.wcopy = malloc((d.cg->n_t ? d.cg->n_t : 1) * sizeof *d.wcopy))))
    st = ot_error_set(err, OT_ENOMEM, "out of memory");
  if (!st) st = lower_cores(&d, err);
  optim_plan pl = {NULL, NULL};
  d.norm_node = -1;
  if (!st && any_optim) st = optimizer_plan(&d, &pl, err);
  if (!st) st = allreduce_grads(&d, err);
  if (!st && any_optim) st = lower_optimizer(&d, &pl, err);
  optim_plan_free(&pl);
  for (unsigned c = 0; c < cores && !st; c++) st = kir_finish(d.k[c], err);
  if (st) {
    ot_program_free(d.p);
    dp_free(&d);
    return st;
  }
  *out = d.p;
  dp_free(&d);
  return OT_OK;
}
