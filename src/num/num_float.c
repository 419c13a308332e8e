/* Generic float encoder/decoder driven by a num_fmt, plus the public scalar conversions.
**
** One encoder serves every format: a finite value is taken as an exact integer significand
** times a power of two, rounded once to the format's precision (with the exponent unbounded),
** and only then checked for overflow.  That is exactly IEEE-754 rounding, including gradual
** underflow, and it needs no floating-point arithmetic at all.
*/
#include "num/num_internal.h"

#include <string.h>

#define NUM_F32_SIGN 0x80000000u
#define NUM_F32_EXP 0x7F800000u
#define NUM_F32_MAN 0x007FFFFFu

uint32_t num_f32_bits(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}

float num_bits_f32(uint32_t b) {
  float x;
  memcpy(&x, &b, sizeof x);
  return x;
}

unsigned num_fmt_width(const num_fmt *f) {
  return 1u + f->exp_bits + f->man_bits;
}

static uint32_t num_fmt_exp_all_ones(const num_fmt *f) {
  return ((1u << f->exp_bits) - 1u) << f->man_bits;
}

uint32_t num_fmt_max_enc(const num_fmt *f) {
  uint32_t top = num_fmt_exp_all_ones(f);
  if (f->nan == NUM_NAN_ALL_ONES)
    return top | ((1u << f->man_bits) - 2u); /* S.1111.110: only all-ones is NaN */
  return top - 1u; /* largest exponent below the reserved one, mantissa all ones */
}

/* Index of the highest set bit of m (m != 0). */
static int num_msb64(uint64_t m) {
  int p = 0;
  for (int step = 32; step > 0; step >>= 1) {
    if (m >> step) {
      m >>= step;
      p += step;
    }
  }
  return p;
}

/* Whether dropping the low `shift` bits of m (shift >= 1) rounds the kept part up.
** RNE: above half, or exactly half with an odd kept part.  SR: the top 32 dropped bits plus
** 32 uniform random bits carry out of the dropped field, so the probability of rounding up
** is the dropped fraction (to 2^-32 resolution); bits below those 32 are truncated. */
static bool num_round_up(uint64_t m, int shift, bool stochastic, uint32_t rnd) {
  uint64_t kept = shift >= 64 ? 0 : m >> shift;
  uint64_t dropped = shift >= 64 ? m : m & ((UINT64_C(1) << shift) - 1u);
  if (stochastic) {
    uint64_t frac;
    if (shift <= 32)
      frac = dropped << (32 - shift);
    else
      frac = shift - 32 >= 64 ? 0 : dropped >> (shift - 32);
    return frac + rnd > UINT64_C(0xFFFFFFFF);
  }
  if (shift - 1 >= 64) return false; /* m < 2^64 <= half */
  uint64_t half = UINT64_C(1) << (shift - 1);
  return dropped > half || (dropped == half && (kept & 1u));
}

/* The encoding (sign excluded, container excluded) an overflowing value turns into. */
static uint32_t num_fmt_overflow_enc(const num_fmt *f, bool saturate) {
  if (saturate) return num_fmt_max_enc(f);
  if (f->has_inf) return num_fmt_exp_all_ones(f);
  return num_fmt_exp_all_ones(f) | ((1u << f->man_bits) - 1u); /* no Inf: NaN */
}

/* Rounds mag * 2^exp2 (mag != 0) to f; returns the magnitude encoding. */
static uint32_t num_fmt_round(const num_fmt *f, uint64_t mag, int exp2, bool stochastic,
                              uint32_t rnd, bool saturate) {
  const int man = f->man_bits;
  const int emin = 1 - f->bias; /* exponent of the smallest normal */
  int ex = exp2 + num_msb64(mag); /* value lies in [2^ex, 2^(ex+1)) */
  int ulp = (ex > emin ? ex : emin) - man; /* subnormals share emin's ulp: gradual underflow */
  int shift = ulp - exp2;
  uint64_t q;
  if (shift <= 0) {
    q = mag << -shift; /* exact: q < 2^(man+1) by the choice of ulp */
  } else {
    q = (shift >= 64 ? 0 : mag >> shift) + num_round_up(mag, shift, stochastic, rnd);
  }
  if (q == 0) return 0;
  /* (biased exponent - 1) << man, plus q with its implicit bit, is the encoding; this also
  ** covers subnormals (biased exponent 0, no implicit bit) and a carry into the next binade. */
  uint64_t enc = ((uint64_t)(ulp + man + f->bias - 1) << man) + q;
  if (enc > num_fmt_max_enc(f)) return num_fmt_overflow_enc(f, saturate);
  return (uint32_t)enc;
}

static uint32_t num_fmt_sign(const num_fmt *f) {
  return 1u << (f->exp_bits + f->man_bits);
}

/* NaN keeps its sign and the top payload bits; a payload that truncates to zero gets the
** quiet bit so the result is still NaN.  Formats with a single NaN get that one. */
static uint32_t num_fmt_encode_nan(const num_fmt *f, uint32_t f32_bits) {
  uint32_t all = num_fmt_exp_all_ones(f);
  if (f->nan == NUM_NAN_ALL_ONES) return all | ((1u << f->man_bits) - 1u);
  uint32_t payload = (f32_bits & NUM_F32_MAN) >> (23 - f->man_bits);
  if (payload == 0) payload = 1u << (f->man_bits - 1);
  return all | payload;
}

static bool num_cvt_stochastic(const ot_cvt *cvt) {
  return cvt && cvt->round == OT_ROUND_STOCHASTIC && cvt->rng;
}

uint32_t num_fmt_encode(const num_fmt *f, uint32_t f32_bits, const ot_cvt *cvt) {
  bool stochastic = num_cvt_stochastic(cvt);
  uint32_t rnd = stochastic ? ot_rng_u32(cvt->rng) : 0; /* one draw per value, always */
  bool saturate = cvt && cvt->saturate;
  uint32_t sign = (f32_bits & NUM_F32_SIGN) ? num_fmt_sign(f) : 0;
  uint32_t exp = (f32_bits & NUM_F32_EXP) >> 23;
  uint32_t man = f32_bits & NUM_F32_MAN;
  uint32_t enc;
  if (exp == 0xFF && man != 0) {
    enc = num_fmt_encode_nan(f, f32_bits);
  } else if (exp == 0xFF) {
    enc = num_fmt_overflow_enc(f, saturate);
  } else if (exp == 0 && man == 0) {
    enc = 0;
  } else {
    uint64_t mag = exp ? (man | (1u << 23)) : man;
    int exp2 = exp ? (int)exp - 150 : -149;
    enc = num_fmt_round(f, mag, exp2, stochastic, rnd, saturate);
  }
  return (sign | enc) << f->container_shift;
}

uint32_t num_fmt_encode_scaled(const num_fmt *f, bool neg, uint64_t mag, int exp2,
                               const ot_cvt *cvt) {
  bool stochastic = num_cvt_stochastic(cvt);
  uint32_t rnd = stochastic ? ot_rng_u32(cvt->rng) : 0;
  uint32_t sign = neg ? num_fmt_sign(f) : 0;
  uint32_t enc = mag ? num_fmt_round(f, mag, exp2, stochastic, rnd, cvt && cvt->saturate) : 0;
  return (sign | enc) << f->container_shift;
}

/* mag * 2^exp2 (mag < 2^24, exactly representable in fp32) -> fp32 magnitude bits. */
static uint32_t num_f32_compose(uint32_t mag, int exp2) {
  if (mag == 0) return 0;
  int p = num_msb64(mag);
  int ex = exp2 + p;
  if (ex >= -126) return ((uint32_t)(ex + 127) << 23) | ((mag << (23 - p)) & NUM_F32_MAN);
  return mag << (exp2 + 149); /* an fp32 subnormal */
}

uint32_t num_fmt_decode(const num_fmt *f, uint32_t bits) {
  bits >>= f->container_shift; /* tf32: the low 13 bits are not part of the value */
  const uint32_t man_mask = (1u << f->man_bits) - 1u;
  const uint32_t exp_max = (1u << f->exp_bits) - 1u;
  uint32_t sign = (bits & num_fmt_sign(f)) ? NUM_F32_SIGN : 0;
  uint32_t exp = (bits >> f->man_bits) & exp_max;
  uint32_t man = bits & man_mask;
  int shift = 23 - f->man_bits;
  if (exp == exp_max && f->nan == NUM_NAN_IEEE) /* Inf (man 0) or NaN with its payload */
    return sign | NUM_F32_EXP | (man << shift);
  if (exp == exp_max && man == man_mask) /* the all-ones NaN */
    return sign | NUM_F32_EXP | (man << shift);
  int emin = 1 - f->bias;
  if (exp == 0) return sign | num_f32_compose(man, emin - f->man_bits);
  return sign | num_f32_compose(man | (1u << f->man_bits), (int)exp - f->bias - f->man_bits);
}

uint32_t ot_f32_to_bits(float x, ot_dtype t, const ot_cvt *cvt) {
  const num_fmt *f = num_fmt_of(t);
  if (f) {
    if (t == OT_DT_BF16 && !num_cvt_stochastic(cvt) && !(cvt && cvt->saturate))
      return ot_f32_to_bf16(x);
    return num_fmt_encode(f, num_f32_bits(x), cvt);
  }
  if ((unsigned)t >= OT_DT_COUNT) return 0;
  return num_int_to_bits(num_int_from_f32(num_f32_bits(x), t), t);
}

float ot_bits_to_f32(uint32_t bits, ot_dtype t) {
  const num_fmt *f = num_fmt_of(t);
  if (f) return num_bits_f32(num_fmt_decode(f, bits));
  if ((unsigned)t >= OT_DT_COUNT) return 0.0f;
  int64_t v = num_int_from_bits(bits, t);
  bool neg = v < 0;
  uint64_t mag = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  return num_bits_f32(num_fmt_encode_scaled(num_fmt_of(OT_DT_FP32), neg, mag, 0, NULL));
}

/* bf16 fast path: bf16 is the top half of fp32, so RNE is one add with the tie bias.  It can
** not carry past Inf (the largest non-NaN pattern is 0xFF800000).  Tested against the generic
** encoder in tests/num/test_fastpath.c. */
uint16_t ot_f32_to_bf16(float x) {
  uint32_t b = num_f32_bits(x);
  if ((b & ~NUM_F32_SIGN) > NUM_F32_EXP) { /* NaN: keep sign and top payload, stay NaN */
    uint32_t h = b >> 16;
    return (uint16_t)((h & 0x7Fu) ? h : (h | 0x40u));
  }
  return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

float ot_bf16_to_f32(uint16_t b) {
  return num_bits_f32((uint32_t)b << 16); /* exact for every bf16 encoding, NaNs included */
}

uint16_t ot_f32_to_fp16(float x) {
  return (uint16_t)num_fmt_encode(num_fmt_of(OT_DT_FP16), num_f32_bits(x), NULL);
}

float ot_fp16_to_f32(uint16_t h) {
  return num_bits_f32(num_fmt_decode(num_fmt_of(OT_DT_FP16), h));
}
