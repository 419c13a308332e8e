/* Model configurations (internal interface).  The public API is in <opentrn/model.h>; this adds
** the tensor-list generator that the configuration, the safetensors checker and the parameter
** set share, so the list of names and shapes exists in one place. */
#ifndef OT_MODEL_CONFIG_H
#define OT_MODEL_CONFIG_H

#include <opentrn/model.h>

/* Called once per expected tensor, in checkpoint order. */
typedef void (*model_spec_fn)(void *ctx, const ot_model_tensor_spec *spec);

/* Emit every tensor of a (valid) configuration; returns how many. */
size_t model_specs_each(const ot_model_config *c, model_spec_fn fn, void *ctx);

/* "[768, 2304]" into buf. */
void model_shape_format(const uint64_t *shape, uint32_t ndim, char *buf, size_t cap);

/* Family name as in config.json's model_type: "gpt2", "llama". */
const char *model_family_name(ot_model_family f);

#endif
