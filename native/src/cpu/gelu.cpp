// GELU, tanh approximation (GPT-2's gelu_new):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <cmath>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {
constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kA = 0.044715f;
}  // namespace

void geluForward(int64_t n, const float* x, float* y) {
  parallelFor(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + std::tanh(kC * (v + kA * v * v * v)));
    }
  });
}

void geluBackward(int64_t n, const float* x, const float* dy, float* dx) {
  parallelFor(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = x[i];
      const float t = std::tanh(kC * (v + kA * v * v * v));
      const float dt = (1.0f - t * t) * kC * (1.0f + 3.0f * kA * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * dt);
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
