/* Integer dtypes: ranges, fp32 -> integer (round to nearest even, saturate, NaN -> 0) and the
** two's-complement encodings.  Integer arithmetic only, like the float encoder. */
#include "num/num_internal.h"

bool num_int_range(ot_dtype t, int64_t *lo, int64_t *hi) {
  int64_t l, h;
  switch (t) {
  case OT_DT_INT8: l = INT8_MIN; h = INT8_MAX; break;
  case OT_DT_UINT8: l = 0; h = UINT8_MAX; break;
  case OT_DT_INT16: l = INT16_MIN; h = INT16_MAX; break;
  case OT_DT_UINT16: l = 0; h = UINT16_MAX; break;
  case OT_DT_INT32: l = INT32_MIN; h = INT32_MAX; break;
  case OT_DT_UINT32: l = 0; h = UINT32_MAX; break;
  default: return false;
  }
  if (lo) *lo = l;
  if (hi) *hi = h;
  return true;
}

int64_t num_int_saturate(int64_t v, ot_dtype t) {
  int64_t lo = 0, hi = 0;
  if (!num_int_range(t, &lo, &hi)) return 0;
  return v < lo ? lo : v > hi ? hi : v;
}

/* |x| rounded to the nearest integer, ties to even, capped at 2^40 (beyond every range). */
static uint64_t num_f32_round_mag(uint32_t exp, uint32_t man) {
  const uint64_t cap = UINT64_C(1) << 40;
  if (exp == 0) return 0; /* zero or subnormal: < 0.5 */
  uint64_t m = man | (1u << 23);
  int e = (int)exp - 150; /* |x| = m * 2^e */
  if (e >= 0) return e > 16 ? cap : m << e;
  int shift = -e;
  if (shift > 25) return 0; /* |x| < 0.5 */
  uint64_t kept = m >> shift;
  uint64_t dropped = m & ((UINT64_C(1) << shift) - 1u);
  uint64_t half = UINT64_C(1) << (shift - 1);
  if (dropped > half || (dropped == half && (kept & 1u))) kept++;
  return kept;
}

int64_t num_int_from_f32(uint32_t f32_bits, ot_dtype t) {
  uint32_t exp = (f32_bits >> 23) & 0xFFu;
  uint32_t man = f32_bits & 0x7FFFFFu;
  bool neg = (f32_bits >> 31) != 0;
  if (exp == 0xFF && man != 0) return 0; /* NaN -> 0 */
  uint64_t mag = exp == 0xFF ? UINT64_C(1) << 40 : num_f32_round_mag(exp, man);
  int64_t v = neg ? -(int64_t)mag : (int64_t)mag;
  return num_int_saturate(v, t);
}

int64_t num_int_from_bits(uint32_t bits, ot_dtype t) {
  switch (t) {
  case OT_DT_INT8: return (int8_t)(uint8_t)bits; /* implementation-defined in C11, but two's
                                                     complement on every compiler we support */
  case OT_DT_UINT8: return (uint8_t)bits;
  case OT_DT_INT16: return (int16_t)(uint16_t)bits;
  case OT_DT_UINT16: return (uint16_t)bits;
  case OT_DT_INT32: return (int32_t)bits;
  case OT_DT_UINT32: return bits;
  default: return 0;
  }
}

uint32_t num_int_to_bits(int64_t v, ot_dtype t) {
  uint32_t u = (uint32_t)(uint64_t)v; /* modular: the two's-complement low 32 bits */
  switch (ot_dtype_size(t)) {
  case 1: return u & 0xFFu;
  case 2: return u & 0xFFFFu;
  default: return u;
  }
}
