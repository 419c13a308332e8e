/* Reading chip descriptions from JSON: presets and custom chips.
**
** A file is an object of sections ("sbuf": {...}) whose leaves are fields of chip_fields.def.
** A leaf is a plain value (number, true/false, list of data-type names) or an object
** {"value": V, "source": "A2 §3.1"} / {"value": V, "assumed": "why"} that keeps provenance.
** Presets must give every field, each with provenance, and no "base"; a custom chip names a
** preset in "base" and overrides any subset.  Every problem in a file is reported in one pass,
** each naming the file, the field, the value and what was expected. */
#include "arch/chip_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { CHIP_FILE_MAX = 16 << 20 }; /* far above any real description; bounds a bad input */

typedef struct {
  const char *origin; /* file name for messages */
  ot_error *err;
  ot_chip *chip;
  bool preset;
  unsigned char seen[CHIP_FIELD_COUNT];
  ot_status status; /* first failure, OT_OK if none */
} reader;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void reader_fail(reader *r, ot_status code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(r->err, code, "%s: %s", r->origin, msg);
  if (r->status == OT_OK) r->status = code;
}

/* Copy of untrusted text that is safe to print: control bytes become '?', long text is cut. */
static void printable(const char *s, char *buf, size_t size) {
  size_t n = 0;
  for (; s && *s && n + 4 < size; s++) buf[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  if (s && *s && size >= 4) { memcpy(buf + n, "...", 3); n += 3; }
  buf[size ? n : 0] = '\0';
}

static void describe(const cJSON *v, char *buf, size_t size) {
  char tmp[64];
  if (cJSON_IsNumber(v)) { chip_number_format(v->valuedouble, buf, size); return; }
  if (cJSON_IsString(v)) { printable(v->valuestring, tmp, 48); snprintf(buf, size, "string \"%s\"", tmp); return; }
  const char *what = cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : cJSON_IsNull(v) ? "null"
                   : cJSON_IsArray(v) ? "a list" : cJSON_IsObject(v) ? "an object" : "an invalid value";
  snprintf(buf, size, "%s", what);
}

/* "an integer in 1..64 banks" and the like: what a field accepts. */
static void expectation(int i, char *buf, size_t size) {
  const chip_field *f = &chip_fields[i];
  char lo[64], hi[64], names[256];
  size_t used = 0;
  switch (f->kind) {
  case CHIP_BOOL: snprintf(buf, size, "true or false"); return;
  case CHIP_DTYPES:
    names[0] = '\0';
    for (unsigned t = 0; t < OT_DT_COUNT; t++) {
      int n = snprintf(names + used, sizeof names - used, "%s%s", t ? ", " : "", chip_dtype_name(t));
      if (n < 0 || (size_t)n >= sizeof names - used) break;
      used += (size_t)n;
    }
    snprintf(buf, size, "a list of data-type names from: %s", names);
    return;
  default: break;
  }
  chip_number_format(f->min, lo, sizeof lo);
  chip_number_format(f->max, hi, sizeof hi);
  snprintf(buf, size, "%s in %s..%s%s%s", f->kind == CHIP_F64 ? "a number" : "an integer", lo, hi,
           f->unit[0] ? " " : "", f->unit);
}

static void fail_type(reader *r, int i, const cJSON *v) {
  char got[96], want[320];
  describe(v, got, sizeof got);
  expectation(i, want, sizeof want);
  reader_fail(r, OT_EINVAL, "field '%s': expected %s, got %s", chip_fields[i].path, want, got);
}

/* ---- Leaves ------------------------------------------------------------------------------ */

static bool store_dtypes(reader *r, int i, const cJSON *v) {
  uint64_t mask = 0;
  if (!cJSON_IsArray(v)) { fail_type(r, i, v); return false; }
  for (const cJSON *e = v->child; e; e = e->next) {
    int t = cJSON_IsString(e) ? chip_dtype_find(e->valuestring) : -1;
    if (t >= 0) { mask |= (uint64_t)1 << t; continue; }
    if (!cJSON_IsString(e)) { fail_type(r, i, e); return false; }
    char name[64], want[320];
    printable(e->valuestring, name, sizeof name);
    expectation(i, want, sizeof want);
    reader_fail(r, OT_EINVAL, "field '%s': unknown data type \"%s\": expected %s", chip_fields[i].path,
                name, want);
    return false;
  }
  chip_field_put(r->chip, i, (double)mask);
  return true;
}

static bool store_value(reader *r, int i, const cJSON *v) {
  const chip_field *f = &chip_fields[i];
  if (f->kind == CHIP_DTYPES) return store_dtypes(r, i, v);
  if (f->kind == CHIP_BOOL) {
    if (!cJSON_IsBool(v)) { fail_type(r, i, v); return false; }
    chip_field_put(r->chip, i, cJSON_IsTrue(v) ? 1.0 : 0.0);
    return true;
  }
  if (!cJSON_IsNumber(v)) { fail_type(r, i, v); return false; }
  const char *why = chip_field_reject(i, v->valuedouble);
  if (*why) {
    char got[64], want[320];
    chip_number_format(v->valuedouble, got, sizeof got);
    expectation(i, want, sizeof want);
    reader_fail(r, OT_ERANGE, "field '%s' = %s is %s: expected %s", f->path, got,
                strcmp(why, "expected an integer") ? "out of range" : "not an integer", want);
    return false;
  }
  chip_field_put(r->chip, i, v->valuedouble);
  return true;
}

typedef struct {
  const cJSON *value;
  const char *source, *assumed;
} leaf;

static bool provenance_text(reader *r, const char *path, const cJSON *k, const char **dst) {
  if (cJSON_IsString(k) && k->valuestring[0]) { *dst = k->valuestring; return true; }
  char got[96];
  describe(k, got, sizeof got);
  reader_fail(r, OT_EINVAL, "field '%s': \"%s\" must be a non-empty string, got %s", path, k->string, got);
  return false;
}

/* Split {"value": V, "source"|"assumed": S} into its parts; a plain value is its own value. */
static bool leaf_unwrap(reader *r, int i, const cJSON *item, leaf *out) {
  const char *path = chip_fields[i].path;
  bool ok = true;
  *out = (leaf){cJSON_IsObject(item) ? NULL : item, NULL, NULL};
  if (!cJSON_IsObject(item)) return true;
  for (const cJSON *k = item->child; k; k = k->next) {
    const char *key = k->string ? k->string : "";
    if (!strcmp(key, "value") && !out->value) out->value = k;
    else if (!strcmp(key, "source") && !out->source) ok &= provenance_text(r, path, k, &out->source);
    else if (!strcmp(key, "assumed") && !out->assumed) ok &= provenance_text(r, path, k, &out->assumed);
    else {
      char name[64];
      printable(key, name, sizeof name);
      bool dup = !strcmp(key, "value") || !strcmp(key, "source") || !strcmp(key, "assumed");
      reader_fail(r, OT_EINVAL, "field '%s': %s \"%s\" in its object: expected {\"value\": V, \"source\": "
                  "\"...\"} or {\"value\": V, \"assumed\": \"why\"}", path, dup ? "repeated key" : "unknown key", name);
      ok = false;
    }
  }
  if (!out->value && ok) {
    reader_fail(r, OT_EINVAL, "field '%s': object without \"value\": expected {\"value\": V, \"source\": "
                "\"...\"} or {\"value\": V, \"assumed\": \"why\"}", path);
    return false;
  }
  if (out->source && out->assumed) {
    reader_fail(r, OT_EINVAL, "field '%s': give \"source\" or \"assumed\", not both", path);
    return false;
  }
  return ok;
}

static void set_provenance(reader *r, int i, const leaf *lf) {
  char buf[2048];
  const char *text = lf->source;
  if (lf->assumed) { snprintf(buf, sizeof buf, "assumed: %s", lf->assumed); text = buf; }
  if (!text) { snprintf(buf, sizeof buf, "set in %s", r->origin); text = buf; }
  ot_status st = chip_source_set(r->chip, i, text, r->err);
  if (st != OT_OK && r->status == OT_OK) r->status = st;
}

static void reader_leaf(reader *r, int i, const cJSON *item) {
  leaf lf;
  if (r->seen[i]) { reader_fail(r, OT_EINVAL, "field '%s' is given twice", chip_fields[i].path); return; }
  r->seen[i] = 1;
  if (!leaf_unwrap(r, i, item, &lf)) return;
  if (r->preset && !lf.source && !lf.assumed) {
    reader_fail(r, OT_EINVAL, "field '%s' has no provenance: a preset writes {\"value\": V, \"source\": "
                "\"A1 §2.2\"} or {\"value\": V, \"assumed\": \"why\"}", chip_fields[i].path);
    return;
  }
  if (store_value(r, i, lf.value)) set_provenance(r, i, &lf);
}

/* ---- Sections and top-level keys --------------------------------------------------------- */

static bool is_top_key(const char *key) {
  return !strcmp(key, "name") || !strcmp(key, "base") || !strcmp(key, "comment") || !strcmp(key, "derived");
}

static void fail_unknown(reader *r, const char *path) {
  char name[160], hint[128];
  printable(path, name, sizeof name);
  if (chip_field_suggest(path, hint, sizeof hint))
    reader_fail(r, OT_EINVAL, "unknown field '%s' (did you mean '%s'?)", name, hint);
  else
    reader_fail(r, OT_EINVAL, "unknown field '%s' (`opentrn chip fields` lists the fields)", name);
}

static void fail_section(reader *r, const char *path, const cJSON *v) {
  char got[96], first[128] = "";
  size_t n = strlen(path);
  for (int i = 0; i < CHIP_FIELD_COUNT && !first[0]; i++)
    if (!strncmp(chip_fields[i].path, path, n) && chip_fields[i].path[n] == '.')
      snprintf(first, sizeof first, "%s", chip_fields[i].path + n + 1);
  describe(v, got, sizeof got);
  reader_fail(r, OT_EINVAL, "'%s' is a section: expected an object of its fields such as {\"%s\": ...}, got %s",
              path, first, got);
}

static void reader_walk(reader *r, const cJSON *obj, const char *prefix) {
  for (const cJSON *k = obj->child; k; k = k->next) {
    const char *key = k->string ? k->string : "";
    char path[160];
    int n = prefix[0] ? snprintf(path, sizeof path, "%s.%s", prefix, key) : snprintf(path, sizeof path, "%s", key);
    if (n < 0 || (size_t)n >= sizeof path) { fail_unknown(r, path); continue; }
    if (!prefix[0] && is_top_key(key)) continue; /* read by read_meta() */
    int i = chip_field_find(path);
    if (i >= 0) reader_leaf(r, i, k);
    else if (!chip_field_is_section(path)) fail_unknown(r, path);
    else if (!cJSON_IsObject(k)) fail_section(r, path, k);
    else reader_walk(r, k, path);
  }
}

static bool name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof ((ot_chip *)0)->name) return false;
  for (; *s; s++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", *s)) return false;
  return true;
}

/* A chip without "name" is named after its file: "configs/chips/big.json" -> "big". */
static void name_from_origin(const char *origin, char *buf, size_t size) {
  const char *base = strrchr(origin, '/');
  base = base ? base + 1 : origin;
  size_t n = 0;
  for (; *base && n + 1 < size; base++) {
    if (!strcmp(base, ".json")) break;
    buf[n++] = name_valid((char[]){*base, 0}) ? *base : '_';
  }
  buf[n] = '\0';
  if (!n) snprintf(buf, size, "custom");
}

static void read_meta(reader *r, const cJSON *root) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
  const cJSON *comment = cJSON_GetObjectItemCaseSensitive(root, "comment");
  char got[96];
  if (comment && !cJSON_IsString(comment)) {
    describe(comment, got, sizeof got);
    reader_fail(r, OT_EINVAL, "\"comment\": expected a string, got %s", got);
  }
  if (!name) {
    if (r->preset) reader_fail(r, OT_EINVAL, "missing \"name\"");
    else name_from_origin(r->origin, r->chip->name, sizeof r->chip->name);
    return;
  }
  if (!cJSON_IsString(name) || !name_valid(name->valuestring)) {
    describe(name, got, sizeof got);
    reader_fail(r, OT_EINVAL, "\"name\" is %s: expected 1 to %zu characters from A-Z a-z 0-9 . _ + -", got,
                sizeof r->chip->name - 1);
    return;
  }
  snprintf(r->chip->name, sizeof r->chip->name, "%s", name->valuestring);
}

static void check_complete(reader *r) {
  for (int i = 0; i < CHIP_FIELD_COUNT; i++)
    if (!r->seen[i]) reader_fail(r, OT_EINVAL, "preset misses field '%s'", chip_fields[i].path);
}

/* ---- Whole documents --------------------------------------------------------------------- */

static bool json_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Where a key was expected (after '{' or ','), cJSON reports one byte past the offending
** character; move back onto it so the column points at the culprit. */
static size_t culprit(const char *text, size_t off) {
  if (off == 0 || json_space(text[off - 1]) || text[off - 1] == '"') return off;
  size_t k = off - 1;
  while (k > 0 && json_space(text[k - 1])) k--;
  return k > 0 && (text[k - 1] == '{' || text[k - 1] == ',') ? off - 1 : off;
}

static ot_status fail_malformed(const char *text, size_t len, const char *at, const char *origin,
                                ot_error *err) {
  size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
  off = culprit(text, off);
  unsigned line = 1, col = 1;
  for (size_t k = 0; k < off; k++) {
    if (text[k] == '\n') { line++; col = 1; } else col++;
  }
  if (off >= len)
    return CHIP_FAIL(err, OT_EPARSE, "%s:%u:%u: malformed JSON: unexpected end of input", origin, line, col);
  char near[32];
  size_t n = 0;
  for (size_t k = off; k < len && n < 20 && text[k] != '\n'; k++)
    near[n++] = ((unsigned char)text[k] < 0x20) ? '?' : text[k];
  near[n] = '\0';
  return CHIP_FAIL(err, OT_EPARSE, "%s:%u:%u: malformed JSON near '%s'", origin, line, col, near);
}

static const char *json_kind(const cJSON *v) {
  return cJSON_IsArray(v) ? "a list" : cJSON_IsString(v) ? "a string" : cJSON_IsNumber(v) ? "a number"
       : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNull(v) ? "null" : "an invalid value";
}

/* The starting chip: empty for a preset, a copy of the base preset for a custom chip. */
static ot_status start_chip(const cJSON *root, const char *origin, bool preset, ot_chip **chip,
                            ot_error *err) {
  const cJSON *base = cJSON_GetObjectItemCaseSensitive(root, "base");
  char what[320];
  if (preset) {
    if (base) return CHIP_FAIL(err, OT_EINVAL, "%s: a preset has no \"base\"", origin);
    *chip = chip_alloc();
    return *chip ? OT_OK : CHIP_FAIL(err, OT_ENOMEM, "out of memory");
  }
  if (!base) {
    char list[128];
    chip_preset_list(list, sizeof list);
    return CHIP_FAIL(err, OT_EINVAL, "%s: missing \"base\": a custom chip starts from a preset and "
                        "overrides some of its fields; add \"base\": one of %s", origin, list);
  }
  if (!cJSON_IsString(base)) {
    char got[96];
    describe(base, got, sizeof got);
    return CHIP_FAIL(err, OT_EINVAL, "%s: \"base\" is %s: expected a preset name string", origin, got);
  }
  snprintf(what, sizeof what, "%s: \"base\"", origin);
  if (!chip_preset_text(base->valuestring)) return chip_unknown_preset(what, base->valuestring, err);
  ot_status st = ot_chip_preset(base->valuestring, chip, err);
  if (st == OT_OK) snprintf((*chip)->base, sizeof (*chip)->base, "%s", base->valuestring);
  return st;
}

static bool blank(const char *text, size_t len) {
  for (size_t k = 0; k < len; k++)
    if (!json_space(text[k])) return false;
  return true;
}

static ot_status parse_root(const char *text, size_t len, const char *origin, cJSON **root, ot_error *err) {
  if (blank(text, len))
    return CHIP_FAIL(err, OT_EPARSE, "%s: empty file: expected a JSON object such as "
                        "{\"base\": \"trn2\", \"name\": \"my-chip\", ...}", origin);
  const char *end = NULL;
  /* The length includes the NUL so cJSON can insist nothing follows the object. */
  *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
  if (!*root) return fail_malformed(text, len, end, origin, err);
  if (cJSON_IsObject(*root)) return OT_OK;
  ot_status st = CHIP_FAIL(err, OT_EPARSE, "%s: the top level is %s: expected a JSON object {...}",
                              origin, json_kind(*root));
  cJSON_Delete(*root);
  *root = NULL;
  return st;
}

ot_status chip_parse(const char *text, size_t len, const char *origin, bool preset, ot_chip **out,
                     ot_error *err) {
  cJSON *root = NULL;
  *out = NULL;
  ot_status st = parse_root(text, len, origin, &root, err);
  if (st != OT_OK) return st;
  reader r = {.origin = origin, .err = err, .preset = preset, .status = OT_OK};
  st = start_chip(root, origin, preset, &r.chip, err);
  if (st == OT_OK) {
    read_meta(&r, root);
    reader_walk(&r, root, "");
    if (preset) check_complete(&r);
    st = r.status;
  }
  cJSON_Delete(root);
  if (st == OT_OK) st = chip_check_fields(r.chip, origin, err);
  if (st != OT_OK) { ot_chip_free(r.chip); return st; }
  *out = r.chip;
  return OT_OK;
}

ot_status ot_chip_load_json(const char *text, const char *origin, ot_chip **out, ot_error *err) {
  if (!out) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_load_json: out is NULL");
  *out = NULL;
  if (!text) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_load_json: text is NULL");
  return chip_parse(text, strlen(text), origin ? origin : "<json>", false, out, err);
}

/* Read a whole file (pipes too: no seeking); the text gets a terminating NUL. */
static ot_status read_file(const char *path, char **text, size_t *len, ot_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return CHIP_FAIL(err, OT_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  ot_status st = buf ? OT_OK : CHIP_FAIL(err, OT_ENOMEM, "out of memory");
  while (st == OT_OK) {
    if (n + 1 >= cap) {
      if (cap >= CHIP_FILE_MAX) {
        st = CHIP_FAIL(err, OT_EINVAL, "%s: file too large (limit %d bytes)", path, CHIP_FILE_MAX);
        break;
      }
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) { st = CHIP_FAIL(err, OT_ENOMEM, "out of memory"); break; }
      buf = bigger;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) st = CHIP_FAIL(err, OT_EIO, "%s: cannot read: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (st != OT_OK) { free(buf); return st; }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return OT_OK;
}

ot_status ot_chip_load_file(const char *path, ot_chip **out, ot_error *err) {
  if (!out) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_load_file: out is NULL");
  *out = NULL;
  if (!path) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_load_file: path is NULL");
  char *text = NULL;
  size_t len = 0;
  ot_status st = read_file(path, &text, &len, err);
  if (st != OT_OK) return st;
  const char *nul = memchr(text, '\0', len);
  if (nul) st = fail_malformed(text, len, nul, path, err); /* a NUL byte is never JSON */
  else st = chip_parse(text, len, path, false, out, err);
  free(text);
  return st;
}
