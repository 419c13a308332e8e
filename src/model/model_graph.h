/* Model graphs: a GPT-2 or Llama configuration as a compiler graph (include/opentrn/graph.h).
**
** Forward of a batch [B, S] of int32 token ids ("ids") to logits [B*S, V] ("logits", an output
** of the forward kind, of the others on request: model_graph_opts.logits_output); with a loss,
** cross-entropy against int32 targets [B*S] ("targets") to "loss" [1]; with backward, every
** weight's gradient "<weight>.grad"; with a training step, the clipping norm ("grad_norm") and
** one AdamW node per weight that updates the weight and its fp32 moments "<weight>.m",
** "<weight>.v" in place, from an fp32 input "hyper" [6] (graph_ops.def ADAMW).  Weights are graph
** weights named exactly like the Hugging Face tensors (ot_model_tensor_specs), all fp32 (master
** weights); the TensorE operand type is the compiler's choice (ot_compile_options.matmul_dtype).
** Node names say where they are ("h.3.attn", "h.3.mlp.c_fc", "model.layers.0.mlp.swiglu"), so
** compiler errors, traces and statistics name the model part.  docs/training.md has the details.
*/
#ifndef OT_MODEL_GRAPH_H
#define OT_MODEL_GRAPH_H

#include <opentrn/graph.h>
#include <opentrn/model.h>

typedef enum {
  MODEL_GRAPH_FORWARD = 0, /* ids -> logits */
  MODEL_GRAPH_LOSS = 1,    /* + targets -> loss */
  MODEL_GRAPH_GRADS = 2,   /* + backward: "<weight>.grad" */
  MODEL_GRAPH_TRAIN = 3    /* + global norm and AdamW in place: one training step */
} model_graph_kind;

typedef struct {
  uint32_t batch, seq;
  model_graph_kind kind;
  float beta1, beta2;      /* AdamW (0.9, 0.95 by default) */
  /* Name the logits a graph output, "logits" (default: the forward kind only).  A training step
  ** reads only the loss; logits that are no output are kept in the 16-bit matmul type, as
  ** autocast's linear returns them (compile.c storage_dtype), which halves the head's largest
  ** HBM traffic.  Tests that compare the logits of a loss or gradient graph ask for them. */
  bool logits_output;
} model_graph_opts;

typedef struct {
  ot_graph *g;
  ot_tid ids, targets, logits, loss, hyper, norm; /* OT_TID_NONE where the kind has none */
  size_t n_weights;
  ot_tid *weights;         /* in ot_model_tensor_specs order */
  ot_model_tensor_spec *specs;
} model_graph;

void model_graph_opts_default(model_graph_opts *o, uint32_t batch, uint32_t seq, model_graph_kind kind);

/* Build the graph of config c.  Errors: a sequence longer than the context, an invalid
** configuration, a builder error naming the node. */
ot_status model_graph_build(const ot_model_config *c, const model_graph_opts *o, model_graph *out, ot_error *err);
void model_graph_free(model_graph *mg);

/* The rope op's frequency scaling for config c (Llama 3: rope_scaling "llama3"; none otherwise:
** original_max_pos 0), shared by the training and generation graphs. */
ot_rope_llama3 model_graph_rope_scaling(const ot_model_config *c);

/* Bytes of every tensor of the graph (the compiler gives each its own HBM range; reshapes that
** alias their input are counted too, so this is an upper bound). */
uint64_t model_graph_tensor_bytes(const model_graph *mg);

/* FLOPs of one forward over batch x seq tokens (matmuls and attention, 2 per multiply-add; the
** usual 6N-style count is 3x this for a training step), for MFU figures. */
uint64_t model_graph_forward_flops(const ot_model_config *c, uint32_t batch, uint32_t seq);

#endif
