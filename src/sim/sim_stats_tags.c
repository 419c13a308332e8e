/* Statistics by provenance tag: compiled programs tag every instruction with the graph node it
** came from, so time can be reported per node of the user's model, not per instruction. */
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

ot_status ot_sim_stats_tags_init(ot_sim_stats *st, const ot_program *p, ot_error *err) {
  size_t n = 0;
  for (uint32_t i = 0; i < p->n_streams; i++) n += p->streams[i].n;
  st->n_tags = 0;
  st->strings = p->strings;
  if (!n) return OT_OK;
  uint32_t *all = malloc(n * sizeof *all);
  if (!all) return ot_error_set(err, OT_ENOMEM, "out of memory for statistics");
  size_t m = 0;
  for (uint32_t i = 0; i < p->n_streams; i++)
    for (uint32_t j = 0; j < p->streams[i].n; j++)
      if (p->streams[i].insns[j].tag && p->streams[i].insns[j].tag < p->strings_len) all[m++] = p->streams[i].insns[j].tag;
  qsort(all, m, sizeof *all, cmp_u32);
  size_t u = 0;
  for (size_t i = 0; i < m; i++)
    if (!u || all[u - 1] != all[i]) all[u++] = all[i];
  if (!u) { free(all); return OT_OK; }
  st->tag_off = all;
  st->n_tags = (uint32_t)u;
  st->tag_busy = calloc(u * OT_ENG_COUNT, sizeof *st->tag_busy);
  st->tag_dma = calloc(u, sizeof *st->tag_dma);
  st->tag_insns = calloc(u, sizeof *st->tag_insns);
  st->tag_first = malloc(u * sizeof *st->tag_first);
  st->tag_last = calloc(u, sizeof *st->tag_last);
  if (st->tag_first)
    for (size_t i = 0; i < u; i++) st->tag_first[i] = UINT64_MAX;
  if (!st->tag_busy || !st->tag_dma || !st->tag_insns || !st->tag_first || !st->tag_last) {
    ot_sim_stats_tags_free(st);
    return ot_error_set(err, OT_ENOMEM, "out of memory for statistics");
  }
  return OT_OK;
}

void ot_sim_stats_tag_add(ot_sim_stats *st, uint32_t tag, unsigned engine, ot_ps start, ot_ps end) {
  ot_ps t = end - start;
  if (!tag || !st->n_tags) return;
  uint32_t lo = 0, hi = st->n_tags;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (st->tag_off[mid] < tag) lo = mid + 1; else hi = mid;
  }
  if (lo >= st->n_tags || st->tag_off[lo] != tag) return;
  if (start < st->tag_first[lo]) st->tag_first[lo] = start;
  if (end > st->tag_last[lo]) st->tag_last[lo] = end;
  if (engine < OT_ENG_COUNT) {
    st->tag_busy[(size_t)lo * OT_ENG_COUNT + engine] += t;
    st->tag_insns[lo]++;
  } else {
    st->tag_dma[lo] += t;
  }
}

void ot_sim_stats_tags_free(ot_sim_stats *st) {
  free(st->tag_off);
  free(st->tag_busy);
  free(st->tag_dma);
  free(st->tag_insns);
  free(st->tag_first);
  free(st->tag_last);
  st->tag_first = st->tag_last = NULL;
  st->tag_off = NULL;
  st->tag_busy = st->tag_dma = NULL;
  st->tag_insns = NULL;
  st->n_tags = 0;
}
