/* The OpenTRN instruction set: decoded instructions, operand formats and the tables expanded
** from opcodes.def, alu_ops.def and act_funcs.def.  Binary layout: encoding.h. */
#ifndef OT_ISA_H
#define OT_ISA_H

#include <opentrn/num.h>
#include <opentrn/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"

#define OT_AP_MAX_DIMS 4
#define OT_MAX_OPERANDS 8

/* ---- opcodes ----------------------------------------------------------------------------- */
typedef enum {
#define OP(id, mn, eng, cost, syn, ...) OT_OP_##id,
#include "isa/opcodes.def"
#undef OP
  OT_OP_COUNT
} ot_opcode;

typedef enum {
#define A(id, name, cls, red, doc) OT_ALU_##id,
#include "isa/alu_ops.def"
#undef A
  OT_ALU_COUNT
} ot_alu_op;

typedef enum { OT_ALU_ARITH, OT_ALU_CMP, OT_ALU_LOGIC, OT_ALU_BITVEC, OT_ALU_UNARY } ot_alu_class;

typedef enum {
#define F(id, name, lo, hi, doc) OT_ACT_##id,
#include "isa/act_funcs.def"
#undef F
  OT_ACT_COUNT
} ot_act_func;

/* X(id, formula) -- cost classes of the timing model (cycles of the executing engine). */
#define OT_COST_MAP(X)                                                                         \
  X(CTRL,   "sequencer.control_cycles")                                                        \
  X(WAIT,   "blocks until the condition holds, then sequencer.control_cycles")                \
  X(DMA,    "issue: dma.issue_ns on the sequencer; transfer: dma.start_latency_ns + bytes / bandwidth (queue, HBM shared)") \
  X(DMA_INDIRECT, "issue: dma.issue_ns; transfer: dma.start_latency_ns + rows x (one DMA's cost-bytes of one row: each row is its own descriptor, so the small-transfer penalty applies below dma.small_transfer_bytes) / bandwidth; x2 for dma_scatter_add (read and write of each row); independent of the index values") \
  X(LS,     "ceil(M / tensor.ls_speedup), hidden behind the previous MultiplyMoving")          \
  X(MM,     "max(N, tensor.mm_init_latency); x tensor.fp32_factor for fp32, / tensor.fp8_rate for fp8") \
  X(PE_TRANSPOSE, "max(P, min(tensor.transpose_cycles_min, F))")                               \
  X(ACT,    "max(min_ii, N) (+ scalar.acc_read_cycles with red=)")                            \
  X(TT,     "max(min_ii, N) if one input is in PSUM or all are 16-bit; else max(min_ii, 2N)")  \
  X(TS,     "max(min_ii, N) (/ fast16 speed-up for 16-bit)")                                    \
  X(STT,    "N if 16-bit; else 2N")                                                             \
  X(REDUCE, "N/2 if 16-bit in and out with add/max; else N")                                    \
  X(COPY,   "max(min_ii, N) (/ fast16 speed-up for 16-bit)")                                    \
  X(MEMSET, "max(min_ii, N/2) for zero in 16-bit; else max(min_ii, N)")                         \
  X(GPSIMD, "gpsimd.fixed_overhead + N")                                                        \
  X(SELECT, "max(min_ii, N) if one input is in PSUM; else max(min_ii, 2N)")                    \
  X(N1,     "max(min_ii, N)")                                                                   \
  X(BN_AGGR,"max(min_ii, 13 * (N / 3))")                                                       \
  X(RECIP,  "max(min_ii, 8N)")

typedef enum {
#define OT_X(id, f) OT_COST_##id,
  OT_COST_MAP(OT_X)
#undef OT_X
  OT_COST_COUNT
} ot_cost_class;

/* ---- operands ---------------------------------------------------------------------------- */
/* OT_OK_CORE: a NeuronCore index of the same chip; OT_CORE_SELF (the default) = the core running
** the instruction.  Encoded as an extra trailing word only when it is not OT_CORE_SELF. */
#define OT_CORE_SELF (-1)
typedef enum {
  OT_OK_AP, OT_OK_VAL, OT_OK_F32, OT_OK_I32, OT_OK_REG, OT_OK_RI, OT_OK_SEM, OT_OK_QUEUE,
  OT_OK_LABEL, OT_OK_ALU, OT_OK_ACT, OT_OK_PAT, OT_OK_FLAG, OT_OK_CORE, OT_OK_COUNT
} ot_operand_kind;

typedef enum { OT_ROLE_N, OT_ROLE_R, OT_ROLE_W, OT_ROLE_RD, OT_ROLE_WD } ot_operand_role;

typedef struct {
  const char *name;
  ot_operand_kind kind;
  ot_operand_role role;
  uint8_t mems;        /* OT_MEM_BIT mask of memories an AP may name */
  bool optional;       /* keyword operand with a default */
  double def;          /* default value of an optional operand */
} ot_operand_spec;

typedef struct { int32_t stride; uint32_t size; } ot_dim;

/* An access pattern: which memory, which partitions, where, what type, and the free-dimension
** iteration [stride, size] pairs, outermost first (strides in elements).  On HBM there are no
** partitions: the pattern alone addresses the 1-D memory. */
typedef struct {
  uint8_t mem;         /* ot_mem; OT_MEM_NONE = absent optional AP */
  uint8_t dtype;       /* ot_dtype */
  uint8_t ndim;        /* 0..OT_AP_MAX_DIMS free dimensions (0 = one element per partition) */
  uint8_t reg;         /* 1 + register added to offset at run time; 0 = none */
  uint16_t part_start; /* first partition (SBUF/PSUM) */
  uint16_t part_count; /* number of partitions (SBUF/PSUM) */
  uint64_t offset;     /* bytes: within each partition (SBUF/PSUM), or in device HBM */
  ot_dim dim[OT_AP_MAX_DIMS];
} ot_ap;

enum { OT_TAG_IMM = 0, OT_TAG_AP = 1, OT_TAG_REG = 2 };

typedef struct {
  uint8_t tag;         /* VAL: IMM or AP; RI: IMM or REG; others: unused */
  union {
    ot_ap ap;
    float f;
    int32_t i;         /* I32, REG, SEM, QUEUE, LABEL, ALU, ACT, FLAG, RI */
    int32_t pat[OT_AP_MAX_DIMS];
  };
} ot_operand;

typedef struct {
  uint16_t op;         /* ot_opcode */
  uint32_t line;       /* source line of the assembly, 0 if none */
  uint32_t tag;        /* provenance string (program string pool offset), 0 if none */
  ot_operand o[OT_MAX_OPERANDS];
} ot_insn;

/* ---- tables ------------------------------------------------------------------------------ */
typedef struct {
  const char *mnemonic;
  uint32_t engines;                /* OT_ENG_BIT mask */
  ot_cost_class cost;
  const char *synopsis;
  unsigned n_operands;
  const ot_operand_spec *operands;
} ot_opcode_info;

extern const ot_opcode_info ot_opcodes[OT_OP_COUNT];

const char *ot_alu_name(int op);          /* "?" if out of range */
ot_alu_class ot_alu_class_of(int op);
bool ot_alu_reduce_ok(int op);
const char *ot_alu_doc(int op);
const char *ot_act_name(int f);
const char *ot_act_doc(int f);
void ot_act_range(int f, double *lo, double *hi);
const char *ot_cost_formula(ot_cost_class c);
const char *ot_cost_name(ot_cost_class c);
bool ot_opcode_parse(const char *mnemonic, ot_opcode *out);
bool ot_alu_parse(const char *name, int *out);
bool ot_act_parse(const char *name, int *out);
const char *ot_operand_kind_name(ot_operand_kind k);

/* ---- helpers ----------------------------------------------------------------------------- */
/* Elements per partition addressed by an AP (product of the free sizes). */
uint64_t ot_ap_free_elems(const ot_ap *ap);
/* Total elements (partitions x free elements; HBM: free elements). */
uint64_t ot_ap_elems(const ot_ap *ap);
/* Lowest and one-past-highest byte offset touched within a partition / in HBM, ignoring the
** run-time register.  Returns false if the range is not representable (negative). */
bool ot_ap_byte_range(const ot_ap *ap, int64_t *lo, int64_t *hi);

/* Fill an instruction with its opcode's defaults (optional operands, APs absent). */
void ot_insn_init(ot_insn *in, ot_opcode op);

#endif
