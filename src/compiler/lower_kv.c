/* kv_write: the new rows of a KV cache, in place (the output aliases the cache, see
** place_tensors).  One strided HBM-to-HBM DMA per batch: for each head, S x D contiguous
** elements land at row pos of that head's Smax rows. */
#include "compiler/lower.h"

ot_status lower_kv_write(lower_ctx *c, const ot_gnode *n) {
  const ot_gtensor *kc = &c->g->t[n->in[0]], *nw = &c->g->t[n->in[1]];
  const kir_hbm *y = &c->hbm[n->out[0]], *src = &c->hbm[n->in[1]];
  uint64_t B = (uint64_t)kc->shape[0], H = (uint64_t)kc->shape[1], smax = (uint64_t)kc->shape[2];
  uint64_t S = (uint64_t)nw->shape[2], D = (uint64_t)kc->shape[3], pos = (uint64_t)n->i[0];
  if (!B || !H || !S || !D) return OT_OK;
  if (H > UINT32_MAX || S * D > UINT32_MAX) /* AP sizes are 32-bit */
    return kir_fail(c->k, OT_EUNSUPPORTED, "kv_write of %llu heads x %llu elements per head: supported: fewer than 2^32",
                    (unsigned long long)H, (unsigned long long)(S * D));
  if (y->off != c->hbm[n->in[0]].off) { /* not aliased (fusion off?): copy the old cache first */
    int64_t st[1] = {1};
    uint32_t sz[1] = {(uint32_t)(B * H * smax * D)};
    kir_dma(c->k, kir_hbm_ap(y, 0, 1, st, sz), kir_hbm_ap(&c->hbm[n->in[0]], 0, 1, st, sz), OT_ENG_COUNT);
  }
  for (uint64_t b = 0; b < B; b++) {
    int64_t ds[2] = {(int64_t)(smax * D), 1}, ss[2] = {(int64_t)(S * D), 1};
    uint32_t sz[2] = {(uint32_t)H, (uint32_t)(S * D)};
    kir_dma(c->k, kir_hbm_ap(y, (b * H * smax + pos) * D, 2, ds, sz), kir_hbm_ap(src, b * H * S * D, 2, ss, sz),
            OT_ENG_COUNT);
  }
  return kir_status(c->k);
}
