/* kir: per-engine streams from dataflow-ordered instructions (see kir.h for the model). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/kir.h"
#include "compiler/kir_int.h"

/* ---- errors -------------------------------------------------------------------------------- */
ot_status kir_fail(kir *k, ot_status code, const char *fmt, ...) {
  if (k->st != OT_OK) return k->st;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (k->origin[0]) ot_error_set(&k->err, code, "node '%s': %s", k->origin, msg);
  else ot_error_set(&k->err, code, "%s", msg);
  k->st = code;
  return code;
}

ot_status kir_status(const kir *k) { return k->st; }
const ot_error *kir_error(const kir *k) { return &k->err; }
const ot_chip *kir_chip(const kir *k) { return k->chip; }
ot_program *kir_program(kir *k) { return k->prog; }

/* ---- set-up -------------------------------------------------------------------------------- */
/* Each issuing engine gets queues of its own.  A queue runs its transfers in the order they
** reach it at run time, and kir counts a queue's completions in placement order: the two agree
** only when one engine, in stream order, issues all of a queue's transfers.  Loads (Sync) get
** about half; stores are issued by the engine that wrote the data (mostly ScalarE and VectorE).
** With fewer queues than engines they are shared, and kir_place_dma orders the issues. */
static void kir_queues_split(kir *k) {
  uint32_t nq = k->queues;
  if (nq < OT_ENG_COUNT) {
    for (int e = 0; e < OT_ENG_COUNT; e++) { k->q_first[e] = 0; k->q_count[e] = nq; }
    return;
  }
  uint32_t side = (nq - 2) * 3 / 14 > 0 ? (nq - 2) * 3 / 14 : 1;
  uint32_t count[OT_ENG_COUNT] = {0};
  count[OT_ENG_TENSOR] = count[OT_ENG_GPSIMD] = 1;
  count[OT_ENG_VECTOR] = count[OT_ENG_SCALAR] = side;
  count[OT_ENG_SYNC] = nq - 2 - 2 * side;
  uint32_t first = 0;
  for (int e = 0; e < OT_ENG_COUNT; e++) {
    k->q_first[e] = first;
    k->q_count[e] = count[e];
    first += count[e];
  }
}

ot_status kir_new(const ot_chip *chip, ot_program *prog, kir **out, ot_error *err) {
  *out = NULL;
  if (chip->dma.queues < 1)
    return ot_error_set(err, OT_EUNSUPPORTED, "chip has no DMA queues");
  uint32_t nq = chip->dma.queues < KIR_MAX_QUEUES ? chip->dma.queues : KIR_MAX_QUEUES;
  if (chip->seq.semaphores < OT_ENG_COUNT + nq)
    return ot_error_set(err, OT_EUNSUPPORTED,
                        "the compiler needs %u semaphores per core (one per engine and DMA queue); chip has %u",
                        OT_ENG_COUNT + nq, chip->seq.semaphores);
  kir *k = calloc(1, sizeof *k);
  if (!k) return ot_error_set(err, OT_ENOMEM, "out of memory");
  k->chip = chip;
  k->prog = prog;
  k->queues = nq;
  kir_queues_split(k);
  for (uint32_t q = 0; q < nq; q++) k->queue[q].last_eng = -1;
  k->schedule = true;
  for (int e = 0; e < OT_ENG_COUNT; e++)
    for (int s = 0; s < KIR_SRC_COUNT; s++) k->eng[e].vc[s] = -1;
  for (int m = 0; m < 2; m++) kir_alloc_init(k, m ? OT_MEM_PSUM : OT_MEM_SBUF);
  *out = k;
  return OT_OK;
}

ot_status kir_new_core(const ot_chip *chip, ot_program *prog, uint32_t core, kir **out, ot_error *err) {
  if (core >= chip->cores_per_chip)
    return ot_error_set(err, OT_EINVAL, "core %u: chip %s has cores 0..%u", core, chip->name, chip->cores_per_chip - 1);
  ot_status st = kir_new(chip, prog, out, err);
  if (st) return st;
  (*out)->core = core;
  (*out)->multi_core = true;
  return OT_OK;
}

uint32_t kir_core(const kir *k) { return k->core; }
uint32_t kir_free_sem_base(const kir *k) { return OT_ENG_COUNT + k->queues; }

void kir_free(kir *k) {
  if (!k) return;
  for (int e = 0; e < OT_ENG_COUNT; e++) {
    free(k->eng[e].v);
    free(k->eng[e].snap);
  }
  for (int q = 0; q < KIR_MAX_QUEUES; q++) free(k->queue[q].vc);
  for (int m = 0; m < 3; m++) free(k->map[m].seg);
  for (int m = 0; m < 2; m++) free(k->heap[m].hole);
  free(k->pend);
  for (uint32_t i = 0; i < k->cap_tags; i++) free(k->tags[i].name); /* a hash table: every slot */
  free(k->tags);
  free(k);
}

/* Provenance tags are interned here through a small hash table (the program's own pool is a
** list), so tagging every instruction stays O(1). */
static uint32_t tag_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static uint32_t tag_intern(kir *k, const char *name) {
  if (!name || !*name) return 0;
  if (k->n_tags * 2 >= k->cap_tags) {
    uint32_t cap = k->cap_tags ? k->cap_tags * 2 : 256;
    kir_tag *t = calloc(cap, sizeof *t);
    if (!t) return 0;
    for (uint32_t i = 0; i < k->cap_tags; i++) {
      if (!k->tags[i].name) continue;
      uint32_t j = tag_hash(k->tags[i].name) & (cap - 1);
      while (t[j].name) j = (j + 1) & (cap - 1);
      t[j] = k->tags[i];
    }
    free(k->tags);
    k->tags = t;
    k->cap_tags = cap;
  }
  uint32_t j = tag_hash(name) & (k->cap_tags - 1);
  while (k->tags[j].name) {
    if (!strcmp(k->tags[j].name, name)) return k->tags[j].off;
    j = (j + 1) & (k->cap_tags - 1);
  }
  char *copy = strdup(name);
  if (!copy) return 0;
  k->tags[j].name = copy;
  k->tags[j].off = ot_program_intern(k->prog, name);
  k->n_tags++;
  return k->tags[j].off;
}

void kir_set_origin(kir *k, const char *node_name) {
  snprintf(k->origin, sizeof k->origin, "%s", node_name ? node_name : "");
  k->tag = tag_intern(k, k->origin);
}

/* ---- HBM tensors --------------------------------------------------------------------------- */
/* A constant another core's kir of the same program already defined with the same name, type,
** shape and bytes (a data-parallel program lowers every node once per core): shared, not
** defined twice. */
static bool kir_const_shared(kir *k, const ot_tensor_info *t, kir_hbm *out) {
  const ot_tensor_info *x = k->multi_core && t->role == OT_ROLE_CONST ? ot_program_find_tensor(k->prog, t->name) : NULL;
  if (!x || x->role != OT_ROLE_CONST || x->dtype != t->dtype || x->ndim != t->ndim || !x->data || !t->data) return false;
  for (unsigned d = 0; d < t->ndim; d++)
    if (x->shape[d] != t->shape[d]) return false;
  if (memcmp(x->data, t->data, ot_tensor_bytes(t))) return false;
  out->index = (int32_t)(x - k->prog->tensors);
  out->off = x->offset;
  out->dtype = t->dtype;
  return true;
}

ot_status kir_tensor(kir *k, const char *name, ot_dtype dt, unsigned ndim, const uint64_t *shape, int role,
                     const void *data, kir_hbm *out) {
  if (k->st) return k->st;
  if (ndim > OT_TENSOR_MAX_DIMS) return kir_fail(k, OT_EUNSUPPORTED, "tensor '%s' has %u dims (max %d)", name, ndim, OT_TENSOR_MAX_DIMS);
  ot_tensor_info t;
  memset(&t, 0, sizeof t);
  t.name = (char *)name;
  t.dtype = (uint8_t)dt;
  t.role = (uint8_t)role;
  t.ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim; d++) t.shape[d] = shape[d];
  if (k->multi_core) /* other cores' kirs place tensors in the same program: go after them all */
    for (uint32_t i = 0; i < k->prog->n_tensors; i++) {
      uint64_t end = k->prog->tensors[i].offset + ot_tensor_bytes(&k->prog->tensors[i]);
      if (end > k->hbm_next) k->hbm_next = end;
    }
  t.offset = (k->hbm_next + 63) & ~(uint64_t)63;
  t.data = (uint8_t *)data;
  if (kir_const_shared(k, &t, out)) return OT_OK;
  uint64_t bytes = ot_tensor_bytes(&t);
  if (k->multi_core && t.offset + bytes > k->chip->hbm.bytes)
    return kir_fail(k, OT_ENOMEM, "tensor '%s' (%llu bytes) does not fit in HBM (%llu of %llu bytes used)", name,
                    (unsigned long long)bytes, (unsigned long long)t.offset, (unsigned long long)k->chip->hbm.bytes);
  if (!k->multi_core && t.offset + bytes > k->chip->hbm.bytes / (k->chip->cores_per_chip ? k->chip->cores_per_chip : 1))
    return kir_fail(k, OT_ENOMEM, "tensor '%s' (%llu bytes) does not fit in the core's share of HBM (%llu of %llu bytes used)",
                    name, (unsigned long long)bytes, (unsigned long long)t.offset,
                    (unsigned long long)(k->chip->hbm.bytes / (k->chip->cores_per_chip ? k->chip->cores_per_chip : 1)));
  ot_error e;
  ot_error_clear(&e);
  if (ot_program_add_tensor(k->prog, &t, &e) != OT_OK) return kir_fail(k, e.code, "%s", e.msg);
  k->hbm_next = t.offset + bytes;
  out->index = (int32_t)(k->prog->n_tensors - 1);
  out->off = t.offset;
  out->dtype = (uint8_t)dt;
  return OT_OK;
}

/* ---- access patterns ----------------------------------------------------------------------- */
ot_ap kir_ap(const kir_buf *b, uint32_t p0, uint32_t np, uint32_t boff, ot_dtype dt, unsigned ndim,
             const int32_t *strides, const uint32_t *sizes) {
  ot_ap ap;
  memset(&ap, 0, sizeof ap);
  ap.mem = b->mem;
  ap.dtype = (uint8_t)dt;
  ap.part_start = (uint16_t)p0;
  ap.part_count = (uint16_t)np;
  ap.offset = (uint64_t)b->off + boff;
  ap.ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim && d < OT_AP_MAX_DIMS; d++) {
    ap.dim[d].stride = strides[d];
    ap.dim[d].size = sizes[d];
  }
  return ap;
}

ot_ap kir_ap2(const kir_buf *b, uint32_t np, uint32_t eoff, uint32_t n, ot_dtype dt) {
  int32_t st = 1;
  return kir_ap(b, 0, np, eoff * (uint32_t)ot_dtype_size(dt), dt, 1, &st, &n);
}

ot_ap kir_hbm_ap(const kir_hbm *t, uint64_t eoff, unsigned ndim, const int64_t *strides, const uint32_t *sizes) {
  ot_ap ap;
  memset(&ap, 0, sizeof ap);
  ap.mem = OT_MEM_HBM;
  ap.dtype = t->dtype;
  ap.offset = t->off + eoff * ot_dtype_size((ot_dtype)t->dtype);
  ap.ndim = (uint8_t)ndim;
  for (unsigned d = 0; d < ndim && d < OT_AP_MAX_DIMS; d++) {
    ap.dim[d].stride = (int32_t)strides[d];
    ap.dim[d].size = sizes[d];
  }
  return ap;
}

/* ---- statistics ---------------------------------------------------------------------------- */
void kir_get_stats(const kir *k, kir_stats *out) {
  *out = k->stats;
  out->sbuf_peak = k->heap[0].peak;
  out->psum_peak = k->heap[1].peak;
}
