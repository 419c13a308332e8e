/* TensorE: LoadStationary (ldweights), MultiplyMoving (matmul) and the PE-array transpose;
** VectorE's transpose32 shares the transpose body.
**
** matmul is the simulator's hot loop, so its fp32 kernel is blocked into 6 x 16 output tiles
** held in registers, with the stationary and moving operands packed so each k step reads two
** contiguous streams.  Blocking only changes which outputs are computed together: every
** output still adds its K products in k order, one rounding per multiply and per add, so the
** result is the same as the obvious triple loop (tests/sim/test_exec_pe.c checks bit for bit).
** -ffp-contract=off keeps the compiler from fusing the multiply and the add. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_exec_int.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

/* Tile geometry: 6 x 16 (AVX2 / portable: 12 ymm accumulators).  The code takes the geometry
** as a parameter (mm_geo) so a wider one (AVX-512) can be added; MB and NB bound every one. */
#define MB 6  /* output rows (stationary columns, m) per tile, at most */
#define NB 16 /* output columns (moving columns, n) per tile, at most */

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MM_X86_DISPATCH 1
#endif

#if defined(__GNUC__)
#define MM_INLINE static inline __attribute__((always_inline))
#else
#define MM_INLINE static inline
#endif

/* Kernels: 0 plain, 1 AVX2 multiply-then-add, 2 AVX2 FMA (exact products only). */
typedef struct {
  uint32_t mb, nb;
  int plain_kernel, fma_kernel; /* the kernel for inexact and for exact products */
} mm_geo;

static mm_geo mm_geometry(void) {
  mm_geo g = {6, 16, 0, 0};
#if MM_X86_DISPATCH
  if (__builtin_cpu_supports("avx2")) {
    g.plain_kernel = 1;
    g.fma_kernel = __builtin_cpu_supports("fma") ? 2 : 1;
  }
#endif
  return g;
}

/* Memory the next step will read (the moving operand's rows for the next columns, a partition
** pitch apart): fetched into L2 a few lines per tile while the kernel computes, so the step
** after it finds them there instead of waiting for each in turn. */
typedef struct {
  const uint8_t *base;
  uint64_t pitch;       /* bytes between rows */
  uint32_t rows, lines; /* rows, 64-byte lines per row */
  uint32_t per_tile;    /* lines to fetch per tile */
  uint64_t next;        /* lines fetched so far */
} mm_ahead;

MM_INLINE void mm_ahead_step(mm_ahead *a) {
#if defined(__GNUC__)
  if (!a) return;
  for (uint32_t i = 0; i < a->per_tile && a->next < (uint64_t)a->rows * a->lines; i++, a->next++)
    __builtin_prefetch(a->base + a->next / a->lines * a->pitch + a->next % a->lines * 64, 0, 2);
#else
  (void)a;
#endif
}

/* ---- the fp32 kernel ----------------------------------------------------------------------- */
/* Portable tile (6 x 16): plain loops the compiler vectorises for whatever the baseline has. */
MM_INLINE void mm_tile_plain(float *t, uint64_t ld, const float *sp, const float *bp, uint32_t K) {
  float acc[6][16];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 16; j++) acc[i][j] = t[i * ld + j];
  for (uint32_t k = 0; k < K; k++, sp += 6, bp += 16)
    for (int i = 0; i < 6; i++)
      for (int j = 0; j < 16; j++) acc[i][j] = acc[i][j] + sp[i] * bp[j];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 16; j++) t[i * ld + j] = acc[i][j];
}

#if MM_X86_DISPATCH
typedef float mm_v8 __attribute__((vector_size(32)));

/* Macros, not functions: a vector passed or returned by value would change the ABI between
** the AVX2 and the baseline build of the same code (-Wpsabi). */
#define MM_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define MM_STORE(p, v) memcpy((p), &(v), sizeof(v))
#define MM_SPLAT(x) ((mm_v8){(x), (x), (x), (x), (x), (x), (x), (x)})
/* Row i of the tile: two 8-lane accumulators, loaded, updated with s = sp[i], stored. */
#define MM_ROW_LOAD(i) MM_LOAD(c##i##a, t + (i) * ld), MM_LOAD(c##i##b, t + (i) * ld + 8)
#define MM_ROW_STEP(i) s = MM_SPLAT(sp[i]), c##i##a = c##i##a + s * b0, c##i##b = c##i##b + s * b1
#define MM_ROW_STORE(i) MM_STORE(t + (i) * ld, c##i##a), MM_STORE(t + (i) * ld + 8, c##i##b)

/* Rows i of the tile at t + i * ld: t[6][16] += sp[k][6]^T . bp[k][16], k in order, twelve
** 8-lane accumulators in AVX registers (a multiply, then an add: two roundings per step). */
MM_INLINE void mm_tile_v8(float *t, uint64_t ld, const float *sp, const float *bp, uint32_t K) {
  mm_v8 c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b, b0, b1, s;
  MM_ROW_LOAD(0), MM_ROW_LOAD(1), MM_ROW_LOAD(2), MM_ROW_LOAD(3), MM_ROW_LOAD(4), MM_ROW_LOAD(5);
  for (uint32_t k = 0; k < K; k++, sp += 6, bp += 16) {
    MM_LOAD(b0, bp), MM_LOAD(b1, bp + 8);
    MM_ROW_STEP(0), MM_ROW_STEP(1), MM_ROW_STEP(2), MM_ROW_STEP(3), MM_ROW_STEP(4), MM_ROW_STEP(5);
  }
  MM_ROW_STORE(0), MM_ROW_STORE(1), MM_ROW_STORE(2), MM_ROW_STORE(3), MM_ROW_STORE(4), MM_ROW_STORE(5);
}

/* The FMA tile: only used when every product s*b is exactly representable in fp32 (see
** mm_ranges_exact), so fma(s, b, acc) = fl(acc + s*b) = fl(acc + fl(s*b)): the very same
** result as the multiply-then-add tile, in half the instructions. */
#define MM_ROW_STEP_FMA(i) \
  s = MM_SPLAT(sp[i]), c##i##a = (mm_v8)_mm256_fmadd_ps((__m256)s, (__m256)b0, (__m256)c##i##a), \
  c##i##b = (mm_v8)_mm256_fmadd_ps((__m256)s, (__m256)b1, (__m256)c##i##b)
__attribute__((target("avx2,fma"))) static void mm_tile_fma(float *t, uint64_t ld, const float *sp, const float *bp,
                                                             uint32_t K) {
  mm_v8 c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b, b0, b1, s;
  MM_ROW_LOAD(0), MM_ROW_LOAD(1), MM_ROW_LOAD(2), MM_ROW_LOAD(3), MM_ROW_LOAD(4), MM_ROW_LOAD(5);
  for (uint32_t k = 0; k < K; k++, sp += 6, bp += 16) {
    MM_LOAD(b0, bp), MM_LOAD(b1, bp + 8);
    MM_ROW_STEP_FMA(0), MM_ROW_STEP_FMA(1), MM_ROW_STEP_FMA(2), MM_ROW_STEP_FMA(3), MM_ROW_STEP_FMA(4), MM_ROW_STEP_FMA(5);
  }
  MM_ROW_STORE(0), MM_ROW_STORE(1), MM_ROW_STORE(2), MM_ROW_STORE(3), MM_ROW_STORE(4), MM_ROW_STORE(5);
}

/* The tile for a block of R < 6 rows (the last of M), in place: no wasted rows, no copy.  One
** body for both kernels: MM_TILE_R_STEP is the FMA (exact products only, as mm_tile_fma) or a
** multiply, then an add; the non-FMA one is compiled for a target without FMA, so it cannot be
** fused even by accident. */
#define MM_TILE_R_BODY(STEP)                                                                                     \
  __m256 ca[6], cb[6];                                                                                           \
  for (int i = 0; i < R; i++) ca[i] = _mm256_loadu_ps(t + i * ld), cb[i] = _mm256_loadu_ps(t + i * ld + 8);      \
  for (uint32_t k = 0; k < K; k++, sp += 6, bp += 16) {                                                          \
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);                                              \
    for (int i = 0; i < R; i++) {                                                                                \
      __m256 s = _mm256_set1_ps(sp[i]);                                                                          \
      STEP;                                                                                                      \
    }                                                                                                            \
  }                                                                                                              \
  for (int i = 0; i < R; i++) _mm256_storeu_ps(t + i * ld, ca[i]), _mm256_storeu_ps(t + i * ld + 8, cb[i]);
__attribute__((target("avx2,fma"), always_inline)) static inline void mm_tile_fma_r(float *t, uint64_t ld,
                                                                                    const float *sp, const float *bp,
                                                                                    uint32_t K, const int R) {
  MM_TILE_R_BODY((ca[i] = _mm256_fmadd_ps(s, b0, ca[i]), cb[i] = _mm256_fmadd_ps(s, b1, cb[i])))
}
__attribute__((target("avx2"), always_inline)) static inline void mm_tile_v8_r(float *t, uint64_t ld, const float *sp,
                                                                               const float *bp, uint32_t K,
                                                                               const int R) {
  MM_TILE_R_BODY((ca[i] = _mm256_add_ps(ca[i], _mm256_mul_ps(s, b0)), cb[i] = _mm256_add_ps(cb[i], _mm256_mul_ps(s, b1))))
}
#define MM_ROWS_SWITCH(f, R)                                                                                     \
  switch (R) {                                                                                                   \
  case 1: f(t, ld, sp, bp, K, 1); break;                                                                         \
  case 2: f(t, ld, sp, bp, K, 2); break;                                                                         \
  case 3: f(t, ld, sp, bp, K, 3); break;                                                                         \
  case 4: f(t, ld, sp, bp, K, 4); break;                                                                         \
  default: f(t, ld, sp, bp, K, 5); break;                                                                        \
  }
__attribute__((target("avx2,fma"))) static void mm_tile_fma_rows(float *t, uint64_t ld, const float *sp,
                                                                  const float *bp, uint32_t K, uint32_t R) {
  MM_ROWS_SWITCH(mm_tile_fma_r, R)
}
__attribute__((target("avx2"))) static void mm_tile_v8_rows(float *t, uint64_t ld, const float *sp, const float *bp,
                                                            uint32_t K, uint32_t R) {
  MM_ROWS_SWITCH(mm_tile_v8_r, R)
}

#endif

#if MM_X86_DISPATCH
#define MM_TILE(v8, ...)                                                                                  \
  ((v8) == 2 ? mm_tile_fma(__VA_ARGS__) : (v8) ? mm_tile_v8(__VA_ARGS__) : mm_tile_plain(__VA_ARGS__))
#else
#define MM_TILE(v8, ...) ((void)(v8), mm_tile_plain(__VA_ARGS__))
#endif

/* Copy the valid part of the mb x nb tile at (m0, n0) between C (row pitch ldc) and a dense tile. */
MM_INLINE void mm_tile_io(float *C, uint64_t ldc, float *t, uint32_t M, uint32_t N, uint32_t m0, uint32_t n0,
                          uint32_t mb, uint32_t nb, bool load) {
  for (uint32_t i = 0; i < mb; i++)
    for (uint32_t j = 0; j < nb; j++) {
      bool in = m0 + i < M && n0 + j < N;
      float *c = in ? &C[(uint64_t)(m0 + i) * ldc + n0 + j] : NULL;
      if (load) t[i * nb + j] = c ? *c : 0.0f;
      else if (c) *c = t[i * nb + j];
    }
}

/* Row blocks of the stationary operand: ceil(M / 6) blocks, each packed as 6 columns (zero
** padded).  Every block holds 6 rows but the last: when M % 6 is 1 or 2, the last 6 + (M % 6)
** rows are two blocks of 4 and 2 + (M % 6) (a 1- or 2-row tile waits on its few accumulators'
** latency, so it costs as much as a 4-row one: M = 128 is 20 x 6 + 4 + 4, not 21 x 6 + 2). */
MM_INLINE void mm_block_rows(uint32_t M, uint32_t bm, uint32_t *m0, uint32_t *rows) {
  uint32_t q = M / MB, r = M % MB;
  if ((r == 1 || r == 2) && q >= 1 && bm + 1 >= q) {
    *m0 = (q - 1) * MB + (bm == q ? 4 : 0);
    *rows = bm == q ? r + 2 : 4;
    return;
  }
  *m0 = bm * MB;
  *rows = M - *m0 < MB ? M - *m0 : MB;
}

/* Start fetching a tile's rows of C (into L2): they are a partition pitch apart, so the
** hardware prefetcher does not see them coming, and each tile would wait for its first loads. */
MM_INLINE void mm_prefetch_tile(const float *C, uint64_t ldc, uint32_t m0, uint32_t rows, uint32_t n0) {
#if defined(__GNUC__)
  for (uint32_t i = 0; i < rows; i++) __builtin_prefetch(C + (uint64_t)(m0 + i) * ldc + n0, 0, 2);
#else
  (void)C, (void)ldc, (void)m0, (void)rows, (void)n0;
#endif
}

/* n blocks outer so one packed moving panel (K x nb floats) stays in L1 across all m blocks.
** Whole tiles are updated in place in C; edge tiles through a zero-padded copy. */
MM_INLINE void mm_run(float *C, uint64_t ldc, const float *Sp, const float *Bp, uint32_t K, uint32_t M, uint32_t N,
                      int v8, uint32_t mb, uint32_t nb, mm_ahead *ah, bool zero) {
  uint32_t nmb = (M + mb - 1) / mb, nnb = (N + nb - 1) / nb;
  float t[MB * NB];
  for (uint32_t bn = 0; bn < nnb; bn++)
    for (uint32_t bm = 0; bm < nmb; bm++) {
      uint32_t m0, rows, n0 = bn * nb, pm0, prows;
      mm_ahead_step(ah);
      mm_block_rows(M, bm, &m0, &rows);
      const float *sp = Sp + (uint64_t)bm * K * mb, *bp = Bp + (uint64_t)bn * K * nb;
      if (zero) /* a new accumulation group: the tile's part of C starts at +0, here rather than in a pass of its own */
        for (uint32_t i = 0; i < rows; i++) memset(C + (uint64_t)(m0 + i) * ldc + n0, 0, (N - n0 < nb ? N - n0 : nb) * sizeof *C);
      else if (bm + 1 < nmb) mm_block_rows(M, bm + 1, &pm0, &prows), mm_prefetch_tile(C, ldc, pm0, prows, n0);
      else if (n0 + nb < N) mm_block_rows(M, 0, &pm0, &prows), mm_prefetch_tile(C, ldc, pm0, prows, n0 + nb);
      if (rows == mb && n0 + nb <= N) {
        MM_TILE(v8, C + (uint64_t)m0 * ldc + n0, ldc, sp, bp, K);
        continue;
      }
#if MM_X86_DISPATCH
      if (v8 && n0 + nb <= N) { /* fewer rows, whole columns */
        if (v8 == 2) mm_tile_fma_rows(C + (uint64_t)m0 * ldc + n0, ldc, sp, bp, K, rows);
        else mm_tile_v8_rows(C + (uint64_t)m0 * ldc + n0, ldc, sp, bp, K, rows);
        continue;
      }
#endif
      mm_tile_io(C, ldc, t, m0 + rows, N, m0, n0, mb, nb, true);
      MM_TILE(v8, t, nb, sp, bp, K);
      mm_tile_io(C, ldc, t, m0 + rows, N, m0, n0, mb, nb, false);
    }
}

static void mm_run_generic(float *C, uint64_t ldc, const float *Sp, const float *Bp, uint32_t K, uint32_t M,
                           uint32_t N, mm_ahead *ah, bool zero) {
  mm_run(C, ldc, Sp, Bp, K, M, N, 0, 6, 16, ah, zero);
}

#if MM_X86_DISPATCH
/* The same code with 256-bit vectors (no FMA: multiply and add stay separate roundings). */
__attribute__((target("avx2"))) static void mm_run_avx2(float *C, uint64_t ldc, const float *Sp, const float *Bp,
                                                         uint32_t K, uint32_t M, uint32_t N, mm_ahead *ah,
                                                         bool zero) {
  mm_run(C, ldc, Sp, Bp, K, M, N, 1, 6, 16, ah, zero);
}
__attribute__((target("avx2,fma"))) static void mm_run_fma(float *C, uint64_t ldc, const float *Sp, const float *Bp,
                                                            uint32_t K, uint32_t M, uint32_t N, mm_ahead *ah,
                                                            bool zero) {
  mm_run(C, ldc, Sp, Bp, K, M, N, 2, 6, 16, ah, zero);
}
#endif

/* Every product of an element of a[0..na) and of b[0..nb) is exactly representable in fp32:
** both types carry at most 11 significant bits (so a product has at most 22 <= 24), and the
** magnitudes keep every nonzero product inside the normal range (no rounding to a subnormal or
** to Inf).  Then fusing the multiply into the add cannot change a single bit. */
static bool mm_type_short(ot_dtype t) {
  return t == OT_DT_BF16 || t == OT_DT_FP16 || t == OT_DT_TF32 || t == OT_DT_FP8E4M3 || t == OT_DT_FP8E4M3FN ||
         t == OT_DT_FP8E5M2 || t == OT_DT_FP8E3M4;
}

/* Smallest nonzero and largest magnitude (NaN shows as a non-finite maximum). */
static void mm_range_plain(const float *v, uint64_t n, float *lo, float *hi) {
  float mn = INFINITY, mx = 0;
  for (uint64_t i = 0; i < n; i++) {
    float a = fabsf(v[i]);
    if (a > mx || a != a) mx = a != a ? INFINITY : a;
    if (a != 0 && a < mn) mn = a;
  }
  *lo = mn, *hi = mx;
}

#if MM_X86_DISPATCH
/* The same scan eight lanes at a time (it runs over every moving tile, so it must be cheap). */
__attribute__((target("avx2"))) static void mm_range_avx2(const float *v, uint64_t n, float *lo, float *hi) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), inf = _mm256_set1_ps(INFINITY);
  __m256 mn = inf, mx = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_and_ps(_mm256_loadu_ps(v + i), absmask);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    mx = _mm256_max_ps(mx, a);
    __m256 nz = _mm256_blendv_ps(a, inf, _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_EQ_OQ));
    mn = _mm256_min_ps(mn, nz);
  }
  float m8[8], x8[8], n8[8];
  _mm256_storeu_ps(m8, mn), _mm256_storeu_ps(x8, mx), _mm256_storeu_ps(n8, nan);
  float tlo, thi;
  mm_range_plain(v + i, n - i, &tlo, &thi);
  for (int k = 0; k < 8; k++) {
    if (m8[k] < tlo) tlo = m8[k];
    if (x8[k] > thi) thi = x8[k];
    if (n8[k] != 0) thi = INFINITY; /* a NaN lane: all-ones mask, itself a NaN, compares unequal */
  }
  *lo = tlo, *hi = thi;
}
#endif

static void mm_range(const float *v, uint64_t n, double *lo, double *hi) {
  float l, h;
#if MM_X86_DISPATCH
  if (__builtin_cpu_supports("avx2")) mm_range_avx2(v, n, &l, &h);
  else
#endif
    mm_range_plain(v, n, &l, &h);
  *lo = l, *hi = h;
}

/* The exactness test from the two operands' ranges (smallest nonzero, largest magnitude). */
static bool mm_ranges_exact(ot_dtype ta, double alo, double ahi, ot_dtype tb, double blo, double bhi) {
  if (!mm_type_short(ta) || !mm_type_short(tb)) return false;
  if (!isfinite(ahi) || !isfinite(bhi)) return false;         /* Inf/NaN inputs: keep the plain path */
  if (ahi == 0 || bhi == 0) return true;                        /* every product is zero */
  return alo * blo >= 0x1p-126 && ahi * bhi < 0x1p127;          /* double: no under/overflow here */
}

/* Packing: Sp[bm][k][mb] from S [K][M], and row k of B into Bp[bn][k][nb], zero-padded, so
** each k step of a tile reads mb + nb consecutive floats.  mm_pack_block copies w <= n floats
** and zeroes the rest (fixed-size copies for whole blocks, which the compiler inlines). */
MM_INLINE void mm_pack_block(float *d, const float *s, uint32_t w, uint32_t n) {
  if (w == n) memcpy(d, s, n * sizeof *d);
  else for (uint32_t i = 0; i < n; i++) d[i] = i < w ? s[i] : 0.0f;
}

MM_INLINE void mm_pack_s_c(float *Sp, const float *S, uint32_t K, uint32_t M, uint32_t mb, mm_ahead *ah) {
  uint32_t nmb = (M + mb - 1) / mb, m0, rows;
  for (uint32_t k = 0; k < K; k++) {
    mm_ahead_step(ah);
    for (uint32_t bm = 0; bm < nmb; bm++) {
      mm_block_rows(M, bm, &m0, &rows);
      mm_pack_block(Sp + ((uint64_t)bm * K + k) * mb, S + (uint64_t)k * M + m0, rows, mb);
    }
  }
}

/* ah: memory to fetch meanwhile (NULL: none). */
static void mm_pack_s(float *Sp, const float *S, uint32_t K, uint32_t M, uint32_t mb, mm_ahead *ah) {
  (void)mb; /* the one geometry: mb = MB */
  mm_pack_s_c(Sp, S, K, M, MB, ah);
}

MM_INLINE void mm_pack_b_row_c(float *Bp, const float *row, uint32_t k, uint32_t K, uint32_t N, uint32_t nb) {
  uint32_t nnb = (N + nb - 1) / nb;
  for (uint32_t bn = 0; bn < nnb; bn++) {
    uint32_t n0 = bn * nb;
    mm_pack_block(Bp + ((uint64_t)bn * K + k) * nb, row + n0, N - n0 < nb ? N - n0 : nb, nb);
  }
}

static void mm_pack_b_row(float *Bp, const float *row, uint32_t k, uint32_t K, uint32_t N, uint32_t nb) {
  (void)nb; /* the one geometry: nb = NB */
  mm_pack_b_row_c(Bp, row, k, K, N, NB);
}

/* A dense little-endian bf16 row of N elements at p straight into the packed panels (row k),
** and the running range of its magnitudes as bits: mx[j] the largest |bits|, mn[j] the
** smallest |bits| - 1 (wrapping, so zeros never count as the smallest nonzero), per lane j. */
MM_INLINE void mm_bf16_row_c(float *Bp, const uint8_t *p, uint32_t k, uint32_t K, uint32_t N, uint32_t nb,
                             uint16_t *mx, uint16_t *mn) {
  uint32_t nnb = (N + nb - 1) / nb;
  for (uint32_t bn = 0; bn < nnb; bn++) {
    uint32_t n0 = bn * nb, w = N - n0 < nb ? N - n0 : nb;
    float *d = Bp + ((uint64_t)bn * K + k) * nb;
    uint16_t h[NB];
    uint32_t o[NB];
    if (w == nb) {
      memcpy(h, p + 2 * (uint64_t)n0, nb * sizeof *h);
    } else {
      memset(h, 0, sizeof h);
      memcpy(h, p + 2 * (uint64_t)n0, w * sizeof *h);
    }
    for (uint32_t j = 0; j < nb; j++) {
      uint16_t a = (uint16_t)(h[j] & 0x7FFF), am = (uint16_t)(a - 1u);
      mx[j] = a > mx[j] ? a : mx[j];
      mn[j] = am < mn[j] ? am : mn[j];
      o[j] = (uint32_t)h[j] << 16;
    }
    memcpy(d, o, nb * sizeof *o);
  }
}

static void mm_bf16_row_plain(float *Bp, const uint8_t *p, uint32_t k, uint32_t K, uint32_t N, uint32_t nb,
                              uint16_t *mx, uint16_t *mn) {
  (void)nb; /* the one geometry: nb = NB */
  mm_bf16_row_c(Bp, p, k, K, N, NB, mx, mn);
}

#if MM_X86_DISPATCH
/* The same with AVX2 intrinsics, 16 elements a step; mx and mn hold 16 lanes each. */
__attribute__((target("avx2"))) static void mm_bf16_row_avx2(float *Bp, const uint8_t *p, uint32_t k, uint32_t K,
                                                              uint32_t N, uint32_t nb, uint16_t *mx, uint16_t *mn) {
  const __m256i absmask = _mm256_set1_epi16(0x7FFF), one = _mm256_set1_epi16(1);
  __m256i vx = _mm256_loadu_si256((const __m256i *)(const void *)mx);
  __m256i vn = _mm256_loadu_si256((const __m256i *)(const void *)mn);
  uint32_t nfull = N / nb * nb; /* elements in whole blocks */
  for (uint32_t n0 = 0; n0 < nfull; n0 += nb) {
    float *d = Bp + ((uint64_t)(n0 / nb) * K + k) * nb;
    for (uint32_t j = 0; j < nb; j += 16) {
      __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * (uint64_t)(n0 + j)));
      __m256i a = _mm256_and_si256(h, absmask);
      vx = _mm256_max_epu16(vx, a);
      vn = _mm256_min_epu16(vn, _mm256_sub_epi16(a, one));
      __m256i lo = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16);
      __m256i hi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16);
      _mm256_storeu_si256((__m256i *)(void *)(d + j), lo);
      _mm256_storeu_si256((__m256i *)(void *)(d + j + 8), hi);
    }
  }
  _mm256_storeu_si256((__m256i *)(void *)mx, vx);
  _mm256_storeu_si256((__m256i *)(void *)mn, vn);
  if (nfull < N) { /* the last, partial block: through the portable code on a shifted row */
    uint32_t w = N - nfull;
    mm_bf16_row_plain(Bp + (uint64_t)(nfull / nb) * K * nb, p + 2 * (uint64_t)nfull, k, K, w, nb, mx, mn);
  }
}
#endif

static uint64_t mm_packed_s(uint32_t K, uint32_t M, uint32_t mb) { return (uint64_t)(M + mb - 1) / mb * mb * K; }
static uint64_t mm_packed_b(uint32_t K, uint32_t N, uint32_t nb) { return (uint64_t)(N + nb - 1) / nb * nb * K; }

/* C += S^T . B from operands packed for g; row m of C at C + m * ldc (zero: C = +0 first).
** exact: every product is exact in fp32 (mm_ranges_exact), so the FMA kernel gives the same
** bits.  ah: memory to fetch meanwhile (NULL: none). */
static void mm_compute(const mm_geo *g, float *C, uint64_t ldc, const float *Sp, const float *Bp, uint32_t K,
                       uint32_t M, uint32_t N, bool exact, mm_ahead *ah, bool zero) {
  int kern = exact ? g->fma_kernel : g->plain_kernel;
#if MM_X86_DISPATCH
  switch (kern) {
  case 2: mm_run_fma(C, ldc, Sp, Bp, K, M, N, ah, zero); return;
  case 1: mm_run_avx2(C, ldc, Sp, Bp, K, M, N, ah, zero); return;
  default: break;
  }
#endif
  (void)kern;
  mm_run_generic(C, ldc, Sp, Bp, K, M, N, ah, zero);
}

ot_status ot_matmul_f32(float *C, const float *S, const float *B, uint32_t K, uint32_t M, uint32_t N) {
  if (!K || !M || !N) return OT_OK;
  mm_geo g = mm_geometry();
  float *Sp = malloc(mm_packed_s(K, M, g.mb) * sizeof *Sp), *Bp = malloc(mm_packed_b(K, N, g.nb) * sizeof *Bp);
  if (Sp && Bp) {
    mm_pack_s(Sp, S, K, M, g.mb, NULL);
    for (uint32_t k = 0; k < K; k++) mm_pack_b_row(Bp, B + (uint64_t)k * N, k, K, N, g.nb);
    mm_compute(&g, C, N, Sp, Bp, K, M, N, false, NULL, false);
  }
  ot_status st = Sp && Bp ? OT_OK : OT_ENOMEM;
  free(Sp), free(Bp);
  return st;
}

/* ---- LoadStationary ------------------------------------------------------------------------ */
ot_status exec_ldweights(ot_exec_op *e) {
  ot_core_state *core = e->x->mem.core;
  const ot_chip *c = e->x->chip;
  const ot_view *src = &e->v[0];
  uint64_t K = src->parts, M = src->free_elems;
  /* The stationary buffer holds rows x cols floats; stationary_fmax may not exceed cols. */
  uint32_t mmax = c->tensor.stationary_fmax < c->tensor.cols ? c->tensor.stationary_fmax : c->tensor.cols;
  if (K > c->tensor.rows || M == 0 || M > mmax)
    return exec_fail(e, "src: stationary [%llu, %llu], the PE array holds up to [%u rows, %u columns]",
                     (unsigned long long)K, (unsigned long long)M, c->tensor.rows, mmax);
  if (!core || !core->stationary) return exec_fail(e, "TensorE has no stationary buffer in this context");
  ot_status st = exec_check_init(e, 0);
  if (st != OT_OK) return st;
  /* [k][m]: iteration order, a partition row at a time, fetching a few rows ahead */
  ot_view_cursor cur;
  ot_view_cursor_init(&cur, &e->x->mem, src);
  for (uint32_t k = 0; k < 8 && k < K; k++) ot_view_prefetch_partition(&e->x->mem, src, k);
  for (uint32_t k = 0; k < K; k++) {
    ot_view_prefetch_partition(&e->x->mem, src, k + 8);
    ot_cursor_load_f32(&e->x->mem, src, &cur, core->stationary + (uint64_t)k * M, M);
  }
  core->stat_k = (uint32_t)K, core->stat_m = (uint32_t)M, core->stat_dtype = (uint8_t)src->dtype;
  return OT_OK;
}

/* ---- MultiplyMoving ------------------------------------------------------------------------ */
static ot_status matmul_check(ot_exec_op *e, const ot_core_state *core) {
  const ot_view *dst = &e->v[0], *mov = &e->v[1];
  if (!core || !core->stationary || core->stat_k == 0)
    return exec_fail(e, "no stationary loaded: ldweights must precede matmul");
  if (mov->parts != core->stat_k)
    return exec_fail(e, "mov spans %u partitions, the stationary loaded by ldweights is [K=%u, M=%u]: mov needs K = %u",
                     mov->parts, core->stat_k, core->stat_m, core->stat_k);
  if (dst->parts != core->stat_m)
    return exec_fail(e, "dst spans %u partitions, the stationary loaded by ldweights is [K=%u, M=%u]: dst needs M = %u",
                     dst->parts, core->stat_k, core->stat_m, core->stat_m);
  if (dst->free_elems != mov->free_elems)
    return exec_fail(e, "dst has %llu elements per partition, mov %llu: dst [M, N] needs mov's N",
                     (unsigned long long)dst->free_elems, (unsigned long long)mov->free_elems);
  bool bf16_ok = dst->dtype == OT_DT_BF16 && e->x->chip->generation >= 4;
  if (dst->dtype != OT_DT_FP32 && !bf16_ok)
    return exec_fail(e, "dst is %s; matmul writes fp32 PSUM (or bf16 from generation 4; this chip is %u)",
                     ot_dtype_name(dst->dtype), e->x->chip->generation);
  return OT_OK;
}

/* acc=1 continues an accumulation group: every dst word must have been last written by a
** matmul (trainium.md §2.4 calls anything else undefined; we make it an error). */
static ot_status matmul_check_acc(ot_exec_op *e) {
  const ot_view *dst = &e->v[0];
  uint64_t bad = 0, F = dst->free_elems ? dst->free_elems : 1;
  if (ot_view_is_mm_written(&e->x->mem, dst, &bad)) return OT_OK;
  return exec_fail(e, "accumulating into an uninitialised PSUM bank: dst element %llu (partition %llu, free index %llu) "
                      "was not last written by a matmul (use acc=0 to start an accumulation group)",
                   (unsigned long long)bad, (unsigned long long)(dst->part_start + bad / F), (unsigned long long)(bad % F));
}

/* The byte address of partition row 0 of a view whose partition rows are each one dense run
** of bf16 elements in SBUF or PSUM (little-endian host), or NULL; *pitch: bytes between rows. */
static const uint8_t *matmul_bf16_rows(ot_exec_op *e, const ot_view *v, uint64_t *pitch) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const ot_sram *s = ot_mem_sram(&e->x->mem, v->mem);
  if (v->dtype != OT_DT_BF16 || !s) return NULL;
  uint64_t n = 1;
  for (unsigned d = v->ndim; d-- > 0;) { /* innermost first: each dim continues the previous */
    if (v->size[d] != 1 && v->stride[d] != (int64_t)(2 * n)) return NULL;
    n *= v->size[d];
  }
  *pitch = s->part_bytes;
  return s->data + (uint64_t)v->part_start * s->part_bytes + v->offset;
#else
  (void)e, (void)v, (void)pitch;
  return NULL;
#endif
}

/* The range of magnitudes from the bits mm_bf16_row gathered (smallest nonzero, largest;
** non-finite when any is Inf or NaN). */
static void mm_bf16_range(const uint16_t *mx, const uint16_t *mn, double *lo, double *hi) {
  uint16_t x = 0, y = UINT16_MAX;
  for (unsigned j = 0; j < NB; j++) x = mx[j] > x ? mx[j] : x, y = mn[j] < y ? mn[j] : y;
  float flo, fhi;
  uint32_t blo = (uint32_t)(uint16_t)(y + 1u) << 16, bhi = (uint32_t)x << 16;
  memcpy(&flo, &blo, sizeof flo), memcpy(&fhi, &bhi, sizeof fhi);
  *hi = x >= 0x7F80 ? INFINITY : fhi;      /* Inf or NaN: non-finite */
  *lo = y == UINT16_MAX ? INFINITY : flo;  /* all zeros: no nonzero magnitude */
}

/* Columns [n0, n0 + w) of K dense bf16 rows (row k at rows + k * pitch) into packed panels Bp,
** and their range. */
static void mm_bf16_cols(const mm_geo *g, float *Bp, const uint8_t *rows, uint64_t pitch, uint32_t K, uint32_t n0,
                         uint32_t w, bool prefetch, double *lo, double *hi) {
  uint16_t mx[NB], mn[NB];
  for (unsigned j = 0; j < NB; j++) mx[j] = 0, mn[j] = UINT16_MAX;
#if MM_X86_DISPATCH
  bool avx2 = __builtin_cpu_supports("avx2");
#endif
  const uint8_t *p = rows + 2 * (uint64_t)n0;
  for (uint32_t k = 0; k < K; k++, p += pitch) {
#if defined(__GNUC__)
    if (prefetch && k + 4 < K) /* a few rows ahead */
      for (uint32_t b = 0; b < 2 * w; b += 64) __builtin_prefetch(p + 4 * pitch + b);
#else
    (void)prefetch;
#endif
#if MM_X86_DISPATCH
    if (avx2) mm_bf16_row_avx2(Bp, p, k, K, w, g->nb, mx, mn);
    else
#endif
      mm_bf16_row_plain(Bp, p, k, K, w, g->nb, mx, mn);
  }
  mm_bf16_range(mx, mn, lo, hi);
}

/* The moving tensor [K][N] straight into packed panels, a partition row at a time, and the
** range of its magnitudes (smallest nonzero, largest; non-finite when any is Inf or NaN).
** (Dense bf16 rows take matmul_bf16_chunks instead.) */
static ot_status matmul_load_moving(ot_exec_op *e, const mm_geo *g, float *Bp, uint32_t K, uint32_t N, double *lo,
                                    double *hi) {
  const ot_view *mov = &e->v[1];
  for (uint32_t k = 0; k < 4 && k < K; k++) ot_view_prefetch_partition(&e->x->mem, mov, k);
  float *row = exec_alloc(e, N, sizeof *row);
  if (!row) return OT_ENOMEM;
  ot_view_cursor c;
  ot_view_cursor_init(&c, &e->x->mem, mov);
  for (uint32_t k = 0; k < K; k++) {
    ot_view_prefetch_partition(&e->x->mem, mov, k + 4); /* a few rows ahead */
    ot_cursor_load_f32(&e->x->mem, mov, &c, row, N);
    mm_pack_b_row(Bp, row, k, K, N, g->nb);
  }
  mm_range(Bp, mm_packed_b(K, N, g->nb), lo, hi);
  return OT_OK;
}

/* Dense bf16 moving rows: MM_CHUNK columns at a time, converted, then multiplied, while the next
** columns' rows are fetched -- the packed columns (K x 128 floats) stay in L2 with the stationary
** panels and C's columns, and the moving rows arrive while the kernel computes.  Each chunk has
** its own exactness test; both kernels give the same bits, so values cannot depend on it. */
#define MM_CHUNK 128
static ot_status matmul_bf16_chunks(ot_exec_op *e, const mm_geo *g, float *C, uint64_t ldc, const float *Sp,
                                    const uint8_t *rows, uint64_t pitch, uint32_t K, uint32_t M, uint32_t N,
                                    double alo, double ahi, bool zero) {
  const ot_core_state *core = e->x->mem.core;
  float *Bp = exec_alloc(e, mm_packed_b(K, N < MM_CHUNK ? N : MM_CHUNK, g->nb), sizeof *Bp);
  if (!Bp) return OT_ENOMEM;
#if defined(__GNUC__)
  for (uint32_t k = 0; k < 4 && k < K; k++)
    for (uint32_t b = 0; b < 2 * (N < MM_CHUNK ? N : MM_CHUNK); b += 64) __builtin_prefetch(rows + k * pitch + b);
#endif
  for (uint32_t n0 = 0; n0 < N; n0 += MM_CHUNK) {
    uint32_t w = N - n0 < MM_CHUNK ? N - n0 : MM_CHUNK, n1 = n0 + w, w1 = N - n1 < MM_CHUNK ? N - n1 : MM_CHUNK;
    double blo, bhi;
    mm_bf16_cols(g, Bp, rows, pitch, K, n0, w, n0 == 0, &blo, &bhi);
    uint32_t tiles = (w + g->nb - 1) / g->nb * ((M + g->mb - 1) / g->mb), lines = (2 * w1 + 63) / 64;
    mm_ahead ah = {rows + 2 * (uint64_t)n1, pitch, n1 < N ? K : 0, lines, 0, 0};
    ah.per_tile = tiles ? (uint32_t)(((uint64_t)K * lines + tiles - 1) / tiles) : 0;
    bool exact = mm_ranges_exact((ot_dtype)core->stat_dtype, alo, ahi, (ot_dtype)e->v[1].dtype, blo, bhi);
    mm_compute(g, C + n0, ldc, Sp, Bp, K, M, w, exact, &ah, zero);
  }
  return OT_OK;
}

/* An fp32 PSUM destination laid out as dense rows (one run per partition, 4-byte aligned) is
** accumulated in place: no copy of PSUM in and out.  Not under the NaN trap, which must see
** the results before they are written, nor when stores saturate or draw random numbers. */
static float *matmul_inplace(ot_exec_op *e, uint64_t *ldc) {
  const ot_view *dst = &e->v[0];
  const ot_cvt *c = &e->x->cvt;
  ot_sram *ps = ot_mem_sram(&e->x->mem, dst->mem);
  bool plain = (c->round != OT_ROUND_STOCHASTIC || !c->rng) && !c->saturate;
  if (dst->dtype != OT_DT_FP32 || !ps || !plain || e->x->trap_nonfinite || ps->part_bytes % 4 || dst->offset % 4)
    return NULL;
  uint64_t n = 1;
  for (unsigned d = dst->ndim; d-- > 0;) { /* innermost first: each dim continues the previous */
    if (dst->size[d] != 1 && dst->stride[d] != (int64_t)(4 * n)) return NULL;
    n *= dst->size[d];
  }
  *ldc = ps->part_bytes / 4;
  return (float *)(void *)(ps->data + (uint64_t)dst->part_start * ps->part_bytes + dst->offset);
}

/* The accumulator C (row m at C + m * ldc): dst's own PSUM rows when matmul_inplace allows,
** else a copy (*copy).  It starts from dst's values for acc=1, from zeros for acc=0 (*zero: the
** kernel is to zero it, tile by tile). */
static ot_status matmul_accumulator(ot_exec_op *e, uint32_t M, uint32_t N, float **C, uint64_t *ldc, bool *copy,
                                    bool *zero) {
  bool acc = e->in->o[2].i != 0;
  ot_status st = acc ? matmul_check_acc(e) : OT_OK;
  if (st != OT_OK) return st;
  *C = matmul_inplace(e, ldc);
  *copy = *C == NULL, *zero = false;
  if (*copy) {
    *ldc = N;
    if (!(*C = exec_alloc(e, (uint64_t)M * N, sizeof **C))) return OT_ENOMEM;
    if (acc) ot_view_load_f32(&e->x->mem, &e->v[0], *C);
    else memset(*C, 0, (size_t)M * N * sizeof **C);
    return OT_OK;
  }
  *zero = !acc;
  return OT_OK;
}

ot_status exec_matmul(ot_exec_op *e) {
  ot_core_state *core = e->x->mem.core;
  ot_status st = matmul_check(e, core);
  if (st != OT_OK) return st;
  uint32_t K = core->stat_k, M = core->stat_m, N = (uint32_t)e->v[1].free_elems;
  mm_geo g = mm_geometry();
  float *Sp = exec_alloc(e, mm_packed_s(K, M, g.mb), sizeof *Sp), *Bp = NULL, *C;
  uint64_t ldc, pitch = 0;
  bool copy, zero;
  double alo, ahi, blo = 0, bhi = 0;
  if (!Sp) return OT_ENOMEM;
  if ((st = exec_check_init(e, 1)) != OT_OK) return st;
  /* Chunks read the moving operand while C is being written: only from another memory. */
  const uint8_t *rows = matmul_bf16_rows(e, &e->v[1], &pitch);
  bool chunks = rows && e->v[1].mem != e->v[0].mem;
  if (!chunks) { /* whole, before the accumulator is touched */
    if (!(Bp = exec_alloc(e, mm_packed_b(K, N, g.nb), sizeof *Bp))) return OT_ENOMEM;
    if (rows) mm_bf16_cols(&g, Bp, rows, pitch, K, 0, N, true, &blo, &bhi);
    else if ((st = matmul_load_moving(e, &g, Bp, K, N, &blo, &bhi)) != OT_OK) return st;
  }
  if ((st = matmul_accumulator(e, M, N, &C, &ldc, &copy, &zero)) != OT_OK) return st;
  mm_pack_s(Sp, core->stationary, K, M, g.mb, NULL);
  mm_range(core->stationary, (uint64_t)K * M, &alo, &ahi);
  if (chunks && N) {
    if ((st = matmul_bf16_chunks(e, &g, C, ldc, Sp, rows, pitch, K, M, N, alo, ahi, zero)) != OT_OK) return st;
  } else if (N) {
    bool exact = mm_ranges_exact((ot_dtype)core->stat_dtype, alo, ahi, (ot_dtype)e->v[1].dtype, blo, bhi);
    mm_compute(&g, C, ldc, Sp, Bp, K, M, N, exact, NULL, zero);
  }
  if (copy) return exec_write_f32(e, 0, C, true);
  ot_view_mark_written(&e->x->mem, &e->v[0], true);
  return OT_OK;
}

/* ---- transposes ---------------------------------------------------------------------------- */
/* transpose (PE array, SBUF -> PSUM) and transpose32 (VectorE): dst[f][p] = src[p][f], raw bits
** when the types match, else through fp32 with rounding.  A PE transpose is a PE-array write,
** so matmul may accumulate onto it. */
ot_status exec_transpose(ot_exec_op *e) {
  const ot_view *dst = &e->v[0], *src = &e->v[1];
  uint64_t P = src->parts, F = src->free_elems;
  if (dst->parts != F || dst->free_elems != P)
    return exec_fail(e, "dst is [%u, %llu], the transpose of src [%llu, %llu] is [%llu, %llu]", dst->parts,
                     (unsigned long long)dst->free_elems, (unsigned long long)P, (unsigned long long)F,
                     (unsigned long long)F, (unsigned long long)P);
  uint32_t *sb, *tb = exec_alloc(e, P * F, sizeof *tb);
  if (!tb) return OT_ENOMEM;
  ot_status st = exec_read_bits(e, 1, &sb);
  if (st != OT_OK) return st;
  exec_transpose_bits(sb, tb, P, F);
  bool pe = e->in->op == OT_OP_TRANSPOSE;
  if (dst->dtype == src->dtype) return exec_write_bits(e, 0, tb, pe);
  float *f = exec_alloc(e, P * F, sizeof *f);
  if (!f) return OT_ENOMEM;
  ot_bits_to_f32_n(src->dtype, tb, f, P * F);
  return exec_write_f32(e, 0, f, pe);
}
