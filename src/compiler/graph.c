/* The graph IR: tensors, nodes, the op table and the C builder (include/opentrn/graph.h).
**
** Builder calls append only, so nodes stay in topological order.  Every failure is kept in
** g->err (the first one: later calls return OT_TID_NONE at once), so a long chain of builder
** calls needs one check at the end. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"

const ot_gop_info ot_gop_table[OT_GOP_COUNT] = {
#define GOP(id, name, nin, nout, attrs, doc) {name, nin, nout, attrs, doc},
#include "compiler/graph_ops.def"
#undef GOP
};

bool ot_gop_parse(const char *name, ot_gop *out) {
  if (!name) return false;
  for (int k = 0; k < OT_GOP_COUNT; k++)
    if (!strcmp(name, ot_gop_table[k].name)) {
      if (out) *out = (ot_gop)k;
      return true;
    }
  return false;
}

/* ---- attribute specs --------------------------------------------------------------------- */

static const char *skip_space(const char *p) {
  while (*p == ' ') p++;
  return p;
}

/* One "kind name=default" item of a spec starting at p; returns the end (';' or NUL). */
static const char *attr_parse_one(const char *p, ot_gattr *a) {
  memset(a, 0, sizeof *a);
  p = skip_space(p);
  a->kind = *p ? *p++ : '?';
  p = skip_space(p);
  size_t n = 0;
  while (*p && *p != '=' && *p != ';' && *p != ' ') {
    if (n + 1 < sizeof a->name) a->name[n++] = *p;
    p++;
  }
  a->name[n] = '\0';
  p = skip_space(p);
  if (*p == '=') {
    p = skip_space(p + 1);
    char val[32];
    size_t m = 0;
    while (*p && *p != ';' && *p != ' ') {
      if (m + 1 < sizeof val) val[m++] = *p;
      p++;
    }
    val[m] = '\0';
    a->has_default = true;
    if (a->kind == 's') {
      ot_dtype dt = OT_DT_FP32;
      ot_dtype_parse(val, &dt);
      a->def = (double)dt;
    } else {
      a->def = strtod(val, NULL);
    }
  }
  while (*p && *p != ';') p++;
  return p;
}

unsigned ot_gop_attrs(ot_gop op, ot_gattr *out) {
  if ((unsigned)op >= OT_GOP_COUNT || !out) return 0;
  const char *p = ot_gop_table[op].attrs;
  unsigned n = 0, nf = 0, ni = 0;
  while (p && *skip_space(p) && n < OT_GOP_MAX_ATTRS) {
    ot_gattr *a = &out[n++];
    p = attr_parse_one(p, a);
    if (a->kind == 'f') a->slot = nf++;
    else if (a->kind == 'i' || a->kind == 'b' || a->kind == 's') a->slot = ni++;
    if (*p == ';') p++;
  }
  return n;
}

bool ot_gop_attr_find(ot_gop op, const char *name, ot_gattr *out) {
  ot_gattr a[OT_GOP_MAX_ATTRS];
  unsigned n = ot_gop_attrs(op, a);
  for (unsigned k = 0; name && k < n; k++)
    if (!strcmp(a[k].name, name)) {
      if (out) *out = a[k];
      return true;
    }
  return false;
}

void ot_gnode_init(ot_gnode *p, ot_gop op) {
  memset(p, 0, sizeof *p);
  p->op = (uint16_t)op;
  p->forward = -1;
  ot_gattr a[OT_GOP_MAX_ATTRS];
  unsigned n = ot_gop_attrs(op, a);
  for (unsigned k = 0; k < n; k++) {
    if (!a[k].has_default) continue;
    if (a[k].kind == 'f' && a[k].slot < OT_GNODE_MAX_F) p->f[a[k].slot] = (float)a[k].def;
    else if (a[k].kind != 'l' && a[k].kind != 'f' && a[k].slot < OT_GNODE_MAX_I) p->i[a[k].slot] = (int64_t)a[k].def;
  }
}

/* ---- graphs and tensors ------------------------------------------------------------------ */

ot_graph *ot_graph_new(void) {
  ot_graph *g = calloc(1, sizeof *g);
  if (g) ot_error_clear(&g->err);
  return g;
}

void ot_graph_free(ot_graph *g) {
  if (!g) return;
  for (uint32_t k = 0; k < g->n_t; k++) {
    free(g->t[k].name);
    free(g->t[k].data);
  }
  for (uint32_t k = 0; k < g->n_node; k++) {
    free(g->node[k].name);
    free(g->node[k].in);
    free(g->node[k].out);
  }
  free(g->t);
  free(g->node);
  free(g);
}

ot_status ot_graph_status(const ot_graph *g) { return g ? g->err.code : OT_EINVAL; }

const char *ot_graph_error(const ot_graph *g) {
  if (!g) return "no graph (NULL)";
  return g->err.code ? g->err.msg : "";
}

const char *ot_graph_tname(const ot_graph *g, ot_tid t) {
  return g && ot_graph_valid(g, t) && g->t[t].name ? g->t[t].name : "?";
}

ot_tid ot_graph_find(const ot_graph *g, const char *tensor_name) {
  if (!g || !tensor_name) return OT_TID_NONE;
  for (uint32_t k = 0; k < g->n_t; k++)
    if (g->t[k].name && !strcmp(g->t[k].name, tensor_name)) return (ot_tid)k;
  return OT_TID_NONE;
}

static bool node_name_taken(const ot_graph *g, const char *name) {
  for (uint32_t k = 0; k < g->n_node; k++)
    if (!strcmp(g->node[k].name, name)) return true;
  return false;
}

const char *ot_gshape_str(const int64_t *shape, unsigned ndim, char *buf, size_t size) {
  if (!buf || size < 2) return "";
  size_t n = 0;
  buf[n++] = '[';
  buf[n] = '\0';
  for (unsigned d = 0; d < ndim && n < size; d++) {
    int w = snprintf(buf + n, size - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (w < 0) break;
    n += (size_t)w;
  }
  if (n + 1 < size) { buf[n++] = ']'; buf[n] = '\0'; }
  return buf;
}

const char *ot_gtensor_describe(const ot_gtensor *t, char *buf, size_t size) {
  if (!buf || size == 0) return "";
  if (!t) { snprintf(buf, size, "(none)"); return buf; }
  char s[160];
  snprintf(buf, size, "%s %s", ot_gshape_str(t->shape, t->ndim, s, sizeof s), ot_dtype_name((ot_dtype)t->dtype));
  return buf;
}

/* A name must be printable text, so messages and files can quote it. */
static const char *name_problem(const char *name) {
  if (!name) return "a name is required (NULL given)";
  size_t n = strlen(name);
  if (n == 0) return "the name is empty";
  if (n > 200) return "the name is longer than 200 characters";
  for (size_t k = 0; k < n; k++)
    if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f) return "the name contains a control character";
  return NULL;
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return true;
  if (need > (1u << 30)) return false;
  uint32_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, (size_t)c * elem);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

static ot_tid fail(ot_graph *g, ot_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static ot_tid fail(ot_graph *g, ot_status code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(&g->err, code, "%s", msg);
  return OT_TID_NONE;
}

/* Append a tensor (shape already validated); takes ownership of name. */
static ot_tid tensor_push(ot_graph *g, char *name, const ot_gtensor *proto) {
  if (!grow((void **)&g->t, &g->cap_t, g->n_t + 1, sizeof *g->t)) {
    free(name);
    return fail(g, OT_ENOMEM, "out of memory adding tensor %u", g->n_t);
  }
  ot_gtensor *t = &g->t[g->n_t];
  *t = *proto;
  t->name = name;
  t->grad = OT_TID_NONE;
  t->is_output = false;
  return (ot_tid)g->n_t++;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Checks shared by leaves: name, dtype, shape and element count. */
static bool leaf_check(ot_graph *g, const char *what, const char *name, ot_dtype dt, unsigned ndim,
                       const int64_t *shape) {
  const char *why = name_problem(name);
  if (why) { fail(g, OT_EINVAL, "%s: %s (inputs, weights and constants are bound by name)", what, why); return false; }
  if (ot_graph_find(g, name) != OT_TID_NONE) {
    fail(g, OT_EINVAL, "%s '%s': duplicate name: a tensor '%s' already exists", what, name, name);
    return false;
  }
  if ((unsigned)dt >= OT_DT_COUNT) {
    fail(g, OT_EINVAL, "%s '%s': dtype %d is not a data type (expected fp32, bf16, int32, ...)", what, name, (int)dt);
    return false;
  }
  if (ndim > OT_GRAPH_MAX_DIMS) {
    fail(g, OT_EINVAL, "%s '%s': %u dims, at most %d are supported", what, name, ndim, OT_GRAPH_MAX_DIMS);
    return false;
  }
  if (ndim && !shape) { fail(g, OT_EINVAL, "%s '%s': shape is NULL with %u dims", what, name, ndim); return false; }
  int64_t elems = 1;
  for (unsigned d = 0; d < ndim; d++) {
    if (shape[d] < 1) {
      fail(g, OT_EINVAL, "%s '%s': dim %u is %lld, expected >= 1", what, name, d, (long long)shape[d]);
      return false;
    }
    if (shape[d] > OT_GTENSOR_MAX_ELEMS / elems) {
      fail(g, OT_ERANGE, "%s '%s': more than 2^48 elements (dim %u is %lld)", what, name, d, (long long)shape[d]);
      return false;
    }
    elems *= shape[d];
  }
  return true;
}

static ot_tid leaf_add(ot_graph *g, ot_grole role, const char *name, ot_dtype dt, unsigned ndim,
                       const int64_t *shape, const void *data) {
  static const char *const what[] = {"input", "weight", "const", "value"};
  if (!g || g->err.code) return OT_TID_NONE;
  if (!leaf_check(g, what[role], name, dt, ndim, shape)) return OT_TID_NONE;
  ot_gtensor t;
  memset(&t, 0, sizeof t);
  t.dtype = (uint8_t)dt;
  t.role = (uint8_t)role;
  t.ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim; d++) t.shape[d] = shape[d];
  t.producer = -1;
  t.producer_slot = 0;
  if (role == OT_GROLE_CONST) {
    if (!data) return fail(g, OT_EINVAL, "const '%s': data is NULL", name);
    size_t bytes = (size_t)ot_gtensor_elems(&t) * ot_dtype_size(dt);
    t.data = malloc(bytes ? bytes : 1);
    if (!t.data) return fail(g, OT_ENOMEM, "const '%s': out of memory for %zu bytes", name, bytes);
    memcpy(t.data, data, bytes);
  }
  char *nm = dup_str(name);
  if (!nm) {
    free(t.data);
    return fail(g, OT_ENOMEM, "%s '%s': out of memory", what[role], name);
  }
  ot_tid id = tensor_push(g, nm, &t);
  if (id == OT_TID_NONE) free(t.data);
  return id;
}

ot_tid ot_graph_input(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  return leaf_add(g, OT_GROLE_INPUT, name, dt, ndim, shape, NULL);
}

ot_tid ot_graph_weight(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape) {
  return leaf_add(g, OT_GROLE_WEIGHT, name, dt, ndim, shape, NULL);
}

ot_tid ot_graph_const(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape,
                      const void *data) {
  return leaf_add(g, OT_GROLE_CONST, name, dt, ndim, shape, data);
}

bool ot_graph_rename(ot_graph *g, ot_tid t, const char *name) {
  if (!g || g->err.code) return false;
  if (!ot_graph_valid(g, t)) {
    fail(g, OT_EINVAL, "rename to '%s': tensor id %d is not a tensor of this graph (it has %u)",
         name ? name : "(null)", (int)t, g->n_t);
    return false;
  }
  const char *why = name_problem(name);
  if (why) { fail(g, OT_EINVAL, "rename of tensor '%s': %s", g->t[t].name, why); return false; }
  if (!strcmp(g->t[t].name, name)) return true;
  if (ot_graph_find(g, name) != OT_TID_NONE) {
    fail(g, OT_EINVAL, "rename of tensor '%s' to '%s': duplicate name: a tensor '%s' already exists",
         g->t[t].name, name, name);
    return false;
  }
  char *nm = dup_str(name);
  if (!nm) { fail(g, OT_ENOMEM, "rename of tensor '%s': out of memory", g->t[t].name); return false; }
  free(g->t[t].name);
  g->t[t].name = nm;
  return true;
}

void ot_graph_output(ot_graph *g, ot_tid t, const char *name) {
  if (!g || g->err.code) return;
  if (!ot_graph_valid(g, t)) {
    fail(g, OT_EINVAL, "output '%s': tensor id %d is not a tensor of this graph (it has %u)",
         name ? name : "(unnamed)", (int)t, g->n_t);
    return;
  }
  if (name && g->t[t].is_output && strcmp(g->t[t].name, name)) {
    fail(g, OT_EINVAL, "output '%s': tensor '%s' is already an output under that name", name, g->t[t].name);
    return;
  }
  if (name && !ot_graph_rename(g, t, name)) return;
  g->t[t].is_output = true;
}

/* ---- nodes ------------------------------------------------------------------------------- */

/* "<op>_<n>": n counts earlier nodes of the op, bumped past names already taken. */
static void default_name(const ot_graph *g, ot_gop op, char *buf, size_t size) {
  unsigned n = 0;
  for (uint32_t k = 0; k < g->n_node; k++) n += g->node[k].op == op;
  for (;; n++) {
    snprintf(buf, size, "%s_%u", ot_gop_table[op].name, n);
    if (!node_name_taken(g, buf) && ot_graph_find(g, buf) == OT_TID_NONE) return;
  }
}

static void output_name(const char *node, unsigned k, unsigned n_out, char *buf, size_t size) {
  if (n_out == 1) snprintf(buf, size, "%s", node);
  else snprintf(buf, size, "%s.%u", node, k);
}

/* Arity, inputs and list length of a prototype; reports with the node's name. */
static bool node_check_inputs(ot_graph *g, const ot_gnode *p, const char *name) {
  const ot_gop_info *info = &ot_gop_table[p->op];
  if (info->n_in >= 0 && p->n_in != (uint32_t)info->n_in) {
    fail(g, OT_EINVAL, "node '%s' (%s): %u inputs given, expected %d", name, info->name, p->n_in, info->n_in);
    return false;
  }
  if (info->n_in < 0 && (p->n_in < 1 || p->n_in > 1024)) {
    fail(g, OT_EINVAL, "node '%s' (%s): %u inputs given, expected 1 to 1024", name, info->name, p->n_in);
    return false;
  }
  if (p->n_in && !p->in) {
    fail(g, OT_EINVAL, "node '%s' (%s): the input list is NULL", name, info->name);
    return false;
  }
  if (p->n_list > OT_GNODE_MAX_LIST) {
    fail(g, OT_EINVAL, "node '%s' (%s): list attribute of %u entries, at most %d", name, info->name, p->n_list,
         OT_GNODE_MAX_LIST);
    return false;
  }
  for (uint32_t k = 0; k < p->n_in; k++) {
    ot_tid t = p->in[k];
    const char *in_name = ot_gop_input_name((ot_gop)p->op, k);
    if (t == OT_TID_NONE && ot_gop_input_optional((ot_gop)p->op, k)) continue;
    if (!ot_graph_valid(g, t)) {
      fail(g, OT_EINVAL, "node '%s' (%s): input %u (%s) is tensor id %d, not a tensor of this graph (it has %u)",
           name, info->name, k, in_name ? in_name : "input", (int)t, g->n_t);
      return false;
    }
  }
  return true;
}

/* Validate the name (or make one) into buf. */
static bool node_pick_name(ot_graph *g, const ot_gnode *p, char *buf, size_t size) {
  const char *op_name = ot_gop_table[p->op].name;
  if (!p->name) { default_name(g, (ot_gop)p->op, buf, size); return true; }
  const char *why = name_problem(p->name);
  if (why) { fail(g, OT_EINVAL, "node of op %s: %s", op_name, why); return false; }
  if (node_name_taken(g, p->name)) {
    fail(g, OT_EINVAL, "node '%s' (%s): duplicate name: a node '%s' already exists", p->name, op_name, p->name);
    return false;
  }
  snprintf(buf, size, "%s", p->name);
  return true;
}

/* Output k's name: given, or the default "<node>" / "<node>.<k>". */
static void pick_output_name(const ot_gnode *n, const char *const *names, unsigned k, char *buf, size_t size) {
  if (names && names[k]) snprintf(buf, size, "%s", names[k]);
  else output_name(n->name, k, n->n_out, buf, size);
}

/* Outputs: element counts in range and names free. */
static bool node_check_outputs(ot_graph *g, const ot_gnode *n, const ot_gtensor *outs, const char *const *names) {
  const char *op_name = ot_gop_table[n->op].name;
  for (uint32_t k = 0; k < n->n_out; k++) {
    int64_t elems = 1;
    for (unsigned d = 0; d < outs[k].ndim; d++) {
      if (outs[k].shape[d] < 1 || outs[k].shape[d] > OT_GTENSOR_MAX_ELEMS / elems) {
        fail(g, OT_ERANGE, "node '%s' (%s): output %u would have more than 2^48 elements or an empty dim", n->name,
             op_name, k);
        return false;
      }
      elems *= outs[k].shape[d];
    }
    char nm[256];
    pick_output_name(n, names, k, nm, sizeof nm);
    const char *why = names && names[k] ? name_problem(names[k]) : NULL;
    if (why) {
      fail(g, OT_EINVAL, "node '%s' (%s): output %u: %s", n->name, op_name, k, why);
      return false;
    }
    for (uint32_t j = 0; j < k; j++) {
      char other[256];
      pick_output_name(n, names, j, other, sizeof other);
      if (!strcmp(nm, other)) {
        fail(g, OT_EINVAL, "node '%s' (%s): outputs %u and %u are both named '%s'", n->name, op_name, j, k, nm);
        return false;
      }
    }
    if (ot_graph_find(g, nm) != OT_TID_NONE) {
      fail(g, OT_EINVAL, "node '%s' (%s): its output would be named '%s', but a tensor '%s' already exists", n->name,
           op_name, nm, nm);
      return false;
    }
  }
  return true;
}

int32_t ot_graph_add_node(ot_graph *g, const ot_gnode *proto) { return ot_graph_add_node_named(g, proto, NULL, 0); }

int32_t ot_graph_add_node_named(ot_graph *g, const ot_gnode *proto, const char *const *out_names, unsigned n_names) {
  if (!g || g->err.code) return -1;
  if (!proto) { fail(g, OT_EINVAL, "ot_graph_add_node: NULL node"); return -1; }
  if (proto->op >= OT_GOP_COUNT) {
    fail(g, OT_EINVAL, "node '%s': op %u is not an op (there are %d)", proto->name ? proto->name : "?",
         (unsigned)proto->op, OT_GOP_COUNT);
    return -1;
  }
  char name[256];
  if (!node_pick_name(g, proto, name, sizeof name) || !node_check_inputs(g, proto, name)) return -1;
  ot_gnode n = *proto;
  n.name = name;
  ot_gtensor outs[OT_GNODE_MAX_LIST];
  memset(outs, 0, sizeof outs);
  if (!ot_graph_infer(g, &n, outs)) return -1;
  if (out_names && n_names != n.n_out) {
    fail(g, OT_EINVAL, "node '%s' (%s): %u output names given for its %u outputs", name, ot_gop_table[n.op].name,
         n_names, n.n_out);
    return -1;
  }
  if (!node_check_outputs(g, &n, outs, out_names)) return -1;
  if (!grow((void **)&g->node, &g->cap_node, g->n_node + 1, sizeof *g->node) ||
      !grow((void **)&g->t, &g->cap_t, g->n_t + n.n_out, sizeof *g->t)) {
    fail(g, OT_ENOMEM, "node '%s': out of memory", name);
    return -1;
  }
  n.name = dup_str(name);
  n.in = malloc((n.n_in ? n.n_in : 1) * sizeof *n.in);
  n.out = malloc((n.n_out ? n.n_out : 1) * sizeof *n.out);
  if (!n.name || !n.in || !n.out) {
    free(n.name); free(n.in); free(n.out);
    fail(g, OT_ENOMEM, "node '%s': out of memory", name);
    return -1;
  }
  if (n.n_in) memcpy(n.in, proto->in, n.n_in * sizeof *n.in);
  int32_t idx = (int32_t)g->n_node;
  for (uint32_t k = 0; k < n.n_out; k++) {
    char nm[256];
    pick_output_name(&n, out_names, k, nm, sizeof nm);
    outs[k].role = OT_GROLE_VALUE;
    outs[k].producer = idx;
    outs[k].producer_slot = (int32_t)k;
    outs[k].data = NULL;
    char *copy = dup_str(nm);
    /* Room was reserved above, so tensor_push cannot fail for memory of the array. */
    n.out[k] = copy ? tensor_push(g, copy, &outs[k]) : OT_TID_NONE;
    if (n.out[k] == OT_TID_NONE) {
      g->n_t -= k;  /* drop the outputs already pushed: the node is not added */
      for (uint32_t j = 0; j < k; j++) free(g->t[g->n_t + j].name);
      free(n.name); free(n.in); free(n.out);
      if (!g->err.code) fail(g, OT_ENOMEM, "node '%s': out of memory", name);
      return -1;
    }
  }
  g->node[g->n_node++] = n;
  return idx;
}

/* ---- builders: fill a prototype, add it, return its (first) output ---------------------- */

static ot_tid add_proto(ot_graph *g, ot_gnode *p, const char *name, const ot_tid *in, uint32_t n_in) {
  if (!g || g->err.code) return OT_TID_NONE;
  p->name = (char *)(uintptr_t)name;  /* read only: add_node copies it */
  p->in = (ot_tid *)(uintptr_t)in;
  p->n_in = n_in;
  int32_t idx = ot_graph_add_node(g, p);
  return idx < 0 ? OT_TID_NONE : g->node[idx].out[0];
}

static ot_tid add_unary(ot_graph *g, ot_gop op, const char *name, ot_tid x) {
  ot_gnode p;
  ot_gnode_init(&p, op);
  return add_proto(g, &p, name, &x, 1);
}

static ot_tid add_binary(ot_graph *g, ot_gop op, const char *name, ot_tid a, ot_tid b) {
  ot_gnode p;
  ot_gnode_init(&p, op);
  ot_tid in[2] = {a, b};
  return add_proto(g, &p, name, in, 2);
}

/* Copy a caller's list attribute into a prototype, rejecting what does not fit. */
static bool set_list(ot_graph *g, ot_gnode *p, const char *name, const char *what, unsigned n, const int64_t *v) {
  if (!g || g->err.code) return false;
  if (n > OT_GNODE_MAX_LIST || (n && !v)) {
    fail(g, OT_EINVAL, "node '%s' (%s): %s has %u entries%s (at most %d)", name ? name : "?",
         ot_gop_table[p->op].name, what, n, n && !v ? " but is NULL" : "", OT_GNODE_MAX_LIST);
    return false;
  }
  for (unsigned k = 0; k < n; k++) p->list[k] = v[k];
  p->n_list = n;
  return true;
}

ot_tid ot_graph_matmul(ot_graph *g, const char *name, ot_tid a, ot_tid b, bool transpose_b) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_MATMUL);
  p.i[0] = transpose_b;
  ot_tid in[2] = {a, b};
  return add_proto(g, &p, name, in, 2);
}

ot_tid ot_graph_linear(ot_graph *g, const char *name, ot_tid x, ot_tid w, ot_tid bias, bool w_out_in) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_LINEAR);
  p.i[0] = w_out_in;
  ot_tid in[3] = {x, w, bias};
  return add_proto(g, &p, name, in, 3);
}

ot_tid ot_graph_add(ot_graph *g, const char *name, ot_tid a, ot_tid b) { return add_binary(g, OT_GOP_ADD, name, a, b); }
ot_tid ot_graph_sub(ot_graph *g, const char *name, ot_tid a, ot_tid b) { return add_binary(g, OT_GOP_SUB, name, a, b); }
ot_tid ot_graph_mul(ot_graph *g, const char *name, ot_tid a, ot_tid b) { return add_binary(g, OT_GOP_MUL, name, a, b); }

ot_tid ot_graph_scale(ot_graph *g, const char *name, ot_tid x, float s) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SCALE);
  p.f[0] = s;
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_softmax(ot_graph *g, const char *name, ot_tid x) { return add_unary(g, OT_GOP_SOFTMAX, name, x); }

ot_tid ot_graph_layernorm(ot_graph *g, const char *name, ot_tid x, ot_tid gamma, ot_tid beta, float eps) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_LAYERNORM);
  p.f[0] = eps;
  ot_tid in[3] = {x, gamma, beta};
  return add_proto(g, &p, name, in, 3);
}

ot_tid ot_graph_rmsnorm(ot_graph *g, const char *name, ot_tid x, ot_tid gamma, float eps) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_RMSNORM);
  p.f[0] = eps;
  ot_tid in[2] = {x, gamma};
  return add_proto(g, &p, name, in, 2);
}

ot_tid ot_graph_gelu(ot_graph *g, const char *name, ot_tid x, bool tanh_approx) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_GELU);
  p.i[0] = tanh_approx;
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_silu(ot_graph *g, const char *name, ot_tid x) { return add_unary(g, OT_GOP_SILU, name, x); }

ot_tid ot_graph_swiglu(ot_graph *g, const char *name, ot_tid gate, ot_tid up) {
  return add_binary(g, OT_GOP_SWIGLU, name, gate, up);
}

ot_tid ot_graph_embedding(ot_graph *g, const char *name, ot_tid ids, ot_tid table) {
  return add_binary(g, OT_GOP_EMBEDDING, name, ids, table);
}

ot_tid ot_graph_rope_scaled(ot_graph *g, const char *name, ot_tid x, float theta, int64_t offset,
                            const ot_rope_llama3 *scaling) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_ROPE);
  p.f[0] = theta;
  p.i[0] = offset;
  if (scaling) {
    p.f[1] = scaling->factor;
    p.f[2] = scaling->low_freq_factor;
    p.f[3] = scaling->high_freq_factor;
    p.i[2] = scaling->original_max_pos;
  }
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_rope(ot_graph *g, const char *name, ot_tid x, float theta, int64_t offset) {
  return ot_graph_rope_scaled(g, name, x, theta, offset, NULL);
}

/* Hugging Face _compute_llama3_parameters for one frequency, in double. */
double ot_rope_scale_freq(const ot_gnode *n, double f) {
  if (n->op != OT_GOP_ROPE || n->i[2] <= 0) return f;
  double orig = (double)n->i[2], factor = n->f[1], lo = n->f[2], hi = n->f[3];
  double wavelen = 2.0 * 3.14159265358979323846 / f;
  if (wavelen > orig / lo) return f / factor;   /* low frequencies: interpolated positions */
  if (wavelen < orig / hi) return f;            /* high frequencies: unchanged */
  double a = (orig / wavelen - lo) / (hi - lo); /* between: a smooth blend */
  return (1.0 - a) * f / factor + a * f;
}

ot_tid ot_graph_attention(ot_graph *g, const char *name, ot_tid q, ot_tid k, ot_tid v, bool causal, float scale) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_ATTENTION);
  p.f[0] = scale;
  p.i[0] = causal;
  ot_tid in[3] = {q, k, v};
  return add_proto(g, &p, name, in, 3);
}

ot_tid ot_graph_transpose(ot_graph *g, const char *name, ot_tid x, unsigned ndim, const int64_t *perm) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_TRANSPOSE);
  if (!set_list(g, &p, name, "perm", ndim, perm)) return OT_TID_NONE;
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_reshape(ot_graph *g, const char *name, ot_tid x, unsigned ndim, const int64_t *shape) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_RESHAPE);
  if (!set_list(g, &p, name, "shape", ndim, shape)) return OT_TID_NONE;
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_concat(ot_graph *g, const char *name, unsigned n, const ot_tid *xs, int64_t axis) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_CONCAT);
  p.i[0] = axis;
  return add_proto(g, &p, name, xs, n);
}

ot_tid ot_graph_split(ot_graph *g, const char *name, ot_tid x, int64_t axis, unsigned n, const int64_t *sizes,
                      ot_tid *outs) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SPLIT);
  p.i[0] = axis;
  if (!set_list(g, &p, name, "sizes", n, sizes)) return OT_TID_NONE;
  if (!g || g->err.code) return OT_TID_NONE;
  int32_t idx;
  p.name = (char *)(uintptr_t)name;
  p.in = &x;
  p.n_in = 1;
  idx = ot_graph_add_node(g, &p);
  if (idx < 0) return OT_TID_NONE;
  for (unsigned k = 0; outs && k < g->node[idx].n_out; k++) outs[k] = g->node[idx].out[k];
  return g->node[idx].out[0];
}

ot_tid ot_graph_slice(ot_graph *g, const char *name, ot_tid x, int64_t axis, int64_t start, int64_t end) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_SLICE);
  p.i[0] = axis;
  p.i[1] = start;
  p.i[2] = end;
  return add_proto(g, &p, name, &x, 1);
}

static ot_tid add_reduce(ot_graph *g, ot_gop op, const char *name, ot_tid x, int64_t axis, bool keepdim) {
  ot_gnode p;
  ot_gnode_init(&p, op);
  p.i[0] = axis;
  p.i[1] = keepdim;
  return add_proto(g, &p, name, &x, 1);
}

ot_tid ot_graph_reduce_sum(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim) {
  return add_reduce(g, OT_GOP_REDUCE_SUM, name, x, axis, keepdim);
}
ot_tid ot_graph_reduce_max(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim) {
  return add_reduce(g, OT_GOP_REDUCE_MAX, name, x, axis, keepdim);
}
ot_tid ot_graph_reduce_mean(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim) {
  return add_reduce(g, OT_GOP_REDUCE_MEAN, name, x, axis, keepdim);
}

ot_tid ot_graph_cross_entropy(ot_graph *g, const char *name, ot_tid logits, ot_tid targets) {
  return add_binary(g, OT_GOP_CROSS_ENTROPY, name, logits, targets);
}

ot_tid ot_graph_cast(ot_graph *g, const char *name, ot_tid x, ot_dtype dt) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_CAST);
  p.i[0] = (int64_t)dt;
  return add_proto(g, &p, name, &x, 1);
}
