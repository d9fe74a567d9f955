// LayerNorm on the GPU, the CPU twin's semantics (src/cpu/layer_norm.cpp): biased variance, as
// torch.nn.LayerNorm; mean and rstd kept for the backward. A warp per row; the weight and bias
// gradients are column sums over rows (device_math.cuh).
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct LayerNormArgs {
  int64_t m, d;
  const float* x;
  const float* w;
  const float* b;  // forward only
  float eps;
  float* y;  // forward only
  float* mean;
  float* rstd;
  // backward only
  const float* dy;
  float* dx;
  float* dw;
  float* db;
  bool accumulate;
};

static __global__ void __launch_bounds__(kRowWarps * kWarpThreads) layerNormForwardKernel(LayerNormArgs a) {
  const int64_t i = warpVector();
  if (i >= a.m) return;
  const int lane = int(threadIdx.x) % kWarpThreads;
  const float* x = a.x + i * a.d;
  float sum = 0.0f;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) sum += x[j];
  const float mu = warpReduce(sum, Sum{}) / float(a.d);
  float var = 0.0f;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) var += (x[j] - mu) * (x[j] - mu);
  const float r = 1.0f / sqrtf(warpReduce(var, Sum{}) / float(a.d) + a.eps);
  float* y = a.y + i * a.d;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) y[j] = (x[j] - mu) * r * a.w[j] + a.b[j];
  if (lane == 0) {
    if (a.mean) a.mean[i] = mu;
    if (a.rstd) a.rstd[i] = r;
  }
}

static __global__ void __launch_bounds__(kColumnThreads) layerNormParamGradKernel(LayerNormArgs a) {
  const int64_t j = blockColumn();
  const bool inside = j < a.d;
  const float dw = columnSum(a.m, [&](int64_t i) {
    return inside ? a.dy[i * a.d + j] * (a.x[i * a.d + j] - a.mean[i]) * a.rstd[i] : 0.0f;
  });
  const float db = columnSum(a.m, [&](int64_t i) { return inside ? a.dy[i * a.d + j] : 0.0f; });
  if (threadIdx.x < kWarpThreads && inside) {
    a.dw[j] += dw;
    a.db[j] += db;
  }
}

static __global__ void __launch_bounds__(kRowWarps * kWarpThreads) layerNormInputGradKernel(LayerNormArgs a) {
  const int64_t i = warpVector();
  if (i >= a.m) return;
  const int lane = int(threadIdx.x) % kWarpThreads;
  const float* x = a.x + i * a.d;
  const float* dy = a.dy + i * a.d;
  const float mu = a.mean[i], r = a.rstd[i];
  float sumG = 0.0f, sumGX = 0.0f;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) {
    const float g = dy[j] * a.w[j];
    sumG += g;
    sumGX += g * (x[j] - mu) * r;
  }
  const float meanG = warpReduce(sumG, Sum{}) / float(a.d), meanGX = warpReduce(sumGX, Sum{}) / float(a.d);
  float* dx = a.dx + i * a.d;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) {
    const float value = r * (dy[j] * a.w[j] - meanG - (x[j] - mu) * r * meanGX);
    dx[j] = a.accumulate ? dx[j] + value : value;
  }
}

template <typename Launch>
void launchLayerNormForward(Launch&& launch, const LayerNormArgs& args) {
  if (args.m == 0) return;
  launch(layerNormForwardKernel, rowGrid(args.m), dim3(kRowWarps * kWarpThreads), args);
}

template <typename Launch>
void launchLayerNormBackward(Launch&& launch, const LayerNormArgs& args) {
  if (args.m == 0) return;
  launch(layerNormParamGradKernel, columnGrid(args.d), dim3(kColumnThreads), args);
  launch(layerNormInputGradKernel, rowGrid(args.m), dim3(kRowWarps * kWarpThreads), args);
}

}  // namespace napo::cuda
