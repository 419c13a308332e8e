/* The data loader: tokenise a text once (with an optional cache), split off an evaluation tail,
** serve shuffled [batch, seq_len + 1] training windows and in-order evaluation windows.
** dataset.h documents the cache file and the shuffle. */
#include "model/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"

struct ot_dataset {
  ot_dataset_opts opts;
  uint32_t *tokens;
  size_t count;
  size_t train_count;      /* tokens [0, train_count) train, the rest evaluate */
  size_t train_windows;    /* W */
  size_t eval_windows;
  uint32_t *order;         /* this epoch's permutation of 0..W-1 */
  ot_dataset_state state;
  bool from_cache;
};

/* ---- windows and shuffling -------------------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static void dataset_shuffle(ot_dataset *d) {
  size_t w = d->train_windows;
  for (size_t i = 0; i < w; i++) d->order[i] = (uint32_t)i;
  ot_rng r;
  ot_rng_seed(&r, mix64(d->opts.seed ^ mix64(d->state.epoch + 1)));
  for (size_t i = w - 1; i > 0; i--) {
    size_t j = (size_t)(((uint64_t)ot_rng_u32(&r) * (uint64_t)(i + 1)) >> 32);
    uint32_t t = d->order[i];
    d->order[i] = d->order[j];
    d->order[j] = t;
  }
}

static ot_status dataset_check_opts(const ot_dataset_opts *o, ot_error *err) {
  if (!o) return ot_error_set(err, OT_EINVAL, "dataset: NULL options");
  if (o->batch_size < 1 || o->seq_len < 1)
    return ot_error_set(err, OT_EINVAL, "dataset: batch_size %u and seq_len %u must both be at least 1",
                        o->batch_size, o->seq_len);
  if (!(o->eval_fraction >= 0.0 && o->eval_fraction <= 0.5))
    return ot_error_set(err, OT_ERANGE, "dataset: eval_fraction %g, expected 0..0.5", o->eval_fraction);
  return OT_OK;
}

/* Split and size; takes ownership of tokens. */
static ot_status dataset_build(ot_dataset *d, const char *origin, ot_error *err) {
  size_t s = d->opts.seq_len, b = d->opts.batch_size;
  size_t n_eval = (size_t)((double)d->count * d->opts.eval_fraction);
  d->train_count = d->count - n_eval;
  d->train_windows = d->train_count > s ? (d->train_count - 1) / s : 0;
  d->eval_windows = n_eval > s ? (n_eval - 1) / s : 0;
  if (d->train_windows == 0)
    return ot_error_set(err, OT_EINVAL, "%s: %zu training tokens, need at least seq_len + 1 = %zu for one window",
                        origin, d->train_count, s + 1);
  if (d->train_windows > UINT32_MAX)
    return ot_error_set(err, OT_ERANGE, "%s: %zu training windows, at most %u", origin, d->train_windows, UINT32_MAX);
  if (d->opts.eval_fraction > 0 && d->eval_windows < b)
    return ot_error_set(err, OT_EINVAL, "%s: the evaluation tail (%zu tokens) holds %zu windows of seq_len + 1 = %zu, "
                        "fewer than one batch of %zu; raise eval_fraction or lower seq_len/batch_size", origin, n_eval,
                        d->eval_windows, s + 1, b);
  d->order = malloc(d->train_windows * sizeof *d->order);
  if (!d->order) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin);
  dataset_shuffle(d);
  return OT_OK;
}

ot_status ot_dataset_from_tokens(const uint32_t *tokens, size_t count, const ot_dataset_opts *opts,
                                 ot_dataset **out, ot_error *err) {
  *out = NULL;
  ot_status s = dataset_check_opts(opts, err);
  if (s != OT_OK) return s;
  ot_dataset *d = calloc(1, sizeof *d);
  if (!d) return ot_error_set(err, OT_ENOMEM, "dataset: out of memory");
  d->opts = *opts;
  d->opts.cache_dir = NULL;
  d->count = count;
  d->tokens = malloc((count ? count : 1) * sizeof *d->tokens);
  if (!d->tokens) s = ot_error_set(err, OT_ENOMEM, "dataset: out of memory for %zu tokens", count);
  else memcpy(d->tokens, tokens, count * sizeof *tokens);
  if (s == OT_OK) s = dataset_build(d, "dataset", err);
  if (s != OT_OK) { ot_dataset_free(d); return s; }
  *out = d;
  return OT_OK;
}

void ot_dataset_free(ot_dataset *d) {
  if (!d) return;
  free(d->tokens);
  free(d->order);
  free(d);
}

size_t ot_dataset_token_count(const ot_dataset *d) { return d ? d->count : 0; }
size_t ot_dataset_train_windows(const ot_dataset *d) { return d ? d->train_windows : 0; }
size_t ot_dataset_eval_batches(const ot_dataset *d) { return d ? d->eval_windows / d->opts.batch_size : 0; }
bool ot_dataset_from_cache(const ot_dataset *d) { return d && d->from_cache; }
ot_dataset_state ot_dataset_get_state(const ot_dataset *d) { return d->state; }

ot_status ot_dataset_set_state(ot_dataset *d, ot_dataset_state s, ot_error *err) {
  if (s.cursor > d->train_windows)
    return ot_error_set(err, OT_ERANGE, "dataset: state cursor %llu, expected 0..%zu (a checkpoint from another "
                        "dataset or seq_len?)", (unsigned long long)s.cursor, d->train_windows);
  d->state = s;
  dataset_shuffle(d);
  return OT_OK;
}

void ot_dataset_next_batch(ot_dataset *d, uint32_t *out) {
  size_t s = d->opts.seq_len;
  for (uint32_t b = 0; b < d->opts.batch_size; b++) {
    if (d->state.cursor >= d->train_windows) { /* epoch done: the next one has its own order */
      d->state.epoch++;
      d->state.cursor = 0;
      dataset_shuffle(d);
    }
    size_t w = d->order[d->state.cursor++];
    memcpy(out + (size_t)b * (s + 1), d->tokens + w * s, (s + 1) * sizeof *out);
  }
}

ot_status ot_dataset_eval_batch(const ot_dataset *d, size_t i, uint32_t *out, ot_error *err) {
  size_t n = ot_dataset_eval_batches(d), s = d->opts.seq_len, b = d->opts.batch_size;
  if (i >= n) return ot_error_set(err, OT_ERANGE, "dataset: evaluation batch %zu, expected 0..%zu", i, n ? n - 1 : 0);
  for (size_t k = 0; k < b; k++)
    memcpy(out + k * (s + 1), d->tokens + d->train_count + (i * b + k) * s, (s + 1) * sizeof *out);
  return OT_OK;
}

/* ---- the token cache -------------------------------------------------------------------- */

typedef struct {
  uint64_t fingerprint, text_size, text_hash, flags;
} cache_key;

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void cache_path(const char *dir, const char *text_path, uint64_t fingerprint, char *buf, size_t cap) {
  const char *base = strrchr(text_path, '/');
  snprintf(buf, cap, "%s/%s.%016llx.tok", dir, base ? base + 1 : text_path, (unsigned long long)fingerprint);
}

/* The cached ids when the file matches key exactly; false (and nothing allocated) otherwise. */
static bool cache_read(const char *path, const cache_key *key, uint32_t **ids, size_t *count) {
  char *data = NULL;
  size_t size = 0;
  if (ot_file_read(path, &data, &size, NULL) != OT_OK) return false;
  const uint8_t *p = (const uint8_t *)data;
  bool ok = size >= DATASET_CACHE_HEADER && !memcmp(p, DATASET_CACHE_MAGIC, 8) && get64(p + 8) == key->fingerprint &&
            get64(p + 16) == key->text_size && get64(p + 24) == key->text_hash && get64(p + 32) == key->flags;
  uint64_t n = ok ? get64(p + 40) : 0;
  ok = ok && n <= (size - DATASET_CACHE_HEADER) / 4 && DATASET_CACHE_HEADER + 4 * n == size;
  uint32_t *v = ok ? malloc((n ? n : 1) * sizeof *v) : NULL;
  for (uint64_t i = 0; v && i < n; i++) {
    const uint8_t *q = p + DATASET_CACHE_HEADER + 4 * i;
    v[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
  }
  free(data);
  if (!v) return false;
  *ids = v;
  *count = (size_t)n;
  return true;
}

static ot_status cache_write(const char *dir, const char *path, const cache_key *key, const uint32_t *ids, size_t n,
                             ot_error *err) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return ot_error_set(err, OT_EIO, "%s: cannot create the token cache directory: %s", dir, strerror(errno));
  size_t size = DATASET_CACHE_HEADER + 4 * n;
  uint8_t *b = malloc(size);
  if (!b) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path);
  memcpy(b, DATASET_CACHE_MAGIC, 8);
  put64(b + 8, key->fingerprint);
  put64(b + 16, key->text_size);
  put64(b + 24, key->text_hash);
  put64(b + 32, key->flags);
  put64(b + 40, n);
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) b[DATASET_CACHE_HEADER + 4 * i + (size_t)k] = (uint8_t)(ids[i] >> (8 * k));
  ot_status s = ot_file_write_atomic(path, b, size, err);
  free(b);
  return s;
}

static uint64_t text_hash(const char *p, size_t n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * UINT64_C(0x100000001b3);
  return h;
}

ot_status ot_dataset_open(const char *text_path, const ot_tokenizer *tok, const ot_dataset_opts *opts,
                          ot_dataset **out, ot_error *err) {
  *out = NULL;
  ot_status s = dataset_check_opts(opts, err);
  if (s != OT_OK) return s;
  char *text = NULL;
  size_t size = 0;
  s = ot_file_read(text_path, &text, &size, err);
  if (s != OT_OK) return s;
  cache_key key = {ot_tokenizer_fingerprint(tok), size, text_hash(text, size), opts->tokenize_flags};
  char cpath[4096];
  uint32_t *ids = NULL;
  size_t n = 0;
  bool cached = false;
  if (opts->cache_dir) {
    cache_path(opts->cache_dir, text_path, key.fingerprint, cpath, sizeof cpath);
    cached = cache_read(cpath, &key, &ids, &n);
  }
  if (!cached) s = ot_tokenizer_encode(tok, text, size, opts->tokenize_flags, &ids, &n, err);
  free(text);
  /* A cache that cannot be written costs time next run, never this run: the error is dropped. */
  if (s == OT_OK && !cached && opts->cache_dir) cache_write(opts->cache_dir, cpath, &key, ids, n, NULL);
  ot_dataset *d = s == OT_OK ? calloc(1, sizeof *d) : NULL;
  if (s == OT_OK && !d) s = ot_error_set(err, OT_ENOMEM, "dataset: out of memory");
  if (s != OT_OK) { free(ids); return s; }
  d->opts = *opts;
  d->opts.cache_dir = NULL;
  d->tokens = ids;
  d->count = n;
  d->from_cache = cached;
  s = dataset_build(d, text_path, err);
  if (s != OT_OK) { ot_dataset_free(d); return s; }
  *out = d;
  return OT_OK;
}
