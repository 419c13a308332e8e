/* The data a DMA moves (dma_copy, dma_transpose, dma_gather, dma_scatter_add); when it moves is
** sim_dma.c's business.
**
** dma_copy streams: same-type copies move raw bytes run by run (memcpy over the contiguous
** parts, HBM page by page), casts go src -> fp32 -> dst in chunks.  A DMA whose source and
** destination byte ranges may overlap is staged whole first, so it always behaves as if every
** source element was read before any destination element was written.
**
** dma_gather / dma_scatter_add validate every index before touching memory (an out-of-range
** index writes nothing), then move one table row per index, in index order. */
#include <math.h>
#include <string.h>

#include "sim/sim_dma.h"
#include "sim/sim_exec_int.h"

#define DMA_CHUNK 4096                  /* elements per staged chunk */
#define DMA_MAX_ELEMS (1ull << 32)      /* bounds what an unverified descriptor can make us do */

/* Conservative linear byte range [lo, hi) a view may touch. */
static void dma_extent(const ot_mem_ctx *m, const ot_view *v, uint64_t *lo, uint64_t *hi) {
  const ot_sram *s = ot_mem_sram(m, v->mem);
  uint64_t pb = s ? s->part_bytes : 0;
  int64_t mn = 0, mx = (int64_t)v->esize;
  for (unsigned d = 0; d < v->ndim; d++) {
    int64_t span = v->stride[d] * (int64_t)(v->size[d] ? v->size[d] - 1 : 0);
    if (span < 0) mn += span; else mx += span;
  }
  *lo = (uint64_t)v->part_start * pb + (uint64_t)((int64_t)v->offset + mn);
  *hi = (uint64_t)(v->part_start + v->parts - 1) * pb + (uint64_t)((int64_t)v->offset + mx);
}

static bool dma_may_overlap(const ot_mem_ctx *m, const ot_view *d, const ot_view *s) {
  if (d->mem != s->mem) return false;
  uint64_t dl, dh, sl, sh;
  dma_extent(m, d, &dl, &dh);
  dma_extent(m, s, &sl, &sh);
  return dl < sh && sl < dh;
}

/* Same type, no overlap: raw bytes, run against run. */
static ot_status dma_copy_raw(ot_exec_op *e) {
  const ot_mem_ctx *m = &e->x->mem;
  const ot_view *d = &e->v[1], *s = &e->v[2];
  ot_view_cursor dc, sc;
  ot_view_cursor_init(&dc, m, d);
  ot_view_cursor_init(&sc, m, s);
  ot_view_run dr = {0, 0, 0}, sr = {0, 0, 0};
  ot_status st = OT_OK;
  for (;;) {
    if (!dr.n && !ot_view_cursor_next(&dc, UINT64_MAX, &dr)) break;
    if (!sr.n && !ot_view_cursor_next(&sc, UINT64_MAX, &sr)) break;
    uint64_t k = dr.n < sr.n ? dr.n : sr.n;
    if (ot_mem_copy_run(m, d->mem, &dr, s->mem, &sr, k, d->esize) != OT_OK) st = OT_ENOMEM;
    dr.addr += (uint64_t)((int64_t)k * dr.stride), dr.n -= k;
    sr.addr += (uint64_t)((int64_t)k * sr.stride), sr.n -= k;
  }
  return st;
}

/* Chunk by chunk through 32-bit lanes: casts (RNE), and every copy under the NaN/Inf trap. */
static ot_status dma_copy_chunked(ot_exec_op *e) {
  const ot_mem_ctx *m = &e->x->mem;
  const ot_view *d = &e->v[1], *s = &e->v[2];
  ot_cvt rne = {OT_ROUND_NEAREST_EVEN, e->x->cvt.saturate, NULL};
  uint32_t *bits = exec_alloc(e, DMA_CHUNK, sizeof *bits);
  float *f = exec_alloc(e, DMA_CHUNK, sizeof *f);
  if (!bits || !f) return OT_ENOMEM;
  ot_view_cursor dc, sc;
  ot_view_cursor_init(&dc, m, d);
  ot_view_cursor_init(&sc, m, s);
  ot_status st = OT_OK;
  uint64_t n, done = 0;
  while ((n = ot_cursor_load_bits(m, s, &sc, bits, DMA_CHUNK)) > 0) {
    if (d->dtype != s->dtype) {
      ot_bits_to_f32_n(s->dtype, bits, f, n);
      ot_f32_to_bits_n(d->dtype, f, bits, n, &rne);
    }
    for (uint64_t i = 0; e->x->trap_nonfinite && ot_dtype_is_float(d->dtype) && i < n; i++) {
      float v = ot_bits_to_f32(bits[i], d->dtype);
      if (!isfinite(v))
        return exec_fail(e, "writes %s to dst element %llu", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                         (unsigned long long)(done + i));
    }
    ot_cursor_store_bits(m, d, &dc, bits, n, &st);
    done += n;
  }
  return st;
}

/* Overlapping source and destination: read everything, then write. */
static ot_status dma_copy_staged(ot_exec_op *e) {
  const ot_view *d = &e->v[1], *s = &e->v[2];
  uint64_t n = ot_view_elems(s);
  uint32_t *bits = exec_alloc(e, n, sizeof *bits);
  if (!bits) return OT_ENOMEM;
  ot_view_load_bits(&e->x->mem, s, bits);
  if (d->dtype != s->dtype) {
    ot_cvt rne = {OT_ROUND_NEAREST_EVEN, e->x->cvt.saturate, NULL};
    float *f = exec_alloc(e, n, sizeof *f);
    if (!f) return OT_ENOMEM;
    ot_bits_to_f32_n(s->dtype, bits, f, n);
    ot_f32_to_bits_n(d->dtype, f, bits, n, &rne);
  }
  return exec_write_bits(e, 1, bits, false);
}

static ot_status dma_copy(ot_exec_op *e) {
  const ot_view *d = &e->v[1], *s = &e->v[2];
  uint64_t nd = ot_view_elems(d), ns = ot_view_elems(s);
  if (nd != ns) return exec_fail(e, "dst holds %llu elements, src %llu", (unsigned long long)nd, (unsigned long long)ns);
  if (nd > DMA_MAX_ELEMS) return exec_fail(e, "%llu elements, more than one DMA may move", (unsigned long long)nd);
  ot_status st = exec_check_init(e, 2);
  if (st != OT_OK) return st;
  if (dma_may_overlap(&e->x->mem, d, s)) return dma_copy_staged(e);
  if (d->dtype == s->dtype && !e->x->trap_nonfinite) st = dma_copy_raw(e);
  else st = dma_copy_chunked(e);
  if (st == OT_ENOMEM) return exec_fail(e, "dst: out of memory allocating HBM pages");
  if (st != OT_OK) return st;
  ot_view_mark_written(&e->x->mem, d, false);
  return OT_OK;
}

/* A view as a matrix: SBUF/PSUM rows are partitions; HBM rows are all but the innermost dim. */
static void dma_matrix(const ot_view *v, uint64_t *rows, uint64_t *cols) {
  if (v->mem != OT_MEM_HBM) {
    *rows = v->parts, *cols = v->free_elems;
    return;
  }
  *cols = v->ndim ? v->size[v->ndim - 1] : 1;
  *rows = *cols ? v->free_elems / *cols : 0;
}

static ot_status dma_transpose(ot_exec_op *e) {
  const ot_view *d = &e->v[1], *s = &e->v[2];
  if (d->dtype != s->dtype || (s->esize != 2 && s->esize != 4))
    return exec_fail(e, "types %s -> %s; DMA transpose needs one 2- or 4-byte type", ot_dtype_name(s->dtype),
                     ot_dtype_name(d->dtype));
  uint64_t sr, sc, dr, dc;
  dma_matrix(s, &sr, &sc);
  dma_matrix(d, &dr, &dc);
  if (dr != sc || dc != sr)
    return exec_fail(e, "src is [%llu, %llu], dst [%llu, %llu]; expected dst [%llu, %llu]", (unsigned long long)sr,
                     (unsigned long long)sc, (unsigned long long)dr, (unsigned long long)dc, (unsigned long long)sc,
                     (unsigned long long)sr);
  uint32_t *in, *out = exec_alloc(e, sr * sc, sizeof *out);
  if (!out) return OT_ENOMEM;
  ot_status st = exec_read_bits(e, 2, &in);
  if (st != OT_OK) return st;
  exec_transpose_bits(in, out, sr, sc);
  return exec_write_bits(e, 1, out, false);
}

/* ---- indirect DMA ------------------------------------------------------------------------- */
/* Row r of a verified-shape table view [rows, cols]: inside the table, so inside HBM. */
static ot_view table_row(const ot_view *t, int32_t r) {
  ot_view v = *t;
  v.offset = (uint64_t)((int64_t)t->offset + (int64_t)r * t->stride[0]);
  v.ndim = 1, v.parts = 1;
  v.stride[0] = t->stride[1], v.size[0] = t->size[1], v.free_elems = t->size[1];
  return v;
}

/* Every index in 0..rows-1, checked before any row moves. */
static ot_status dma_check_indices(ot_exec_op *e, const uint32_t *ib, uint64_t n, uint64_t rows) {
  const ot_view *ix = &e->v[3];
  uint64_t k = ix->free_elems;
  for (uint64_t i = 0; i < n; i++) {
    int32_t r = (int32_t)ib[i];
    if (r < 0 || (uint64_t)r >= rows)
      return exec_fail(e, "idx[%llu] (partition %llu, element %llu) = %d is outside the table's %llu rows (0..%llu)",
                       (unsigned long long)i, (unsigned long long)(ix->part_start + i / k), (unsigned long long)(i % k),
                       r, (unsigned long long)rows, (unsigned long long)rows - 1);
  }
  return OT_OK;
}

/* dst[i, :] = src[idx[i], :], cast src -> fp32 -> dst (RNE) unless the types match. */
static ot_status dma_gather(ot_exec_op *e, const uint32_t *ib, uint64_t n) {
  const ot_view *d = &e->v[1], *t = &e->v[2];
  uint64_t cols = t->size[1];
  uint32_t *bits = exec_alloc(e, n * cols, sizeof *bits);
  if (!bits) return OT_ENOMEM;
  for (uint64_t i = 0; i < n; i++) {
    ot_view row = table_row(t, (int32_t)ib[i]);
    ot_view_load_bits(&e->x->mem, &row, bits + i * cols);
  }
  if (d->dtype != t->dtype) {
    ot_cvt rne = {OT_ROUND_NEAREST_EVEN, e->x->cvt.saturate, NULL};
    float *f = exec_alloc(e, n * cols, sizeof *f);
    if (!f) return OT_ENOMEM;
    ot_bits_to_f32_n(t->dtype, bits, f, n * cols);
    ot_f32_to_bits_n(d->dtype, f, bits, n * cols, &rne);
  }
  return exec_write_bits(e, 1, bits, false);
}

/* For i = 0, 1, ..: dst[idx[i], :] = round(fp32(dst[idx[i], :]) + fp32(src[i, :])), a row at a time. */
static ot_status dma_scatter_add(ot_exec_op *e, const uint32_t *ib, uint64_t n) {
  const ot_view *t = &e->v[1];
  uint64_t cols = t->size[1];
  float *src;
  ot_status st = exec_read_f32(e, 2, &src);
  if (st != OT_OK) return st;
  uint32_t *bits = exec_alloc(e, cols, sizeof *bits);
  float *acc = exec_alloc(e, cols, sizeof *acc);
  if (!bits || !acc) return OT_ENOMEM;
  ot_cvt rne = {OT_ROUND_NEAREST_EVEN, e->x->cvt.saturate, NULL};
  for (uint64_t i = 0; i < n; i++) {
    ot_view row = table_row(t, (int32_t)ib[i]);
    ot_view_load_bits(&e->x->mem, &row, bits);
    ot_bits_to_f32_n(t->dtype, bits, acc, cols);
    for (uint64_t c = 0; c < cols; c++) acc[c] = acc[c] + src[i * cols + c];
    ot_f32_to_bits_n(t->dtype, acc, bits, cols, &rne);
    for (uint64_t c = 0; e->x->trap_nonfinite && c < cols; c++) {
      float v = ot_bits_to_f32(bits[c], t->dtype);
      if (!isfinite(v))
        return exec_fail(e, "writes %s to dst row %d, column %llu (update %llu)", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                         (int32_t)ib[i], (unsigned long long)c, (unsigned long long)i);
    }
    if (ot_view_store_bits_checked(&e->x->mem, &row, bits) != OT_OK)
      return exec_fail(e, "dst: out of memory allocating HBM pages");
  }
  return OT_OK;
}

static ot_status dma_indirect(ot_exec_op *e) {
  char msg[320];
  if (!ot_dma_indirect_shape(e->in->op, &e->v[1], &e->v[2], &e->v[3], msg, sizeof msg)) return exec_fail(e, "%s", msg);
  bool gather = e->in->op == OT_OP_DMA_GATHER;
  const ot_view *t = &e->v[gather ? 2 : 1];
  uint64_t n = ot_view_elems(&e->v[3]), rows = t->size[0];
  if (n > DMA_MAX_ELEMS / t->size[1])
    return exec_fail(e, "%llu rows of %u elements, more than one DMA may move", (unsigned long long)n, t->size[1]);
  uint32_t *ib;
  ot_status st = exec_read_bits(e, 3, &ib); /* the uninitialised-read check covers the indices */
  if (st == OT_OK) st = dma_check_indices(e, ib, n, rows);
  if (st == OT_OK) st = gather ? dma_gather(e, ib, n) : dma_scatter_add(e, ib, n);
  return st;
}

ot_status ot_exec_dma_views(ot_exec_ctx *x, const ot_insn *in, const ot_view *dst, const ot_view *src,
                            const ot_view *idx) {
  if (!x || !in || !dst || !src || !x->chip) return OT_EINVAL;
  ot_exec_op e;
  memset(&e, 0, sizeof e);
  e.x = x, e.in = in;
  e.v[1] = *dst, e.v[2] = *src;
  e.has[1] = e.has[2] = true;
  bool indirect = ot_dma_is_indirect(in->op);
  ot_status st = exec_view_usable(x, dst, "dst");
  if (st == OT_OK) st = exec_view_usable(x, src, "src");
  if (st == OT_OK && indirect) {
    if (!idx || idx->mem == OT_MEM_NONE) st = exec_fail(&e, "idx: missing access pattern");
    else e.v[3] = *idx, e.has[3] = true, st = exec_view_usable(x, idx, "idx");
  }
  if (st == OT_OK) {
    if (in->op == OT_OP_DMA_COPY) st = dma_copy(&e);
    else if (in->op == OT_OP_DMA_TRANSPOSE) st = dma_transpose(&e);
    else if (indirect) st = dma_indirect(&e);
    else st = exec_fail(&e, "not a DMA instruction");
  }
  exec_free(&e);
  return st;
}

ot_status ot_exec_dma(ot_exec_ctx *x, const ot_insn *in, const ot_view *dst, const ot_view *src) {
  return ot_exec_dma_views(x, in, dst, src, NULL);
}
