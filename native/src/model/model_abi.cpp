// The model C ABI: every argument is checked here, once (the addon and the TS layer pass values
// through), then the CausalLM runs. Messages name the call, the argument and the value; config
// fields carry the names the TS config uses.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "causal_lm.h"
#include "core/error.h"
#include "core/math.h"
#include "core/tensor.h"
#include "core/validate.h"

using namespace napo;
using napo::model::CausalLM;
using napo::model::HostBatch;
using napo::model::ParamSpec;

struct napo_model {
  std::unique_ptr<CausalLM> impl;
};

namespace {

constexpr napo_device kHost{NAPO_CPU, 0};

// A model on a GPU: the device answers, and the heads fit the CUDA attention kernel.
napo_status checkCudaDevice(const napo_model_config& c) {
  napo_backend_info info{};
  napo_backend_info_get(&info);
  if (!info.cuda_available || c.device.index < 0 || c.device.index >= info.cuda_device_count) {
    return fail(NAPO_ERR_UNAVAILABLE, "model: cuda:%d is not available (%d CUDA devices%s%s); create the model on 'cpu'",
                c.device.index, info.cuda_device_count, info.cuda_available ? "" : ": ",
                info.cuda_available ? "" : info.cuda_unavailable_reason);
  }
  if (c.head_dim > napo::model::kCudaMaxHeadDim) {
    return fail(NAPO_ERR_RANGE, "model config: headDim = %d is above %d, the most the CUDA attention kernel holds",
                c.head_dim, napo::model::kCudaMaxHeadDim);
  }
  return NAPO_OK;
}

napo_status intField(const char* name, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return fail(NAPO_ERR_RANGE, "model config: %s = %lld must be in [%lld, %lld]", name, (long long)value,
                (long long)lo, (long long)hi);
  }
  return NAPO_OK;
}

napo_status flagField(const char* name, int32_t value) { return intField(name, value, 0, 1); }

napo_status positiveFinite(const char* name, double value) {
  if (!(value > 0.0) || !std::isfinite(value)) return fail(NAPO_ERR_RANGE, "model config: %s = %g must be > 0 and finite", name, value);
  return NAPO_OK;
}

napo_status checkRope(const napo_model_config& c) {
  NAPO_TRY(positiveFinite("ropeTheta", c.rope_theta));
  NAPO_TRY(intField("ropeScaling", c.rope_scaling, NAPO_ROPE_DEFAULT, NAPO_ROPE_LLAMA3));
  if (c.rope_scaling == NAPO_ROPE_DEFAULT) return NAPO_OK;
  NAPO_TRY(positiveFinite("ropeScaling.factor", c.rope_factor));
  if (c.rope_scaling == NAPO_ROPE_LINEAR) return NAPO_OK;
  NAPO_TRY(positiveFinite("ropeScaling.lowFreqFactor", c.rope_low_freq_factor));
  NAPO_TRY(positiveFinite("ropeScaling.highFreqFactor", c.rope_high_freq_factor));
  if (!(c.rope_high_freq_factor > c.rope_low_freq_factor)) {
    return fail(NAPO_ERR_RANGE, "model config: ropeScaling.highFreqFactor = %g must be > lowFreqFactor = %g",
                double(c.rope_high_freq_factor), double(c.rope_low_freq_factor));
  }
  return intField("ropeScaling.originalMaxPositions", c.rope_original_max_positions, 1, int64_t(1) << 24);
}

napo_status checkConfig(const napo_model_config* config) {
  if (!config) return fail(NAPO_ERR_TYPE, "model config is missing");
  const napo_model_config& c = *config;
  NAPO_TRY(intField("family", c.family, NAPO_MODEL_GPT2, NAPO_MODEL_QWEN3));
  NAPO_TRY(intField("vocabSize", c.vocab_size, 1, int64_t(1) << 24));
  NAPO_TRY(intField("hiddenSize", c.hidden_size, 1, 65536));
  NAPO_TRY(intField("intermediateSize", c.intermediate_size, 1, int64_t(1) << 20));
  NAPO_TRY(intField("numLayers", c.num_layers, 1, 1024));
  NAPO_TRY(intField("numHeads", c.num_heads, 1, 1024));
  NAPO_TRY(intField("numKvHeads", c.num_kv_heads, 1, c.num_heads));
  NAPO_TRY(intField("headDim", c.head_dim, 1, 4096));
  NAPO_TRY(intField("maxPositions", c.max_positions, 1, int64_t(1) << 20));
  NAPO_TRY(positiveFinite("normEps", c.norm_eps));
  for (const auto& [name, value] : {std::pair{"qkvBias", c.qkv_bias}, {"outputBias", c.output_bias},
                                    {"mlpBias", c.mlp_bias}, {"tieWordEmbeddings", c.tie_word_embeddings}}) {
    NAPO_TRY(flagField(name, value));
  }
  if (!(c.initializer_range >= 0.0f) || !std::isfinite(c.initializer_range)) {
    return fail(NAPO_ERR_RANGE, "model config: initializerRange = %g must be >= 0 and finite", double(c.initializer_range));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return fail(NAPO_ERR_RANGE, "model config: numKvHeads = %d must divide numHeads = %d", c.num_kv_heads, c.num_heads);
  }
  if (c.family == NAPO_MODEL_GPT2) {
    if (c.hidden_size % c.num_heads != 0 || c.head_dim != c.hidden_size / c.num_heads || c.num_kv_heads != c.num_heads) {
      return fail(NAPO_ERR_RANGE,
                  "model config: gpt2 needs hiddenSize (%d) divisible by numHeads (%d), headDim = hiddenSize / "
                  "numHeads (got %d) and numKvHeads = numHeads (got %d)",
                  c.hidden_size, c.num_heads, c.head_dim, c.num_kv_heads);
    }
  } else {
    if (c.head_dim % 2 != 0) return fail(NAPO_ERR_RANGE, "model config: headDim = %d must be even for RoPE", c.head_dim);
    NAPO_TRY(checkRope(c));
  }
  if (c.device.kind == NAPO_CUDA) return checkCudaDevice(c);
  if (c.device.kind != NAPO_CPU) return fail(NAPO_ERR_TYPE, "model config: unknown device kind %d", int(c.device.kind));
  return NAPO_OK;
}

// Turns an exception escaping the C++ side (bad_alloc) into a status.
template <typename F>
napo_status shielded(const char* op, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(NAPO_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
  } catch (const std::exception& e) {
    return fail(NAPO_ERR_INTERNAL, "%s: %s", op, e.what());
  }
}

napo_status checkModel(const napo_model* model, const char* op) {
  if (!model || !model->impl) return fail(NAPO_ERR_TYPE, "%s: model is missing", op);
  return NAPO_OK;
}

napo_status checkHostInt32(const char* op, const char* name, const napo_tensor* t) {
  if (t->dtype != NAPO_INT32) return fail(NAPO_ERR_TYPE, "%s: %s must be int32, got %s", op, name, dtypeName(t->dtype));
  if (t->device.kind != NAPO_CPU) return fail(NAPO_ERR_TYPE, "%s: %s must be on the cpu", op, name);
  return NAPO_OK;
}

// tokens [B, T] and lengths [B] as the header describes; -> the batch view.
napo_status checkBatch(const char* op, const CausalLM& m, const napo_tensor* tokens, const napo_tensor* lengths,
                       HostBatch* out) {
  if (!tokens) return fail(NAPO_ERR_TYPE, "%s: tokens is missing", op);
  int64_t bytes = 0;
  NAPO_TRY(checkShape(op, "tokens", tokens->dtype, tokens->ndim, tokens->shape, &bytes));
  NAPO_TRY(checkHostInt32(op, "tokens", tokens));
  if (tokens->ndim != 2) return fail(NAPO_ERR_RANGE, "%s: tokens must be [batch, time], got %s", op, shapeText(*tokens).c_str());
  const int64_t B = tokens->shape[0], T = tokens->shape[1];
  if (B < 1) return fail(NAPO_ERR_RANGE, "%s: the batch is empty (tokens %s)", op, shapeText(*tokens).c_str());
  if (T < 1) return fail(NAPO_ERR_RANGE, "%s: sequences are empty (tokens %s)", op, shapeText(*tokens).c_str());
  const napo_model_config& c = m.config();
  if (T > c.max_positions) {
    return fail(NAPO_ERR_RANGE, "%s: sequence length %lld is longer than maxPositions %d", op, (long long)T, c.max_positions);
  }
  const int32_t* len = nullptr;
  if (lengths) {
    const int64_t shape[1] = {B};
    NAPO_TRY(checkTensor(op, "lengths", lengths, NAPO_INT32, 1, shape));
    NAPO_TRY(checkHostInt32(op, "lengths", lengths));
    len = dataAs<const int32_t>(*lengths);
    for (int64_t b = 0; b < B; ++b) {
      if (len[b] < 1 || len[b] > T) {
        return fail(NAPO_ERR_RANGE, "%s: lengths[%lld] = %d must be in [1, %lld]", op, (long long)b, len[b], (long long)T);
      }
    }
  }
  const int32_t* ids = dataAs<const int32_t>(*tokens);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = len ? len[b] : T;
    for (int64_t t = 0; t < length; ++t) {
      const int32_t id = ids[b * T + t];
      if (id < 0 || id >= c.vocab_size) {
        return fail(NAPO_ERR_RANGE, "%s: tokens[%lld, %lld] = %d is out of range for vocab %d", op, (long long)b,
                    (long long)t, id, c.vocab_size);
      }
    }
  }
  *out = HostBatch{B, T, ids, len};
  return NAPO_OK;
}

napo_status checkOutput(const char* op, const char* name, const CausalLM& m, const napo_tensor* out, int ndim,
                        const int64_t* shape) {
  NAPO_TRY(checkTensor(op, name, out, NAPO_FLOAT32, ndim, shape));
  return checkSameDevice(op, name, out, m.config().device);
}

// A float32 gradient of the given shape on the model's device, every value finite (checked on the host;
// a GPU's kernels check theirs).
napo_status checkGradient(const char* op, const char* name, const CausalLM& m, const napo_tensor* t, int ndim,
                          const int64_t* shape) {
  NAPO_TRY(checkTensor(op, name, t, NAPO_FLOAT32, ndim, shape));
  NAPO_TRY(checkSameDevice(op, name, t, m.config().device));
  return checkFinite(op, name, t);
}

napo_status checkTargets(const char* op, const CausalLM& m, const HostBatch& batch, const napo_tensor* targets) {
  const int64_t shape[2] = {batch.batch, batch.time};
  NAPO_TRY(checkTensor(op, "targets", targets, NAPO_INT32, 2, shape));
  NAPO_TRY(checkHostInt32(op, "targets", targets));
  const int32_t* ids = dataAs<const int32_t>(*targets);
  for (int64_t b = 0; b < batch.batch; ++b) {
    const int64_t length = batch.lengths ? batch.lengths[b] : batch.time;
    for (int64_t t = 0; t < batch.time; ++t) {
      const int32_t id = ids[b * batch.time + t];
      if (id == -1) continue;
      if (id < -1 || id >= m.config().vocab_size) {
        return fail(NAPO_ERR_RANGE, "%s: targets[%lld, %lld] = %d must be -1 (not scored) or in [0, %d)", op,
                    (long long)b, (long long)t, id, m.config().vocab_size);
      }
      if (t >= length) {
        return fail(NAPO_ERR_RANGE, "%s: targets[%lld, %lld] = %d is past the row's length %lld (use -1)", op,
                    (long long)b, (long long)t, id, (long long)length);
      }
    }
  }
  return NAPO_OK;
}

napo_status checkParameterIndex(const napo_model* model, int64_t index, const char* op) {
  NAPO_TRY(checkModel(model, op));
  const int64_t count = int64_t(model->impl->registry().specs.size());
  if (index < 0 || index >= count) {
    return fail(NAPO_ERR_RANGE, "%s: index = %lld must be in [0, %lld)", op, (long long)index, (long long)count);
  }
  return NAPO_OK;
}

napo_status checkStorageDtype(const char* op, napo_dtype dtype, const void* data) {
  if (dtype != NAPO_FLOAT32 && dtype != NAPO_BFLOAT16 && dtype != NAPO_FLOAT16) {
    return fail(NAPO_ERR_TYPE, "%s: dtype must be float32, bfloat16 or float16, got %s", op, dtypeName(dtype));
  }
  if (!data) return fail(NAPO_ERR_TYPE, "%s: the buffer is missing", op);
  return NAPO_OK;
}

float storedToFloat(napo_dtype dtype, const void* data, int64_t i) {
  switch (dtype) {
    case NAPO_BFLOAT16: return bf16ToFloat(static_cast<const uint16_t*>(data)[i]);
    case NAPO_FLOAT16: return halfToFloat(static_cast<const uint16_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}

void floatToStored(napo_dtype dtype, float value, void* data, int64_t i) {
  switch (dtype) {
    case NAPO_BFLOAT16: static_cast<uint16_t*>(data)[i] = floatToBf16(value); break;
    case NAPO_FLOAT16: static_cast<uint16_t*>(data)[i] = floatToHalf(value); break;
    default: static_cast<float*>(data)[i] = value;
  }
}

// Element i of the model's layout sits at this index of the layout asked for.
int64_t layoutIndex(const ParamSpec& s, bool checkpointLayout, int64_t i) {
  if (!checkpointLayout || !s.checkpointTransposed) return i;
  const int64_t row = i / s.shape[1], column = i % s.shape[1];
  return column * s.shape[0] + row;
}

}  // namespace

extern "C" {

napo_status napo_model_config_validate(const napo_model_config* config) { return checkConfig(config); }

napo_status napo_model_create(const napo_model_config* config, napo_model** out) {
  if (!out) return fail(NAPO_ERR_TYPE, "model: out is missing");
  *out = nullptr;
  NAPO_TRY(checkConfig(config));
  return shielded("model", [&]() -> napo_status {
    auto model = std::make_unique<napo_model>();
    model->impl = std::make_unique<CausalLM>(*config);
    NAPO_TRY(model->impl->initialize());
    *out = model.release();
    return NAPO_OK;
  });
}

void napo_model_destroy(napo_model* model) { delete model; }

napo_status napo_model_config_get(const napo_model* model, napo_model_config* out) {
  NAPO_TRY(checkModel(model, "model.config"));
  if (!out) return fail(NAPO_ERR_TYPE, "model.config: out is missing");
  *out = model->impl->config();
  return NAPO_OK;
}

napo_status napo_model_clone(const napo_model* model, napo_model** out) {
  NAPO_TRY(checkModel(model, "model.clone"));
  if (!out) return fail(NAPO_ERR_TYPE, "model.clone: out is missing");
  *out = nullptr;
  return shielded("model.clone", [&]() -> napo_status {
    auto copy = std::make_unique<napo_model>();
    copy->impl = std::make_unique<CausalLM>(model->impl->config());
    NAPO_TRY(copy->impl->copyParametersFrom(*model->impl));
    *out = copy.release();
    return NAPO_OK;
  });
}

napo_status napo_model_score(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                             const napo_tensor* targets, const napo_model_score_options* options,
                             napo_tensor* logprobs, napo_tensor* entropy) {
  constexpr const char* op = "model.score";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  HostBatch batch{};
  NAPO_TRY(checkBatch(op, m, tokens, lengths, &batch));
  NAPO_TRY(checkTargets(op, m, batch, targets));
  if (!options) return fail(NAPO_ERR_TYPE, "%s: options are missing", op);
  if (!(options->temperature > 0.0f) || std::isinf(options->temperature)) {
    return fail(NAPO_ERR_RANGE, "%s: temperature = %g must be > 0 and finite", op, double(options->temperature));
  }
  const int64_t shape[2] = {batch.batch, batch.time};
  NAPO_TRY(checkOutput(op, "logprobs", m, logprobs, 2, shape));
  if (options->entropy && !entropy) return fail(NAPO_ERR_TYPE, "%s: entropy was asked for but its output is missing", op);
  if (options->keep_activations != 0 && options->keep_activations != 1) {
    return fail(NAPO_ERR_RANGE, "%s: keepActivations = %d must be 0 or 1", op, options->keep_activations);
  }
  if (options->entropy) NAPO_TRY(checkOutput(op, "entropy", m, entropy, 2, shape));
  return shielded(op, [&] {
    return m.score(batch, dataAs<const int32_t>(*targets), *options, dataAs<float>(*logprobs),
                   options->entropy ? dataAs<float>(*entropy) : nullptr);
  });
}

napo_status napo_model_score_backward(napo_model* model, const napo_tensor* grad_logprobs,
                                      const napo_tensor* grad_entropy) {
  constexpr const char* op = "model.scoreBackward";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  if (m.kept() != CausalLM::Kept::kScores) {
    return fail(NAPO_ERR_RANGE, "%s: no scores to differentiate; call score first (each score allows one backward)", op);
  }
  const int64_t shape[2] = {m.keptBatch(), m.keptTime()};
  NAPO_TRY(checkGradient(op, "gradLogprobs", m, grad_logprobs, 2, shape));
  if (grad_entropy) {
    if (!m.keptEntropy()) return fail(NAPO_ERR_RANGE, "%s: gradEntropy needs a score that computed the entropy", op);
    NAPO_TRY(checkGradient(op, "gradEntropy", m, grad_entropy, 2, shape));
  }
  return shielded(op, [&] {
    return m.scoreBackward(dataAs<const float>(*grad_logprobs), grad_entropy ? dataAs<const float>(*grad_entropy) : nullptr);
  });
}

napo_status napo_model_forward(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                               napo_tensor* logits) {
  constexpr const char* op = "model.forward";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  HostBatch batch{};
  NAPO_TRY(checkBatch(op, m, tokens, lengths, &batch));
  const int64_t shape[3] = {batch.batch, batch.time, m.config().vocab_size};
  NAPO_TRY(checkOutput(op, "logits", m, logits, 3, shape));
  return shielded(op, [&] { return m.forward(batch, dataAs<float>(*logits)); });
}

napo_status napo_model_backward(napo_model* model, const napo_tensor* grad_logits) {
  constexpr const char* op = "model.backward";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  if (m.kept() != CausalLM::Kept::kLogits) {
    return fail(NAPO_ERR_RANGE,
                "%s: no logits to differentiate; call forward first (each forward allows one backward; prefill and "
                "decode keep nothing)", op);
  }
  const int64_t shape[3] = {m.keptBatch(), m.keptTime(), m.config().vocab_size};
  NAPO_TRY(checkTensor(op, "gradLogits", grad_logits, NAPO_FLOAT32, 3, shape));
  NAPO_TRY(checkSameDevice(op, "gradLogits", grad_logits, m.config().device));
  return shielded(op, [&] { return m.backward(dataAs<const float>(*grad_logits)); });
}

napo_status napo_model_zero_grad(napo_model* model) {
  NAPO_TRY(checkModel(model, "model.zeroGrad"));
  return model->impl->zeroGrad();
}

napo_status napo_model_step(napo_model* model, const napo_adamw_options* options, napo_adamw_result* result) {
  constexpr const char* op = "model.step";
  NAPO_TRY(checkModel(model, op));
  if (!options) return fail(NAPO_ERR_TYPE, "%s: options are required", op);
  const napo_adamw_options& o = *options;
  if (!(o.lr >= 0.0f) || !std::isfinite(o.lr)) return fail(NAPO_ERR_RANGE, "%s: lr = %g must be >= 0 and finite", op, double(o.lr));
  for (const auto& [name, beta] : {std::pair{"beta1", o.beta1}, {"beta2", o.beta2}}) {
    if (!(beta >= 0.0f && beta < 1.0f)) return fail(NAPO_ERR_RANGE, "%s: %s = %g must be in [0, 1)", op, name, double(beta));
  }
  if (!(o.eps > 0.0f) || !std::isfinite(o.eps)) return fail(NAPO_ERR_RANGE, "%s: eps = %g must be > 0 and finite", op, double(o.eps));
  if (!(o.weight_decay >= 0.0f) || !std::isfinite(o.weight_decay)) {
    return fail(NAPO_ERR_RANGE, "%s: weightDecay = %g must be >= 0 and finite", op, double(o.weight_decay));
  }
  if (std::isnan(o.max_grad_norm)) return fail(NAPO_ERR_RANGE, "%s: maxGradNorm is NaN", op);
  if (!(o.grad_scale >= 0.0f) || !std::isfinite(o.grad_scale)) {
    return fail(NAPO_ERR_RANGE, "%s: gradScale = %g must be > 0 and finite (0: 1)", op, double(o.grad_scale));
  }
  return shielded(op, [&] { return model->impl->step(o, result); });
}

napo_status napo_model_prefill(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                               int64_t capacity, napo_tensor* logits) {
  constexpr const char* op = "model.prefill";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  HostBatch batch{};
  NAPO_TRY(checkBatch(op, m, tokens, lengths, &batch));
  if (capacity < batch.time || capacity > m.config().max_positions) {
    return fail(NAPO_ERR_RANGE, "%s: capacity = %lld must be in [%lld (the prompts' length), %d (maxPositions)]", op,
                (long long)capacity, (long long)batch.time, m.config().max_positions);
  }
  const int64_t shape[2] = {batch.batch, m.config().vocab_size};
  NAPO_TRY(checkOutput(op, "logits", m, logits, 2, shape));
  return shielded(op, [&] { return m.prefill(batch, capacity, dataAs<float>(*logits)); });
}

napo_status napo_model_decode_step(napo_model* model, const napo_tensor* tokens, napo_tensor* logits) {
  constexpr const char* op = "model.decodeStep";
  NAPO_TRY(checkModel(model, op));
  CausalLM& m = *model->impl;
  const int64_t B = m.cacheBatch(), V = m.config().vocab_size;
  if (B == 0) return fail(NAPO_ERR_RANGE, "%s: the KV cache is empty; call prefill first", op);
  const int64_t shape[1] = {B};
  if (!tokens) return fail(NAPO_ERR_TYPE, "%s: tokens is missing", op);
  NAPO_TRY(checkHostInt32(op, "tokens", tokens));
  if (tokens->ndim != 1 || tokens->shape[0] != B) {
    return fail(NAPO_ERR_RANGE, "%s: tokens must be [%lld] (the prefilled batch), got %s", op, (long long)B,
                shapeText(*tokens).c_str());
  }
  NAPO_TRY(checkTensor(op, "tokens", tokens, NAPO_INT32, 1, shape));
  const int32_t* ids = dataAs<const int32_t>(*tokens);
  for (int64_t b = 0; b < B; ++b) {
    if (ids[b] == -1) continue;
    if (ids[b] < 0 || ids[b] >= V) {
      return fail(NAPO_ERR_RANGE, "%s: tokens[%lld] = %d is out of range for vocab %lld", op, (long long)b, ids[b], (long long)V);
    }
    if (m.cachePosition(b) >= m.cacheCapacity()) {
      return fail(NAPO_ERR_RANGE, "%s: row %lld already holds %lld tokens, the cache's capacity (prefill's capacity)", op,
                  (long long)b, (long long)m.cachePosition(b));
    }
  }
  const int64_t logitShape[2] = {B, V};
  NAPO_TRY(checkOutput(op, "logits", m, logits, 2, logitShape));
  return shielded(op, [&] { return m.decodeStep(ids, dataAs<float>(*logits)); });
}

napo_status napo_model_release_cache(napo_model* model) {
  NAPO_TRY(checkModel(model, "model.releaseCache"));
  model->impl->releaseCache();
  return NAPO_OK;
}

int64_t napo_model_cache_position(const napo_model* model, int64_t row) {
  return model && model->impl ? model->impl->cachePosition(row) : -1;
}

napo_status napo_model_memory_plan(const napo_model_config* config, const napo_model_memory_query* query,
                                   int64_t bytes[NAPO_MEMORY_CATEGORIES]) {
  constexpr const char* op = "modelMemoryPlan";
  NAPO_TRY(checkConfig(config));
  if (!query || !bytes) return fail(NAPO_ERR_TYPE, "%s: query and bytes are required", op);
  const napo_model_memory_query& q = *query;
  if (q.pass < NAPO_PASS_SCORE || q.pass > NAPO_PASS_DECODE) return fail(NAPO_ERR_RANGE, "%s: pass = %d is not a napo_model_pass", op, q.pass);
  const bool decode = q.pass == NAPO_PASS_DECODE;
  if (q.batch < 1 || q.batch > (int64_t(1) << 24)) return fail(NAPO_ERR_RANGE, "%s: batch = %lld must be in [1, 16777216]", op, (long long)q.batch);
  if (q.time < 1 || q.time > config->max_positions || (decode && q.time != 1)) {
    return fail(NAPO_ERR_RANGE, "%s: time = %lld must be in [1, maxPositions = %d] (1 for decode)", op, (long long)q.time, config->max_positions);
  }
  if (q.scored < 0 || q.scored > q.batch * q.time) {
    return fail(NAPO_ERR_RANGE, "%s: scored = %lld must be in [0, batch * time]", op, (long long)q.scored);
  }
  if (q.pass >= NAPO_PASS_PREFILL && (q.capacity < q.time || q.capacity > config->max_positions)) {
    return fail(NAPO_ERR_RANGE, "%s: capacity = %lld must be in [time, maxPositions = %d]", op, (long long)q.capacity, config->max_positions);
  }
  return shielded(op, [&] {
    CausalLM(*config).memoryPlan(q, bytes);
    return NAPO_OK;
  });
}

int64_t napo_model_parameter_count(const napo_model* model) {
  return model && model->impl ? int64_t(model->impl->registry().specs.size()) : 0;
}

napo_status napo_model_parameter_info_get(const napo_model* model, int64_t index, napo_model_parameter_info* out) {
  NAPO_TRY(checkParameterIndex(model, index, "model.parameterInfo"));
  if (!out) return fail(NAPO_ERR_TYPE, "model.parameterInfo: out is missing");
  const ParamSpec& s = model->impl->registry().specs[size_t(index)];
  std::memset(out, 0, sizeof *out);
  std::snprintf(out->name, sizeof out->name, "%s", s.name.c_str());
  out->ndim = s.ndim;
  out->shape[0] = s.shape[0];
  out->shape[1] = s.shape[1];
  out->numel = s.numel;
  out->checkpoint_transposed = s.checkpointTransposed ? 1 : 0;
  out->weight_decay = s.decay ? 1 : 0;
  return NAPO_OK;
}

napo_status napo_model_parameter_read(const napo_model* model, int64_t index, napo_dtype dtype,
                                      int32_t checkpoint_layout, void* dst) {
  constexpr const char* op = "model.getParameter";
  NAPO_TRY(checkParameterIndex(model, index, op));
  NAPO_TRY(checkStorageDtype(op, dtype, dst));
  const ParamSpec& s = model->impl->registry().specs[size_t(index)];
  return shielded(op, [&]() -> napo_status {
    std::vector<float> values(size_t(s.numel));
    NAPO_TRY(napo_memcpy(kHost, values.data(), model->impl->config().device, model->impl->params() + s.offset,
                         sizeof(float) * values.size()));
    for (int64_t i = 0; i < s.numel; ++i) floatToStored(dtype, values[size_t(i)], dst, layoutIndex(s, checkpoint_layout != 0, i));
    return NAPO_OK;
  });
}

napo_status napo_model_parameter_write(napo_model* model, int64_t index, napo_dtype dtype, int32_t checkpoint_layout,
                                       const void* src) {
  constexpr const char* op = "model.setParameter";
  NAPO_TRY(checkParameterIndex(model, index, op));
  NAPO_TRY(checkStorageDtype(op, dtype, src));
  const ParamSpec& s = model->impl->registry().specs[size_t(index)];
  return shielded(op, [&]() -> napo_status {
    std::vector<float> values(size_t(s.numel));
    for (int64_t i = 0; i < s.numel; ++i) {
      const int64_t at = layoutIndex(s, checkpoint_layout != 0, i);
      values[size_t(i)] = storedToFloat(dtype, src, at);
      if (!std::isfinite(values[size_t(i)])) {
        return fail(NAPO_ERR_RANGE, "%s: %s[%lld] = %g is not finite", op, s.name.c_str(), (long long)at,
                    double(values[size_t(i)]));
      }
    }
    return napo_memcpy(model->impl->config().device, model->impl->params() + s.offset, kHost, values.data(),
                       sizeof(float) * values.size());
  });
}

napo_status napo_model_gradient_read(const napo_model* model, int64_t index, float* dst) {
  constexpr const char* op = "model.getGradient";
  NAPO_TRY(checkParameterIndex(model, index, op));
  if (!dst) return fail(NAPO_ERR_TYPE, "%s: the buffer is missing", op);
  const ParamSpec& s = model->impl->registry().specs[size_t(index)];
  const float* grads = model->impl->grads();
  // No gradient before the first backward: zeros.
  if (grads) return napo_memcpy(kHost, dst, model->impl->config().device, grads + s.offset, sizeof(float) * size_t(s.numel));
  std::memset(dst, 0, sizeof(float) * size_t(s.numel));
  return NAPO_OK;
}

int64_t napo_model_optimizer_steps(const napo_model* model) {
  return model && model->impl ? model->impl->steps() : 0;
}

int64_t napo_model_parameter_total(const napo_model* model) {
  return model && model->impl ? model->impl->parameterTotal() : 0;
}

napo_status napo_model_optimizer_state_read(const napo_model* model, float* exp_avg, float* exp_avg_sq, int64_t* steps) {
  constexpr const char* op = "model.getOptimizerState";
  NAPO_TRY(checkModel(model, op));
  if (!exp_avg || !exp_avg_sq || !steps) return fail(NAPO_ERR_TYPE, "%s: expAvg, expAvgSq and steps are required", op);
  return model->impl->readOptimizerState(exp_avg, exp_avg_sq, steps);
}

napo_status napo_model_optimizer_state_write(napo_model* model, const float* exp_avg, const float* exp_avg_sq,
                                             int64_t steps) {
  constexpr const char* op = "model.setOptimizerState";
  NAPO_TRY(checkModel(model, op));
  if (!exp_avg || !exp_avg_sq) return fail(NAPO_ERR_TYPE, "%s: expAvg and expAvgSq are required", op);
  if (steps < 0) return fail(NAPO_ERR_RANGE, "%s: steps = %lld must be >= 0", op, (long long)steps);
  // Everything is checked before anything is written, so a bad state changes nothing.
  int64_t at = 0;
  for (const ParamSpec& s : model->impl->registry().specs) {
    for (int64_t j = 0; j < s.numel; ++j) {
      const float m = exp_avg[at + j], v = exp_avg_sq[at + j];
      if (!std::isfinite(m)) {
        return fail(NAPO_ERR_RANGE, "%s: expAvg[%lld] = %g is not finite (%s[%lld])", op, (long long)(at + j),
                    double(m), s.name.c_str(), (long long)j);
      }
      if (!std::isfinite(v) || v < 0.0f) {
        return fail(NAPO_ERR_RANGE, "%s: expAvgSq[%lld] = %g must be finite and >= 0 (%s[%lld])", op,
                    (long long)(at + j), double(v), s.name.c_str(), (long long)j);
      }
    }
    at += s.numel;
  }
  return shielded(op, [&] { return model->impl->writeOptimizerState(exp_avg, exp_avg_sq, steps); });
}

}  // extern "C"
