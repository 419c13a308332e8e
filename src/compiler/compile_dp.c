/* Data-parallel compilation across the NeuronCores of one chip (docs/data-parallel.md):
**   1. the graph is cut into the per-core part (forward + backward) and the optimizer part (the
**      global_norm / adamw nodes and everything that depends on them);
**   2. the per-core part is rebuilt with every input's first dimension divided by the core count
**      and lowered once per core through compile.c's pipeline (lower_graph_into) into one
**      program: inputs and values get per-core names ("ids@c3"), weights and constants are
**      placed once and read by every core;
**   3. every gradient "<w>.grad" and every scalar fp32 output (the loss) is all-reduced across the
**      cores (mean: sum in core order, times 1/cores; lower_collective.c);
**   4. the optimizer part is shared out: each adamw node runs on one core (balanced by weight
**      size), reading that core's copy of the all-reduced gradients and updating the shared
**      weights in place; every such core computes the global norm from its own copy (optim_owners). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"
#include "compiler/lower.h"
#include "compiler/lower_collective.h"

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
} dp_ctx;

static void dp_free(dp_ctx *d) {
  for (unsigned c = 0; d->k && c < d->cores; c++) kir_free(d->k[c]);
  free(d->k);
  ot_graph_free(d->cg);
  free(d->cmap);
  free(d->omap);
  free(d->hbm);
  free(d->optim);
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
    lower_place_opts po = {suffix, c ? shared : NULL};
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
  if (!bufs || !elems) { free(bufs); free(elems); return ot_error_set(err, OT_ENOMEM, "out of memory"); }
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
    elems[n++] = (uint64_t)ot_gtensor_elems(&cg->t[r]);
  }
  ot_status st = OT_OK;
  if (n && d->cores > 1) {
    for (unsigned c = 0; c < d->cores; c++) kir_set_origin(d->k[c], "allreduce");
    uint32_t base = kir_free_sem_base(d->k[0]);
    if (base + 2 > d->chip->seq.semaphores)
      st = ot_error_set(err, OT_EUNSUPPORTED, "the all-reduce needs 2 semaphores beyond the compiler's %u; chip has %u", base,
                        d->chip->seq.semaphores);
    lc_sems sems = {base, base + 1, 0};
    if (!st) lower_allreduce(d->k, d->cores, n, bufs, elems, 1.0f / (float)d->cores, &sems);
    for (unsigned c = 0; c < d->cores && !st; c++)
      if (kir_status(d->k[c])) st = ot_error_set(err, kir_status(d->k[c]), "core %u: %s", c, kir_error(d->k[c])->msg);
  }
  free(bufs);
  free(elems);
  return st;
}

#define OWN_NONE (-1)      /* not an optimizer node */
#define OWN_ADAMW_CORES (-2) /* every core that runs AdamW nodes (the global norm) */

/* The core of every optimizer node.  After the all-reduce every core holds the whole gradients,
** so the AdamW nodes are shared out (largest weight first, each to the core with the fewest
** elements so far) and every core that updates weights computes the global norm itself from its
** own copy (bit-identical on every core): no second exchange.  An optimizer node of any other
** kind, or none of kind AdamW, puts the whole optimizer on core 0. */
static int *optim_owners(const dp_ctx *d) {
  const ot_graph *g = d->g;
  int *own = malloc((g->n_node ? g->n_node : 1) * sizeof *own);
  uint64_t *load = calloc(d->cores, sizeof *load);
  if (!own || !load) { free(own); free(load); return NULL; }
  bool shard = d->cores > 1, adamw = false;
  for (uint32_t i = 0; i < g->n_node; i++) {
    own[i] = d->optim[i] ? 0 : OWN_NONE;
    if (d->optim[i] && g->node[i].op != OT_GOP_ADAMW && g->node[i].op != OT_GOP_GLOBAL_NORM) shard = false;
    adamw |= d->optim[i] && g->node[i].op == OT_GOP_ADAMW;
  }
  shard = shard && adamw;
  for (;;) { /* the largest AdamW not yet given out */
    int64_t best = -1, size = -1;
    for (uint32_t i = 0; shard && i < g->n_node; i++)
      if (own[i] == 0 && g->node[i].op == OT_GOP_ADAMW && ot_gtensor_elems(&g->t[g->node[i].in[0]]) > size) {
        best = i;
        size = ot_gtensor_elems(&g->t[g->node[i].in[0]]);
      }
    if (best < 0) break;
    unsigned c = 0;
    for (unsigned k = 1; k < d->cores; k++)
      if (load[k] < load[c]) c = k;
    load[c] += (uint64_t)size;
    own[best] = -3 - (int)c; /* given out; -3 - core until the loop ends */
  }
  for (uint32_t i = 0; shard && i < g->n_node; i++) {
    if (own[i] <= -3) own[i] = -3 - own[i];
    else if (g->node[i].op == OT_GOP_GLOBAL_NORM && own[i] == 0) own[i] = OWN_ADAMW_CORES;
  }
  free(load);
  return own;
}

/* Core c's part of the optimizer: its nodes and, if it has any, the global norm. */
static bool optim_mask_for(const dp_ctx *d, const int *own, unsigned c, bool *mask) {
  bool any = false;
  for (uint32_t i = 0; i < d->g->n_node; i++) {
    mask[i] = own[i] == (int)c;
    any |= mask[i];
  }
  for (uint32_t i = 0; any && i < d->g->n_node; i++)
    if (own[i] == OWN_ADAMW_CORES) mask[i] = true;
  return any;
}

/* Lower core c's optimizer graph og: the gradients bound to core c's all-reduced copies, weights,
** moments and hyper-parameters to the tensor the first core to use them placed (shared[], plain
** names); its values ("grad_norm") are plain on core 0 and "@c<c>" elsewhere. */
static ot_status lower_optimizer_on(dp_ctx *d, unsigned c, const ot_graph *og, kir_hbm *shared, ot_error *err) {
  size_t nt = d->cg->n_t ? d->cg->n_t : 1, on = og->n_t ? og->n_t : 1;
  kir_hbm *pre = malloc(on * sizeof *pre), *mine = malloc(on * sizeof *mine);
  if (!pre || !mine) { free(pre); free(mine); return ot_error_set(err, OT_ENOMEM, "out of memory"); }
  for (uint32_t t = 0; t < og->n_t; t++) pre[t].index = -1;
  for (uint32_t t = 0; t < d->g->n_t; t++) {
    ot_tid o = d->omap[t], ct = d->cmap[t];
    if (o == OT_TID_NONE || og->t[o].role == OT_GROLE_VALUE) continue;
    if (ct != OT_TID_NONE) pre[o] = d->hbm[(size_t)c * nt + ct]; /* core c's tensor (weights: the shared one) */
    else pre[o] = shared[t];
  }
  char suffix[16];
  snprintf(suffix, sizeof suffix, "@c%u", c);
  lower_place_opts po = {c ? suffix : NULL, pre};
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

/* The optimizer after the all-reduce, shared out among the cores (optim_owners). */
static ot_status lower_optimizer(dp_ctx *d, ot_error *err) {
  int *own = optim_owners(d);
  bool *mask = malloc((d->g->n_node ? d->g->n_node : 1) * sizeof *mask);
  kir_hbm *shared = malloc((d->g->n_t ? d->g->n_t : 1) * sizeof *shared);
  ot_status st = own && mask && shared ? OT_OK : ot_error_set(err, OT_ENOMEM, "out of memory");
  for (uint32_t t = 0; !st && t < d->g->n_t; t++) shared[t].index = -1;
  for (unsigned c = 0; c < d->cores && !st; c++) {
    if (!optim_mask_for(d, own, c, mask)) continue;
    ot_graph *og = optim_graph(d->g, mask, d->omap, err);
    if (!og) st = err && err->code ? err->code : OT_ENOMEM;
    else st = lower_optimizer_on(d, c, og, shared, err);
    ot_graph_free(og);
  }
  free(own);
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
  if (!st && !(d.hbm = malloc((size_t)cores * (d.cg->n_t ? d.cg->n_t : 1) * sizeof *d.hbm)))
    st = ot_error_set(err, OT_ENOMEM, "out of memory");
  if (!st) st = lower_cores(&d, err);
  if (!st) st = allreduce_grads(&d, err);
  if (!st && any_optim) st = lower_optimizer(&d, err);
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
