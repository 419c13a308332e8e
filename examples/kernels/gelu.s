# GELU (tanh approximation) of x[128, 1024] bf16 on ScalarE, in two halves so the second
# half's DMA-in overlaps the first half's activation.
.chip trn2
.tensor x bf16 [128, 1024] input
.tensor y bf16 [128, 1024] output

.engine sync
    dma_copy q0, sb.bf16[0:128]@0[1,512], $x[1024,128][1,512], s0
    dma_copy q1, sb.bf16[0:128]@1024[1,512], $x@1024[1024,128][1,512], s0
    sem_wait s1, 1
    dma_copy q2, $y[1024,128][1,512], sb.bf16[0:128]@2048[1,512], s2
    sem_wait s1, 2
    dma_copy q3, $y@1024[1024,128][1,512], sb.bf16[0:128]@3072[1,512], s2
    sem_wait s2, 2
    halt

.engine scalar
    sem_wait s0, 1
    activate sb.bf16[0:128]@2048[1,512], sb.bf16[0:128]@0[1,512], gelu_apprx_tanh
    sem_inc s1
    sem_wait s0, 2
    activate sb.bf16[0:128]@3072[1,512], sb.bf16[0:128]@1024[1,512], gelu_apprx_tanh
    sem_inc s1
    halt
