// SwiGLU on the GPU, the CPU twin's semantics (src/cpu/swiglu.cpp): out = silu(gate) * up. The
// backward may write dgate over dout and dup over the forward's output: each thread reads its
// element before writing it.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct SwigluArgs {
  int64_t n;
  const float* gate;
  const float* up;
  const float* dout;  // backward only
  float* out;         // forward only
  float* dgate;       // backward only
  float* dup;         // backward only
};

static __global__ void __launch_bounds__(kElementThreads) swigluForwardKernel(SwigluArgs a) {
  for (int64_t i = elementStart(); i < a.n; i += elementStride()) {
    const float g = a.gate[i];
    a.out[i] = g / (1.0f + expf(-g)) * a.up[i];
  }
}

static __global__ void __launch_bounds__(kElementThreads) swigluBackwardKernel(SwigluArgs a) {
  for (int64_t i = elementStart(); i < a.n; i += elementStride()) {
    const float g = a.gate[i], u = a.up[i], d = a.dout[i];
    const float sigmoid = 1.0f / (1.0f + expf(-g));
    a.dup[i] = d * g * sigmoid;
    a.dgate[i] = d * u * sigmoid * (1.0f + g * (1.0f - sigmoid));
  }
}

template <typename Launch>
void launchSwigluForward(Launch&& launch, const SwigluArgs& args) {
  if (args.n > 0) launch(swigluForwardKernel, elementGrid(args.n), dim3(kElementThreads), args);
}

template <typename Launch>
void launchSwigluBackward(Launch&& launch, const SwigluArgs& args) {
  if (args.n > 0) launch(swigluBackwardKernel, elementGrid(args.n), dim3(kElementThreads), args);
}

}  // namespace napo::cuda
