/* The disassembler: in-memory program -> assembly text that the assembler reads back into the
** same instructions.  Operands are printed as opcodes.def lists them: required ones in order,
** optional ones as key=value only when they differ from their default. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "isa/disasm.h"

/* Tensor that contains HBM byte offset off (the lowest-offset match), or NULL. */
static const ot_tensor_info *tensor_at(const ot_program *p, uint64_t off) {
  const ot_tensor_info *best = NULL;
  for (uint32_t i = 0; p && i < p->n_tensors; i++) {
    const ot_tensor_info *t = &p->tensors[i];
    if (off >= t->offset && off < t->offset + ot_tensor_bytes(t) && (!best || t->offset > best->offset)) best = t;
  }
  return best;
}

void ot_ap_print(FILE *out, const ot_ap *ap, const ot_program *p) {
  if (ap->mem == OT_MEM_NONE) { fputs("none", out); return; }
  /* $tensor form only with explicit dims: "$x" alone means the whole tensor. */
  const ot_tensor_info *t = ap->mem == OT_MEM_HBM && ap->ndim ? tensor_at(p, ap->offset) : NULL;
  uint64_t off = ap->offset;
  if (t) {
    fprintf(out, "$%s", t->name);
    if (t->dtype != ap->dtype) fprintf(out, ".%s", ot_dtype_name((ot_dtype)ap->dtype));
    off -= t->offset;
  } else {
    fprintf(out, "%s.%s", ot_mem_name((ot_mem)ap->mem), ot_dtype_name((ot_dtype)ap->dtype));
  }
  if (ap->mem != OT_MEM_HBM) fprintf(out, "[%u:%u]", ap->part_start, ap->part_count);
  if (ap->reg) fprintf(out, "@%" PRIu64 "+r%u", off, ap->reg - 1u);
  else if (off || !t) fprintf(out, "@%" PRIu64, off);
  /* an in-memory AP may claim more dims than exist (unverified programs): print what exists */
  for (unsigned d = 0; d < ap->ndim && d < OT_AP_MAX_DIMS; d++) fprintf(out, "[%d,%u]", ap->dim[d].stride, ap->dim[d].size);
}

static void print_float(FILE *out, float f) {
  /* %.9g is enough digits for any fp32 to read back to the same bits. */
  if (f != f) fputs("nan", out);
  else fprintf(out, "%.9g", (double)f);
}

static bool operand_is_default(const ot_operand_spec *s, const ot_operand *o) {
  switch (s->kind) {
  case OT_OK_AP: return o->ap.mem == OT_MEM_NONE;
  case OT_OK_VAL: return o->tag == OT_TAG_IMM && o->f == (float)s->def && !(o->f == 0 && signbit(o->f));
  case OT_OK_F32: return o->f == (float)s->def && !(o->f == 0 && signbit(o->f));
  case OT_OK_PAT: return !o->pat[0] && !o->pat[1] && !o->pat[2] && !o->pat[3];
  default: return o->i == (int32_t)s->def;
  }
}

static void print_operand(FILE *out, const ot_operand_spec *s, const ot_operand *o, const ot_program *p) {
  switch (s->kind) {
  case OT_OK_AP: ot_ap_print(out, &o->ap, p); break;
  case OT_OK_VAL:
    if (o->tag == OT_TAG_AP) ot_ap_print(out, &o->ap, p);
    else print_float(out, o->f);
    break;
  case OT_OK_F32: print_float(out, o->f); break;
  case OT_OK_REG: fprintf(out, "r%d", o->i); break;
  case OT_OK_SEM: fprintf(out, "s%d", o->i); break;
  case OT_OK_QUEUE: fprintf(out, "q%d", o->i); break;
  case OT_OK_RI:
    if (o->tag == OT_TAG_REG) fprintf(out, "r%d", o->i);
    else fprintf(out, "%d", o->i);
    break;
  case OT_OK_LABEL: fprintf(out, "L%d", o->i); break;
  case OT_OK_ALU: fputs(ot_alu_name(o->i), out); break;
  case OT_OK_ACT: fputs(ot_act_name(o->i), out); break;
  case OT_OK_PAT: fprintf(out, "[%d,%d,%d,%d]", o->pat[0], o->pat[1], o->pat[2], o->pat[3]); break;
  default: fprintf(out, "%d", o->i); break;
  }
}

void ot_insn_print(FILE *out, const ot_insn *in, const ot_program *p) {
  if (in->op >= OT_OP_COUNT) { fprintf(out, "<opcode %u>", in->op); return; }
  const ot_opcode_info *info = &ot_opcodes[in->op];
  fputs(info->mnemonic, out);
  bool first = true;
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand_spec *s = &info->operands[k];
    if (s->optional && operand_is_default(s, &in->o[k])) continue;
    fputs(first ? " " : ", ", out);
    first = false;
    if (s->optional) fprintf(out, "%s=", s->name);
    print_operand(out, s, &in->o[k], p);
  }
}

static void print_tensor(FILE *out, const ot_tensor_info *t) {
  fprintf(out, ".%s %s %s [", t->role == OT_ROLE_CONST ? "const" : "tensor", t->name, ot_dtype_name((ot_dtype)t->dtype));
  for (unsigned d = 0; d < t->ndim; d++) fprintf(out, "%s%" PRIu64, d ? "," : "", t->shape[d]);
  fputs("]", out);
  if (t->role == OT_ROLE_CONST) {
    uint64_t n = ot_tensor_bytes(t) / ot_dtype_size((ot_dtype)t->dtype);
    fputs(" =", out);
    for (uint64_t i = 0; i < n; i++) {
      fputs(i ? ", " : " ", out);
      if (ot_dtype_is_float((ot_dtype)t->dtype)) print_float(out, ot_load_f32(t->data, i, (ot_dtype)t->dtype));
      else fprintf(out, "%.0f", (double)ot_load_f32(t->data, i, (ot_dtype)t->dtype));
    }
  } else {
    fprintf(out, " %s", ot_tensor_role_name(t->role));
  }
  fprintf(out, " @%" PRIu64 "\n", t->offset);
}

/* target[i] = 1 if some branch of the stream jumps to instruction i (i == n: the end). */
static void mark_label_targets(const ot_stream *s, uint8_t *target) {
  for (uint32_t i = 0; i < s->n; i++) {
    const ot_opcode_info *info = &ot_opcodes[s->insns[i].op];
    for (unsigned k = 0; k < info->n_operands; k++) {
      int32_t t = s->insns[i].o[k].i;
      if (info->operands[k].kind == OT_OK_LABEL && t >= 0 && (uint32_t)t <= s->n) target[t] = 1;
    }
  }
}

static void print_stream(FILE *out, const ot_program *p, const ot_stream *s) {
  fprintf(out, "\n.engine %s", ot_engine_name((ot_engine)s->engine));
  if (s->core) fprintf(out, " core %u", s->core);
  fputc('\n', out);
  /* Mark branch targets once, then print. */
  uint8_t *target = calloc(s->n + 1, 1);
  if (target) mark_label_targets(s, target);
  for (uint32_t i = 0; i < s->n; i++) {
    if (target && target[i]) fprintf(out, "L%u:\n", i);
    fputs("    ", out);
    ot_insn_print(out, &s->insns[i], p);
    if (s->insns[i].tag) fprintf(out, "    # %s", ot_program_string(p, s->insns[i].tag));
    fputc('\n', out);
  }
  if (target && target[s->n]) fprintf(out, "L%u:\n", s->n);
  free(target);
}

ot_status ot_disasm(const ot_program *p, FILE *out, ot_error *err) {
  (void)err;
  fprintf(out, "# OpenTRN program: %zu instructions in %u streams\n", ot_program_insn_count(p), p->n_streams);
  if (p->chip[0]) fprintf(out, ".chip %s\n", p->chip);
  for (uint32_t i = 0; i < p->n_tensors; i++) print_tensor(out, &p->tensors[i]);
  for (uint32_t i = 0; i < p->n_streams; i++) print_stream(out, p, &p->streams[i]);
  return OT_OK;
}
