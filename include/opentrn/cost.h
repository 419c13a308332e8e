/* OpenTRN cost model: what a training run or a million served tokens costs on simulated
** Trainium-class chips and on NVIDIA GPUs, in the rental view ($ per chip-hour) or the owner view
** (capex, networking share, lifetime, power, PUE, electricity).  docs/cost.md describes it.
**
** Every assumption is one row of a table (src/cost/cost_params.def) with its source and date;
** ot_cost_params holds the values in force and where each came from (default, --set, a file).
** GPU throughput is a roofline MODEL (peak x MFU for compute, HBM bandwidth x MBU for memory),
** never a measurement; <chip>.measured_tokens_per_s replaces it with a measured figure.
** Trainium throughput comes only from the simulator (ot_cost_trn_figures); without it the
** Trainium rows say "not simulated" and carry no number.
*/
#ifndef OPENTRN_COST_H
#define OPENTRN_COST_H

#include <opentrn/chip.h>
#include <opentrn/model.h>
#include <opentrn/status.h>
#include <stdio.h>

/* ---- assumptions ----------------------------------------------------------------------- */
typedef struct ot_cost_params ot_cost_params;

/* All defaults from the table. */
ot_status ot_cost_params_new(ot_cost_params **out, ot_error *err);
void ot_cost_params_free(ot_cost_params *p);
/* Set one assumption by key ("h100.mfu"), range-checked; origin is shown beside the value. */
ot_status ot_cost_params_set(ot_cost_params *p, const char *key, double value, const char *origin, ot_error *err);
/* "key=value" (as given to --set). */
ot_status ot_cost_params_assign(ot_cost_params *p, const char *key_eq_value, ot_error *err);
/* An assumptions JSON: {"mfu": 0.35, "h100": {"price_per_hour": 2.1}, "owner.pue": 1.3}.
** Every error names the origin and the field. */
ot_status ot_cost_params_load_json(ot_cost_params *p, const char *text, const char *origin, ot_error *err);
ot_status ot_cost_params_load_file(ot_cost_params *p, const char *path, ot_error *err);
ot_status ot_cost_params_get(const ot_cost_params *p, const char *key, double *value, ot_error *err);
/* Value of a key; NaN if the key is unknown. */
double ot_cost_param(const ot_cost_params *p, const char *key);
/* "default" or where the value was set ("--set", "file.json"); NULL for an unknown key. */
const char *ot_cost_params_origin(const ot_cost_params *p, const char *key);
/* The defaults table: plain text, or markdown (the generated section of docs/cost.md). */
void ot_cost_params_print_reference(FILE *out, int markdown);

/* ---- model shapes ---------------------------------------------------------------------- */
typedef struct ot_cost_shape {
  char name[64];
  int layers, d_model, heads, kv_heads, head_dim, d_ff, vocab, seq;
  int gated_mlp;       /* SwiGLU: three d x d_ff matrices instead of two */
  int tied_embeddings; /* the LM head shares the token embedding */
  int learned_pos;     /* learned position embeddings (seq x d_model) */
} ot_cost_shape;

/* Known shapes, NULL-terminated: the model stack's presets (gpt2, gpt2-medium, llama-3.2-1b, ...)
** and the larger ones priced only here (llama-3-8b, llama-3-70b, gpt3-175b). */
const char *const *ot_cost_shape_names(void);
/* A shape by name, or from a Hugging Face config.json (file or directory) via the model stack. */
ot_status ot_cost_shape_preset(const char *name, ot_cost_shape *out, ot_error *err);
/* The shape of a model-stack configuration (training context: the original context of a
** rope-scaled model). */
void ot_cost_shape_from_config(const ot_model_config *c, ot_cost_shape *out);
/* Parameters of one transformer layer's matmuls (attention + MLP). */
double ot_cost_shape_layer_params(const ot_cost_shape *s);
/* Parameters that take part in matmuls: layers + LM head (the FLOPs count "N"). */
double ot_cost_shape_matmul_params(const ot_cost_shape *s);
/* All parameters (adds an untied embedding, position embeddings and norms). */
double ot_cost_shape_total_params(const ot_cost_shape *s);

/* ---- workload -------------------------------------------------------------------------- */
typedef enum { OT_COST_TRAIN, OT_COST_SERVE } ot_cost_task;
typedef enum { OT_COST_RENTAL, OT_COST_OWNER } ot_cost_view;
typedef enum { OT_COST_PRICES_AWS, OT_COST_PRICES_MARKET } ot_cost_prices;
typedef enum { OT_COST_BF16, OT_COST_FP8 } ot_cost_precision;

typedef struct ot_cost_workload {
  ot_cost_task task;
  ot_cost_precision precision;
  double tokens;                 /* train: tokens to train on */
  double flops;                  /* train: total FLOPs when > 0 (replaces 6N·D + attention) */
  double prompt, output, batch;  /* serve: tokens per request in and out; requests per batch */
} ot_cost_workload;

/* ---- Trainium figures: what the simulator measured -------------------------------------- */
/* One transformer layer of the model, simulated in timing-only mode on one Trainium-class
** chip.  A time of 0 means "not measured".  The cost model scales a layer by the layer count
** (plus the LM head at the layer's achieved FLOP rate) and, when the layer ran on fewer
** NeuronCores than the chip has, assumes the other cores run replicas (no collective cost). */
typedef struct ot_cost_trn_figures {
  double train_s;         /* forward + backward of one layer over train_tokens tokens */
  double train_tokens;
  double prefill_s;       /* forward of one layer over prefill_tokens prompt tokens */
  double prefill_tokens;
  double decode_s;        /* one decode step of one layer for decode_batch sequences */
  double decode_batch;
  double decode_context;  /* context length of that step (0 = unknown) */
  int cores_used;         /* NeuronCores the layer ran on (0 = all) */
  char source[256];       /* how it was obtained, printed under the table */
} ot_cost_trn_figures;

/* The hook the compiler fills in: build one transformer layer of `shape` for the workload's
** phase(s), run it on `chip` with OT_RUN_TIMING and fill `out`.  Until the compiler exists the
** built-in ot_cost_trn_measure returns OT_EUNSUPPORTED ("needs the compiler"). */
typedef ot_status (*ot_cost_trn_measure_fn)(const ot_chip *chip, const ot_cost_shape *shape,
                                            const ot_cost_workload *w, ot_cost_trn_figures *out,
                                            ot_error *err);
ot_status ot_cost_trn_measure(const ot_chip *chip, const ot_cost_shape *shape, const ot_cost_workload *w,
                              ot_cost_trn_figures *out, ot_error *err);

/* Figures from `opentrn run --json` statistics of one layer (train: forward+backward; serve:
** prefill, or with `decode` a decode step).  The tokens the run processed are `tokens` when > 0,
** else inferred from its matmul FLOPs and the layer's FLOPs per token.  Adds to `out`. */
ot_status ot_cost_trn_from_stats(const char *json_text, const char *origin, const ot_cost_shape *shape,
                                 const ot_cost_workload *w, int decode, double tokens,
                                 ot_cost_trn_figures *out, char *chip_name, size_t chip_cap, ot_error *err);

/* ---- the comparison -------------------------------------------------------------------- */
#define OT_COST_MAX_CHIPS 16

typedef struct ot_cost_options {
  ot_cost_shape shape;
  ot_cost_workload work;
  ot_cost_view view;
  ot_cost_prices prices;
  /* Trainium-class chips (loaded descriptions; the caller owns them) and GPUs by name. */
  const ot_chip *trn[OT_COST_MAX_CHIPS];
  int n_trn;
  const char *gpus[OT_COST_MAX_CHIPS];
  int n_gpus;
  /* Simulated figures per Trainium chip (same index as trn[]); NULL = ask `measure`. */
  const ot_cost_trn_figures *trn_figures[OT_COST_MAX_CHIPS];
  ot_cost_trn_measure_fn measure;  /* NULL = none */
  const char *reference;           /* chip the ratio is against (default "h100") */
  double count;                    /* train: chips in the cluster, for wall-clock days (0 = not shown) */
} ot_cost_options;

typedef enum {
  OT_COST_ROW_OK,
  OT_COST_ROW_NOT_SIMULATED,  /* Trainium without simulated figures */
  OT_COST_ROW_NO_PRICE        /* throughput known, price (or capex) not public */
} ot_cost_row_status;

typedef struct ot_cost_row {
  char chip[64];
  int trainium;
  ot_cost_row_status status;
  char basis[200];           /* "roofline model (MFU 0.40)", "simulated: ...", "measured (user)" */
  char note[200];            /* why a figure is missing, or a caveat */
  double peak_tflops;        /* dense, at the workload's precision */
  double hbm_tbps, hbm_gb, power_w;
  double price_per_hour;     /* $/chip-h in the chosen view (0 = unknown) */
  double owner_hw, owner_network, owner_energy; /* owner view: $/chip-h breakdown */
  double tokens_per_s;       /* per chip (train: tokens; serve: output tokens) */
  double chip_hours;         /* train: paid chip-hours for the run; serve: per 1M output tokens */
  double cost;               /* train: $ per run; serve: $ per 1M output tokens (<0 unknown) */
  double energy_kwh;         /* per run, or per 1M output tokens */
  double ratio;              /* cost / reference cost (0 unknown) */
  double ttft_s, tpot_s;     /* serve: time to first token, time per output token */
  int chips_per_replica;     /* serve: chips that hold the weights and KV cache */
  double usd_per_pflop_hour; /* price / peak PF (figure of merit, compute) */
  double usd_per_tbps_hour;  /* price / HBM TB/s (figure of merit, memory) */
  /* Efficiency this chip needs, as a multiple of the reference's MFU (compute) or MBU (memory),
  ** to cost claim.saving less than the reference: from prices and peaks only (0 unknown). */
  double breakeven_mfu_ratio, breakeven_mbu_ratio;
} ot_cost_row;

typedef struct ot_cost_result {
  ot_cost_options opt;
  double flops_per_token;    /* train: per token incl. attention; serve: per output token at mean context */
  double total_flops;        /* train: the run */
  int n_rows;
  ot_cost_row rows[2 * OT_COST_MAX_CHIPS];
} ot_cost_result;

ot_status ot_cost_compare(const ot_cost_params *p, const ot_cost_options *opt, ot_cost_result *out, ot_error *err);
/* The buyer's table with every assumption under it, or the same as JSON. */
void ot_cost_result_print(const ot_cost_result *r, const ot_cost_params *p, FILE *out);
ot_status ot_cost_result_json(const ot_cost_result *r, const ot_cost_params *p, FILE *out, ot_error *err);

/* ---- the HTML report --------------------------------------------------------------------- */
typedef struct ot_report_inputs {
  const char *stats[OT_COST_MAX_CHIPS]; /* `opentrn run --json` files (kernels on the roofline) */
  int n_stats;
  const char *trace;                    /* optional: trace JSON (per-engine timeline) */
  const char *loss;                     /* optional: CSV step,loss */
  const char *cost;                     /* optional: `opentrn cost --json` output */
  const char *chip;                     /* optional: chip for the roofline (default: the stats' chip) */
  const char *title;
} ot_report_inputs;

/* Write one self-contained HTML file (inline SVG charts drawn by gnuplot). */
ot_status ot_report_write(const ot_report_inputs *in, const char *out_path, ot_error *err);

#endif
