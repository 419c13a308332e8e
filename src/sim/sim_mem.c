/* SBUF / PSUM / HBM storage, written-byte tracking and run-time views of access patterns.
**
** SBUF and PSUM are row-major: byte `off` of partition `p` is data[p * part_bytes + off] (the
** linear address trainium.md §3.1 infers).  HBM is paged so a 96 GiB device costs only what a
** program writes.  Elements are little endian whatever the host.  Every access goes through a
** view that ot_view_resolve has bounds-checked, so nothing here can reach outside a memory. */
/* mmap MAP_ANONYMOUS is not in strict POSIX: ask glibc for it. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "isa/disasm.h"
#include "sim/sim_exec_mem.h"

#define HBM_PAGE ((uint64_t)1 << OT_HBM_PAGE_BITS)
#define HBM_MASK (HBM_PAGE - 1)
#define CHUNK 1024 /* elements staged on the stack by the fp32 load/store interface */

/* ---- sites and errors -------------------------------------------------------------------- */
void ot_site_format(const ot_site *s, char *buf, size_t cap) {
  if (!buf || !cap) return;
  if (!s) { snprintf(buf, cap, "(unknown site)"); return; }
  char text[512] = "";
  if (s->insn) {
    /* An unverified instruction may claim more dims than a pattern holds: print a clamped copy. */
    ot_insn in = *s->insn;
    const ot_opcode_info *info = in.op < OT_OP_COUNT ? &ot_opcodes[in.op] : NULL;
    for (unsigned k = 0; info && k < info->n_operands && k < OT_MAX_OPERANDS; k++) {
      ot_operand_kind kind = info->operands[k].kind;
      bool ap = kind == OT_OK_AP || (kind == OT_OK_VAL && in.o[k].tag == OT_TAG_AP);
      if (ap && in.o[k].ap.ndim > OT_AP_MAX_DIMS) in.o[k].ap.ndim = OT_AP_MAX_DIMS;
    }
    FILE *f = fmemopen(text, sizeof text, "w");
    if (f) { ot_insn_print(f, &in, s->prog); fclose(f); }
    text[sizeof text - 1] = '\0';
  }
  char line[32] = "";
  if (s->insn && s->insn->line) snprintf(line, sizeof line, " (line %u)", s->insn->line);
  /* A compiled instruction names the graph node it came from: the user's model, not our code. */
  const char *node = s->insn && s->insn->tag && s->prog && s->insn->tag < s->prog->strings_len ? ot_program_string(s->prog, s->insn->tag) : "";
  snprintf(buf, cap, "core %u %s pc %u%s%s%s%s `%s`", s->core, ot_engine_name(s->engine), s->pc, line, *node ? " (graph node '" : "",
           node, *node ? "')" : "", text);
}

ot_status ot_site_error(const ot_site *site, ot_error *err, const char *fmt, ...) {
  char where[640], msg[1024];
  ot_site_format(site, where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(err, OT_ERUNTIME, "%s: %s", where, msg);
  return OT_ERUNTIME;
}

/* ---- bit sets (one bit per byte or per 4-byte word) --------------------------------------- */
static bool bit_get(const uint8_t *b, uint64_t i) { return (b[i >> 3] >> (i & 7)) & 1u; }

static void bit_put(uint8_t *b, uint64_t i, bool v) {
  if (v) b[i >> 3] |= (uint8_t)(1u << (i & 7));
  else b[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static void bits_put_range(uint8_t *b, uint64_t lo, uint64_t n, bool v) {
  uint64_t i = lo, end = lo + n;
  for (; i < end && (i & 7); i++) bit_put(b, i, v);
  if (end - i >= 8) {
    uint64_t bytes = (end - i) >> 3;
    memset(b + (i >> 3), v ? 0xFF : 0, bytes);
    i += bytes << 3;
  }
  for (; i < end; i++) bit_put(b, i, v);
}

/* First index in [lo, lo + n) whose bit is clear, or lo + n; skips set bits 64 at a time. */
static uint64_t bits_first_clear(const uint8_t *b, uint64_t lo, uint64_t n) {
  uint64_t i = lo, end = lo + n, w;
  for (; i < end && (i & 7); i++) if (!bit_get(b, i)) return i;
  while (end - i >= 64 && (memcpy(&w, b + (i >> 3), 8), w == UINT64_MAX)) i += 64;
  while (end - i >= 8 && b[i >> 3] == 0xFF) i += 8;
  for (; i < end; i++) if (!bit_get(b, i)) return i;
  return end;
}

/* ---- memory kept between simulators -------------------------------------------------------- */
/* Creating a simulator maps SBUF, PSUM, their written-byte maps, the HBM page table and HBM
** pages.  The kernel zero-fills each 4 KiB page on its first touch, and on a virtual machine one
** such fault costs microseconds: about a fifth of a large GEMM's simulation.  So freed memory is
** kept (up to POOL_CAP bytes in POOL_SLOTS blocks, per process) for the next simulator:
**   - a mapping (SRAM, written-byte map, page table) is made zero again when freed: each page
**     the kernel holds for it (mincore) is zeroed in place if it holds a nonzero byte (for SRAM
**     data: if its written-byte map says so, without reading it), else handed back to the kernel
**     (MADV_DONTNEED: zero-filled on its next touch).  Pages the kernel does not hold are zero.
**     That reasoning needs anonymous pages never to be swapped out, so it is used only on Linux
**     with no swap configured; elsewhere freed mappings are unmapped, as before.
**   - an HBM page (a malloc'd block, as tests allocate them too) is kept as it is and zeroed
**     when reused, unless the write that needs it covers all of it.
** Values cannot change: a block handed out is all zeros, exactly as a fresh one. */
#if defined(__linux__)
#include <stdatomic.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#define POOL_ENABLED 1
#else
#define POOL_ENABLED 0
#endif

#define MAP_MIN ((uint64_t)64 << 10) /* smaller blocks: calloc and free */
#define POOL_SLOTS 128
#define POOL_CAP ((uint64_t)256 << 20)

typedef enum { BLK_MAP, BLK_HBM_PAGE } blk_kind;

#if POOL_ENABLED
typedef struct {
  void *p;
  uint64_t bytes;
  blk_kind kind;
} pool_slot;

static pool_slot pool[POOL_SLOTS];
static uint64_t pool_bytes;
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;

static void pool_lock(void) {
  while (atomic_flag_test_and_set_explicit(&pool_busy, memory_order_acquire)) {}
}
static void pool_unlock(void) { atomic_flag_clear_explicit(&pool_busy, memory_order_release); }

/* A kept block of this kind and size, or NULL. */
static void *pool_take(blk_kind kind, uint64_t bytes) {
  void *p = NULL;
  pool_lock();
  for (unsigned i = 0; i < POOL_SLOTS && !p; i++)
    if (pool[i].p && pool[i].kind == kind && pool[i].bytes == bytes) {
      p = pool[i].p, pool[i].p = NULL;
      pool_bytes -= bytes;
    }
  pool_unlock();
  return p;
}

/* Keep a block; false if the pool is full (the caller releases it). */
static bool pool_keep(void *p, blk_kind kind, uint64_t bytes) {
  bool kept = false;
  pool_lock();
  if (pool_bytes + bytes <= POOL_CAP)
    for (unsigned i = 0; i < POOL_SLOTS && !kept; i++)
      if (!pool[i].p) {
        pool[i] = (pool_slot){p, bytes, kind};
        pool_bytes += bytes, kept = true;
      }
  pool_unlock();
  return kept;
}

/* Anonymous pages are never swapped out (so mincore sees every page that may hold data). */
static bool pool_no_swap(void) {
  struct sysinfo si;
  return sysinfo(&si) == 0 && si.totalswap == 0;
}

/* Any nonzero byte in p[0, n)? */
static bool mem_any(const uint8_t *p, uint64_t n) {
  uint64_t acc = 0, i = 0, w;
  for (; i + 64 <= n; i += 64) {
    for (unsigned j = 0; j < 64; j += 8) memcpy(&w, p + i + j, 8), acc |= w;
    if (acc) return true;
  }
  for (; i < n; i++) acc |= p[i];
  return acc != 0;
}

/* Make the mapping [p, p + bytes) all zeros again (see above); guide: SRAM data's written-byte
** map (bit i: byte i), or NULL to read the pages themselves.  False if the kernel refused. */
static bool map_scrub(uint8_t *p, uint64_t bytes, const uint8_t *guide) {
  long psz = sysconf(_SC_PAGESIZE);
  if (psz <= 0 || psz % 64) return false;
  uint64_t ps = (uint64_t)psz, npages = (bytes + ps - 1) / ps;
  unsigned char vec[4096];
  uint64_t drop = 0, ndrop = 0; /* a run of clean resident pages to hand back */
  for (uint64_t c = 0; c < npages; c += sizeof vec) {
    uint64_t n = npages - c < sizeof vec ? npages - c : sizeof vec;
    if (mincore(p + c * ps, n * ps, vec)) return false;
    for (uint64_t k = 0; k < n; k++) {
      uint64_t i = c + k, off = i * ps, len = bytes - off < ps ? bytes - off : ps;
      if (vec[k] & 1) {
        bool dirty = guide ? mem_any(guide + off / 8, (len + 7) / 8) : mem_any(p + off, len);
        if (dirty) memset(p + off, 0, len);
        else {
          if (!ndrop) drop = i;
          ndrop++;
          continue;
        }
      }
      if (ndrop && madvise(p + drop * ps, ndrop * ps, MADV_DONTNEED)) return false;
      ndrop = 0;
    }
  }
  return !ndrop || !madvise(p + drop * ps, ndrop * ps, MADV_DONTNEED);
}
#endif

/* Zeroed memory.  Large blocks are anonymous mappings, kept between simulators (above): the
** kernel zero-fills only the pages a run touches (a kernel uses a few MiB of a 24-32 MiB SBUF).
** No huge pages: SBUF is partition-major with a 192-256 KiB stride, so a kernel touching the
** start of every partition would make every 2 MiB page be zero-filled whole.  Small ones use
** calloc. */
static void *zmem_alloc(uint64_t bytes) {
  if (bytes < MAP_MIN) return calloc(bytes, 1);
#if POOL_ENABLED
  void *k = pool_take(BLK_MAP, bytes);
  if (k) return k;
#endif
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* Release a block from zmem_alloc; guide as for map_scrub.  clean: it is known to be all zeros. */
static void zmem_release(void *p, uint64_t bytes, const uint8_t *guide, bool clean) {
  if (!p) return;
  if (bytes < MAP_MIN) { free(p); return; }
#if POOL_ENABLED
  if ((clean || (pool_no_swap() && map_scrub(p, bytes, guide))) && pool_keep(p, BLK_MAP, bytes)) return;
#else
  (void)guide, (void)clean;
#endif
  munmap(p, bytes);
}

/* ---- SBUF / PSUM --------------------------------------------------------------------------- */
/* The written-byte map (one bit per byte) is followed, in the same block, by a coarse map: one
** bit per 64-byte block of data, set once every byte of the block is written.  Checks consult it
** before the byte map: a partition's row of 1 KiB is 16 coarse bits, where the byte map holds
** 1024 bits a partition pitch / 8 away from the next row's (rarely in cache).  The byte map only
** gains bits through ot_view_mark_written, which keeps the coarse map; code that edits the byte
** map directly must call ot_sram_written_changed. */
#define COARSE 64 /* data bytes per coarse bit (8 bytes of the byte map) */

static uint64_t sram_map_bytes(const ot_sram *m) {
  return ((uint64_t)m->partitions * m->part_bytes + 7) / 8 / 64 * 64 + 64; /* rounded up to 64 */
}
static uint64_t sram_coarse_bytes(const ot_sram *m) {
  return ((uint64_t)m->partitions * m->part_bytes / COARSE + 7) / 8 / 64 * 64 + 64;
}
static uint64_t sram_written_alloc(const ot_sram *m) { return sram_map_bytes(m) + sram_coarse_bytes(m); }
static uint8_t *sram_coarse(const ot_sram *m) { return m->written + sram_map_bytes(m); }

void ot_sram_written_changed(ot_sram *m) {
  if (m && m->written) memset(sram_coarse(m), 0, sram_coarse_bytes(m));
}

ot_status ot_sram_init(ot_sram *m, uint32_t partitions, uint64_t part_bytes, bool track_mm, ot_error *err) {
  memset(m, 0, sizeof *m);
  if (partitions == 0 || part_bytes == 0 || part_bytes > (1ull << 40) / partitions)
    return ot_error_set(err, OT_EINVAL, "SRAM of %u partitions x %llu bytes: sizes must be positive and below 2^40 bytes",
                        partitions, (unsigned long long)part_bytes);
  uint64_t bytes = (uint64_t)partitions * part_bytes;
  m->partitions = partitions;
  m->part_bytes = part_bytes;
  m->data = zmem_alloc(bytes);
  m->written = zmem_alloc(sram_written_alloc(m));
  if (track_mm) m->mm_written = calloc((bytes / 4 + 8) / 8, 1);
  if (!m->data || !m->written || (track_mm && !m->mm_written)) {
    ot_sram_free(m);
    return ot_error_set(err, OT_ENOMEM, "out of memory allocating %llu bytes of on-chip SRAM", (unsigned long long)bytes);
  }
  return OT_OK;
}

void ot_sram_free(ot_sram *m) {
  if (!m) return;
  uint64_t bytes = (uint64_t)m->partitions * m->part_bytes;
  /* data first: the written-byte map says which of its pages hold data */
  if (m->written) zmem_release(m->data, bytes, m->written, false);
  else zmem_release(m->data, bytes, NULL, false);
  zmem_release(m->written, sram_written_alloc(m), NULL, false);
  free(m->mm_written);
  memset(m, 0, sizeof *m);
}

ot_sram *ot_mem_sram(const ot_mem_ctx *m, ot_mem mem) {
  if (!m || !m->core) return NULL;
  if (mem == OT_MEM_SBUF) return &m->core->sbuf;
  if (mem == OT_MEM_PSUM) return &m->core->psum;
  return NULL;
}

/* ---- HBM ------------------------------------------------------------------------------------ */
ot_status ot_hbm_init(ot_hbm *h, uint64_t bytes, ot_error *err) {
  memset(h, 0, sizeof *h);
  uint64_t n = (bytes + HBM_MASK) >> OT_HBM_PAGE_BITS;
  h->pages = zmem_alloc((n ? n : 1) * sizeof *h->pages);
  if (!h->pages) return ot_error_set(err, OT_ENOMEM, "out of memory for the page table of %llu bytes of HBM", (unsigned long long)bytes);
  h->bytes = bytes;
  h->n_pages = n;
  return OT_OK;
}

/* An HBM page no longer used: kept for the next one (see above) or freed. */
static void hbm_page_release(uint8_t *pg) {
#if POOL_ENABLED
  if (pool_keep(pg, BLK_HBM_PAGE, HBM_PAGE)) return;
#endif
  free(pg);
}

/* Free the pages of table entries [i0, i1) and clear those entries. */
static void hbm_free_pages(ot_hbm *h, uint64_t i0, uint64_t i1) {
  for (uint64_t i = i0; i < i1 && i < h->n_pages; i++)
    if (h->pages[i]) hbm_page_release(h->pages[i]), h->pages[i] = NULL;
}

void ot_hbm_free(ot_hbm *h) {
  if (!h) return;
  free(h->written);
  h->written = NULL;
  uint64_t tbytes = (h->n_pages ? h->n_pages : 1) * sizeof *h->pages;
  bool clean = false;
#if POOL_ENABLED
  /* Only the table's pages the kernel holds can hold entries: no need to read the rest (a
  ** 96 GiB HBM has a 768 KiB table, mostly never touched). */
  long psz = sysconf(_SC_PAGESIZE);
  if (h->pages && tbytes >= MAP_MIN && psz > 0 && (uint64_t)psz % sizeof *h->pages == 0 && pool_no_swap()) {
    uint64_t ps = (uint64_t)psz, per = ps / sizeof *h->pages, npages = (tbytes + ps - 1) / ps;
    unsigned char vec[4096];
    clean = true;
    for (uint64_t c = 0; c < npages && clean; c += sizeof vec) {
      uint64_t n = npages - c < sizeof vec ? npages - c : sizeof vec;
      if (mincore((uint8_t *)h->pages + c * ps, n * ps, vec)) clean = false;
      for (uint64_t k = 0; clean && k < n; k++)
        if (vec[k] & 1) hbm_free_pages(h, (c + k) * per, (c + k + 1) * per);
    }
  }
#endif
  if (h->pages && !clean) hbm_free_pages(h, 0, h->n_pages);
  zmem_release(h->pages, tbytes, NULL, clean);
  memset(h, 0, sizeof *h);
}

/* Page i, allocated on demand when alloc: zeroed but for bytes [in, in + k), which the caller
** is about to write; NULL if absent or out of memory. */
static uint8_t *hbm_page_get(const ot_hbm *h, uint64_t i, bool alloc, uint64_t in, uint64_t k) {
  if (!h->pages || i >= h->n_pages) return NULL;
  if (alloc && h->written) h->written[i] = 1; /* every write asks for its page this way */
  if (!h->pages[i] && alloc) {
    uint8_t *pg = NULL;
    if (in > HBM_PAGE || k > HBM_PAGE - in) in = k = 0;
#if POOL_ENABLED
    if ((pg = pool_take(BLK_HBM_PAGE, HBM_PAGE))) memset(pg, 0, in), memset(pg + in + k, 0, HBM_PAGE - in - k);
#endif
    if (!pg) pg = k == HBM_PAGE ? malloc(HBM_PAGE) : calloc(HBM_PAGE, 1);
    h->pages[i] = pg;
  }
  return h->pages[i];
}

static uint8_t *hbm_page(const ot_hbm *h, uint64_t i, bool alloc) { return hbm_page_get(h, i, alloc, 0, 0); }

ot_status ot_hbm_track_writes(ot_hbm *h) {
  if (!h->written && h->n_pages && !(h->written = calloc(h->n_pages, 1))) return OT_ENOMEM;
  if (h->written) memset(h->written, 0, h->n_pages);
  return OT_OK;
}

bool ot_hbm_written(const ot_hbm *h, uint64_t off, uint64_t n) {
  if (!h->written) return true;
  if (!n) return false;
  uint64_t last = (off + n - 1) >> OT_HBM_PAGE_BITS;
  for (uint64_t i = off >> OT_HBM_PAGE_BITS; i <= last && i < h->n_pages; i++)
    if (h->written[i]) return true;
  return false;
}

ot_status ot_hbm_write(ot_hbm *h, uint64_t off, const void *src, uint64_t n) {
  if (!h || off > h->bytes || n > h->bytes - off) return OT_EINVAL;
  const uint8_t *s = src;
  while (n) {
    uint64_t in = off & HBM_MASK, k = HBM_PAGE - in < n ? HBM_PAGE - in : n;
    uint8_t *pg = hbm_page_get(h, off >> OT_HBM_PAGE_BITS, true, in, k);
    if (!pg) return OT_ENOMEM;
    memcpy(pg + in, s, k);
    s += k, off += k, n -= k;
  }
  return OT_OK;
}

void ot_hbm_read(const ot_hbm *h, uint64_t off, void *dst, uint64_t n) {
  uint8_t *d = dst;
  while (n) {
    uint64_t in = off & HBM_MASK, k = HBM_PAGE - in < n ? HBM_PAGE - in : n;
    const uint8_t *pg = h && off < h->bytes ? hbm_page(h, off >> OT_HBM_PAGE_BITS, false) : NULL;
    if (pg) memcpy(d, pg + in, k);
    else memset(d, 0, k); /* never written (or, defensively, out of range): zeros */
    d += k, off += k, n -= k;
  }
}

/* ---- views --------------------------------------------------------------------------------- */
/* The operand of the site's instruction that ap is (by address, then by value), for messages. */
static const char *operand_name(const ot_site *site, const ot_ap *ap) {
  if (!site || !site->insn || site->insn->op >= OT_OP_COUNT) return "operand";
  const ot_opcode_info *info = &ot_opcodes[site->insn->op];
  for (unsigned k = 0; k < info->n_operands; k++)
    if (&site->insn->o[k].ap == ap) return info->operands[k].name;
  for (unsigned k = 0; k < info->n_operands; k++) {
    ot_operand_kind kind = info->operands[k].kind;
    if ((kind == OT_OK_AP || kind == OT_OK_VAL) && !memcmp(&site->insn->o[k].ap, ap, sizeof *ap))
      return info->operands[k].name;
  }
  return "operand";
}

static const char *mem_holder(ot_mem m) {
  return m == OT_MEM_HBM ? "HBM" : m == OT_MEM_SBUF ? "an SBUF partition" : "a PSUM partition";
}

/* "offset 96 + r2 (-32) = 64" when a register moved the offset, else "". */
static void offset_text(char *buf, size_t cap, const ot_ap *ap, const int32_t *regs, int64_t off) {
  buf[0] = '\0';
  if (ap->reg && regs)
    snprintf(buf, cap, " (offset %llu + r%u (%d) = %lld)", (unsigned long long)ap->offset, ap->reg - 1u,
             regs[ap->reg - 1], (long long)off);
}

/* Partitions and the byte limit of the memory ap names; false (with a message) if bad. */
static ot_status view_place(ot_view *v, const ot_ap *ap, const ot_chip *chip, uint64_t *limit, const ot_site *site,
                            ot_error *err, const char *name) {
  if (ap->mem == OT_MEM_HBM) {
    v->part_start = 0, v->parts = 1;
    *limit = chip->hbm.bytes;
    return OT_OK;
  }
  bool sb = ap->mem == OT_MEM_SBUF;
  uint32_t P = sb ? chip->sbuf.partitions : chip->psum.partitions;
  *limit = sb ? chip->sbuf.bytes_per_partition : chip->psum.bytes_per_partition;
  if (ap->part_count == 0 || (uint32_t)ap->part_start + ap->part_count > P)
    return ot_site_error(site, err, "%s: partitions %u..%d, the %s has 0..%u", name, ap->part_start,
                         (int)ap->part_start + (int)ap->part_count - 1, sb ? "SBUF" : "PSUM", P - 1);
  v->part_start = ap->part_start, v->parts = ap->part_count;
  return OT_OK;
}

/* Byte span of the free dimensions relative to the offset: [lo, hi) with hi including the
** last element.  False if some dimension alone spans more than limit bytes. */
static bool view_span(const ot_view *v, uint64_t limit, int64_t *lo, int64_t *hi) {
  int64_t mn = 0, mx = 0;
  for (unsigned d = 0; d < v->ndim; d++) {
    uint64_t steps = v->size[d] - 1;
    uint64_t mag = v->stride[d] < 0 ? (uint64_t)(-v->stride[d]) : (uint64_t)v->stride[d];
    if (steps && mag > limit / steps) return false;
    int64_t span = v->stride[d] * (int64_t)steps;
    if (span < 0) mn += span; else mx += span;
  }
  *lo = mn, *hi = mx + (int64_t)v->esize;
  return true;
}

static ot_status view_dims(ot_view *v, const ot_ap *ap, const ot_site *site, ot_error *err, const char *name) {
  uint64_t n = 1;
  for (unsigned d = 0; d < v->ndim; d++) {
    v->size[d] = ap->dim[d].size;
    v->stride[d] = (int64_t)ap->dim[d].stride * (int64_t)v->esize;
    if (ap->dim[d].size && n > OT_VIEW_MAX_ELEMS / ap->dim[d].size)
      return ot_site_error(site, err, "%s: more than 2^40 elements per partition", name);
    n *= ap->dim[d].size;
  }
  v->free_elems = n;
  return OT_OK;
}

/* The offset with the register added; it must not be negative. */
static ot_status view_offset(ot_view *v, const ot_ap *ap, const int32_t *regs, const ot_chip *chip, const ot_site *site,
                             ot_error *err, const char *name, char *otext, size_t cap) {
  otext[0] = '\0';
  if (ap->offset > (1ull << 62)) /* far beyond any memory; keeps the arithmetic in int64 */
    return ot_site_error(site, err, "%s: offset %llu, %s holds far less", name, (unsigned long long)ap->offset,
                         mem_holder(v->mem));
  int64_t off = (int64_t)ap->offset;
  if (ap->reg) {
    unsigned r = ap->reg - 1u;
    if (!regs || r >= chip->seq.registers)
      return ot_site_error(site, err, "%s: offset register r%u, the sequencer has r0..r%u", name, r, chip->seq.registers - 1);
    off += regs[r];
    offset_text(otext, cap, ap, regs, off);
  }
  if (off < 0) return ot_site_error(site, err, "%s: negative address%s", name, otext);
  v->offset = (uint64_t)off;
  return OT_OK;
}

/* Every byte of every element inside [0, limit). */
static ot_status view_bounds(const ot_view *v, uint64_t limit, const ot_site *site, ot_error *err, const char *name,
                             const char *otext) {
  int64_t lo, hi, off = (int64_t)v->offset;
  if (limit > (1ull << 60)) limit = 1ull << 60; /* keeps the sums below in int64 */
  if (v->offset > limit)
    return ot_site_error(site, err, "%s: offset %llu%s, %s holds %llu bytes", name, (unsigned long long)v->offset, otext,
                         mem_holder(v->mem), (unsigned long long)limit);
  if (v->free_elems == 0) return OT_OK; /* touches nothing */
  if (!view_span(v, limit, &lo, &hi))
    return ot_site_error(site, err, "%s: the pattern reaches beyond the %llu bytes %s holds%s", name,
                         (unsigned long long)limit, mem_holder(v->mem), otext);
  if (off + lo < 0 || (uint64_t)(off + hi) > limit)
    return ot_site_error(site, err, "%s: bytes %lld..%lld%s, %s holds %llu", name, (long long)(off + lo),
                         (long long)(off + hi - 1), otext, mem_holder(v->mem), (unsigned long long)limit);
  return OT_OK;
}

ot_status ot_view_resolve(ot_view *v, const ot_ap *ap, const int32_t *regs, const ot_chip *chip, const ot_site *site,
                          ot_error *err) {
  memset(v, 0, sizeof *v);
  if (!ap || !chip) return ot_site_error(site, err, "no access pattern or chip to resolve");
  const char *name = operand_name(site, ap);
  if (ap->mem != OT_MEM_SBUF && ap->mem != OT_MEM_PSUM && ap->mem != OT_MEM_HBM)
    return ot_site_error(site, err, "%s: memory %u is not sb, ps or hbm", name, ap->mem);
  if (ap->dtype >= OT_DT_COUNT) return ot_site_error(site, err, "%s: data type %u unknown", name, ap->dtype);
  if (ap->ndim > OT_AP_MAX_DIMS)
    return ot_site_error(site, err, "%s: %u free dimensions, at most %d", name, ap->ndim, OT_AP_MAX_DIMS);
  v->mem = (ot_mem)ap->mem, v->dtype = (ot_dtype)ap->dtype, v->esize = (uint32_t)ot_dtype_size(v->dtype);
  v->ndim = ap->ndim;
  uint64_t limit;
  char otext[96];
  ot_status st = view_place(v, ap, chip, &limit, site, err, name);
  if (st == OT_OK) st = view_dims(v, ap, site, err, name);
  if (st == OT_OK) st = view_offset(v, ap, regs, chip, site, err, name, otext, sizeof otext);
  return st != OT_OK ? st : view_bounds(v, limit, site, err, name, otext);
}

uint64_t ot_view_elems(const ot_view *v) { return (uint64_t)v->parts * v->free_elems; }

/* ---- walking a view ------------------------------------------------------------------------ */
void ot_view_cursor_init(ot_view_cursor *c, const ot_mem_ctx *m, const ot_view *v) {
  memset(c, 0, sizeof *c);
  const ot_sram *s = ot_mem_sram(m, v->mem);
  c->part_bytes = s ? s->part_bytes : 0;
  c->base = (uint64_t)v->part_start * c->part_bytes + v->offset;
  c->left = ot_view_elems(v);
  unsigned nd = 0;
  for (unsigned d = 0; d < v->ndim; d++) {
    if (v->size[d] == 1) continue;
    /* The previous (outer) dimension continues this one: one run covers both. */
    if (nd && c->stride[nd - 1] == v->stride[d] * (int64_t)v->size[d]) {
      c->size[nd - 1] *= v->size[d];
      c->stride[nd - 1] = v->stride[d];
      continue;
    }
    c->stride[nd] = v->stride[d], c->size[nd] = v->size[d], nd++;
  }
  if (!nd) c->stride[0] = v->esize, c->size[0] = 1, nd = 1;
  c->nd = nd;
}

bool ot_view_cursor_next(ot_view_cursor *c, uint64_t max, ot_view_run *run) {
  if (!c->left || !max) return false;
  unsigned in = c->nd - 1;
  int64_t a = (int64_t)c->base + (int64_t)c->p * (int64_t)c->part_bytes;
  for (unsigned d = 0; d <= in; d++) a += (int64_t)c->idx[d] * c->stride[d];
  uint64_t n = c->size[in] - c->idx[in];
  if (n > max) n = max;
  if (n > c->left) n = c->left;
  run->addr = (uint64_t)a, run->stride = c->stride[in], run->n = n;
  c->left -= n;
  c->idx[in] += n;
  for (unsigned d = in; d > 0 && c->idx[d] == c->size[d]; d--) c->idx[d] = 0, c->idx[d - 1]++;
  if (c->idx[0] == c->size[0]) c->idx[0] = 0, c->p++;
  return true;
}

/* ---- raw element access -------------------------------------------------------------------- */
static uint32_t le_read(const uint8_t *p, uint32_t es) {
  switch (es) {
  case 1: return p[0];
  case 2: return (uint32_t)p[0] | (uint32_t)p[1] << 8;
  default: return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  }
}

static void le_write(uint8_t *p, uint32_t es, uint32_t v) {
  p[0] = (uint8_t)v;
  if (es >= 2) p[1] = (uint8_t)(v >> 8);
  if (es == 4) p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* ---- fp32 access --------------------------------------------------------------------------- */
static float f32_of_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static uint32_t bits_of_f32(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

/* RNE without saturation: the conversions the fast paths reproduce exactly. */
static bool cvt_plain(const ot_cvt *cvt) {
  return !cvt || ((cvt->round != OT_ROUND_STOCHASTIC || !cvt->rng) && !cvt->saturate);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1 /* the host's layout is the chip's: dense runs can be copied as they are */
#else
#define HOST_LE 0
#endif

/* One run of SRAM elements <-> 32-bit lanes; a loop per element size so each one vectorises. */
static void sram_run_load(const uint8_t *p, int64_t stride, uint64_t n, uint32_t es, uint32_t *o) {
  if (HOST_LE && es == 4 && stride == 4) { memcpy(o, p, n * 4); return; }
  if (HOST_LE && es == 2 && stride == 2) {
    for (uint64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); o[i] = h; }
    return;
  }
  switch (es) {
  case 1: for (uint64_t i = 0; i < n; i++) o[i] = p[(int64_t)i * stride]; break;
  case 2: for (uint64_t i = 0; i < n; i++) o[i] = le_read(p + (int64_t)i * stride, 2); break;
  default: for (uint64_t i = 0; i < n; i++) o[i] = le_read(p + (int64_t)i * stride, 4); break;
  }
}

static void sram_run_store(uint8_t *p, int64_t stride, uint64_t n, uint32_t es, const uint32_t *x) {
  if (HOST_LE && es == 4 && stride == 4) { memcpy(p, x, n * 4); return; }
  switch (es) {
  case 1: for (uint64_t i = 0; i < n; i++) p[(int64_t)i * stride] = (uint8_t)x[i]; break;
  case 2: for (uint64_t i = 0; i < n; i++) le_write(p + (int64_t)i * stride, 2, x[i]); break;
  default: for (uint64_t i = 0; i < n; i++) le_write(p + (int64_t)i * stride, 4, x[i]); break;
  }
}

static uint32_t hbm_read_elem(const ot_hbm *h, uint64_t a, uint32_t es) {
  uint8_t tmp[4];
  const uint8_t *pg = (a & HBM_MASK) + es <= HBM_PAGE ? hbm_page(h, a >> OT_HBM_PAGE_BITS, false) : NULL;
  if (pg) return le_read(pg + (a & HBM_MASK), es);
  ot_hbm_read(h, a, tmp, es); /* absent page (zeros) or an element straddling two pages */
  return le_read(tmp, es);
}

static ot_status hbm_write_elem(ot_hbm *h, uint64_t a, uint32_t es, uint32_t v) {
  uint8_t *pg = (a & HBM_MASK) + es <= HBM_PAGE ? hbm_page(h, a >> OT_HBM_PAGE_BITS, true) : NULL;
  if (pg) { le_write(pg + (a & HBM_MASK), es, v); return OT_OK; }
  uint8_t tmp[4];
  le_write(tmp, es, v);
  return ot_hbm_write(h, a, tmp, es);
}

uint64_t ot_cursor_load_bits(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, uint32_t *out, uint64_t max) {
  const ot_sram *s = ot_mem_sram(m, v->mem);
  uint32_t es = v->esize;
  uint64_t done = 0;
  ot_view_run r;
  while (done < max && ot_view_cursor_next(c, max - done, &r)) {
    uint32_t *o = out + done;
    if (s) {
      sram_run_load(s->data + r.addr, r.stride, r.n, es, o);
    } else if (m && m->hbm) {
      for (uint64_t i = 0; i < r.n; i++) o[i] = hbm_read_elem(m->hbm, r.addr + (uint64_t)((int64_t)i * r.stride), es);
    } else {
      memset(o, 0, r.n * sizeof *o);
    }
    done += r.n;
  }
  return done;
}

uint64_t ot_cursor_store_bits(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, const uint32_t *in,
                              uint64_t max, ot_status *st) {
  ot_sram *s = ot_mem_sram(m, v->mem);
  uint32_t es = v->esize;
  uint64_t done = 0;
  ot_view_run r;
  while (done < max && ot_view_cursor_next(c, max - done, &r)) {
    const uint32_t *x = in + done;
    if (s) {
      sram_run_store(s->data + r.addr, r.stride, r.n, es, x);
    } else if (m && m->hbm) {
      for (uint64_t i = 0; i < r.n; i++) {
        ot_status e = hbm_write_elem(m->hbm, r.addr + (uint64_t)((int64_t)i * r.stride), es, x[i]);
        if (e != OT_OK && st) *st = e;
      }
    }
    done += r.n;
  }
  return done;
}

void ot_view_load_bits(const ot_mem_ctx *m, const ot_view *v, uint32_t *out) {
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  ot_cursor_load_bits(m, v, &c, out, UINT64_MAX);
}

ot_status ot_view_store_bits_checked(const ot_mem_ctx *m, const ot_view *v, const uint32_t *in) {
  ot_view_cursor c;
  ot_status st = OT_OK;
  ot_view_cursor_init(&c, m, v);
  ot_cursor_store_bits(m, v, &c, in, UINT64_MAX, &st);
  return st;
}

void ot_view_store_bits(const ot_mem_ctx *m, const ot_view *v, const uint32_t *in) {
  (void)ot_view_store_bits_checked(m, v, in);
}

void ot_bits_to_f32_n(ot_dtype t, const uint32_t *bits, float *out, uint64_t n) {
  if (t == OT_DT_FP32) for (uint64_t i = 0; i < n; i++) out[i] = f32_of_bits(bits[i]);
  else if (t == OT_DT_BF16) for (uint64_t i = 0; i < n; i++) out[i] = f32_of_bits(bits[i] << 16);
  else for (uint64_t i = 0; i < n; i++) out[i] = ot_bits_to_f32(bits[i], t);
}

void ot_f32_to_bits_n(ot_dtype t, const float *in, uint32_t *bits, uint64_t n, const ot_cvt *cvt) {
  /* Fast paths only where they equal the generic conversion: RNE without saturation. */
  bool plain = cvt_plain(cvt);
  if (plain && t == OT_DT_FP32) for (uint64_t i = 0; i < n; i++) bits[i] = bits_of_f32(in[i]);
  else if (plain && t == OT_DT_BF16) for (uint64_t i = 0; i < n; i++) bits[i] = ot_f32_to_bf16(in[i]);
  else for (uint64_t i = 0; i < n; i++) bits[i] = ot_f32_to_bits(in[i], t, cvt);
}

/* Dense bf16 -> fp32 (the matmul moving operand's path): blocks of 8 with a fixed trip count,
** which the compiler vectorises even at -O2. */
static void bf16_dense_to_f32(const uint8_t *p, uint64_t n, float *o) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint16_t h[8];
    uint32_t w[8];
    memcpy(h, p + 2 * i, sizeof h);
    for (int j = 0; j < 8; j++) w[j] = (uint32_t)h[j] << 16;
    memcpy(o + i, w, sizeof w);
  }
  for (; i < n; i++) o[i] = f32_of_bits((uint32_t)le_read(p + 2 * i, 2) << 16);
}

/* One SRAM run of fp32 or bf16 elements straight to fp32. */
static void sram_run_load_f32(const uint8_t *p, int64_t stride, uint64_t n, ot_dtype t, float *o) {
  if (t == OT_DT_FP32 && stride == 4) memcpy(o, p, n * 4);
  else if (t == OT_DT_FP32) for (uint64_t i = 0; i < n; i++) memcpy(&o[i], p + (int64_t)i * stride, 4);
  else if (stride == 2) bf16_dense_to_f32(p, n, o);
  else for (uint64_t i = 0; i < n; i++) o[i] = f32_of_bits((uint32_t)le_read(p + (int64_t)i * stride, 2) << 16);
}

void ot_view_prefetch_partition(const ot_mem_ctx *m, const ot_view *v, uint32_t p) {
#if defined(__GNUC__)
  const ot_sram *s = ot_mem_sram(m, v->mem);
  if (!s || p >= v->parts || !v->free_elems) return;
  int64_t lo = 0, hi = (int64_t)v->esize; /* the partition's byte span, as ot_view_resolve bounds it */
  for (unsigned d = 0; d < v->ndim; d++) {
    int64_t span = v->stride[d] * (int64_t)(v->size[d] - 1);
    if (span < 0) lo += span; else hi += span;
  }
  if (hi - lo > 4096) return; /* sparse or large: leave it to the hardware */
  const uint8_t *row = s->data + (uint64_t)(v->part_start + p) * s->part_bytes + v->offset;
  for (int64_t b = lo; b < hi; b += 64) __builtin_prefetch(row + b);
#else
  (void)m, (void)v, (void)p;
#endif
}

uint64_t ot_cursor_load_f32(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, float *out, uint64_t max) {
  const ot_sram *s = ot_mem_sram(m, v->mem);
  uint64_t done = 0, n;
  ot_view_run r;
  if (HOST_LE && s && (v->dtype == OT_DT_FP32 || v->dtype == OT_DT_BF16)) {
    while (done < max && ot_view_cursor_next(c, max - done, &r)) {
      sram_run_load_f32(s->data + r.addr, r.stride, r.n, v->dtype, out + done);
      done += r.n;
    }
    return done;
  }
  uint32_t buf[CHUNK];
  while (done < max && (n = ot_cursor_load_bits(m, v, c, buf, max - done < CHUNK ? max - done : CHUNK)) > 0) {
    ot_bits_to_f32_n(v->dtype, buf, out + done, n);
    done += n;
  }
  return done;
}

static bool view_store_f32_fast(const ot_mem_ctx *m, const ot_view *v, const float *in, const ot_cvt *cvt) {
  ot_sram *s = ot_mem_sram(m, v->mem);
  if (!HOST_LE || !s || !cvt_plain(cvt) || (v->dtype != OT_DT_FP32 && v->dtype != OT_DT_BF16)) return false;
  ot_view_cursor c;
  ot_view_run r;
  ot_view_cursor_init(&c, m, v);
  for (const float *x = in; ot_view_cursor_next(&c, UINT64_MAX, &r); x += r.n) {
    uint8_t *p = s->data + r.addr;
    if (v->dtype == OT_DT_FP32 && r.stride == 4) memcpy(p, x, r.n * 4);
    else if (v->dtype == OT_DT_FP32) for (uint64_t i = 0; i < r.n; i++) memcpy(p + (int64_t)i * r.stride, &x[i], 4);
    else for (uint64_t i = 0; i < r.n; i++) le_write(p + (int64_t)i * r.stride, 2, ot_f32_to_bf16(x[i]));
  }
  return true;
}

void ot_view_load_f32(const ot_mem_ctx *m, const ot_view *v, float *out) {
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  ot_cursor_load_f32(m, v, &c, out, UINT64_MAX);
}

void ot_view_store_f32(const ot_mem_ctx *m, const ot_view *v, const float *in, const ot_cvt *cvt) {
  if (view_store_f32_fast(m, v, in, cvt)) return;
  uint32_t buf[CHUNK];
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  uint64_t total = ot_view_elems(v);
  for (uint64_t done = 0; done < total;) {
    uint64_t n = total - done < CHUNK ? total - done : CHUNK;
    ot_f32_to_bits_n(v->dtype, in + done, buf, n, cvt);
    ot_cursor_store_bits(m, v, &c, buf, n, NULL);
    done += n;
  }
}

/* ---- raw run copies (DMA) ------------------------------------------------------------------ */
static void run_read(const ot_mem_ctx *m, ot_mem mem, const ot_view_run *r, uint64_t i, uint8_t *dst, uint64_t bytes) {
  const ot_sram *s = ot_mem_sram(m, mem);
  uint64_t a = r->addr + (uint64_t)((int64_t)i * r->stride);
  if (s) memcpy(dst, s->data + a, bytes);
  else ot_hbm_read(m->hbm, a, dst, bytes);
}

static ot_status run_write(const ot_mem_ctx *m, ot_mem mem, const ot_view_run *r, uint64_t i, const uint8_t *src,
                           uint64_t bytes) {
  ot_sram *s = ot_mem_sram(m, mem);
  uint64_t a = r->addr + (uint64_t)((int64_t)i * r->stride);
  if (s) { memcpy(s->data + a, src, bytes); return OT_OK; }
  return ot_hbm_write(m->hbm, a, src, bytes);
}

/* One contiguous piece of a dense copy, at most to the end of an HBM page on either side:
** source bytes (NULL: an HBM page never written, zeros) and destination bytes (NULL: no memory). */
static uint64_t copy_piece(const ot_mem_ctx *m, ot_mem dmem, uint64_t da, ot_mem smem, uint64_t sa, uint64_t len,
                           const uint8_t **src, uint8_t **dst) {
  const ot_sram *ss = ot_mem_sram(m, smem);
  ot_sram *ds = ot_mem_sram(m, dmem);
  ot_hbm *h = m ? m->hbm : NULL;
  *src = NULL, *dst = NULL;
  if (ss) *src = ss->data + sa;
  else if (h && sa < h->bytes) {
    uint64_t in = sa & HBM_MASK;
    if (len > HBM_PAGE - in) len = HBM_PAGE - in;
    const uint8_t *pg = hbm_page(h, sa >> OT_HBM_PAGE_BITS, false);
    if (pg) *src = pg + in;
  }
  if (ds) *dst = ds->data + da;
  else if (h && da < h->bytes && len <= h->bytes - da) {
    uint64_t in = da & HBM_MASK;
    if (len > HBM_PAGE - in) len = HBM_PAGE - in;
    uint8_t *pg = hbm_page_get(h, da >> OT_HBM_PAGE_BITS, true, in, len);
    if (pg) *dst = pg + in;
  }
  return len;
}

ot_status ot_mem_copy_run(const ot_mem_ctx *m, ot_mem dmem, const ot_view_run *d, ot_mem smem, const ot_view_run *s,
                          uint64_t n, uint32_t esize) {
  ot_status st = OT_OK;
  if (d->stride == (int64_t)esize && s->stride == (int64_t)esize) {
    /* dense: straight from memory to memory, an HBM page at a time (memmove: the caller stages
    ** overlapping DMAs, but a copy within one memory must never be undefined) */
    for (uint64_t done = 0, bytes = n * esize; done < bytes;) {
      const uint8_t *src;
      uint8_t *dst;
      uint64_t k = copy_piece(m, dmem, d->addr + done, smem, s->addr + done, bytes - done, &src, &dst);
      if (!dst) st = ot_mem_sram(m, dmem) || !m || !m->hbm ? OT_EINVAL : OT_ENOMEM;
      else if (src) memmove(dst, src, k);
      else memset(dst, 0, k);
      done += k;
    }
    return st;
  }
  uint8_t buf[64];
  if (esize > sizeof buf) return OT_EINVAL;
  for (uint64_t i = 0; i < n; i++) {
    run_read(m, smem, s, i, buf, esize);
    ot_status e = run_write(m, dmem, d, i, buf, esize);
    if (e != OT_OK) st = e;
  }
  return st;
}

/* ---- written-byte tracking ----------------------------------------------------------------- */
/* Byte range [lo, lo + len) of element i of a run. */
static uint64_t run_elem(const ot_view_run *r, uint64_t i) { return r->addr + (uint64_t)((int64_t)i * r->stride); }

/* Start fetching the bitmap bytes of each partition's span (shift: log2 of the bytes one bit
** stands for, 0 for the byte map, 2 for the word map): one partition's bits are far from the
** next one's, and scanning them in turn would wait for each in turn.  At most 8 cache lines a
** partition (beyond that the hardware prefetcher has caught on). */
static void bits_prefetch_rows(const uint8_t *bits, const ot_mem_ctx *m, const ot_view *v, unsigned shift) {
#if defined(__GNUC__)
  const ot_sram *s = ot_mem_sram(m, v->mem);
  if (!s || !v->free_elems) return;
  int64_t lo = 0, hi = (int64_t)v->esize; /* the partition's byte span, as ot_view_resolve bounds it */
  for (unsigned d = 0; d < v->ndim; d++) {
    int64_t span = v->stride[d] * (int64_t)(v->size[d] - 1);
    if (span < 0) lo += span; else hi += span;
  }
  for (uint32_t p = 0; p < v->parts && p < 256; p++) {
    uint64_t a = (uint64_t)(v->part_start + p) * s->part_bytes + v->offset;
    uint64_t b0 = (uint64_t)((int64_t)a + lo) >> (3 + shift), b1 = (uint64_t)((int64_t)a + hi - 1) >> (3 + shift);
    if (b1 - b0 > 8 * 64) b1 = b0 + 8 * 64;
    for (uint64_t b = b0 & ~(uint64_t)63; b <= b1; b += 64) __builtin_prefetch(bits + b);
  }
#else
  (void)bits, (void)m, (void)v, (void)shift;
#endif
}

/* The byte span [*lo, *hi) of each partition's elements, relative to the view's offset. */
static void view_part_span(const ot_view *v, int64_t *lo, int64_t *hi) {
  int64_t mn = 0, mx = (int64_t)v->esize;
  for (unsigned d = 0; d < v->ndim; d++) {
    int64_t span = v->stride[d] * (int64_t)(v->size[d] ? v->size[d] - 1 : 0);
    if (span < 0) mn += span; else mx += span;
  }
  *lo = mn, *hi = mx;
}

/* Coarse block j whole in the byte map: set its coarse bit. */
static void coarse_update(ot_sram *s, uint64_t j) {
  uint64_t w;
  if (j >= (uint64_t)s->partitions * s->part_bytes / COARSE) return; /* a partial last block never counts */
  memcpy(&w, s->written + j * (COARSE / 8), 8);
  if (w == UINT64_MAX) s->written[sram_map_bytes(s) + (j >> 3)] |= (uint8_t)(1u << (j & 7));
}

/* Bytes [a, a + n) were just marked: the coarse bits of the blocks they touch. */
static void coarse_mark(ot_sram *s, uint64_t a, uint64_t n) {
  if (!n) return;
  uint64_t j0 = a / COARSE, j1 = (a + n - 1) / COARSE, f0 = (a + COARSE - 1) / COARSE, f1 = (a + n) / COARSE;
  if (f1 > f0) bits_put_range(sram_coarse(s), f0, f1 - f0, true); /* blocks inside: whole */
  coarse_update(s, j0);
  if (j1 != j0) coarse_update(s, j1);
}

/* Every byte of [a, b) written, from the coarse map and, for the partial blocks at the ends,
** the byte map (true: surely written; false: look closer). */
static bool coarse_written(const ot_sram *s, uint64_t a, uint64_t b) {
  uint64_t f0 = (a + COARSE - 1) / COARSE, f1 = b / COARSE;
  if (f1 <= f0) return bits_first_clear(s->written, a, b - a) == b;
  if (bits_first_clear(sram_coarse(s), f0, f1 - f0) != f1) return false;
  return bits_first_clear(s->written, a, f0 * COARSE - a) == f0 * COARSE &&
         bits_first_clear(s->written, f1 * COARSE, b - f1 * COARSE) == b;
}

/* Every partition's byte span of the view written (so every byte it reads is). */
static bool view_coarse_written(const ot_sram *s, const ot_view *v) {
  int64_t lo, hi;
  view_part_span(v, &lo, &hi);
  for (uint32_t p = 0; p < v->parts; p++) {
    uint64_t base = (uint64_t)(v->part_start + p) * s->part_bytes + v->offset;
    if (!coarse_written(s, (uint64_t)((int64_t)base + lo), (uint64_t)((int64_t)base + hi))) return false;
  }
  return true;
}

bool ot_view_is_written(const ot_mem_ctx *m, const ot_view *v, uint64_t *first_bad) {
  const ot_sram *s = ot_mem_sram(m, v->mem);
  if (!s || !s->written) return true;
  if (!v->free_elems || view_coarse_written(s, v)) return true;
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  ot_view_run r;
  bits_prefetch_rows(s->written, m, v, 0);
  uint64_t idx = 0, es = v->esize;
  while (ot_view_cursor_next(&c, UINT64_MAX, &r)) {
    if (r.stride == (int64_t)es) { /* dense: scan the bytes a word at a time */
      uint64_t bad = bits_first_clear(s->written, r.addr, r.n * es);
      if (bad < r.addr + r.n * es) { if (first_bad) *first_bad = idx + (bad - r.addr) / es; return false; }
    } else {
      for (uint64_t i = 0; i < r.n; i++)
        if (bits_first_clear(s->written, run_elem(&r, i), es) < run_elem(&r, i) + es) {
          if (first_bad) *first_bad = idx + i;
          return false;
        }
    }
    idx += r.n;
  }
  return true;
}

/* 4-byte PSUM words element i of a run overlaps: [*w0, *w1]. */
static void run_words(const ot_view_run *r, uint64_t i, uint32_t es, uint64_t *w0, uint64_t *w1) {
  uint64_t a = run_elem(r, i);
  *w0 = a / 4, *w1 = (a + es - 1) / 4;
}

/* A dense run of aligned 4-byte elements covers whole words: one range operation. */
static bool run_word_dense(const ot_view_run *r, uint32_t es) {
  return es == 4 && r->stride == 4 && r->addr % 4 == 0;
}

bool ot_view_is_mm_written(const ot_mem_ctx *m, const ot_view *v, uint64_t *first_bad) {
  const ot_sram *s = ot_mem_sram(m, v->mem);
  if (!s || !s->mm_written) return v->mem == OT_MEM_PSUM; /* untracked PSUM: cannot tell */
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  bits_prefetch_rows(s->mm_written, m, v, 2);
  ot_view_run r;
  uint64_t idx = 0, w0, w1;
  while (ot_view_cursor_next(&c, UINT64_MAX, &r)) {
    if (run_word_dense(&r, v->esize)) {
      uint64_t bad = bits_first_clear(s->mm_written, r.addr / 4, r.n);
      if (bad < r.addr / 4 + r.n) { if (first_bad) *first_bad = idx + (bad - r.addr / 4); return false; }
      idx += r.n;
      continue;
    }
    for (uint64_t i = 0; i < r.n; i++) {
      run_words(&r, i, v->esize, &w0, &w1);
      if (bits_first_clear(s->mm_written, w0, w1 - w0 + 1) <= w1) {
        if (first_bad) *first_bad = idx + i;
        return false;
      }
    }
    idx += r.n;
  }
  return true;
}

void ot_view_mark_written(const ot_mem_ctx *m, const ot_view *v, bool by_matmul) {
  ot_sram *s = ot_mem_sram(m, v->mem);
  if (!s || !s->written) return;
  ot_view_cursor c;
  ot_view_cursor_init(&c, m, v);
  ot_view_run r;
  uint64_t es = v->esize, w0, w1;
  while (ot_view_cursor_next(&c, UINT64_MAX, &r)) {
    if (r.stride == (int64_t)es) bits_put_range(s->written, r.addr, r.n * es, true), coarse_mark(s, r.addr, r.n * es);
    else
      for (uint64_t i = 0; i < r.n; i++) bits_put_range(s->written, run_elem(&r, i), es, true), coarse_mark(s, run_elem(&r, i), es);
    if (!s->mm_written) continue;
    if (run_word_dense(&r, v->esize)) { bits_put_range(s->mm_written, r.addr / 4, r.n, by_matmul); continue; }
    for (uint64_t i = 0; i < r.n; i++) {
      run_words(&r, i, v->esize, &w0, &w1);
      bits_put_range(s->mm_written, w0, w1 - w0 + 1, by_matmul);
    }
  }
}
