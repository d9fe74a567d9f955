// policyLoss on the GPU: one block per sequence computes each token's surrogate (clipped, CISPO's
// or SAPO's), k3 KL, gradient and stats in one pass over [S, T], and leaves per-sequence sums (in
// double) for the host to add in sequence order, as the CPU backend does. The block first reduces
// its sequence's token count (grpo, sapo) and, for GSPO, its mean log-ratio. The loss types that
// divide by the batch's token count (bnpo, dapo and cispo without numItemsInBatch) need that count
// before the first gradient: a one-block reduction of the mask runs first for them. The inputs' rules (a mask of
// 0s and 1s; finite advantages; finite log-probs where the mask is 1) are checked on the way and
// the first break reported, ranked as the CPU backend checks them (PolicyLossInput).
#pragma once

#include <cstdint>

#include "../core/policy_loss_stats.h"
#include "device_math.cuh"
#include "../core/validate.h"
#include "kernel_errors.h"
#include "napo/napo.h"

namespace napo::cuda {

// One sequence's sums over its masked tokens; `loss` already carries the sequence's weight.
struct SequenceSums {
  double loss, tokens, clipLow, clipHigh, kl, ratio;
};

using napo::policyLossStats;

__device__ __forceinline__ SequenceSums shuffleXor(SequenceSums s, int laneMask) {
  return {__shfl_xor_sync(kFullMask, s.loss, laneMask),    __shfl_xor_sync(kFullMask, s.tokens, laneMask),
          __shfl_xor_sync(kFullMask, s.clipLow, laneMask), __shfl_xor_sync(kFullMask, s.clipHigh, laneMask),
          __shfl_xor_sync(kFullMask, s.kl, laneMask),      __shfl_xor_sync(kFullMask, s.ratio, laneMask)};
}

struct AddSums {
  __device__ SequenceSums operator()(const SequenceSums& a, const SequenceSums& b) const {
    return {a.loss + b.loss, a.tokens + b.tokens, a.clipLow + b.clipLow, a.clipHigh + b.clipHigh, a.kl + b.kl,
            a.ratio + b.ratio};
  }
};

// The inputs in the order their rules are checked (src/core/op_abi.cpp), for KernelErrors::badInput.
enum PolicyLossInput : int { kMaskInput, kAdvantagesInput, kLogprobsInput, kOldLogprobsInput, kRefLogprobsInput };

struct PolicyLossArgs {
  const float* logprobs;     // [sequences, steps]
  const float* oldLogprobs;  // [sequences, steps]
  const float* refLogprobs;  // [sequences, steps] or null
  const float* advantages;   // [sequences]
  const void* mask;          // [sequences, steps] of maskDtype: float32, int32, uint8 or bool
  napo_dtype maskDtype;
  int64_t sequences, steps;
  napo_policy_loss_options options;
  double* maskTotal;            // the mask's sum (device scratch), for bnpo, dapo and cispo without numItemsInBatch
  float* gradLogprobs;          // [sequences, steps]
  SequenceSums* sums;           // [sequences]
  KernelErrors* errors;
};

__device__ __forceinline__ float maskAt(const PolicyLossArgs& args, int64_t i) {
  switch (args.maskDtype) {
    case NAPO_INT32: return float(static_cast<const int32_t*>(args.mask)[i]);
    case NAPO_UINT8:
    case NAPO_BOOL: return float(static_cast<const uint8_t*>(args.mask)[i]);
    default: return static_cast<const float*>(args.mask)[i];
  }
}

constexpr int kPolicyLossThreads = 256;
constexpr int kMaskSumThreads = 1024;

// Whether the loss type divides by the whole batch's mask sum.
inline bool needsMaskTotal(const napo_policy_loss_options& options) {
  const bool byItems = options.loss_type == NAPO_LOSS_DAPO || options.loss_type == NAPO_LOSS_CISPO;
  return options.loss_type == NAPO_LOSS_BNPO || (byItems && options.num_items_in_batch <= 0.0);
}

__global__ void __launch_bounds__(kMaskSumThreads) maskSumKernel(PolicyLossArgs args) {
  double sum = 0.0;
  const int64_t count = args.sequences * args.steps;
  for (int64_t i = threadIdx.x; i < count; i += kMaskSumThreads) sum += maskAt(args, i);
  sum = blockReduce<kMaskSumThreads>(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) *args.maskTotal = sum;
}

// The masked token count of sequence `s` and the sum of its masked log-ratios (GSPO's weight).
struct SequenceTotals {
  double tokens, logRatio;
};

struct AddTotals {
  __device__ SequenceTotals operator()(const SequenceTotals& a, const SequenceTotals& b) const {
    return {a.tokens + b.tokens, a.logRatio + b.logRatio};
  }
};

__device__ __forceinline__ SequenceTotals shuffleXor(SequenceTotals s, int laneMask) {
  return {__shfl_xor_sync(kFullMask, s.tokens, laneMask), __shfl_xor_sync(kFullMask, s.logRatio, laneMask)};
}

__device__ __forceinline__ SequenceTotals sequenceTotals(const PolicyLossArgs& args, int64_t s, bool withLogRatio) {
  SequenceTotals totals{0.0, 0.0};
  for (int64_t t = s * args.steps + threadIdx.x; t < (s + 1) * args.steps; t += kPolicyLossThreads) {
    const float m = maskAt(args, t);
    totals.tokens += m;
    // Unchecked values may be NaN here; the token loop reports them.
    if (withLogRatio && m != 0.0f) totals.logRatio += double(args.logprobs[t] - args.oldLogprobs[t]);
  }
  return blockReduce<kPolicyLossThreads>(totals, AddTotals{}, SequenceTotals{0.0, 0.0});
}

// The weight of sequence `s`'s masked token sum in the loss (TRL's aggregation per loss type).
__device__ __forceinline__ double sequenceWeight(const PolicyLossArgs& args, double sequenceTokens) {
  const napo_policy_loss_options& o = args.options;
  switch (o.loss_type) {
    case NAPO_LOSS_GRPO:
    case NAPO_LOSS_SAPO:
      return 1.0 / (double(args.sequences) * fmax(1.0, sequenceTokens));
    case NAPO_LOSS_BNPO:
      return 1.0 / fmax(1.0, *args.maskTotal);
    case NAPO_LOSS_DR_GRPO: {
      const double length = o.max_completion_length > 0 ? double(o.max_completion_length) : double(args.steps);
      return 1.0 / (double(args.sequences) * length);
    }
    case NAPO_LOSS_LUSPO:
      // Each sequence's (uniform) token loss summed over its tokens: its loss times its length.
      return 1.0 / double(args.sequences);
    case NAPO_LOSS_DAPO:
    case NAPO_LOSS_CISPO:
      return 1.0 / fmax(1.0, o.num_items_in_batch > 0.0 ? o.num_items_in_batch : *args.maskTotal);
  }
  return 0.0;
}

// One token's loss (before the KL and the weight), its gradient in the log-prob, and its clip flags.
struct TokenSurrogate {
  float loss, grad;
  bool clipLow, clipHigh;
};

__device__ __forceinline__ TokenSurrogate tokenSurrogate(const napo_policy_loss_options& o, float coef, float advantage,
                                                         float logprob) {
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
  const SequenceTotals totals = o.loss_type == NAPO_LOSS_GRPO || o.loss_type == NAPO_LOSS_SAPO || perSequence
                                    ? sequenceTotals(args, s, perSequence)
                                    : SequenceTotals{0.0, 0.0};
  const double weight = sequenceWeight(args, totals.tokens);
  const float tokenWeight = float(weight);
  const float sequenceCoef = perSequence ? expf(float(totals.logRatio / fmax(1.0, totals.tokens))) : 0.0f;
  const float advantage = args.advantages[s];
  const bool withKl = args.refLogprobs && o.beta != 0.0f;
  if (threadIdx.x == 0 && !isFinite(advantage)) reportBadInput(args.errors, kAdvantagesInput, s);
  SequenceSums sums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t t = s * args.steps + threadIdx.x; t < (s + 1) * args.steps; t += kPolicyLossThreads) {
    const float m = maskAt(args, t);
    if (m == 0.0f) {
      // Padding may hold anything (even -Inf log-probs); it must not reach the sums.
      args.gradLogprobs[t] = 0.0f;
      continue;
    }
    if (m != 1.0f) reportBadInput(args.errors, kMaskInput, t);
    if (!isFinite(args.logprobs[t])) reportBadInput(args.errors, kLogprobsInput, t);
    if (!isFinite(args.oldLogprobs[t])) reportBadInput(args.errors, kOldLogprobsInput, t);
    if (args.refLogprobs && !isFinite(args.refLogprobs[t])) reportBadInput(args.errors, kRefLogprobsInput, t);
    const float coef = perSequence ? sequenceCoef : expf(args.logprobs[t] - args.oldLogprobs[t]);
    const TokenSurrogate term = tokenSurrogate(o, coef, advantage, args.logprobs[t]);
    float grad = term.grad;
    float loss = term.loss;
    float kl = 0.0f;
    if (args.refLogprobs) {
      const float delta = args.refLogprobs[t] - args.logprobs[t];
      const float expDelta = expf(delta);
      kl = expDelta - delta - 1.0f;
      if (withKl) {
        loss += o.beta * kl;
        grad += o.beta * (1.0f - expDelta);
      }
    }
    args.gradLogprobs[t] = tokenWeight * m * grad;
    sums.loss += double(m) * loss;
    sums.tokens += m;
    sums.clipLow += term.clipLow ? m : 0.0f;
    sums.clipHigh += term.clipHigh ? m : 0.0f;
    sums.kl += double(m) * kl;
    sums.ratio += double(m) * coef;
  }
  sums = blockReduce<kPolicyLossThreads>(sums, AddSums{}, SequenceSums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0});
  if (threadIdx.x == 0) {
    sums.loss *= weight;
    args.sums[s] = sums;
  }
}

template <typename Launch>
void launchPolicyLoss(Launch&& launch, const PolicyLossArgs& args) {
  if (needsMaskTotal(args.options)) {
    launch(maskSumKernel, dim3(1), dim3(kMaskSumThreads), args);
  }
  launch(policyLossKernel, dim3(unsigned(args.sequences)), dim3(kPolicyLossThreads), args);
}

// ---- host side ------------------------------------------------------------------------------------

// The CPU backend's message for what the kernel found: `inputs` in PolicyLossInput order (a null
// refLogprobs when absent), `value` the offending value as read back from the device.
inline napo_status policyLossInputError(InputPosition where, const napo_tensor* const inputs[5], double value) {
  constexpr const char* op = "policyLoss";
  if (where.argument == kMaskInput) return badMaskError(op, *inputs[kMaskInput], where.index, value);
  static const char* const names[] = {"mask", "advantages", "logprobs", "oldLogprobs", "refLogprobs"};
  return notFiniteError(op, names[where.argument], *inputs[where.argument], where.index, value);
}

}  // namespace napo::cuda
