// RMSNorm as Llama / Qwen write it: y = x / sqrt(mean(x^2) + eps) * w, in float32. One call
// normalises `groups` vectors of length d per row (1 for the hidden state; the heads of q or k for
// Qwen3's q_norm / k_norm), vector g of row i at i * stride + g * d.
#include <cmath>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void rmsNormForward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                    float eps, float* y, int64_t yStride, float* rstd) {
  parallelFor(rows * groups, 16, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      const int64_t i = v / groups, g = v % groups;
      const float* xi = x + i * xStride + g * d;
      float* yi = y + i * yStride + g * d;
      float sumSquares = 0.0f;
#pragma omp simd reduction(+ : sumSquares)
      for (int64_t j = 0; j < d; ++j) sumSquares += xi[j] * xi[j];
      const float r = 1.0f / std::sqrt(sumSquares / float(d) + eps);
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yi[j] = xi[j] * r * w[j];
      if (rstd) rstd[v] = r;
    }
  });
}

// dw first and dx second, so dx may be the buffer dy is in (Qwen3's q_norm backward runs in
// place on dq): every dy value is read before any dx value of its vector is written.
void rmsNormBackward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                     const float* rstd, const float* dy, int64_t dyStride, float* dx, int64_t dxStride, float* dw,
                     bool accumulate) {
  // Columns split across threads, vectors summed in order: the same sum whatever the thread count.
  parallelFor(d, 32, [&](int64_t begin, int64_t end) {
    for (int64_t v = 0; v < rows * groups; ++v) {
      const int64_t i = v / groups, g = v % groups;
      const float* xi = x + i * xStride + g * d;
      const float* dyi = dy + i * dyStride + g * d;
      const float r = rstd[v];
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) dw[j] += dyi[j] * xi[j] * r;
    }
  });
  parallelFor(rows * groups, 16, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      const int64_t i = v / groups, g = v % groups;
      const float* xi = x + i * xStride + g * d;
      const float* dyi = dy + i * dyStride + g * d;
      float* dxi = dx + i * dxStride + g * d;
      const float r = rstd[v];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += dyi[j] * w[j] * xi[j];
      // d/dx of x r w: r (dy w) - x r^3 mean(dy w x).
      const float coefficient = dot * r * r * r / float(d);
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        const float value = r * dyi[j] * w[j] - xi[j] * coefficient;
        dxi[j] = accumulate ? dxi[j] + value : value;
      }
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
