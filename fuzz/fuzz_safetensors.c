/* libFuzzer target: the safetensors reader.  Whatever it accepts must have every tensor inside
** the buffer (reading each float tensor as f32 touches all its bytes, so ASan sees any escape),
** and the check against a model configuration must report, not crash. */
#include <opentrn/model.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1); /* exact size, so ASan sees any read past the end */
  if (!copy) return 0;
  memcpy(copy, data, size);
  ot_safetensors *st = NULL;
  if (ot_safetensors_parse(copy, size, "fuzz", &st, NULL) == OT_OK) {
    for (size_t i = 0; i < ot_safetensors_count(st); i++) {
      const ot_st_tensor *t = ot_safetensors_at(st, i);
      if (t->dtype == OT_DT_COUNT || !ot_dtype_is_float(t->dtype) || t->count > (1u << 20)) continue;
      float *f = malloc((size_t)(t->count ? t->count : 1) * sizeof *f);
      if (f) ot_safetensors_read_f32(st, t->name, f, t->count, NULL);
      free(f);
    }
    ot_model_config c;
    ot_error err;
    ot_error_clear(&err);
    if (ot_model_config_preset("gpt2-tiny", &c, NULL) == OT_OK) ot_safetensors_check(st, &c, OT_DT_COUNT, &err);
    ot_safetensors_metadata(st, "format");
    ot_safetensors_close(st);
  }
  free(copy);
  return 0;
}
