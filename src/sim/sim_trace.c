/* Trace events and their Chrome / Perfetto JSON form.
**
** The simulator appends one event per instruction issue, semaphore wait and DMA transfer; names
** live in a string pool in which equal strings are interned once (a run of a loop waits on the
** same condition many times).  The writer streams the trace-event JSON format:
**
**   {"traceEvents": [
**     {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "core 0"}},
**     {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "tensor"}},
**     {"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": 2, "args": {"sort_index": 1}},
**     {"ph": "X", "cat": "insn", "name": "matmul ...", "pid": 1, "tid": 2,
**      "ts": 1.234567, "dur": 0.000350, "args": {"tag": "layer0.qkv"}},
**     ...], "displayTimeUnit": "ns", "otherData": {"chip": "trn2", "generator": "opentrn"}}
**
** pid = core + 1 and tids start at 1: Perfetto treats pid/tid 0 as the kernel's idle task.
** Per core, tid 1 + e is engine e and tid 1 + OT_ENG_COUNT + q is DMA queue q; the sort index
** puts the engines first, in engine order, then the queues.  ts and dur are microseconds written
** exactly from integer picoseconds (six decimals).  Strings are written as pure ASCII: every
** non-ASCII character as a \u escape, and bytes that are not UTF-8 as U+FFFD.
*/
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

/* ---- the event and string stores ----------------------------------------------------------- */
typedef struct {
  uint32_t *slot;   /* string offsets; 0 = empty (offset 0 is "", never stored) */
  size_t cap, used; /* cap is a power of two */
} trace_index;

static uint64_t trace_hash(const char *s, size_t n) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
  return h;
}

static bool trace_index_grow(ot_trace *t) {
  trace_index *ix = t->index;
  size_t cap = ix->cap ? ix->cap * 2 : 256;
  uint32_t *slot = calloc(cap, sizeof *slot);
  if (!slot) return false;
  for (size_t i = 0; i < ix->cap; i++) {
    uint32_t off = ix->slot[i];
    if (!off) continue;
    const char *s = t->strings + off;
    size_t j = trace_hash(s, strlen(s)) & (cap - 1);
    while (slot[j]) j = (j + 1) & (cap - 1);
    slot[j] = off;
  }
  free(ix->slot);
  ix->slot = slot;
  ix->cap = cap;
  return true;
}

/* Slot of s in the index: where it is, or the empty slot where it would go. */
static size_t trace_index_find(const ot_trace *t, const char *s, size_t n) {
  const trace_index *ix = t->index;
  size_t j = trace_hash(s, n) & (ix->cap - 1);
  while (ix->slot[j] && strcmp(t->strings + ix->slot[j], s)) j = (j + 1) & (ix->cap - 1);
  return j;
}

static bool trace_pool_reserve(ot_trace *t, size_t extra) {
  if (t->strings_len + extra <= t->strings_cap) return true;
  size_t cap = t->strings_cap ? t->strings_cap : 4096;
  while (cap < t->strings_len + extra) cap *= 2;
  char *p = realloc(t->strings, cap);
  if (!p) return false;
  t->strings = p;
  t->strings_cap = cap;
  return true;
}

uint32_t ot_trace_string(ot_trace *t, const char *s) {
  if (!s || !*s) return 0;
  if (!t->strings) {
    if (!trace_pool_reserve(t, 1)) return 0;
    t->strings[0] = '\0';
    t->strings_len = 1;
  }
  if (!t->index && !(t->index = calloc(1, sizeof(trace_index)))) return 0;
  trace_index *ix = t->index;
  if ((ix->used + 1) * 4 > ix->cap * 3 && !trace_index_grow(t)) return 0;
  size_t n = strlen(s);
  size_t j = trace_index_find(t, s, n);
  if (ix->slot[j]) return ix->slot[j];
  /* Offsets are 32-bit: a pool that would pass 4 GiB drops the name instead. */
  if (t->strings_len + n + 1 > UINT32_MAX || !trace_pool_reserve(t, n + 1)) return 0;
  uint32_t off = (uint32_t)t->strings_len;
  memcpy(t->strings + off, s, n + 1);
  t->strings_len += n + 1;
  ix->slot[j] = off;
  ix->used++;
  return off;
}

bool ot_trace_add(ot_trace *t, const ot_trace_event *e) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1024;
    ot_trace_event *ev = realloc(t->ev, cap * sizeof *ev);
    if (!ev) return false;
    t->ev = ev;
    t->cap = cap;
  }
  t->ev[t->n++] = *e;
  return true;
}

void ot_trace_free(ot_trace *t) {
  if (!t) return;
  trace_index *ix = t->index;
  if (ix) free(ix->slot);
  free(ix);
  free(t->ev);
  free(t->strings);
  memset(t, 0, sizeof *t);
}

/* ---- JSON output ------------------------------------------------------------------------ */
/* Decode one UTF-8 sequence at s (n bytes available); returns its length, or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
  if (!len || s[0] > 0xf4 || len > n) return 0;
  uint32_t v = s[0] & (0x7f >> len);
  for (unsigned i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0; /* overlong, surrogate */
  *cp = v;
  return len;
}

static void json_put_ascii(FILE *out, unsigned char c) {
  switch (c) {
  case '"': fputs("\\\"", out); break;
  case '\\': fputs("\\\\", out); break;
  case '\n': fputs("\\n", out); break;
  case '\r': fputs("\\r", out); break;
  case '\t': fputs("\\t", out); break;
  default:
    if (c < 0x20 || c == 0x7f) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
}

static void json_put_string(FILE *out, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  fputc('"', out);
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) {
      json_put_ascii(out, p[i++]);
      continue;
    }
    uint32_t cp = 0xfffd;
    size_t len = utf8_decode(p + i, n - i, &cp);
    i += len ? len : 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      fprintf(out, "\\u%04x\\u%04x", (unsigned)(0xd800 + (cp >> 10)), (unsigned)(0xdc00 + (cp & 0x3ff)));
    } else {
      fprintf(out, "\\u%04x", (unsigned)cp);
    }
  }
  fputc('"', out);
}

/* Microseconds, exactly, from picoseconds. */
static void json_put_us(FILE *out, ot_ps ps) {
  fprintf(out, "%" PRIu64 ".%06" PRIu64, ps / 1000000, ps % 1000000);
}

/* A track of the trace: one per (core, engine) and (core, DMA queue). */
static uint64_t track_key(uint32_t core, unsigned kind, unsigned track) {
  return (uint64_t)core << 32 | (uint64_t)kind << 16 | track;
}

static unsigned track_local(unsigned kind, unsigned track) {
  return kind == OT_TRACK_ENGINE ? track : OT_ENG_COUNT + track;
}

static int key_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static ot_status trace_check_event(const ot_trace *t, size_t i, ot_error *err) {
  const ot_trace_event *e = &t->ev[i];
  if (e->kind > OT_EV_DMA || e->track_kind > OT_TRACK_QUEUE)
    return ot_error_set(err, OT_EINVAL, "trace event %zu: bad kind %u or track kind %u", i, e->kind, e->track_kind);
  if (e->track_kind == OT_TRACK_ENGINE && e->track >= OT_ENG_COUNT)
    return ot_error_set(err, OT_EINVAL, "trace event %zu: engine %u does not exist", i, e->track);
  if (e->core >= INT32_MAX)
    return ot_error_set(err, OT_EINVAL, "trace event %zu: core %" PRIu32 " is out of range", i, e->core);
  if ((e->name && e->name >= t->strings_len) || (e->tag && e->tag >= t->strings_len))
    return ot_error_set(err, OT_EINVAL, "trace event %zu: string offset outside the pool", i);
  if (e->dur > UINT64_MAX - e->start) return ot_error_set(err, OT_EINVAL, "trace event %zu: end time overflows", i);
  return OT_OK;
}

/* The tracks that get names: every engine of each core with events, and each queue used. */
static ot_status trace_tracks(const ot_trace *t, uint64_t **keys, size_t *n, ot_error *err) {
  *keys = NULL;
  *n = 0;
  uint64_t *k = malloc((t->n + 1) * sizeof *k);
  if (!k) return ot_error_set(err, OT_ENOMEM, "out of memory writing the trace");
  for (size_t i = 0; i < t->n; i++) k[i] = track_key(t->ev[i].core, t->ev[i].track_kind, t->ev[i].track);
  qsort(k, t->n, sizeof *k, key_cmp);
  size_t m = 0;
  for (size_t i = 0; i < t->n; i++)
    if (!m || k[i] != k[m - 1]) k[m++] = k[i];
  *keys = k;
  *n = m;
  return OT_OK;
}

static void json_put_meta(FILE *out, bool *first, uint32_t pid, uint32_t tid, const char *what, const char *name,
                          long sort) {
  fprintf(out, "%s\n{\"ph\": \"M\", \"name\": \"%s\", \"pid\": %" PRIu32 ", \"tid\": %" PRIu32 ", \"args\": {",
          *first ? "" : ",", what, pid, tid);
  if (name) {
    fputs("\"name\": ", out);
    json_put_string(out, name);
  } else {
    fprintf(out, "\"sort_index\": %ld", sort);
  }
  fputs("}}", out);
  *first = false;
}

static void json_put_thread(FILE *out, bool *first, uint32_t core, unsigned kind, unsigned track) {
  char name[32];
  if (kind == OT_TRACK_ENGINE) snprintf(name, sizeof name, "%s", ot_engine_name((ot_engine)track));
  else snprintf(name, sizeof name, "dma q%u", track);
  unsigned local = track_local(kind, track);
  json_put_meta(out, first, core + 1, local + 1, "thread_name", name, 0);
  json_put_meta(out, first, core + 1, local + 1, "thread_sort_index", NULL, (long)local);
}

/* Process and thread names: a core's engines all get a row, even idle ones, so the view of
** every core has the same shape; queues only when they carried a transfer. */
static void json_put_metadata(FILE *out, bool *first, const uint64_t *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t core = (uint32_t)(keys[i] >> 32);
    unsigned kind = (unsigned)(keys[i] >> 16) & 0xffff, track = (unsigned)keys[i] & 0xffff;
    if (i == 0 || (uint32_t)(keys[i - 1] >> 32) != core) {
      char name[32];
      snprintf(name, sizeof name, "core %" PRIu32, core);
      json_put_meta(out, first, core + 1, 0, "process_name", name, 0);
      json_put_meta(out, first, core + 1, 0, "process_sort_index", NULL, (long)core);
      for (unsigned e = 0; e < OT_ENG_COUNT; e++) json_put_thread(out, first, core, OT_TRACK_ENGINE, e);
    }
    if (kind == OT_TRACK_QUEUE) json_put_thread(out, first, core, kind, track);
  }
}

static void json_put_event(FILE *out, bool *first, const ot_trace *t, const ot_trace_event *e) {
  static const char *const cat[] = {"insn", "wait", "dma"};
  const char *name = e->name ? t->strings + e->name : "";
  fprintf(out, "%s\n{\"ph\": \"X\", \"cat\": \"%s\", \"name\": ", *first ? "" : ",", cat[e->kind]);
  json_put_string(out, name);
  fprintf(out, ", \"pid\": %" PRIu32 ", \"tid\": %u, \"ts\": ", e->core + 1, track_local(e->track_kind, e->track) + 1);
  json_put_us(out, e->start);
  fputs(", \"dur\": ", out);
  json_put_us(out, e->dur);
  if (e->tag && t->strings[e->tag]) {
    fputs(", \"args\": {\"tag\": ", out);
    json_put_string(out, t->strings + e->tag);
    fputc('}', out);
  }
  fputc('}', out);
  *first = false;
}

ot_status ot_trace_write_json(const ot_trace *t, const ot_chip *chip, FILE *out, ot_error *err) {
  for (size_t i = 0; i < t->n; i++) {
    ot_status s = trace_check_event(t, i, err);
    if (s) return s;
  }
  uint64_t *keys;
  size_t nkeys;
  ot_status s = trace_tracks(t, &keys, &nkeys, err);
  if (s) return s;
  bool first = true;
  fputs("{\"traceEvents\": [", out);
  json_put_metadata(out, &first, keys, nkeys);
  free(keys);
  for (size_t i = 0; i < t->n; i++) json_put_event(out, &first, t, &t->ev[i]);
  fputs("\n],\n\"displayTimeUnit\": \"ns\",\n\"otherData\": {\"generator\": \"opentrn\"", out);
  if (chip) {
    fputs(", \"chip\": ", out);
    json_put_string(out, ot_chip_name(chip));
  }
  fputs("}}\n", out);
  if (fflush(out) || ferror(out)) return ot_error_set(err, OT_EIO, "writing the trace failed");
  return OT_OK;
}
