/* kir -- the kernel builder: how lowered ops emit engine code.
**
** A lowering writes instructions in dataflow order, as if one engine ran them all, naming the
** engine of each; kir turns that into per-engine streams that run in parallel and are correct:
**
**   - every access pattern of every instruction is analysed (the opcode table says which
**     operands read and which write) against a map of the last writer and the readers of every
**     byte range of SBUF, PSUM and HBM; a read waits for the last writer, a write for the last
**     writer and every reader since (RAW, WAR, WAW);
**   - a wait is a sem_wait on the producer's progress semaphore: each engine has one, bumped by a
**     sem_inc placed after the instructions somebody waits for (only those), and each DMA queue
**     has one, bumped by the hardware when a transfer completes (queues are FIFO in the order
**     transfers reach them at run time, so each engine issues on queues of its own: then that
**     order is the issuer's stream order, the one kir counts completions in);
**   - waits already implied are dropped: every stream carries a vector clock of what it knows
**     has completed, directly or through the producers it waited for (transitively);
**   - on-chip buffers are allocated first-fit and freed by the lowering when their lifetime
**     ends; a freed range is reused at once, and the dependency map above orders the reuse.
**
** So a lowering multi-buffers by allocating N buffers and rotating through them: the DMA for
** tile i+N waits only for the readers of tile i.  Loads are issued from the Sync engine, whose
** stream holds nothing else that waits on compute; stores from the engine that wrote the data.
** Every instruction carries its graph node's name (the provenance tag). */
#ifndef OT_COMPILER_KIR_H
#define OT_COMPILER_KIR_H

#include <opentrn/status.h>

#include "arch/chip_int.h"
#include "isa/program.h"

#define KIR_MAX_QUEUES 16
#define KIR_SRC_COUNT (OT_ENG_COUNT + KIR_MAX_QUEUES)   /* progress sources: engines, then queues */

typedef struct kir kir;

/* An on-chip buffer: partitions [0, parts) x bytes [off, off + bytes) of SBUF or PSUM. */
typedef struct {
  uint8_t mem;          /* OT_MEM_SBUF or OT_MEM_PSUM */
  uint16_t parts;
  uint32_t off, bytes;  /* per partition */
} kir_buf;

/* An HBM tensor of the program (its table entry index and byte offset). */
typedef struct {
  int32_t index;        /* in the program's tensor table */
  uint64_t off;         /* byte offset in device HBM */
  uint8_t dtype;
} kir_hbm;

ot_status kir_new(const ot_chip *chip, ot_program *prog, kir **out, ot_error *err);
/* A kir writing the streams of NeuronCore `core` of a multi-core program (kir_new = core 0 alone).
** Several kirs may share one program, one per core: each has its own engines, queues and
** semaphores (semaphore ids are per core), and kir_tensor places new tensors after every tensor
** already in the program (HBM is the chip's), up to the chip's whole HBM.  Nothing orders two
** cores' accesses except the remote-semaphore calls below (kir_remote_signal / kir_remote_wait). */
ot_status kir_new_core(const ot_chip *chip, ot_program *prog, uint32_t core, kir **out, ot_error *err);
uint32_t kir_core(const kir *k);
/* The first semaphore id kir leaves free (ids below are its engines' and queues' progress
** semaphores): cross-core protocols use ids from here up to chip->seq.semaphores - 1. */
uint32_t kir_free_sem_base(const kir *k);
void kir_free(kir *k);
const ot_chip *kir_chip(const kir *k);
ot_program *kir_program(kir *k);

/* List-schedule each window of emitted instructions (default; kir_sched.c), or keep the order
** of emission. */
void kir_set_schedule(kir *k, bool on);

/* The graph node that the next instructions come from (provenance tag), and a comment. */
void kir_set_origin(kir *k, const char *node_name);

/* ---- memory -------------------------------------------------------------------------------- */
/* Allocate bytes per partition (rounded up to align) on partitions [0, parts); PSUM allocations
** never straddle a bank.  Fails with OT_ENOMEM and a message naming the origin when full. */
ot_status kir_alloc(kir *k, ot_mem mem, uint32_t parts, uint32_t bytes, kir_buf *out);
void kir_release(kir *k, const kir_buf *b);
/* Free bytes per partition left in SBUF / PSUM (largest contiguous hole). */
uint32_t kir_largest_free(const kir *k, ot_mem mem);
/* Whether kir_alloc of bytes per partition would succeed now (PSUM: within one bank). */
bool kir_can_alloc(const kir *k, ot_mem mem, uint32_t bytes);
/* A program tensor in HBM: name, dtype, shape, role (OT_ROLE_*); constants copy data. */
ot_status kir_tensor(kir *k, const char *name, ot_dtype dt, unsigned ndim, const uint64_t *shape, int role,
                     const void *data, kir_hbm *out);

/* ---- access patterns ----------------------------------------------------------------------- */
/* On-chip AP: partitions [p0, p0+np) of buffer b, starting byte boff within it, dtype, free dims
** given outermost first as (stride, size) pairs in elements. */
ot_ap kir_ap(const kir_buf *b, uint32_t p0, uint32_t np, uint32_t boff, ot_dtype dt, unsigned ndim,
             const int32_t *strides, const uint32_t *sizes);
/* Shorthand for a row-major [np, n] tile at element offset eoff of b. */
ot_ap kir_ap2(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n, ot_dtype dt);
/* HBM AP of tensor t: element offset, dims outermost first (stride, size) in elements; the first
** dim is the one the DMA spreads over partitions when the other side is on chip. */
ot_ap kir_hbm_ap(const kir_hbm *t, uint64_t eoff, unsigned ndim, const int64_t *strides, const uint32_t *sizes);

/* ---- instructions -------------------------------------------------------------------------- */
/* Emit a data-path instruction on an engine (its operands already filled). */
ot_status kir_emit(kir *k, ot_engine e, const ot_insn *in);
/* A DMA: dst <- src through a queue chosen round-robin; loads (on-chip destination) are issued
** by the Sync engine, stores by issuer (the engine that wrote the data; OT_ENG_COUNT = Sync). */
ot_status kir_dma(kir *k, ot_ap dst, ot_ap src, ot_engine issuer);
#define KIR_DMA_HAS_INDEX 1 /* kir_dma_op passes idx (dma_gather, dma_scatter_add) */
/* Whether lowerings may use the indirect DMAs (KIR_DMA_HAS_INDEX). */
static inline bool kir_has_indirect_dma(void) {
#if defined(KIR_DMA_HAS_INDEX)
  return true;
#else
  return false;
#endif
}
/* Any DMA opcode; idx is the index pattern of dma_gather / dma_scatter_add (NULL otherwise). */
ot_status kir_dma_op(kir *k, ot_opcode op, ot_ap dst, ot_ap src, const ot_ap *idx, ot_engine issuer);

/* Convenience emitters (fill an ot_insn and kir_emit). */
ot_status kir_matmul(kir *k, ot_ap psum_dst, ot_ap stationary, ot_ap moving, bool acc);
ot_status kir_transpose(kir *k, ot_ap psum_dst, ot_ap src);
ot_status kir_activate(kir *k, ot_engine e, ot_ap dst, ot_ap src, int func, float scale, const ot_ap *scale_ap,
                       const ot_ap *bias, const ot_ap *red);
ot_status kir_copy(kir *k, ot_engine e, ot_ap dst, ot_ap src);
ot_status kir_tt(kir *k, ot_engine e, ot_ap dst, ot_ap a, ot_ap b, int alu);
/* dst = (src op0 s0) op1 s1; s0/s1 an immediate (ap NULL) or a per-partition [P,1] AP. */
ot_status kir_ts(kir *k, ot_engine e, ot_ap dst, ot_ap src, int op0, float s0, const ot_ap *s0_ap, int op1,
                 float s1, const ot_ap *s1_ap);
ot_status kir_reduce(kir *k, ot_ap dst, ot_ap src, int alu, unsigned axes, bool negate);
ot_status kir_memset(kir *k, ot_engine e, ot_ap dst, float v);

/* ---- cross-core synchronisation (remote semaphores; lower_collective.c) --------------------- */
/* Engine e waits until everything emitted so far on this core has completed (every engine's
** last instruction, every queue's last transfer), then sends `sem_inc sem, core=c` to each core c
** whose bit is set in cores_mask (this core's bit is ignored).  What the core did before is thus
** ordered before whatever the signalled cores do after waiting for it. */
ot_status kir_remote_signal(kir *k, ot_engine e, uint64_t cores_mask, uint32_t sem);
/* Engine e waits for sem >= value (increments sent by other cores); the n HBM patterns in aps are
** then treated as written by e at that wait, so every later access to them on this core waits for
** it (they are what the other cores wrote before signalling). */
ot_status kir_remote_wait(kir *k, ot_engine e, uint32_t sem, int32_t value, const ot_ap *aps, unsigned n);

/* ---- finishing ----------------------------------------------------------------------------- */
/* Resolve engine semaphore counts, add the final waits (Sync waits for every queue) and halts,
** and write the streams into the program. */
ot_status kir_finish(kir *k, ot_error *err);

/* Statistics of the emitted code (for listings and tests). */
typedef struct {
  uint64_t insns[OT_ENG_COUNT];
  uint64_t waits, waits_elided, signals, dmas;
  uint32_t sbuf_peak, psum_peak;   /* bytes per partition */
} kir_stats;
void kir_get_stats(const kir *k, kir_stats *out);

/* Record an error (the first is kept, prefixed with the origin node); returns the kept code. */
ot_status kir_fail(kir *k, ot_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The first error (allocation failure, bad AP) is sticky: later calls return it. */
ot_status kir_status(const kir *k);
const ot_error *kir_error(const kir *k);

#endif
