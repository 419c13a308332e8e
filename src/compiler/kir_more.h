/* More instruction shorthands for lowerings (kir_emit2.c), in the style of kir.h's: each fills
** an ot_insn in the opcode table's operand order and emits it through kir_emit. */
#ifndef OT_COMPILER_KIR_MORE_H
#define OT_COMPILER_KIR_MORE_H

#include "compiler/kir.h"

/* dst = (a op0 s0) op1 b on the VectorE; s0 an immediate (s0_ap NULL) or a [P,1] AP. */
ot_status kir_stt(kir *k, ot_ap dst, ot_ap a, int op0, float s0, const ot_ap *s0_ap, int op1, ot_ap b);
/* bn_stats (dst 6 elements per partition, src at most vector.bn_stats_fmax) and bn_aggr (dst 2:
** mean, variance) on the VectorE. */
ot_status kir_bn_stats(kir *k, ot_ap dst, ot_ap src);
ot_status kir_bn_aggr(kir *k, ot_ap dst, ot_ap src);
/* dst = 1 / src in full fp32 precision (VectorE). */
ot_status kir_reciprocal(kir *k, ot_ap dst, ot_ap src);
/* dst[p, i..] = base + p*pmul + sum(steps[d] * i_d) on the GpSimd (steps may be NULL). */
ot_status kir_iota(kir *k, ot_ap dst, int32_t base, int32_t pmul, const int32_t steps[4]);
/* A DMA transpose dst [b, a] <- src [a, b] (2- or 4-byte types), issued like kir_dma. */
ot_status kir_dma_transpose(kir *k, ot_ap dst, ot_ap src, ot_engine issuer);
/* Place every instruction emitted so far (list-scheduled as usual), then list-schedule the
** instructions that follow or not (schedule); returns the previous setting, to restore with a
** second call.  For kernels whose emission order is already a good software pipeline, which
** the list schedule (blind to DMA bandwidth sharing and buffer rotation) can only make burstier. */
bool kir_window_order(kir *k, bool schedule);
/* Until the next call: each engine's loads go to its first DMA queue and its stores to its second,
** in issue order, instead of round-robin over its queues; returns the previous setting.  The
** queues' transfers share the DMA bandwidth, so a stream of loads that all start at once (as
** round-robin starts them) finishes its first load last but one; in one queue the first load
** lands first, and compute starts early.  For streaming kernels whose loads are consumed in order. */
bool kir_dma_lanes(kir *k, bool on);

#endif
