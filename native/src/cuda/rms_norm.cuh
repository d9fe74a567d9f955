// RMSNorm on the GPU, the CPU twin's semantics (src/cpu/rms_norm.cpp): y = x / sqrt(mean(x^2) +
// eps) * w over `groups` vectors of d per row (vector g of row i at i * stride + g * d). A warp
// per vector; the weight gradient is a column sum over vectors (device_math.cuh), launched before
// dx so that dx may be written over dy, as on the CPU.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct RmsNormArgs {
  int64_t rows, groups, d;
  const float* x;
  int64_t xStride;
  const float* w;
  float eps;
  float* y;  // forward: y; backward: unused
  int64_t yStride;
  float* rstd;  // [rows * groups]; the forward may leave it null
  // backward only
  const float* dy;
  int64_t dyStride;
  float* dx;
  int64_t dxStride;
  float* dw;
  bool accumulate;
};

__device__ __forceinline__ const float* rmsVector(const float* base, int64_t stride, int64_t groups, int64_t d,
                                                  int64_t v) {
  return base + (v / groups) * stride + (v % groups) * d;
}

static __global__ void __launch_bounds__(kRowWarps * kWarpThreads) rmsNormForwardKernel(RmsNormArgs a) {
  const int64_t v = warpVector();
  if (v >= a.rows * a.groups) return;  // whole warps leave together
  const int lane = int(threadIdx.x) % kWarpThreads;
  const float* x = rmsVector(a.x, a.xStride, a.groups, a.d, v);
  float* y = a.y + (v / a.groups) * a.yStride + (v % a.groups) * a.d;
  float squares = 0.0f;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) squares += x[j] * x[j];
  const float r = 1.0f / sqrtf(warpReduce(squares, Sum{}) / float(a.d) + a.eps);
  for (int64_t j = lane; j < a.d; j += kWarpThreads) y[j] = x[j] * r * a.w[j];
  if (a.rstd && lane == 0) a.rstd[v] = r;
}

static __global__ void __launch_bounds__(kColumnThreads) rmsNormWeightGradKernel(RmsNormArgs a) {
  const int64_t j = blockColumn();
  const float sum = columnSum(a.rows * a.groups, [&](int64_t v) {
    if (j >= a.d) return 0.0f;
    return rmsVector(a.dy, a.dyStride, a.groups, a.d, v)[j] * rmsVector(a.x, a.xStride, a.groups, a.d, v)[j] * a.rstd[v];
  });
  if (threadIdx.x < kWarpThreads && j < a.d) a.dw[j] += sum;
}

// d/dx of x r w: r (dy w) - x r^3 mean(dy w x). Each lane reads its dy columns before writing the
// same dx columns, so dx may be dy's buffer.
static __global__ void __launch_bounds__(kRowWarps * kWarpThreads) rmsNormInputGradKernel(RmsNormArgs a) {
  const int64_t v = warpVector();
  if (v >= a.rows * a.groups) return;
  const int lane = int(threadIdx.x) % kWarpThreads;
  const float* x = rmsVector(a.x, a.xStride, a.groups, a.d, v);
  const float* dy = rmsVector(a.dy, a.dyStride, a.groups, a.d, v);
  float* dx = a.dx + (v / a.groups) * a.dxStride + (v % a.groups) * a.d;
  const float r = a.rstd[v];
  float dot = 0.0f;
  for (int64_t j = lane; j < a.d; j += kWarpThreads) dot += dy[j] * a.w[j] * x[j];
  const float coefficient = warpReduce(dot, Sum{}) * r * r * r / float(a.d);
  for (int64_t j = lane; j < a.d; j += kWarpThreads) {
    const float value = r * dy[j] * a.w[j] - x[j] * coefficient;
    dx[j] = a.accumulate ? dx[j] + value : value;
  }
}

template <typename Launch>
void launchRmsNormForward(Launch&& launch, const RmsNormArgs& args) {
  if (args.rows * args.groups == 0) return;
  launch(rmsNormForwardKernel, rowGrid(args.rows * args.groups), dim3(kRowWarps * kWarpThreads), args);
}

template <typename Launch>
void launchRmsNormBackward(Launch&& launch, const RmsNormArgs& args) {
  if (args.rows * args.groups == 0) return;
  launch(rmsNormWeightGradKernel, columnGrid(args.d), dim3(kColumnThreads), args);
  launch(rmsNormInputGradKernel, rowGrid(args.rows * args.groups), dim3(kRowWarps * kWarpThreads), args);
}

}  // namespace napo::cuda
