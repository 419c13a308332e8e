/* Benchmark: host time of the simulator computing a GEMM with values and time (full mode),
** against OpenBLAS sgemm on the same shapes and thread count on the same machine, in the same
** run (these machines are noisy: best of several repetitions, ratios only).
**
**   build/bench_sim_matmul            the large GEMM and the GPT-2-small GEMM set
**   build/bench_sim_matmul M K N      one shape
**
** The kernel is generated here: A^T and B are DMAed into SBUF, then for every 128-row m-tile and
** 512-column n-tile the K-tiles accumulate in one PSUM bank (ldweights + matmul), VectorE copies
** the bank to SBUF and a DMA stores it.  Simulated GFLOP = 2*M*K*N / 1e9. */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <opentrn/chip.h>

#include "isa/program.h"
#include "sim/sim.h"

extern void openblas_set_num_threads(int);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Append formatted text to a growing buffer. */
typedef struct { char *s; size_t n, cap; } sbuf;
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void out(sbuf *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if ((size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
    b->cap = b->cap ? b->cap * 2 : 1 << 16;
    b->s = realloc(b->s, b->cap);
  }
}

/* The GEMM kernel as assembly.  SBUF per partition: A^T k-tiles, B k-tiles, C staging. */
static char *gemm_kernel(unsigned M, unsigned K, unsigned N) {
  sbuf b = {0};
  unsigned kt = (K + 127) / 128, mt = (M + 127) / 128, nt = (N + 511) / 512;
  unsigned a_bytes = kt * M * 2, b_off = a_bytes, c_off = b_off + kt * N * 2;
  out(&b, ".tensor at bf16 [%u, %u] input\n.tensor b bf16 [%u, %u] input\n.tensor c fp32 [%u, %u] output\n", K, M, K, N, M, N);
  out(&b, ".engine sync\n");
  for (unsigned k = 0; k < kt; k++) {
    unsigned rows = K - k * 128 < 128 ? K - k * 128 : 128;
    out(&b, " dma_copy q%u, sb.bf16[0:%u]@%u[1,%u], $at@%u[%u,%u][1,%u], s0\n", k % 8, rows, k * M * 2, M, k * 128 * M * 2, M, rows, M);
    out(&b, " dma_copy q%u, sb.bf16[0:%u]@%u[1,%u], $b@%u[%u,%u][1,%u], s0\n", 8 + k % 8, rows, b_off + k * N * 2, N,
        k * 128 * N * 2, N, rows, N);
  }
  out(&b, " sem_wait s2, %u\n halt\n.engine tensor\n sem_wait s0, %u\n", mt * nt, 2 * kt);
  for (unsigned m = 0; m < mt; m++)
    for (unsigned n = 0; n < nt; n++) {
      unsigned cols = M - m * 128 < 128 ? M - m * 128 : 128, w = N - n * 512 < 512 ? N - n * 512 : 512;
      unsigned bank = ((m * nt + n) % 8) * 2048, tile = m * nt + n;
      if (tile >= 8) out(&b, " sem_wait s3, %u\n", tile - 7); /* the bank's previous tile was copied out */
      for (unsigned k = 0; k < kt; k++) {
        unsigned rows = K - k * 128 < 128 ? K - k * 128 : 128;
        out(&b, " ldweights sb.bf16[0:%u]@%u[1,%u]\n", rows, k * M * 2 + m * 256, cols);
        out(&b, " matmul ps.fp32[0:%u]@%u[1,%u], sb.bf16[0:%u]@%u[1,%u]%s\n", cols, bank, w, rows, b_off + k * N * 2 + n * 1024, w,
            k ? ", acc=1" : "");
      }
      out(&b, " sem_inc s1\n");
    }
  out(&b, " halt\n.engine vector\n");
  for (unsigned m = 0; m < mt; m++)
    for (unsigned n = 0; n < nt; n++) {
      unsigned cols = M - m * 128 < 128 ? M - m * 128 : 128, w = N - n * 512 < 512 ? N - n * 512 : 512;
      unsigned bank = ((m * nt + n) % 8) * 2048, tile = m * nt + n;
      /* each tile has its own staging area, so no copy overwrites a tile still being stored */
      out(&b, " sem_wait s1, %u\n tensor_copy sb.fp32[0:%u]@%u[1,%u], ps.fp32[0:%u]@%u[1,%u]\n sem_inc s3\n", tile + 1, cols,
          c_off + tile * 2048, w, cols, bank, w);
      out(&b, " dma_copy q%u, $c@%u[%u,%u][1,%u], sb.fp32[0:%u]@%u[1,%u], s2\n", tile % 16, (m * 128 * N + n * 512) * 4, N, cols,
          w, cols, c_off + tile * 2048, w);
    }
  out(&b, " halt\n");
  return b.s;
}

typedef struct { double sim_s, sim_first_s, blas_s, sim_time_us, mfu; int reps; } result;

#define MAX_REPS 25
#define MIN_TOTAL_S 1.0

static int bench_shape(const ot_chip *chip, unsigned M, unsigned K, unsigned N, int reps, result *r) {
  char *text = gemm_kernel(M, K, N);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "bench", &p, &err) || ot_program_verify(p, chip, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  free(text);
  uint16_t *at = malloc(sizeof *at * K * M), *bb = malloc(sizeof *bb * K * N);
  float *fa = malloc(sizeof *fa * M * K), *fb = malloc(sizeof *fb * K * N), *fc = malloc(sizeof *fc * M * N);
  for (size_t i = 0; i < (size_t)K * M; i++) at[i] = ot_f32_to_bf16((float)((i * 7919) % 1000) / 1000.0f - 0.5f);
  for (size_t i = 0; i < (size_t)K * N; i++) bb[i] = ot_f32_to_bf16((float)((i * 104729) % 1000) / 1000.0f - 0.5f);
  for (size_t k = 0; k < K; k++)
    for (size_t m = 0; m < M; m++) fa[m * K + k] = ot_bf16_to_f32(at[k * M + m]);
  for (size_t i = 0; i < (size_t)K * N; i++) fb[i] = ot_bf16_to_f32(bb[i]);
  r->sim_s = r->blas_s = 1e30;
  /* At least reps repetitions, more (up to MAX_REPS) until each side has run MIN_TOTAL_S:
  ** a shape that takes a millisecond gets enough tries for its best to be a quiet one. */
  double sim_sum = 0, blas_sum = 0;
  for (int rep = 0; rep < reps || (rep < MAX_REPS && (sim_sum < MIN_TOTAL_S || blas_sum < MIN_TOTAL_S)); rep++) {
    /* Timed: creating the simulated chip (its SBUF, PSUM, state), loading the inputs into its
    ** HBM, the run, and freeing the simulator -- everything a user waits for. */
    ot_sim *s = NULL;
    ot_sim_options o;
    ot_sim_options_default(&o);
    double t0 = now();
    if (ot_sim_new(chip, p, &o, &s, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ot_sim_hbm_write(s, ot_program_find_tensor(p, "at")->offset, at, sizeof *at * K * M, NULL);
    ot_sim_hbm_write(s, ot_program_find_tensor(p, "b")->offset, bb, sizeof *bb * K * N, NULL);
    if (ot_sim_run(s, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    r->sim_time_us = ot_sim_get_stats(s)->total / 1e6;
    r->mfu = ot_sim_get_stats(s)->mfu;
    ot_sim_free(s);
    double dt = now() - t0;
    if (dt < r->sim_s) r->sim_s = dt;
    if (rep == 0) r->sim_first_s = dt;
    sim_sum += dt;
    t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, fa, (int)K, fb, (int)N, 0.0f, fc, (int)N);
    dt = now() - t0;
    if (dt < r->blas_s) r->blas_s = dt;
    blas_sum += dt;
    r->reps = rep + 1;
  }
  free(at); free(bb); free(fa); free(fb); free(fc);
  ot_program_free(p);
  return 0;
}

static void print_row(unsigned M, unsigned K, unsigned N, const result *r) {
  double gflop = 2.0 * M * K * N / 1e9;
  printf("%5u %5u %5u  %9.4f  %9.4f  %8.2f  %8.2f   %5.3f   %9.4f   %10.2f  %5.1f%%  %4d\n", M, K, N, r->sim_s, r->blas_s,
         gflop / r->sim_s, gflop / r->blas_s, r->blas_s / r->sim_s, r->sim_first_s, r->sim_time_us, 100 * r->mfu, r->reps);
}

int main(int argc, char **argv) {
  /* One thread for both: the simulator is single-threaded.  OpenBLAS creates its thread pool
  ** before main, and idle pool threads spin in sched_yield, stealing the CPU the simulator runs
  ** on; so restart with OPENBLAS_NUM_THREADS=1 if it is not set. */
  if (!getenv("OPENBLAS_NUM_THREADS")) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
  }
  openblas_set_num_threads(1);
  ot_chip *chip = NULL;
  if (ot_chip_preset("trn2", &chip, NULL)) return 1;
  printf("OpenTRN simulator (full mode: values + time) vs OpenBLAS sgemm (%s), 1 thread, best of 3 to %d repetitions\n"
         "(more until each side has run %.1f s); ratio = OpenBLAS time / simulator time\n",
         "cblas_sgemm fp32", MAX_REPS, MIN_TOTAL_S);
  printf("    M     K     N   sim host s  blas host s  sim GF/s  blas GF/s  ratio   sim 1st s   sim time us   MFU  reps\n");
  result r;
  if (argc == 4) {
    unsigned M = (unsigned)atoi(argv[1]), K = (unsigned)atoi(argv[2]), N = (unsigned)atoi(argv[3]);
    if (bench_shape(chip, M, K, N, 3, &r)) return 1;
    print_row(M, K, N, &r);
    ot_chip_free(chip);
    return 0;
  }
  if (bench_shape(chip, 1024, 1024, 2048, 3, &r)) return 1;
  print_row(1024, 1024, 2048, &r);
  const unsigned dims[] = {64, 256, 768, 2304, 3072};
  double sim_total = 0, blas_total = 0, first_total = 0;
  for (int a = 0; a < 5; a++)
    for (int b = 0; b < 5; b++) {
      if (bench_shape(chip, 256, dims[b], dims[a], 3, &r)) return 1;
      print_row(256, dims[b], dims[a], &r);
      sim_total += r.sim_s;
      blas_total += r.blas_s;
      first_total += r.sim_first_s;
    }
  printf("GPT-2-small GEMM set (M=256; N, K in {64,256,768,2304,3072}): simulator %.3f s, OpenBLAS %.3f s, ratio %.3f\n",
         sim_total, blas_total, blas_total / sim_total);
  printf("  (first repetitions only: simulator %.3f s, ratio %.3f)\n", first_total, blas_total / first_total);
  ot_chip_free(chip);
  return 0;
}
