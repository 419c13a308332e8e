/* Instruction shorthands for lowerings: each fills an ot_insn in the opcode table's operand
** order and emits it. */
#include <string.h>

#include "compiler/kir_attn.h"
#include "compiler/kir_int.h"

ot_status kir_matmul(kir *k, ot_ap psum_dst, ot_ap stationary, ot_ap moving, bool acc) {
  ot_insn ls;
  ot_insn_init(&ls, OT_OP_LDWEIGHTS);
  ls.o[0].ap = stationary;
  kir_emit(k, OT_ENG_TENSOR, &ls);
  return kir_matmul_moving(k, psum_dst, moving, acc);
}

ot_status kir_transpose(kir *k, ot_ap psum_dst, ot_ap src) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_TRANSPOSE);
  in.o[0].ap = psum_dst;
  in.o[1].ap = src;
  return kir_emit(k, OT_ENG_TENSOR, &in);
}

static void val_set(ot_operand *o, float v, const ot_ap *ap) {
  if (ap) { o->tag = OT_TAG_AP; o->ap = *ap; }
  else { o->tag = OT_TAG_IMM; o->f = v; }
}

ot_status kir_activate(kir *k, ot_engine e, ot_ap dst, ot_ap src, int func, float scale, const ot_ap *scale_ap,
                       const ot_ap *bias, const ot_ap *red) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_ACTIVATE);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  in.o[2].i = func;
  val_set(&in.o[3], scale, scale_ap);
  if (bias) in.o[4].ap = *bias;
  if (red) in.o[6].ap = *red;
  return kir_emit(k, e, &in);
}

ot_status kir_copy(kir *k, ot_engine e, ot_ap dst, ot_ap src) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_TENSOR_COPY);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  return kir_emit(k, e, &in);
}

ot_status kir_tt(kir *k, ot_engine e, ot_ap dst, ot_ap a, ot_ap b, int alu) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_TENSOR_TENSOR);
  in.o[0].ap = dst;
  in.o[1].ap = a;
  in.o[2].ap = b;
  in.o[3].i = alu;
  return kir_emit(k, e, &in);
}

ot_status kir_ts(kir *k, ot_engine e, ot_ap dst, ot_ap src, int op0, float s0, const ot_ap *s0_ap, int op1,
                 float s1, const ot_ap *s1_ap) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_TENSOR_SCALAR);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  in.o[2].i = op0;
  val_set(&in.o[3], s0, s0_ap);
  in.o[4].i = op1;
  val_set(&in.o[5], s1, s1_ap);
  return kir_emit(k, e, &in);
}

ot_status kir_reduce(kir *k, ot_ap dst, ot_ap src, int alu, unsigned axes, bool negate) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_TENSOR_REDUCE);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  in.o[2].i = alu;
  in.o[3].i = (int32_t)axes;
  in.o[4].i = negate;
  return kir_emit(k, OT_ENG_VECTOR, &in);
}

ot_status kir_memset(kir *k, ot_engine e, ot_ap dst, float v) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_MEMSET);
  in.o[0].ap = dst;
  in.o[1].f = v;
  return kir_emit(k, e, &in);
}
