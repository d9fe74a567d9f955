// TinyGPT's configuration and its validation (messages name the field).
#pragma once

#include "core/error.h"
#include "napo/model.h"

namespace napo::model {

inline napo_status validateConfig(const napo_model_config& c) {
  if (c.vocab_size < 1 || c.vocab_size > (1 << 24))
    return fail(NAPO_ERR_RANGE, "TinyGPT: vocabSize = %d must be in [1, 16777216]", c.vocab_size);
  if (c.context_length < 1 || c.context_length > 65536)
    return fail(NAPO_ERR_RANGE, "TinyGPT: contextLength = %d must be in [1, 65536]", c.context_length);
  if (c.d_model < 1 || c.d_model > 65536)
    return fail(NAPO_ERR_RANGE, "TinyGPT: dModel = %d must be in [1, 65536]", c.d_model);
  if (c.n_layers < 1 || c.n_layers > 1024)
    return fail(NAPO_ERR_RANGE, "TinyGPT: nLayers = %d must be in [1, 1024]", c.n_layers);
  if (c.n_heads < 1 || c.n_heads > c.d_model)
    return fail(NAPO_ERR_RANGE, "TinyGPT: nHeads = %d must be in [1, dModel = %d]", c.n_heads, c.d_model);
  if (c.d_model % c.n_heads != 0)
    return fail(NAPO_ERR_RANGE, "TinyGPT: dModel = %d must be divisible by nHeads = %d", c.d_model, c.n_heads);
  return NAPO_OK;
}

}  // namespace napo::model
