// policyLoss on the GPU: one block per sequence computes each token's surrogate (clipped, CISPO's
// or SAPO's), k3 KL, gradients and stats in one pass over [S, T], and leaves per-sequence sums (in
// double) for the host to add in sequence order, as the CPU backend does. The block first reduces
// its sequence's token count (grpo, sapo) and, for GSPO, its mean log-ratio and kept tokens. What
// needs the whole batch before the first gradient (the token count of bnpo, dapo and cispo without
// numItemsInBatch; the entropy quantile, a radix select over the masked entropies' ordered keys;
// the kept count the entropy bonus divides by) comes from one block that runs first. The inputs'
// rules (a mask of 0s and 1s; finite advantages; finite log-probs and entropies where the mask is
// 1) are checked on the way and the first break reported, ranked as the CPU backend checks them
// (PolicyLossInput).
#pragma once

#include <cstdint>

#include "../core/policy_loss_stats.h"
#include "device_math.cuh"
#include "../core/validate.h"
#include "kernel_errors.h"
#include "mask_value.cuh"
#include "napo/napo.h"

namespace napo::cuda {

// One sequence's sums over its masked tokens; `loss` already carries the sequence's weight.
struct SequenceSums {
  double loss, tokens, clipLow, clipHigh, kl, ratio, kept, entropy, dropped, phi;
};

using napo::policyLossStats;

__device__ __forceinline__ SequenceSums shuffleXor(SequenceSums s, int laneMask) {
  return {__shfl_xor_sync(kFullMask, s.loss, laneMask),    __shfl_xor_sync(kFullMask, s.tokens, laneMask),
          __shfl_xor_sync(kFullMask, s.clipLow, laneMask), __shfl_xor_sync(kFullMask, s.clipHigh, laneMask),
          __shfl_xor_sync(kFullMask, s.kl, laneMask),      __shfl_xor_sync(kFullMask, s.ratio, laneMask),
          __shfl_xor_sync(kFullMask, s.kept, laneMask),    __shfl_xor_sync(kFullMask, s.entropy, laneMask),
          __shfl_xor_sync(kFullMask, s.dropped, laneMask), __shfl_xor_sync(kFullMask, s.phi, laneMask)};
}

struct AddSums {
  __device__ SequenceSums operator()(const SequenceSums& a, const SequenceSums& b) const {
    return {a.loss + b.loss, a.tokens + b.tokens, a.clipLow + b.clipLow, a.clipHigh + b.clipHigh, a.kl + b.kl,
            a.ratio + b.ratio, a.kept + b.kept, a.entropy + b.entropy, a.dropped + b.dropped,
            a.phi + b.phi};
  }
};

// The inputs in the order their rules are checked (src/core/op_abi.cpp), for KernelErrors::badInput.
enum PolicyLossInput : int {
  kMaskInput,
  kAdvantagesInput,
  kLogprobsInput,
  kOldLogprobsInput,
  kRefLogprobsInput,
  kTokenEntropyInput,
  kPolicyLossInputs
};

// What the whole batch gives every sequence's block (device scratch).
struct BatchTotals {
  double mask;       // the mask's sum
  double kept;       // the masked tokens the entropy quantile keeps
  float threshold;   // the entropy quantile's value
};

struct PolicyLossArgs {
  const float* logprobs;     // [sequences, steps]
  const float* oldLogprobs;  // [sequences, steps]
  const float* refLogprobs;  // [sequences, steps] or null
  const float* entropy;      // [sequences, steps] or null
  const float* advantages;   // [sequences]
  const void* mask;          // [sequences, steps] of maskDtype: float32, int32, uint8 or bool
  napo_dtype maskDtype;
  int64_t sequences, steps;
  napo_policy_loss_options options;
  BatchTotals* batch;           // filled first when needsBatchTotals
  float* gradLogprobs;          // [sequences, steps]
  float* gradEntropy;           // [sequences, steps] or null
  SequenceSums* sums;           // [sequences]
  KernelErrors* errors;
};

__device__ __forceinline__ float maskAt(const PolicyLossArgs& args, int64_t i) {
  return maskValueAt(args.mask, args.maskDtype, i);
}

constexpr int kPolicyLossThreads = 256;
constexpr int kBatchTotalsThreads = 1024;

// Whether a sequence's block needs what only the whole batch gives: its token count (bnpo; dapo
// and cispo without numItemsInBatch), the entropy quantile, the entropy bonus's denominator.
inline bool needsBatchTotals(const napo_policy_loss_options& options) {
  return options.loss_type == NAPO_LOSS_BNPO || (byItemCount(options) && options.num_items_in_batch <= 0.0) ||
         options.entropy_quantile > 0.0f || options.entropy_coef != 0.0f;
}

struct MinKey {
  __device__ uint32_t operator()(uint32_t a, uint32_t b) const { return a < b ? a : b; }
};

// The ordered key of the rank-th smallest masked entropy (0-based): a radix select, one bit per
// pass from the top, counting the masked keys that match the bits chosen so far and have a 0 next.
__device__ uint32_t selectEntropyKey(const PolicyLossArgs& args, int64_t rank) {
  const int64_t count = args.sequences * args.steps;
  uint32_t prefix = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t above = bit == 31 ? 0u : ~0u << (bit + 1);
    double zeros = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += kBatchTotalsThreads) {
      if (maskAt(args, i) == 0.0f) continue;
      const uint32_t key = orderedKey(args.entropy[i]);
      zeros += (key & above) == prefix && ((key >> bit) & 1u) == 0u ? 1.0 : 0.0;
    }
    zeros = blockReduce<kBatchTotalsThreads>(zeros, Sum{}, 0.0);
    if (double(rank) >= zeros) {
      rank -= int64_t(zeros);
      prefix |= 1u << bit;
    }
  }
  return prefix;
}

// torch.quantile's value over the masked entropies: the selected rank and the next one, interpolated.
__device__ float entropyThreshold(const PolicyLossArgs& args, double tokens) {
  const QuantileRank rank = quantileRank(args.options.entropy_quantile, int64_t(tokens));
  const uint32_t lowerKey = selectEntropyKey(args, rank.lower);
  double atMost = 0.0;
  uint32_t aboveKey = ~0u;
  for (int64_t i = threadIdx.x; i < args.sequences * args.steps; i += kBatchTotalsThreads) {
    if (maskAt(args, i) == 0.0f) continue;
    const uint32_t key = orderedKey(args.entropy[i]);
    atMost += key <= lowerKey ? 1.0 : 0.0;
    if (key > lowerKey && key < aboveKey) aboveKey = key;
  }
  atMost = blockReduce<kBatchTotalsThreads>(atMost, Sum{}, 0.0);
  aboveKey = blockReduce<kBatchTotalsThreads>(aboveKey, MinKey{}, ~0u);
  // Ties: the next rank holds the same value while keys up to the selected one cover it.
  const uint32_t upperKey = atMost > double(rank.lower + 1) || aboveKey == ~0u ? lowerKey : aboveKey;
  return interpolateQuantile(fromOrderedKey(lowerKey), fromOrderedKey(upperKey), rank.fraction);
}

__global__ void __launch_bounds__(kBatchTotalsThreads) batchTotalsKernel(PolicyLossArgs args) {
  const int64_t count = args.sequences * args.steps;
  double tokens = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kBatchTotalsThreads) tokens += maskAt(args, i);
  tokens = blockReduce<kBatchTotalsThreads>(tokens, Sum{}, 0.0);
  const bool byQuantile = args.options.entropy_quantile > 0.0f && tokens > 0.0;
  const float threshold = byQuantile ? entropyThreshold(args, tokens) : 0.0f;
  double kept = tokens;
  if (byQuantile) {
    kept = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += kBatchTotalsThreads) {
      kept += maskAt(args, i) != 0.0f && args.entropy[i] >= threshold ? 1.0 : 0.0;
    }
    kept = blockReduce<kBatchTotalsThreads>(kept, Sum{}, 0.0);
  }
  if (threadIdx.x == 0) *args.batch = {tokens, kept, threshold};
}

// The masked token count of sequence `s`, those the entropy quantile keeps, the sum of its
// masked log-ratios (GSPO's weight, the off-policy mask's KL) and of its k3 KL (the
// bias-corrected KL at sequence level).
struct SequenceTotals {
  double tokens, kept, logRatio, klSum, clampedLogRatio;
};

struct AddTotals {
  __device__ SequenceTotals operator()(const SequenceTotals& a, const SequenceTotals& b) const {
    return {a.tokens + b.tokens, a.kept + b.kept, a.logRatio + b.logRatio, a.klSum + b.klSum,
            a.clampedLogRatio + b.clampedLogRatio};
  }
};

__device__ __forceinline__ SequenceTotals shuffleXor(SequenceTotals s, int laneMask) {
  return {__shfl_xor_sync(kFullMask, s.tokens, laneMask), __shfl_xor_sync(kFullMask, s.kept, laneMask),
          __shfl_xor_sync(kFullMask, s.logRatio, laneMask), __shfl_xor_sync(kFullMask, s.klSum, laneMask),
          __shfl_xor_sync(kFullMask, s.clampedLogRatio, laneMask)};
}

// Whether masked token t stays in the surrogate (the batch's threshold is read only when it exists).
__device__ __forceinline__ bool keptToken(const PolicyLossArgs& args, int64_t t) {
  return !args.entropy || args.options.entropy_quantile <= 0.0f ||
         keptByEntropy(args.options, args.entropy, t, args.batch->threshold);
}

__device__ __forceinline__ SequenceTotals sequenceTotals(const PolicyLossArgs& args, int64_t s, bool withLogRatio,
                                                        bool withKlSum) {
  SequenceTotals totals{0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t t = s * args.steps + threadIdx.x; t < (s + 1) * args.steps; t += kPolicyLossThreads) {
    const float m = maskAt(args, t);
    totals.tokens += m;
    // Unchecked values may be NaN here; the token loop reports them.
    if (withLogRatio && m != 0.0f) {
      const float logRatio = args.logprobs[t] - args.oldLogprobs[t];
      totals.logRatio += double(logRatio);
      // std::clamp, spelled out so NaN goes the same way as on the CPU.
      totals.clampedLogRatio += double(logRatio < -20.0f ? -20.0f : (20.0f < logRatio ? 20.0f : logRatio));
      totals.kept += keptToken(args, t) ? 1.0 : 0.0;
    }
    if (withKlSum && m != 0.0f) {
      const float delta = args.refLogprobs[t] - args.logprobs[t];
      totals.klSum += double(expf(delta) - delta - 1.0f);
    }
  }
  return blockReduce<kPolicyLossThreads>(totals, AddTotals{}, SequenceTotals{0.0, 0.0, 0.0, 0.0, 0.0});
}

// The weight of sequence `s`'s masked token sum in the loss (TRL's aggregation per loss type).
__device__ __forceinline__ double sequenceWeight(const PolicyLossArgs& args, double sequenceTokens) {
  const napo_policy_loss_options& o = args.options;
  switch (o.loss_type) {
    case NAPO_LOSS_GRPO:
    case NAPO_LOSS_SAPO:
      return 1.0 / (double(args.sequences) * fmax(1.0, sequenceTokens));
    case NAPO_LOSS_BNPO:
      return 1.0 / fmax(1.0, args.batch->mask);
    case NAPO_LOSS_DR_GRPO: {
      const double length = o.max_completion_length > 0 ? double(o.max_completion_length) : double(args.steps);
      return 1.0 / (double(args.sequences) * length);
    }
    case NAPO_LOSS_LUSPO:
      // Each sequence's (uniform) token loss summed over its tokens: its loss times its length.
      return 1.0 / double(args.sequences);
    case NAPO_LOSS_DAPO:
    case NAPO_LOSS_CISPO:
    case NAPO_LOSS_VESPO:
      return 1.0 / fmax(1.0, o.num_items_in_batch > 0.0 ? o.num_items_in_batch : args.batch->mask);
  }
  return 0.0;
}

// One token's loss (before the KL and the weight), its gradient in the log-prob, and its clip flags.
struct TokenSurrogate {
  float loss, grad;
  bool clipLow, clipHigh;
};

__device__ __forceinline__ TokenSurrogate tokenSurrogate(const napo_policy_loss_options& o, float coef, float advantage,
                                                         float logprob, float phi) {
  if (o.loss_type == NAPO_LOSS_VESPO) {
    // The sequence's gamma weight is a constant: REINFORCE's gradient scaled by it.
    return {-phi * advantage * logprob, -phi * advantage, false, false};
  }
  if (o.loss_type == NAPO_LOSS_CISPO) {
    // The capped weight is a constant: REINFORCE's gradient scaled by it.
    const float capped = coef < o.eps_high ? coef : o.eps_high;
    return {-capped * advantage * logprob, -capped * advantage, false, advantage > 0.0f && coef > o.eps_high};
  }
  if (o.loss_type == NAPO_LOSS_SAPO) {
    // A smooth gate instead of the clip: (4 / tau) sigmoid(tau (coef - 1)), slope 1 at coef = 1.
    const float tau = advantage > 0.0f ? o.sapo_temperature_pos : o.sapo_temperature_neg;
    const float gate = 1.0f / (1.0f + expf(-tau * (coef - 1.0f)));
    return {-(4.0f / tau) * gate * advantage, -4.0f * gate * (1.0f - gate) * advantage * coef, false, false};
  }
  const float low = 1.0f - o.eps_low, high = 1.0f + o.eps_high;
  // Two-sided clipping caps the unclipped ratio too, so a negative advantage cannot push it without bound.
  const bool capped = o.delta > 0.0f && coef > o.delta;
  const float unclipped = (capped ? o.delta : coef) * advantage;
  // std::clamp and std::min, spelled out so NaN goes the same way as on the CPU.
  const float clipped = (coef < low ? low : (high < coef ? high : coef)) * advantage;
  // The surrogate's gradient flows only when the unclipped term is the smaller one and not capped;
  // d coef / d logprob is coef per token, and per sequence the lengths cancel (docs/ops.md).
  const float dCoef = unclipped <= clipped && !capped ? -advantage : 0.0f;
  return {-(clipped < unclipped ? clipped : unclipped), dCoef * coef, advantage < 0.0f && coef < low,
          advantage > 0.0f && coef > high};
}

__global__ void __launch_bounds__(kPolicyLossThreads) policyLossKernel(PolicyLossArgs args) {
  const napo_policy_loss_options& o = args.options;
  const int64_t s = blockIdx.x;
  const bool perSequence = o.importance_level == NAPO_IMPORTANCE_SEQUENCE;
  const bool vespo = o.loss_type == NAPO_LOSS_VESPO;
  const bool withLogRatio = perSequence || o.off_policy_mask || vespo;
  const bool withKlSum = args.refLogprobs && o.bias_correction_kl && perSequence;
  const SequenceTotals totals =
      o.loss_type == NAPO_LOSS_GRPO || o.loss_type == NAPO_LOSS_SAPO || withLogRatio || withKlSum
          ? sequenceTotals(args, s, withLogRatio, withKlSum)
          : SequenceTotals{0.0, 0.0, 0.0, 0.0, 0.0};
  const double weight = sequenceWeight(args, totals.tokens);
  const float tokenWeight = float(weight);
  const float meanLogRatio = float(totals.logRatio / fmax(1.0, totals.tokens));
  const float sequenceCoef = perSequence ? expf(meanLogRatio) : 0.0f;
  const float advantage = args.advantages[s];
  const bool sequenceKept = keptOffPolicy(o, advantage, double(meanLogRatio));
  // GSPO: every token moves the sequence's weight, but only the kept tokens carry its loss.
  const float keptShare =
      perSequence && sequenceKept ? float(totals.kept / fmax(1.0, totals.tokens)) : (perSequence ? 0.0f : 1.0f);
  const float sequenceKlShare = float(totals.klSum / fmax(1.0, totals.tokens));
  const float phi = vespo ? vespoWeight(o, advantage, totals.clampedLogRatio) : 0.0f;
  const float gradKeptEntropy =
      o.entropy_coef != 0.0f
          ? float(-double(o.entropy_coef) / entropyBonusDenominator(o, args.batch->mask, args.batch->kept))
          : 0.0f;
  const bool withKl = args.refLogprobs && o.beta != 0.0f;
  if (threadIdx.x == 0 && !isFinite(advantage)) reportBadInput(args.errors, kAdvantagesInput, s);
  SequenceSums sums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t t = s * args.steps + threadIdx.x; t < (s + 1) * args.steps; t += kPolicyLossThreads) {
    const float m = maskAt(args, t);
    if (m == 0.0f) {
      // Padding may hold anything (even -Inf log-probs); it must not reach the sums.
      args.gradLogprobs[t] = 0.0f;
      if (args.gradEntropy) args.gradEntropy[t] = 0.0f;
      continue;
    }
    if (m != 1.0f) reportBadInput(args.errors, kMaskInput, t);
    if (!isFinite(args.logprobs[t])) reportBadInput(args.errors, kLogprobsInput, t);
    if (!isFinite(args.oldLogprobs[t])) reportBadInput(args.errors, kOldLogprobsInput, t);
    if (args.refLogprobs && !isFinite(args.refLogprobs[t])) reportBadInput(args.errors, kRefLogprobsInput, t);
    if (args.entropy && !isFinite(args.entropy[t])) reportBadInput(args.errors, kTokenEntropyInput, t);
    const bool entropyKept = keptToken(args, t);
    const bool kept = entropyKept && sequenceKept;
    const float coef = perSequence ? sequenceCoef : expf(args.logprobs[t] - args.oldLogprobs[t]);
    const TokenSurrogate term = tokenSurrogate(o, coef, advantage, args.logprobs[t], phi);
    // CISPO's weight is detached, so its sequence-level tokens train only where kept.
    const bool sharesSequenceWeight = perSequence && o.loss_type != NAPO_LOSS_CISPO;
    float grad = sharesSequenceWeight ? term.grad * keptShare : (kept ? term.grad : 0.0f);
    float loss = kept ? term.loss : 0.0f;
    float kl = 0.0f;
    if (args.refLogprobs) {
      const float delta = args.refLogprobs[t] - args.logprobs[t];
      const float expDelta = expf(delta);
      const KlTerm kTerm = klTerm(o, expDelta - delta - 1.0f, expDelta, coef, perSequence, sequenceKlShare);
      kl = kTerm.value;
      if (withKl) {
        loss += o.beta * kTerm.value;
        grad += o.beta * kTerm.grad;
      }
    }
    args.gradLogprobs[t] = tokenWeight * m * grad;
    if (args.gradEntropy) args.gradEntropy[t] = entropyKept ? gradKeptEntropy : 0.0f;
    sums.loss += double(m) * loss;
    sums.tokens += m;
    sums.clipLow += term.clipLow ? m : 0.0f;
    sums.clipHigh += term.clipHigh ? m : 0.0f;
    sums.kl += double(m) * kl;
    sums.ratio += double(m) * coef;
    sums.kept += entropyKept ? m : 0.0f;
    sums.entropy += entropyKept && args.entropy ? double(args.entropy[t]) : 0.0;
  }
  sums = blockReduce<kPolicyLossThreads>(sums, AddSums{},
                                         SequenceSums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0});
  if (threadIdx.x == 0) {
    sums.loss *= weight;
    sums.dropped = sequenceKept ? 0.0 : 1.0;
    sums.phi = phi;
    args.sums[s] = sums;
  }
}

template <typename Launch>
void launchPolicyLoss(Launch&& launch, const PolicyLossArgs& args) {
  if (needsBatchTotals(args.options)) {
    launch(batchTotalsKernel, dim3(1), dim3(kBatchTotalsThreads), args);
  }
  launch(policyLossKernel, dim3(unsigned(args.sequences)), dim3(kPolicyLossThreads), args);
}

// ---- host side ------------------------------------------------------------------------------------

// The CPU backend's message for what the kernel found: `inputs` in PolicyLossInput order (a null
// refLogprobs when absent), `value` the offending value as read back from the device.
inline napo_status policyLossInputError(InputPosition where, const napo_tensor* const inputs[kPolicyLossInputs],
                                        double value) {
  constexpr const char* op = "policyLoss";
  if (where.argument == kMaskInput) return badMaskError(op, *inputs[kMaskInput], where.index, value);
  static const char* const names[] = {"mask", "advantages", "logprobs", "oldLogprobs", "refLogprobs", "entropy"};
  return notFiniteError(op, names[where.argument], *inputs[where.argument], where.index, value);
}

}  // namespace napo::cuda
