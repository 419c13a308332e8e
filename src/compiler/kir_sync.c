/* Dependencies and synchronisation: the access map, waits with vector clocks, progress
** semaphores, and writing the streams out (kir.h explains the model). */
#include <stdlib.h>
#include <string.h>

#include "compiler/kir_int.h"

#define SRC_QUEUE(q) (OT_ENG_COUNT + (q))

static bool src_is_queue(int s) { return s >= OT_ENG_COUNT; }

/* ---- what a source knows once one of its instructions / transfers has completed -------------- */
static void source_vc_at(const kir *k, int src, int32_t idx, int32_t out[KIR_SRC_COUNT]) {
  if (src_is_queue(src)) {
    memcpy(out, k->queue[src - OT_ENG_COUNT].vc[idx - 1], sizeof(int32_t) * KIR_SRC_COUNT);
    return;
  }
  const kir_engine *E = &k->eng[src];
  /* the last snapshot taken at or before idx */
  int32_t lo = 0, hi = (int32_t)E->n_snap - 1, best = -1;
  while (lo <= hi) {
    int32_t mid = (lo + hi) / 2;
    if (E->snap[mid].at <= idx) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (best >= 0) memcpy(out, E->snap[best].vc, sizeof(int32_t) * KIR_SRC_COUNT);
  else {
    for (int s = 0; s < OT_ENG_COUNT; s++) out[s] = -1;
    for (int s = OT_ENG_COUNT; s < KIR_SRC_COUNT; s++) out[s] = 0;
  }
  out[src] = idx;
}

/* ---- streams ------------------------------------------------------------------------------- */
static kir_entry *stream_push(kir *k, int e) {
  kir_engine *E = &k->eng[e];
  kir_entry *v = grow(E->v, &E->cap, E->n + 1, sizeof *v);
  if (!v) { kir_fail(k, OT_ENOMEM, "out of memory"); return NULL; }
  E->v = v;
  kir_entry *x = &v[E->n++];
  memset(x, 0, sizeof *x);
  return x;
}

/* Engine e waits until source src has completed idx, unless it knows so already. */
static void engine_wait(kir *k, int e, int src, int32_t idx) {
  kir_engine *E = &k->eng[e];
  if (src == e || E->vc[src] >= idx) { k->stats.waits_elided++; return; }
  int32_t know[KIR_SRC_COUNT];
  source_vc_at(k, src, idx, know);
  if (!src_is_queue(src)) k->eng[src].v[idx].signal = true;
  kir_entry *w = stream_push(k, e);
  if (!w) return;
  ot_insn_init(&w->in, OT_OP_SEM_WAIT);
  w->in.tag = k->tag;
  w->is_wait = true;
  w->wsrc = (uint8_t)src;
  w->widx = idx;
  for (int s = 0; s < KIR_SRC_COUNT; s++)
    if (know[s] > E->vc[s]) E->vc[s] = know[s];
  kir_snap *sn = grow(E->snap, &E->cap_snap, E->n_snap + 1, sizeof *sn);
  if (!sn) { kir_fail(k, OT_ENOMEM, "out of memory"); return; }
  E->snap = sn;
  sn[E->n_snap].at = (int32_t)(E->n - 1);
  memcpy(sn[E->n_snap].vc, E->vc, sizeof E->vc);
  E->n_snap++;
  k->stats.waits++;
}

/* Queues first: a transfer's completion usually implies the issuing engine's progress too. */
static void engine_wait_all(kir *k, int e, const int32_t need[KIR_SRC_COUNT]) {
  for (int s = OT_ENG_COUNT; s < KIR_SRC_COUNT; s++)
    if (need[s] > 0) engine_wait(k, e, s, need[s]);
  for (int s = 0; s < OT_ENG_COUNT; s++)
    if (need[s] >= 0) engine_wait(k, e, s, need[s]);
}

/* ---- the access map ------------------------------------------------------------------------ */
static kir_map *map_of(kir *k, const ot_ap *ap) {
  return &k->map[ap->mem == OT_MEM_SBUF ? 0 : ap->mem == OT_MEM_PSUM ? 1 : 2];
}

static uint32_t map_first(const kir_map *m, int64_t lo) {
  uint32_t a = 0, b = m->n;
  while (a < b) {
    uint32_t mid = (a + b) / 2;
    if (m->seg[mid].hi <= lo) a = mid + 1; else b = mid;
  }
  return a;
}

static void need_raise(int32_t need[KIR_SRC_COUNT], int src, int32_t idx) {
  if (src >= 0 && idx > need[src]) need[src] = idx;
}

static void map_collect(const kir_map *m, int64_t lo, int64_t hi, bool write, int32_t need[KIR_SRC_COUNT]) {
  for (uint32_t i = map_first(m, lo); i < m->n && m->seg[i].lo < hi; i++) {
    const kir_seg *s = &m->seg[i];
    need_raise(need, s->wsrc, s->widx);
    if (write)
      for (int r = 0; r < KIR_SRC_COUNT; r++) need_raise(need, r, s->rd[r]);
  }
}

static bool map_insert(kir *k, kir_map *m, uint32_t at, const kir_seg *s) {
  kir_seg *v = grow(m->seg, &m->cap, m->n + 1, sizeof *v);
  if (!v) { kir_fail(k, OT_ENOMEM, "out of memory"); return false; }
  m->seg = v;
  memmove(&v[at + 1], &v[at], (m->n - at) * sizeof *v);
  v[at] = *s;
  m->n++;
  return true;
}

static void seg_fresh(kir_seg *s, int64_t lo, int64_t hi) {
  s->lo = lo;
  s->hi = hi;
  s->wsrc = -1;
  s->widx = -1;
  for (int r = 0; r < KIR_SRC_COUNT; r++) s->rd[r] = -1;
}

/* Split so that segment boundaries fall at lo and hi; returns the first index inside. */
static uint32_t map_split(kir *k, kir_map *m, int64_t lo, int64_t hi) {
  uint32_t i = map_first(m, lo);
  if (i < m->n && m->seg[i].lo < lo) {
    kir_seg right = m->seg[i];
    right.lo = lo;
    m->seg[i].hi = lo;
    if (!map_insert(k, m, i + 1, &right)) return i;
    i++;
  }
  uint32_t j = i;
  while (j < m->n && m->seg[j].hi <= hi) j++;
  if (j < m->n && m->seg[j].lo < hi) {
    kir_seg right = m->seg[j];
    right.lo = hi;
    m->seg[j].hi = hi;
    map_insert(k, m, j + 1, &right);
  }
  return i;
}

static void map_record(kir *k, kir_map *m, int64_t lo, int64_t hi, bool write, int src, int32_t idx) {
  uint32_t i = map_split(k, m, lo, hi);
  if (k->st) return;
  if (write) { /* every segment inside becomes one: written by src, read by nobody since */
    uint32_t j = i;
    while (j < m->n && m->seg[j].lo < hi) j++;
    kir_seg s;
    seg_fresh(&s, lo, hi);
    s.wsrc = (int8_t)src;
    s.widx = idx;
    if (j > i) {
      m->seg[i] = s;
      memmove(&m->seg[i + 1], &m->seg[j], (m->n - j) * sizeof *m->seg);
      m->n -= j - i - 1;
    } else {
      map_insert(k, m, i, &s);
    }
    return;
  }
  int64_t at = lo;
  while (at < hi && !k->st) { /* fill gaps, mark readers */
    if (i < m->n && m->seg[i].lo <= at) {
      m->seg[i].rd[src] = idx;
      at = m->seg[i].hi;
      i++;
      continue;
    }
    int64_t end = i < m->n && m->seg[i].lo < hi ? m->seg[i].lo : hi;
    kir_seg s;
    seg_fresh(&s, at, end);
    s.rd[src] = idx;
    if (!map_insert(k, m, i, &s)) return;
    i++;
    at = end;
  }
}

/* The accesses of an instruction: each AP operand's byte range (conservative for strided
** patterns: lowest to highest byte), read or written per the opcode table. */
typedef struct {
  const ot_ap *ap;
  bool write;
} kir_access;

static unsigned insn_accesses(const ot_insn *in, kir_access *acc) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  unsigned n = 0;
  for (unsigned o = 0; o < info->n_operands; o++) {
    const ot_operand_spec *sp = &info->operands[o];
    if (sp->role == OT_ROLE_N) continue;
    if (sp->kind == OT_OK_VAL && in->o[o].tag != OT_TAG_AP) continue;
    if (sp->kind != OT_OK_AP && sp->kind != OT_OK_VAL) continue;
    if (in->o[o].ap.mem == OT_MEM_NONE) continue;
    acc[n].ap = &in->o[o].ap;
    acc[n].write = sp->role == OT_ROLE_W || sp->role == OT_ROLE_WD;
    n++;
  }
  return n;
}

static bool access_range(kir *k, const ot_ap *ap, int64_t *lo, int64_t *hi) {
  if (!ot_ap_byte_range(ap, lo, hi)) {
    kir_fail(k, OT_EINVAL, "access pattern with a negative address");
    return false;
  }
  return true;
}

static void insn_needs(kir *k, const ot_insn *in, int32_t need[KIR_SRC_COUNT]) {
  kir_access acc[OT_MAX_OPERANDS];
  unsigned n = insn_accesses(in, acc);
  for (int s = 0; s < OT_ENG_COUNT; s++) need[s] = -1;
  for (int s = OT_ENG_COUNT; s < KIR_SRC_COUNT; s++) need[s] = 0;
  for (unsigned a = 0; a < n; a++) {
    int64_t lo, hi;
    if (access_range(k, acc[a].ap, &lo, &hi)) map_collect(map_of(k, acc[a].ap), lo, hi, acc[a].write, need);
  }
}

static void insn_record(kir *k, const ot_insn *in, int src, int32_t idx) {
  kir_access acc[OT_MAX_OPERANDS];
  unsigned n = insn_accesses(in, acc);
  for (unsigned a = 0; a < n; a++) { /* reads first: an in-place op ends as the writer */
    int64_t lo, hi;
    if (!acc[a].write && access_range(k, acc[a].ap, &lo, &hi)) map_record(k, map_of(k, acc[a].ap), lo, hi, false, src, idx);
  }
  for (unsigned a = 0; a < n; a++) {
    int64_t lo, hi;
    if (acc[a].write && access_range(k, acc[a].ap, &lo, &hi)) map_record(k, map_of(k, acc[a].ap), lo, hi, true, src, idx);
  }
}

/* ---- emitting ------------------------------------------------------------------------------ */
ot_status kir_place(kir *k, ot_engine e, const ot_insn *in) {
  if (k->st) return k->st;
  int32_t need[KIR_SRC_COUNT];
  insn_needs(k, in, need);
  engine_wait_all(k, (int)e, need);
  kir_entry *x = stream_push(k, (int)e);
  if (!x) return k->st;
  x->in = *in;
  int32_t idx = (int32_t)(k->eng[e].n - 1);
  k->stats.insns[e]++;
  insn_record(k, in, (int)e, idx);
  return k->st;
}

/* The engine that last wrote the bytes of ap (a store is issued there: no wait needed). */
static int last_writer_engine(kir *k, const ot_ap *ap) {
  int64_t lo, hi;
  if (!ot_ap_byte_range(ap, &lo, &hi)) return OT_ENG_SYNC;
  const kir_map *m = map_of(k, ap);
  int best = -1;
  for (uint32_t i = map_first(m, lo); i < m->n && m->seg[i].lo < hi; i++)
    if (m->seg[i].wsrc >= 0 && m->seg[i].wsrc < OT_ENG_COUNT) best = m->seg[i].wsrc;
  return best >= 0 ? best : OT_ENG_SYNC;
}

/* A transfer that must wait for everything so far on one of its issuer's queues goes on that
** queue: the queue's order then keeps the two apart and the issuing engine need not wait for the
** first to complete (the chunks a pass stores into the same rows one after another: their byte
** ranges overlap as ranges even where their bytes do not). */
static uint32_t dma_queue_affine(const kir *k, int e, const int32_t *need, uint32_t q) {
  for (uint32_t c = 0; c < k->q_count[e]; c++) {
    uint32_t qq = k->q_first[e] + c;
    if (need[SRC_QUEUE(qq)] > 0 && need[SRC_QUEUE(qq)] == (int32_t)k->queue[qq].n) return qq;
  }
  return q;
}

ot_status kir_place_dma(kir *k, const ot_insn *dma, ot_engine issuer) {
  if (k->st) return k->st;
  const ot_ap *dst = &dma->o[1].ap, *src = &dma->o[2].ap;
  int e = (int)issuer;
  if (issuer >= OT_ENG_COUNT) e = dst->mem == OT_MEM_HBM && src->mem != OT_MEM_HBM ? last_writer_engine(k, src) : OT_ENG_SYNC;
  uint32_t q = k->q_first[e] + k->q_next[e];
  int32_t need[KIR_SRC_COUNT];
  insn_needs(k, dma, need); /* (the accesses do not depend on the queue) */
  if (k->dma_lanes) q = k->q_first[e] + (dst->mem == OT_MEM_HBM && k->q_count[e] > 1 ? 1u : 0u);
  else {
    k->q_next[e] = (k->q_next[e] + 1) % k->q_count[e];
    q = dma_queue_affine(k, e, need, q);
  }
  kir_queue *Q = &k->queue[q];
  ot_insn in = *dma;
  in.o[0].i = (int32_t)q;
  bool indirect = in.op == OT_OP_DMA_GATHER || in.op == OT_OP_DMA_SCATTER_ADD;
  in.o[indirect ? 4 : 3].i = OT_ENG_COUNT + (int32_t)q; /* the queue's progress semaphore */
  need[SRC_QUEUE(q)] = 0; /* FIFO: the queue's earlier transfers complete first */
  /* ... in the order they were issued: after another engine's transfer, issue after it. */
  if (Q->last_eng >= 0 && Q->last_eng != e && Q->last_idx > need[Q->last_eng]) need[Q->last_eng] = Q->last_idx;
  engine_wait_all(k, e, need);
  kir_entry *x = stream_push(k, e);
  if (!x) return k->st;
  x->in = in;
  Q->last_eng = (int8_t)e;
  Q->last_idx = (int32_t)(k->eng[e].n - 1);
  int32_t (*vc)[KIR_SRC_COUNT] = grow(Q->vc, &Q->cap, Q->n + 1, sizeof *vc);
  if (!vc) return kir_fail(k, OT_ENOMEM, "out of memory");
  Q->vc = vc;
  memcpy(vc[Q->n], k->eng[e].vc, sizeof vc[Q->n]);
  vc[Q->n][e] = (int32_t)(k->eng[e].n - 1);
  if (Q->n > 0)
    for (int s = 0; s < KIR_SRC_COUNT; s++)
      if (vc[Q->n - 1][s] > vc[Q->n][s]) vc[Q->n][s] = vc[Q->n - 1][s];
  Q->n++;
  vc[Q->n - 1][SRC_QUEUE(q)] = (int32_t)Q->n;
  k->stats.dmas++;
  k->stats.insns[e]++;
  insn_record(k, &in, SRC_QUEUE(q), (int32_t)Q->n);
  return k->st;
}

/* ---- cross-core synchronisation ------------------------------------------------------------- */
ot_status kir_remote_signal(kir *k, ot_engine e, uint64_t cores_mask, uint32_t sem) {
  if (kir_flush(k) || k->st) return k->st;
  if (sem < kir_free_sem_base(k) || sem >= k->chip->seq.semaphores)
    return kir_fail(k, OT_EINVAL, "remote semaphore s%u: kir leaves s%u..s%u free", sem, kir_free_sem_base(k),
                    k->chip->seq.semaphores - 1);
  int32_t need[KIR_SRC_COUNT];
  for (int s = 0; s < OT_ENG_COUNT; s++) need[s] = (int32_t)k->eng[s].n - 1;
  for (uint32_t q = 0; q < k->queues; q++) need[SRC_QUEUE(q)] = (int32_t)k->queue[q].n;
  for (int s = OT_ENG_COUNT + (int)k->queues; s < KIR_SRC_COUNT; s++) need[s] = 0;
  engine_wait_all(k, (int)e, need);
  for (uint32_t c = 0; c < k->chip->cores_per_chip && c < 64 && !k->st; c++) {
    if (c == k->core || !(cores_mask >> c & 1)) continue;
    kir_entry *x = stream_push(k, (int)e);
    if (!x) break;
    ot_insn_init(&x->in, OT_OP_SEM_INC);
    x->in.o[0].i = (int32_t)sem;
    x->in.o[2].i = (int32_t)c;
    x->in.tag = k->tag;
    k->stats.insns[e]++;
  }
  return k->st;
}

ot_status kir_remote_wait(kir *k, ot_engine e, uint32_t sem, int32_t value, const ot_ap *aps, unsigned n) {
  if (kir_flush(k) || k->st) return k->st;
  if (sem < kir_free_sem_base(k) || sem >= k->chip->seq.semaphores)
    return kir_fail(k, OT_EINVAL, "remote semaphore s%u: kir leaves s%u..s%u free", sem, kir_free_sem_base(k),
                    k->chip->seq.semaphores - 1);
  kir_entry *x = stream_push(k, (int)e);
  if (!x) return k->st;
  ot_insn_init(&x->in, OT_OP_SEM_WAIT);
  x->in.o[0].i = (int32_t)sem;
  x->in.o[1].tag = OT_TAG_IMM;
  x->in.o[1].i = value;
  x->in.tag = k->tag;
  k->stats.insns[e]++;
  int32_t idx = (int32_t)(k->eng[e].n - 1);
  for (unsigned a = 0; a < n && !k->st; a++) {
    int64_t lo, hi;
    if (access_range(k, &aps[a], &lo, &hi)) map_record(k, map_of(k, &aps[a]), lo, hi, true, (int)e, idx);
  }
  return k->st;
}

/* ---- finishing ----------------------------------------------------------------------------- */
static ot_status stream_write(kir *k, int e, int32_t *const count[OT_ENG_COUNT]) {
  kir_engine *E = &k->eng[e];
  ot_stream *s = ot_program_stream(k->prog, k->core, (ot_engine)e);
  if (!s) return kir_fail(k, OT_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < E->n; i++) {
    kir_entry *x = &E->v[i];
    if (x->is_wait) {
      x->in.o[0].i = x->wsrc;
      x->in.o[1].tag = OT_TAG_IMM;
      x->in.o[1].i = src_is_queue(x->wsrc) ? x->widx : count[x->wsrc][x->widx];
    }
    if (ot_stream_append(s, &x->in) != OT_OK) return kir_fail(k, OT_ENOMEM, "out of memory");
    if (x->signal) {
      ot_insn inc;
      ot_insn_init(&inc, OT_OP_SEM_INC);
      inc.o[0].i = e;
      inc.o[1].i = 1;
      inc.tag = x->in.tag;
      if (ot_stream_append(s, &inc) != OT_OK) return kir_fail(k, OT_ENOMEM, "out of memory");
      k->stats.signals++;
    }
  }
  ot_insn halt;
  ot_insn_init(&halt, OT_OP_HALT);
  if (ot_stream_append(s, &halt) != OT_OK) return kir_fail(k, OT_ENOMEM, "out of memory");
  return OT_OK;
}

ot_status kir_finish(kir *k, ot_error *err) {
  kir_flush(k);
  kir_set_origin(k, "");
  for (uint32_t q = 0; q < k->queues && !k->st; q++) /* the program ends when every transfer has */
    if (k->queue[q].n) engine_wait(k, OT_ENG_SYNC, SRC_QUEUE(q), (int32_t)k->queue[q].n);
  int32_t *count[OT_ENG_COUNT] = {0};
  for (int e = 0; e < OT_ENG_COUNT && !k->st; e++) {
    kir_engine *E = &k->eng[e];
    count[e] = malloc(((size_t)E->n + 1) * sizeof(int32_t));
    if (!count[e]) { kir_fail(k, OT_ENOMEM, "out of memory"); break; }
    int32_t c = 0;
    for (uint32_t i = 0; i < E->n; i++) count[e][i] = c += E->v[i].signal;
  }
  for (int e = 0; e < OT_ENG_COUNT && !k->st; e++)
    if (k->eng[e].n) stream_write(k, e, count);
  for (int e = 0; e < OT_ENG_COUNT; e++) free(count[e]);
  if (k->st && err) ot_error_set(err, k->st, "%s", k->err.msg);
  return k->st;
}
