// maskedRowSum on the CPU: each row summed in double over its masked positions (padding may hold
// anything, even -Inf, and is never read into the sum), and the gradient, the mask scaled by the
// row's incoming gradient.
#include <algorithm>

#include "../core/thread_pool.h"
#include "kernels.h"
#include "mask_data.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void maskedRowSum(const float* values, const napo_tensor& mask, int64_t rows, int64_t width, float* sums) {
  withMaskData(mask, [&](const auto* m) {
    parallelFor(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(width, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        double sum = 0.0;
        for (int64_t i = r * width; i < (r + 1) * width; ++i) {
          if (m[i] != 0) sum += double(values[i]);
        }
        sums[r] = float(sum);
      }
    });
  });
}

void maskedRowSumBackward(const napo_tensor& mask, const float* gradSums, int64_t rows, int64_t width,
                          float* gradValues) {
  withMaskData(mask, [&](const auto* m) {
    parallelFor(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(width, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin * width; i < end * width; ++i) gradValues[i] = m[i] != 0 ? gradSums[i / width] : 0.0f;
    });
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
