/* The in-memory program (see include/opentrn/program.h).  Built by the assembler (and later
** the compiler), read by the verifier, the simulator and the program-file writer. */
#ifndef OT_ISA_PROGRAM_H
#define OT_ISA_PROGRAM_H

#include <opentrn/program.h>

#include "isa/isa.h"

#define OT_TENSOR_MAX_DIMS 4

/* X(id, name) -- roles of a tensor in device HBM. */
#define OT_TENSOR_ROLE_MAP(X) \
  X(INPUT,   "input")         \
  X(OUTPUT,  "output")        \
  X(WEIGHT,  "weight")        \
  X(SCRATCH, "scratch")       \
  X(CONST,   "const")

typedef enum {
#define OT_X(id, name) OT_ROLE_##id,
  OT_TENSOR_ROLE_MAP(OT_X)
#undef OT_X
  OT_TENSOR_ROLE_COUNT
} ot_tensor_role;

typedef struct {
  char *name;
  uint8_t dtype;                  /* ot_dtype */
  uint8_t role;                   /* ot_tensor_role */
  uint8_t ndim;
  uint64_t shape[OT_TENSOR_MAX_DIMS];
  uint64_t offset;                /* byte offset in device HBM */
  uint8_t *data;                  /* constants only: bytes() bytes, else NULL */
} ot_tensor_info;

typedef struct {
  uint32_t core;                  /* NeuronCore index within the chip */
  uint32_t engine;                /* ot_engine */
  ot_insn *insns;
  uint32_t n, cap;
} ot_stream;

struct ot_program {
  char chip[28];                  /* target chip name, "" if none (fits the file header) */
  ot_stream *streams;
  uint32_t n_streams;
  ot_tensor_info *tensors;
  uint32_t n_tensors;
  char *strings;                  /* string pool for provenance tags; offset 0 is "" */
  size_t strings_len;
};

ot_program *ot_program_new(void);
/* Stream for (core, engine), created if missing; NULL on out-of-memory. */
ot_stream *ot_program_stream(ot_program *p, uint32_t core, ot_engine engine);
ot_status ot_stream_append(ot_stream *s, const ot_insn *in);
/* Add a tensor (name copied); data (constants) copied when not NULL. */
ot_status ot_program_add_tensor(ot_program *p, const ot_tensor_info *t, ot_error *err);
const ot_tensor_info *ot_program_find_tensor(const ot_program *p, const char *name);
uint64_t ot_tensor_bytes(const ot_tensor_info *t);
/* Intern a provenance string; returns its pool offset (0 for "" or on out-of-memory). */
uint32_t ot_program_intern(ot_program *p, const char *s);
const char *ot_program_string(const ot_program *p, uint32_t off);

const char *ot_tensor_role_name(int role);
bool ot_tensor_role_parse(const char *s, int *out);

#endif
