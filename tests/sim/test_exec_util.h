/* Shared by the value-semantics tests (test_mem.c, test_exec_*.c): a core state built directly
** (no event loop), instructions built field by field, and an independent element addressing
** model so every test can place inputs and read outputs without going through the code under
** test.  References in the tests are plain loops over [P][F] arrays. */
#ifndef TEST_EXEC_UTIL_H
#define TEST_EXEC_UTIL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opentrn/chip.h>
#include <opentrn/num.h>

#include "arch/chip_int.h"
#include "isa/program.h"
#include "sim/sim_exec_int.h"

/* ---- seeded randomness (splitmix64) ------------------------------------------------------ */
static uint64_t xt_state;
static inline void xt_seed(uint64_t s) { xt_state = s * 0x9E3779B97F4A7C15ull + 7; }
static inline uint64_t xt_next(void) {
  uint64_t z = (xt_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline uint32_t xt_below(uint32_t n) { return n ? (uint32_t)(xt_next() % n) : 0; }
static inline float xt_uniform(float lo, float hi) { return lo + (hi - lo) * (float)((xt_next() >> 40) * 0x1p-24); }
static inline int32_t xt_range(int32_t lo, int32_t hi) { return lo + (int32_t)xt_below((uint32_t)(hi - lo + 1)); }

static const uint32_t xt_parts[] = {1, 32, 64, 100, 128};
static const uint32_t xt_frees[] = {1, 7, 129, 512, 12, 60};
static inline uint32_t xt_rand_parts(void) { return xt_parts[xt_below(5)]; }
static inline uint32_t xt_rand_free(void) { return xt_frees[xt_below(6)]; }

/* ---- the environment: one core, HBM, an exec context ------------------------------------- */
typedef struct {
  ot_chip *chip;
  ot_core_state core;
  ot_hbm hbm;
  ot_insn insn;
  ot_site site;
  ot_error err;
  unsigned warnings;
  ot_rng rng;
  int32_t regs[256];
  ot_exec_ctx x;
} xt_env;

static inline xt_env *xt_env_new(const char *preset) {
  xt_env *e = calloc(1, sizeof *e);
  ot_error err;
  ot_error_clear(&err);
  if (!e || ot_chip_preset(preset, &e->chip, &err)) { fprintf(stderr, "%s\n", err.msg); abort(); }
  const ot_chip *c = e->chip;
  if (ot_sram_init(&e->core.sbuf, c->sbuf.partitions, c->sbuf.bytes_per_partition, false, &err) ||
      ot_sram_init(&e->core.psum, c->psum.partitions, c->psum.bytes_per_partition, true, &err) ||
      ot_hbm_init(&e->hbm, c->hbm.bytes, &err)) { fprintf(stderr, "%s\n", err.msg); abort(); }
  e->core.stationary = calloc((size_t)c->tensor.rows * c->tensor.cols, sizeof(float));
  ot_rng_seed(&e->rng, 2026);
  e->site = (ot_site){NULL, 0, OT_ENG_VECTOR, 0, &e->insn};
  e->x.chip = c;
  e->x.mem.core = &e->core;
  e->x.mem.hbm = &e->hbm;
  e->x.regs = e->regs;
  e->x.cvt.round = OT_ROUND_NEAREST_EVEN;
  e->x.cvt.rng = &e->rng;
  e->x.site = &e->site;
  e->x.err = &e->err;
  e->x.check_uninit = true;
  e->x.warnings = &e->warnings;
  ot_error_clear(&e->err);
  return e;
}

static inline void xt_env_free(xt_env *e) {
  ot_sram_free(&e->core.sbuf);
  ot_sram_free(&e->core.psum);
  ot_hbm_free(&e->hbm);
  free(e->core.stationary);
  ot_chip_free(e->chip);
  free(e);
}

/* Execute e->insn (set by the caller) on engine eng; errors land in e->err. */
static inline ot_status xt_exec(xt_env *e, ot_engine eng) {
  ot_error_clear(&e->err);
  e->site.engine = eng;
  return ot_exec_insn(&e->x, &e->insn);
}

/* ---- access patterns -------------------------------------------------------------------- */
static inline ot_ap xt_ap(ot_mem mem, ot_dtype t, uint32_t p0, uint32_t np, uint64_t off) {
  ot_ap a;
  memset(&a, 0, sizeof a);
  a.mem = (uint8_t)mem, a.dtype = (uint8_t)t, a.part_start = (uint16_t)p0, a.part_count = (uint16_t)np, a.offset = off;
  return a;
}

static inline ot_ap xt_dense(ot_mem mem, ot_dtype t, uint32_t p0, uint32_t np, uint64_t off, uint32_t F) {
  ot_ap a = xt_ap(mem, t, p0, np, off);
  a.ndim = 1, a.dim[0].stride = 1, a.dim[0].size = F;
  return a;
}

/* A random non-self-overlapping pattern of F elements per partition placed at bytes
** [base, base + *span): F split into up to 3 dims, dims laid out in a random order with random
** signs and gaps, so strides are multi-dimensional, non-unit and negative. */
static inline ot_ap xt_rand_ap(ot_mem mem, ot_dtype t, uint32_t p0, uint32_t np, uint64_t base, uint32_t F,
                               uint64_t *span) {
  ot_ap a = xt_ap(mem, t, p0, np, 0);
  uint32_t left = F, nd = 0, sizes[3];
  while (nd < 2 && left > 1 && xt_below(3)) { /* peel random divisors */
    uint32_t d = 2 + xt_below(left - 1);
    while (left % d) d--;
    if (d < 2 || d == left) break;
    sizes[nd++] = d, left /= d;
  }
  sizes[nd++] = left;
  uint32_t order[3] = {0, 1, 2};
  for (uint32_t i = nd; i > 1; i--) { uint32_t j = xt_below(i), tmp = order[i - 1]; order[i - 1] = order[j]; order[j] = tmp; }
  int64_t stride = 1 + xt_below(2), lo = 0, hi = 0;   /* elements; gap of 1 */
  for (uint32_t i = 0; i < nd; i++) {                  /* innermost layout dim first */
    uint32_t d = order[i];
    int64_t s = xt_below(3) == 0 ? -stride : stride;
    a.dim[d].size = sizes[d], a.dim[d].stride = (int32_t)s;
    if (s < 0) lo += s * (sizes[d] - 1); else hi += s * (sizes[d] - 1);
    stride *= sizes[d];
  }
  a.ndim = (uint8_t)nd;
  uint64_t es = ot_dtype_size(t);
  a.offset = base + (uint64_t)(-lo) * es;
  *span = (uint64_t)(hi - lo + 1) * es;
  return a;
}

/* ---- independent addressing: element i (iteration order) of a pattern --------------------- */
static inline uint64_t xt_free_elems(const ot_ap *a) {
  uint64_t n = 1;
  for (unsigned d = 0; d < a->ndim; d++) n *= a->dim[d].size;
  return n;
}

static inline uint64_t xt_addr(const xt_env *e, const ot_ap *a, int32_t reg_val, uint64_t i) {
  uint64_t F = xt_free_elems(a), es = ot_dtype_size((ot_dtype)a->dtype);
  uint64_t p = a->mem == OT_MEM_HBM ? 0 : i / F, r = i % F;
  int64_t off = (int64_t)a->offset + reg_val;
  for (int d = (int)a->ndim - 1; d >= 0; d--) {
    off += (int64_t)(r % a->dim[d].size) * a->dim[d].stride * (int64_t)es;
    r /= a->dim[d].size;
  }
  uint64_t pb = a->mem == OT_MEM_SBUF ? e->core.sbuf.part_bytes : a->mem == OT_MEM_PSUM ? e->core.psum.part_bytes : 0;
  return (a->part_start + p) * pb + (uint64_t)off;
}

static inline uint8_t *xt_bytes(xt_env *e, ot_mem mem, uint64_t addr, bool write) {
  if (mem == OT_MEM_SBUF) return e->core.sbuf.data + addr;
  if (mem == OT_MEM_PSUM) return e->core.psum.data + addr;
  uint64_t pg = addr >> OT_HBM_PAGE_BITS;
  if (!e->hbm.pages[pg] && write) e->hbm.pages[pg] = calloc(1u << OT_HBM_PAGE_BITS, 1);
  return e->hbm.pages[pg] ? e->hbm.pages[pg] + (addr & ((1u << OT_HBM_PAGE_BITS) - 1)) : NULL;
}

/* Place raw element bits (little endian) and mark the bytes written. */
static inline void xt_put_bits(xt_env *e, const ot_ap *a, const uint32_t *bits) {
  uint64_t n = xt_free_elems(a) * (a->mem == OT_MEM_HBM ? 1 : a->part_count), es = ot_dtype_size((ot_dtype)a->dtype);
  ot_sram *s = a->mem == OT_MEM_SBUF ? &e->core.sbuf : a->mem == OT_MEM_PSUM ? &e->core.psum : NULL;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t ad = xt_addr(e, a, 0, i);
    for (uint64_t b = 0; b < es; b++) { /* byte by byte: an HBM element may straddle pages */
      *xt_bytes(e, (ot_mem)a->mem, ad + b, true) = (uint8_t)(bits[i] >> (8 * b));
      if (s) s->written[(ad + b) >> 3] |= (uint8_t)(1u << ((ad + b) & 7));
    }
  }
}

static inline void xt_get_bits(xt_env *e, const ot_ap *a, uint32_t *bits) {
  uint64_t n = xt_free_elems(a) * (a->mem == OT_MEM_HBM ? 1 : a->part_count), es = ot_dtype_size((ot_dtype)a->dtype);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t ad = xt_addr(e, a, 0, i);
    uint32_t v = 0;
    for (uint64_t b = 0; b < es; b++) {
      const uint8_t *p = xt_bytes(e, (ot_mem)a->mem, ad + b, false);
      v |= (uint32_t)(p ? *p : 0) << (8 * b);
    }
    bits[i] = v;
  }
}

static inline void xt_put_f32(xt_env *e, const ot_ap *a, const float *vals) {
  uint64_t n = xt_free_elems(a) * (a->mem == OT_MEM_HBM ? 1 : a->part_count);
  uint32_t *b = malloc(n * 4 + 4);
  for (uint64_t i = 0; i < n; i++) b[i] = ot_f32_to_bits(vals[i], (ot_dtype)a->dtype, NULL);
  xt_put_bits(e, a, b);
  free(b);
}

static inline void xt_get_f32(xt_env *e, const ot_ap *a, float *vals) {
  uint64_t n = xt_free_elems(a) * (a->mem == OT_MEM_HBM ? 1 : a->part_count);
  uint32_t *b = malloc(n * 4 + 4);
  xt_get_bits(e, a, b);
  for (uint64_t i = 0; i < n; i++) vals[i] = ot_bits_to_f32(b[i], (ot_dtype)a->dtype);
  free(b);
}

/* Random values representable in t: floats in [lo, hi] rounded to t; integers in t's range
** clipped to [lo, hi]. */
static inline void xt_rand_vals(float *v, uint64_t n, ot_dtype t, float lo, float hi) {
  for (uint64_t i = 0; i < n; i++) v[i] = ot_bits_to_f32(ot_f32_to_bits(xt_uniform(lo, hi), t, NULL), t);
}

/* Bit-exact comparison of fp32 arrays, reporting the first difference. */
static inline bool xt_same_f32(const float *got, const float *want, uint64_t n, const char *what) {
  for (uint64_t i = 0; i < n; i++) {
    uint32_t g, w;
    memcpy(&g, &got[i], 4), memcpy(&w, &want[i], 4);
    if (g != w && !(isnan(got[i]) && isnan(want[i]))) {
      fprintf(stderr, "%s: element %llu: got %.9g (%08x), want %.9g (%08x)\n", what, (unsigned long long)i,
              (double)got[i], g, (double)want[i], w);
      return false;
    }
  }
  return true;
}

static inline bool xt_same_bits(const uint32_t *got, const uint32_t *want, uint64_t n, const char *what) {
  for (uint64_t i = 0; i < n; i++)
    if (got[i] != want[i]) {
      fprintf(stderr, "%s: element %llu: got %08x, want %08x\n", what, (unsigned long long)i, got[i], want[i]);
      return false;
    }
  return true;
}

/* The error message contains every needle (printed when not). */
static inline bool xt_msg_has(const xt_env *e, const char *a, const char *b) {
  bool ok = strstr(e->err.msg, a) && (!b || strstr(e->err.msg, b));
  if (!ok) fprintf(stderr, "expected '%s' and '%s' in:\n%s\n", a, b ? b : "", e->err.msg);
  return ok;
}

#endif
