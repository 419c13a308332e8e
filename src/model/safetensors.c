/* safetensors: a validating reader (over an mmap or bytes in memory), a streaming atomic
** writer, and the check of a file against a model configuration's expected tensors.
** safetensors.h draws the format. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_config.h"

struct ot_safetensors {
  char origin[512];
  const uint8_t *base; /* the whole file */
  size_t size;
  void *map;           /* the mapping when opened from a file, else NULL */
  size_t map_size;
  size_t count;
  ot_st_tensor *tensors;
  char **names;        /* owned copies, tensors[i].name == names[i] */
  size_t meta_count;
  char **meta;         /* key, value pairs */
};

typedef struct {
  const char *name;
  size_t size;
  ot_dtype dtype;
} st_type;

static const st_type st_types[] = {
  {"F32", 4, OT_DT_FP32},      {"BF16", 2, OT_DT_BF16},     {"F16", 2, OT_DT_FP16},
  {"F64", 8, OT_DT_COUNT},     {"I64", 8, OT_DT_COUNT},     {"U64", 8, OT_DT_COUNT},
  {"I32", 4, OT_DT_INT32},     {"U32", 4, OT_DT_UINT32},    {"I16", 2, OT_DT_INT16},
  {"U16", 2, OT_DT_UINT16},    {"I8", 1, OT_DT_INT8},       {"U8", 1, OT_DT_UINT8},
  {"BOOL", 1, OT_DT_COUNT},    {"F8_E4M3", 1, OT_DT_FP8E4M3FN}, {"F8_E5M2", 1, OT_DT_FP8E5M2},
};
#define ST_TYPE_COUNT (sizeof st_types / sizeof st_types[0])

const char *st_dtype_name(ot_dtype t) {
  for (size_t i = 0; i < ST_TYPE_COUNT; i++)
    if (st_types[i].dtype == t && t != OT_DT_COUNT) return st_types[i].name;
  return NULL;
}

static const st_type *st_type_find(const char *name) {
  for (size_t i = 0; i < ST_TYPE_COUNT; i++)
    if (!strcmp(st_types[i].name, name)) return &st_types[i];
  return NULL;
}

/* Untrusted text made safe to print: control bytes become '?', long text is cut. */
static const char *printable(const char *s, char *buf, size_t cap) {
  size_t n = 0;
  for (; *s && n + 4 < cap; s++) buf[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  if (*s) { memcpy(buf + n, "...", 3); n += 3; }
  buf[n] = '\0';
  return buf;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* A JSON number that is an exact non-negative integer below 2^53 (where doubles stay exact). */
static bool json_u64(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return false;
  double d = v->valuedouble;
  if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d)) return false;
  *out = (uint64_t)d;
  return true;
}

typedef struct {
  ot_safetensors *st;
  size_t data_size; /* bytes in the data section */
  ot_error *err;
} st_parse;

static ot_status st_shape(st_parse *p, const char *name, const cJSON *shape, ot_st_tensor *t) {
  char nb[80];
  int n = cJSON_GetArraySize(shape);
  if (!cJSON_IsArray(shape) || n > OT_TENSOR_MAX_DIMS)
    return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': \"shape\" must be a list of at most %d integers",
                        p->st->origin, printable(name, nb, sizeof nb), OT_TENSOR_MAX_DIMS);
  t->ndim = (uint32_t)n;
  t->count = 1;
  for (int i = 0; i < n; i++) {
    uint64_t d;
    if (!json_u64(cJSON_GetArrayItem(shape, i), &d))
      return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                          p->st->origin, printable(name, nb, sizeof nb), i);
    t->shape[i] = d;
    if (d && t->count > UINT64_MAX / d / t->elem_size)
      return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': shape overflows 64 bits", p->st->origin,
                          printable(name, nb, sizeof nb));
    t->count *= d;
  }
  t->bytes = (size_t)(t->count * t->elem_size);
  return OT_OK;
}

static ot_status st_offsets(st_parse *p, const char *name, const cJSON *offs, ot_st_tensor *t,
                            const uint8_t *data) {
  char nb[80], sb[160];
  uint64_t b, e;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(cJSON_GetArrayItem(offs, 0), &b) ||
      !json_u64(cJSON_GetArrayItem(offs, 1), &e) || b > e)
    return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': \"data_offsets\" must be [begin, end] with "
                        "0 <= begin <= end", p->st->origin, printable(name, nb, sizeof nb));
  if (e > p->data_size)
    return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': data_offsets [%llu, %llu] run past the data section "
                        "(%zu bytes; the file is truncated or the header is wrong)", p->st->origin,
                        printable(name, nb, sizeof nb), (unsigned long long)b, (unsigned long long)e, p->data_size);
  if (e - b != t->bytes) {
    model_shape_format(t->shape, t->ndim, sb, sizeof sb);
    return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': %llu data bytes, expected %zu (%s shape %s)",
                        p->st->origin, printable(name, nb, sizeof nb), (unsigned long long)(e - b), t->bytes,
                        t->st_dtype, sb);
  }
  t->data = data + b;
  return OT_OK;
}

static ot_status st_tensor(st_parse *p, const cJSON *item, ot_st_tensor *t, const uint8_t *data) {
  char nb[80], db[24];
  const char *name = item->string;
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsObject(item) || !cJSON_IsString(dt) || !shape || !offs)
    return ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s': expected an object with \"dtype\", \"shape\" and "
                        "\"data_offsets\"", p->st->origin, printable(name, nb, sizeof nb));
  const st_type *ty = st_type_find(dt->valuestring);
  if (!ty)
    return ot_error_set(p->err, OT_EUNSUPPORTED, "%s: tensor '%s': unknown dtype '%s' (expected F32, BF16, F16, "
                        "F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3 or F8_E5M2)", p->st->origin,
                        printable(name, nb, sizeof nb), printable(dt->valuestring, db, sizeof db));
  snprintf(t->st_dtype, sizeof t->st_dtype, "%s", ty->name);
  t->dtype = ty->dtype;
  t->elem_size = ty->size;
  ot_status s = st_shape(p, name, shape, t);
  return s != OT_OK ? s : st_offsets(p, name, offs, t, data);
}

static ot_status st_metadata(st_parse *p, const cJSON *meta) {
  if (!cJSON_IsObject(meta))
    return ot_error_set(p->err, OT_EPARSE, "%s: \"__metadata__\" must be an object of strings", p->st->origin);
  size_t n = (size_t)cJSON_GetArraySize(meta);
  p->st->meta = calloc(2 * n + 1, sizeof(char *));
  if (!p->st->meta) return ot_error_set(p->err, OT_ENOMEM, "%s: out of memory", p->st->origin);
  const cJSON *kv;
  cJSON_ArrayForEach(kv, meta) {
    char kb[80];
    if (!cJSON_IsString(kv))
      return ot_error_set(p->err, OT_EPARSE, "%s: __metadata__ value of '%s' is not a string", p->st->origin,
                          printable(kv->string, kb, sizeof kb));
    char *k = strdup(kv->string), *v = strdup(kv->valuestring);
    p->st->meta[2 * p->st->meta_count] = k;
    p->st->meta[2 * p->st->meta_count + 1] = v;
    p->st->meta_count++;
    if (!k || !v) return ot_error_set(p->err, OT_ENOMEM, "%s: out of memory", p->st->origin);
  }
  return OT_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
  const ot_st_tensor *x = *(const ot_st_tensor *const *)a, *y = *(const ot_st_tensor *const *)b;
  const uint8_t *p = x->data, *q = y->data;
  return p < q ? -1 : p > q ? 1 : (x->bytes > y->bytes) - (x->bytes < y->bytes);
}

static int cmp_by_name(const void *a, const void *b) {
  return strcmp((*(const ot_st_tensor *const *)a)->name, (*(const ot_st_tensor *const *)b)->name);
}

/* No two tensors share bytes or a name: sort views by offset, then by name. */
static ot_status st_check_layout(st_parse *p) {
  ot_safetensors *st = p->st;
  if (st->count < 2) return OT_OK;
  const ot_st_tensor **v = malloc(st->count * sizeof *v);
  if (!v) return ot_error_set(p->err, OT_ENOMEM, "%s: out of memory", st->origin);
  for (size_t i = 0; i < st->count; i++) v[i] = &st->tensors[i];
  ot_status s = OT_OK;
  char a[80], b[80];
  qsort(v, st->count, sizeof *v, cmp_by_offset);
  for (size_t i = 1; i < st->count && s == OT_OK; i++)
    if (v[i - 1]->bytes && v[i]->bytes &&
        (const uint8_t *)v[i]->data < (const uint8_t *)v[i - 1]->data + v[i - 1]->bytes)
      s = ot_error_set(p->err, OT_EPARSE, "%s: tensors '%s' and '%s' overlap in the data section", st->origin,
                       printable(v[i - 1]->name, a, sizeof a), printable(v[i]->name, b, sizeof b));
  qsort(v, st->count, sizeof *v, cmp_by_name);
  for (size_t i = 1; i < st->count && s == OT_OK; i++)
    if (!strcmp(v[i - 1]->name, v[i]->name))
      s = ot_error_set(p->err, OT_EPARSE, "%s: tensor '%s' appears twice in the header", st->origin,
                       printable(v[i]->name, a, sizeof a));
  free(v);
  return s;
}

static ot_status st_read_header(st_parse *p, const cJSON *root, const uint8_t *data) {
  ot_safetensors *st = p->st;
  size_t n = (size_t)cJSON_GetArraySize(root);
  st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
  st->names = calloc(n ? n : 1, sizeof *st->names);
  if (!st->tensors || !st->names) return ot_error_set(p->err, OT_ENOMEM, "%s: out of memory", st->origin);
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    ot_status s;
    if (!strcmp(item->string, "__metadata__")) {
      if (st->meta) return ot_error_set(p->err, OT_EPARSE, "%s: \"__metadata__\" appears twice", st->origin);
      s = st_metadata(p, item);
    } else {
      ot_st_tensor *t = &st->tensors[st->count];
      if (!(st->names[st->count] = strdup(item->string)))
        return ot_error_set(p->err, OT_ENOMEM, "%s: out of memory", st->origin);
      t->name = st->names[st->count++];
      s = st_tensor(p, item, t, data);
    }
    if (s != OT_OK) return s;
  }
  return st_check_layout(p);
}

static ot_status st_parse_bytes(ot_safetensors *st, ot_error *err) {
  if (st->size < 8)
    return ot_error_set(err, OT_EPARSE, "%s: %zu bytes, too short for the 8-byte header length (truncated?)",
                        st->origin, st->size);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= (uint64_t)st->base[i] << (8 * i);
  if (n > ST_HEADER_MAX || n > st->size - 8)
    return ot_error_set(err, OT_EPARSE, "%s: header length %llu does not fit in the file (%zu bytes after the "
                        "length field%s)", st->origin, (unsigned long long)n, st->size - 8,
                        n > ST_HEADER_MAX ? ", and the limit is 100 MB" : "; truncated?");
  if (n < 2 || st->base[8] != '{')
    return ot_error_set(err, OT_EPARSE, "%s: the header does not start with '{' (not a safetensors file?)",
                        st->origin);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)st->base + 8, (size_t)n, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    size_t at = end ? (size_t)(end - (const char *)st->base - 8) : 0;
    cJSON_Delete(root);
    return ot_error_set(err, OT_EPARSE, "%s: the %llu-byte JSON header is malformed near byte %zu", st->origin,
                        (unsigned long long)n, at);
  }
  for (const char *q = end; q && q < (const char *)st->base + 8 + n; q++)
    if (*q != ' ' && *q != '\0' && *q != '\n' && *q != '\t' && *q != '\r') {
      cJSON_Delete(root);
      return ot_error_set(err, OT_EPARSE, "%s: bytes after the JSON header object (expected only padding)",
                          st->origin);
    }
  st_parse p = {st, st->size - 8 - (size_t)n, err};
  ot_status s = st_read_header(&p, root, st->base + 8 + n);
  cJSON_Delete(root);
  return s;
}

static ot_safetensors *st_new(const char *origin) {
  ot_safetensors *st = calloc(1, sizeof *st);
  if (st) snprintf(st->origin, sizeof st->origin, "%s", origin ? origin : "safetensors");
  return st;
}

ot_status ot_safetensors_parse(const void *bytes, size_t size, const char *origin, ot_safetensors **out,
                               ot_error *err) {
  *out = NULL;
  ot_safetensors *st = st_new(origin);
  if (!st) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin ? origin : "safetensors");
  st->base = bytes;
  st->size = size;
  ot_status s = st_parse_bytes(st, err);
  if (s != OT_OK) { ot_safetensors_close(st); return s; }
  *out = st;
  return OT_OK;
}

ot_status ot_safetensors_open(const char *path, ot_safetensors **out, ot_error *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return ot_error_set(err, OT_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return ot_error_set(err, OT_EIO, "%s: not a regular file", path);
  }
  ot_safetensors *st = st_new(path);
  if (!st) { close(fd); return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path); }
  st->size = (size_t)sb.st_size;
  if (st->size) {
    st->map = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
      st->map = NULL;
      ot_status s = ot_error_set(err, OT_EIO, "%s: cannot map: %s", path, strerror(errno));
      close(fd);
      ot_safetensors_close(st);
      return s;
    }
    st->map_size = st->size;
    st->base = st->map;
  }
  close(fd);
  ot_status s = st_parse_bytes(st, err);
  if (s != OT_OK) { ot_safetensors_close(st); return s; }
  *out = st;
  return OT_OK;
}

void ot_safetensors_close(ot_safetensors *st) {
  if (!st) return;
  if (st->map) munmap(st->map, st->map_size);
  for (size_t i = 0; st->names && i < st->count; i++) free(st->names[i]);
  for (size_t i = 0; st->meta && i < 2 * st->meta_count; i++) free(st->meta[i]);
  free(st->names);
  free(st->meta);
  free(st->tensors);
  free(st);
}

size_t ot_safetensors_count(const ot_safetensors *st) { return st ? st->count : 0; }

const ot_st_tensor *ot_safetensors_at(const ot_safetensors *st, size_t i) {
  return st && i < st->count ? &st->tensors[i] : NULL;
}

const ot_st_tensor *ot_safetensors_find(const ot_safetensors *st, const char *name) {
  for (size_t i = 0; st && name && i < st->count; i++)
    if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
  return NULL;
}

const char *ot_safetensors_metadata(const ot_safetensors *st, const char *key) {
  for (size_t i = 0; st && key && i < st->meta_count; i++)
    if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
  return NULL;
}

ot_status ot_safetensors_read_f32(const ot_safetensors *st, const char *name, float *dst, uint64_t count,
                                  ot_error *err) {
  const ot_st_tensor *t = ot_safetensors_find(st, name);
  if (!t) return ot_error_set(err, OT_ENOTFOUND, "%s: no tensor '%s'", st ? st->origin : "safetensors", name);
  if (t->dtype == OT_DT_COUNT || !ot_dtype_is_float(t->dtype))
    return ot_error_set(err, OT_EINVAL, "%s: tensor '%s' has dtype %s, expected a float type (F32, BF16, F16)",
                        st->origin, name, t->st_dtype);
  if (t->count != count)
    return ot_error_set(err, OT_EINVAL, "%s: tensor '%s' has %llu elements, expected %llu", st->origin, name,
                        (unsigned long long)t->count, (unsigned long long)count);
  if (t->dtype == OT_DT_FP32) memcpy(dst, t->data, t->bytes);
  else ot_convert(dst, OT_DT_FP32, t->data, t->dtype, (size_t)count, NULL);
  return OT_OK;
}

/* ---- writing ---------------------------------------------------------------------------- */

static ot_dtype save_type(const ot_st_tensor *t, ot_dtype as) {
  return as != OT_DT_COUNT && ot_dtype_is_float(t->dtype) ? as : t->dtype;
}

static ot_status save_check(const char *path, const ot_st_tensor *ts, size_t n, ot_dtype as, ot_error *err) {
  if (as != OT_DT_COUNT && (!st_dtype_name(as) || !ot_dtype_is_float(as)))
    return ot_error_set(err, OT_EINVAL, "%s: cannot save as %s (expected fp32, bf16, fp16, fp8e4m3fn or fp8e5m2)",
                        path, ot_dtype_name(as));
  for (size_t i = 0; i < n; i++) {
    const ot_st_tensor *t = &ts[i];
    if (!t->name || !*t->name || !strcmp(t->name, "__metadata__"))
      return ot_error_set(err, OT_EINVAL, "%s: tensor %zu has no usable name", path, i);
    if (t->dtype >= OT_DT_COUNT || !st_dtype_name(t->dtype))
      return ot_error_set(err, OT_EINVAL, "%s: tensor '%s': type %s has no safetensors dtype", path, t->name,
                          ot_dtype_name(t->dtype));
    if (t->ndim > OT_TENSOR_MAX_DIMS)
      return ot_error_set(err, OT_EINVAL, "%s: tensor '%s': %u dimensions, at most %d", path, t->name, t->ndim,
                          OT_TENSOR_MAX_DIMS);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(ts[j].name, t->name))
        return ot_error_set(err, OT_EINVAL, "%s: tensor '%s' given twice", path, t->name);
  }
  return OT_OK;
}

static uint64_t tensor_count(const ot_st_tensor *t) {
  uint64_t c = 1;
  for (uint32_t d = 0; d < t->ndim; d++) c *= t->shape[d];
  return c;
}

/* The JSON header, padded with spaces to a multiple of 8 so the data starts aligned. */
static char *save_header(const ot_st_tensor *ts, size_t n, ot_dtype as, const char *const *meta, size_t *len) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  if (meta && meta[0]) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    for (size_t i = 0; m && meta[i] && meta[i + 1]; i += 2) cJSON_AddStringToObject(m, meta[i], meta[i + 1]);
  }
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    ot_dtype dt = save_type(&ts[i], as);
    uint64_t bytes = tensor_count(&ts[i]) * ot_dtype_size(dt);
    cJSON *o = cJSON_AddObjectToObject(root, ts[i].name);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
    cJSON_AddStringToObject(o, "dtype", st_dtype_name(dt));
    for (uint32_t d = 0; shape && d < ts[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i].shape[d]));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
    off += bytes;
  }
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json) return NULL;
  size_t l = strlen(json), padded = (l + 7) & ~(size_t)7;
  char *h = realloc(json, padded + 1);
  if (!h) { free(json); return NULL; }
  memset(h + l, ' ', padded - l);
  h[padded] = '\0';
  *len = padded;
  return h;
}

static bool write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

/* A tensor's bytes in the saved type, converted in chunks so memory stays small. */
static bool save_data(FILE *f, const ot_st_tensor *t, ot_dtype as) {
  ot_dtype dt = save_type(t, as);
  uint64_t n = tensor_count(t);
  if (dt == t->dtype) return write_all(f, t->data, (size_t)(n * ot_dtype_size(dt)));
  enum { CHUNK = 1 << 16 };
  size_t ss = ot_dtype_size(t->dtype), ds = ot_dtype_size(dt);
  uint8_t *buf = malloc(CHUNK * ds);
  bool ok = buf != NULL;
  if (!ok) errno = ENOMEM;
  for (uint64_t i = 0; ok && i < n; i += CHUNK) {
    size_t k = (size_t)(n - i < CHUNK ? n - i : CHUNK);
    ot_convert(buf, dt, (const uint8_t *)t->data + i * ss, t->dtype, k, NULL);
    ok = write_all(f, buf, k * ds);
  }
  free(buf);
  return ok;
}

static ot_status save_stream(const char *path, const char *tmp, int fd, const char *header, size_t hlen,
                             const ot_st_tensor *ts, size_t n, ot_dtype as, ot_error *err) {
  FILE *f = fdopen(fd, "wb");
  if (!f) { close(fd); return ot_error_set(err, OT_EIO, "%s: cannot write: %s", tmp, strerror(errno)); }
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
  bool ok = write_all(f, len, 8) && write_all(f, header, hlen);
  for (size_t i = 0; ok && i < n; i++) ok = save_data(f, &ts[i], as);
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  int saved = errno;
  if (fclose(f) != 0) ok = false;
  if (ok && (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0)) { ok = false; saved = errno; }
  if (ok) return OT_OK;
  return ot_error_set(err, OT_EIO, "%s: write failed: %s (the previous file, if any, is untouched)", path,
                      strerror(saved));
}

ot_status ot_safetensors_save(const char *path, const ot_st_tensor *tensors, size_t count, ot_dtype as_dtype,
                              const char *const *metadata, ot_error *err) {
  ot_status s = save_check(path, tensors, count, as_dtype, err);
  if (s != OT_OK) return s;
  size_t hlen = 0;
  char *header = save_header(tensors, count, as_dtype, metadata, &hlen);
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!header || !tmp) {
    free(header);
    free(tmp);
    return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path);
  }
  snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) s = ot_error_set(err, OT_EIO, "%s: cannot create temporary file: %s", path, strerror(errno));
  else s = save_stream(path, tmp, fd, header, hlen, tensors, count, as_dtype, err);
  if (s != OT_OK && fd >= 0) unlink(tmp);
  free(tmp);
  free(header);
  return s;
}

/* ---- the check against a configuration -------------------------------------------------- */

#define CHECK_REPORT_MAX 8 /* per kind of problem; the rest are counted */

typedef struct {
  const ot_safetensors *st;
  ot_dtype dtype;
  ot_error *err;
  ot_status status;
  bool gpt2;
  unsigned char *used; /* per file tensor: matched an expected one */
  size_t missing, mismatched;
} st_checker;

static const ot_st_tensor *check_find(st_checker *k, const char *name) {
  const ot_st_tensor *t = ot_safetensors_find(k->st, name);
  if (!t && k->gpt2) {
    char pre[OT_TENSOR_NAME_MAX + 16];
    snprintf(pre, sizeof pre, "transformer.%s", name);
    t = ot_safetensors_find(k->st, pre);
  }
  return t;
}

static void check_note(st_checker *k, ot_status code, size_t *counter, const char *msg) {
  if (k->status == OT_OK) k->status = code;
  if ((*counter)++ < CHECK_REPORT_MAX) ot_error_set(k->err, code, "%s: %s", k->st->origin, msg);
}

static void check_one(void *ctx, const ot_model_tensor_spec *s) {
  st_checker *k = ctx;
  char want[64], got[160], msg[512];
  model_shape_format(s->shape, s->ndim, want, sizeof want);
  const ot_st_tensor *t = check_find(k, s->name);
  if (!t) {
    snprintf(msg, sizeof msg, "missing tensor '%s' (expected shape %s, %s)", s->name, want,
             k->dtype == OT_DT_COUNT ? "F32, BF16 or F16" : st_dtype_name(k->dtype));
    check_note(k, OT_ENOTFOUND, &k->missing, msg);
    return;
  }
  k->used[t - ot_safetensors_at(k->st, 0)] = 1;
  bool shape_ok = t->ndim == s->ndim && t->shape[0] == s->shape[0] && (s->ndim < 2 || t->shape[1] == s->shape[1]);
  bool type_ok = k->dtype == OT_DT_COUNT ? (t->dtype == OT_DT_FP32 || t->dtype == OT_DT_BF16 || t->dtype == OT_DT_FP16)
                                         : t->dtype == k->dtype;
  if (shape_ok && type_ok) return;
  model_shape_format(t->shape, t->ndim, got, sizeof got);
  snprintf(msg, sizeof msg, "tensor '%s': found %s %s, expected %s %s", t->name, t->st_dtype, got,
           k->dtype == OT_DT_COUNT ? (type_ok ? t->st_dtype : "F32/BF16/F16") : st_dtype_name(k->dtype), want);
  check_note(k, OT_EINVAL, &k->mismatched, msg);
}

/* Tensors a checkpoint may carry that are not parameters. */
static bool check_ignorable(const ot_st_tensor *t, const ot_model_config *c) {
  size_t n = strlen(t->name);
  static const char *const tails[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"};
  for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
    size_t m = strlen(tails[i]);
    if (n > m && !strcmp(t->name + n - m, tails[i]) && (i != 0 || c->family == OT_MODEL_GPT2)) return true;
  }
  return c->tie_word_embeddings && !strcmp(t->name, "lm_head.weight");
}

static void check_unexpected(st_checker *k, const ot_model_config *c) {
  size_t extra = 0;
  char got[160], nb[80], msg[512];
  for (size_t i = 0; i < k->st->count; i++) {
    const ot_st_tensor *t = &k->st->tensors[i];
    if (k->used[i] || check_ignorable(t, c)) continue;
    model_shape_format(t->shape, t->ndim, got, sizeof got);
    snprintf(msg, sizeof msg, "unexpected tensor '%s' (%s %s): not part of a %s model with %u layers",
             printable(t->name, nb, sizeof nb), t->st_dtype, got, model_family_name(c->family), c->num_hidden_layers);
    check_note(k, OT_EINVAL, &extra, msg);
  }
  size_t counts[3] = {k->missing, k->mismatched, extra};
  const char *what[3] = {"missing", "mismatched", "unexpected"};
  for (int i = 0; i < 3; i++)
    if (counts[i] > CHECK_REPORT_MAX)
      ot_error_set(k->err, k->status, "%s: ... and %zu more %s tensors (%zu in all)", k->st->origin,
                   counts[i] - CHECK_REPORT_MAX, what[i], counts[i]);
}

ot_status ot_safetensors_check(const ot_safetensors *st, const ot_model_config *c, ot_dtype dtype, ot_error *err) {
  ot_status s = ot_model_config_validate(c, NULL, err);
  if (s != OT_OK) return s;
  st_checker k = {st, dtype, err, OT_OK, c->family == OT_MODEL_GPT2, calloc(st->count + 1, 1), 0, 0};
  if (!k.used) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", st->origin);
  model_specs_each(c, check_one, &k);
  check_unexpected(&k, c);
  free(k.used);
  return k.status;
}
