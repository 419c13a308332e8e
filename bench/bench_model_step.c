/* A whole GPT-2 training step through the compiler: compile time, and the simulated step time
** and MFU of the compiled program in timing-only mode (no values: the figure is the simulator's
** time model of the code the compiler produced).
**
**   bench_model_step [model] [chip] [batch] [seq]     default: gpt2 trn2 1 1024
**
** MFU here counts the matmul FLOPs the simulator executed (attention included) against the peak of
** the NeuronCores the program used (one: the step runs on one core; data parallelism across the
** chip's cores is separate work). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "model/model_graph.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *model = argc > 1 ? argv[1] : "gpt2";
  const char *chip_name = argc > 2 ? argv[2] : "trn2";
  uint32_t batch = argc > 3 ? (uint32_t)atoi(argv[3]) : 1, seq = argc > 4 ? (uint32_t)atoi(argv[4]) : 1024;
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  ot_chip *chip = NULL;
  if (ot_model_config_load(model, &cfg, &err) || ot_chip_open(chip_name, &chip, &err)) {
    fprintf(stderr, "%s\n", err.msg);
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
  if (ot_compile(mg.g, chip, &o, &p, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double t2 = now_s();
  unsigned long long insns = 0;
  for (int e = 0; e < 5; e++) insns += cs.insns[e];
  printf("%s training step, batch %u x seq %u on %s: graph %.2f s, compile %.2f s (%llu instructions, %u nodes lowered, "
         "%u fused)\n", model, batch, seq, chip_name, t1 - t0, t2 - t1, insns, cs.nodes_lowered, cs.nodes_fused);
  fflush(stdout);
  ot_device *d = NULL;
  if (ot_device_open_chip(chip, &d, &err) || ot_device_load(d, p)) {
    fprintf(stderr, "%s%s\n", err.msg, d ? ot_device_last_error(d) : "");
    return 1;
  }
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = OT_RUN_TIMING;
  ro.insn_budget = 4000000000ull;
  if (ot_device_run(d, &ro)) { fprintf(stderr, "%s\n", ot_device_last_error(d)); return 1; }
  double t3 = now_s();
  ot_run_summary s;
  ot_device_summary(d, &s);
  double step = s.time_ps * 1e-12;
  printf("  simulated step %.3f ms on one NeuronCore: %.0f tokens/s, MFU %.2f%%, HFU %.2f%% (simulating took %.2f s)\n",
         step * 1e3, batch * seq / step, s.mfu * 100, s.hfu * 100, t3 - t2);
  if (getenv("BENCH_STATS")) ot_device_print_stats(d, stdout);
  ot_device_close(d);
  ot_program_free(p);
  model_graph_free(&mg);
  ot_chip_free(chip);
  return 0;
}
