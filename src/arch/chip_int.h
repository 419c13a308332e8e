/* The chip description as the rest of OpenTRN sees it.  Fields are filled from
** chip_fields.def (one table); nothing here is set in code except through that table. */
#ifndef OT_CHIP_INT_H
#define OT_CHIP_INT_H

#include <opentrn/chip.h>
#include <opentrn/num.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/arch.h"

typedef struct {
  double clock_ghz;
  uint32_t lanes;          /* elements per cycle (one per partition lane) */
  uint32_t min_ii;         /* MIN_II, engine cycles */
  uint32_t fixed_overhead; /* static overhead of a dependent or tiny instruction */
  uint32_t access_start;   /* SBUF/PSUM access start cost */
  uint32_t fast16_sbuf;    /* 16-bit, SBUF->SBUF, unit-stride copy/tensor_scalar speed-up */
  uint32_t fast16_other;   /* other 16-bit speed-up */
  uint32_t free_max_sbuf;  /* per-instruction free-size limit (SBUF) */
  uint32_t free_max_psum;  /* per-instruction free-size limit (PSUM) */
  uint64_t dtypes;         /* bit (1 << ot_dtype) per supported type */
} ot_engine_desc;

struct ot_chip {
  char name[64];
  char base[64];           /* preset it was derived from ("" for a preset itself) */
  uint32_t generation;
  uint32_t cores_per_chip;
  ot_engine_desc eng[OT_ENG_COUNT];
  struct { uint32_t registers, semaphores, control_cycles; double sem_latency_ns, remote_sem_latency_ns; } seq;
  struct {
    uint32_t rows, cols, moving_fmax, moving_fmax_16bit, stationary_fmax;
    uint32_t mm_init_latency, ls_speedup, fp32_factor, fp8_rate, mx_rate, transpose_min;
  } tensor;
  struct { uint32_t bn_stats_fmax; } vector;
  struct { uint32_t acc_read_cycles; } scalar;
  struct { uint32_t cores; } gpsimd;
  struct { uint32_t partitions, stride_penalty_bytes; uint64_t bytes_per_partition; } sbuf;
  struct { uint32_t partitions, banks; uint64_t bytes_per_partition; } psum;
  struct { uint64_t bytes; double bandwidth_gbps; uint32_t stacks; } hbm;
  struct {
    uint32_t engines, queues, small_bytes, min_efficient_bytes;
    double engine_gbps, start_latency_ns, issue_ns, chip_gbps;
    bool transpose;
  } dma;
  struct { uint32_t count; double chip_gbps, hop_latency_ns; } link;
  struct { uint32_t cores; } collective;
  struct { bool vector_gpsimd_share_sbuf, vector_scalar_share_psum; } ports;
  /* Provenance: for each field (index in chip_fields.def order) where its value came from,
  ** e.g. "A1 §2.2" or "assumed: ...".  NULL when not given. */
  char **source;
};

static inline bool ot_chip_engine_has_dtype(const ot_chip *c, ot_engine e, ot_dtype t) {
  return (c->eng[e].dtypes >> t) & 1u;
}

/* Report an error and return `code` itself: ot_error_set returns the report's first code, which
** would leak an earlier failure's status when a caller reuses an uncleared ot_error. */
#define CHIP_FAIL(err, code, ...) (ot_error_set((err), (code), __VA_ARGS__), (code))

/* ---- The field table as data (chip_fields.def expanded; see chip_fields.c) ----------------
** Everything that walks the fields -- the JSON reader and writer, `chip show`, ot_chip_get/set,
** the consistency check and the docs generator -- goes through these, never through a
** hand-written list. */
typedef enum { CHIP_U32, CHIP_U64, CHIP_F64, CHIP_BOOL, CHIP_DTYPES } chip_kind;

typedef struct {
  const char *path;   /* dotted JSON path */
  chip_kind kind;
  size_t offset;      /* of the member inside struct ot_chip */
  double min, max;    /* inclusive range (numbers only) */
  const char *unit;
  const char *doc;
} chip_field;

enum {
  CHIP_FIELD_COUNT = 0
#define F(path, kind, member, min, max, unit, doc) + 1
#include "arch/chip_fields.def"
#undef F
};

extern const chip_field chip_fields[CHIP_FIELD_COUNT];

int chip_field_find(const char *path);                      /* index, or -1 */
bool chip_field_is_section(const char *path);               /* a prefix of some field path */
double chip_field_get(const ot_chip *c, int i);             /* DTYPES: the mask, as a double */
void chip_field_put(ot_chip *c, int i, double v);           /* no checks: callers validate */
bool chip_field_same(const ot_chip *a, const ot_chip *b, int i);
/* Why v cannot be stored in field i ("" if it can): integer-ness and range. */
const char *chip_field_reject(int i, double v);
/* Closest known field, section or top-level key to a misspelt path, written into buf;
** false if nothing is close. */
bool chip_field_suggest(const char *path, char *buf, size_t size);
/* Edit distance counting adjacent transpositions as one (SIZE_MAX over 200 bytes). */
size_t chip_edit_distance(const char *a, const char *b);
/* "12 GB/s", "229376 B (224 KiB)", "[bf16, fp16]": the value with its unit, for people. */
void chip_field_format(const ot_chip *c, int i, char *buf, size_t size);
/* Number for JSON: integers exactly, others in the shortest form that reads back the same. */
void chip_number_format(double v, char *buf, size_t size);

/* Data-type names from OT_DTYPE_MAP (kept here so the arch layer needs no num code). */
const char *chip_dtype_name(unsigned t);
int chip_dtype_find(const char *name);                      /* ot_dtype, or -1 */

/* Provenance of field i: NULL, "A2 §3.1 ...", or "assumed: why". The chip owns a copy. */
ot_status chip_source_set(ot_chip *c, int i, const char *text, ot_error *err);

/* Allocation: a zeroed chip with an empty provenance table. */
ot_chip *chip_alloc(void);
/* Cross-field consistency; messages start with `who` (a file name or the chip name). */
ot_status chip_check_fields(const ot_chip *c, const char *who, ot_error *err);

/* Preset JSON text embedded at build time (generated/chip_presets.inc); NULL if unknown. */
const char *chip_preset_text(const char *name);
/* "trn1, trn2, trn3" */
void chip_preset_list(char *buf, size_t size);
/* "<what> 'x' is not a preset (did you mean ...?); the presets are trn1, trn2, trn3". */
ot_status chip_unknown_preset(const char *what, const char *name, ot_error *err);
/* Parse JSON text as a preset (every field, each with provenance, no "base") or as a custom
** chip over a base preset.  len excludes the terminating NUL, which text must have. */
ot_status chip_parse(const char *text, size_t len, const char *origin, bool preset,
                     ot_chip **out, ot_error *err);

/* ---- Derived figures ------------------------------------------------------------------- */
#define CHIP_PEAK_MAX (OT_DT_COUNT + 2) /* every dtype, plus mxfp8 and mxfp4 */
typedef struct {
  const char *dtype;  /* "bf16", "fp8e4m3", ..., "mxfp8" */
  double core, chip;  /* dense TFLOPS */
} chip_peak;

typedef struct {
  chip_peak peak[CHIP_PEAK_MAX];
  unsigned npeak;
  double bf16_core, bf16_chip;            /* dense TFLOPS at the bf16 rate */
  double sbuf_core, sbuf_chip;            /* bytes */
  double psum_core, psum_chip;            /* bytes */
  double hbm_core, hbm_chip;              /* bytes (per-core = even share) */
  double hbm_gbps_core, hbm_gbps_chip;    /* GB/s (per-core = even share) */
  double dma_gbps_core, dma_gbps_chip;    /* engines x engine bandwidth; chip = cores x core */
  double ridge_core, ridge_chip;          /* bf16 roofline ridge, FLOP per HBM byte */
} chip_derived;

/* Dense peak TFLOPS of one core at `rate` x the bf16 rate. */
double chip_peak_core(const ot_chip *c, double rate);
void chip_derive(const ot_chip *c, chip_derived *d);

/* The generated part of docs/chips.md: field reference, preset values, assumptions. */
void chip_doc_write(FILE *out);

#endif
