// groupAdvantages on a CUDA device: the group offsets travel to the device, one kernel launch
// (advantages.cuh) computes every advantage, and a non-finite reward fails the call with the CPU
// backend's message.
#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "advantages.cuh"
#include "device_call.h"

namespace napo::cuda {

napo_status groupAdvantages(const napo_tensor& rewards, const napo_advantage_options& options,
                            napo_tensor& advantages, void* stream) {
  const size_t offsetBytes = size_t(options.group_count + 1) * sizeof(int32_t);
  DeviceCall call("groupAdvantages", rewards.device, stream);
  NAPO_TRY(call.begin(offsetBytes));
  auto* offsets = static_cast<int32_t*>(call.extra());
  NAPO_TRY(call.upload(offsets, options.group_offsets, offsetBytes));
  const AdvantageArgs args{dataAs<const float>(rewards), rewards.shape[0], offsets,
                           options.group_count,         options.scale,     options.estimator,
                           options.eps,                 dataAs<float>(advantages), call.errors()};
  launchGroupAdvantages(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badIndex != kNothingFound) {
    float reward;
    NAPO_TRY(call.download(&reward, dataAs<const float>(rewards) + found.badIndex, sizeof reward));
    return badRewardError(int64_t(found.badIndex), reward);
  }
  return NAPO_OK;
}

}  // namespace napo::cuda
