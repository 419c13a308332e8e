/* Shared by the ISA tests: seeded random instructions and program comparison by encoding. */
#ifndef ISA_TEST_UTIL_H
#define ISA_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isa/encoding.h"
#include "isa/program.h"

static uint64_t tu_state;
static inline void tu_seed(uint64_t s) { tu_state = s * 0x9E3779B97F4A7C15ull + 1; }
static inline uint64_t tu_next(void) { /* splitmix64 */
  uint64_t z = (tu_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline uint32_t tu_below(uint32_t n) { return (uint32_t)(tu_next() % n); }

static inline float tu_float(void) {
  for (;;) {
    uint32_t u = (uint32_t)tu_next();
    float f;
    if (tu_below(4) == 0) u = (tu_below(2) ? 0x3F800000u : 0) ^ (tu_below(2) ? 0x80000000u : 0);
    memcpy(&f, &u, 4);
    if (!isnan(f)) return f; /* NaN immediates are printed as canonical "nan" */
  }
}

static inline void tu_random_ap(ot_ap *ap, uint8_t mems, bool optional) {
  memset(ap, 0, sizeof *ap);
  if (optional && tu_below(3) == 0) return;
  uint8_t choices[4];
  unsigned n = 0;
  for (unsigned m = 1; m < OT_MEM_COUNT; m++) if (mems & OT_MEM_BIT(m)) choices[n++] = (uint8_t)m;
  ap->mem = choices[tu_below(n)];
  ap->dtype = (uint8_t)tu_below(OT_DT_COUNT);
  ap->ndim = (uint8_t)tu_below(OT_AP_MAX_DIMS + 1);
  ap->reg = tu_below(2) ? 0 : (uint8_t)(1 + tu_below(64));
  if (ap->mem != OT_MEM_HBM) {
    ap->part_start = (uint16_t)tu_below(128);
    ap->part_count = (uint16_t)(1 + tu_below(128));
    ap->offset = tu_below(1u << 18);
  } else {
    ap->offset = tu_next() & ((1ull << 36) - 1);
  }
  for (unsigned d = 0; d < ap->ndim; d++) {
    ap->dim[d].stride = (int32_t)(uint32_t)tu_next();
    ap->dim[d].size = (uint32_t)tu_next();
  }
}

/* A random instruction of opcode op whose labels stay within [0, stream_len]. */
static inline void tu_random_insn(ot_insn *in, ot_opcode op, uint32_t stream_len) {
  ot_insn_init(in, op);
  const ot_opcode_info *info = &ot_opcodes[op];
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand_spec *s = &info->operands[k];
    ot_operand *o = &in->o[k];
    if (s->optional && tu_below(3) == 0) continue; /* keep the default */
    switch (s->kind) {
    case OT_OK_AP: tu_random_ap(&o->ap, s->mems, s->optional); break;
    case OT_OK_VAL:
      if (tu_below(2)) { o->tag = OT_TAG_AP; tu_random_ap(&o->ap, s->mems, false); }
      else { o->tag = OT_TAG_IMM; o->f = tu_float(); }
      break;
    case OT_OK_F32: o->f = tu_float(); break;
    case OT_OK_I32: o->i = (int32_t)(uint32_t)tu_next(); break;
    case OT_OK_REG: o->i = (int32_t)tu_below(256); break;
    case OT_OK_SEM: o->i = (int32_t)tu_below(64); break;
    case OT_OK_QUEUE: o->i = (int32_t)tu_below(16); break;
    case OT_OK_RI: o->tag = tu_below(2) ? OT_TAG_REG : OT_TAG_IMM; o->i = o->tag == OT_TAG_REG ? (int32_t)tu_below(256) : (int32_t)(uint32_t)tu_next(); break;
    case OT_OK_LABEL: o->i = (int32_t)tu_below(stream_len + 1); break;
    case OT_OK_ALU: o->i = (int32_t)tu_below(OT_ALU_COUNT); break;
    case OT_OK_ACT: o->i = (int32_t)tu_below(OT_ACT_COUNT); break;
    case OT_OK_PAT: for (unsigned d = 0; d < OT_AP_MAX_DIMS; d++) o->pat[d] = (int32_t)(uint32_t)tu_next(); break;
    case OT_OK_FLAG: o->i = (int32_t)tu_below(2); break;
    case OT_OK_CORE: o->i = (int32_t)tu_below(9) - 1; break;
    default: break;
    }
  }
}

/* Encode a whole program's streams + descriptors into one flat word list (streams in order). */
static inline int tu_encode_program(const ot_program *p, ot_wbuf *all) {
  ot_wbuf descs = {0};
  for (uint32_t s = 0; s < p->n_streams; s++) {
    if (ot_wbuf_push(all, p->streams[s].core) || ot_wbuf_push(all, p->streams[s].engine) || ot_wbuf_push(all, p->streams[s].n)) return -1;
    for (uint32_t i = 0; i < p->streams[s].n; i++)
      if (ot_insn_encode(&p->streams[s].insns[i], all, &descs, NULL)) return -1;
  }
  for (size_t i = 0; i < descs.n; i++) if (ot_wbuf_push(all, descs.w[i])) return -1;
  ot_wbuf_free(&descs);
  return 0;
}

/* 0 if both programs hold the same instructions (by encoding) and tensors. */
static inline int tu_programs_differ(const ot_program *a, const ot_program *b) {
  ot_wbuf wa = {0}, wb = {0};
  int differ = tu_encode_program(a, &wa) || tu_encode_program(b, &wb) || wa.n != wb.n ||
               memcmp(wa.w, wb.w, wa.n * 4) || a->n_tensors != b->n_tensors;
  for (uint32_t t = 0; !differ && t < a->n_tensors; t++) {
    const ot_tensor_info *x = &a->tensors[t], *y = &b->tensors[t];
    differ = strcmp(x->name, y->name) || x->dtype != y->dtype || x->role != y->role || x->ndim != y->ndim ||
             x->offset != y->offset || memcmp(x->shape, y->shape, sizeof x->shape) || (!x->data != !y->data) ||
             (x->data && memcmp(x->data, y->data, ot_tensor_bytes(x)));
  }
  ot_wbuf_free(&wa);
  ot_wbuf_free(&wb);
  return differ;
}

/* Disassemble p into a malloc'd string. */
static inline char *tu_disasm(const ot_program *p) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  ot_disasm(p, f, NULL);
  fclose(f);
  return buf;
}

#endif
