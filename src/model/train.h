/* Training on the simulated chip: one compiled program does forward, backward, gradient
** clipping and AdamW (model_graph.h, MODEL_GRAPH_TRAIN); weights and moments stay in the
** device's HBM between steps; the host only writes token ids, targets and the six AdamW
** hyper-parameters of each step and reads the loss.  docs/training.md describes it.
**
**   train_opts o; train_opts_default(&o);
**   o.model = "gpt2-tiny"; o.data = "data/kjv.txt"; o.steps = 100;
**   trainer *t;
**   if (train_open(&o, &t, &err) == OT_OK) train_run(t, stdout, &err);
**   train_free(t);
*/
#ifndef OT_MODEL_TRAIN_H
#define OT_MODEL_TRAIN_H

#include <opentrn/device.h>
#include <opentrn/model.h>
#include <stdio.h>

typedef struct {
  const char *model;          /* preset name, config.json, or a directory holding one */
  const char *data;           /* a text file, or NULL with tokens below */
  const uint32_t *tokens;     /* token ids in memory (tests) when data is NULL */
  size_t n_tokens;
  const char *tokenizer_dir;  /* BPE files for vocabularies above 257 (default data/gpt2) */
  const char *cache_dir;      /* token cache (NULL: none) */
  const char *chip;           /* preset name or chip JSON (default trn2) */
  const char *init;           /* safetensors weights to start from; NULL: seeded initialisation */
  uint32_t steps;             /* length of the schedule (the run stops there) */
  uint32_t batch, seq;
  uint32_t warmup;            /* linear warm-up steps */
  double lr, min_lr;          /* peak and final learning rate (cosine decay between) */
  double weight_decay, max_norm, eps;
  float beta1, beta2;
  uint64_t seed;              /* weights and data order */
  uint32_t eval_every;        /* 0: no evaluation during the run */
  uint32_t eval_batches;      /* at most this many held-out batches per evaluation */
  double eval_fraction;       /* tail of the tokens held out */
  const char *checkpoint_dir; /* NULL: no checkpoints */
  uint32_t checkpoint_every;  /* 0: only at the end */
  const char *resume_dir;     /* continue from a checkpoint */
  bool fp32;                  /* fp32 TensorE operands (default bf16 operands, fp32 accumulation) */
  bool quiet;                 /* train_run prints only the summary */
  const ot_model_config *config; /* if set, used instead of model (copied at train_open) */
  uint32_t print_every;       /* train_run: a progress line every this many steps (0, 1: each) */
  bool no_summary;            /* train_run: no closing summary (the caller prints its own) */
  uint32_t cores;             /* NeuronCores of the chip the training step runs on, data-parallel
                              ** (docs/data-parallel.md): 1 (default; 0 is taken as 1) or
                              ** TRAIN_CORES_ALL for every core of the chip.  batch is the global
                              ** batch: each core gets batch / cores rows (it must divide). */
} train_opts;

#define TRAIN_CORES_ALL UINT32_MAX

typedef struct {
  uint32_t step;              /* steps done, this one included */
  float loss, grad_norm;
  double lr;
  uint64_t sim_ps;            /* simulated time of the step */
  double tokens_per_s;        /* simulated */
  double mfu;                 /* device MFU: TensorE matmul FLOPs executed / peak (docs/runtime.md) */
  double mfu_6n;              /* analytic FLOPs (3 x model_graph_forward_flops) / peak */
  double wall_s;              /* host time of the step */
  uint32_t cores;             /* NeuronCores the step ran on (mfu and mfu_6n are against their peak) */
  double mfu_chip;            /* mfu against the peak of every core of the chip */
  uint64_t allreduce_ps;      /* span of the gradient all-reduce (tag "allreduce"; 0 on one core) */
} train_step_info;

typedef struct trainer trainer;

void train_opts_default(train_opts *o);

/* Load the configuration, tokenise the data, compile the training step, open the device and
** write the initial (or resumed) weights and moments. */
ot_status train_open(const train_opts *o, trainer **out, ot_error *err);
void train_free(trainer *t);

const ot_model_config *train_config(const trainer *t);
const ot_tokenizer *train_tokenizer(const trainer *t);
uint32_t train_step_count(const trainer *t); /* steps done */

/* Learning rate of step s (0-based): linear warm-up to lr, then cosine to min_lr at o->steps. */
double train_lr(const train_opts *o, uint32_t s);
/* The ADAMW hyper input for step s (0-based; bias corrections for t = s + 1). */
void train_hyper(const train_opts *o, uint32_t s, float hyper[6]);

/* One step on the next training batch, or on window ([batch, seq + 1] ids, row-major). */
ot_status train_step(trainer *t, train_step_info *info, ot_error *err);
ot_status train_step_on(trainer *t, const uint32_t *window, train_step_info *info, ot_error *err);
/* Mean loss over the first eval_batches held-out batches (a forward-only program). */
ot_status train_eval(trainer *t, double *loss, ot_error *err);
/* Checkpoint: <dir>/model-<step>.safetensors (weights, ".m", ".v"), config.json, then
** state.json last, each written atomically; state.json names the weights file, so a killed run
** always leaves the previous consistent checkpoint.  Older weights files are removed. */
ot_status train_save(trainer *t, const char *dir, ot_error *err);
/* The current weights (read back from the device) into p (allocated here). */
ot_status train_params(trainer *t, ot_model_params *p, ot_error *err);
/* Continue prompt (n ids) by max_new ids, recomputing the whole window each time (a forward
** program of [1, seq]): greedy when temperature is 0, else sampled from softmax(logits /
** temperature) with a seeded generator.  *out (malloc'd) holds the new ids. */
ot_status train_generate(trainer *t, const uint32_t *prompt, size_t n, size_t max_new, double temperature,
                         uint64_t seed, uint32_t **out, ot_error *err);
/* Run to o->steps: a progress line per step, evaluation and checkpoints as configured, a summary. */
ot_status train_run(trainer *t, FILE *out, ot_error *err);

/* NeuronCores the training step runs on (o->cores resolved against the chip). */
uint32_t train_cores(const trainer *t);


/* Totals of the steps run by this trainer (for summaries). */
typedef struct {
  uint32_t steps;
  uint64_t sim_ps, tokens;
  double wall_s, mfu_sum, mfu_6n_sum, mfu_chip_sum;
  uint64_t allreduce_ps;
  float first_loss, last_loss;
  double last_eval;           /* -1 if none */
} train_totals;
void train_get_totals(const trainer *t, train_totals *out);

#endif
