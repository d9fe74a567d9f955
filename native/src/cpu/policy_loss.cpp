// policyLoss on the CPU: the clipped surrogate (or CISPO's, or SAPO's gate) at token or sequence
// (GSPO) importance level, masked to the high-entropy tokens when asked, with an optional k3 KL
// and entropy bonus; forward and gradients in one pass over [S, T] after a pass for the
// sequences' totals (and the entropy quantile), aggregated as TRL's loss types. Row sums are
// reduced in row order so the loss does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/policy_loss_stats.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "kernels.h"
#include "mask_data.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

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
      case NAPO_LOSS_VESPO:
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

// One sequence's masked token count, the tokens the entropy quantile keeps, its masked mean
// log-ratio (GSPO's log weight; minus the off-policy mask's KL) and k3 KL sum.
struct SequenceTotals {
  double tokens, kept, klSum;
  float logWeight;
  double clampedLogRatioSum;  // vespo's: each masked log-ratio clamped to [-20, 20]
};

float k3(float refLogprob, float logprob) {
  const float delta = refLogprob - logprob;
  return std::exp(delta) - delta - 1.0f;
}

template <typename Mask>
SequenceTotals sequenceTotals(const PolicyLossTensors& in, const Mask* mask, int64_t begin, int64_t end,
                              const napo_policy_loss_options& options, float threshold) {
  double logRatio = 0.0, tokens = 0.0, kept = 0.0, klSum = 0.0, clamped = 0.0;
  // Only the bias-corrected KL at sequence level needs the sequence's KL sum.
  const bool withKlSum =
      in.refLogprobs && options.bias_correction_kl && options.importance_level == NAPO_IMPORTANCE_SEQUENCE;
  for (int64_t t = begin; t < end; ++t) {
    if (mask[t] == Mask(0)) continue;
    logRatio += double(in.logprobs[t] - in.oldLogprobs[t]);
    clamped += double(std::clamp(in.logprobs[t] - in.oldLogprobs[t], -20.0f, 20.0f));
    tokens += 1.0;
    kept += in.entropy && keptByEntropy(options, in.entropy, t, threshold) ? 1.0 : 0.0;
    klSum += withKlSum ? double(k3(in.refLogprobs[t], in.logprobs[t])) : 0.0;
  }
  return {tokens, in.entropy ? kept : tokens, klSum, float(logRatio / std::max(1.0, tokens)), clamped};
}

// The entropy at the quantile of the masked tokens' entropies (torch.quantile's interpolation).
template <typename Mask>
float entropyThreshold(const float* entropy, const Mask* mask, int64_t count, float quantile) {
  std::vector<float> values;
  for (int64_t i = 0; i < count; ++i) {
    if (mask[i] != Mask(0)) values.push_back(entropy[i]);
  }
  if (values.empty()) return 0.0f;
  const QuantileRank rank = quantileRank(quantile, int64_t(values.size()));
  const auto lower = values.begin() + rank.lower;
  std::nth_element(values.begin(), lower, values.end());
  const float upper = lower + 1 == values.end() ? *lower : *std::min_element(lower + 1, values.end());
  return interpolateQuantile(*lower, upper, rank.fraction);
}

template <typename Mask>
void policyLossRows(const PolicyLossTensors& in, const Mask* mask, int64_t sequences, int64_t steps,
                    const napo_policy_loss_options& options, napo_policy_loss_stats* stats) {
  const std::vector<double> weights = sequenceWeights(mask, sequences, steps, options);
  const float threshold =
      options.entropy_quantile > 0.0f ? entropyThreshold(in.entropy, mask, sequences * steps, options.entropy_quantile)
                                      : 0.0f;
  // The sequences' totals, when anything reads them (the plain token-level types do not).
  const bool withTotals = options.importance_level == NAPO_IMPORTANCE_SEQUENCE || options.off_policy_mask ||
                          options.loss_type == NAPO_LOSS_VESPO || in.entropy;
  std::vector<SequenceTotals> totals(static_cast<size_t>(sequences), SequenceTotals{0.0, 0.0, 0.0, 0.0f, 0.0});
  if (withTotals) {
    parallelFor(sequences, std::max<int64_t>(1, 4096 / std::max<int64_t>(steps, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        totals[size_t(s)] = sequenceTotals(in, mask, s * steps, (s + 1) * steps, options, threshold);
      }
    });
  }
  double keptTotal = 0.0, maskTotal = 0.0;
  for (const SequenceTotals& sequence : totals) {
    keptTotal += sequence.kept;
    maskTotal += sequence.tokens;
  }
  // d loss / d entropy of a kept token: the bonus's share.
  const float gradKeptEntropy =
      options.entropy_coef != 0.0f
          ? float(-double(options.entropy_coef) / entropyBonusDenominator(options, maskTotal, keptTotal))
          : 0.0f;
  std::vector<PolicyLossSums> rows(static_cast<size_t>(sequences));
  const bool withKl = in.refLogprobs && options.beta != 0.0f;
  const bool perSequence = options.importance_level == NAPO_IMPORTANCE_SEQUENCE;
  parallelFor(sequences, std::max<int64_t>(1, 4096 / std::max<int64_t>(steps, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      const float advantage = in.advantages[s];
      const float weight = float(weights[size_t(s)]);
      const SequenceTotals& sequence = totals[size_t(s)];
      const float sequenceCoef = perSequence ? std::exp(sequence.logWeight) : 0.0f;
      const bool sequenceKept = keptOffPolicy(options, advantage, double(sequence.logWeight));
      // GSPO: every token moves the sequence's weight, but only the kept tokens carry its loss.
      const float keptShare =
          perSequence && sequenceKept ? float(sequence.kept / std::max(1.0, sequence.tokens)) : (perSequence ? 0.0f : 1.0f);
      const float sequenceKlShare = float(sequence.klSum / std::max(1.0, sequence.tokens));
      const bool vespo = options.loss_type == NAPO_LOSS_VESPO;
      const float phi = vespo ? vespoWeight(options, advantage, sequence.clampedLogRatioSum) : 0.0f;
      PolicyLossSums sums{};
      for (int64_t t = s * steps; t < (s + 1) * steps; ++t) {
        const float m = float(mask[t]);
        if (m == 0.0f) {
          // Padding may hold any value (even -Inf log-probs); it must not reach the sums.
          in.gradLogprobs[t] = 0.0f;
          if (in.gradEntropy) in.gradEntropy[t] = 0.0f;
          continue;
        }
        const bool entropyKept = !in.entropy || keptByEntropy(options, in.entropy, t, threshold);
        const bool kept = entropyKept && sequenceKept;
        const float coef = perSequence ? sequenceCoef : std::exp(in.logprobs[t] - in.oldLogprobs[t]);
        float loss, grad;
        bool clipLow = false, clipHigh = false;
        if (options.loss_type == NAPO_LOSS_CISPO || vespo) {
          // The weight (the capped ratio, or the sequence's gamma weight) is a constant: the
          // gradient is REINFORCE's, scaled by it.
          const float detached = vespo ? phi : std::min(coef, options.eps_high);
          loss = -detached * advantage * in.logprobs[t];
          grad = kept ? -detached * advantage : 0.0f;
          clipHigh = !vespo && advantage > 0.0f && coef > options.eps_high;
        } else {
          const Surrogate term = surrogate(coef, advantage, options);
          loss = term.loss;
          // d coef / d logprob: coef itself per token; per sequence coef / length for each of its
          // tokens, and the sequence's kept tokens share the same loss, hence the kept share.
          grad = perSequence ? term.dCoef * coef * keptShare : (kept ? term.dCoef * coef : 0.0f);
          clipLow = term.clipLow;
          clipHigh = term.clipHigh;
        }
        if (!kept) loss = 0.0f;
        float kl = 0.0f;
        if (in.refLogprobs) {
          const float delta = in.refLogprobs[t] - in.logprobs[t];
          const float expDelta = std::exp(delta);
          const KlTerm term = klTerm(options, expDelta - delta - 1.0f, expDelta, coef, perSequence, sequenceKlShare);
          kl = term.value;
          if (withKl) {
            loss += options.beta * term.value;
            grad += options.beta * term.grad;
          }
        }
        in.gradLogprobs[t] = weight * m * grad;
        if (in.gradEntropy) in.gradEntropy[t] = entropyKept ? gradKeptEntropy : 0.0f;
        sums.loss += double(m) * loss;
        sums.tokens += m;
        sums.clipLow += clipLow ? m : 0.0f;
        sums.clipHigh += clipHigh ? m : 0.0f;
        sums.kl += double(m) * kl;
        sums.ratio += double(m) * coef;
        sums.kept += entropyKept ? m : 0.0f;
        sums.entropy += entropyKept && in.entropy ? double(in.entropy[t]) : 0.0;
      }
      sums.loss *= weights[size_t(s)];
      sums.dropped = sequenceKept ? 0.0 : 1.0;
      sums.phi = phi;
      rows[size_t(s)] = sums;
    }
  });
  policyLossStats(rows.data(), sequences, options, threshold, stats);
}

}  // namespace

void policyLoss(const PolicyLossTensors& tensors, const napo_tensor& mask, int64_t sequences, int64_t steps,
                const napo_policy_loss_options& options, napo_policy_loss_stats* stats) {
  withMaskData(mask, [&](const auto* data) { policyLossRows(tensors, data, sequences, steps, options, stats); });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
