// policyLoss on the CPU: the clipped surrogate (or CISPO's, or SAPO's gate) at token or sequence
// (GSPO) importance level with an optional k3 KL, forward and gradient in one pass over [S, T]
// (two for GSPO: the sequence's weight first), aggregated as TRL's loss types. Row sums are
// reduced in row order so the loss does not depend on the thread count.
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
      case NAPO_LOSS_SAPO:
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
      case NAPO_LOSS_LUSPO:
        // Each sequence's (uniform) token loss summed over its tokens: its loss times its length.
        weights[size_t(s)] = 1.0 / double(sequences);
        break;
      case NAPO_LOSS_DAPO:
      case NAPO_LOSS_CISPO:
        weights[size_t(s)] = 1.0 / std::max(1.0, options.num_items_in_batch > 0 ? options.num_items_in_batch : allTokens);
        break;
    }
  }
  return weights;
}

// The surrogate of one token at importance weight `coef`: its loss (before the KL and the
// weight), d loss / d coef, and whether it counts as clipped below / above.
struct Surrogate {
  float loss, dCoef;
  bool clipLow, clipHigh;
};

Surrogate surrogate(float coef, float advantage, const napo_policy_loss_options& options) {
  const float low = 1.0f - options.eps_low, high = 1.0f + options.eps_high;
  if (options.loss_type == NAPO_LOSS_SAPO) {
    // A smooth gate instead of the clip: (4 / tau) sigmoid(tau (coef - 1)), slope 1 at coef = 1.
    const float tau = advantage > 0.0f ? options.sapo_temperature_pos : options.sapo_temperature_neg;
    const float gate = 1.0f / (1.0f + std::exp(-tau * (coef - 1.0f)));
    return {-(4.0f / tau) * gate * advantage, -4.0f * gate * (1.0f - gate) * advantage, false, false};
  }
  // Two-sided clipping caps the unclipped ratio too, so a negative advantage cannot push it without bound.
  const bool capped = options.delta > 0.0f && coef > options.delta;
  const float unclipped = (capped ? options.delta : coef) * advantage;
  const float clipped = std::clamp(coef, low, high) * advantage;
  // The surrogate's gradient flows only when the unclipped term is the smaller one and not capped.
  const float dCoef = unclipped <= clipped && !capped ? -advantage : 0.0f;
  return {-std::min(unclipped, clipped), dCoef, advantage < 0.0f && coef < low, advantage > 0.0f && coef > high};
}

// GSPO's log importance weight of a sequence: its masked mean log-ratio.
template <typename Mask>
float sequenceLogWeight(const float* logprobs, const float* oldLogprobs, const Mask* mask, int64_t begin, int64_t end) {
  double sum = 0.0, tokens = 0.0;
  for (int64_t t = begin; t < end; ++t) {
    if (mask[t] == Mask(0)) continue;
    sum += double(logprobs[t] - oldLogprobs[t]);
    tokens += 1.0;
  }
  return float(sum / std::max(1.0, tokens));
}

template <typename Mask>
void policyLossRows(const float* logprobs, const float* oldLogprobs, const float* refLogprobs,
                    const float* advantages, const Mask* mask, int64_t sequences, int64_t steps,
                    const napo_policy_loss_options& options, float* gradLogprobs,
                    napo_policy_loss_stats* stats) {
  const std::vector<double> weights = sequenceWeights(mask, sequences, steps, options);
  std::vector<PolicyLossSums> rows(static_cast<size_t>(sequences));
  const bool withKl = refLogprobs && options.beta != 0.0f;
  const bool perSequence = options.importance_level == NAPO_IMPORTANCE_SEQUENCE;
  parallelFor(sequences, std::max<int64_t>(1, 4096 / std::max<int64_t>(steps, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      const float advantage = advantages[s];
      const float weight = float(weights[size_t(s)]);
      const float sequenceCoef =
          perSequence ? std::exp(sequenceLogWeight(logprobs, oldLogprobs, mask, s * steps, (s + 1) * steps)) : 0.0f;
      PolicyLossSums sums{};
      for (int64_t t = s * steps; t < (s + 1) * steps; ++t) {
        const float m = float(mask[t]);
        if (m == 0.0f) {
          // Padding may hold any value (even -Inf log-probs); it must not reach the sums.
          gradLogprobs[t] = 0.0f;
          continue;
        }
        const float coef = perSequence ? sequenceCoef : std::exp(logprobs[t] - oldLogprobs[t]);
        float loss, grad;
        bool clipLow = false, clipHigh = false;
        if (options.loss_type == NAPO_LOSS_CISPO) {
          // The capped weight is a constant: the gradient is REINFORCE's, scaled by it.
          const float cappedCoef = std::min(coef, options.eps_high);
          loss = -cappedCoef * advantage * logprobs[t];
          grad = -cappedCoef * advantage;
          clipHigh = advantage > 0.0f && coef > options.eps_high;
        } else {
          const Surrogate term = surrogate(coef, advantage, options);
          loss = term.loss;
          // d coef / d logprob: coef itself per token; per sequence coef / length for each of its
          // tokens, and the sequence's length tokens share the same loss, so the lengths cancel.
          grad = term.dCoef * coef;
          clipLow = term.clipLow;
          clipHigh = term.clipHigh;
        }
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
        sums.clipLow += clipLow ? m : 0.0f;
        sums.clipHigh += clipHigh ? m : 0.0f;
        sums.kl += double(m) * kl;
        sums.ratio += double(m) * coef;
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
