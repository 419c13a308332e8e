/* The assembler: text -> in-memory program.  Grammar (docs/isa.md has the full description):
**
**   # comment  (also ';')
**   .chip NAME
**   .tensor NAME DTYPE [d0,d1,..] ROLE [@OFFSET]
**   .const  NAME DTYPE [d0,..] = v0, v1, ... | fill(V) | eye   [@OFFSET]
**   .engine sync|tensor|vector|scalar|gpsimd   [core N]
**   label:
**   mnemonic operand, operand, ..., key=value, ...
**
** Access pattern:  MEM[.DTYPE][[start:count]][@OFFSET[+rN]][stride,size]...
**   MEM is sb, ps, hbm or $tensor (HBM at the tensor's offset; its dtype and, without explicit
**   dims, its whole shape are the defaults).  Dims are outermost first, strides in elements.
** Every error is reported with file:line:column, and parsing goes on with the next line.
*/
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa/program.h"
#include "util/fileio.h"

typedef struct {
  uint32_t stream;   /* index into prog->streams */
  uint32_t insn;
  unsigned operand;
  char name[64];
  uint32_t line, col;
} label_ref;

typedef struct {
  uint32_t stream;
  char name[64];
  uint32_t target;
} label_def;

typedef struct {
  ot_program *prog;
  const char *origin;
  ot_error *err;
  unsigned errors;
  uint32_t line;
  const char *line_start;
  const char *p;           /* cursor within the current line */
  const char *end;         /* end of the current line (exclusive) */
  ot_stream *cur;          /* current engine stream */
  uint32_t cur_index;
  label_def *defs; size_t n_defs, cap_defs;
  label_ref *refs; size_t n_refs, cap_refs;
} assembler;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static bool fail(assembler *a, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(a->err, OT_EPARSE, "%s:%u:%d: %s", a->origin, a->line, (int)(a->p - a->line_start) + 1, msg);
  a->errors++;
  return false;
}

/* Report at the start of the token that began at `at`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool fail_at(assembler *a, const char *at, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  a->p = at;
  return fail(a, "%s", msg);
}

/* ---- lexical helpers --------------------------------------------------------------------- */
static void skip_ws(assembler *a) {
  while (a->p < a->end && (*a->p == ' ' || *a->p == '\t' || *a->p == '\r')) a->p++;
}

static bool at_end(assembler *a) {
  skip_ws(a);
  return a->p >= a->end || *a->p == '#' || *a->p == ';';
}

static bool accept(assembler *a, char c) {
  skip_ws(a);
  if (a->p < a->end && *a->p == c) { a->p++; return true; }
  return false;
}

static bool expect(assembler *a, char c) {
  if (accept(a, c)) return true;
  return fail(a, "expected '%c'", c);
}

/* Read an identifier (letters, digits, '_' and, inside, '.') into buf. */
static bool read_ident(assembler *a, char *buf, size_t cap, bool allow_dot) {
  skip_ws(a);
  size_t n = 0;
  while (a->p < a->end && (isalnum((unsigned char)*a->p) || *a->p == '_' || (allow_dot && n && *a->p == '.'))) {
    if (n + 1 >= cap) return fail(a, "name longer than %zu characters", cap - 1);
    buf[n++] = *a->p++;
  }
  buf[n] = '\0';
  return n > 0;
}

static bool read_i64(assembler *a, int64_t *out) {
  skip_ws(a);
  char tmp[40];
  size_t n = 0;
  const char *q = a->p;
  if (q < a->end && (*q == '-' || *q == '+')) tmp[n++] = *q++;
  while (q < a->end && (isalnum((unsigned char)*q)) && n + 1 < sizeof tmp) tmp[n++] = *q++;
  tmp[n] = '\0';
  if (n == 0 || (n == 1 && (tmp[0] == '-' || tmp[0] == '+'))) return fail(a, "expected an integer");
  errno = 0;
  char *e;
  long long v = strtoll(tmp, &e, 0);
  if (*e || errno) return fail(a, "'%s' is not an integer in range", tmp);
  a->p = q;
  *out = v;
  return true;
}

static bool read_int_range(assembler *a, int64_t lo, int64_t hi, const char *what, int64_t *out) {
  const char *at = a->p;
  if (!read_i64(a, out)) return false;
  if (*out < lo || *out > hi) {
    a->p = at;
    return fail(a, "%s %lld out of range, expected %lld..%lld", what, (long long)*out, (long long)lo, (long long)hi);
  }
  return true;
}

static bool read_f32(assembler *a, float *out) {
  skip_ws(a);
  char tmp[64];
  size_t n = 0;
  const char *q = a->p;
  while (q < a->end && n + 1 < sizeof tmp && (isalnum((unsigned char)*q) || strchr("+-.", *q))) tmp[n++] = *q++;
  tmp[n] = '\0';
  if (!n) return fail(a, "expected a number");
  char *e;
  double v = strtod(tmp, &e);
  if (*e) return fail(a, "'%s' is not a number", tmp);
  if (isfinite(v) && fabs(v) > 3.4028234663852886e38) return fail(a, "%s overflows fp32", tmp);
  a->p = q;
  *out = (float)v;
  return true;
}

/* Read a prefixed index such as r3, s12, q0. */
static bool read_prefixed(assembler *a, char prefix, const char *what, int32_t *out) {
  skip_ws(a);
  if (a->p >= a->end || *a->p != prefix || a->p + 1 >= a->end || !isdigit((unsigned char)a->p[1]))
    return fail(a, "expected a %s (%c0, %c1, ...)", what, prefix, prefix);
  a->p++;
  int64_t v;
  if (!read_int_range(a, 0, 65535, what, &v)) return false;
  *out = (int32_t)v;
  return true;
}

/* ---- access patterns ---------------------------------------------------------------------- */
static bool ap_read_offset(assembler *a, ot_ap *ap, uint64_t base) {
  uint64_t off = base;
  bool have_reg = false;
  do {
    skip_ws(a);
    if (a->p < a->end && *a->p == 'r') {
      int32_t r;
      if (have_reg) return fail(a, "at most one register in an offset");
      if (!read_prefixed(a, 'r', "register", &r)) return false;
      if (r > 254) return fail(a, "register r%d out of range, expected r0..r254", r);
      ap->reg = (uint8_t)(r + 1);
      have_reg = true;
    } else {
      int64_t v;
      if (!read_i64(a, &v)) return false;
      if (v < 0) return fail(a, "offset %lld is negative", (long long)v);
      off += (uint64_t)v;
    }
  } while (accept(a, '+'));
  ap->offset = off;
  return true;
}

static bool ap_read_dims(assembler *a, ot_ap *ap) {
  while (accept(a, '[')) {
    int64_t st, sz;
    if (ap->ndim == OT_AP_MAX_DIMS) return fail(a, "more than %d free dimensions", OT_AP_MAX_DIMS);
    if (!read_int_range(a, INT32_MIN, INT32_MAX, "stride", &st) || !expect(a, ',') ||
        !read_int_range(a, 0, UINT32_MAX, "size", &sz) || !expect(a, ']'))
      return false;
    ap->dim[ap->ndim].stride = (int32_t)st;
    ap->dim[ap->ndim].size = (uint32_t)sz;
    ap->ndim++;
  }
  return true;
}

/* Default dims for a whole tensor: row-major over its shape (at most 4 dims). */
static void ap_dims_from_tensor(ot_ap *ap, const ot_tensor_info *t) {
  int64_t stride = 1;
  ap->ndim = t->ndim;
  for (int d = (int)t->ndim - 1; d >= 0; d--) {
    ap->dim[d].size = (uint32_t)t->shape[d];
    ap->dim[d].stride = (int32_t)stride;
    stride *= (int64_t)t->shape[d];
  }
}

static bool ap_read_mem(assembler *a, ot_ap *ap, const ot_tensor_info **tensor) {
  char name[64];
  *tensor = NULL;
  skip_ws(a);
  const char *at = a->p;
  if (accept(a, '$')) {
    if (!read_ident(a, name, sizeof name, false)) return fail(a, "expected a tensor name after '$'");
    *tensor = ot_program_find_tensor(a->prog, name);
    if (!*tensor) return fail_at(a, at, "unknown tensor '$%s' (declare it with .tensor or .const first)", name);
    ap->mem = OT_MEM_HBM;
    ap->dtype = (*tensor)->dtype;
    ap->offset = (*tensor)->offset;
    return true;
  }
  if (!read_ident(a, name, sizeof name, false)) return fail(a, "expected an access pattern (sb, ps, hbm or $tensor)");
  ot_mem m;
  if (!ot_mem_parse(name, &m)) return fail_at(a, at, "unknown memory '%s', expected sb, ps, hbm or $tensor", name);
  ap->mem = (uint8_t)m;
  return true;
}

static bool parse_ap(assembler *a, ot_ap *ap) {
  memset(ap, 0, sizeof *ap);
  const char *save = a->p;
  char word[16];
  if (read_ident(a, word, sizeof word, false) && !strcmp(word, "none")) return true;
  a->p = save;
  const ot_tensor_info *t;
  if (!ap_read_mem(a, ap, &t)) return false;
  if (accept(a, '.')) {
    char dt[16];
    const char *at = a->p;
    if (!read_ident(a, dt, sizeof dt, false)) return fail(a, "expected a data type after '.'");
    ot_dtype d;
    if (!ot_dtype_parse(dt, &d)) return fail_at(a, at, "unknown data type '%s'", dt);
    ap->dtype = (uint8_t)d;
  } else if (!t) {
    return fail(a, "access pattern needs a data type, e.g. %s.fp32", ot_mem_name((ot_mem)ap->mem));
  }
  skip_ws(a);
  if (ap->mem != OT_MEM_HBM) {
    /* partition range [start:count] is required on SBUF and PSUM */
    int64_t ps, pc;
    if (!expect(a, '[') || !read_int_range(a, 0, 65535, "partition start", &ps) || !expect(a, ':') ||
        !read_int_range(a, 1, 65535, "partition count", &pc) || !expect(a, ']'))
      return false;
    ap->part_start = (uint16_t)ps;
    ap->part_count = (uint16_t)pc;
  }
  if (accept(a, '@') && !ap_read_offset(a, ap, t ? t->offset : 0)) return false;
  if (!ap_read_dims(a, ap)) return false;
  if (t && ap->ndim == 0) {
    if (t->ndim > OT_AP_MAX_DIMS) return fail(a, "tensor '%s' has too many dims for a default pattern", t->name);
    ap_dims_from_tensor(ap, t);
  }
  return true;
}

/* ---- operands ----------------------------------------------------------------------------- */
static bool parse_label_ref(assembler *a, unsigned k) {
  char name[64];
  const char *at = a->p;
  if (!read_ident(a, name, sizeof name, true)) return fail(a, "expected a label");
  if (a->n_refs == a->cap_refs) {
    size_t cap = a->cap_refs ? a->cap_refs * 2 : 32;
    label_ref *nr = realloc(a->refs, cap * sizeof *nr);
    if (!nr) return fail(a, "out of memory");
    a->refs = nr;
    a->cap_refs = cap;
  }
  label_ref *r = &a->refs[a->n_refs++];
  r->stream = a->cur_index;
  r->insn = a->cur->n; /* the instruction being parsed is appended next */
  r->operand = k;
  snprintf(r->name, sizeof r->name, "%s", name);
  r->line = a->line;
  r->col = (uint32_t)(at - a->line_start) + 1;
  return true;
}

static bool parse_named_enum(assembler *a, bool (*parse)(const char *, int *), const char *what, int32_t *out) {
  char name[48];
  skip_ws(a);
  const char *at = a->p;
  if (!read_ident(a, name, sizeof name, false)) return fail(a, "expected %s", what);
  int v;
  if (!parse(name, &v)) return fail_at(a, at, "unknown %s '%s'", what, name);
  *out = v;
  return true;
}

static bool parse_pattern(assembler *a, int32_t pat[OT_AP_MAX_DIMS]) {
  memset(pat, 0, sizeof(int32_t) * OT_AP_MAX_DIMS);
  if (!expect(a, '[')) return false;
  for (unsigned d = 0; d < OT_AP_MAX_DIMS; d++) {
    int64_t v;
    if (!read_int_range(a, INT32_MIN, INT32_MAX, "step", &v)) return false;
    pat[d] = (int32_t)v;
    if (accept(a, ']')) return true;
    if (!expect(a, ',')) return false;
  }
  return fail(a, "more than %d steps", OT_AP_MAX_DIMS);
}

static bool starts_ap(assembler *a) {
  skip_ws(a);
  if (a->p < a->end && *a->p == '$') return true;
  return a->end - a->p >= 2 && (!strncmp(a->p, "sb", 2) || !strncmp(a->p, "ps", 2) || !strncmp(a->p, "hbm", 3) ||
                                !strncmp(a->p, "none", 4));
}

static bool parse_operand(assembler *a, const ot_operand_spec *s, unsigned k, ot_operand *o) {
  int64_t v;
  switch (s->kind) {
  case OT_OK_AP: return parse_ap(a, &o->ap);
  case OT_OK_VAL:
    if (starts_ap(a)) { o->tag = OT_TAG_AP; return parse_ap(a, &o->ap); }
    o->tag = OT_TAG_IMM;
    return read_f32(a, &o->f);
  case OT_OK_F32: return read_f32(a, &o->f);
  case OT_OK_I32:
    if (!read_int_range(a, INT32_MIN, INT32_MAX, s->name, &v)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_REG: return read_prefixed(a, 'r', "register", &o->i);
  case OT_OK_SEM: return read_prefixed(a, 's', "semaphore", &o->i);
  case OT_OK_QUEUE: return read_prefixed(a, 'q', "DMA queue", &o->i);
  case OT_OK_RI:
    skip_ws(a);
    if (a->p < a->end && *a->p == 'r') { o->tag = OT_TAG_REG; return read_prefixed(a, 'r', "register", &o->i); }
    o->tag = OT_TAG_IMM;
    if (!read_int_range(a, INT32_MIN, INT32_MAX, s->name, &v)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_LABEL: return parse_label_ref(a, k);
  case OT_OK_ALU: return parse_named_enum(a, ot_alu_parse, "ALU op", &o->i);
  case OT_OK_ACT: return parse_named_enum(a, ot_act_parse, "activation function", &o->i);
  case OT_OK_PAT: return parse_pattern(a, o->pat);
  case OT_OK_FLAG:
    if (!read_int_range(a, 0, 1, s->name, &v)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_CORE: /* a core index; the verifier checks it against the chip */
    if (!read_int_range(a, -1, INT32_MAX, s->name, &v)) return false;
    o->i = (int32_t)v;
    return true;
  default: return fail(a, "internal: operand kind %d", (int)s->kind);
  }
}

/* "key=" ahead?  If so consume it and return the operand index. */
static int keyword_ahead(assembler *a, const ot_opcode_info *info, bool *bad) {
  skip_ws(a);
  const char *q = a->p;
  char key[32];
  size_t n = 0;
  while (q < a->end && (isalnum((unsigned char)*q) || *q == '_') && n + 1 < sizeof key) key[n++] = *q++;
  key[n] = '\0';
  while (q < a->end && (*q == ' ' || *q == '\t')) q++;
  if (!n || q >= a->end || *q != '=') return -1;
  for (unsigned k = 0; k < info->n_operands; k++)
    if (!strcmp(info->operands[k].name, key)) { a->p = q + 1; return (int)k; }
  *bad = true;
  fail(a, "%s has no operand '%s'", info->mnemonic, key);
  return -1;
}

static bool parse_operands(assembler *a, const ot_opcode_info *info, ot_insn *in) {
  bool seen[OT_MAX_OPERANDS] = {false};
  unsigned next_pos = 0;
  bool first = true;
  while (!at_end(a)) {
    if (!first && !expect(a, ',')) return false;
    first = false;
    bool bad = false;
    int k = keyword_ahead(a, info, &bad);
    if (bad) return false;
    if (k < 0) {
      while (next_pos < info->n_operands && (seen[next_pos] || info->operands[next_pos].optional)) next_pos++;
      if (next_pos >= info->n_operands) return fail(a, "too many operands for %s", info->mnemonic);
      k = (int)next_pos;
    }
    if (seen[k]) return fail(a, "operand '%s' given twice", info->operands[k].name);
    seen[k] = true;
    if (!parse_operand(a, &info->operands[k], (unsigned)k, &in->o[k])) return false;
  }
  for (unsigned k = 0; k < info->n_operands; k++)
    if (!info->operands[k].optional && !seen[k])
      return fail(a, "%s: missing operand '%s' (%s)", info->mnemonic, info->operands[k].name,
                  ot_operand_kind_name(info->operands[k].kind));
  return true;
}

static void parse_instruction(assembler *a) {
  char mn[48];
  skip_ws(a);
  const char *at = a->p;
  if (!read_ident(a, mn, sizeof mn, false)) { fail(a, "expected an instruction"); return; }
  ot_opcode op;
  if (!ot_opcode_parse(mn, &op)) { fail_at(a, at, "unknown instruction '%s'", mn); return; }
  if (!a->cur) { fail(a, "instruction before any .engine section"); return; }
  ot_insn in;
  ot_insn_init(&in, op);
  in.line = a->line;
  size_t refs_before = a->n_refs;
  if (!parse_operands(a, &ot_opcodes[op], &in)) { a->n_refs = refs_before; return; }
  if (ot_stream_append(a->cur, &in)) fail(a, "out of memory");
}

/* ---- directives --------------------------------------------------------------------------- */
static bool parse_shape(assembler *a, ot_tensor_info *t) {
  if (!expect(a, '[')) return false;
  t->ndim = 0;
  do {
    int64_t v;
    if (t->ndim == OT_TENSOR_MAX_DIMS) return fail(a, "more than %d dimensions", OT_TENSOR_MAX_DIMS);
    if (!read_int_range(a, 1, (int64_t)1 << 40, "dimension", &v)) return false;
    t->shape[t->ndim++] = (uint64_t)v;
  } while (accept(a, ','));
  return expect(a, ']');
}

static uint64_t next_free_offset(const ot_program *p) {
  uint64_t end = 0;
  for (uint32_t i = 0; i < p->n_tensors; i++) {
    uint64_t e = p->tensors[i].offset + ot_tensor_bytes(&p->tensors[i]);
    if (e > end) end = e;
  }
  return (end + 63) & ~(uint64_t)63; /* 64-byte alignment keeps DMA descriptors aligned */
}

static bool parse_tensor_head(assembler *a, ot_tensor_info *t, char *name, size_t cap) {
  char dt[16];
  if (!read_ident(a, name, cap, false)) return fail(a, "expected a tensor name");
  if (!read_ident(a, dt, sizeof dt, false)) return fail(a, "expected a data type");
  ot_dtype d;
  if (!ot_dtype_parse(dt, &d)) return fail(a, "unknown data type '%s'", dt);
  t->name = name;
  t->dtype = (uint8_t)d;
  return parse_shape(a, t);
}

static bool parse_offset_opt(assembler *a, ot_tensor_info *t) {
  if (!accept(a, '@')) { t->offset = next_free_offset(a->prog); return true; }
  int64_t v;
  if (!read_int_range(a, 0, INT64_MAX, "offset", &v)) return false;
  t->offset = (uint64_t)v;
  return true;
}

static void dir_tensor(assembler *a) {
  ot_tensor_info t = {0};
  char name[64], role[16];
  if (!parse_tensor_head(a, &t, name, sizeof name)) return;
  if (!read_ident(a, role, sizeof role, false)) { fail(a, "expected a role (input, output, weight, scratch)"); return; }
  int r;
  if (!ot_tensor_role_parse(role, &r) || r == OT_ROLE_CONST) {
    fail(a, "unknown role '%s', expected input, output, weight or scratch", role);
    return;
  }
  t.role = (uint8_t)r;
  if (!parse_offset_opt(a, &t)) return;
  if (!at_end(a)) { fail(a, "unexpected text after .tensor"); return; }
  ot_error e;
  ot_error_clear(&e);
  if (ot_program_add_tensor(a->prog, &t, &e)) fail(a, "%s", e.msg);
}

static bool const_values(assembler *a, ot_tensor_info *t, uint64_t n) {
  size_t esz = ot_dtype_size((ot_dtype)t->dtype);
  t->data = calloc(n ? n : 1, esz);
  if (!t->data) return fail(a, "out of memory for constant");
  char word[16];
  const char *save = a->p;
  if (read_ident(a, word, sizeof word, false)) {
    if (!strcmp(word, "eye")) {
      if (t->ndim != 2 || t->shape[0] != t->shape[1]) return fail(a, "eye needs a square 2-D shape");
      for (uint64_t i = 0; i < t->shape[0]; i++) ot_store_f32(t->data, i * t->shape[0] + i, (ot_dtype)t->dtype, 1.0f, NULL);
      return true;
    }
    if (!strcmp(word, "fill")) {
      float v;
      if (!expect(a, '(') || !read_f32(a, &v) || !expect(a, ')')) return false;
      for (uint64_t i = 0; i < n; i++) ot_store_f32(t->data, i, (ot_dtype)t->dtype, v, NULL);
      return true;
    }
    a->p = save;
  }
  uint64_t i = 0;
  do {
    float v;
    if (i == n) return fail(a, "more than %llu values for a constant of that shape", (unsigned long long)n);
    if (!read_f32(a, &v)) return false;
    ot_store_f32(t->data, i++, (ot_dtype)t->dtype, v, NULL);
  } while (accept(a, ','));
  if (i != n) return fail(a, "%llu values given, the shape holds %llu", (unsigned long long)i, (unsigned long long)n);
  return true;
}

static void dir_const(assembler *a) {
  ot_tensor_info t = {0};
  char name[64];
  if (!parse_tensor_head(a, &t, name, sizeof name)) return;
  t.role = OT_ROLE_CONST;
  uint64_t n = ot_tensor_bytes(&t) / ot_dtype_size((ot_dtype)t.dtype);
  if (n > (1u << 26)) { fail(a, "constant of %llu elements is too large for assembly text", (unsigned long long)n); return; }
  if (!expect(a, '=') || !const_values(a, &t, n)) { free(t.data); return; }
  unsigned before = a->errors;
  if (parse_offset_opt(a, &t) && at_end(a)) {
    ot_error e;
    ot_error_clear(&e);
    if (ot_program_add_tensor(a->prog, &t, &e)) fail(a, "%s", e.msg);
  } else if (a->errors == before) {
    fail(a, "unexpected text after .const");
  }
  free(t.data);
}

static void dir_engine(assembler *a) {
  char name[16], word[16];
  ot_engine e;
  if (!read_ident(a, name, sizeof name, false) || !ot_engine_parse(name, &e)) {
    fail(a, "expected an engine: sync, tensor, vector, scalar or gpsimd");
    return;
  }
  int64_t core = 0;
  if (read_ident(a, word, sizeof word, false)) {
    if (strcmp(word, "core")) { fail(a, "expected 'core N' or end of line"); return; }
    if (!read_int_range(a, 0, 255, "core", &core)) return;
  }
  a->cur = ot_program_stream(a->prog, (uint32_t)core, e);
  if (!a->cur) { fail(a, "out of memory"); return; }
  a->cur_index = (uint32_t)(a->cur - a->prog->streams);
}

static void dir_chip(assembler *a) {
  char name[sizeof a->prog->chip];
  if (!read_ident(a, name, sizeof name, true)) { fail(a, "expected a chip name"); return; }
  snprintf(a->prog->chip, sizeof a->prog->chip, "%s", name);
}

static void parse_directive(assembler *a) {
  char name[16];
  a->p++; /* '.' */
  if (!read_ident(a, name, sizeof name, false)) { fail(a, "expected a directive name after '.'"); return; }
  if (!strcmp(name, "chip")) dir_chip(a);
  else if (!strcmp(name, "tensor")) dir_tensor(a);
  else if (!strcmp(name, "const")) dir_const(a);
  else if (!strcmp(name, "engine")) dir_engine(a);
  else fail(a, "unknown directive '.%s' (expected .chip, .tensor, .const, .engine)", name);
}

/* ---- labels ------------------------------------------------------------------------------- */
static bool define_label(assembler *a, const char *name) {
  if (!a->cur) return fail(a, "label '%s' before any .engine section", name);
  for (size_t i = 0; i < a->n_defs; i++)
    if (a->defs[i].stream == a->cur_index && !strcmp(a->defs[i].name, name))
      return fail(a, "label '%s' defined twice in this engine's stream", name);
  if (a->n_defs == a->cap_defs) {
    size_t cap = a->cap_defs ? a->cap_defs * 2 : 32;
    label_def *nd = realloc(a->defs, cap * sizeof *nd);
    if (!nd) return fail(a, "out of memory");
    a->defs = nd;
    a->cap_defs = cap;
  }
  label_def *d = &a->defs[a->n_defs++];
  d->stream = a->cur_index;
  snprintf(d->name, sizeof d->name, "%s", name);
  d->target = a->cur->n;
  return true;
}

/* "name:" at the start of a statement? */
static bool try_label(assembler *a) {
  const char *save = a->p;
  char name[64];
  if (read_ident(a, name, sizeof name, true) && accept(a, ':')) return define_label(a, name), true;
  a->p = save;
  return false;
}

static void resolve_labels(assembler *a) {
  for (size_t i = 0; i < a->n_refs; i++) {
    label_ref *r = &a->refs[i];
    bool found = false;
    for (size_t j = 0; j < a->n_defs && !found; j++)
      if (a->defs[j].stream == r->stream && !strcmp(a->defs[j].name, r->name)) {
        a->prog->streams[r->stream].insns[r->insn].o[r->operand].i = (int32_t)a->defs[j].target;
        found = true;
      }
    if (!found) {
      ot_error_set(a->err, OT_EPARSE, "%s:%u:%u: undefined label '%s' (labels are local to an engine's stream)",
                   a->origin, r->line, r->col, r->name);
      a->errors++;
    }
  }
}

static void parse_line(assembler *a) {
  unsigned before = a->errors;
  while (!at_end(a)) {
    if (*a->p == '.') { parse_directive(a); break; }
    if (try_label(a)) continue;
    parse_instruction(a);
    break;
  }
  if (!at_end(a) && a->errors == before) fail(a, "unexpected text");
}

ot_status ot_asm_text(const char *text, const char *origin, ot_program **out, ot_error *err) {
  *out = NULL;
  assembler a = {0};
  a.prog = ot_program_new();
  if (!a.prog) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin);
  a.origin = origin;
  a.err = err;
  const char *s = text;
  while (*s) {
    const char *nl = strchr(s, '\n');
    a.line++;
    a.line_start = a.p = s;
    a.end = nl ? nl : s + strlen(s);
    parse_line(&a);
    s = nl ? nl + 1 : a.end;
  }
  if (!a.errors) resolve_labels(&a);
  free(a.defs);
  free(a.refs);
  if (a.errors) {
    ot_program_free(a.prog);
    return err ? err->code : OT_EPARSE;
  }
  *out = a.prog;
  return OT_OK;
}

ot_status ot_asm_file(const char *path, ot_program **out, ot_error *err) {
  char *text;
  size_t n;
  ot_status s = ot_file_read(path, &text, &n, err);
  if (s) return s;
  if (memchr(text, '\0', n)) {
    free(text);
    *out = NULL;
    return ot_error_set(err, OT_EPARSE, "%s: contains a NUL byte; not an assembly text file", path);
  }
  s = ot_asm_text(text, path, out, err);
  free(text);
  return s;
}
