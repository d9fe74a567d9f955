// The C ABI of the RL ops: validate every argument, then hand the call to the backend of the
// device the tensors live on. No math here.
#include <cmath>
#include <utility>

#include "../cpu/backend.h"
#include "cuda_ops.h"
#include "error.h"
#include "tensor.h"
#include "validate.h"

using namespace napo;

namespace {

napo_status checkFloatParam(const char* op, const char* name, napo_row_f32 param, int64_t rows,
                            float min, float max, bool minOpen, const char* rangeText) {
  NAPO_TRY(checkRowParamCount(op, name, param.count, rows));
  for (int64_t i = 0; i < param.count; ++i) {
    const float v = param.values[i];
    const bool below = minOpen ? !(v > min) : !(v >= min);
    if (below || !(v <= max)) {
      return fail(NAPO_ERR_RANGE, "%s: %s[%lld] = %g must be %s", op, name, (long long)i, v, rangeText);
    }
  }
  return NAPO_OK;
}

bool onCuda(const napo_tensor* t) { return t->device.kind == NAPO_CUDA; }

// A mask of one of the four mask dtypes with exactly `shape` (rank 2).
napo_status checkMaskTensor(const char* op, const napo_tensor* mask, const int64_t* shape) {
  if (!mask) return fail(NAPO_ERR_TYPE, "%s: mask is missing", op);
  if (mask->dtype != NAPO_FLOAT32 && mask->dtype != NAPO_INT32 && mask->dtype != NAPO_UINT8 &&
      mask->dtype != NAPO_BOOL) {
    return fail(NAPO_ERR_TYPE, "%s: mask must be float32, int32, uint8 or bool, got %s", op, dtypeName(mask->dtype));
  }
  return checkTensor(op, "mask", mask, mask->dtype, 2, shape);
}

}  // namespace

extern "C" {

napo_status napo_sample_validate(const napo_tensor* logits, const napo_sample_options* options) {
  constexpr const char* op = "sample";
  NAPO_TRY(checkLogits(op, logits));
  if (!options) return fail(NAPO_ERR_TYPE, "%s: options are missing", op);
  const int64_t rows = logits->shape[0];
  NAPO_TRY(checkFloatParam(op, "temperature", options->temperature, rows, 0.0f, INFINITY, false, ">= 0 and finite"));
  for (int64_t i = 0; i < options->temperature.count; ++i) {
    if (std::isinf(options->temperature.values[i])) {
      return fail(NAPO_ERR_RANGE, "%s: temperature[%lld] = %g must be >= 0 and finite", op, (long long)i,
                  options->temperature.values[i]);
    }
  }
  NAPO_TRY(checkRowParamCount(op, "topK", options->top_k.count, rows));
  for (int64_t i = 0; i < options->top_k.count; ++i) {
    if (options->top_k.values[i] < 0) {
      return fail(NAPO_ERR_RANGE, "%s: topK[%lld] = %d must be >= 0", op, (long long)i, options->top_k.values[i]);
    }
  }
  NAPO_TRY(checkFloatParam(op, "topP", options->top_p, rows, 0.0f, 1.0f, true, "in (0, 1]"));
  NAPO_TRY(checkFloatParam(op, "minP", options->min_p, rows, 0.0f, 1.0f, false, "in [0, 1]"));
  return NAPO_OK;
}

napo_status napo_sample(const napo_tensor* logits, const napo_sample_options* options, napo_tensor* tokens,
                        napo_tensor* logprobs, void* stream) {
  NAPO_TRY(napo_sample_validate(logits, options));
  const int64_t rows[1] = {logits->shape[0]};
  NAPO_TRY(checkTensor("sample", "tokens", tokens, NAPO_INT32, 1, rows));
  NAPO_TRY(checkTensor("sample", "logprobs", logprobs, NAPO_FLOAT32, 1, rows));
  NAPO_TRY(checkSameDevice("sample", "tokens", tokens, logits->device));
  NAPO_TRY(checkSameDevice("sample", "logprobs", logprobs, logits->device));
  if (onCuda(logits)) return cuda::sample(*logits, *options, *tokens, *logprobs, stream);
  return cpuBackend().sample(*logits, *options, dataAs<int32_t>(*tokens), dataAs<float>(*logprobs));
}

napo_status napo_token_logprobs_validate(const napo_tensor* logits, const napo_tensor* tokens, float temperature) {
  constexpr const char* op = "tokenLogprobs";
  NAPO_TRY(checkLogits(op, logits));
  if (!tokens) return fail(NAPO_ERR_TYPE, "%s: tokens is missing", op);
  if (tokens->dtype != NAPO_INT32) {
    return fail(NAPO_ERR_TYPE, "%s: tokens must be int32, got %s", op, dtypeName(tokens->dtype));
  }
  if (tokens->ndim != 1 || tokens->shape[0] != logits->shape[0]) {
    return fail(NAPO_ERR_RANGE, "%s: tokens has shape %s, expected [%lld] (one per row of logits)", op,
                shapeText(*tokens).c_str(), (long long)logits->shape[0]);
  }
  NAPO_TRY(checkSameDevice(op, "tokens", tokens, logits->device));
  if (!(temperature > 0.0f) || std::isinf(temperature)) {
    return fail(NAPO_ERR_RANGE, "%s: temperature = %g must be > 0 and finite", op, temperature);
  }
  return checkTokenRange(op, tokens, logits->shape[1]);
}

napo_status napo_token_logprobs(const napo_tensor* logits, const napo_tensor* tokens, float temperature,
                                napo_tensor* logprobs, napo_tensor* entropy, napo_tensor* lse, void* stream) {
  constexpr const char* op = "tokenLogprobs";
  NAPO_TRY(napo_token_logprobs_validate(logits, tokens, temperature));
  const int64_t rows[1] = {logits->shape[0]};
  NAPO_TRY(checkTensor(op, "logprobs", logprobs, NAPO_FLOAT32, 1, rows));
  NAPO_TRY(checkTensor(op, "lse", lse, NAPO_FLOAT32, 1, rows));
  if (entropy) NAPO_TRY(checkTensor(op, "entropy", entropy, NAPO_FLOAT32, 1, rows));
  for (const napo_tensor* out : {logprobs, lse, entropy}) NAPO_TRY(checkSameDevice(op, "output", out, logits->device));
  if (onCuda(logits)) return cuda::tokenLogprobs(*logits, *tokens, temperature, *logprobs, entropy, *lse, stream);
  return cpuBackend().tokenLogprobs(*logits, dataAs<const int32_t>(*tokens), temperature, dataAs<float>(*logprobs),
                            entropy ? dataAs<float>(*entropy) : nullptr, dataAs<float>(*lse));
}

napo_status napo_token_logprobs_backward_validate(const napo_tensor* logits, const napo_tensor* tokens,
                                                  const napo_tensor* lse, const napo_tensor* entropy,
                                                  const napo_tensor* gradLogprobs, const napo_tensor* gradEntropy,
                                                  float temperature) {
  constexpr const char* op = "tokenLogprobsBackward";
  NAPO_TRY(checkLogits(op, logits));
  const int64_t rows[1] = {logits->shape[0]};
  NAPO_TRY(checkTensor(op, "tokens", tokens, NAPO_INT32, 1, rows));
  NAPO_TRY(checkTensor(op, "lse", lse, NAPO_FLOAT32, 1, rows));
  NAPO_TRY(checkTensor(op, "gradLogprobs", gradLogprobs, NAPO_FLOAT32, 1, rows));
  if (entropy) NAPO_TRY(checkTensor(op, "entropy", entropy, NAPO_FLOAT32, 1, rows));
  if (gradEntropy) NAPO_TRY(checkTensor(op, "gradEntropy", gradEntropy, NAPO_FLOAT32, 1, rows));
  for (const napo_tensor* in : {tokens, lse, gradLogprobs, entropy, gradEntropy}) {
    NAPO_TRY(checkSameDevice(op, "input", in, logits->device));
  }
  if (!(temperature > 0.0f) || std::isinf(temperature)) {
    return fail(NAPO_ERR_RANGE, "%s: temperature = %g must be > 0 and finite", op, temperature);
  }
  NAPO_TRY(checkTokenRange(op, tokens, logits->shape[1]));
  // In the order the CUDA kernel ranks what it finds (cuda/logprobs.cu), so both name the same value.
  NAPO_TRY(checkFinite(op, "lse", lse));
  NAPO_TRY(checkFinite(op, "entropy", entropy));
  NAPO_TRY(checkFinite(op, "gradLogprobs", gradLogprobs));
  return checkFinite(op, "gradEntropy", gradEntropy);
}

napo_status napo_token_logprobs_backward(const napo_tensor* logits, const napo_tensor* tokens, const napo_tensor* lse,
                                         const napo_tensor* entropy, const napo_tensor* gradLogprobs,
                                         const napo_tensor* gradEntropy, float temperature,
                                         napo_tensor* gradLogits, void* stream) {
  constexpr const char* op = "tokenLogprobsBackward";
  NAPO_TRY(napo_token_logprobs_backward_validate(logits, tokens, lse, entropy, gradLogprobs, gradEntropy, temperature));
  NAPO_TRY(checkTensor(op, "gradLogits", gradLogits, logits->dtype, 2, logits->shape));
  NAPO_TRY(checkSameDevice(op, "gradLogits", gradLogits, logits->device));
  if (onCuda(logits)) {
    return cuda::tokenLogprobsBackward(*logits, *tokens, *lse, entropy, *gradLogprobs, gradEntropy, temperature,
                                       *gradLogits, stream);
  }
  return cpuBackend().tokenLogprobsBackward(*logits, dataAs<const int32_t>(*tokens), dataAs<const float>(*lse),
                                    entropy ? dataAs<const float>(*entropy) : nullptr,
                                    dataAs<const float>(*gradLogprobs),
                                    gradEntropy ? dataAs<const float>(*gradEntropy) : nullptr, temperature,
                                    *gradLogits);
}

napo_status napo_group_advantages_validate(const napo_tensor* rewards, const napo_advantage_options* options) {
  constexpr const char* op = "groupAdvantages";
  if (!rewards) return fail(NAPO_ERR_TYPE, "%s: rewards is missing", op);
  if (rewards->dtype != NAPO_FLOAT32) {
    return fail(NAPO_ERR_TYPE, "%s: rewards must be float32, got %s", op, dtypeName(rewards->dtype));
  }
  if (rewards->ndim != 1 || rewards->shape[0] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: rewards must have rank 1 and at least one entry, got shape %s", op,
                shapeText(*rewards).c_str());
  }
  const int64_t count = rewards->shape[0];
  if (!options || !options->group_offsets || options->group_count < 1) {
    return fail(NAPO_ERR_RANGE, "%s: at least one group is needed", op);
  }
  const int32_t* offsets = options->group_offsets;
  bool increasing = offsets[0] == 0 && offsets[options->group_count] == count;
  for (int64_t g = 0; increasing && g < options->group_count; ++g) increasing = offsets[g + 1] > offsets[g];
  if (!increasing) {
    return fail(NAPO_ERR_RANGE, "%s: groupOffsets must start at 0 and end at %lld, strictly increasing", op,
                (long long)count);
  }
  if (options->scale < NAPO_SCALE_GROUP || options->scale > NAPO_SCALE_NONE) {
    return fail(NAPO_ERR_RANGE, "%s: unknown scale %d", op, int(options->scale));
  }
  if (options->estimator != NAPO_ESTIMATOR_GRPO && options->estimator != NAPO_ESTIMATOR_RLOO) {
    return fail(NAPO_ERR_RANGE, "%s: unknown estimator %d", op, int(options->estimator));
  }
  if (!(options->eps >= 0.0f) || std::isinf(options->eps)) {
    return fail(NAPO_ERR_RANGE, "%s: eps = %g must be >= 0 and finite", op, options->eps);
  }
  if (rewards->device.kind == NAPO_CPU) {
    const float* values = dataAs<const float>(*rewards);
    for (int64_t i = 0; i < count; ++i) {
      if (!std::isfinite(values[i])) {
        return fail(NAPO_ERR_RANGE, "%s: rewards[%lld] = %g is not finite", op, (long long)i, values[i]);
      }
    }
  }
  return NAPO_OK;
}

napo_status napo_group_advantages(const napo_tensor* rewards, const napo_advantage_options* options,
                                  napo_tensor* advantages, void* stream) {
  NAPO_TRY(napo_group_advantages_validate(rewards, options));
  NAPO_TRY(checkTensor("groupAdvantages", "advantages", advantages, NAPO_FLOAT32, 1, rewards->shape));
  NAPO_TRY(checkSameDevice("groupAdvantages", "advantages", advantages, rewards->device));
  if (onCuda(rewards)) return cuda::groupAdvantages(*rewards, *options, *advantages, stream);
  cpuBackend().groupAdvantages(dataAs<const float>(*rewards), rewards->shape[0], *options, dataAs<float>(*advantages));
  return NAPO_OK;
}

napo_status napo_policy_loss_validate(const napo_tensor* logprobs, const napo_tensor* oldLogprobs,
                                      const napo_tensor* refLogprobs, const napo_tensor* entropy,
                                      const napo_tensor* advantages, const napo_tensor* mask,
                                      const napo_policy_loss_options* options) {
  constexpr const char* op = "policyLoss";
  if (!logprobs) return fail(NAPO_ERR_TYPE, "%s: logprobs is missing", op);
  if (logprobs->dtype != NAPO_FLOAT32) {
    return fail(NAPO_ERR_TYPE, "%s: logprobs must be float32, got %s", op, dtypeName(logprobs->dtype));
  }
  if (logprobs->ndim != 2 || logprobs->shape[0] < 1 || logprobs->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: logprobs must have shape [S, T] with S, T >= 1, got %s", op,
                shapeText(*logprobs).c_str());
  }
  NAPO_TRY(checkTensor(op, "oldLogprobs", oldLogprobs, NAPO_FLOAT32, 2, logprobs->shape));
  if (refLogprobs) NAPO_TRY(checkTensor(op, "refLogprobs", refLogprobs, NAPO_FLOAT32, 2, logprobs->shape));
  if (entropy) NAPO_TRY(checkTensor(op, "entropy", entropy, NAPO_FLOAT32, 2, logprobs->shape));
  NAPO_TRY(checkMaskTensor(op, mask, logprobs->shape));
  NAPO_TRY(checkTensor(op, "advantages", advantages, NAPO_FLOAT32, 1, logprobs->shape));
  for (const napo_tensor* in : {oldLogprobs, refLogprobs, entropy, mask, advantages}) {
    NAPO_TRY(checkSameDevice(op, "input", in, logprobs->device));
  }
  if (!options) return fail(NAPO_ERR_TYPE, "%s: options are missing", op);
  if (!(options->eps_low >= 0.0f && options->eps_low < 1.0f)) {
    return fail(NAPO_ERR_RANGE, "%s: epsLow = %g must be in [0, 1)", op, options->eps_low);
  }
  if (!(options->eps_high >= 0.0f) || std::isinf(options->eps_high)) {
    return fail(NAPO_ERR_RANGE, "%s: epsHigh = %g must be >= 0 and finite", op, options->eps_high);
  }
  if (!(options->beta >= 0.0f) || std::isinf(options->beta)) {
    return fail(NAPO_ERR_RANGE, "%s: beta = %g must be >= 0 and finite", op, options->beta);
  }
  if (options->loss_type < NAPO_LOSS_GRPO || options->loss_type > NAPO_LOSS_VESPO) {
    return fail(NAPO_ERR_RANGE, "%s: unknown lossType %d", op, int(options->loss_type));
  }
  if (options->importance_level != NAPO_IMPORTANCE_TOKEN && options->importance_level != NAPO_IMPORTANCE_SEQUENCE) {
    return fail(NAPO_ERR_RANGE, "%s: unknown importanceSamplingLevel %d", op, int(options->importance_level));
  }
  if (!(options->delta == 0.0f || (options->delta > 1.0f && !std::isinf(options->delta)))) {
    return fail(NAPO_ERR_RANGE, "%s: delta = %g must be > 1 and finite (0: off)", op, options->delta);
  }
  if (options->loss_type == NAPO_LOSS_LUSPO && options->importance_level != NAPO_IMPORTANCE_SEQUENCE) {
    return fail(NAPO_ERR_RANGE, "%s: lossType luspo needs importanceSamplingLevel sequence", op);
  }
  if (options->loss_type == NAPO_LOSS_VESPO && options->importance_level != NAPO_IMPORTANCE_TOKEN) {
    return fail(NAPO_ERR_RANGE, "%s: lossType vespo weighs whole sequences itself; importanceSamplingLevel must be token", op);
  }
  if (options->loss_type == NAPO_LOSS_VESPO) {
    for (const auto& [name, value] : {std::pair{"vespoKPos", options->vespo_k_pos}, std::pair{"vespoKNeg", options->vespo_k_neg}}) {
      if (!(value >= 0.0f) || std::isinf(value)) return fail(NAPO_ERR_RANGE, "%s: %s = %g must be >= 0 and finite", op, name, value);
    }
    for (const auto& [name, value] :
         {std::pair{"vespoLambdaPos", options->vespo_lambda_pos}, std::pair{"vespoLambdaNeg", options->vespo_lambda_neg}}) {
      if (!(value > 0.0f) || std::isinf(value)) return fail(NAPO_ERR_RANGE, "%s: %s = %g must be > 0 and finite", op, name, value);
    }
  }
  if (options->loss_type == NAPO_LOSS_SAPO) {
    for (const auto& [name, value] : {std::pair{"sapoTemperaturePos", options->sapo_temperature_pos},
                                      std::pair{"sapoTemperatureNeg", options->sapo_temperature_neg}}) {
      if (!(value > 0.0f) || std::isinf(value)) return fail(NAPO_ERR_RANGE, "%s: %s = %g must be > 0 and finite", op, name, value);
    }
  }
  if (options->max_completion_length < 0) {
    return fail(NAPO_ERR_RANGE, "%s: maxCompletionLength = %lld must be > 0 (0: the steps T)", op,
                (long long)options->max_completion_length);
  }
  if (!(options->num_items_in_batch >= 0.0) || std::isinf(options->num_items_in_batch)) {
    return fail(NAPO_ERR_RANGE, "%s: numItemsInBatch = %g must be > 0 and finite (0: the mask's sum)", op,
                options->num_items_in_batch);
  }
  if (options->beta > 0.0f && !refLogprobs) {
    return fail(NAPO_ERR_RANGE, "%s: beta = %g needs refLogprobs", op, options->beta);
  }
  if (!(options->entropy_quantile >= 0.0f && options->entropy_quantile <= 1.0f)) {
    return fail(NAPO_ERR_RANGE, "%s: entropyQuantile = %g must be in [0, 1] (1 - topEntropyQuantile; 0: off)", op,
                options->entropy_quantile);
  }
  if (!std::isfinite(options->entropy_coef)) {
    return fail(NAPO_ERR_RANGE, "%s: entropyCoef = %g must be finite", op, options->entropy_coef);
  }
  if ((options->entropy_quantile > 0.0f || options->entropy_coef != 0.0f) && !entropy) {
    return fail(NAPO_ERR_RANGE, "%s: entropyQuantile = %g and entropyCoef = %g need entropy", op,
                options->entropy_quantile, options->entropy_coef);
  }
  if (options->off_policy_mask && !(options->off_policy_threshold >= 0.0f && std::isfinite(options->off_policy_threshold))) {
    return fail(NAPO_ERR_RANGE, "%s: offPolicyMaskThreshold = %g must be >= 0 and finite", op, options->off_policy_threshold);
  }
  if (options->entropy_quantile > 0.0f && options->loss_type == NAPO_LOSS_LUSPO) {
    return fail(NAPO_ERR_RANGE, "%s: lossType luspo has no per-token surrogate for entropyQuantile to mask", op);
  }
  // In the order the CUDA kernel ranks what it finds (cuda/policy_loss.cu). Padding (mask 0) may
  // hold anything, even -Inf log-probs.
  NAPO_TRY(checkMask(op, mask));
  NAPO_TRY(checkFinite(op, "advantages", advantages));
  NAPO_TRY(checkFiniteWhereMasked(op, "logprobs", logprobs, mask));
  NAPO_TRY(checkFiniteWhereMasked(op, "oldLogprobs", oldLogprobs, mask));
  NAPO_TRY(checkFiniteWhereMasked(op, "refLogprobs", refLogprobs, mask));
  return checkFiniteWhereMasked(op, "entropy", entropy, mask);
}

napo_status napo_policy_loss(const napo_tensor* logprobs, const napo_tensor* oldLogprobs,
                             const napo_tensor* refLogprobs, const napo_tensor* entropy,
                             const napo_tensor* advantages, const napo_tensor* mask,
                             const napo_policy_loss_options* options, napo_tensor* gradLogprobs,
                             napo_tensor* gradEntropy, napo_policy_loss_stats* stats, void* stream) {
  constexpr const char* op = "policyLoss";
  NAPO_TRY(napo_policy_loss_validate(logprobs, oldLogprobs, refLogprobs, entropy, advantages, mask, options));
  for (napo_tensor* out : {gradLogprobs, gradEntropy}) {
    if (out == gradEntropy && !gradEntropy) continue;
    const char* name = out == gradLogprobs ? "gradLogprobs" : "gradEntropy";
    NAPO_TRY(checkTensor(op, name, out, NAPO_FLOAT32, 2, logprobs->shape));
    NAPO_TRY(checkSameDevice(op, name, out, logprobs->device));
  }
  if (options->entropy_coef != 0.0f && !gradEntropy) {
    return fail(NAPO_ERR_RANGE, "%s: entropyCoef = %g needs gradEntropy", op, options->entropy_coef);
  }
  if (!stats) return fail(NAPO_ERR_TYPE, "%s: stats is missing", op);
  if (onCuda(logprobs)) {
    return cuda::policyLoss(*logprobs, *oldLogprobs, refLogprobs, entropy, *advantages, *mask, *options, *gradLogprobs,
                            gradEntropy, stats, stream);
  }
  const cpu::PolicyLossTensors tensors{dataAs<const float>(*logprobs),
                                  dataAs<const float>(*oldLogprobs),
                                  refLogprobs ? dataAs<const float>(*refLogprobs) : nullptr,
                                  entropy ? dataAs<const float>(*entropy) : nullptr,
                                  dataAs<const float>(*advantages),
                                  dataAs<float>(*gradLogprobs),
                                  gradEntropy ? dataAs<float>(*gradEntropy) : nullptr};
  cpuBackend().policyLoss(tensors, *mask, logprobs->shape[0], logprobs->shape[1], *options, stats);
  return NAPO_OK;
}

napo_status napo_masked_row_sum_validate(const napo_tensor* values, const napo_tensor* mask) {
  constexpr const char* op = "maskedRowSum";
  if (!values) return fail(NAPO_ERR_TYPE, "%s: values is missing", op);
  if (values->dtype != NAPO_FLOAT32) {
    return fail(NAPO_ERR_TYPE, "%s: values must be float32, got %s", op, dtypeName(values->dtype));
  }
  if (values->ndim != 2 || values->shape[0] < 1 || values->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: values must have shape [R, W] with R, W >= 1, got %s", op,
                shapeText(*values).c_str());
  }
  NAPO_TRY(checkMaskTensor(op, mask, values->shape));
  NAPO_TRY(checkSameDevice(op, "mask", mask, values->device));
  // Padding (mask 0) may hold anything, even -Inf log-probs.
  NAPO_TRY(checkMask(op, mask));
  return checkFiniteWhereMasked(op, "values", values, mask);
}

napo_status napo_masked_row_sum(const napo_tensor* values, const napo_tensor* mask, napo_tensor* sums, void* stream) {
  NAPO_TRY(napo_masked_row_sum_validate(values, mask));
  NAPO_TRY(checkTensor("maskedRowSum", "sums", sums, NAPO_FLOAT32, 1, values->shape));
  NAPO_TRY(checkSameDevice("maskedRowSum", "sums", sums, values->device));
  if (onCuda(values)) return cuda::maskedRowSum(*values, *mask, *sums, stream);
  cpuBackend().maskedRowSum(dataAs<const float>(*values), *mask, values->shape[0], values->shape[1],
                            dataAs<float>(*sums));
  return NAPO_OK;
}

napo_status napo_masked_row_sum_backward_validate(const napo_tensor* mask, const napo_tensor* gradSums) {
  constexpr const char* op = "maskedRowSumBackward";
  if (!mask) return fail(NAPO_ERR_TYPE, "%s: mask is missing", op);
  if (mask->ndim != 2 || mask->shape[0] < 1 || mask->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: mask must have shape [R, W] with R, W >= 1, got %s", op,
                shapeText(*mask).c_str());
  }
  NAPO_TRY(checkMaskTensor(op, mask, mask->shape));
  NAPO_TRY(checkTensor(op, "gradSums", gradSums, NAPO_FLOAT32, 1, mask->shape));
  NAPO_TRY(checkSameDevice(op, "gradSums", gradSums, mask->device));
  NAPO_TRY(checkMask(op, mask));
  return checkFinite(op, "gradSums", gradSums);
}

napo_status napo_masked_row_sum_backward(const napo_tensor* mask, const napo_tensor* gradSums,
                                         napo_tensor* gradValues, void* stream) {
  NAPO_TRY(napo_masked_row_sum_backward_validate(mask, gradSums));
  NAPO_TRY(checkTensor("maskedRowSumBackward", "gradValues", gradValues, NAPO_FLOAT32, 2, mask->shape));
  NAPO_TRY(checkSameDevice("maskedRowSumBackward", "gradValues", gradValues, mask->device));
  if (onCuda(mask)) return cuda::maskedRowSumBackward(*mask, *gradSums, *gradValues, stream);
  cpuBackend().maskedRowSumBackward(*mask, dataAs<const float>(*gradSums), mask->shape[0], mask->shape[1],
                                    dataAs<float>(*gradValues));
  return NAPO_OK;
}

napo_status napo_repetition_penalty_validate(const napo_tensor* logits, const napo_tensor* history, float penalty) {
  constexpr const char* op = "repetitionPenalty";
  NAPO_TRY(checkLogits(op, logits));
  if (!history) return fail(NAPO_ERR_TYPE, "%s: history is missing", op);
  if (history->dtype != NAPO_INT32) return fail(NAPO_ERR_TYPE, "%s: history must be int32, got %s", op, dtypeName(history->dtype));
  if (history->ndim != 2 || history->shape[0] != logits->shape[0] || history->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: history must have shape [%lld, L] with L >= 1, got %s", op,
                (long long)logits->shape[0], shapeText(*history).c_str());
  }
  NAPO_TRY(checkSameDevice(op, "history", history, logits->device));
  if (!(penalty > 0.0f) || std::isinf(penalty)) return fail(NAPO_ERR_RANGE, "%s: penalty = %g must be > 0 and finite", op, penalty);
  if (history->device.kind != NAPO_CPU) return NAPO_OK;
  const int32_t* ids = dataAs<const int32_t>(*history);
  for (int64_t i = 0; i < numel(*history); ++i) {
    if (ids[i] < -1 || ids[i] >= logits->shape[1]) return historyTokenError(op, *history, i, ids[i], logits->shape[1]);
  }
  return NAPO_OK;
}

napo_status napo_repetition_penalty(const napo_tensor* logits, const napo_tensor* history, float penalty,
                                    napo_tensor* out, void* stream) {
  NAPO_TRY(napo_repetition_penalty_validate(logits, history, penalty));
  NAPO_TRY(checkTensor("repetitionPenalty", "out", out, logits->dtype, 2, logits->shape));
  NAPO_TRY(checkSameDevice("repetitionPenalty", "out", out, logits->device));
  if (onCuda(logits)) return cuda::repetitionPenalty(*logits, *history, penalty, *out, stream);
  cpuBackend().repetitionPenalty(*logits, dataAs<const int32_t>(*history), history->shape[1], penalty, *out);
  return NAPO_OK;
}

}  // extern "C"
