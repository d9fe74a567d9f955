// Bias of a linear layer on the GPU, the CPU twin's semantics (addBias / biasBackward in
// src/cpu/matmul.cpp): y[i, j] += bias[j] over rows ldy apart, and dbias[j] += sum over rows of
// dy[i, j] (a column sum, device_math.cuh).
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct BiasArgs {
  int64_t m, n;
  const float* bias;  // addBias
  float* y;           // addBias
  const float* dy;    // biasBackward
  float* dbias;       // biasBackward
  int64_t ld;         // of y or dy
};

static __global__ void __launch_bounds__(kElementThreads) addBiasKernel(BiasArgs a) {
  for (int64_t e = elementStart(); e < a.m * a.n; e += elementStride()) a.y[e / a.n * a.ld + e % a.n] += a.bias[e % a.n];
}

static __global__ void __launch_bounds__(kColumnThreads) biasBackwardKernel(BiasArgs a) {
  const int64_t j = blockColumn();
  const float sum = columnSum(a.m, [&](int64_t i) { return j < a.n ? a.dy[i * a.ld + j] : 0.0f; });
  if (threadIdx.x < kWarpThreads && j < a.n) a.dbias[j] += sum;
}

template <typename Launch>
void launchAddBias(Launch&& launch, const BiasArgs& args) {
  if (args.m * args.n > 0) launch(addBiasKernel, elementGrid(args.m * args.n), dim3(kElementThreads), args);
}

template <typename Launch>
void launchBiasBackward(Launch&& launch, const BiasArgs& args) {
  if (args.m * args.n > 0) launch(biasBackwardKernel, columnGrid(args.n), dim3(kColumnThreads), args);
}

}  // namespace napo::cuda
