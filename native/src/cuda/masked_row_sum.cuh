// maskedRowSum on the GPU: one block per row sums its masked values in double (a fixed tree, so
// the sum is deterministic), and the backward writes mask * gradSums[row] over a grid of
// elements. The input rules (a mask of 0s and 1s; finite values where it is 1; finite gradSums)
// are checked on the way and the first break reported in the CPU backend's order.
#pragma once

#include <cstdint>

#include "../core/validate.h"
#include "device_math.cuh"
#include "kernel_errors.h"
#include "mask_value.cuh"
#include "napo/napo.h"

namespace napo::cuda {

// The inputs in the order their rules are checked (src/core/op_abi.cpp), for KernelErrors::badInput.
enum MaskedRowSumInput : int { kRowMaskInput, kRowValuesInput, kGradSumsInput };

struct MaskedRowSumArgs {
  const float* values;    // [rows, width]; null for the backward
  const void* mask;       // [rows, width] of maskDtype: float32, int32, uint8 or bool
  napo_dtype maskDtype;
  int64_t rows, width;
  const float* gradSums;  // [rows]; null for the forward
  float* out;             // sums [rows] (forward) or gradValues [rows, width] (backward)
  KernelErrors* errors;
};

__device__ __forceinline__ float rowMaskAt(const MaskedRowSumArgs& args, int64_t i) {
  return maskValueAt(args.mask, args.maskDtype, i);
}

constexpr int kRowSumThreads = 256;
constexpr int kRowGradThreads = 256;

__global__ void __launch_bounds__(kRowSumThreads) maskedRowSumKernel(MaskedRowSumArgs args) {
  const int64_t row = blockIdx.x;
  double sum = 0.0;
  for (int64_t i = row * args.width + threadIdx.x; i < (row + 1) * args.width; i += kRowSumThreads) {
    const float m = rowMaskAt(args, i);
    if (m == 0.0f) continue;
    if (m != 1.0f) reportBadInput(args.errors, kRowMaskInput, i);
    if (!isFinite(args.values[i])) reportBadInput(args.errors, kRowValuesInput, i);
    sum += double(args.values[i]);
  }
  sum = blockReduce<kRowSumThreads>(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) args.out[row] = float(sum);
}

__global__ void __launch_bounds__(kRowGradThreads) maskedRowSumBackwardKernel(MaskedRowSumArgs args) {
  const int64_t count = args.rows * args.width;
  for (int64_t i = int64_t(blockIdx.x) * kRowGradThreads + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * kRowGradThreads) {
    const float m = rowMaskAt(args, i);
    const int64_t row = i / args.width;
    if (m != 0.0f && m != 1.0f) reportBadInput(args.errors, kRowMaskInput, i);
    if (i % args.width == 0 && !isFinite(args.gradSums[row])) reportBadInput(args.errors, kGradSumsInput, row);
    args.out[i] = m != 0.0f ? args.gradSums[row] : 0.0f;
  }
}

template <typename Launch>
void launchMaskedRowSum(Launch&& launch, const MaskedRowSumArgs& args) {
  launch(maskedRowSumKernel, dim3(unsigned(args.rows)), dim3(kRowSumThreads), args);
}

template <typename Launch>
void launchMaskedRowSumBackward(Launch&& launch, const MaskedRowSumArgs& args) {
  const int64_t blocks = (args.rows * args.width + kRowGradThreads - 1) / kRowGradThreads;
  launch(maskedRowSumBackwardKernel, dim3(unsigned(blocks < 4096 ? blocks : 4096)), dim3(kRowGradThreads), args);
}

// ---- host side ------------------------------------------------------------------------------------

// The CPU backend's message for what a kernel found: `inputs` in MaskedRowSumInput order (a null
// where the call has no such input), `value` the offending value as read back from the device.
inline napo_status maskedRowSumInputError(const char* op, InputPosition where, const napo_tensor* const inputs[3],
                                          double value) {
  if (where.argument == kRowMaskInput) return badMaskError(op, *inputs[kRowMaskInput], where.index, value);
  static const char* const names[] = {"mask", "values", "gradSums"};
  return notFiniteError(op, names[where.argument], *inputs[where.argument], where.index, value);
}

}  // namespace napo::cuda
