// Rotary embeddings on the GPU, the CPU twin's semantics (src/cpu/rope.cpp): transformers'
// rotate_half pairs (x[j], x[j + hd/2]) rotated in place by the cos / sin tables at the row's
// position; rows at a negative position are left alone; `inverse` rotates back (the backward).
// A thread per pair.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct RopeArgs {
  int64_t rows, heads, headDim;
  float* x;
  int64_t stride;
  const int32_t* positions;
  const float* cosTable;  // [position, headDim / 2]
  const float* sinTable;
  bool inverse;
};

static __global__ void __launch_bounds__(kElementThreads) ropeRotateKernel(RopeArgs a) {
  const int64_t half = a.headDim / 2, pairs = a.rows * a.heads * half;
  const float direction = a.inverse ? -1.0f : 1.0f;
  for (int64_t p = elementStart(); p < pairs; p += elementStride()) {
    const int64_t i = p / (a.heads * half), h = p / half % a.heads, j = p % half;
    if (a.positions[i] < 0) continue;
    const int64_t at = int64_t(a.positions[i]) * half + j;
    float* lo = a.x + i * a.stride + h * a.headDim + j;
    float* hi = lo + half;
    const float x0 = *lo, x1 = *hi, c = a.cosTable[at], s = direction * a.sinTable[at];
    *lo = x0 * c - x1 * s;
    *hi = x1 * c + x0 * s;
  }
}

template <typename Launch>
void launchRopeRotate(Launch&& launch, const RopeArgs& args) {
  const int64_t pairs = args.rows * args.heads * (args.headDim / 2);
  if (pairs == 0) return;
  launch(ropeRotateKernel, elementGrid(pairs), dim3(kElementThreads), args);
}

}  // namespace napo::cuda
