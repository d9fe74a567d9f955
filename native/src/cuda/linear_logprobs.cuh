// linearLogprobs on the GPU. Per vocabulary chunk the GEMM (gemm.cuh) writes the chunk's logits
// [N, chunk] into the call's workspace, then one block per row folds them into the row's running
// max / sum / entropy moment (kept in the workspace too) while they are in L2; the last kernel
// turns the moments into log-probs. The backward recomputes each chunk, turns it into dlogits in
// place, and multiplies it into both gradients with the same GEMM. The inputs' rules are checked
// by a kernel of their own and reported as the CPU backend checks them (LinearInput).
#pragma once

#include <cstdint>

#include "../core/validate.h"
#include "device_math.cuh"
#include "gemm.cuh"
#include "kernel_errors.h"
#include "logprobs.cuh"

namespace napo::cuda {

// The inputs whose values are checked, in the order of src/core/linear_logprobs.cpp.
enum LinearInput : int { kHiddenInput, kWeightInput, kRowLseInput, kRowEntropyInput, kRowGradLogprobsInput,
                         kRowGradEntropyInput };

// Running softmax statistics of every row, in the workspace: [4][rows].
struct LinearRowState {
  float* max;
  float* sum;
  float* weighted;
  float* target;
};

template <typename T>
struct LinearArgs {
  const T* hidden;        // [rows, width]
  const T* weight;        // [vocab, width]
  const int32_t* tokens;  // [rows]
  int64_t rows, width, vocab, chunk;
  float scale;            // 1 / T
  float* tile;            // workspace [rows, chunk]
  LinearRowState state;   // workspace
  KernelErrors* errors;
};

// The forward's outputs (entropy may be null).
struct LinearOutputs {
  float* logprobs;
  float* entropy;
  float* lse;
};

// The backward's per-row inputs (entropy: the forward's, null when gradEntropy is; gradEntropy
// may be null) and outputs.
struct LinearGradients {
  const float* lse;
  const float* entropy;
  const float* gradLogprobs;
  const float* gradEntropy;
  float* gradHidden;  // [rows, width]
  float* gradWeight;  // [vocab, width]
  bool accumulate;
};

constexpr int kLinearRowThreads = 256;
constexpr int kLinearCheckThreads = 256;
constexpr unsigned kLinearCheckBlocks = 256;

// Tokens in range (badIndex), hidden and weight finite, the per-row float inputs finite (badInput).
template <typename T>
__global__ void __launch_bounds__(kLinearCheckThreads)
    linearCheckKernel(LinearArgs<T> args, const float* lse, const float* entropy, const float* gradLogprobs,
                      const float* gradEntropy) {
  const int64_t stride = int64_t(gridDim.x) * kLinearCheckThreads;
  const int64_t first = int64_t(blockIdx.x) * kLinearCheckThreads + threadIdx.x;
  for (int64_t i = first; i < args.rows; i += stride) {
    const int32_t token = args.tokens[i];
    if (token < 0 || token >= args.vocab) reportBadIndex(args.errors, i);
    const float* rowInputs[4] = {lse, entropy, gradLogprobs, gradEntropy};
    for (int input = 0; input < 4; ++input) {
      if (rowInputs[input] && !isFinite(rowInputs[input][i])) reportBadInput(args.errors, kRowLseInput + input, i);
    }
  }
  for (int64_t i = first; i < args.rows * args.width; i += stride) {
    if (!isFinite(widen(args.hidden[i]))) reportBadInput(args.errors, kHiddenInput, i);
  }
  for (int64_t i = first; i < args.vocab * args.width; i += stride) {
    if (!isFinite(widen(args.weight[i]))) reportBadInput(args.errors, kWeightInput, i);
  }
}

template <typename T>
__global__ void linearStartKernel(LinearArgs<T> args) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < args.rows; r += int64_t(gridDim.x) * blockDim.x) {
    args.state.max[r] = -INFINITY;
    args.state.sum[r] = 0.0f;
    args.state.weighted[r] = 0.0f;
    args.state.target[r] = 0.0f;
  }
}

// One block per row: the chunk's max, then its sum and entropy moment, merged into the row's.
template <typename T>
__global__ void __launch_bounds__(kLinearRowThreads) linearFoldKernel(LinearArgs<T> args, int64_t c0, int64_t count) {
  const int64_t row = blockIdx.x;
  const float* z = args.tile + row * count;
  float chunkMax = -INFINITY;
  bool bad = false;
  for (int64_t i = threadIdx.x; i < count; i += kLinearRowThreads) {
    if (!isFinite(z[i])) {
      reportBadLogit(args.errors, row, c0 + i, args.vocab);
      bad = true;
    }
    chunkMax = fmaxf(chunkMax, z[i]);
  }
  chunkMax = blockReduce<kLinearRowThreads>(chunkMax, MaxFloat{}, -INFINITY);
  Moments chunk{chunkMax, 0.0f, 0.0f};
  for (int64_t i = threadIdx.x; i < count && !bad; i += kLinearRowThreads) {
    const float d = z[i] - chunkMax;
    const float e = __expf(d);
    chunk.sum += e;
    chunk.weighted += e * d;
  }
  chunk.sum = blockReduce<kLinearRowThreads>(chunk.sum, Sum{}, 0.0f);
  chunk.weighted = blockReduce<kLinearRowThreads>(chunk.weighted, Sum{}, 0.0f);
  if (threadIdx.x != 0) return;
  const Moments merged = MergeMoments{}(Moments{args.state.max[row], args.state.sum[row], args.state.weighted[row]}, chunk);
  args.state.max[row] = merged.max;
  args.state.sum[row] = merged.sum;
  args.state.weighted[row] = merged.weighted;
  const int64_t token = args.tokens[row];
  if (token >= c0 && token < c0 + count) args.state.target[row] = z[token - c0];
}

template <typename T>
__global__ void linearFinishKernel(LinearArgs<T> args, LinearOutputs out) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < args.rows; r += int64_t(gridDim.x) * blockDim.x) {
    const float logSum = logf(args.state.sum[r]);
    out.lse[r] = args.state.max[r] + logSum;
    out.logprobs[r] = args.state.target[r] - out.lse[r];
    if (out.entropy) out.entropy[r] = logSum - args.state.weighted[r] / args.state.sum[r];
  }
}

// dz = g_lp (onehot - p) - g_ent p (z - sum p z), written over the chunk's logits as dz / T.
template <typename T>
__global__ void __launch_bounds__(kLinearRowThreads)
    linearGradLogitsKernel(LinearArgs<T> args, LinearGradients grads, int64_t c0, int64_t count) {
  const int64_t row = blockIdx.x;
  float* z = args.tile + row * count;
  const float lse = grads.lse[row], gradLp = grads.gradLogprobs[row];
  const float gradEnt = grads.gradEntropy ? grads.gradEntropy[row] : 0.0f;
  const float meanZ = grads.gradEntropy ? lse - grads.entropy[row] : 0.0f;
  const int64_t token = args.tokens[row];
  for (int64_t i = threadIdx.x; i < count; i += kLinearRowThreads) {
    if (!isFinite(z[i])) reportBadLogit(args.errors, row, c0 + i, args.vocab);
    const float p = expShifted(z[i] - lse);
    float dz = -gradLp * p - gradEnt * p * (fmaxf(z[i], -1e30f) - meanZ);
    if (c0 + i == token) dz += gradLp;
    z[i] = dz * args.scale;
  }
}

template <typename T>
GemmArgs<T, T> chunkLogitsGemm(const LinearArgs<T>& args, int64_t c0, int64_t count) {
  return {args.hidden, args.weight + c0 * args.width, args.tile, false, true, args.rows, count, args.width,
          args.width, args.width, count, args.scale, 0.0f};
}

inline dim3 linearGrid(int64_t rows) { return dim3(unsigned(rows < 65535 ? rows : 65535)); }

template <typename Launch, typename T>
void launchLinearCheck(Launch&& launch, const LinearArgs<T>& args, const LinearGradients* grads) {
  launch(linearCheckKernel<T>, dim3(kLinearCheckBlocks), dim3(kLinearCheckThreads), args,
         grads ? grads->lse : nullptr, grads ? grads->entropy : nullptr, grads ? grads->gradLogprobs : nullptr,
         grads ? grads->gradEntropy : nullptr);
}

// The forward's kernels, after launchLinearCheck.
template <typename Launch, typename T>
void launchLinearLogprobs(Launch&& launch, const LinearArgs<T>& args, const LinearOutputs& out) {
  launch(linearStartKernel<T>, dim3(64), dim3(256), args);
  for (int64_t c0 = 0; c0 < args.vocab; c0 += args.chunk) {
    const int64_t count = args.chunk < args.vocab - c0 ? args.chunk : args.vocab - c0;
    launchGemm(launch, chunkLogitsGemm(args, c0, count));
    launch(linearFoldKernel<T>, dim3(unsigned(args.rows)), dim3(kLinearRowThreads), args, c0, count);
  }
  launch(linearFinishKernel<T>, dim3(64), dim3(256), args, out);
}

// The backward's kernels, after launchLinearCheck (and, when the entropy is needed but was not
// given, a forward that found it).
template <typename Launch, typename T>
void launchLinearLogprobsBackward(Launch&& launch, const LinearArgs<T>& args, const LinearGradients& grads) {
  for (int64_t c0 = 0; c0 < args.vocab; c0 += args.chunk) {
    const int64_t count = args.chunk < args.vocab - c0 ? args.chunk : args.vocab - c0;
    launchGemm(launch, chunkLogitsGemm(args, c0, count));
    launch(linearGradLogitsKernel<T>, dim3(unsigned(args.rows)), dim3(kLinearRowThreads), args, grads, c0, count);
    // gradHidden (+)= dlogits weight[chunk]; gradWeight[chunk] (+)= dlogits^T hidden.
    launchGemm(launch, GemmArgs<float, T>{args.tile, args.weight + c0 * args.width, grads.gradHidden, false, false,
                                          args.rows, args.width, count, count, args.width, args.width, 1.0f,
                                          grads.accumulate || c0 > 0 ? 1.0f : 0.0f});
    launchGemm(launch, GemmArgs<float, T>{args.tile, args.hidden, grads.gradWeight + c0 * args.width, true, false,
                                          count, args.width, args.rows, count, args.width, args.width, 1.0f,
                                          grads.accumulate ? 1.0f : 0.0f});
  }
}

// ---- host side ------------------------------------------------------------------------------------

// The CPU backend's message for what the kernels found, `value` read back for a bad input.
// `inputs` in LinearInput order (null where absent).
inline napo_status linearInputError(const char* op, InputPosition where, const napo_tensor* const inputs[6],
                                    double value) {
  static const char* const names[] = {"hidden", "weight", "lse", "entropy", "gradLogprobs", "gradEntropy"};
  return notFiniteError(op, names[where.argument], *inputs[where.argument], where.index, value);
}

}  // namespace napo::cuda
