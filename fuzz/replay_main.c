/* Runs a libFuzzer target over the files named on the command line, so the targets are built
** and exercised (under the sanitizers too) by ordinary ctest runs, without libFuzzer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", argv[i]); return 1; }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
      if (n == cap) {
        cap = cap ? cap * 2 : 4096;
        uint8_t *nb = realloc(buf, cap);
        if (!nb) { free(buf); fclose(f); return 1; }
        buf = nb;
      }
      buf[n++] = (uint8_t)c;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    /* Every prefix too: truncations are the commonest corruption. */
    for (size_t k = 0; k < n; k += 1 + n / 64) LLVMFuzzerTestOneInput(buf, k);
    free(buf);
  }
  printf("replayed %d inputs\n", argc - 1);
  return 0;
}
