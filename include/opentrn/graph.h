/* OpenTRN graphs: build a transformer computation, check it, differentiate it, compile it.
**
**   ot_graph *g = ot_graph_new();
**   int64_t xs[2] = {128, 768}, ws[2] = {768, 3072};
**   ot_tid x = ot_graph_input(g, "x", OT_DT_BF16, 2, xs);
**   ot_tid w = ot_graph_weight(g, "w", OT_DT_FP32, 2, ws);
**   ot_tid y = ot_graph_gelu(g, "fc.gelu", ot_graph_linear(g, "fc", x, w, OT_TID_NONE, false), true);
**   ot_graph_output(g, y, "y");
**   if (ot_graph_status(g)) puts(ot_graph_error(g));
**
** Builder calls never fail loudly: the first error (a shape mismatch, an unknown tensor) is kept
** in the graph (ot_graph_status, ot_graph_error) and later calls return OT_TID_NONE.  Every node
** has a name (given, or "<op>_<n>"): messages from the compiler and the simulator name it.
** The ops and their exact semantics are listed in docs/graph.md (generated from
** src/compiler/graph_ops.def).
*/
#ifndef OPENTRN_GRAPH_H
#define OPENTRN_GRAPH_H

#include <opentrn/chip.h>
#include <opentrn/num.h>
#include <opentrn/status.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ot_graph ot_graph;
typedef int32_t ot_tid;         /* tensor id within a graph */
#define OT_TID_NONE ((ot_tid)-1)
#define OT_GRAPH_MAX_DIMS 4

ot_graph *ot_graph_new(void);
void ot_graph_free(ot_graph *g);
ot_status ot_graph_status(const ot_graph *g);
const char *ot_graph_error(const ot_graph *g);

/* ---- leaves ---------------------------------------------------------------------------- */
ot_tid ot_graph_input(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape);
ot_tid ot_graph_weight(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape);
/* A constant: data (row-major, dt's element size) is copied. */
ot_tid ot_graph_const(ot_graph *g, const char *name, ot_dtype dt, unsigned ndim, const int64_t *shape,
                      const void *data);
/* Mark t as a graph output, renamed to name (NULL keeps its name). */
void ot_graph_output(ot_graph *g, ot_tid t, const char *name);

/* ---- ops (semantics: docs/graph.md) ---------------------------------------------------- */
ot_tid ot_graph_matmul(ot_graph *g, const char *name, ot_tid a, ot_tid b, bool transpose_b);
ot_tid ot_graph_linear(ot_graph *g, const char *name, ot_tid x, ot_tid w, ot_tid bias, bool w_out_in);
ot_tid ot_graph_add(ot_graph *g, const char *name, ot_tid a, ot_tid b);
ot_tid ot_graph_sub(ot_graph *g, const char *name, ot_tid a, ot_tid b);
ot_tid ot_graph_mul(ot_graph *g, const char *name, ot_tid a, ot_tid b);
ot_tid ot_graph_scale(ot_graph *g, const char *name, ot_tid x, float s);
ot_tid ot_graph_softmax(ot_graph *g, const char *name, ot_tid x);
ot_tid ot_graph_layernorm(ot_graph *g, const char *name, ot_tid x, ot_tid gamma, ot_tid beta, float eps);
ot_tid ot_graph_rmsnorm(ot_graph *g, const char *name, ot_tid x, ot_tid gamma, float eps);
ot_tid ot_graph_gelu(ot_graph *g, const char *name, ot_tid x, bool tanh_approx);
ot_tid ot_graph_silu(ot_graph *g, const char *name, ot_tid x);
ot_tid ot_graph_swiglu(ot_graph *g, const char *name, ot_tid gate, ot_tid up);
ot_tid ot_graph_embedding(ot_graph *g, const char *name, ot_tid ids, ot_tid table);
ot_tid ot_graph_rope(ot_graph *g, const char *name, ot_tid x, float theta, int64_t offset);
/* Llama-3 frequency scaling of rope: Hugging Face rope_scaling {"rope_type": "llama3", "factor",
** "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}. */
typedef struct {
  float factor, low_freq_factor, high_freq_factor;
  int64_t original_max_pos; /* original_max_position_embeddings; 0: no scaling */
} ot_rope_llama3;
/* ot_graph_rope with scaled frequencies (scaling NULL: none, as ot_graph_rope). */
ot_tid ot_graph_rope_scaled(ot_graph *g, const char *name, ot_tid x, float theta, int64_t offset,
                            const ot_rope_llama3 *scaling);
ot_tid ot_graph_attention(ot_graph *g, const char *name, ot_tid q, ot_tid k, ot_tid v, bool causal, float scale);
ot_tid ot_graph_transpose(ot_graph *g, const char *name, ot_tid x, unsigned ndim, const int64_t *perm);
ot_tid ot_graph_reshape(ot_graph *g, const char *name, ot_tid x, unsigned ndim, const int64_t *shape);
ot_tid ot_graph_concat(ot_graph *g, const char *name, unsigned n, const ot_tid *xs, int64_t axis);
/* outs receives n tensor ids; returns the first (OT_TID_NONE on error). */
ot_tid ot_graph_split(ot_graph *g, const char *name, ot_tid x, int64_t axis, unsigned n, const int64_t *sizes,
                      ot_tid *outs);
ot_tid ot_graph_slice(ot_graph *g, const char *name, ot_tid x, int64_t axis, int64_t start, int64_t end);
ot_tid ot_graph_reduce_sum(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim);
ot_tid ot_graph_reduce_max(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim);
ot_tid ot_graph_reduce_mean(ot_graph *g, const char *name, ot_tid x, int64_t axis, bool keepdim);
ot_tid ot_graph_cross_entropy(ot_graph *g, const char *name, ot_tid logits, ot_tid targets);
ot_tid ot_graph_cast(ot_graph *g, const char *name, ot_tid x, ot_dtype dt);

/* ---- optimiser (training steps: graph_ops.def GLOBAL_NORM, ADAMW) ---------------------- */
/* sqrt of the sum of squares of every element of every input: [1] fp32. */
ot_tid ot_graph_global_norm(ot_graph *g, const char *name, unsigned n, const ot_tid *xs);
/* One AdamW step of weight p with gradient g and moments m, v, in place (p, m and v hold the
** new values after a run); norm from ot_graph_global_norm, hyper an fp32 [6] input (see
** graph_ops.def).  Returns the node's first output (the updated p), OT_TID_NONE on error. */
ot_tid ot_graph_adamw(ot_graph *g, const char *name, ot_tid p, ot_tid grad, ot_tid m, ot_tid v, ot_tid norm,
                      ot_tid hyper, float beta1, float beta2);
/* ot_graph_adamw with weight decay on (decay) or off (the attribute "decay": biases and norm
** gains train without it, as in GPT-2 and Llama training). */
ot_tid ot_graph_adamw_decay(ot_graph *g, const char *name, ot_tid p, ot_tid grad, ot_tid m, ot_tid v, ot_tid norm,
                            ot_tid hyper, float beta1, float beta2, bool decay);

/* ---- KV cache (generation: graph_ops.def KV_WRITE) ------------------------------------- */
/* Rows [pos, pos + S) of axis 2 of cache [B, H, Smax, D] replaced by new_rows [B, H, S, D] (the
** cache's dtype), in place: the result shares the cache's memory, so a program that writes it
** leaves the cache tensor updated.  Returns the updated cache. */
ot_tid ot_graph_kv_write(ot_graph *g, const char *name, ot_tid cache, ot_tid new_rows, int64_t pos);

/* ---- passes ---------------------------------------------------------------------------- */
/* Reverse-mode autodiff from a scalar loss ([1] or []): appends backward nodes and, for every
** weight, a gradient tensor named "<weight>.grad" marked as an output (fp32). */
ot_status ot_graph_backward(ot_graph *g, ot_tid loss, ot_error *err);
/* The gradient tensor of weight w after ot_graph_backward (OT_TID_NONE if w gets none). */
ot_tid ot_graph_grad(const ot_graph *g, ot_tid w);

/* ---- files, printing, lookup ----------------------------------------------------------- */
/* The JSON graph file format is docs/graph.md's.  Errors name file:line, node and field. */
ot_status ot_graph_load_json(const char *path, ot_graph **out, ot_error *err);
ot_status ot_graph_parse_json(const char *text, const char *origin, ot_graph **out, ot_error *err);
ot_status ot_graph_save_json(const ot_graph *g, const char *path, ot_error *err);
void ot_graph_dump(const ot_graph *g, FILE *out);
ot_tid ot_graph_find(const ot_graph *g, const char *tensor_name);

/* Everything the compiler cannot lower for this chip, every node in one pass (not only the
** first): each message names the node, its op and shapes, the limit with both numbers and what
** is supported.  OT_OK when all nodes are supported. */
ot_status ot_graph_check(const ot_graph *g, const ot_chip *chip, ot_error *err);

#endif
