// Building blocks of napo's kernels: bf16 widening and rounding, order-preserving float keys,
// warp and block reductions and scans, a vectorised row reader and a shared-memory sort.
//
// Plain CUDA C++ on purpose: the same text compiles with nvcc and, for CI on machines without a
// GPU, with g++ under native/tests/harness/cuda_emulation.h. So: no inline PTX, no cooperative
// groups, no cuda_bf16.h (bf16 travels as its 16 bits), no dynamic shared memory, warp
// collectives only with every lane of a whole warp taking part.
#pragma once

#include <cmath>
#include <cstdint>

namespace napo::cuda {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpThreads = 32;

// ---- scalars ----------------------------------------------------------------------------------

__device__ __forceinline__ float widen(float value) { return value; }
// bf16 is the high half of a float32, so widening is exact.
__device__ __forceinline__ float widen(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

// Round to nearest even with NaN kept a (quiet) NaN: the CPU backend's floatToBf16, bit for bit.
__device__ __forceinline__ uint16_t roundToBf16(float value) {
  uint32_t bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

__device__ __forceinline__ void storeLogit(float* out, float value) { *out = value; }
__device__ __forceinline__ void storeLogit(uint16_t* out, float value) { *out = roundToBf16(value); }

// Unsigned keys that sort like the floats they come from (-Inf lowest, +Inf highest).
__device__ __forceinline__ uint32_t orderedKey(float value) {
  const uint32_t bits = __float_as_uint(value);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
__device__ __forceinline__ float fromOrderedKey(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// exp(d) for d = z - max <= 0, exactly 0 below -87 like the CPU backend (where float32 would go
// subnormal), so both backends agree on which tokens have no mass at all.
// Neither NaN nor +-Inf.
__device__ __forceinline__ bool isFinite(float value) { return fabsf(value) < INFINITY; }

__device__ __forceinline__ float expShifted(float d) { return d < -87.0f ? 0.0f : __expf(d); }

// ---- warp and block collectives ---------------------------------------------------------------

template <typename T>
__device__ __forceinline__ T shuffleXor(T value, int laneMask) {
  return __shfl_xor_sync(kFullMask, value, laneMask);
}

// Combines `value` across groups of kWidth lanes (a power of two <= 32); every lane gets the
// result. Types other than scalars provide their own shuffleXor overload.
template <int kWidth = kWarpThreads, typename T, typename Combine>
__device__ __forceinline__ T warpReduce(T value, Combine combine) {
#pragma unroll
  for (int laneMask = kWidth / 2; laneMask > 0; laneMask /= 2) value = combine(value, shuffleXor(value, laneMask));
  return value;
}

// Combines `value` across the block of kThreads threads; every thread gets the result. `identity`
// fills the lanes beyond the number of warps so the second step is a whole-warp reduction too.
// The fixed tree makes float sums deterministic.
template <int kThreads, typename T, typename Combine>
__device__ T blockReduce(T value, Combine combine, T identity) {
  static_assert(kThreads % kWarpThreads == 0 && kThreads <= 1024, "whole warps, at most 1024 threads");
  constexpr int kWarps = kThreads / kWarpThreads;
  __shared__ T partials[kWarps];
  value = warpReduce(value, combine);
  if constexpr (kWarps == 1) return value;
  const int lane = int(threadIdx.x) % kWarpThreads, warp = int(threadIdx.x) / kWarpThreads;
  if (lane == 0) partials[warp] = value;
  __syncthreads();
  value = lane < kWarps ? partials[lane] : identity;
  value = warpReduce(value, combine);
  __syncthreads();  // partials may be reused by the next reduction
  return value;
}

// Combines `value` over the kRowThreads threads that share a row: the lanes of one warp (or part
// of one) when kRowThreads <= 32, else the whole block.
template <int kRowThreads, typename T, typename Combine>
__device__ __forceinline__ T rowReduce(T value, Combine combine, T identity) {
  if constexpr (kRowThreads <= kWarpThreads) {
    return warpReduce<kRowThreads>(value, combine);
  } else {
    return blockReduce<kRowThreads>(value, combine, identity);
  }
}

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxFloat {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MaxInt {
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

struct ScanResult {
  double before;  // sum over the threads before this one
  double total;   // sum over the block
};

// Exclusive prefix sum over the threads of the block, in thread order.
template <int kThreads>
__device__ ScanResult blockExclusiveScan(double value) {
  constexpr int kWarps = kThreads / kWarpThreads;
  __shared__ double warpTotals[kWarps];
  const int lane = int(threadIdx.x) % kWarpThreads, warp = int(threadIdx.x) / kWarpThreads;
  double inclusive = value;
#pragma unroll
  for (int delta = 1; delta < kWarpThreads; delta *= 2) {
    const double other = __shfl_up_sync(kFullMask, inclusive, delta);
    if (lane >= delta) inclusive += other;
  }
  if (lane == kWarpThreads - 1) warpTotals[warp] = inclusive;
  __syncthreads();
  // Lane w holds warp w's total: the block total, and the total of the warps before this one.
  const double warpTotal = lane < kWarps ? warpTotals[lane] : 0.0;
  const double total = warpReduce(warpTotal, Sum{});
  const double earlierWarps = warpReduce(lane < warp ? warpTotal : 0.0, Sum{});
  const double earlierLanes = __shfl_up_sync(kFullMask, inclusive, 1);
  __syncthreads();
  return {(lane == 0 ? 0.0 : earlierLanes) + earlierWarps, total};
}

// Sorts items[0, n), n a power of two, so that `before(a, b)` holds for earlier items (a strict
// weak order). Every thread of the block calls it; items must be in shared memory and written
// before the call behind a barrier.
template <int kThreads, typename Item, typename Before>
__device__ void bitonicSort(Item* items, int n, Before before) {
  for (int size = 2; size <= n; size *= 2) {
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int i = int(threadIdx.x); i < n; i += kThreads) {
        const int partner = i ^ stride;
        if (partner <= i) continue;
        const bool ascending = (i & size) == 0;
        const Item a = items[i], b = items[partner];
        if (ascending ? before(b, a) : before(a, b)) {
          items[i] = b;
          items[partner] = a;
        }
      }
      __syncthreads();
    }
  }
}

__device__ __forceinline__ int nextPowerOfTwo(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

// ---- reading a row --------------------------------------------------------------------------------

// A row of logits read as octets: eight consecutive columns aligned so that an octet inside the
// row is one 16-byte load (bf16) or two (f32) whatever V is. Octet q covers columns
// [8q - lead, 8q - lead + 8); columns outside [0, vocab) are masked out and read as -Inf.
template <typename Logit>
struct RowOctets {
  const Logit* row;
  int64_t vocab;
  int lead;
  int64_t count;
};

template <typename Logit>
__device__ __forceinline__ RowOctets<Logit> rowOctets(const Logit* row, int64_t vocab) {
  const int lead = int((reinterpret_cast<uintptr_t>(row) % 16) / sizeof(Logit));
  return {row, vocab, lead, (vocab + lead + 7) / 8};
}

struct Octet {
  float x[8];      // widened logits
  int64_t column;  // column of x[0] (negative before the row starts)
  uint32_t valid;  // bit j: column + j lies in the row
};

// An octet as loaded, before widening: kept this small so several loads can be in flight per
// thread without spilling (one uint4 for bf16, two for f32).
template <typename Logit>
struct RawOctet {
  uint4 bits[sizeof(Logit) / 2];
  int64_t column;
  uint32_t valid;
};

__device__ __forceinline__ uint32_t logitBits(float value) { return __float_as_uint(value); }
__device__ __forceinline__ uint32_t logitBits(uint16_t value) { return value; }

template <typename Logit>
__device__ __forceinline__ RawOctet<Logit> loadOctet(const RowOctets<Logit>& row, int64_t q) {
  RawOctet<Logit> raw;
  raw.column = q * 8 - row.lead;
  if (raw.column >= 0 && raw.column + 8 <= row.vocab) {
    const uint4* at = reinterpret_cast<const uint4*>(row.row + raw.column);
#pragma unroll
    for (int i = 0; i < int(sizeof(Logit)) / 2; ++i) raw.bits[i] = __ldcs(at + i);
    raw.valid = 0xffu;
    return raw;
  }
  // Partial octet: element by element, -Inf where the row has no column.
  constexpr int kBits = 8 * int(sizeof(Logit));
  constexpr uint32_t kNegativeInfinity = sizeof(Logit) == 2 ? 0xff80u : 0xff800000u;
  uint32_t words[8 * sizeof(Logit) / 4] = {};
  raw.valid = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int64_t column = raw.column + j;
    const bool inside = column >= 0 && column < row.vocab;
    const uint32_t bits = inside ? logitBits(row.row[column]) : kNegativeInfinity;
    words[j * kBits / 32] |= bits << (j * kBits % 32);
    raw.valid |= uint32_t(inside) << j;
  }
#pragma unroll
  for (int i = 0; i < int(sizeof(Logit)) / 2; ++i) {
    raw.bits[i] = uint4{words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]};
  }
  return raw;
}

template <typename Logit>
__device__ __forceinline__ Octet widen(const RawOctet<Logit>& raw) {
  Octet octet;
  octet.column = raw.column;
  octet.valid = raw.valid;
#pragma unroll
  for (int i = 0; i < int(sizeof(Logit)) / 2; ++i) {
    const uint32_t words[4] = {raw.bits[i].x, raw.bits[i].y, raw.bits[i].z, raw.bits[i].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      if constexpr (sizeof(Logit) == 2) {
        octet.x[2 * w] = __uint_as_float(words[w] << 16);
        octet.x[2 * w + 1] = __uint_as_float(words[w] & 0xffff0000u);
      } else {
        octet.x[4 * i + w] = __uint_as_float(words[w]);
      }
    }
  }
  return octet;
}

// 64 bytes of loads in flight per thread: four octets of bf16, two of f32.
template <typename Logit>
constexpr int kOctetsInFlight = 8 / int(sizeof(Logit));

// Calls body(octet) for octets thread, thread + kStride, ... of the row, kUnroll loads in flight
// per thread. Every thread makes the same number of calls (octets past the row come fully masked),
// so a body may use warp collectives.
template <int kStride, int kUnroll, typename Logit, typename Body>
__device__ __forceinline__ void forEachOctet(const RowOctets<Logit>& row, int thread, Body&& body) {
  for (int64_t base = 0; base < row.count; base += int64_t(kStride) * kUnroll) {
    RawOctet<Logit> raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) raw[u] = loadOctet(row, base + int64_t(u) * kStride + thread);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) body(widen(raw[u]));
  }
}

__device__ __forceinline__ void storeAligned(float* at, const float (&v)[8]) {
  reinterpret_cast<float4*>(at)[0] = float4{v[0], v[1], v[2], v[3]};
  reinterpret_cast<float4*>(at)[1] = float4{v[4], v[5], v[6], v[7]};
}

__device__ __forceinline__ void storeAligned(uint16_t* at, const float (&v)[8]) {
  uint32_t words[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) words[i] = uint32_t(roundToBf16(v[2 * i])) | (uint32_t(roundToBf16(v[2 * i + 1])) << 16);
  *reinterpret_cast<uint4*>(at) = uint4{words[0], words[1], words[2], words[3]};
}

// Writes the values of octet `where` of an input row to the same columns of an output row; one
// vector store when the output row shares the input row's alignment (`sameLead`).
template <typename Logit>
__device__ __forceinline__ void storeOctet(Logit* row, bool sameLead, const Octet& where, const float (&v)[8]) {
  if (sameLead && where.valid == 0xffu) {
    storeAligned(row + where.column, v);
    return;
  }
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (where.valid & (1u << j)) storeLogit(row + where.column + j, v[j]);
  }
}

// ---- the model layers' shapes of work ---------------------------------------------------------
// (Their kernels are `static`: both the model's launchers and the GPU tests compile them.)

// Elementwise kernels: 256 threads a block, at most 1,024 blocks striding over the elements (a
// launch over a billion elements stays within grid limits, and the host harness runs few blocks).
constexpr int kElementThreads = 256;
inline dim3 elementGrid(int64_t count) {
  const int64_t blocks = (count + kElementThreads - 1) / kElementThreads;
  return dim3(unsigned(blocks < 1 ? 1 : blocks > 1024 ? 1024 : blocks));
}
__device__ __forceinline__ int64_t elementStart() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t elementStride() { return int64_t(gridDim.x) * blockDim.x; }

// Parameter gradients summed over rows (norm weights, biases): a block owns 32 columns, lane j
// column 32 * blockIdx.x + j; its 8 warps take rows w, w + 8, ... and their partial sums are
// added in warp order, so the result does not depend on scheduling (no atomics).
constexpr int kColumnWarps = 8;
constexpr int kColumnThreads = kColumnWarps * kWarpThreads;
inline dim3 columnGrid(int64_t columns) { return dim3(unsigned((columns + kWarpThreads - 1) / kWarpThreads)); }
__device__ __forceinline__ int64_t blockColumn() { return int64_t(blockIdx.x) * kWarpThreads + int(threadIdx.x) % kWarpThreads; }

// sum over rows i of term(i) for this lane's column; the total is valid in warp 0. Every thread of
// the block calls it; term is only called for rows, and must itself return 0 past the last column.
template <typename Term>
__device__ float columnSum(int64_t rows, Term term) {
  __shared__ float partial[kColumnWarps][kWarpThreads];
  const int lane = int(threadIdx.x) % kWarpThreads, warp = int(threadIdx.x) / kWarpThreads;
  float sum = 0.0f;
  for (int64_t i = warp; i < rows; i += kColumnWarps) sum += term(i);
  partial[warp][lane] = sum;
  __syncthreads();
  float total = 0.0f;
  if (warp == 0) {
    for (int w = 0; w < kColumnWarps; ++w) total += partial[w][lane];
  }
  __syncthreads();  // partial may be reused by the next call
  return total;
}

// Row kernels (norms): a warp per vector, 8 warps a block.
constexpr int kRowWarps = 8;
inline dim3 rowGrid(int64_t vectors) { return dim3(unsigned((vectors + kRowWarps - 1) / kRowWarps)); }
__device__ __forceinline__ int64_t warpVector() { return int64_t(blockIdx.x) * kRowWarps + int(threadIdx.x) / kWarpThreads; }

}  // namespace napo::cuda
