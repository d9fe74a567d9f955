// policyLoss on a CUDA device: the fused loss-and-gradient kernel (policy_loss.cuh), then the
// per-sequence sums come back and the host adds them in sequence order into the stats; a broken
// input rule comes back as the CPU backend's message.
#include <vector>

#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "policy_loss.cuh"

namespace napo::cuda {

napo_status policyLoss(const napo_tensor& logprobs, const napo_tensor& oldLogprobs, const napo_tensor* refLogprobs,
                       const napo_tensor& advantages, const napo_tensor& mask,
                       const napo_policy_loss_options& options, napo_tensor& gradLogprobs,
                       napo_policy_loss_stats* stats, void* stream) {
  const int64_t sequences = logprobs.shape[0];
  DeviceCall call("policyLoss", logprobs.device, stream);
  NAPO_TRY(call.begin(sizeof(double) + size_t(sequences) * sizeof(SequenceSums)));
  auto* maskTotal = static_cast<double*>(call.extra());
  auto* sums = reinterpret_cast<SequenceSums*>(maskTotal + 1);
  const PolicyLossArgs args{dataAs<const float>(logprobs),
                            dataAs<const float>(oldLogprobs),
                            refLogprobs ? dataAs<const float>(*refLogprobs) : nullptr,
                            dataAs<const float>(advantages),
                            mask.data,
                            mask.dtype,
                            sequences,
                            logprobs.shape[1],
                            options,
                            maskTotal,
                            dataAs<float>(gradLogprobs),
                            sums,
                            call.errors()};
  launchPolicyLoss(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badInput != kNothingFound) {
    const InputPosition where = decodeBadInput(found.badInput);
    const napo_tensor* const inputs[5] = {&mask, &advantages, &logprobs, &oldLogprobs, refLogprobs};
    const napo_tensor& tensor = *inputs[where.argument];
    double value = 0.0;
    NAPO_TRY(downloadElement(call, tensor, where.index, &value));
    return policyLossInputError(where, inputs, value);
  }
  std::vector<SequenceSums> hostSums(static_cast<size_t>(sequences));
  NAPO_TRY(call.download(hostSums.data(), sums, hostSums.size() * sizeof(SequenceSums)));
  policyLossStats(hostSums.data(), sequences, stats);
  return NAPO_OK;
}

}  // namespace napo::cuda
