/* Internal interface of the cost module: the formulas, each a pure function of its inputs so
** tests can check them against hand-computed cases (docs/cost.md derives every one). */
#ifndef OT_COST_INT_H
#define OT_COST_INT_H

#include <opentrn/cost.h>

/* One row of cost_params.def. */
typedef struct {
  const char *key;
  double value, min, max;
  const char *unit, *tag, *date, *source;
} cost_param_def;

extern const cost_param_def cost_param_table[];
extern const size_t cost_param_count;

/* ---- workload arithmetic --------------------------------------------------------------- */
/* Forward FLOPs of one layer for one token attending to `ctx` tokens: 2·N_layer + 4·d_attn·ctx. */
double cost_layer_fwd_flops(const ot_cost_shape *s, double ctx);
/* Training FLOPs of one layer per token: 3 x forward at ctx = seq (PaLM's 6N + 12·L·d·T per layer). */
double cost_layer_train_flops(const ot_cost_shape *s);
/* Training FLOPs per token of the whole model: 6·N_matmul + 12·L·d_attn·seq. */
double cost_train_flops_per_token(const ot_cost_shape *s);
/* LM-head FLOPs per token, forward (2·d·vocab). */
double cost_head_fwd_flops(const ot_cost_shape *s);
/* Bytes of the KV cache of one sequence of `ctx` tokens. */
double cost_kv_bytes(const ot_cost_shape *s, double ctx, double bytes_per_elem);

/* ---- money ------------------------------------------------------------------------------ */
/* Chip-hours at a sustained fraction `eff` of `peak_tflops`: flops / (peak·1e12·eff·3600). */
double cost_chip_hours(double flops, double peak_tflops, double eff);
/* Rental: paid chip-hours x price / goodput. */
double cost_rental(double chip_hours, double usd_per_hour, double goodput);

typedef struct {
  double capex, lifetime_years, dep_rate_per_year, network_fraction;
  double power_w, server_mult, tdp_fraction, pue, usd_per_kwh;
} cost_owner_inputs;

typedef struct { double hw, network, energy, total; } cost_owner_hour;

/* Owner view per chip-hour (cost.md §3.2): amortised hardware (straight line over the lifetime,
** or Epoch's exponential rate when dep_rate_per_year > 0), networking share f/(1-f) of it,
** energy = power x server multiplier x TDP fraction x PUE x price. */
void cost_owner_per_hour(const cost_owner_inputs *in, cost_owner_hour *out);
/* kWh for chip-hours: power x server multiplier x TDP fraction x PUE x hours / 1000. */
double cost_energy_kwh(double power_w, double server_mult, double tdp_fraction, double pue, double hours);

/* ---- serving roofline ------------------------------------------------------------------- */
typedef struct {
  double peak_flops;     /* FLOP/s of a replica (all its chips) */
  double hbm_bps;        /* bytes/s of a replica */
  double eta_c, eta_m;   /* MFU, MBU */
  double bytes_per_param, bytes_per_kv;
} cost_roofline;

typedef struct {
  double prefill_s;      /* whole batch */
  double decode_s;       /* all output steps */
  double ttft_s, tpot_s; /* per request: prefill, mean step */
  double weight_bytes, kv_bytes_max;
} cost_serve_time;

/* Prefill compute- or memory-bound, then `output` decode steps, each
** max(FLOPs / (peak·eta_c), (weights + KV bytes) / (bw·eta_m)) at its own context length. */
void cost_serve_roofline(const ot_cost_shape *s, const ot_cost_workload *w, const cost_roofline *r,
                         cost_serve_time *out);

/* ---- report helpers -------------------------------------------------------------------- */
/* Path of an executable on PATH (or OT_GNUPLOT for gnuplot), or NULL. */
const char *cost_find_program(const char *name, char *buf, size_t cap);

#endif
