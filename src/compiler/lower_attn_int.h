/* Shared by the attention-family lowerings (lower_attn*.c): the entry points of each file and
** small tile helpers. */
#ifndef OT_COMPILER_LOWER_ATTN_INT_H
#define OT_COMPILER_LOWER_ATTN_INT_H

#include "compiler/kir_attn.h"
#include "compiler/lower.h"

#define KCHUNK 512u              /* keys per score chunk: one fp32 PSUM bank */
#define RESIDENT_BUDGET (128u * 1024u)
#define ATTN_MASKS 4u             /* KCHUNK / 128: diagonal offsets of a chunk */
#define ATTN_NEG_FILL (-1.0e30f) /* masked scores: finite, so exp() gives 0 and no Inf is ever stored */

ot_status lower_attention(lower_ctx *c, const ot_gnode *n);
ot_status lower_attention_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_rope(lower_ctx *c, const ot_gnode *n);
ot_status lower_embedding(lower_ctx *c, const ot_gnode *n);
ot_status lower_embedding_bwd(lower_ctx *c, const ot_gnode *n);
ot_status lower_cross_entropy(lower_ctx *c, const ot_gnode *n);
ot_status lower_cross_entropy_bwd(lower_ctx *c, const ot_gnode *n);

/* ---- attention (lower_attn.c, shared with lower_attn_bwd.c) ------------------------------- */
/* Where element (b, h, s, d) of a [B, H, S, D] operand lies in its HBM tensor: off + b sb + h sh
** + s ss + d (elements).  Contiguous unless compile.c folded a head split or merge into the
** attention (fuse_attention_views): then rows are H*D (or the split input's row) apart. */
typedef struct {
  uint64_t off, sb, sh, ss;
} attn_view;

typedef struct {
  uint32_t B, Hq, Hkv, S, D;
  float scale;
  bool causal;
  kir_hbm q, k, v, y;
  attn_view vq, vk, vv, vy;     /* layouts (attention_bwd: vy is dq's; lower_attn_bwd.c sets its own) */
  ot_dtype mm, ydt;
} attn_shape;

/* Stats columns (fp32) of a query tile: negated running max (two, ping-pong), negated chunk max, unused,
** rescale factor, chunk row sum, running row sum; the backward adds its own after ST_COLS. */
enum { ST_M0, ST_M1, ST_CMAX, ST_NBIAS, ST_ALPHA, ST_RSUM, ST_L, ST_COLS };

void attn_shape_read(lower_ctx *c, const ot_gnode *n, attn_shape *a);
/* Where tensor t's [B, H, S, D] elements lie when compile.c folded the head views around an
** attention or its backward: read through a head split (input), written through a head merge
** (output, maybe into columns of a folded concat); the contiguous layout otherwise. */
attn_view attn_view_input(const lower_ctx *c, ot_tid t, uint32_t S, uint32_t D);
attn_view attn_view_output(const lower_ctx *c, ot_tid y, uint32_t S, uint32_t D);
/* Element offset of row s of head h of batch b in a view. */
static inline uint64_t attn_view_at(const attn_view *v, uint32_t b, uint32_t h, uint32_t s) {
  return v->off + b * v->sb + h * v->sh + s * v->ss;
}
/* Limits of the tile plans (D on the PE rows, 128-row tiles, PSUM bank, `resident` bytes per
** partition kept per kv head), checked before any emission. */
ot_status attn_check(kir *k, const attn_shape *a, uint32_t P, const char *what, uint64_t resident);
/* `rows` rows of `cols` elements (HBM rows `stride` elements apart from element eoff of t) to or
** from buf as tiles: row i on partition i % P at element column boff + (i / P) x cols, type dt;
** one DMA for the full tiles, one for a partial last tile. */
void attn_tiles_dma(kir *k, const kir_buf *buf, uint32_t boff, ot_dtype dt, const kir_hbm *t, uint64_t eoff, uint32_t rows,
                    uint32_t cols, uint64_t stride, bool store);
/* The S rows [S, D] at element `base` of t into nat [P, ceil(S/P) x D] (tile kt at column kt*D,
** row kt*P + p on partition p), in one DMA for the full tiles and one for a partial last tile. */
void attn_load_tiles(kir *k, const attn_shape *a, const kir_hbm *t, uint64_t base, const kir_buf *nat);
/* dstT [D, S] = the tiles of nat transposed through the PE, as many tiles per PSUM buffer tp
** as fit, one copy out of PSUM per buffer (ScalarE and VectorE alternating). */
void attn_transpose_tiles(kir *k, const attn_shape *a, const kir_buf *nat, const kir_buf *tp, const kir_buf *dstT);
/* Q^T [D, nq] = transpose of the Q rows (qn from element column qcol) through PSUM tp, times
** scale (so scores come out scaled: the online softmax then needs no multiply). */
void attn_make_qT(kir *k, const attn_shape *a, const kir_buf *tp, const kir_buf *qn, uint32_t qcol, uint32_t nq,
                  const kir_buf *qT);
/* The causal masks of diagonal chunks, in the matmul type: ATTN_MASKS tiles [P, KCHUNK], tile v
** = 0 where key j <= query p + v*P, else ATTN_NEG_FILL, then the identity [P, P] (GpSimd memset
** + affine_select, once per node). */
void attn_masks_init(kir *k, const kir_buf *masks, uint32_t P, ot_dtype mm);
/* Scaled scores S = (scale Q) K^T for keys [c0, c0+nk) of the query tile [q0, q0+nq) into sps
** (fp32 PSUM); a chunk crossing the causal diagonal gets its mask accumulated onto S by a second
** matmul (identity stationary; q0 - c0 is a multiple of P below KCHUNK there).  Returns S. */
ot_ap attn_scores(kir *k, const attn_shape *a, const kir_buf *sps, const kir_buf *masks, ot_ap qT, const kir_buf *kT,
                  uint32_t q0, uint32_t nq, uint32_t c0, uint32_t nk);
/* One online-softmax step over the scaled scores src [nq, nk], keeping the NEGATED running max
** -m in column mcol: -m' = min(-m, -rowmax), pdst = exp(src - m'), l = l exp(m - m') + rowsum
** (first: -m = -rowmax, l = rowsum).  Returns the column holding -m'; ST_ALPHA holds exp(m - m'). */
uint32_t attn_online_chunk(kir *k, const kir_buf *st, uint32_t mcol, bool first, ot_ap src, uint32_t nq, ot_ap pdst);
/* The transposed-score forward (lower_attn_fwd.c): whether its tile plan fits the chip (D + 1 on
** the PE rows, its PSUM banks), and the lowering itself. */
bool attn_fwd_t_fits(const ot_chip *chip, const attn_shape *a);
ot_status lower_attention_t(lower_ctx *c, const attn_shape *a, const kir_hbm *saved);
/* The statistics a transposed forward saved for its backward n (node.forward, same shape):
** "<forward>.stats" [2, B x Hq x S] fp32, row 0 the -m each query row's exps used, row 1 their
** sum l.  False where the forward kept none (the online kernel, or no backward when it ran). */
bool attn_saved_stats(lower_ctx *c, const ot_gnode *n, const attn_shape *a, kir_hbm *out);

static inline uint32_t attn_esz(ot_dtype t) { return (uint32_t)ot_dtype_size(t); }

/* Partitions usable by a tile: the PE array's rows, at most the SBUF's partitions. */
static inline uint32_t attn_parts(const ot_chip *chip) {
  return chip->tensor.rows < chip->sbuf.partitions ? chip->tensor.rows : chip->sbuf.partitions;
}

/* Bytes per partition of one PSUM bank. */
static inline uint32_t attn_bank_bytes(const ot_chip *chip) {
  return (uint32_t)(chip->psum.bytes_per_partition / (chip->psum.banks ? chip->psum.banks : 1));
}

/* Column `col` (fp32) of a stats buffer on partitions [0, np): a per-partition [P,1] operand. */
static inline ot_ap attn_col(const kir_buf *b, uint32_t np, uint32_t col) {
  return kir_ap2(b, np, col, 1, OT_DT_FP32);
}

/* DMA `rows` rows of `cols` elements (HBM row stride `stride`) at element offset eoff of t
** into buf (partition = row) at element offset boff, cast to dt. */
static inline ot_status attn_load_rows(kir *k, const kir_buf *buf, uint32_t boff, ot_dtype dt, const kir_hbm *t,
                                       uint64_t eoff, uint32_t rows, uint32_t cols, uint64_t stride) {
  int64_t hs[2] = {(int64_t)stride, 1};
  uint32_t hz[2] = {rows, cols};
  return kir_dma(k, kir_ap2(buf, rows, boff, cols, dt), kir_hbm_ap(t, eoff, 2, hs, hz), OT_ENG_COUNT);
}

/* The reverse: rows of buf into HBM (issued by the engine that wrote them). */
static inline ot_status attn_store_rows(kir *k, const kir_hbm *t, uint64_t eoff, uint64_t stride, const kir_buf *buf,
                                        uint32_t boff, ot_dtype dt, uint32_t rows, uint32_t cols) {
  int64_t hs[2] = {(int64_t)stride, 1};
  uint32_t hz[2] = {rows, cols};
  return kir_dma(k, kir_hbm_ap(t, eoff, 2, hs, hz), kir_ap2(buf, rows, boff, cols, dt), OT_ENG_COUNT);
}

/* src [np partitions, nf <= 128 elements] (SBUF, type dt) through the PE array into PSUM tp at
** element offset tpoff, then copied by engine e into dst [nf partitions, np] at element
** offset doff (type ddt). */
static inline ot_status attn_transpose(kir *k, ot_engine e, const kir_buf *tp, uint32_t tpoff, ot_ap src, uint32_t np,
                                       uint32_t nf, ot_dtype dt, const kir_buf *dst, uint32_t doff, ot_dtype ddt) {
  kir_transpose(k, kir_ap2(tp, nf, tpoff, np, dt), src);
  return kir_copy(k, e, kir_ap2(dst, nf, doff, np, ddt), kir_ap2(tp, nf, tpoff, np, dt));
}

#endif
