/* Encoder and decoder for the binary instruction format drawn in encoding.h.  Both walk the
** operand list of opcodes.def, so a new instruction needs no code here. */
#include <stdlib.h>
#include <string.h>

#include "isa/encoding.h"

ot_status ot_wbuf_push(ot_wbuf *b, uint32_t w) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    uint32_t *nw = realloc(b->w, cap * sizeof *nw);
    if (!nw) return OT_ENOMEM;
    b->w = nw;
    b->cap = cap;
  }
  b->w[b->n++] = w;
  return OT_OK;
}

void ot_wbuf_free(ot_wbuf *b) {
  free(b->w);
  memset(b, 0, sizeof *b);
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static ot_status ap_encode(const ot_ap *ap, ot_wbuf *b) {
  ot_status s;
  if (ap->mem == OT_MEM_NONE) return ot_wbuf_push(b, 0);
  if (ap->ndim > OT_AP_MAX_DIMS || ap->mem >= OT_MEM_COUNT || ap->dtype >= OT_DT_COUNT) return OT_ERANGE;
  if ((s = ot_wbuf_push(b, OT_APW0_MAKE(ap->mem, ap->dtype, ap->ndim, ap->reg)))) return s;
  if ((s = ot_wbuf_push(b, (uint32_t)ap->part_start | ((uint32_t)ap->part_count << 16)))) return s;
  if ((s = ot_wbuf_push(b, (uint32_t)ap->offset))) return s;
  if ((s = ot_wbuf_push(b, (uint32_t)(ap->offset >> 32)))) return s;
  for (unsigned d = 0; d < ap->ndim; d++) {
    if ((s = ot_wbuf_push(b, (uint32_t)ap->dim[d].stride))) return s;
    if ((s = ot_wbuf_push(b, ap->dim[d].size))) return s;
  }
  return OT_OK;
}

static ot_status operand_encode(const ot_operand_spec *spec, const ot_operand *o, ot_wbuf *b) {
  ot_status s = OT_OK;
  switch (spec->kind) {
  case OT_OK_AP: return ap_encode(&o->ap, b);
  case OT_OK_VAL:
    if ((s = ot_wbuf_push(b, o->tag == OT_TAG_AP))) return s;
    return o->tag == OT_TAG_AP ? ap_encode(&o->ap, b) : ot_wbuf_push(b, f32_bits(o->f));
  case OT_OK_F32: return ot_wbuf_push(b, f32_bits(o->f));
  case OT_OK_RI:
    if ((s = ot_wbuf_push(b, o->tag == OT_TAG_REG ? OT_TAG_REG : OT_TAG_IMM))) return s;
    return ot_wbuf_push(b, (uint32_t)o->i);
  case OT_OK_PAT:
    for (unsigned d = 0; d < OT_AP_MAX_DIMS && !s; d++) s = ot_wbuf_push(b, (uint32_t)o->pat[d]);
    return s;
  default: return ot_wbuf_push(b, (uint32_t)o->i);
  }
}

static bool role_is_desc(ot_operand_role r) { return r == OT_ROLE_RD || r == OT_ROLE_WD; }

ot_status ot_insn_encode(const ot_insn *in, ot_wbuf *stream, ot_wbuf *descs, ot_error *err) {
  if (in->op >= OT_OP_COUNT)
    return ot_error_set(err, OT_EINVAL, "encode: opcode %u out of range (0..%d)", in->op, OT_OP_COUNT - 1);
  const ot_opcode_info *info = &ot_opcodes[in->op];
  size_t start = stream->n;
  ot_status s = ot_wbuf_push(stream, 0); /* word 0, patched below */
  bool desc_written = false;
  for (unsigned k = 0; k < info->n_operands && !s; k++) {
    /* A CORE operand (always last) is encoded only when given: old programs keep their words. */
    if (info->operands[k].kind == OT_OK_CORE && in->o[k].i == OT_CORE_SELF) continue;
    const ot_operand_spec *spec = &info->operands[k];
    if (role_is_desc(spec->role)) {
      if (!descs) return ot_error_set(err, OT_EINVAL, "encode %s: no descriptor table", info->mnemonic);
      if (!desc_written) {
        s = ot_wbuf_push(stream, (uint32_t)descs->n);
        desc_written = true;
      }
      if (!s) s = ap_encode(&in->o[k].ap, descs);
    } else {
      s = operand_encode(spec, &in->o[k], stream);
    }
  }
  if (s == OT_ERANGE)
    return ot_error_set(err, s, "encode %s: an access pattern has a memory, type or dimension count out of range",
                        info->mnemonic);
  if (s) return ot_error_set(err, s, "encode %s: out of memory", info->mnemonic);
  size_t len = stream->n - start;
  if (len > OT_INSN_MAX_WORDS)
    return ot_error_set(err, OT_ERANGE, "encode %s: %zu words, more than %u", info->mnemonic, len, OT_INSN_MAX_WORDS);
  stream->w[start] = OT_W0_MAKE(in->op, len);
  return OT_OK;
}

/* ---- decoding ---------------------------------------------------------------------------- */
typedef struct {
  const uint32_t *w;
  size_t n, pos;
  const char *where;   /* "stream" or "descriptor" */
  const char *mnemonic;
  ot_error *err;
} reader;

static bool rd_word(reader *r, uint32_t *out, const char *field) {
  if (r->pos >= r->n) {
    ot_error_set(r->err, OT_EFORMAT, "decode %s: %s ends inside field '%s' (word %zu of %zu)",
                 r->mnemonic, r->where, field, r->pos, r->n);
    return false;
  }
  *out = r->w[r->pos++];
  return true;
}

static bool ap_decode(reader *r, ot_ap *ap, const char *field) {
  uint32_t w0, w1, lo, hi;
  memset(ap, 0, sizeof *ap);
  if (!rd_word(r, &w0, field)) return false;
  if (w0 == 0) return true; /* absent */
  if (OT_APW0_RESERVED(w0) || OT_APW0_MEM(w0) == OT_MEM_NONE || OT_APW0_DTYPE(w0) >= OT_DT_COUNT ||
      OT_APW0_NDIM(w0) > OT_AP_MAX_DIMS) {
    ot_error_set(r->err, OT_EFORMAT,
                 "decode %s: bad access-pattern header 0x%08x in '%s' (mem %u, dtype %u of %d, ndim %u of max %d, reserved %u)",
                 r->mnemonic, w0, field, OT_APW0_MEM(w0), OT_APW0_DTYPE(w0), OT_DT_COUNT,
                 OT_APW0_NDIM(w0), OT_AP_MAX_DIMS, OT_APW0_RESERVED(w0));
    return false;
  }
  ap->mem = (uint8_t)OT_APW0_MEM(w0);
  ap->dtype = (uint8_t)OT_APW0_DTYPE(w0);
  ap->ndim = (uint8_t)OT_APW0_NDIM(w0);
  ap->reg = (uint8_t)OT_APW0_REG(w0);
  if (!rd_word(r, &w1, field) || !rd_word(r, &lo, field) || !rd_word(r, &hi, field)) return false;
  ap->part_start = (uint16_t)(w1 & 0xFFFFu);
  ap->part_count = (uint16_t)(w1 >> 16);
  ap->offset = (uint64_t)lo | ((uint64_t)hi << 32);
  for (unsigned d = 0; d < ap->ndim; d++) {
    uint32_t st, sz;
    if (!rd_word(r, &st, field) || !rd_word(r, &sz, field)) return false;
    ap->dim[d].stride = (int32_t)st;
    ap->dim[d].size = sz;
  }
  return true;
}

static bool enum_check(reader *r, uint32_t v, uint32_t limit, const char *field) {
  if (v < limit) return true;
  ot_error_set(r->err, OT_EFORMAT, "decode %s: field '%s' = %u, expected 0..%u", r->mnemonic, field, v, limit - 1);
  return false;
}

static bool operand_decode(reader *r, const ot_operand_spec *spec, ot_operand *o) {
  uint32_t v, tag;
  switch (spec->kind) {
  case OT_OK_AP: return ap_decode(r, &o->ap, spec->name);
  case OT_OK_VAL:
    if (!rd_word(r, &tag, spec->name) || !enum_check(r, tag, 2, spec->name)) return false;
    o->tag = (uint8_t)tag;
    if (tag == OT_TAG_AP) return ap_decode(r, &o->ap, spec->name);
    if (!rd_word(r, &v, spec->name)) return false;
    o->f = bits_f32(v);
    return true;
  case OT_OK_F32:
    if (!rd_word(r, &v, spec->name)) return false;
    o->f = bits_f32(v);
    return true;
  case OT_OK_RI:
    if (!rd_word(r, &tag, spec->name)) return false;
    if (tag != OT_TAG_IMM && tag != OT_TAG_REG) {
      ot_error_set(r->err, OT_EFORMAT, "decode %s: field '%s' tag %u, expected 0 (immediate) or 2 (register)",
                   r->mnemonic, spec->name, tag);
      return false;
    }
    o->tag = (uint8_t)tag;
    if (!rd_word(r, &v, spec->name)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_PAT:
    for (unsigned d = 0; d < OT_AP_MAX_DIMS; d++) {
      if (!rd_word(r, &v, spec->name)) return false;
      o->pat[d] = (int32_t)v;
    }
    return true;
  case OT_OK_ALU:
    if (!rd_word(r, &v, spec->name) || !enum_check(r, v, OT_ALU_COUNT, spec->name)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_ACT:
    if (!rd_word(r, &v, spec->name) || !enum_check(r, v, OT_ACT_COUNT, spec->name)) return false;
    o->i = (int32_t)v;
    return true;
  case OT_OK_FLAG:
    if (!rd_word(r, &v, spec->name) || !enum_check(r, v, 2, spec->name)) return false;
    o->i = (int32_t)v;
    return true;
  default: /* I32 REG SEM QUEUE LABEL: range-checked by the verifier against the chip */
    if (!rd_word(r, &v, spec->name)) return false;
    o->i = (int32_t)v;
    return true;
  }
}

static bool desc_decode(reader *r, const ot_opcode_info *info, unsigned first, const uint32_t *descs,
                        size_t n_descs, ot_insn *out) {
  uint32_t off;
  if (!rd_word(r, &off, "descriptor")) return false;
  if (off >= n_descs) {
    ot_error_set(r->err, OT_EFORMAT, "decode %s: descriptor offset %u outside the descriptor table (%zu words)",
                 info->mnemonic, off, n_descs);
    return false;
  }
  reader dr = {descs, n_descs, off, "descriptor table", info->mnemonic, r->err};
  for (unsigned k = first; k < info->n_operands; k++)
    if (role_is_desc(info->operands[k].role) && !ap_decode(&dr, &out->o[k].ap, info->operands[k].name))
      return false;
  return true;
}

ot_status ot_insn_decode(const uint32_t *w, size_t avail, const uint32_t *descs, size_t n_descs,
                         ot_insn *out, size_t *used, ot_error *err) {
  if (avail == 0) return ot_error_set(err, OT_EFORMAT, "decode: empty instruction");
  uint32_t w0 = w[0];
  unsigned op = OT_W0_OPCODE(w0), len = OT_W0_LENGTH(w0);
  if (op >= OT_OP_COUNT)
    return ot_error_set(err, OT_EFORMAT, "decode: opcode %u unknown (expected 0..%d)", op, OT_OP_COUNT - 1);
  const ot_opcode_info *info = &ot_opcodes[op];
  if (OT_W0_RESERVED(w0))
    return ot_error_set(err, OT_EFORMAT, "decode %s: reserved bits set in word 0 (0x%08x)", info->mnemonic, w0);
  if (len == 0 || len > avail)
    return ot_error_set(err, OT_EFORMAT, "decode %s: length %u words, but %zu remain in the stream",
                        info->mnemonic, len, avail);
  ot_insn_init(out, (ot_opcode)op);
  reader r = {w, len, 1, "instruction", info->mnemonic, err};
  bool desc_done = false;
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand_spec *spec = &info->operands[k];
    if (spec->kind == OT_OK_CORE) { /* always last; absent = this core (the default) */
      if (r.pos == len) break;
      if (!operand_decode(&r, spec, &out->o[k])) return err ? err->code : OT_EFORMAT;
      if (out->o[k].i == OT_CORE_SELF)
        return ot_error_set(err, OT_EFORMAT, "decode %s: field '%s' = -1 is encoded by leaving the field out",
                            info->mnemonic, spec->name);
      continue;
    }
    if (role_is_desc(spec->role)) {
      if (!desc_done && !desc_decode(&r, info, k, descs, n_descs, out)) return err ? err->code : OT_EFORMAT;
      desc_done = true;
    } else if (!operand_decode(&r, spec, &out->o[k])) {
      return err ? err->code : OT_EFORMAT;
    }
  }
  if (r.pos != len)
    return ot_error_set(err, OT_EFORMAT, "decode %s: length says %u words, operands use %zu",
                        info->mnemonic, len, r.pos);
  *used = len;
  return OT_OK;
}
