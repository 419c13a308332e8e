/* The race checker, driven through its API with synthetic views and sites (no event loop):
**   - a seeded corpus of racy patterns (RAW / WAR / WAW between engines, engine vs DMA, DMA vs
**     DMA on two queues, partial overlaps, one-way semaphores, the wrong semaphore, a too-small
**     wait, semaphores of another core), each reported naming both instructions, and of
**     correctly synchronised ones, run under several random schedules, with no report;
**   - a brute-force oracle (byte sets and happens-before as explicit event sets) on random
**     programs: nothing is reported before the first real race, the first race is reported, and
**     every reported pair is a real race;
**   - the message text, deduplication, lazy HBM shadow, and a matmul_tiled-sized replay.
*/
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <opentrn/chip.h>

#include "isa/program.h"
#include "sim/sim_race.h"

static ot_chip *g_chip;
static ot_program *g_prog; /* sites name it; it holds no tensors, so HBM prints as hbm.T@off */

/* ---- seeded randomness ------------------------------------------------------------------ */
static uint64_t g_rng;
static void rng_seed(uint64_t s) { g_rng = s * 0x9E3779B97F4A7C15ull + 7; }
static uint64_t rng_next(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

/* ---- access patterns: an AP (for the disassembly) and its resolved view --------------------- */
typedef struct {
  ot_ap ap;
  ot_view v;
} tap;

/* dims: nd [stride (elements), size] pairs, outermost first. */
static tap mk_tap(ot_mem mem, ot_dtype dt, uint32_t p0, uint32_t np, uint64_t off, unsigned nd, const int32_t *stride,
                  const uint32_t *size) {
  tap t;
  memset(&t, 0, sizeof t);
  uint32_t es = (uint32_t)ot_dtype_size(dt);
  t.ap.mem = (uint8_t)mem;
  t.ap.dtype = (uint8_t)dt;
  t.ap.ndim = (uint8_t)nd;
  t.ap.offset = off;
  t.v.mem = mem;
  t.v.dtype = dt;
  t.v.esize = es;
  t.v.offset = off;
  t.v.ndim = nd;
  t.v.part_start = mem == OT_MEM_HBM ? 0 : p0;
  t.v.parts = mem == OT_MEM_HBM ? 1 : np;
  if (mem != OT_MEM_HBM) {
    t.ap.part_start = (uint16_t)p0;
    t.ap.part_count = (uint16_t)np;
  }
  t.v.free_elems = 1;
  for (unsigned d = 0; d < nd; d++) {
    t.ap.dim[d].stride = stride[d];
    t.ap.dim[d].size = size[d];
    t.v.stride[d] = (int64_t)stride[d] * es;
    t.v.size[d] = size[d];
    t.v.free_elems *= size[d];
  }
  return t;
}

/* A dense [np partitions, n elements] tile. */
static tap tile(ot_mem mem, ot_dtype dt, uint32_t p0, uint32_t np, uint64_t off, uint32_t n) {
  const int32_t st[1] = {1};
  const uint32_t sz[1] = {n};
  return mk_tap(mem, dt, p0, np, off, 1, st, sz);
}

/* ---- scenarios: per-engine step lists run by a small scheduler ---------------------------- */
enum { K_ACC, K_INC, K_WAIT, K_DMA, K_BAR };
#define SC_CORES 2
#define SC_QUEUES 16
#define SC_ENTITIES (SC_CORES * OT_ENG_COUNT + SC_CORES * SC_QUEUES)

typedef struct {
  int kind;
  bool write;
  tap a, b;                   /* ACC: a; DMA: a = dst, b = src */
  uint32_t sem, value, q;
  ot_insn insn;
  uint32_t line;
} step;

typedef struct {
  step *s;
  uint32_t n, cap;
} steps;

typedef struct {
  steps eng[SC_CORES][OT_ENG_COUNT];
  uint32_t lines;
} scenario;

static step *sc_add(scenario *sc, uint32_t core, ot_engine e, int kind) {
  steps *l = &sc->eng[core][e];
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->s = realloc(l->s, l->cap * sizeof *l->s);
    assert_non_null(l->s);
  }
  step *s = &l->s[l->n++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->line = ++sc->lines;
  return s;
}

static void sc_free(scenario *sc) {
  for (int c = 0; c < SC_CORES; c++)
    for (int e = 0; e < OT_ENG_COUNT; e++) free(sc->eng[c][e].s);
  free(sc);
}

/* Each step gets an instruction whose disassembly shows what it touches. */
static uint32_t sc_acc(scenario *sc, uint32_t core, ot_engine e, bool write, tap t) {
  step *s = sc_add(sc, core, e, K_ACC);
  s->write = write;
  s->a = t;
  ot_insn_init(&s->insn, write ? OT_OP_MEMSET : OT_OP_LDWEIGHTS);
  s->insn.o[0].ap = t.ap;
  s->insn.line = s->line;
  return s->line;
}

static uint32_t sc_inc(scenario *sc, uint32_t core, ot_engine e, uint32_t sem) {
  step *s = sc_add(sc, core, e, K_INC);
  s->sem = sem;
  ot_insn_init(&s->insn, OT_OP_SEM_INC);
  s->insn.o[0].i = (int32_t)sem;
  s->insn.line = s->line;
  return s->line;
}

static uint32_t sc_wait(scenario *sc, uint32_t core, ot_engine e, uint32_t sem, uint32_t value) {
  step *s = sc_add(sc, core, e, K_WAIT);
  s->sem = sem;
  s->value = value;
  ot_insn_init(&s->insn, OT_OP_SEM_WAIT);
  s->insn.o[0].i = (int32_t)sem;
  s->insn.o[1].tag = OT_TAG_IMM;
  s->insn.o[1].i = (int32_t)value;
  s->insn.line = s->line;
  return s->line;
}

static uint32_t sc_dma(scenario *sc, uint32_t core, ot_engine e, uint32_t q, tap dst, tap src, uint32_t sem) {
  step *s = sc_add(sc, core, e, K_DMA);
  s->a = dst;
  s->b = src;
  s->q = q;
  s->sem = sem;
  ot_insn_init(&s->insn, OT_OP_DMA_COPY);
  s->insn.o[0].i = (int32_t)q;
  s->insn.o[1].ap = dst.ap;
  s->insn.o[2].ap = src.ap;
  s->insn.o[3].i = (int32_t)sem;
  s->insn.line = s->line;
  return s->line;
}

/* A barrier on every engine of the core. */
static void sc_bar(scenario *sc, uint32_t core) {
  for (int e = 0; e < OT_ENG_COUNT; e++) {
    step *s = sc_add(sc, core, (ot_engine)e, K_BAR);
    ot_insn_init(&s->insn, OT_OP_BARRIER);
    s->insn.line = s->line;
  }
}

/* Entities: engine c*5+e, then queue SC_CORES*5 + c*16 + q. */
static uint32_t ent_eng(uint32_t core, ot_engine e) { return core * OT_ENG_COUNT + (uint32_t)e; }
static uint32_t ent_q(uint32_t core, uint32_t q) { return SC_CORES * OT_ENG_COUNT + core * SC_QUEUES + q; }

typedef struct {
  const step *s;
  uint32_t core, eng, pc;
} xfer;

typedef struct {
  const scenario *sc;
  ot_race *r;
  ot_error err;
  uint32_t pc[SC_CORES][OT_ENG_COUNT];
  int64_t sem[SC_CORES][64];
  xfer *fifo[SC_CORES][SC_QUEUES];
  uint32_t head[SC_CORES][SC_QUEUES], tail[SC_CORES][SC_QUEUES];
  unsigned races;
} runner;

static const step *cur(const runner *rn, uint32_t core, uint32_t e) {
  const steps *l = &rn->sc->eng[core][e];
  return rn->pc[core][e] < l->n ? &l->s[rn->pc[core][e]] : NULL;
}

/* A barrier releases when every engine of the core with steps left has reached one. */
static bool barrier_ready(const runner *rn, uint32_t core) {
  for (uint32_t e = 0; e < OT_ENG_COUNT; e++) {
    const step *s = cur(rn, core, e);
    if (s && s->kind != K_BAR) return false;
  }
  return true;
}

static bool runnable(const runner *rn, uint32_t ent) {
  if (ent >= SC_CORES * OT_ENG_COUNT) {
    uint32_t k = ent - SC_CORES * OT_ENG_COUNT, core = k / SC_QUEUES, q = k % SC_QUEUES;
    return rn->head[core][q] < rn->tail[core][q];
  }
  uint32_t core = ent / OT_ENG_COUNT, e = ent % OT_ENG_COUNT;
  const step *s = cur(rn, core, e);
  if (!s) return false;
  if (s->kind == K_WAIT) return rn->sem[core][s->sem] >= s->value;
  if (s->kind == K_BAR) return barrier_ready(rn, core);
  return true;
}

static ot_site site_of(uint32_t core, uint32_t e, uint32_t pc, const step *s) {
  ot_site site = {g_prog, core, (ot_engine)e, pc, &s->insn};
  return site;
}

static void run_queue(runner *rn, uint32_t core, uint32_t q) {
  xfer x = rn->fifo[core][q][rn->head[core][q]++];
  uint32_t qt = ot_race_queue_thread(rn->r, core, q);
  ot_site site = site_of(x.core, x.eng, x.pc, x.s);
  rn->races += ot_race_access(rn->r, qt, NULL, &x.s->b.v, false, &site, &rn->err);
  rn->races += ot_race_access(rn->r, qt, NULL, &x.s->a.v, true, &site, &rn->err);
  ot_race_sem_inc(rn->r, qt, core, x.s->sem);
  rn->sem[core][x.s->sem]++;
}

static void push_xfer(runner *rn, uint32_t core, uint32_t e, const step *s) {
  uint32_t q = s->q;
  xfer **f = &rn->fifo[core][q];
  *f = realloc(*f, (rn->tail[core][q] + 1) * sizeof **f);
  assert_non_null(*f);
  (*f)[rn->tail[core][q]++] = (xfer){s, core, e, rn->pc[core][e]};
  ot_race_dma_issue(rn->r, ot_race_engine_thread(rn->r, core, (ot_engine)e), ot_race_queue_thread(rn->r, core, q));
}

static void run_barrier(runner *rn, uint32_t core) {
  uint32_t tids[OT_ENG_COUNT], n = 0;
  for (uint32_t e = 0; e < OT_ENG_COUNT; e++) {
    if (!cur(rn, core, e)) continue;
    tids[n++] = ot_race_engine_thread(rn->r, core, (ot_engine)e);
    rn->pc[core][e]++;
  }
  ot_race_barrier(rn->r, tids, n);
}

static void run_step(runner *rn, uint32_t ent) {
  if (ent >= SC_CORES * OT_ENG_COUNT) {
    uint32_t k = ent - SC_CORES * OT_ENG_COUNT;
    run_queue(rn, k / SC_QUEUES, k % SC_QUEUES);
    return;
  }
  uint32_t core = ent / OT_ENG_COUNT, e = ent % OT_ENG_COUNT;
  const step *s = cur(rn, core, e);
  uint32_t tid = ot_race_engine_thread(rn->r, core, (ot_engine)e);
  ot_site site = site_of(core, e, rn->pc[core][e], s);
  switch (s->kind) {
  case K_ACC: rn->races += ot_race_access(rn->r, tid, NULL, &s->a.v, s->write, &site, &rn->err); break;
  case K_INC: ot_race_sem_inc(rn->r, tid, core, s->sem); rn->sem[core][s->sem]++; break;
  case K_WAIT: ot_race_sem_acquire(rn->r, tid, core, s->sem); break;
  case K_DMA: push_xfer(rn, core, e, s); break;
  case K_BAR: run_barrier(rn, core); return;
  default: break;
  }
  rn->pc[core][e]++;
}

/* Run: first the given schedule (entities, one step each; each must be runnable), then the
** rest -- lowest entity first when seed is 0, else a seeded random runnable one.  Fails on a
** deadlock.  Returns the checker (caller frees); rn->err holds the reports. */
static void sc_run(runner *rn, const scenario *sc, const uint32_t *sched, size_t nsched, uint64_t seed) {
  memset(rn, 0, sizeof *rn);
  rn->sc = sc;
  ot_error_clear(&rn->err);
  assert_int_equal(ot_race_new(g_chip, SC_CORES, &rn->r, &rn->err), OT_OK);
  for (size_t i = 0; i < nsched; i++) {
    assert_true(runnable(rn, sched[i]));
    run_step(rn, sched[i]);
  }
  rng_seed(seed);
  for (;;) {
    uint32_t cand[SC_ENTITIES], n = 0;
    for (uint32_t ent = 0; ent < SC_ENTITIES; ent++)
      if (runnable(rn, ent)) cand[n++] = ent;
    if (!n) break;
    run_step(rn, seed ? cand[rng_below(n)] : cand[0]);
  }
  for (uint32_t c = 0; c < SC_CORES; c++)
    for (uint32_t e = 0; e < OT_ENG_COUNT; e++) assert_null(cur(rn, c, e)); /* no deadlock */
}

static void rn_free(runner *rn) {
  ot_race_free(rn->r);
  for (int c = 0; c < SC_CORES; c++)
    for (int q = 0; q < SC_QUEUES; q++) free(rn->fifo[c][q]);
}

/* A report line "race (kind): <later ...> by <earlier ...>" naming both instructions. */
static bool reported(const char *msg, const char *kind, uint32_t earlier_line, uint32_t later_line) {
  char k[32], le[32], ll[32];
  snprintf(k, sizeof k, "race (%s): ", kind);
  snprintf(le, sizeof le, "(line %u)", earlier_line);
  snprintf(ll, sizeof ll, "(line %u)", later_line);
  for (const char *p = msg; p && *p;) {
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char line[OT_ERROR_MSG_MAX];
    memcpy(line, p, len);
    line[len] = '\0';
    const char *a = strstr(line, ll), *b = strstr(line, " by ");
    if (!strncmp(line, k, strlen(k)) && a && b && a < b && strstr(b, le) && strstr(line, "with no semaphore ordering"))
      return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

/* ---- random regions ------------------------------------------------------------------------ */
static const ot_dtype dts[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_INT8};

/* Byte offsets near a shadow page boundary (16 KiB) or anywhere in the first 64 KiB (PSUM: a
** partition is one page, so anywhere in it). */
static uint64_t rand_base(ot_mem mem) {
  if (mem == OT_MEM_PSUM) return rng_below(16384 - 1024);
  return rng_below(2) ? 16384 - 64 + rng_below(128) : rng_below(65536);
}

static ot_mem rand_mem(bool sb_hbm_only) {
  static const ot_mem all[] = {OT_MEM_SBUF, OT_MEM_PSUM, OT_MEM_HBM};
  return sb_hbm_only ? (rng_below(2) ? OT_MEM_SBUF : OT_MEM_HBM) : all[rng_below(3)];
}

/* A region x (1-D or 2-D, strided), and y overlapping it in at least one byte (and partition):
** y's element covers a byte that one of x's elements touches. */
static void rand_overlap(ot_mem mem, tap *x, tap *y) {
  ot_dtype dx = dts[rng_below(3)], dy = dts[rng_below(3)];
  uint32_t ex = (uint32_t)ot_dtype_size(dx), ey = (uint32_t)ot_dtype_size(dy);
  uint32_t p0 = rng_below(8), np = 1 + rng_below(8);
  uint64_t off = rand_base(mem) / ex * ex;
  uint32_t rows = 1 + rng_below(3), n = 1 + rng_below(12);
  int32_t rstride = (int32_t)(n + rng_below(8));
  const int32_t st[2] = {rstride, 1 + (int32_t)rng_below(2)};
  const uint32_t sz[2] = {rows, n};
  *x = mk_tap(mem, dx, p0, np, off, 2, st, sz);
  /* a byte x touches: element (i, j), byte k of it, in partition p */
  uint32_t i = rng_below(rows), j = rng_below(n), k = rng_below(ex), p = p0 + rng_below(np);
  uint64_t byte = off + ((uint64_t)i * (uint64_t)st[0] + (uint64_t)j * (uint64_t)st[1]) * ex + k;
  uint32_t m = 1 + rng_below(10), before = rng_below(m);
  uint64_t yoff = byte / ey * ey;
  yoff = yoff >= (uint64_t)before * ey ? yoff - (uint64_t)before * ey : yoff % ey;
  uint32_t q0 = p >= 2 ? p - rng_below(3) : p, nq = p - q0 + 1 + rng_below(3);
  *y = tile(mem, dy, q0, nq, yoff, m);
}

/* The same bytes as x in partitions x does not use (SBUF / PSUM only). */
static tap other_partitions(const tap *x) {
  tap y = *x;
  uint32_t p = x->v.part_start + x->v.parts + rng_below(4);
  y.v.part_start = p;
  y.ap.part_start = (uint16_t)p;
  return y;
}

static ot_engine rand_engine(void) { return (ot_engine)rng_below(OT_ENG_COUNT); }
static ot_engine other_engine(ot_engine e) { return (ot_engine)((e + 1 + rng_below(OT_ENG_COUNT - 1)) % OT_ENG_COUNT); }

/* ---- the corpus: racy patterns ------------------------------------------------------------- */
typedef struct {
  const char *kind;
  uint32_t earlier, later; /* lines */
} expect;

#define SCHED(...) ((const uint32_t[]){__VA_ARGS__}), (sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static void racy_check(scenario *sc, const uint32_t *sched, size_t n, expect ex, const char *what) {
  runner rn;
  sc_run(&rn, sc, sched, n, 0);
  bool ok = rn.races > 0 && reported(rn.err.msg, ex.kind, ex.earlier, ex.later);
  if (!ok) fprintf(stderr, "%s: expected %s between lines %u and %u; got %u report(s):\n%s\n", what, ex.kind, ex.earlier,
                   ex.later, rn.races, rn.err.msg);
  assert_true(ok);
  assert_int_equal(ot_race_count(rn.r), rn.races);
  rn_free(&rn);
}

/* Two engines, one access each, no synchronisation: the schedule decides the order. */
static void case_engines(scenario *sc, bool w1, bool w2, const char *kind) {
  tap x, y;
  rand_overlap(rand_mem(false), &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  uint32_t l1 = sc_acc(sc, 0, a, w1, x), l2 = sc_acc(sc, 0, b, w2, y);
  racy_check(sc, SCHED(ent_eng(0, a), ent_eng(0, b)), (expect){kind, l1, l2}, "engines");
}

static void case_raw(scenario *sc) { case_engines(sc, true, false, "RAW"); }
static void case_war(scenario *sc) { case_engines(sc, false, true, "WAR"); }
static void case_waw(scenario *sc) { case_engines(sc, true, true, "WAW"); }

/* A DMA loads x; another engine reads it without waiting for the DMA's semaphore (or waiting
** for another one). */
static void case_dma_raw(scenario *sc) {
  tap x, y;
  rand_overlap(OT_MEM_SBUF, &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  uint32_t q = rng_below(SC_QUEUES);
  uint32_t ld = sc_dma(sc, 0, a, q, x, tile(OT_MEM_HBM, x.v.dtype, 0, 1, 1u << 20, (uint32_t)(x.v.free_elems * x.v.parts)), 1);
  sc_inc(sc, 0, a, 2);
  sc_wait(sc, 0, b, 2, 1); /* orders b after the trigger, not after the transfer */
  uint32_t rd = sc_acc(sc, 0, b, false, y);
  racy_check(sc, SCHED(ent_eng(0, a), ent_q(0, q), ent_eng(0, a), ent_eng(0, b), ent_eng(0, b)), (expect){"RAW", ld, rd},
             "dma raw");
}

/* An engine stores x through a DMA and overwrites x before the store is done. */
static void case_dma_war(scenario *sc) {
  tap x, y;
  rand_overlap(rand_mem(true), &x, &y);
  ot_engine a = rand_engine();
  uint32_t q = rng_below(SC_QUEUES);
  uint32_t st = sc_dma(sc, 0, a, q, tile(OT_MEM_HBM, x.v.dtype, 0, 1, 3u << 20, (uint32_t)(x.v.free_elems * x.v.parts)), x, 1);
  uint32_t wr = sc_acc(sc, 0, a, true, y);
  racy_check(sc, SCHED(ent_eng(0, a), ent_q(0, q), ent_eng(0, a)), (expect){"WAR", st, wr}, "dma war");
}

/* Two DMAs on different queues write overlapping bytes. */
static void case_dma_dma(scenario *sc) {
  tap x, y;
  ot_mem mem = rand_mem(true);
  rand_overlap(mem, &x, &y);
  ot_engine a = rand_engine(), b = rng_below(2) ? a : other_engine(a);
  uint32_t q1 = rng_below(SC_QUEUES), q2 = (q1 + 1 + rng_below(SC_QUEUES - 1)) % SC_QUEUES;
  ot_mem src = mem == OT_MEM_HBM ? OT_MEM_SBUF : OT_MEM_HBM;
  uint32_t l1 = sc_dma(sc, 0, a, q1, x, tile(src, x.v.dtype, 0, x.v.parts, 100000, (uint32_t)x.v.free_elems), 3);
  uint32_t l2 = sc_dma(sc, 0, b, q2, y, tile(src, y.v.dtype, 0, y.v.parts, 150000, (uint32_t)y.v.free_elems), 4);
  racy_check(sc, SCHED(ent_eng(0, a), ent_eng(0, b), ent_q(0, q1), ent_q(0, q2)), (expect){"WAW", l1, l2}, "dma dma");
}

/* a -> b is ordered by s; b -> a is not: a's later read of what b wrote races. */
static void case_one_way(scenario *sc) {
  tap x, y;
  rand_overlap(rand_mem(false), &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  sc_acc(sc, 0, a, true, x);
  sc_inc(sc, 0, a, 5);
  uint32_t rd = sc_acc(sc, 0, a, false, x);
  sc_wait(sc, 0, b, 5, 1);
  uint32_t wr = sc_acc(sc, 0, b, true, y);
  uint32_t A = ent_eng(0, a), B = ent_eng(0, b);
  racy_check(sc, SCHED(A, A, B, B, A), (expect){"RAW", wr, rd}, "one-way semaphore");
}

/* The consumer waits on a semaphore the producer does not increment. */
static void case_wrong_sem(scenario *sc) {
  tap x, y;
  rand_overlap(rand_mem(false), &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a), c = OT_ENG_SYNC;
  while (c == a || c == b) c = (ot_engine)(c + 1);
  uint32_t wr = sc_acc(sc, 0, a, true, x);
  sc_inc(sc, 0, a, 6);
  sc_inc(sc, 0, c, 7);
  sc_wait(sc, 0, b, 7, 1);
  uint32_t rd = sc_acc(sc, 0, b, false, y);
  uint32_t A = ent_eng(0, a), B = ent_eng(0, b), C = ent_eng(0, c);
  racy_check(sc, SCHED(A, A, C, B, B), (expect){"RAW", wr, rd}, "wrong semaphore");
}

/* The consumer waits for 1 where the data it reads is signalled by the second increment; the
** race is visible when the wait passes between the two increments. */
static void case_too_small(scenario *sc) {
  tap x, y;
  ot_mem mem = rand_mem(false);
  rand_overlap(mem, &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  sc_acc(sc, 0, a, true, tile(mem, OT_DT_FP32, 40, 1, 16000, 4)); /* signalled by the first increment */
  sc_inc(sc, 0, a, 8);
  uint32_t wr = sc_acc(sc, 0, a, true, x);
  sc_inc(sc, 0, a, 8);
  sc_wait(sc, 0, b, 8, 1);
  uint32_t rd = sc_acc(sc, 0, b, false, y);
  uint32_t A = ent_eng(0, a), B = ent_eng(0, b);
  racy_check(sc, SCHED(A, A, B, A, B), (expect){"RAW", wr, rd}, "too-small wait");
}

/* Semaphores are per core: core 1 waiting on its s0 is not ordered after core 0's s0. */
static void case_cross_core(scenario *sc) {
  tap x, y;
  rand_overlap(OT_MEM_HBM, &x, &y);
  ot_engine a = rand_engine(), b = rand_engine();
  uint32_t wr = sc_acc(sc, 0, a, true, x);
  sc_inc(sc, 0, a, 0);
  sc_inc(sc, 1, b, 0);
  sc_wait(sc, 1, b, 0, 1);
  uint32_t rd = sc_acc(sc, 1, b, false, y);
  uint32_t A = ent_eng(0, a), B = ent_eng(1, b);
  racy_check(sc, SCHED(A, A, B, B, B), (expect){"RAW", wr, rd}, "cross-core");
}

/* ---- the corpus: correctly synchronised patterns (no report under any schedule) ---------- */
static void safe_check(scenario *sc, const char *what) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    runner rn;
    sc_run(&rn, sc, NULL, 0, seed * 7919 + rng_below(1000));
    if (rn.races) fprintf(stderr, "%s (schedule %" PRIu64 "): false alarm:\n%s\n", what, seed, rn.err.msg);
    assert_int_equal(rn.races, 0);
    assert_int_equal(rn.err.count, 0);
    rn_free(&rn);
  }
}

/* a writes x -> b reads it, writes z -> c reads z and overwrites x. */
static void safe_chain(scenario *sc) {
  tap x, y;
  ot_mem mem = rand_mem(false);
  rand_overlap(mem, &x, &y);
  tap z = tile(mem, OT_DT_FP32, 0, 4, 8000, 16);
  ot_engine a = rand_engine(), b = other_engine(a), c = rand_engine();
  sc_acc(sc, 0, a, true, x);
  sc_inc(sc, 0, a, 1);
  sc_wait(sc, 0, b, 1, 1);
  sc_acc(sc, 0, b, false, y);
  sc_acc(sc, 0, b, true, z);
  sc_inc(sc, 0, b, 2);
  sc_wait(sc, 0, c, 2, 1);
  sc_acc(sc, 0, c, false, z);
  sc_acc(sc, 0, c, true, x);
  safe_check(sc, "chain");
}

/* Load by DMA, wait for its completion, compute in place, store by DMA, reuse after the store. */
static void safe_dma(scenario *sc) {
  tap x, y;
  rand_overlap(OT_MEM_SBUF, &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  uint32_t q1 = rng_below(SC_QUEUES), q2 = rng_below(SC_QUEUES);
  uint32_t n = (uint32_t)(x.v.free_elems * x.v.parts);
  sc_dma(sc, 0, a, q1, x, tile(OT_MEM_HBM, x.v.dtype, 0, 1, 1u << 20, n), 1);
  sc_wait(sc, 0, b, 1, 1);
  sc_acc(sc, 0, b, false, y);
  sc_acc(sc, 0, b, true, y);
  sc_inc(sc, 0, b, 2);
  sc_wait(sc, 0, a, 2, 1);
  sc_dma(sc, 0, a, q2, tile(OT_MEM_HBM, x.v.dtype, 0, 1, 2u << 20, n), x, 3);
  sc_wait(sc, 0, a, 3, 1);
  sc_acc(sc, 0, a, true, x);
  sc_wait(sc, 0, b, 3, 1);
  sc_acc(sc, 0, b, false, tile(OT_MEM_HBM, x.v.dtype, 0, 1, 2u << 20, n));
  safe_check(sc, "dma completion");
}

static void safe_barrier(scenario *sc) {
  tap x, y;
  rand_overlap(rand_mem(false), &x, &y);
  ot_engine a = rand_engine(), b = other_engine(a);
  sc_acc(sc, 0, a, true, x);
  sc_bar(sc, 0);
  sc_acc(sc, 0, b, false, y);
  sc_acc(sc, 0, b, true, y);
  sc_bar(sc, 0);
  sc_acc(sc, 0, a, false, x);
  sc_acc(sc, 0, a, true, x);
  safe_check(sc, "barrier");
}

/* One engine's own sequence, and two transfers on one queue. */
static void safe_same_thread(scenario *sc) {
  tap x, y;
  ot_mem mem = rand_mem(true);
  rand_overlap(mem, &x, &y);
  ot_engine a = rand_engine();
  uint32_t q = rng_below(SC_QUEUES);
  ot_mem src = mem == OT_MEM_HBM ? OT_MEM_SBUF : OT_MEM_HBM;
  sc_acc(sc, 0, a, true, x);
  sc_acc(sc, 0, a, false, y);
  sc_acc(sc, 0, a, true, y);
  sc_inc(sc, 0, a, 1);
  ot_engine b = other_engine(a);
  sc_wait(sc, 0, b, 1, 1);
  sc_dma(sc, 0, b, q, x, tile(src, x.v.dtype, 0, x.v.parts, 300000, (uint32_t)x.v.free_elems), 2);
  sc_dma(sc, 0, b, q, y, tile(src, y.v.dtype, 0, y.v.parts, 300000, (uint32_t)y.v.free_elems), 2);
  safe_check(sc, "same thread");
}

/* Disjoint: the same bytes in other partitions; interleaved elements sharing granules. */
static void safe_disjoint(scenario *sc) {
  tap x, y;
  rand_overlap(OT_MEM_SBUF, &x, &y);
  tap xo = other_partitions(&x);
  ot_engine a = rand_engine(), b = other_engine(a);
  sc_acc(sc, 0, a, true, x);
  sc_acc(sc, 0, b, true, xo);
  /* every other element: a takes the even ones, b the odd ones (1- or 2-byte elements) */
  ot_dtype dt = rng_below(2) ? OT_DT_BF16 : OT_DT_INT8;
  uint32_t es = (uint32_t)ot_dtype_size(dt), n = 2 + rng_below(20);
  ot_mem mem = rand_mem(false);
  uint64_t off = rand_base(mem) / es * es;
  const int32_t st[1] = {2};
  const uint32_t sz[1] = {n};
  tap even = mk_tap(mem, dt, 100, 2, off, 1, st, sz), odd = mk_tap(mem, dt, 100, 2, off + es, 1, st, sz);
  sc_acc(sc, 0, a, true, even);
  sc_acc(sc, 0, b, true, odd);
  sc_acc(sc, 0, a, false, even);
  sc_acc(sc, 0, b, false, odd);
  /* and through two DMA queues */
  uint32_t q1 = rng_below(SC_QUEUES), q2 = (q1 + 1) % SC_QUEUES;
  tap he = mk_tap(OT_MEM_HBM, dt, 0, 1, 5000 + off, 1, st, sz), ho = mk_tap(OT_MEM_HBM, dt, 0, 1, 5000 + off + es, 1, st, sz);
  sc_dma(sc, 0, a, q1, he, tile(OT_MEM_SBUF, dt, 120, 1, 0, n), 1);
  sc_dma(sc, 0, b, q2, ho, tile(OT_MEM_SBUF, dt, 121, 1, 0, n), 1);
  safe_check(sc, "disjoint");
}

/* Concurrent reads by three engines, then a write ordered after all of them. */
static void safe_reads(scenario *sc) {
  tap x, y;
  rand_overlap(rand_mem(false), &x, &y);
  ot_engine w = rand_engine();
  for (int e = 0; e < OT_ENG_COUNT; e++) {
    if ((ot_engine)e == w) continue;
    sc_acc(sc, 0, (ot_engine)e, false, e % 2 ? x : y);
    sc_inc(sc, 0, (ot_engine)e, 9);
  }
  sc_wait(sc, 0, w, 9, OT_ENG_COUNT - 1);
  sc_acc(sc, 0, w, true, x);
  sc_acc(sc, 0, w, true, y);
  safe_check(sc, "concurrent reads");
}

/* Double-buffered pipeline with counting semaphores and a loop's wait values. */
static void safe_pipeline(scenario *sc) {
  ot_engine ld = rand_engine(), cp = other_engine(ld);
  uint32_t q1 = rng_below(SC_QUEUES), q2 = rng_below(SC_QUEUES), iters = 3 + rng_below(4);
  ot_mem mem = rand_mem(true) == OT_MEM_HBM ? OT_MEM_PSUM : OT_MEM_SBUF;
  for (uint32_t i = 0; i < iters; i++) {
    if (i >= 2) sc_wait(sc, 0, ld, 11, i - 1); /* slot i%2 free: consumer done with i-2 */
    tap slot = tile(OT_MEM_SBUF, OT_DT_BF16, 0, 16, 1024 + (i % 2) * 512, 256);
    sc_dma(sc, 0, ld, q1, slot, tile(OT_MEM_HBM, OT_DT_BF16, 0, 1, 65536 + i * 8192, 16 * 256), 10);
  }
  for (uint32_t i = 0; i < iters; i++) {
    sc_wait(sc, 0, cp, 10, i + 1);
    sc_acc(sc, 0, cp, false, tile(OT_MEM_SBUF, OT_DT_BF16, 0, 16, 1024 + (i % 2) * 512, 256));
    tap out = tile(mem, OT_DT_FP32, 0, 16, 4096 + i * 1024, 256);
    sc_acc(sc, 0, cp, true, out);
    sc_inc(sc, 0, cp, 11);
    if (mem == OT_MEM_SBUF) sc_dma(sc, 0, cp, q2, tile(OT_MEM_HBM, OT_DT_FP32, 0, 1, 1u << 24 | i << 14, 16 * 256), out, 12);
    else sc_inc(sc, 0, cp, 12);
  }
  sc_wait(sc, 0, ld, 12, iters);
  safe_check(sc, "pipeline");
}

typedef void (*case_fn)(scenario *sc);

static void test_corpus(void **state) {
  (void)state;
  static const struct {
    case_fn fn;
    const char *name;
  } cases[] = {
      {case_raw, "raw"},           {case_war, "war"},
      {case_waw, "waw"},           {case_dma_raw, "dma raw"},
      {case_dma_war, "dma war"},   {case_dma_dma, "dma dma"},
      {case_one_way, "one-way"},   {case_wrong_sem, "wrong sem"},
      {case_too_small, "too small"}, {case_cross_core, "cross core"},
      {safe_chain, "safe chain"},  {safe_dma, "safe dma"},
      {safe_barrier, "safe barrier"}, {safe_same_thread, "safe same thread"},
      {safe_disjoint, "safe disjoint"}, {safe_reads, "safe reads"},
      {safe_pipeline, "safe pipeline"},
  };
  const size_t ncases = sizeof cases / sizeof cases[0];
  const unsigned total = 170; /* ten generated instances of each pattern */
  for (unsigned i = 0; i < total; i++) {
    rng_seed(1000 + i);
    scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    cases[i % ncases].fn(sc);
    sc_free(sc);
  }
}

/* ---- the oracle ------------------------------------------------------------------------------ */
/* Random programs on small regions (crossing shadow page boundaries) of SBUF, PSUM and HBM, by
** five engines and three queues with semaphores, DMA triggers and barriers.  The oracle keeps,
** per thread and per semaphore, the explicit set of events that happen before, and the exact
** bytes of every access. */
#define OR_EVENTS 96
#define OR_PARTS 4
#define OR_BYTES 96
#define OR_WORDS ((OR_EVENTS + 63) / 64)
#define OR_THREADS (OT_ENG_COUNT + 3)

typedef struct {
  uint64_t w[OR_WORDS];
} evset;

static void evset_or(evset *a, const evset *b) {
  for (int i = 0; i < OR_WORDS; i++) a->w[i] |= b->w[i];
}
static void evset_add(evset *a, uint32_t e) { a->w[e / 64] |= 1ull << (e % 64); }
static bool evset_has(const evset *a, uint32_t e) { return (a->w[e / 64] >> (e % 64)) & 1u; }

typedef struct {
  bool is_access, write;
  uint32_t tid;
  ot_mem mem;
  uint64_t bits[OR_PARTS][2];        /* the bytes the access touches */
  evset before;                      /* events that happen before it */
  tap t;
  ot_insn insn;
} or_event;

/* SBUF and HBM regions straddle a shadow page boundary; a PSUM partition is one page. */
static const uint64_t or_base[OT_MEM_COUNT] = {0, 16384 - 40, 8000, 5 * 16384 - 40};

/* A random view inside the region: 0-3 dims, sizes 1-3, strides -2..2 elements (0 broadcasts),
** 1-, 2- or 4-byte elements, any alignment. */
static tap or_view(ot_mem mem) {
  ot_dtype dt = dts[rng_below(3)];
  int64_t es = (int64_t)ot_dtype_size(dt);
  unsigned nd = rng_below(4);
  int32_t st[4];
  uint32_t sz[4];
  int64_t lo = 0, hi = 0;
  for (unsigned d = 0; d < nd; d++) {
    st[d] = (int32_t)rng_below(5) - 2;
    sz[d] = 1 + rng_below(3);
    int64_t span = (int64_t)st[d] * es * (sz[d] - 1);
    if (span < 0) lo += span; else hi += span;
  }
  int64_t room = OR_BYTES - (hi - lo + es);
  int64_t off = -lo + (int64_t)rng_below((uint32_t)room + 1);
  uint32_t p0 = rng_below(OR_PARTS), np = 1 + rng_below(OR_PARTS - p0);
  return mk_tap(mem, dt, p0, np, or_base[mem] + (uint64_t)off, nd, st, sz);
}

/* The exact bytes, element by element, independent of the checker's run walking. */
static void or_bytes(or_event *e) {
  const ot_view *v = &e->t.v;
  memset(e->bits, 0, sizeof e->bits);
  uint32_t idx[4] = {0};
  for (;;) {
    int64_t off = (int64_t)v->offset - (int64_t)or_base[v->mem];
    for (unsigned d = 0; d < v->ndim; d++) off += v->stride[d] * idx[d];
    for (uint32_t p = v->part_start; p < v->part_start + v->parts; p++)
      for (uint32_t k = 0; k < v->esize; k++) {
        int64_t b = off + k;
        assert_true(b >= 0 && b < OR_BYTES);
        e->bits[p][b / 64] |= 1ull << (b % 64);
      }
    int d = (int)v->ndim - 1;
    while (d >= 0 && ++idx[d] == v->size[d]) idx[d--] = 0;
    if (d < 0) break;
  }
}

static bool or_conflict(const or_event *a, const or_event *b) {
  if (!a->is_access || !b->is_access || a->mem != b->mem || !(a->write || b->write)) return false;
  for (int p = 0; p < OR_PARTS; p++)
    if ((a->bits[p][0] & b->bits[p][0]) | (a->bits[p][1] & b->bits[p][1])) return true;
  return false;
}

/* Earlier access b races with a: conflicting bytes, not ordered before a. */
static bool or_races(const or_event *ev, uint32_t b, uint32_t a) {
  return or_conflict(&ev[a], &ev[b]) && !evset_has(&ev[a].before, b);
}

/* Every report of event a names (by pc = event index) a real race. */
static void or_check_reports(const or_event *ev, uint32_t a, const char *msg) {
  for (const char *p = msg; p && *p;) {
    unsigned later = 0, earlier = 0;
    const char *by = strstr(p, " by core ");
    assert_non_null(by);
    assert_int_equal(sscanf(p, "race (%*[A-Z]): core %*u %*s pc %u", &later), 1);
    assert_int_equal(sscanf(by, " by core %*u %*s pc %u", &earlier), 1);
    assert_int_equal(later, a);
    assert_true(earlier < a);
    if (!or_races(ev, earlier, a)) fprintf(stderr, "event %u: reported race with %u is not one:\n%s\n", a, earlier, msg);
    assert_true(or_races(ev, earlier, a));
    p = strchr(p, '\n');
    if (p) p++;
  }
}

static void oracle_program(uint64_t seed, unsigned *first_races, unsigned *reports, unsigned *accesses) {
  rng_seed(seed);
  or_event *ev = calloc(OR_EVENTS, sizeof *ev);
  assert_non_null(ev);
  ot_race *r = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_race_new(g_chip, 1, &r, &err), OT_OK);
  uint32_t tid[OR_THREADS];
  for (uint32_t t = 0; t < OR_THREADS; t++)
    tid[t] = t < OT_ENG_COUNT ? ot_race_engine_thread(r, 0, (ot_engine)t) : ot_race_queue_thread(r, 0, t - OT_ENG_COUNT);
  evset know[OR_THREADS], sem[3];
  memset(know, 0, sizeof know);
  memset(sem, 0, sizeof sem);
  bool raced = false;
  uint32_t racy_from = rng_below(2 * OR_EVENTS); /* past the end: a race-free program, mostly */
  for (uint32_t i = 0; i < OR_EVENTS; i++) {
    or_event *e = &ev[i];
    uint32_t t = rng_below(OR_THREADS), roll = rng_below(100);
    e->tid = t;
    e->before = know[t];
    if (roll < 60) {
      /* Before racy_from, racy candidates are redrawn: long race-free, synchronised histories. */
      bool racy = false;
      for (int tries = 0; tries < 64; tries++) {
        t = rng_below(OR_THREADS);
        e->tid = t;
        e->before = know[t];
        e->is_access = true;
        e->write = rng_below(2);
        e->mem = (ot_mem)(1 + rng_below(3));
        e->t = or_view(e->mem);
        or_bytes(e);
        racy = false;
        for (uint32_t b = 0; b < i; b++) racy = racy || or_races(ev, b, i);
        if (!racy || i >= racy_from) break;
      }
      ot_insn_init(&e->insn, e->write ? OT_OP_MEMSET : OT_OP_LDWEIGHTS);
      e->insn.o[0].ap = e->t.ap;
      e->insn.line = i + 1;
      ot_site site = {g_prog, 0, t < OT_ENG_COUNT ? (ot_engine)t : OT_ENG_SYNC, i, &e->insn};
      ot_error_clear(&err);
      unsigned n = ot_race_access(r, tid[t], NULL, &e->t.v, e->write, &site, &err);
      if (n) or_check_reports(ev, i, err.msg);
      assert_int_equal(n, err.count);
      if (!raced && racy != (n > 0))
        fprintf(stderr, "seed %" PRIu64 " event %u: oracle says %s, checker reported %u\n", seed, i, racy ? "race" : "none", n);
      if (!raced) assert_int_equal(racy, n > 0); /* exact up to and including the first race */
      if (racy && !raced) (*first_races)++;
      raced = raced || racy;
      *reports += n;
      (*accesses)++;
    } else if (roll < 72) {
      uint32_t s = rng_below(3);
      ot_race_sem_inc(r, tid[t], 0, s);
      evset_or(&sem[s], &know[t]);
      evset_add(&sem[s], i);
    } else if (roll < 84) {
      uint32_t s = rng_below(3);
      ot_race_sem_acquire(r, tid[t], 0, s);
      evset_or(&know[t], &sem[s]);
    } else if (roll < 95) {
      uint32_t q = OT_ENG_COUNT + rng_below(3);
      if (t >= OT_ENG_COUNT) t = rng_below(OT_ENG_COUNT);
      e->tid = t;
      e->before = know[t];
      ot_race_dma_issue(r, tid[t], tid[q]);
      evset_or(&know[q], &know[t]);
      evset_add(&know[q], i);
    } else {
      uint32_t list[OR_THREADS], n = 0;
      evset all = {{0}};
      for (uint32_t k = 0; k < OR_THREADS; k++)
        if (k == t || rng_below(2)) { list[n] = tid[k]; evset_or(&all, &know[k]); n++; }
      evset_add(&all, i);
      for (uint32_t k = 0; k < OR_THREADS; k++)
        for (uint32_t j = 0; j < n; j++)
          if (list[j] == tid[k]) know[k] = all;
      ot_race_barrier(r, list, n);
    }
    evset_add(&know[e->tid], i);
  }
  ot_race_free(r);
  free(ev);
}

static void test_oracle(void **state) {
  (void)state;
  unsigned first = 0, reports = 0, accesses = 0;
  const unsigned programs = 600;
  for (unsigned i = 0; i < programs; i++) oracle_program(77 + i, &first, &reports, &accesses);
  /* The generator must exercise both outcomes. */
  fprintf(stderr, "oracle: %u programs (%u accesses), %u with a race, %u reports\n", programs, accesses, first, reports);
  assert_true(first > programs / 10 && first < programs - programs / 10);
}

/* ---- message, dedupe, API ------------------------------------------------------------------- */
static ot_program *asm_prog(const char *text) {
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "test", &p, &err)) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(p);
  return p;
}

/* The report names both instructions as the simulator's messages do, the kind, the memory and
** the byte range, and a DMA's queue. */
static void test_message(void **state) {
  (void)state;
  ot_program *p = asm_prog(".tensor x fp32 [128, 16] input\n"
                           ".engine sync\n"
                           "  dma_copy q1, sb.fp32[0:128]@0[1,16], $x[16,128][1,16], s0\n"
                           ".engine vector\n"
                           "  tensor_copy sb.fp32[0:128]@64[1,8], sb.fp32[4:2]@4[1,2]\n");
  ot_race *r = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_race_new(g_chip, 1, &r, &err), OT_OK);
  const ot_stream *sy = &p->streams[0], *ve = &p->streams[1];
  assert_int_equal(sy->engine, OT_ENG_SYNC);
  ot_site s_dma = {p, 0, OT_ENG_SYNC, 0, &sy->insns[0]}, s_cp = {p, 0, OT_ENG_VECTOR, 0, &ve->insns[0]};
  uint32_t sync = ot_race_engine_thread(r, 0, OT_ENG_SYNC), vec = ot_race_engine_thread(r, 0, OT_ENG_VECTOR);
  uint32_t q1 = ot_race_queue_thread(r, 0, 1);
  ot_race_dma_issue(r, sync, q1);
  tap dst = tile(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 0, 16);
  const int32_t st[2] = {16, 1};
  const uint32_t sz[2] = {128, 16};
  tap src = mk_tap(OT_MEM_HBM, OT_DT_FP32, 0, 1, 0, 2, st, sz);
  assert_int_equal(ot_race_access(r, q1, NULL, &src.v, false, &s_dma, &err), 0);
  assert_int_equal(ot_race_access(r, q1, NULL, &dst.v, true, &s_dma, &err), 0);
  ot_race_sem_inc(r, q1, 0, 0);
  /* vector reads partitions 4..5 bytes 4..11 without waiting for s0 */
  tap rd = tile(OT_MEM_SBUF, OT_DT_FP32, 4, 2, 4, 2);
  assert_int_equal(ot_race_access(r, vec, NULL, &rd.v, false, &s_cp, &err), 1);
  const char *want = "race (RAW): core 0 vector pc 0 (line 5) `tensor_copy sb.fp32[0:128]@64[1,8], sb.fp32[4:2]@4[1,2]` "
                     "reads sb partitions 4..5 bytes 4..11 written by core 0 sync pc 0 (line 3) "
                     "`dma_copy q1, sb.fp32[0:128]@0[1,16], $x[16,128][1,16], s0` (DMA on queue 1) with no semaphore "
                     "ordering them";
  if (strcmp(err.msg, want)) fprintf(stderr, "got:  %s\nwant: %s\n", err.msg, want);
  assert_string_equal(err.msg, want);
  /* the same pair again (another partition, and as WAW): not reported twice */
  ot_error_clear(&err);
  tap rd2 = tile(OT_MEM_SBUF, OT_DT_FP32, 9, 1, 0, 16);
  assert_int_equal(ot_race_access(r, vec, NULL, &rd2.v, true, &s_cp, &err), 0);
  assert_int_equal(err.count, 0);
  assert_int_equal(ot_race_count(r), 1);
  /* after waiting for the DMA's semaphore: ordered */
  ot_race_sem_acquire(r, vec, 0, 0);
  ot_site s_cp2 = s_cp;
  s_cp2.pc = 1;
  assert_int_equal(ot_race_access(r, vec, NULL, &dst.v, false, &s_cp2, &err), 0);
  /* HBM: a store back into x by another queue, not ordered after the load's reads */
  uint32_t q2 = ot_race_queue_thread(r, 0, 2);
  ot_race_dma_issue(r, vec, q2);
  ot_site s_st = {p, 0, OT_ENG_VECTOR, 7, &ve->insns[0]};
  tap hw = tile(OT_MEM_HBM, OT_DT_BF16, 0, 1, 6, 3);
  assert_int_equal(ot_race_access(r, q2, NULL, &hw.v, true, &s_st, &err), 0); /* ordered through s0 */
  ot_race_dma_issue(r, sync, q1);
  ot_race_sem_inc(r, q2, 0, 1);
  ot_site s_dma2 = s_dma;
  s_dma2.pc = 3;
  tap hr = tile(OT_MEM_HBM, OT_DT_INT8, 0, 1, 11, 1);
  assert_int_equal(ot_race_access(r, q1, NULL, &hr.v, false, &s_dma2, &err), 1);
  assert_non_null(strstr(err.msg, "race (RAW): core 0 sync pc 3 (line 3) "));
  assert_non_null(strstr(err.msg, " reads hbm bytes 11..11 written by core 0 vector pc 7 (line 5) "));
  assert_non_null(strstr(err.msg, "(DMA on queue 2) with no semaphore ordering them"));
  ot_race_free(r);
  ot_program_free(p);
}

/* Repeated iterations of one racy pair report once; NULL sites still produce a report. */
static void test_dedupe_and_api(void **state) {
  (void)state;
  ot_race *r = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_race_new(g_chip, 2, &r, &err), OT_OK);
  assert_int_equal(ot_race_thread_count(r), 2 * (OT_ENG_COUNT + 16));
  assert_int_equal(ot_race_engine_thread(r, 1, OT_ENG_TENSOR), OT_ENG_COUNT + 16 + 1);
  assert_int_equal(ot_race_queue_thread(r, 1, 3), OT_ENG_COUNT + 16 + OT_ENG_COUNT + 3);
  assert_int_equal(ot_race_queue_thread(r, 2, 0), OT_RACE_NO_THREAD);
  assert_int_equal(ot_race_queue_thread(r, 0, 16), OT_RACE_NO_THREAD);
  /* invalid ids and semaphores are ignored, not crashes */
  tap t = tile(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 4);
  assert_int_equal(ot_race_access(r, OT_RACE_NO_THREAD, NULL, &t.v, true, NULL, &err), 0);
  ot_race_sem_inc(r, 0, 5, 0);
  ot_race_sem_inc(r, 0, 0, 9999);
  ot_race_sem_acquire(r, 9999, 0, 0);
  ot_race_dma_issue(r, 0, 9999);
  uint32_t bad[2] = {9999, 0};
  ot_race_barrier(r, bad, 2);
  scenario *sc = calloc(1, sizeof *sc);
  assert_non_null(sc);
  sc_acc(sc, 0, OT_ENG_VECTOR, true, t);
  sc_acc(sc, 0, OT_ENG_GPSIMD, true, t);
  uint32_t v = ot_race_engine_thread(r, 0, OT_ENG_VECTOR), g = ot_race_engine_thread(r, 0, OT_ENG_GPSIMD);
  ot_site sv = {g_prog, 0, OT_ENG_VECTOR, 0, &sc->eng[0][OT_ENG_VECTOR].s[0].insn};
  ot_site sg = {g_prog, 0, OT_ENG_GPSIMD, 0, &sc->eng[0][OT_ENG_GPSIMD].s[0].insn};
  unsigned total = 0;
  for (int i = 0; i < 50; i++) {
    total += ot_race_access(r, v, NULL, &t.v, true, &sv, &err);
    total += ot_race_access(r, g, NULL, &t.v, i % 2, &sg, &err);
  }
  assert_int_equal(total, 1);
  assert_int_equal(err.count, 1);
  /* core 1's SBUF is not core 0's */
  uint32_t v1 = ot_race_engine_thread(r, 1, OT_ENG_VECTOR);
  assert_int_equal(ot_race_access(r, v1, NULL, &t.v, true, &sv, &err), 0);
  /* unknown sites */
  tap u = tile(OT_MEM_HBM, OT_DT_FP32, 0, 1, 64, 4);
  ot_error_clear(&err);
  assert_int_equal(ot_race_access(r, v, NULL, &u.v, true, NULL, &err), 0);
  assert_int_equal(ot_race_access(r, ot_race_queue_thread(r, 1, 4), NULL, &u.v, false, NULL, &err), 1);
  assert_string_equal(err.msg, "race (RAW): core 1 DMA queue 4 reads hbm bytes 64..79 written by core 0 vector with no "
                               "semaphore ordering them");
  ot_race_free(r);
  ot_race_free(NULL);
  sc_free(sc);
}

/* HBM shadow is allocated a page at a time where accessed, never for the whole memory. */
static void test_hbm_lazy(void **state) {
  (void)state;
  ot_chip *big = NULL;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_chip_preset("trn3", &big, &err), OT_OK); /* 144 GiB of HBM */
  ot_race *r = NULL;
  assert_int_equal(ot_race_new(big, 8, &r, &err), OT_OK);
  assert_int_equal(ot_race_shadow_bytes(r), 0);
  uint32_t v = ot_race_engine_thread(r, 0, OT_ENG_VECTOR), q = ot_race_queue_thread(r, 7, 15);
  tap lo = tile(OT_MEM_HBM, OT_DT_FP32, 0, 1, 0, 1024);
  tap hi = tile(OT_MEM_HBM, OT_DT_FP32, 0, 1, 140ull << 30, 1024);
  assert_int_equal(ot_race_access(r, v, NULL, &lo.v, true, NULL, &err), 0);
  assert_int_equal(ot_race_access(r, q, NULL, &hi.v, true, NULL, &err), 0);
  uint64_t used = ot_race_shadow_bytes(r);
  fprintf(stderr, "shadow after two 4 KiB HBM accesses 140 GiB apart: %" PRIu64 " bytes\n", used);
  assert_true(used > 0 && used < (1u << 20));
  /* the untouched SBUF of other cores costs nothing either; a full SBUF tile costs its pages */
  tap sb = tile(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 0, 4096);
  assert_int_equal(ot_race_access(r, v, NULL, &sb.v, true, NULL, &err), 0);
  uint64_t more = ot_race_shadow_bytes(r) - used;
  assert_true(more >= 128 * 16384 / 4 * 20 / 2 && more < 128 * 16384 / 4 * 32);
  ot_race_free(r);
  ot_chip_free(big);
}

/* ---- matmul_tiled, replayed ----------------------------------------------------------------- */
/* examples/kernels/matmul_tiled.s's accesses and synchronisation (acc matmuls read and write
** PSUM), under random schedules: no report, and fast. */
static void matmul_tiled(scenario *sc) {
  enum { S0, S1, S2, S3, S4, S5 };
  const uint64_t AT = 0, B = 1u << 20, C = 5u << 20; /* HBM: at, b, c */
  const ot_engine SY = OT_ENG_SYNC, PE = OT_ENG_TENSOR, DVE = OT_ENG_VECTOR;
  {
    const int32_t st[2] = {512, 1};
    const uint32_t sz[2] = {8, 512};
    const int32_t hs[3] = {512, 65536, 1};
    const uint32_t hz[3] = {128, 8, 512};
    tap dst = mk_tap(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 0, 2, st, sz);
    sc_dma(sc, 0, SY, 0, dst, mk_tap(OT_MEM_HBM, OT_DT_BF16, 0, 1, AT, 3, hs, hz), S0);
  }
  for (uint32_t nb = 0; nb < 4; nb++) {
    sc_wait(sc, 0, SY, S2, nb >= 1 ? nb - 1 : 0);
    const int32_t st[2] = {512, 1};
    const uint32_t sz[2] = {8, 512};
    const int32_t hs[3] = {2048, 262144, 1};
    const uint32_t hz[3] = {128, 8, 512};
    tap dst = mk_tap(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 8192 + (nb % 2) * 8192, 2, st, sz);
    sc_dma(sc, 0, SY, 1, dst, mk_tap(OT_MEM_HBM, OT_DT_BF16, 0, 1, B + nb * 1024, 3, hs, hz), S1);
  }
  sc_wait(sc, 0, PE, S0, 1);
  for (uint32_t nb = 0; nb < 4; nb++) {
    sc_wait(sc, 0, PE, S1, nb + 1);
    for (uint32_t mt = 0; mt < 4; mt++) {
      int32_t need = (int32_t)(nb * 4 + mt) - 7;
      sc_wait(sc, 0, PE, S4, need > 0 ? (uint32_t)need : 0);
      tap bank = tile(OT_MEM_PSUM, OT_DT_FP32, 0, 128, (nb % 2) * 8192 + mt * 2048, 512);
      for (uint32_t k = 0; k < 8; k++) {
        sc_acc(sc, 0, PE, false, tile(OT_MEM_SBUF, OT_DT_BF16, 0, 128, k * 1024 + mt * 256, 128));
        sc_acc(sc, 0, PE, false, tile(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 8192 + (nb % 2) * 8192 + k * 1024, 512));
        if (k) sc_acc(sc, 0, PE, false, bank);
        sc_acc(sc, 0, PE, true, bank);
      }
      sc_inc(sc, 0, PE, S3);
    }
    sc_inc(sc, 0, PE, S2);
  }
  for (uint32_t j = 0; j < 16; j++) {
    uint32_t nb = j / 4, mt = j % 4;
    sc_wait(sc, 0, DVE, S3, j + 1);
    tap stage = tile(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 24576 + j * 2048, 512);
    sc_acc(sc, 0, DVE, false, tile(OT_MEM_PSUM, OT_DT_FP32, 0, 128, (j * 2048) & 16383, 512));
    sc_acc(sc, 0, DVE, true, stage);
    sc_inc(sc, 0, DVE, S4);
    const int32_t hs[2] = {2048, 1};
    const uint32_t hz[2] = {128, 512};
    sc_dma(sc, 0, DVE, 2, mk_tap(OT_MEM_HBM, OT_DT_FP32, 0, 1, C + nb * 2048 + mt * 1048576, 2, hs, hz), stage, S5);
  }
  sc_wait(sc, 0, SY, S5, 16);
}

static void test_matmul_tiled(void **state) {
  (void)state;
  scenario *sc = calloc(1, sizeof *sc);
  assert_non_null(sc);
  matmul_tiled(sc);
  for (uint64_t seed = 1; seed <= 2; seed++) {
    runner rn;
    clock_t t0 = clock();
    sc_run(&rn, sc, NULL, 0, seed);
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr, "matmul_tiled replay: %.3f s, shadow %.1f MiB, %u reports\n", s,
            (double)ot_race_shadow_bytes(rn.r) / (1 << 20), rn.races);
    if (rn.races) fprintf(stderr, "%s\n", rn.err.msg);
    assert_int_equal(rn.races, 0);
    rn_free(&rn);
  }
  /* Break it: the vector engine no longer waits for the C tile (s3), so it copies PSUM while
  ** the tensor engine still writes it. */
  for (uint32_t i = 0; i < sc->eng[0][OT_ENG_VECTOR].n; i++) {
    step *s = &sc->eng[0][OT_ENG_VECTOR].s[i];
    if (s->kind == K_WAIT) s->value = 0;
  }
  runner rn;
  sc_run(&rn, sc, NULL, 0, 3);
  assert_true(rn.races > 0);
  fprintf(stderr, "%s\n", rn.err.msg);
  assert_non_null(strstr(rn.err.msg, "core 0 vector pc "));
  assert_non_null(strstr(rn.err.msg, "core 0 tensor pc "));
  assert_non_null(strstr(rn.err.msg, " ps partitions 0..127 bytes "));
  rn_free(&rn);
  sc_free(sc);
}

static int setup(void **state) {
  (void)state;
  ot_error err;
  ot_error_clear(&err);
  if (ot_chip_preset("trn2", &g_chip, &err)) return -1;
  g_prog = ot_program_new();
  return g_prog ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  ot_chip_free(g_chip);
  ot_program_free(g_prog);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_message),    cmocka_unit_test(test_dedupe_and_api), cmocka_unit_test(test_corpus),
      cmocka_unit_test(test_oracle),     cmocka_unit_test(test_hbm_lazy),       cmocka_unit_test(test_matmul_tiled),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
