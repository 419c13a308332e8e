/* safetensors files (internal interface; the public API is in <opentrn/model.h>).
**
**   offset      size  field
**   0           8     N: header length, u64 little-endian
**   8           N     JSON object: {"<name>": {"dtype": "F32", "shape": [d0, ...],
**                     "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
**                     (the writer pads it with spaces to a multiple of 8 bytes)
**   8 + N       ...   the data section; a tensor's bytes are [begin, end) relative to it,
**                     little-endian, C order, end - begin = product(shape) * dtype size
**
** The reader accepts gaps between tensors but not overlaps, and bounds the header at 100 MB
** (the reference implementation's limit).
*/
#ifndef OT_MODEL_SAFETENSORS_H
#define OT_MODEL_SAFETENSORS_H

#include <opentrn/model.h>

#define ST_HEADER_MAX (100u << 20)

/* The safetensors name of an OpenTRN type ("F32"), NULL where the format has none. */
const char *st_dtype_name(ot_dtype t);

#endif
