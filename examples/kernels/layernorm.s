# LayerNorm over the last axis of x[128, 512] fp32 with gamma, beta [512], eps = 1e-5,
# using bn_stats / bn_aggr for the mean and variance (the NKI LayerNorm tutorial's v2).
# gamma and beta are broadcast to all 128 partitions by a DMA with partition stride 0.
.chip trn2
.tensor x     fp32 [128, 512] input
.tensor gamma fp32 [512]      weight
.tensor beta  fp32 [512]      weight
.tensor y     fp32 [128, 512] output

.engine sync
    dma_copy q0, sb.fp32[0:128]@0[1,512], $x[512,128][1,512], s0
    dma_copy q1, sb.fp32[0:128]@2048[1,512], $gamma[0,128][1,512], s0
    dma_copy q2, sb.fp32[0:128]@4096[1,512], $beta[0,128][1,512], s0
    sem_wait s1, 1
    dma_copy q0, $y[512,128][1,512], sb.fp32[0:128]@8192[1,512], s2
    sem_wait s2, 1
    halt

.engine vector
    sem_wait s0, 3
    bn_stats sb.fp32[0:128]@6144[1,6], sb.fp32[0:128]@0[1,512]
    bn_aggr sb.fp32[0:128]@6176[1,2], sb.fp32[0:128]@6144[1,6]                 # mean @6176, var @6180
    tensor_scalar sb.fp32[0:128]@6184, sb.fp32[0:128]@6180, add, 1e-05, op1=rsqrt  # rstd
    tensor_scalar sb.fp32[0:128]@8192[1,512], sb.fp32[0:128]@0[1,512], sub, sb.fp32[0:128]@6176, op1=mul, s1=sb.fp32[0:128]@6184
    tensor_tensor sb.fp32[0:128]@8192[1,512], sb.fp32[0:128]@8192[1,512], sb.fp32[0:128]@2048[1,512], mul
    tensor_tensor sb.fp32[0:128]@8192[1,512], sb.fp32[0:128]@8192[1,512], sb.fp32[0:128]@4096[1,512], add
    sem_inc s1
    halt
