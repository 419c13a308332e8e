/* A whole GPT-2 training step through the compiler: compile time, and the simulated step time
** and MFU of the compiled program in timing-only mode (no values: the figure is the simulator's
** time model of the code the compiler produced).
**
**   bench_model_step [model] [chip] [batch] [seq] [cores]     default: gpt2 trn2 1 1024 1
**
** batch is the global batch; cores (a number, or "all" for every NeuronCore of the chip) above 1
** compiles the data-parallel step (ot_compile_data_parallel, docs/data-parallel.md): batch / cores
** rows per core, the gradients all-reduced through the simulated chip, AdamW on core 0.  MFU counts
** the matmul FLOPs the simulator executed (attention included) against the peak of the cores the
** program used, and against the whole chip's; the all-reduce's share is the span of the
** instructions tagged "allreduce" over the step.  BENCH_STATS=1 prints the device statistics;
** BENCH_STATS_JSON=file writes them as JSON with every graph node's engine time and span;
** BENCH_TRACE=file writes the run's Perfetto trace (large: use a model with few layers, such as a
** config.json with num_hidden_layers 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "model/model_graph.h"
#include "model/train.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *model = argc > 1 ? argv[1] : "gpt2";
  const char *chip_name = argc > 2 ? argv[2] : "trn2";
  uint32_t batch = argc > 3 ? (uint32_t)atoi(argv[3]) : 1, seq = argc > 4 ? (uint32_t)atoi(argv[4]) : 1024;
  const char *cores_arg = argc > 5 ? argv[5] : "1";
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  ot_chip *chip = NULL;
  if (ot_model_config_load(model, &cfg, &err) || ot_chip_open(chip_name, &chip, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  unsigned all = (unsigned)ot_chip_cores(chip), cores = strcmp(cores_arg, "all") ? (unsigned)atoi(cores_arg) : all;
  if (cores < 1 || cores > all || batch % cores) {
    fprintf(stderr, "cores %s: 1 to %u (chip %s), dividing the batch %u\n", cores_arg, all, chip_name, batch);
    return 1;
  }
  model_graph_opts mo;
  model_graph_opts_default(&mo, batch, seq, MODEL_GRAPH_TRAIN);
  model_graph mg;
  double t0 = now_s();
  if (model_graph_build(&cfg, &mo, &mg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double t1 = now_s();
  ot_program *p = NULL;
  ot_compile_stats cs;
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.stats = &cs;
  if (cores > 1 ? ot_compile_data_parallel(mg.g, chip, cores, &o, &p, &err) : ot_compile(mg.g, chip, &o, &p, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  double t2 = now_s();
  unsigned long long insns = 0;
  for (int e = 0; e < 5; e++) insns += cs.insns[e];
  printf("%s training step, batch %u x seq %u on %u of %u cores of %s: graph %.2f s, compile %.2f s (%llu instructions "
         "per core, %u nodes lowered, %u fused)\n", model, batch, seq, cores, all, chip_name, t1 - t0, t2 - t1, insns,
         cs.nodes_lowered, cs.nodes_fused);
  fflush(stdout);
  ot_device *d = NULL;
  if (ot_device_open_chip(chip, &d, &err) || ot_device_load(d, p)) {
    fprintf(stderr, "%s%s\n", err.msg, d ? ot_device_last_error(d) : "");
    return 1;
  }
  ot_program_free(p); /* the device holds its own copy: keep the peak host memory down */
  model_graph_free(&mg);
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = OT_RUN_TIMING;
  ro.insn_budget = 4000000000ull;
  const char *trace_path = getenv("BENCH_TRACE");
  ro.trace = trace_path != NULL;
  if (ot_device_run(d, &ro)) { fprintf(stderr, "%s\n", ot_device_last_error(d)); return 1; }
  double t3 = now_s();
  ot_run_summary s;
  ot_device_summary(d, &s);
  double step = s.time_ps * 1e-12;
  uint64_t ar_span = 0;
  if (cores > 1 && ot_device_tag_time(d, "allreduce", &ar_span, NULL)) { fprintf(stderr, "%s\n", ot_device_last_error(d)); return 1; }
  printf("  simulated step %.3f ms on %u NeuronCore%s: %.0f tokens/s, MFU %.2f%% of the cores used (%.2f%% of the chip's %u), "
         "HFU %.2f%% (simulating took %.2f s)\n", step * 1e3, cores, cores > 1 ? "s" : "", batch * seq / step,
         s.mfu * 100, s.mfu * cores / all * 100, all, s.hfu * 100, t3 - t2);
  if (cores > 1)
    printf("  gradient all-reduce: %.3f ms from its first to its last instruction (%.1f%% of the step)\n", ar_span * 1e-9,
           step > 0 ? ar_span * 1e-12 / step * 100 : 0);
  if (trace_path && ot_device_write_trace(d, trace_path)) fprintf(stderr, "%s\n", ot_device_last_error(d));
  if (getenv("BENCH_STATS")) ot_device_print_stats(d, stdout);
  const char *json_path = getenv("BENCH_STATS_JSON"); /* every graph node's figures, for scripts */
  if (json_path) {
    FILE *jf = fopen(json_path, "w");
    if (!jf || ot_device_print_stats_json(d, jf)) fprintf(stderr, "cannot write %s\n", json_path);
    if (jf) fclose(jf);
  }
  ot_device_close(d);
  ot_chip_free(chip);
  return 0;
}
