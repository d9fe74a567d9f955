// repetitionPenalty on the GPU: one grid-stride copy of the logits, then one block per row that
// penalises the logits of its history's tokens from the input's values (a token that occurs twice
// is written twice with the same value, so it is penalised once). A history entry that is
// neither -1 nor a token id is reported (the first, in row-major order, as the CPU checks).
#pragma once

#include <cstdint>

#include "device_math.cuh"
#include "kernel_errors.h"
#include "napo/napo.h"

namespace napo::cuda {

template <typename Logit>
struct RepetitionPenaltyArgs {
  const Logit* logits;     // [rows, vocab]
  const int32_t* history;  // [rows, length]
  int64_t rows, vocab, length;
  float penalty;
  Logit* out;  // [rows, vocab]
  KernelErrors* errors;
};

constexpr int kPenaltyCopyThreads = 256;
constexpr int kPenaltyRowThreads = 128;

template <typename Logit>
__global__ void __launch_bounds__(kPenaltyCopyThreads) penaltyCopyKernel(RepetitionPenaltyArgs<Logit> args) {
  const int64_t count = args.rows * args.vocab;
  for (int64_t i = int64_t(blockIdx.x) * kPenaltyCopyThreads + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * kPenaltyCopyThreads) {
    args.out[i] = args.logits[i];
  }
}

template <typename Logit>
__global__ void __launch_bounds__(kPenaltyRowThreads) penaltyScatterKernel(RepetitionPenaltyArgs<Logit> args) {
  const int64_t row = blockIdx.x;
  for (int64_t l = threadIdx.x; l < args.length; l += kPenaltyRowThreads) {
    const int64_t at = row * args.length + l;
    const int32_t token = args.history[at];
    if (token < -1 || token >= args.vocab) {
      reportBadIndex(args.errors, at);
      continue;
    }
    if (token < 0) continue;
    const float z = widen(args.logits[row * args.vocab + token]);
    storeLogit(&args.out[row * args.vocab + token], z < 0.0f ? z * args.penalty : z / args.penalty);
  }
}

template <typename Launch, typename Logit>
void launchRepetitionPenalty(Launch&& launch, const RepetitionPenaltyArgs<Logit>& args) {
  const int64_t blocks = (args.rows * args.vocab + kPenaltyCopyThreads - 1) / kPenaltyCopyThreads;
  launch(penaltyCopyKernel<Logit>, dim3(unsigned(blocks < 4096 ? blocks : 4096)), dim3(kPenaltyCopyThreads), args);
  launch(penaltyScatterKernel<Logit>, dim3(unsigned(args.rows)), dim3(kPenaltyRowThreads), args);
}

}  // namespace napo::cuda
