# Tiled bf16 matmul with double-buffered DMA:  C[512,2048] = A[512,1024] @ B[1024,2048]
#
# TensorE computes stationary^T @ moving with the contraction dimension K on the partitions,
# so A is passed transposed (at = A^T, [K=1024, M=512]), as NKI's matmul kernels take it.
#   SBUF (per partition):  0     .. 8191   A^T, 8 K-tiles x 512 bf16      (loaded once)
#                          8192  .. 24575  B, two 8 KiB slots of 8 K-tiles x 512 bf16 (double buffer)
#                          24576 .. 57343  C staging, 16 tiles x 512 fp32
#   PSUM: 8 banks = 2 n-blocks x 4 m-tiles of [128, 512] fp32 (double buffer)
# Semaphores: s0 A^T loaded, s1 B blocks loaded, s2 B blocks consumed, s3 C tiles computed,
#             s4 C tiles copied out of PSUM, s5 C tiles stored to HBM.
.chip trn2
.tensor at bf16 [1024, 512]  input
.tensor b  bf16 [1024, 2048] input
.tensor c  fp32 [512, 2048]  output

.engine sync
    dma_copy q0, sb.bf16[0:128]@0[512,8][1,512], $at[512,128][65536,8][1,512], s0
    reg_set r1, 0                 # byte offset of the n-block in b
    reg_set r2, 0                 # B slot: 0 or 8192
    reg_set r4, -1                # wait until block nb-2 is consumed: s2 >= nb-1
    reg_set r3, 4                 # n-blocks
load_b:
    sem_wait s2, r4
    dma_copy q1, sb.bf16[0:128]@8192+r2[512,8][1,512], $b@0+r1[2048,128][262144,8][1,512], s1
    reg_op r1, r1, add, 1024
    reg_op r2, r2, xor, 8192
    reg_op r4, r4, add, 1
    loop r3, load_b
    sem_wait s5, 16               # every C tile stored
    halt

.engine tensor
    reg_set r1, 8192              # B slot of this n-block
    reg_set r2, 0                 # PSUM offset of this n-block's 4 banks: 0 or 8192
    reg_set r5, 1                 # block nb loaded: s1 >= nb+1
    reg_set r6, -7                # PSUM bank free: s4 >= (nb-2)*4 + mt + 1
    reg_set r7, 4                 # n-blocks
    sem_wait s0, 1
n_block:
    sem_wait s1, r5
    reg_set r3, 0                 # A^T column offset of the m-tile (mt * 128 bf16)
    reg_op r4, r2, add, 0         # PSUM bank of the m-tile
    reg_set r8, 4                 # m-tiles
m_tile:
    sem_wait s4, r6
    ldweights sb.bf16[0:128]@0+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@0+r1[1,512]
    ldweights sb.bf16[0:128]@1024+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@1024+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@2048+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@2048+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@3072+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@3072+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@4096+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@4096+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@5120+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@5120+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@6144+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@6144+r1[1,512], acc=1
    ldweights sb.bf16[0:128]@7168+r3[1,128]
    matmul ps.fp32[0:128]@0+r4[1,512], sb.bf16[0:128]@7168+r1[1,512], acc=1
    sem_inc s3                    # C tile in PSUM
    reg_op r3, r3, add, 256
    reg_op r4, r4, add, 2048
    reg_op r6, r6, add, 1
    loop r8, m_tile
    sem_inc s2                    # B slot free again
    reg_op r1, r1, xor, 24576     # 8192 <-> 16384
    reg_op r2, r2, xor, 8192
    reg_op r5, r5, add, 1
    loop r7, n_block
    halt

.engine vector
    reg_set r1, 1                 # tile j computed: s3 >= j+1
    reg_set r2, 0                 # PSUM offset of tile j
    reg_set r3, 24576             # SBUF staging of tile j
    reg_set r4, 0                 # byte offset of tile j in c: nb*2048 + mt*1048576
    reg_set r5, 4                 # n-blocks
n_out:
    reg_set r6, 4                 # m-tiles
m_out:
    sem_wait s3, r1
    tensor_copy sb.fp32[0:128]@0+r3[1,512], ps.fp32[0:128]@0+r2[1,512]
    sem_inc s4
    dma_copy q2, $c@0+r4[2048,128][1,512], sb.fp32[0:128]@0+r3[1,512], s5
    reg_op r1, r1, add, 1
    reg_op r2, r2, add, 2048
    reg_op r2, r2, and, 16383
    reg_op r3, r3, add, 2048
    reg_op r4, r4, add, 1048576
    loop r6, m_out
    reg_op r4, r4, sub, 4194304
    reg_op r4, r4, add, 2048
    loop r5, n_out
    halt
