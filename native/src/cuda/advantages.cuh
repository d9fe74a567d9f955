// groupAdvantages on the GPU: one launch of one block. Rewards number in the thousands, so the
// op is latency-bound: the block sums the batch's moments, then each warp takes whole groups.
// Sums are in double, as on the CPU, so the two backends agree to the last float bit but rarely.
#pragma once

#include <cstdint>

#include "device_math.cuh"
#include "kernel_errors.h"
#include "napo/napo.h"

namespace napo::cuda {

struct AdvantageArgs {
  const float* rewards;         // [count]
  int64_t count;
  const int32_t* groupOffsets;  // [groups + 1], device memory
  int64_t groups;
  napo_advantage_scale scale;
  napo_advantage_estimator estimator;
  float eps;
  float* advantages;  // [count]
  KernelErrors* errors;
};

constexpr int kAdvantageThreads = 1024;

// Unbiased standard deviation from a sum of squared deviations; 0 for a single value.
__device__ __forceinline__ double unbiasedStd(double squares, int64_t count) {
  return count < 2 ? 0.0 : sqrt(squares / double(count - 1));
}

__global__ void __launch_bounds__(kAdvantageThreads) groupAdvantagesKernel(AdvantageArgs args) {
  const int thread = int(threadIdx.x);
  const float* rewards = args.rewards;

  double sum = 0.0;
  for (int64_t i = thread; i < args.count; i += kAdvantageThreads) {
    if (!isFinite(rewards[i])) reportBadIndex(args.errors, i);
    sum += rewards[i];
  }
  const double batchMean = blockReduce<kAdvantageThreads>(sum, Sum{}, 0.0) / double(args.count);
  double squares = 0.0;
  for (int64_t i = thread; i < args.count; i += kAdvantageThreads) {
    const double deviation = rewards[i] - batchMean;
    squares += deviation * deviation;
  }
  const double batchStd = unbiasedStd(blockReduce<kAdvantageThreads>(squares, Sum{}, 0.0), args.count);

  const int lane = thread % kWarpThreads;
  for (int64_t g = thread / kWarpThreads; g < args.groups; g += kAdvantageThreads / kWarpThreads) {
    const int64_t begin = args.groupOffsets[g], end = args.groupOffsets[g + 1], size = end - begin;
    double groupSum = 0.0;
    for (int64_t i = begin + lane; i < end; i += kWarpThreads) groupSum += rewards[i];
    const double mean = warpReduce(groupSum, Sum{}) / double(size);
    double groupSquares = 0.0;
    for (int64_t i = begin + lane; i < end; i += kWarpThreads) groupSquares += (rewards[i] - mean) * (rewards[i] - mean);
    const double groupStd = unbiasedStd(warpReduce(groupSquares, Sum{}), size);
    const double factor = args.scale == NAPO_SCALE_NONE
                              ? 1.0
                              : 1.0 / ((args.scale == NAPO_SCALE_GROUP ? groupStd : batchStd) + double(args.eps));
    for (int64_t i = begin + lane; i < end; i += kWarpThreads) {
      if (size < 2) {
        args.advantages[i] = 0.0f;
        continue;
      }
      // RLOO's baseline leaves the sample out: (sum - r) / (n - 1).
      const double baseline =
          args.estimator == NAPO_ESTIMATOR_RLOO ? (mean * double(size) - rewards[i]) / double(size - 1) : mean;
      args.advantages[i] = float((rewards[i] - baseline) * factor);
    }
  }
}

template <typename Launch>
void launchGroupAdvantages(Launch&& launch, const AdvantageArgs& args) {
  launch(groupAdvantagesKernel, dim3(1), dim3(kAdvantageThreads), args);
}

}  // namespace napo::cuda
