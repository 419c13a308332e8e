/* Typed memory access: load/store one element as fp32, and bulk conversion between buffers.
** Elements are little endian (the chip's byte order) whatever the host is. */
#include "num/num_internal.h"

#include <string.h>

static uint32_t num_mem_read(const void *base, size_t i, size_t size) {
  const unsigned char *p = (const unsigned char *)base + i * size;
  uint32_t v = 0;
  for (size_t k = 0; k < size; k++) v |= (uint32_t)p[k] << (8 * k);
  return v;
}

static void num_mem_write(void *base, size_t i, size_t size, uint32_t v) {
  unsigned char *p = (unsigned char *)base + i * size;
  for (size_t k = 0; k < size; k++) p[k] = (unsigned char)(v >> (8 * k));
}

float ot_load_f32(const void *base, size_t i, ot_dtype t) {
  size_t size = ot_dtype_size(t);
  if (!base || size == 0) return 0.0f;
  return ot_bits_to_f32(num_mem_read(base, i, size), t);
}

void ot_store_f32(void *base, size_t i, ot_dtype t, float x, const ot_cvt *cvt) {
  size_t size = ot_dtype_size(t);
  if (!base || size == 0) return;
  num_mem_write(base, i, size, ot_f32_to_bits(x, t, cvt));
}

/* One element of src -> dst with a single rounding:
**   int -> int:     exact, saturated;
**   int -> float:   the integer itself rounded once (not via fp32, which would round twice);
**   float -> any:   decoded to fp32 (exact for every float format), then one conversion. */
static uint32_t num_convert_one(uint32_t bits, ot_dtype dt, ot_dtype st, const ot_cvt *cvt) {
  const num_fmt *df = num_fmt_of(dt);
  const num_fmt *sf = num_fmt_of(st);
  if (sf) {
    uint32_t f32 = num_fmt_decode(sf, bits);
    return df ? num_fmt_encode(df, f32, cvt) : num_int_to_bits(num_int_from_f32(f32, dt), dt);
  }
  int64_t v = num_int_from_bits(bits, st);
  if (!df) return num_int_to_bits(num_int_saturate(v, dt), dt);
  bool neg = v < 0;
  uint64_t mag = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  return num_fmt_encode_scaled(df, neg, mag, 0, cvt);
}

void ot_convert(void *dst, ot_dtype dt, const void *src, ot_dtype st, size_t n,
                const ot_cvt *cvt) {
  size_t dsize = ot_dtype_size(dt), ssize = ot_dtype_size(st);
  if (!dst || !src || dsize == 0 || ssize == 0) return;
  if (dt == st && !ot_dtype_is_float(dt)) { /* integers copy exactly */
    memcpy(dst, src, n * dsize);
    return;
  }
  for (size_t i = 0; i < n; i++)
    num_mem_write(dst, i, dsize, num_convert_one(num_mem_read(src, i, ssize), dt, st, cvt));
}
