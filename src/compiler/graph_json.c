/* The JSON graph file (docs/graph.md "Graph files"): reader and writer.
**
** The reader parses with cJSON, then rebuilds the graph through ot_graph_add_node, so a file
** obeys exactly the rules of the C builder.  cJSON keeps no positions, so every message finds
** the line of the offending object or field by walking the (already validated) text again:
** "model.json:14: node 'fc' (linear): field 'attrs.w_out_in': expected a boolean, got a number".
** The writer prints one tensor or node per line, which keeps files diffable and messages exact. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/chip_int.h"
#include "compiler/graph_int.h"
#include "util/fileio.h"

#define GRAPH_FORMAT "opentrn-graph"
#define GRAPH_VERSION 1
#define GRAPH_MAX_CONST_ELEMS (1 << 24)

/* ---- positions in the text: the JSON is valid (cJSON accepted it) ----------------------- */

typedef struct {
  const char *s;
  size_t n;
} jtext;

static size_t skip_ws(jtext t, size_t i) {
  while (i < t.n && (t.s[i] == ' ' || t.s[i] == '\t' || t.s[i] == '\n' || t.s[i] == '\r')) i++;
  return i;
}

static size_t skip_string(jtext t, size_t i) {
  for (i++; i < t.n && t.s[i] != '"'; i++)
    if (t.s[i] == '\\') i++;
  return i < t.n ? i + 1 : t.n;
}

/* Index just past the value starting at i. */
static size_t skip_value(jtext t, size_t i) {
  i = skip_ws(t, i);
  if (i >= t.n) return t.n;
  if (t.s[i] == '"') return skip_string(t, i);
  if (t.s[i] != '{' && t.s[i] != '[') {
    while (i < t.n && !strchr(",}] \t\r\n", t.s[i])) i++;
    return i;
  }
  unsigned depth = 0;
  while (i < t.n) {
    char ch = t.s[i];
    if (ch == '"') { i = skip_string(t, i); continue; }
    if (ch == '{' || ch == '[') depth++;
    else if ((ch == '}' || ch == ']') && --depth == 0) return i + 1;
    i++;
  }
  return t.n;
}

/* Offset of the value of key in the object at obj (of the key itself with at_key); obj if
** absent. */
static size_t member_at(jtext t, size_t obj, const char *key, bool at_key) {
  size_t i = skip_ws(t, obj);
  if (i >= t.n || t.s[i] != '{') return obj;
  i++;
  size_t klen = strlen(key);
  for (;;) {
    i = skip_ws(t, i);
    if (i >= t.n || t.s[i] != '"') return obj;
    size_t kstart = i + 1, kend = skip_string(t, i);
    bool match = kend >= kstart + 1 && kend - 1 - kstart == klen && !memcmp(t.s + kstart, key, klen);
    i = skip_ws(t, kend);
    if (i < t.n && t.s[i] == ':') i++;
    i = skip_ws(t, i);
    if (match) return at_key ? kstart - 1 : i;
    i = skip_ws(t, skip_value(t, i));
    if (i >= t.n || t.s[i] != ',') return obj;
    i++;
  }
}

/* Offsets of the first count elements of the array at arr (arr where missing). */
static void element_offsets(jtext t, size_t arr, size_t count, size_t *out) {
  size_t i = skip_ws(t, arr);
  for (size_t k = 0; k < count; k++) out[k] = arr;
  if (i >= t.n || t.s[i] != '[') return;
  i++;
  for (size_t k = 0; k < count; k++) {
    i = skip_ws(t, i);
    out[k] = i;
    i = skip_ws(t, skip_value(t, i));
    if (i >= t.n || t.s[i] != ',') return;
    i++;
  }
}

static size_t element_at(jtext t, size_t arr, size_t idx) {
  size_t i = skip_ws(t, arr);
  if (i >= t.n || t.s[i] != '[') return arr;
  i++;
  for (size_t k = 0;; k++) {
    i = skip_ws(t, i);
    if (k == idx) return i;
    i = skip_ws(t, skip_value(t, i));
    if (i >= t.n || t.s[i] != ',') return arr;
    i++;
  }
}

static unsigned line_of(jtext t, size_t off) {
  unsigned line = 1;
  for (size_t k = 0; k < off && k < t.n; k++) line += t.s[k] == '\n';
  return line;
}

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct {
  const char *origin;
  jtext t;
  ot_error *err;
  ot_graph *g;
  ot_status status;
} jreader;

static ot_status rfail(jreader *r, ot_status code, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static ot_status rfail(jreader *r, ot_status code, size_t off, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(r->err, code, "%s:%u: %s", r->origin, line_of(r->t, off), msg);
  r->status = code;
  return code;
}

static const char *json_kind(const cJSON *v) {
  return cJSON_IsArray(v) ? "a list" : cJSON_IsObject(v) ? "an object" : cJSON_IsString(v) ? "a string"
       : cJSON_IsNumber(v) ? "a number" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNull(v) ? "null" : "an invalid value";
}

static bool json_int(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return false;
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return false;
  *out = (int64_t)d;
  return true;
}

/* A number, or "nan" / "inf" / "-inf" (JSON has no literal for them). */
static bool json_float(const cJSON *v, double *out) {
  if (cJSON_IsNumber(v)) { *out = v->valuedouble; return true; }
  if (!cJSON_IsString(v)) return false;
  if (!strcmp(v->valuestring, "nan")) *out = NAN;
  else if (!strcmp(v->valuestring, "inf")) *out = INFINITY;
  else if (!strcmp(v->valuestring, "-inf")) *out = -INFINITY;
  else return false;
  return true;
}

/* Closest of the names to s into buf as " (did you mean 'x'?)", or "". */
static void suggest(const char *s, const char *const *names, size_t n, char *buf, size_t size) {
  size_t best = (size_t)-1;
  const char *pick = NULL;
  for (size_t k = 0; k < n; k++) {
    size_t d = chip_edit_distance(s, names[k]);
    if (d < best) { best = d; pick = names[k]; }
  }
  if (pick && best <= 2 && best < strlen(s)) snprintf(buf, size, " (did you mean '%s'?)", pick);
  else if (size) buf[0] = '\0';
}

/* Every key of obj must be one of keys; "comment" is allowed anywhere. */
static bool check_keys(jreader *r, const cJSON *obj, size_t off, const char *const *keys, size_t n, const char *who) {
  for (const cJSON *m = obj->child; m; m = m->next) {
    bool ok = !strcmp(m->string, "comment");
    for (size_t k = 0; !ok && k < n; k++) ok = !strcmp(m->string, keys[k]);
    if (ok) continue;
    char hint[96], list[256] = "";
    suggest(m->string, keys, n, hint, sizeof hint);
    for (size_t k = 0; k < n; k++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", keys[k]);
    rfail(r, OT_EPARSE, member_at(r->t, off, m->string, true), "%s: unknown field '%s'%s; expected %s", who,
          m->string, hint, list);
    return false;
  }
  return true;
}

static bool read_dtype(jreader *r, const cJSON *v, size_t off, const char *who, const char *field, ot_dtype *dt) {
  if (!cJSON_IsString(v)) {
    rfail(r, OT_EPARSE, off, "%s: field '%s': expected a dtype name (a string), got %s", who, field, json_kind(v));
    return false;
  }
  if (ot_dtype_parse(v->valuestring, dt)) return true;
  char list[256] = "";
  for (int k = 0; k < OT_DT_COUNT; k++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", ot_dtype_name((ot_dtype)k));
  rfail(r, OT_EPARSE, off, "%s: field '%s': unknown dtype '%s'; expected one of %s", who, field, v->valuestring, list);
  return false;
}

/* An integer list (shape, perm, sizes) of at most max entries. */
static bool read_ints(jreader *r, const cJSON *v, size_t off, const char *who, const char *field, unsigned max,
                      int64_t *out, unsigned *n) {
  if (!cJSON_IsArray(v)) {
    rfail(r, OT_EPARSE, off, "%s: field '%s': expected a list of integers, got %s", who, field, json_kind(v));
    return false;
  }
  int count = cJSON_GetArraySize(v);
  if (count > (int)max) {
    rfail(r, OT_EPARSE, off, "%s: field '%s': %d entries, at most %u", who, field, count, max);
    return false;
  }
  unsigned k = 0;
  for (const cJSON *e = v->child; e; e = e->next, k++)
    if (!json_int(e, &out[k])) {
      rfail(r, OT_EPARSE, element_at(r->t, off, k), "%s: field '%s': entry %u: expected an integer, got %s", who, field,
            k, cJSON_IsNumber(e) ? "a fraction or a huge number" : json_kind(e));
      return false;
    }
  *n = k;
  return true;
}

static bool store_int(void *data, size_t i, ot_dtype dt, int64_t v) {
  switch (dt) {
  case OT_DT_INT8: if (v < INT8_MIN || v > INT8_MAX) return false; ((int8_t *)data)[i] = (int8_t)v; return true;
  case OT_DT_UINT8: if (v < 0 || v > UINT8_MAX) return false; ((uint8_t *)data)[i] = (uint8_t)v; return true;
  case OT_DT_INT16: if (v < INT16_MIN || v > INT16_MAX) return false; ((int16_t *)data)[i] = (int16_t)v; return true;
  case OT_DT_UINT16: if (v < 0 || v > UINT16_MAX) return false; ((uint16_t *)data)[i] = (uint16_t)v; return true;
  case OT_DT_INT32: if (v < INT32_MIN || v > INT32_MAX) return false; ((int32_t *)data)[i] = (int32_t)v; return true;
  case OT_DT_UINT32: if (v < 0 || v > (int64_t)UINT32_MAX) return false; ((uint32_t *)data)[i] = (uint32_t)v; return true;
  default: return false;
  }
}

static int64_t load_int(const void *data, size_t i, ot_dtype dt) {
  switch (dt) {
  case OT_DT_INT8: return ((const int8_t *)data)[i];
  case OT_DT_UINT8: return ((const uint8_t *)data)[i];
  case OT_DT_INT16: return ((const int16_t *)data)[i];
  case OT_DT_UINT16: return ((const uint16_t *)data)[i];
  case OT_DT_INT32: return ((const int32_t *)data)[i];
  case OT_DT_UINT32: return ((const uint32_t *)data)[i];
  default: return 0;
  }
}

/* A constant's "data": exactly elems numbers, stored in dt (floats rounded to nearest even). */
static void *read_data(jreader *r, const cJSON *v, size_t off, const char *who, ot_dtype dt, int64_t elems) {
  if (!cJSON_IsArray(v)) {
    rfail(r, OT_EPARSE, off, "%s: field 'data': expected a list of %lld numbers, got %s", who, (long long)elems,
          json_kind(v));
    return NULL;
  }
  int count = cJSON_GetArraySize(v);
  if (elems > GRAPH_MAX_CONST_ELEMS || count != elems) {
    rfail(r, OT_EPARSE, off, "%s: field 'data': %d numbers, expected %lld (the shape's element count, at most %d)", who,
          count, (long long)elems, GRAPH_MAX_CONST_ELEMS);
    return NULL;
  }
  void *data = calloc((size_t)(elems ? elems : 1), ot_dtype_size(dt));
  if (!data) { rfail(r, OT_ENOMEM, off, "%s: out of memory for its data", who); return NULL; }
  size_t k = 0;
  for (const cJSON *e = v->child; e; e = e->next, k++) {
    double d = 0;
    int64_t iv = 0;
    bool ok = ot_dtype_is_float(dt) ? json_float(e, &d) : json_int(e, &iv) && store_int(data, k, dt, iv);
    if (ok && ot_dtype_is_float(dt)) ot_store_f32(data, k, dt, (float)d, NULL);
    if (!ok) {
      rfail(r, OT_EPARSE, element_at(r->t, off, k), "%s: field 'data': entry %zu: expected %s, got %s", who, k,
            ot_dtype_is_float(dt) ? "a number (or \"nan\", \"inf\", \"-inf\")" : "an integer in the dtype's range",
            json_kind(e));
      free(data);
      return NULL;
    }
  }
  return data;
}

static bool read_tensor(jreader *r, const cJSON *v, size_t off, unsigned idx) {
  static const char *const keys[] = {"name", "role", "dtype", "shape", "data", "grad"};
  char who[300];
  snprintf(who, sizeof who, "tensor %u", idx);
  if (!cJSON_IsObject(v)) {
    rfail(r, OT_EPARSE, off, "%s: expected an object {\"name\", \"role\", \"dtype\", \"shape\"}, got %s", who,
          json_kind(v));
    return false;
  }
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
  if (!cJSON_IsString(name)) {
    rfail(r, OT_EPARSE, name ? member_at(r->t, off, "name", false) : off, "%s: field 'name': expected a string, got %s",
          who, name ? json_kind(name) : "nothing");
    return false;
  }
  snprintf(who, sizeof who, "tensor '%s'", name->valuestring);
  if (!check_keys(r, v, off, keys, sizeof keys / sizeof keys[0], who)) return false;
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(v, "role");
  size_t roff = member_at(r->t, off, "role", false);
  ot_grole rl = OT_GROLE_COUNT;
  if (cJSON_IsString(role)) {
    for (int k = 0; k < OT_GROLE_VALUE; k++) {
      static const char *const roles[] = {"input", "weight", "const"};
      if (!strcmp(role->valuestring, roles[k])) rl = (ot_grole)k;
    }
  }
  if (rl == OT_GROLE_COUNT) {
    rfail(r, OT_EPARSE, role ? roff : off, "%s: field 'role': expected \"input\", \"weight\" or \"const\", got %s%s%s",
          who, role ? json_kind(role) : "nothing", cJSON_IsString(role) ? " " : "",
          cJSON_IsString(role) ? role->valuestring : "");
    return false;
  }
  ot_dtype dt;
  const cJSON *dtv = cJSON_GetObjectItemCaseSensitive(v, "dtype");
  if (!dtv) { rfail(r, OT_EPARSE, off, "%s: field 'dtype' is missing", who); return false; }
  if (!read_dtype(r, dtv, member_at(r->t, off, "dtype", false), who, "dtype", &dt)) return false;
  const cJSON *sv = cJSON_GetObjectItemCaseSensitive(v, "shape");
  int64_t shape[OT_GRAPH_MAX_DIMS];
  unsigned nd = 0;
  if (!sv) { rfail(r, OT_EPARSE, off, "%s: field 'shape' is missing (use [] for a scalar)", who); return false; }
  size_t soff = member_at(r->t, off, "shape", false);
  if (!read_ints(r, sv, soff, who, "shape", OT_GRAPH_MAX_DIMS, shape, &nd)) return false;
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(v, "data");
  size_t doff = member_at(r->t, off, "data", false);
  if (data && rl != OT_GROLE_CONST) {
    rfail(r, OT_EPARSE, doff, "%s: field 'data': only a const has data (this one is an %s)", who, role->valuestring);
    return false;
  }
  if (!data && rl == OT_GROLE_CONST) {
    rfail(r, OT_EPARSE, off, "%s: field 'data' is missing: a const needs its values", who);
    return false;
  }
  const cJSON *grad = cJSON_GetObjectItemCaseSensitive(v, "grad");
  if (grad && !cJSON_IsString(grad)) {
    rfail(r, OT_EPARSE, member_at(r->t, off, "grad", false), "%s: field 'grad': expected a tensor name, got %s", who,
          json_kind(grad));
    return false;
  }
  ot_tid t;
  if (rl == OT_GROLE_CONST) {
    /* A bad shape is reported by ot_graph_const before it reads the data. */
    int64_t elems = 1;
    bool shape_ok = true;
    for (unsigned d = 0; d < nd; d++) {
      if (shape[d] < 1) shape_ok = false;
      else if (elems <= GRAPH_MAX_CONST_ELEMS) elems *= shape[d] > GRAPH_MAX_CONST_ELEMS ? GRAPH_MAX_CONST_ELEMS + 1 : shape[d];
    }
    void *bytes = shape_ok ? read_data(r, data, doff, who, dt, elems) : NULL;
    if (shape_ok && !bytes) return false;
    t = ot_graph_const(r->g, name->valuestring, dt, nd, shape, bytes ? bytes : "");
    free(bytes);
  } else {
    t = rl == OT_GROLE_INPUT ? ot_graph_input(r->g, name->valuestring, dt, nd, shape)
                             : ot_graph_weight(r->g, name->valuestring, dt, nd, shape);
  }
  if (t == OT_TID_NONE) {
    rfail(r, ot_graph_status(r->g), off, "%s", ot_graph_error(r->g));
    return false;
  }
  return true;
}

/* One attribute of a node from its JSON value into the prototype. */
static bool read_attr(jreader *r, const cJSON *v, size_t off, const char *who, const ot_gattr *a, ot_gnode *p) {
  char field[64];
  snprintf(field, sizeof field, "attrs.%s", a->name);
  double d;
  int64_t iv;
  switch (a->kind) {
  case 'f':
    if (!json_float(v, &d)) break;
    p->f[a->slot] = (float)d;
    return true;
  case 'i':
    if (!json_int(v, &iv)) break;
    p->i[a->slot] = iv;
    return true;
  case 'b':
    if (!cJSON_IsBool(v)) break;
    p->i[a->slot] = cJSON_IsTrue(v);
    return true;
  case 's': {
    ot_dtype dt;
    if (!read_dtype(r, v, off, who, field, &dt)) return false;
    p->i[a->slot] = dt;
    return true;
  }
  case 'l': {
    unsigned n = 0;
    if (!read_ints(r, v, off, who, field, OT_GNODE_MAX_LIST, p->list, &n)) return false;
    p->n_list = n;
    return true;
  }
  default: break;
  }
  static const char *const expect[] = {"a number", "an integer", "a boolean (true or false)"};
  const char *want = a->kind == 'f' ? expect[0] : a->kind == 'i' ? expect[1] : expect[2];
  rfail(r, OT_EPARSE, off, "%s: field '%s': expected %s, got %s", who, field, want,
        cJSON_IsNumber(v) && a->kind == 'i' ? "a fraction or a huge number" : json_kind(v));
  return false;
}

static bool read_attrs(jreader *r, const cJSON *v, size_t noff, const char *who, ot_gnode *p) {
  ot_gattr a[OT_GOP_MAX_ATTRS];
  unsigned na = ot_gop_attrs((ot_gop)p->op, a);
  size_t off = member_at(r->t, noff, "attrs", false);
  if (v && !cJSON_IsObject(v)) {
    rfail(r, OT_EPARSE, off, "%s: field 'attrs': expected an object, got %s", who, json_kind(v));
    return false;
  }
  const char *names[OT_GOP_MAX_ATTRS] = {0};
  for (unsigned k = 0; k < na; k++) names[k] = a[k].name;
  if (v && !check_keys(r, v, off, names, na, who)) return false;
  for (unsigned k = 0; k < na; k++) {
    const cJSON *m = v ? cJSON_GetObjectItemCaseSensitive(v, a[k].name) : NULL;
    if (!m) {
      if (a[k].has_default) continue;
      rfail(r, OT_EPARSE, v ? off : noff, "%s: field 'attrs.%s' is missing (a list of integers, no default)", who,
            a[k].name);
      return false;
    }
    if (!read_attr(r, m, member_at(r->t, off, a[k].name, false), who, &a[k], p)) return false;
  }
  return true;
}

/* " (did you mean 'x'?)" for the closest tensor name, or "". */
static void suggest_tensor(const ot_graph *g, const char *s, char *buf, size_t size) {
  size_t best = (size_t)-1;
  const char *pick = NULL;
  for (uint32_t k = 0; k < g->n_t; k++) {
    size_t d = chip_edit_distance(s, g->t[k].name);
    if (d < best) { best = d; pick = g->t[k].name; }
  }
  if (pick && best <= 2 && best < strlen(s)) snprintf(buf, size, " (did you mean '%s'?)", pick);
  else if (size) buf[0] = '\0';
}

static bool read_inputs(jreader *r, const cJSON *v, size_t noff, const char *who, ot_gnode *p, ot_tid **in) {
  size_t off = member_at(r->t, noff, "inputs", false);
  const ot_gop_info *info = &ot_gop_table[p->op];
  if (!cJSON_IsArray(v)) {
    rfail(r, OT_EPARSE, v ? off : noff, "%s: field 'inputs': expected a list of tensor names, got %s", who,
          v ? json_kind(v) : "nothing");
    return false;
  }
  int n = cJSON_GetArraySize(v);
  int lo = info->n_in, hi = info->n_in;
  while (lo > 0 && ot_gop_input_optional((ot_gop)p->op, (unsigned)lo - 1)) lo--;  /* trailing optionals */
  if (info->n_in < 0) { lo = 1; hi = 1024; }
  if (n < lo || n > hi) {
    if (lo == hi) rfail(r, OT_EPARSE, off, "%s: field 'inputs': %d given, expected %d", who, n, lo);
    else rfail(r, OT_EPARSE, off, "%s: field 'inputs': %d given, expected %d to %d", who, n, lo, hi);
    return false;
  }
  uint32_t count = info->n_in < 0 ? (uint32_t)n : (uint32_t)info->n_in;
  *in = malloc(count * sizeof **in);
  if (!*in) { rfail(r, OT_ENOMEM, off, "%s: out of memory", who); return false; }
  for (uint32_t k = 0; k < count; k++) (*in)[k] = OT_TID_NONE;
  p->in = *in;
  p->n_in = count;
  unsigned k = 0;
  for (const cJSON *e = v->child; e; e = e->next, k++) {
    const char *role = ot_gop_input_name((ot_gop)p->op, k);
    size_t eoff = element_at(r->t, off, k);
    if (cJSON_IsNull(e) && ot_gop_input_optional((ot_gop)p->op, k)) continue;
    if (!cJSON_IsString(e)) {
      rfail(r, OT_EPARSE, eoff, "%s: field 'inputs': entry %u (%s): expected a tensor name%s, got %s", who, k, role,
            ot_gop_input_optional((ot_gop)p->op, k) ? " or null" : "", json_kind(e));
      return false;
    }
    (*in)[k] = ot_graph_find(r->g, e->valuestring);
    if ((*in)[k] == OT_TID_NONE) {
      char hint[300];
      suggest_tensor(r->g, e->valuestring, hint, sizeof hint);
      rfail(r, OT_EPARSE, eoff,
            "%s: field 'inputs': entry %u (%s): unknown tensor '%s'%s (inputs are tensors of \"tensors\" or outputs "
            "of earlier nodes)", who, k, role, e->valuestring, hint);
      return false;
    }
  }
  return true;
}

static int32_t node_find(const ot_graph *g, const char *name) {
  for (uint32_t k = 0; k < g->n_node; k++)
    if (!strcmp(g->node[k].name, name)) return (int32_t)k;
  return -1;
}

/* "outputs": names for the node's outputs, in order (the count is checked by the builder). */
static bool read_node_outputs(jreader *r, const cJSON *v, size_t noff, const char *who, const char **names,
                              unsigned *n) {
  size_t off = member_at(r->t, noff, "outputs", false);
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > OT_GNODE_MAX_LIST) {
    rfail(r, OT_EPARSE, off, "%s: field 'outputs': expected a list of tensor names (one per output), got %s", who,
          cJSON_IsArray(v) ? "a longer list" : json_kind(v));
    return false;
  }
  unsigned k = 0;
  for (const cJSON *e = v->child; e; e = e->next, k++) {
    if (!cJSON_IsString(e)) {
      rfail(r, OT_EPARSE, element_at(r->t, off, k), "%s: field 'outputs': entry %u: expected a name, got %s", who, k,
            json_kind(e));
      return false;
    }
    names[k] = e->valuestring;
  }
  *n = k;
  return true;
}

static bool read_node(jreader *r, const cJSON *v, size_t off, unsigned idx) {
  static const char *const keys[] = {"name", "op", "inputs", "attrs", "outputs", "forward"};
  char who[300];
  snprintf(who, sizeof who, "node %u", idx);
  if (!cJSON_IsObject(v)) {
    rfail(r, OT_EPARSE, off, "%s: expected an object {\"name\", \"op\", \"inputs\", \"attrs\"}, got %s", who,
          json_kind(v));
    return false;
  }
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
  if (name && !cJSON_IsString(name)) {
    rfail(r, OT_EPARSE, member_at(r->t, off, "name", false), "%s: field 'name': expected a string, got %s", who,
          json_kind(name));
    return false;
  }
  if (name) snprintf(who, sizeof who, "node '%s'", name->valuestring);
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(v, "op");
  ot_gop gop;
  if (!cJSON_IsString(op) || !ot_gop_parse(op->valuestring, &gop)) {
    const char *names[OT_GOP_COUNT];
    for (int k = 0; k < OT_GOP_COUNT; k++) names[k] = ot_gop_table[k].name;
    char hint[96] = "";
    if (cJSON_IsString(op)) suggest(op->valuestring, names, OT_GOP_COUNT, hint, sizeof hint);
    rfail(r, OT_EPARSE, op ? member_at(r->t, off, "op", false) : off,
          "%s: field 'op': %s%s%s%s; expected an op name (matmul, linear, add, ...: docs/graph.md)", who,
          !op ? "missing" : cJSON_IsString(op) ? "unknown op '" : json_kind(op),
          cJSON_IsString(op) ? op->valuestring : "", cJSON_IsString(op) ? "'" : "", hint);
    return false;
  }
  char who2[340];
  snprintf(who2, sizeof who2, "%s (%s)", who, ot_gop_table[gop].name);
  if (!check_keys(r, v, off, keys, sizeof keys / sizeof keys[0], who2)) return false;
  ot_gnode p;
  ot_gnode_init(&p, gop);
  p.name = name ? name->valuestring : NULL;
  p.line = line_of(r->t, off);
  const cJSON *fw = cJSON_GetObjectItemCaseSensitive(v, "forward");
  if (fw) {
    p.forward = cJSON_IsString(fw) ? node_find(r->g, fw->valuestring) : -1;
    if (p.forward < 0) {
      rfail(r, OT_EPARSE, member_at(r->t, off, "forward", false),
            "%s: field 'forward': expected the name of an earlier node, got %s%s%s", who2, json_kind(fw),
            cJSON_IsString(fw) ? " " : "", cJSON_IsString(fw) ? fw->valuestring : "");
      return false;
    }
  }
  ot_tid *in = NULL;
  const cJSON *outs = cJSON_GetObjectItemCaseSensitive(v, "outputs");
  const char *names[OT_GNODE_MAX_LIST];
  unsigned n_names = 0;
  if (!read_attrs(r, cJSON_GetObjectItemCaseSensitive(v, "attrs"), off, who2, &p) ||
      !read_inputs(r, cJSON_GetObjectItemCaseSensitive(v, "inputs"), off, who2, &p, &in) ||
      (outs && !read_node_outputs(r, outs, off, who2, names, &n_names))) {
    free(in);
    return false;
  }
  int32_t nidx = ot_graph_add_node_named(r->g, &p, outs ? names : NULL, n_names);
  free(in);
  if (nidx < 0) {
    rfail(r, ot_graph_status(r->g), off, "%s", ot_graph_error(r->g));
    return false;
  }
  return true;
}

/* A top-level list (tensors, nodes, outputs): absent is empty. */
static const cJSON *top_list(jreader *r, const cJSON *root, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (v && !cJSON_IsArray(v)) {
    rfail(r, OT_EPARSE, member_at(r->t, 0, key, false), "field '%s': expected a list, got %s", key, json_kind(v));
    return NULL;
  }
  return v;
}

static bool read_list(jreader *r, const cJSON *list, const char *key, bool (*one)(jreader *, const cJSON *, size_t, unsigned)) {
  if (!list) return true;
  size_t n = (size_t)cJSON_GetArraySize(list);
  size_t *offs = malloc((n ? n : 1) * sizeof *offs);
  if (!offs) { rfail(r, OT_ENOMEM, 0, "out of memory"); return false; }
  element_offsets(r->t, member_at(r->t, 0, key, false), n, offs);
  unsigned k = 0;
  bool ok = true;
  for (const cJSON *e = list->child; ok && e; e = e->next, k++) ok = one(r, e, offs[k], k);
  free(offs);
  return ok;
}

static bool read_outputs(jreader *r, const cJSON *list) {
  size_t off = member_at(r->t, 0, "outputs", false);
  unsigned k = 0;
  for (const cJSON *e = list ? list->child : NULL; e; e = e->next, k++) {
    size_t eoff = element_at(r->t, off, k);
    ot_tid t = cJSON_IsString(e) ? ot_graph_find(r->g, e->valuestring) : OT_TID_NONE;
    if (t == OT_TID_NONE) {
      rfail(r, OT_EPARSE, eoff, "field 'outputs': entry %u: expected the name of a tensor, got %s%s%s", k,
            cJSON_IsString(e) ? "unknown tensor '" : json_kind(e), cJSON_IsString(e) ? e->valuestring : "",
            cJSON_IsString(e) ? "'" : "");
      return false;
    }
    ot_graph_output(r->g, t, NULL);
  }
  return true;
}

/* "grad" of tensors, resolved once every node exists. */
static bool read_grads(jreader *r, const cJSON *tensors) {
  if (!tensors) return true;
  size_t off = member_at(r->t, 0, "tensors", false);
  unsigned k = 0;
  for (const cJSON *e = tensors->child; e; e = e->next, k++) {
    const cJSON *gr = cJSON_GetObjectItemCaseSensitive(e, "grad");
    if (!gr) continue;
    ot_tid w = ot_graph_find(r->g, cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
    ot_tid t = ot_graph_find(r->g, gr->valuestring);
    if (t == OT_TID_NONE) {
      size_t eoff = element_at(r->t, off, k);
      rfail(r, OT_EPARSE, member_at(r->t, eoff, "grad", false), "tensor '%s': field 'grad': unknown tensor '%s'",
            ot_graph_tname(r->g, w), gr->valuestring);
      return false;
    }
    r->g->t[w].grad = t;
  }
  return true;
}

static bool read_header(jreader *r, const cJSON *root) {
  static const char *const keys[] = {"format", "version", "tensors", "nodes", "outputs"};
  if (!cJSON_IsObject(root)) {
    rfail(r, OT_EPARSE, 0, "expected an object {\"format\": \"%s\", ...}, got %s", GRAPH_FORMAT, json_kind(root));
    return false;
  }
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
  if (!cJSON_IsString(f) || strcmp(f->valuestring, GRAPH_FORMAT)) {
    rfail(r, OT_EPARSE, f ? member_at(r->t, 0, "format", false) : 0, "field 'format': expected \"%s\"%s", GRAPH_FORMAT,
          f ? "" : " (missing)");
    return false;
  }
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
  int64_t vn = 0;
  if (!json_int(ver, &vn) || vn != GRAPH_VERSION) {
    rfail(r, OT_EPARSE, ver ? member_at(r->t, 0, "version", false) : 0,
          "field 'version': expected %d (the version this reader knows)%s", GRAPH_VERSION, ver ? "" : " (missing)");
    return false;
  }
  return check_keys(r, root, 0, keys, sizeof keys / sizeof keys[0], "graph");
}

/* Where a key or value was expected (after '{' or ','), cJSON points one byte past the
** offending character; step back onto it (as src/arch/chip_json.c does). */
static size_t culprit(jtext t, size_t off) {
  if (off == 0 || off > t.n || strchr(" \t\r\n\"", t.s[off - 1])) return off;
  size_t k = off - 1;
  while (k > 0 && strchr(" \t\r\n", t.s[k - 1])) k--;
  return k > 0 && (t.s[k - 1] == '{' || t.s[k - 1] == ',') ? off - 1 : off;
}

static ot_status malformed(jreader *r, const char *at) {
  size_t off = at && at >= r->t.s && at <= r->t.s + r->t.n ? (size_t)(at - r->t.s) : r->t.n;
  off = culprit(r->t, off);
  unsigned line = 1, col = 1;
  for (size_t k = 0; k < off; k++) {
    if (r->t.s[k] == '\n') { line++; col = 1; } else col++;
  }
  if (off >= r->t.n) return ot_error_set(r->err, OT_EPARSE, "%s:%u:%u: malformed JSON: unexpected end of input",
                                         r->origin, line, col), OT_EPARSE;
  char near[32];
  size_t n = 0;
  for (size_t k = off; k < r->t.n && n < 20 && r->t.s[k] != '\n'; k++)
    near[n++] = (unsigned char)r->t.s[k] < 0x20 ? '?' : r->t.s[k];
  near[n] = '\0';
  ot_error_set(r->err, OT_EPARSE, "%s:%u:%u: malformed JSON near '%s'", r->origin, line, col, near);
  return OT_EPARSE;
}

ot_status ot_graph_parse_json(const char *text, const char *origin, ot_graph **out, ot_error *err) {
  if (out) *out = NULL;
  if (!origin) origin = "<graph>";
  if (!text || !out) return ot_error_set(err, OT_EINVAL, "%s: no text or no output pointer", origin), OT_EINVAL;
  jreader r = {origin, {text, strlen(text)}, err, NULL, OT_OK};
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, r.t.n + 1, &end, 1);
  if (!root) return malformed(&r, end);
  r.g = ot_graph_new();
  if (!r.g) {
    cJSON_Delete(root);
    return ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin), OT_ENOMEM;
  }
  const cJSON *tensors = NULL, *nodes = NULL, *outputs = NULL;
  bool ok = read_header(&r, root) && (tensors = top_list(&r, root, "tensors"), r.status == OT_OK) &&
            (nodes = top_list(&r, root, "nodes"), r.status == OT_OK) &&
            (outputs = top_list(&r, root, "outputs"), r.status == OT_OK) && read_list(&r, tensors, "tensors", read_tensor) &&
            read_list(&r, nodes, "nodes", read_node) && read_outputs(&r, outputs) && read_grads(&r, tensors);
  cJSON_Delete(root);
  if (!ok) {
    ot_graph_free(r.g);
    return r.status ? r.status : OT_EPARSE;
  }
  *out = r.g;
  return OT_OK;
}

ot_status ot_graph_load_json(const char *path, ot_graph **out, ot_error *err) {
  if (out) *out = NULL;
  if (!path) return ot_error_set(err, OT_EINVAL, "no graph file given"), OT_EINVAL;
  char *text = NULL;
  size_t size = 0;
  ot_status s = ot_file_read(path, &text, &size, err);
  if (s) return s;
  if (strlen(text) != size) {
    free(text);
    return ot_error_set(err, OT_EPARSE, "%s: contains a NUL byte; expected JSON text", path), OT_EPARSE;
  }
  s = ot_graph_parse_json(text, path, out, err);
  free(text);
  return s;
}

/* ---- writer ------------------------------------------------------------------------------ */

static void put_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

/* Shortest text that reads back as the same float; strings for NaN and infinities. */
static void put_float(FILE *f, float v) {
  if (isnan(v)) { fputs("\"nan\"", f); return; }
  if (isinf(v)) { fputs(v > 0 ? "\"inf\"" : "\"-inf\"", f); return; }
  char buf[48];
  if (fabsf(v) < 1e9f && v == (float)(int64_t)v && !signbit(v)) {  /* integers in full: 10000, not 1e+04 */
    fprintf(f, "%lld", (long long)v);
    return;
  }
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  fputs(buf, f);
}

static void put_ints(FILE *f, const int64_t *v, unsigned n) {
  fputc('[', f);
  for (unsigned k = 0; k < n; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)v[k]);
  fputc(']', f);
}

static void put_tensor(FILE *f, const ot_gtensor *t, const ot_graph *g) {
  static const char *const roles[] = {"input", "weight", "const", "value"};
  fputs("    {\"name\": ", f);
  put_str(f, t->name);
  fprintf(f, ", \"role\": \"%s\", \"dtype\": \"%s\", \"shape\": ", roles[t->role], ot_dtype_name((ot_dtype)t->dtype));
  put_ints(f, t->shape, t->ndim);
  if (t->grad != OT_TID_NONE && ot_graph_valid(g, t->grad)) {
    fputs(", \"grad\": ", f);
    put_str(f, g->t[t->grad].name);
  }
  if (t->role == OT_GROLE_CONST && t->data) {
    fputs(", \"data\": [", f);
    int64_t n = ot_gtensor_elems(t);
    for (int64_t k = 0; k < n; k++) {
      if (k) fputs(", ", f);
      if (ot_dtype_is_float((ot_dtype)t->dtype)) put_float(f, ot_load_f32(t->data, (size_t)k, (ot_dtype)t->dtype));
      else fprintf(f, "%lld", (long long)load_int(t->data, (size_t)k, (ot_dtype)t->dtype));
    }
    fputc(']', f);
  }
  fputc('}', f);
}

static void put_attrs(FILE *f, const ot_gnode *n) {
  ot_gattr a[OT_GOP_MAX_ATTRS];
  unsigned na = ot_gop_attrs((ot_gop)n->op, a);
  if (!na) return;
  fputs(", \"attrs\": {", f);
  for (unsigned k = 0; k < na; k++) {
    fprintf(f, "%s\"%s\": ", k ? ", " : "", a[k].name);
    switch (a[k].kind) {
    case 'f': put_float(f, n->f[a[k].slot]); break;
    case 'b': fputs(n->i[a[k].slot] ? "true" : "false", f); break;
    case 's': fprintf(f, "\"%s\"", ot_dtype_name((ot_dtype)n->i[a[k].slot])); break;
    case 'l': put_ints(f, n->list, n->n_list); break;
    default: fprintf(f, "%lld", (long long)n->i[a[k].slot]); break;
    }
  }
  fputc('}', f);
}

/* Do the node's outputs carry the names the reader would give them? */
static bool default_output_names(const ot_graph *g, const ot_gnode *n) {
  for (uint32_t k = 0; k < n->n_out; k++) {
    char nm[256];
    if (n->n_out == 1) snprintf(nm, sizeof nm, "%s", n->name);
    else snprintf(nm, sizeof nm, "%s.%u", n->name, k);
    if (strcmp(nm, g->t[n->out[k]].name)) return false;
  }
  return true;
}

static void put_node(FILE *f, const ot_graph *g, const ot_gnode *n) {
  fputs("    {\"name\": ", f);
  put_str(f, n->name);
  fprintf(f, ", \"op\": \"%s\", \"inputs\": [", ot_gop_table[n->op].name);
  for (uint32_t k = 0; k < n->n_in; k++) {
    if (k) fputs(", ", f);
    if (n->in[k] == OT_TID_NONE) fputs("null", f);
    else put_str(f, g->t[n->in[k]].name);
  }
  fputc(']', f);
  put_attrs(f, n);
  if (!default_output_names(g, n)) {
    fputs(", \"outputs\": [", f);
    for (uint32_t k = 0; k < n->n_out; k++) {
      if (k) fputs(", ", f);
      put_str(f, g->t[n->out[k]].name);
    }
    fputc(']', f);
  }
  if (n->forward >= 0 && (uint32_t)n->forward < g->n_node) {
    fputs(", \"forward\": ", f);
    put_str(f, g->node[n->forward].name);
  }
  fputc('}', f);
}

char *ot_graph_json_text(const ot_graph *g, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  if (!f) return NULL;
  fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n  \"tensors\": [", GRAPH_FORMAT, GRAPH_VERSION);
  const char *sep = "\n";
  for (uint32_t k = 0; k < g->n_t; k++) {
    if (g->t[k].role == OT_GROLE_VALUE) continue;
    fputs(sep, f);
    put_tensor(f, &g->t[k], g);
    sep = ",\n";
  }
  fputs(*sep == ',' ? "\n  ],\n  \"nodes\": [" : "],\n  \"nodes\": [", f);
  sep = "\n";
  for (uint32_t k = 0; k < g->n_node; k++) {
    fputs(sep, f);
    put_node(f, g, &g->node[k]);
    sep = ",\n";
  }
  fputs(*sep == ',' ? "\n  ],\n  \"outputs\": [" : "],\n  \"outputs\": [", f);
  sep = "";
  for (int pass = 0; pass < 2; pass++)  /* leaves, then node outputs, as ot_graph_dump */
    for (uint32_t k = 0; k < g->n_t; k++) {
      if (!g->t[k].is_output || (g->t[k].role == OT_GROLE_VALUE) != (pass == 1)) continue;
      fputs(sep, f);
      put_str(f, g->t[k].name);
      sep = ", ";
    }
  fputs("]\n}\n", f);
  if (fclose(f)) { free(buf); return NULL; }
  return buf;
}

ot_status ot_graph_save_json(const ot_graph *g, const char *path, ot_error *err) {
  if (!g || !path) return ot_error_set(err, OT_EINVAL, "ot_graph_save_json: no graph or no path"), OT_EINVAL;
  if (g->err.code)
    return ot_error_set(err, OT_EINVAL, "%s: not saving a graph with an error: %s", path, g->err.msg), OT_EINVAL;
  size_t len = 0;
  char *text = ot_graph_json_text(g, &len);
  if (!text) return ot_error_set(err, OT_ENOMEM, "%s: out of memory writing the graph", path), OT_ENOMEM;
  ot_status s = ot_file_write_atomic(path, text, len, err);
  free(text);
  return s;
}
