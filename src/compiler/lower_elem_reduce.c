/* reduce_sum / reduce_max / reduce_mean over any axis.
**
** x is viewed as [outer, len, inner] around the reduced axis; output element e = o * inner + i.
** Three plans, by layout:
**   - last axis (inner == 1): rows on the partitions, the reduced axis on the free axis, several
**     short rows per partition; VectorE tensor_reduce (a long axis in chunks, then the chunk
**     results);
**   - another axis, sum/mean: the reduced axis on the partitions, 128 of its rows at a time,
**     contiguous [128, inner] loads; TensorE ones^T . tile accumulates every row into PSUM in
**     row order (the reference's order, bit for bit);
**   - another axis, max: the same loads, PE transposes of 128 x 128 blocks into PSUM, VectorE
**     max over the free axis and a running max across row blocks.
** When inner is small and outer large those loads are tiny; then the (o, i) pairs go on the
** partitions and the reduced axis on the free axis through an element-strided DMA, whichever
** is cheaper by the DMA cost model (the strided one pays ~dma.min_efficient_bytes per element).
** A few long rows with inner == 1 (a 1-D loss: reduce_sum of [786432]) would sit on a few
** partitions; each row is spread over s partitions instead (s the largest divisor of len up to
** 128), reduced per partition, and the s partial results combined by a PE transpose into one
** PSUM row and one more reduction (trn2 GPT-2 block's stand-in loss: 829 us -> see
** docs/compiler-kernels.md).
** A short reduced axis (at most 16 rows) over long rows is reduced element-wise, row by row on
** the VectorE (red_rows_plan).
** mean divides by len (as the reference does, not a multiply by 1/len). */
#include <string.h>

#include "compiler/lower_elem_int.h"

#define RED_MAX_F 4096u   /* elements of the reduced axis per tile and partition */
#define RED_COLS 2048u    /* columns of one partition-axis tile: four PSUM banks of fp32 */
#define RED_BUFS 3        /* rotating load buffers */

/* ---- free-axis plan: output elements on the partitions, the reduced axis on the free axis -- */
typedef struct {
  lower_ctx *c;
  const ot_gnode *n;
  kir_hbm x, y;
  uint64_t len, inner;
  uint32_t P, ch, nl, t, tr;
  int alu;
  ot_dtype dt;                      /* on-chip type of the loaded tiles (the tensor's) */
  bool mean;
  kir_buf data[RED_BUFS], res[RED_BUFS];
  kir_buf ones, ps[4];              /* partition plan: ones column, PSUM accumulators / transposes */
} red_run;

/* One tile: np partitions (pattern pst/psz over npd dims), g rows each, reduced axis stride lst. */
static void red_tile(red_run *r, uint64_t e0, uint32_t np, unsigned npd, const int64_t *pst, const uint32_t *psz,
                     uint32_t g, uint64_t base, int64_t lst) {
  kir *k = r->c->k;
  const kir_buf *res = &r->res[r->tr++ % RED_BUFS];
  for (uint32_t j = 0; j < r->nl; j++) {
    const kir_buf *data = &r->data[(r->t + j) % RED_BUFS];
    uint64_t l0 = (uint64_t)j * r->ch;
    uint32_t lw = (uint32_t)(r->len - l0 < r->ch ? r->len - l0 : r->ch);
    int64_t hs[OT_AP_MAX_DIMS];
    uint32_t hz[OT_AP_MAX_DIMS];
    unsigned nd = 0;
    for (unsigned d = 0; d < npd; d++) hs[nd] = pst[d], hz[nd++] = psz[d];
    if (g > 1) hs[nd] = (int64_t)r->len, hz[nd++] = g;
    hs[nd] = lst, hz[nd++] = lw;
    kir_dma(k, elem_tile_dt(data, np, 0, g * lw, r->dt), kir_hbm_ap(&r->x, base + l0 * (uint64_t)lst, nd, hs, hz), OT_ENG_COUNT);
    int32_t ss[2] = {(int32_t)lw, 1};
    uint32_t sz[2] = {g, lw};
    ot_ap src = kir_ap(data, 0, np, 0, r->dt, 2, ss, sz);
    kir_reduce(k, elem_tile(res, np, r->nl > 1 ? 1 + j : 0, g), src, r->alu, 1, false);
  }
  r->t += r->nl;
  if (r->nl > 1) kir_reduce(k, elem_col(res, np, 0), elem_tile(res, np, 1, r->nl), r->alu, 1, false);
  if (r->mean)
    kir_ts(k, OT_ENG_VECTOR, elem_tile(res, np, 0, g), elem_tile(res, np, 0, g), OT_ALU_DIV, (float)r->len, NULL,
           OT_ALU_BYPASS, 0.0f, NULL);
  kir_dma(k, elem_hbm_rows(&r->y, e0, np, g, g), elem_tile(res, np, 0, g), OT_ENG_COUNT);
}

static void red_tiles(red_run *r, uint64_t outer) {
  uint64_t len = r->len, inner = r->inner;
  if (inner == 1) { /* rows on partitions, g short rows per partition */
    uint64_t g = r->nl == 1 ? r->ch / len : 1, per = (outer + r->P - 1) / r->P;
    if (g > per) g = per;
    if (g < 1) g = 1;
    for (uint64_t o0 = 0; o0 < outer && !kir_status(r->c->k);) {
      uint64_t left = outer - o0;
      uint32_t np = 1, gg = (uint32_t)left;
      if (left >= g) { np = (uint32_t)(left / g < r->P ? left / g : r->P); gg = (uint32_t)g; }
      int64_t pst = (int64_t)(gg * len);
      red_tile(r, o0, np, 1, &pst, &np, gg, o0 * len, 1);
      o0 += (uint64_t)np * gg;
    }
    return;
  }
  if (inner <= r->P) { /* (o, i) pairs on partitions */
    uint64_t per = r->P / inner;
    for (uint64_t o0 = 0; o0 < outer && !kir_status(r->c->k); o0 += per) {
      uint32_t no = (uint32_t)(outer - o0 < per ? outer - o0 : per);
      int64_t pst[2] = {(int64_t)(len * inner), 1};
      uint32_t psz[2] = {no, (uint32_t)inner};
      red_tile(r, o0 * inner, no * (uint32_t)inner, 2, pst, psz, 1, o0 * len * inner, (int64_t)inner);
    }
    return;
  }
  for (uint64_t o = 0; o < outer; o++)
    for (uint64_t i0 = 0; i0 < inner && !kir_status(r->c->k); i0 += r->P) {
      uint32_t np = (uint32_t)(inner - i0 < r->P ? inner - i0 : r->P);
      int64_t pst = 1;
      red_tile(r, o * inner + i0, np, 1, &pst, &np, 1, o * len * inner + i0, (int64_t)inner);
    }
}

static ot_status red_free_plan(red_run *r, uint64_t outer) {
  kir *k = r->c->k;
  r->ch = (uint32_t)(r->len < RED_MAX_F ? r->len : RED_MAX_F);
  if (r->inner == 1 && r->len < RED_MAX_F) r->ch = RED_MAX_F; /* room for several short rows */
  r->nl = lower_ceil_div(r->len, r->ch);
  if (r->nl > 4096 || r->inner > INT32_MAX || r->len * r->inner > INT32_MAX)
    return kir_fail(k, OT_EUNSUPPORTED, "reduction over an axis of %llu elements (stride %llu): supported up to %u "
                    "elements and strides below 2^31", (unsigned long long)r->len, (unsigned long long)r->inner,
                    4096u * RED_MAX_F);
  for (unsigned s = 0; s < RED_BUFS; s++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, r->ch * 4u, &r->data[s]);
    uint32_t cols = r->nl + 1;
    if (r->inner == 1 && r->ch > cols) cols = r->ch; /* g short rows: g results per partition */
    kir_alloc(k, OT_MEM_SBUF, r->P, cols * 4u, &r->res[s]);
  }
  if (!kir_status(k)) red_tiles(r, outer);
  return kir_status(k);
}

/* ---- partition-axis plan: rows of the reduced axis on the partitions ------------------------ */
/* Tile [lp, icw]: rows l0.. of the reduced axis for output columns i0.. of outer index o. */
static const kir_buf *redp_load(red_run *r, uint64_t o, uint64_t l0, uint32_t lp, uint64_t i0, uint32_t icw) {
  const kir_buf *data = &r->data[r->t++ % RED_BUFS];
  kir_dma(r->c->k, elem_tile_dt(data, lp, 0, icw, r->dt),
          elem_hbm_rows(&r->x, (o * r->len + l0) * r->inner + i0, lp, r->inner, icw), OT_ENG_COUNT);
  return data;
}

/* sum / mean of one [len, icw] block: ones^T . tile, 512 columns per PSUM bank, all row tiles
** accumulating (acc=1 after the first) so PSUM adds the rows in order. */
static void redp_sum_block(red_run *r, uint64_t o, uint64_t i0, uint32_t icw) {
  kir *k = r->c->k;
  uint32_t nsub = lower_ceil_div(icw, 512);
  for (uint64_t l0 = 0; l0 < r->len && !kir_status(k); l0 += r->P) {
    uint32_t lp = (uint32_t)(r->len - l0 < r->P ? r->len - l0 : r->P);
    const kir_buf *data = redp_load(r, o, l0, lp, i0, icw);
    for (uint32_t j = 0; j < nsub; j++) {
      uint32_t sw = icw - j * 512 < 512 ? icw - j * 512 : 512;
      ot_ap dst = kir_ap2(&r->ps[j], 1, 0, sw, OT_DT_FP32), mov = elem_tile_dt(data, lp, j * 512, sw, r->dt);
      if (j == 0) { kir_matmul(k, dst, elem_tile_dt(&r->ones, lp, 0, 1, r->dt), mov, l0 > 0); continue; }
      ot_insn mm; /* same stationary: MultiplyMoving only */
      ot_insn_init(&mm, OT_OP_MATMUL);
      mm.o[0].ap = dst;
      mm.o[1].ap = mov;
      mm.o[2].i = l0 > 0;
      kir_emit(k, OT_ENG_TENSOR, &mm);
    }
  }
  const kir_buf *res = &r->res[r->tr++ % 2];
  for (uint32_t j = 0; j < nsub; j++) {
    uint32_t sw = icw - j * 512 < 512 ? icw - j * 512 : 512;
    ot_ap dst = kir_ap2(res, 1, j * 512, sw, OT_DT_FP32), src = kir_ap2(&r->ps[j], 1, 0, sw, OT_DT_FP32);
    if (r->mean) kir_ts(k, OT_ENG_VECTOR, dst, src, OT_ALU_DIV, (float)r->len, NULL, OT_ALU_BYPASS, 0.0f, NULL);
    else kir_copy(k, OT_ENG_VECTOR, dst, src);
  }
  int64_t st = 1;
  kir_dma(k, kir_hbm_ap(&r->y, o * r->inner + i0, 1, &st, &icw), kir_ap2(res, 1, 0, icw, OT_DT_FP32), OT_ENG_COUNT);
}

/* max of one [len, icw] block: 128 x 128 PE transposes, max along the free axis, running max
** over the row tiles (columns 0.. of res; columns nsub.. hold a row tile's maxima). */
static void redp_max_block(red_run *r, uint64_t o, uint64_t i0, uint32_t icw) {
  kir *k = r->c->k;
  uint32_t nsub = lower_ceil_div(icw, r->P);
  const kir_buf *res = &r->res[r->tr++ % 2];
  for (uint64_t l0 = 0; l0 < r->len && !kir_status(k); l0 += r->P) {
    uint32_t lp = (uint32_t)(r->len - l0 < r->P ? r->len - l0 : r->P);
    const kir_buf *data = redp_load(r, o, l0, lp, i0, icw);
    for (uint32_t j = 0; j < nsub; j++) {
      uint32_t ib = icw - j * r->P < r->P ? icw - j * r->P : r->P;
      const kir_buf *tp = &r->ps[r->tr++ % 2];
      kir_transpose(k, kir_ap2(tp, ib, 0, lp, OT_DT_FP32), elem_tile_dt(data, lp, j * r->P, ib, r->dt));
      ot_ap run = elem_col(res, ib, j), part = elem_col(res, ib, nsub + j);
      kir_reduce(k, l0 ? part : run, kir_ap2(tp, ib, 0, lp, OT_DT_FP32), OT_ALU_MAX, 1, false);
      if (l0) kir_tt(k, OT_ENG_VECTOR, run, run, part, OT_ALU_MAX);
    }
  }
  for (uint32_t j = 0; j < nsub; j++) {
    uint32_t ib = icw - j * r->P < r->P ? icw - j * r->P : r->P;
    int64_t st = 1;
    kir_dma(k, kir_hbm_ap(&r->y, o * r->inner + i0 + (uint64_t)j * r->P, 1, &st, &ib), elem_col(res, ib, j),
            OT_ENG_COUNT);
  }
}

static ot_status red_part_plan(red_run *r, uint64_t outer) {
  kir *k = r->c->k;
  uint32_t icb = (uint32_t)(r->inner < RED_COLS ? r->inner : RED_COLS);
  bool max = r->alu == OT_ALU_MAX;
  for (unsigned s = 0; s < RED_BUFS; s++) kir_alloc(k, OT_MEM_SBUF, r->P, icb * 4u, &r->data[s]);
  for (unsigned s = 0; s < 2; s++) kir_alloc(k, OT_MEM_SBUF, r->P, (max ? 2 * lower_ceil_div(icb, r->P) : icb) * 4u, &r->res[s]);
  if (max) {
    for (unsigned s = 0; s < 2; s++) kir_alloc(k, OT_MEM_PSUM, r->P, r->P * 4u, &r->ps[s]);
  } else {
    kir_alloc(k, OT_MEM_SBUF, r->P, 4, &r->ones);
    kir_memset(k, OT_ENG_GPSIMD, elem_tile_dt(&r->ones, r->P, 0, 1, r->dt), 1.0f); /* bf16 data: bf16 ones, full PE rate */
    for (uint32_t j = 0; j < lower_ceil_div(icb, 512); j++) kir_alloc(k, OT_MEM_PSUM, 1, 2048, &r->ps[j]);
  }
  for (uint64_t o = 0; o < outer && !kir_status(k); o++)
    for (uint64_t i0 = 0; i0 < r->inner && !kir_status(k); i0 += icb) {
      uint32_t icw = (uint32_t)(r->inner - i0 < icb ? r->inner - i0 : icb);
      if (max) redp_max_block(r, o, i0, icw);
      else redp_sum_block(r, o, i0, icw);
    }
  return kir_status(k);
}

/* ---- spread plan: a few long rows (a 1-D loss), each over up to 128 partitions ------------ */
/* The largest divisor of len that is at most P: a row of len elements as [s, len / s]. */
static uint32_t red_spread_parts(uint64_t len, uint32_t P) {
  for (uint32_t s = P; s > 1; s--)
    if (len % s == 0) return s;
  return 1;
}

/* Worth it when the rows-on-partitions plan would use few partitions for a long row: fewer than
** 8 rows, at least 8192 elements each, spread over at least 32 partitions. */
static bool red_use_spread(const red_run *r, uint64_t outer, uint32_t *s) {
  if (r->inner != 1 || outer >= 8 || r->len < 8192) return false;
  *s = red_spread_parts(r->len, r->P);
  return *s >= 32 && r->len / *s <= (uint64_t)4096 * RED_MAX_F;
}

/* Row o as [s, len/s]: per-partition results in chunks of RED_MAX_F on the VectorE, then a PE
** transpose of the [s, 1] column into a PSUM row and one reduction of that row. */
static void red_spread_row(red_run *r, uint64_t o, uint32_t s) {
  kir *k = r->c->k;
  uint64_t per = r->len / s;
  const kir_buf *res = &r->res[r->tr++ % 2], *fin = &r->res[2];
  for (uint32_t j = 0; j < r->nl; j++) {
    const kir_buf *data = &r->data[r->t++ % RED_BUFS];
    uint64_t l0 = (uint64_t)j * r->ch;
    uint32_t lw = (uint32_t)(per - l0 < r->ch ? per - l0 : r->ch);
    kir_dma(k, elem_tile_dt(data, s, 0, lw, r->dt), elem_hbm_rows(&r->x, o * r->len + l0, s, per, lw), OT_ENG_COUNT);
    kir_reduce(k, elem_col(res, s, r->nl > 1 ? 1 + j : 0), elem_tile_dt(data, s, 0, lw, r->dt), r->alu, 1, false);
  }
  if (r->nl > 1) kir_reduce(k, elem_col(res, s, 0), elem_tile(res, s, 1, r->nl), r->alu, 1, false);
  ot_ap row = kir_ap2(&r->ps[0], 1, 0, s, OT_DT_FP32), y = elem_col(fin, 1, 0);
  kir_transpose(k, row, elem_col(res, s, 0));
  kir_reduce(k, y, row, r->alu, 1, false);
  if (r->mean) kir_ts(k, OT_ENG_VECTOR, y, y, OT_ALU_DIV, (float)r->len, NULL, OT_ALU_BYPASS, 0.0f, NULL);
  int64_t st = 1;
  uint32_t one = 1;
  kir_dma(k, kir_hbm_ap(&r->y, o, 1, &st, &one), y, OT_ENG_COUNT);
}

static ot_status red_spread_plan(red_run *r, uint64_t outer, uint32_t s) {
  kir *k = r->c->k;
  uint64_t per = r->len / s;
  r->ch = (uint32_t)(per < RED_MAX_F ? per : RED_MAX_F);
  r->nl = lower_ceil_div(per, r->ch);
  for (unsigned b = 0; b < RED_BUFS; b++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, r->ch * 4u, &r->data[b]);
    kir_alloc(k, OT_MEM_SBUF, r->P, (r->nl + 1) * 4u, &r->res[b]);
  }
  kir_alloc(k, OT_MEM_PSUM, 1, 2048, &r->ps[0]);
  for (uint64_t o = 0; o < outer && !kir_status(k); o++) red_spread_row(r, o, s);
  return kir_status(k);
}

/* ---- few-rows plan: a short reduced axis over long rows ------------------------------------ */
/* The position-embedding gradient sums B rows of S*D: the partition plan would put B rows on B
** partitions and the TensorE would pass 512 columns at a time with a K of B.  Instead each output
** block of np x f consecutive elements is the element-wise reduction of its len rows, loaded as
** [np, f] tiles and combined on the VectorE in row order: (x0 + x1) + x2 ..., the reference's
** order. */
#define RED_FEW_ROWS 16u
#define RED_ROWS_F 2048u

static bool red_use_rows(const red_run *r) {
  return r->inner > 1 && r->len >= 2 && r->len <= RED_FEW_ROWS && r->inner >= (uint64_t)r->P * 64;
}

/* Output elements [i0, i0 + np * f) of outer index o. */
static void red_rows_block(red_run *r, uint64_t o, uint64_t i0, uint32_t np, uint32_t f) {
  kir *k = r->c->k;
  const kir_buf *res = &r->res[r->tr++ % RED_BUFS];
  ot_ap acc = elem_tile(res, np, 0, f), prev = acc;
  for (uint64_t l = 0; l < r->len && !kir_status(k); l++) {
    const kir_buf *data = &r->data[r->t++ % RED_BUFS];
    ot_ap x = elem_tile_dt(data, np, 0, f, r->dt);
    kir_dma(k, x, elem_hbm_rows(&r->x, (o * r->len + l) * r->inner + i0, np, f, f), OT_ENG_COUNT);
    if (l > 0) kir_tt(k, OT_ENG_VECTOR, acc, prev, x, r->alu);
    prev = l > 0 ? acc : x;
  }
  if (r->mean) kir_ts(k, OT_ENG_VECTOR, acc, acc, OT_ALU_DIV, (float)r->len, NULL, OT_ALU_BYPASS, 0.0f, NULL);
  kir_dma(k, elem_hbm_rows(&r->y, o * r->inner + i0, np, f, f), acc, OT_ENG_COUNT);
}

static ot_status red_rows_plan(red_run *r, uint64_t outer) {
  kir *k = r->c->k;
  for (unsigned s = 0; s < RED_BUFS; s++) {
    kir_alloc(k, OT_MEM_SBUF, r->P, RED_ROWS_F * 4u, &r->data[s]);
    kir_alloc(k, OT_MEM_SBUF, r->P, RED_ROWS_F * 4u, &r->res[s]);
  }
  for (uint64_t o = 0; o < outer && !kir_status(k); o++)
    for (uint64_t i0 = 0; i0 < r->inner && !kir_status(k);) {
      uint64_t left = r->inner - i0, f = left / r->P < RED_ROWS_F ? left / r->P : RED_ROWS_F;
      if (f == 0) { red_rows_block(r, o, i0, 1, (uint32_t)left); break; }
      red_rows_block(r, o, i0, r->P, (uint32_t)f);
      i0 += (uint64_t)r->P * f;
    }
  return kir_status(k);
}

/* The partition plan when its DMAs (one per [128, <=2048] block, ~dma.issue_ns each on the Sync
** engine) cost less than the element-strided free-axis plan (every 4-byte run pays the
** small-transfer overhead). */
static bool red_use_partitions(const red_run *r, uint64_t outer) {
  const ot_chip *chip = r->c->chip;
  if (r->inner == 1) return false;
  double bw = (double)chip->dma.engines * chip->dma.engine_gbps; /* bytes per ns */
  double total = (double)outer * (double)r->len * (double)r->inner;
  double strided = total * (4.0 + chip->dma.min_efficient_bytes) / bw;
  double tiles = (double)outer * lower_ceil_div(r->inner, RED_COLS) * lower_ceil_div(r->len, r->P);
  double part = tiles * (chip->dma.issue_ns + 100.0) + total * 4.0 / bw;
  return part < strided;
}

ot_status lower_elem_reduce(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = elem_in(c, n, 0);
  red_run r;
  memset(&r, 0, sizeof r);
  r.c = c;
  r.n = n;
  r.x = c->hbm[n->in[0]];
  r.y = c->hbm[n->out[0]];
  r.P = elem_parts(c);
  r.alu = n->op == OT_GOP_REDUCE_MAX ? OT_ALU_MAX : OT_ALU_ADD;
  r.mean = n->op == OT_GOP_REDUCE_MEAN;
  r.dt = elem_load_dtype(&r.x);
  uint64_t outer;
  elem_around(x, (unsigned)n->i[0], &outer, &r.len, &r.inner);
  uint32_t spread = 1;
  if (red_use_spread(&r, outer, &spread)) red_spread_plan(&r, outer, spread);
  else if (red_use_rows(&r)) red_rows_plan(&r, outer);
  else if (red_use_partitions(&r, outer)) red_part_plan(&r, outer);
  else red_free_plan(&r, outer);
  for (unsigned s = 0; s < RED_BUFS; s++) {
    kir_release(c->k, &r.data[s]);
    kir_release(c->k, &r.res[s]);
  }
  for (unsigned s = 0; s < 4; s++) kir_release(c->k, &r.ps[s]);
  kir_release(c->k, &r.ones);
  return kir_status(c->k);
}
