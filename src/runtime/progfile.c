/* Program files: serialise an in-memory program, and read one back with every size, count,
** offset and the checksum validated before use (see progfile.h for the layout). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "isa/encoding.h"
#include "isa/program.h"
#include "runtime/progfile.h"
#include "util/fileio.h"

/* ---- little-endian byte buffer ----------------------------------------------------------- */
typedef struct { uint8_t *b; size_t n, cap; bool oom; } bbuf;

static void bb_reserve(bbuf *o, size_t more) {
  if (o->oom || o->n + more <= o->cap) return;
  size_t cap = o->cap ? o->cap : 4096;
  while (cap < o->n + more) cap *= 2;
  uint8_t *nb = realloc(o->b, cap);
  if (!nb) { o->oom = true; return; }
  o->b = nb;
  o->cap = cap;
}
static void bb_put(bbuf *o, const void *p, size_t n) {
  bb_reserve(o, n);
  if (o->oom) return;
  memcpy(o->b + o->n, p, n);
  o->n += n;
}
static void bb_u8(bbuf *o, uint8_t v) { bb_put(o, &v, 1); }
static void bb_u32(bbuf *o, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  bb_put(o, b, 4);
}
static void bb_u64(bbuf *o, uint64_t v) { bb_u32(o, (uint32_t)v); bb_u32(o, (uint32_t)(v >> 32)); }
static void bb_align8(bbuf *o) { while (o->n % 8 && !o->oom) bb_u8(o, 0); }
static void set_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void set_u64(uint8_t *p, uint64_t v) { set_u32(p, (uint32_t)v); set_u32(p + 4, (uint32_t)(v >> 32)); }

/* ---- writer ------------------------------------------------------------------------------- */
typedef struct { uint32_t kind, core, engine, count; uint64_t offset, size; } section;

typedef struct {
  section *v;
  uint32_t n;
  uint32_t cap;
} section_list;

static bool sections_add(section_list *l, section s) {
  if (l->n == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 16;
    section *nv = realloc(l->v, cap * sizeof *nv);
    if (!nv) return false;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return true;
}

/* Encode every stream (filling the descriptor table) into separate word buffers. */
static ot_status encode_streams(const ot_program *p, ot_wbuf *streams, ot_wbuf *descs, ot_error *err) {
  for (uint32_t s = 0; s < p->n_streams; s++)
    for (uint32_t i = 0; i < p->streams[s].n; i++) {
      ot_status st = ot_insn_encode(&p->streams[s].insns[i], &streams[s], descs, err);
      if (st) return st;
    }
  return OT_OK;
}

static void put_words(bbuf *o, const ot_wbuf *w) { for (size_t i = 0; i < w->n; i++) bb_u32(o, w->w[i]); }

static uint64_t consts_bytes(const ot_program *p) {
  uint64_t n = 0;
  for (uint32_t t = 0; t < p->n_tensors; t++)
    if (p->tensors[t].data) n += (ot_tensor_bytes(&p->tensors[t]) + 7) & ~(uint64_t)7;
  return n;
}

static bool write_body(bbuf *o, const ot_program *p, const ot_wbuf *streams, const ot_wbuf *descs, section_list *sl) {
  bool ok = true;
  for (uint32_t s = 0; s < p->n_streams && ok; s++) {
    const ot_stream *st = &p->streams[s];
    bb_align8(o);
    ok = sections_add(sl, (section){OT_SEC_STREAM, st->core, st->engine, st->n, o->n, streams[s].n * 4});
    put_words(o, &streams[s]);
    bb_align8(o);
    ok = ok && sections_add(sl, (section){OT_SEC_DEBUG, st->core, st->engine, st->n, o->n, (uint64_t)st->n * 8});
    for (uint32_t i = 0; i < st->n; i++) { bb_u32(o, st->insns[i].line); bb_u32(o, st->insns[i].tag); }
  }
  bb_align8(o);
  ok = ok && sections_add(sl, (section){OT_SEC_DESCRIPTORS, 0, 0, (uint32_t)descs->n, o->n, descs->n * 4});
  put_words(o, descs);
  bb_align8(o);
  ok = ok && sections_add(sl, (section){OT_SEC_STRINGS, 0, 0, 0, o->n, p->strings_len});
  bb_put(o, p->strings, p->strings_len);
  bb_align8(o);
  ok = ok && sections_add(sl, (section){OT_SEC_CONSTS, 0, 0, 0, o->n, consts_bytes(p)});
  for (uint32_t t = 0; t < p->n_tensors; t++) {
    if (!p->tensors[t].data) continue;
    bb_put(o, p->tensors[t].data, ot_tensor_bytes(&p->tensors[t]));
    bb_align8(o);
  }
  return ok;
}

/* Tensor names go into the string pool of a copy, so the writer never changes its input. */
static bool write_tensors(bbuf *o, const ot_program *p, ot_program *names, section_list *sl) {
  bb_align8(o);
  if (!sections_add(sl, (section){OT_SEC_TENSORS, 0, 0, p->n_tensors, o->n, (uint64_t)p->n_tensors * OT_PROG_TENSOR_SIZE}))
    return false;
  uint64_t data_off = 0;
  for (uint32_t t = 0; t < p->n_tensors; t++) {
    const ot_tensor_info *ti = &p->tensors[t];
    uint32_t name = ot_program_intern(names, ti->name);
    if (!name) return false;
    bb_u32(o, name);
    bb_u8(o, ti->dtype);
    bb_u8(o, ti->role);
    bb_u8(o, ti->ndim);
    bb_u8(o, 0);
    for (unsigned d = 0; d < OT_TENSOR_MAX_DIMS; d++) bb_u64(o, d < ti->ndim ? ti->shape[d] : 0);
    bb_u64(o, ti->offset);
    bb_u64(o, ti->data ? data_off : UINT64_MAX);
    if (ti->data) data_off += (ot_tensor_bytes(ti) + 7) & ~(uint64_t)7;
  }
  return true;
}

static ot_program *copy_strings(const ot_program *p) {
  ot_program *c = ot_program_new();
  if (!c) return NULL;
  char *s = malloc(p->strings_len);
  if (!s) { ot_program_free(c); return NULL; }
  memcpy(s, p->strings, p->strings_len);
  free(c->strings);
  c->strings = s;
  c->strings_len = p->strings_len;
  return c;
}

static void write_header(bbuf *o, const ot_program *p, const section_list *sl) {
  uint8_t *h = o->b;
  memcpy(h, OT_PROG_MAGIC, 8);
  h[8] = OT_PROG_VERSION_MAJOR; h[9] = 0; h[10] = OT_PROG_VERSION_MINOR; h[11] = 0;
  set_u32(h + 12, OT_PROG_HEADER_SIZE);
  set_u64(h + 16, o->n);
  set_u32(h + 24, 0);
  set_u32(h + 28, sl->n);
  set_u32(h + 32, OT_ISA_VERSION);
  memset(h + 36, 0, 28);
  size_t chip_len = strlen(p->chip);
  memcpy(h + 36, p->chip, chip_len < 27 ? chip_len : 27); /* stays NUL-terminated */
  for (uint32_t i = 0; i < sl->n; i++) {
    uint8_t *e = h + OT_PROG_HEADER_SIZE + i * OT_PROG_SECTION_SIZE;
    set_u32(e, sl->v[i].kind); set_u32(e + 4, sl->v[i].core); set_u32(e + 8, sl->v[i].engine);
    set_u32(e + 12, sl->v[i].count); set_u64(e + 16, sl->v[i].offset); set_u64(e + 24, sl->v[i].size);
  }
  set_u32(h + 24, (uint32_t)crc32(0L, h, (uInt)o->n));
}

ot_status ot_program_serialize(const ot_program *p, void **bytes, size_t *size, ot_error *err) {
  *bytes = NULL;
  *size = 0;
  ot_wbuf *streams = calloc(p->n_streams ? p->n_streams : 1, sizeof *streams);
  ot_wbuf descs = {0};
  section_list sl = {0};
  bbuf o = {0};
  ot_program *names = copy_strings(p);
  ot_status s = (!streams || !names) ? ot_error_set(err, OT_ENOMEM, "serialize: out of memory") : OT_OK;
  if (!s) s = encode_streams(p, streams, &descs, err);
  if (!s) {
    /* Header and section table are filled last; reserve them now (2 sections per stream + 4). */
    uint32_t nsec = 2 * p->n_streams + 4;
    uint8_t zero[OT_PROG_SECTION_SIZE] = {0};
    for (uint32_t i = 0; i < (OT_PROG_HEADER_SIZE / OT_PROG_SECTION_SIZE) + nsec; i++) bb_put(&o, zero, sizeof zero);
    bool ok = write_tensors(&o, p, names, &sl);
    /* Strings are written from the copy, which now also holds the tensor names. */
    ot_program view = *p;
    view.strings = names->strings;
    view.strings_len = names->strings_len;
    ok = ok && write_body(&o, &view, streams, &descs, &sl);
    if (!ok || o.oom || o.n > UINT32_MAX) s = ot_error_set(err, OT_ENOMEM, "serialize: out of memory or program over 4 GiB");
    else write_header(&o, p, &sl);
  }
  for (uint32_t i = 0; streams && i < p->n_streams; i++) ot_wbuf_free(&streams[i]);
  free(streams);
  ot_wbuf_free(&descs);
  free(sl.v);
  ot_program_free(names);
  if (s) { free(o.b); return s; }
  *bytes = o.b;
  *size = o.n;
  return OT_OK;
}

ot_status ot_program_save(const ot_program *p, const char *path, ot_error *err) {
  void *bytes;
  size_t n;
  ot_status s = ot_program_serialize(p, &bytes, &n, err);
  if (s) return s;
  s = ot_file_write_atomic(path, bytes, n, err);
  free(bytes);
  return s;
}
