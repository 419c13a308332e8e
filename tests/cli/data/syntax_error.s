.engine vector
    memset sb.fp32[0:128]@0[1,4], 0
    frobnicate 1, 2
