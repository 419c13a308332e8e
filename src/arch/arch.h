/* Architecture vocabulary shared by every layer: engines and memories of a NeuronCore. */
#ifndef OT_ARCH_H
#define OT_ARCH_H

#include <stdbool.h>
#include <stdint.h>

/* X(id, name, short_name) -- the engines of a NeuronCore, each with its own instruction stream. */
#define OT_ENGINE_MAP(X)                 \
  X(SYNC,   "sync",   "sp")              \
  X(TENSOR, "tensor", "pe")              \
  X(VECTOR, "vector", "dve")             \
  X(SCALAR, "scalar", "act")             \
  X(GPSIMD, "gpsimd", "pool")

typedef enum {
#define OT_X(id, name, sname) OT_ENG_##id,
  OT_ENGINE_MAP(OT_X)
#undef OT_X
  OT_ENG_COUNT
} ot_engine;

#define OT_ENG_BIT(e) (1u << (e))
#define OT_ENG_ANY ((1u << OT_ENG_COUNT) - 1u)

/* X(id, name) -- memories an access pattern can address. */
#define OT_MEM_MAP(X) \
  X(SBUF, "sb")       \
  X(PSUM, "ps")       \
  X(HBM,  "hbm")

typedef enum {
  OT_MEM_NONE = 0,
#define OT_X(id, name) OT_MEM_##id,
  OT_MEM_MAP(OT_X)
#undef OT_X
  OT_MEM_COUNT
} ot_mem;

#define OT_MEM_BIT(m) (1u << (m))

const char *ot_engine_name(ot_engine e);
bool ot_engine_parse(const char *s, ot_engine *out); /* long or short name */
const char *ot_mem_name(ot_mem m);
bool ot_mem_parse(const char *s, ot_mem *out);

#endif
