/* The event loop.  Each engine of each core runs its stream in order; the loop always advances
** the earliest thing that can happen next -- an engine ready to issue, or a DMA start or
** completion -- so time only moves forward and every run is deterministic.  Semaphores and
** barriers are the only cross-engine synchronisation.  See docs/simulator.md. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "isa/disasm.h"
#include "sim/sim.h"
#include "sim/sim_dma.h"
#include "sim/sim_race.h"

enum { ENG_READY, ENG_WAIT_SEM, ENG_WAIT_BARRIER, ENG_DONE };

typedef struct {
  uint32_t core;
  ot_engine id;
  const ot_stream *stream;   /* NULL: this engine has no program */
  uint32_t stream_index;
  uint32_t pc;
  int32_t *regs;
  int state;
  ot_ps t;                   /* in-order completion time of the last instruction */
  ot_ps blocked_since;
  uint32_t wait_sem;
  int64_t wait_value;
  bool was_idle;             /* the engine waited since its last data-path instruction */
  ot_view last_dst[2];       /* what the previous data-path instruction wrote */
  /* TensorE: LoadStationary overlaps the previous MultiplyMoving */
  ot_ps mm_start, ls_free, stat_ready;
  bool last_was_mm;
} sim_engine;

/* A remote semaphore increment in flight (sem_inc core=, dma_copy sem_core=): it lands on core's
** semaphore at `when`, sequencer.remote_sem_latency_ns after it was sent. */
typedef struct {
  ot_ps when;
  uint64_t seq;              /* send order: ties land in the order they were sent */
  uint32_t core, sem, from_core;
  int64_t delta;
  unsigned who;              /* the sending engine, or OT_SIGNAL_DMA */
  uint32_t *race_clock;      /* race checker: the sender's clock when it was sent (owned) */
} sim_remote;

struct ot_sim {
  const ot_chip *chip;
  const ot_program *prog;
  ot_sim_options opt;
  uint32_t cores;
  ot_hbm hbm;
  ot_core_state *core;
  sim_engine *eng;           /* [core * OT_ENG_COUNT + engine] */
  ot_ps *port_sbuf, *port_psum; /* per core: NC-v2 shared ports busy until */
  ot_dma dma;
  ot_rng rng;
  ot_sim_stats stats;
  ot_trace trace;
  uint32_t **names;          /* per stream: trace string of each instruction (0 = not yet) */
  ot_race *race;
  sim_remote *remote;        /* remote increments in flight (unordered; the earliest lands first) */
  uint32_t n_remote, cap_remote;
  uint64_t remote_seq;
  uint64_t executed;
  unsigned warnings;
  ot_error *err;             /* of the current run */
};

void ot_sim_options_default(ot_sim_options *o) {
  memset(o, 0, sizeof *o);
  o->mode = OT_SIM_FULL;
  o->timing = OT_TIMING_NEURON;
  o->uninit_is_error = true;
  o->seed = 1;
}

/* ---- set-up ------------------------------------------------------------------------------ */
static uint32_t program_cores(const ot_program *p) {
  uint32_t n = 1;
  for (uint32_t i = 0; i < p->n_streams; i++)
    if (p->streams[i].core + 1 > n) n = p->streams[i].core + 1;
  return n;
}

static ot_status alloc_stats(ot_sim *s, ot_error *err) {
  ot_sim_stats *st = &s->stats;
  st->cores = s->cores;
  st->queues = s->chip->dma.queues;
  st->semaphores = s->chip->seq.semaphores;
  st->eng = calloc((size_t)s->cores * OT_ENG_COUNT, sizeof *st->eng);
  st->queue = calloc((size_t)s->cores * st->queues, sizeof *st->queue);
  st->sem_signallers = calloc((size_t)s->cores * st->semaphores, sizeof *st->sem_signallers);
  st->sem_remote_from = calloc((size_t)s->cores * st->semaphores, sizeof *st->sem_remote_from);
  if (!st->eng || !st->queue || !st->sem_signallers || !st->sem_remote_from) return ot_error_set(err, OT_ENOMEM, "out of memory for statistics");
  for (size_t i = 0; i < (size_t)s->cores * OT_ENG_COUNT; i++)
    if (!(st->eng[i].idle_sem = calloc(st->semaphores, sizeof(ot_ps))))
      return ot_error_set(err, OT_ENOMEM, "out of memory for statistics");
  return ot_sim_stats_tags_init(st, s->prog, err);
}

static ot_status alloc_cores(ot_sim *s, ot_error *err) {
  const ot_chip *c = s->chip;
  s->core = calloc(s->cores, sizeof *s->core);
  s->eng = calloc((size_t)s->cores * OT_ENG_COUNT, sizeof *s->eng);
  s->port_sbuf = calloc(s->cores, sizeof(ot_ps));
  s->port_psum = calloc(s->cores, sizeof(ot_ps));
  if (!s->core || !s->eng || !s->port_sbuf || !s->port_psum) return ot_error_set(err, OT_ENOMEM, "out of memory");
  bool values = s->opt.mode != OT_SIM_TIMING;
  for (uint32_t k = 0; k < s->cores; k++) {
    ot_core_state *cs = &s->core[k];
    ot_status st;
    /* Timing-only runs keep no memory contents: models too large to compute still time. */
    if (values && ((st = ot_sram_init(&cs->sbuf, c->sbuf.partitions, c->sbuf.bytes_per_partition, false, err)) ||
                   (st = ot_sram_init(&cs->psum, c->psum.partitions, c->psum.bytes_per_partition, true, err))))
      return st;
    cs->sem = calloc(c->seq.semaphores, sizeof *cs->sem);
    cs->stationary = values ? calloc((size_t)c->tensor.rows * c->tensor.cols, sizeof(float)) : NULL;
    if (!cs->sem || (values && !cs->stationary)) return ot_error_set(err, OT_ENOMEM, "out of memory");
    for (unsigned e = 0; e < OT_ENG_COUNT; e++) {
      sim_engine *en = &s->eng[k * OT_ENG_COUNT + e];
      en->core = k;
      en->id = (ot_engine)e;
      en->state = ENG_DONE;
      en->was_idle = true;
      if (!(en->regs = calloc(c->seq.registers, sizeof *en->regs))) return ot_error_set(err, OT_ENOMEM, "out of memory");
    }
  }
  for (uint32_t i = 0; i < s->prog->n_streams; i++) {
    const ot_stream *st = &s->prog->streams[i];
    sim_engine *en = &s->eng[st->core * OT_ENG_COUNT + st->engine];
    en->stream = st;
    en->stream_index = i;
    en->state = st->n ? ENG_READY : ENG_DONE;
  }
  return OT_OK;
}

ot_status ot_sim_new(const ot_chip *chip, const ot_program *prog, const ot_sim_options *opt, ot_sim **out,
                     ot_error *err) {
  *out = NULL;
  ot_sim *s = calloc(1, sizeof *s);
  if (!s) return ot_error_set(err, OT_ENOMEM, "out of memory");
  s->chip = chip;
  s->prog = prog;
  if (opt) s->opt = *opt; else ot_sim_options_default(&s->opt);
  s->cores = program_cores(prog);
  ot_status st = OT_OK;
  if (s->cores > chip->cores_per_chip)
    st = ot_error_set(err, OT_EINVAL, "the program uses %u cores, chip %s has %u", s->cores, chip->name, chip->cores_per_chip);
  for (uint32_t i = 0; !st && i < prog->n_streams; i++)
    if (prog->streams[i].engine >= OT_ENG_COUNT) st = ot_error_set(err, OT_EINVAL, "stream %u: bad engine", i);
  if (!st) st = ot_hbm_init(&s->hbm, chip->hbm.bytes, err);
  if (!st) st = alloc_cores(s, err);
  if (!st) st = alloc_stats(s, err);
  if (!st) st = ot_dma_init(&s->dma, chip, s->cores, err);
  if (!st && !(s->names = calloc(prog->n_streams ? prog->n_streams : 1, sizeof *s->names)))
    st = ot_error_set(err, OT_ENOMEM, "out of memory");
  if (!st && s->opt.race_check) st = ot_race_new(chip, s->cores, &s->race, err);
  ot_rng_seed(&s->rng, s->opt.seed);
  if (st) { ot_sim_free(s); return st; }
  *out = s;
  return OT_OK;
}

void ot_sim_free(ot_sim *s) {
  if (!s) return;
  for (uint32_t k = 0; s->core && k < s->cores; k++) {
    ot_sram_free(&s->core[k].sbuf);
    ot_sram_free(&s->core[k].psum);
    free(s->core[k].sem);
    free(s->core[k].stationary);
  }
  for (size_t i = 0; s->eng && i < (size_t)s->cores * OT_ENG_COUNT; i++) free(s->eng[i].regs);
  for (size_t i = 0; s->stats.eng && i < (size_t)s->cores * OT_ENG_COUNT; i++) free(s->stats.eng[i].idle_sem);
  for (uint32_t i = 0; s->names && i < s->prog->n_streams; i++) free(s->names[i]);
  free(s->names);
  free(s->stats.eng);
  free(s->stats.queue);
  free(s->stats.sem_signallers);
  free(s->stats.sem_remote_from);
  for (uint32_t i = 0; i < s->n_remote; i++) free(s->remote[i].race_clock);
  free(s->remote);
  ot_sim_stats_tags_free(&s->stats);
  free(s->core);
  free(s->eng);
  free(s->port_sbuf);
  free(s->port_psum);
  ot_hbm_free(&s->hbm);
  ot_dma_free(&s->dma);
  ot_trace_free(&s->trace);
  ot_race_free(s->race);
  free(s);
}

ot_status ot_sim_hbm_write(ot_sim *s, uint64_t off, const void *src, uint64_t n, ot_error *err) {
  if (off > s->hbm.bytes || n > s->hbm.bytes - off)
    return ot_error_set(err, OT_ERANGE, "HBM write of %" PRIu64 " bytes at %" PRIu64 " is outside the %" PRIu64 "-byte HBM",
                        n, off, s->hbm.bytes);
  if (s->opt.mode == OT_SIM_TIMING) return OT_OK; /* no values kept */
  return ot_hbm_write(&s->hbm, off, src, n) ? ot_error_set(err, OT_ENOMEM, "out of memory for HBM pages") : OT_OK;
}

ot_status ot_sim_hbm_read(const ot_sim *s, uint64_t off, void *dst, uint64_t n, ot_error *err) {
  if (off > s->hbm.bytes || n > s->hbm.bytes - off)
    return ot_error_set(err, OT_ERANGE, "HBM read of %" PRIu64 " bytes at %" PRIu64 " is outside the %" PRIu64 "-byte HBM",
                        n, off, s->hbm.bytes);
  ot_hbm_read(&s->hbm, off, dst, n);
  return OT_OK;
}

bool ot_sim_hbm_written(const ot_sim *s, uint64_t off, uint64_t n) { return ot_hbm_written(&s->hbm, off, n); }

const ot_sim_stats *ot_sim_get_stats(const ot_sim *s) { return &s->stats; }
const ot_trace *ot_sim_get_trace(const ot_sim *s) { return &s->trace; }

/* ---- helpers ------------------------------------------------------------------------------ */
static ot_site site_of(const ot_sim *s, const sim_engine *e, uint32_t pc) {
  ot_site site = {s->prog, e->core, e->id, pc, e->stream && pc < e->stream->n ? &e->stream->insns[pc] : NULL};
  return site;
}

static ot_ps to_ps(const ot_sim *s, ot_engine e, uint64_t cycles) {
  return s->opt.mode == OT_SIM_FUNCTIONAL ? 0 : ot_cycles_to_ps(s->chip, e, cycles);
}

static ot_ps ns_to_ps(const ot_sim *s, double ns) {
  return s->opt.mode == OT_SIM_FUNCTIONAL ? 0 : (ot_ps)llround(ns * 1000.0);
}

static ot_engine_stats *estats(ot_sim *s, const sim_engine *e) { return &s->stats.eng[e->core * OT_ENG_COUNT + e->id]; }

/* Trace name of an instruction: its disassembly, formatted once per instruction. */
static uint32_t insn_name(ot_sim *s, const sim_engine *e, uint32_t pc) {
  uint32_t **names = &s->names[e->stream_index];
  if (!*names && !(*names = calloc(e->stream->n, sizeof **names))) return 0;
  if (!(*names)[pc]) {
    char buf[512];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) return 0;
    ot_insn_print(f, &e->stream->insns[pc], s->prog);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    (*names)[pc] = ot_trace_string(&s->trace, buf);
  }
  return (*names)[pc];
}

static void trace_event(ot_sim *s, uint32_t core, ot_track_kind tk, uint16_t track, ot_event_kind kind, ot_ps start,
                        ot_ps end, uint32_t name, uint32_t tag) {
  if (!s->opt.trace || end < start) return;
  /* tag is an offset in the program's string pool; the trace keeps its own pool */
  tag = tag && s->prog && tag < s->prog->strings_len ? ot_trace_string(&s->trace, ot_program_string(s->prog, tag)) : 0;
  ot_trace_event ev = {start, end - start, core, (uint8_t)tk, (uint8_t)kind, track, name, tag};
  ot_trace_add(&s->trace, &ev);
}

static void idle(ot_sim *s, sim_engine *e, ot_idle_reason why, ot_ps from, ot_ps to, int sem) {
  if (to <= from) return;
  ot_engine_stats *es = estats(s, e);
  es->idle[why] += to - from;
  if (sem >= 0) es->idle_sem[sem] += to - from;
  e->was_idle = true;
}

/* ---- semaphores and barriers -------------------------------------------------------------- */
static void wake_waiters(ot_sim *s, uint32_t core, uint32_t sem, ot_ps when) {
  for (unsigned i = 0; i < OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[core * OT_ENG_COUNT + i];
    if (e->state != ENG_WAIT_SEM || e->wait_sem != sem || s->core[core].sem[sem] < e->wait_value) continue;
    ot_ps resume = when + ns_to_ps(s, s->chip->seq.sem_latency_ns);
    if (resume < e->t) resume = e->t;
    idle(s, e, OT_IDLE_SEMAPHORE, e->blocked_since, resume, (int)sem);
    if (s->opt.trace) {
      char name[64];
      snprintf(name, sizeof name, "wait s%u >= %" PRId64, sem, e->wait_value);
      trace_event(s, core, OT_TRACK_ENGINE, (uint16_t)e->id, OT_EV_WAIT, e->blocked_since, resume,
                  ot_trace_string(&s->trace, name), 0);
    }
    if (s->race) ot_race_sem_acquire(s->race, ot_race_engine_thread(s->race, core, e->id), core, sem);
    e->t = resume;
    e->state = ENG_READY;
    e->pc++;
  }
}

/* who: the incrementing engine, or OT_SIGNAL_DMA for a DMA completion (for the statistics). */
static void sem_add(ot_sim *s, uint32_t core, uint32_t sem, int64_t delta, ot_ps when, uint32_t tid, unsigned who) {
  s->stats.sem_signallers[(size_t)core * s->stats.semaphores + sem] |= 1u << who;
  if (s->race) ot_race_sem_inc(s->race, tid, core, sem);
  s->core[core].sem[sem] += delta;
  wake_waiters(s, core, sem, when);
}

/* Send a remote increment of semaphore sem of core `to`: it lands remote_sem_latency_ns after
** `when`.  tid: the sending thread (its race clock is kept with the increment). */
static ot_status remote_send(ot_sim *s, uint32_t from, uint32_t to, uint32_t sem, int64_t delta, ot_ps when, uint32_t tid,
                             unsigned who) {
  if (s->n_remote == s->cap_remote) {
    uint32_t cap = s->cap_remote ? 2 * s->cap_remote : 16;
    sim_remote *r = realloc(s->remote, cap * sizeof *r);
    if (!r) return ot_error_set(s->err, OT_ENOMEM, "out of memory for remote semaphore increments");
    s->remote = r;
    s->cap_remote = cap;
  }
  sim_remote *r = &s->remote[s->n_remote];
  memset(r, 0, sizeof *r);
  if (s->race) {
    if (!(r->race_clock = malloc(ot_race_thread_count(s->race) * sizeof *r->race_clock)))
      return ot_error_set(s->err, OT_ENOMEM, "out of memory for the race checker");
    ot_race_clock_snapshot(s->race, tid, r->race_clock);
  }
  r->when = when + ns_to_ps(s, s->chip->seq.remote_sem_latency_ns);
  r->seq = s->remote_seq++;
  r->core = to;
  r->sem = sem;
  r->from_core = from;
  r->delta = delta;
  r->who = who;
  s->n_remote++;
  return OT_OK;
}

/* The remote increment that lands next (earliest, then first sent), or UINT32_MAX. */
static uint32_t remote_next(const ot_sim *s) {
  uint32_t best = UINT32_MAX;
  for (uint32_t i = 0; i < s->n_remote; i++)
    if (best == UINT32_MAX || s->remote[i].when < s->remote[best].when ||
        (s->remote[i].when == s->remote[best].when && s->remote[i].seq < s->remote[best].seq))
      best = i;
  return best;
}

static void remote_land(ot_sim *s, uint32_t i) {
  sim_remote r = s->remote[i];
  s->remote[i] = s->remote[--s->n_remote];
  size_t slot = (size_t)r.core * s->stats.semaphores + r.sem;
  s->stats.sem_signallers[slot] |= 1u << OT_SIGNAL_REMOTE;
  if (r.from_core < 64) s->stats.sem_remote_from[slot] |= 1ull << r.from_core;
  s->stats.remote_signals++;
  (void)r.who;
  if (s->race) ot_race_sem_release_clock(s->race, r.race_clock, r.core, r.sem);
  free(r.race_clock);
  s->core[r.core].sem[r.sem] += r.delta;
  wake_waiters(s, r.core, r.sem, r.when);
}

/* Release a barrier once every engine of the core with work left has reached it; when is the
** time of the event that may complete it (an arrival, or an engine halting). */
static void barrier_check(ot_sim *s, uint32_t core, ot_ps when) {
  ot_ps latest = when;
  uint32_t tids[OT_ENG_COUNT], n = 0;
  for (unsigned i = 0; i < OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[core * OT_ENG_COUNT + i];
    if (e->state == ENG_DONE) continue;
    if (e->state != ENG_WAIT_BARRIER) return;
    if (e->blocked_since > latest) latest = e->blocked_since;
  }
  for (unsigned i = 0; i < OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[core * OT_ENG_COUNT + i];
    if (e->state != ENG_WAIT_BARRIER) continue;
    idle(s, e, OT_IDLE_BARRIER, e->blocked_since, latest, -1);
    e->t = latest;
    e->state = ENG_READY;
    e->pc++;
    if (s->race) tids[n++] = ot_race_engine_thread(s->race, core, e->id);
  }
  if (s->race && n) ot_race_barrier(s->race, tids, n);
}

/* ---- control instructions ----------------------------------------------------------------- */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static ot_status runtime_error(ot_sim *s, const sim_engine *e, uint32_t pc, const char *fmt, ...) {
  char where[768], msg[512];
  ot_site site = site_of(s, e, pc);
  ot_site_format(&site, where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ot_error_set(s->err, OT_ERUNTIME, "%s: %s", where, msg);
}

static bool reg_ok(const ot_sim *s, int32_t r) { return r >= 0 && (uint32_t)r < s->chip->seq.registers; }

static ot_status check_regs(ot_sim *s, const sim_engine *e, const ot_insn *in) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand *o = &in->o[k];
    ot_operand_kind kind = info->operands[k].kind;
    if ((kind == OT_OK_REG || (kind == OT_OK_RI && o->tag == OT_TAG_REG)) && !reg_ok(s, o->i))
      return runtime_error(s, e, e->pc, "register r%d does not exist (r0..r%u)", o->i, s->chip->seq.registers - 1);
    if (kind == OT_OK_SEM && (o->i < 0 || (uint32_t)o->i >= s->chip->seq.semaphores))
      return runtime_error(s, e, e->pc, "semaphore s%d does not exist (s0..s%u)", o->i, s->chip->seq.semaphores - 1);
    if (kind == OT_OK_LABEL && (o->i < 0 || (uint32_t)o->i > e->stream->n))
      return runtime_error(s, e, e->pc, "branch target %d outside the stream (0..%u)", o->i, e->stream->n);
    if (kind == OT_OK_CORE && o->i != OT_CORE_SELF && (o->i < 0 || (uint32_t)o->i >= s->cores))
      return runtime_error(s, e, e->pc, "core %d does not run in this program (cores 0..%u)", o->i, s->cores - 1);
    if (kind == OT_OK_QUEUE && (o->i < 0 || (uint32_t)o->i >= s->chip->dma.queues))
      return runtime_error(s, e, e->pc, "DMA queue q%d does not exist (q0..q%u)", o->i, s->chip->dma.queues - 1);
  }
  return OT_OK;
}

static int32_t ri_value(const sim_engine *e, const ot_operand *o) { return o->tag == OT_TAG_REG ? e->regs[o->i] : o->i; }

/* 32-bit register arithmetic wraps (two's complement); shifts use the low 5 bits. */
static bool reg_alu(int op, int32_t a, int32_t b, int32_t *out) {
  uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
  switch (op) {
  case OT_ALU_ADD: *out = (int32_t)(ua + ub); return true;
  case OT_ALU_SUB: *out = (int32_t)(ua - ub); return true;
  case OT_ALU_MUL: *out = (int32_t)(ua * ub); return true;
  case OT_ALU_MIN: *out = a < b ? a : b; return true;
  case OT_ALU_MAX: *out = a > b ? a : b; return true;
  case OT_ALU_AND: *out = (int32_t)(ua & ub); return true;
  case OT_ALU_OR: *out = (int32_t)(ua | ub); return true;
  case OT_ALU_XOR: *out = (int32_t)(ua ^ ub); return true;
  case OT_ALU_SHL: *out = (int32_t)(ua << (ub & 31)); return true;
  case OT_ALU_SHR: *out = (int32_t)(ua >> (ub & 31)); return true;
  default: return false;
  }
}

static bool reg_cmp(int op, int32_t a, int32_t b, bool *out) {
  switch (op) {
  case OT_ALU_EQ: *out = a == b; return true;
  case OT_ALU_NE: *out = a != b; return true;
  case OT_ALU_LT: *out = a < b; return true;
  case OT_ALU_LE: *out = a <= b; return true;
  case OT_ALU_GT: *out = a > b; return true;
  case OT_ALU_GE: *out = a >= b; return true;
  default: return false;
  }
}

static void block(sim_engine *e, int state) {
  e->state = state;
  e->blocked_since = e->t;
}

static ot_status step_control(ot_sim *s, sim_engine *e, const ot_insn *in) {
  ot_ps end = e->t + to_ps(s, e->id, s->chip->seq.control_cycles);
  const ot_operand *o = in->o;
  uint32_t core = e->core, next = e->pc + 1;
  uint32_t tid = s->race ? ot_race_engine_thread(s->race, core, e->id) : 0;
  bool taken;
  int32_t v;
  switch ((ot_opcode)in->op) {
  case OT_OP_HALT:
    e->state = ENG_DONE;
    barrier_check(s, core, end); /* engines waiting at a barrier no longer wait for this one */
    break;
  case OT_OP_SEM_WAIT:
    e->wait_sem = (uint32_t)o[0].i;
    e->wait_value = ri_value(e, &o[1]);
    if (s->core[core].sem[e->wait_sem] >= e->wait_value) {
      if (s->race) ot_race_sem_acquire(s->race, tid, core, e->wait_sem);
      break;
    }
    block(e, ENG_WAIT_SEM);
    return OT_OK;
  case OT_OP_SEM_INC:
    if (o[2].i != OT_CORE_SELF && (uint32_t)o[2].i != core) {
      ot_status st = remote_send(s, core, (uint32_t)o[2].i, (uint32_t)o[0].i, o[1].i, end, tid, e->id);
      if (st) return st;
    } else {
      sem_add(s, core, (uint32_t)o[0].i, o[1].i, end, tid, e->id);
    }
    break;
  case OT_OP_SEM_SET: sem_add(s, core, (uint32_t)o[0].i, (int64_t)o[1].i - s->core[core].sem[o[0].i], end, tid, e->id); break;
  case OT_OP_BARRIER:
    block(e, ENG_WAIT_BARRIER);
    barrier_check(s, core, e->t);
    return OT_OK;
  case OT_OP_REG_SET: e->regs[o[0].i] = o[1].i; break;
  case OT_OP_REG_OP:
    if (!reg_alu(o[2].i, e->regs[o[1].i], ri_value(e, &o[3]), &v))
      return runtime_error(s, e, e->pc, "'%s' is not a register operation", ot_alu_name(o[2].i));
    e->regs[o[0].i] = v;
    break;
  case OT_OP_BR: next = (uint32_t)o[0].i; break;
  case OT_OP_BR_IF:
    if (!reg_cmp(o[1].i, e->regs[o[0].i], ri_value(e, &o[2]), &taken))
      return runtime_error(s, e, e->pc, "'%s' is not a comparison", ot_alu_name(o[1].i));
    if (taken) next = (uint32_t)o[3].i;
    break;
  case OT_OP_LOOP:
    e->regs[o[0].i] = (int32_t)((uint32_t)e->regs[o[0].i] - 1u);
    if (e->regs[o[0].i] > 0) next = (uint32_t)o[1].i;
    break;
  default: break; /* nop */
  }
  estats(s, e)->busy += end - e->t;
  estats(s, e)->busy_cycles += s->chip->seq.control_cycles;
  ot_sim_stats_tag_add(&s->stats, in->tag, e->id, e->t, end);
  trace_event(s, core, OT_TRACK_ENGINE, (uint16_t)e->id, OT_EV_INSN, e->t, end, insn_name(s, e, e->pc), in->tag);
  e->t = end;
  e->pc = next;
  return OT_OK;
}

/* ---- DMA ---------------------------------------------------------------------------------- */
static ot_status step_dma(ot_sim *s, sim_engine *e, const ot_insn *in) {
  ot_site site = site_of(s, e, e->pc);
  ot_dma_xfer x;
  memset(&x, 0, sizeof x);
  if (ot_view_resolve(&x.dst, &in->o[1].ap, e->regs, s->chip, &site, s->err) ||
      ot_view_resolve(&x.src, &in->o[2].ap, e->regs, s->chip, &site, s->err))
    return OT_ERUNTIME;
  bool indirect = ot_dma_is_indirect(in->op);
  if (indirect) { /* dma_gather / dma_scatter_add: q, dst, src, idx, sem */
    char msg[320];
    if (ot_view_resolve(&x.idx, &in->o[3].ap, e->regs, s->chip, &site, s->err)) return OT_ERUNTIME;
    if (!ot_dma_indirect_shape(in->op, &x.dst, &x.src, &x.idx, msg, sizeof msg))
      return runtime_error(s, e, e->pc, "%s", msg);
  } else {
    uint64_t nd = (uint64_t)x.dst.parts * x.dst.free_elems, ns = (uint64_t)x.src.parts * x.src.free_elems;
    if (nd != ns) return runtime_error(s, e, e->pc, "DMA moves %" PRIu64 " elements into %" PRIu64, ns, nd);
  }
  ot_ps issue_end = e->t + ns_to_ps(s, s->chip->dma.issue_ns);
  x.core = e->core;
  x.queue = (uint32_t)in->o[0].i;
  x.sem = (uint32_t)in->o[indirect ? 4 : 3].i;
  x.sem_core = in->op == OT_OP_DMA_COPY && in->o[4].i != OT_CORE_SELF ? (uint32_t)in->o[4].i : e->core;
  x.stream = e->stream_index;
  x.pc = e->pc;
  x.ready = issue_end + ns_to_ps(s, s->chip->dma.start_latency_ns);
  x.remaining = indirect ? ot_dma_indirect_cost(s->chip, in->op, &x.dst, &x.src, &x.idx, &x.bytes)
                         : ot_dma_cost_bytes(s->chip, &x.dst, &x.src, &x.bytes);
  if (s->opt.mode == OT_SIM_FUNCTIONAL) x.remaining = 0;
  x.hbm = x.dst.mem == OT_MEM_HBM || x.src.mem == OT_MEM_HBM;
  if (s->race) {
    /* The transfer is ordered after what its issuer did before the trigger: keep that clock. */
    x.race_clock = malloc(ot_race_thread_count(s->race) * sizeof *x.race_clock);
    if (!x.race_clock) return ot_error_set(s->err, OT_ENOMEM, "out of memory for the race checker");
    ot_race_clock_snapshot(s->race, ot_race_engine_thread(s->race, e->core, e->id), x.race_clock);
  }
  if (ot_dma_push(&s->dma, &x) == UINT32_MAX) {
    free(x.race_clock);
    return ot_error_set(s->err, OT_ENOMEM, "out of memory for DMA transfers");
  }
  estats(s, e)->busy += issue_end - e->t;
  ot_sim_stats_tag_add(&s->stats, in->tag, e->id, e->t, issue_end);
  estats(s, e)->busy_cycles += (uint64_t)llround(s->chip->dma.issue_ns * s->chip->eng[e->id].clock_ghz);
  trace_event(s, e->core, OT_TRACK_ENGINE, (uint16_t)e->id, OT_EV_INSN, e->t, issue_end, insn_name(s, e, e->pc), in->tag);
  e->t = issue_end;
  e->pc++;
  return OT_OK;
}

static ot_exec_ctx exec_ctx(ot_sim *s, uint32_t core, const int32_t *regs, const ot_site *site) {
  ot_exec_ctx x;
  memset(&x, 0, sizeof x);
  x.chip = s->chip;
  x.mem.core = &s->core[core];
  x.mem.hbm = &s->hbm;
  x.regs = regs;
  x.cvt.round = s->opt.stochastic_rounding ? OT_ROUND_STOCHASTIC : OT_ROUND_NEAREST_EVEN;
  x.cvt.rng = &s->rng;
  x.site = site;
  x.err = s->err;
  x.check_uninit = s->opt.uninit_is_error;
  x.warnings = &s->warnings;
  x.trap_nonfinite = s->opt.trap_nonfinite;
  return x;
}

static ot_status complete_dma(ot_sim *s, uint32_t idx, ot_ps now) {
  ot_dma_xfer *x = &s->dma.x[idx];
  const ot_stream *st = &s->prog->streams[x->stream];
  const ot_insn *in = &st->insns[x->pc];
  ot_site site = {s->prog, x->core, (ot_engine)st->engine, x->pc, in};
  uint32_t qtid = s->race ? ot_race_queue_thread(s->race, x->core, x->queue) : 0;
  if (s->race) {
    ot_race_clock_acquire(s->race, qtid, x->race_clock);
    free(x->race_clock);
    x->race_clock = NULL;
  }
  if (s->opt.mode != OT_SIM_TIMING) {
    ot_exec_ctx ctx = exec_ctx(s, x->core, NULL, &site);
    bool indirect = x->idx.mem != OT_MEM_NONE;
    if (ot_exec_dma_views(&ctx, in, &x->dst, &x->src, indirect ? &x->idx : NULL)) return OT_ERUNTIME;
    if (s->race) {
      /* Indirect DMA: conservatively the whole table pattern (every row an index could name). */
      ot_mem_ctx m = {&s->core[x->core], &s->hbm};
      if (indirect) ot_race_access(s->race, qtid, &m, &x->idx, false, &site, s->err);
      ot_race_access(s->race, qtid, &m, &x->src, false, &site, s->err);
      if (in->op == OT_OP_DMA_SCATTER_ADD) ot_race_access(s->race, qtid, &m, &x->dst, false, &site, s->err);
      ot_race_access(s->race, qtid, &m, &x->dst, true, &site, s->err);
    }
  }
  ot_queue_stats *q = &s->stats.queue[x->core * s->stats.queues + x->queue];
  q->transfers++;
  q->bytes += x->bytes;
  q->busy += now - x->start;
  ot_sim_stats_tag_add(&s->stats, in->tag, OT_ENG_COUNT, x->start, now);
  /* each side in its own type (a converting copy reads 4-byte and writes 2-byte elements); the
  ** queue's bytes above are the transfer's cost bytes, the wider type */
  bool indirect_x = x->idx.mem != OT_MEM_NONE;
  s->stats.mem[x->src.mem].read += indirect_x ? x->bytes : (uint64_t)x->src.parts * x->src.free_elems * x->src.esize;
  s->stats.mem[x->dst.mem].written += indirect_x ? x->bytes : (uint64_t)x->dst.parts * x->dst.free_elems * x->dst.esize;
  if (s->opt.trace) {
    const sim_engine *issuer = &s->eng[x->core * OT_ENG_COUNT + st->engine];
    trace_event(s, x->core, OT_TRACK_QUEUE, (uint16_t)x->queue, OT_EV_DMA, x->start, now, insn_name(s, issuer, x->pc), in->tag);
  }
  if (x->sem_core != x->core) return remote_send(s, x->core, x->sem_core, x->sem, 1, now, qtid, OT_SIGNAL_DMA);
  sem_add(s, x->core, x->sem, 1, now, qtid, OT_SIGNAL_DMA);
  return OT_OK;
}

/* ---- data-path instructions --------------------------------------------------------------- */
static bool views_overlap(const ot_view *a, const ot_view *b) {
  if (a->mem == OT_MEM_NONE || a->mem != b->mem) return false;
  if (a->mem != OT_MEM_HBM &&
      (a->part_start >= b->part_start + b->parts || b->part_start >= a->part_start + a->parts))
    return false;
  /* byte extents within a partition (or in HBM) */
  int64_t alo = (int64_t)a->offset, ahi = alo + (int64_t)a->esize, blo = (int64_t)b->offset, bhi = blo + (int64_t)b->esize;
  for (unsigned d = 0; d < a->ndim; d++) {
    int64_t span = a->stride[d] * (int64_t)(a->size[d] ? a->size[d] - 1 : 0);
    if (span < 0) alo += span; else ahi += span;
  }
  for (unsigned d = 0; d < b->ndim; d++) {
    int64_t span = b->stride[d] * (int64_t)(b->size[d] ? b->size[d] - 1 : 0);
    if (span < 0) blo += span; else bhi += span;
  }
  return alo < bhi && blo < ahi;
}

/* The previous data-path instruction of this engine wrote something this one reads: the
** dependent-chain static overhead applies. */
static bool depends_on_previous(const sim_engine *e, const ot_insn *in, const ot_view *v) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  for (unsigned k = 0; k < info->n_operands; k++) {
    if (info->operands[k].role != OT_ROLE_R) continue;
    for (unsigned j = 0; j < 2; j++)
      if (views_overlap(&v[k], &e->last_dst[j])) return true;
  }
  return false;
}

static ot_status resolve_operands(ot_sim *s, sim_engine *e, const ot_insn *in, ot_view *v) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  ot_site site = site_of(s, e, e->pc);
  memset(v, 0, sizeof(ot_view) * OT_MAX_OPERANDS);
  for (unsigned k = 0; k < info->n_operands; k++) {
    const ot_operand *o = &in->o[k];
    bool is_ap = info->operands[k].kind == OT_OK_AP || (info->operands[k].kind == OT_OK_VAL && o->tag == OT_TAG_AP);
    if (!is_ap || o->ap.mem == OT_MEM_NONE) continue;
    if (ot_view_resolve(&v[k], &o->ap, e->regs, s->chip, &site, s->err)) return OT_ERUNTIME;
  }
  return OT_OK;
}

static bool touches(const ot_view *v, ot_mem m) {
  for (unsigned k = 0; k < OT_MAX_OPERANDS; k++) if (v[k].mem == m) return true;
  return false;
}

/* NC-v2 shared ports: VectorE and GpSimdE share SBUF access, VectorE and ScalarE share PSUM. */
static ot_ps port_wait(ot_sim *s, const sim_engine *e, const ot_view *v, ot_ps start) {
  const ot_chip *c = s->chip;
  bool sb = c->ports.vector_gpsimd_share_sbuf && (e->id == OT_ENG_VECTOR || e->id == OT_ENG_GPSIMD) && touches(v, OT_MEM_SBUF);
  bool ps = c->ports.vector_scalar_share_psum && (e->id == OT_ENG_VECTOR || e->id == OT_ENG_SCALAR) && touches(v, OT_MEM_PSUM);
  if (sb && s->port_sbuf[e->core] > start) start = s->port_sbuf[e->core];
  if (ps && s->port_psum[e->core] > start) start = s->port_psum[e->core];
  return start;
}

static void port_hold(ot_sim *s, const sim_engine *e, const ot_view *v, ot_ps end) {
  const ot_chip *c = s->chip;
  if (c->ports.vector_gpsimd_share_sbuf && (e->id == OT_ENG_VECTOR || e->id == OT_ENG_GPSIMD) && touches(v, OT_MEM_SBUF))
    s->port_sbuf[e->core] = end;
  if (c->ports.vector_scalar_share_psum && (e->id == OT_ENG_VECTOR || e->id == OT_ENG_SCALAR) && touches(v, OT_MEM_PSUM))
    s->port_psum[e->core] = end;
}

/* When the instruction starts and ends.  TensorE's LoadStationary runs in the background during
** the previous MultiplyMoving (not under the SCALE-Sim model, which does not overlap loads). */
static void schedule(ot_sim *s, sim_engine *e, const ot_insn *in, const ot_view *v, ot_ps dur, ot_ps *start, ot_ps *end) {
  bool overlap = s->opt.timing == OT_TIMING_NEURON;
  if (in->op == OT_OP_LDWEIGHTS) {
    ot_ps from = overlap && e->last_was_mm ? e->mm_start : e->t;
    *start = from > e->ls_free ? from : e->ls_free;
    *end = *start + dur;
    e->ls_free = e->stat_ready = *end;
    return;
  }
  *start = e->t;
  if (in->op == OT_OP_MATMUL && e->stat_ready > *start) *start = e->stat_ready;
  ot_ps ported = port_wait(s, e, v, *start);
  idle(s, e, OT_IDLE_PORT, *start, ported, -1);
  *start = ported;
  *end = *start + dur;
  port_hold(s, e, v, *end);
}

static void account(ot_sim *s, sim_engine *e, const ot_insn *in, const ot_view *v, const ot_cost *c, ot_ps start, ot_ps end) {
  ot_engine_stats *es = estats(s, e);
  const ot_opcode_info *info = &ot_opcodes[in->op];
  /* A hidden LoadStationary adds only the part of it that sticks out past the engine's time. */
  ot_ps busy = in->op == OT_OP_LDWEIGHTS ? (end > e->t ? end - (start > e->t ? start : e->t) : 0) : end - start;
  es->busy += busy;
  es->busy_cycles += c->cycles;
  ot_sim_stats_tag_add(&s->stats, in->tag, e->id, end - busy, end);
  if (c->is_transpose_flops) s->stats.transpose_flops += c->flops;
  else s->stats.model_flops += c->flops;
  for (unsigned k = 0; k < info->n_operands; k++) {
    if (v[k].mem == OT_MEM_NONE) continue;
    uint64_t bytes = (uint64_t)v[k].parts * v[k].free_elems * v[k].esize;
    if (info->operands[k].role == OT_ROLE_W) s->stats.mem[v[k].mem].written += bytes;
    else s->stats.mem[v[k].mem].read += bytes;
  }
}

static ot_status run_values(ot_sim *s, sim_engine *e, const ot_insn *in, const ot_view *v) {
  ot_site site = site_of(s, e, e->pc);
  ot_exec_ctx x = exec_ctx(s, e->core, e->regs, &site);
  if (ot_exec_insn(&x, in)) return OT_ERUNTIME;
  if (s->race) {
    const ot_opcode_info *info = &ot_opcodes[in->op];
    uint32_t tid = ot_race_engine_thread(s->race, e->core, e->id);
    for (unsigned k = 0; k < info->n_operands; k++)
      if (v[k].mem != OT_MEM_NONE)
        ot_race_access(s->race, tid, &x.mem, &v[k], info->operands[k].role == OT_ROLE_W, &site, s->err);
  }
  return OT_OK;
}

static void remember_writes(sim_engine *e, const ot_insn *in, const ot_view *v) {
  const ot_opcode_info *info = &ot_opcodes[in->op];
  unsigned n = 0;
  memset(e->last_dst, 0, sizeof e->last_dst);
  for (unsigned k = 0; k < info->n_operands && n < 2; k++)
    if (info->operands[k].role == OT_ROLE_W && v[k].mem != OT_MEM_NONE) e->last_dst[n++] = v[k];
}

static ot_status step_datapath(ot_sim *s, sim_engine *e, const ot_insn *in) {
  ot_view v[OT_MAX_OPERANDS];
  if (resolve_operands(s, e, in, v)) return OT_ERUNTIME;
  ot_core_state *cs = &s->core[e->core];
  if (in->op == OT_OP_LDWEIGHTS) { cs->stat_k = v[0].parts; cs->stat_m = (uint32_t)v[0].free_elems; }
  ot_cost c = ot_cost_insn(s->chip, e->id, in, v, cs, s->opt.timing);
  const ot_engine_desc *ed = &s->chip->eng[e->id];
  if (s->opt.timing == OT_TIMING_NEURON) {
    if (depends_on_previous(e, in, v)) c.cycles += ed->fixed_overhead;
    if (e->was_idle) c.cycles += ed->access_start;
  }
  ot_ps start, end;
  schedule(s, e, in, v, to_ps(s, e->id, c.cycles), &start, &end);
  if (s->opt.mode != OT_SIM_TIMING && run_values(s, e, in, v)) return OT_ERUNTIME;
  account(s, e, in, v, &c, start, end);
  trace_event(s, e->core, OT_TRACK_ENGINE, (uint16_t)e->id, OT_EV_INSN, start, end, insn_name(s, e, e->pc), in->tag);
  remember_writes(e, in, v);
  e->last_was_mm = in->op == OT_OP_MATMUL;
  if (in->op == OT_OP_MATMUL) e->mm_start = start;
  if (end > e->t) e->t = end;
  e->was_idle = false;
  e->pc++;
  return OT_OK;
}

static ot_status step(ot_sim *s, sim_engine *e) {
  if (e->pc >= e->stream->n) { /* end of stream = halt */
    e->state = ENG_DONE;
    barrier_check(s, e->core, e->t);
    return OT_OK;
  }
  const ot_insn *in = &e->stream->insns[e->pc];
  if (in->op >= OT_OP_COUNT) return runtime_error(s, e, e->pc, "unknown opcode %u", in->op);
  if (!(ot_opcodes[in->op].engines & OT_ENG_BIT(e->id)))
    return runtime_error(s, e, e->pc, "%s is not an instruction of %s", ot_opcodes[in->op].mnemonic, ot_engine_name(e->id));
  if (check_regs(s, e, in)) return OT_ERUNTIME;
  estats(s, e)->insns++;
  estats(s, e)->insn_by_op[in->op]++;
  ot_cost_class cc = ot_opcodes[in->op].cost;
  if (cc == OT_COST_CTRL || cc == OT_COST_WAIT) return step_control(s, e, in);
  if (cc == OT_COST_DMA || cc == OT_COST_DMA_INDIRECT) return step_dma(s, e, in);
  return step_datapath(s, e, in);
}

/* ---- the loop ----------------------------------------------------------------------------- */
static sim_engine *next_engine(ot_sim *s) {
  sim_engine *best = NULL;
  for (size_t i = 0; i < (size_t)s->cores * OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[i];
    if (e->state == ENG_READY && (!best || e->t < best->t)) best = e;
  }
  return best;
}

static ot_status report_deadlock(ot_sim *s, ot_ps now) {
  ot_error_set(s->err, OT_ERUNTIME, "deadlock at %.3f us: no engine can proceed and no DMA is in flight", now / 1e6);
  for (size_t i = 0; i < (size_t)s->cores * OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[i];
    if (e->state != ENG_WAIT_SEM && e->state != ENG_WAIT_BARRIER) continue;
    char where[768];
    ot_site site = site_of(s, e, e->pc);
    ot_site_format(&site, where, sizeof where);
    if (e->state == ENG_WAIT_SEM)
      ot_error_set(s->err, OT_ERUNTIME, "  %s waits for s%u >= %" PRId64 " (s%u = %" PRId64 ")", where, e->wait_sem,
                   e->wait_value, e->wait_sem, s->core[e->core].sem[e->wait_sem]);
    else
      ot_error_set(s->err, OT_ERUNTIME, "  %s waits at a barrier for engines that will never reach it", where);
  }
  for (uint32_t k = 0; k < s->cores; k++) {
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof line, "  semaphores of core %u:", k);
    for (uint32_t j = 0; j < s->chip->seq.semaphores && n < sizeof line - 32; j++)
      if (s->core[k].sem[j]) n += (size_t)snprintf(line + n, sizeof line - n, " s%u=%" PRId64, j, s->core[k].sem[j]);
    ot_error_set(s->err, OT_ERUNTIME, "%s%s", line, strchr(line, '=') ? "" : " all 0");
  }
  return OT_ERUNTIME;
}

static ot_status report_runaway(ot_sim *s, uint64_t budget) {
  ot_error_set(s->err, OT_ERUNTIME, "runaway: the instruction budget of %" PRIu64 " is exhausted (raise it with --budget)", budget);
  for (size_t i = 0; i < (size_t)s->cores * OT_ENG_COUNT; i++) {
    sim_engine *e = &s->eng[i];
    if (e->state == ENG_DONE || !e->stream) continue;
    char where[768];
    ot_site site = site_of(s, e, e->pc);
    ot_site_format(&site, where, sizeof where);
    ot_error_set(s->err, OT_ERUNTIME, "  %s (%" PRIu64 " instructions executed)", where, estats(s, e)->insns);
  }
  return OT_ERUNTIME;
}

static void finish_stats(ot_sim *s, ot_ps total) {
  ot_sim_stats *st = &s->stats;
  st->total = total;
  st->warnings = s->warnings;
  uint32_t used = 0;
  ot_ps tensor_busy = 0;
  for (uint32_t k = 0; k < s->cores; k++) {
    bool any = false;
    for (unsigned i = 0; i < OT_ENG_COUNT; i++) {
      sim_engine *e = &s->eng[k * OT_ENG_COUNT + i];
      if (!e->stream) continue;
      any = true;
      idle(s, e, OT_IDLE_DONE, e->t, total, -1);
    }
    used += any;
    tensor_busy += st->eng[k * OT_ENG_COUNT + OT_ENG_TENSOR].busy;
  }
  if (!used || !total) return;
  double seconds = total * 1e-12 * used;
  double peak = s->chip->tensor.rows * (double)s->chip->tensor.cols * 2.0 * s->chip->eng[OT_ENG_TENSOR].clock_ghz * 1e9;
  double hbm_bw = s->chip->hbm.bandwidth_gbps * 1e9 / s->chip->cores_per_chip;
  st->mfu = st->model_flops / (peak * seconds);
  st->hfu = (st->model_flops + st->transpose_flops) / (peak * seconds);
  st->mbu = (st->mem[OT_MEM_HBM].read + st->mem[OT_MEM_HBM].written) / (hbm_bw * seconds);
  st->tensor_util = (double)tensor_busy / ((double)total * used);
}

ot_status ot_sim_run(ot_sim *s, ot_error *err) {
  s->err = err;
  if (s->opt.mode != OT_SIM_TIMING && ot_hbm_track_writes(&s->hbm)) return ot_error_set(err, OT_ENOMEM, "out of memory");
  uint64_t budget = s->opt.insn_budget ? s->opt.insn_budget : 100000000ull;
  size_t cap = (size_t)s->cores * s->chip->dma.queues;
  uint32_t *done = malloc(cap * sizeof *done);
  if (!done) return ot_error_set(err, OT_ENOMEM, "out of memory");
  ot_ps now = 0;
  ot_status st = OT_OK;
  for (;;) {
    sim_engine *e = next_engine(s);
    ot_ps tdma = ot_dma_next_event(&s->dma);
    uint32_t ri = remote_next(s);
    ot_ps trem = ri == UINT32_MAX ? UINT64_MAX : s->remote[ri].when;
    if (!e && tdma == UINT64_MAX && trem == UINT64_MAX) break;
    /* Ties: DMA events, then remote semaphore increments landing, then engines. */
    if (trem != UINT64_MAX && trem < tdma && (!e || trem <= e->t)) {
      now = trem;
      remote_land(s, ri);
      continue;
    }
    if (tdma != UINT64_MAX && (!e || tdma <= e->t)) {
      now = tdma;
      uint32_t n = ot_dma_advance(&s->dma, tdma, done, (uint32_t)cap);
      for (uint32_t i = 0; i < n && !st; i++) st = complete_dma(s, done[i], tdma);
      if (st) break;
      continue;
    }
    if (e->t > now) now = e->t;
    if (s->executed == budget) { st = report_runaway(s, budget); break; }
    if ((st = step(s, e))) break;
    s->executed++;
  }
  free(done);
  if (st) return st;
  for (size_t i = 0; i < (size_t)s->cores * OT_ENG_COUNT; i++) {
    if (s->eng[i].state == ENG_WAIT_SEM || s->eng[i].state == ENG_WAIT_BARRIER) return report_deadlock(s, now);
    if (s->eng[i].t > now) now = s->eng[i].t;
  }
  finish_stats(s, now);
  return OT_OK;
}
