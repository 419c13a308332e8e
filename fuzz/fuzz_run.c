/* libFuzzer target: assemble, then run on a simulated trn2 -- verified or not -- with a small
** instruction budget and every input tensor zero.  Whatever the program, the simulator must
** finish with a result or an error message: never crash, never hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <opentrn/chip.h>

#include "isa/program.h"
#include "sim/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ot_chip *chip;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!chip && ot_chip_preset("trn2", &chip, NULL)) abort();
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ot_program *p = NULL;
  if (ot_asm_text(text, "fuzz", &p, NULL) == OT_OK) {
    ot_sim_options o;
    ot_sim_options_default(&o);
    o.insn_budget = 64; /* each input stays fast even under -O0 + ASan; runaway is a clean error */
    o.uninit_is_error = size % 2; /* both policies */
    o.race_check = size % 3 == 0;
    o.trace = size % 5 == 0;
    ot_sim *s = NULL;
    ot_error err;
    ot_error_clear(&err);
    if (ot_sim_new(chip, p, &o, &s, &err) == OT_OK) {
      ot_error_clear(&err);
      ot_status st = ot_sim_run(s, &err);
      if (st != OT_OK && err.msg[0] == '\0') abort(); /* an error must say what went wrong */
      ot_sim_free(s);
    }
    ot_program_free(p);
  }
  free(text);
  return 0;
}
