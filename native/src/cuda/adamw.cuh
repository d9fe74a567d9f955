// AdamW on the GPU, the CPU twin's semantics (src/cpu/adamw.cpp; torch.optim.AdamW's update
// order) over parameter ranges of one flat buffer, and the squared norm for global gradient
// clipping: per-block partial sums in double, then one block adding them in index order, so the
// norm does not depend on scheduling.
#pragma once

#include <cmath>
#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

// One parameter's range of the flat buffers (the CPU backend's AdamWRange).
struct AdamWSpan {
  int64_t offset, size;
  bool decay;
};

struct AdamWArgs {
  float* params;
  const float* grads;
  float* m;
  float* v;
  const AdamWSpan* spans;  // device memory
  int64_t count;
  float lr, beta1, beta2, eps, weightDecay, gradScale;
  float stepSize, invSqrtCorrection2;  // lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t): from the host, in double
};

static __global__ void __launch_bounds__(kElementThreads) adamwStepKernel(AdamWArgs a) {
  for (int64_t r = 0; r < a.count; ++r) {
    const AdamWSpan span = a.spans[r];
    const float decay = span.decay ? 1.0f - a.lr * a.weightDecay : 1.0f;
    for (int64_t k = elementStart(); k < span.size; k += elementStride()) {
      const int64_t i = span.offset + k;
      const float g = a.grads[i] * a.gradScale;
      const float m = a.beta1 * a.m[i] + (1.0f - a.beta1) * g;
      const float v = a.beta2 * a.v[i] + (1.0f - a.beta2) * g * g;
      a.m[i] = m;
      a.v[i] = v;
      a.params[i] = a.params[i] * decay - a.stepSize * m / (sqrtf(v) * a.invSqrtCorrection2 + a.eps);
    }
  }
}

// The host half of the step's constants, as the CPU computes them.
inline void adamwCorrections(AdamWArgs& args, int64_t step) {
  const float correction1 = 1.0f - float(std::pow(double(args.beta1), double(step)));
  const float correction2 = 1.0f - float(std::pow(double(args.beta2), double(step)));
  args.stepSize = args.lr / correction1;
  args.invSqrtCorrection2 = 1.0f / std::sqrt(correction2);
}

struct SumSquaresArgs {
  int64_t n;
  const float* x;
  double* partials;  // [sumSquaresBlocks(n)], then the total in partials[0] after the second pass
};

constexpr int kSumSquaresThreads = 256;
constexpr int64_t kSumSquaresBlock = 16384;  // elements per block of the first pass
inline int64_t sumSquaresBlocks(int64_t n) { return (n + kSumSquaresBlock - 1) / kSumSquaresBlock; }

static __global__ void __launch_bounds__(kSumSquaresThreads) sumSquaresPartialKernel(SumSquaresArgs a) {
  const int64_t begin = int64_t(blockIdx.x) * kSumSquaresBlock;
  const int64_t end = begin + kSumSquaresBlock < a.n ? begin + kSumSquaresBlock : a.n;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kSumSquaresThreads) sum += double(a.x[i]) * double(a.x[i]);
  sum = blockReduce<kSumSquaresThreads>(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) a.partials[blockIdx.x] = sum;
}

static __global__ void __launch_bounds__(kSumSquaresThreads) sumSquaresTotalKernel(SumSquaresArgs a, int64_t blocks) {
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < blocks; i += kSumSquaresThreads) sum += a.partials[i];
  sum = blockReduce<kSumSquaresThreads>(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) a.partials[0] = sum;
}

template <typename Launch>
void launchAdamWStep(Launch&& launch, const AdamWArgs& args, int64_t largestSpan) {
  if (args.count > 0) launch(adamwStepKernel, elementGrid(largestSpan), dim3(kElementThreads), args);
}

// Leaves the sum in args.partials[0] (0 for n = 0).
template <typename Launch>
void launchSumSquares(Launch&& launch, const SumSquaresArgs& args) {
  const int64_t blocks = sumSquaresBlocks(args.n);
  if (blocks == 0) {
    launch(sumSquaresTotalKernel, dim3(1), dim3(kSumSquaresThreads), args, int64_t(0));
    return;
  }
  launch(sumSquaresPartialKernel, dim3(unsigned(blocks)), dim3(kSumSquaresThreads), args);
  launch(sumSquaresTotalKernel, dim3(1), dim3(kSumSquaresThreads), args, blocks);
}

}  // namespace napo::cuda
