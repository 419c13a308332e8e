/* Time: each instruction's simulated cost equals its §5.1 formula, computed here by hand from
** the published constants; independent engines overlap and dependent ones wait; DMA time; the
** SCALE-Sim-compatible model gives exactly SCALE-Sim's cycles; runs are deterministic and
** timing-only runs give the same times as full runs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

/* trn2 constants, written out independently of the preset (trainium.md §2.2, §5.1). */
#define VEC_GHZ 0.96
#define ACT_GHZ 1.2
#define PE_GHZ 2.4
#define POOL_GHZ 1.2
#define MIN_II 64
#define ACCESS_START 60

static ot_ps ps(double cycles, double ghz) { return (ot_ps)llround(cycles * 1000.0 / ghz); }
static uint64_t maxu(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Duration of the second of two independent instructions on an engine (the first pays the
** access start and the dependent-chain overhead; the second pays neither). */
static ot_ps second_duration(const ot_chip *chip, const char *engine, const char *insn, ot_engine eng) {
  char text[4096];
  snprintf(text, sizeof text,
           ".engine vector\n memset sb.fp32[0:128]@0[1,16384], 1\n memset sb.bf16[0:128]@200000[1,64], 1\n"
           " memset ps.fp32[0:128]@0[1,4096], 1\n sem_inc s0\n"
           ".engine %s\n sem_wait s0, 1\n %s\n %s\n", engine, insn, insn);
  ot_program *p = st_asm(text);
  assert_non_null(p);
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, NULL, &err);
  if (!s) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(s);
  const ot_trace *t = ot_sim_get_trace(s);
  const ot_trace_event *last = NULL;
  for (size_t i = 0; i < t->n; i++)
    if (t->ev[i].track_kind == OT_TRACK_ENGINE && t->ev[i].track == eng && t->ev[i].kind == OT_EV_INSN) last = &t->ev[i];
  assert_non_null(last);
  ot_ps d = last->dur;
  ot_sim_free(s);
  ot_program_free(p);
  return d;
}

static void test_vector_formulas(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  const unsigned ns[] = {1, 64, 100, 512, 2048};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    unsigned n = ns[i];
    char insn[256];
    snprintf(insn, sizeof insn, "tensor_copy sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u]", n, n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, n), VEC_GHZ));
    /* 16-bit SBUF-to-SBUF unit stride: 4x (NC-v3 performance mode) */
    snprintf(insn, sizeof insn, "tensor_copy sb.bf16[0:128]@100000[1,%u], sb.bf16[0:128]@200000[1,%u]", n < 64 ? n : 64, n < 64 ? n : 64);
    unsigned m = n < 64 ? n : 64;
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, (m + 3) / 4), VEC_GHZ));
    /* tensor_tensor, both in SBUF, fp32: 2N */
    snprintf(insn, sizeof insn, "tensor_tensor sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u], sb.fp32[0:128]@0[1,%u], add", n, n, n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, 2 * n), VEC_GHZ));
    /* one input in PSUM: N */
    if (n <= 2048) {
      snprintf(insn, sizeof insn, "tensor_tensor sb.fp32[0:128]@100000[1,%u], ps.fp32[0:128]@0[1,%u], sb.fp32[0:128]@0[1,%u], mul", n, n, n);
      assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, n), VEC_GHZ));
    }
    snprintf(insn, sizeof insn, "reciprocal sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u]", n, n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, 8 * n), VEC_GHZ));
    snprintf(insn, sizeof insn, "activate sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u], exp", n, n);
    assert_int_equal(second_duration(chip, "scalar", insn, OT_ENG_SCALAR), ps(maxu(MIN_II, n), ACT_GHZ));
    snprintf(insn, sizeof insn, "iota sb.int32[0:128]@100000[1,%u], 0, pmul=1, steps=[1]", n);
    assert_int_equal(second_duration(chip, "gpsimd", insn, OT_ENG_GPSIMD), ps(150 + n, POOL_GHZ));
  }
  ot_chip_free(chip);
}

/* The remaining classes of §5.1, each for several N. */
static void test_more_formulas(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  const unsigned ns[] = {6, 60, 96, 510};
  char insn[256];
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    unsigned n = ns[i];
    snprintf(insn, sizeof insn, "tensor_scalar sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u], mul, 2.0, op1=add, s1=1.0", n, n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, n), VEC_GHZ));
    snprintf(insn, sizeof insn, "memset sb.fp32[0:128]@100000[1,%u], 3.0", n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, n), VEC_GHZ));
    snprintf(insn, sizeof insn, "memset sb.bf16[0:128]@100000[1,%u], 0", n); /* zero in 16-bit: N/2 */
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, (n + 1) / 2), VEC_GHZ));
    snprintf(insn, sizeof insn, "tensor_reduce sb.fp32[0:128]@100000, sb.fp32[0:128]@0[1,%u], add", n); /* N, no floor */
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(n, VEC_GHZ));
    snprintf(insn, sizeof insn, "select sb.fp32[0:128]@100000[1,%u], sb.fp32[0:128]@0[1,%u], sb.fp32[0:128]@0[1,%u], sb.fp32[0:128]@0[1,%u]",
             n, n, n, n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, 2 * n), VEC_GHZ));
    snprintf(insn, sizeof insn, "bn_stats sb.fp32[0:128]@100000[1,6], sb.fp32[0:128]@0[1,%u]", n);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, n), VEC_GHZ));
    unsigned groups = 6 * (1 + n / 60);
    snprintf(insn, sizeof insn, "bn_aggr sb.fp32[0:128]@100000[1,2], sb.fp32[0:128]@0[1,%u]", groups);
    assert_int_equal(second_duration(chip, "vector", insn, OT_ENG_VECTOR), ps(maxu(MIN_II, 13 * (groups / 3)), VEC_GHZ));
  }
  /* TensorE transpose: max(P, min(64, F)) */
  const unsigned pf[][2] = {{128, 128}, {128, 32}, {32, 128}, {64, 16}};
  for (size_t i = 0; i < 4; i++) {
    unsigned P = pf[i][0], F = pf[i][1];
    snprintf(insn, sizeof insn, "transpose ps.fp32[0:%u]@8192[1,%u], sb.fp32[0:%u]@0[1,%u]", F, P, P, F);
    assert_int_equal(second_duration(chip, "tensor", insn, OT_ENG_TENSOR), ps(maxu(P, F < 64 ? F : 64), PE_GHZ));
  }
  ot_chip_free(chip);
}

/* A matmul's duration: max(N, 64) cycles at 2.4 GHz; fp32 4x; the LoadStationary before it is
** hidden behind the previous matmul. */
static void test_matmul_formula(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  const unsigned ns[] = {16, 64, 128, 512};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    for (int fp32 = 0; fp32 < 2; fp32++) {
      unsigned n = ns[i];
      const char *dt = fp32 ? "fp32" : "bf16";
      char text[2048];
      snprintf(text, sizeof text,
               ".engine vector\n memset sb.%s[0:128]@0[1,1024], 0.5\n sem_inc s0\n"
               ".engine tensor\n sem_wait s0, 1\n"
               " ldweights sb.%s[0:128]@0[1,128]\n matmul ps.fp32[0:128]@0[1,%u], sb.%s[0:128]@0[1,%u]\n"
               " ldweights sb.%s[0:128]@0[1,128]\n matmul ps.fp32[0:128]@2048[1,%u], sb.%s[0:128]@0[1,%u]\n",
               dt, dt, n, dt, n, dt, n, dt, n);
      ot_program *p = st_asm(text);
      ot_error err;
      ot_error_clear(&err);
      ot_sim *s = st_run(chip, p, NULL, &err);
      if (!s) fprintf(stderr, "%s\n", err.msg);
      assert_non_null(s);
      const ot_trace_event *mm1 = NULL, *mm2 = NULL, *ls2 = NULL;
      int seen_ls = 0, seen_mm = 0;
      const ot_trace *t = ot_sim_get_trace(s);
      for (size_t k = 0; k < t->n; k++) {
        const ot_trace_event *e = &t->ev[k];
        if (e->track_kind != OT_TRACK_ENGINE || e->track != OT_ENG_TENSOR || e->kind != OT_EV_INSN) continue;
        const char *nm = t->strings + e->name;
        if (!strncmp(nm, "ldweights", 9) && ++seen_ls == 2) ls2 = e;
        if (!strncmp(nm, "matmul", 6)) { if (++seen_mm == 1) mm1 = e; else mm2 = e; }
      }
      assert_non_null(mm1); assert_non_null(mm2); assert_non_null(ls2);
      uint64_t cyc = maxu(n, 64) * (fp32 ? 4 : 1);
      assert_int_equal(mm2->dur, ps((double)cyc, PE_GHZ));
      /* the second LoadStationary ran during the first matmul */
      assert_true(ls2->start >= mm1->start && ls2->start < mm1->start + mm1->dur);
      /* and the second matmul started as soon as both the PE array and the weights were ready */
      ot_ps ready = mm1->start + mm1->dur > ls2->start + ls2->dur ? mm1->start + mm1->dur : ls2->start + ls2->dur;
      assert_int_equal(mm2->start, ready);
      ot_sim_free(s);
      ot_program_free(p);
    }
  }
  ot_chip_free(chip);
}

/* Independent engines overlap; a dependent engine waits for the semaphore. */
static void test_overlap_and_wait(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(".engine vector\n memset sb.fp32[0:128]@0[1,4096], 1\n sem_inc s0\n"
                         ".engine gpsimd\n memset sb.fp32[0:128]@65536[1,4096], 2\n"
                         ".engine scalar\n sem_wait s0, 1\n activate sb.fp32[0:128]@32768[1,4096], sb.fp32[0:128]@0[1,4096], exp\n");
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, NULL, &err);
  assert_non_null(s);
  const ot_trace_event *v = st_event(s, OT_ENG_VECTOR, OT_EV_INSN, 0), *g = st_event(s, OT_ENG_GPSIMD, OT_EV_INSN, 0);
  const ot_trace_event *a = st_event(s, OT_ENG_SCALAR, OT_EV_INSN, 0), *w = st_event(s, OT_ENG_SCALAR, OT_EV_WAIT, 0);
  assert_non_null(v); assert_non_null(g); assert_non_null(a); assert_non_null(w);
  assert_int_equal(v->start, 0);
  assert_int_equal(g->start, 0);            /* GpSimd ran beside VectorE (no shared port on NC-v3) */
  ot_ps inc_end = v->start + v->dur + ps(4, VEC_GHZ); /* sem_inc: control_cycles */
  assert_int_equal(a->start, inc_end + 50000);       /* + semaphore latency (50 ns) */
  assert_true(w->start == 0 && w->dur == a->start);
  const ot_sim_stats *st = ot_sim_get_stats(s);
  assert_true(st->eng[OT_ENG_SCALAR].idle[OT_IDLE_SEMAPHORE] == a->start);
  assert_true(st->eng[OT_ENG_SCALAR].idle_sem[0] == a->start);
  ot_sim_free(s);
  ot_program_free(p);
  /* On NC-v2 VectorE and GpSimdE share the SBUF port: the GpSimd memset waits. */
  ot_chip *trn1 = st_chip("trn1");
  p = st_asm(".engine vector\n memset sb.fp32[0:128]@0[1,4096], 1\n.engine gpsimd\n memset sb.fp32[0:128]@65536[1,4096], 2\n");
  s = st_run(trn1, p, NULL, &err);
  assert_non_null(s);
  v = st_event(s, OT_ENG_VECTOR, OT_EV_INSN, 0);
  g = st_event(s, OT_ENG_GPSIMD, OT_EV_INSN, 0);
  assert_int_equal(g->start, v->start + v->dur);
  assert_true(ot_sim_get_stats(s)->eng[OT_ENG_GPSIMD].idle[OT_IDLE_PORT] > 0);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(trn1);
  ot_chip_free(chip);
}

/* A barrier releases every waiting engine when the last engine with work left arrives; an
** engine that halts no longer counts. */
static void test_barrier(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  /* vector and scalar meet at the barrier at once; GpSimd works, then halts without reaching it:
  ** its halt is what releases them (not a deadlock). */
  ot_program *p = st_asm(".engine vector\n memset sb.fp32[0:128]@0[1,4], 1\n barrier\n memset sb.fp32[0:128]@8192[1,4], 1\n"
                         ".engine scalar\n barrier\n activate sb.fp32[0:128]@16384[1,4], sb.fp32[0:128]@0[1,4], exp\n"
                         ".engine gpsimd\n memset sb.fp32[0:128]@32768[1,8192], 2\n halt\n");
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, NULL, &err);
  if (!s) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(s);
  const ot_trace_event *v0 = st_event(s, OT_ENG_GPSIMD, OT_EV_INSN, 0), *a = NULL;
  const ot_trace *t = ot_sim_get_trace(s);
  for (size_t i = 0; i < t->n; i++)
    if (t->ev[i].track == OT_ENG_SCALAR && t->ev[i].track_kind == OT_TRACK_ENGINE && !strncmp(t->strings + t->ev[i].name, "activate", 8))
      a = &t->ev[i];
  assert_non_null(v0);
  assert_non_null(a);
  /* scalar was released when GpSimd halted after its long memset */
  assert_true(a->start >= v0->start + v0->dur);
  assert_true(ot_sim_get_stats(s)->eng[OT_ENG_SCALAR].idle[OT_IDLE_BARRIER] > 0);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* One 1 MiB HBM -> SBUF transfer: issue + start latency + bytes / (16 engines x 23 GB/s). */
static void test_dma_time(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(".tensor x fp32 [128, 2048] input\n.engine sync\n"
                         " dma_copy q0, sb.fp32[0:128]@0[1,2048], $x[2048,128][1,2048], s0\n sem_wait s0, 1\n");
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, NULL, &err);
  assert_non_null(s);
  double bytes = 128.0 * 2048 * 4, bw = 16 * 23.0; /* GB/s = bytes/ns */
  ot_ps expect_end = 600000 + 1300000 + (ot_ps)ceil(bytes / bw * 1000.0);
  const ot_trace *t = ot_sim_get_trace(s);
  const ot_trace_event *d = NULL;
  for (size_t i = 0; i < t->n; i++) if (t->ev[i].track_kind == OT_TRACK_QUEUE) d = &t->ev[i];
  assert_non_null(d);
  assert_int_equal(d->start, 600000 + 1300000);
  assert_true(d->start + d->dur >= expect_end - 1 && d->start + d->dur <= expect_end + 1);
  /* small runs pay the overhead: 64-byte rows cost more than their bytes */
  ot_sim_free(s);
  ot_program_free(p);
  /* every other 64-byte half-row of x: runs of 64 bytes in HBM */
  p = st_asm(".tensor x fp32 [2048, 32] input\n.engine sync\n"
             " dma_copy q0, sb.fp32[0:128]@0[16,16][1,16], $x[512,128][32,16][1,16], s0\n sem_wait s0, 1\n");
  s = st_run(chip, p, NULL, &err);
  assert_non_null(s);
  t = ot_sim_get_trace(s);
  for (size_t i = 0; i < t->n; i++) if (t->ev[i].track_kind == OT_TRACK_QUEUE) d = &t->ev[i];
  double small = 128.0 * 256 * 4;
  double runs = small / 64, overhead = 256 * (1 - 64.0 / 2048);
  assert_true(fabs((double)d->dur - (small + runs * overhead) / bw * 1000.0) <= 2);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* SCALE-Sim's weight-stationary cycles, ceil(K/R)*ceil(N/C)*(2R+C+M-2)-1, on GPT-2-small GEMMs. */
static void test_scalesim_gpt2(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  const unsigned dims[] = {64, 256, 768, 2304, 3072};
  const unsigned M = 256, R = 128, C = 128;
  char *text = malloc(1 << 20);
  for (size_t a = 0; a < 5; a++)
    for (size_t b = 0; b < 5; b++) {
      unsigned N = dims[a], K = dims[b];
      size_t n = (size_t)snprintf(text, 1 << 20, ".engine tensor\n");
      for (unsigned kf = 0; kf < (K + R - 1) / R; kf++)
        for (unsigned nf = 0; nf < (N + C - 1) / C; nf++) {
          unsigned kr = K - kf * R < R ? K - kf * R : R, nc = N - nf * C < C ? N - nf * C : C;
          n += (size_t)snprintf(text + n, (1 << 20) - n, " ldweights sb.bf16[0:%u]@0[1,%u]\n"
                                " matmul ps.fp32[0:%u]@0[1,%u], sb.bf16[0:%u]@4096[1,%u], acc=%d\n",
                                kr, nc, nc, M, kr, M, kf > 0);
        }
      ot_program *p = st_asm(text);
      assert_non_null(p);
      ot_sim_options o;
      ot_sim_options_default(&o);
      o.mode = OT_SIM_TIMING;
      o.timing = OT_TIMING_SCALESIM;
      ot_error err;
      ot_error_clear(&err);
      ot_sim *s = st_run(chip, p, &o, &err);
      if (!s) fprintf(stderr, "%s\n", err.msg);
      assert_non_null(s);
      uint64_t formula = (uint64_t)((K + R - 1) / R) * ((N + C - 1) / C) * (2 * R + C + M - 2) - 1;
      uint64_t cycles = ot_sim_get_stats(s)->eng[OT_ENG_TENSOR].busy_cycles - 1; /* SCALE-Sim counts from cycle 0 */
      if (cycles != formula) fprintf(stderr, "N=%u K=%u: %llu cycles, formula %llu\n", N, K, (unsigned long long)cycles, (unsigned long long)formula);
      assert_int_equal(cycles, formula);
      ot_sim_free(s);
      ot_program_free(p);
    }
  free(text);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vector_formulas),
    cmocka_unit_test(test_more_formulas),
    cmocka_unit_test(test_matmul_formula),
    cmocka_unit_test(test_overlap_and_wait),
    cmocka_unit_test(test_barrier),
    cmocka_unit_test(test_dma_time),
    cmocka_unit_test(test_scalesim_gpt2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
