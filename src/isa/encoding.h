/* The OpenTRN binary instruction encoding, version 1 (ours: the real one is not public).
**
** A stream is a sequence of little-endian 32-bit words.  An instruction is variable-length:
**
**   word 0   31        24 23        16 15                 0
**           +------------+------------+--------------------+
**           |   length   |  reserved  |       opcode       |   length: words, word 0 included
**           +------------+------------+--------------------+   reserved: 0
**
** followed by one field per operand, in the order opcodes.def lists them:
**
**   I32 REG SEM QUEUE LABEL ALU ACT FLAG   1 word (LABEL: index of the target in its stream)
**   CORE                                  1 word when given; nothing for the default (this core).
**                                         A CORE operand is always an instruction's last, so the
**                                         length word tells whether it is there: sem_inc and
**                                         dma_copy without core=/sem_core= keep their version-1
**                                         words, and a reader that predates the operand reads
**                                         programs that do not use it.
**   F32                                   1 word, IEEE-754 binary32 bits
**   RI                                    2 words: tag (0 immediate, 2 register), value
**   PAT                                   4 words, int32 steps
**   VAL                                   1 tag word (0 immediate, 1 AP), then 1 word f32 or an AP block
**   AP (roles R, W)                       an AP block
**   AP (roles RD, WD: DMA)                the APs live in the program's DMA descriptor table; the
**                                         stream holds, at the first such operand, one word: the
**                                         descriptor's word offset in that table.  A descriptor
**                                         is its APs' blocks in operand order.
**
** AP block:
**   w0   31          18 17       10 9     7 6       2 1   0
**       +--------------+-----------+-------+---------+-----+
**       |   reserved   |  reg + 1  | ndim  |  dtype  | mem |   mem: 0 none, 1 SBUF, 2 PSUM, 3 HBM
**       +--------------+-----------+-------+---------+-----+   reg+1: 0 = no run-time register
**   w1   31                      16 15                     0
**       +--------------------------+------------------------+
**       |        part_count        |       part_start       |
**       +--------------------------+------------------------+
**   w2, w3   byte offset, low word then high word
**   then ndim pairs: stride (int32, elements), size (uint32)
** An absent AP (mem none) is the single word 0.
**
** Opcodes are the positions in opcodes.def.  New instructions are appended at its end (dma_gather
** and dma_scatter_add: 30 and 31), so every existing encoding keeps its meaning and the version
** stays 1; a reader that predates an opcode rejects it ("opcode N unknown").  An indirect DMA's
** descriptor holds three AP blocks: dst, src, idx.
*/
#ifndef OT_ENCODING_H
#define OT_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "isa/isa.h"

#define OT_ISA_VERSION 1

#define OT_W0_OPCODE(w)   ((w) & 0xFFFFu)
#define OT_W0_RESERVED(w) (((w) >> 16) & 0xFFu)
#define OT_W0_LENGTH(w)   ((w) >> 24)
#define OT_W0_MAKE(op, len) (((uint32_t)(len) << 24) | ((uint32_t)(op) & 0xFFFFu))
#define OT_INSN_MAX_WORDS 255u

#define OT_APW0_MEM(w)      ((w) & 0x3u)
#define OT_APW0_DTYPE(w)    (((w) >> 2) & 0x1Fu)
#define OT_APW0_NDIM(w)     (((w) >> 7) & 0x7u)
#define OT_APW0_REG(w)      (((w) >> 10) & 0xFFu)
#define OT_APW0_RESERVED(w) ((w) >> 18)
#define OT_APW0_MAKE(mem, dt, nd, reg) \
  ((uint32_t)(mem) | ((uint32_t)(dt) << 2) | ((uint32_t)(nd) << 7) | ((uint32_t)(reg) << 10))

/* Growable word buffer. */
typedef struct { uint32_t *w; size_t n, cap; } ot_wbuf;
ot_status ot_wbuf_push(ot_wbuf *b, uint32_t w);
void ot_wbuf_free(ot_wbuf *b);

/* Append the encoding of one instruction to stream (and its DMA descriptor to descs). */
ot_status ot_insn_encode(const ot_insn *in, ot_wbuf *stream, ot_wbuf *descs, ot_error *err);

/* Decode one instruction from w[0..avail).  descs/n_descs: the descriptor table.  On success
** *used is the number of words consumed.  Every field is range-checked; a malformed word
** gives an error naming the field, never undefined behaviour. */
ot_status ot_insn_decode(const uint32_t *w, size_t avail, const uint32_t *descs, size_t n_descs,
                         ot_insn *out, size_t *used, ot_error *err);

#endif
