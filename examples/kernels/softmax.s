# Row softmax of x[128, 512] fp32:  y[p, :] = exp(x[p, :] - max_p) / sum(exp(x[p, :] - max_p))
# One row per partition.  VectorE finds the row maxima, ScalarE computes exp(x - max) and its
# row sums in one activate (bias = -max, red = sum), VectorE scales by 1/sum.
.chip trn2
.tensor x fp32 [128, 512] input
.tensor y fp32 [128, 512] output

.engine sync
    dma_copy q0, sb.fp32[0:128]@0[1,512], $x[512,128][1,512], s0
    sem_wait s3, 1
    dma_copy q0, $y[512,128][1,512], sb.fp32[0:128]@4096[1,512], s4
    sem_wait s4, 1
    halt

.engine vector
    sem_wait s0, 1
    tensor_reduce sb.fp32[0:128]@2048, sb.fp32[0:128]@0[1,512], max, negate=1   # -max
    sem_inc s1
    sem_wait s2, 1
    reciprocal sb.fp32[0:128]@2056, sb.fp32[0:128]@2052                            # 1 / sum
    tensor_scalar sb.fp32[0:128]@4096[1,512], sb.fp32[0:128]@4096[1,512], mul, sb.fp32[0:128]@2056
    sem_inc s3
    halt

.engine scalar
    sem_wait s1, 1
    activate sb.fp32[0:128]@4096[1,512], sb.fp32[0:128]@0[1,512], exp, bias=sb.fp32[0:128]@2048, red=sb.fp32[0:128]@2052
    sem_inc s2
    halt
