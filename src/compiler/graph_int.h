/* Helpers of the graph IR shared by its files (builder, inference, JSON, dump, check, docs)
** and usable by passes: the attribute specs of graph_ops.def as data, node initialisation, the
** names of each op's inputs, and shape text for messages. */
#ifndef OT_COMPILER_GRAPH_INT_H
#define OT_COMPILER_GRAPH_INT_H

#include "compiler/graph.h"

/* One attribute of an op, parsed from its spec string ("f eps=1e-5; b causal=1"). */
typedef struct {
  char kind;          /* 'f' float, 'i' int, 'b' bool, 'l' int list, 's' dtype name */
  char name[24];
  unsigned slot;      /* index into node.f (kind f) or node.i (kinds i, b, s); 0 for l */
  bool has_default;   /* false for lists without a default (perm, shape, sizes) */
  double def;         /* the default; for 's' the ot_dtype */
} ot_gattr;

#define OT_GOP_MAX_ATTRS 8
/* The attributes of op in slot order, parsed on each call (no shared state: thread-safe).
** Returns how many were written to out (room for OT_GOP_MAX_ATTRS). */
unsigned ot_gop_attrs(ot_gop op, ot_gattr *out);
/* The attribute called name, or false. */
bool ot_gop_attr_find(ot_gop op, const char *name, ot_gattr *out);

/* Names of op's inputs ("x", "w", "bias"); NULL beyond its count (variadic concat: "x<k>"
** reported as "inputs"). */
const char *ot_gop_input_name(ot_gop op, unsigned k);
/* Whether input k of op may be absent (OT_TID_NONE): linear's bias. */
bool ot_gop_input_optional(ot_gop op, unsigned k);
/* What an input must hold: 'f' float values, 'i' integer ids/targets, 'a' any (data movement). */
char ot_gop_input_kind(ot_gop op, unsigned k);

/* A node prototype for op: no name, no inputs, attributes at their defaults, forward -1. */
void ot_gnode_init(ot_gnode *proto, ot_gop op);

/* "[128, 768]" into buf (size >= 2). */
const char *ot_gshape_str(const int64_t *shape, unsigned ndim, char *buf, size_t size);

/* Most elements a tensor may have: element and byte counts stay far from int64 overflow. */
#define OT_GTENSOR_MAX_ELEMS ((int64_t)1 << 48)

/* Shape and dtype inference of node n (attributes normalised in place: negative axes made
** positive); fills outs[0..n->n_out) (ndim, shape, dtype) and sets n->n_out.  On a mismatch
** reports to g->err naming the node and returns false. */
bool ot_graph_infer(ot_graph *g, ot_gnode *n, ot_gtensor *outs);

/* Name of tensor t for messages ("?" when t is not a tensor of g). */
const char *ot_graph_tname(const ot_graph *g, ot_tid t);
/* Is t a tensor id of g? */
static inline bool ot_graph_valid(const ot_graph *g, ot_tid t) { return t >= 0 && (uint32_t)t < g->n_t; }

/* Frequency f (theta^(-2j/D)) of rope node n after the node's Llama-3 scaling (graph_ops.def
** ROPE; f itself when original_max_pos is 0), in double: the reference evaluator and the
** lowering's cos/sin table share it. */
double ot_rope_scale_freq(const ot_gnode *n, double f);

/* The markdown reference of docs/graph.md (op table and file format). */
void ot_graph_doc_write(FILE *out);

/* The graph as JSON file text (malloc'd, NUL-terminated; *len without the NUL); NULL when out
** of memory. */
char *ot_graph_json_text(const ot_graph *g, size_t *len);

/* ot_graph_add_node with the outputs named out_names[0..n_names) (n_names must be the node's
** output count; a NULL entry keeps the default name) instead of "<node>" / "<node>.<k>". */
int32_t ot_graph_add_node_named(ot_graph *g, const ot_gnode *proto, const char *const *out_names, unsigned n_names);

/* Rename tensor t (names are unique among tensors and nodes); false with g->err set. */
bool ot_graph_rename(ot_graph *g, ot_tid t, const char *name);

#endif
