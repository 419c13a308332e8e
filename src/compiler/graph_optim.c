/* Builders of the optimiser ops (graph_ops.def GLOBAL_NORM, ADAMW). */
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"

static ot_tid node_add(ot_graph *g, ot_gnode *p, const char *name, const ot_tid *in, unsigned n) {
  if (ot_graph_status(g)) return OT_TID_NONE;
  ot_tid *copy = malloc((n ? n : 1) * sizeof *copy);
  if (!copy) { ot_error_set(&g->err, OT_ENOMEM, "out of memory"); return OT_TID_NONE; }
  memcpy(copy, in, n * sizeof *copy);
  p->name = (char *)name;
  p->in = copy;
  p->n_in = n;
  int32_t idx = ot_graph_add_node(g, p);
  free(copy);
  return idx < 0 ? OT_TID_NONE : g->node[idx].out[0];
}

ot_tid ot_graph_global_norm(ot_graph *g, const char *name, unsigned n, const ot_tid *xs) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_GLOBAL_NORM);
  return node_add(g, &p, name, xs, n);
}

ot_tid ot_graph_adamw_decay(ot_graph *g, const char *name, ot_tid p, ot_tid grad, ot_tid m, ot_tid v, ot_tid norm,
                            ot_tid hyper, float beta1, float beta2, bool decay) {
  ot_gnode proto;
  ot_gnode_init(&proto, OT_GOP_ADAMW);
  proto.f[0] = beta1;
  proto.f[1] = beta2;
  proto.i[0] = decay;
  ot_tid in[6] = {p, grad, m, v, norm, hyper};
  return node_add(g, &proto, name, in, 6);
}

ot_tid ot_graph_adamw(ot_graph *g, const char *name, ot_tid p, ot_tid grad, ot_tid m, ot_tid v, ot_tid norm,
                      ot_tid hyper, float beta1, float beta2) {
  return ot_graph_adamw_decay(g, name, p, grad, m, v, norm, hyper, beta1, beta2, true);
}
