/* TensorE semantics: ldweights + matmul bit for bit against the documented k-order fp32
** accumulation, accumulation groups, bf16 PSUM (generation 4), the PE transpose; and the speed
** of the matmul kernel (reported, not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "test_exec_util.h"

/* The obvious reference: for each (m, n), c = c0; for k in order c = fl(c + fl(s * b)). */
static void ref_matmul(float *C, const float *S, const float *B, uint32_t K, uint32_t M, uint32_t N) {
  for (uint32_t m = 0; m < M; m++)
    for (uint32_t n = 0; n < N; n++) {
      float c = C[m * N + n];
      for (uint32_t k = 0; k < K; k++) {
        float prod = S[k * M + m] * B[k * N + n];
        c = c + prod;
      }
      C[m * N + n] = c;
    }
}

static void test_kernel_matches_reference(void **state) {
  (void)state;
  xt_seed(1);
  for (int it = 0; it < 60; it++) {
    uint32_t K = 1 + xt_below(130), M = 1 + xt_below(130), N = 1 + xt_below(200);
    float *S = malloc(sizeof(float) * K * M), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    for (uint32_t i = 0; i < K * M; i++) S[i] = xt_uniform(-2, 2);  /* fp32: products round */
    for (uint32_t i = 0; i < K * N; i++) B[i] = xt_uniform(-2, 2);
    for (uint32_t i = 0; i < M * N; i++) C[i] = R[i] = it % 2 ? xt_uniform(-100, 100) : 0.0f;
    assert_int_equal(ot_matmul_f32(C, S, B, K, M, N), OT_OK);
    ref_matmul(R, S, B, K, M, N);
    assert_true(xt_same_f32(C, R, (uint64_t)M * N, "kernel"));
    free(S), free(B), free(C), free(R);
  }
}

/* ldweights + matmul through the instruction interface, on random SBUF patterns. */
static void run_matmul_case(xt_env *e, ot_dtype st, ot_dtype mt, uint32_t K, uint32_t M, uint32_t N, bool twice) {
  uint64_t span;
  ot_ap sap = xt_rand_ap(OT_MEM_SBUF, st, 0, K, 0, M, &span);
  ot_ap map = xt_rand_ap(OT_MEM_SBUF, mt, 0, K, 8192, N, &span);
  /* dense rows are accumulated in place; other patterns (and the NaN trap) go through a copy */
  ot_ap dap = xt_below(2) ? xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, M, 2048 * xt_below(8), N)
                          : xt_rand_ap(OT_MEM_PSUM, OT_DT_FP32, 0, M, 2048 * xt_below(4), N, &span);
  e->x.trap_nonfinite = xt_below(2);
  float *S = malloc(sizeof(float) * K * M), *B = malloc(sizeof(float) * K * N);
  float *C = malloc(sizeof(float) * M * N), *R = calloc((size_t)M * N, sizeof(float));
  xt_rand_vals(S, (uint64_t)K * M, st, -3, 3);
  xt_put_f32(e, &sap, S);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = sap;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  assert_int_equal(e->core.stat_k, K);
  assert_int_equal(e->core.stat_m, M);
  assert_int_equal(e->core.stat_dtype, st);
  for (int round = 0; round < (twice ? 2 : 1); round++) {
    xt_rand_vals(B, (uint64_t)K * N, mt, -3, 3);
    xt_put_f32(e, &map, B);
    ot_insn_init(&e->insn, OT_OP_MATMUL);
    e->insn.o[0].ap = dap, e->insn.o[1].ap = map, e->insn.o[2].i = round;
    assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
    ref_matmul(R, S, B, K, M, N);
  }
  xt_get_f32(e, &dap, C);
  assert_true(xt_same_f32(C, R, (uint64_t)M * N, "matmul"));
  free(S), free(B), free(C), free(R);
}

static void test_matmul_random(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  static const ot_dtype types[] = {OT_DT_BF16, OT_DT_FP16, OT_DT_FP32, OT_DT_FP8E4M3, OT_DT_TF32, OT_DT_FP8E5M2};
  static const uint32_t Ns[] = {1, 7, 129, 512};
  xt_seed(2);
  for (int it = 0; it < 40; it++) {
    ot_dtype t = types[xt_below(6)], u = xt_below(4) ? t : types[xt_below(6)];
    run_matmul_case(e, t, u, xt_rand_parts(), xt_parts[xt_below(5)], Ns[xt_below(4)], xt_below(2));
  }
  xt_env_free(e);
}

/* Products of 16-bit inputs are exact in fp32: an order-sensitive case shows the k order. */
static void test_matmul_k_order(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap sap = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 3, 0, 1);
  ot_ap map = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 3, 64, 1);
  ot_ap dap = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 1, 0, 1);
  float s[3] = {1, 1, 1}, b[3] = {0x1p24f, 1.0f, -0x1p24f}, c;
  xt_put_f32(e, &sap, s);
  xt_put_f32(e, &map, b);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = sap;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  ot_insn_init(&e->insn, OT_OP_MATMUL);
  e->insn.o[0].ap = dap, e->insn.o[1].ap = map;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  xt_get_f32(e, &dap, &c);
  assert_true(c == 0.0f); /* (2^24 + 1) rounds to 2^24 first; exact arithmetic would give 1 */
  xt_env_free(e);
}

static void test_matmul_bf16_psum_gen4(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn3");
  xt_seed(3);
  uint32_t K = 64, M = 32, N = 129;
  ot_ap sap = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, K, 0, M);
  ot_ap map = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, K, 1024, N);
  ot_ap dap = xt_dense(OT_MEM_PSUM, OT_DT_BF16, 32, M, 2048, N);
  float S[64 * 32], B[64 * 129], C[32 * 129], R[32 * 129] = {0};
  xt_rand_vals(S, K * M, OT_DT_BF16, -2, 2);
  xt_put_f32(e, &sap, S);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = sap;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  for (int round = 0; round < 2; round++) {
    xt_rand_vals(B, K * N, OT_DT_BF16, -2, 2);
    xt_put_f32(e, &map, B);
    ot_insn_init(&e->insn, OT_OP_MATMUL);
    e->insn.o[0].ap = dap, e->insn.o[1].ap = map, e->insn.o[2].i = round;
    assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
    ref_matmul(R, S, B, K, M, N); /* fp32 accumulation, then one bf16 rounding on the write */
    for (uint32_t i = 0; i < M * N; i++) R[i] = ot_bf16_to_f32(ot_f32_to_bf16(R[i]));
  }
  xt_get_f32(e, &dap, C);
  assert_true(xt_same_f32(C, R, M * N, "bf16 psum"));
  xt_env_free(e);
}

/* ---- transposes -------------------------------------------------------------------------------- */
static void run_transpose(xt_env *e, ot_opcode op, ot_mem dmem, ot_dtype st, ot_dtype dt, uint32_t P, uint32_t F) {
  uint64_t span;
  ot_ap src = xt_rand_ap(OT_MEM_SBUF, st, 0, P, 0, F, &span);
  ot_ap dst = xt_rand_ap(dmem, dt, 0, F, 4096, P, &span);
  uint32_t *in = malloc(4ull * P * F), *out = malloc(4ull * P * F);
  uint32_t mask = ot_dtype_size(st) == 4 ? 0xFFFFFFFFu : (1u << (8 * ot_dtype_size(st))) - 1;
  for (uint32_t i = 0; i < P * F; i++) in[i] = (uint32_t)xt_next() & mask; /* any bits, NaNs included */
  xt_put_bits(e, &src, in);
  ot_insn_init(&e->insn, op);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
  assert_int_equal(xt_exec(e, op == OT_OP_TRANSPOSE ? OT_ENG_TENSOR : OT_ENG_VECTOR), OT_OK);
  xt_get_bits(e, &dst, out);
  for (uint32_t p = 0; p < P; p++)
    for (uint32_t f = 0; f < F; f++) {
      uint32_t want = st == dt ? in[p * F + f] : ot_f32_to_bits(ot_bits_to_f32(in[p * F + f], st), dt, NULL);
      if (out[f * P + p] != want) fail_msg("%s [%u,%u] at (%u,%u): got %08x want %08x", ot_opcodes[op].mnemonic, P, F, p,
                                           f, out[f * P + p], want);
    }
  free(in), free(out);
}

static void test_transpose(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(4);
  static const uint32_t sizes[] = {1, 7, 32, 64, 100, 128};
  for (int it = 0; it < 30; it++) {
    uint32_t P = sizes[xt_below(6)], F = sizes[xt_below(6)];
    run_transpose(e, OT_OP_TRANSPOSE, OT_MEM_PSUM, OT_DT_FP32, OT_DT_FP32, P, F);
    run_transpose(e, OT_OP_TRANSPOSE, OT_MEM_PSUM, OT_DT_BF16, OT_DT_BF16, P, F);
    run_transpose(e, OT_OP_TRANSPOSE, OT_MEM_PSUM, OT_DT_BF16, OT_DT_FP32, P, F);
    uint32_t p32 = 1 + xt_below(32), f32 = 1 + xt_below(32);
    run_transpose(e, OT_OP_TRANSPOSE32, xt_below(2) ? OT_MEM_SBUF : OT_MEM_PSUM, OT_DT_FP16, OT_DT_FP16, p32, f32);
    run_transpose(e, OT_OP_TRANSPOSE32, OT_MEM_SBUF, OT_DT_FP32, OT_DT_BF16, p32, f32);
  }
  /* shapes that do not transpose are run-time errors */
  ot_insn_init(&e->insn, OT_OP_TRANSPOSE);
  e->insn.o[0].ap = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 8, 0, 4);
  e->insn.o[1].ap = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 8, 0, 4);
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst is [8, 4], the transpose of src [8, 4] is [4, 8]", NULL));
  xt_env_free(e);
}

/* A PE transpose is a PE-array write: a matmul may accumulate onto it. */
static void test_matmul_accumulates_onto_transpose(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  float ones[4] = {1, 1, 1, 1}, c[4];
  ot_ap src = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 0, 2);
  ot_ap dst = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 2, 0, 2);
  xt_put_f32(e, &src, ones);
  ot_insn_init(&e->insn, OT_OP_TRANSPOSE);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = src;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  ot_insn_init(&e->insn, OT_OP_MATMUL);
  e->insn.o[0].ap = dst, e->insn.o[1].ap = src, e->insn.o[2].i = 1;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  xt_get_f32(e, &dst, c);
  for (int i = 0; i < 4; i++) assert_true(c[i] == 3.0f);
  xt_env_free(e);
}

/* ---- speed --------------------------------------------------------------------------------- */
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_matmul_speed(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap sap = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 0, 128);
  ot_ap map = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 128, 1024, 512);
  ot_ap dap = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 128, 0, 512);
  float *v = malloc(sizeof(float) * 128 * 512);
  xt_rand_vals(v, 128 * 512, OT_DT_BF16, -1, 1);
  xt_put_f32(e, &sap, v);
  xt_put_f32(e, &map, v);
  ot_insn_init(&e->insn, OT_OP_LDWEIGHTS);
  e->insn.o[0].ap = sap;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  ot_insn mm;
  ot_insn_init(&mm, OT_OP_MATMUL);
  mm.o[0].ap = dap, mm.o[1].ap = map;
  e->insn = mm;
  assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  e->insn.o[2].i = 1;
  int reps = 40;
  double t0 = now_s();
  for (int i = 0; i < reps; i++) assert_int_equal(xt_exec(e, OT_ENG_TENSOR), OT_OK);
  double dt = now_s() - t0;
  fprintf(stderr, "matmul 128x128x512 (acc=1) through ot_exec_insn: %.1f GFLOP/s\n",
          2.0 * 128 * 128 * 512 * reps / dt * 1e-9);
  free(v);
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kernel_matches_reference),
    cmocka_unit_test(test_matmul_random),
    cmocka_unit_test(test_matmul_k_order),
    cmocka_unit_test(test_matmul_bf16_psum_gen4),
    cmocka_unit_test(test_transpose),
    cmocka_unit_test(test_matmul_accumulates_onto_transpose),
    cmocka_unit_test(test_matmul_speed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
