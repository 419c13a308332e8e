/* NumPy .npy files: the array format `numpy.save` writes and `numpy.load` reads.
**
**   offset  size  field
**   0       6     magic "\x93NUMPY"
**   6       1     major version (1, 2 or 3)
**   7       1     minor version (0)
**   8       2|4   header length: u16 (v1.0) or u32 (v2.0, v3.0), little-endian
**   10|12   len   header: a Python dict literal, e.g.
**                 {'descr': '<f4', 'fortran_order': False, 'shape': (128, 1024), }
**                 padded with spaces and ended by '\n' (numpy aligns the data to 64 bytes)
**   ...           the array data, C order, product(shape) * itemsize bytes
**
** Supported: little-endian ('<', or '|' for one-byte types) fp32 '<f4', fp16 '<f2', int8 '|i1',
** uint8 '|u1', int16 '<i2', uint16 '<u2', int32 '<i4', uint32 '<u4'.  bf16 has no numpy type: its
** bits travel as uint16 (and fp8 bits as uint8).  Fortran order, big-endian data, structured
** and other types are rejected by name.  The parser validates every byte of the header and
** never reads past the buffer; a malformed file is an OT_EPARSE naming what is wrong.
** The host is assumed little-endian (as everywhere in OpenTRN): data bytes are not swapped.
*/
#ifndef OT_RUNTIME_NPY_H
#define OT_RUNTIME_NPY_H

#include <opentrn/num.h>
#include <opentrn/status.h>
#include <stddef.h>
#include <stdint.h>

#define OT_NPY_MAX_DIMS 32 /* numpy's own limit (NPY_MAXDIMS) */

typedef struct {
  ot_dtype dtype;                 /* the element type as stored (bf16 arrays read as UINT16) */
  char descr[8];                  /* as written in the file, e.g. "<f4" */
  uint32_t ndim;                  /* 0 = a scalar (one element) */
  uint64_t shape[OT_NPY_MAX_DIMS];
  uint64_t count;                 /* elements: product of the shape */
  size_t bytes;                   /* count * element size */
  void *data;                     /* owned; NULL when bytes == 0 */
} ot_npy;

/* Parse an .npy image (origin names it in messages).  On success *out owns a copy of the data;
** free it with ot_npy_free.  On failure *out is empty. */
ot_status ot_npy_parse(const void *bytes, size_t size, const char *origin, ot_npy *out, ot_error *err);
ot_status ot_npy_read(const char *path, ot_npy *out, ot_error *err);
void ot_npy_free(ot_npy *a);

/* The numpy descr of an element type ("<f4", "|u1", ...), NULL if numpy has none. */
const char *ot_npy_descr(ot_dtype t);

/* Build an .npy image of an array of dtype t (version 1 or 2; 0 = 1 unless the header needs 2).
** *image is malloc'd and owned by the caller. */
ot_status ot_npy_serialize(ot_dtype t, const uint64_t *shape, uint32_t ndim, const void *data, int version,
                           void **image, size_t *size, ot_error *err);
/* Write an .npy file atomically (temporary file, fsync, rename). */
ot_status ot_npy_write(const char *path, ot_dtype t, const uint64_t *shape, uint32_t ndim, const void *data,
                       ot_error *err);

/* "[128, 1024]" into buf (always NUL-terminated, truncated with "..." if it does not fit). */
void ot_npy_shape_format(const uint64_t *shape, uint32_t ndim, char *buf, size_t cap);

#endif
