/* Chip descriptions: presets, lifetime, field access by path, derived peak figures.
**
** The presets are the JSON files configs/chips/<name>.json, embedded into the library at build
** time (src/arch/CMakeLists.txt writes generated/chip_presets.inc), so a binary works from any
** directory and the JSON file stays the one source of every number. */
#include "arch/chip_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chip_presets.inc" /* chip_preset_table[], CHIP_PRESET_NAMES */

static const char *const preset_names[] = {CHIP_PRESET_NAMES NULL};

const char *const *ot_chip_preset_names(void) { return preset_names; }

const char *chip_preset_text(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof chip_preset_table / sizeof chip_preset_table[0]; i++)
    if (!strcmp(name, chip_preset_table[i].name)) return chip_preset_table[i].text;
  return NULL;
}

void chip_preset_list(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; preset_names[i] && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", preset_names[i]);
    if (n < 0) return;
    used += (size_t)n;
  }
}

/* The preset within two edits of name (a typo), or NULL. */
static const char *preset_closest(const char *name) {
  const char *best = NULL;
  size_t dist = 3;
  for (size_t i = 0; preset_names[i]; i++) {
    size_t d = chip_edit_distance(name, preset_names[i]);
    if (d < dist) { dist = d; best = preset_names[i]; }
  }
  return best;
}

ot_status chip_unknown_preset(const char *what, const char *name, ot_error *err) {
  char list[128];
  const char *close = preset_closest(name);
  chip_preset_list(list, sizeof list);
  return CHIP_FAIL(err, OT_ENOTFOUND, "%s '%.64s' is not a preset%s%s%s; the presets are %s", what, name,
                   close ? " (did you mean " : "", close ? close : "", close ? "?)" : "", list);
}

/* ---- Lifetime --------------------------------------------------------------------------- */

ot_chip *chip_alloc(void) {
  ot_chip *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->source = calloc(CHIP_FIELD_COUNT, sizeof *c->source);
  if (!c->source) { free(c); return NULL; }
  return c;
}

void ot_chip_free(ot_chip *chip) {
  if (!chip) return;
  if (chip->source)
    for (int i = 0; i < CHIP_FIELD_COUNT; i++) free(chip->source[i]);
  free(chip->source);
  free(chip);
}

ot_chip *ot_chip_clone(const ot_chip *chip) {
  if (!chip) return NULL;
  ot_chip *c = chip_alloc();
  if (!c) return NULL;
  char **sources = c->source;
  *c = *chip;
  c->source = sources;
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    if (!chip->source || !chip->source[i]) continue;
    if (!(c->source[i] = strdup(chip->source[i]))) { ot_chip_free(c); return NULL; }
  }
  return c;
}

ot_status chip_source_set(ot_chip *c, int i, const char *text, ot_error *err) {
  char *copy = NULL;
  if (text && !(copy = strdup(text))) return CHIP_FAIL(err, OT_ENOMEM, "out of memory");
  free(c->source[i]);
  c->source[i] = copy;
  return OT_OK;
}

const char *ot_chip_name(const ot_chip *chip) { return chip ? chip->name : ""; }
const char *ot_chip_base(const ot_chip *chip) { return chip ? chip->base : ""; }
int ot_chip_cores(const ot_chip *chip) { return chip ? (int)chip->cores_per_chip : 0; }

const char *ot_chip_source(const ot_chip *chip, const char *path) {
  int i = chip && path ? chip_field_find(path) : -1;
  return i < 0 ? NULL : chip->source[i];
}

/* ---- Loading ---------------------------------------------------------------------------- */

ot_status ot_chip_preset(const char *name, ot_chip **out, ot_error *err) {
  if (!out) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_preset: out is NULL");
  *out = NULL;
  if (!name) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_preset: name is NULL");
  const char *text = chip_preset_text(name);
  if (!text) return chip_unknown_preset("chip", name, err);
  char origin[96];
  snprintf(origin, sizeof origin, "configs/chips/%s.json (built-in preset)", name);
  ot_status st = chip_parse(text, strlen(text), origin, true, out, err);
  if (st == OT_OK && strcmp((*out)->name, name)) {
    ot_chip_free(*out);
    *out = NULL;
    return CHIP_FAIL(err, OT_EINVAL, "%s: \"name\" must be \"%s\"", origin, name);
  }
  return st;
}

ot_status ot_chip_open(const char *name_or_path, ot_chip **out, ot_error *err) {
  if (!out) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_open: out is NULL");
  *out = NULL;
  if (!name_or_path) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_open: name is NULL");
  if (chip_preset_text(name_or_path)) return ot_chip_preset(name_or_path, out, err);
  FILE *f = fopen(name_or_path, "rb");
  if (!f) {
    /* Neither: say both, so a mistyped preset name is not reported as a missing file only. */
    int e = errno;
    char list[128];
    const char *close = preset_closest(name_or_path);
    chip_preset_list(list, sizeof list);
    return CHIP_FAIL(err, OT_ENOTFOUND, "'%.200s' is neither a preset (%s%s%s%s) nor a readable file: %s",
                     name_or_path, list, close ? "; did you mean " : "", close ? close : "", close ? "?" : "",
                     strerror(e));
  }
  fclose(f);
  return ot_chip_load_file(name_or_path, out, err);
}

/* ---- Field access ----------------------------------------------------------------------- */

static ot_status unknown_path(const char *path, ot_error *err) {
  char hint[128];
  if (chip_field_suggest(path, hint, sizeof hint))
    return CHIP_FAIL(err, OT_ENOTFOUND, "unknown chip field '%.128s' (did you mean '%s'?)", path, hint);
  return CHIP_FAIL(err, OT_ENOTFOUND, "unknown chip field '%.128s' (`opentrn chip fields` lists them)",
                      path);
}

static ot_status field_lookup(const char *path, int *index, ot_error *err) {
  if (!path) return CHIP_FAIL(err, OT_EINVAL, "chip field path is NULL");
  int i = chip_field_find(path);
  if (i < 0) return unknown_path(path, err);
  if (chip_fields[i].kind == CHIP_DTYPES)
    return CHIP_FAIL(err, OT_EINVAL, "chip field '%s' is a list of data types, not a number; "
                        "change it in a chip JSON file", path);
  *index = i;
  return OT_OK;
}

ot_status ot_chip_get(const ot_chip *chip, const char *path, double *value, ot_error *err) {
  int i = -1;
  if (!chip || !value) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_get: chip or value is NULL");
  ot_status st = field_lookup(path, &i, err);
  if (st != OT_OK) return st;
  *value = chip_field_get(chip, i);
  return OT_OK;
}

ot_status ot_chip_set(ot_chip *chip, const char *path, double value, ot_error *err) {
  int i = -1;
  if (!chip) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_set: chip is NULL");
  ot_status st = field_lookup(path, &i, err);
  if (st != OT_OK) return st;
  const chip_field *f = &chip_fields[i];
  const char *why = chip_field_reject(i, value);
  if (*why) {
    char v[64], lo[64], hi[64];
    chip_number_format(value, v, sizeof v);
    chip_number_format(f->min, lo, sizeof lo);
    chip_number_format(f->max, hi, sizeof hi);
    return CHIP_FAIL(err, OT_ERANGE, "chip field '%s' = %s: %s (expected %s..%s%s%s)", path, v, why,
                        lo, hi, f->unit[0] ? " " : "", f->unit);
  }
  chip_field_put(chip, i, value);
  return chip_source_set(chip, i, "set by ot_chip_set", err);
}

/* ---- Derived figures -------------------------------------------------------------------- */

double chip_peak_core(const ot_chip *c, double rate) {
  /* Each PE does one multiply-add (2 FLOP) per cycle at the bf16 rate. */
  return (double)c->tensor.rows * c->tensor.cols * 2.0 * c->eng[OT_ENG_TENSOR].clock_ghz * rate / 1e3;
}

/* Throughput of a dtype relative to bf16; 0 if the TensorE does not take it. */
static double dtype_rate(const ot_chip *c, int t) {
  if (t < 0 || !ot_chip_engine_has_dtype(c, OT_ENG_TENSOR, (ot_dtype)t)) return 0.0;
  switch ((ot_dtype)t) {
  case OT_DT_FP32: return 1.0 / c->tensor.fp32_factor;
  case OT_DT_TF32: case OT_DT_BF16: case OT_DT_FP16: return 1.0;
  case OT_DT_FP8E3M4: return 1.0; /* "FP8_E3 runs at BF16 speed" (A2 §2.4): no double-row mode */
  case OT_DT_FP8E4M3: case OT_DT_FP8E4M3FN: case OT_DT_FP8E5M2: return c->tensor.fp8_rate;
  default: return 0.0; /* no integer matmul datapath (F1 §7) */
  }
}

static double best_fp8_rate(const ot_chip *c) {
  static const ot_dtype fp8[] = {OT_DT_FP8E4M3, OT_DT_FP8E4M3FN, OT_DT_FP8E5M2, OT_DT_FP8E3M4};
  double best = 0.0;
  for (size_t k = 0; k < sizeof fp8 / sizeof fp8[0]; k++) {
    double r = dtype_rate(c, (int)fp8[k]);
    if (r > best) best = r;
  }
  return best;
}

double ot_chip_peak_tflops_core(const ot_chip *chip, const char *dtype) {
  if (!chip || !dtype) return 0.0;
  if (!strcmp(dtype, "mxfp8") || !strcmp(dtype, "mxfp4")) return chip_peak_core(chip, chip->tensor.mx_rate);
  if (!strcmp(dtype, "fp8")) return chip_peak_core(chip, best_fp8_rate(chip));
  return chip_peak_core(chip, dtype_rate(chip, chip_dtype_find(dtype)));
}

static void derive_peaks(const ot_chip *c, chip_derived *d) {
  double cores = c->cores_per_chip;
  d->npeak = 0;
  for (unsigned t = 0; t < OT_DT_COUNT; t++) {
    double r = dtype_rate(c, (int)t);
    if (r <= 0.0) continue;
    chip_peak *p = &d->peak[d->npeak++];
    p->dtype = chip_dtype_name(t);
    p->core = chip_peak_core(c, r);
    p->chip = p->core * cores;
  }
  if (c->tensor.mx_rate) {
    static const char *const mx[] = {"mxfp8", "mxfp4"};
    for (size_t k = 0; k < 2; k++) {
      chip_peak *p = &d->peak[d->npeak++];
      p->dtype = mx[k];
      p->core = chip_peak_core(c, c->tensor.mx_rate);
      p->chip = p->core * cores;
    }
  }
}

void chip_derive(const ot_chip *c, chip_derived *d) {
  double cores = c->cores_per_chip;
  memset(d, 0, sizeof *d);
  derive_peaks(c, d);
  d->bf16_core = ot_chip_peak_tflops_core(c, "bf16");
  d->bf16_chip = d->bf16_core * cores;
  d->sbuf_core = (double)c->sbuf.partitions * (double)c->sbuf.bytes_per_partition;
  d->sbuf_chip = d->sbuf_core * cores;
  d->psum_core = (double)c->psum.partitions * (double)c->psum.bytes_per_partition;
  d->psum_chip = d->psum_core * cores;
  /* HBM is a chip resource; a core's share is an even split (trainium.md §8 gap 8). */
  d->hbm_chip = (double)c->hbm.bytes;
  d->hbm_core = cores > 0 ? d->hbm_chip / cores : 0.0;
  d->hbm_gbps_chip = c->hbm.bandwidth_gbps;
  d->hbm_gbps_core = cores > 0 ? d->hbm_gbps_chip / cores : 0.0;
  d->dma_gbps_core = c->dma.engines * c->dma.engine_gbps;
  d->dma_gbps_chip = d->dma_gbps_core * cores;
  /* Ridge point: FLOP per HBM byte at which bf16 matmul stops being bandwidth-bound. */
  d->ridge_core = d->hbm_gbps_core > 0 ? d->bf16_core * 1e3 / d->hbm_gbps_core : 0.0;
  d->ridge_chip = d->hbm_gbps_chip > 0 ? d->bf16_chip * 1e3 / d->hbm_gbps_chip : 0.0;
}
