/* libFuzzer target: the JSON graph reader (docs/graph.md).  Whatever it accepts must dump,
** check against trn2, and read back from its own JSON text to the same listing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/graph_int.h"

static char *dump_text(const ot_graph *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  ot_graph_dump(g, f);
  fclose(f);
  return buf;
}

/* parse(write(g)) lists the same as g: the writer and reader agree on everything. */
static void roundtrip(const ot_graph *g) {
  size_t len = 0;
  char *text = ot_graph_json_text(g, &len);
  if (!text) return;
  ot_graph *h = NULL;
  if (ot_graph_parse_json(text, "roundtrip.json", &h, NULL) != OT_OK) {
    fprintf(stderr, "fuzz_graph: the writer's text does not read back:\n%s\n", text);
    abort();
  }
  char *a = dump_text(g), *b = dump_text(h);
  if (a && b && strcmp(a, b)) {
    fprintf(stderr, "fuzz_graph: round trip changed the graph:\n%s\n----\n%s\n", a, b);
    abort();
  }
  free(a);
  free(b);
  free(text);
  ot_graph_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ot_graph *g = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_parse_json(text, "fuzz.json", &g, &err) == OT_OK) {
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
      ot_graph_dump(g, devnull);
      fclose(devnull);
    }
    roundtrip(g);
    ot_chip *chip = NULL;
    if (ot_chip_preset("trn2", &chip, NULL) == OT_OK) {
      ot_error_clear(&err);
      ot_graph_check(g, chip, &err);
      ot_chip_free(chip);
    }
    ot_graph_free(g);
  }
  free(text);
  return 0;
}
