// What a kernel found wrong with its input, and how the launcher turns it into the CPU backend's
// message (same op, same argument, same index, same words), so an error reads the same on either
// device.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/error.h"
#include "napo/napo.h"

namespace napo::cuda {

// Lives in device memory with every byte set to 0xff before the launch (nothing found). Each field
// keeps the smallest key reported, so the message names the first offender in index order
// whatever order the threads ran in.
struct KernelErrors {
  unsigned long long badLogit;  // row * (vocab + 1) + column of a NaN or +Inf z; column = vocab:
                                // the row has no finite value
  unsigned long long badIndex;  // first out-of-range token, or first non-finite reward
  unsigned long long badInput;  // (argument << kInputIndexBits) | index of the first value of a
                                // validated input that breaks its rule (not finite, a mask not 0/1);
                                // arguments are numbered in the order the CPU backend checks them
};

constexpr int kInputIndexBits = 40;

constexpr unsigned long long kNothingFound = ~0ull;

__device__ inline void reportBadLogit(KernelErrors* errors, int64_t row, int64_t column, int64_t vocab) {
  atomicMin(&errors->badLogit, (unsigned long long)(row * (vocab + 1) + column));
}

__device__ inline void reportNoFiniteLogit(KernelErrors* errors, int64_t row, int64_t vocab) {
  reportBadLogit(errors, row, vocab, vocab);
}

__device__ inline void reportBadIndex(KernelErrors* errors, int64_t index) {
  atomicMin(&errors->badIndex, (unsigned long long)index);
}

__device__ inline void reportBadInput(KernelErrors* errors, int argument, int64_t index) {
  atomicMin(&errors->badInput, ((unsigned long long)argument << kInputIndexBits) | (unsigned long long)index);
}

// ---- host side ------------------------------------------------------------------------------------

struct LogitPosition {
  int64_t row;
  int64_t column;  // -1: the row has no finite value
};

struct InputPosition {
  int argument;
  int64_t index;
};

inline InputPosition decodeBadInput(unsigned long long key) {
  return {int(key >> kInputIndexBits), int64_t(key & ((1ull << kInputIndexBits) - 1))};
}

inline LogitPosition decodeBadLogit(unsigned long long key, int64_t vocab) {
  const int64_t row = int64_t(key / (unsigned long long)(vocab + 1));
  const int64_t column = int64_t(key % (unsigned long long)(vocab + 1));
  return {row, column == vocab ? -1 : column};
}

// `value` is the logit at `where` as stored (widened); `temperature` that of its row.
inline napo_status badLogitError(const char* op, LogitPosition where, float value, float temperature) {
  const long long row = where.row, column = where.column;
  if (where.column < 0) return fail(NAPO_ERR_RANGE, "%s: logits row %lld has no finite value", op, row);
  if (std::isnan(value)) return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] is NaN", op, row, column);
  if (std::isinf(value)) return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] is Infinity", op, row, column);
  return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] = %g overflows at temperature %g", op, row, column, value,
              temperature);
}

inline napo_status badTokenError(const char* op, int64_t index, int32_t token, int64_t vocab) {
  return fail(NAPO_ERR_RANGE, "%s: tokens[%lld] = %d is out of range for vocab %lld", op, (long long)index, token,
              (long long)vocab);
}

inline napo_status badRewardError(int64_t index, float value) {
  return fail(NAPO_ERR_RANGE, "groupAdvantages: rewards[%lld] = %g is not finite", (long long)index, value);
}

}  // namespace napo::cuda
