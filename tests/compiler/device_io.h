/* Compiling a graph for a simulated trn2 and moving a graph tensor's values (fp32 on the host)
** in and out of the device, for tests that compare compiled graphs with a reference.  Include
** after <cmocka.h>. */
#ifndef OT_TESTS_DEVICE_IO_H
#define OT_TESTS_DEVICE_IO_H

#include <opentrn/chip.h>
#include <opentrn/compile.h>
#include <opentrn/device.h>
#include <opentrn/num.h>
#include <stdio.h>
#include <stdlib.h>

#include "compiler/graph.h"

/* Write tensor t's values in its own type (int32 ids from integral floats). */
static inline void dev_put(ot_device *d, const ot_gtensor *t, const float *v) {
  size_t n = (size_t)ot_gtensor_elems(t), es = ot_dtype_size((ot_dtype)t->dtype);
  void *buf = malloc(n * es + 1);
  assert_non_null(buf);
  if (t->dtype == OT_DT_INT32)
    for (size_t i = 0; i < n; i++) ((int32_t *)buf)[i] = (int32_t)v[i];
  else
    ot_convert(buf, (ot_dtype)t->dtype, v, OT_DT_FP32, n, NULL);
  assert_int_equal(ot_device_write(d, t->name, (ot_dtype)t->dtype, buf, n * es), OT_OK);
  free(buf);
}

/* Read the device tensor `name`, shaped and typed like t, as fp32. */
static inline void dev_get(ot_device *d, const char *name, const ot_gtensor *t, float *v) {
  size_t n = (size_t)ot_gtensor_elems(t), es = ot_dtype_size((ot_dtype)t->dtype);
  void *buf = malloc(n * es + 1);
  assert_non_null(buf);
  assert_int_equal(ot_device_read(d, name, (ot_dtype)t->dtype, buf, n * es), OT_OK);
  ot_convert(v, OT_DT_FP32, buf, (ot_dtype)t->dtype, n, NULL);
  free(buf);
}

/* Compile g for chip preset `chip` with TensorE operands of type mm (the test fails on a compile
** error); stats, if not NULL, receives the compiler's statistics. */
static inline ot_program *dev_compile_stats(const ot_graph *g, const char *chip_name, ot_dtype mm, ot_compile_stats *stats) {
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.matmul_dtype = mm;
  o.stats = stats;
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset(chip_name, &chip, &err), OT_OK);
  ot_program *p = NULL;
  ot_status st = ot_compile(g, chip, &o, &p, &err);
  ot_chip_free(chip);
  if (st) fprintf(stderr, "compile: %s\n", err.msg);
  assert_int_equal(st, OT_OK);
  return p;
}

static inline ot_program *dev_compile_for(const ot_graph *g, const char *chip_name, ot_dtype mm) {
  return dev_compile_stats(g, chip_name, mm, NULL);
}

static inline ot_program *dev_compile(const ot_graph *g, ot_dtype mm) { return dev_compile_for(g, "trn2", mm); }

/* Run the loaded program with the race checker on (and nan_trap as asked): the run must succeed
** and leave nothing in the run log (no race, no warning); label names the case on failure. */
static inline void dev_run_checked(ot_device *d, const char *label, bool nan_trap) {
  ot_run_options ro;
  ot_run_options_default(&ro);
  ro.race_check = true;
  ro.nan_trap = nan_trap;
  ot_status st = ot_device_run(d, &ro);
  if (st) fprintf(stderr, "%s: %s\n", label, ot_device_last_error(d));
  assert_int_equal(st, OT_OK);
  assert_string_equal(ot_device_run_log(d), "");
}

#endif
