# Assembles, but breaks two trn2 rules.
.chip trn2
.engine tensor
    matmul ps.fp32[0:128]@0[1,1024], sb.bf16[0:128]@0[1,1024]
.engine gpsimd
    tensor_copy ps.fp32[0:128]@0[1,4], sb.fp32[0:128]@0[1,4]
