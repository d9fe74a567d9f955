// Token (+ learned position) embeddings on the GPU, the CPU twin's semantics
// (src/cpu/embedding.cpp): a token of -1 embeds to zeros and receives no gradient. The backward
// scatters with float atomics: rows sharing a token add in an order the scheduler picks, so the
// gradient matches the CPU's to rounding, not bit for bit (as PyTorch's index_add_ on CUDA).
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

struct EmbeddingArgs {
  int64_t rows, d;
  const int32_t* tokens;
  const int32_t* positions;  // read only when there is a position table
  const float* wte;          // forward only
  const float* wpe;          // forward only; null: no learned positions
  float* x;                  // forward only
  const float* dx;           // backward only
  float* dwte;               // backward only
  float* dwpe;               // backward only; null: no learned positions
};

static __global__ void __launch_bounds__(kElementThreads) embeddingForwardKernel(EmbeddingArgs a) {
  for (int64_t e = elementStart(); e < a.rows * a.d; e += elementStride()) {
    const int64_t row = e / a.d, j = e % a.d;
    const int32_t token = a.tokens[row];
    if (token < 0) {
      a.x[e] = 0.0f;
      continue;
    }
    const float te = a.wte[int64_t(token) * a.d + j];
    a.x[e] = a.wpe ? te + a.wpe[int64_t(a.positions[row]) * a.d + j] : te;
  }
}

static __global__ void __launch_bounds__(kElementThreads) embeddingBackwardKernel(EmbeddingArgs a) {
  for (int64_t e = elementStart(); e < a.rows * a.d; e += elementStride()) {
    const int64_t row = e / a.d, j = e % a.d;
    const int32_t token = a.tokens[row];
    if (token < 0) continue;
    atomicAdd(a.dwte + int64_t(token) * a.d + j, a.dx[e]);
    if (a.dwpe) atomicAdd(a.dwpe + int64_t(a.positions[row]) * a.d + j, a.dx[e]);
  }
}

template <typename Launch>
void launchEmbeddingForward(Launch&& launch, const EmbeddingArgs& args) {
  if (args.rows * args.d > 0) launch(embeddingForwardKernel, elementGrid(args.rows * args.d), dim3(kElementThreads), args);
}

template <typename Launch>
void launchEmbeddingBackward(Launch&& launch, const EmbeddingArgs& args) {
  if (args.rows * args.d > 0) launch(embeddingBackwardKernel, elementGrid(args.rows * args.d), dim3(kElementThreads), args);
}

}  // namespace napo::cuda
