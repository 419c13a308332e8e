/* Shared by test_model_graph.c and test_train.c: exchanging a model with the PyTorch oracle
** tests/model/model_torch.py (config.json, weights.safetensors, job.json, int32 .bin files in a
** scratch directory; results back in ref.safetensors) and comparing tensors.
**
** Comparison: an element passes when |ours - torch| <= atol * scale + rtol * |torch|, scale =
** the largest |torch| of the tensor (as docs/autodiff.md).  The largest error / scale of each
** tensor is printed: the figures docs/training.md reports. */
#ifndef OT_TESTS_TORCH_MODEL_H
#define OT_TESTS_TORCH_MODEL_H

#include <math.h>

#include "model/model_test.h"

/* Deterministic values in [-1, 1) (splitmix64). */
static inline float tm_uniform(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (float)((double)((z ^ (z >> 31)) >> 11) / 4503599627370496.0 - 1.0);
}

/* Seeded weights; norm weights and biases moved off 1 and 0 so that their use is checked too. */
static inline void tm_params(const ot_model_config *c, uint64_t seed, ot_model_params *p) {
  ot_error err;
  assert_int_equal(ot_model_params_alloc(c, p, &err), OT_OK);
  ot_model_params_init(p, seed);
  uint64_t s = seed * 31 + 5;
  for (size_t i = 0; i < p->count; i++)
    if (p->params[i].ndim == 1)
      for (uint64_t k = 0; k < p->params[i].count; k++) p->params[i].data[k] += 0.1f * tm_uniform(&s);
}

static inline void tm_write_ints(const char *path, const int32_t *v, size_t n) { mt_write(path, v, n * sizeof *v); }

/* config.json and weights.safetensors into dir. */
static inline void tm_write_model(const char *dir, const ot_model_params *p) {
  ot_error err;
  assert_int_equal(ot_model_config_save(&p->config, mt_path(dir, "config.json"), &err), OT_OK);
  assert_int_equal(ot_model_params_save(p, mt_path(dir, "weights.safetensors"), OT_DT_FP32, &err), OT_OK);
}

/* Max error / scale of ours against ref; true when every element is within tolerance. */
static inline bool tm_close(const char *what, const float *ours, const float *ref, size_t n, double atol, double rtol) {
  double scale = 0, worst = 0;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)ref[i]));
  if (scale == 0) scale = 1;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)ours[i] - (double)ref[i]);
    worst = fmax(worst, d / scale);
    if (!(d <= atol * scale + rtol * fabs((double)ref[i]))) {
      if (!bad) first = i;
      bad++;
    }
  }
  printf("  %-48s max err/scale %.2e%s\n", what, worst, bad ? "  FAIL" : "");
  if (bad)
    printf("    %zu of %zu out of tolerance; first [%zu]: ours %.8g torch %.8g\n", bad, n, first, (double)ours[first],
           (double)ref[first]);
  return bad == 0;
}

/* Tensor name of ref.safetensors as floats (malloc'd). */
static inline float *tm_ref(const ot_safetensors *st, const char *name, uint64_t count) {
  float *v = malloc((size_t)count * sizeof *v);
  ot_error err;
  assert_non_null(v);
  ot_status s = ot_safetensors_read_f32(st, name, v, count, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  return v;
}

#endif
