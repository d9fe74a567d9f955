// sample on a CUDA device: the per-row parameters travel to the device in one copy, one kernel
// launch draws every row (sample.cuh), and the error record comes back so a NaN/Inf row fails the
// call with the CPU backend's message instead of being sampled.
#include <cstring>
#include <vector>

#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "sample.cuh"

namespace napo::cuda {

namespace {

// The per-row parameters laid out back to back (16-byte aligned each) for one upload.
class ParameterBlock {
 public:
  template <typename T>
  size_t add(const T* values, int64_t count) {
    const size_t at = bytes_.size();
    const size_t size = size_t(count) * sizeof(T);
    bytes_.resize(at + (size + 15) / 16 * 16);
    std::memcpy(bytes_.data() + at, values, size);
    return at;
  }
  const std::vector<char>& bytes() const { return bytes_; }

 private:
  std::vector<char> bytes_;
};

template <typename Logit>
napo_status sampleRows(const napo_tensor& logits, const napo_sample_options& options, napo_tensor& tokens,
                       napo_tensor& logprobs, void* stream) {
  ParameterBlock parameters;
  const size_t temperatureAt = parameters.add(options.temperature.values, options.temperature.count);
  const size_t topKAt = parameters.add(options.top_k.values, options.top_k.count);
  const size_t topPAt = parameters.add(options.top_p.values, options.top_p.count);
  const size_t minPAt = parameters.add(options.min_p.values, options.min_p.count);

  DeviceCall call("sample", logits.device, stream);
  NAPO_TRY(call.begin(parameters.bytes().size()));
  char* device = static_cast<char*>(call.extra());
  NAPO_TRY(call.upload(device, parameters.bytes().data(), parameters.bytes().size()));
  const SampleArgs<Logit> args{dataAs<const Logit>(logits),
                               logits.shape[0],
                               logits.shape[1],
                               {reinterpret_cast<const float*>(device + temperatureAt), options.temperature.count},
                               {reinterpret_cast<const int32_t*>(device + topKAt), options.top_k.count},
                               {reinterpret_cast<const float*>(device + topPAt), options.top_p.count},
                               {reinterpret_cast<const float*>(device + minPAt), options.min_p.count},
                               options.seed,
                               options.offset,
                               dataAs<int32_t>(tokens),
                               dataAs<float>(logprobs),
                               call.errors()};
  launchSample(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badLogit != kNothingFound) return badLogitFound(call, logits, found.badLogit, options.temperature);
  return NAPO_OK;
}

}  // namespace

napo_status sample(const napo_tensor& logits, const napo_sample_options& options, napo_tensor& tokens,
                   napo_tensor& logprobs, void* stream) {
  if (logits.dtype == NAPO_BFLOAT16) return sampleRows<uint16_t>(logits, options, tokens, logprobs, stream);
  return sampleRows<float>(logits, options, tokens, logprobs, stream);
}

}  // namespace napo::cuda
