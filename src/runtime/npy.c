/* NumPy .npy reader and writer (format in npy.h).  The header is a Python dict literal; the
** parser below accepts exactly the subset numpy writes (string keys, a string, True/False and
** a tuple of non-negative integers, in any order, with optional trailing commas and Python 2's
** "L" suffix) and names the first thing that is wrong, with its byte offset. */
#include "runtime/npy.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- element types ----------------------------------------------------------------------- */
typedef struct {
  char kind;     /* 'f', 'i', 'u' */
  unsigned size; /* bytes */
  ot_dtype dtype;
} npy_type;

static const npy_type npy_types[] = {
  {'f', 4, OT_DT_FP32},  {'f', 2, OT_DT_FP16},  {'i', 1, OT_DT_INT8},   {'u', 1, OT_DT_UINT8},
  {'i', 2, OT_DT_INT16}, {'u', 2, OT_DT_UINT16}, {'i', 4, OT_DT_INT32}, {'u', 4, OT_DT_UINT32},
};
#define NPY_NTYPES (sizeof npy_types / sizeof npy_types[0])

const char *ot_npy_descr(ot_dtype t) {
  switch (t) {
  case OT_DT_FP32: return "<f4";
  case OT_DT_FP16: return "<f2";
  case OT_DT_INT8: return "|i1";
  case OT_DT_UINT8: return "|u1";
  case OT_DT_INT16: return "<i2";
  case OT_DT_UINT16: return "<u2";
  case OT_DT_INT32: return "<i4";
  case OT_DT_UINT32: return "<u4";
  default: return NULL;
  }
}

/* Map a descr string to a dtype, or explain why not. */
static ot_status npy_descr_parse(const char *d, const char *origin, ot_dtype *out, ot_error *err) {
  static const char supported[] = "supported: <f4, <f2, |i1, |u1, <i2, <u2, <i4, <u4 (bf16 as <u2)";
  size_t n = strlen(d);
  char order = n ? d[0] : 0;
  bool has_order = order == '<' || order == '>' || order == '|' || order == '=';
  const char *body = has_order ? d + 1 : d;
  char *end = NULL;
  unsigned long size = (body[0] && isdigit((unsigned char)body[1])) ? strtoul(body + 1, &end, 10) : 0;
  if (!end || *end || !has_order)
    return ot_error_set(err, OT_EPARSE, "%s: unsupported dtype '%s' (%s)", origin, d, supported);
  for (size_t i = 0; i < NPY_NTYPES; i++) {
    if (npy_types[i].kind != body[0] || npy_types[i].size != size) continue;
    if (size > 1 && order == '>')
      return ot_error_set(err, OT_EUNSUPPORTED,
                          "%s: big-endian data ('%s') is not supported: save it with arr.astype('<%s')", origin, d,
                          body);
    if (size > 1 && order != '<')
      return ot_error_set(err, OT_EPARSE, "%s: dtype '%s' does not state little-endian byte order ('<%s')",
                          origin, d, body);
    *out = npy_types[i].dtype;
    return OT_OK;
  }
  if (body[0] == 'f' && size == 8)
    return ot_error_set(err, OT_EUNSUPPORTED,
                        "%s: float64 ('%s') is not a chip data type: convert it with arr.astype(np.float32)",
                        origin, d);
  return ot_error_set(err, OT_EUNSUPPORTED, "%s: unsupported dtype '%s' (%s)", origin, d, supported);
}

void ot_npy_shape_format(const uint64_t *shape, uint32_t ndim, char *buf, size_t cap) {
  if (!cap) return;
  size_t at = 0;
  int w = snprintf(buf, cap, "[");
  for (uint32_t i = 0; i < ndim && w >= 0 && (size_t)w < cap - at; i++) {
    at += (size_t)w;
    w = snprintf(buf + at, cap - at, "%s%" PRIu64, i ? ", " : "", shape[i]);
  }
  if (w >= 0 && (size_t)w < cap - at) {
    at += (size_t)w;
    w = snprintf(buf + at, cap - at, "]");
  }
  if ((w < 0 || (size_t)w >= cap - at) && cap > 4) strcpy(buf + cap - 4, "...");
}

/* ---- header parsing ---------------------------------------------------------------------- */
typedef struct {
  const char *p, *begin, *end;
  const char *origin;
  ot_error *err;
  bool failed;
} npy_parser;

static bool npy_fail(npy_parser *ps, const char *what) {
  if (!ps->failed) {
    size_t at = (size_t)(ps->p - ps->begin);
    char near[8] = "the end";
    if (ps->p < ps->end) {
      unsigned char c = (unsigned char)*ps->p;
      if (isprint(c)) snprintf(near, sizeof near, "'%c'", c);
      else snprintf(near, sizeof near, "0x%02x", c);
    }
    ot_error_set(ps->err, OT_EPARSE, "%s: malformed .npy header at byte %zu (%s): %s", ps->origin, at, near, what);
  }
  ps->failed = true;
  return false;
}

static void npy_skip_ws(npy_parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static bool npy_accept(npy_parser *ps, char c) {
  npy_skip_ws(ps);
  if (ps->p < ps->end && *ps->p == c) {
    ps->p++;
    return true;
  }
  return false;
}

static bool npy_expect(npy_parser *ps, char c, const char *what) {
  return npy_accept(ps, c) || npy_fail(ps, what);
}

/* A quoted string (single or double quotes, no escapes: numpy writes none). */
static bool npy_string(npy_parser *ps, char *buf, size_t cap) {
  npy_skip_ws(ps);
  if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return npy_fail(ps, "expected a quoted string");
  char q = *ps->p++;
  size_t n = 0;
  while (ps->p < ps->end && *ps->p != q) {
    unsigned char c = (unsigned char)*ps->p;
    if (c == '\\' || c < 0x20 || c >= 0x7f) return npy_fail(ps, "unexpected character in a string");
    if (n + 1 >= cap) return npy_fail(ps, "string too long");
    buf[n++] = *ps->p++;
  }
  if (ps->p >= ps->end) return npy_fail(ps, "unterminated string");
  ps->p++;
  buf[n] = '\0';
  return true;
}

static bool npy_word(npy_parser *ps, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n)) return false;
  const char *after = ps->p + n;
  if (after < ps->end && (isalnum((unsigned char)*after) || *after == '_')) return false;
  ps->p = after;
  return true;
}

static bool npy_bool(npy_parser *ps, bool *out) {
  npy_skip_ws(ps);
  if (npy_word(ps, "True")) *out = true;
  else if (npy_word(ps, "False")) *out = false;
  else return npy_fail(ps, "expected True or False for 'fortran_order'");
  return true;
}

static bool npy_uint(npy_parser *ps, uint64_t *out) {
  npy_skip_ws(ps);
  if (ps->p >= ps->end || !isdigit((unsigned char)*ps->p)) return npy_fail(ps, "expected a non-negative integer dimension");
  uint64_t v = 0;
  while (ps->p < ps->end && isdigit((unsigned char)*ps->p)) {
    unsigned d = (unsigned)(*ps->p - '0');
    if (v > (UINT64_C(1) << 62) / 10) return npy_fail(ps, "dimension too large");
    v = v * 10 + d;
    ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l')) ps->p++; /* Python 2's long suffix */
  *out = v;
  return true;
}

/* "(d0, d1, ...)" with an optional trailing comma; "()" is a scalar. */
static bool npy_shape(npy_parser *ps, ot_npy *a) {
  if (!npy_expect(ps, '(', "expected '(' to start the shape tuple")) return false;
  a->ndim = 0;
  while (!npy_accept(ps, ')')) {
    if (a->ndim == OT_NPY_MAX_DIMS) return npy_fail(ps, "more than 32 dimensions");
    if (!npy_uint(ps, &a->shape[a->ndim++])) return false;
    if (npy_accept(ps, ',')) continue;
    if (!npy_expect(ps, ')', "expected ',' or ')' in the shape tuple")) return false;
    break;
  }
  return true;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static bool npy_entry(npy_parser *ps, ot_npy *a, unsigned *seen, bool *fortran) {
  char key[32];
  const char *at = ps->p;
  if (!npy_string(ps, key, sizeof key)) return false;
  unsigned k = !strcmp(key, "descr") ? KEY_DESCR : !strcmp(key, "fortran_order") ? KEY_FORTRAN
             : !strcmp(key, "shape") ? KEY_SHAPE : 0;
  if (!k || (*seen & k)) {
    ps->p = at;
    npy_skip_ws(ps);
    return npy_fail(ps, k ? "duplicate key" : "unexpected key (expected 'descr', 'fortran_order' and 'shape')");
  }
  *seen |= k;
  if (!npy_expect(ps, ':', "expected ':' after the key")) return false;
  if (k == KEY_FORTRAN) return npy_bool(ps, fortran);
  if (k == KEY_SHAPE) return npy_shape(ps, a);
  npy_skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '[')
    return npy_fail(ps, "structured dtypes (a list as 'descr') are not supported");
  return npy_string(ps, a->descr, sizeof a->descr);
}

static bool npy_dict(npy_parser *ps, ot_npy *a, bool *fortran) {
  unsigned seen = 0;
  if (!npy_expect(ps, '{', "expected '{' to start the header dict")) return false;
  while (!npy_accept(ps, '}')) {
    if (!npy_entry(ps, a, &seen, fortran)) return false;
    if (npy_accept(ps, ',')) continue;
    if (!npy_expect(ps, '}', "expected ',' or '}' after a value")) return false;
    break;
  }
  npy_skip_ws(ps);
  if (ps->p != ps->end) return npy_fail(ps, "unexpected text after the header dict");
  if (seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
    return npy_fail(ps, !(seen & KEY_DESCR) ? "no 'descr' key" : !(seen & KEY_SHAPE) ? "no 'shape' key"
                                                                                       : "no 'fortran_order' key");
  return true;
}

/* ---- the whole file ---------------------------------------------------------------------- */
static uint32_t npy_get_le(const uint8_t *b, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; i++) v |= (uint32_t)b[i] << (8 * i);
  return v;
}

/* Check the preamble; set the header's [start, start+len). */
static ot_status npy_preamble(const uint8_t *b, size_t size, const char *origin, size_t *start, size_t *len,
                              ot_error *err) {
  if (size < 8 || memcmp(b, npy_magic, 6)) {
    if (size >= 6 && memcmp(b, npy_magic, 6))
      return ot_error_set(err, OT_EPARSE, "%s: not an .npy file (bad magic: expected \\x93NUMPY)", origin);
    return ot_error_set(err, OT_EPARSE, "%s: truncated .npy file (%zu bytes, shorter than its preamble)", origin, size);
  }
  unsigned major = b[6], minor = b[7];
  if (major < 1 || major > 3 || minor != 0)
    return ot_error_set(err, OT_EUNSUPPORTED, "%s: .npy format version %u.%u is not supported (1.0, 2.0 and 3.0 are)",
                        origin, major, minor);
  unsigned lbytes = major == 1 ? 2 : 4;
  if (size < 8 + lbytes)
    return ot_error_set(err, OT_EPARSE, "%s: truncated .npy file (%zu bytes, shorter than its preamble)", origin, size);
  *start = 8 + lbytes;
  *len = npy_get_le(b + 8, lbytes);
  if (*len > size - *start)
    return ot_error_set(err, OT_EPARSE, "%s: truncated .npy file: the header is %zu bytes but only %zu follow the preamble",
                        origin, *len, size - *start);
  return OT_OK;
}

/* Element count and byte size of the array.  A zero dimension makes the array empty whatever
** the others say; otherwise the product must stay far from overflow (2^48 elements). */
static ot_status npy_sizes(ot_npy *a, const char *origin, ot_error *err) {
  const uint64_t limit = UINT64_C(1) << 48;
  uint64_t count = 1;
  bool zero = false, huge = false;
  for (uint32_t i = 0; i < a->ndim; i++) {
    if (a->shape[i] == 0) zero = true;
    else if (count > limit / a->shape[i]) huge = true;
    else count *= a->shape[i];
  }
  size_t es = ot_dtype_size(a->dtype);
  if (!zero && (huge || count > (uint64_t)(SIZE_MAX / es)))
    return ot_error_set(err, OT_EPARSE, "%s: the shape's element count is too large", origin);
  a->count = zero ? 0 : count;
  a->bytes = (size_t)a->count * es;
  return OT_OK;
}

ot_status ot_npy_parse(const void *bytes, size_t size, const char *origin, ot_npy *out, ot_error *err) {
  memset(out, 0, sizeof *out);
  const uint8_t *b = bytes;
  size_t start = 0, len = 0;
  ot_status s = npy_preamble(b, size, origin, &start, &len, err);
  if (s) return s;
  ot_npy a;
  memset(&a, 0, sizeof a);
  bool fortran = false;
  /* Offsets in messages count from the start of the file. */
  npy_parser ps = {(const char *)b + start, (const char *)b, (const char *)b + start + len, origin, err, false};
  if (!npy_dict(&ps, &a, &fortran)) return OT_EPARSE;
  if (fortran)
    return ot_error_set(err, OT_EUNSUPPORTED,
                        "%s: Fortran-order arrays are not supported: save np.ascontiguousarray(arr) instead", origin);
  if ((s = npy_descr_parse(a.descr, origin, &a.dtype, err))) return s;
  if ((s = npy_sizes(&a, origin, err))) return s;
  size_t have = size - start - len;
  if (have != a.bytes) {
    char shp[128];
    ot_npy_shape_format(a.shape, a.ndim, shp, sizeof shp);
    return ot_error_set(err, OT_EPARSE, "%s: %s: the header promises %zu bytes of data ('%s' of shape %s), the file holds %zu",
                        origin, have < a.bytes ? "truncated .npy file" : "trailing bytes after the array data",
                        a.bytes, a.descr, shp, have);
  }
  if (a.bytes) {
    a.data = malloc(a.bytes);
    if (!a.data) return ot_error_set(err, OT_ENOMEM, "%s: out of memory (%zu bytes)", origin, a.bytes);
    memcpy(a.data, b + start + len, a.bytes);
  }
  *out = a;
  return OT_OK;
}

ot_status ot_npy_read(const char *path, ot_npy *out, ot_error *err) {
  memset(out, 0, sizeof *out);
  char *buf = NULL;
  size_t n = 0;
  ot_status s = ot_file_read(path, &buf, &n, err);
  if (s) return s;
  s = ot_npy_parse(buf, n, path, out, err);
  free(buf);
  return s;
}

void ot_npy_free(ot_npy *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}

/* ---- writing ----------------------------------------------------------------------------- */
/* The dict text numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
static size_t npy_dict_text(const char *descr, const uint64_t *shape, uint32_t ndim, char *buf, size_t cap) {
  size_t at = (size_t)snprintf(buf, cap, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (uint32_t i = 0; i < ndim && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%" PRIu64, i ? ", " : "", shape[i]);
  if (at < cap) at += (size_t)snprintf(buf + at, cap - at, "%s), }", ndim == 1 ? "," : "");
  return at;
}

ot_status ot_npy_serialize(ot_dtype t, const uint64_t *shape, uint32_t ndim, const void *data, int version,
                           void **image, size_t *size, ot_error *err) {
  *image = NULL;
  *size = 0;
  const char *descr = ot_npy_descr(t);
  if (!descr) return ot_error_set(err, OT_EUNSUPPORTED, "npy: %s has no numpy dtype", ot_dtype_name(t));
  if (ndim > OT_NPY_MAX_DIMS) return ot_error_set(err, OT_EINVAL, "npy: %u dimensions (at most 32)", ndim);
  ot_npy a = {.dtype = t, .ndim = ndim};
  if (ndim) memcpy(a.shape, shape, ndim * sizeof *shape);
  if (npy_sizes(&a, "npy", err)) return OT_EINVAL;
  char dict[1024];
  size_t dlen = npy_dict_text(descr, shape, ndim, dict, sizeof dict);
  if (dlen >= sizeof dict) return ot_error_set(err, OT_EINVAL, "npy: header too long");
  if (version == 0) version = 1;
  if (version != 1 && version != 2) return ot_error_set(err, OT_EINVAL, "npy: cannot write format version %d", version);
  size_t pre = version == 1 ? 10 : 12;
  size_t hlen = dlen + 1;
  hlen += (64 - (pre + hlen) % 64) % 64; /* numpy aligns the data to 64 bytes */
  size_t total = pre + hlen + a.bytes;
  uint8_t *b = malloc(total);
  if (!b) return ot_error_set(err, OT_ENOMEM, "npy: out of memory (%zu bytes)", total);
  memcpy(b, npy_magic, 6);
  b[6] = (uint8_t)version;
  b[7] = 0;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (uint8_t)(hlen >> (8 * i));
  memcpy(b + pre, dict, dlen);
  memset(b + pre + dlen, ' ', hlen - dlen - 1);
  b[pre + hlen - 1] = '\n';
  if (a.bytes) memcpy(b + pre + hlen, data, a.bytes);
  *image = b;
  *size = total;
  return OT_OK;
}

ot_status ot_npy_write(const char *path, ot_dtype t, const uint64_t *shape, uint32_t ndim, const void *data,
                       ot_error *err) {
  void *img = NULL;
  size_t n = 0;
  ot_status s = ot_npy_serialize(t, shape, ndim, data, 0, &img, &n, err);
  if (!s) s = ot_file_write_atomic(path, img, n, err);
  free(img);
  return s;
}
