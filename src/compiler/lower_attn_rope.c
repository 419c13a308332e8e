/* Rotary embedding (Hugging Face rotate_half): y[j] = x[j] cos - x[j+D/2] sin,
** y[j+D/2] = x[j+D/2] cos + x[j] sin, angle (offset + s) * theta^(-2j/D) (Llama-3 scaled when the
** node says so: ot_rope_scale_freq), negated when inverse.
**
** The cos/sin table is a program constant "<node>.rope_cs" [S, D] fp32 (columns 0..D/2-1 cos,
** D/2..D-1 sin, already negated for the inverse), computed on the host in double and rounded
** once to fp32.  Tiles put positions on the partitions (up to 128) and (heads, D) on the free
** axis, so one table tile serves every head through a stride-0 access pattern:
**   a = x1 cos, c = x2 cos, d = x1 sin    GpSimd tensor_tensor
**   b = x2 sin, y1 = a - b, y2 = c + d    VectorE
** (the same fp32 operations, in the same order, as the reference evaluator), with three tile
** sets in flight (load, compute, store). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"
#include "compiler/lower_attn_int.h"

#define ROPE_FREE 2048u   /* elements per partition of one x tile */
#define ROPE_BUFS 3u      /* x / y / temporaries sets: load, compute, store in flight */

typedef struct {
  kir *k;
  uint32_t BH, S, D, half, P, nbh;
  kir_hbm x, y, cs;
  kir_buf tab[2], xb[ROPE_BUFS], yb[ROPE_BUFS], tmp[ROPE_BUFS];
  uint32_t rot;
} rope_run;

/* The [S, D] cos | sin table as a program constant. */
static ot_status rope_table(lower_ctx *c, const ot_gnode *n, rope_run *r) {
  float *t = malloc((size_t)r->S * r->D * sizeof *t);
  if (!t) return kir_fail(c->k, OT_ENOMEM, "out of memory for the rope table");
  double theta = n->f[0], sign = n->i[1] ? -1.0 : 1.0;
  for (uint32_t s = 0; s < r->S; s++)
    for (uint32_t j = 0; j < r->half; j++) {
      double ang = (double)(n->i[0] + (int64_t)s) * ot_rope_scale_freq(n, pow(theta, -2.0 * j / (double)r->D));
      t[(size_t)s * r->D + j] = (float)cos(ang);
      t[(size_t)s * r->D + r->half + j] = (float)(sign * sin(ang));
    }
  char name[160];
  snprintf(name, sizeof name, "%s.rope_cs", n->name);
  uint64_t shape[2] = {r->S, r->D};
  ot_status st = kir_tensor(c->k, name, OT_DT_FP32, 2, shape, OT_ROLE_CONST, t, &r->cs);
  free(t);
  return st;
}

/* An x / y / tmp view [ns, nbh heads, half] starting at element `off` of each head's row. */
static ot_ap rope_view(const kir_buf *b, uint32_t ns, uint32_t nbh, uint32_t hstride, uint32_t off, uint32_t half) {
  int32_t st[2] = {(int32_t)hstride, 1};
  uint32_t sz[2] = {nbh, half};
  return kir_ap(b, 0, ns, off * 4, OT_DT_FP32, 2, st, sz);
}

/* HBM view of heads [bh0, bh0+nbh) x positions [s0, s0+ns) of x or y: partition = position. */
static ot_ap rope_hbm(const rope_run *r, const kir_hbm *t, uint32_t bh0, uint32_t nbh, uint32_t s0, uint32_t ns) {
  int64_t hs[3] = {(int64_t)r->D, (int64_t)r->S * r->D, 1};
  uint32_t hz[3] = {ns, nbh, r->D};
  return kir_hbm_ap(t, ((uint64_t)bh0 * r->S + s0) * r->D, 3, hs, hz);
}

static void rope_tile(rope_run *r, const kir_buf *tab, uint32_t s0, uint32_t ns, uint32_t bh0, uint32_t nbh) {
  kir *k = r->k;
  uint32_t i = r->rot++ % ROPE_BUFS, h = r->half, D = r->D;
  const kir_buf *xb = &r->xb[i], *yb = &r->yb[i], *tm = &r->tmp[i];
  kir_dma(k, kir_ap2(xb, ns, 0, nbh * D, OT_DT_FP32), rope_hbm(r, &r->x, bh0, nbh, s0, ns), OT_ENG_COUNT);
  ot_ap x1 = rope_view(xb, ns, nbh, D, 0, h), x2 = rope_view(xb, ns, nbh, D, h, h);
  int32_t bs[2] = {0, 1};
  uint32_t bz[2] = {nbh, h};
  ot_ap cs = kir_ap(tab, 0, ns, 0, OT_DT_FP32, 2, bs, bz), sn = kir_ap(tab, 0, ns, h * 4, OT_DT_FP32, 2, bs, bz);
  ot_ap ta = rope_view(tm, ns, nbh, h, 0, h), tb = rope_view(tm, ns, nbh, h, nbh * h, h);
  ot_ap tc = rope_view(tm, ns, nbh, h, 2 * nbh * h, h), td = rope_view(tm, ns, nbh, h, 3 * nbh * h, h);
  kir_tt(k, OT_ENG_GPSIMD, ta, x1, cs, OT_ALU_MUL);
  kir_tt(k, OT_ENG_VECTOR, tb, x2, sn, OT_ALU_MUL);
  kir_tt(k, OT_ENG_GPSIMD, tc, x2, cs, OT_ALU_MUL);
  kir_tt(k, OT_ENG_GPSIMD, td, x1, sn, OT_ALU_MUL);
  kir_tt(k, OT_ENG_VECTOR, rope_view(yb, ns, nbh, D, 0, h), ta, tb, OT_ALU_SUB);
  kir_tt(k, OT_ENG_VECTOR, rope_view(yb, ns, nbh, D, h, h), tc, td, OT_ALU_ADD);
  kir_dma(k, rope_hbm(r, &r->y, bh0, nbh, s0, ns), kir_ap2(yb, ns, 0, nbh * D, OT_DT_FP32), OT_ENG_COUNT);
}

static ot_status rope_alloc(rope_run *r) {
  for (uint32_t i = 0; i < 2; i++) kir_alloc(r->k, OT_MEM_SBUF, r->P, r->D * 4, &r->tab[i]);
  for (uint32_t i = 0; i < ROPE_BUFS; i++) {
    kir_alloc(r->k, OT_MEM_SBUF, r->P, r->nbh * r->D * 4, &r->xb[i]);
    kir_alloc(r->k, OT_MEM_SBUF, r->P, r->nbh * r->D * 4, &r->yb[i]);
    kir_alloc(r->k, OT_MEM_SBUF, r->P, r->nbh * r->D * 2 * 4, &r->tmp[i]);
  }
  return kir_status(r->k);
}

static void rope_release(rope_run *r) {
  for (uint32_t i = 0; i < 2; i++) kir_release(r->k, &r->tab[i]);
  for (uint32_t i = 0; i < ROPE_BUFS; i++) {
    kir_release(r->k, &r->xb[i]);
    kir_release(r->k, &r->yb[i]);
    kir_release(r->k, &r->tmp[i]);
  }
}

ot_status lower_rope(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *x = &c->g->t[n->in[0]];
  rope_run r;
  memset(&r, 0, sizeof r);
  r.k = c->k;
  r.BH = (uint32_t)(x->shape[0] * x->shape[1]);
  r.S = (uint32_t)x->shape[2];
  r.D = (uint32_t)x->shape[3];
  r.half = r.D / 2;
  r.P = c->chip->sbuf.partitions;
  r.x = c->hbm[n->in[0]];
  r.y = c->hbm[n->out[0]];
  if (r.BH == 0 || r.S == 0 || r.D == 0) return OT_OK;
  if (r.D > ROPE_FREE)
    return kir_fail(c->k, OT_EUNSUPPORTED, "rope head dim D = %u: one row must fit a %u-element tile; supported: D <= %u",
                    r.D, ROPE_FREE, ROPE_FREE);
  r.nbh = lower_min_u32(r.BH, ROPE_FREE / r.D);
  if (rope_table(c, n, &r) || rope_alloc(&r)) { rope_release(&r); return kir_status(c->k); }
  for (uint32_t s0 = 0; s0 < r.S && !kir_status(c->k); s0 += r.P) {
    uint32_t ns = lower_min_u32(r.P, r.S - s0);
    const kir_buf *tab = &r.tab[(s0 / r.P) % 2];
    int64_t hs[2] = {(int64_t)r.D, 1};
    uint32_t hz[2] = {ns, r.D};
    kir_dma(c->k, kir_ap2(tab, ns, 0, r.D, OT_DT_FP32), kir_hbm_ap(&r.cs, (uint64_t)s0 * r.D, 2, hs, hz), OT_ENG_COUNT);
    for (uint32_t bh0 = 0; bh0 < r.BH && !kir_status(c->k); bh0 += r.nbh)
      rope_tile(&r, tab, s0, ns, bh0, lower_min_u32(r.nbh, r.BH - bh0));
  }
  rope_release(&r);
  return kir_status(c->k);
}
