/* libFuzzer target: the program-file reader.  The checksum is recomputed first, so mutations
** reach the checks behind it; whatever the reader accepts must disassemble. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "isa/program.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  if (size >= 64) {
    memset(copy + 24, 0, 4);
    uint32_t crc = (uint32_t)crc32(0L, copy, (uInt)size);
    for (int i = 0; i < 4; i++) copy[24 + i] = (uint8_t)(crc >> (8 * i));
  }
  ot_program *p = NULL;
  if (ot_program_deserialize(copy, size, &p, NULL) == OT_OK) {
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
      ot_disasm(p, devnull, NULL);
      fclose(devnull);
    }
    ot_program_free(p);
  }
  free(copy);
  return 0;
}
