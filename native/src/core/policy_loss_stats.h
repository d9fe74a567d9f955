// What the policyLoss backends share: the per-sequence sums each backend leaves, the stats made
// from them, and the entropy quantile's arithmetic. Adding the sums in sequence order keeps the
// loss independent of the thread count and the device.
#pragma once

#include <cmath>
#include <cstdint>

#include "napo/napo.h"

#include "host_device.h"

namespace napo {

// One sequence's sums over its masked tokens; `loss` already carries the sequence's weight.
// `kept` counts the tokens the entropy quantile keeps, `entropy` sums their entropies, `dropped`
// is 1 when the off-policy mask dropped the sequence. A plain aggregate (zero it with `{}`).
struct PolicyLossSums {
  double loss, tokens, clipLow, clipHigh, kl, ratio, kept, entropy, dropped, phi;
};

// The loss types that divide by the batch's token count (or numItemsInBatch), as TRL's.
NAPO_HOST_DEVICE bool byItemCount(const napo_policy_loss_options& options) {
  return options.loss_type == NAPO_LOSS_DAPO || options.loss_type == NAPO_LOSS_CISPO ||
         options.loss_type == NAPO_LOSS_VESPO;
}

// VESPO's gamma weight of a sequence, from the sum of its masked log-ratios each clamped to
// [-20, 20]: log w clamped to [log 1e-8, 20], log phi = lambda + k log w - lambda w (TRL's
// get_gamma_weights; a weight that is not finite counts 0).
NAPO_HOST_DEVICE float vespoWeight(const napo_policy_loss_options& options, float advantage, double clampedLogRatioSum) {
  const double logW = clampedLogRatioSum < -18.420680743952367 ? -18.420680743952367
                      : (clampedLogRatioSum > 20.0 ? 20.0 : clampedLogRatioSum);
  const bool positive = advantage >= 0.0f;
  const double k = positive ? options.vespo_k_pos : options.vespo_k_neg;
  const double lambdaRaw = positive ? options.vespo_lambda_pos : options.vespo_lambda_neg;
  const double lambda = lambdaRaw > 1e-4 ? lambdaRaw : 1e-4;
  const double phi = exp(lambda + k * logW - lambda * exp(logW));
  return phi < 3.4e38 ? float(phi) : 0.0f;
}

// Whether sequence s keeps its surrogate under the off-policy mask: A >= 0, or the masked mean of
// old - logprobs (minus its mean log-ratio) within the threshold.
NAPO_HOST_DEVICE bool keptOffPolicy(const napo_policy_loss_options& options, float advantage, double meanLogRatio) {
  return !options.off_policy_mask || advantage >= 0.0f || -meanLogRatio <= double(options.off_policy_threshold);
}

// The k3 KL term of a token, with TRL's bias correction: its value and d / d logprob.
// `coef` is the importance weight, `sequenceKl` the sequence's masked KL sum over its length
// (what the sequence weight's dependence on this token adds at sequence level; 0 at token level).
struct KlTerm {
  float value, grad;
};

NAPO_HOST_DEVICE KlTerm klTerm(const napo_policy_loss_options& options, float kl, float expDelta, float coef,
                               bool perSequence, float sequenceKlShare) {
  if (!options.bias_correction_kl) return {kl, 1.0f - expDelta};
  // d (kl c) / d lp = c dkl/dlp + kl dc/dlp; dc/dlp = c per token, c / len per sequence (for every
  // token of the sequence, times the sequence's KL sum).
  const float spread = perSequence ? sequenceKlShare : kl;
  return {kl * coef, coef * (1.0f - expDelta) + coef * spread};
}

// torch.quantile's linear interpolation between the sorted values at ranks floor(q (n - 1)) and
// the next: where the lower rank is and how far towards the next the quantile lies.
struct QuantileRank {
  int64_t lower;
  double fraction;
};

NAPO_HOST_DEVICE QuantileRank quantileRank(float quantile, int64_t count) {
  const double position = double(quantile) * double(count - 1);
  const int64_t lower = int64_t(position);
  return {lower, position - double(lower)};
}

NAPO_HOST_DEVICE float interpolateQuantile(float lower, float upper, double fraction) {
  return float(double(lower) + fraction * (double(upper) - double(lower)));
}

// Whether a masked token with this entropy stays in the surrogate.
NAPO_HOST_DEVICE bool keptByEntropy(const napo_policy_loss_options& options, const float* entropy, int64_t index,
                                    float threshold) {
  return options.entropy_quantile <= 0.0f || entropy[index] >= threshold;
}

// What the entropy bonus's sum over the kept tokens is divided by: the loss type's own token
// normaliser for dapo and cispo (TRL sums there), the kept token count for the others.
NAPO_HOST_DEVICE double entropyBonusDenominator(const napo_policy_loss_options& options, double maskTotal,
                                                double keptTotal) {
  const bool byItems = byItemCount(options);
  const double denominator = byItems ? (options.num_items_in_batch > 0.0 ? options.num_items_in_batch : maskTotal)
                                     : keptTotal;
  return denominator > 1.0 ? denominator : 1.0;
}

// `Sums` is PolicyLossSums or a backend's own struct with the same fields (the CUDA backend's
// lives in its namespace so its warp-shuffle overload is found).
template <typename Sums>
void policyLossStats(const Sums* sums, int64_t sequences, const napo_policy_loss_options& options, float threshold,
                     napo_policy_loss_stats* stats) {
  PolicyLossSums total{};
  // Per sequence: TRL's extremes of the per-sequence clip fractions, and the clipped sequences.
  double lowMin = 2.0, highMax = -1.0, lowSequences = 0.0, highSequences = 0.0;
  for (int64_t s = 0; s < sequences; ++s) {
    if (sums[s].tokens > 0.0) {
      const double low = sums[s].clipLow / sums[s].tokens, high = sums[s].clipHigh / sums[s].tokens;
      lowMin = low < lowMin ? low : lowMin;
      highMax = high > highMax ? high : highMax;
    }
    lowSequences += sums[s].clipLow > 0.0 ? 1.0 : 0.0;
    highSequences += sums[s].clipHigh > 0.0 ? 1.0 : 0.0;
    total.loss += sums[s].loss;
    total.tokens += sums[s].tokens;
    total.clipLow += sums[s].clipLow;
    total.clipHigh += sums[s].clipHigh;
    total.kl += sums[s].kl;
    total.ratio += sums[s].ratio;
    total.kept += sums[s].kept;
    total.entropy += sums[s].entropy;
    total.dropped += sums[s].dropped;
    total.phi += sums[s].phi;
  }
  const double tokens = total.tokens > 1.0 ? total.tokens : 1.0;
  const double bonus =
      options.entropy_coef != 0.0f
          ? double(options.entropy_coef) * total.entropy / entropyBonusDenominator(options, total.tokens, total.kept)
          : 0.0;
  stats->loss = total.loss - bonus;
  stats->entropy_bonus = bonus;
  const bool perSequence = options.importance_level == NAPO_IMPORTANCE_SEQUENCE;
  stats->clip_low_fraction = perSequence ? lowSequences / double(sequences) : total.clipLow / tokens;
  stats->clip_high_fraction = perSequence ? highSequences / double(sequences) : total.clipHigh / tokens;
  stats->clip_fraction = stats->clip_low_fraction + stats->clip_high_fraction;
  stats->clip_low_min = lowMin <= 1.0 ? lowMin : 0.0;
  stats->clip_high_max = highMax >= 0.0 ? highMax : 0.0;
  stats->mean_kl = total.kl / tokens;
  stats->mean_ratio = total.ratio / tokens;
  stats->token_count = total.tokens;
  stats->kept_fraction = total.kept / tokens;
  stats->entropy_threshold = options.entropy_quantile > 0.0f ? double(threshold) : 0.0;
  stats->mean_entropy = total.entropy / (total.kept > 1.0 ? total.kept : 1.0);
  stats->off_policy_fraction = total.dropped / double(sequences);
  stats->vespo_phi_mean = total.phi / double(sequences);
}

}  // namespace napo
