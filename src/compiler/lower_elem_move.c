/* Data movement: transpose, concat, split, slice, broadcast.
**
** Data movement never needs compute: each op is one or a few HBM -> HBM DMAs whose access
** patterns do the work (a DMA pairs source and destination elements in iteration order, so a
** permuted or stride-0 source pattern against a contiguous destination is a transpose or a
** broadcast).  A swap of the last two axes of 2- or 4-byte elements uses dma_transpose (one per
** leading index), whose runs stay contiguous; other permutations move runs as long as the
** innermost axis that stays innermost, and cost ~(1 + 256 / run bytes) x the bytes
** (dma.min_efficient_bytes per run below dma.small_transfer_bytes). */
#include <string.h>

#include "compiler/lower_elem_int.h"

/* ---- HBM patterns ------------------------------------------------------------------------ */
typedef struct {
  unsigned nd;
  int64_t st[OT_AP_MAX_DIMS];
  uint32_t sz[OT_AP_MAX_DIMS];
} move_pat;

static bool pat_fits(const move_pat *p) {
  for (unsigned d = 0; d < p->nd; d++)
    if (p->st[d] > INT32_MAX || p->st[d] < INT32_MIN) return false;
  return true;
}

/* Drop size-1 dims and merge dims that continue each other (stride[d] = stride[d+1] * size[d+1])
** in both patterns at once (they are iterated together). */
static void pat_merge2(move_pat *a, move_pat *b) {
  move_pat x = {0, {0}, {0}}, y = {0, {0}, {0}};
  for (unsigned d = 0; d < a->nd; d++) {
    if (a->sz[d] == 1) continue;
    if (x.nd && x.st[x.nd - 1] == a->st[d] * (int64_t)a->sz[d] && y.st[y.nd - 1] == b->st[d] * (int64_t)b->sz[d]) {
      x.sz[x.nd - 1] *= a->sz[d];
      y.sz[y.nd - 1] *= b->sz[d];
      x.st[x.nd - 1] = a->st[d];
      y.st[y.nd - 1] = b->st[d];
      continue;
    }
    x.st[x.nd] = a->st[d], x.sz[x.nd++] = a->sz[d];
    y.st[y.nd] = b->st[d], y.sz[y.nd++] = b->sz[d];
  }
  if (!x.nd) { x.nd = y.nd = 1; x.st[0] = y.st[0] = 1; x.sz[0] = y.sz[0] = 1; }
  *a = x;
  *b = y;
}

/* A row-major pattern of a tensor's shape. */
static void pat_dense(move_pat *p, const ot_gtensor *t) {
  p->nd = t->ndim ? t->ndim : 1;
  int64_t st = 1;
  for (unsigned d = p->nd; d-- > 0;) {
    p->sz[d] = t->ndim ? (uint32_t)t->shape[d] : 1;
    p->st[d] = st;
    st *= p->sz[d];
  }
}

static ot_status move_dma(lower_ctx *c, ot_tid dst, uint64_t doff, move_pat *dp, ot_tid src, uint64_t soff, move_pat *sp) {
  pat_merge2(dp, sp);
  if (!pat_fits(dp) || !pat_fits(sp))
    return kir_fail(c->k, OT_EUNSUPPORTED, "a DMA stride exceeds 2^31 elements (tensors of %lld and %lld elements)",
                    (long long)ot_gtensor_elems(&c->g->t[dst]), (long long)ot_gtensor_elems(&c->g->t[src]));
  return kir_dma(c->k, kir_hbm_ap(&c->hbm[dst], doff, dp->nd, dp->st, dp->sz),
                 kir_hbm_ap(&c->hbm[src], soff, sp->nd, sp->st, sp->sz), OT_ENG_COUNT);
}

/* piece [outer, plen*inner] <-> big [outer, blen*inner] at offset off along the axis. */
static ot_status move_piece(lower_ctx *c, ot_tid big, ot_tid piece, bool into_big, uint64_t outer, uint64_t blen,
                            uint64_t plen, uint64_t inner, uint64_t off) {
  if (outer > UINT32_MAX || plen * inner > UINT32_MAX)
    return kir_fail(c->k, OT_EUNSUPPORTED, "a piece of %llu x %llu elements exceeds the DMA pattern's 2^32 per dim",
                    (unsigned long long)outer, (unsigned long long)(plen * inner));
  move_pat b = {2, {(int64_t)(blen * inner), 1}, {(uint32_t)outer, (uint32_t)(plen * inner)}};
  move_pat p = {2, {(int64_t)(plen * inner), 1}, {(uint32_t)outer, (uint32_t)(plen * inner)}};
  if (into_big) return move_dma(c, big, off * inner, &b, piece, 0, &p);
  return move_dma(c, piece, 0, &p, big, off * inner, &b);
}

ot_status lower_elem_concat(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *y = elem_out(c, n, 0);
  uint64_t outer, ylen, inner, off = 0;
  elem_around(y, (unsigned)n->i[0], &outer, &ylen, &inner);
  for (uint32_t k = 0; k < n->n_in && !kir_status(c->k); k++) {
    uint64_t len = (uint64_t)elem_in(c, n, k)->shape[n->i[0]];
    move_piece(c, n->out[0], n->in[k], true, outer, ylen, len, inner, off);
    off += len;
  }
  return kir_status(c->k);
}

ot_status lower_elem_split(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = elem_in(c, n, 0);
  uint64_t outer, xlen, inner, off = 0;
  elem_around(x, (unsigned)n->i[0], &outer, &xlen, &inner);
  for (uint32_t k = 0; k < n->n_out && !kir_status(c->k); k++) {
    uint64_t len = (uint64_t)elem_out(c, n, k)->shape[n->i[0]];
    move_piece(c, n->in[0], n->out[k], false, outer, xlen, len, inner, off);
    off += len;
  }
  return kir_status(c->k);
}

ot_status lower_elem_slice(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = elem_in(c, n, 0), *y = elem_out(c, n, 0);
  uint64_t outer, xlen, inner;
  elem_around(x, (unsigned)n->i[0], &outer, &xlen, &inner);
  return move_piece(c, n->in[0], n->out[0], false, outer, xlen, (uint64_t)y->shape[n->i[0]], inner, (uint64_t)n->i[1]);
}

/* y [outer, inner] with row o = x[o * s] repeated: a DMA reading single elements would pay the
** small-run overhead on every one, so each value is loaded once per row onto a partition,
** repeated along the free axis on chip (a copy from a stride-0 pattern) and stored in whole
** rows.  Types are kept (raw copies), so any dtype works. */
#define BCAST_BUFS 4
#define BCAST_MAX_F 4096u

static ot_status bcast_rows(lower_ctx *c, const ot_gnode *n, uint64_t outer, int64_t s, uint64_t inner) {
  kir *k = c->k;
  ot_dtype dt = (ot_dtype)elem_in(c, n, 0)->dtype;
  uint32_t P = elem_parts(c), es = (uint32_t)ot_dtype_size(dt);
  uint32_t ch = (uint32_t)(inner < BCAST_MAX_F ? inner : BCAST_MAX_F);
  kir_buf col[BCAST_BUFS], row[BCAST_BUFS];
  memset(col, 0, sizeof col);
  memset(row, 0, sizeof row);
  for (unsigned b = 0; b < BCAST_BUFS; b++) {
    kir_alloc(k, OT_MEM_SBUF, P, es, &col[b]);
    kir_alloc(k, OT_MEM_SBUF, P, ch * es, &row[b]);
  }
  uint32_t t = 0, tc = 0;
  for (uint64_t o0 = 0; o0 < outer && !kir_status(k); o0 += P) {
    uint32_t np = (uint32_t)(outer - o0 < P ? outer - o0 : P);
    const kir_buf *cb = &col[tc++ % BCAST_BUFS];
    int64_t xs = s;
    kir_dma(k, kir_ap2(cb, np, 0, 1, dt), kir_hbm_ap(&c->hbm[n->in[0]], (uint64_t)((int64_t)o0 * s), 1, &xs, &np),
            OT_ENG_COUNT);
    for (uint64_t c0 = 0; c0 < inner && !kir_status(k); c0 += ch, t++) {
      uint32_t cw = (uint32_t)(inner - c0 < ch ? inner - c0 : ch);
      const kir_buf *rb = &row[t % BCAST_BUFS];
      int32_t zero = 0;
      kir_copy(k, elem_alt_engine(t), kir_ap2(rb, np, 0, cw, dt), kir_ap(cb, 0, np, 0, dt, 1, &zero, &cw));
      kir_dma(k, elem_hbm_rows(&c->hbm[n->out[0]], o0 * inner + c0, np, inner, cw), kir_ap2(rb, np, 0, cw, dt),
              OT_ENG_COUNT);
    }
  }
  for (unsigned b = 0; b < BCAST_BUFS; b++) {
    kir_release(k, &col[b]);
    kir_release(k, &row[b]);
  }
  return kir_status(k);
}

/* y = x repeated: x's pattern aligned with y's trailing dims, stride 0 where x has size 1 or
** lacks the dim; one HBM -> HBM DMA, or bcast_rows when the innermost axis repeats. */
ot_status lower_elem_broadcast(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = elem_in(c, n, 0), *y = elem_out(c, n, 0);
  move_pat dp, sp;
  pat_dense(&dp, y);
  sp.nd = dp.nd;
  unsigned lead = y->ndim - x->ndim;
  int64_t st = 1;
  for (unsigned d = dp.nd; d-- > 0;) {
    sp.sz[d] = dp.sz[d];
    int64_t xs = d >= lead && y->ndim ? x->shape[d - lead] : 1;
    sp.st[d] = xs == 1 ? 0 : st;
    st *= xs;
  }
  move_pat m = dp, ms = sp;
  pat_merge2(&m, &ms);
  uint32_t P = elem_parts(c);
  if (ms.nd == 2 && ms.st[1] == 0) return bcast_rows(c, n, m.sz[0], ms.st[0], m.sz[1]);
  if (ms.nd == 1 && ms.st[0] == 0 && m.sz[0] >= P) { /* one value everywhere: P rows, then the rest */
    uint64_t total = m.sz[0], per = total / P;
    if (total % P == 0) return bcast_rows(c, n, P, 0, per);
  }
  return move_dma(c, n->out[0], 0, &dp, n->in[0], 0, &sp);
}

/* ---- transpose --------------------------------------------------------------------------- */
/* The permutation with axes that stay adjacent merged and size-1 axes dropped: x's reduced
** shape xs[nd] and y's axis d reading x's axis perm[d]. */
static unsigned tr_reduce(const ot_gtensor *x, const int64_t *perm, uint64_t *xs, unsigned *pm) {
  unsigned nd = x->ndim, keep[OT_GRAPH_MAX_DIMS], nk = 0;
  int64_t p[OT_GRAPH_MAX_DIMS];
  for (unsigned d = 0; d < nd; d++)
    if (x->shape[perm[d]] != 1) p[nk++] = perm[d];
  /* group runs of y axes that are consecutive x axes */
  unsigned ng = 0, gfirst[OT_GRAPH_MAX_DIMS];
  uint64_t gsize[OT_GRAPH_MAX_DIMS];
  for (unsigned d = 0; d < nk; d++) {
    if (d && p[d] == p[d - 1] + 1) { gsize[ng - 1] *= (uint64_t)x->shape[p[d]]; continue; }
    gfirst[ng] = (unsigned)p[d];
    gsize[ng++] = (uint64_t)x->shape[p[d]];
  }
  /* x's order of the groups: sort group indices by first axis */
  for (unsigned g = 0; g < ng; g++) keep[g] = g;
  for (unsigned a = 0; a < ng; a++)
    for (unsigned b = a + 1; b < ng; b++)
      if (gfirst[keep[b]] < gfirst[keep[a]]) { unsigned t = keep[a]; keep[a] = keep[b]; keep[b] = t; }
  for (unsigned r = 0; r < ng; r++) {
    xs[r] = gsize[keep[r]];
    pm[keep[r]] = r;   /* y's group g is x's reduced axis pm[g] */
  }
  return ng;
}

ot_status lower_elem_transpose(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = elem_in(c, n, 0);
  uint64_t xs[OT_GRAPH_MAX_DIMS];
  unsigned pm[OT_GRAPH_MAX_DIMS];
  unsigned nd = tr_reduce(x, n->list, xs, pm);
  size_t es = ot_dtype_size((ot_dtype)x->dtype);
  uint64_t total = (uint64_t)ot_gtensor_elems(x);
  bool swap = nd >= 2 && pm[nd - 1] == nd - 2 && pm[nd - 2] == nd - 1;
  for (unsigned d = 0; swap && d + 2 < nd; d++) swap = pm[d] == d;
  if (swap && c->chip->dma.transpose && (es == 2 || es == 4) && xs[nd - 1] <= UINT32_MAX && xs[nd - 2] <= UINT32_MAX) {
    uint64_t M = xs[nd - 2], N = xs[nd - 1], B = total / (M * N);
    for (uint64_t b = 0; b < B && !kir_status(c->k); b++) {
      int64_t ss[2] = {(int64_t)N, 1}, ds[2] = {(int64_t)M, 1};
      uint32_t sz[2] = {(uint32_t)M, (uint32_t)N}, dz[2] = {(uint32_t)N, (uint32_t)M};
      if ((int64_t)N > INT32_MAX || (int64_t)M > INT32_MAX)
        return kir_fail(c->k, OT_EUNSUPPORTED, "transpose of [%llu, %llu]: a row exceeds 2^31 elements",
                        (unsigned long long)M, (unsigned long long)N);
      kir_dma_transpose(c->k, kir_hbm_ap(&c->hbm[n->out[0]], b * M * N, 2, ds, dz),
                        kir_hbm_ap(&c->hbm[n->in[0]], b * M * N, 2, ss, sz), OT_ENG_COUNT);
    }
    return kir_status(c->k);
  }
  /* general: y dense, x read with permuted strides */
  move_pat dp, sp;
  int64_t xst[OT_GRAPH_MAX_DIMS], st = 1;
  for (unsigned r = nd; r-- > 0;) { xst[r] = st; st *= (int64_t)xs[r]; }
  dp.nd = sp.nd = nd ? nd : 1;
  if (!nd) { dp.st[0] = sp.st[0] = 1; dp.sz[0] = sp.sz[0] = 1; }
  for (unsigned g = 0; g < nd; g++) {
    if (xs[pm[g]] > UINT32_MAX)
      return kir_fail(c->k, OT_EUNSUPPORTED, "transpose: an axis group of %llu elements exceeds 2^32",
                      (unsigned long long)xs[pm[g]]);
    sp.sz[g] = dp.sz[g] = (uint32_t)xs[pm[g]];
    sp.st[g] = xst[pm[g]];
  }
  st = 1;
  for (unsigned g = dp.nd; g-- > 0;) { dp.st[g] = st; st *= dp.sz[g]; }
  return move_dma(c, n->out[0], 0, &dp, n->in[0], 0, &sp);
}
