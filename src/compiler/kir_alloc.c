/* On-chip allocation: first fit over a sorted list of holes, per partition byte range.  Every
** buffer spans partitions [0, parts) at the same offsets (the partition dimension is the
** hardware's, not the allocator's).  PSUM allocations never straddle a bank: an accumulation
** group lives in one bank. */
#include <stdlib.h>
#include <string.h>

#include "compiler/kir_int.h"

void kir_alloc_init(kir *k, ot_mem mem) {
  kir_heap *h = &k->heap[mem == OT_MEM_PSUM];
  memset(h, 0, sizeof *h);
  if (mem == OT_MEM_PSUM) {
    h->capacity = (uint32_t)k->chip->psum.bytes_per_partition;
    h->bank = k->chip->psum.banks ? h->capacity / k->chip->psum.banks : h->capacity;
    h->align = 64;
  } else {
    h->capacity = (uint32_t)k->chip->sbuf.bytes_per_partition;
    h->bank = 0;
    h->align = 64;
  }
  h->hole = malloc(16 * sizeof *h->hole);
  if (!h->hole) { kir_fail(k, OT_ENOMEM, "out of memory"); return; }
  h->cap = 16;
  h->n = 1;
  h->hole[0].off = 0;
  h->hole[0].size = h->capacity;
}

/* The first start >= off inside [off, off+size) where bytes fit without crossing a bank. */
static bool hole_fit(const kir_heap *h, const kir_hole *x, uint32_t bytes, uint32_t *start) {
  uint32_t s = x->off;
  if (h->bank && bytes <= h->bank && s / h->bank != (s + bytes - 1) / h->bank) s = (s / h->bank + 1) * h->bank;
  if (s + bytes > x->off + x->size) return false;
  *start = s;
  return true;
}

static void hole_take(kir_heap *h, uint32_t i, uint32_t s, uint32_t bytes) {
  kir_hole x = h->hole[i];
  uint32_t before = s - x.off, after = x.off + x.size - (s + bytes);
  if (before && after) { /* split: make room for one more hole */
    memmove(&h->hole[i + 2], &h->hole[i + 1], (h->n - i - 1) * sizeof *h->hole);
    h->n++;
    h->hole[i] = (kir_hole){x.off, before};
    h->hole[i + 1] = (kir_hole){s + bytes, after};
  } else if (before) {
    h->hole[i].size = before;
  } else if (after) {
    h->hole[i] = (kir_hole){s + bytes, after};
  } else {
    memmove(&h->hole[i], &h->hole[i + 1], (h->n - i - 1) * sizeof *h->hole);
    h->n--;
  }
}

ot_status kir_alloc(kir *k, ot_mem mem, uint32_t parts, uint32_t bytes, kir_buf *out) {
  memset(out, 0, sizeof *out);
  if (k->st) return k->st;
  kir_heap *h = &k->heap[mem == OT_MEM_PSUM];
  uint32_t nparts = mem == OT_MEM_PSUM ? k->chip->psum.partitions : k->chip->sbuf.partitions;
  if (parts == 0 || parts > nparts)
    return kir_fail(k, OT_EINVAL, "allocation of %u partitions in %s (it has %u)", parts, ot_mem_name(mem), nparts);
  uint32_t size = (bytes + h->align - 1) / h->align * h->align;
  if (size == 0) size = h->align;
  if (h->bank && size > h->bank)
    return kir_fail(k, OT_EUNSUPPORTED, "PSUM buffer of %u bytes per partition exceeds a bank (%u bytes)", size, h->bank);
  if (h->n + 2 > h->cap) {
    kir_hole *nh = realloc(h->hole, (size_t)(h->cap * 2) * sizeof *nh);
    if (!nh) return kir_fail(k, OT_ENOMEM, "out of memory");
    h->hole = nh;
    h->cap *= 2;
  }
  for (uint32_t i = 0; i < h->n; i++) {
    uint32_t s;
    if (!hole_fit(h, &h->hole[i], size, &s)) continue;
    hole_take(h, i, s, size);
    out->mem = (uint8_t)mem;
    out->parts = (uint16_t)parts;
    out->off = s;
    out->bytes = size;
    h->used += size;
    if (h->used > h->peak) h->peak = h->used;
    return OT_OK;
  }
  return kir_fail(k, OT_ENOMEM, "%s full: %u bytes per partition requested, %u of %u in use, largest hole %u",
                  mem == OT_MEM_PSUM ? "PSUM" : "SBUF", size, h->used, h->capacity, kir_largest_free(k, mem));
}

void kir_release(kir *k, const kir_buf *b) {
  if (!b->bytes) return;
  kir_heap *h = &k->heap[b->mem == OT_MEM_PSUM];
  uint32_t i = 0;
  while (i < h->n && h->hole[i].off < b->off) i++;
  if (h->n + 1 > h->cap) {
    kir_hole *nh = realloc(h->hole, (size_t)(h->cap * 2) * sizeof *nh);
    if (!nh) { kir_fail(k, OT_ENOMEM, "out of memory"); return; }
    h->hole = nh;
    h->cap *= 2;
  }
  memmove(&h->hole[i + 1], &h->hole[i], (h->n - i) * sizeof *h->hole);
  h->hole[i] = (kir_hole){b->off, b->bytes};
  h->n++;
  h->used -= b->bytes;
  /* merge with the neighbours */
  if (i + 1 < h->n && h->hole[i].off + h->hole[i].size == h->hole[i + 1].off) {
    h->hole[i].size += h->hole[i + 1].size;
    memmove(&h->hole[i + 1], &h->hole[i + 2], (h->n - i - 2) * sizeof *h->hole);
    h->n--;
  }
  if (i > 0 && h->hole[i - 1].off + h->hole[i - 1].size == h->hole[i].off) {
    h->hole[i - 1].size += h->hole[i].size;
    memmove(&h->hole[i], &h->hole[i + 1], (h->n - i - 1) * sizeof *h->hole);
    h->n--;
  }
}

bool kir_can_alloc(const kir *k, ot_mem mem, uint32_t bytes) {
  const kir_heap *h = &k->heap[mem == OT_MEM_PSUM];
  uint32_t size = (bytes + h->align - 1) / h->align * h->align, s;
  if (size == 0) size = h->align;
  if (h->bank && size > h->bank) return false;
  for (uint32_t i = 0; i < h->n; i++)
    if (hole_fit(h, &h->hole[i], size, &s)) return true;
  return false;
}

uint32_t kir_largest_free(const kir *k, ot_mem mem) {
  const kir_heap *h = &k->heap[mem == OT_MEM_PSUM];
  uint32_t best = 0;
  for (uint32_t i = 0; i < h->n; i++)
    if (h->hole[i].size > best) best = h->hole[i].size;
  return best;
}
