/* Instruction shorthands used by the attention / rope / embedding / cross-entropy lowerings
** (kir_emit3.c), beyond kir.h's and kir_more.h's (kir_stt, kir_reciprocal, kir_iota live
** there).  Each fills an ot_insn in the opcode table's operand order and emits it through
** kir_emit. */
#ifndef OT_COMPILER_KIR_ATTN_H
#define OT_COMPILER_KIR_ATTN_H

#include "compiler/kir.h"
#include "compiler/kir_more.h"

/* GpSimd affine_select: dst = ((base + p*pmul + sum(steps[d] * i_d)) cmp 0) ? src : fill. */
ot_status kir_affine_select(kir *k, ot_ap dst, ot_ap src, int cmp, int32_t base, int32_t pmul, unsigned nsteps,
                            const int32_t *steps, float fill);
/* A MultiplyMoving against the stationary already loaded (no ldweights). */
ot_status kir_matmul_moving(kir *k, ot_ap psum_dst, ot_ap moving, bool acc);

#endif
