/* Statistics of a run, for people (a table) and for programs (JSON; docs/runtime.md names every
** field).  The event loop fills ot_sim_stats; this file only presents it, so the two forms
** cannot disagree: both read the same numbers through the same helpers. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

static const char *const idle_names[OT_IDLE_COUNT] = {
#define OT_X(id, name) name,
  OT_IDLE_MAP(OT_X)
#undef OT_X
};

static const char *const idle_ids[OT_IDLE_COUNT] = {
#define OT_X(id, name) #id,
  OT_IDLE_MAP(OT_X)
#undef OT_X
};

const char *ot_idle_reason_name(ot_idle_reason r) {
  return (unsigned)r < OT_IDLE_COUNT ? idle_names[r] : "?";
}

/* JSON key of an idle reason: its id in lower case ("semaphore", "barrier", ...). */
static void idle_key(ot_idle_reason r, char *buf, size_t cap) {
  size_t i = 0;
  for (const char *p = idle_ids[r]; *p && i + 1 < cap; p++) buf[i++] = (char)tolower((unsigned char)*p);
  buf[i] = '\0';
}

static double percent(ot_ps part, ot_ps total) { return total ? 100.0 * (double)part / (double)total : 0.0; }

static uint64_t total_insns(const ot_sim_stats *s) {
  uint64_t n = 0;
  for (size_t i = 0; s->eng && i < (size_t)s->cores * OT_ENG_COUNT; i++) n += s->eng[i].insns;
  return n;
}

/* The `max` semaphores an engine waited on longest, longest first; returns how many. */
static unsigned top_semaphores(const ot_sim_stats *s, const ot_engine_stats *e, uint32_t *sem, unsigned max) {
  unsigned n = 0;
  for (uint32_t k = 0; e->idle_sem && k < s->semaphores; k++) {
    ot_ps v = e->idle_sem[k];
    if (!v || (n == max && v <= e->idle_sem[sem[max - 1]])) continue;
    unsigned j = n < max ? n++ : max - 1; /* insertion sort into the kept few */
    while (j > 0 && e->idle_sem[sem[j - 1]] < v) {
      sem[j] = sem[j - 1];
      j--;
    }
    sem[j] = k;
  }
  return n;
}

/* ---- the table ------------------------------------------------------------------------- */
/* Nanoseconds with picosecond digits, e.g. "1234.567". */
static const char *fmt_ns(ot_ps ps, char *buf, size_t cap) {
  snprintf(buf, cap, "%" PRIu64 ".%03" PRIu64, ps / 1000, ps % 1000);
  return buf;
}

static void print_engine_header(FILE *out) {
  fprintf(out, "  %-8s %14s %7s %10s %12s", "engine", "busy ns", "busy %", "insns", "cycles");
  for (unsigned r = 0; r < OT_IDLE_COUNT; r++) {
    char key[32], col[40];
    idle_key((ot_idle_reason)r, key, sizeof key);
    snprintf(col, sizeof col, "idle %s ns", key);
    fprintf(out, " %16s", col);
  }
  fputc('\n', out);
}

static void print_engine(const ot_sim_stats *s, ot_engine id, const ot_engine_stats *e, FILE *out) {
  char b[40];
  fprintf(out, "  %-8s %14s %7.2f %10" PRIu64 " %12" PRIu64, ot_engine_name(id), fmt_ns(e->busy, b, sizeof b),
          percent(e->busy, s->total), e->insns, e->busy_cycles);
  for (unsigned r = 0; r < OT_IDLE_COUNT; r++) fprintf(out, " %16s", fmt_ns(e->idle[r], b, sizeof b));
  fputc('\n', out);
}

const char *ot_sim_stats_signallers(const ot_sim_stats *s, uint32_t core, uint32_t sem, char *buf, size_t cap) {
  uint32_t m = s->sem_signallers && core < s->cores && sem < s->semaphores ? s->sem_signallers[(size_t)core * s->semaphores + sem] : 0;
  size_t n = 0;
  buf[0] = '\0';
  for (unsigned e = 0; e < OT_ENG_COUNT; e++)
    if (m & (1u << e)) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? "+" : "", ot_engine_name((ot_engine)e));
  if (m & (1u << OT_SIGNAL_DMA)) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%sDMA", n ? "+" : "");
  uint64_t from = (m & (1u << OT_SIGNAL_REMOTE)) && s->sem_remote_from ? s->sem_remote_from[(size_t)core * s->semaphores + sem] : 0;
  for (unsigned c = 0; c < 64; c++)
    if (from & (1ull << c)) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%score%u", n ? "+" : "", c);
  if (!m) snprintf(buf, cap, "nobody");
  return buf;
}

static void print_waits(const ot_sim_stats *s, uint32_t core, const ot_engine_stats *eng, FILE *out) {
  for (unsigned i = 0; i < OT_ENG_COUNT; i++) {
    uint32_t sem[3];
    unsigned n = top_semaphores(s, &eng[i], sem, 3);
    if (!n) continue;
    fprintf(out, "  %-8s waited longest on", ot_engine_name((ot_engine)i));
    for (unsigned k = 0; k < n; k++) {
      char b[40], who[64];
      fprintf(out, "%s s%" PRIu32 " (%s ns, signalled by %s)", k ? "," : "", sem[k], fmt_ns(eng[i].idle_sem[sem[k]], b, sizeof b),
              ot_sim_stats_signallers(s, core, sem[k], who, sizeof who));
    }
    fputc('\n', out);
  }
}

static void print_queues(const ot_sim_stats *s, uint32_t core, FILE *out) {
  bool any = false;
  for (uint32_t q = 0; s->queue && q < s->queues; q++) {
    const ot_queue_stats *qs = &s->queue[(size_t)core * s->queues + q];
    if (!qs->transfers) continue;
    if (!any) fprintf(out, "  %-8s %10s %16s %14s %7s\n", "dma", "transfers", "bytes", "busy ns", "busy %");
    any = true;
    char name[16], b[40];
    snprintf(name, sizeof name, "q%" PRIu32, q);
    fprintf(out, "  %-8s %10" PRIu64 " %16" PRIu64 " %14s %7.2f\n", name, qs->transfers, qs->bytes,
            fmt_ns(qs->busy, b, sizeof b), percent(qs->busy, s->total));
  }
}

static void print_core(const ot_sim_stats *s, uint32_t core, FILE *out) {
  const ot_engine_stats *eng = &s->eng[(size_t)core * OT_ENG_COUNT];
  fprintf(out, "\ncore %" PRIu32 "\n", core);
  print_engine_header(out);
  for (unsigned i = 0; i < OT_ENG_COUNT; i++) print_engine(s, (ot_engine)i, &eng[i], out);
  print_waits(s, core, eng, out);
  print_queues(s, core, out);
}

/* ---- by graph node ----------------------------------------------------------------------- */
/* The busiest engine's time for tag i: what bounds the node if nothing overlapped it. */
static ot_ps tag_peak(const ot_sim_stats *s, uint32_t i) {
  ot_ps best = s->tag_dma[i];
  for (unsigned e = 0; e < OT_ENG_COUNT; e++)
    if (s->tag_busy[(size_t)i * OT_ENG_COUNT + e] > best) best = s->tag_busy[(size_t)i * OT_ENG_COUNT + e];
  return best;
}

/* Tag indices ordered by tag_peak, largest first (caller frees). */
static uint32_t *tags_by_peak(const ot_sim_stats *s) {
  uint32_t *idx = malloc((s->n_tags ? s->n_tags : 1) * sizeof *idx);
  if (!idx) return NULL;
  for (uint32_t i = 0; i < s->n_tags; i++) idx[i] = i;
  for (uint32_t i = 1; i < s->n_tags; i++) { /* insertion sort: stable, deterministic */
    uint32_t v = idx[i], j = i;
    while (j > 0 && tag_peak(s, idx[j - 1]) < tag_peak(s, v)) { idx[j] = idx[j - 1]; j--; }
    idx[j] = v;
  }
  return idx;
}

#define TAGS_SHOWN 20

static void print_tags(const ot_sim_stats *s, FILE *out) {
  if (!s->n_tags) return;
  uint32_t *idx = tags_by_peak(s);
  if (!idx) return;
  fprintf(out, "\nby graph node (busy ns per engine, DMA transfer ns summed over queues, span = first start to last end; %u nodes, busiest first)\n  %-32s", s->n_tags < TAGS_SHOWN ? s->n_tags : TAGS_SHOWN,
          "node");
  for (unsigned e = 0; e < OT_ENG_COUNT; e++) fprintf(out, " %12s", ot_engine_name((ot_engine)e));
  fprintf(out, " %12s %10s %12s %12s\n", "dma", "insns", "start ns", "span ns");
  for (uint32_t r = 0; r < s->n_tags && r < TAGS_SHOWN; r++) {
    uint32_t i = idx[r];
    fprintf(out, "  %-32.32s", s->strings + s->tag_off[i]);
    for (unsigned e = 0; e < OT_ENG_COUNT; e++) fprintf(out, " %12.1f", s->tag_busy[(size_t)i * OT_ENG_COUNT + e] / 1e3);
    fprintf(out, " %12.1f %10" PRIu64 " %12.1f %12.1f\n", s->tag_dma[i] / 1e3, s->tag_insns[i], s->tag_first[i] / 1e3,
            (s->tag_last[i] - s->tag_first[i]) / 1e3);
  }
  free(idx);
}

static void json_tags(const ot_sim_stats *s, cJSON *root) {
  cJSON *arr = cJSON_AddArrayToObject(root, "nodes");
  uint32_t *idx = tags_by_peak(s);
  for (uint32_t r = 0; idx && r < s->n_tags; r++) {
    uint32_t i = idx[r];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", s->strings + s->tag_off[i]);
    cJSON *busy = cJSON_AddObjectToObject(o, "busy_ps");
    for (unsigned e = 0; e < OT_ENG_COUNT; e++)
      cJSON_AddNumberToObject(busy, ot_engine_name((ot_engine)e), (double)s->tag_busy[(size_t)i * OT_ENG_COUNT + e]);
    cJSON_AddNumberToObject(o, "dma_ps", (double)s->tag_dma[i]);
    cJSON_AddNumberToObject(o, "insns", (double)s->tag_insns[i]);
    cJSON_AddNumberToObject(o, "first_ps", (double)s->tag_first[i]);
    cJSON_AddNumberToObject(o, "span_ps", (double)(s->tag_last[i] - s->tag_first[i]));
    cJSON_AddItemToArray(arr, o);
  }
  free(idx);
}

void ot_sim_stats_print(const ot_sim_stats *s, const ot_chip *chip, FILE *out) {
  char b[40];
  fprintf(out, "simulated time: %s ns (%.3f us)", fmt_ns(s->total, b, sizeof b), (double)s->total / 1e6);
  if (chip) fprintf(out, " on %s", ot_chip_name(chip));
  fprintf(out, ", %" PRIu64 " instructions, %" PRIu64 " warning(s)\n", total_insns(s), s->warnings);
  for (uint32_t k = 0; s->eng && k < s->cores; k++) print_core(s, k, out);
  if (s->remote_signals)
    fprintf(out, "\nremote semaphore increments (core to core): %" PRIu64 "\n", s->remote_signals);
  fprintf(out, "\nmemory traffic (bytes)\n  %-8s %16s %16s\n", "memory", "read", "written");
  for (unsigned m = 1; m < OT_MEM_COUNT; m++)
    fprintf(out, "  %-8s %16" PRIu64 " %16" PRIu64 "\n", ot_mem_name((ot_mem)m), s->mem[m].read, s->mem[m].written);
  fprintf(out, "\nFLOPs: %" PRIu64 " model (matmul), %" PRIu64 " transpose\n", s->model_flops, s->transpose_flops);
  fprintf(out, "HFU %.2f %%   MFU %.2f %%   MBU %.2f %%   TensorE utilisation %.2f %%\n", 100 * s->hfu, 100 * s->mfu,
          100 * s->mbu, 100 * s->tensor_util);
  print_tags(s, out);
}

/* ---- JSON ------------------------------------------------------------------------------- */
static cJSON *json_engine(const ot_sim_stats *s, uint32_t core, ot_engine id, const ot_engine_stats *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "engine", ot_engine_name(id));
  cJSON_AddNumberToObject(o, "busy_ps", (double)e->busy);
  cJSON_AddNumberToObject(o, "busy_percent", percent(e->busy, s->total));
  cJSON_AddNumberToObject(o, "insns", (double)e->insns);
  cJSON_AddNumberToObject(o, "busy_cycles", (double)e->busy_cycles);
  cJSON *idle = cJSON_AddObjectToObject(o, "idle_ps");
  for (unsigned r = 0; r < OT_IDLE_COUNT; r++) {
    char key[32];
    idle_key((ot_idle_reason)r, key, sizeof key);
    cJSON_AddNumberToObject(idle, key, (double)e->idle[r]);
  }
  cJSON *waits = cJSON_AddArrayToObject(o, "semaphore_waits");
  uint32_t sem[8];
  unsigned n = top_semaphores(s, e, sem, 8);
  for (unsigned k = 0; k < n; k++) {
    cJSON *w = cJSON_CreateObject();
    cJSON_AddNumberToObject(w, "semaphore", sem[k]);
    cJSON_AddNumberToObject(w, "idle_ps", (double)e->idle_sem[sem[k]]);
    char who[64];
    cJSON_AddStringToObject(w, "signalled_by", ot_sim_stats_signallers(s, core, sem[k], who, sizeof who));
    cJSON_AddItemToArray(waits, w);
  }
  cJSON *ops = cJSON_AddObjectToObject(o, "insns_by_op");
  for (unsigned op = 0; op < OT_OP_COUNT; op++)
    if (e->insn_by_op[op]) cJSON_AddNumberToObject(ops, ot_opcodes[op].mnemonic, (double)e->insn_by_op[op]);
  return o;
}

static cJSON *json_core(const ot_sim_stats *s, uint32_t core) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "core", core);
  cJSON *engines = cJSON_AddArrayToObject(o, "engines");
  for (unsigned i = 0; i < OT_ENG_COUNT; i++)
    cJSON_AddItemToArray(engines, json_engine(s, core, (ot_engine)i, &s->eng[(size_t)core * OT_ENG_COUNT + i]));
  cJSON *queues = cJSON_AddArrayToObject(o, "dma_queues");
  for (uint32_t q = 0; s->queue && q < s->queues; q++) {
    const ot_queue_stats *qs = &s->queue[(size_t)core * s->queues + q];
    if (!qs->transfers) continue;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "queue", q);
    cJSON_AddNumberToObject(j, "transfers", (double)qs->transfers);
    cJSON_AddNumberToObject(j, "bytes", (double)qs->bytes);
    cJSON_AddNumberToObject(j, "busy_ps", (double)qs->busy);
    cJSON_AddNumberToObject(j, "busy_percent", percent(qs->busy, s->total));
    cJSON_AddItemToArray(queues, j);
  }
  return o;
}

static cJSON *json_stats(const ot_sim_stats *s, const ot_chip *chip) {
  cJSON *o = cJSON_CreateObject();
  if (chip) cJSON_AddStringToObject(o, "chip", ot_chip_name(chip));
  else cJSON_AddNullToObject(o, "chip");
  cJSON_AddNumberToObject(o, "total_ps", (double)s->total);
  cJSON_AddNumberToObject(o, "total_ns", (double)s->total / 1e3);
  cJSON_AddNumberToObject(o, "total_us", (double)s->total / 1e6);
  cJSON_AddNumberToObject(o, "insns", (double)total_insns(s));
  cJSON_AddNumberToObject(o, "warnings", (double)s->warnings);
  if (s->remote_signals) cJSON_AddNumberToObject(o, "remote_signals", (double)s->remote_signals);
  cJSON *cores = cJSON_AddArrayToObject(o, "cores");
  for (uint32_t k = 0; s->eng && k < s->cores; k++) cJSON_AddItemToArray(cores, json_core(s, k));
  cJSON *mem = cJSON_AddObjectToObject(o, "memory");
  for (unsigned m = 1; m < OT_MEM_COUNT; m++) {
    cJSON *j = cJSON_AddObjectToObject(mem, ot_mem_name((ot_mem)m));
    cJSON_AddNumberToObject(j, "read_bytes", (double)s->mem[m].read);
    cJSON_AddNumberToObject(j, "written_bytes", (double)s->mem[m].written);
  }
  cJSON *flops = cJSON_AddObjectToObject(o, "flops");
  cJSON_AddNumberToObject(flops, "model", (double)s->model_flops);
  cJSON_AddNumberToObject(flops, "transpose", (double)s->transpose_flops);
  cJSON_AddNumberToObject(o, "hfu_percent", 100 * s->hfu);
  cJSON_AddNumberToObject(o, "mfu_percent", 100 * s->mfu);
  cJSON_AddNumberToObject(o, "mbu_percent", 100 * s->mbu);
  cJSON_AddNumberToObject(o, "tensor_util_percent", 100 * s->tensor_util);
  json_tags(s, o);
  return o;
}

ot_status ot_sim_stats_json(const ot_sim_stats *s, const ot_chip *chip, FILE *out, ot_error *err) {
  cJSON *o = json_stats(s, chip);
  char *text = o ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  if (!text) return ot_error_set(err, OT_ENOMEM, "out of memory formatting statistics as JSON");
  fputs(text, out);
  fputc('\n', out);
  cJSON_free(text);
  if (fflush(out) || ferror(out)) return ot_error_set(err, OT_EIO, "writing statistics failed");
  return OT_OK;
}
