/* Compiled-code quality: simulated TensorE utilisation (HFU) of compiled GEMMs, and compile time.
**
**   bench_compile_gemm [chip] [M K N]     default: trn1, the bf16 GEMM [4096 x 8192] @ [8192 x 8192]
**
** The graph is y = transpose(xt) @ w with xt [K, M] (the activation in the K-major layout, as the
** optimised NKI matmul takes it, reference §5.2) and w [K, N], all bf16; the compiler folds the
** transpose into the GEMM.  The program runs in timing-only mode (same times as full mode, no
** values), so the figure is the simulator's cycle model of the compiled code.  Also runs the
** [M, K] layout (A transposed on the PE array inside the GEMM) for comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench(const char *chip_name, int64_t M, int64_t K, int64_t N, bool k_major) {
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip;
  if (ot_chip_open(chip_name, &chip, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  ot_graph *g = ot_graph_new();
  int64_t as[2] = {k_major ? K : M, k_major ? M : K}, ws[2] = {K, N}, perm[2] = {1, 0};
  ot_tid a = ot_graph_input(g, k_major ? "xt" : "x", OT_DT_BF16, 2, as);
  ot_tid w = ot_graph_weight(g, "w", OT_DT_BF16, 2, ws);
  if (k_major) a = ot_graph_transpose(g, "x", a, 2, perm);
  ot_graph_output(g, ot_graph_matmul(g, "gemm", a, w, false), "y");
  ot_compile_options o;
  ot_compile_options_default(&o);
  ot_program *p;
  double t0 = now_s();
  if (ot_compile(g, chip, &o, &p, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double t1 = now_s();
  ot_device *d;
  if (ot_device_open_chip(chip, &d, &err) || ot_device_load(d, p)) {
    fprintf(stderr, "%s%s\n", err.msg, d ? ot_device_last_error(d) : "");
    return 1;
  }
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.mode = OT_RUN_TIMING;
  ro.insn_budget = 1000000000ull;
  if (ot_device_run(d, &ro)) { fprintf(stderr, "%s\n", ot_device_last_error(d)); return 1; }
  double t2 = now_s();
  ot_run_summary s;
  ot_device_summary(d, &s);
  printf("%-5s [%lld x %lld] @ [%lld x %lld] bf16, A %s: simulated %.3f ms, HFU %.2f%%, MFU %.2f%%, TensorE busy %.2f%%, "
         "%llu instructions; compile %.2f s, simulate (timing) %.2f s\n",
         chip_name, (long long)M, (long long)K, (long long)K, (long long)N, k_major ? "[K,M]" : "[M,K]",
         s.time_ps * 1e-9, s.hfu * 100, s.mfu * 100, s.tensor_util * 100, (unsigned long long)s.insns, t1 - t0, t2 - t1);
  ot_device_close(d);
  ot_program_free(p);
  ot_graph_free(g);
  ot_chip_free(chip);
  return 0;
}

int main(int argc, char **argv) {
  const char *chip = argc > 1 ? argv[1] : "trn1";
  int64_t M = argc > 4 ? atoll(argv[2]) : 4096, K = argc > 4 ? atoll(argv[3]) : 8192, N = argc > 4 ? atoll(argv[4]) : 8192;
  int rc = bench(chip, M, K, N, true);
  rc |= bench(chip, M, K, N, false);
  return rc;
}
