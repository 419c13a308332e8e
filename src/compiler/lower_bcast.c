/* A row vector repeated on every partition (layernorm gamma and beta, a linear's bias).
**
** Why not one DMA with partition stride 0: it moves the row once per partition, 128 times the
** vector's bytes (a GPT-2 c_attn bias: 1.2 MB through one queue, ~34 us on trn1) and holds a
** queue at the start of a node, when its loads are on the critical path.  Here the row is loaded
** once onto partition 0 and the TensorE repeats it: a matmul with K = 1, the stationary a row of
** P ones, writes ones^T . row = the row on P partitions of PSUM (1.0 x v + 0 is exact in fp32,
** so the values are the row's, converted to fp32 as the DMA would).  The TensorE is idle while
** a node's first loads arrive, so the matmuls cost nothing on the critical path. */
#include "compiler/lower_bcast.h"

#include <string.h>

typedef struct {
  kir *k;
  kir_buf row;  /* partition 0: the row (n elements), then P ones, in the HBM tensor's type */
  uint32_t n, P;
  ot_dtype dt;
  bool ok;
} lower_bcast;

/* Bytes of a PSUM bank on this chip (0 if the chip has no banks). */
static uint32_t bcast_bank_bytes(const ot_chip *chip) {
  return chip->psum.banks ? (uint32_t)(chip->psum.bytes_per_partition / chip->psum.banks) : 0;
}

/* Load elements [eoff, eoff + n) of src onto partition 0, and P ones beside them.  OT_ENOMEM
** (nothing emitted, no error recorded) when SBUF has no room. */
static ot_status lower_bcast_begin(kir *k, const kir_hbm *src, uint64_t eoff, uint32_t n, uint32_t P, lower_bcast *b) {
  memset(b, 0, sizeof *b);
  b->k = k;
  b->n = n;
  b->P = P;
  b->dt = (ot_dtype)src->dtype;
  uint32_t esz = (uint32_t)ot_dtype_size(b->dt);
  /* the moving row and the ones row on partition 0; too little room: the caller falls back */
  if (kir_largest_free(k, OT_MEM_SBUF) < (n + P) * esz + 128u) return OT_ENOMEM;
  if (kir_alloc(k, OT_MEM_SBUF, 1, (n + P) * esz, &b->row)) return kir_status(k);
  int64_t hs[2] = {0, 1};
  uint32_t hz[2] = {1, n};
  kir_dma(k, kir_ap2(&b->row, 1, 0, n, b->dt), kir_hbm_ap(src, eoff, 2, hs, hz), OT_ENG_COUNT);
  kir_memset(k, OT_ENG_GPSIMD, kir_ap2(&b->row, 1, n, P, b->dt), 1.0f);
  b->ok = true;
  return kir_status(k);
}

/* psum_dst [P, len] fp32 (one bank) = row elements [c0, c0 + len) on every partition. */
static ot_status lower_bcast_chunk(lower_bcast *b, uint32_t c0, uint32_t len, ot_ap psum_dst) {
  return kir_matmul(b->k, psum_dst, kir_ap2(&b->row, 1, b->n, b->P, b->dt), kir_ap2(&b->row, 1, c0, len, b->dt), false);
}

static void lower_bcast_end(lower_bcast *b) {
  if (b->ok) kir_release(b->k, &b->row);
  b->ok = false;
}

bool lower_bcast_row_sbuf(kir *k, const kir_hbm *src, uint64_t eoff, uint32_t n, uint32_t P, ot_ap dst) {
  uint32_t bank = bcast_bank_bytes(kir_chip(k));
  if (bank < 4 || kir_largest_free(k, OT_MEM_PSUM) < 2u * bank) return false;
  lower_bcast b;
  if (lower_bcast_begin(k, src, eoff, n, P, &b)) return false;
  uint32_t chunk = bank / 4u;
  kir_buf ps[2];
  unsigned nps = 0;
  for (; nps < 2 && kir_largest_free(k, OT_MEM_PSUM) >= 2u * bank; nps++) kir_alloc(k, OT_MEM_PSUM, P, bank, &ps[nps]);
  for (uint32_t c0 = 0, i = 0; c0 < n && !kir_status(k); c0 += chunk, i++) {
    uint32_t len = n - c0 < chunk ? n - c0 : chunk;
    ot_ap pd = kir_ap2(&ps[i % nps], P, 0, len, OT_DT_FP32);
    lower_bcast_chunk(&b, c0, len, pd);
    ot_ap part = dst;
    part.offset += (uint64_t)c0 * ot_dtype_size((ot_dtype)dst.dtype);
    part.dim[part.ndim - 1].size = len;
    kir_copy(k, OT_ENG_VECTOR, part, pd);
  }
  for (unsigned i = 0; i < nps; i++) kir_release(k, &ps[i]);
  lower_bcast_end(&b);
  return true;
}
