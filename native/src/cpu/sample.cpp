// sample on the CPU: temperature, top-k, top-p, min-p, then one inverse-CDF draw per row with a
// Philox uniform keyed by (seed, offset, row). No full-vocabulary sort: top-k is a heap (or a
// selection), top-p a mass-weighted quickselect. docs/ops.md has the exact semantics.
#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "../core/philox.h"
#include "../core/thread_pool.h"
#include "kernels.h"
#include "row_softmax.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

struct RowParams {
  float temperature;
  int32_t topK;
  float topP;
  float minP;
};

RowParams rowParams(const napo_sample_options& options, int64_t row) {
  auto pick = [row](const auto& param) { return param.values[param.count == 1 ? 0 : row]; };
  return {pick(options.temperature), pick(options.top_k), pick(options.top_p), pick(options.min_p)};
}

// Per-thread buffers of a whole row, reused across rows.
struct RowBuffers {
  std::vector<float> z, e, scratch;
  explicit RowBuffers(int64_t vocab) : z(size_t(vocab)), e(size_t(vocab)), scratch(size_t(vocab)) {}
};

// The k-th largest of `z`, counted with multiplicity (0 < k < count).
float kthLargest(const float* z, int64_t count, int64_t k, std::vector<float>& scratch) {
  if (k <= 1024) {
    // A min-heap of the k largest so far: most values fail the first comparison.
    std::vector<float> heap(z, z + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<float>());
    for (int64_t i = k; i < count; ++i) {
      if (z[i] > heap.front()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
        heap.back() = z[i];
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
      }
    }
    return heap.front();
  }
  std::copy(z, z + count, scratch.begin());
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.begin() + count, std::greater<float>());
  return scratch[size_t(k - 1)];
}

// The largest t among `values` with sum(values >= t) >= need: the top-p threshold. A quickselect
// that partitions by value and descends on mass, O(n) expected; `values` is reordered.
float massThreshold(float* values, int64_t count, double need) {
  int64_t lo = 0, hi = count;
  double above = 0.0;  // mass of the values known to be above the active range
  while (hi - lo > 32) {
    const float a = values[lo], b = values[(lo + hi) / 2], c = values[hi - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    float* greaterEnd = std::partition(values + lo, values + hi, [pivot](float v) { return v > pivot; });
    float* equalEnd = std::partition(greaterEnd, values + hi, [pivot](float v) { return v == pivot; });
    double greaterMass = 0.0;
    for (float* v = values + lo; v < greaterEnd; ++v) greaterMass += *v;
    if (above + greaterMass >= need) {
      hi = greaterEnd - values;
      continue;
    }
    const double equalMass = double(pivot) * double(equalEnd - greaterEnd);
    if (above + greaterMass + equalMass >= need) return pivot;
    above += greaterMass + equalMass;
    lo = equalEnd - values;
  }
  std::sort(values + lo, values + hi, std::greater<float>());
  for (int64_t i = lo; i < hi; ++i) {
    above += values[i];
    if (above >= need) return values[i];
  }
  return hi > lo ? values[hi - 1] : values[count - 1];
}

// Inverse CDF over kept tokens in index order: block sums first, then a walk inside the block
// where the running sum crosses the target.
int32_t drawKept(const float* z, const float* e, int64_t vocab, float keepZ, float keepE, float uniform) {
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (vocab + kBlock - 1) / kBlock;
  std::vector<float> blockMass(static_cast<size_t>(blocks));
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = std::min(vocab, begin + kBlock);
    float mass = 0.0f;
#pragma omp simd reduction(+ : mass)
    for (int64_t i = begin; i < end; ++i) mass += (z[i] >= keepZ && e[i] >= keepE) ? e[i] : 0.0f;
    blockMass[size_t(b)] = mass;
    total += mass;
  }
  const double target = double(uniform) * total;
  double running = 0.0;
  int32_t lastKept = -1;
  for (int64_t b = 0; b < blocks; ++b) {
    if (blockMass[size_t(b)] == 0.0f) continue;
    if (running + blockMass[size_t(b)] <= target && b + 1 < blocks) {
      running += blockMass[size_t(b)];
      continue;
    }
    const int64_t begin = b * kBlock, end = std::min(vocab, begin + kBlock);
    for (int64_t i = begin; i < end; ++i) {
      if (!(z[i] >= keepZ && e[i] >= keepE) || e[i] == 0.0f) continue;
      running += e[i];
      lastKept = int32_t(i);
      if (running > target) return lastKept;
    }
  }
  return lastKept;  // rounding left the target just above the total
}

template <typename Logit>
int32_t greedyToken(const Logit* row, int64_t vocab) {
  int64_t best = 0;
  float bestValue = widen(row[0]);
  for (int64_t i = 1; i < vocab; ++i) {
    const float value = widen(row[i]);
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return int32_t(best);
}

// Samples one row; returns the bad column (or -2 for a row with no finite value), else -1.
template <typename Logit>
int64_t sampleRow(const Logit* row, int64_t vocab, const RowParams& params, uint64_t seed,
                  uint64_t offset, int64_t rowIndex, RowBuffers& buffers, int32_t* token, float* logprob) {
  const float scale = params.temperature > 0.0f ? 1.0f / params.temperature : 1.0f;
  float* z = buffers.z.data();
  const RowSoftmax stats = rowSoftmax(row, vocab, scale, false, z, true);
  if (stats.badIndex >= 0) return stats.badIndex;
  if (!stats.hasFiniteValue()) return -2;
  const float lse = stats.logSumExp();
  if (params.temperature == 0.0f) {
    *token = greedyToken(row, vocab);
    *logprob = z[*token] - lse;
    return -1;
  }
  float* e = buffers.e.data();
  const float max = stats.max;
#pragma omp simd
  for (int64_t i = 0; i < vocab; ++i) e[i] = expNonPositive(std::max(z[i] - max, -88.0f));

  float keepZ = kNegativeInfinity, keepE = 0.0f;
  if (params.topK > 0 && params.topK < vocab) keepZ = kthLargest(z, vocab, params.topK, buffers.scratch);
  if (params.topP < 1.0f) {
    float* candidates = buffers.scratch.data();
    int64_t count = 0;
    double mass = 0.0;
    for (int64_t i = 0; i < vocab; ++i) {
      if (z[i] >= keepZ) {
        candidates[count++] = e[i];
        mass += e[i];
      }
    }
    keepE = massThreshold(candidates, count, double(params.topP) * mass);
  }
  if (params.minP > 0.0f) keepE = std::max(keepE, params.minP);
  *token = drawKept(z, e, vocab, keepZ, keepE, philoxUniform(seed, offset, uint32_t(rowIndex)));
  *logprob = z[*token] - lse;
  return -1;
}

template <typename Logit>
napo_status sampleRows(const napo_tensor& logits, const napo_sample_options& options, int32_t* tokens,
                       float* logprobs) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const Logit* data = dataAs<const Logit>(logits);
  BadRow bad;
  parallelFor(rows, 1, [&](int64_t begin, int64_t end) {
    RowBuffers buffers(vocab);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t badColumn = sampleRow(data + r * vocab, vocab, rowParams(options, r), options.seed,
                                          options.offset, r, buffers, tokens + r, logprobs + r);
      if (badColumn != -1) bad.report(r, badColumn == -2 ? -1 : badColumn);
    }
  });
  if (bad.row >= 0) {
    return badLogitError<Logit>("sample", logits, bad.row, bad.column, rowParams(options, bad.row).temperature);
  }
  return NAPO_OK;
}

}  // namespace

napo_status sample(const napo_tensor& logits, const napo_sample_options& options, int32_t* tokens,
                   float* logprobs) {
  if (logits.dtype == NAPO_BFLOAT16) return sampleRows<uint16_t>(logits, options, tokens, logprobs);
  return sampleRows<float>(logits, options, tokens, logprobs);
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
