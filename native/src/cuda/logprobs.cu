// tokenLogprobs and its backward on a CUDA device: one kernel launch each (logprobs.cuh), then the
// error record is read back so a bad token or logit fails the call with the CPU backend's message.
#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "logprobs.cuh"

namespace napo::cuda {

namespace {

napo_status reportFound(DeviceCall& call, const KernelErrors& found, const napo_tensor& logits,
                        const napo_tensor& tokens, float temperature) {
  // Tokens first: the CPU backend validates them before it reads a logit.
  if (found.badIndex != kNothingFound) return badTokenFound(call, tokens, int64_t(found.badIndex), logits.shape[1]);
  if (found.badLogit != kNothingFound) return badLogitFound(call, logits, found.badLogit, {&temperature, 1});
  return NAPO_OK;
}

template <typename Logit>
napo_status forward(const napo_tensor& logits, const napo_tensor& tokens, float temperature, napo_tensor& logprobs,
                    napo_tensor* entropy, napo_tensor& lse, void* stream) {
  DeviceCall call("tokenLogprobs", logits.device, stream);
  NAPO_TRY(call.begin());
  const LogprobsArgs<Logit> args{dataAs<const Logit>(logits), dataAs<const int32_t>(tokens), logits.shape[0],
                                 logits.shape[1], 1.0f / temperature, dataAs<float>(logprobs),
                                 entropy ? dataAs<float>(*entropy) : nullptr, dataAs<float>(lse), call.errors()};
  launchTokenLogprobs(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  return reportFound(call, found, logits, tokens, temperature);
}

template <typename Logit>
napo_status backward(const napo_tensor& logits, const napo_tensor& tokens, const napo_tensor& lse,
                     const napo_tensor* entropy, const napo_tensor& gradLogprobs, const napo_tensor* gradEntropy,
                     float temperature, napo_tensor& gradLogits, void* stream) {
  DeviceCall call("tokenLogprobsBackward", logits.device, stream);
  NAPO_TRY(call.begin());
  const LogprobsBackwardArgs<Logit> args{dataAs<const Logit>(logits),
                                         dataAs<const int32_t>(tokens),
                                         dataAs<const float>(lse),
                                         entropy ? dataAs<const float>(*entropy) : nullptr,
                                         dataAs<const float>(gradLogprobs),
                                         gradEntropy ? dataAs<const float>(*gradEntropy) : nullptr,
                                         logits.shape[0],
                                         logits.shape[1],
                                         1.0f / temperature,
                                         dataAs<Logit>(gradLogits),
                                         call.errors()};
  launchTokenLogprobsBackward(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  // The CPU backend checks tokens, then these inputs, then reads the logits.
  if (found.badIndex == kNothingFound && found.badInput != kNothingFound) {
    const InputPosition where = decodeBadInput(found.badInput);
    const napo_tensor* const inputs[4] = {&lse, entropy, &gradLogprobs, gradEntropy};
    double value = 0.0;
    NAPO_TRY(downloadElement(call, *inputs[where.argument], where.index, &value));
    return backwardInputError(where, inputs, value);
  }
  return reportFound(call, found, logits, tokens, temperature);
}

}  // namespace

napo_status tokenLogprobs(const napo_tensor& logits, const napo_tensor& tokens, float temperature,
                          napo_tensor& logprobs, napo_tensor* entropy, napo_tensor& lse, void* stream) {
  if (logits.dtype == NAPO_BFLOAT16) {
    return forward<uint16_t>(logits, tokens, temperature, logprobs, entropy, lse, stream);
  }
  return forward<float>(logits, tokens, temperature, logprobs, entropy, lse, stream);
}

napo_status tokenLogprobsBackward(const napo_tensor& logits, const napo_tensor& tokens, const napo_tensor& lse,
                                  const napo_tensor* entropy, const napo_tensor& gradLogprobs,
                                  const napo_tensor* gradEntropy, float temperature, napo_tensor& gradLogits,
                                  void* stream) {
  if (logits.dtype == NAPO_BFLOAT16) {
    return backward<uint16_t>(logits, tokens, lse, entropy, gradLogprobs, gradEntropy, temperature, gradLogits,
                              stream);
  }
  return backward<float>(logits, tokens, lse, entropy, gradLogprobs, gradEntropy, temperature, gradLogits, stream);
}

}  // namespace napo::cuda
