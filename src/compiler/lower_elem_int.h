/* Shared by the element-wise, row-wise and data-movement lowerings (lower_elem*.c).
**
** Two tilings cover every op:
**   - flat (elem_pw_run): the output is a flat array of `total` elements, optionally with
**     operands that repeat with period d (a [d] vector broadcast over leading dims).  Each tile
**     is np partitions x f elements, f a whole number of periods (or a column chunk of one
**     long period), so any shape fills the 128 partitions whatever its last dim;
**   - rows (elem_rows_run): [rows, d] with one row per partition, the whole row on the free
**     axis, for ops that reduce along the last axis (softmax, norms and their gradients).
** Both compute in fp32: inputs are loaded in their own type (bf16 stays bf16 on chip: the
** engines read it exactly, and the load moves half the bytes), results are written as fp32
** tiles and rounded once by the store DMA into a bf16 tensor (round to nearest even),
** rotate ELEM_BUFS buffer sets so that loads run ahead of compute, and issue loads on the Sync
** engine and stores from the engine that wrote the tile (kir_dma with OT_ENG_COUNT). */
#ifndef OT_COMPILER_LOWER_ELEM_INT_H
#define OT_COMPILER_LOWER_ELEM_INT_H

#include "compiler/kir_more.h"
#include "compiler/lower.h"

#define ELEM_BUFS 16  /* rotating buffer sets: two groups of ELEM_GROUP tiles in flight */
#define ELEM_GROUP 4
#define ELEM_MAX_IO 4
#define ELEM_MAX_TMP 4
#define ELEM_PSUM_CHUNKS 4  /* PSUM banks per broadcast vector (d <= 4 banks of fp32) */
#define ELEM_SBUF_BUDGET (192u * 1024u)  /* bytes per partition one op may use */

/* ---- small helpers (lower_elem.c) ---------------------------------------------------------- */
uint32_t elem_parts(const lower_ctx *c);
const ot_gtensor *elem_in(const lower_ctx *c, const ot_gnode *n, unsigned k);
const ot_gtensor *elem_out(const lower_ctx *c, const ot_gnode *n, unsigned k);
/* Elements of the last dim, and the product of the others. */
uint64_t elem_last(const ot_gtensor *t);
uint64_t elem_rows(const ot_gtensor *t);
/* fp32 [np, n] at element offset eoff of an on-chip buffer. */
ot_ap elem_tile(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n);
/* [np, n] of type dt at element offset eoff; the on-chip type an input tile of t is loaded as. */
ot_ap elem_tile_dt(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n, ot_dtype dt);
ot_dtype elem_load_dtype(const kir_hbm *t);
/* fp32 [np, 1] column col of a buffer (per-partition scalars). */
ot_ap elem_col(const kir_buf *b, uint32_t np, uint32_t col);
/* HBM: np consecutive rows of n elements each, rows `stride` elements apart, from element eoff. */
ot_ap elem_hbm_rows(const kir_hbm *t, uint64_t eoff, uint32_t np, uint64_t stride, uint32_t n);
/* t as outer x len x inner around axis. */
void elem_around(const ot_gtensor *t, unsigned axis, uint64_t *outer, uint64_t *len, uint64_t *inner);
/* The bytes per partition an op may still allocate. */
uint32_t elem_sbuf_avail(const lower_ctx *c);
/* An engine for the tile-th element-wise instruction: VectorE and GpSimd alternate. */
ot_engine elem_alt_engine(uint32_t tile);

/* ---- flat element-wise tiling (lower_elem_pw.c) -------------------------------------------- */
typedef struct elem_pw elem_pw;
/* The body of a flat op: a short program of tile instructions, each reading and writing whole
** [np, f] tiles named by slot: ELEM_X(k) input k, ELEM_Y(k) output k, ELEM_T(k) scratch k.  The
** driver interleaves the programs of ELEM_GROUP tiles instruction by instruction, so that while
** one engine waits for another on tile t it works on tile t+1 (each engine's stream is
** in-order). */
enum { ELEM_TT, ELEM_TS, ELEM_ACT, ELEM_STT };
#define ELEM_X(k) (k)
#define ELEM_Y(k) (ELEM_MAX_IO + (k))
#define ELEM_T(k) (2 * ELEM_MAX_IO + (k))
#define ELEM_ALT ((uint8_t)OT_ENG_COUNT)         /* VectorE / GpSimd, alternating by tile */
#define ELEM_ALT2 ((uint8_t)(OT_ENG_COUNT + 1))  /* the other one of the two */
#define ELEM_PROG_MAX 20

typedef struct {
  uint8_t kind, eng;     /* ELEM_TT...; an ot_engine or ELEM_ALT / ELEM_ALT2 */
  uint8_t dst, a, b;     /* slots (b: TT, STT) */
  uint8_t op0, op1;      /* ALU ops (TT: op0; TS: op0, op1; STT: op0, op1) */
  uint8_t func;          /* ACT: activation function */
  float s0, s1;          /* TS / STT immediates; ACT: s0 = scale */
} elem_insn;

struct elem_pw {
  lower_ctx *c;
  const ot_gnode *n;
  unsigned n_in, n_out, n_tmp;
  kir_hbm in[ELEM_MAX_IO];
  bool in_bcast[ELEM_MAX_IO];   /* a [d] vector repeated over the rows */
  kir_hbm out[ELEM_MAX_IO];
  uint64_t total, d;            /* output elements; period of the broadcast inputs (1: none) */
  elem_insn prog[ELEM_PROG_MAX];
  unsigned n_prog;
};
ot_status elem_pw_run(elem_pw *pw);
/* One program instruction on tiles ap[slot]; t picks the engine of ELEM_ALT / ELEM_ALT2. */
void elem_insn_exec(kir *k, uint32_t t, const ot_ap *ap, const elem_insn *in);
/* pw->n's (a gelu_bwd / silu_bwd) program: dy = ELEM_X(1), x = ELEM_X(0), dx = ELEM_Y(0); sets n_tmp. */
void elem_act_bwd_body(elem_pw *pw);

/* ---- row tiling (lower_elem_rows.c) -------------------------------------------------------- */
typedef struct elem_rowop elem_rowop;

/* A body may compute a tile in one of several ways that load the engines differently; each tile
** takes the way that keeps the busiest engine least busy so far (elem_balance_pick), from
** estimated engine time per tile.  Deterministic: it depends on shapes and the chip only. */
#define ELEM_MAX_WAYS 2
typedef struct {
  unsigned n;                                 /* ways (0: the body has one) */
  double cost[ELEM_MAX_WAYS][OT_ENG_COUNT];   /* estimated ns per tile on each engine */
  bool pool_vector_gpsimd;                    /* they share one SBUF port: count them as one engine */
  double load[OT_ENG_COUNT];                  /* so far */
} elem_balance;
/* Emit step `step` of a tile's computation; false when the body has fewer steps.  The driver
** interleaves the steps of ELEM_GROUP tiles (see elem_insn). */
typedef bool (*elem_row_body)(elem_rowop *r, unsigned step, uint32_t tile, uint32_t np, const ot_ap *in,
                              const ot_ap *out, const ot_ap *tmp, const kir_buf *small);

struct elem_rowop {
  lower_ctx *c;
  const ot_gnode *n;
  uint64_t rows;
  uint32_t d, ntiles;
  unsigned n_in, n_out, n_tmp, n_vec, n_small;
  bool in_place;                /* out[0] shares in[0]'s buffer */
  bool out_narrow;              /* the body's last step writes output 0 into in[0]'s tile, in the
                                ** output's 16-bit type: the store moves half the bytes */
  bool in_order;                /* emit in this order, not list-scheduled (kir_window_order) */
  kir_hbm in[ELEM_MAX_IO], out[ELEM_MAX_IO], vec_src[2];
  kir_buf vec[2];               /* [P, d] broadcast vectors (gamma, beta), loaded once */
  bool vec_psum;                /* also copy them into PSUM (ELEM_PSUM_VECS; see elem_rows_pvec) */
  unsigned n_pchunk;            /* PSUM chunks per vector (0: the vectors stay in SBUF only) */
  uint32_t pchunk;              /* elements per PSUM chunk (a bank) */
  kir_buf pvec[2][ELEM_PSUM_CHUNKS];
  kir_buf ones, acc[2];         /* column sums over all rows (norm gradients): ones [P,1], PSUM */
  unsigned n_acc;
  kir_hbm acc_out[2];
  elem_row_body body;
  float eps;
  unsigned stage2;               /* the body's second stage starts at this step (0: one stage) */
  elem_balance bal;
  bool store_sync;              /* the Sync engine issues the stores, one group late (else the writer) */
  uint8_t way[ELEM_BUFS];       /* per tile in flight (tile % ELEM_BUFS): the way it is computed */
};
ot_status elem_rows_run(elem_rowop *r);
/* Add column sums of src [np, d] (fp32, on chip) into accumulator a over all tiles (TensorE:
** src^T . ones, 128 columns per matmul, accumulating in PSUM in row order). */
void elem_rows_colsum(elem_rowop *r, unsigned a, uint32_t tile, uint32_t np, const ot_ap *src);
/* dst = dst op vec[j] on the VectorE: from the PSUM copy when there is one (a tensor_tensor with
** one PSUM input costs N cycles, two SBUF fp32 inputs 2N), else from SBUF. */
void elem_rows_vec_op(elem_rowop *r, unsigned j, uint32_t np, const ot_ap *dst, int alu);
/* dst = src op vec[j], likewise (dst may have another type than src). */
void elem_rows_vec_op2(elem_rowop *r, unsigned j, uint32_t np, const ot_ap *dst, const ot_ap *src, int alu);

/* ---- lowerings --------------------------------------------------------------------------- */
ot_status lower_elem_binary(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_unary(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_swiglu(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_act_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_swiglu_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_cast(lower_ctx *c, const ot_gnode *n);

ot_status lower_elem_softmax(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_softmax_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_layernorm(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_layernorm_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_rmsnorm(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_rmsnorm_bwd(lower_ctx *c, const ot_gnode *n);

ot_status lower_elem_reduce(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_transpose(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_concat(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_split(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_slice(lower_ctx *c, const ot_gnode *n);
ot_status lower_elem_broadcast(lower_ctx *c, const ot_gnode *n);

#endif
