/* A row vector from HBM repeated on P partitions by the TensorE (lower_bcast.c). */
#ifndef OT_COMPILER_LOWER_BCAST_H
#define OT_COMPILER_LOWER_BCAST_H

#include <stdbool.h>

#include "compiler/kir.h"

/* dst [P, n] (SBUF, one free dim) = the row on every partition, through PSUM banks and VectorE
** copies.  false (nothing emitted) when SBUF or PSUM has no room. */
bool lower_bcast_row_sbuf(kir *k, const kir_hbm *src, uint64_t eoff, uint32_t n, uint32_t P, ot_ap dst);

#endif
