/* kir internals, shared by kir.c (set-up, tags, HBM), kir_alloc.c (on-chip allocation),
** kir_sync.c (dependencies, semaphores, streams) and kir_emit.c (instruction shorthands). */
#ifndef OT_COMPILER_KIR_INT_H
#define OT_COMPILER_KIR_INT_H

#include <stdlib.h>

#include "compiler/kir.h"

/* A stream entry: an instruction, or a wait on a progress source resolved at kir_finish. */
typedef struct {
  ot_insn in;
  bool signal;          /* a sem_inc follows (somebody waits for this instruction) */
  bool is_wait;         /* in is a sem_wait whose value is resolved from (wsrc, widx) */
  uint8_t wsrc;
  int32_t widx;         /* engine source: stream index waited for; queue: transfer count */
} kir_entry;

/* What a stream knows has completed, at a point: vc[src] = last index (engines) or count
** (queues) known complete. */
typedef struct {
  int32_t at;
  int32_t vc[KIR_SRC_COUNT];
} kir_snap;

typedef struct {
  kir_entry *v;
  uint32_t n, cap;
  int32_t vc[KIR_SRC_COUNT];   /* now */
  kir_snap *snap;              /* after each wait, in stream order */
  uint32_t n_snap, cap_snap;
} kir_engine;

typedef struct {
  int32_t (*vc)[KIR_SRC_COUNT]; /* vc[n-1]: what is known once transfer n has completed */
  uint32_t n, cap;
  int8_t last_eng;             /* engine that issued transfer n (-1: none yet) */
  int32_t last_idx;            /* its stream index */
} kir_queue;

/* Access history of a byte range [lo, hi) of one memory. */
typedef struct {
  int64_t lo, hi;
  int8_t wsrc;                 /* last writer's source, -1 none */
  int32_t widx;
  int32_t rd[KIR_SRC_COUNT];   /* last read per source since that write, -1 none */
} kir_seg;

typedef struct {
  kir_seg *seg;
  uint32_t n, cap;
} kir_map;

typedef struct { uint32_t off, size; } kir_hole;

typedef struct {
  kir_hole *hole;
  uint32_t n, cap;
  uint32_t capacity, align, bank, used, peak;
} kir_heap;

typedef struct { char *name; uint32_t off; } kir_tag;

/* An instruction waiting in the scheduling window (kir_sched.c): emitted, not yet placed. */
typedef struct {
  ot_insn in;
  uint8_t eng;                 /* engine; DMA: the issuer asked for (OT_ENG_COUNT = choose) */
  bool dma;
  uint32_t tag;
} kir_pend;

struct kir {
  const ot_chip *chip;
  ot_program *prog;
  uint32_t queues;
  uint32_t q_first[OT_ENG_COUNT], q_count[OT_ENG_COUNT], q_next[OT_ENG_COUNT]; /* each issuer's queues */
  bool dma_lanes;              /* kir_dma_lanes: an issuer's loads on its first queue, stores on its second */
  kir_engine eng[OT_ENG_COUNT];
  kir_queue queue[KIR_MAX_QUEUES];
  kir_map map[3];              /* SBUF, PSUM, HBM */
  kir_heap heap[2];            /* SBUF, PSUM */
  uint64_t hbm_next;
  uint32_t core;               /* the NeuronCore whose streams this kir writes (kir_new: 0) */
  bool multi_core;             /* kir_new_core: other kirs share the program's HBM */
  char origin[128];
  uint32_t tag;
  kir_tag *tags;
  uint32_t n_tags, cap_tags;
  kir_stats stats;
  kir_pend *pend;              /* the scheduling window, in emission order */
  uint32_t n_pend, cap_pend;
  bool schedule;               /* list-schedule each window (else emission order) */
  ot_status st;
  ot_error err;
};

void kir_alloc_init(kir *k, ot_mem mem);

/* Place one instruction now: waits, stream entry, access map (kir_sync.c). */
ot_status kir_place(kir *k, ot_engine e, const ot_insn *in);
ot_status kir_place_dma(kir *k, const ot_insn *in, ot_engine issuer);
/* Schedule and place every instruction of the window (kir_sched.c). */
ot_status kir_flush(kir *k);

/* Grow an array to hold need elements (doubling); NULL on out-of-memory (p is kept). */
static inline void *grow(void *p, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return p;
  uint32_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *np = realloc(p, (size_t)c * elem);
  if (np) *cap = c;
  return np;
}

#endif
