// tokenLogprobs and its backward on the GPU: the kernels, and which kernel shape serves which
// vocabulary size (shared by the launcher in logprobs.cu and the host emulation harness).
//
// Both ops are memory-bound: the forward reads each row exactly once with 16-byte loads and keeps
// a running max, sum and entropy moment per thread (an online softmax), merged across the row's
// threads at the end. Short rows get a warp each, long rows a block each, so every thread has a
// dozen or more loads to stream whatever V is.
#pragma once

#include <cstdint>

#include "../core/validate.h"
#include "device_math.cuh"
#include "kernel_errors.h"

namespace napo::cuda {

// Softmax moments of part of a row: max, S = sum exp(z - max) and W = sum exp(z - max) (z - max),
// the CPU backend's quantities, so the max, and with it which logits overflow, are the same. S
// turns NaN once a NaN or +Inf was seen, and merging keeps it NaN, so one test at the end tells a
// bad row.
struct Moments {
  float max, sum, weighted;
};

__device__ __forceinline__ Moments shuffleXor(Moments m, int laneMask) {
  return {__shfl_xor_sync(kFullMask, m.max, laneMask), __shfl_xor_sync(kFullMask, m.sum, laneMask),
          __shfl_xor_sync(kFullMask, m.weighted, laneMask)};
}

// The same moments against a max >= m.max (W picks up S times the shift).
__device__ __forceinline__ Moments rebase(Moments m, float max) {
  if (m.sum == 0.0f) return {max, 0.0f, 0.0f};
  const float shift = m.max - max;
  const float factor = __expf(shift);
  // A factor of 0 drops the old terms; S * shift alone could overflow (huge logits) and make 0 * Inf.
  return {max, m.sum * factor, factor == 0.0f ? 0.0f : factor * (m.weighted + m.sum * shift)};
}

struct MergeMoments {
  __device__ Moments operator()(Moments a, Moments b) const {
    const float max = fmaxf(a.max, b.max);
    if (max == -INFINITY) return {max, a.sum + b.sum, 0.0f};  // no finite value yet; keeps a NaN
    const Moments ra = rebase(a, max), rb = rebase(b, max);
    return {max, ra.sum + rb.sum, ra.weighted + rb.weighted};
  }
};

template <bool kEntropy>
__device__ __forceinline__ void accumulate(Moments& m, bool& bad, const Octet& octet, float scale) {
  float z[8];
  float octetMax = -INFINITY;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    z[j] = octet.x[j] * scale;
    octetMax = fmaxf(octetMax, z[j]);
    bad |= z[j] != z[j];
  }
  if (octetMax > m.max) m = rebase(m, octetMax);
  if (m.max == -INFINITY) return;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float d = z[j] - m.max;
    const float e = __expf(d);
    m.sum += e;
    // A -Inf logit has e = 0; the clamp keeps 0 * -Inf out of W.
    if (kEntropy) m.weighted += e * fmaxf(d, -88.0f);
  }
}

// At least 1024 resident threads per SM (two blocks of the widest shape), so one block's
// reduction and exit overlap with another's streaming.
constexpr int kMinResidentThreads = 1024;

// The moments of the whole row, in every thread of the row's group.
template <int kRowThreads, bool kEntropy, typename Logit>
__device__ __forceinline__ Moments rowMoments(const RowOctets<Logit>& row, int lane, float scale) {
  Moments m{-INFINITY, 0.0f, 0.0f};
  bool bad = false;
  forEachOctet<kRowThreads, kOctetsInFlight<Logit>>(
      row, lane, [&](const Octet& octet) { accumulate<kEntropy>(m, bad, octet, scale); });
  if (bad || m.max == INFINITY) m.sum = NAN;
  return rowReduce<kRowThreads>(m, MergeMoments{}, Moments{-INFINITY, 0.0f, 0.0f});
}

// Cold path of a bad row: reports the first column whose z is NaN or +Inf.
template <int kRowThreads, typename Logit>
__device__ void reportFirstBadLogit(const RowOctets<Logit>& row, int lane, int64_t rowIndex, float scale,
                                    KernelErrors* errors) {
  forEachOctet<kRowThreads, 1>(row, lane, [&](const Octet& octet) {
    for (int j = 0; j < 8; ++j) {
      if ((octet.valid >> j & 1u) && !(octet.x[j] * scale < INFINITY)) {
        reportBadLogit(errors, rowIndex, octet.column + j, row.vocab);
        return;
      }
    }
  });
}

// The row's moments, or false after reporting why the row has none (every lane agrees).
template <int kRowThreads, bool kEntropy, typename Logit>
__device__ __forceinline__ bool goodRowMoments(const RowOctets<Logit>& row, int lane, int64_t rowIndex, float scale,
                                               KernelErrors* errors, Moments& m) {
  m = rowMoments<kRowThreads, kEntropy>(row, lane, scale);
  if (!(m.sum < INFINITY)) {
    reportFirstBadLogit<kRowThreads>(row, lane, rowIndex, scale, errors);
    return false;
  }
  if (m.max == -INFINITY) {
    if (lane == 0) reportNoFiniteLogit(errors, rowIndex, row.vocab);
    return false;
  }
  return true;
}

__device__ __forceinline__ float entropyOf(const Moments& m) { return logf(m.sum) - m.weighted / m.sum; }

// ---- forward ------------------------------------------------------------------------------------

template <typename Logit>
struct LogprobsArgs {
  const Logit* logits;     // [rows, vocab]
  const int32_t* tokens;   // [rows]
  int64_t rows, vocab;
  float scale;             // 1 / temperature
  float* logprobs;         // [rows]
  float* entropy;          // [rows] or null
  float* lse;              // [rows]
  KernelErrors* errors;
};

// kRowThreads threads per row (32: a warp, kRowsPerBlock rows a block; more: the block is one row).
template <typename Logit, int kRowThreads, int kRowsPerBlock, bool kEntropy>
__global__ void __launch_bounds__(kRowThreads * kRowsPerBlock, kMinResidentThreads / (kRowThreads * kRowsPerBlock))
    tokenLogprobsKernel(LogprobsArgs<Logit> args) {
  static_assert(kRowThreads <= kWarpThreads || kRowsPerBlock == 1, "a row spans a warp or the whole block");
  const int lane = int(threadIdx.x) % kRowThreads;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + int64_t(threadIdx.x) / kRowThreads;
  if (row >= args.rows) return;  // whole warps only: rows of a block share no barrier
  const int32_t token = args.tokens[row];
  const bool tokenInRange = token >= 0 && token < args.vocab;
  if (lane == 0 && !tokenInRange) reportBadIndex(args.errors, row);
  const Logit* logits = args.logits + row * args.vocab;
  Moments m;
  if (!goodRowMoments<kRowThreads, kEntropy>(rowOctets(logits, args.vocab), lane, row, args.scale, args.errors, m)) return;
  if (lane != 0) return;
  const float lse = m.max + logf(m.sum);
  args.lse[row] = lse;
  if (kEntropy) args.entropy[row] = entropyOf(m);
  if (tokenInRange) args.logprobs[row] = widen(logits[token]) * args.scale - lse;
}

// ---- backward ------------------------------------------------------------------------------------

// The backward's per-row inputs in the order their finiteness is checked (src/core/op_abi.cpp), for
// KernelErrors::badInput.
enum LogprobsBackwardInput : int { kLseInput, kEntropyInput, kGradLogprobsInput, kGradEntropyInput };

template <typename Logit>
struct LogprobsBackwardArgs {
  const Logit* logits;        // [rows, vocab]
  const int32_t* tokens;      // [rows]
  const float* lse;           // [rows]
  const float* entropy;       // [rows]; null: recomputed when gradEntropy is given
  const float* gradLogprobs;  // [rows]
  const float* gradEntropy;   // [rows] or null
  int64_t rows, vocab;
  float scale;
  Logit* gradLogits;          // [rows, vocab]; may be `logits` itself
  KernelErrors* errors;
};

// The value a float takes once stored as a Logit and read back.
template <typename Logit>
__device__ __forceinline__ float asStored(float value) {
  if constexpr (sizeof(Logit) == 2) {
    return widen(roundToBf16(value));
  } else {
    return value;
  }
}

// dz_i = g_lp (onehot_i - p_i) - g_ent p_i (z_i - sum p z); dlogits = dz / T. Each element is read
// and then written by the same thread, so the gradient may overwrite the logits; with the entropy
// recomputed, the whole row is read (and merged behind a barrier) before the first write.
template <typename Logit, int kRowThreads, int kRowsPerBlock, bool kRecomputeEntropy>
__global__ void __launch_bounds__(kRowThreads * kRowsPerBlock, kMinResidentThreads / (kRowThreads * kRowsPerBlock))
    tokenLogprobsBackwardKernel(LogprobsBackwardArgs<Logit> args) {
  static_assert(kRowThreads <= kWarpThreads || kRowsPerBlock == 1, "a row spans a warp or the whole block");
  const int lane = int(threadIdx.x) % kRowThreads;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + int64_t(threadIdx.x) / kRowThreads;
  if (row >= args.rows) return;
  const int32_t token = args.tokens[row];
  if (token < 0 || token >= args.vocab) {
    if (lane == 0) reportBadIndex(args.errors, row);
    return;
  }
  const Logit* logits = args.logits + row * args.vocab;
  Logit* grad = args.gradLogits + row * args.vocab;
  const RowOctets<Logit> octets = rowOctets(logits, args.vocab);
  const float lse = args.lse[row], gradLp = args.gradLogprobs[row], scale = args.scale;
  const float gradEnt = args.gradEntropy ? args.gradEntropy[row] : 0.0f;
  if (lane == 0) {
    if (!isFinite(lse)) reportBadInput(args.errors, kLseInput, row);
    if (args.entropy && !isFinite(args.entropy[row])) reportBadInput(args.errors, kEntropyInput, row);
    if (!isFinite(gradLp)) reportBadInput(args.errors, kGradLogprobsInput, row);
    if (args.gradEntropy && !isFinite(gradEnt)) reportBadInput(args.errors, kGradEntropyInput, row);
  }
  float meanZ = 0.0f;  // sum p z = lse - H
  if (args.gradEntropy) {
    float entropy;
    if constexpr (kRecomputeEntropy) {
      Moments m;
      if (!goodRowMoments<kRowThreads, true>(octets, lane, row, scale, args.errors, m)) return;
      entropy = entropyOf(m);
    } else {
      entropy = args.entropy[row];
    }
    meanZ = lse - entropy;
  }
  const bool sameLead = reinterpret_cast<uintptr_t>(grad) % 16 == reinterpret_cast<uintptr_t>(logits) % 16;
  forEachOctet<kRowThreads, kOctetsInFlight<Logit>>(octets, lane, [&](const Octet& octet) {
    float out[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float z = octet.x[j] * scale;
      const float p = expShifted(z - lse);
      const float centred = fmaxf(z, -1e30f) - meanZ;  // p = 0 for -Inf logits; keeps 0 * -Inf out
      out[j] = (-gradLp * p - gradEnt * p * centred) * scale;
      // The one-hot term is added to the stored value, as the CPU backend adds it after the row.
      if (octet.column + j == token) out[j] = asStored<Logit>(out[j]) + gradLp * scale;
      if ((octet.valid >> j & 1u) && !(z < INFINITY)) {
        // NaN or +Inf: reported, and left in place so an in-place call's message can quote it.
        reportBadLogit(args.errors, row, octet.column + j, args.vocab);
        out[j] = octet.x[j];
      }
    }
    storeOctet(grad, sameLead, octet, out);
  });
}

// ---- launch shapes ----------------------------------------------------------------------------------

template <int kThreads, int kRows>
struct RowShape {
  static constexpr int kRowThreads = kThreads;
  static constexpr int kRowsPerBlock = kRows;
};

// A warp per row up to 4K columns (16 octets a lane), then a block per row: 256 threads up to
// 32K columns, 512 beyond (151,936 columns: 37 octets a thread).
template <typename Visit>
void visitRowShape(int64_t vocab, Visit&& visit) {
  if (vocab <= 4096) {
    visit(RowShape<32, 8>{});
  } else if (vocab <= 32768) {
    visit(RowShape<256, 1>{});
  } else {
    visit(RowShape<512, 1>{});
  }
}

template <typename Shape>
dim3 rowGrid(int64_t rows) {
  return dim3(unsigned((rows + Shape::kRowsPerBlock - 1) / Shape::kRowsPerBlock));
}

template <typename Shape>
dim3 rowBlock() {
  return dim3(unsigned(Shape::kRowThreads * Shape::kRowsPerBlock));
}

// `launch(kernel, grid, block, args)` enqueues a kernel: on a stream in logprobs.cu, under the
// emulation in the harness.
template <typename Shape, typename Launch, typename Logit>
void launchTokenLogprobsAs(Shape, Launch&& launch, const LogprobsArgs<Logit>& args) {
  constexpr int kThreads = Shape::kRowThreads, kRows = Shape::kRowsPerBlock;
  if (args.entropy) {
    launch(tokenLogprobsKernel<Logit, kThreads, kRows, true>, rowGrid<Shape>(args.rows), rowBlock<Shape>(), args);
  } else {
    launch(tokenLogprobsKernel<Logit, kThreads, kRows, false>, rowGrid<Shape>(args.rows), rowBlock<Shape>(), args);
  }
}

template <typename Launch, typename Logit>
void launchTokenLogprobs(Launch&& launch, const LogprobsArgs<Logit>& args) {
  visitRowShape(args.vocab, [&](auto shape) { launchTokenLogprobsAs(shape, launch, args); });
}

template <typename Shape, typename Launch, typename Logit>
void launchTokenLogprobsBackwardAs(Shape, Launch&& launch, const LogprobsBackwardArgs<Logit>& args) {
  constexpr int kThreads = Shape::kRowThreads, kRows = Shape::kRowsPerBlock;
  if (args.gradEntropy && !args.entropy) {
    launch(tokenLogprobsBackwardKernel<Logit, kThreads, kRows, true>, rowGrid<Shape>(args.rows), rowBlock<Shape>(),
           args);
  } else {
    launch(tokenLogprobsBackwardKernel<Logit, kThreads, kRows, false>, rowGrid<Shape>(args.rows), rowBlock<Shape>(),
           args);
  }
}

template <typename Launch, typename Logit>
void launchTokenLogprobsBackward(Launch&& launch, const LogprobsBackwardArgs<Logit>& args) {
  visitRowShape(args.vocab, [&](auto shape) { launchTokenLogprobsBackwardAs(shape, launch, args); });
}

// ---- host side ------------------------------------------------------------------------------------

// The CPU backend's message for a backward input the kernel found not finite: `inputs` in
// LogprobsBackwardInput order (null where absent), `value` as read back.
inline napo_status backwardInputError(InputPosition where, const napo_tensor* const inputs[4], double value) {
  static const char* const names[] = {"lse", "entropy", "gradLogprobs", "gradEntropy"};
  return notFiniteError("tokenLogprobsBackward", names[where.argument], *inputs[where.argument], where.index, value);
}

}  // namespace napo::cuda
