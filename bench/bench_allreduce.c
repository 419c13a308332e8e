/* Simulated time of an all-reduce (sum, fp32) across the NeuronCores of one chip, in timing-only
** mode: the gradients of a model of N parameters as one bucket, reduce-scatter + all-gather through
** HBM with remote semaphores (src/compiler/lower_collective.c, docs/data-parallel.md).
**
**   bench_allreduce [chip] [cores] [elements]      default: trn2 8 124439808 (GPT-2 small)
** BENCH_TRACE=file writes the run's Perfetto trace.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/chip.h>

#include "compiler/kir.h"
#include "compiler/lower_collective.h"
#include "isa/program.h"
#include "sim/sim.h"

int main(int argc, char **argv) {
  const char *chip_name = argc > 1 ? argv[1] : "trn2";
  unsigned cores = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
  uint64_t n = argc > 3 ? strtoull(argv[3], NULL, 10) : 124439808ull;
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  if (ot_chip_open(chip_name, &chip, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  if (cores < 1 || cores > chip->cores_per_chip || cores > 64) { fprintf(stderr, "cores: 1..%u\n", chip->cores_per_chip); return 1; }
  ot_program *p = ot_program_new();
  kir **k = calloc(cores, sizeof *k);
  kir_hbm *bufs = calloc(cores, sizeof *bufs);
  ot_status st = p && k && bufs ? OT_OK : OT_ENOMEM;
  for (unsigned c = 0; c < cores && !st; c++) {
    char name[32];
    snprintf(name, sizeof name, "grads@c%u", c);
    st = kir_new_core(chip, p, c, &k[c], &err);
    if (!st) kir_set_origin(k[c], "allreduce");
    if (!st) st = kir_tensor(k[c], name, OT_DT_FP32, 1, &n, OT_ROLE_INPUT, NULL, &bufs[c]);
    if (st && k[c]) ot_error_set(&err, st, "%s", kir_error(k[c])->msg);
  }
  if (!st) {
    lc_sems sems = {kir_free_sem_base(k[0]), kir_free_sem_base(k[0]) + 1, 0};
    st = lower_allreduce(k, cores, 1, bufs, &n, 1.0f, &sems, NULL);
    if (st) ot_error_set(&err, st, "%s", kir_error(k[0])->msg);
  }
  for (unsigned c = 0; c < cores && !st; c++) st = kir_finish(k[c], &err);
  ot_sim *s = NULL;
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.mode = OT_SIM_TIMING;
  const char *trace_path = getenv("BENCH_TRACE");
  o.trace = trace_path != NULL;
  if (!st) st = ot_sim_new(chip, p, &o, &s, &err);
  if (!st) st = ot_sim_run(s, &err);
  if (st) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  if (trace_path) {
    FILE *f = fopen(trace_path, "w");
    if (!f || ot_trace_write_json(ot_sim_get_trace(s), chip, f, &err)) {
      fprintf(stderr, "trace %s: %s\n", trace_path, f ? err.msg : "cannot open");
      if (f) fclose(f);
      return 1;
    }
    fclose(f);
  }
  const ot_sim_stats *ss = ot_sim_get_stats(s);
  double us = (double)ss->total / 1e6;
  double bytes = 4.0 * (double)n;
  uint64_t insns = 0;
  for (size_t i = 0; i < (size_t)ss->cores * OT_ENG_COUNT; i++) insns += ss->eng[i].insns;
  printf("all-reduce (sum) of %llu fp32 (%.1f MB) across %u cores of %s: %.1f us simulated "
         "(algorithm bandwidth %.1f GB/s; HBM %.2f GB read + %.2f GB written; %llu instructions, %llu remote signals)\n",
         (unsigned long long)n, bytes / 1e6, cores, chip->name, us, bytes / (us * 1e-6) / 1e9,
         (double)ss->mem[OT_MEM_HBM].read / 1e9, (double)ss->mem[OT_MEM_HBM].written / 1e9, (unsigned long long)insns,
         (unsigned long long)ss->remote_signals);
  ot_sim_free(s);
  for (unsigned c = 0; c < cores; c++) kir_free(k[c]);
  free(k);
  free(bufs);
  ot_program_free(p);
  ot_chip_free(chip);
  return 0;
}
