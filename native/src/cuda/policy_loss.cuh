// policyLoss on the GPU: one block per sequence computes each token's clipped surrogate, k3 KL,
// gradient and stats in one pass over [S, T], and leaves per-sequence sums (in double) for the
// host to add in sequence order, as the CPU backend does. The loss types that divide by the
// batch's token count (bnpo, dapo without numItemsInBatch) need that count before the first
// gradient: a one-block reduction of the mask runs first for them. The inputs' rules (a mask of
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
  float epsLow, epsHigh, beta;
  napo_loss_type lossType;
  int64_t maxCompletionLength;  // dr_grpo; <= 0: steps
  double numItemsInBatch;       // dapo; <= 0: the mask's sum
  double* maskTotal;            // the mask's sum (device scratch), for bnpo and dapo without numItemsInBatch
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
inline bool needsMaskTotal(napo_loss_type lossType, double numItemsInBatch) {
  return lossType == NAPO_LOSS_BNPO || (lossType == NAPO_LOSS_DAPO && numItemsInBatch <= 0.0);
}

__global__ void __launch_bounds__(kMaskSumThreads) maskSumKernel(PolicyLossArgs args) {
  double sum = 0.0;
  const int64_t count = args.sequences * args.steps;
  for (int64_t i = threadIdx.x; i < count; i += kMaskSumThreads) sum += maskAt(args, i);
  sum = blockReduce<kMaskSumThreads>(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) *args.maskTotal = sum;
}

// The weight of sequence `s`'s masked token sum in the loss (TRL's aggregation per loss type).
__device__ __forceinline__ double sequenceWeight(const PolicyLossArgs& args, int64_t s) {
  switch (args.lossType) {
    case NAPO_LOSS_GRPO: {
      double tokens = 0.0;
      for (int64_t t = threadIdx.x; t < args.steps; t += kPolicyLossThreads) tokens += maskAt(args, s * args.steps + t);
      tokens = blockReduce<kPolicyLossThreads>(tokens, Sum{}, 0.0);
      return 1.0 / (double(args.sequences) * fmax(1.0, tokens));
    }
    case NAPO_LOSS_BNPO:
      return 1.0 / fmax(1.0, *args.maskTotal);
    case NAPO_LOSS_DR_GRPO: {
      const double length = args.maxCompletionLength > 0 ? double(args.maxCompletionLength) : double(args.steps);
      return 1.0 / (double(args.sequences) * length);
    }
    case NAPO_LOSS_DAPO:
      return 1.0 / fmax(1.0, args.numItemsInBatch > 0.0 ? args.numItemsInBatch : *args.maskTotal);
  }
  return 0.0;
}

__global__ void __launch_bounds__(kPolicyLossThreads) policyLossKernel(PolicyLossArgs args) {
  const int64_t s = blockIdx.x;
  const double weight = sequenceWeight(args, s);
  const float tokenWeight = float(weight);
  const float advantage = args.advantages[s];
  const float low = 1.0f - args.epsLow, high = 1.0f + args.epsHigh;
  const bool withKl = args.refLogprobs && args.beta != 0.0f;
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
    const float ratio = expf(args.logprobs[t] - args.oldLogprobs[t]);
    const float unclipped = ratio * advantage;
    // std::clamp and std::min, spelled out so NaN goes the same way as on the CPU.
    const float clipped = (ratio < low ? low : (high < ratio ? high : ratio)) * advantage;
    // The surrogate's gradient flows only when the unclipped term is the smaller one.
    float grad = unclipped <= clipped ? -advantage * ratio : 0.0f;
    float loss = -(clipped < unclipped ? clipped : unclipped);
    float kl = 0.0f;
    if (args.refLogprobs) {
      const float delta = args.refLogprobs[t] - args.logprobs[t];
      const float expDelta = expf(delta);
      kl = expDelta - delta - 1.0f;
      if (withKl) {
        loss += args.beta * kl;
        grad += args.beta * (1.0f - expDelta);
      }
    }
    args.gradLogprobs[t] = tokenWeight * m * grad;
    sums.loss += double(m) * loss;
    sums.tokens += m;
    sums.clipLow += (advantage < 0.0f && ratio < low) ? m : 0.0f;
    sums.clipHigh += (advantage > 0.0f && ratio > high) ? m : 0.0f;
    sums.kl += double(m) * kl;
    sums.ratio += double(m) * ratio;
  }
  sums = blockReduce<kPolicyLossThreads>(sums, AddSums{}, SequenceSums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0});
  if (threadIdx.x == 0) {
    sums.loss *= weight;
    args.sums[s] = sums;
  }
}

template <typename Launch>
void launchPolicyLoss(Launch&& launch, const PolicyLossArgs& args) {
  if (needsMaskTotal(args.lossType, args.numItemsInBatch)) {
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
