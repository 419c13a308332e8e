/* Internal interface of the numerics module: the generic float format descriptor and the
** integer-only encoder/decoder that every float conversion goes through.
**
** Everything here works on bit patterns with integer arithmetic only, so results never depend
** on the host's floating-point environment (rounding mode, flush-to-zero, x87 excess
** precision) and are the same on every machine.  Tests include this header to check the fast
** paths against the generic code.
*/
#ifndef OT_NUM_INTERNAL_H
#define OT_NUM_INTERNAL_H

#include <opentrn/num.h>

#include <stdbool.h>
#include <stdint.h>

/* How a format spells NaN. */
typedef enum {
  NUM_NAN_IEEE = 0, /* top exponent, any non-zero mantissa (payload kept) */
  NUM_NAN_ALL_ONES, /* only S.1111...1 (OCP "fn" formats); the rest of the top exponent is finite */
} num_nan_style;

/* A binary floating-point format: 1 sign bit, exp_bits, man_bits, exponent bias. */
typedef struct {
  uint8_t exp_bits;
  uint8_t man_bits;
  int16_t bias;
  bool has_inf;        /* top exponent with zero mantissa is Inf (IEEE-style) */
  num_nan_style nan;
  uint8_t container_shift; /* encoding sits this many bits up in its container (tf32: 13) */
} num_fmt;

/* The descriptor of a float dtype; NULL for integers and out-of-range values. */
const num_fmt *num_fmt_of(ot_dtype t);

/* Width of the encoding without container padding: 1 + exp_bits + man_bits. */
unsigned num_fmt_width(const num_fmt *f);
/* Largest finite magnitude's encoding (no sign, no container shift). */
uint32_t num_fmt_max_enc(const num_fmt *f);

/* fp32 bit pattern -> encoding of f (in its container), rounding as cvt says (NULL = RNE).
** Draws exactly one ot_rng_u32 per call when cvt asks for stochastic rounding. */
uint32_t num_fmt_encode(const num_fmt *f, uint32_t f32_bits, const ot_cvt *cvt);
/* Encodes the exact value (neg ? -1 : 1) * mag * 2^exp2 with one rounding (mag < 2^40).
** Used for integer -> float so that int32 -> bf16 is rounded once, not twice. */
uint32_t num_fmt_encode_scaled(const num_fmt *f, bool neg, uint64_t mag, int exp2,
                               const ot_cvt *cvt);
/* Encoding of f -> fp32 bit pattern; exact (every format here is a subset of fp32). */
uint32_t num_fmt_decode(const num_fmt *f, uint32_t bits);

/* fp32 bit pattern <-> float without aliasing problems. */
uint32_t num_f32_bits(float x);
float num_bits_f32(uint32_t b);

/* Integers: range of an integer dtype (false for float dtypes). */
bool num_int_range(ot_dtype t, int64_t *lo, int64_t *hi);
/* fp32 bits -> integer of type t: round to nearest even, saturate, NaN -> 0. */
int64_t num_int_from_f32(uint32_t f32_bits, ot_dtype t);
/* Sign-extends (signed types) or zero-extends the low bits of an integer encoding. */
int64_t num_int_from_bits(uint32_t bits, ot_dtype t);
/* An integer value already inside t's range -> its two's-complement encoding in t's width. */
uint32_t num_int_to_bits(int64_t v, ot_dtype t);
/* Clamps v to t's range. */
int64_t num_int_saturate(int64_t v, ot_dtype t);

#endif
