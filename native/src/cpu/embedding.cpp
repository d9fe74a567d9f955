// Token embeddings, plus learned positions when the model has them (gpt2). A token of -1 marks a
// row that is padding or inactive: it embeds to zeros and receives no gradient. The backward
// splits the model dimension across threads so no two threads touch the same entry and the order
// of the sum is fixed.
#include <cstring>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void embeddingForward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* wte,
                      const float* wpe, float* x) {
  parallelFor(rows, 32, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      float* out = x + row * d;
      if (tokens[row] < 0) {
        std::memset(out, 0, sizeof(float) * size_t(d));
        continue;
      }
      const float* te = wte + int64_t(tokens[row]) * d;
      if (!wpe) {
        std::memcpy(out, te, sizeof(float) * size_t(d));
        continue;
      }
      const float* pe = wpe + int64_t(positions[row]) * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) out[j] = te[j] + pe[j];
    }
  });
}

void embeddingBackward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* dx,
                       float* dwte, float* dwpe) {
  parallelFor(d, 32, [&](int64_t begin, int64_t end) {
    for (int64_t row = 0; row < rows; ++row) {
      if (tokens[row] < 0) continue;
      const float* g = dx + row * d;
      float* te = dwte + int64_t(tokens[row]) * d;
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) te[j] += g[j];
      if (!dwpe) continue;
      float* pe = dwpe + int64_t(positions[row]) * d;
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) pe[j] += g[j];
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
