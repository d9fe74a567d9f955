// One streaming pass over a row of logits: running max, sum of exp and the entropy moment, with
// NaN/+Inf detection. Shared by tokenLogprobs and sample; the row is read from memory once and
// each chunk is revisited only while it is still in L1.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../core/error.h"
#include "../core/math.h"
#include "../core/tensor.h"
#include "isa.h"
#include "simd_exp.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

struct RowSoftmax {
  float max = -std::numeric_limits<float>::infinity();
  float sumExp = 0.0f;      // S = sum exp(z - max)
  float weighted = 0.0f;    // W = sum exp(z - max) * (z - max)
  int64_t badIndex = -1;    // first NaN or +Inf logit, -1 when none

  float logSumExp() const { return max + std::log(sumExp); }
  // H = log S - W / S.
  float entropy() const { return std::log(sumExp) - weighted / sumExp; }
  bool hasFiniteValue() const { return max > -std::numeric_limits<float>::infinity(); }
};

inline float widen(float value) { return value; }
inline float widen(uint16_t bits) { return bf16ToFloat(bits); }

constexpr int64_t kRowChunk = 2048;

// Writes z = x * scale for one chunk into `z` and returns the chunk's max; `bad` is set when a
// value is NaN or +Inf.
template <typename Logit>
inline float scaleChunk(const Logit* x, int64_t count, float scale, float* z, int& bad) {
  float chunkMax = -std::numeric_limits<float>::infinity();
  int chunkBad = 0;
#pragma omp simd reduction(max : chunkMax) reduction(| : chunkBad)
  for (int64_t i = 0; i < count; ++i) {
    const float value = widen(x[i]) * scale;
    z[i] = value;
    chunkMax = std::max(chunkMax, value);
    chunkBad |= value < std::numeric_limits<float>::infinity() ? 0 : 1;
  }
  bad |= chunkBad;
  return chunkMax;
}

// Adds one chunk's exp(z - max) (and the entropy moment when asked) to `stats`.
inline void accumulateChunk(const float* z, int64_t count, bool withEntropy, RowSoftmax& stats) {
  float sumExp = 0.0f, weighted = 0.0f;
  const float max = stats.max;
  int64_t i = 0;
#if defined(__AVX512F__)
  // Two independent accumulators hide the latency of the adds.
  const __m512 maxVector = _mm512_set1_ps(max);
  __m512 sums[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  __m512 moments[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  for (; i + 32 <= count; i += 32) {
    for (int lane = 0; lane < 2; ++lane) {
      __m512 shifted;
      const __m512 e = expShifted512(_mm512_loadu_ps(z + i + 16 * lane), maxVector, &shifted);
      sums[lane] = _mm512_add_ps(sums[lane], e);
      if (withEntropy) moments[lane] = _mm512_fmadd_ps(e, shifted, moments[lane]);
    }
  }
  sumExp = _mm512_reduce_add_ps(_mm512_add_ps(sums[0], sums[1]));
  weighted = _mm512_reduce_add_ps(_mm512_add_ps(moments[0], moments[1]));
#endif
  // The tail (and the whole chunk without AVX-512): the portable exp, which GCC vectorises.
  const float* rest = z + i;
  const int64_t restCount = count - i;
  float restSum = 0.0f, restWeighted = 0.0f;
  if (withEntropy) {
#pragma omp simd reduction(+ : restSum, restWeighted)
    for (int64_t j = 0; j < restCount; ++j) {
      // Clamping keeps -Inf logits out of the product: their e is 0, and 0 * -88 is 0, not NaN.
      const float shifted = std::max(rest[j] - max, -88.0f);
      const float e = expNonPositive(shifted);
      restSum += e;
      restWeighted += e * shifted;
    }
  } else {
#pragma omp simd reduction(+ : restSum)
    for (int64_t j = 0; j < restCount; ++j) restSum += expNonPositive(std::max(rest[j] - max, -88.0f));
  }
  stats.sumExp += sumExp + restSum;
  stats.weighted += weighted + restWeighted;
}

// The max of z[0, count) and whether any value is not finite (NaN or +-Inf), in one pass: what a
// chunk of linear logits needs before it is folded in (the plain loop does not vectorise: GCC keeps
// float max reductions scalar without -ffinite-math-only).
inline float finiteMax(const float* z, int64_t count, bool* nonFinite) {
  int64_t i = 0;
  float max = -std::numeric_limits<float>::infinity();
  bool bad = false;
#if defined(__AVX512F__)
  const __m512 infinity = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  __m512 maxes = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __mmask16 notFinite = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512 v = _mm512_loadu_ps(z + i);
    maxes = _mm512_max_ps(maxes, v);
    notFinite |= _mm512_cmp_ps_mask(_mm512_and_ps(v, magnitude), infinity, _CMP_NLT_UQ);
  }
  max = _mm512_reduce_max_ps(maxes);
  bad = notFinite != 0;
#elif defined(__AVX2__)
  const __m256 infinity = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 maxes = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 notFinite = _mm256_setzero_ps();
  for (; i + 8 <= count; i += 8) {
    const __m256 v = _mm256_loadu_ps(z + i);
    maxes = _mm256_max_ps(maxes, v);
    notFinite = _mm256_or_ps(notFinite, _mm256_cmp_ps(_mm256_and_ps(v, magnitude), infinity, _CMP_NLT_UQ));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, maxes);
  for (float lane : lanes) max = std::max(max, lane);
  bad = _mm256_movemask_ps(notFinite) != 0;
#endif
  for (; i < count; ++i) {
    max = std::max(max, z[i]);
    bad |= !(std::fabs(z[i]) < std::numeric_limits<float>::infinity());
  }
  *nonFinite = bad;
  return max;
}

// Rescales the running sums when the max rises from stats.max to newMax.
inline void raiseMax(float newMax, RowSoftmax& stats) {
  if (stats.sumExp > 0.0f) {
    const float shift = stats.max - newMax;  // < 0
    const float factor = std::exp(shift);
    stats.weighted = factor * (stats.weighted + stats.sumExp * shift);
    stats.sumExp *= factor;
  }
  stats.max = newMax;
}

#if defined(__AVX512F__)
// The same pass without writing z anywhere: each chunk is read twice, the second time from L1,
// instead of being stored and reloaded. What tokenLogprobs runs on AVX-512 machines.
template <typename Logit>
RowSoftmax rowSoftmaxNoStore(const Logit* row, int64_t vocab, float scale, bool withEntropy) {
  RowSoftmax stats;
  const __m512 scaleVector = _mm512_set1_ps(scale);
  const __m512 infinity = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  const int64_t vectorEnd = vocab - vocab % 16;
  for (int64_t start = 0; start < vocab; start += kRowChunk) {
    const int64_t end = std::min(vocab, start + kRowChunk), vectorStop = std::min(end, vectorEnd);
    __m512 chunkMax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __mmask16 bad = 0;
    for (int64_t i = start; i < vectorStop; i += 16) {
      const __m512 z = _mm512_mul_ps(load16(row + i), scaleVector);
      chunkMax = _mm512_max_ps(chunkMax, z);
      bad |= _mm512_cmp_ps_mask(z, infinity, _CMP_NLT_UQ);  // NaN or +Inf
    }
    float maxValue = _mm512_reduce_max_ps(chunkMax);
    bool tailBad = false;
    for (int64_t i = vectorStop; i < end; ++i) {
      const float z = widen(row[i]) * scale;
      maxValue = std::max(maxValue, z);
      tailBad |= !(z < std::numeric_limits<float>::infinity());
    }
    if (bad || tailBad) {
      for (int64_t i = start; i < end; ++i) {
        if (!(widen(row[i]) * scale < std::numeric_limits<float>::infinity())) {
          stats.badIndex = i;
          return stats;
        }
      }
    }
    if (maxValue > stats.max) raiseMax(maxValue, stats);
    if (!stats.hasFiniteValue()) continue;
    const __m512 maxVector = _mm512_set1_ps(stats.max);
    __m512 sums = _mm512_setzero_ps(), moments = _mm512_setzero_ps();
    for (int64_t i = start; i < vectorStop; i += 16) {
      __m512 shifted;
      const __m512 e = expShifted512(_mm512_mul_ps(load16(row + i), scaleVector), maxVector, &shifted);
      sums = _mm512_add_ps(sums, e);
      if (withEntropy) moments = _mm512_fmadd_ps(e, shifted, moments);
    }
    float sumExp = _mm512_reduce_add_ps(sums), weighted = _mm512_reduce_add_ps(moments);
    for (int64_t i = vectorStop; i < end; ++i) {
      const float shifted = std::max(widen(row[i]) * scale - stats.max, -88.0f);
      const float e = expNonPositive(shifted);
      sumExp += e;
      weighted += e * shifted;
    }
    stats.sumExp += sumExp;
    stats.weighted += withEntropy ? weighted : 0.0f;
  }
  return stats;
}
#endif

// The single pass: for each chunk, scale into `scratch`, then accumulate. `scratch` holds
// kRowChunk floats, or the whole row (`keepRow`) for callers that revisit z afterwards.
template <typename Logit>
RowSoftmax rowSoftmax(const Logit* row, int64_t vocab, float scale, bool withEntropy, float* scratch,
                      bool keepRow = false) {
#if defined(__AVX512F__)
  if (!keepRow) return rowSoftmaxNoStore(row, vocab, scale, withEntropy);
#endif
  RowSoftmax stats;
  int bad = 0;
  for (int64_t start = 0; start < vocab; start += kRowChunk) {
    const int64_t count = std::min(kRowChunk, vocab - start);
    float* z = keepRow ? scratch + start : scratch;
    const float chunkMax = scaleChunk(row + start, count, scale, z, bad);
    if (bad) {
      for (int64_t i = 0; i < count; ++i) {
        if (!(z[i] < std::numeric_limits<float>::infinity())) {
          stats.badIndex = start + i;
          return stats;
        }
      }
    }
    if (chunkMax > stats.max) raiseMax(chunkMax, stats);
    if (stats.hasFiniteValue()) accumulateChunk(z, count, withEntropy, stats);
  }
  return stats;
}

// Rows are independent; a few rows per task keeps scheduling overhead small for short rows.
inline int64_t rowGrain(int64_t vocab) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(vocab, 1)); }

// Reports the first bad row (lowest index) so the message does not depend on the thread count.
struct BadRow {
  std::atomic<int64_t> row{-1};
  std::atomic<int64_t> column{-1};
  std::mutex mutex;
  void report(int64_t r, int64_t c) {
    std::lock_guard<std::mutex> lock(mutex);
    if (row < 0 || r < row) {
      row = r;
      column = c;
    }
  }
};

template <typename Logit>
inline napo_status badLogitError(const char* op, const napo_tensor& logits, int64_t row, int64_t column,
                          float temperature) {
  if (column < 0) {
    return fail(NAPO_ERR_RANGE, "%s: logits row %lld has no finite value", op, (long long)row);
  }
  const float value = widen(dataAs<const Logit>(logits)[row * logits.shape[1] + column]);
  if (std::isnan(value)) {
    return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] is NaN", op, (long long)row, (long long)column);
  }
  if (std::isinf(value)) {
    return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] is Infinity", op, (long long)row, (long long)column);
  }
  return fail(NAPO_ERR_RANGE, "%s: logits[%lld, %lld] = %g overflows at temperature %g", op,
              (long long)row, (long long)column, value, temperature);
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
