/* Training on the simulated chip (train.h): the training-step program, the schedule, evaluation,
** checkpoints, and greedy generation for the demo. */
#include "model/train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <opentrn/compile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/model_graph.h"
#include "util/fileio.h"

#define TRAIN_STATE_FORMAT "opentrn-train-state"

struct trainer {
  train_opts o;
  ot_model_config cfg;
  ot_tokenizer *tok;
  ot_dataset *ds;
  ot_chip *chip;
  ot_device *dev;       /* the training step (all its cores): weights and moments live here */
  uint32_t cores;       /* NeuronCores of the training step (data-parallel when above 1) */
  char loss_name[24];   /* "loss", or core 0's all-reduced "loss@c0" */
  ot_device *eval_dev;  /* forward + loss, [batch, seq] (made on first use) */
  ot_device *gen_dev;   /* forward, [1, seq] (made on first use) */
  ot_model_tensor_spec *specs;
  size_t n_specs;
  uint32_t step;
  uint32_t *window;     /* [batch, seq + 1] */
  int32_t *ids, *targets;
  float *scratch;       /* the largest tensor, for copies between devices */
  uint64_t scratch_count;
  uint64_t fwd_flops;   /* analytic forward FLOPs of one batch */
  train_totals tot;
  char resume_weights[512];
};

/* ---- options and schedule ----------------------------------------------------------------- */

void train_opts_default(train_opts *o) {
  memset(o, 0, sizeof *o);
  o->model = "gpt2-tiny";
  o->chip = "trn2";
  o->steps = 100;
  o->batch = 8;
  o->seq = 64;
  o->warmup = 10;
  o->lr = 1e-3;
  o->min_lr = 1e-4;
  o->weight_decay = 0.1;
  o->max_norm = 1.0;
  o->eps = 1e-8;
  o->beta1 = 0.9f;
  o->beta2 = 0.95f;
  o->seed = 1;
  o->eval_batches = 8;
  o->eval_fraction = 0.05;
  o->cores = 1;
}

double train_lr(const train_opts *o, uint32_t s) {
  if (s < o->warmup) return o->lr * (double)(s + 1) / (double)o->warmup;
  uint32_t decay = o->steps > o->warmup ? o->steps - o->warmup : 1;
  double p = (double)(s - o->warmup) / (double)decay;
  if (p > 1.0) p = 1.0;
  return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(3.14159265358979323846 * p));
}

void train_hyper(const train_opts *o, uint32_t s, float hyper[6]) {
  double t = (double)s + 1.0;
  hyper[0] = (float)train_lr(o, s);
  hyper[1] = (float)o->weight_decay;
  hyper[2] = (float)o->eps;
  hyper[3] = (float)(1.0 / (1.0 - pow((double)o->beta1, t)));
  hyper[4] = (float)(1.0 / (1.0 - pow((double)o->beta2, t)));
  hyper[5] = (float)o->max_norm;
}

static double train_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- devices ------------------------------------------------------------------------------- */

static ot_status dev_fail(ot_device *d, const char *what, ot_error *err) {
  return ot_error_set(err, ot_device_last_status(d) ? ot_device_last_status(d) : OT_EINVAL, "%s: %s", what,
                      ot_device_last_error(d));
}

/* Refuse, before compiling, a graph whose tensors cannot all be in the chip's HBM at once. */
static ot_status train_check_fits(const trainer *t, const model_graph *mg, uint32_t batch, uint32_t cores,
                                  ot_error *err) {
  double hbm = 0, gib = 1024.0 * 1024.0 * 1024.0;
  ot_error e;
  uint64_t need = model_graph_tensor_bytes(mg), params = ot_model_config_param_count(&t->cfg);
  if (cores > 1) need += (uint64_t)(cores - 1) * params * 4; /* each core's own fp32 gradients */
  if (ot_chip_get(t->chip, "hbm.bytes", &hbm, &e) || (double)need <= hbm) return OT_OK;
  return ot_error_set(err, OT_ERANGE,
                      "model %s with batch %u x sequence %u needs %.2f GiB of device HBM for its tensors "
                      "(%.2f GiB of fp32 weights, as much again per AdamW moment and for the gradients, the rest "
                      "activations) but chip %s has %.2f GiB: lower --batch or --seq, or use a smaller model",
                      t->cfg.name, batch, t->o.seq, (double)need / gib, (double)params * 4 / gib,
                      ot_chip_name(t->chip), hbm / gib);
}

/* Build, compile and load a model graph of kind on a fresh device; the training step across
** t->cores cores (data-parallel), evaluation and generation on one. */
static ot_status train_device_make(trainer *t, model_graph_kind kind, uint32_t batch, ot_device **out, ot_error *err) {
  uint32_t cores = kind == MODEL_GRAPH_TRAIN ? t->cores : 1;
  model_graph_opts go;
  model_graph mg;
  model_graph_opts_default(&go, batch, t->o.seq, kind);
  go.beta1 = t->o.beta1;
  go.beta2 = t->o.beta2;
  if (model_graph_build(&t->cfg, &go, &mg, err)) return err->code;
  if (train_check_fits(t, &mg, batch, cores, err)) {
    model_graph_free(&mg);
    return err->code;
  }
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.matmul_dtype = t->o.fp32 ? OT_DT_FP32 : OT_DT_BF16;
  ot_program *prog = NULL;
  ot_status s = cores > 1 ? ot_compile_data_parallel(mg.g, t->chip, cores, &co, &prog, err)
                          : ot_compile(mg.g, t->chip, &co, &prog, err);
  model_graph_free(&mg);
  if (s) return s;
  s = ot_device_open_chip(t->chip, out, err);
  if (!s && ot_device_load(*out, prog))
    s = ot_error_set(err, ot_device_last_status(*out),
                     "model %s (batch %u, sequence %u) does not fit chip %s: %s", t->cfg.name, batch, t->o.seq,
                     ot_chip_name(t->chip), ot_device_last_error(*out));
  ot_program_free(prog);
  return s;
}

static ot_status train_write_tensor(ot_device *d, const char *name, const float *v, uint64_t n, ot_error *err) {
  if (ot_device_write(d, name, OT_DT_FP32, v, (size_t)n * sizeof(float))) return dev_fail(d, "writing weights", err);
  return OT_OK;
}

/* Copy every weight from the training device to d. */
static ot_status train_copy_weights(trainer *t, ot_device *d, ot_error *err) {
  for (size_t i = 0; i < t->n_specs; i++) {
    const ot_model_tensor_spec *s = &t->specs[i];
    uint64_t n = s->shape[0] * (s->ndim > 1 ? s->shape[1] : 1);
    if (ot_device_read(t->dev, s->name, OT_DT_FP32, t->scratch, (size_t)n * sizeof(float)))
      return dev_fail(t->dev, "reading weights", err);
    if (train_write_tensor(d, s->name, t->scratch, n, err)) return err->code;
  }
  return OT_OK;
}

/* ---- weights and checkpoints ---------------------------------------------------------------- */

static uint64_t spec_count(const ot_model_tensor_spec *s) { return s->shape[0] * (s->ndim > 1 ? s->shape[1] : 1); }

/* Weights from p, moments from st (a checkpoint) or zero. */
static ot_status train_write_state(trainer *t, const ot_model_params *p, const ot_safetensors *st, ot_error *err) {
  char name[OT_TENSOR_NAME_MAX + 8];
  memset(t->scratch, 0, (size_t)t->scratch_count * sizeof(float));
  for (size_t i = 0; i < p->count; i++) {
    const ot_model_param *w = &p->params[i];
    if (train_write_tensor(t->dev, w->name, w->data, w->count, err)) return err->code;
    for (int k = 0; k < 2; k++) {
      snprintf(name, sizeof name, "%s.%c", w->name, k ? 'v' : 'm');
      if (st && ot_safetensors_read_f32(st, name, t->scratch, w->count, err)) return err->code;
      if (train_write_tensor(t->dev, name, t->scratch, w->count, err)) return err->code;
    }
  }
  return OT_OK;
}

static ot_status train_init_weights(trainer *t, ot_error *err) {
  ot_model_params p;
  ot_safetensors *st = NULL;
  ot_status s;
  if (t->resume_weights[0]) {
    s = ot_model_params_alloc(&t->cfg, &p, err);
    if (!s) s = ot_safetensors_open(t->resume_weights, &st, err);
    for (size_t i = 0; !s && i < p.count; i++)
      s = ot_safetensors_read_f32(st, p.params[i].name, p.params[i].data, p.params[i].count, err);
  } else if (t->o.init) {
    s = ot_model_params_load(&t->cfg, t->o.init, &p, err);
  } else {
    s = ot_model_params_alloc(&t->cfg, &p, err);
    if (!s) ot_model_params_init(&p, t->o.seed);
  }
  if (!s) s = train_write_state(t, &p, st, err);
  ot_safetensors_close(st);
  ot_model_params_free(&p);
  return s;
}

ot_status train_params(trainer *t, ot_model_params *p, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  if (ot_model_params_alloc(&t->cfg, p, err)) return err->code;
  for (size_t i = 0; i < p->count; i++)
    if (ot_device_read(t->dev, p->params[i].name, OT_DT_FP32, p->params[i].data, (size_t)p->params[i].count * 4)) {
      ot_model_params_free(p);
      return dev_fail(t->dev, "reading weights", err);
    }
  return OT_OK;
}

/* Every weight and both moments, fp32, read back from the device. */
static ot_status train_save_weights(trainer *t, const char *path, ot_error *err) {
  size_t n = t->n_specs * 3;
  ot_st_tensor *ts = calloc(n, sizeof *ts);
  char (*names)[OT_TENSOR_NAME_MAX + 8] = calloc(n, sizeof *names);
  ot_status s = (!ts || !names) ? ot_error_set(err, OT_ENOMEM, "checkpoint: out of memory") : OT_OK;
  for (size_t i = 0; !s && i < n; i++) {
    const ot_model_tensor_spec *sp = &t->specs[i / 3];
    snprintf(names[i], sizeof names[i], "%s%s", sp->name, i % 3 == 0 ? "" : i % 3 == 1 ? ".m" : ".v");
    float *buf = malloc((size_t)spec_count(sp) * sizeof(float));
    ts[i] = (ot_st_tensor){.name = names[i], .dtype = OT_DT_FP32, .ndim = sp->ndim, .data = buf};
    ts[i].shape[0] = sp->shape[0];
    ts[i].shape[1] = sp->shape[1];
    if (!buf) s = ot_error_set(err, OT_ENOMEM, "checkpoint: out of memory");
    else if (ot_device_read(t->dev, names[i], OT_DT_FP32, buf, (size_t)spec_count(sp) * 4))
      s = dev_fail(t->dev, "checkpoint: reading device tensors", err);
  }
  const char *meta[] = {"format", "opentrn-checkpoint", NULL};
  if (!s) s = ot_safetensors_save(path, ts, n, OT_DT_COUNT, meta, err);
  for (size_t i = 0; ts && i < n; i++) free((void *)ts[i].data);
  free(ts);
  free(names);
  return s;
}

static ot_status train_save_state(trainer *t, const char *dir, const char *weights_file, ot_error *err) {
  char path[1024], buf[2048];
  ot_dataset_state ds = ot_dataset_get_state(t->ds);
  int n = snprintf(buf, sizeof buf,
                   "{\n  \"format\": \"%s\",\n  \"version\": 1,\n  \"step\": %u,\n  \"steps\": %u,\n"
                   "  \"weights\": \"%s\",\n  \"model\": \"%s\",\n  \"batch\": %u,\n  \"seq\": %u,\n"
                   "  \"seed\": %llu,\n  \"data_epoch\": %llu,\n  \"data_cursor\": %llu\n}\n",
                   TRAIN_STATE_FORMAT, t->step, t->o.steps, weights_file, t->cfg.name, t->o.batch, t->o.seq,
                   (unsigned long long)t->o.seed, (unsigned long long)ds.epoch, (unsigned long long)ds.cursor);
  snprintf(path, sizeof path, "%s/state.json", dir);
  return ot_file_write_atomic(path, buf, (size_t)n, err);
}

/* The weights file the current state.json of dir names ("" if none): removed once a newer
** checkpoint is committed. */
static void train_old_weights(const char *dir, char *file, size_t cap) {
  char path[1024], *text = NULL;
  size_t len;
  ot_error e;
  file[0] = '\0';
  snprintf(path, sizeof path, "%s/state.json", dir);
  if (ot_file_read(path, &text, &len, &e)) return;
  cJSON *j = cJSON_ParseWithLength(text, len);
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "weights");
  if (cJSON_IsString(w) && !strchr(w->valuestring, '/')) snprintf(file, cap, "%s", w->valuestring);
  cJSON_Delete(j);
  free(text);
}

ot_status train_save(trainer *t, const char *dir, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  char file[64], path[1024];
  if (mkdir(dir, 0755) && errno != EEXIST)
    return ot_error_set(err, OT_EIO, "checkpoint: cannot create directory %s: %s", dir, strerror(errno));
  char old[256];
  train_old_weights(dir, old, sizeof old);
  snprintf(file, sizeof file, "model-%08u.safetensors", t->step);
  snprintf(path, sizeof path, "%s/%s", dir, file);
  if (train_save_weights(t, path, err)) return err->code;
  snprintf(path, sizeof path, "%s/config.json", dir);
  if (ot_model_config_save(&t->cfg, path, err)) return err->code;
  if (train_save_state(t, dir, file, err)) return err->code;
  if (old[0] && strcmp(old, file)) {
    snprintf(path, sizeof path, "%s/%s", dir, old);
    remove(path);
  }
  return OT_OK;
}

static ot_status json_u64(const cJSON *j, const char *key, const char *origin, uint64_t *out, ot_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!cJSON_IsNumber(v) || v->valuedouble < 0)
    return ot_error_set(err, OT_EINVAL, "%s: \"%s\" missing or not a non-negative number", origin, key);
  *out = (uint64_t)v->valuedouble;
  return OT_OK;
}

/* Read <dir>/state.json and config.json into t (before anything is compiled). */
static ot_status train_read_resume(trainer *t, const char *dir, ot_dataset_state *ds, ot_error *err) {
  char path[1024], *text = NULL;
  size_t len;
  snprintf(path, sizeof path, "%s/state.json", dir);
  if (ot_file_read(path, &text, &len, err)) return err->code;
  cJSON *j = cJSON_ParseWithLength(text, len);
  free(text);
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "weights");
  uint64_t step = 0, batch = 0, seq = 0, seed = 0;
  ot_status s = OT_OK;
  if (!j || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, TRAIN_STATE_FORMAT) || !cJSON_IsString(w) ||
      strchr(w->valuestring, '/'))
    s = ot_error_set(err, OT_EINVAL, "%s: not an OpenTRN training state (expected \"format\": \"%s\" and a "
                     "\"weights\" file name)", path, TRAIN_STATE_FORMAT);
  if (!s) s = json_u64(j, "step", path, &step, err);
  if (!s) s = json_u64(j, "batch", path, &batch, err);
  if (!s) s = json_u64(j, "seq", path, &seq, err);
  if (!s) s = json_u64(j, "seed", path, &seed, err);
  if (!s) s = json_u64(j, "data_epoch", path, &ds->epoch, err);
  if (!s) s = json_u64(j, "data_cursor", path, &ds->cursor, err);
  if (!s) {
    t->step = (uint32_t)step;
    t->o.batch = (uint32_t)batch;
    t->o.seq = (uint32_t)seq;
    t->o.seed = seed;
    snprintf(t->resume_weights, sizeof t->resume_weights, "%s/%s", dir, w->valuestring);
  }
  cJSON_Delete(j);
  if (!s) s = ot_model_config_load(dir, &t->cfg, err);
  return s;
}

/* ---- opening -------------------------------------------------------------------------------- */

static ot_status train_open_tokenizer(trainer *t, ot_error *err) {
  uint32_t v = t->cfg.vocab_size;
  if (!t->o.data && v > 257) return OT_OK; /* token ids given: no BPE files needed */
  ot_status s = v <= 257 ? ot_tokenizer_bytes_new(v == 257, &t->tok, err)
                         : ot_tokenizer_load_dir(t->o.tokenizer_dir ? t->o.tokenizer_dir : "data/gpt2", &t->tok, err);
  if (s) return s;
  if (ot_tokenizer_vocab_size(t->tok) > v)
    return ot_error_set(err, OT_EINVAL, "model %s: vocabulary %u is smaller than the tokenizer's %u", t->cfg.name, v,
                        ot_tokenizer_vocab_size(t->tok));
  return OT_OK;
}

static ot_status train_open_data(trainer *t, ot_error *err) {
  ot_dataset_opts d = {t->o.batch, t->o.seq, t->o.eval_fraction, t->o.seed, t->o.cache_dir, 0};
  if (t->o.data) return ot_dataset_open(t->o.data, t->tok, &d, &t->ds, err);
  if (!t->o.tokens) return ot_error_set(err, OT_EINVAL, "train: no data (a text file or tokens)");
  return ot_dataset_from_tokens(t->o.tokens, t->o.n_tokens, &d, &t->ds, err);
}

static ot_status train_alloc(trainer *t, ot_error *err) {
  if (ot_model_tensor_specs(&t->cfg, &t->specs, &t->n_specs, err)) return err->code;
  for (size_t i = 0; i < t->n_specs; i++)
    if (spec_count(&t->specs[i]) > t->scratch_count) t->scratch_count = spec_count(&t->specs[i]);
  size_t rows = (size_t)t->o.batch * t->o.seq;
  t->window = malloc(((size_t)t->o.batch * (t->o.seq + 1)) * sizeof *t->window);
  t->ids = malloc(rows * sizeof *t->ids);
  t->targets = malloc(rows * sizeof *t->targets);
  t->scratch = malloc((size_t)t->scratch_count * sizeof(float));
  if (!t->window || !t->ids || !t->targets || !t->scratch) return ot_error_set(err, OT_ENOMEM, "train: out of memory");
  t->fwd_flops = model_graph_forward_flops(&t->cfg, t->o.batch, t->o.seq);
  t->tot.last_eval = -1;
  return OT_OK;
}

/* o.cores against the chip; the global batch must divide among them. */
static ot_status train_resolve_cores(trainer *t, ot_error *err) {
  uint32_t have = (uint32_t)ot_chip_cores(t->chip), want = t->o.cores;
  t->cores = want == TRAIN_CORES_ALL ? have : want ? want : 1;
  if (t->cores > have)
    return ot_error_set(err, OT_EINVAL, "train: --cores %u: chip %s has %u NeuronCores", t->cores,
                        ot_chip_name(t->chip), have);
  if (t->o.batch % t->cores)
    return ot_error_set(err, OT_EINVAL,
                        "train: global batch %u does not divide among %u NeuronCores (each core takes batch / cores "
                        "rows): use a batch that is a multiple of %u",
                        t->o.batch, t->cores, t->cores);
  snprintf(t->loss_name, sizeof t->loss_name, t->cores > 1 ? "loss@c0" : "loss");
  return OT_OK;
}

static ot_status train_open_parts(trainer *t, ot_error *err) {
  ot_dataset_state ds = {0, 0};
  if (t->o.resume_dir) {
    if (train_read_resume(t, t->o.resume_dir, &ds, err)) return err->code;
  } else if (t->o.config) { /* already copied into t->cfg by train_open */
    if (ot_model_config_validate(&t->cfg, t->cfg.name, err)) return err->code;
  } else if (ot_model_config_load(t->o.model, &t->cfg, err)) {
    return err->code;
  }
  if (t->o.seq > t->cfg.max_position_embeddings)
    return ot_error_set(err, OT_EINVAL, "model %s: sequence length %u is longer than the context (max_position_embeddings %u)",
                        t->cfg.name, t->o.seq, t->cfg.max_position_embeddings);
  if (t->o.steps < t->step)
    return ot_error_set(err, OT_EINVAL, "train: the checkpoint is at step %u, past --steps %u", t->step, t->o.steps);
  /* the program first: a model the chip cannot hold is refused before any data is read */
  if (ot_chip_open(t->o.chip, &t->chip, err) || train_resolve_cores(t, err)) return err->code;
  if (train_device_make(t, MODEL_GRAPH_TRAIN, t->o.batch, &t->dev, err)) return err->code;
  if (train_open_tokenizer(t, err) || train_open_data(t, err)) return err->code;
  if (t->o.resume_dir && ot_dataset_set_state(t->ds, ds, err)) return err->code;
  if (train_alloc(t, err)) return err->code;
  return train_init_weights(t, err);
}

ot_status train_open(const train_opts *o, trainer **out, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  *out = NULL;
  trainer *t = calloc(1, sizeof *t);
  if (!t) return ot_error_set(err, OT_ENOMEM, "train: out of memory");
  t->o = *o;
  t->o.config = NULL; /* copied in train_open_parts; the caller's may go */
  if (o->config && !o->resume_dir) {
    t->cfg = *o->config;
    t->o.config = &t->cfg;
  }
  if (!t->o.chip) t->o.chip = "trn2";
  if (!t->o.batch || !t->o.seq || !t->o.steps) {
    free(t);
    return ot_error_set(err, OT_EINVAL, "train: batch, sequence length and steps must be at least 1");
  }
  ot_status s = train_open_parts(t, err);
  if (s) {
    train_free(t);
    return s;
  }
  *out = t;
  return OT_OK;
}

void train_free(trainer *t) {
  if (!t) return;
  ot_device_close(t->dev);
  ot_device_close(t->eval_dev);
  ot_device_close(t->gen_dev);
  ot_chip_free(t->chip);
  ot_dataset_free(t->ds);
  ot_tokenizer_free(t->tok);
  free(t->specs);
  free(t->window);
  free(t->ids);
  free(t->targets);
  free(t->scratch);
  free(t);
}

const ot_model_config *train_config(const trainer *t) { return &t->cfg; }
const ot_tokenizer *train_tokenizer(const trainer *t) { return t->tok; }
uint32_t train_step_count(const trainer *t) { return t->step; }
uint32_t train_cores(const trainer *t) { return t->cores; }
void train_get_totals(const trainer *t, train_totals *out) { *out = t->tot; }

/* ---- steps ---------------------------------------------------------------------------------- */

/* Window [batch, seq + 1] into ids [batch, seq] and targets [batch * seq]. */
static void train_split_window(trainer *t, const uint32_t *w) {
  uint32_t S = t->o.seq;
  for (uint32_t b = 0; b < t->o.batch; b++)
    for (uint32_t s = 0; s < S; s++) {
      t->ids[b * S + s] = (int32_t)w[b * (S + 1) + s];
      t->targets[b * S + s] = (int32_t)w[b * (S + 1) + s + 1];
    }
}

/* The batch into d: "ids" and "targets", or on the data-parallel training device core c's rows
** [c * batch / cores, (c + 1) * batch / cores) into "ids@c<c>" and "targets@c<c>". */
static ot_status train_write_batch(trainer *t, ot_device *d, const uint32_t *w, ot_error *err) {
  uint32_t cores = d == t->dev ? t->cores : 1;
  size_t rows = (size_t)t->o.batch / cores * t->o.seq, bytes = rows * sizeof(int32_t);
  char ids[32], targets[32];
  train_split_window(t, w);
  for (uint32_t c = 0; c < cores; c++) {
    snprintf(ids, sizeof ids, "ids@c%u", c);
    snprintf(targets, sizeof targets, "targets@c%u", c);
    if (cores == 1) ids[3] = targets[7] = 0; /* a single-core program's plain names */
    if (ot_device_write(d, ids, OT_DT_INT32, t->ids + c * rows, bytes) ||
        ot_device_write(d, targets, OT_DT_INT32, t->targets + c * rows, bytes))
      return dev_fail(d, "writing the batch", err);
  }
  return OT_OK;
}

static void train_account(trainer *t, train_step_info *info, const ot_run_summary *sm) {
  double sec = (double)sm->time_ps * 1e-12;
  info->sim_ps = sm->time_ps;
  info->cores = t->cores;
  info->mfu_chip = sm->mfu * (double)t->cores / (double)ot_chip_cores(t->chip);
  info->tokens_per_s = sec > 0 ? (double)t->o.batch * t->o.seq / sec : 0;
  info->mfu = sm->mfu;
  info->mfu_6n = sm->model_flops ? sm->mfu * (3.0 * (double)t->fwd_flops) / (double)sm->model_flops : 0;
  if (!t->tot.steps) t->tot.first_loss = info->loss;
  t->tot.steps++;
  t->tot.sim_ps += sm->time_ps;
  t->tot.tokens += (uint64_t)t->o.batch * t->o.seq;
  t->tot.wall_s += info->wall_s;
  t->tot.mfu_sum += info->mfu;
  t->tot.mfu_6n_sum += info->mfu_6n;
  t->tot.mfu_chip_sum += info->mfu_chip;
  t->tot.allreduce_ps += info->allreduce_ps;
  t->tot.last_loss = info->loss;
}

ot_status train_step_on(trainer *t, const uint32_t *window, train_step_info *info, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  double t0 = train_now();
  float hyper[6];
  ot_run_options ro;
  ot_run_summary sm;
  memset(info, 0, sizeof *info);
  train_hyper(&t->o, t->step, hyper);
  if (train_write_batch(t, t->dev, window, err)) return err->code;
  if (ot_device_write(t->dev, "hyper", OT_DT_FP32, hyper, sizeof hyper)) return dev_fail(t->dev, "writing hyper", err);
  ot_run_options_default(&ro);
  if (ot_device_run(t->dev, &ro) || ot_device_read(t->dev, t->loss_name, OT_DT_FP32, &info->loss, 4) ||
      ot_device_read(t->dev, "grad_norm", OT_DT_FP32, &info->grad_norm, 4) || ot_device_summary(t->dev, &sm))
    return dev_fail(t->dev, "training step", err);
  if (t->cores > 1 && ot_device_tag_time(t->dev, "allreduce", &info->allreduce_ps, NULL))
    return dev_fail(t->dev, "device statistics", err);
  t->step++;
  info->step = t->step;
  info->lr = hyper[0];
  info->wall_s = train_now() - t0;
  train_account(t, info, &sm);
  return OT_OK;
}

ot_status train_step(trainer *t, train_step_info *info, ot_error *err) {
  ot_dataset_next_batch(t->ds, t->window);
  return train_step_on(t, t->window, info, err);
}

ot_status train_eval(trainer *t, double *loss, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  size_t n = ot_dataset_eval_batches(t->ds);
  if (n > t->o.eval_batches) n = t->o.eval_batches;
  if (!n) return ot_error_set(err, OT_EINVAL, "train: no held-out batch of %u x %u tokens (eval fraction %g)",
                              t->o.batch, t->o.seq + 1, t->o.eval_fraction);
  if (!t->eval_dev && train_device_make(t, MODEL_GRAPH_LOSS, t->o.batch, &t->eval_dev, err)) return err->code;
  if (train_copy_weights(t, t->eval_dev, err)) return err->code;
  double sum = 0;
  ot_run_options ro;
  ot_run_options_default(&ro);
  for (size_t i = 0; i < n; i++) {
    float l;
    if (ot_dataset_eval_batch(t->ds, i, t->window, err) || train_write_batch(t, t->eval_dev, t->window, err))
      return err->code;
    if (ot_device_run(t->eval_dev, &ro) || ot_device_read(t->eval_dev, "loss", OT_DT_FP32, &l, 4))
      return dev_fail(t->eval_dev, "evaluation", err);
    sum += l;
  }
  *loss = sum / (double)n;
  t->tot.last_eval = *loss;
  return OT_OK;
}

/* ---- generation ------------------------------------------------------------------------------ */

static uint32_t argmax_row(const float *v, uint32_t n) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return best;
}

/* Greedy (temperature 0) or sampled from softmax(v / temperature), in double. */
static uint32_t pick_id(const float *v, uint32_t n, double temperature, ot_rng *rng) {
  uint32_t best = argmax_row(v, n);
  if (temperature <= 0) return best;
  double sum = 0, u = (double)ot_rng_u32(rng) / 4294967296.0;
  for (uint32_t i = 0; i < n; i++) sum += exp(((double)v[i] - v[best]) / temperature);
  double acc = 0;
  for (uint32_t i = 0; i < n; i++) {
    acc += exp(((double)v[i] - v[best]) / temperature) / sum;
    if (u < acc) return i;
  }
  return best;
}

/* The logits after ctx (n ids, 1 <= n <= seq): the window padded with zeros, row n-1 of the
** logits (causal attention: later positions do not change it). */
static ot_status train_next_logits(trainer *t, const uint32_t *ctx, size_t n, const float **row, ot_error *err) {
  uint32_t S = t->o.seq, V = t->cfg.vocab_size;
  ot_run_options ro;
  ot_run_options_default(&ro);
  for (uint32_t s = 0; s < S; s++) t->ids[s] = s < n ? (int32_t)ctx[s] : 0;
  if (ot_device_write(t->gen_dev, "ids", OT_DT_INT32, t->ids, (size_t)S * 4) || ot_device_run(t->gen_dev, &ro) ||
      ot_device_read(t->gen_dev, "logits", OT_DT_FP32, t->scratch, (size_t)S * V * 4))
    return dev_fail(t->gen_dev, "generation", err);
  *row = t->scratch + (n - 1) * V;
  return OT_OK;
}

ot_status train_generate(trainer *t, const uint32_t *prompt, size_t n, size_t max_new, double temperature,
                         uint64_t seed, uint32_t **out, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  if (!n) return ot_error_set(err, OT_EINVAL, "generate: empty prompt");
  if (!t->gen_dev && train_device_make(t, MODEL_GRAPH_FORWARD, 1, &t->gen_dev, err)) return err->code;
  if (train_copy_weights(t, t->gen_dev, err)) return err->code;
  uint64_t logits = (uint64_t)t->o.seq * t->cfg.vocab_size;
  if (logits > t->scratch_count) { /* the [seq, V] logits of a window */
    float *bigger = realloc(t->scratch, (size_t)logits * sizeof(float));
    if (!bigger) return ot_error_set(err, OT_ENOMEM, "generate: out of memory");
    t->scratch = bigger;
    t->scratch_count = logits;
  }
  uint32_t *all = malloc((n + max_new) * sizeof *all);
  if (!all) return ot_error_set(err, OT_ENOMEM, "generate: out of memory");
  ot_rng rng;
  ot_rng_seed(&rng, seed);
  memcpy(all, prompt, n * sizeof *all);
  for (size_t i = 0; i < max_new; i++) {
    size_t len = n + i, start = len > t->o.seq ? len - t->o.seq : 0; /* slide the window at the context end */
    const float *row = NULL;
    if (train_next_logits(t, all + start, len - start, &row, err)) {
      free(all);
      return err->code;
    }
    all[len] = pick_id(row, t->cfg.vocab_size, temperature, &rng);
  }
  memmove(all, all + n, max_new * sizeof *all);
  *out = all;
  return OT_OK;
}

/* ---- the loop ---------------------------------------------------------------------------------- */

static void train_print_eta(FILE *out, double sec) {
  unsigned s = (unsigned)(sec + 0.5);
  if (s >= 3600) fprintf(out, "%uh%02um", s / 3600, s / 60 % 60);
  else fprintf(out, "%um%02us", s / 60, s % 60);
}

static void train_print_step(const trainer *t, FILE *out, const train_step_info *i) {
  double avg = t->tot.steps ? t->tot.wall_s / t->tot.steps : 0;
  int width = t->o.steps >= 10000 ? 5 : t->o.steps >= 1000 ? 4 : t->o.steps >= 100 ? 3 : t->o.steps >= 10 ? 2 : 1;
  fprintf(out, "step %*u/%u | loss %.4f | lr %.2e | norm %6.3f | sim %8.3f ms | %9.0f tok/s | MFU %5.2f%% (6N %5.2f%%) | ",
          width, i->step, t->o.steps, (double)i->loss, i->lr,
          (double)i->grad_norm, (double)i->sim_ps * 1e-9, i->tokens_per_s, i->mfu * 100, i->mfu_6n * 100);
  if (i->cores > 1) /* the MFU above is against the cores used; the all-reduce is part of sim */
    fprintf(out, "%u cores, chip MFU %5.2f%%, all-reduce %4.1f%% | ", i->cores, i->mfu_chip * 100,
            i->sim_ps ? 100.0 * (double)i->allreduce_ps / (double)i->sim_ps : 0.0);
  fputs("ETA ", out);
  train_print_eta(out, avg * (t->o.steps - i->step));
  fputc('\n', out);
  fflush(out);
}

static ot_status train_after_step(trainer *t, FILE *out, ot_error *err) {
  const train_opts *o = &t->o;
  if (o->eval_every && (t->step % o->eval_every == 0 || t->step == o->steps)) {
    double l;
    if (train_eval(t, &l, err)) return err->code;
    if (out) fprintf(out, "eval step %u | held-out loss %.4f\n", t->step, l);
  }
  if (o->checkpoint_dir && ((o->checkpoint_every && t->step % o->checkpoint_every == 0) || t->step == o->steps)) {
    if (train_save(t, o->checkpoint_dir, err)) return err->code;
    if (out) fprintf(out, "checkpoint step %u -> %s\n", t->step, o->checkpoint_dir);
  }
  return OT_OK;
}

static void train_print_summary(const trainer *t, FILE *out) {
  const train_totals *s = &t->tot;
  if (!s->steps) return;
  double sim = (double)s->sim_ps * 1e-12;
  fprintf(out, "\n%u steps, %llu tokens: loss %.4f -> %.4f", s->steps, (unsigned long long)s->tokens,
          (double)s->first_loss, (double)s->last_loss);
  if (s->last_eval >= 0) fprintf(out, ", held-out %.4f", s->last_eval);
  fprintf(out, "\nsimulated %s time %.3f s: %.0f tokens/s, MFU %.2f%% (TensorE matmul FLOPs), %.2f%% (6N FLOPs)",
          ot_chip_name(t->chip), sim, sim > 0 ? (double)s->tokens / sim : 0, s->mfu_sum / s->steps * 100,
          s->mfu_6n_sum / s->steps * 100);
  uint32_t all = (uint32_t)ot_chip_cores(t->chip);
  if (t->cores == all) fprintf(out, " of the whole chip (%u NeuronCores)\n", all);
  else fprintf(out, " of %u NeuronCore%s; %.2f%% of the whole chip (%u)\n", t->cores, t->cores > 1 ? "s" : "",
               s->mfu_chip_sum / s->steps * 100, all);
  if (t->cores > 1)
    fprintf(out, "data-parallel over %u cores, %u row%s each: the gradient all-reduce took %.1f%% of the simulated time\n",
            t->cores, t->o.batch / t->cores, t->o.batch / t->cores > 1 ? "s" : "",
            sim > 0 ? (double)s->allreduce_ps * 1e-12 / sim * 100 : 0);
  fprintf(out, "host wall time %.1f s (%.3f s per step)\n", s->wall_s, s->wall_s / s->steps);
}

ot_status train_run(trainer *t, FILE *out, ot_error *err) {
  ot_error_clear(err); /* err->code is returned below: start from a clean report */
  if (out)
    fprintf(out, "training %s (%llu parameters) on a simulated %s (%u of %d NeuronCores%s): batch %u x sequence %u, "
            "steps %u to %u, %s\n",
            t->cfg.name, (unsigned long long)ot_model_config_param_count(&t->cfg), ot_chip_name(t->chip), t->cores,
            ot_chip_cores(t->chip), t->cores > 1 ? ", data-parallel; evaluation and generation on one" : "", t->o.batch,
            t->o.seq, t->step + 1, t->o.steps, t->o.fp32 ? "fp32 matmuls" : "bf16 matmul operands, fp32 master weights");
  while (t->step < t->o.steps) {
    train_step_info info;
    if (train_step(t, &info, err)) return err->code;
    uint32_t every = t->o.print_every > 1 ? t->o.print_every : 1;
    bool show = t->step <= 3 || t->step % every == 0 || t->step == t->o.steps;
    if (out && !t->o.quiet && show) train_print_step(t, out, &info);
    if (train_after_step(t, t->o.quiet ? NULL : out, err)) return err->code;
  }
  if (out && !t->o.no_summary) train_print_summary(t, out);
  return OT_OK;
}
