/* Inside generation (generate.c, generate_graph.c): the step-graph builder. */
#ifndef OT_MODEL_GENERATE_INT_H
#define OT_MODEL_GENERATE_INT_H

#include <opentrn/graph.h>

#include "model/generate.h"

/* A weight in the form the step programs use, made once on the device by the preparation
** program: matmul weights as [in, out] (nn.Linear weights and the head transposed) in the
** matmul operand type, so no step transposes or converts a weight again. */
typedef struct {
  char name[OT_TENSOR_NAME_MAX + 8];   /* "<hf name>.T" (transposed) or "<hf name>.bf16" */
  size_t src;                          /* spec index of the Hugging Face weight */
  bool transpose;
  ot_dtype dtype;
  bool replaces;                       /* the step graphs no longer use the original */
} gen_derived;

/* The derived weights of c (at most n_specs + 1: every matrix and the head); returns the count. */
size_t gen_derived_list(const ot_model_config *c, const ot_model_tensor_spec *specs, size_t n_specs, bool fp32,
                        gen_derived *out);
/* The preparation graph: every Hugging Face weight in, every derived weight out. */
ot_status gen_prep_build(const ot_model_config *c, const ot_model_tensor_spec *specs, size_t n_specs,
                         const gen_derived *dv, size_t n_dv, ot_graph **out, ot_error *err);

typedef struct {
  const ot_model_config *c;
  const gen_derived *dv;             /* derived weights, gen_derived_list */
  size_t n_dv;
  ot_tid *dw;                        /* [n_dv]: filled by the builder */
  const ot_model_tensor_spec *specs; /* the config's weights, ot_model_tensor_specs order */
  size_t n_specs;
  ot_tid *w;                         /* [n_specs]: filled by the builder */
  int64_t B, S, pos, ctx;            /* rows, new tokens per row, their first position, cache rows */
  ot_dtype cache_dt;
  ot_graph *g;
} gg_ctx;

/* The graph of one step (S tokens at pos): input "ids" [B, S] int32, output "logits" [B, V]. */
ot_status gen_graph_build(gg_ctx *x, ot_graph **out, ot_error *err);

#endif
