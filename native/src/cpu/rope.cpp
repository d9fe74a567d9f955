// Rotary position embeddings in transformers' rotate_half layout: the first and second halves of
// each head form the pairs (x[i], x[i + hd/2]) rotated by position * inv_freq[i]. The backward is
// the inverse rotation (a rotation's transpose), so no pre-rotation values are kept.
#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void ropeRotate(int64_t rows, int64_t heads, int64_t headDim, float* x, int64_t stride, const int32_t* positions,
                const float* cosTable, const float* sinTable, bool inverse) {
  const int64_t half = headDim / 2;
  const float direction = inverse ? -1.0f : 1.0f;
  parallelFor(rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (positions[i] < 0) continue;
      const float* c = cosTable + int64_t(positions[i]) * half;
      const float* s = sinTable + int64_t(positions[i]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = x + i * stride + h * headDim;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) {
          const float a = lo[j], b = hi[j], sn = direction * s[j];
          lo[j] = a * c[j] - b * sn;
          hi[j] = b * c[j] + a * sn;
        }
      }
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
