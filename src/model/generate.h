/* Generation: prefill + decode of a GPT-2 or Llama model on a simulated chip, with the KV cache
** in device HBM (docs/generation.md).
**
** One device holds the weights (fp32, Hugging Face names) and per layer a key and a value cache
** [B, Hkv, ctx, D] ("h.<l>.attn.k_cache", "model.layers.<l>.self_attn.v_cache", ...), ctx =
** prompt + new tokens.  The prefill program takes the prompts [B, S] and writes rows 0..S-1 of
** every cache; a decode program per context length L takes one token per row, writes row L-1
** and attends over rows 0..L-1.  Programs change with ot_device_load_keep, so weights and
** caches are never copied again.  Each program outputs the last position's logits [B, V]; the
** host picks the next token (greedy, or temperature / top-k / top-p sampling from a seeded RNG).
** Prompts of a batch must have the same token count (no padding). */
#ifndef OT_MODEL_GENERATE_H
#define OT_MODEL_GENERATE_H

#include <opentrn/device.h>
#include <opentrn/model.h>

typedef struct {
  const char *chip;        /* preset or chip JSON ("trn2") */
  bool fp32;               /* fp32 TensorE operands and fp32 KV caches (else bf16 for both) */
  ot_run_mode mode;        /* OT_RUN_FULL (tokens and time) or OT_RUN_TIMING (time only: tokens are
                              not computed, every generated id is 0) */
  float temperature;       /* 0: greedy (argmax, lowest id on ties) */
  uint32_t top_k;          /* 0: no top-k cut */
  float top_p;             /* 1 (or 0): no nucleus cut */
  uint64_t seed;           /* sampling RNG */
  bool stop_at_eos;        /* stop when every row has produced the config's eos_token_id */
} gen_opts;

/* trn2, bf16, full mode, greedy, top_k 0, top_p 1, seed 1, stop at eos. */
void gen_opts_default(gen_opts *o);

typedef struct {
  uint32_t steps;          /* programs run: 1 prefill + decodes */
  uint32_t new_tokens;     /* generated per row */
  uint64_t prep_ps;        /* simulated time of the one-off weight preparation (not in TTFT) */
  uint64_t prefill_ps;     /* simulated time of the prefill program (time to first token) */
  uint64_t decode_ps;      /* simulated time of all decode programs */
  double wall_s, compile_s, run_s; /* host wall time: total, compiling, simulating */
  uint64_t device_bytes;   /* HBM the weights and KV caches take */
} gen_stats;

typedef struct generator generator;

/* Check that the chip can hold the model with batch rows of ctx tokens (weights + KV caches +
** the largest activation), open the device and put the weights in it: from `weights` (a
** safetensors file, checked against the config) or, if NULL, seeded random ones (seed). */
ot_status gen_open(const ot_model_config *c, const char *weights, uint64_t seed, uint32_t batch, uint32_t ctx,
                   const gen_opts *o, generator **out, ot_error *err);
void gen_free(generator *g);

/* Device bytes the weights and caches of c take for batch rows of ctx tokens. */
uint64_t gen_device_bytes(const ot_model_config *c, uint32_t batch, uint32_t ctx, bool fp32);

/* Generate up to max_new tokens after prompts [batch, len] (row-major, ids below the vocabulary
** size); out [batch, max_new] receives them (after an early stop, the rest are eos).  len +
** max_new must not exceed the ctx given to gen_open.  on_token, if not NULL, is called after
** every step with the step's tokens [batch]. */
typedef void (*gen_token_fn)(void *ctx, const uint32_t *tokens, uint32_t batch);
ot_status gen_run(generator *g, const uint32_t *prompts, uint32_t len, uint32_t max_new, uint32_t *out,
                  gen_token_fn on_token, void *cb_ctx, gen_stats *st, ot_error *err);

/* The next token from one row of logits [vocab] (docs/generation.md, "Sampling"); rng is the
** splitmix64 state (one draw per sampled token, none when greedy); cand holds vocab entries. */
typedef struct {
  float logit;
  uint32_t id;
} gen_cand;
uint32_t gen_sample(const float *logits, uint32_t vocab, const gen_opts *o, uint64_t *rng, gen_cand *cand);

#endif
