/* The data loader (internal interface; the public API is in <opentrn/model.h>).
**
** Token cache file (<cache_dir>/<text file name>.<tokenizer fingerprint>.tok), little-endian:
**   offset  size  field
**   0       8     magic "OTTOKv1\0"
**   8       8     tokenizer fingerprint (ot_tokenizer_fingerprint)
**   16      8     size of the text file in bytes
**   24      8     FNV-1a 64 hash of the text file's bytes
**   32      8     tokenize flags
**   40      8     token count N
**   48      4N    token ids, u32
** A cache that is missing, short, or describes another text or vocabulary is rebuilt (written
** atomically); it can never make loading fail or give other tokens.
**
** Shuffling (the documented RNG): epoch e visits the training windows in the order of a
** Fisher-Yates shuffle (i from W-1 down to 1, j = (u32 * (i + 1)) >> 32) driven by ot_rng
** (splitmix64) seeded with mix(seed XOR mix(e + 1)), mix being splitmix64's finaliser.
*/
#ifndef OT_MODEL_DATASET_H
#define OT_MODEL_DATASET_H

#include <opentrn/model.h>

#define DATASET_CACHE_MAGIC "OTTOKv1"
#define DATASET_CACHE_HEADER 48

#endif
