/* The cost assumptions: the table (cost_params.def), the values in force, and the ways of
** changing them (--set key=value, an assumptions JSON).  Every value remembers where it came
** from, so the output can show "default (source, date)" or "set in my.json". */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cost/cost_int.h"
#include "util/fileio.h"

const cost_param_def cost_param_table[] = {
#define P(key, value, min, max, unit, tag, date, source) {key, value, min, max, unit, tag, date, source},
#include "cost/cost_params.def"
#undef P
};
const size_t cost_param_count = sizeof cost_param_table / sizeof cost_param_table[0];

#define COST_ORIGIN_MAX 128

struct ot_cost_params {
  double value[sizeof cost_param_table / sizeof cost_param_table[0]];
  char origin[sizeof cost_param_table / sizeof cost_param_table[0]][COST_ORIGIN_MAX];
};

static long param_find(const char *key) {
  for (size_t i = 0; i < cost_param_count; i++)
    if (!strcmp(cost_param_table[i].key, key)) return (long)i;
  return -1;
}

ot_status ot_cost_params_new(ot_cost_params **out, ot_error *err) {
  ot_cost_params *p = calloc(1, sizeof *p);
  if (!p) return ot_error_set(err, OT_ENOMEM, "out of memory for cost assumptions");
  for (size_t i = 0; i < cost_param_count; i++) {
    p->value[i] = cost_param_table[i].value;
    snprintf(p->origin[i], COST_ORIGIN_MAX, "default");
  }
  *out = p;
  return OT_OK;
}

void ot_cost_params_free(ot_cost_params *p) { free(p); }

/* The nearest key by shared prefix length, to suggest on a typo. */
static const char *param_suggest(const char *key) {
  const char *best = NULL;
  size_t best_n = 2;
  for (size_t i = 0; i < cost_param_count; i++) {
    const char *k = cost_param_table[i].key;
    size_t n = 0;
    while (k[n] && k[n] == key[n]) n++;
    if (n > best_n) best_n = n, best = k;
  }
  return best;
}

static ot_status unknown_key(const char *key, const char *origin, ot_error *err) {
  const char *s = param_suggest(key);
  return ot_error_set(err, OT_EINVAL, "%s: field '%s' is not a cost assumption%s%s%s (list: opentrn cost --defaults)",
                      origin, key, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
}

ot_status ot_cost_params_set(ot_cost_params *p, const char *key, double value, const char *origin, ot_error *err) {
  long i = param_find(key);
  if (i < 0) return unknown_key(key, origin, err);
  const cost_param_def *d = &cost_param_table[i];
  if (!isfinite(value) || value < d->min || value > d->max)
    return ot_error_set(err, OT_ERANGE, "%s: field '%s' = %g is out of range: expected %g to %g%s%s", origin, key, value,
                        d->min, d->max, *d->unit ? " " : "", d->unit);
  p->value[i] = value;
  snprintf(p->origin[i], COST_ORIGIN_MAX, "%s", origin);
  return OT_OK;
}

static int parse_double(const char *s, double *out) {
  if (!s || !*s) return 0;
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

ot_status ot_cost_params_assign(ot_cost_params *p, const char *kv, ot_error *err) {
  const char *eq = strchr(kv, '=');
  char key[128];
  if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
    return ot_error_set(err, OT_EINVAL, "--set: '%s' is not key=value (e.g. h100.mfu=0.35)", kv);
  memcpy(key, kv, (size_t)(eq - kv));
  key[eq - kv] = '\0';
  double v;
  if (!parse_double(eq + 1, &v))
    return ot_error_set(err, OT_EINVAL, "--set: field '%s': '%s' is not a number", key, eq + 1);
  return ot_cost_params_set(p, key, v, "--set", err);
}

/* Walk a JSON object; nested objects join their keys with dots ({"h100": {"mfu": x}} = h100.mfu). */
static ot_status load_object(ot_cost_params *p, const cJSON *o, const char *prefix, const char *origin, ot_error *err) {
  ot_status st = OT_OK;
  for (const cJSON *c = o->child; c; c = c->next) {
    char key[128];
    if (snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string) >= (int)sizeof key) {
      st = ot_error_set(err, OT_EINVAL, "%s: field '%s...' is too long", origin, prefix);
      continue;
    }
    ot_status one = OT_OK;
    if (!strcmp(c->string, "comment") || !strcmp(c->string, "_comment")) continue; /* notes are welcome */
    if (cJSON_IsObject(c)) one = load_object(p, c, key, origin, err);
    else if (cJSON_IsNumber(c)) one = ot_cost_params_set(p, key, c->valuedouble, origin, err);
    else if (param_find(key) < 0) one = unknown_key(key, origin, err);
    else one = ot_error_set(err, OT_EINVAL, "%s: field '%s' must be a number", origin, key);
    if (one && !st) st = one;
  }
  return st;
}

ot_status ot_cost_params_load_json(ot_cost_params *p, const char *text, const char *origin, ot_error *err) {
  cJSON *root = cJSON_Parse(text);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= text ? (long)(at - text) : -1;
    return ot_error_set(err, OT_EPARSE, "%s: not valid JSON (near byte %ld)", origin, off);
  }
  ot_status st = cJSON_IsObject(root) ? load_object(p, root, "", origin, err)
                                      : ot_error_set(err, OT_EPARSE, "%s: expected a JSON object of assumptions", origin);
  cJSON_Delete(root);
  return st;
}

ot_status ot_cost_params_load_file(ot_cost_params *p, const char *path, ot_error *err) {
  char *text = NULL;
  size_t n = 0;
  ot_status st = ot_file_read(path, &text, &n, err);
  if (st) return st;
  st = ot_cost_params_load_json(p, text, path, err);
  free(text);
  return st;
}

ot_status ot_cost_params_get(const ot_cost_params *p, const char *key, double *value, ot_error *err) {
  long i = param_find(key);
  if (i < 0) return unknown_key(key, "cost", err);
  *value = p->value[i];
  return OT_OK;
}

double ot_cost_param(const ot_cost_params *p, const char *key) {
  long i = param_find(key);
  return i < 0 ? NAN : p->value[i];
}

const char *ot_cost_params_origin(const ot_cost_params *p, const char *key) {
  long i = param_find(key);
  return i < 0 ? NULL : p->origin[i];
}

/* Markdown cells may not hold '|'. */
static void md_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputs("\\|", out);
    else fputc(*s, out);
  }
}

void ot_cost_params_print_reference(FILE *out, int markdown) {
  if (markdown) {
    fprintf(out, "| key | default | unit | tag | date | source |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < cost_param_count; i++) {
      const cost_param_def *d = &cost_param_table[i];
      fprintf(out, "| `%s` | %g | %s | %s | %s | ", d->key, d->value, d->unit, d->tag, d->date);
      md_cell(out, d->source);
      fputs(" |\n", out);
    }
    return;
  }
  fprintf(out, "%-32s %10s %-7s %-4s %-11s %s\n", "key", "default", "unit", "tag", "date", "source");
  for (size_t i = 0; i < cost_param_count; i++) {
    const cost_param_def *d = &cost_param_table[i];
    fprintf(out, "%-32s %10g %-7s %-4s %-11s %s\n", d->key, d->value, d->unit, d->tag, d->date, d->source);
  }
}
