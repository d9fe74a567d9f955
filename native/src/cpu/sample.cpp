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
// top-p alone: the scan sums the mass within each of these distances of the running max, which
// brackets the top-p threshold between two of them; a second pass collects only that band.
constexpr int kBands = 10;
constexpr float kBandEdges[kBands] = {2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.5f, 12.0f, 16.0f};

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
  // top-p's band: its tokens' indices and z (16 of slack for whole-vector stores).
  std::vector<int32_t> bandIndex;
  std::vector<float> bandZ, bandMass;

  explicit RowBuffers(int64_t vocab)
      : blockMass(size_t((vocab + kBlock - 1) / kBlock)), blockMax(blockMass.size()),
        bandIndex(kCandidateCapacity + 16), bandZ(kCandidateCapacity + 16) {
    candidates.reserve(kCandidateCapacity);
  }
};

// e = exp(z - max), the weight of a token in a draw (block masses use the vectorised exp of
// row_softmax.h, equal to rounding: a walk that overshoots its block goes on into the next).
inline float weightOf(float z, float max) { return expNonPositive(std::max(z - max, -88.0f)); }

// ---- the scan -------------------------------------------------------------------------------

// What a row's scan collects: nothing (greedy, temperature only), the running top-k, the tokens
// within a window of the running max (min-p), or the masses of top-p's bands.
enum class Collect { None, TopK, Window, Bands };

struct RowScan {
  float max = kNegativeInfinity;
  float sum = 0.0f;             // sum of exp(z - max)
  int64_t argmax = -1;          // first index of the max
  int64_t badIndex = -1;        // first NaN or +Inf z
  bool overflow = false;        // the candidate list could not hold every candidate
  float bandMass[kBands] = {};  // Bands: sum of exp(z - max) over z >= running max - kBandEdges[j]
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

// sum of exp(z - max) over one block in L1, and the part of it within each band edge of the max.
inline float blockSumAndBands(const float* z, int64_t count, float max, float* bands) {
  int64_t i = 0;
  float sum = 0.0f;
#if defined(__AVX512F__)
  const __m512 maxVector = _mm512_set1_ps(max);
  __m512 sums = _mm512_setzero_ps();
  __m512 partial[kBands];
  __m512 limits[kBands];
  for (int j = 0; j < kBands; ++j) {
    partial[j] = _mm512_setzero_ps();
    limits[j] = _mm512_set1_ps(max - kBandEdges[j]);
  }
  for (; i + 16 <= count; i += 16) {
    const __m512 v = _mm512_loadu_ps(z + i);
    __m512 shifted;
    const __m512 e = expShifted512(v, maxVector, &shifted);
    sums = _mm512_add_ps(sums, e);
    for (int j = 0; j < kBands; ++j) {
      partial[j] = _mm512_mask_add_ps(partial[j], _mm512_cmp_ps_mask(v, limits[j], _CMP_GE_OQ), partial[j], e);
    }
  }
  sum = _mm512_reduce_add_ps(sums);
  for (int j = 0; j < kBands; ++j) bands[j] += _mm512_reduce_add_ps(partial[j]);
#endif
  for (; i < count; ++i) {
    const float e = expNonPositive(std::max(z[i] - max, -88.0f));
    sum += e;
    for (int j = 0; j < kBands; ++j) bands[j] += z[i] >= max - kBandEdges[j] ? e : 0.0f;
  }
  return sum;
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

  // The candidates a block added: the values below the k-th largest so far were never collected.
  void offer(const Candidate* added, size_t count) {
    for (size_t i = 0; i < count; ++i) push(added[i].z);
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
      if (scan.sum > 0.0f) {
        const float rescale = std::exp(scan.max - chunkMax);
        scan.sum *= rescale;
        for (float& band : scan.bandMass) band *= rescale;
      }
      scan.max = chunkMax;
    }
    float mass = 0.0f;
    if (scan.max > kNegativeInfinity) {
      mass = collect == Collect::Bands ? blockSumAndBands(z, count, scan.max, scan.bandMass)
                                       : blockSum(z, count, scan.max);
    }
    buffers.blockMass[size_t(b)] = mass;
    buffers.blockMax[size_t(b)] = scan.max;
    scan.sum += mass;
    if (collect == Collect::None || collect == Collect::Bands || scan.overflow) continue;
    if (collect == Collect::TopK) {
      const size_t before = buffers.candidates.size();
      collectAtLeast(z, start, count, top.threshold(), buffers.candidates);
      top.offer(buffers.candidates.data() + before, buffers.candidates.size() - before);
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

// A draw by blocks: the block whose cumulative kept mass (`masses`, relative to `max`) crosses
// u * total, then a walk inside it over the tokens with z >= keepZ (on into the next blocks when
// rounding leaves the target past the block's end). The cut is on z, not on e: e is monotone in z,
// and a vectorised exp may round differently from the scalar one by an ulp.
template <typename Logit>
int32_t drawFromBlocks(const Logit* row, int64_t vocab, float scale, float max, const std::vector<float>& masses,
                       float keepZ, float uniform) {
  const int64_t blocks = int64_t(masses.size());
  double total = 0.0;
  for (float mass : masses) total += mass;
  const double target = double(uniform) * total;
  double running = 0.0;
  int64_t b = 0;
  for (; b + 1 < blocks; ++b) {
    if (running + masses[size_t(b)] > target) break;
    running += masses[size_t(b)];
  }
  int32_t lastKept = -1;
  for (int64_t i = b * kBlock; i < vocab; ++i) {
    const float z = widen(row[i]) * scale;
    if (!(z >= keepZ)) continue;
    const float w = weightOf(z, max);
    if (w == 0.0f) continue;
    running += w;
    lastKept = int32_t(i);
    if (running > target) return lastKept;
  }
  return lastKept;
}

// top-p alone, second pass: with the row's max known, each block's mass of the tokens surely kept
// (within `lo` of the max; none when lo < 0) and the band [max - hi, max - lo) in bandIndex /
// bandZ. Returns the mass surely kept, or -1 when the band does not fit.
template <typename Logit>
double collectBand(const Logit* row, int64_t vocab, float scale, float max, float lo, float hi, RowBuffers& buffers,
                   size_t* bandSize) {
  alignas(64) float z[kBlock];
  const float keptFrom = lo >= 0.0f ? max - lo : std::numeric_limits<float>::infinity();
  const float bandFrom = max - hi;
  int32_t* bandIndex = buffers.bandIndex.data();
  float* bandZ = buffers.bandZ.data();
  size_t n = 0;
  double above = 0.0;
  for (int64_t start = 0, b = 0; start < vocab; start += kBlock, ++b) {
    const int64_t count = std::min(kBlock, vocab - start);
    prefetchBlock(row + start + kBlock, std::min(kBlock, vocab - start - kBlock));
    if (n + size_t(count) > kCandidateCapacity) return -1.0;
    bool bad = false;
    scaleBlock(row + start, count, scale, z, &bad);
    float kept = 0.0f;
    int64_t i = 0;
#if defined(__AVX512F__)
    // Branch-free: the surely-kept lanes' exp are summed under a mask, the band's lanes compressed.
    const __m512 maxVector = _mm512_set1_ps(max), keptLimit = _mm512_set1_ps(keptFrom);
    const __m512 bandLimit = _mm512_set1_ps(bandFrom);
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512 keptSum = _mm512_setzero_ps();
    for (; i + 16 <= count; i += 16) {
      const __m512 v = _mm512_loadu_ps(z + i);
      const __mmask16 surely = _mm512_cmp_ps_mask(v, keptLimit, _CMP_GE_OQ);
      __m512 shifted;
      keptSum = _mm512_mask_add_ps(keptSum, surely, keptSum, expShifted512(v, maxVector, &shifted));
      const __mmask16 inBand = _mm512_cmp_ps_mask(v, bandLimit, _CMP_GE_OQ) & __mmask16(~surely);
      const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(int32_t(start + i)), lanes);
      _mm512_storeu_ps(bandZ + n, _mm512_maskz_compress_ps(inBand, v));
      _mm512_storeu_si512(bandIndex + n, _mm512_maskz_compress_epi32(inBand, index));
      n += size_t(__builtin_popcount(inBand));
    }
    kept = _mm512_reduce_add_ps(keptSum);
#endif
    for (; i < count; ++i) {
      if (z[i] >= keptFrom) {
        kept += weightOf(z[i], max);
      } else if (z[i] >= bandFrom) {
        bandIndex[n] = int32_t(start + i);
        bandZ[n++] = z[i];
      }
    }
    buffers.blockMass[size_t(b)] = kept;
    above += kept;
  }
  *bandSize = n;
  return above;
}

// The top-p threshold among a band's weights, given the mass `need` still to be reached: the band's
// z range is cut into fine buckets (ranked by z, as e is), the bucket where the mass crosses is sorted.
float bandThreshold(const float* z, const float* weights, size_t n, float zTop, float zBottom, double need,
                    std::vector<float>& sorted) {
  constexpr int kBuckets = 256;
  double mass[kBuckets] = {};
  const float toBucket = float(kBuckets) / std::max(zTop - zBottom, 1e-30f);
  auto bucketOf = [&](float value) { return std::clamp(int((zTop - value) * toBucket), 0, kBuckets - 1); };
  for (size_t i = 0; i < n; ++i) mass[bucketOf(z[i])] += weights[i];
  int crossing = 0;
  double before = 0.0;
  while (crossing < kBuckets - 1 && before + mass[crossing] < need) before += mass[crossing++];
  sorted.clear();
  for (size_t i = 0; i < n; ++i) {
    if (bucketOf(z[i]) == crossing) sorted.push_back(weights[i]);
  }
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (float w : sorted) {
    before += w;
    if (before >= need) return w;
  }
  return sorted.empty() ? 0.0f : sorted.back();
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

// top-p alone: the bands bracket the threshold, a second pass collects the band between them, the
// exact threshold comes from the band's tokens, and the draw goes by blocks. A row whose bands were
// misjudged by the running max (or whose top-p set reaches past the widest band) takes the slow path.
template <typename Logit>
int32_t drawTopP(const Logit* row, int64_t vocab, float scale, const RowScan& scan, double need, RowBuffers& buffers,
                 float uniform) {
  int band = 0;
  while (band < kBands - 1 && double(scan.bandMass[band]) < need) ++band;
  // The scan's band masses count against the running max, so they can overstate a band: when the
  // collected band misses the threshold, the neighbour on its side is collected instead.
  std::vector<float>& weights = buffers.bandMass;
  int lastMove = 0;
  for (int pass = 0; pass < 3 && band >= 0 && band < kBands; ++pass) {
    const float lo = band > 0 ? kBandEdges[band - 1] : -1.0f, hi = kBandEdges[band];
    size_t n = 0;
    const double above = collectBand(row, vocab, scale, scan.max, lo, hi, buffers, &n);
    if (above < 0.0) break;  // the band does not fit
    weights.resize(n);
    float bandTotal = 0.0f;
#pragma omp simd reduction(+ : bandTotal)
    for (size_t i = 0; i < n; ++i) {
      weights[i] = weightOf(buffers.bandZ[i], scan.max);
      bandTotal += weights[i];
    }
    const int move = above >= need ? -1 : above + double(bandTotal) < need ? 1 : 0;
    if (move != 0) {
      if (move == -lastMove) break;  // the threshold sits on an edge the bands cannot split
      lastMove = move;
      band += move;
      continue;
    }
    const float keepE = bandThreshold(buffers.bandZ.data(), weights.data(), n, scan.max - std::max(lo, 0.0f),
                                      scan.max - hi, need - above, buffers.sorted);
    float keepZ = std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) {
      if (weights[i] < keepE) continue;
      buffers.blockMass[size_t(buffers.bandIndex[i] / kBlock)] += weights[i];
      keepZ = std::min(keepZ, buffers.bandZ[i]);
    }
    return drawFromBlocks(row, vocab, scale, scan.max, buffers.blockMass, keepZ, uniform);
  }
  const RowParams slow{1.0f / scale, 0, float(need / double(scan.sum)), 0.0f};
  return drawSlow(row, vocab, scale, scan.max, slow, buffers, uniform);
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
  // min-p keeps a window of the max (its cut, plus a hair for exp's rounding); top-p within it too.
  const float window = minP ? -std::log(params.minP) + 1e-3f : 0.0f;
  const Collect collect = topK ? Collect::TopK : minP ? Collect::Window : topP ? Collect::Bands : Collect::None;
  RowScan scan = scanRow(row, vocab, scale, collect, window, params.topK, buffers);
  if (scan.badIndex >= 0) return scan.badIndex;
  if (scan.max == kNegativeInfinity) return -2;
  const float lse = scan.max + std::log(scan.sum);
  const float uniform = greedy ? 0.0f : philoxUniform(seed, offset, uint32_t(rowIndex));
  // top-p over the whole row (no top-k) keeps the most likely tokens up to this mass.
  const double need = topP && !topK ? double(params.topP) * double(scan.sum) : 0.0;
  if (greedy) {
    *token = int32_t(scan.argmax);
  } else if (collect == Collect::None) {
    for (size_t b = 0; b < buffers.blockMass.size(); ++b) {
      buffers.blockMass[b] *= std::exp(buffers.blockMax[b] - scan.max);
    }
    *token = drawFromBlocks(row, vocab, scale, scan.max, buffers.blockMass, kNegativeInfinity, uniform);
  } else if (collect == Collect::Bands) {
    *token = drawTopP(row, vocab, scale, scan, need, buffers, uniform);
  } else if (scan.overflow) {
    *token = drawSlow(row, vocab, scale, scan.max, params, buffers, uniform);
  } else {
    *token = drawFiltered(buffers, params, scan.max, need, uniform);
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
