// policyLoss on the CPU: the clipped surrogate with an optional k3 KL, forward and gradient in
// one pass over [S, T], aggregated as TRL's loss types. Row sums are reduced in row order so the
// loss does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/policy_loss_stats.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

// Masks come as float32, int32, uint8 or bool (one byte), holding 0 or 1 (validated).
template <typename Mask>
double maskSum(const Mask* mask, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += double(mask[i]);
  return sum;
}

// The weight each sequence's masked token sum gets in the loss.
template <typename Mask>
std::vector<double> sequenceWeights(const Mask* mask, int64_t sequences, int64_t steps,
                                    const napo_policy_loss_options& options) {
  std::vector<double> weights(static_cast<size_t>(sequences));
  const double allTokens = maskSum(mask, sequences * steps);
  for (int64_t s = 0; s < sequences; ++s) {
    switch (options.loss_type) {
      case NAPO_LOSS_GRPO:
        weights[size_t(s)] = 1.0 / (double(sequences) * std::max(1.0, maskSum(mask + s * steps, steps)));
        break;
      case NAPO_LOSS_BNPO:
        weights[size_t(s)] = 1.0 / std::max(1.0, allTokens);
        break;
      case NAPO_LOSS_DR_GRPO: {
        const double length = options.max_completion_length > 0 ? double(options.max_completion_length) : double(steps);
        weights[size_t(s)] = 1.0 / (double(sequences) * length);
        break;
      }
      case NAPO_LOSS_DAPO:
        weights[size_t(s)] = 1.0 / std::max(1.0, options.num_items_in_batch > 0 ? options.num_items_in_batch : allTokens);
        break;
    }
  }
  return weights;
}

template <typename Mask>
void policyLossRows(const float* logprobs, const float* oldLogprobs, const float* refLogprobs,
                    const float* advantages, const Mask* mask, int64_t sequences, int64_t steps,
                    const napo_policy_loss_options& options, float* gradLogprobs,
                    napo_policy_loss_stats* stats) {
  const std::vector<double> weights = sequenceWeights(mask, sequences, steps, options);
  std::vector<PolicyLossSums> rows(static_cast<size_t>(sequences));
  const bool withKl = refLogprobs && options.beta != 0.0f;
  const float low = 1.0f - options.eps_low, high = 1.0f + options.eps_high;
  parallelFor(sequences, std::max<int64_t>(1, 4096 / std::max<int64_t>(steps, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      const float advantage = advantages[s];
      const float weight = float(weights[size_t(s)]);
      PolicyLossSums sums{};
      for (int64_t t = s * steps; t < (s + 1) * steps; ++t) {
        const float m = float(mask[t]);
        if (m == 0.0f) {
          // Padding may hold any value (even -Inf log-probs); it must not reach the sums.
          gradLogprobs[t] = 0.0f;
          continue;
        }
        const float ratio = std::exp(logprobs[t] - oldLogprobs[t]);
        const float unclipped = ratio * advantage;
        const float clipped = std::clamp(ratio, low, high) * advantage;
        // The surrogate's gradient flows only when the unclipped term is the smaller one.
        float grad = unclipped <= clipped ? -advantage * ratio : 0.0f;
        float loss = -std::min(unclipped, clipped);
        float kl = 0.0f;
        if (refLogprobs) {
          const float delta = refLogprobs[t] - logprobs[t];
          const float expDelta = std::exp(delta);
          kl = expDelta - delta - 1.0f;
          if (withKl) {
            loss += options.beta * kl;
            grad += options.beta * (1.0f - expDelta);
          }
        }
        gradLogprobs[t] = weight * m * grad;
        sums.loss += double(m) * loss;
        sums.tokens += m;
        sums.clipLow += (advantage < 0.0f && ratio < low) ? m : 0.0f;
        sums.clipHigh += (advantage > 0.0f && ratio > high) ? m : 0.0f;
        sums.kl += double(m) * kl;
        sums.ratio += double(m) * ratio;
      }
      sums.loss *= weights[size_t(s)];
      rows[size_t(s)] = sums;
    }
  });
  policyLossStats(rows.data(), sequences, stats);
}

}  // namespace

void policyLoss(const float* logprobs, const float* oldLogprobs, const float* refLogprobs,
                const float* advantages, const napo_tensor& mask, int64_t sequences, int64_t steps,
                const napo_policy_loss_options& options, float* gradLogprobs,
                napo_policy_loss_stats* stats) {
  switch (mask.dtype) {
    case NAPO_INT32:
      return policyLossRows(logprobs, oldLogprobs, refLogprobs, advantages, dataAs<const int32_t>(mask), sequences,
                            steps, options, gradLogprobs, stats);
    case NAPO_UINT8:
    case NAPO_BOOL:
      return policyLossRows(logprobs, oldLogprobs, refLogprobs, advantages, dataAs<const uint8_t>(mask), sequences,
                            steps, options, gradLogprobs, stats);
    default:
      return policyLossRows(logprobs, oldLogprobs, refLogprobs, advantages, dataAs<const float>(mask), sequences,
                            steps, options, gradLogprobs, stats);
  }
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
