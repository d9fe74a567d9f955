// GELU on the GPU, tanh approximation (GPT-2's gelu_new), the CPU twin's semantics
// (src/cpu/gelu.cpp): gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct GeluArgs {
  int64_t n;
  const float* x;
  const float* dy;  // backward only
  float* out;       // forward: y; backward: dx
};

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

static __global__ void __launch_bounds__(kElementThreads) geluForwardKernel(GeluArgs a) {
  for (int64_t i = elementStart(); i < a.n; i += elementStride()) {
    const float v = a.x[i];
    a.out[i] = 0.5f * v * (1.0f + tanhf(kGeluC * (v + kGeluA * v * v * v)));
  }
}

static __global__ void __launch_bounds__(kElementThreads) geluBackwardKernel(GeluArgs a) {
  for (int64_t i = elementStart(); i < a.n; i += elementStride()) {
    const float v = a.x[i];
    const float t = tanhf(kGeluC * (v + kGeluA * v * v * v));
    const float dt = (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * v * v);
    a.out[i] = a.dy[i] * (0.5f * (1.0f + t) + 0.5f * v * dt);
  }
}

template <typename Launch>
void launchGeluForward(Launch&& launch, const GeluArgs& args) {
  if (args.n > 0) launch(geluForwardKernel, elementGrid(args.n), dim3(kElementThreads), args);
}

template <typename Launch>
void launchGeluBackward(Launch&& launch, const GeluArgs& args) {
  if (args.n > 0) launch(geluBackwardKernel, elementGrid(args.n), dim3(kElementThreads), args);
}

}  // namespace napo::cuda
