/* --check-numerics: the compiled training-step graph (forward, loss, gradients) run on the
** simulated chip against the host's fp32 reference evaluator (ot_graph_eval_ref), node by node.
**
**   numerics_opts o = {.config = &cfg, .params = &p, .ids = ids, .targets = tg, .batch = 2,
**                      .seq = 16, .chip = chip, .fuse = true};
**   numerics_report r;
**   if (numerics_check(&o, &r, &err) == OT_OK) { numerics_print(&r, stdout, 10); ... }
**   numerics_report_free(&r);
**
** The graph is model_graph.h's MODEL_GRAPH_GRADS (no AdamW: the update is in place, so the
** weights read back would not be the inputs any more).  It is compiled exactly as training
** compiles it (the same matmul operand type and fusions) and run once in full mode; then, in
** topological order, every node output the program keeps in HBM is read back and compared with
** the reference (compiler/graph_tol.h: |dev - ref| <= atol * max|ref| + rtol * |ref|, the bf16
** pair whenever the matmul operands are bf16, else the fp32 pair).  A reshape's output is read
** through its input (the same bytes), a tensor kept in column blocks ("<name>^C<w>", the logits
** gradient of a wide vocabulary) back into row order; a node whose every output fusion folded
** away (a matmul whose activation or residual add runs in its epilogue, a transpose read by the
** GEMM) is reported as fused, naming the node it is folded into, whose output checks both.  The
** run has the race checker on: an unsynchronised access (a compiler bug that makes values depend on
** timing) is reported with the comparison.
** docs/training.md ("Checking numerics") has the tolerances and the measured errors. */
#ifndef OT_MODEL_NUMERICS_H
#define OT_MODEL_NUMERICS_H

#include <opentrn/chip.h>
#include <opentrn/device.h>
#include <opentrn/model.h>
#include <stdio.h>

#include "model/train.h"

/* Called on the device once the inputs are written (before_run) or after the run, before the
** read-back (after_run); tests inject faults with them.  A non-OK status stops the check. */
typedef ot_status (*numerics_hook)(ot_device *d, void *arg);

typedef struct {
  const ot_model_config *config;
  const ot_model_params *params;   /* the weights (fp32) */
  const int32_t *ids, *targets;    /* batch * seq each: the inputs and next tokens */
  uint32_t batch, seq;
  const ot_chip *chip;
  bool fp32;                       /* fp32 TensorE operands (else bf16, as training's default) */
  bool fuse;                       /* the compiler's fusions (training compiles with them) */
  numerics_hook before_run, after_run; /* optional */
  void *hook_arg;
} numerics_opts;

typedef enum {
  NUMERICS_COMPARED = 0,  /* every output read back and compared */
  NUMERICS_FUSED = 1,     /* no output materialised: folded into another node */
  NUMERICS_SKIPPED = 2    /* integer outputs only (nothing to compare) */
} numerics_state;

typedef struct {
  uint32_t index;          /* node index (topological order) */
  char *name;              /* owned by the report */
  const char *op;
  char shape[48];          /* of the first output: "[32, 256]" */
  ot_dtype dtype;
  numerics_state state;
  char *fused_into;        /* NUMERICS_FUSED: the consumer it is folded into (owned by the report) */
  double max_abs, max_rel; /* over the node's outputs; max_rel = max_abs / max |ref| */
  double worst;            /* err / tolerance at the worst element: <= 1 passes */
  float dev, ref;          /* values at the worst element */
  char at[48];             /* that element's index "[3, 17]" (of the worst output) */
  uint32_t n_out, n_out_compared; /* outputs, and those read back and compared */
  bool ok;
} numerics_node;

typedef struct {
  numerics_node *nodes;
  uint32_t n_nodes;
  uint32_t compared, fused, skipped, failed;
  int32_t first_bad;       /* index into nodes of the first node out of tolerance, or -1 */
  uint32_t nodes_fused_by_compiler; /* ot_compile_stats.nodes_fused */
  double atol, rtol;
  bool lowp;
  char *races;             /* the race checker's warnings for the run, one per line ("" if none) */
} numerics_report;

/* Build, compile, run and compare.  Errors: the graph, the compiler, the device run (the
** message names the node), the reference evaluator. */
ot_status numerics_check(const numerics_opts *o, numerics_report *out, ot_error *err);
void numerics_report_free(numerics_report *r);

/* The tolerance, the counts, the first node out of tolerance and the `worst` worst nodes as a
** table, then the fused nodes; a last line "numerics: ok" or "numerics: FAILED at node ...". */
void numerics_print(const numerics_report *r, FILE *out, unsigned worst);

/* The check for `opentrn train`: the model, chip and initial weights of o (a seeded
** initialisation or o->init) and the first training batch o's data loader gives; prints the
** report to out; *passed tells whether every node is within tolerance. */
ot_status numerics_check_train(const train_opts *o, FILE *out, bool *passed, ot_error *err);

/* The same with seeded random weights and uniformly random tokens (`opentrn fit`). */
ot_status numerics_check_random(const ot_model_config *c, const char *chip, uint32_t batch, uint32_t seq, bool fp32,
                                uint64_t seed, FILE *out, bool *passed, ot_error *err);

#endif
