/* Tables expanded from opcodes.def, alu_ops.def and act_funcs.def. */
#include <math.h>
#include <string.h>

#include "isa/isa.h"

/* Shorthands used inside opcodes.def. */
#define E_ANY OT_ENG_ANY
#define E_T OT_ENG_BIT(OT_ENG_TENSOR)
#define E_V OT_ENG_BIT(OT_ENG_VECTOR)
#define E_S OT_ENG_BIT(OT_ENG_SCALAR)
#define E_G OT_ENG_BIT(OT_ENG_GPSIMD)
#define M_0 0
#define M_SB OT_MEM_BIT(OT_MEM_SBUF)
#define M_PS OT_MEM_BIT(OT_MEM_PSUM)
#define M_HB OT_MEM_BIT(OT_MEM_HBM)
#define M_SBPS (M_SB | M_PS)
#define M_SBHB (M_SB | M_HB)
#define REQ false
#define OPT true

/* One operand-spec array per opcode, each ending with a NULL-named sentinel. */
#define O(kind, name, role, mems, pres, def) {#name, OT_OK_##kind, OT_ROLE_##role, mems, pres, def},
#define OP(id, mn, eng, cost, syn, ...) \
  static const ot_operand_spec operands_##id[] = {__VA_ARGS__{NULL, 0, 0, 0, false, 0}};
#include "isa/opcodes.def"
#undef OP
#undef O

const ot_opcode_info ot_opcodes[OT_OP_COUNT] = {
#define OP(id, mn, eng, cost, syn, ...) \
  {mn, eng, OT_COST_##cost, syn, sizeof operands_##id / sizeof operands_##id[0] - 1, operands_##id},
#include "isa/opcodes.def"
#undef OP
};

typedef struct { const char *name; ot_alu_class cls; bool reduce; const char *doc; } alu_info;
static const alu_info alu_table[OT_ALU_COUNT] = {
#define A(id, name, cls, red, doc) {name, OT_ALU_##cls, red, doc},
#include "isa/alu_ops.def"
#undef A
};

typedef struct { const char *name; double lo, hi; const char *doc; } act_info;
static const act_info act_table[OT_ACT_COUNT] = {
#define F(id, name, lo, hi, doc) {name, lo, hi, doc},
#include "isa/act_funcs.def"
#undef F
};

static const char *const cost_formulas[OT_COST_COUNT] = {
#define OT_X(id, f) f,
  OT_COST_MAP(OT_X)
#undef OT_X
};
static const char *const cost_names[OT_COST_COUNT] = {
#define OT_X(id, f) #id,
  OT_COST_MAP(OT_X)
#undef OT_X
};

static const char *const kind_names[OT_OK_COUNT] = {
  "ap", "val", "f32", "i32", "reg", "reg|i32", "sem", "queue", "label", "alu-op", "act-func",
  "pattern", "flag", "core",
};

const char *ot_alu_name(int op) { return (unsigned)op < OT_ALU_COUNT ? alu_table[op].name : "?"; }
ot_alu_class ot_alu_class_of(int op) { return (unsigned)op < OT_ALU_COUNT ? alu_table[op].cls : OT_ALU_UNARY; }
bool ot_alu_reduce_ok(int op) { return (unsigned)op < OT_ALU_COUNT && alu_table[op].reduce; }
const char *ot_alu_doc(int op) { return (unsigned)op < OT_ALU_COUNT ? alu_table[op].doc : "?"; }
const char *ot_act_name(int f) { return (unsigned)f < OT_ACT_COUNT ? act_table[f].name : "?"; }
const char *ot_act_doc(int f) { return (unsigned)f < OT_ACT_COUNT ? act_table[f].doc : "?"; }
const char *ot_cost_formula(ot_cost_class c) { return (unsigned)c < OT_COST_COUNT ? cost_formulas[c] : "?"; }
const char *ot_cost_name(ot_cost_class c) { return (unsigned)c < OT_COST_COUNT ? cost_names[c] : "?"; }
const char *ot_operand_kind_name(ot_operand_kind k) { return (unsigned)k < OT_OK_COUNT ? kind_names[k] : "?"; }

void ot_act_range(int f, double *lo, double *hi) {
  *lo = (unsigned)f < OT_ACT_COUNT ? act_table[f].lo : -INFINITY;
  *hi = (unsigned)f < OT_ACT_COUNT ? act_table[f].hi : INFINITY;
}

bool ot_opcode_parse(const char *mnemonic, ot_opcode *out) {
  for (unsigned i = 0; i < OT_OP_COUNT; i++)
    if (!strcmp(mnemonic, ot_opcodes[i].mnemonic)) { *out = (ot_opcode)i; return true; }
  return false;
}

bool ot_alu_parse(const char *name, int *out) {
  for (int i = 0; i < OT_ALU_COUNT; i++)
    if (!strcmp(name, alu_table[i].name)) { *out = i; return true; }
  return false;
}

bool ot_act_parse(const char *name, int *out) {
  for (int i = 0; i < OT_ACT_COUNT; i++)
    if (!strcmp(name, act_table[i].name)) { *out = i; return true; }
  return false;
}

uint64_t ot_ap_free_elems(const ot_ap *ap) {
  uint64_t n = 1;
  for (unsigned d = 0; d < ap->ndim && d < OT_AP_MAX_DIMS; d++) n *= ap->dim[d].size;
  return n;
}

uint64_t ot_ap_elems(const ot_ap *ap) {
  uint64_t n = ot_ap_free_elems(ap);
  return ap->mem == OT_MEM_HBM ? n : n * ap->part_count;
}

bool ot_ap_byte_range(const ot_ap *ap, int64_t *lo, int64_t *hi) {
  /* Walk each dimension's extreme: the lowest and highest element index reached. */
  int64_t min_e = 0, max_e = 0;
  for (unsigned d = 0; d < ap->ndim && d < OT_AP_MAX_DIMS; d++) {
    if (ap->dim[d].size == 0) { *lo = *hi = (int64_t)ap->offset; return true; }
    int64_t span = (int64_t)ap->dim[d].stride * (int64_t)(ap->dim[d].size - 1);
    if (span < 0) min_e += span; else max_e += span;
  }
  int64_t esz = (int64_t)ot_dtype_size((ot_dtype)ap->dtype);
  if (ap->offset > (uint64_t)INT64_MAX / 2) return false;
  *lo = (int64_t)ap->offset + min_e * esz;
  *hi = (int64_t)ap->offset + (max_e + 1) * esz;
  return *lo >= 0;
}

void ot_insn_init(ot_insn *in, ot_opcode op) {
  memset(in, 0, sizeof *in);
  in->op = (uint16_t)op;
  const ot_opcode_info *info = &ot_opcodes[op];
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand_spec *s = &info->operands[k];
    ot_operand *o = &in->o[k];
    switch (s->kind) {
    case OT_OK_F32: o->f = (float)s->def; break;
    case OT_OK_VAL: o->tag = OT_TAG_IMM; o->f = (float)s->def; break;
    case OT_OK_AP: o->ap.mem = OT_MEM_NONE; break;
    default: o->i = (int32_t)s->def; break;
    }
  }
}
