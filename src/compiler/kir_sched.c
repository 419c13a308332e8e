/* List scheduling of kir's window of emitted instructions.
**
** Lowerings emit in dataflow order; each engine then runs its instructions in the order they
** reach it, so an instruction waiting for a slow producer holds back everything behind it on
** its engine.  Instructions are therefore collected in a window (KIR_WINDOW of them, spanning
** graph nodes) and placed in the order of a list schedule:
**
**   - dependencies: every pair of accesses to the same bytes of SBUF, PSUM or HBM with at least
**     one write (RAW, WAR, WAW), in emission order; plus the PE array's stationary operand, an
**     implicit state written by ldweights/transpose and read by matmul;
**   - durations: the simulator's cost formulas for each instruction on the chip (sim_cost.c),
**     DMA as start latency + bytes / core DMA bandwidth;
**   - priority: the longest duration path from the instruction to the end of the window;
**   - the schedule: repeatedly, among the ready instructions that can start within
**     SCHED_SLACK_PS of the earliest on their engines, the one with the highest priority (ties:
**     earlier start, then emission order), with each engine in order.
** The placement (kir_sync.c) then inserts exactly the waits the new order needs.  Any
** topological order is correct, since every conflicting pair is ordered. */
#include <stdlib.h>
#include <string.h>

#include "compiler/kir_int.h"
#include "sim/sim_dma.h"
#include "sim/sim_int.h"

/* Instructions scheduled together: several transformer blocks, so the scheduler overlaps nodes
** across block boundaries too.  GPT-2 124M training step, one trn2 core, B2 x 1024: 16384 (a
** block's forward) 60.16 ms, 32768 59.81, 65536 59.77, 524288 59.76; compile time unchanged. */
#define KIR_WINDOW 65536
/* An instruction that can start at most this much later than the earliest ready one may go
** first when its path to the end is longer: a strictly greedy earliest-start choice fills a
** gap with off-critical work and delays the critical chain (trn1 GPT-2 block: -1.6 %).  With the
** 65536-instruction window: GPT-2 124M training step, one trn2 core B2, 100 ns 58.60 ms, 300 ns
** 58.02, 400 ns 58.14, 500 ns 58.22, 800 ns 58.72; trn1 72.28 / 71.95 / 71.87 / 72.19 ms;
** block forward + backward trn2 1.539 / 1.513 / 1.517 / 1.523 ms, trn1 1.747 / 1.758 / 1.762 /
** 1.758 ms. */
#define SCHED_SLACK_PS 300000
/* Transfers the queues may hold before the next DMA is issued (snode_start_on): 2 us was the best
** of 0.5 - 16 us on the GPT-2 block (trn1 0.422 ms; 0.494 at 0.5 us, 0.449 unbounded). */
#define SCHED_DMA_BACKLOG_PS 2000000

/* ---- emission: into the window ----------------------------------------------------------------- */
static ot_status pend_push(kir *k, const ot_insn *in, uint8_t eng, bool dma) {
  if (k->st) return k->st;
  kir_pend *v = grow(k->pend, &k->cap_pend, k->n_pend + 1, sizeof *v);
  if (!v) return kir_fail(k, OT_ENOMEM, "out of memory");
  k->pend = v;
  kir_pend *p = &v[k->n_pend++];
  p->in = *in;
  p->in.tag = k->tag;
  p->eng = eng;
  p->dma = dma;
  p->tag = k->tag;
  if (k->n_pend >= KIR_WINDOW) return kir_flush(k);
  return OT_OK;
}

ot_status kir_emit(kir *k, ot_engine e, const ot_insn *in) {
  if (k->st) return k->st;
  if (!(ot_opcodes[in->op].engines & OT_ENG_BIT(e)))
    return kir_fail(k, OT_EINVAL, "%s cannot run on the %s engine", ot_opcodes[in->op].mnemonic, ot_engine_name(e));
  return pend_push(k, in, (uint8_t)e, false);
}

ot_status kir_dma_op(kir *k, ot_opcode op, ot_ap dst, ot_ap src, const ot_ap *idx, ot_engine issuer) {
  if (k->st) return k->st;
  bool indirect = op == OT_OP_DMA_GATHER || op == OT_OP_DMA_SCATTER_ADD;
  if (indirect != (idx != NULL))
    return kir_fail(k, OT_EINVAL, "%s: an index pattern is %s", ot_opcodes[op].mnemonic, indirect ? "required" : "not allowed");
  ot_insn in;
  ot_insn_init(&in, op);
  in.o[1].ap = dst;
  in.o[2].ap = src;
  if (indirect) in.o[3].ap = *idx; /* q, dst, src, idx, sem */
  return pend_push(k, &in, (uint8_t)issuer, true);
}

ot_status kir_dma(kir *k, ot_ap dst, ot_ap src, ot_engine issuer) {
  return kir_dma_op(k, OT_OP_DMA_COPY, dst, src, NULL, issuer);
}

void kir_set_schedule(kir *k, bool on) { k->schedule = on; }

/* ---- dependencies ------------------------------------------------------------------------------ */
typedef struct {
  int64_t lo, hi;
  int32_t writer;              /* window index, -1 none */
  int32_t *rd;                 /* readers since that write */
  uint32_t n_rd, cap_rd;
} dseg;

typedef struct {
  dseg *s;
  uint32_t n, cap;
} dmap;

typedef struct {
  int32_t *v;
  uint32_t n, cap;
} ilist;

typedef struct {
  kir *k;
  uint32_t n;
  dmap map[4];                 /* SBUF, PSUM, HBM, the PE array's stationary */
  ilist *pred;
  bool oom;
} deps;

static void ilist_add(deps *d, ilist *l, int32_t x) {
  if (l->n && l->v[l->n - 1] == x) return;
  int32_t *v = grow(l->v, &l->cap, l->n + 1, sizeof *v);
  if (!v) { d->oom = true; return; }
  l->v = v;
  l->v[l->n++] = x;
}

static uint32_t dmap_first(const dmap *m, int64_t lo) {
  uint32_t a = 0, b = m->n;
  while (a < b) {
    uint32_t mid = (a + b) / 2;
    if (m->s[mid].hi <= lo) a = mid + 1; else b = mid;
  }
  return a;
}

static bool dmap_insert(deps *d, dmap *m, uint32_t at, const dseg *x) {
  dseg *v = grow(m->s, &m->cap, m->n + 1, sizeof *v);
  if (!v) { d->oom = true; return false; }
  m->s = v;
  memmove(&v[at + 1], &v[at], (m->n - at) * sizeof *v);
  v[at] = *x;
  m->n++;
  return true;
}

static dseg seg_copy(deps *d, const dseg *x, int64_t lo, int64_t hi) {
  dseg c = *x;
  c.lo = lo;
  c.hi = hi;
  c.rd = NULL;
  c.n_rd = c.cap_rd = 0;
  if (x->n_rd) {
    c.rd = malloc(x->n_rd * sizeof *c.rd);
    if (!c.rd) { d->oom = true; c.n_rd = 0; return c; }
    memcpy(c.rd, x->rd, x->n_rd * sizeof *c.rd);
    c.n_rd = c.cap_rd = x->n_rd;
  }
  return c;
}

/* Make segment boundaries at lo and hi; returns the first segment inside. */
static uint32_t dmap_split(deps *d, dmap *m, int64_t lo, int64_t hi) {
  uint32_t i = dmap_first(m, lo);
  if (i < m->n && m->s[i].lo < lo) {
    dseg right = seg_copy(d, &m->s[i], lo, m->s[i].hi);
    m->s[i].hi = lo;
    if (!dmap_insert(d, m, i + 1, &right)) return i;
    i++;
  }
  uint32_t j = i;
  while (j < m->n && m->s[j].hi <= hi) j++;
  if (j < m->n && m->s[j].lo < hi) {
    dseg right = seg_copy(d, &m->s[j], hi, m->s[j].hi);
    m->s[j].hi = hi;
    dmap_insert(d, m, j + 1, &right);
  }
  return i;
}

static void dmap_access(deps *d, dmap *m, int64_t lo, int64_t hi, bool write, int32_t me) {
  if (hi <= lo) return;
  uint32_t i = dmap_split(d, m, lo, hi);
  if (d->oom) return;
  ilist *pr = &d->pred[me];
  uint32_t j = i;
  for (; j < m->n && m->s[j].lo < hi; j++) {
    dseg *s = &m->s[j];
    if (s->writer >= 0 && s->writer != me) ilist_add(d, pr, s->writer);
    if (write)
      for (uint32_t r = 0; r < s->n_rd; r++)
        if (s->rd[r] != me) ilist_add(d, pr, s->rd[r]);
  }
  if (write) { /* everything inside becomes one segment written by me */
    for (uint32_t x = i; x < j; x++) free(m->s[x].rd);
    dseg w = {lo, hi, me, NULL, 0, 0};
    if (j > i) {
      m->s[i] = w;
      memmove(&m->s[i + 1], &m->s[j], (m->n - j) * sizeof *m->s);
      m->n -= j - i - 1;
    } else {
      dmap_insert(d, m, i, &w);
    }
    return;
  }
  int64_t at = lo;
  while (at < hi && !d->oom) { /* mark me a reader; fill the gaps */
    if (i < m->n && m->s[i].lo <= at) {
      dseg *s = &m->s[i];
      if (!s->n_rd || s->rd[s->n_rd - 1] != me) {
        int32_t *v = grow(s->rd, &s->cap_rd, s->n_rd + 1, sizeof *v);
        if (!v) { d->oom = true; return; }
        s->rd = v;
        s->rd[s->n_rd++] = me;
      }
      at = s->hi;
      i++;
      continue;
    }
    int64_t end = i < m->n && m->s[i].lo < hi ? m->s[i].lo : hi;
    dseg g = {at, end, -1, NULL, 0, 0};
    g.rd = malloc(sizeof *g.rd);
    if (!g.rd) { d->oom = true; return; }
    g.rd[0] = me;
    g.n_rd = g.cap_rd = 1;
    if (!dmap_insert(d, m, i, &g)) { free(g.rd); return; }
    i++;
    at = end;
  }
}

static void insn_deps(deps *d, const ot_insn *in, int32_t me) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  for (int pass = 0; pass < 2; pass++) /* reads, then writes (an in-place op reads first) */
    for (unsigned o = 0; o < info->n_operands; o++) {
      const ot_operand_spec *sp = &info->operands[o];
      if (sp->role == OT_ROLE_N || (sp->kind != OT_OK_AP && sp->kind != OT_OK_VAL)) continue;
      if (sp->kind == OT_OK_VAL && in->o[o].tag != OT_TAG_AP) continue;
      const ot_ap *ap = &in->o[o].ap;
      if (ap->mem == OT_MEM_NONE) continue;
      bool write = sp->role == OT_ROLE_W || sp->role == OT_ROLE_WD;
      if (write != (pass == 1)) continue;
      int64_t lo, hi;
      if (!ot_ap_byte_range(ap, &lo, &hi)) continue;
      dmap_access(d, &d->map[ap->mem == OT_MEM_SBUF ? 0 : ap->mem == OT_MEM_PSUM ? 1 : 2], lo, hi, write, me);
    }
  /* The PE array's stationary operand: ldweights and transposes replace it, matmul reads it. */
  if (in->op == OT_OP_MATMUL) dmap_access(d, &d->map[3], 0, 1, false, me);
  if (in->op == OT_OP_LDWEIGHTS || in->op == OT_OP_TRANSPOSE) dmap_access(d, &d->map[3], 0, 1, true, me);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return x < y ? -1 : x > y;
}

/* Each predecessor once (an instruction may conflict with another on several operands). */
static void ilist_unique(ilist *l) {
  if (l->n < 2) return;
  qsort(l->v, l->n, sizeof *l->v, cmp_i32);
  uint32_t u = 1;
  for (uint32_t i = 1; i < l->n; i++)
    if (l->v[i] != l->v[u - 1]) l->v[u++] = l->v[i];
  l->n = u;
}

static void deps_free(deps *d) {
  for (int m = 0; m < 4; m++) {
    for (uint32_t i = 0; i < d->map[m].n; i++) free(d->map[m].s[i].rd);
    free(d->map[m].s);
  }
  for (uint32_t i = 0; d->pred && i < d->n; i++) free(d->pred[i].v);
  free(d->pred);
}

/* ---- durations --------------------------------------------------------------------------------- */
static ot_ps pend_duration(const kir *k, const kir_pend *p) {
  const ot_chip *chip = k->chip;
  const ot_opcode_info *info = &ot_opcodes[p->in.op];
  ot_view v[OT_MAX_OPERANDS];
  memset(v, 0, sizeof v);
  for (unsigned o = 0; o < info->n_operands; o++) {
    bool ap = info->operands[o].kind == OT_OK_AP || (info->operands[o].kind == OT_OK_VAL && p->in.o[o].tag == OT_TAG_AP);
    if (ap && p->in.o[o].ap.mem != OT_MEM_NONE) ot_view_resolve(&v[o], &p->in.o[o].ap, NULL, chip, NULL, NULL);
  }
  if (p->dma) {
    uint64_t bytes = 0;
    double cost = ot_dma_cost_bytes(chip, &v[1], &v[2], &bytes);
    double bw = chip->dma.engines * chip->dma.engine_gbps * 1e-3; /* bytes per ps */
    return (ot_ps)(chip->dma.start_latency_ns * 1e3 + (bw > 0 ? cost / bw : 0));
  }
  ot_engine e = (ot_engine)p->eng;
  ot_cost c = ot_cost_insn(chip, e, &p->in, v, NULL, OT_TIMING_NEURON);
  return ot_cycles_to_ps(chip, e, c.cycles);
}

/* ---- the schedule ------------------------------------------------------------------------------ */
typedef struct {
  ot_ps dur, prio, ready;
  uint32_t npred;
  ilist succ;
  uint8_t res;                 /* engine whose stream holds it (DMA: its predicted issuer) */
  uint8_t alt;                 /* a store's other possible issuer (the data's writer), else res */
  bool dma;
} snode;

static uint8_t pend_resource(const kir_pend *p) {
  if (!p->dma) return p->eng;
  if (p->eng < OT_ENG_COUNT) return p->eng;
  return OT_ENG_SYNC; /* loads; stores go to their data's writer, which the placement decides */
}

/* When a DMA issued at t completes: the core's queues share one bandwidth (as the simulator
** shares it), so transfers predicted back to back, not all at full bandwidth at once; without
** this, loads look free and the schedule runs compute far ahead of the stores that free its
** buffers. */
static ot_ps sched_dma_done(const kir *k, ot_ps *dma_free, ot_ps t, ot_ps dur) {
  ot_ps lat = (ot_ps)(k->chip->dma.start_latency_ns * 1e3);
  ot_ps xfer = dur > lat ? dur - lat : 0, start = t + lat > *dma_free ? t + lat : *dma_free;
  *dma_free = start + xfer;
  return start + xfer;
}

/* When x can start.  A DMA is not issued while the queues hold more than SCHED_DMA_BACKLOG_PS
** of transfers: a queue runs its transfers in order, so a prefetch issued early would hold back
** a later transfer on the critical path; deferred, it is placed after that transfer. */
static ot_ps snode_start_on(const snode *x, uint8_t res, const ot_ps *free_at, ot_ps dma_free) {
  ot_ps t = x->ready > free_at[res] ? x->ready : free_at[res];
  if (x->dma && dma_free > SCHED_DMA_BACKLOG_PS && dma_free - SCHED_DMA_BACKLOG_PS > t) t = dma_free - SCHED_DMA_BACKLOG_PS;
  return t;
}

/* A store goes to whichever of its issuers (Sync, or the engine that wrote the data) can issue
** it first; the writer on a tie, which needs no semaphore.  Where an issue costs an engine
** hundreds of ns (a hardware DGE, trn2: 600 ns), a busy compute engine leaves it to Sync. */
static uint8_t snode_issuer(const snode *x, const ot_ps *free_at, ot_ps dma_free) {
  if (x->alt == x->res) return x->res;
  return snode_start_on(x, x->alt, free_at, dma_free) <= snode_start_on(x, x->res, free_at, dma_free) ? x->alt : x->res;
}

static ot_ps snode_start(const snode *x, const ot_ps *free_at, ot_ps dma_free) {
  return snode_start_on(x, snode_issuer(x, free_at, dma_free), free_at, dma_free);
}

/* The ready instruction to place next: among those that can start within slack of the earliest,
** the highest priority (ties: earlier start, then emission order).  Slack 0 is the plain
** earliest-start rule. */
static uint32_t pick_ready(const snode *s, const uint32_t *ready, uint32_t nready, const ot_ps *free_at, ot_ps dma_free,
                           ot_ps slack) {
  ot_ps first = UINT64_MAX;
  for (uint32_t r = 0; r < nready; r++) {
    ot_ps t = snode_start(&s[ready[r]], free_at, dma_free);
    if (t < first) first = t;
  }
  uint32_t best = UINT32_MAX;
  for (uint32_t r = 0; r < nready; r++) {
    const snode *x = &s[ready[r]];
    if (snode_start(x, free_at, dma_free) > first + slack) continue;
    if (best == UINT32_MAX) { best = r; continue; }
    const snode *b = &s[ready[best]];
    ot_ps tx = snode_start(x, free_at, dma_free), tb = snode_start(b, free_at, dma_free);
    if (x->prio > b->prio || (x->prio == b->prio && (tx < tb || (tx == tb && ready[r] < ready[best])))) best = r;
  }
  return best;
}

/* The engine that wrote a store's source last among its predecessors (the one the placement
** would choose), or res. */
static uint8_t store_writer(const kir *k, const ilist *pred, uint32_t i, uint8_t res) {
  const kir_pend *p = &k->pend[i];
  if (!p->dma || p->eng < OT_ENG_COUNT || p->in.o[1].ap.mem != OT_MEM_HBM || p->in.o[2].ap.mem == OT_MEM_HBM) return res;
  int32_t best = -1;
  for (uint32_t j = 0; j < pred->n; j++)
    if (!k->pend[pred->v[j]].dma && pred->v[j] > best) best = pred->v[j];
  return best >= 0 ? k->pend[best].eng : res;
}

/* Order the window: out[0..n) = window indices in placement order; issuer[i] = the engine that
** issues DMA i. */
static bool schedule_window(kir *k, uint32_t *out, uint8_t *issuer) {
  uint32_t n = k->n_pend;
  deps d;
  memset(&d, 0, sizeof d);
  d.k = k;
  d.n = n;
  d.pred = calloc(n, sizeof *d.pred);
  snode *s = calloc(n, sizeof *s);
  bool ok = d.pred && s;
  for (uint32_t i = 0; ok && i < n && !d.oom; i++) insn_deps(&d, &k->pend[i].in, (int32_t)i);
  ok = ok && !d.oom;
  for (uint32_t i = 0; ok && i < n; i++) {
    ilist_unique(&d.pred[i]);
    s[i].dur = pend_duration(k, &k->pend[i]);
    s[i].prio = s[i].dur;
    s[i].res = pend_resource(&k->pend[i]);
    s[i].alt = store_writer(k, &d.pred[i], i, s[i].res);
    s[i].dma = k->pend[i].dma;
    s[i].npred = d.pred[i].n;
    for (uint32_t j = 0; j < d.pred[i].n; j++) ilist_add(&d, &s[d.pred[i].v[j]].succ, (int32_t)i);
  }
  ok = ok && !d.oom;
  for (uint32_t i = n; ok && i-- > 0;) /* longest path to the end of the window */
    for (uint32_t j = 0; j < d.pred[i].n; j++) {
      snode *p = &s[d.pred[i].v[j]];
      if (p->dur + s[i].prio > p->prio) p->prio = p->dur + s[i].prio;
    }
  ot_ps free_at[OT_ENG_COUNT] = {0}, dma_free = 0;
  uint32_t *ready = ok ? malloc(n * sizeof *ready) : NULL, nready = 0, placed = 0;
  ok = ok && ready;
  for (uint32_t i = 0; ok && i < n; i++)
    if (!s[i].npred) ready[nready++] = i;
  while (ok && nready) {
    uint32_t best = pick_ready(s, ready, nready, free_at, dma_free, SCHED_SLACK_PS);
    ot_ps best_t = snode_start(&s[ready[best]], free_at, dma_free);
    uint32_t i = ready[best];
    s[i].res = issuer[i] = snode_issuer(&s[i], free_at, dma_free);
    ready[best] = ready[--nready];
    out[placed++] = i;
    ot_ps end = best_t + (k->pend[i].dma ? k->chip->dma.issue_ns * 1e3 : s[i].dur);
    free_at[s[i].res] = end;
    ot_ps done = best_t + s[i].dur; /* a DMA completes after its transfer, not its issue */
    if (k->pend[i].dma) done = sched_dma_done(k, &dma_free, best_t, s[i].dur);
    for (uint32_t j = 0; j < s[i].succ.n; j++) {
      snode *x = &s[s[i].succ.v[j]];
      if (done > x->ready) x->ready = done;
      if (--x->npred == 0) ready[nready++] = (uint32_t)s[i].succ.v[j];
    }
  }
  ok = ok && placed == n;
  for (uint32_t i = 0; s && i < n; i++) free(s[i].succ.v);
  free(s);
  free(ready);
  deps_free(&d);
  return ok;
}

ot_status kir_flush(kir *k) {
  uint32_t n = k->n_pend;
  if (!n) return k->st;
  uint32_t *order = malloc(n * sizeof *order);
  uint8_t *issuer = malloc(n);
  if (!order || !issuer) { free(order); free(issuer); return kir_fail(k, OT_ENOMEM, "out of memory"); }
  for (uint32_t i = 0; i < n; i++) issuer[i] = k->pend[i].eng;
  if (!k->schedule || !schedule_window(k, order, issuer))
    for (uint32_t i = 0; i < n; i++) order[i] = i, issuer[i] = k->pend[i].eng; /* emission order (also if out of memory) */
  uint32_t keep_tag = k->tag;
  char keep_origin[sizeof k->origin];
  memcpy(keep_origin, k->origin, sizeof keep_origin);
  for (uint32_t r = 0; r < n && !k->st; r++) {
    const kir_pend *p = &k->pend[order[r]];
    k->tag = p->tag; /* waits placed for it carry its node, and so do messages */
    snprintf(k->origin, sizeof k->origin, "%s", ot_program_string(k->prog, p->tag));
    if (p->dma) kir_place_dma(k, &p->in, (ot_engine)issuer[order[r]]);
    else kir_place(k, (ot_engine)p->eng, &p->in);
  }
  k->tag = keep_tag;
  memcpy(k->origin, keep_origin, sizeof keep_origin);
  k->n_pend = 0;
  free(order);
  free(issuer);
  return k->st;
}
