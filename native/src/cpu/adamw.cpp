// AdamW (Loshchilov & Hutter; torch.optim.AdamW's update order) and the squared norm used for
// global gradient clipping. Sums are taken over fixed blocks and combined in order, so results do
// not depend on the thread count.
#include <cmath>
#include <vector>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void adamwStep(float* params, float* grads, float* m, float* v,
                      const AdamWRange* ranges, int64_t count, int64_t step, float lr, float beta1,
                      float beta2, float eps, float weightDecay, float gradScale) {
  const float correction1 = 1.0f - float(std::pow(double(beta1), double(step)));
  const float correction2 = 1.0f - float(std::pow(double(beta2), double(step)));
  const float stepSize = lr / correction1;
  const float invSqrtCorrection2 = 1.0f / std::sqrt(correction2);
  for (int64_t r = 0; r < count; ++r) {
    const AdamWRange range = ranges[r];
    const float decay = range.decay ? 1.0f - lr * weightDecay : 1.0f;
    float* p = params + range.offset;
    float* g = grads + range.offset;
    float* mr = m + range.offset;
    float* vr = v + range.offset;
    parallelFor(range.size, 4096, [&](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * gradScale;
        mr[i] = beta1 * mr[i] + (1.0f - beta1) * gi;
        vr[i] = beta2 * vr[i] + (1.0f - beta2) * gi * gi;
        const float denom = std::sqrt(vr[i]) * invSqrtCorrection2 + eps;
        p[i] = p[i] * decay - stepSize * mr[i] / denom;
      }
    });
  }
}

double sumSquares(int64_t n, const float* x) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(size_t(blocks), 0.0);
  parallelFor(blocks, 4, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t lo = blk * kBlock, hi = lo + kBlock < n ? lo + kBlock : n;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = lo; i < hi; ++i) sum += double(x[i]) * double(x[i]);
      partial[size_t(blk)] = sum;
    }
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
