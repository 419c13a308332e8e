/* Reading program files: validate everything, then build the in-memory program.  Every check
** names what failed, where, and what was expected; no input can make the reader read outside
** the buffer, allocate without bound, or crash. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "isa/encoding.h"
#include "isa/program.h"
#include "runtime/progfile.h"
#include "util/fileio.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

typedef struct { uint32_t kind, core, engine, count; uint64_t offset, size; } sec;

typedef struct {
  const uint8_t *b;
  size_t n;
  sec *secs;
  uint32_t nsec;
  const sec *strings, *descs, *tensors, *consts;
  ot_error *err;
} reader;

static const char *kind_name(uint32_t k) {
  static const char *const names[] = {"?", "STREAM", "DESCRIPTORS", "TENSORS", "CONSTS", "STRINGS", "DEBUG"};
  return k < 7 ? names[k] : "?";
}

static ot_status check_header(reader *r) {
  const uint8_t *h = r->b;
  if (r->n < OT_PROG_HEADER_SIZE)
    return ot_error_set(r->err, OT_EFORMAT, "file is %zu bytes, smaller than the %d-byte header", r->n, OT_PROG_HEADER_SIZE);
  if (memcmp(h, OT_PROG_MAGIC, 8))
    return ot_error_set(r->err, OT_EFORMAT, "bad magic: not an OpenTRN program file (expected \"%s\")", OT_PROG_MAGIC);
  if (rd16(h + 8) != OT_PROG_VERSION_MAJOR)
    return ot_error_set(r->err, OT_EFORMAT, "format version %u.%u, this reader reads %d.x", rd16(h + 8), rd16(h + 10),
                        OT_PROG_VERSION_MAJOR);
  if (rd32(h + 12) != OT_PROG_HEADER_SIZE)
    return ot_error_set(r->err, OT_EFORMAT, "header size %u, expected %d", rd32(h + 12), OT_PROG_HEADER_SIZE);
  if (rd64(h + 16) != r->n)
    return ot_error_set(r->err, OT_EFORMAT, "header says %llu bytes, the file has %zu (truncated or padded)",
                        (unsigned long long)rd64(h + 16), r->n);
  if (rd32(h + 32) != OT_ISA_VERSION)
    return ot_error_set(r->err, OT_EFORMAT, "instruction encoding version %u, expected %d", rd32(h + 32), OT_ISA_VERSION);
  uint8_t *copy = malloc(r->n);
  if (!copy) return ot_error_set(r->err, OT_ENOMEM, "out of memory checking the checksum");
  memcpy(copy, r->b, r->n);
  memset(copy + 24, 0, 4);
  uint32_t crc = (uint32_t)crc32(0L, copy, (uInt)r->n);
  free(copy);
  if (crc != rd32(h + 24))
    return ot_error_set(r->err, OT_EFORMAT, "checksum mismatch: stored 0x%08x, computed 0x%08x (file corrupted)",
                        rd32(h + 24), crc);
  if (memchr(h + 36, '\0', 28) == NULL)
    return ot_error_set(r->err, OT_EFORMAT, "chip name in the header is not NUL-terminated");
  return OT_OK;
}

static ot_status read_sections(reader *r) {
  uint32_t n = rd32(r->b + 28);
  uint64_t room = (r->n - OT_PROG_HEADER_SIZE) / OT_PROG_SECTION_SIZE;
  if (n > room)
    return ot_error_set(r->err, OT_EFORMAT, "%u sections declared, the file has room for at most %llu", n, (unsigned long long)room);
  r->secs = calloc(n ? n : 1, sizeof *r->secs);
  if (!r->secs) return ot_error_set(r->err, OT_ENOMEM, "out of memory");
  r->nsec = n;
  uint64_t table_end = OT_PROG_HEADER_SIZE + (uint64_t)n * OT_PROG_SECTION_SIZE;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *e = r->b + OT_PROG_HEADER_SIZE + (size_t)i * OT_PROG_SECTION_SIZE;
    sec *s = &r->secs[i];
    *s = (sec){rd32(e), rd32(e + 4), rd32(e + 8), rd32(e + 12), rd64(e + 16), rd64(e + 24)};
    if (s->kind < OT_SEC_STREAM || s->kind > OT_SEC_DEBUG)
      return ot_error_set(r->err, OT_EFORMAT, "section %u: unknown kind %u", i, s->kind);
    if (s->offset < table_end || s->offset > r->n || s->size > r->n - s->offset)
      return ot_error_set(r->err, OT_EFORMAT, "section %u (%s): bytes %llu..+%llu outside the file body %llu..%zu", i,
                          kind_name(s->kind), (unsigned long long)s->offset, (unsigned long long)s->size,
                          (unsigned long long)table_end, r->n);
    if (s->offset % 8)
      return ot_error_set(r->err, OT_EFORMAT, "section %u (%s): offset %llu not 8-byte aligned", i, kind_name(s->kind),
                          (unsigned long long)s->offset);
    const sec **single = s->kind == OT_SEC_STRINGS ? &r->strings : s->kind == OT_SEC_DESCRIPTORS ? &r->descs
                       : s->kind == OT_SEC_TENSORS ? &r->tensors : s->kind == OT_SEC_CONSTS ? &r->consts : NULL;
    if (single) {
      if (*single) return ot_error_set(r->err, OT_EFORMAT, "section %u: second %s section", i, kind_name(s->kind));
      *single = s;
    }
  }
  if (!r->strings || !r->descs || !r->tensors || !r->consts)
    return ot_error_set(r->err, OT_EFORMAT, "missing section: STRINGS, DESCRIPTORS, TENSORS and CONSTS are required");
  return OT_OK;
}

static ot_status check_strings(reader *r, ot_program *p) {
  const sec *s = r->strings;
  const uint8_t *b = r->b + s->offset;
  if (s->size == 0 || b[0] != 0 || b[s->size - 1] != 0)
    return ot_error_set(r->err, OT_EFORMAT, "STRINGS section must start and end with a NUL byte (size %llu)",
                        (unsigned long long)s->size);
  char *copy = malloc(s->size);
  if (!copy) return ot_error_set(r->err, OT_ENOMEM, "out of memory");
  memcpy(copy, b, s->size);
  free(p->strings);
  p->strings = copy;
  p->strings_len = s->size;
  return OT_OK;
}

static ot_status read_tensor(reader *r, ot_program *p, uint32_t i) {
  const uint8_t *e = r->b + r->tensors->offset + (size_t)i * OT_PROG_TENSOR_SIZE;
  ot_tensor_info t = {0};
  uint32_t name = rd32(e);
  if (name == 0 || name >= p->strings_len)
    return ot_error_set(r->err, OT_EFORMAT, "tensor %u: name offset %u outside STRINGS (1..%zu)", i, name, p->strings_len - 1);
  t.name = p->strings + name;
  t.dtype = e[4]; t.role = e[5]; t.ndim = e[6];
  if (t.dtype >= OT_DT_COUNT || t.role >= OT_TENSOR_ROLE_COUNT || t.ndim == 0 || t.ndim > OT_TENSOR_MAX_DIMS || e[7])
    return ot_error_set(r->err, OT_EFORMAT, "tensor %u '%s': dtype %u, role %u, ndim %u (expected < %d, < %d, 1..%d)", i,
                        t.name, t.dtype, t.role, t.ndim, OT_DT_COUNT, OT_TENSOR_ROLE_COUNT, OT_TENSOR_MAX_DIMS);
  uint64_t bytes = ot_dtype_size((ot_dtype)t.dtype);
  for (unsigned d = 0; d < t.ndim; d++) {
    t.shape[d] = rd64(e + 8 + 8 * d);
    if (t.shape[d] == 0 || t.shape[d] > ((uint64_t)1 << 48) / bytes)
      return ot_error_set(r->err, OT_EFORMAT, "tensor %u '%s': dimension %u is %llu (expected 1..2^48 bytes in all)", i,
                          t.name, d, (unsigned long long)t.shape[d]);
    bytes *= t.shape[d];
  }
  if (bytes > ((uint64_t)1 << 48))
    return ot_error_set(r->err, OT_EFORMAT, "tensor %u '%s': %llu bytes is too large", i, t.name, (unsigned long long)bytes);
  t.offset = rd64(e + 40);
  uint64_t data = rd64(e + 48);
  if ((t.role == OT_ROLE_CONST) != (data != UINT64_MAX))
    return ot_error_set(r->err, OT_EFORMAT, "tensor %u '%s': %s data", i, t.name,
                        t.role == OT_ROLE_CONST ? "constant without" : "non-constant with");
  if (data != UINT64_MAX) {
    if (data > r->consts->size || bytes > r->consts->size - data)
      return ot_error_set(r->err, OT_EFORMAT, "tensor %u '%s': data %llu..+%llu outside CONSTS (%llu bytes)", i, t.name,
                          (unsigned long long)data, (unsigned long long)bytes, (unsigned long long)r->consts->size);
    t.data = (uint8_t *)(r->b + r->consts->offset + data);
  }
  return ot_program_add_tensor(p, &t, r->err);
}

static ot_status read_tensors(reader *r, ot_program *p) {
  const sec *s = r->tensors;
  if (s->size != (uint64_t)s->count * OT_PROG_TENSOR_SIZE)
    return ot_error_set(r->err, OT_EFORMAT, "TENSORS: %u entries need %llu bytes, the section has %llu", s->count,
                        (unsigned long long)s->count * OT_PROG_TENSOR_SIZE, (unsigned long long)s->size);
  for (uint32_t i = 0; i < s->count; i++) {
    ot_status st = read_tensor(r, p, i);
    if (st) return st;
  }
  return OT_OK;
}

static const sec *find_debug(const reader *r, const sec *stream) {
  for (uint32_t i = 0; i < r->nsec; i++)
    if (r->secs[i].kind == OT_SEC_DEBUG && r->secs[i].core == stream->core && r->secs[i].engine == stream->engine)
      return &r->secs[i];
  return NULL;
}

static ot_status read_stream(reader *r, ot_program *p, const sec *s, uint32_t idx) {
  if (s->engine >= OT_ENG_COUNT || s->core > 255)
    return ot_error_set(r->err, OT_EFORMAT, "section %u: engine %u, core %u (expected < %d, <= 255)", idx, s->engine,
                        s->core, OT_ENG_COUNT);
  if (s->size % 4)
    return ot_error_set(r->err, OT_EFORMAT, "%s stream: %llu bytes is not whole 32-bit words",
                        ot_engine_name((ot_engine)s->engine), (unsigned long long)s->size);
  if (s->count > s->size / 4)
    return ot_error_set(r->err, OT_EFORMAT, "%s stream: %u instructions cannot fit in %llu words",
                        ot_engine_name((ot_engine)s->engine), s->count, (unsigned long long)s->size / 4);
  const sec *dbg = find_debug(r, s);
  if (dbg && (dbg->count != s->count || dbg->size != (uint64_t)s->count * 8))
    return ot_error_set(r->err, OT_EFORMAT, "%s stream: DEBUG section has %u entries / %llu bytes, expected %u / %llu",
                        ot_engine_name((ot_engine)s->engine), dbg->count, (unsigned long long)dbg->size, s->count,
                        (unsigned long long)s->count * 8);
  for (uint32_t i = 0; i < p->n_streams; i++)
    if (p->streams[i].core == s->core && p->streams[i].engine == s->engine)
      return ot_error_set(r->err, OT_EFORMAT, "two streams for %s of core %u", ot_engine_name((ot_engine)s->engine), s->core);
  size_t nw = s->size / 4, nd = r->descs->size / 4;
  uint32_t *w = malloc((nw ? nw : 1) * 4), *dw = malloc((nd ? nd : 1) * 4);
  ot_stream *st = ot_program_stream(p, s->core, (ot_engine)s->engine);
  ot_status rc = (!w || !dw || !st) ? ot_error_set(r->err, OT_ENOMEM, "out of memory") : OT_OK;
  for (size_t i = 0; !rc && i < nw; i++) w[i] = rd32(r->b + s->offset + 4 * i);
  for (size_t i = 0; !rc && i < nd; i++) dw[i] = rd32(r->b + r->descs->offset + 4 * i);
  size_t pos = 0;
  for (uint32_t i = 0; !rc && i < s->count; i++) {
    ot_insn in;
    size_t used;
    rc = ot_insn_decode(w + pos, nw - pos, dw, nd, &in, &used, r->err);
    if (rc) { ot_error_set(r->err, OT_EFORMAT, "in the %s stream, instruction %u (word %zu)", ot_engine_name((ot_engine)s->engine), i, pos); break; }
    pos += used;
    if (dbg) {
      in.line = rd32(r->b + dbg->offset + 8 * (size_t)i);
      in.tag = rd32(r->b + dbg->offset + 8 * (size_t)i + 4);
      if (in.tag >= p->strings_len) rc = ot_error_set(r->err, OT_EFORMAT, "%s stream, instruction %u: tag %u outside STRINGS",
                                                      ot_engine_name((ot_engine)s->engine), i, in.tag);
    }
    if (!rc && ot_stream_append(st, &in)) rc = ot_error_set(r->err, OT_ENOMEM, "out of memory");
  }
  if (!rc && pos != nw)
    rc = ot_error_set(r->err, OT_EFORMAT, "%s stream: %u instructions use %zu words, the section has %zu",
                      ot_engine_name((ot_engine)s->engine), s->count, pos, nw);
  free(w);
  free(dw);
  return rc;
}

ot_status ot_program_deserialize(const void *bytes, size_t size, ot_program **out, ot_error *err) {
  *out = NULL;
  reader r = {bytes, size, NULL, 0, NULL, NULL, NULL, NULL, err};
  ot_program *p = NULL;
  ot_status s = check_header(&r);
  if (!s) s = read_sections(&r);
  if (!s && !(p = ot_program_new())) s = ot_error_set(err, OT_ENOMEM, "out of memory");
  if (!s) s = check_strings(&r, p);
  if (!s) s = read_tensors(&r, p);
  for (uint32_t i = 0; !s && i < r.nsec; i++)
    if (r.secs[i].kind == OT_SEC_STREAM) s = read_stream(&r, p, &r.secs[i], i);
  if (!s) memcpy(p->chip, r.b + 36, 28);
  free(r.secs);
  if (s) { ot_program_free(p); return s; }
  *out = p;
  return OT_OK;
}

ot_status ot_program_load(const char *path, ot_program **out, ot_error *err) {
  char *data;
  size_t n;
  *out = NULL;
  ot_status s = ot_file_read(path, &data, &n, err);
  if (s) return s;
  s = ot_program_deserialize(data, n, out, err);
  if (s) ot_error_set(err, s, "%s: not loaded", path);
  free(data);
  return s;
}

ot_status ot_program_open(const char *path, ot_program **out, ot_error *err) {
  *out = NULL;
  char magic[sizeof OT_PROG_MAGIC - 1] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return ot_error_set(err, OT_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t got = fread(magic, 1, sizeof magic, f);
  fclose(f);
  if (got == sizeof magic && !memcmp(magic, OT_PROG_MAGIC, sizeof magic)) return ot_program_load(path, out, err);
  return ot_asm_file(path, out, err);
}
