/* Devices (include/opentrn/device.h): a chip, a loaded program, and the program's tensors kept
** on the host between runs.  Each run builds a fresh simulator, copies the tensors with values
** into its HBM, runs, and copies them back; the simulator of the last run is kept for its
** statistics and trace until the next run, load or close. */
#include <opentrn/device.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isa/program.h"
#include "runtime/npy.h"
#include "sim/sim.h"

typedef struct {
  uint8_t *data;             /* the tensor's bytes; NULL until it has a value */
} dev_tensor;

struct ot_device {
  ot_chip *chip;
  ot_program *prog;          /* owned copy; NULL before the first load */
  dev_tensor *t;             /* [prog->n_tensors] */
  ot_sim *sim;               /* of the last run (even a failed one), NULL if none */
  bool traced;               /* the last run recorded a trace */
  char *log;                 /* warnings of the last run */
  ot_error last;             /* the last failed call */
};

/* ---- errors ------------------------------------------------------------------------------ */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static ot_status dev_fail(ot_device *d, ot_status code, const char *fmt, ...) {
  char msg[OT_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_clear(&d->last);
  ot_error_set(&d->last, code, "%s", msg);
  return code;
}

/* Keep a lower layer's report as the device's last error; returns s. */
static ot_status dev_keep(ot_device *d, ot_status s, const ot_error *e) {
  if (s == OT_OK) return s;
  d->last = *e;
  d->last.code = s;
  if (!d->last.msg[0]) snprintf(d->last.msg, sizeof d->last.msg, "%s", ot_status_str(s));
  return s;
}

const char *ot_device_last_error(const ot_device *d) { return d ? d->last.msg : "no device"; }
ot_status ot_device_last_status(const ot_device *d) { return d ? d->last.code : OT_EINVAL; }
const char *ot_device_run_log(const ot_device *d) { return d && d->log ? d->log : ""; }
const ot_chip *ot_device_chip(const ot_device *d) { return d ? d->chip : NULL; }

/* ---- open and close ---------------------------------------------------------------------- */
static ot_status dev_new(ot_chip *chip, ot_device **out, ot_error *err) {
  ot_device *d = calloc(1, sizeof *d);
  if (!d) {
    ot_chip_free(chip);
    return ot_error_set(err, OT_ENOMEM, "out of memory for a device");
  }
  d->chip = chip;
  ot_error_clear(&d->last);
  *out = d;
  return OT_OK;
}

ot_status ot_device_open(const char *chip, ot_device **out, ot_error *err) {
  if (!out) return ot_error_set(err, OT_EINVAL, "ot_device_open: out is NULL");
  *out = NULL;
  ot_chip *c = NULL;
  ot_status s = ot_chip_open(chip, &c, err);
  return s ? s : dev_new(c, out, err);
}

ot_status ot_device_open_chip(const ot_chip *chip, ot_device **out, ot_error *err) {
  if (!out) return ot_error_set(err, OT_EINVAL, "ot_device_open_chip: out is NULL");
  *out = NULL;
  if (!chip) return ot_error_set(err, OT_EINVAL, "ot_device_open_chip: chip is NULL");
  ot_chip *c = ot_chip_clone(chip);
  if (!c) return ot_error_set(err, OT_ENOMEM, "out of memory copying chip %s", ot_chip_name(chip));
  return dev_new(c, out, err);
}

static void dev_drop_run(ot_device *d) {
  ot_sim_free(d->sim);
  d->sim = NULL;
  d->traced = false;
  free(d->log);
  d->log = NULL;
}

static void dev_drop_program(ot_device *d) {
  dev_drop_run(d);
  for (uint32_t i = 0; d->prog && d->t && i < d->prog->n_tensors; i++) free(d->t[i].data);
  free(d->t);
  d->t = NULL;
  ot_program_free(d->prog);
  d->prog = NULL;
}

void ot_device_close(ot_device *d) {
  if (!d) return;
  dev_drop_program(d);
  ot_chip_free(d->chip);
  free(d);
}

/* ---- programs ---------------------------------------------------------------------------- */
static ot_status dev_check_tensors(ot_device *d, const ot_program *p) {
  uint64_t hbm = d->chip->hbm.bytes;
  for (uint32_t i = 0; i < p->n_tensors; i++) {
    const ot_tensor_info *t = &p->tensors[i];
    uint64_t n = ot_tensor_bytes(t);
    if (t->offset > hbm || n > hbm - t->offset)
      return dev_fail(d, OT_ERANGE, "tensor '%s' (%llu bytes at HBM offset %llu) does not fit the %llu-byte HBM of %s",
                      t->name, (unsigned long long)n, (unsigned long long)t->offset, (unsigned long long)hbm,
                      ot_chip_name(d->chip));
  }
  return OT_OK;
}

static bool dev_same_tensor(const ot_tensor_info *a, const ot_tensor_info *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim || strcmp(a->name, b->name)) return false;
  for (unsigned k = 0; k < a->ndim && k < OT_TENSOR_MAX_DIMS; k++)
    if (a->shape[k] != b->shape[k]) return false;
  return true;
}

/* Move the values of the loaded program's tensors into the new program's tensors t that have
** the same name, dtype and shape (constants excepted: they have their own values).  The byte
** size is then equal too, so a value moves without a copy. */
static void dev_carry_values(ot_device *d, const ot_program *prog, dev_tensor *t) {
  if (!d->prog || !d->t) return;
  for (uint32_t i = 0; i < prog->n_tensors; i++) {
    const ot_tensor_info *ni = &prog->tensors[i];
    if (ni->role == OT_ROLE_CONST || t[i].data) continue;
    /* programs built from one model list their tensors in the same order: try index i first */
    for (uint32_t probe = 0; probe <= d->prog->n_tensors; probe++) {
      uint32_t j = probe == 0 ? i : probe - 1;
      if (j >= d->prog->n_tensors || !d->t[j].data || d->prog->tensors[j].role == OT_ROLE_CONST) continue;
      if (!dev_same_tensor(ni, &d->prog->tensors[j])) continue;
      t[i].data = d->t[j].data;
      d->t[j].data = NULL;
      break;
    }
  }
}

/* Take ownership of prog: verify it, give constants their values (and, with keep, the loaded
** program's values to the tensors that match). */
static ot_status dev_adopt(ot_device *d, ot_program *prog, bool keep) {
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_program_verify(prog, d->chip, &e);
  if (s) s = dev_keep(d, s, &e);
  if (!s) s = dev_check_tensors(d, prog);
  dev_tensor *t = s ? NULL : calloc(prog->n_tensors ? prog->n_tensors : 1, sizeof *t);
  if (!s && !t) s = dev_fail(d, OT_ENOMEM, "out of memory loading the program");
  for (uint32_t i = 0; !s && i < prog->n_tensors; i++) {
    const ot_tensor_info *ti = &prog->tensors[i];
    if (ti->role != OT_ROLE_CONST || !ti->data) continue;
    uint64_t n = ot_tensor_bytes(ti);
    if (!(t[i].data = malloc(n ? n : 1))) s = dev_fail(d, OT_ENOMEM, "out of memory for constant '%s'", ti->name);
    else memcpy(t[i].data, ti->data, n);
  }
  if (s) {
    for (uint32_t i = 0; t && i < prog->n_tensors; i++) free(t[i].data);
    free(t);
    ot_program_free(prog);
    return s;
  }
  if (keep) dev_carry_values(d, prog, t);
  dev_drop_program(d);
  d->prog = prog;
  d->t = t;
  return OT_OK;
}

static ot_status dev_load(ot_device *d, const ot_program *prog, bool keep) {
  if (!prog) return dev_fail(d, OT_EINVAL, "%s: program is NULL", keep ? "ot_device_load_keep" : "ot_device_load");
  /* A deep copy through the program file form: the device never depends on the caller's. */
  void *bytes = NULL;
  size_t n = 0;
  ot_program *copy = NULL;
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_program_serialize(prog, &bytes, &n, &e);
  if (!s) s = ot_program_deserialize(bytes, n, &copy, &e);
  free(bytes);
  if (s) return dev_keep(d, s, &e);
  return dev_adopt(d, copy, keep);
}

ot_status ot_device_load(ot_device *d, const ot_program *prog) { return dev_load(d, prog, false); }

ot_status ot_device_load_keep(ot_device *d, const ot_program *prog) { return dev_load(d, prog, true); }

ot_status ot_device_load_file(ot_device *d, const char *path) {
  if (!path) return dev_fail(d, OT_EINVAL, "ot_device_load_file: path is NULL");
  ot_program *prog = NULL;
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_program_open(path, &prog, &e);
  if (s) return dev_keep(d, s, &e);
  return dev_adopt(d, prog, false);
}

/* ---- tensors ----------------------------------------------------------------------------- */
size_t ot_device_tensor_count(const ot_device *d) { return d && d->prog ? d->prog->n_tensors : 0; }

static void dev_describe(const ot_device *d, uint32_t i, ot_tensor_desc *out) {
  const ot_tensor_info *t = &d->prog->tensors[i];
  memset(out, 0, sizeof *out);
  out->name = t->name;
  out->dtype = (ot_dtype)t->dtype;
  out->role = ot_tensor_role_name(t->role);
  out->ndim = t->ndim;
  for (unsigned k = 0; k < t->ndim && k < OT_DEVICE_TENSOR_DIMS; k++) out->shape[k] = t->shape[k];
  out->bytes = ot_tensor_bytes(t);
  out->hbm_offset = t->offset;
  out->has_value = d->t[i].data != NULL;
}

/* Index of the tensor called name, or -1 with the error recorded. */
static long dev_find(ot_device *d, const char *name) {
  if (!d->prog) {
    dev_fail(d, OT_EINVAL, "no program loaded: load one before naming tensors");
    return -1;
  }
  for (uint32_t i = 0; name && i < d->prog->n_tensors; i++)
    if (!strcmp(d->prog->tensors[i].name, name)) return (long)i;
  char list[512] = "";
  size_t at = 0;
  for (uint32_t i = 0; i < d->prog->n_tensors && at < sizeof list; i++)
    at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", d->prog->tensors[i].name);
  dev_fail(d, OT_ENOTFOUND, "the program has no tensor '%s' (it has: %s)", name ? name : "(null)",
           d->prog->n_tensors ? list : "none");
  return -1;
}

ot_status ot_device_tensor(ot_device *d, size_t i, ot_tensor_desc *out) {
  if (!d->prog || i >= d->prog->n_tensors)
    return dev_fail(d, OT_ERANGE, "tensor index %zu out of range (the program has %zu)", i, ot_device_tensor_count(d));
  dev_describe(d, (uint32_t)i, out);
  return OT_OK;
}

ot_status ot_device_tensor_find(ot_device *d, const char *name, ot_tensor_desc *out) {
  long i = dev_find(d, name);
  if (i < 0) return d->last.code;
  dev_describe(d, (uint32_t)i, out);
  return OT_OK;
}

/* "bf16 [128, 1024] (262144 bytes)" */
static void dev_tensor_text(const ot_tensor_info *t, char *buf, size_t cap) {
  char shape[160];
  ot_npy_shape_format(t->shape, t->ndim, shape, sizeof shape);
  snprintf(buf, cap, "%s %s (%llu bytes)", ot_dtype_name((ot_dtype)t->dtype), shape,
           (unsigned long long)ot_tensor_bytes(t));
}

/* The tensor called name, if dtype and bytes are exactly its own. */
static long dev_find_exact(ot_device *d, const char *name, ot_dtype dtype, size_t bytes, const void *data) {
  long i = dev_find(d, name);
  if (i < 0) return -1;
  const ot_tensor_info *t = &d->prog->tensors[i];
  char want[256];
  dev_tensor_text(t, want, sizeof want);
  if (dtype != (ot_dtype)t->dtype || bytes != ot_tensor_bytes(t)) {
    dev_fail(d, OT_EINVAL, "tensor '%s' is %s: given %s data of %zu bytes", name, want, ot_dtype_name(dtype), bytes);
    return -1;
  }
  if (!data && bytes) {
    dev_fail(d, OT_EINVAL, "tensor '%s': the data pointer is NULL", name);
    return -1;
  }
  return i;
}

ot_status ot_device_write(ot_device *d, const char *name, ot_dtype dtype, const void *data, size_t bytes) {
  long i = dev_find_exact(d, name, dtype, bytes, data);
  if (i < 0) return d->last.code;
  dev_tensor *t = &d->t[i];
  if (!t->data && !(t->data = malloc(bytes ? bytes : 1)))
    return dev_fail(d, OT_ENOMEM, "out of memory for tensor '%s' (%zu bytes)", name, bytes);
  if (bytes) memcpy(t->data, data, bytes);
  return OT_OK;
}

static ot_status dev_no_value(ot_device *d, long i) {
  const ot_tensor_info *t = &d->prog->tensors[i];
  return dev_fail(d, OT_EINVAL, "tensor '%s' (%s) has no value yet: write it, or run a program that computes it "
                  "(timing-only runs compute no values)", t->name, ot_tensor_role_name(t->role));
}

ot_status ot_device_read(ot_device *d, const char *name, ot_dtype dtype, void *data, size_t bytes) {
  long i = dev_find_exact(d, name, dtype, bytes, data);
  if (i < 0) return d->last.code;
  if (!d->t[i].data) return dev_no_value(d, i);
  if (bytes) memcpy(data, d->t[i].data, bytes);
  return OT_OK;
}

/* ---- NumPy files --------------------------------------------------------------------------- */
/* The element type an .npy array of a tensor of type t holds: formats numpy lacks as raw bits. */
static ot_dtype dev_npy_type(ot_dtype t) {
  switch (t) {
  case OT_DT_BF16: return OT_DT_UINT16;
  case OT_DT_TF32: return OT_DT_FP32;
  case OT_DT_FP8E4M3: case OT_DT_FP8E4M3FN: case OT_DT_FP8E5M2: case OT_DT_FP8E3M4: return OT_DT_UINT8;
  default: return t;
  }
}

const char *ot_device_npy_descr(ot_dtype t) { return ot_npy_descr(dev_npy_type(t)); }

static bool dev_shape_equal(const ot_tensor_info *t, const ot_npy *a) {
  if (t->ndim != a->ndim) return false;
  for (unsigned k = 0; k < t->ndim; k++)
    if (t->shape[k] != a->shape[k]) return false;
  return true;
}

ot_status ot_device_write_npy(ot_device *d, const char *name, const char *path) {
  long i = dev_find(d, name);
  if (i < 0) return d->last.code;
  const ot_tensor_info *t = &d->prog->tensors[i];
  ot_npy a;
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_npy_read(path, &a, &e);
  if (s) return dev_keep(d, s, &e);
  ot_dtype want = dev_npy_type((ot_dtype)t->dtype);
  if (a.dtype != want || !dev_shape_equal(t, &a)) {
    char shape[160], have[160];
    ot_npy_shape_format(t->shape, t->ndim, shape, sizeof shape);
    ot_npy_shape_format(a.shape, a.ndim, have, sizeof have);
    s = dev_fail(d, OT_EINVAL, "%s: tensor '%s' is %s %s: expected an array of dtype '%s'%s and shape %s, the file "
                 "holds '%s' %s", path, name, ot_dtype_name((ot_dtype)t->dtype), shape, ot_npy_descr(want),
                 want != (ot_dtype)t->dtype ? " (its bits)" : "", shape, a.descr, have);
  } else {
    s = ot_device_write(d, name, (ot_dtype)t->dtype, a.data, a.bytes);
  }
  ot_npy_free(&a);
  return s;
}

ot_status ot_device_read_npy(ot_device *d, const char *name, const char *path) {
  long i = dev_find(d, name);
  if (i < 0) return d->last.code;
  const ot_tensor_info *t = &d->prog->tensors[i];
  if (!d->t[i].data) return dev_no_value(d, i);
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_npy_write(path, dev_npy_type((ot_dtype)t->dtype), t->shape, t->ndim, d->t[i].data, &e);
  return dev_keep(d, s, &e);
}

/* ---- running ------------------------------------------------------------------------------- */
void ot_run_options_default(ot_run_options *o) {
  ot_sim_options so;
  ot_sim_options_default(&so);
  memset(o, 0, sizeof *o);
  o->mode = (ot_run_mode)so.mode;
  o->scalesim = so.timing == OT_TIMING_SCALESIM;
  o->stochastic_rounding = so.stochastic_rounding;
  o->seed = so.seed;
  o->uninit_is_error = so.uninit_is_error;
  o->nan_trap = so.trap_nonfinite;
  o->race_check = so.race_check;
  o->trace = so.trace;
  o->insn_budget = so.insn_budget;
}

static void dev_sim_options(const ot_run_options *o, ot_sim_options *so) {
  ot_sim_options_default(so);
  so->mode = o->mode == OT_RUN_TIMING ? OT_SIM_TIMING : o->mode == OT_RUN_FUNCTIONAL ? OT_SIM_FUNCTIONAL : OT_SIM_FULL;
  so->timing = o->scalesim ? OT_TIMING_SCALESIM : OT_TIMING_NEURON;
  so->stochastic_rounding = o->stochastic_rounding;
  so->seed = o->seed;
  so->uninit_is_error = o->uninit_is_error;
  so->trap_nonfinite = o->nan_trap;
  so->race_check = o->race_check;
  so->trace = o->trace;
  so->insn_budget = o->insn_budget;
}

/* Every input and weight needs a value; name all that lack one. */
static ot_status dev_check_inputs(ot_device *d) {
  char list[1024] = "";
  size_t at = 0;
  unsigned missing = 0;
  for (uint32_t i = 0; i < d->prog->n_tensors; i++) {
    const ot_tensor_info *t = &d->prog->tensors[i];
    if ((t->role != OT_ROLE_INPUT && t->role != OT_ROLE_WEIGHT) || d->t[i].data) continue;
    if (at < sizeof list)
      at += (size_t)snprintf(list + at, sizeof list - at, "%s'%s' (%s)", missing ? ", " : "", t->name,
                             ot_tensor_role_name(t->role));
    missing++;
  }
  if (!missing) return OT_OK;
  return dev_fail(d, OT_EINVAL, "%u tensor(s) have no value: %s; write them before running (or allow missing inputs, "
                  "which then read as zeros)", missing, list);
}

static ot_status dev_upload(ot_device *d, ot_error *e) {
  for (uint32_t i = 0; i < d->prog->n_tensors; i++) {
    const ot_tensor_info *t = &d->prog->tensors[i];
    if (!d->t[i].data) continue;
    ot_status s = ot_sim_hbm_write(d->sim, t->offset, d->t[i].data, ot_tensor_bytes(t), e);
    if (s) return s;
  }
  return OT_OK;
}

/* After a run that computed values: every tensor but the constants takes its HBM contents --
** but for those the run did not write, whose host copy is what was uploaded (a generation step
** leaves the weights, hundreds of MB, alone). */
static ot_status dev_download(ot_device *d, ot_error *e) {
  for (uint32_t i = 0; i < d->prog->n_tensors; i++) {
    const ot_tensor_info *t = &d->prog->tensors[i];
    uint64_t n = ot_tensor_bytes(t);
    if (t->role == OT_ROLE_CONST) continue;
    if (d->t[i].data && !ot_sim_hbm_written(d->sim, t->offset, n)) continue;
    if (!d->t[i].data && !(d->t[i].data = malloc(n ? n : 1)))
      return ot_error_set(e, OT_ENOMEM, "out of memory for tensor '%s'", t->name);
    ot_status s = ot_sim_hbm_read(d->sim, t->offset, d->t[i].data, n, e);
    if (s) return s;
  }
  return OT_OK;
}

ot_status ot_device_run(ot_device *d, const ot_run_options *opt) {
  ot_run_options o;
  if (opt) o = *opt;
  else ot_run_options_default(&o);
  if (!d->prog) return dev_fail(d, OT_EINVAL, "no program loaded: call ot_device_load first");
  if ((unsigned)o.mode > OT_RUN_FUNCTIONAL) return dev_fail(d, OT_EINVAL, "run mode %d does not exist", (int)o.mode);
  if (o.mode != OT_RUN_TIMING && !o.allow_missing && dev_check_inputs(d)) return d->last.code;
  dev_drop_run(d);
  ot_sim_options so;
  dev_sim_options(&o, &so);
  ot_error e;
  ot_error_clear(&e);
  ot_status s = ot_sim_new(d->chip, d->prog, &so, &d->sim, &e);
  if (!s) s = dev_upload(d, &e);
  if (!s) s = ot_sim_run(d->sim, &e);
  /* Messages of a run that succeeds are warnings. */
  if (!s && e.count && !(d->log = strdup(e.msg))) s = ot_error_set(&e, OT_ENOMEM, "out of memory");
  if (!s && o.mode != OT_RUN_TIMING) s = dev_download(d, &e);
  d->traced = d->sim && o.trace;
  return dev_keep(d, s, &e);
}

/* ---- results ------------------------------------------------------------------------------- */
static ot_status dev_need_run(ot_device *d) {
  return d->sim ? OT_OK : dev_fail(d, OT_EINVAL, "no run yet: call ot_device_run first");
}

ot_status ot_device_tag_time(ot_device *d, const char *tag, uint64_t *span_ps, uint64_t *busy_ps) {
  if (dev_need_run(d)) return d->last.code;
  const ot_sim_stats *st = ot_sim_get_stats(d->sim);
  uint64_t span = 0, busy = 0;
  for (uint32_t i = 0; i < st->n_tags; i++) {
    if (strcmp(st->strings + st->tag_off[i], tag)) continue;
    if (st->tag_last[i] > st->tag_first[i]) span = st->tag_last[i] - st->tag_first[i];
    busy = st->tag_dma[i];
    for (int e = 0; e < OT_ENG_COUNT; e++) busy += st->tag_busy[(size_t)i * OT_ENG_COUNT + e];
    break;
  }
  if (span_ps) *span_ps = span;
  if (busy_ps) *busy_ps = busy;
  return OT_OK;
}

ot_status ot_device_summary(ot_device *d, ot_run_summary *out) {
  if (dev_need_run(d)) return d->last.code;
  const ot_sim_stats *st = ot_sim_get_stats(d->sim);
  memset(out, 0, sizeof *out);
  out->time_ps = st->total;
  for (size_t i = 0; st->eng && i < (size_t)st->cores * OT_ENG_COUNT; i++) out->insns += st->eng[i].insns;
  out->model_flops = st->model_flops;
  out->transpose_flops = st->transpose_flops;
  out->hbm_read_bytes = st->mem[OT_MEM_HBM].read;
  out->hbm_written_bytes = st->mem[OT_MEM_HBM].written;
  out->hfu = st->hfu;
  out->mfu = st->mfu;
  out->mbu = st->mbu;
  out->tensor_util = st->tensor_util;
  out->warnings = st->warnings;
  return OT_OK;
}

ot_status ot_device_print_stats(ot_device *d, FILE *out) {
  if (dev_need_run(d)) return d->last.code;
  ot_sim_stats_print(ot_sim_get_stats(d->sim), d->chip, out);
  return fflush(out) || ferror(out) ? dev_fail(d, OT_EIO, "writing statistics failed") : OT_OK;
}

ot_status ot_device_print_stats_json(ot_device *d, FILE *out) {
  if (dev_need_run(d)) return d->last.code;
  ot_error e;
  ot_error_clear(&e);
  return dev_keep(d, ot_sim_stats_json(ot_sim_get_stats(d->sim), d->chip, out, &e), &e);
}

/* Write through a temporary file in the same directory, synced and renamed over path, so a
** failure never leaves a half-written file where a good one was. */
static ot_status dev_write_trace_file(ot_device *d, const char *path, ot_error *e) {
  size_t len = strlen(path) + 16;
  char *tmp = malloc(len);
  if (!tmp) return ot_error_set(e, OT_ENOMEM, "%s: out of memory", path);
  snprintf(tmp, len, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    ot_status s = ot_error_set(e, OT_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    if (fd >= 0) close(fd), unlink(tmp);
    free(tmp);
    return s;
  }
  ot_status s = ot_trace_write_json(ot_sim_get_trace(d->sim), d->chip, f, e);
  bool bad = s || fflush(f) || fsync(fileno(f));
  bad = fclose(f) || bad;
  if (!bad && (chmod(tmp, 0644) || rename(tmp, path))) bad = true;
  if (bad) {
    if (!s) s = ot_error_set(e, OT_EIO, "%s: writing the trace failed: %s (the previous file, if any, is untouched)",
                             path, strerror(errno));
    unlink(tmp);
  }
  free(tmp);
  return s;
}

ot_status ot_device_write_trace(ot_device *d, const char *path) {
  if (dev_need_run(d)) return d->last.code;
  if (!d->traced) return dev_fail(d, OT_EINVAL, "the last run recorded no trace: run with the trace option on");
  if (!path) return dev_fail(d, OT_EINVAL, "ot_device_write_trace: path is NULL");
  ot_error e;
  ot_error_clear(&e);
  return dev_keep(d, dev_write_trace_file(d, path, &e), &e);
}
