/* The field table (chip_fields.def) expanded into data, and typed access to one field.
**
** Every other part of the chip module walks chip_fields[] instead of naming members, so a
** field added to the .def file is read, checked, printed, written and documented at once. */
#include "arch/chip_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A kind that does not match its member's C type would silently corrupt the struct: refuse to
** compile instead.  (_Generic does not evaluate its operand, so the null pointer is never read.) */
#define CHIP_KIND_OK_U32(e) _Generic((e), uint32_t: 1, default: 0)
#define CHIP_KIND_OK_U64(e) _Generic((e), uint64_t: 1, default: 0)
#define CHIP_KIND_OK_F64(e) _Generic((e), double: 1, default: 0)
#define CHIP_KIND_OK_BOOL(e) _Generic((e), bool: 1, default: 0)
#define CHIP_KIND_OK_DTYPES(e) _Generic((e), uint64_t: 1, default: 0)
#define F(path, kind, member, min, max, unit, doc)                              \
  _Static_assert(CHIP_KIND_OK_##kind(((struct ot_chip *)0)->member),            \
                 "chip_fields.def: the kind of " path " does not match its member");
#include "arch/chip_fields.def"
#undef F

const chip_field chip_fields[CHIP_FIELD_COUNT] = {
#define F(path, kind, member, min, max, unit, doc) \
  {path, CHIP_##kind, offsetof(struct ot_chip, member), (double)(min), (double)(max), unit, doc},
#include "arch/chip_fields.def"
#undef F
};

static const char *const dtype_names[] = {
#define OT_X(id, name, bytes, isf, e, m) name,
  OT_DTYPE_MAP(OT_X)
#undef OT_X
};

const char *chip_dtype_name(unsigned t) {
  return t < OT_DT_COUNT ? dtype_names[t] : "?";
}

int chip_dtype_find(const char *name) {
  for (unsigned t = 0; t < OT_DT_COUNT; t++)
    if (!strcmp(name, dtype_names[t])) return (int)t;
  return -1;
}

int chip_field_find(const char *path) {
  for (int i = 0; i < CHIP_FIELD_COUNT; i++)
    if (!strcmp(path, chip_fields[i].path)) return i;
  return -1;
}

bool chip_field_is_section(const char *path) {
  size_t n = strlen(path);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++)
    if (!strncmp(chip_fields[i].path, path, n) && chip_fields[i].path[n] == '.') return true;
  return false;
}

static void *field_addr(ot_chip *c, int i) { return (char *)c + chip_fields[i].offset; }
static const void *field_caddr(const ot_chip *c, int i) {
  return (const char *)c + chip_fields[i].offset;
}

double chip_field_get(const ot_chip *c, int i) {
  const void *p = field_caddr(c, i);
  switch (chip_fields[i].kind) {
  case CHIP_U32: return *(const uint32_t *)p;
  case CHIP_U64: case CHIP_DTYPES: return (double)*(const uint64_t *)p;
  case CHIP_F64: return *(const double *)p;
  case CHIP_BOOL: return *(const bool *)p ? 1.0 : 0.0;
  }
  return 0.0;
}

void chip_field_put(ot_chip *c, int i, double v) {
  void *p = field_addr(c, i);
  switch (chip_fields[i].kind) {
  case CHIP_U32: *(uint32_t *)p = (uint32_t)v; break;
  case CHIP_U64: case CHIP_DTYPES: *(uint64_t *)p = (uint64_t)v; break;
  case CHIP_F64: *(double *)p = v; break;
  case CHIP_BOOL: *(bool *)p = v != 0.0; break;
  }
}

bool chip_field_same(const ot_chip *a, const ot_chip *b, int i) {
  /* Compare stored values by type: exact for doubles and for 64-bit integers beyond 2^53. */
  const void *pa = field_caddr(a, i), *pb = field_caddr(b, i);
  switch (chip_fields[i].kind) {
  case CHIP_U32: return *(const uint32_t *)pa == *(const uint32_t *)pb;
  case CHIP_U64: case CHIP_DTYPES: return *(const uint64_t *)pa == *(const uint64_t *)pb;
  case CHIP_F64: return *(const double *)pa == *(const double *)pb;
  case CHIP_BOOL: return *(const bool *)pa == *(const bool *)pb;
  }
  return false;
}

const char *chip_field_reject(int i, double v) {
  const chip_field *f = &chip_fields[i];
  if (f->kind == CHIP_BOOL) return (v == 0.0 || v == 1.0) ? "" : "expected 0 (false) or 1 (true)";
  if (f->kind == CHIP_DTYPES) return "a list of data types, not a number";
  if (isnan(v)) return "not a number";
  if (f->kind != CHIP_F64 && v != floor(v)) return "expected an integer";
  if (v < f->min || v > f->max) return "out of range";
  return "";
}

/* ---- Suggestions for misspelt paths ---------------------------------------------------- */

static const char *const top_keys[] = {"name", "base", "comment", "derived"};

/* Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("nmae"), the
** commonest typo.  Three rolling rows keep it off the heap. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
  enum { MAXLEN = 200 };
  if (la > MAXLEN || lb > MAXLEN) return (size_t)-1; /* nothing real is that long */
  size_t rows[3][MAXLEN + 1];
  size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (prev[j] + 1 < best) best = prev[j] + 1;
      if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < best)
        best = prev2[j - 2] + 1;
      cur[j] = best;
    }
    size_t *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb];
}

size_t chip_edit_distance(const char *a, const char *b) {
  return edit_distance(a, strlen(a), b, strlen(b));
}

typedef struct {
  const char *path;  /* what the user wrote */
  const char *best;  /* best candidate so far (its first best_len bytes) */
  size_t best_len, dist;
} suggestion;

static const char *last_part(const char *s, size_t len) {
  const char *p = s + len;
  while (p > s && p[-1] != '.') p--;
  return p;
}

/* A candidate wins on edit distance; one whose last part equals the unknown key's last part
** (the right name in the wrong section) counts as distance 1. */
static void suggest_consider(suggestion *s, const char *cand, size_t len) {
  size_t plen = strlen(s->path);
  size_t d = edit_distance(s->path, plen, cand, len);
  const char *a = last_part(s->path, plen), *b = last_part(cand, len);
  size_t la = plen - (size_t)(a - s->path), lb = len - (size_t)(b - cand);
  if (la == lb && !memcmp(a, b, la) && d > 1) d = 1;
  if (d < s->dist) { s->dist = d; s->best = cand; s->best_len = len; }
}

bool chip_field_suggest(const char *path, char *buf, size_t size) {
  suggestion s = {path, NULL, 0, (size_t)-1};
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const char *p = chip_fields[i].path;
    suggest_consider(&s, p, strlen(p));
    for (const char *dot = strchr(p, '.'); dot; dot = strchr(dot + 1, '.'))
      suggest_consider(&s, p, (size_t)(dot - p)); /* its sections */
  }
  for (size_t k = 0; k < sizeof top_keys / sizeof top_keys[0]; k++)
    suggest_consider(&s, top_keys[k], strlen(top_keys[k]));
  size_t len = strlen(path);
  size_t limit = len / 3 > 2 ? len / 3 : 2;
  if (!s.best || s.dist > limit || !size) return false;
  snprintf(buf, size, "%.*s", (int)s.best_len, s.best);
  return true;
}

/* ---- Formatting -------------------------------------------------------------------------- */

void chip_number_format(double v, char *buf, size_t size) {
  if (v == floor(v) && fabs(v) < 1e17) { snprintf(buf, size, "%.0f", v); return; }
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

static void format_bytes(double v, char *buf, size_t size) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  double scaled = v;
  int u = -1;
  while (u < 3 && scaled >= 1024.0 && fmod(scaled, 1024.0) == 0.0) { scaled /= 1024.0; u++; }
  if (u < 0) snprintf(buf, size, "%.0f B", v);
  else snprintf(buf, size, "%.0f B (%.0f %s)", v, scaled, units[u]);
}

static void format_dtypes(uint64_t mask, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (unsigned t = 0; t < OT_DT_COUNT && used < size; t++) {
    if (!((mask >> t) & 1u)) continue;
    int n = snprintf(buf + used, size - used, "%s%s", used > 1 ? ", " : "", chip_dtype_name(t));
    if (n < 0) return;
    used += (size_t)n;
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

void chip_field_format(const ot_chip *c, int i, char *buf, size_t size) {
  const chip_field *f = &chip_fields[i];
  double v = chip_field_get(c, i);
  char num[64];
  switch (f->kind) {
  case CHIP_BOOL: snprintf(buf, size, "%s", v != 0.0 ? "true" : "false"); return;
  case CHIP_DTYPES: format_dtypes(*(const uint64_t *)field_caddr(c, i), buf, size); return;
  default: break;
  }
  if (!strcmp(f->unit, "B")) { format_bytes(v, buf, size); return; }
  chip_number_format(v, num, sizeof num);
  snprintf(buf, size, "%s%s%s", num, f->unit[0] ? " " : "", f->unit);
}
