// Token + learned position embeddings. The backward scatters into the token table; it splits the
// model dimension across threads so no two threads touch the same entry and the order of the sum
// is fixed.
#include <cstring>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void embeddingForward(int64_t batch, int64_t time, int64_t d,
                             const int32_t* tokens, const int32_t* lengths, const float* wte,
                             const float* wpe, float* x) {
  parallelFor(batch * time, 32, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / time, t = row % time;
      float* out = x + row * d;
      if (t >= lengths[b]) {
        std::memset(out, 0, sizeof(float) * size_t(d));
        continue;
      }
      const float* te = wte + int64_t(tokens[row]) * d;
      const float* pe = wpe + t * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) out[j] = te[j] + pe[j];
    }
  });
}

void embeddingBackward(int64_t batch, int64_t time, int64_t d,
                              const int32_t* tokens, const int32_t* lengths, const float* dx,
                              float* dwte, float* dwpe) {
  parallelFor(d, 32, [&](int64_t begin, int64_t end) {
    for (int64_t row = 0; row < batch * time; ++row) {
      const int64_t b = row / time, t = row % time;
      if (t >= lengths[b]) continue;
      const float* g = dx + row * d;
      float* te = dwte + int64_t(tokens[row]) * d;
      float* pe = dwpe + t * d;
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) {
        te[j] += g[j];
        pe[j] += g[j];
      }
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
