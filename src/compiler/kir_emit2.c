/* More instruction shorthands (kir_more.h). */
#include <string.h>

#include "compiler/kir_int.h"
#include "compiler/kir_more.h"

bool kir_window_order(kir *k, bool schedule) {
  bool was = k->schedule;
  kir_flush(k);
  kir_set_schedule(k, schedule);
  return was;
}

bool kir_dma_lanes(kir *k, bool on) {
  bool was = k->dma_lanes;
  kir_flush(k);
  k->dma_lanes = on;
  return was;
}

ot_status kir_stt(kir *k, ot_ap dst, ot_ap a, int op0, float s0, const ot_ap *s0_ap, int op1, ot_ap b) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_SCALAR_TENSOR_TENSOR);
  in.o[0].ap = dst;
  in.o[1].ap = a;
  in.o[2].i = op0;
  if (s0_ap) { in.o[3].tag = OT_TAG_AP; in.o[3].ap = *s0_ap; }
  else { in.o[3].tag = OT_TAG_IMM; in.o[3].f = s0; }
  in.o[4].i = op1;
  in.o[5].ap = b;
  return kir_emit(k, OT_ENG_VECTOR, &in);
}

static ot_status emit_unary(kir *k, ot_opcode op, ot_ap dst, ot_ap src) {
  ot_insn in;
  ot_insn_init(&in, op);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  return kir_emit(k, OT_ENG_VECTOR, &in);
}

ot_status kir_bn_stats(kir *k, ot_ap dst, ot_ap src) { return emit_unary(k, OT_OP_BN_STATS, dst, src); }
ot_status kir_bn_aggr(kir *k, ot_ap dst, ot_ap src) { return emit_unary(k, OT_OP_BN_AGGR, dst, src); }
ot_status kir_reciprocal(kir *k, ot_ap dst, ot_ap src) { return emit_unary(k, OT_OP_RECIPROCAL, dst, src); }

ot_status kir_iota(kir *k, ot_ap dst, int32_t base, int32_t pmul, const int32_t steps[4]) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_IOTA);
  in.o[0].ap = dst;
  in.o[1].i = base;
  in.o[2].i = pmul;
  if (steps) memcpy(in.o[3].pat, steps, sizeof in.o[3].pat);
  return kir_emit(k, OT_ENG_GPSIMD, &in);
}

ot_status kir_dma_transpose(kir *k, ot_ap dst, ot_ap src, ot_engine issuer) {
  return kir_dma_op(k, OT_OP_DMA_TRANSPOSE, dst, src, NULL, issuer);
}
