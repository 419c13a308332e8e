#include "arch/arch.h"

#include <string.h>

static const char *const engine_names[] = {
#define OT_X(id, name, sname) name,
  OT_ENGINE_MAP(OT_X)
#undef OT_X
};
static const char *const engine_snames[] = {
#define OT_X(id, name, sname) sname,
  OT_ENGINE_MAP(OT_X)
#undef OT_X
};
static const char *const mem_names[] = {
  "none",
#define OT_X(id, name) name,
  OT_MEM_MAP(OT_X)
#undef OT_X
};

const char *ot_engine_name(ot_engine e) {
  return (unsigned)e < OT_ENG_COUNT ? engine_names[e] : "?";
}

bool ot_engine_parse(const char *s, ot_engine *out) {
  for (unsigned i = 0; i < OT_ENG_COUNT; i++)
    if (!strcmp(s, engine_names[i]) || !strcmp(s, engine_snames[i])) { *out = (ot_engine)i; return true; }
  return false;
}

const char *ot_mem_name(ot_mem m) {
  return (unsigned)m < OT_MEM_COUNT ? mem_names[m] : "?";
}

bool ot_mem_parse(const char *s, ot_mem *out) {
  for (unsigned i = 1; i < OT_MEM_COUNT; i++)
    if (!strcmp(s, mem_names[i])) { *out = (ot_mem)i; return true; }
  return false;
}
