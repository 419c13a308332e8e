/* Host wall time of a whole model forward in full mode (values and time) on the simulator, as a
** ratio to PyTorch's CPU fp32 eager forward of the same model, same weights and tokens, on the same
** machine in the same run (issue 5 item 9).
**
**   bench_model_forward [model] [chip] [batch] [seq] [reps]     default: gpt2 trn2 1 1024 3
**
** OpenTRN side: the forward graph (token ids -> logits, src/model/model_graph.h) with seeded
** random weights (ot_model_params_init, seed 1) and fixed random tokens, compiled for one
** NeuronCore (bf16 TensorE operands, the compiler's default), then `reps` times: open a device,
** load the program, write the weights and ids (host "load+write"), run in full mode ("run":
** ot_device_run, which copies the tensors into the simulator's HBM, simulates every instruction
** with values and time, and copies them back), read the logits.  The simulator is
** single-threaded, so the baseline runs at 1 thread; 2 threads (the machine's vCPUs) is a
** second row.
**
** PyTorch side: bench/torch_gpt2_forward.py through /usr/bin/python3 (Debian python3-torch), the
** same architecture from plain torch.nn modules in fp32, reading the weights and ids this program
** writes to a scratch directory; per thread count a warm-up forward, then `reps` timed ones
** under torch.no_grad.  Ratio = PyTorch seconds / OpenTRN seconds (best of each): the
** simulator's speed as a fraction of PyTorch's.  The logits of both are compared (max abs
** difference; bf16 operands against fp32, so not bit-equal).  Both sides also report process
** CPU seconds (steadier than wall time when other work shares the CPUs).  BENCH_STATS=1 prints
** the simulator's statistics of the first repetition. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>
#include <opentrn/model.h>

#include "model/model_graph.h"

#define MAX_REPS 20
#define N_THREADS 2

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double min_of(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
  return m;
}

/* Fixed random token ids in [0, vocab) (splitmix64). */
static void tokens_fill(int32_t *ids, size_t n, uint32_t vocab) {
  uint64_t s = 1234;
  for (size_t i = 0; i < n; i++) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    ids[i] = (int32_t)((z ^ (z >> 31)) % vocab);
  }
}

typedef struct {
  double load[MAX_REPS], run[MAX_REPS], read[MAX_REPS], run_cpu[MAX_REPS];
  ot_run_summary sum;
} sim_times;

static int fail(const char *what, const char *msg) {
  fprintf(stderr, "bench_model_forward: %s: %s\n", what, msg);
  return 1;
}

/* One repetition on a fresh device: load + write weights and ids, run, read the logits. */
static int sim_rep(const ot_chip *chip, const ot_program *prog, const ot_model_params *p, const int32_t *ids,
                   size_t n_ids, float *logits, size_t logits_bytes, sim_times *t, int rep) {
  ot_error err;
  ot_error_clear(&err);
  ot_device *d = NULL;
  double t0 = now_s();
  if (ot_device_open_chip(chip, &d, &err)) return fail("device", err.msg);
  int bad = ot_device_load(d, prog) != OT_OK;
  for (size_t i = 0; !bad && i < p->count; i++)
    bad = ot_device_write(d, p->params[i].name, OT_DT_FP32, p->params[i].data, p->params[i].count * 4) != OT_OK;
  bad = bad || ot_device_write(d, "ids", OT_DT_INT32, ids, n_ids * 4) != OT_OK;
  double t1 = now_s(), c1 = cpu_s();
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = OT_RUN_FULL;
  ro.insn_budget = 4000000000ull;
  bad = bad || ot_device_run(d, &ro) != OT_OK;
  double t2 = now_s(), c2 = cpu_s();
  bad = bad || ot_device_read(d, "logits", OT_DT_FP32, logits, logits_bytes) != OT_OK;
  double t3 = now_s();
  if (bad) {
    int r = fail("simulator", ot_device_last_error(d));
    ot_device_close(d);
    return r;
  }
  t->load[rep] = t1 - t0, t->run[rep] = t2 - t1, t->read[rep] = t3 - t2, t->run_cpu[rep] = c2 - c1;
  ot_device_summary(d, &t->sum);
  if (getenv("BENCH_STATS") && rep == 0) ot_device_print_stats(d, stdout);
  ot_device_close(d);
  return 0;
}

/* The scratch directory the PyTorch script reads. */
static int scratch_write(const char *dir, const ot_model_params *p, const int32_t *ids, uint32_t batch,
                         uint32_t seq) {
  char path[512];
  ot_error err;
  ot_error_clear(&err);
  snprintf(path, sizeof path, "%s/config.json", dir);
  if (ot_model_config_save(&p->config, path, &err)) return fail("config", err.msg);
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  if (ot_model_params_save(p, path, OT_DT_FP32, &err)) return fail("weights", err.msg);
  snprintf(path, sizeof path, "%s/ids.bin", dir);
  FILE *f = fopen(path, "wb");
  size_t n = (size_t)batch * seq;
  if (!f || fwrite(ids, 4, n, f) != n || fclose(f)) return fail(path, "cannot write");
  snprintf(path, sizeof path, "%s/job.json", dir);
  f = fopen(path, "w");
  if (!f || fprintf(f, "{\"batch\": %u, \"seq\": %u}\n", batch, seq) < 0 || fclose(f)) return fail(path, "cannot write");
  return 0;
}

static void scratch_remove(const char *dir) {
  const char *names[] = {"config.json", "weights.safetensors", "ids.bin", "job.json", "logits.bin"};
  char path[512];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    remove(path);
  }
  rmdir(dir);
}

/* Least of the numbers after key in line (the script's per-rep lists). */
static double line_min(const char *line, const char *key) {
  const char *q = strstr(line, key);
  double best = 0;
  char *end;
  for (q = q ? q + strlen(key) : NULL; q; q = end) {
    double v = strtod(q, &end);
    if (end == q) break;
    best = best == 0 || v < best ? v : best;
  }
  return best;
}

/* Run the PyTorch script at one thread count: best wall and CPU seconds.  Debian's torch calls
** OpenBLAS through the generic BLAS interface, so torch.set_num_threads does not size OpenBLAS's
** own pool (it starts one thread per CPU): OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set it, one
** process per thread count. */
static int torch_run(const char *dir, int reps, int threads, double *best, double *best_cpu) {
  char cmd[1024], line[1024];
  snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d /usr/bin/python3 %s %s %d %d", threads, threads,
           BENCH_TORCH_SCRIPT, dir, reps, threads);
  FILE *f = popen(cmd, "r");
  if (!f) return fail("popen", cmd);
  int got = 0;
  while (fgets(line, sizeof line, f)) {
    int t;
    double s;
    if (sscanf(line, "RESULT threads %d best %lf", &t, &s) == 2 && t == threads)
      *best = s, *best_cpu = line_min(line, "process CPU"), got++;
    printf("  torch: %s", line);
  }
  int rc = pclose(f);
  if (rc != 0 || got != 1) return fail("PyTorch baseline failed", cmd);
  return 0;
}

/* Max |ours - torch|, max |torch|, and the share of rows whose argmax agrees. */
static int logits_compare(const char *dir, const float *ours, size_t rows, size_t cols) {
  char path[512];
  snprintf(path, sizeof path, "%s/logits.bin", dir);
  size_t n = rows * cols;
  float *ref = malloc(n * sizeof *ref);
  FILE *f = fopen(path, "rb");
  size_t got = f && ref ? fread(ref, sizeof *ref, n, f) : 0;
  if (f) fclose(f);
  if (got != n) {
    free(ref);
    return fail(path, "missing or short PyTorch logits");
  }
  double diff = 0, scale = 0, sq = 0;
  size_t agree = 0;
  for (size_t r = 0; r < rows; r++) {
    size_t a = 0, b = 0;
    for (size_t c = 0; c < cols; c++) {
      size_t i = r * cols + c;
      double d = fabs((double)ours[i] - ref[i]);
      diff = d > diff ? d : diff;
      sq += d * d;
      scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
      a = ours[i] > ours[r * cols + a] ? c : a;
      b = ref[i] > ref[r * cols + b] ? c : b;
    }
    agree += a == b;
  }
  printf("logits vs PyTorch fp32: max |diff| %.3e, rms diff %.3e, max |logit| %.3f (max diff / max |logit| %.2e), "
         "argmax agrees on %zu of %zu rows\n", diff, sqrt(sq / (double)n), scale, diff / scale, agree, rows);
  free(ref);
  return 0;
}

typedef struct {
  const char *model, *chip;
  uint32_t batch, seq;
  int reps;
} bench_args;

static void print_table(const bench_args *a, const sim_times *st, const double *torch_best, const double *torch_cpu,
                        const int *threads, double compile_s) {
  double run = min_of(st->run, a->reps), cpu = min_of(st->run_cpu, a->reps), both = st->load[0] + st->run[0];
  for (int r = 1; r < a->reps; r++) both = st->load[r] + st->run[r] < both ? st->load[r] + st->run[r] : both;
  printf("\n| side | threads | host wall s (best of %d) | process CPU s (best) | PyTorch / OpenTRN, wall (run) | "
         "wall (load+write+run) | CPU (run) |\n", a->reps);
  printf("|---|---|---|---|---|---|---|\n");
  printf("| OpenTRN simulator, full mode: run | 1 | %.3f | %.3f | | | |\n", run, cpu);
  printf("| OpenTRN: load + write weights | 1 | %.3f | | | | |\n", min_of(st->load, a->reps));
  printf("| OpenTRN: graph + compile (once) | 1 | %.3f | | | | |\n", compile_s);
  for (int i = 0; i < N_THREADS; i++)
    printf("| PyTorch fp32 eager | %d | %.3f | %.3f | **%.3f** | %.3f | %.3f |\n", threads[i], torch_best[i], torch_cpu[i],
           torch_best[i] / run, torch_best[i] / both, torch_cpu[i] / cpu);
}

/* The forward graph compiled for one NeuronCore with the default options (bf16 TensorE operands). */
static int forward_compile(const bench_args *a, const ot_model_config *cfg, const ot_chip *chip, model_graph *mg,
                           ot_program **prog, double *seconds) {
  ot_error err;
  ot_error_clear(&err);
  model_graph_opts mo;
  model_graph_opts_default(&mo, a->batch, a->seq, MODEL_GRAPH_FORWARD);
  double t0 = now_s();
  if (model_graph_build(cfg, &mo, mg, &err)) return fail("graph", err.msg);
  ot_compile_stats cs;
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.stats = &cs;
  if (ot_compile(mg->g, chip, &co, prog, &err)) return fail("compile", err.msg);
  *seconds = now_s() - t0;
  unsigned long long insns = 0;
  for (int e = 0; e < 5; e++) insns += cs.insns[e];
  printf("graph + compile %.3f s (%llu instructions); simulator: single-threaded; full mode (values and time)\n",
         *seconds, insns);
  return co.matmul_dtype == OT_DT_BF16 ? 0 : fail("compile", "expected bf16 TensorE operands by default");
}

static int bench(const bench_args *a) {
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  ot_chip *chip = NULL;
  if (ot_model_config_load(a->model, &cfg, &err) || ot_chip_open(a->chip, &chip, &err)) return fail("setup", err.msg);
  if (cfg.family != OT_MODEL_GPT2) return fail(a->model, "the PyTorch baseline is a GPT-2; expected a GPT-2 configuration");
  ot_model_params p;
  if (ot_model_params_alloc(&cfg, &p, &err)) return fail("parameters", err.msg);
  ot_model_params_init(&p, 1);
  size_t n_ids = (size_t)a->batch * a->seq, logits_n = n_ids * cfg.vocab_size;
  int32_t *ids = malloc(n_ids * sizeof *ids);
  float *logits = malloc(logits_n * sizeof *logits);
  if (!ids || !logits) return fail("host", "out of memory");
  tokens_fill(ids, n_ids, cfg.vocab_size);

  model_graph mg;
  ot_program *prog = NULL;
  double compile_s;
  if (forward_compile(a, &cfg, chip, &mg, &prog, &compile_s)) return 1;
  printf("%s forward, %u x %u tokens -> logits [%zu, %u], %s one NeuronCore, bf16 TensorE operands, seeded weights "
         "(%llu parameters)\n", a->model, a->batch, a->seq, n_ids, cfg.vocab_size, a->chip, (unsigned long long)p.total);
  fflush(stdout);

  sim_times st;
  memset(&st, 0, sizeof st);
  for (int r = 0; r < a->reps; r++) {
    if (sim_rep(chip, prog, &p, ids, n_ids, logits, logits_n * 4, &st, r)) return 1;
    printf("  opentrn rep %d: load+write weights %.3f s, run %.3f s (process CPU %.3f s), read logits %.3f s\n", r + 1,
           st.load[r], st.run[r], st.run_cpu[r], st.read[r]);
    fflush(stdout);
  }
  uint64_t flops = model_graph_forward_flops(&cfg, a->batch, a->seq);
  printf("simulated time %.3f ms (%llu instructions executed, MFU %.1f %%, HFU %.1f %%); "
         "host simulated %.2f GFLOP/s of model FLOPs\n", st.sum.time_ps * 1e-9, (unsigned long long)st.sum.insns,
         st.sum.mfu * 100, st.sum.hfu * 100, flops / min_of(st.run, a->reps) * 1e-9);
  fflush(stdout);

  char dir[] = "/tmp/bench_model_forward_XXXXXX";
  if (!mkdtemp(dir)) return fail("mkdtemp", dir);
  const int threads[N_THREADS] = {1, 2};
  double torch_best[N_THREADS] = {0}, torch_cpu[N_THREADS] = {0};
  int rc = scratch_write(dir, &p, ids, a->batch, a->seq);
  for (int i = 0; !rc && i < N_THREADS; i++) {
    rc = torch_run(dir, a->reps, threads[i], &torch_best[i], &torch_cpu[i]);
    if (!rc && i == 0) rc = logits_compare(dir, logits, n_ids, cfg.vocab_size);
  }
  scratch_remove(dir);
  if (!rc) print_table(a, &st, torch_best, torch_cpu, threads, compile_s);
  free(ids);
  free(logits);
  ot_program_free(prog);
  model_graph_free(&mg);
  ot_model_params_free(&p);
  ot_chip_free(chip);
  return rc;
}

int main(int argc, char **argv) {
  bench_args a = {argc > 1 ? argv[1] : "gpt2", argc > 2 ? argv[2] : "trn2",
                  argc > 3 ? (uint32_t)atoi(argv[3]) : 1, argc > 4 ? (uint32_t)atoi(argv[4]) : 1024,
                  argc > 5 ? atoi(argv[5]) : 3};
  if (a.reps < 1 || a.reps > MAX_REPS || !a.batch || !a.seq) return fail("usage", "bench_model_forward [model] [chip] "
                                                                          "[batch] [seq] [reps 1..20]");
  return bench(&a);
}
