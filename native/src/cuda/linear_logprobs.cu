// linearLogprobs and its backward on a CUDA device: the workspace (one chunk of logits and the
// rows' running statistics) from the call's scratch, the kernels of linear_logprobs.cuh, then the
// error record read back so a bad input fails the call with the CPU backend's message.
#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "linear_logprobs.cuh"

namespace napo::cuda {

namespace {

template <typename T>
LinearArgs<T> linearArgs(DeviceCall& call, const napo_tensor& hidden, const napo_tensor& weight,
                         const napo_tensor& tokens, const napo_linear_logprobs_options& options, int64_t chunk) {
  const int64_t rows = hidden.shape[0];
  float* tile = static_cast<float*>(call.extra());
  float* state = tile + rows * chunk;
  return {dataAs<const T>(hidden), dataAs<const T>(weight), dataAs<const int32_t>(tokens), rows, hidden.shape[1],
          weight.shape[0], chunk, 1.0f / options.temperature, tile,
          LinearRowState{state, state + rows, state + 2 * rows, state + 3 * rows}, call.errors()};
}

// Tokens, then the checked inputs, then an overflowing logit: the order the CPU backend checks in.
napo_status reportFound(DeviceCall& call, const KernelErrors& found, const napo_tensor* const inputs[6],
                        const napo_tensor& tokens, int64_t vocab, float temperature) {
  if (found.badIndex != kNothingFound) return badTokenFound(call, tokens, int64_t(found.badIndex), vocab);
  if (found.badInput != kNothingFound) {
    const InputPosition where = decodeBadInput(found.badInput);
    double value = 0.0;
    NAPO_TRY(downloadElement(call, *inputs[where.argument], where.index, &value));
    return linearInputError(call.op(), where, inputs, value);
  }
  if (found.badLogit != kNothingFound) {
    const LogitPosition where = decodeBadLogit(found.badLogit, vocab);
    return linearOverflowError(call.op(), where.row, where.column, temperature);
  }
  return NAPO_OK;
}

template <typename T>
napo_status forward(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                    const napo_linear_logprobs_options& options, napo_tensor& logprobs, napo_tensor* entropy,
                    napo_tensor& lse, void* stream) {
  const int64_t rows = hidden.shape[0];
  const int64_t chunk = napo_linear_logprobs_chunk(rows, weight.shape[0], options.chunk_size);
  DeviceCall call("linearLogprobs", hidden.device, stream);
  NAPO_TRY(call.begin(size_t(rows * chunk + 4 * rows) * sizeof(float)));
  const LinearArgs<T> args = linearArgs<T>(call, hidden, weight, tokens, options, chunk);
  launchLinearCheck(launchOn(call.stream()), args, static_cast<const LinearGradients*>(nullptr));
  launchLinearLogprobs(launchOn(call.stream()), args,
                       LinearOutputs{dataAs<float>(logprobs), entropy ? dataAs<float>(*entropy) : nullptr,
                                     dataAs<float>(lse)});
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  const napo_tensor* const inputs[6] = {&hidden, &weight, nullptr, nullptr, nullptr, nullptr};
  return reportFound(call, found, inputs, tokens, weight.shape[0], options.temperature);
}

template <typename T>
napo_status backward(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                     const napo_tensor& lse, const napo_tensor* entropy, const napo_tensor& gradLogprobs,
                     const napo_tensor* gradEntropy, const napo_linear_logprobs_options& options, bool accumulate,
                     napo_tensor& gradHidden, napo_tensor& gradWeight, void* stream) {
  const int64_t rows = hidden.shape[0];
  const int64_t chunk = napo_linear_logprobs_chunk(rows, weight.shape[0], options.chunk_size);
  // The entropy term needs sum p z = lse - entropy; without the forward's entropy, a forward
  // pass finds it first (three more rows of workspace).
  const bool recompute = gradEntropy && !entropy;
  DeviceCall call("linearLogprobsBackward", hidden.device, stream);
  NAPO_TRY(call.begin(size_t(rows * chunk + (recompute ? 7 : 4) * rows) * sizeof(float)));
  const LinearArgs<T> args = linearArgs<T>(call, hidden, weight, tokens, options, chunk);
  const float* rowEntropy = entropy ? dataAs<const float>(*entropy) : nullptr;
  LinearGradients grads{dataAs<const float>(lse),
                        rowEntropy,
                        dataAs<const float>(gradLogprobs),
                        gradEntropy ? dataAs<const float>(*gradEntropy) : nullptr,
                        dataAs<float>(gradHidden),
                        dataAs<float>(gradWeight),
                        accumulate};
  launchLinearCheck(launchOn(call.stream()), args, &grads);
  if (recompute) {
    float* scratch = args.state.target + rows;
    launchLinearLogprobs(launchOn(call.stream()), args, LinearOutputs{scratch, scratch + rows, scratch + 2 * rows});
    grads.entropy = scratch + rows;
  }
  launchLinearLogprobsBackward(launchOn(call.stream()), args, grads);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  const napo_tensor* const inputs[6] = {&hidden, &weight, &lse, entropy, &gradLogprobs, gradEntropy};
  return reportFound(call, found, inputs, tokens, weight.shape[0], options.temperature);
}

}  // namespace

napo_status linearLogprobs(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                           const napo_linear_logprobs_options& options, napo_tensor& logprobs, napo_tensor* entropy,
                           napo_tensor& lse, void* stream) {
  if (hidden.dtype == NAPO_BFLOAT16) return forward<uint16_t>(hidden, weight, tokens, options, logprobs, entropy, lse, stream);
  return forward<float>(hidden, weight, tokens, options, logprobs, entropy, lse, stream);
}

napo_status linearLogprobsBackward(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                                   const napo_tensor& lse, const napo_tensor* entropy, const napo_tensor& gradLogprobs,
                                   const napo_tensor* gradEntropy, const napo_linear_logprobs_options& options,
                                   bool accumulate, napo_tensor& gradHidden, napo_tensor& gradWeight, void* stream) {
  if (hidden.dtype == NAPO_BFLOAT16) {
    return backward<uint16_t>(hidden, weight, tokens, lse, entropy, gradLogprobs, gradEntropy, options, accumulate,
                              gradHidden, gradWeight, stream);
  }
  return backward<float>(hidden, weight, tokens, lse, entropy, gradLogprobs, gradEntropy, options, accumulate,
                         gradHidden, gradWeight, stream);
}

}  // namespace napo::cuda
