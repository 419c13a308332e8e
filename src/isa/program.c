/* In-memory programs: streams, tensor table, string pool. */
#include <stdlib.h>
#include <string.h>

#include "isa/program.h"

static const char *const role_names[] = {
#define OT_X(id, name) name,
  OT_TENSOR_ROLE_MAP(OT_X)
#undef OT_X
};

const char *ot_tensor_role_name(int role) {
  return (unsigned)role < OT_TENSOR_ROLE_COUNT ? role_names[role] : "?";
}

bool ot_tensor_role_parse(const char *s, int *out) {
  for (int i = 0; i < OT_TENSOR_ROLE_COUNT; i++)
    if (!strcmp(s, role_names[i])) { *out = i; return true; }
  return false;
}

ot_program *ot_program_new(void) {
  ot_program *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->strings = calloc(1, 1);
  if (!p->strings) { free(p); return NULL; }
  p->strings_len = 1;
  return p;
}

void ot_program_free(ot_program *p) {
  if (!p) return;
  for (uint32_t i = 0; i < p->n_streams; i++) free(p->streams[i].insns);
  for (uint32_t i = 0; i < p->n_tensors; i++) { free(p->tensors[i].name); free(p->tensors[i].data); }
  free(p->streams);
  free(p->tensors);
  free(p->strings);
  free(p);
}

ot_stream *ot_program_stream(ot_program *p, uint32_t core, ot_engine engine) {
  for (uint32_t i = 0; i < p->n_streams; i++)
    if (p->streams[i].core == core && p->streams[i].engine == (uint32_t)engine) return &p->streams[i];
  ot_stream *ns = realloc(p->streams, (p->n_streams + 1) * sizeof *ns);
  if (!ns) return NULL;
  p->streams = ns;
  ot_stream *s = &p->streams[p->n_streams++];
  memset(s, 0, sizeof *s);
  s->core = core;
  s->engine = (uint32_t)engine;
  return s;
}

ot_status ot_stream_append(ot_stream *s, const ot_insn *in) {
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 64;
    ot_insn *ni = realloc(s->insns, (size_t)cap * sizeof *ni);
    if (!ni) return OT_ENOMEM;
    s->insns = ni;
    s->cap = cap;
  }
  s->insns[s->n++] = *in;
  return OT_OK;
}

uint64_t ot_tensor_bytes(const ot_tensor_info *t) {
  uint64_t n = ot_dtype_size((ot_dtype)t->dtype);
  for (unsigned d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

const ot_tensor_info *ot_program_find_tensor(const ot_program *p, const char *name) {
  for (uint32_t i = 0; i < p->n_tensors; i++)
    if (!strcmp(p->tensors[i].name, name)) return &p->tensors[i];
  return NULL;
}

ot_status ot_program_add_tensor(ot_program *p, const ot_tensor_info *t, ot_error *err) {
  if (ot_program_find_tensor(p, t->name))
    return ot_error_set(err, OT_EINVAL, "tensor '%s' is defined twice", t->name);
  ot_tensor_info *nt = realloc(p->tensors, (p->n_tensors + 1) * sizeof *nt);
  if (!nt) return ot_error_set(err, OT_ENOMEM, "out of memory adding tensor '%s'", t->name);
  p->tensors = nt;
  ot_tensor_info c = *t;
  c.name = strdup(t->name);
  c.data = NULL;
  if (!c.name) return ot_error_set(err, OT_ENOMEM, "out of memory adding tensor '%s'", t->name);
  if (t->data) {
    uint64_t n = ot_tensor_bytes(t);
    c.data = malloc(n ? n : 1);
    if (!c.data) { free(c.name); return ot_error_set(err, OT_ENOMEM, "out of memory for constant '%s'", t->name); }
    memcpy(c.data, t->data, n);
  }
  p->tensors[p->n_tensors++] = c;
  return OT_OK;
}

uint32_t ot_program_intern(ot_program *p, const char *s) {
  if (!s || !*s) return 0;
  for (size_t off = 1; off < p->strings_len; off += strlen(p->strings + off) + 1)
    if (!strcmp(p->strings + off, s)) return (uint32_t)off;
  size_t n = strlen(s) + 1;
  if (p->strings_len + n > UINT32_MAX) return 0;
  char *ns = realloc(p->strings, p->strings_len + n);
  if (!ns) return 0;
  p->strings = ns;
  memcpy(p->strings + p->strings_len, s, n);
  uint32_t off = (uint32_t)p->strings_len;
  p->strings_len += n;
  return off;
}

const char *ot_program_string(const ot_program *p, uint32_t off) {
  return off < p->strings_len ? p->strings + off : "";
}

const char *ot_program_chip(const ot_program *p) { return p->chip; }

size_t ot_program_insn_count(const ot_program *p) {
  size_t n = 0;
  for (uint32_t i = 0; i < p->n_streams; i++) n += p->streams[i].n;
  return n;
}
