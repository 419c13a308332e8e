# Embedding lookup and its backward with indirect DMA, 256 tokens over a [4096, 128] table:
#   out[t, :]     = table[ids[t], :]        dma_gather: bf16 rows cast to fp32 on the way
#   dtable[v, :] += dout[t, :] (ids[t] = v)  dma_scatter_add: fp32 read-modify-write of HBM rows
# Two tokens per partition: partition p holds tokens p and 128 + p (K = 2 indices, 2 rows of 128).
# dtable starts as zeros (HBM never written reads as zero); repeated ids accumulate in index
# order p*2 + k, deterministically.
.chip trn2
.tensor table bf16 [4096, 128] weight
.tensor ids int32 [256, 1] input
.tensor dout fp32 [256, 128] input
.tensor out fp32 [256, 128] output
.tensor dtable fp32 [4096, 128] output

.engine sync
    # idx[p, k] = ids[p + 128k]; dout rows likewise
    dma_copy q0, sb.int32[0:128]@0[1,2], $ids[1,128][128,2], s0
    dma_copy q1, sb.fp32[0:128]@1040[1,256], $dout[128,128][16384,2][1,128], s3
    sem_wait s0, 1
    dma_gather q2, sb.fp32[0:128]@16[1,256], $table, sb.int32[0:128]@0[1,2], s1
    sem_wait s3, 1
    dma_scatter_add q3, $dtable, sb.fp32[0:128]@1040[1,256], sb.int32[0:128]@0[1,2], s2
    sem_wait s1, 1
    dma_copy q0, $out[128,128][16384,2][1,128], sb.fp32[0:128]@16[1,256], s4
    sem_wait s2, 1
    sem_wait s4, 1
    halt
