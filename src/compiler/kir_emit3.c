/* Instruction shorthands for the attention-family lowerings (kir_attn.h). */
#include <string.h>

#include "compiler/kir_attn.h"

ot_status kir_affine_select(kir *k, ot_ap dst, ot_ap src, int cmp, int32_t base, int32_t pmul, unsigned nsteps,
                            const int32_t *steps, float fill) {
  ot_insn in;
  ot_insn_init(&in, OT_OP_AFFINE_SELECT);
  in.o[0].ap = dst;
  in.o[1].ap = src;
  in.o[2].i = cmp;
  in.o[3].i = base;
  in.o[4].i = pmul;
  memset(in.o[5].pat, 0, sizeof in.o[5].pat);
  for (unsigned d = 0; d < nsteps && d < OT_AP_MAX_DIMS; d++) in.o[5].pat[d] = steps[d];
  in.o[6].f = fill;
  return kir_emit(k, OT_ENG_GPSIMD, &in);
}

ot_status kir_matmul_moving(kir *k, ot_ap psum_dst, ot_ap moving, bool acc) {
  ot_insn mm;
  ot_insn_init(&mm, OT_OP_MATMUL);
  mm.o[0].ap = psum_dst;
  mm.o[1].ap = moving;
  mm.o[2].i = acc;
  return kir_emit(k, OT_ENG_TENSOR, &mm);
}
