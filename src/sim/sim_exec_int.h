/* Internals of the value semantics (sim_exec*.c): one instruction being executed, its resolved
** operand views, the scratch it allocated, and the helpers every instruction body uses to read
** operands (with the uninitialised-read check), write results (rounding, the NaN/Inf trap,
** written-byte tracking) and report errors naming the site.  docs/simulator-semantics.md is
** the specification. */
#ifndef OT_SIM_EXEC_INT_H
#define OT_SIM_EXEC_INT_H

#include "sim/sim_exec_mem.h"

/* Elements one operand of a compute instruction may cover (all partitions).  The verifier's
** limits stay far below (128 partitions x 64K); the cap bounds what an unverified program can
** make the simulator allocate. */
#define OT_EXEC_MAX_ELEMS (1ull << 24)
#define OT_EXEC_MAX_BUFS 32

typedef struct {
  ot_exec_ctx *x;
  const ot_insn *in;
  ot_view v[OT_MAX_OPERANDS];     /* resolved views of the present AP operands */
  bool has[OT_MAX_OPERANDS];
  void *buf[OT_EXEC_MAX_BUFS];    /* scratch, freed when the instruction ends */
  unsigned nbuf;
} ot_exec_op;

/* "<site>: <message>", OT_ERUNTIME. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
ot_status exec_fail(ot_exec_op *e, const char *fmt, ...);
const char *exec_name(const ot_exec_op *e, unsigned k);  /* operand k's name in opcodes.def */

/* The context holds the memory v names, at least as large as the chip's; else an error. */
ot_status exec_view_usable(ot_exec_ctx *x, const ot_view *v, const char *name);

/* Scratch of n elements of size bytes, freed with the instruction; NULL (error reported as
** OT_ENOMEM) if out of memory. */
void *exec_alloc(ot_exec_op *e, uint64_t n, size_t size);
void exec_free(ot_exec_op *e);

/* Operand k (present) after the uninitialised-read check, as fp32 values or raw bits. */
ot_status exec_read_f32(ot_exec_op *e, unsigned k, float **out);
ot_status exec_read_bits(ot_exec_op *e, unsigned k, uint32_t **out);
/* The uninitialised-read check alone (error or warning count, per x->check_uninit). */
ot_status exec_check_init(ot_exec_op *e, unsigned k);

/* Write operand k: fp32 values rounded with the context's cvt, or raw bits.  Applies the
** NaN/Inf trap and marks the bytes written (by_matmul: PSUM accumulation is allowed next). */
ot_status exec_write_f32(ot_exec_op *e, unsigned k, const float *vals, bool by_matmul);
ot_status exec_write_bits(ot_exec_op *e, unsigned k, const uint32_t *bits, bool by_matmul);

/* A per-partition value: operand k as an immediate (VAL), a [parts, 1] pattern, or def when
** an optional AP is absent.  *out has parts entries. */
ot_status exec_per_partition(ot_exec_op *e, unsigned k, uint32_t parts, float def, float **out);

/* Shape checks with messages naming both operands. */
ot_status exec_same_shape(ot_exec_op *e, unsigned a, unsigned b);
ot_status exec_same_parts(ot_exec_op *e, unsigned a, unsigned b);

/* dst[f * P + p] = src[p * F + f] over 32-bit lanes. */
void exec_transpose_bits(const uint32_t *src, uint32_t *dst, uint64_t P, uint64_t F);

/* Instruction bodies (operand views resolved and present as required). */
ot_status exec_ldweights(ot_exec_op *e);
ot_status exec_matmul(ot_exec_op *e);
ot_status exec_transpose(ot_exec_op *e);       /* transpose and transpose32 */
ot_status exec_activate(ot_exec_op *e);
ot_status exec_tensor_tensor(ot_exec_op *e);
ot_status exec_tensor_scalar(ot_exec_op *e);
ot_status exec_scalar_tensor_tensor(ot_exec_op *e);
ot_status exec_tensor_reduce(ot_exec_op *e);
ot_status exec_tensor_copy(ot_exec_op *e);
ot_status exec_memset(ot_exec_op *e);
ot_status exec_reciprocal(ot_exec_op *e);
ot_status exec_select(ot_exec_op *e);
ot_status exec_iota(ot_exec_op *e);
ot_status exec_affine_select(ot_exec_op *e);
ot_status exec_bn_stats(ot_exec_op *e);
ot_status exec_bn_aggr(ot_exec_op *e);

/* The fp32 reference of an activation function (act_funcs.def id); alpha is prelu's slope.
** Unknown ids return NaN. */
float ot_act_apply(int func, float x, float alpha);

/* fp32 result of a non-bit-vector ALU op (ARITH, CMP, LOGIC, UNARY) and the 32-bit result of a
** BITVEC op. */
float ot_alu_apply_f32(int op, float x, float y);
uint32_t ot_alu_apply_bits(int op, uint32_t x, uint32_t y);

/* C = (C +) S^T . B with the documented order: for each (m, n), k = 0..K-1 in order,
** c = fl32(c + fl32(S[k][m] * B[k][n])).  S is [K][M], B [K][N], C [M][N], all dense fp32. */
ot_status ot_matmul_f32(float *C, const float *S, const float *B, uint32_t K, uint32_t M, uint32_t N);

#endif
