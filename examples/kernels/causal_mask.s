# Causal attention mask on scores s[128, 128] fp32: keep s[i, j] where j <= i, else -inf.
# GpSimdE's affine_select evaluates base + p*pmul + j*step = i - j per element and keeps the
# source where it is >= 0.
.chip trn2
.tensor s      fp32 [128, 128] input
.tensor masked fp32 [128, 128] output

.engine sync
    dma_copy q0, sb.fp32[0:128]@0[1,128], $s[128,128][1,128], s0
    sem_wait s1, 1
    dma_copy q0, $masked[128,128][1,128], sb.fp32[0:128]@512[1,128], s2
    sem_wait s2, 1
    halt

.engine gpsimd
    sem_wait s0, 1
    affine_select sb.fp32[0:128]@512[1,128], sb.fp32[0:128]@0[1,128], ge, 0, pmul=1, steps=[-1], fill=-inf
    sem_inc s1
    halt
