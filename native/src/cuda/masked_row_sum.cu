// maskedRowSum and its backward on a CUDA device: one launch each (masked_row_sum.cuh); a broken
// input rule comes back as the CPU backend's message.
#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "masked_row_sum.cuh"

namespace napo::cuda {

namespace {

template <typename Launcher>
napo_status runRowSum(const char* op, const napo_tensor* const inputs[3], const MaskedRowSumArgs& base,
                      napo_device device, void* stream, Launcher&& launcher) {
  DeviceCall call(op, device, stream);
  NAPO_TRY(call.begin(0));
  MaskedRowSumArgs args = base;
  args.errors = call.errors();
  launcher(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badInput == kNothingFound) return NAPO_OK;
  const InputPosition where = decodeBadInput(found.badInput);
  double value = 0.0;
  NAPO_TRY(downloadElement(call, *inputs[where.argument], where.index, &value));
  return maskedRowSumInputError(op, where, inputs, value);
}

}  // namespace

napo_status maskedRowSum(const napo_tensor& values, const napo_tensor& mask, napo_tensor& sums, void* stream) {
  const napo_tensor* const inputs[3] = {&mask, &values, nullptr};
  const MaskedRowSumArgs args{dataAs<const float>(values), mask.data, mask.dtype, values.shape[0], values.shape[1],
                              nullptr, dataAs<float>(sums), nullptr};
  return runRowSum("maskedRowSum", inputs, args, values.device, stream,
                   [](auto&& launch, const MaskedRowSumArgs& a) { launchMaskedRowSum(launch, a); });
}

napo_status maskedRowSumBackward(const napo_tensor& mask, const napo_tensor& gradSums, napo_tensor& gradValues,
                                 void* stream) {
  const napo_tensor* const inputs[3] = {&mask, nullptr, &gradSums};
  const MaskedRowSumArgs args{nullptr, mask.data, mask.dtype, mask.shape[0], mask.shape[1],
                              dataAs<const float>(gradSums), dataAs<float>(gradValues), nullptr};
  return runRowSum("maskedRowSumBackward", inputs, args, mask.device, stream,
                   [](auto&& launch, const MaskedRowSumArgs& a) { launchMaskedRowSumBackward(launch, a); });
}

}  // namespace napo::cuda
