// The gated MLP activation of Llama / Qwen: act = silu(gate) * up, silu(g) = g * sigmoid(g).
#include <cmath>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

void swigluForward(int64_t n, const float* gate, const float* up, float* out) {
  parallelFor(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

// dgate may be dout's buffer and dup the forward's output buffer: each element is read before
// it is written.
void swigluBackward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate, float* dup) {
  parallelFor(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i], u = up[i], d = dout[i];
      const float sigmoid = 1.0f / (1.0f + std::exp(-g));
      dup[i] = d * g * sigmoid;
      dgate[i] = d * u * sigmoid * (1.0f + g * (1.0f - sigmoid));
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
