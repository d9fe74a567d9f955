// napo's own GEMM on the GPU: C[M,N] = alpha op(A) op(B) + beta C, float32 or bfloat16 operands
// widened on load, float32 accumulation. 64 x 64 output tiles, 256 threads each computing 4 x 4,
// 16-deep slices of A and B staged in shared memory. Plain CUDA cores (no tensor cores): the
// building block of linearLogprobs, the same results as the CPU GEMM to rounding, and simple
// enough to run under the host emulation harness.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

template <typename TA, typename TB>
struct GemmArgs {
  const TA* a;  // op(A) [M, K]: stored [M, K], or [K, M] when transA
  const TB* b;  // op(B) [K, N]: stored [K, N], or [N, K] when transB
  float* c;     // [M, N], leading dimension ldc
  bool transA, transB;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
};

constexpr int kGemmTile = 64;
constexpr int kGemmDepth = 16;
constexpr int kGemmThreads = 256;

template <typename TA, typename TB>
__global__ void __launch_bounds__(kGemmThreads) gemmKernel(GemmArgs<TA, TB> args) {
  __shared__ float aTile[kGemmDepth][kGemmTile];
  __shared__ float bTile[kGemmDepth][kGemmTile];
  const int64_t row0 = int64_t(blockIdx.y) * kGemmTile, col0 = int64_t(blockIdx.x) * kGemmTile;
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < args.k; k0 += kGemmDepth) {
    for (int load = int(threadIdx.x); load < kGemmTile * kGemmDepth; load += kGemmThreads) {
      const int r = load / kGemmDepth, kk = load % kGemmDepth;
      const int64_t i = row0 + r, depth = k0 + kk;
      float value = 0.0f;
      if (i < args.m && depth < args.k) value = widen(args.transA ? args.a[depth * args.lda + i] : args.a[i * args.lda + depth]);
      aTile[kk][r] = value;
      const int kb = load / kGemmTile, cb = load % kGemmTile;
      const int64_t j = col0 + cb, depthB = k0 + kb;
      float valueB = 0.0f;
      if (j < args.n && depthB < args.k) {
        valueB = widen(args.transB ? args.b[j * args.ldb + depthB] : args.b[depthB * args.ldb + j]);
      }
      bTile[kb][cb] = valueB;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmDepth; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        a[q] = aTile[kk][ty * 4 + q];
        b[q] = bTile[kk][tx * 4 + q];
      }
#pragma unroll
      for (int p = 0; p < 4; ++p)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[p][q] += a[p] * b[q];
    }
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int64_t i = row0 + ty * 4 + p;
    if (i >= args.m) continue;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = col0 + tx * 4 + q;
      if (j >= args.n) continue;
      float* out = args.c + i * args.ldc + j;
      *out = args.alpha * acc[p][q] + (args.beta != 0.0f ? args.beta * *out : 0.0f);
    }
  }
}

// `launch(kernel, grid, block, args)` as in logprobs.cuh.
template <typename Launch, typename TA, typename TB>
void launchGemm(Launch&& launch, const GemmArgs<TA, TB>& args) {
  if (args.m <= 0 || args.n <= 0) return;
  const dim3 grid(unsigned((args.n + kGemmTile - 1) / kGemmTile), unsigned((args.m + kGemmTile - 1) / kGemmTile));
  launch(gemmKernel<TA, TB>, grid, dim3(kGemmThreads), args);
}

}  // namespace napo::cuda
