/* The graph IR inside the compiler (the public builder is include/opentrn/graph.h).
**
** A graph is a list of tensors and a list of nodes in topological order (a node's inputs are
** leaves or outputs of earlier nodes: the builder only appends).  Ops and attributes come from
** graph_ops.def. */
#ifndef OT_COMPILER_GRAPH_H
#define OT_COMPILER_GRAPH_H

#include <opentrn/graph.h>

#include "arch/arch.h"

typedef enum {
#define GOP(id, name, nin, nout, attrs, doc) OT_GOP_##id,
#include "compiler/graph_ops.def"
#undef GOP
  OT_GOP_COUNT
} ot_gop;

/* X(id, name) -- where a tensor comes from. */
#define OT_GROLE_MAP(X) \
  X(INPUT,  "input")    \
  X(WEIGHT, "weight")   \
  X(CONST,  "const")    \
  X(VALUE,  "value")      /* produced by a node */

typedef enum {
#define OT_X(id, name) OT_GROLE_##id,
  OT_GROLE_MAP(OT_X)
#undef OT_X
  OT_GROLE_COUNT
} ot_grole;

#define OT_GNODE_MAX_F 4
#define OT_GNODE_MAX_I 4
#define OT_GNODE_MAX_LIST 8

typedef struct {
  char *name;
  uint8_t dtype;                 /* ot_dtype: FP32, BF16 or INT32 */
  uint8_t role;                  /* ot_grole */
  uint8_t ndim;                  /* 0..4 (0 = scalar, one element) */
  bool is_output;
  int64_t shape[OT_GRAPH_MAX_DIMS];
  int32_t producer;              /* node index, -1 for leaves */
  int32_t producer_slot;         /* which output of the producer */
  void *data;                    /* constants: row-major bytes */
  ot_tid grad;                   /* after autodiff: gradient of a weight, else OT_TID_NONE */
} ot_gtensor;

typedef struct {
  uint16_t op;                   /* ot_gop */
  char *name;
  uint32_t line;                 /* line in the graph file, 0 if built in C */
  ot_tid *in;                    /* n_in inputs; OT_TID_NONE for an absent optional input */
  uint32_t n_in;
  ot_tid *out;
  uint32_t n_out;
  float f[OT_GNODE_MAX_F];       /* float attributes in graph_ops.def order */
  int64_t i[OT_GNODE_MAX_I];     /* int / bool / dtype attributes in graph_ops.def order */
  int64_t list[OT_GNODE_MAX_LIST]; /* the list attribute (perm, shape, sizes) */
  uint32_t n_list;
  int32_t forward;               /* backward nodes: the forward node they differentiate, else -1 */
} ot_gnode;

struct ot_graph {
  ot_gtensor *t;
  uint32_t n_t, cap_t;
  ot_gnode *node;
  uint32_t n_node, cap_node;
  ot_error err;                  /* first builder error (sticky) */
};

/* ---- the op table ------------------------------------------------------------------------- */
typedef struct {
  const char *name;
  int n_in, n_out;               /* -1 = variadic */
  const char *attrs;             /* attribute spec string, see graph_ops.def */
  const char *doc;
} ot_gop_info;

extern const ot_gop_info ot_gop_table[OT_GOP_COUNT];
bool ot_gop_parse(const char *name, ot_gop *out);

static inline const ot_gtensor *ot_graph_tensor(const ot_graph *g, ot_tid t) { return &g->t[t]; }
static inline int64_t ot_gtensor_elems(const ot_gtensor *t) {
  int64_t n = 1;
  for (unsigned d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}
/* "[128, 768] bf16" into buf. */
const char *ot_gtensor_describe(const ot_gtensor *t, char *buf, size_t size);

/* Append a node of op with inputs and attributes already set in *proto (name may be NULL);
** infers and creates its outputs; returns the node index or -1 (error kept in g->err). */
int32_t ot_graph_add_node(ot_graph *g, const ot_gnode *proto);

/* ---- reference evaluation (fp32 on the host; tests and --check-numerics) ------------------ */
/* values[t] holds tensor t as fp32 row-major (int32 tensors: their values as float exactly
** representable, |v| < 2^24), allocated by the caller for leaves; ot_graph_eval_ref allocates
** (malloc) every node output and fills it. */
ot_status ot_graph_eval_ref(const ot_graph *g, float **values, ot_error *err);

#endif
