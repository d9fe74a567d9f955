// LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm).
#include <cmath>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void layerNormForward(int64_t m, int64_t d, const float* x,
                             const float* w, const float* b, float eps, float* y, float* mean, float* rstd) {
  parallelFor(m, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * d;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < d; ++j) sum += xi[j];
      const float mu = sum / float(d);
      float var = 0.0f;
#pragma omp simd reduction(+ : var)
      for (int64_t j = 0; j < d; ++j) var += (xi[j] - mu) * (xi[j] - mu);
      const float r = 1.0f / std::sqrt(var / float(d) + eps);
      float* yi = y + i * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - mu) * r * w[j] + b[j];
      if (mean) mean[i] = mu;
      if (rstd) rstd[i] = r;
    }
  });
}

void layerNormBackward(int64_t m, int64_t d, const float* x,
                              const float* w, const float* mean, const float* rstd, const float* dy,
                              float* dx, float* dw, float* db, bool accumulate) {
  parallelFor(m, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * d;
      const float* dyi = dy + i * d;
      const float mu = mean[i], r = rstd[i];
      float sumG = 0.0f, sumGX = 0.0f;
#pragma omp simd reduction(+ : sumG, sumGX)
      for (int64_t j = 0; j < d; ++j) {
        const float g = dyi[j] * w[j];
        sumG += g;
        sumGX += g * (xi[j] - mu) * r;
      }
      const float meanG = sumG / float(d), meanGX = sumGX / float(d);
      float* dxi = dx + i * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        const float value = r * (dyi[j] * w[j] - meanG - (xi[j] - mu) * r * meanGX);
        dxi[j] = accumulate ? dxi[j] + value : value;
      }
    }
  });
  // Parameter gradients: columns split across threads, rows summed in order.
  parallelFor(d, 32, [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * d;
      const float* dyi = dy + i * d;
      const float mu = mean[i], r = rstd[i];
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) {
        dw[j] += dyi[j] * (xi[j] - mu) * r;
        db[j] += dyi[j];
      }
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
