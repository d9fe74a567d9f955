// Causal grouped-query attention on the GPU, the CPU twin's semantics (src/cpu/attention.cpp):
// softmax(q k^T / sqrt(hd)) v as transformers' eager attention with repeat_kv, one kernel for
// training and for decoding on the KV cache (KvLayout), only each query's log-sum-exp kept, and a
// backward that recomputes the probabilities from it. Nothing of size [T, T] exists at any time.
//
// Tiling: a block of 8 warps, a warp per query (forward, dq) or per key (dk, dv), a lane per 32nd
// column of the head (head dims up to kAttentionMaxHeadDim). The other side streams through
// shared memory in tiles of 32 positions, read once per block by its 8 warps; each score is a
// warp-wide dot product, and the forward's softmax is online (running max and sum, rescaled as
// FlashAttention does). dq and dk / dv are separate kernels so every gradient element has one
// writer: no atomics, and the same result on every run.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace napo::cuda {

constexpr int kAttentionWarps = 8;
constexpr int kAttentionThreads = kAttentionWarps * kWarpThreads;
constexpr int kAttentionTile = 32;
constexpr int kAttentionMaxHeadDim = 128;
constexpr int kLaneColumns = kAttentionMaxHeadDim / kWarpThreads;

struct AttentionArgs {
  int64_t batch, queries, heads, kvHeads, headDim;
  const int32_t* start;  // [batch], device memory; the backward reads none (training: 0)
  const int32_t* count;  // [batch], device memory
  const float* q;
  int64_t qStride;
  const float* k;
  const float* v;
  int64_t kvBatchStride, kvPositionStride;
  float* out;  // written by the forward, read by the backward
  int64_t outStride;
  float* lse;        // [batch, heads, queries]; the forward may leave it null
  // backward only
  const float* dout;
  float* dq;
  float* dk;
  float* dv;
};

// A lane's columns of a head vector (zeros past headDim).
struct LaneVector {
  float x[kLaneColumns];
};

__device__ __forceinline__ LaneVector loadLaneVector(const float* head, int64_t headDim) {
  LaneVector vector;
  const int lane = int(threadIdx.x) % kWarpThreads;
#pragma unroll
  for (int c = 0; c < kLaneColumns; ++c) {
    const int64_t column = c * kWarpThreads + lane;
    vector.x[c] = column < headDim ? head[column] : 0.0f;
  }
  return vector;
}

__device__ __forceinline__ void storeLaneVector(float* head, int64_t headDim, const LaneVector& vector, float scale) {
  const int lane = int(threadIdx.x) % kWarpThreads;
#pragma unroll
  for (int c = 0; c < kLaneColumns; ++c) {
    const int64_t column = c * kWarpThreads + lane;
    if (column < headDim) head[column] = vector.x[c] * scale;
  }
}

// The dot product of a lane-held vector with a row of a shared tile, summed over the warp.
__device__ __forceinline__ float warpDot(const LaneVector& a, const float* row) {
  const int lane = int(threadIdx.x) % kWarpThreads;
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < kLaneColumns; ++c) sum += a.x[c] * row[c * kWarpThreads + lane];
  return warpReduce(sum, Sum{});
}

__device__ __forceinline__ void addScaledRow(LaneVector& into, float scale, const float* row) {
  const int lane = int(threadIdx.x) % kWarpThreads;
#pragma unroll
  for (int c = 0; c < kLaneColumns; ++c) into.x[c] += scale * row[c * kWarpThreads + lane];
}

// Copies positions [first, first + 32) of one kv head (those <= last) into tiles [32][max head
// dim]; positions past `last` are left as they were (never read).
__device__ __forceinline__ void loadKvTile(const AttentionArgs& a, const float* keys, const float* values, int64_t first,
                                           int64_t last, float (*keyTile)[kAttentionMaxHeadDim],
                                           float (*valueTile)[kAttentionMaxHeadDim]) {
  for (int64_t e = threadIdx.x; e < kAttentionTile * a.headDim; e += kAttentionThreads) {
    const int64_t slot = e / a.headDim, column = e % a.headDim, position = first + slot;
    if (position > last) continue;
    keyTile[slot][column] = keys[position * a.kvPositionStride + column];
    valueTile[slot][column] = values[position * a.kvPositionStride + column];
  }
}

// grid (query tiles of 8, heads, batch): warp w takes query 8 * blockIdx.x + w of head blockIdx.y.
static __global__ void __launch_bounds__(kAttentionThreads) attentionForwardKernel(AttentionArgs a) {
  __shared__ float keyTile[kAttentionTile][kAttentionMaxHeadDim];
  __shared__ float valueTile[kAttentionTile][kAttentionMaxHeadDim];
  const int64_t b = blockIdx.z, h = blockIdx.y, first = int64_t(blockIdx.x) * kAttentionWarps;
  const int64_t i = first + int(threadIdx.x) / kWarpThreads;
  const int64_t start = a.start[b], count = a.count[b] < a.queries ? a.count[b] : a.queries;
  const bool active = start >= 0 && i < count;
  const int64_t blockQueries = count - first < kAttentionWarps ? count - first : kAttentionWarps;
  // The block's last key position: that of its last active query.
  const int64_t last = start >= 0 && blockQueries > 0 ? start + first + blockQueries - 1 : -1;
  const int64_t kvAt = b * a.kvBatchStride + (h / (a.heads / a.kvHeads)) * a.headDim;
  const int64_t row = b * a.queries + i;
  const float scale = 1.0f / sqrtf(float(a.headDim));

  LaneVector query = {}, acc = {};
  if (active) query = loadLaneVector(a.q + row * a.qStride + h * a.headDim, a.headDim);
  float runningMax = -INFINITY, runningSum = 0.0f;
  for (int64_t tile = 0; tile <= last; tile += kAttentionTile) {
    loadKvTile(a, a.k + kvAt, a.v + kvAt, tile, last, keyTile, valueTile);
    __syncthreads();
    for (int slot = 0; active && slot < kAttentionTile && tile + slot <= start + i; ++slot) {
      const float score = warpDot(query, keyTile[slot]) * scale;
      const float nextMax = fmaxf(runningMax, score);
      const float rescale = expf(runningMax - nextMax), weight = expf(score - nextMax);
      runningSum = runningSum * rescale + weight;
#pragma unroll
      for (int c = 0; c < kLaneColumns; ++c) acc.x[c] *= rescale;
      addScaledRow(acc, weight, valueTile[slot]);
      runningMax = nextMax;
    }
    __syncthreads();
  }
  if (i >= a.queries) return;
  storeLaneVector(a.out + row * a.outStride + h * a.headDim, a.headDim, acc,
                  active ? 1.0f / runningSum : 0.0f);
  if (a.lse && int(threadIdx.x) % kWarpThreads == 0) {
    a.lse[(b * a.heads + h) * a.queries + i] = active ? runningMax + logf(runningSum) : 0.0f;
  }
}

// grid (query tiles of 8, heads, batch): warp w owns dq of query 8 * blockIdx.x + w.
static __global__ void __launch_bounds__(kAttentionThreads) attentionQueryGradKernel(AttentionArgs a) {
  __shared__ float keyTile[kAttentionTile][kAttentionMaxHeadDim];
  __shared__ float valueTile[kAttentionTile][kAttentionMaxHeadDim];
  const int64_t b = blockIdx.z, h = blockIdx.y, first = int64_t(blockIdx.x) * kAttentionWarps;
  const int64_t i = first + int(threadIdx.x) / kWarpThreads;
  const int64_t count = a.count[b] < a.queries ? a.count[b] : a.queries;
  const bool active = i < count;
  const int64_t last = (count < first + kAttentionWarps ? count : first + kAttentionWarps) - 1;
  const int64_t kvAt = b * a.kvBatchStride + (h / (a.heads / a.kvHeads)) * a.headDim;
  const int64_t row = b * a.queries + i, headAt = h * a.headDim;
  const float scale = 1.0f / sqrtf(float(a.headDim));

  LaneVector query = {}, gradOut = {}, gradQuery = {};
  float weighted = 0.0f, rowLse = 0.0f;
  if (active) {
    query = loadLaneVector(a.q + row * a.qStride + headAt, a.headDim);
    gradOut = loadLaneVector(a.dout + row * a.outStride + headAt, a.headDim);
    // sum_p prob_p (dout . v_p) = dout . out
    const LaneVector output = loadLaneVector(a.out + row * a.outStride + headAt, a.headDim);
    float partial = 0.0f;
#pragma unroll
    for (int c = 0; c < kLaneColumns; ++c) partial += gradOut.x[c] * output.x[c];
    weighted = warpReduce(partial, Sum{});
    rowLse = a.lse[(b * a.heads + h) * a.queries + i];
  }
  for (int64_t tile = 0; tile <= last; tile += kAttentionTile) {
    loadKvTile(a, a.k + kvAt, a.v + kvAt, tile, last, keyTile, valueTile);
    __syncthreads();
    for (int slot = 0; active && slot < kAttentionTile && tile + slot <= i; ++slot) {
      const float prob = expf(warpDot(query, keyTile[slot]) * scale - rowLse);
      const float gradScore = prob * (warpDot(gradOut, valueTile[slot]) - weighted) * scale;
      addScaledRow(gradQuery, gradScore, keyTile[slot]);
    }
    __syncthreads();
  }
  if (i < a.queries) storeLaneVector(a.dq + row * a.qStride + headAt, a.headDim, gradQuery, 1.0f);
}

// grid (key tiles of 8, kv heads, batch): warp w owns dk and dv of key position 8 * blockIdx.x + w,
// summed over the query heads of its group and the queries at or after it.
static __global__ void __launch_bounds__(kAttentionThreads) attentionKeyValueGradKernel(AttentionArgs a) {
  __shared__ float queryTile[kAttentionTile][kAttentionMaxHeadDim];
  __shared__ float gradOutTile[kAttentionTile][kAttentionMaxHeadDim];
  __shared__ float lseTile[kAttentionTile];
  __shared__ float weightedTile[kAttentionTile];
  const int64_t b = blockIdx.z, g = blockIdx.y, first = int64_t(blockIdx.x) * kAttentionWarps;
  const int warp = int(threadIdx.x) / kWarpThreads, lane = int(threadIdx.x) % kWarpThreads;
  const int64_t p = first + warp;
  const int64_t count = a.count[b] < a.queries ? a.count[b] : a.queries;
  const bool active = p < count;
  const int64_t kvAt = b * a.kvBatchStride + g * a.headDim + p * a.kvPositionStride;
  const int64_t group = a.heads / a.kvHeads;
  const float scale = 1.0f / sqrtf(float(a.headDim));

  LaneVector key = {}, value = {}, gradKey = {}, gradValue = {};
  if (active) {
    key = loadLaneVector(a.k + kvAt, a.headDim);
    value = loadLaneVector(a.v + kvAt, a.headDim);
  }
  for (int64_t h = g * group; h < (g + 1) * group; ++h) {
    const int64_t headAt = h * a.headDim;
    for (int64_t tile = first; tile < count; tile += kAttentionTile) {
      for (int64_t e = threadIdx.x; e < kAttentionTile * a.headDim; e += kAttentionThreads) {
        const int64_t slot = e / a.headDim, column = e % a.headDim, row = b * a.queries + tile + slot;
        if (tile + slot >= count) continue;
        queryTile[slot][column] = a.q[row * a.qStride + headAt + column];
        gradOutTile[slot][column] = a.dout[row * a.outStride + headAt + column];
      }
      // Each warp: the lse and dout . out of queries warp, warp + 8, ... of the tile.
      for (int slot = warp; slot < kAttentionTile; slot += kAttentionWarps) {
        const int64_t i = tile + slot, row = b * a.queries + i;
        if (i >= count) continue;
        float partial = 0.0f;
        for (int64_t column = lane; column < a.headDim; column += kWarpThreads) {
          partial += a.dout[row * a.outStride + headAt + column] * a.out[row * a.outStride + headAt + column];
        }
        partial = warpReduce(partial, Sum{});
        if (lane == 0) {
          weightedTile[slot] = partial;
          lseTile[slot] = a.lse[(b * a.heads + h) * a.queries + i];
        }
      }
      __syncthreads();
      for (int slot = 0; active && slot < kAttentionTile && tile + slot < count; ++slot) {
        if (tile + slot < p) continue;  // a query before the key does not see it
        const float prob = expf(warpDot(key, queryTile[slot]) * scale - lseTile[slot]);
        const float gradScore = prob * (warpDot(value, gradOutTile[slot]) - weightedTile[slot]) * scale;
        addScaledRow(gradValue, prob, gradOutTile[slot]);
        addScaledRow(gradKey, gradScore, queryTile[slot]);
      }
      __syncthreads();
    }
  }
  if (p >= a.queries) return;
  storeLaneVector(a.dk + kvAt, a.headDim, gradKey, 1.0f);
  storeLaneVector(a.dv + kvAt, a.headDim, gradValue, 1.0f);
}

struct KvCacheWriteArgs {
  int64_t batch, queries, kvHeads, headDim;
  const int32_t* start;  // device memory
  const int32_t* count;  // device memory
  const float* k;
  const float* v;
  int64_t stride;
  float* cacheK;
  float* cacheV;
  int64_t cacheBatchStride, cachePositionStride;
};

// A thread per element of the k, v rows of a call: row (b, i < count[b]) goes to position
// start[b] + i of the cache; rows of a batch entry with start < 0 are skipped.
static __global__ void __launch_bounds__(kElementThreads) kvCacheWriteKernel(KvCacheWriteArgs a) {
  const int64_t width = a.kvHeads * a.headDim;
  for (int64_t e = elementStart(); e < a.batch * a.queries * width; e += elementStride()) {
    const int64_t b = e / (a.queries * width), i = e / width % a.queries, column = e % width;
    if (a.start[b] < 0 || i >= a.count[b]) continue;
    const int64_t at = b * a.cacheBatchStride + (a.start[b] + i) * a.cachePositionStride + column;
    const int64_t from = (b * a.queries + i) * a.stride + column;
    a.cacheK[at] = a.k[from];
    a.cacheV[at] = a.v[from];
  }
}

inline dim3 attentionGrid(int64_t positions, int64_t heads, int64_t batch) {
  return dim3(unsigned((positions + kAttentionWarps - 1) / kAttentionWarps), unsigned(heads), unsigned(batch));
}

// headDim <= kAttentionMaxHeadDim (the caller checks: a model on the GPU refuses larger heads).
template <typename Launch>
void launchAttentionForward(Launch&& launch, const AttentionArgs& args) {
  if (args.batch * args.queries * args.heads == 0) return;
  launch(attentionForwardKernel, attentionGrid(args.queries, args.heads, args.batch), dim3(kAttentionThreads), args);
}

// The training backward: start = 0, the keys are the queries' own rows; dq, dk, dv written.
template <typename Launch>
void launchAttentionBackward(Launch&& launch, const AttentionArgs& args) {
  if (args.batch * args.queries * args.heads == 0) return;
  launch(attentionQueryGradKernel, attentionGrid(args.queries, args.heads, args.batch), dim3(kAttentionThreads), args);
  launch(attentionKeyValueGradKernel, attentionGrid(args.queries, args.kvHeads, args.batch), dim3(kAttentionThreads),
         args);
}

template <typename Launch>
void launchKvCacheWrite(Launch&& launch, const KvCacheWriteArgs& args) {
  const int64_t elements = args.batch * args.queries * args.kvHeads * args.headDim;
  if (elements > 0) launch(kvCacheWriteKernel, elementGrid(elements), dim3(kElementThreads), args);
}

}  // namespace napo::cuda
