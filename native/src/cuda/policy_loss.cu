// policyLoss on a CUDA device: the batch's totals when needed, the fused loss-and-gradient kernel
// (policy_loss.cuh), then the per-sequence sums (and the entropy threshold) come back and the host adds them in sequence order into the stats; a broken
// input rule comes back as the CPU backend's message.
#include <vector>

#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "policy_loss.cuh"

namespace napo::cuda {

napo_status policyLoss(const napo_tensor& logprobs, const napo_tensor& oldLogprobs, const napo_tensor* refLogprobs,
                       const napo_tensor* entropy, const napo_tensor& advantages, const napo_tensor& mask,
                       const napo_policy_loss_options& options, napo_tensor& gradLogprobs, napo_tensor* gradEntropy,
                       napo_policy_loss_stats* stats, void* stream) {
  const int64_t sequences = logprobs.shape[0];
  DeviceCall call("policyLoss", logprobs.device, stream);
  NAPO_TRY(call.begin(sizeof(BatchTotals) + size_t(sequences) * sizeof(SequenceSums)));
  auto* batch = static_cast<BatchTotals*>(call.extra());
  auto* sums = reinterpret_cast<SequenceSums*>(batch + 1);
  const PolicyLossArgs args{dataAs<const float>(logprobs),
                            dataAs<const float>(oldLogprobs),
                            refLogprobs ? dataAs<const float>(*refLogprobs) : nullptr,
                            entropy ? dataAs<const float>(*entropy) : nullptr,
                            dataAs<const float>(advantages),
                            mask.data,
                            mask.dtype,
                            sequences,
                            logprobs.shape[1],
                            options,
                            batch,
                            dataAs<float>(gradLogprobs),
                            gradEntropy ? dataAs<float>(*gradEntropy) : nullptr,
                            sums,
                            call.errors()};
  launchPolicyLoss(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badInput != kNothingFound) {
    const InputPosition where = decodeBadInput(found.badInput);
    const napo_tensor* const inputs[kPolicyLossInputs] = {&mask, &advantages, &logprobs, &oldLogprobs, refLogprobs, entropy};
    const napo_tensor& tensor = *inputs[where.argument];
    double value = 0.0;
    NAPO_TRY(downloadElement(call, tensor, where.index, &value));
    return policyLossInputError(where, inputs, value);
  }
  std::vector<SequenceSums> hostSums(static_cast<size_t>(sequences));
  NAPO_TRY(call.download(hostSums.data(), sums, hostSums.size() * sizeof(SequenceSums)));
  BatchTotals totals{0.0, 0.0, 0.0f};
  if (needsBatchTotals(options)) NAPO_TRY(call.download(&totals, batch, sizeof(BatchTotals)));
  policyLossStats(hostSums.data(), sequences, options, totals.threshold, stats);
  return NAPO_OK;
}

}  // namespace napo::cuda
