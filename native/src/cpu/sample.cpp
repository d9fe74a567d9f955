// sample on the CPU, at the speed of one read of the logits. One streaming pass over each row, a
// block of 1,024 logits at a time (scaled into L1, then revisited there), finds the max and its
// first index (greedy), the sum of exp(z - max) for the log-prob, each block's mass (the draw of
// an unfiltered row searches the blocks, then walks one of them) and, for the filters, the few
// tokens that can survive them: those at or above the running k-th largest (top-k), or within a
// distance of the running max (top-p: where the kept mass almost always lies; min-p: its exact
// cut). A filtered draw then works on that short list in index order. When the list would not
// hold every token that matters (top-p over a nearly flat row, ties everywhere), the row takes
// the slow path: the whole row scaled into scratch, a quickselect on mass. docs/ops.md has the
// exact semantics; Philox keying and tie rules are the reference's.
#include <algorithm>
#include <cmath>
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
constexpr int64_t kBlock = 1024;
// Candidates kept by one row's scan: 8 bytes each.
constexpr size_t kCandidateCapacity = 32768;
// top-p's candidates lie within this of the max (e >= ~1e-6): the kept mass of any row that is
// not nearly flat. A row whose top-p set reaches lower takes the slow path.
constexpr float kTopPWindow = 13.8f;

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

struct Candidate {
  int32_t index;
  float z;
};

// Per-thread buffers, reused across rows.
struct RowBuffers {
  std::vector<float> blockMass, blockMax;  // per block: sum of exp(z - blockMax), the running max then
  std::vector<Candidate> candidates;
  std::vector<float> heap;                 // top-k: the k largest so far (a min-heap)
  std::vector<float> weights;              // a filtered list's e values
  std::vector<float> sorted;
  std::vector<float> z, e, scratch;        // the slow path's whole row

  explicit RowBuffers(int64_t vocab)
      : blockMass(size_t((vocab + kBlock - 1) / kBlock)), blockMax(blockMass.size()) {
    candidates.reserve(kCandidateCapacity);
  }
};

// e = exp(z - max), the weight of a token in a draw (block masses use the vectorised exp of
// row_softmax.h, equal to rounding: a walk that overshoots its block goes on into the next).
inline float weightOf(float z, float max) { return expNonPositive(std::max(z - max, -88.0f)); }

// ---- the scan -------------------------------------------------------------------------------

// What a row's scan collects.
enum class Collect { None, TopK, Window };

struct RowScan {
  float max = kNegativeInfinity;
  float sum = 0.0f;             // sum of exp(z - max)
  int64_t argmax = -1;          // first index of the max
  int64_t badIndex = -1;        // first NaN or +Inf z
  bool overflow = false;        // the candidate list could not hold every candidate
};

// z = x * scale for one block into `z` (L1), its max, and whether a value is NaN or +Inf.
template <typename Logit>
float scaleBlock(const Logit* x, int64_t count, float scale, float* z, bool* bad) {
  int64_t i = 0;
  float max = kNegativeInfinity;
  bool nonFinite = false;
#if defined(__AVX512F__)
  const __m512 scaleVector = _mm512_set1_ps(scale);
  const __m512 infinity = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 maxes = _mm512_set1_ps(kNegativeInfinity);
  __mmask16 flags = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512 v = _mm512_mul_ps(load16(x + i), scaleVector);
    _mm512_storeu_ps(z + i, v);
    maxes = _mm512_max_ps(maxes, v);
    flags |= _mm512_cmp_ps_mask(v, infinity, _CMP_NLT_UQ);  // NaN or +Inf
  }
  max = _mm512_reduce_max_ps(maxes);
  nonFinite = flags != 0;
#endif
  for (; i < count; ++i) {
    const float v = widen(x[i]) * scale;
    z[i] = v;
    max = std::max(max, v);
    nonFinite |= !(v < std::numeric_limits<float>::infinity());
  }
  *bad = nonFinite;
  return max;
}

template <typename Logit>
inline void prefetchBlock(const Logit* x, int64_t count) {
  for (int64_t i = 0; i < count; i += 64 / int64_t(sizeof(Logit))) __builtin_prefetch(x + i);
}

// sum of exp(z - max) over one block in L1.
inline float blockSum(const float* z, int64_t count, float max) {
  RowSoftmax stats;
  stats.max = max;
  accumulateChunk(z, count, false, stats);
  return stats.sumExp;
}

// Appends the tokens of a block at or above `threshold` (in index order).
inline void collectAtLeast(const float* z, int64_t start, int64_t count, float threshold, std::vector<Candidate>& out) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 limit = _mm512_set1_ps(threshold);
  for (; i + 16 <= count; i += 16) {
    __mmask16 hits = _mm512_cmp_ps_mask(_mm512_loadu_ps(z + i), limit, _CMP_GE_OQ);
    while (hits) {
      const int lane = __builtin_ctz(hits);
      out.push_back({int32_t(start + i + lane), z[i + lane]});
      hits &= hits - 1;
    }
  }
#endif
  for (; i < count; ++i) {
    if (z[i] >= threshold) out.push_back({int32_t(start + i), z[i]});
  }
}

// top-k's running threshold: the k-th largest value so far, once k values were seen.
struct TopK {
  std::vector<float>& heap;
  size_t k;

  float threshold() const { return heap.size() < k ? kNegativeInfinity : heap.front(); }

  void push(float value) {
    if (heap.size() < k) {
      heap.push_back(value);
      std::push_heap(heap.begin(), heap.end(), std::greater<float>());
    } else if (value > heap.front()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
      heap.back() = value;
      std::push_heap(heap.begin(), heap.end(), std::greater<float>());
    }
  }

  // Most values of a block fall below the k-th largest so far: only those above it reach the heap.
  void offer(const float* z, int64_t count) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= count; i += 16) {
      if (heap.size() < k) {
        for (int lane = 0; lane < 16; ++lane) push(z[i + lane]);
        continue;
      }
      const __m512 values = _mm512_loadu_ps(z + i);
      __mmask16 hits = _mm512_cmp_ps_mask(values, _mm512_set1_ps(heap.front()), _CMP_GT_OQ);
      while (hits) {
        push(z[i + __builtin_ctz(hits)]);
        hits &= hits - 1;
      }
    }
#endif
    for (; i < count; ++i) push(z[i]);
  }
};

// Keeps the candidates at or above `threshold`, in order.
inline void dropBelow(std::vector<Candidate>& candidates, float threshold) {
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [threshold](const Candidate& c) { return c.z < threshold; }),
                   candidates.end());
}

template <typename Logit>
RowScan scanRow(const Logit* row, int64_t vocab, float scale, Collect collect, float window, int32_t topK,
                RowBuffers& buffers) {
  RowScan scan;
  buffers.candidates.clear();
  buffers.heap.clear();
  TopK top{buffers.heap, size_t(std::max(topK, 0))};
  alignas(64) float z[kBlock];
  for (int64_t start = 0, b = 0; start < vocab; start += kBlock, ++b) {
    const int64_t count = std::min(kBlock, vocab - start);
    // The next block is on its way while this one is scanned and revisited in L1.
    prefetchBlock(row + start + kBlock, std::min(kBlock, vocab - start - kBlock));
    bool bad = false;
    const float chunkMax = scaleBlock(row + start, count, scale, z, &bad);
    if (bad) {
      for (int64_t i = 0; i < count; ++i) {
        if (!(z[i] < std::numeric_limits<float>::infinity())) {
          scan.badIndex = start + i;
          return scan;
        }
      }
    }
    if (chunkMax > scan.max) {
      // Strictly greater: the first index of the max wins ties, as greedy's rule says.
      scan.argmax = start + (std::find(z, z + count, chunkMax) - z);
      if (scan.sum > 0.0f) scan.sum *= std::exp(scan.max - chunkMax);
      scan.max = chunkMax;
    }
    const float mass = scan.max > kNegativeInfinity ? blockSum(z, count, scan.max) : 0.0f;
    buffers.blockMass[size_t(b)] = mass;
    buffers.blockMax[size_t(b)] = scan.max;
    scan.sum += mass;
    if (collect == Collect::None || scan.overflow) continue;
    if (collect == Collect::TopK) {
      const float threshold = top.threshold();
      collectAtLeast(z, start, count, threshold, buffers.candidates);
      top.offer(z, count);
      if (buffers.candidates.size() > kCandidateCapacity) dropBelow(buffers.candidates, top.threshold());
    } else {
      collectAtLeast(z, start, count, scan.max - window, buffers.candidates);
      if (buffers.candidates.size() > kCandidateCapacity) dropBelow(buffers.candidates, scan.max - window);
    }
    scan.overflow = buffers.candidates.size() > kCandidateCapacity;
  }
  if (collect == Collect::TopK) dropBelow(buffers.candidates, top.threshold());
  if (collect == Collect::Window) dropBelow(buffers.candidates, scan.max - window);
  return scan;
}

// ---- the draws --------------------------------------------------------------------------------

// The largest t among `weights` with sum(weights >= t) >= need: the top-p threshold (the token
// that crosses it kept, ties with it kept). `weights` is reordered.
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

// Inverse CDF over a list in index order: the first whose running weight exceeds u * total.
int32_t drawFromList(const std::vector<Candidate>& kept, const std::vector<float>& weights, float uniform) {
  double total = 0.0;
  for (float w : weights) total += w;
  const double target = double(uniform) * total;
  double running = 0.0;
  int32_t lastKept = -1;
  for (size_t i = 0; i < kept.size(); ++i) {
    if (weights[i] == 0.0f) continue;
    running += weights[i];
    lastKept = kept[i].index;
    if (running > target) return lastKept;
  }
  return lastKept;  // rounding left the target just above the total
}

// A draw from a filtered row's short list: top-k (ties kept), then top-p over it, then min-p.
// `topPOverAll` is the mass top-p needs when it ranges over the whole row (no top-k).
int32_t drawFiltered(RowBuffers& buffers, const RowParams& params, float max, double topPNeed, float uniform) {
  std::vector<Candidate>& kept = buffers.candidates;
  std::vector<float>& weights = buffers.weights;
  weights.resize(kept.size());
  double listMass = 0.0;
  for (size_t i = 0; i < kept.size(); ++i) {
    weights[i] = weightOf(kept[i].z, max);
    listMass += weights[i];
  }
  float keepE = 0.0f;
  if (params.topP < 1.0f) {
    buffers.sorted.assign(weights.begin(), weights.end());
    const double need = topPNeed > 0.0 ? topPNeed : double(params.topP) * listMass;
    keepE = massThreshold(buffers.sorted.data(), int64_t(buffers.sorted.size()), need);
  }
  if (params.minP > 0.0f) keepE = std::max(keepE, params.minP);
  for (float& w : weights) w = w >= keepE ? w : 0.0f;
  return drawFromList(kept, weights, uniform);
}

// An unfiltered draw: the block whose cumulative mass crosses u * sum, then a walk inside it.
template <typename Logit>
int32_t drawFromBlocks(const Logit* row, int64_t vocab, float scale, float max, const RowBuffers& buffers,
                       float uniform) {
  const int64_t blocks = int64_t(buffers.blockMass.size());
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) {
    total += double(buffers.blockMass[size_t(b)]) * std::exp(double(buffers.blockMax[size_t(b)]) - double(max));
  }
  const double target = double(uniform) * total;
  double running = 0.0;
  int64_t b = 0;
  for (; b + 1 < blocks; ++b) {
    const double mass = double(buffers.blockMass[size_t(b)]) * std::exp(double(buffers.blockMax[size_t(b)]) - double(max));
    if (running + mass > target) break;
    running += mass;
  }
  int32_t lastKept = -1;
  for (int64_t i = b * kBlock; i < vocab; ++i) {
    const float w = weightOf(widen(row[i]) * scale, max);
    if (w == 0.0f) continue;
    running += w;
    lastKept = int32_t(i);
    if (running > target) return lastKept;
  }
  return lastKept;
}

// ---- the slow path: the whole row in scratch -----------------------------------------------------

// The k-th largest of `z`, counted with multiplicity (0 < k < count).
float kthLargest(const float* z, int64_t count, int64_t k, std::vector<float>& scratch) {
  std::copy(z, z + count, scratch.begin());
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.begin() + count, std::greater<float>());
  return scratch[size_t(k - 1)];
}

template <typename Logit>
int32_t drawSlow(const Logit* row, int64_t vocab, float scale, float max, const RowParams& params,
                 RowBuffers& buffers, float uniform) {
  buffers.z.resize(size_t(vocab));
  buffers.e.resize(size_t(vocab));
  buffers.scratch.resize(size_t(vocab));
  float* z = buffers.z.data();
  float* e = buffers.e.data();
#pragma omp simd
  for (int64_t i = 0; i < vocab; ++i) {
    z[i] = widen(row[i]) * scale;
    e[i] = weightOf(z[i], max);
  }
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
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) total += (z[i] >= keepZ && e[i] >= keepE) ? e[i] : 0.0f;
  const double target = double(uniform) * total;
  double running = 0.0;
  int32_t lastKept = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!(z[i] >= keepZ && e[i] >= keepE) || e[i] == 0.0f) continue;
    running += e[i];
    lastKept = int32_t(i);
    if (running > target) return lastKept;
  }
  return lastKept;
}

// ---- one row ------------------------------------------------------------------------------------

// Samples one row; returns the bad column (or -2 for a row with no finite value), else -1.
template <typename Logit>
int64_t sampleRow(const Logit* row, int64_t vocab, const RowParams& params, uint64_t seed, uint64_t offset,
                  int64_t rowIndex, RowBuffers& buffers, int32_t* token, float* logprob) {
  const bool greedy = params.temperature == 0.0f;
  const float scale = greedy ? 1.0f : 1.0f / params.temperature;
  const bool topK = !greedy && params.topK > 0 && params.topK < vocab;
  const bool topP = !greedy && params.topP < 1.0f;
  const bool minP = !greedy && params.minP > 0.0f;
  // The window a top-p or min-p row keeps candidates within; min-p's own cut when it is narrower.
  const float minPWindow = minP ? -std::log(params.minP) + 1e-3f : 0.0f;
  const float window = topP ? std::max(kTopPWindow, minPWindow) : minPWindow;
  const Collect collect = topK ? Collect::TopK : (topP || minP) ? Collect::Window : Collect::None;
  const RowScan scan = scanRow(row, vocab, scale, collect, window, params.topK, buffers);
  if (scan.badIndex >= 0) return scan.badIndex;
  if (scan.max == kNegativeInfinity) return -2;
  const float lse = scan.max + std::log(scan.sum);
  const float uniform = greedy ? 0.0f : philoxUniform(seed, offset, uint32_t(rowIndex));
  if (greedy) {
    *token = int32_t(scan.argmax);
  } else if (collect == Collect::None) {
    *token = drawFromBlocks(row, vocab, scale, scan.max, buffers, uniform);
  } else {
    // top-p over the whole row needs the row's mass; the window must hold all that top-p keeps.
    double listMass = 0.0;
    for (const Candidate& c : buffers.candidates) listMass += weightOf(c.z, scan.max);
    const double need = topP && !topK ? double(params.topP) * double(scan.sum) : 0.0;
    const bool windowHolds = !topP || topK || listMass >= need || (minP && params.minP >= std::exp(-kTopPWindow));
    if (scan.overflow || !windowHolds) {
      *token = drawSlow(row, vocab, scale, scan.max, params, buffers, uniform);
    } else {
      *token = drawFiltered(buffers, params, scan.max, need, uniform);
    }
  }
  *logprob = widen(row[*token]) * scale - lse;
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
