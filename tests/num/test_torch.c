/* fp32 -> bf16 and fp32 -> fp16 against PyTorch, bit for bit, over ~1.2M inputs built by
** tests/num/torch_ref.py from a fixed seed (random patterns, ties, subnormals, +-0, NaN,
** +-Inf, sweeps around the max and the min subnormal).  The script runs with OT_PYTHON
** (/usr/bin/python3, Debian's python3-torch); if it or torch is missing this test FAILS.
**
** NaN inputs: PyTorch's scalar path gives 0x7FC0 but its vectorised path keeps other bits, so
** for NaN inputs only NaN-ness is compared (docs/numerics.md).  Everything else is exact. */
#include "num_test.h"

#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>

#define NT_SEED 20240601u
#define NT_MIN_COUNT 1000000u

typedef struct {
  size_t n;
  uint32_t *in;
  uint16_t *bf16;
  uint16_t *fp16;
} nt_ref;

static void ref_generate(const char *out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' '%s/tests/num/torch_ref.py' --seed %u --out '%s'", OT_PYTHON,
           OT_SOURCE_DIR, NT_SEED, out);
  int rc = system(cmd);
  int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code != 0)
    fail_msg("PyTorch reference generation failed (exit code %d%s): this test needs %s with "
             "numpy and torch (Debian python3-numpy, python3-torch); command: %s",
             code, code == 127 ? ", interpreter not found" : "", OT_PYTHON, cmd);
}

static uint64_t le_read(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void ref_load(const char *path, nt_ref *r) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  unsigned char h[32];
  assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
  assert_memory_equal(h, "OTNUMREF", 8);
  assert_int_equal(le_read(h + 8, 4), 1);            /* version */
  assert_int_equal(le_read(h + 16, 8), NT_SEED);
  r->n = (size_t)le_read(h + 24, 8);
  assert_true(r->n >= NT_MIN_COUNT && r->n < 100000000u);
  unsigned char *raw = malloc(r->n * 8);
  r->in = malloc(r->n * sizeof *r->in);
  r->bf16 = malloc(r->n * sizeof *r->bf16);
  r->fp16 = malloc(r->n * sizeof *r->fp16);
  assert_true(raw && r->in && r->bf16 && r->fp16);
  assert_int_equal(fread(raw, 1, r->n * 8, f), r->n * 8);
  assert_int_equal(fgetc(f), EOF); /* nothing trailing */
  fclose(f);
  for (size_t i = 0; i < r->n; i++) {
    r->in[i] = (uint32_t)le_read(raw + 4 * i, 4);
    r->bf16[i] = (uint16_t)le_read(raw + 4 * r->n + 2 * i, 2);
    r->fp16[i] = (uint16_t)le_read(raw + 6 * r->n + 2 * i, 2);
  }
  free(raw);
}

static int is_nan16(uint16_t h, ot_dtype t) {
  return nt_is_nan_bits(nt_bits(ot_bits_to_f32(h, t)));
}

/* Mismatch count for one format; prints the first few.  `ours` holds our results. */
static size_t compare(const nt_ref *r, ot_dtype t, const uint16_t *theirs, const uint16_t *ours,
                      const char *what) {
  size_t bad = 0;
  for (size_t i = 0; i < r->n; i++) {
    bool ok = nt_is_nan_bits(r->in[i]) ? (is_nan16(ours[i], t) && is_nan16(theirs[i], t))
                                       : ours[i] == theirs[i];
    if (!ok && bad++ < 10)
      print_error("%s %s: fp32 0x%08x (%a): ours 0x%04x, torch 0x%04x\n", what, ot_dtype_name(t),
                  r->in[i], (double)nt_f32(r->in[i]), ours[i], theirs[i]);
  }
  return bad;
}

/* Whether x is exactly halfway between two adjacent values of t (RNE had to break a tie). */
static bool is_tie(uint32_t x, ot_dtype t) {
  if (nt_is_nan_bits(x) || (x & 0x7FFFFFFFu) >= 0x7F800000u) return false;
  uint32_t h = ot_f32_to_bits(nt_f32(x), t, NULL) & 0x7FFFu;
  double ax = fabs((double)nt_f32(x)), y = (double)ot_bits_to_f32(h, t);
  if (ax == y || (h & 0x7F80u) == 0x7F80u || (t == OT_DT_FP16 && h >= 0x7C00u)) return false;
  uint32_t other = ax > y ? h + 1 : h - 1;
  double z = (double)ot_bits_to_f32(other, t);
  if (t == OT_DT_FP16 && other == 0x7C00u) z = 65536.0; /* the value past the max */
  if (t == OT_DT_BF16 && other == 0x7F80u) z = 0x1p128;
  return fabs(ax - y) == fabs(z - ax);
}

static void test_torch_bitexact(void **state) {
  (void)state;
  const char *path = OT_BINARY_DIR "/tests/num/torch_ref.bin";
  ref_generate(path);
  nt_ref r;
  ref_load(path, &r);
  uint16_t *fast = calloc(r.n, 2), *gen = calloc(r.n, 2), *h = calloc(r.n, 2),
           *bulk = calloc(r.n, 2);
  assert_true(fast && gen && h && bulk);
  for (size_t i = 0; i < r.n; i++) {
    fast[i] = ot_f32_to_bf16(nt_f32(r.in[i]));
    gen[i] = (uint16_t)num_fmt_encode(num_fmt_of(OT_DT_BF16), r.in[i], NULL);
    h[i] = ot_f32_to_fp16(nt_f32(r.in[i]));
  }
  size_t bad = compare(&r, OT_DT_BF16, r.bf16, fast, "fast path");
  bad += compare(&r, OT_DT_BF16, r.bf16, gen, "generic");
  bad += compare(&r, OT_DT_FP16, r.fp16, h, "scalar");
  /* The bulk path reads little-endian memory, whatever the host. */
  unsigned char *le = calloc(r.n, 4);
  uint16_t *out16 = calloc(r.n, 2);
  assert_true(le && out16);
  for (size_t i = 0; i < r.n; i++)
    for (int k = 0; k < 4; k++) le[4 * i + (size_t)k] = (unsigned char)(r.in[i] >> (8 * k));
  ot_convert(out16, OT_DT_FP16, le, OT_DT_FP32, r.n, NULL);
  for (size_t i = 0; i < r.n; i++) bulk[i] = (uint16_t)le_read((unsigned char *)out16 + 2 * i, 2);
  bad += compare(&r, OT_DT_FP16, r.fp16, bulk, "ot_convert");
  ot_convert(out16, OT_DT_BF16, le, OT_DT_FP32, r.n, NULL);
  for (size_t i = 0; i < r.n; i++) bulk[i] = (uint16_t)le_read((unsigned char *)out16 + 2 * i, 2);
  bad += compare(&r, OT_DT_BF16, r.bf16, bulk, "ot_convert");
  free(le);
  free(out16);

  /* The inputs really cover the hard cases (so agreement means something). */
  size_t nan = 0, inf = 0, zero = 0, tie_b = 0, tie_h = 0, over_h = 0, over_b = 0, sub_h = 0,
         sub_b = 0;
  for (size_t i = 0; i < r.n; i++) {
    uint32_t x = r.in[i], a = x & 0x7FFFFFFFu;
    nan += nt_is_nan_bits(x);
    inf += a == 0x7F800000u;
    zero += a == 0;
    tie_b += is_tie(x, OT_DT_BF16);
    tie_h += is_tie(x, OT_DT_FP16);
    over_h += a < 0x7F800000u && (h[i] & 0x7FFFu) == 0x7C00u;
    over_b += a < 0x7F800000u && (fast[i] & 0x7FFFu) == 0x7F80u;
    sub_h += (h[i] & 0x7C00u) == 0 && (h[i] & 0x3FFu) != 0;
    sub_b += (fast[i] & 0x7F80u) == 0 && (fast[i] & 0x7Fu) != 0;
  }
  print_message("torch reference: %zu values, %zu NaN, %zu Inf, %zu zero, ties bf16 %zu fp16 %zu, "
                "finite->Inf bf16 %zu fp16 %zu, subnormal results bf16 %zu fp16 %zu\n",
                r.n, nan, inf, zero, tie_b, tie_h, over_b, over_h, sub_b, sub_h);
  assert_true(nan >= 10000 && inf >= 4 && zero >= 2);
  assert_true(tie_b >= 50000 && tie_h >= 30000);
  assert_true(over_b >= 1000 && over_h >= 1000);
  assert_true(sub_b >= 1000 && sub_h >= 1000);
  free(fast);
  free(gen);
  free(h);
  free(bulk);
  free(r.in);
  free(r.bf16);
  free(r.fp16);
  if (bad) fail_msg("%zu mismatches against PyTorch", bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_torch_bitexact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
