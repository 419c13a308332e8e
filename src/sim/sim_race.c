/* The race checker: happens-before over engines and DMA queues by vector clocks, and a
** FastTrack-style shadow of SBUF, PSUM and HBM.
**
** Threads.  Per core: the OT_ENG_COUNT engines (in-order instruction streams), then one thread
** per DMA queue (transfers on a queue run in order).  Each thread t has a vector clock C_t;
** C_t[t] is its own clock and starts at 1, so epoch clock 0 means "never" and is ordered before
** everything.  Synchronisation:
**   sem_inc     S ⊔= C_t, then C_t[t]++       (release into the semaphore's accumulated clock)
**   sem_acquire C_t ⊔= S                       (a wait that passed joins every earlier increment)
**   dma_issue   C_q ⊔= C_i, then C_i[i]++      (the transfer follows the issuer's earlier work)
**   barrier     every listed clock := the join of all of them, then each ticks.
** Joining every earlier increment over-approximates happens-before for counting semaphores (a
** wait for s >= 1 also joins the second increment if it came first), so a race can be missed but
** a correctly synchronised program never raises one.
**
** Shadow memory.  One cell per 4-byte granule: the last write epoch (thread, clock, site) and the
** last reads -- one epoch, or, when reads by threads not ordered with each other pile up, the id
** of an interned read set.  An access that covers only part of a granule splits its cell into
** four per-byte cells (kept in a pool, merged back when they agree again), so two accesses race
** only if they touch a common byte.  Pages of cells are allocated on first touch (HBM can be
** 144 GiB).  Reads that happen-before a newer read are dropped from the read state, and a write
** clears it: a later access ordered after the newest access is ordered after the dropped ones,
** and one that is not races with the newest (FastTrack's argument), so the first race on every
** byte is always found.
**
** Speed.  Views are walked as contiguous runs (dimensions sorted and merged), and within an
** access a granule whose cell equals the previous granule's old cell takes the previous result
** without re-checking: a [128 x 512] tile costs one check per distinct cell state.
*/
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_race.h"

#define RACE_PAGE_BITS 14u                          /* bytes of address per shadow page */
#define RACE_PAGE_MASK ((1ull << RACE_PAGE_BITS) - 1u)
#define RACE_PAGE_CELLS (1u << (RACE_PAGE_BITS - 2u))
#define RACE_DIR_BITS 12u                           /* pages per directory */
#define RACE_MARK 0xFFFFu /* w_tid: the cell is split (w_clock = block); r_tid: r_clock = read set */
#define RACE_MEMO 16u     /* read-set transitions remembered per access */

typedef enum { RACE_RAW, RACE_WAR, RACE_WAW } race_kind;

typedef struct {
  uint32_t w_clock, w_site; /* last write: clock (0 = never written) and site id */
  uint32_t r_clock, r_site; /* last read epoch (clock 0 = none), or r_clock = read-set id */
  uint16_t w_tid, r_tid;
} race_cell;

typedef struct {
  uint32_t tid, clock, site;
} race_read;

typedef struct {
  uint32_t start, len; /* entries in ot_race.ent, sorted by thread */
} race_set;

/* Open-addressing table of ids by 64-bit hash; the owner compares candidates. */
typedef struct {
  uint64_t *hash; /* 0 = empty slot */
  uint32_t *id;
  size_t cap, n;
} race_index;

typedef struct {
  uint64_t bytes, ndir;
  race_cell ***dir; /* [ndir][1 << RACE_DIR_BITS] pages, NULL until touched */
} race_space;

typedef struct {
  race_kind kind;
  uint32_t etid, esite;        /* the earlier access */
  uint32_t part_lo, part_hi;   /* partitions (0 on HBM) */
  uint64_t lo, hi;             /* bytes within the partition (or HBM), inclusive */
} race_pending;

typedef struct {
  uint32_t gen, set;           /* valid for access gen; old read-set id */
  race_cell out;               /* the read state after the read (r_* fields) */
} race_memo;

struct ot_race {
  uint32_t cores, queues, per_core, n, nsems;
  uint32_t *vc;                /* [n][n] thread clocks */
  uint32_t *sem;               /* [cores][nsems][n] accumulated semaphore clocks */
  uint32_t *tmp;               /* [n] scratch clock */
  race_space *sbuf, *psum;     /* [cores] */
  race_space hbm;
  uint32_t sbuf_parts, psum_parts;
  uint64_t sbuf_pitch, psum_pitch;
  /* Sites: id = index + 1 (0 = unknown); the last site of every thread is cached. */
  ot_site *sites;
  size_t n_sites, cap_sites;
  race_index site_index;
  ot_site *last_site;          /* [n] */
  uint32_t *last_site_id;      /* [n], 0 = none cached */
  /* Interned read sets. */
  race_read *ent;
  size_t n_ent, cap_ent;
  race_set *sets;
  size_t n_sets, cap_sets;
  race_index set_index;
  race_read *scratch;          /* [n + 1] */
  race_memo memo[RACE_MEMO];
  uint32_t gen;                /* access counter (memo validity) */
  /* Split granules: blocks of four per-byte cells; free blocks chained through w_clock. */
  race_cell (*split)[4];
  uint32_t n_split, cap_split, free_split;
  /* Reports. */
  race_index reported;         /* pairs of site ids already reported */
  race_pending *pending;
  size_t n_pending, cap_pending;
  uint64_t races, shadow_bytes;
  bool oom, oom_reported;
};

/* ---- small helpers ---------------------------------------------------------------------- */
static uint64_t race_mix(uint64_t z) { /* splitmix64's finaliser */
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t race_hash_nonzero(uint64_t h) { return h ? h : 1; }

static bool race_grow(void **p, size_t *cap, size_t need, size_t elem, ot_race *r) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) { r->oom = true; return false; }
  r->shadow_bytes += (c - *cap) * elem;
  *p = q;
  *cap = c;
  return true;
}

static bool cell_eq(const race_cell *a, const race_cell *b) {
  return a->w_clock == b->w_clock && a->w_site == b->w_site && a->r_clock == b->r_clock &&
         a->r_site == b->r_site && a->w_tid == b->w_tid && a->r_tid == b->r_tid;
}

static uint32_t *thread_clock(const ot_race *r, uint32_t tid) { return &r->vc[(size_t)tid * r->n]; }

static void clock_join(uint32_t *dst, const uint32_t *src, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (src[i] > dst[i]) dst[i] = src[i];
}

/* A thread's own component advances past the epoch others may have seen. */
static void clock_tick(ot_race *r, uint32_t tid) {
  uint32_t *c = &thread_clock(r, tid)[tid];
  if (*c < UINT32_MAX) (*c)++;
}

/* ---- the id index ------------------------------------------------------------------------- */
typedef bool (*race_eq_fn)(const ot_race *r, uint32_t id, const void *key);

/* Slot holding an id with hash h that eq accepts (any, when eq is NULL), or the empty slot
** where one would go.  The table is never full (it grows at half load). */
static size_t index_probe(const ot_race *r, const race_index *x, uint64_t h, race_eq_fn eq, const void *key) {
  size_t mask = x->cap - 1, i = (size_t)race_mix(h) & mask;
  while (x->hash[i] && !(x->hash[i] == h && (!eq || eq(r, x->id[i], key)))) i = (i + 1) & mask;
  return i;
}

static bool index_init(race_index *x, size_t cap) {
  x->hash = calloc(cap, sizeof *x->hash);
  x->id = calloc(cap, sizeof *x->id);
  x->cap = cap;
  x->n = 0;
  return x->hash && x->id;
}

static void index_free(race_index *x) {
  free(x->hash);
  free(x->id);
}

/* Add (h, id); h must not be present with an id that its owner would accept. */
static bool index_add(ot_race *r, race_index *x, uint64_t h, uint32_t id) {
  if ((x->n + 1) * 2 > x->cap) {
    race_index y;
    if (!index_init(&y, x->cap * 2)) { index_free(&y); r->oom = true; return false; }
    for (size_t i = 0; i < x->cap; i++) {
      if (!x->hash[i]) continue;
      size_t j = (size_t)race_mix(x->hash[i]) & (y.cap - 1);
      while (y.hash[j]) j = (j + 1) & (y.cap - 1);
      y.hash[j] = x->hash[i];
      y.id[j] = x->id[i];
    }
    y.n = x->n;
    index_free(x);
    *x = y;
  }
  size_t i = (size_t)race_mix(h) & (x->cap - 1);
  while (x->hash[i]) i = (i + 1) & (x->cap - 1);
  x->hash[i] = h;
  x->id[i] = id;
  x->n++;
  return true;
}

/* ---- sites -------------------------------------------------------------------------------- */
static bool site_same(const ot_site *a, const ot_site *b) {
  return a->prog == b->prog && a->core == b->core && a->engine == b->engine && a->pc == b->pc && a->insn == b->insn;
}

static uint64_t site_hash(const ot_site *s) {
  uint64_t h = race_mix((uint64_t)(uintptr_t)s->insn ^ ((uint64_t)s->pc << 32));
  h = race_mix(h ^ (uint64_t)(uintptr_t)s->prog ^ ((uint64_t)s->core << 40) ^ ((uint64_t)s->engine << 56));
  return race_hash_nonzero(h);
}

static bool site_eq(const ot_race *r, uint32_t id, const void *key) { return site_same(&r->sites[id - 1], key); }

/* Id of a site (interned: the instruction it names lives as long as the run). */
static uint32_t site_intern(ot_race *r, uint32_t tid, const ot_site *s) {
  if (!s) return 0;
  if (r->last_site_id[tid] && site_same(&r->last_site[tid], s)) return r->last_site_id[tid];
  uint64_t h = site_hash(s);
  size_t slot = index_probe(r, &r->site_index, h, site_eq, s);
  uint32_t id = r->site_index.id[slot];
  if (!r->site_index.hash[slot]) {
    if (!race_grow((void **)&r->sites, &r->cap_sites, r->n_sites + 1, sizeof *r->sites, r)) return 0;
    r->sites[r->n_sites++] = *s;
    id = (uint32_t)r->n_sites;
    if (!index_add(r, &r->site_index, h, id)) return 0;
  }
  r->last_site[tid] = *s;
  r->last_site_id[tid] = id;
  return id;
}

/* ---- read sets ---------------------------------------------------------------------------- */
typedef struct {
  const race_read *e;
  uint32_t n;
} race_set_key;

static uint64_t set_hash(const race_read *e, uint32_t n) {
  uint64_t h = n;
  for (uint32_t i = 0; i < n; i++) h = race_mix(h ^ e[i].tid ^ ((uint64_t)e[i].clock << 16) ^ ((uint64_t)e[i].site << 40));
  return race_hash_nonzero(h);
}

static bool set_eq(const ot_race *r, uint32_t id, const void *key) {
  const race_set_key *k = key;
  const race_set *s = &r->sets[id];
  return s->len == k->n && !memcmp(&r->ent[s->start], k->e, k->n * sizeof *k->e);
}

/* Id of the read set e[0..n) (sorted by thread); UINT32_MAX when out of memory. */
static uint32_t set_intern(ot_race *r, const race_read *e, uint32_t n) {
  race_set_key k = {e, n};
  uint64_t h = set_hash(e, n);
  size_t slot = index_probe(r, &r->set_index, h, set_eq, &k);
  if (r->set_index.hash[slot]) return r->set_index.id[slot];
  if (!race_grow((void **)&r->ent, &r->cap_ent, r->n_ent + n, sizeof *r->ent, r) ||
      !race_grow((void **)&r->sets, &r->cap_sets, r->n_sets + 1, sizeof *r->sets, r))
    return UINT32_MAX;
  memcpy(&r->ent[r->n_ent], e, n * sizeof *e);
  r->sets[r->n_sets] = (race_set){(uint32_t)r->n_ent, n};
  r->n_ent += n;
  uint32_t id = (uint32_t)r->n_sets++;
  if (!index_add(r, &r->set_index, h, id)) return UINT32_MAX;
  return id;
}

/* ---- one access --------------------------------------------------------------------------- */
typedef struct {
  ot_race *r;
  const uint32_t *vc;          /* the accessing thread's clock */
  uint32_t tid, clock, site;
  bool write;
  uint32_t part;               /* partition being walked (0 on HBM) */
  uint64_t part_base;          /* its linear address */
  /* Equal old cells give equal new cells within one access (the clock is fixed). */
  bool memo_ok, memo_racy;
  race_cell memo_old, memo_new;
} race_acc;

static bool pair_reported(const ot_race *r, uint32_t a, uint32_t b) {
  uint64_t key = a < b ? ((uint64_t)a << 32 | b) + 1 : ((uint64_t)b << 32 | a) + 1;
  return r->reported.hash[index_probe(r, &r->reported, key, NULL, NULL)] != 0;
}

/* A conflict with an earlier access (etid, esite) on bytes [lo, hi) (linear addresses):
** gathered per earlier instruction, reported when the access is done. */
static void race_note(race_acc *a, race_kind kind, uint32_t etid, uint32_t esite, uint64_t lo, uint64_t hi) {
  ot_race *r = a->r;
  if (pair_reported(r, esite, a->site)) return;
  a->memo_racy = true;
  uint64_t off_lo = lo - a->part_base, off_hi = hi - 1 - a->part_base;
  for (size_t i = 0; i < r->n_pending; i++) {
    race_pending *p = &r->pending[i];
    if (p->esite != esite || p->etid != etid) continue;
    if (a->part < p->part_lo) p->part_lo = a->part;
    if (a->part > p->part_hi) p->part_hi = a->part;
    if (off_lo < p->lo) p->lo = off_lo;
    if (off_hi > p->hi) p->hi = off_hi;
    return;
  }
  if (!race_grow((void **)&r->pending, &r->cap_pending, r->n_pending + 1, sizeof *r->pending, r)) return;
  r->pending[r->n_pending++] = (race_pending){kind, etid, esite, a->part, a->part, off_lo, off_hi};
}

static void read_set_epoch(race_cell *c, uint32_t tid, uint32_t clock, uint32_t site) {
  c->r_tid = (uint16_t)tid;
  c->r_clock = clock;
  c->r_site = site;
}

/* The read state of c after this read, when it holds reads not ordered before it: those reads
** plus this one (reads that happen-before this one dropped), interned. */
static void read_join_set(race_acc *a, race_cell *c) {
  ot_race *r = a->r;
  race_read *out = r->scratch;
  uint32_t n = 0;
  const race_read *in = &(race_read){c->r_tid, c->r_clock, c->r_site};
  uint32_t n_in = 1;
  if (c->r_tid == RACE_MARK) {
    in = &r->ent[r->sets[c->r_clock].start];
    n_in = r->sets[c->r_clock].len;
  }
  bool placed = false;
  for (uint32_t i = 0; i < n_in; i++) {
    if (in[i].tid == a->tid || in[i].clock <= a->vc[in[i].tid]) continue;
    if (!placed && in[i].tid > a->tid) { out[n++] = (race_read){a->tid, a->clock, a->site}; placed = true; }
    out[n++] = in[i];
  }
  if (!placed) out[n++] = (race_read){a->tid, a->clock, a->site};
  if (n == 1) { read_set_epoch(c, a->tid, a->clock, a->site); return; }
  uint32_t id = set_intern(r, out, n);
  if (id == UINT32_MAX) { read_set_epoch(c, a->tid, a->clock, a->site); return; } /* stopped: oom */
  c->r_tid = RACE_MARK;
  c->r_clock = id;
  c->r_site = 0;
}

static void read_update(race_acc *a, race_cell *c) {
  if (c->r_tid != RACE_MARK) {
    if (c->r_clock == 0 || c->r_tid == a->tid || c->r_clock <= a->vc[c->r_tid]) {
      read_set_epoch(c, a->tid, a->clock, a->site);
      return;
    }
    read_join_set(a, c);
    return;
  }
  /* Shared reads: the transition depends only on the set (the clock is fixed per access). */
  race_memo *m = &a->r->memo[c->r_clock % RACE_MEMO];
  if (m->gen == a->r->gen && m->set == c->r_clock) {
    c->r_tid = m->out.r_tid;
    c->r_clock = m->out.r_clock;
    c->r_site = m->out.r_site;
    return;
  }
  uint32_t set = c->r_clock;
  read_join_set(a, c);
  *m = (race_memo){a->r->gen, set, *c};
}

static void write_check_reads(race_acc *a, const race_cell *c, uint64_t lo, uint64_t hi) {
  if (c->r_tid != RACE_MARK) {
    if (c->r_clock > a->vc[c->r_tid]) race_note(a, RACE_WAR, c->r_tid, c->r_site, lo, hi);
    return;
  }
  const race_set *s = &a->r->sets[c->r_clock];
  for (uint32_t i = 0; i < s->len; i++) {
    race_read e = a->r->ent[s->start + i];
    if (e.clock > a->vc[e.tid]) race_note(a, RACE_WAR, e.tid, e.site, lo, hi);
  }
}

/* Check and update one uniform cell for the access's bytes [lo, hi) of it. */
static void cell_apply(race_acc *a, race_cell *c, uint64_t lo, uint64_t hi) {
  if (c->w_clock > a->vc[c->w_tid]) race_note(a, a->write ? RACE_WAW : RACE_RAW, c->w_tid, c->w_site, lo, hi);
  if (!a->write) { read_update(a, c); return; }
  write_check_reads(a, c, lo, hi);
  *c = (race_cell){a->clock, a->site, 0, 0, (uint16_t)a->tid, 0};
}

/* ---- split granules ----------------------------------------------------------------------- */
static uint32_t split_alloc(ot_race *r) {
  if (r->free_split != UINT32_MAX) {
    uint32_t i = r->free_split;
    r->free_split = r->split[i][0].w_clock;
    return i;
  }
  size_t cap = r->cap_split;
  if (!race_grow((void **)&r->split, &cap, (size_t)r->n_split + 1, sizeof *r->split, r)) return UINT32_MAX;
  r->cap_split = (uint32_t)cap;
  return r->n_split++;
}

static void split_free(ot_race *r, uint32_t i) {
  r->split[i][0].w_clock = r->free_split;
  r->free_split = i;
}

/* Bytes [lo, hi) of a split granule (g = its first byte), one byte cell at a time; merged back
** into one cell when all four agree. */
static void split_apply(race_acc *a, race_cell *c, uint64_t lo, uint64_t hi) {
  uint32_t i = c->w_clock;
  race_cell *b = a->r->split[i];
  uint64_t g = lo & ~3ull;
  for (uint64_t x = lo; x < hi; x++) cell_apply(a, &b[x - g], x, x + 1);
  if (cell_eq(&b[0], &b[1]) && cell_eq(&b[0], &b[2]) && cell_eq(&b[0], &b[3])) {
    *c = b[0];
    split_free(a->r, i);
  }
}

/* Bytes [lo, hi) of one granule, not all four. */
static void granule_part(race_acc *a, race_cell *c, uint64_t lo, uint64_t hi) {
  if (c->w_tid == RACE_MARK) { split_apply(a, c, lo, hi); return; }
  race_cell now = *c;
  cell_apply(a, &now, lo, hi);
  if (cell_eq(&now, c)) return;
  uint32_t i = split_alloc(a->r);
  if (i == UINT32_MAX) { *c = now; return; } /* out of memory: checking stops after this access */
  race_cell *b = a->r->split[i];
  uint64_t g = lo & ~3ull;
  for (unsigned k = 0; k < 4; k++) b[k] = (g + k >= lo && g + k < hi) ? now : *c;
  *c = (race_cell){i, 0, 0, 0, RACE_MARK, 0};
}

static void granule_full(race_acc *a, race_cell *c, uint64_t g) {
  if (c->w_tid == RACE_MARK) { split_apply(a, c, g, g + 4); return; }
  if (a->memo_ok && !a->memo_racy && cell_eq(c, &a->memo_old)) { *c = a->memo_new; return; }
  race_cell old = *c;
  a->memo_racy = false;
  cell_apply(a, c, g, g + 4);
  a->memo_old = old;
  a->memo_new = *c;
  a->memo_ok = true;
}

/* ---- shadow spaces ------------------------------------------------------------------------ */
static bool space_init(race_space *s, uint64_t bytes) {
  s->bytes = bytes;
  s->ndir = (bytes >> (RACE_PAGE_BITS + RACE_DIR_BITS)) + 1;
  s->dir = calloc(s->ndir, sizeof *s->dir);
  return s->dir != NULL;
}

static void space_free(race_space *s) {
  for (uint64_t d = 0; s->dir && d < s->ndir; d++) {
    if (!s->dir[d]) continue;
    for (size_t i = 0; i < (1u << RACE_DIR_BITS); i++) free(s->dir[d][i]);
    free(s->dir[d]);
  }
  free(s->dir);
}

/* The page of cells holding addr, allocated (zeroed: never accessed) on first touch. */
static race_cell *space_page(ot_race *r, race_space *s, uint64_t addr) {
  uint64_t pg = addr >> RACE_PAGE_BITS, d = pg >> RACE_DIR_BITS;
  size_t i = (size_t)(pg & ((1u << RACE_DIR_BITS) - 1u));
  if (!s->dir[d]) {
    s->dir[d] = calloc((size_t)1 << RACE_DIR_BITS, sizeof **s->dir);
    if (!s->dir[d]) { r->oom = true; return NULL; }
    r->shadow_bytes += ((size_t)1 << RACE_DIR_BITS) * sizeof **s->dir;
  }
  if (!s->dir[d][i]) {
    s->dir[d][i] = calloc(RACE_PAGE_CELLS, sizeof(race_cell));
    if (!s->dir[d][i]) { r->oom = true; return NULL; }
    r->shadow_bytes += RACE_PAGE_CELLS * sizeof(race_cell);
  }
  return s->dir[d][i];
}

/* Check bytes [addr, addr + len) of a space. */
static void run_check(race_acc *a, race_space *s, uint64_t addr, uint64_t len) {
  uint64_t end = addr + len;
  while (addr < end && !a->r->oom) {
    race_cell *page = space_page(a->r, s, addr);
    if (!page) return;
    uint64_t stop = (addr | RACE_PAGE_MASK) + 1;
    if (stop > end) stop = end;
    if (addr & 3u) { /* head: part of a granule */
      uint64_t h = (addr | 3u) + 1 < stop ? (addr | 3u) + 1 : stop;
      granule_part(a, &page[(addr & RACE_PAGE_MASK) >> 2], addr, h);
      addr = h;
    }
    for (; addr + 4 <= stop; addr += 4) granule_full(a, &page[(addr & RACE_PAGE_MASK) >> 2], addr);
    if (addr < stop) { /* tail */
      granule_part(a, &page[(addr & RACE_PAGE_MASK) >> 2], addr, stop);
      addr = stop;
    }
  }
}

/* ---- views as runs ------------------------------------------------------------------------ */
/* A view's bytes within one partition (or HBM): runs of `run` bytes at start + sum idx*stride.
** Iteration order does not matter for races, so dimensions are normalised: sizes 1 and
** stride-0 (broadcast) dimensions dropped, negative strides flipped, sorted by stride, and
** inner dimensions whose elements touch or overlap folded into the run. */
typedef struct {
  uint64_t start, run;
  unsigned nd;
  uint64_t stride[OT_AP_MAX_DIMS];
  uint32_t size[OT_AP_MAX_DIMS];
} race_shape;

static bool shape_of(const ot_view *v, race_shape *sh) {
  int64_t start = (int64_t)v->offset;
  unsigned nd = 0;
  if (v->esize == 0 || v->ndim > OT_AP_MAX_DIMS) return false;
  for (uint32_t d = 0; d < v->ndim; d++) {
    if (v->size[d] == 0) return false;
    if (v->size[d] == 1 || v->stride[d] == 0) continue;
    int64_t st = v->stride[d];
    if (st < 0) { start += st * (int64_t)(v->size[d] - 1); st = -st; }
    unsigned k = nd++; /* insertion: strides descending */
    while (k > 0 && sh->stride[k - 1] < (uint64_t)st) {
      sh->stride[k] = sh->stride[k - 1];
      sh->size[k] = sh->size[k - 1];
      k--;
    }
    sh->stride[k] = (uint64_t)st;
    sh->size[k] = v->size[d];
  }
  if (start < 0) return false;
  uint64_t run = v->esize;
  while (nd > 0 && sh->stride[nd - 1] <= run) {
    run += sh->stride[nd - 1] * (sh->size[nd - 1] - 1u);
    nd--;
  }
  sh->start = (uint64_t)start;
  sh->run = run;
  sh->nd = nd;
  return true;
}

/* Every run of the shape at base (a partition's or HBM's address 0); runs past limit (outside
** the partition or memory, which ot_view_resolve has excluded) are skipped. */
static void shape_walk(race_acc *a, race_space *s, const race_shape *sh, uint64_t base, uint64_t limit) {
  uint32_t idx[OT_AP_MAX_DIMS] = {0};
  for (;;) {
    uint64_t off = sh->start;
    for (unsigned d = 0; d < sh->nd; d++) off += idx[d] * sh->stride[d];
    if (off + sh->run <= limit) run_check(a, s, base + off, sh->run);
    int d = (int)sh->nd - 1;
    while (d >= 0 && ++idx[d] == sh->size[d]) idx[d--] = 0;
    if (d < 0 || a->r->oom) return;
  }
}

/* ---- reports ------------------------------------------------------------------------------ */
/* "core 0 vector pc 3 (line 12) `tensor_copy ...`", and " (DMA on queue 1)" for a queue's access. */
static void site_describe(const ot_race *r, uint32_t site, uint32_t tid, char *buf, size_t cap) {
  uint32_t core = tid / r->per_core, local = tid % r->per_core;
  bool dma = local >= OT_ENG_COUNT;
  if (!site) {
    if (dma) snprintf(buf, cap, "core %u DMA queue %u", core, local - OT_ENG_COUNT);
    else snprintf(buf, cap, "core %u %s", core, ot_engine_name((ot_engine)local));
    return;
  }
  ot_site_format(&r->sites[site - 1], buf, cap); /* the simulator's one wording of a site */
  if (dma) {
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, " (DMA on queue %u)", local - OT_ENG_COUNT);
  }
}

static void range_describe(const race_pending *p, ot_mem mem, char *buf, size_t cap) {
  if (mem == OT_MEM_HBM) {
    snprintf(buf, cap, "hbm bytes %" PRIu64 "..%" PRIu64, p->lo, p->hi);
  } else if (p->part_lo == p->part_hi) {
    snprintf(buf, cap, "%s partition %u bytes %" PRIu64 "..%" PRIu64, ot_mem_name(mem), p->part_lo, p->lo, p->hi);
  } else {
    snprintf(buf, cap, "%s partitions %u..%u bytes %" PRIu64 "..%" PRIu64, ot_mem_name(mem), p->part_lo, p->part_hi,
             p->lo, p->hi);
  }
}

/* Report the access's gathered races (each pair of instructions once); returns how many. */
static unsigned race_flush(ot_race *r, const race_acc *a, ot_mem mem, ot_error *err) {
  static const char *const kind_name[] = {"RAW", "WAR", "WAW"};
  static const char *const earlier_verb[] = {"written", "read", "written"};
  unsigned found = 0;
  for (size_t i = 0; i < r->n_pending; i++) {
    const race_pending *p = &r->pending[i];
    if (pair_reported(r, p->esite, a->site)) continue; /* two threads, one pair of sites */
    uint64_t key = p->esite < a->site ? ((uint64_t)p->esite << 32 | a->site) + 1 : ((uint64_t)a->site << 32 | p->esite) + 1;
    if (!index_add(r, &r->reported, key, 0)) break;
    char later[704], earlier[704], where[96];
    site_describe(r, a->site, a->tid, later, sizeof later);
    site_describe(r, p->esite, p->etid, earlier, sizeof earlier);
    range_describe(p, mem, where, sizeof where);
    ot_error_set(err, OT_ERUNTIME, "race (%s): %s %s %s %s by %s with no semaphore ordering them", kind_name[p->kind],
                 later, a->write ? "writes" : "reads", where, earlier_verb[p->kind], earlier);
    found++;
  }
  r->n_pending = 0;
  r->races += found;
  if (r->oom && !r->oom_reported) {
    r->oom_reported = true;
    ot_error_set(err, OT_ENOMEM, "race checker: out of memory for shadow state; race checking stopped");
  }
  return found;
}

/* ---- the interface ------------------------------------------------------------------------ */
uint32_t ot_race_engine_thread(const ot_race *r, uint32_t core, ot_engine e) {
  if (!r || core >= r->cores || (unsigned)e >= OT_ENG_COUNT) return OT_RACE_NO_THREAD;
  return core * r->per_core + (uint32_t)e;
}

uint32_t ot_race_queue_thread(const ot_race *r, uint32_t core, uint32_t q) {
  if (!r || core >= r->cores || q >= r->queues) return OT_RACE_NO_THREAD;
  return core * r->per_core + OT_ENG_COUNT + q;
}

uint32_t ot_race_thread_count(const ot_race *r) { return r ? r->n : 0; }
uint64_t ot_race_count(const ot_race *r) { return r ? r->races : 0; }
uint64_t ot_race_shadow_bytes(const ot_race *r) { return r ? r->shadow_bytes : 0; }

static bool race_alloc(ot_race *r, const ot_chip *chip) {
  size_t n = r->n;
  r->vc = calloc(n * n, sizeof *r->vc);
  r->sem = calloc((size_t)r->cores * r->nsems * n + 1, sizeof *r->sem);
  r->tmp = calloc(n, sizeof *r->tmp);
  r->scratch = calloc(n + 1, sizeof *r->scratch);
  r->last_site = calloc(n, sizeof *r->last_site);
  r->last_site_id = calloc(n, sizeof *r->last_site_id);
  r->sbuf = calloc(r->cores, sizeof *r->sbuf);
  r->psum = calloc(r->cores, sizeof *r->psum);
  if (!r->vc || !r->sem || !r->tmp || !r->scratch || !r->last_site || !r->last_site_id || !r->sbuf || !r->psum)
    return false;
  for (uint32_t c = 0; c < r->cores; c++)
    if (!space_init(&r->sbuf[c], (uint64_t)r->sbuf_parts * r->sbuf_pitch) ||
        !space_init(&r->psum[c], (uint64_t)r->psum_parts * r->psum_pitch))
      return false;
  return space_init(&r->hbm, chip->hbm.bytes) && index_init(&r->site_index, 64) &&
         index_init(&r->set_index, 64) && index_init(&r->reported, 64);
}

ot_status ot_race_new(const ot_chip *chip, uint32_t cores, ot_race **out, ot_error *err) {
  if (!out) return ot_error_set(err, OT_EINVAL, "race checker: no place for the result");
  *out = NULL;
  if (!chip || cores == 0) return ot_error_set(err, OT_EINVAL, "race checker: needs a chip and at least one core");
  uint64_t n = (uint64_t)cores * (OT_ENG_COUNT + chip->dma.queues);
  if (n >= RACE_MARK)
    return ot_error_set(err, OT_ERANGE, "race checker: %" PRIu64 " threads (cores x (engines + DMA queues)); at most %u",
                        n, RACE_MARK - 1u);
  ot_race *r = calloc(1, sizeof *r);
  if (!r) return ot_error_set(err, OT_ENOMEM, "race checker: out of memory");
  r->cores = cores;
  r->queues = chip->dma.queues;
  r->per_core = OT_ENG_COUNT + chip->dma.queues;
  r->n = (uint32_t)n;
  r->nsems = chip->seq.semaphores;
  r->sbuf_parts = chip->sbuf.partitions;
  r->sbuf_pitch = chip->sbuf.bytes_per_partition;
  r->psum_parts = chip->psum.partitions;
  r->psum_pitch = chip->psum.bytes_per_partition;
  r->free_split = UINT32_MAX;
  if (!race_alloc(r, chip)) {
    ot_race_free(r);
    return ot_error_set(err, OT_ENOMEM, "race checker: out of memory");
  }
  for (uint32_t t = 0; t < r->n; t++) thread_clock(r, t)[t] = 1; /* clock 0 = "never" */
  *out = r;
  return OT_OK;
}

void ot_race_free(ot_race *r) {
  if (!r) return;
  for (uint32_t c = 0; c < r->cores && r->sbuf && r->psum; c++) {
    space_free(&r->sbuf[c]);
    space_free(&r->psum[c]);
  }
  space_free(&r->hbm);
  free(r->sbuf);
  free(r->psum);
  free(r->vc);
  free(r->sem);
  free(r->tmp);
  free(r->scratch);
  free(r->last_site);
  free(r->last_site_id);
  free(r->sites);
  index_free(&r->site_index);
  free(r->ent);
  free(r->sets);
  index_free(&r->set_index);
  free(r->split);
  index_free(&r->reported);
  free(r->pending);
  free(r);
}

unsigned ot_race_access(ot_race *r, uint32_t tid, const ot_mem_ctx *m, const ot_view *v, bool write,
                        const ot_site *site, ot_error *err) {
  (void)m; /* SBUF / PSUM are the accessing thread's core's */
  if (!r || !v || tid >= r->n || r->oom) return 0;
  uint32_t core = tid / r->per_core, parts = 1;
  race_space *s;
  uint64_t pitch;
  switch (v->mem) {
  case OT_MEM_SBUF: s = &r->sbuf[core]; pitch = r->sbuf_pitch; parts = r->sbuf_parts; break;
  case OT_MEM_PSUM: s = &r->psum[core]; pitch = r->psum_pitch; parts = r->psum_parts; break;
  case OT_MEM_HBM: s = &r->hbm; pitch = 0; break;
  default: return 0;
  }
  race_shape sh;
  if (!shape_of(v, &sh)) return 0;
  race_acc a;
  memset(&a, 0, sizeof a);
  a.r = r;
  a.tid = tid;
  a.vc = thread_clock(r, tid);
  a.clock = a.vc[tid];
  a.write = write;
  a.site = site_intern(r, tid, site);
  r->gen++;
  r->n_pending = 0;
  if (v->mem == OT_MEM_HBM) {
    shape_walk(&a, s, &sh, 0, s->bytes);
  } else {
    for (uint32_t p = v->part_start; p < (uint64_t)v->part_start + v->parts && p < parts; p++) {
      a.part = p;
      a.part_base = (uint64_t)p * pitch;
      shape_walk(&a, s, &sh, a.part_base, pitch);
    }
  }
  return race_flush(r, &a, v->mem, err);
}

void ot_race_sem_inc(ot_race *r, uint32_t tid, uint32_t core, uint32_t sem) {
  if (!r || tid >= r->n || core >= r->cores || sem >= r->nsems) return;
  clock_join(&r->sem[((size_t)core * r->nsems + sem) * r->n], thread_clock(r, tid), r->n);
  clock_tick(r, tid);
}

void ot_race_sem_release_clock(ot_race *r, const uint32_t *clock, uint32_t core, uint32_t sem) {
  if (!r || !clock || core >= r->cores || sem >= r->nsems) return;
  clock_join(&r->sem[((size_t)core * r->nsems + sem) * r->n], clock, r->n);
}

void ot_race_sem_acquire(ot_race *r, uint32_t tid, uint32_t core, uint32_t sem) {
  if (!r || tid >= r->n || core >= r->cores || sem >= r->nsems) return;
  clock_join(thread_clock(r, tid), &r->sem[((size_t)core * r->nsems + sem) * r->n], r->n);
}

void ot_race_dma_issue(ot_race *r, uint32_t issuer_tid, uint32_t qtid) {
  if (!r || issuer_tid >= r->n || qtid >= r->n || issuer_tid == qtid) return;
  clock_join(thread_clock(r, qtid), thread_clock(r, issuer_tid), r->n);
  clock_tick(r, issuer_tid);
}

void ot_race_clock_snapshot(ot_race *r, uint32_t tid, uint32_t *out) {
  if (!r || tid >= r->n || !out) return;
  memcpy(out, thread_clock(r, tid), (size_t)r->n * sizeof *out);
  clock_tick(r, tid);
}

void ot_race_clock_acquire(ot_race *r, uint32_t tid, const uint32_t *clock) {
  if (!r || tid >= r->n || !clock) return;
  clock_join(thread_clock(r, tid), clock, r->n);
}

void ot_race_barrier(ot_race *r, const uint32_t *tids, uint32_t n) {
  if (!r || !tids) return;
  memset(r->tmp, 0, (size_t)r->n * sizeof *r->tmp);
  for (uint32_t i = 0; i < n; i++)
    if (tids[i] < r->n) clock_join(r->tmp, thread_clock(r, tids[i]), r->n);
  for (uint32_t i = 0; i < n; i++) {
    if (tids[i] >= r->n) continue;
    memcpy(thread_clock(r, tids[i]), r->tmp, (size_t)r->n * sizeof *r->tmp);
  }
  for (uint32_t i = 0; i < n; i++)
    if (tids[i] < r->n) clock_tick(r, tids[i]);
}
