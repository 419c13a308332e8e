/* Builder of the KV-cache write op (graph_ops.def KV_WRITE). */
#include "compiler/graph_int.h"

ot_tid ot_graph_kv_write(ot_graph *g, const char *name, ot_tid cache, ot_tid new_rows, int64_t pos) {
  if (ot_graph_status(g)) return OT_TID_NONE;
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_KV_WRITE);
  ot_tid in[2] = {cache, new_rows};
  p.name = (char *)name;
  p.in = in;
  p.n_in = 2;
  p.i[0] = pos;
  int32_t idx = ot_graph_add_node(g, &p);
  return idx < 0 ? OT_TID_NONE : g->node[idx].out[0];
}
