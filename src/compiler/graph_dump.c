/* The text listing of a graph: leaves first, then one line per node,
**   fc = linear(x, w, -) w_out_in=false -> fc [128, 3072] bf16
** Deterministic (tests compare listings), and independent of the order in which leaves were
** created, so a graph and its JSON round trip print the same. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"

static void dump_float(FILE *out, float v) {
  if (isnan(v)) { fputs("nan", out); return; }
  char buf[48];
  if (fabsf(v) < 1e9f && v == (float)(int64_t)v && !signbit(v)) {  /* integers in full: 10000, not 1e+04 */
    fprintf(out, "%lld", (long long)v);
    return;
  }
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  fputs(buf, out);
}

static void dump_attrs(FILE *out, const ot_gnode *n) {
  ot_gattr a[OT_GOP_MAX_ATTRS];
  unsigned na = ot_gop_attrs((ot_gop)n->op, a);
  for (unsigned k = 0; k < na; k++) {
    fprintf(out, " %s=", a[k].name);
    char s[160];
    switch (a[k].kind) {
    case 'f': dump_float(out, n->f[a[k].slot]); break;
    case 'b': fputs(n->i[a[k].slot] ? "true" : "false", out); break;
    case 's': fputs(ot_dtype_name((ot_dtype)n->i[a[k].slot]), out); break;
    case 'l': fputs(ot_gshape_str(n->list, n->n_list, s, sizeof s), out); break;
    default: fprintf(out, "%lld", (long long)n->i[a[k].slot]); break;
    }
  }
}

static void dump_leaf(FILE *out, const ot_graph *g, const ot_gtensor *t) {
  static const char *const roles[] = {"input", "weight", "const", "value"};
  char d[160];
  fprintf(out, "  %-6s %s: %s", roles[t->role], t->name, ot_gtensor_describe(t, d, sizeof d));
  if (t->is_output) fputs(" (output)", out);
  if (t->grad != OT_TID_NONE) fprintf(out, " grad=%s", ot_graph_tname(g, t->grad));
  fputc('\n', out);
}

static void dump_node(FILE *out, const ot_graph *g, const ot_gnode *n) {
  fprintf(out, "  %s = %s(", n->name, ot_gop_table[n->op].name);
  for (uint32_t k = 0; k < n->n_in; k++)
    fprintf(out, "%s%s", k ? ", " : "", n->in[k] == OT_TID_NONE ? "-" : ot_graph_tname(g, n->in[k]));
  fputc(')', out);
  dump_attrs(out, n);
  if (n->forward >= 0 && (uint32_t)n->forward < g->n_node) fprintf(out, " forward=%s", g->node[n->forward].name);
  fputs(" ->", out);
  for (uint32_t k = 0; k < n->n_out; k++) {
    const ot_gtensor *t = &g->t[n->out[k]];
    char d[160];
    fprintf(out, "%s %s %s", k ? "," : "", t->name, ot_gtensor_describe(t, d, sizeof d));
    if (t->is_output) fputs(" (output)", out);
  }
  fputc('\n', out);
}

void ot_graph_dump(const ot_graph *g, FILE *out) {
  if (!out) return;
  if (!g) { fputs("graph: (none)\n", out); return; }
  uint32_t leaves = 0, outputs = 0;
  for (uint32_t k = 0; k < g->n_t; k++) {
    leaves += g->t[k].role != OT_GROLE_VALUE;
    outputs += g->t[k].is_output;
  }
  fprintf(out, "graph: %u leaves, %u nodes, %u outputs\n", leaves, g->n_node, outputs);
  if (g->err.code) fprintf(out, "error: %s\n", g->err.msg);
  for (uint32_t k = 0; k < g->n_t; k++)
    if (g->t[k].role != OT_GROLE_VALUE) dump_leaf(out, g, &g->t[k]);
  for (uint32_t k = 0; k < g->n_node; k++) dump_node(out, g, &g->node[k]);
  /* Leaves, then node outputs: the order a JSON round trip keeps. */
  fputs("outputs:", out);
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t k = 0; k < g->n_t; k++)
      if (g->t[k].is_output && (g->t[k].role == OT_GROLE_VALUE) == (pass == 1)) fprintf(out, " %s", g->t[k].name);
  fputc('\n', out);
}
