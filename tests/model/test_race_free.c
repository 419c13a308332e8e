/* Compiled model programs are race-free: the simulator's race checker (docs/simulator-race.md)
** sees every access and every semaphore, so a program whose waits miss a dependency is caught
** naming both instructions.  Whole training steps of the tiny models, bf16 and fp32 operands,
** at a batch large enough that every engine issues DMAs and the list scheduler reorders them
** (the case that once broke: transfers of one DMA queue issued by two engines ran in run-time
** order, not in the order the compiler counted their completions).  Also on a chip with fewer
** DMA queues than engines, where queues must be shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <opentrn/chip.h>
#include <opentrn/compile.h>
#include <opentrn/device.h>
#include <stdio.h>
#include <string.h>

#include "model/model_graph.h"

/* Compile model `preset`'s graph of `kind` for chip and run it with the race checker; every
** input and weight reads as zeros (races do not depend on values). */
static void expect_race_free(const char *preset, model_graph_kind kind, ot_dtype mm, ot_chip *chip, unsigned queues) {
  ot_error err;
  ot_error_clear(&err);
  ot_model_config cfg;
  assert_int_equal(ot_model_config_preset(preset, &cfg, &err), OT_OK);
  model_graph_opts mo;
  model_graph_opts_default(&mo, 8, 64, kind);
  model_graph mg;
  assert_int_equal(model_graph_build(&cfg, &mo, &mg, &err), OT_OK);
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.matmul_dtype = mm;
  ot_program *prog = NULL;
  if (ot_compile(mg.g, chip, &co, &prog, &err) != OT_OK) fail_msg("%s: %s", preset, err.msg);
  ot_device *d = NULL;
  assert_int_equal(ot_device_open_chip(chip, &d, &err), OT_OK);
  assert_int_equal(ot_device_load(d, prog), OT_OK);
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.allow_missing = true;
  ro.race_check = true;
  assert_int_equal(ot_device_run(d, &ro), OT_OK);
  const char *log = ot_device_run_log(d);
  if (strstr(log, "race"))
    fail_msg("%s (kind %d, %s operands, %u DMA queues): %.2000s", preset, (int)kind, mm == OT_DT_FP32 ? "fp32" : "bf16",
             queues, log);
  ot_device_close(d);
  ot_program_free(prog);
  model_graph_free(&mg);
}

static void run_all(unsigned queues) {
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, &err), OT_OK);
  if (queues) assert_int_equal(ot_chip_set(chip, "dma.queues", queues, &err), OT_OK);
  static const char *const models[] = {"gpt2-tiny", "llama-tiny"};
  for (int m = 0; m < 2; m++)
    for (int fp32 = 0; fp32 < 2; fp32++)
      expect_race_free(models[m], MODEL_GRAPH_TRAIN, fp32 ? OT_DT_FP32 : OT_DT_BF16, chip, queues ? queues : 16);
  ot_chip_free(chip);
}

static void test_training_steps_race_free(void **state) {
  (void)state;
  run_all(0);
}

/* Two queues for five engines: transfers of different issuers share a queue. */
static void test_shared_queues_race_free(void **state) {
  (void)state;
  run_all(2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_training_steps_race_free),
      cmocka_unit_test(test_shared_queues_race_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
