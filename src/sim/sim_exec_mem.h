/* Internal helpers of sim_mem.c beyond sim_int.h's interface: walking a view run by run (for
** streaming DMA and range-based bookkeeping), status-returning stores (HBM pages can fail to
** allocate), and the element codecs between raw bits and fp32. */
#ifndef OT_SIM_EXEC_MEM_H
#define OT_SIM_EXEC_MEM_H

#include "sim/sim_int.h"

/* Views with more elements than this are rejected by ot_view_resolve: nothing the chip can do
** needs 2^40 elements, and the bound keeps every address computation inside int64. */
#define OT_VIEW_MAX_ELEMS (1ull << 40)

/* A run: consecutive elements (in iteration order) at a constant byte stride. */
typedef struct {
  uint64_t addr;    /* linear byte address of the first element (SRAM: p * part_bytes + offset) */
  int64_t stride;   /* bytes from one element to the next */
  uint64_t n;       /* elements */
} ot_view_run;

/* Walks a view's elements in iteration order, a run at a time.  Free dimensions of size 1 are
** dropped and dimensions that continue each other contiguously are merged first, so a dense
** [128, 512] pattern is one run per partition. */
typedef struct {
  uint64_t base;                   /* byte address of the view's first partition's origin */
  uint64_t part_bytes;             /* SRAM partition pitch; 0 on HBM */
  unsigned nd;                     /* merged dims, innermost last (at least 1) */
  int64_t stride[OT_AP_MAX_DIMS];
  uint64_t size[OT_AP_MAX_DIMS];
  uint64_t idx[OT_AP_MAX_DIMS];    /* position: odometer over the merged dims */
  uint32_t p;                      /* partition within the view */
  uint64_t left;                   /* elements not yet visited */
} ot_view_cursor;

void ot_view_cursor_init(ot_view_cursor *c, const ot_mem_ctx *m, const ot_view *v);
/* The next run of at most max (>= 1) elements; false when every element has been visited. */
bool ot_view_cursor_next(ot_view_cursor *c, uint64_t max, ot_view_run *run);

/* The SRAM a view lives in (NULL for HBM or a view of a memory the context lacks). */
ot_sram *ot_mem_sram(const ot_mem_ctx *m, ot_mem mem);

/* Elements of a view, all partitions (parts * free_elems). */
uint64_t ot_view_elems(const ot_view *v);

/* Raw element access through a cursor: up to max elements; returns how many were moved.
** The store reports OT_ENOMEM in *st when an HBM page cannot be allocated (the elements of
** that page are dropped). */
uint64_t ot_cursor_load_bits(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, uint32_t *out, uint64_t max);
uint64_t ot_cursor_store_bits(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, const uint32_t *in,
                              uint64_t max, ot_status *st);
/* Ask the host to start fetching partition p's bytes of a (small) SRAM view into cache: a hint,
** no effect on values.  Each partition row is a separate stream, which the hardware prefetcher
** ramps up on too slowly. */
void ot_view_prefetch_partition(const ot_mem_ctx *m, const ot_view *v, uint32_t p);
/* Up to max elements through a cursor as fp32 values; returns how many. */
uint64_t ot_cursor_load_f32(const ot_mem_ctx *m, const ot_view *v, ot_view_cursor *c, float *out, uint64_t max);
/* ot_view_store_bits that reports HBM allocation failure. */
ot_status ot_view_store_bits_checked(const ot_mem_ctx *m, const ot_view *v, const uint32_t *in);

/* Copy the bytes of one run of elements between memories (same element size, used by raw
** DMA).  n elements of esize bytes, at the runs' strides. */
ot_status ot_mem_copy_run(const ot_mem_ctx *m, ot_mem dmem, const ot_view_run *d, ot_mem smem,
                          const ot_view_run *s, uint64_t n, uint32_t esize);

/* The written-byte map of m was edited other than through ot_view_mark_written (tests that
** punch holes in it): forget the summary of written ranges kept beside it. */
void ot_sram_written_changed(ot_sram *m);

/* Report a run-time error at a site: "<site>: <message>"; returns OT_ERUNTIME. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
ot_status ot_site_error(const ot_site *site, ot_error *err, const char *fmt, ...);

/* Codecs: raw element bits <-> fp32 values for n elements of type t (cvt NULL = RNE). */
void ot_bits_to_f32_n(ot_dtype t, const uint32_t *bits, float *out, uint64_t n);
void ot_f32_to_bits_n(ot_dtype t, const float *in, uint32_t *bits, uint64_t n, const ot_cvt *cvt);

#endif
