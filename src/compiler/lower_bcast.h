/* A row vector from HBM repeated on P partitions by the TensorE (lower_bcast.c). */
#ifndef OT_COMPILER_LOWER_BCAST_H
#define OT_COMPILER_LOWER_BCAST_H

#include <stdbool.h>

#include "compiler/kir.h"

typedef struct {
  kir *k;
  kir_buf row;  /* partition 0: the row (n elements), then P ones, in the HBM tensor's type */
  uint32_t n, P;
  ot_dtype dt;
  bool ok;
} lower_bcast;

/* Load elements [eoff, eoff + n) of src onto partition 0.  OT_ENOMEM (nothing emitted, no
** error recorded) when SBUF has no room: the caller loads the row with a stride-0 DMA instead. */
ot_status lower_bcast_begin(kir *k, const kir_hbm *src, uint64_t eoff, uint32_t n, uint32_t P, lower_bcast *b);
/* psum_dst [P, len] fp32 (one bank) = row elements [c0, c0 + len) on every partition. */
ot_status lower_bcast_chunk(lower_bcast *b, uint32_t c0, uint32_t len, ot_ap psum_dst);
void lower_bcast_end(lower_bcast *b);

/* dst [P, n] (SBUF, one free dim) = the row on every partition, through PSUM banks and VectorE
** copies.  false (nothing emitted) when SBUF or PSUM has no room. */
bool lower_bcast_row_sbuf(kir *k, const kir_hbm *src, uint64_t eoff, uint32_t n, uint32_t P, ot_ap dst);

#endif
