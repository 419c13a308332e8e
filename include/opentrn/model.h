/* OpenTRN model stack, input and output: model configurations (GPT-2 and Llama families, read
** from Hugging Face config.json), weights in safetensors files with the families' Hugging Face
** tensor names, the GPT-2 byte-level BPE tokenizer (and a plain byte tokenizer), and a
** seeded data loader over a text file.  docs/model.md describes each part.
**
** Every fallible function returns an ot_status and fills a caller-owned ot_error naming the
** file, the tensor or key, what was expected and what was found.  Nothing here exits or aborts
** on bad input.  Files are written atomically (temporary file, fsync, rename).
*/
#ifndef OPENTRN_MODEL_H
#define OPENTRN_MODEL_H

#include <opentrn/num.h>
#include <opentrn/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------------------------------
** Configurations
*/

typedef enum {
  OT_MODEL_GPT2 = 0,  /* learned positions, LayerNorm, GELU (tanh), tied embeddings, biases */
  OT_MODEL_LLAMA = 1, /* rotary positions, RMSNorm, SwiGLU, grouped-query attention, no biases */
} ot_model_family;

typedef enum {
  OT_ROPE_SCALING_NONE = 0,
  OT_ROPE_SCALING_LLAMA3 = 1, /* Llama 3.1/3.2 "rope_type": "llama3" frequency scaling */
} ot_rope_scaling;

typedef struct ot_model_config {
  ot_model_family family;
  char name[64];                    /* preset name or the config file's model_type */
  uint32_t vocab_size;              /* gpt2: vocab_size */
  uint32_t max_position_embeddings; /* gpt2: n_positions (the context length) */
  uint32_t hidden_size;             /* gpt2: n_embd */
  uint32_t num_hidden_layers;       /* gpt2: n_layer */
  uint32_t n_heads;                 /* gpt2: n_head; llama: num_attention_heads */
  uint32_t n_kv_heads;              /* llama: num_key_value_heads; gpt2: = n_heads */
  uint32_t head_dim;                /* hidden_size / n_heads unless the config says otherwise */
  uint32_t intermediate_size;       /* gpt2: n_inner, or 4 * n_embd when null */
  float norm_eps;                   /* gpt2: layer_norm_epsilon; llama: rms_norm_eps */
  float rope_theta;                 /* llama only */
  ot_rope_scaling rope_scaling;     /* llama only */
  float rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3 scaling */
  uint32_t rope_original_max_position_embeddings;                 /* llama3 scaling */
  bool tie_word_embeddings;         /* lm_head shares the token embedding (gpt2: always) */
  float initializer_range;          /* std of the random initialisation (0.02) */
  uint32_t bos_token_id, eos_token_id;
} ot_model_config;

/* Presets: "gpt2" (124M), "gpt2-medium" (355M), "llama-3.2-1b" (Llama-3.2-1B shape, 1.24B),
** "gpt2-tiny" and "llama-tiny" (for tests and the demo). */
ot_status ot_model_config_preset(const char *name, ot_model_config *out, ot_error *err);
/* The i-th preset name, NULL past the end. */
const char *ot_model_config_preset_name(size_t i);

/* Parse a Hugging Face config.json (model_type "gpt2" or "llama"); origin names it in errors.
** The result is validated. */
ot_status ot_model_config_parse(const char *json, size_t len, const char *origin, ot_model_config *out,
                                ot_error *err);
/* spec is a preset name, a config.json file, or a directory holding config.json. */
ot_status ot_model_config_load(const char *spec, ot_model_config *out, ot_error *err);
/* Every field in range and the shapes consistent (hidden_size divisible by n_heads, ...). */
ot_status ot_model_config_validate(const ot_model_config *c, const char *origin, ot_error *err);
/* Hugging Face-style config.json text (malloc'd, owned by the caller), which parses back to c. */
ot_status ot_model_config_to_json(const ot_model_config *c, char **json, ot_error *err);
ot_status ot_model_config_save(const ot_model_config *c, const char *path, ot_error *err);

/* Trainable parameters, counting a tied lm_head once (gpt2: 124,439,808). */
uint64_t ot_model_config_param_count(const ot_model_config *c);

/* ----------------------------------------------------------------------------------------
** The tensors a configuration expects, with Hugging Face names and shapes (GPT-2 Conv1D
** weights are [in, out]; Llama Linear weights are [out, in]), in the order the families'
** checkpoints list them.
*/

#define OT_TENSOR_NAME_MAX 96
#define OT_TENSOR_MAX_DIMS 8

typedef struct ot_model_tensor_spec {
  char name[OT_TENSOR_NAME_MAX];
  uint32_t ndim;
  uint64_t shape[2];
} ot_model_tensor_spec;

/* *specs is malloc'd (free with free()). */
ot_status ot_model_tensor_specs(const ot_model_config *c, ot_model_tensor_spec **specs, size_t *count,
                                ot_error *err);

/* ----------------------------------------------------------------------------------------
** safetensors files: an 8-byte little-endian header length N, N bytes of JSON
** {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
**  "__metadata__": {"key": "value"}}, then the raw little-endian tensor bytes.
*/

typedef struct ot_safetensors ot_safetensors;

typedef struct ot_st_tensor {
  const char *name;
  char st_dtype[8];        /* as in the file: "F32", "BF16", "F16", "I64", ... */
  ot_dtype dtype;          /* the OpenTRN type, OT_DT_COUNT when it has none (F64, I64, BOOL...) */
  size_t elem_size;        /* bytes per element */
  uint32_t ndim;
  uint64_t shape[OT_TENSOR_MAX_DIMS];
  uint64_t count;          /* elements */
  size_t bytes;            /* count * elem_size */
  const void *data;        /* load: inside the file's mapping, possibly unaligned (read it with
                              ot_safetensors_read_f32 or memcpy); save: the caller's, in dtype */
} ot_st_tensor;

/* Open a file (read-only mmap) and check everything: header length within the file, valid
** JSON, known dtypes, shapes, offsets inside the data section, sizes = shape x dtype size, no
** overlaps, no duplicate names. */
ot_status ot_safetensors_open(const char *path, ot_safetensors **out, ot_error *err);
/* The same checks over bytes in memory, which must outlive the result (it points into them). */
ot_status ot_safetensors_parse(const void *bytes, size_t size, const char *origin, ot_safetensors **out,
                               ot_error *err);
void ot_safetensors_close(ot_safetensors *st);

size_t ot_safetensors_count(const ot_safetensors *st);
const ot_st_tensor *ot_safetensors_at(const ot_safetensors *st, size_t i); /* file order */
const ot_st_tensor *ot_safetensors_find(const ot_safetensors *st, const char *name);
/* A __metadata__ value, NULL if absent. */
const char *ot_safetensors_metadata(const ot_safetensors *st, const char *key);
/* Read a floating-point tensor as f32 (exact from F32, BF16, F16); count must match. */
ot_status ot_safetensors_read_f32(const ot_safetensors *st, const char *name, float *dst, uint64_t count,
                                  ot_error *err);

/* Write tensors (each with its data in t->dtype; name, dtype, ndim, shape and data are used)
** to path atomically.  as_dtype: OT_DT_COUNT keeps each tensor's type; a float type converts
** every float tensor to it (round to nearest even).  metadata: NULL, or key, value, ..., NULL. */
ot_status ot_safetensors_save(const char *path, const ot_st_tensor *tensors, size_t count, ot_dtype as_dtype,
                              const char *const *metadata, ot_error *err);

/* Check a file's tensors against a configuration: every expected tensor present (GPT-2 names
** with or without the "transformer." prefix; lm_head.weight only when not tied), with the
** expected shape and a float dtype (or exactly `dtype` unless it is OT_DT_COUNT); unexpected
** tensors are errors except known buffers (attn.bias, attn.masked_bias, rotary inv_freq) and
** a redundant tied lm_head.weight.  Reports every problem with name, expected and found. */
ot_status ot_safetensors_check(const ot_safetensors *st, const ot_model_config *c, ot_dtype dtype, ot_error *err);

/* ----------------------------------------------------------------------------------------
** A model's parameters in f32: one slab, one entry per expected tensor (ot_model_tensor_specs
** order).
*/

typedef struct ot_model_param {
  char name[OT_TENSOR_NAME_MAX];
  uint32_t ndim;
  uint64_t shape[2];
  uint64_t count;
  float *data; /* points into the slab */
} ot_model_param;

typedef struct ot_model_params {
  ot_model_config config;
  size_t count;
  ot_model_param *params;
  float *slab;        /* all parameters, contiguous, in params order */
  uint64_t total;     /* floats in the slab */
} ot_model_params;

/* Allocate zeroed parameters for c (validated first). */
ot_status ot_model_params_alloc(const ot_model_config *c, ot_model_params *out, ot_error *err);
/* Deterministic initialisation from a seed (docs/model.md): weights ~ normal(0,
** initializer_range), GPT-2 residual projections (attn.c_proj, mlp.c_proj) scaled by
** 1/sqrt(2 * layers), biases 0, norm weights 1.  Each tensor draws from its own stream (seed and
** the tensor's name), so values do not depend on the order or the presence of other tensors. */
void ot_model_params_init(ot_model_params *p, uint64_t seed);
/* Load and check (ot_safetensors_check) a file into f32 parameters for c. */
ot_status ot_model_params_load(const ot_model_config *c, const char *path, ot_model_params *out, ot_error *err);
/* Save with the Hugging Face names, in dtype (FP32, BF16 or FP16), atomically. */
ot_status ot_model_params_save(const ot_model_params *p, const char *path, ot_dtype dtype, ot_error *err);
ot_model_param *ot_model_params_find(const ot_model_params *p, const char *name);
void ot_model_params_free(ot_model_params *p);

/* ----------------------------------------------------------------------------------------
** Tokenizers
*/

typedef struct ot_tokenizer ot_tokenizer;

#define OT_GPT2_EOT 50256u /* <|endoftext|> */

/* GPT-2 byte-level BPE from vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe
** (OpenAI's original names; the formats are the same). */
ot_status ot_tokenizer_load_bpe(const char *vocab_path, const char *merges_path, ot_tokenizer **out,
                                ot_error *err);
/* The same from a directory holding either pair of files. */
ot_status ot_tokenizer_load_dir(const char *dir, ot_tokenizer **out, ot_error *err);
/* Byte-level tokenizer: ids 0..255 are the bytes; with_eot adds <|endoftext|> as id 256. */
ot_status ot_tokenizer_bytes_new(bool with_eot, ot_tokenizer **out, ot_error *err);
void ot_tokenizer_free(ot_tokenizer *t);

uint32_t ot_tokenizer_vocab_size(const ot_tokenizer *t);
/* The <|endoftext|> id, or UINT32_MAX when the tokenizer has none. */
uint32_t ot_tokenizer_eot(const ot_tokenizer *t);
/* Identifies the vocabulary (a hash of its files), for caches of token ids. */
uint64_t ot_tokenizer_fingerprint(const ot_tokenizer *t);

/* Encode len bytes of text (any bytes: invalid UTF-8 is encoded byte by byte, so decoding gives
** the text back).  With OT_TOKENIZE_SPECIAL, the literal text "<|endoftext|>" becomes the
** end-of-text id; otherwise it is ordinary text (as GPT-2's own encoder treats it).
** *ids is malloc'd and owned by the caller. */
#define OT_TOKENIZE_SPECIAL 1u
ot_status ot_tokenizer_encode(const ot_tokenizer *t, const char *text, size_t len, unsigned flags,
                              uint32_t **ids, size_t *count, ot_error *err);
/* Decode to bytes (*text malloc'd, NUL-terminated, owned by the caller). */
ot_status ot_tokenizer_decode(const ot_tokenizer *t, const uint32_t *ids, size_t count, char **text,
                              size_t *len, ot_error *err);
/* The bytes of one token (for streaming output); NULL and *len 0 for an id out of range. */
const char *ot_tokenizer_token(const ot_tokenizer *t, uint32_t id, size_t *len);

/* ----------------------------------------------------------------------------------------
** Data loader: a text file tokenised once (optionally cached), split into a training part and
** an evaluation tail, served as [batch, seq_len + 1] windows of token ids (inputs are the first
** seq_len, targets the last seq_len).  Training windows start every seq_len tokens and are
** visited in a seeded shuffled order, reshuffled each epoch; batches run on across epoch
** boundaries.  Evaluation windows are in file order.
*/

typedef struct ot_dataset ot_dataset;

typedef struct ot_dataset_opts {
  uint32_t batch_size;
  uint32_t seq_len;
  double eval_fraction;  /* tail of the tokens kept for evaluation, in [0, 0.5] */
  uint64_t seed;
  const char *cache_dir; /* NULL: no cache; else token ids are cached there (created if needed) */
  unsigned tokenize_flags;
} ot_dataset_opts;

typedef struct ot_dataset_state {
  uint64_t epoch;  /* completed passes over the training windows */
  uint64_t cursor; /* next window in this epoch's order */
} ot_dataset_state;

ot_status ot_dataset_open(const char *text_path, const ot_tokenizer *tok, const ot_dataset_opts *opts,
                          ot_dataset **out, ot_error *err);
/* Over token ids already in memory (copied). */
ot_status ot_dataset_from_tokens(const uint32_t *tokens, size_t count, const ot_dataset_opts *opts,
                                 ot_dataset **out, ot_error *err);
void ot_dataset_free(ot_dataset *d);

size_t ot_dataset_token_count(const ot_dataset *d);   /* all tokens */
size_t ot_dataset_train_windows(const ot_dataset *d); /* per epoch */
size_t ot_dataset_eval_batches(const ot_dataset *d);
/* Next training batch: batch_size * (seq_len + 1) ids, row-major. */
void ot_dataset_next_batch(ot_dataset *d, uint32_t *out);
/* Evaluation batch i < ot_dataset_eval_batches(d), same layout. */
ot_status ot_dataset_eval_batch(const ot_dataset *d, size_t i, uint32_t *out, ot_error *err);
/* Where the loader is, for checkpoints: setting a saved state resumes the same sequence. */
ot_dataset_state ot_dataset_get_state(const ot_dataset *d);
ot_status ot_dataset_set_state(ot_dataset *d, ot_dataset_state s, ot_error *err);
/* Whether the last ot_dataset_open used the cache (for tests and progress messages). */
bool ot_dataset_from_cache(const ot_dataset *d);

#endif
