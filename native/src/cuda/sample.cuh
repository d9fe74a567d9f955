// sample on the GPU: one block per row draws the same token as the CPU backend (docs/ops.md) from
// the logits in a few streaming passes, without sorting the vocabulary.
//
// Every filter keeps the tokens whose z is at least some threshold (top-p and min-p keep
// e = exp(z - max) >= t, and e grows with z), so the work is finding thresholds:
//   1. One pass: max, sum of exp (the log-prob's lse), bad values, each thread's own max.
//   2. top-k: the k-th largest of the threads' maxima bounds the k-th largest z from below (they
//      are k distinct elements); a pass gathers every z above that bound into shared memory, where
//      a bitonic sort gives the exact threshold. For k = 50 over 151,936 columns about 50
//      candidates come back. When too many come back (ties, k above the thread count, top-p over
//      the whole vocabulary) the search narrows a bracket instead: each pass evaluates the count or
//      mass above 15 pivots spread over the bracket's float keys, keeps the sub-bracket that holds
//      the threshold and gathers it once it fits in shared memory (at most 8 passes, fewer in
//      practice).
//   3. top-p on the top-k set: the same search with mass (sum of e) in place of count; when the
//      top-k candidates are already in shared memory it is a walk down them.
//   4. The draw: u = Philox(seed, offset, row), target = u * kept mass, the first kept token in
//      index order whose running mass exceeds target: a scan over the kept candidates when they
//      are all in shared memory, else a block-wide scan over the row, tile after tile.
// Sums that decide the draw are in double so the token matches the CPU's double sums.
#pragma once

#include <cstdint>

#include "../core/philox.h"
#include "device_math.cuh"
#include "kernel_errors.h"

namespace napo::cuda {

// A per-row parameter in device memory: one value for every row, or one per row.
template <typename T>
struct PerRow {
  const T* values;
  int64_t count;
  __device__ __forceinline__ T at(int64_t row) const { return values[count == 1 ? 0 : row]; }
};

template <typename Logit>
struct SampleArgs {
  const Logit* logits;  // [rows, vocab]
  int64_t rows, vocab;
  PerRow<float> temperature;
  PerRow<int32_t> topK;
  PerRow<float> topP;
  PerRow<float> minP;
  uint64_t seed, offset;
  int32_t* tokens;   // [rows]
  float* logprobs;   // [rows]
  KernelErrors* errors;
};

struct Candidate {
  float z;
  int32_t column;
};

struct ByValueDescending {
  __device__ bool operator()(const Candidate& a, const Candidate& b) const {
    return a.z > b.z || (a.z == b.z && a.column < b.column);
  }
};
struct ByColumn {
  __device__ bool operator()(const Candidate& a, const Candidate& b) const { return a.column < b.column; }
};
struct Descending {
  __device__ bool operator()(float a, float b) const { return a > b; }
};

constexpr int kPivots = 15;
constexpr int32_t kNoColumn = 0x7fffffff;

template <int kThreads, int kCapacity>
struct SampleShared {
  Candidate candidates[kCapacity];
  float threadMax[kThreads];
  float pivots[kPivots + 1];        // pivots[0] is the bracket's low end
  double weightAbove[kPivots + 1];  // count or mass of z >= each pivot
  int candidateCount;
  // candidates[] holds every z >= coverLo, sorted by value (+Inf: it holds nothing reliable).
  float coverLo;
  float broadcast;
  int32_t drawn;
  int32_t lastKept;
};

// ---- pass 1: max, sum, and what greedy needs ------------------------------------------------------

struct MaxSum {
  float max, sum;  // sum = sum exp(z - max); NaN once a NaN or +Inf was seen
};

__device__ __forceinline__ MaxSum shuffleXor(MaxSum m, int laneMask) {
  return {__shfl_xor_sync(kFullMask, m.max, laneMask), __shfl_xor_sync(kFullMask, m.sum, laneMask)};
}

struct MergeMaxSum {
  __device__ MaxSum operator()(MaxSum a, MaxSum b) const {
    const float max = fmaxf(a.max, b.max);
    if (max == -INFINITY) return {max, a.sum + b.sum};
    const float sa = a.sum == 0.0f ? 0.0f : a.sum * __expf(a.max - max);
    const float sb = b.sum == 0.0f ? 0.0f : b.sum * __expf(b.max - max);
    return {max, sa + sb};
  }
};

struct Best {
  float value;
  int32_t column;
};

__device__ __forceinline__ Best shuffleXor(Best b, int laneMask) {
  return {__shfl_xor_sync(kFullMask, b.value, laneMask), __shfl_xor_sync(kFullMask, b.column, laneMask)};
}

// The larger value; the lower column on ties (the CPU's argmax keeps the first maximum).
struct MergeBest {
  __device__ Best operator()(Best a, Best b) const {
    return (b.value > a.value || (b.value == a.value && b.column < a.column)) ? b : a;
  }
};

struct RowSummary {
  MaxSum stats;
  Best best;  // greedy rows only
};

template <int kThreads, bool kGreedy, int kCapacity, typename Logit>
__device__ RowSummary summarizeRow(const RowOctets<Logit>& row, float scale, SampleShared<kThreads, kCapacity>& shared) {
  MaxSum m{-INFINITY, 0.0f};
  Best best{-INFINITY, kNoColumn};
  bool bad = false;
  forEachOctet<kThreads, kOctetsInFlight<Logit>>(row, int(threadIdx.x), [&](const Octet& octet) {
    float z[8];
    float octetMax = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      z[j] = octet.x[j] * scale;
      octetMax = fmaxf(octetMax, z[j]);
      bad |= z[j] != z[j];
      if (kGreedy && z[j] > best.value) best = {z[j], int32_t(octet.column + j)};
    }
    if (octetMax > m.max) {
      if (m.sum != 0.0f) m.sum *= __expf(m.max - octetMax);
      m.max = octetMax;
    }
    if (m.max == -INFINITY) return;
#pragma unroll
    for (int j = 0; j < 8; ++j) m.sum += expShifted(z[j] - m.max);
  });
  shared.threadMax[threadIdx.x] = m.max;
  if (bad || m.max == INFINITY) m.sum = NAN;
  RowSummary summary;
  summary.stats = blockReduce<kThreads>(m, MergeMaxSum{}, MaxSum{-INFINITY, 0.0f});
  summary.best = kGreedy ? blockReduce<kThreads>(best, MergeBest{}, Best{-INFINITY, kNoColumn}) : best;
  return summary;
}

template <int kThreads, typename Logit>
__device__ void reportFirstBadZ(const RowOctets<Logit>& row, int64_t rowIndex, float scale, KernelErrors* errors) {
  forEachOctet<kThreads, 1>(row, int(threadIdx.x), [&](const Octet& octet) {
    for (int j = 0; j < 8; ++j) {
      if ((octet.valid >> j & 1u) && !(octet.x[j] * scale < INFINITY)) {
        reportBadLogit(errors, rowIndex, octet.column + j, row.vocab);
        return;
      }
    }
  });
}

// ---- threshold search ---------------------------------------------------------------------------

// What a threshold search looks for: the largest z value s with sum_{z_i >= s} w_i >= goal, with
// w = 1 (count: top-k) or w = e = exp(z - max) (mass: top-p).
struct Objective {
  bool mass;
  double goal;          // count objective: k
  double massFraction;  // mass objective: goal = massFraction * mass(z >= the first low end)
};

__device__ __forceinline__ float nextUp(float value) { return fromOrderedKey(orderedKey(value) + 1u); }

// Appends the octet's z values in [lo, hi) to the candidates, a warp at a time (one shared atomic
// per warp). `full` turns true, uniformly over the warp, once the candidates overflowed.
template <int kThreads, int kCapacity>
__device__ __forceinline__ void gather(const Octet& octet, const float (&z)[8], float lo, float hi, bool& full,
                                       SampleShared<kThreads, kCapacity>& shared) {
  int mine = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) mine += (octet.valid >> j & 1u) && z[j] >= lo && z[j] < hi;
  if (!__any_sync(kFullMask, mine > 0)) return;
  const int lane = int(threadIdx.x) % kWarpThreads;
  int before = mine;  // inclusive scan over the warp, then made exclusive
#pragma unroll
  for (int delta = 1; delta < kWarpThreads; delta *= 2) {
    const int other = __shfl_up_sync(kFullMask, before, delta);
    if (lane >= delta) before += other;
  }
  const int warpTotal = __shfl_sync(kFullMask, before, kWarpThreads - 1);
  before -= mine;
  int base = 0;
  if (lane == 0) base = atomicAdd(&shared.candidateCount, warpTotal);
  base = __shfl_sync(kFullMask, base, 0);
  if (base + warpTotal > kCapacity) full = true;
  int slot = base + before;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if ((octet.valid >> j & 1u) && z[j] >= lo && z[j] < hi) {
      if (slot < kCapacity) shared.candidates[slot] = {z[j], int32_t(octet.column + j)};
      ++slot;
    }
  }
}

// Sums each thread's kPivots + 1 partial weights over the block into shared.weightAbove, in a
// fixed order (deterministic).
template <int kThreads, int kCapacity>
__device__ void reduceWeights(const float (&partial)[kPivots + 1], SampleShared<kThreads, kCapacity>& shared) {
  constexpr int kWarps = kThreads / kWarpThreads;
  __shared__ float warpPartials[kWarps][kPivots + 1];
  const int lane = int(threadIdx.x) % kWarpThreads, warp = int(threadIdx.x) / kWarpThreads;
#pragma unroll
  for (int p = 0; p <= kPivots; ++p) {
    const float total = warpReduce(partial[p], Sum{});
    if (lane == 0) warpPartials[warp][p] = total;
  }
  __syncthreads();
  if (int(threadIdx.x) <= kPivots) {
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w) total += warpPartials[w][threadIdx.x];
    shared.weightAbove[threadIdx.x] = total;
  }
  __syncthreads();
}

// One pass over the row for a bracket [lo, hi) of the search: the weight above each pivot, and the
// candidates inside the bracket (shared.candidateCount may exceed kCapacity: then only some are
// stored).
template <int kThreads, int kCapacity, typename Logit>
__device__ void searchPass(const RowOctets<Logit>& row, float scale, float max, bool mass, float hi,
                           SampleShared<kThreads, kCapacity>& shared) {
  const float lo = shared.pivots[0];
  float partial[kPivots + 1] = {};
  bool full = false;
  forEachOctet<kThreads, 2>(row, int(threadIdx.x), [&](const Octet& octet) {
    float z[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      z[j] = octet.x[j] * scale;
      if (!((octet.valid >> j & 1u) && z[j] >= lo)) continue;
      const float w = mass ? expShifted(z[j] - max) : 1.0f;
#pragma unroll
      for (int p = 0; p <= kPivots; ++p) partial[p] += z[j] >= shared.pivots[p] ? w : 0.0f;
    }
    if (!full) gather(octet, z, lo, hi, full, shared);
  });
  __syncthreads();
  reduceWeights(partial, shared);
}

// Finishes a search whose bracket fits in shared memory: sorts it by value and walks down from
// the weight above the bracket to the goal. Returns the threshold in every thread.
template <int kThreads, int kCapacity>
__device__ float finishInShared(bool mass, double goal, double above, float max,
                                SampleShared<kThreads, kCapacity>& shared) {
  const int count = shared.candidateCount;
  const int padded = nextPowerOfTwo(count);
  for (int i = count + int(threadIdx.x); i < padded; i += kThreads) shared.candidates[i] = {-INFINITY, kNoColumn};
  __syncthreads();
  bitonicSort<kThreads>(shared.candidates, padded, ByValueDescending{});
  if (count == 0) return -INFINITY;  // unreachable: the bracket holds the threshold
  if (!mass) {
    // Each candidate weighs 1: the goal's position is known.
    if (threadIdx.x == 0) {
      const int at = int(goal - above) - 1;
      shared.broadcast = shared.candidates[at < count ? at : count - 1].z;
    }
  } else if (threadIdx.x < kWarpThreads) {
    const int lane = int(threadIdx.x);
    double running = above;
    int found = -1;
    for (int start = 0; start < count && found < 0; start += kWarpThreads) {
      const int i = start + lane;
      double inclusive = i < count ? double(expShifted(shared.candidates[i].z - max)) : 0.0;
#pragma unroll
      for (int delta = 1; delta < kWarpThreads; delta *= 2) {
        const double other = __shfl_up_sync(kFullMask, inclusive, delta);
        if (lane >= delta) inclusive += other;
      }
      const unsigned reached = __ballot_sync(kFullMask, i < count && running + inclusive >= goal);
      if (reached) found = start + __ffs(int(reached)) - 1;
      running += __shfl_sync(kFullMask, inclusive, kWarpThreads - 1);
    }
    // Rounding may leave the walk just short of a goal the pivots reached: the bracket's lowest.
    if (lane == 0) shared.broadcast = shared.candidates[found >= 0 ? found : count - 1].z;
  }
  __syncthreads();
  return shared.broadcast;
}

// The threshold for `objective` given `lo` with weight(z >= lo) >= goal. Leaves the candidates
// sorted by value in shared memory, and shared.coverLo set, when the whole range above the
// threshold fits there.
template <int kThreads, int kCapacity, typename Logit>
__device__ float findThreshold(const RowOctets<Logit>& row, float scale, float max, Objective objective, float lo,
                               SampleShared<kThreads, kCapacity>& shared) {
  const float top = nextUp(max);  // nothing lies at or above it
  float hi = top;
  double above = 0.0;  // weight(z >= hi)
  double goal = objective.goal;
  for (bool first = true;; first = false) {
    const uint32_t keyLo = orderedKey(lo), keyHi = orderedKey(hi);
    if (keyHi - keyLo <= 1u) return lo;  // one float value left: every z in the bracket ties
    if (threadIdx.x <= kPivots) {
      const uint64_t span = keyHi - keyLo;
      shared.pivots[threadIdx.x] = fromOrderedKey(keyLo + uint32_t(span * threadIdx.x / (kPivots + 1)));
    }
    if (threadIdx.x == 0) {
      shared.candidateCount = 0;
      shared.coverLo = INFINITY;
    }
    __syncthreads();
    searchPass(row, scale, max, objective.mass, hi, shared);
    if (first && objective.mass) goal = objective.massFraction * shared.weightAbove[0];
    if (shared.candidateCount <= kCapacity) {
      const float threshold = finishInShared(objective.mass, goal, above, max, shared);
      if (threadIdx.x == 0 && hi == top) shared.coverLo = lo;
      __syncthreads();
      return threshold;
    }
    // Narrow to the sub-bracket that holds the threshold: the highest pivot that still reaches
    // the goal, up to the next one.
    int p = 0;
    while (p < kPivots && shared.weightAbove[p + 1] >= goal) ++p;
    if (p < kPivots) {
      hi = shared.pivots[p + 1];
      above = shared.weightAbove[p + 1];
    }
    lo = shared.pivots[p];
    __syncthreads();
  }
}

// ---- the draw ---------------------------------------------------------------------------------------

struct KeepRule {
  float minZ;  // top-k: z >= minZ
  float minE;  // top-p, min-p: e >= minE (and e > 0 always)
  float max;
  __device__ __forceinline__ float weight(float z) const {
    const float e = expShifted(z - max);
    return (z >= minZ && e >= minE && e > 0.0f) ? e : 0.0f;
  }
};

// Draws from the candidates in shared memory, which hold every kept token: the kept ones are
// sorted to the front in column order, then warp 0 scans their mass.
template <int kThreads, int kCapacity>
__device__ int32_t drawInShared(const KeepRule& keep, float uniform, SampleShared<kThreads, kCapacity>& shared) {
  const int count = shared.candidateCount;
  const int padded = nextPowerOfTwo(count);
  int mine = 0;
  for (int i = int(threadIdx.x); i < padded; i += kThreads) {
    if (i < count && keep.weight(shared.candidates[i].z) > 0.0f) {
      ++mine;
    } else {
      shared.candidates[i] = {-INFINITY, kNoColumn};
    }
  }
  const int kept = blockReduce<kThreads>(mine, Sum{}, 0);
  bitonicSort<kThreads>(shared.candidates, padded, ByColumn{});
  if (threadIdx.x < kWarpThreads) {
    const int lane = int(threadIdx.x);
    double total = 0.0;
    for (int start = 0; start < kept; start += kWarpThreads) {
      const double w = start + lane < kept ? double(keep.weight(shared.candidates[start + lane].z)) : 0.0;
      total += warpReduce(w, Sum{});
    }
    const double target = double(uniform) * total;
    double running = 0.0;
    int found = -1;
    for (int start = 0; start < kept && found < 0; start += kWarpThreads) {
      const int i = start + lane;
      double inclusive = i < kept ? double(keep.weight(shared.candidates[i].z)) : 0.0;
#pragma unroll
      for (int delta = 1; delta < kWarpThreads; delta *= 2) {
        const double other = __shfl_up_sync(kFullMask, inclusive, delta);
        if (lane >= delta) inclusive += other;
      }
      const unsigned crossed = __ballot_sync(kFullMask, i < kept && running + inclusive > target);
      if (crossed) found = start + __ffs(int(crossed)) - 1;
      running += __shfl_sync(kFullMask, inclusive, kWarpThreads - 1);
    }
    // Rounding may leave the target at the very end: the last kept token, as on the CPU.
    if (lane == 0) shared.drawn = shared.candidates[found >= 0 ? found : kept - 1].column;
  }
  __syncthreads();
  return shared.drawn;
}

// The kept mass of an octet, summed in column order.
__device__ __forceinline__ double octetWeight(const Octet& octet, float scale, const KeepRule& keep) {
  double mass = 0.0;
#pragma unroll
  for (int j = 0; j < 8; ++j) mass += (octet.valid >> j & 1u) ? keep.weight(octet.x[j] * scale) : 0.0f;
  return mass;
}

// The drawn token, from the tile whose kept mass passes the target. Every thread whose octet ends
// past the target offers its first token past it; the lowest column wins, which is the crossing
// thread's. Should rounding leave no offer, the tile's last kept token is drawn.
template <int kThreads, int kCapacity>
__device__ int32_t drawInTile(const Octet& octet, float scale, const KeepRule& keep, double before, double target,
                              SampleShared<kThreads, kCapacity>& shared) {
  if (threadIdx.x == 0) {
    shared.drawn = kNoColumn;
    shared.lastKept = -1;
  }
  __syncthreads();
  int32_t offer = -1;
  bool passed = false;
  double at = before;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float w = (octet.valid >> j & 1u) ? keep.weight(octet.x[j] * scale) : 0.0f;
    if (passed || w == 0.0f) continue;
    at += w;
    offer = int32_t(octet.column + j);
    passed = at > target;
  }
  if (passed) atomicMin(&shared.drawn, offer);
  if (offer >= 0) atomicMax(&shared.lastKept, offer);
  __syncthreads();
  return shared.drawn != kNoColumn ? shared.drawn : shared.lastKept;
}

// Draws over the whole row: the kept mass in one pass, then tiles of kThreads octets in index
// order with a block scan each, until the running mass passes the target.
template <int kThreads, int kCapacity, typename Logit>
__device__ int32_t drawFromRow(const RowOctets<Logit>& row, float scale, const KeepRule& keep, float uniform,
                               SampleShared<kThreads, kCapacity>& shared) {
  double mine = 0.0;
  int32_t lastKept = -1;
  forEachOctet<kThreads, kOctetsInFlight<Logit>>(row, int(threadIdx.x), [&](const Octet& octet) {
    float octetMass = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float w = (octet.valid >> j & 1u) ? keep.weight(octet.x[j] * scale) : 0.0f;
      octetMass += w;
      if (w > 0.0f) lastKept = int32_t(octet.column + j);
    }
    mine += octetMass;
  });
  const double target = double(uniform) * blockReduce<kThreads>(mine, Sum{}, 0.0);
  double running = 0.0;  // kept mass before the tile
  for (int64_t tile = 0; tile < row.count; tile += kThreads) {
    const Octet octet = widen(loadOctet(row, tile + int(threadIdx.x)));
    const ScanResult scan = blockExclusiveScan<kThreads>(octetWeight(octet, scale, keep));
    if (running + scan.total > target) return drawInTile(octet, scale, keep, running + scan.before, target, shared);
    running += scan.total;
  }
  // Rounding left the target at the very end: the last kept token, as on the CPU.
  return blockReduce<kThreads>(lastKept, MaxInt{}, int32_t(-1));
}

// ---- the kernel ----------------------------------------------------------------------------------------

template <typename Logit, int kThreads, int kCapacity>
__global__ void __launch_bounds__(kThreads) sampleKernel(SampleArgs<Logit> args) {
  static_assert((kCapacity & (kCapacity - 1)) == 0 && (kThreads & (kThreads - 1)) == 0, "powers of two");
  __shared__ SampleShared<kThreads, kCapacity> shared;
  const int64_t rowIndex = blockIdx.x;
  const Logit* logits = args.logits + rowIndex * args.vocab;
  const RowOctets<Logit> row = rowOctets(logits, args.vocab);
  const float temperature = args.temperature.at(rowIndex);
  const bool greedy = temperature == 0.0f;
  const float scale = greedy ? 1.0f : 1.0f / temperature;

  const RowSummary summary = greedy ? summarizeRow<kThreads, true>(row, scale, shared)
                                    : summarizeRow<kThreads, false>(row, scale, shared);
  const float max = summary.stats.max;
  if (!(summary.stats.sum < INFINITY)) {
    reportFirstBadZ<kThreads>(row, rowIndex, scale, args.errors);
    return;
  }
  if (max == -INFINITY) {
    if (threadIdx.x == 0) reportNoFiniteLogit(args.errors, rowIndex, args.vocab);
    return;
  }
  const float lse = max + logf(summary.stats.sum);
  if (greedy) {
    if (threadIdx.x == 0) {
      args.tokens[rowIndex] = summary.best.column;
      args.logprobs[rowIndex] = summary.best.value - lse;
    }
    return;
  }

  if (threadIdx.x == 0) shared.coverLo = INFINITY;
  __syncthreads();
  KeepRule keep{-INFINITY, 0.0f, max};
  float keptFrom = -INFINITY;  // every kept z is at least this
  const int32_t topK = args.topK.at(rowIndex);
  if (topK > 0 && topK < args.vocab) {
    float lo = -INFINITY;
    if (topK <= kThreads) {
      bitonicSort<kThreads>(shared.threadMax, kThreads, Descending{});
      lo = shared.threadMax[topK - 1];
    }
    keep.minZ = findThreshold(row, scale, max, Objective{false, double(topK), 0.0}, lo, shared);
    keptFrom = keep.minZ;
  }
  const float topP = args.topP.at(rowIndex);
  if (topP < 1.0f) {
    float threshold;
    if (shared.coverLo <= keep.minZ) {
      // The top-k candidates, sorted by value, are all in shared memory: keep those at or above
      // the top-k threshold and walk down them.
      double mass = 0.0;
      int count = 0;
      for (int i = int(threadIdx.x); i < shared.candidateCount; i += kThreads) {
        if (shared.candidates[i].z < keep.minZ) continue;
        mass += expShifted(shared.candidates[i].z - max);
        ++count;
      }
      mass = blockReduce<kThreads>(mass, Sum{}, 0.0);
      count = blockReduce<kThreads>(count, Sum{}, 0);
      if (threadIdx.x == 0) {
        shared.candidateCount = count;
        shared.coverLo = keep.minZ;
      }
      __syncthreads();
      threshold = finishInShared(true, double(topP) * mass, 0.0, max, shared);
    } else {
      threshold = findThreshold(row, scale, max, Objective{true, 0.0, double(topP)}, keep.minZ, shared);
    }
    keep.minE = expShifted(threshold - max);
    keptFrom = threshold;
  }
  const float minP = args.minP.at(rowIndex);
  if (minP > 0.0f) keep.minE = fmaxf(keep.minE, minP);

  const float uniform = philoxUniform(args.seed, args.offset, uint32_t(rowIndex));
  const int32_t token = shared.coverLo <= keptFrom ? drawInShared(keep, uniform, shared)
                                                   : drawFromRow(row, scale, keep, uniform, shared);
  if (threadIdx.x == 0) {
    args.tokens[rowIndex] = token;
    args.logprobs[rowIndex] = widen(logits[token]) * scale - lse;
  }
}

// ---- launch shape ----------------------------------------------------------------------------------------

// Shared memory holds 4,096 candidates (32 KiB): top-k up to a few thousand and most top-p
// brackets finish there.
constexpr int kSampleCapacity = 4096;

template <int kThreads, int kCapacity, typename Launch, typename Logit>
void launchSampleAs(Launch&& launch, const SampleArgs<Logit>& args) {
  launch(sampleKernel<Logit, kThreads, kCapacity>, dim3(unsigned(args.rows)), dim3(kThreads), args);
}

// 256 threads while a row is at most 8 octets a thread, 1024 beyond.
template <typename Launch, typename Logit>
void launchSample(Launch&& launch, const SampleArgs<Logit>& args) {
  if (args.vocab <= 256 * 8 * 8) {
    launchSampleAs<256, kSampleCapacity>(launch, args);
  } else {
    launchSampleAs<1024, kSampleCapacity>(launch, args);
  }
}

}  // namespace napo::cuda
