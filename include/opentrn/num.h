/* OpenTRN numerics: the data types of the chip and exact conversions to and from fp32.
**
** Formats (bits: sign/exponent/mantissa, bias, specials):
**   fp32     1/8/23  bias 127   IEEE-754 binary32
**   tf32     1/8/10  bias 127   stored in 32 bits, low 13 mantissa bits zero
**   bf16     1/8/7   bias 127   IEEE-style (Inf, NaN, subnormals)
**   fp16     1/5/10  bias 15    IEEE-754 binary16
**   fp8e4m3  1/4/3   bias 7     Neuron "FP8_EXP4 (IEEE-754)": top exponent is Inf/NaN, max 240
**   fp8e4m3fn 1/4/3  bias 7     OCP E4M3FN: no Inf, NaN only S.1111.111, max 448
**   fp8e5m2  1/5/2   bias 15    IEEE-style, max 57344
**   fp8e3m4  1/3/4   bias 3     cFP8 default: IEEE-style, max 15.5
**   integers int8/uint8/int16/uint16/int32/uint32 (two's complement, little endian)
** See docs/numerics.md for rounding, overflow, NaN and subnormal behaviour.
*/
#ifndef OPENTRN_NUM_H
#define OPENTRN_NUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(id, name, bytes, is_float, exp_bits, man_bits) -- the one list of data types. */
#define OT_DTYPE_MAP(X)                          \
  X(FP32,      "fp32",      4, 1, 8, 23)         \
  X(TF32,      "tf32",      4, 1, 8, 10)         \
  X(BF16,      "bf16",      2, 1, 8, 7)          \
  X(FP16,      "fp16",      2, 1, 5, 10)         \
  X(FP8E4M3,   "fp8e4m3",   1, 1, 4, 3)          \
  X(FP8E4M3FN, "fp8e4m3fn", 1, 1, 4, 3)          \
  X(FP8E5M2,   "fp8e5m2",   1, 1, 5, 2)          \
  X(FP8E3M4,   "fp8e3m4",   1, 1, 3, 4)          \
  X(INT8,      "int8",      1, 0, 0, 0)          \
  X(UINT8,     "uint8",     1, 0, 0, 0)          \
  X(INT16,     "int16",     2, 0, 0, 0)          \
  X(UINT16,    "uint16",    2, 0, 0, 0)          \
  X(INT32,     "int32",     4, 0, 0, 0)          \
  X(UINT32,    "uint32",    4, 0, 0, 0)

typedef enum {
#define OT_X(id, name, bytes, isf, e, m) OT_DT_##id,
  OT_DTYPE_MAP(OT_X)
#undef OT_X
  OT_DT_COUNT
} ot_dtype;

const char *ot_dtype_name(ot_dtype t);          /* "bf16"; "?" if out of range */
bool ot_dtype_parse(const char *name, ot_dtype *out); /* accepts the names above */
size_t ot_dtype_size(ot_dtype t);               /* bytes per element */
bool ot_dtype_is_float(ot_dtype t);
/* Largest finite value of a float format (240 for fp8e4m3, 448 for fp8e4m3fn, ...). */
double ot_dtype_max(ot_dtype t);

/* Rounding of fp32 -> narrower conversions. */
typedef enum {
  OT_ROUND_NEAREST_EVEN = 0, /* IEEE round-to-nearest, ties to even (the hardware default) */
  OT_ROUND_STOCHASTIC = 1,   /* round up with probability proportional to the distance */
} ot_round;

/* Seeded, counter-based random source for stochastic rounding: the same seed gives the same
** sequence on every machine and thread count. */
typedef struct { uint64_t state; } ot_rng;
void ot_rng_seed(ot_rng *r, uint64_t seed);
uint32_t ot_rng_u32(ot_rng *r);

/* Conversion options.  rng is used only for OT_ROUND_STOCHASTIC (required then).
** saturate: overflow clamps to the largest finite value instead of Inf (or NaN for formats
** without Inf), like Neuron's --enable-saturate-infinity. */
typedef struct {
  ot_round round;
  bool saturate;
  ot_rng *rng;
} ot_cvt;

/* Scalar conversions.  Encodings are returned in the low bits of a uint32_t. */
uint32_t ot_f32_to_bits(float x, ot_dtype t, const ot_cvt *cvt); /* cvt NULL = RNE */
float ot_bits_to_f32(uint32_t bits, ot_dtype t);                 /* exact for every format */

/* Convenience for the common formats, round-to-nearest-even. */
uint16_t ot_f32_to_bf16(float x);
float ot_bf16_to_f32(uint16_t b);
uint16_t ot_f32_to_fp16(float x);
float ot_fp16_to_f32(uint16_t h);

/* Element access in raw memory: read element i of an array of type t as fp32 (integers are
** converted exactly where representable), and store an fp32 value with rounding. */
float ot_load_f32(const void *base, size_t i, ot_dtype t);
void ot_store_f32(void *base, size_t i, ot_dtype t, float x, const ot_cvt *cvt);

/* Bulk conversion between typed buffers (dst and src may not overlap). */
void ot_convert(void *dst, ot_dtype dt, const void *src, ot_dtype st, size_t n, const ot_cvt *cvt);

#endif
