/* Every op, forward and backward, and whole GPT-2 and Llama blocks, compiled and run on the
** simulated trn2 NeuronCore, against PyTorch (the cases of torch_cases.h, the same graphs
** test_autodiff.c checks on the host).
**
** Each case's graph gets its backward (autodiff from the loss), is compiled (fp32 graphs with
** fp32 TensorE operands; graphs with bf16 tensors with the default bf16 operands) and run with
** the race checker on.  Then every tensor the program keeps under its graph name -- every node
** output that fusion or aliasing did not fold away -- and every weight gradient is read back and
** compared with torch's value, with docs/autodiff.md's tolerances. */
#include <opentrn/compile.h>
#include <opentrn/device.h>

#include "torch_cases.h"

/* Write leaf t (values held as floats by the harness) in its own type. */
static void device_put(ot_device *d, const ot_gtensor *ts, const float *v) {
  int64_t n = ot_gtensor_elems(ts);
  size_t esz = ot_dtype_size((ot_dtype)ts->dtype);
  unsigned char *buf = malloc((size_t)(n ? n : 1) * esz);
  assert_non_null(buf);
  for (int64_t i = 0; i < n; i++) {
    if (ts->dtype == OT_DT_FP32) memcpy(buf + i * 4, &v[i], 4);
    else if (ts->dtype == OT_DT_BF16) { uint16_t b = ot_f32_to_bf16(v[i]); memcpy(buf + i * 2, &b, 2); }
    else { int32_t k = (int32_t)v[i]; memcpy(buf + i * 4, &k, 4); }
  }
  ot_status st = ot_device_write(d, ts->name, (ot_dtype)ts->dtype, buf, (size_t)n * esz);
  if (st) fail_msg("write %s: %s", ts->name, ot_device_last_error(d));
  free(buf);
}

/* Read tensor name (of graph tensor ts's type) as floats; false if the program has no such tensor. */
static bool device_get(ot_device *d, const char *name, const ot_gtensor *ts, float *out) {
  ot_tensor_desc desc;
  if (ot_device_tensor_find(d, name, &desc) != OT_OK || !desc.has_value) return false;
  int64_t n = ot_gtensor_elems(ts);
  size_t esz = ot_dtype_size(desc.dtype);
  if (desc.bytes != (uint64_t)n * esz) return false;
  unsigned char *buf = malloc((size_t)(n ? n : 1) * esz);
  assert_non_null(buf);
  assert_int_equal(ot_device_read(d, name, desc.dtype, buf, (size_t)n * esz), OT_OK);
  for (int64_t i = 0; i < n; i++) {
    if (desc.dtype == OT_DT_FP32) memcpy(&out[i], buf + i * 4, 4);
    else if (desc.dtype == OT_DT_BF16) { uint16_t b; memcpy(&b, buf + i * 2, 2); out[i] = ot_bf16_to_f32(b); }
    else { int32_t k; memcpy(&k, buf + i * 4, 4); out[i] = (float)k; }
  }
  free(buf);
  return true;
}

static ot_device *device_run(rh_case *c, ot_program *p) {
  ot_error err;
  ot_error_clear(&err);
  ot_device *d = NULL;
  assert_int_equal(ot_device_open("trn2", &d, &err), OT_OK);
  if (ot_device_load(d, p)) fail_msg("case %s: load: %s", c->name, ot_device_last_error(d));
  for (uint32_t t = 0; t < c->n_t; t++) {
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    if (ts->role == OT_GROLE_INPUT || ts->role == OT_GROLE_WEIGHT) device_put(d, ts, c->leaf[t]);
  }
  ot_run_options o;
  ot_run_options_default(&o);
  o.race_check = true;
  if (ot_device_run(d, &o)) fail_msg("case %s: run: %s", c->name, ot_device_last_error(d));
  if (ot_device_run_log(d)[0]) fail_msg("case %s: the race checker reports:\n%s", c->name, ot_device_run_log(d));
  return d;
}

static void run_case_on_device(void **state) {
  rh_case *c = *state;
  if (rh_python_error[0]) fail_msg("%s", rh_python_error);
  if (c->build_error[0]) fail_msg("case %s: %s", c->name, c->build_error);
  ot_error err;
  ot_error_clear(&err);
  if (c->loss != OT_TID_NONE && ot_graph_backward(c->g, c->loss, &err)) fail_msg("case %s: %s", c->name, err.msg);
  ot_compile_options o;
  ot_compile_options_default(&o);
  o.matmul_dtype = c->lowp ? OT_DT_BF16 : OT_DT_FP32;
  ot_chip *chip = NULL;
  ot_program *p = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, &err), OT_OK);
  if (ot_compile(c->g, chip, &o, &p, &err)) fail_msg("case %s: compile: %s", c->name, err.msg);
  ot_device *d = device_run(c, p);
  size_t off = 0, bad = 0, compared = 0;
  for (uint32_t t = 0; t < c->n_t; t++) { /* forward: every node output the program keeps */
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    int64_t n = ot_gtensor_elems(ts);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    if (ts->role == OT_GROLE_VALUE && ts->dtype != OT_DT_INT32 && device_get(d, ts->name, ts, v)) {
      bad += !rh_check(c, "fwd", ts->name, rh_op_of(c->g, (ot_tid)t), v, c->ref + off, n, ts->dtype == OT_DT_BF16 || c->lowp);
      compared++;
    }
    free(v);
    off += (size_t)n;
  }
  for (uint32_t t = 0; t < c->n_t; t++) { /* every weight's gradient */
    const ot_gtensor *ts = ot_graph_tensor(c->g, (ot_tid)t);
    if (ts->role != OT_GROLE_WEIGHT) continue;
    int64_t n = ot_gtensor_elems(ts);
    ot_tid gt = ot_graph_grad(c->g, (ot_tid)t);
    if (c->loss != OT_TID_NONE && gt != OT_TID_NONE) {
      float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
      assert_non_null(v);
      if (!device_get(d, ot_graph_tensor(c->g, gt)->name, ot_graph_tensor(c->g, gt), v))
        fail_msg("case %s: gradient %s is not in the program", c->name, ot_graph_tensor(c->g, gt)->name);
      bad += !rh_check(c, "grad", ts->name, "", v, c->ref + off, n, c->lowp);
      compared++;
      free(v);
    }
    off += (size_t)n;
  }
  ot_device_close(d);
  ot_program_free(p);
  ot_chip_free(chip);
  assert_true(compared > 0);
  if (bad) fail_msg("case %s: %zu tensors differ from PyTorch beyond the tolerance", c->name, bad);
}

int main(void) {
  return rh_main_with("device_torch", cases, sizeof cases / sizeof cases[0], run_case_on_device, NULL, 0);
}
