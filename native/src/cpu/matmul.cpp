// Single-precision GEMM for the CPU backend (float32 or bfloat16 operands, float32 accumulation),
// BLIS-style: B is packed once per call into panels
// of NR columns, each task packs its MC x KC block of A into panels of MR rows, and an MR x NR
// register-tiled micro-kernel runs over the packed panels. Tasks are (MC rows x NC columns) tiles
// spread with parallelFor; each element of C is computed by one task in a fixed order, so the
// result does not depend on the thread count. The micro-kernel uses GCC vector types, which
// compile to AVX-512 (zmm FMAs), AVX2 or SSE by the instruction set this copy is built for.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "../core/math.h"
#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

typedef float v16 __attribute__((vector_size(64)));

constexpr int64_t MR = 8;    // rows of the micro-tile: 8 x 2 accumulators of 16 floats
constexpr int64_t NR = 32;   // columns of the micro-tile (two 16-float vectors)
constexpr int64_t KC = 256;  // depth of one packed slice
constexpr int64_t MC = 64;   // rows per task (at most)
constexpr int64_t NC = 256;  // columns per task (at most)

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<float[], AlignedFree>;

AlignedBuffer alignedFloats(size_t count) {
  const size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
  return AlignedBuffer(static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
}

inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// acc[MR][NR] = sum_k A[k][0..MR) (x) B[k][0..NR) over packed panels.
inline void microKernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                        float* __restrict c, int64_t ldc, int64_t mr, int64_t nr, float alpha,
                        float beta) {
  v16 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
  v16 c40 = {}, c41 = {}, c50 = {}, c51 = {}, c60 = {}, c61 = {}, c70 = {}, c71 = {};
  for (int64_t k = 0; k < kc; ++k) {
    const v16 b0 = load16(b + k * NR), b1 = load16(b + k * NR + 16);
    const float* ak = a + k * MR;
    float s;
    s = ak[0]; c00 += s * b0; c01 += s * b1;
    s = ak[1]; c10 += s * b0; c11 += s * b1;
    s = ak[2]; c20 += s * b0; c21 += s * b1;
    s = ak[3]; c30 += s * b0; c31 += s * b1;
    s = ak[4]; c40 += s * b0; c41 += s * b1;
    s = ak[5]; c50 += s * b0; c51 += s * b1;
    s = ak[6]; c60 += s * b0; c61 += s * b1;
    s = ak[7]; c70 += s * b0; c71 += s * b1;
  }
  const v16 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                          {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
  if (mr == MR && nr == NR) {
    for (int64_t i = 0; i < MR; ++i) {
      float* row = c + i * ldc;
      v16 r0 = alpha * acc[i][0], r1 = alpha * acc[i][1];
      if (beta != 0.0f) {
        r0 += beta * load16(row);
        r1 += beta * load16(row + 16);
      }
      store16(row, r0);
      store16(row + 16, r1);
    }
    return;
  }
  alignas(64) float tile[MR][NR];
  for (int64_t i = 0; i < MR; ++i) {
    store16(&tile[i][0], acc[i][0]);
    store16(&tile[i][16], acc[i][1]);
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < nr; ++j) {
      row[j] = alpha * tile[i][j] + (beta != 0.0f ? beta * row[j] : 0.0f);
    }
  }
}

inline float loadValue(const float* x, int64_t i) { return x[i]; }
inline float loadValue(const uint16_t* x, int64_t i) { return bf16ToFloat(x[i]); }

// Panel p of packed B holds columns [p*NR, p*NR + NR) for every k: [K][NR], zero-padded; bfloat16
// operands are widened here, so the micro-kernel only ever sees float32.
template <typename T>
void packB(bool transB, int64_t n, int64_t k, const T* b, int64_t ldb, float* packed, bool serial) {
  const int64_t panels = (n + NR - 1) / NR;
  parallelFor(panels, serial ? panels : 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* dst = packed + p * k * NR;
      const int64_t j0 = p * NR, cols = std::min(NR, n - j0);
      for (int64_t kk = 0; kk < k; ++kk) {
        float* out = dst + kk * NR;
        if (!transB) {
          const T* src = b + kk * ldb + j0;
          for (int64_t j = 0; j < cols; ++j) out[j] = loadValue(src, j);
        } else {
          for (int64_t j = 0; j < cols; ++j) out[j] = loadValue(b, (j0 + j) * ldb + kk);
        }
        for (int64_t j = cols; j < NR; ++j) out[j] = 0.0f;
      }
    }
  });
}

// Rows [i0, i0 + mc) and depth [k0, k0 + kc) of op(A) as panels of MR rows: [panel][kc][MR].
template <typename T>
void packA(bool transA, int64_t i0, int64_t mc, int64_t k0, int64_t kc, const T* a, int64_t lda, float* packed) {
  for (int64_t p = 0; p * MR < mc; ++p) {
    float* dst = packed + p * kc * MR;
    const int64_t r0 = i0 + p * MR, rows = std::min(MR, mc - p * MR);
    if (!transA) {
      for (int64_t r = 0; r < rows; ++r) {
        const T* src = a + (r0 + r) * lda + k0;
        for (int64_t kk = 0; kk < kc; ++kk) dst[kk * MR + r] = loadValue(src, kk);
      }
    } else {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const T* src = a + (k0 + kk) * lda + r0;
        for (int64_t r = 0; r < rows; ++r) dst[kk * MR + r] = loadValue(src, r);
      }
    }
    for (int64_t r = rows; r < MR; ++r)
      for (int64_t kk = 0; kk < kc; ++kk) dst[kk * MR + r] = 0.0f;
  }
}

// C[:, j0 : j0 + n] for one packed slab of B's columns.
template <typename TA>
void gemmSlab(bool transA, int64_t m, int64_t n, int64_t k, float alpha, const TA* a, int64_t lda,
              const float* packedB, float beta, float* c, int64_t ldc, bool serial) {
  // Smaller tiles when the problem has too few for every thread to get several.
  int64_t mcBlock = MC, ncBlock = NC;
  const int64_t wanted = 4 * int64_t(threadCount());
  auto tiles = [&] { return ((m + mcBlock - 1) / mcBlock) * ((n + ncBlock - 1) / ncBlock); };
  while (tiles() < wanted && (ncBlock > 2 * NR || mcBlock > 2 * MR)) {
    if (ncBlock > 2 * NR && (ncBlock >= 4 * mcBlock || mcBlock <= 2 * MR)) ncBlock /= 2;
    else mcBlock /= 2;
  }
  const int64_t rowBlocks = (m + mcBlock - 1) / mcBlock, colBlocks = (n + ncBlock - 1) / ncBlock;
  parallelFor(rowBlocks * colBlocks, serial ? rowBlocks * colBlocks : 1, [&](int64_t begin, int64_t end) {
    thread_local AlignedBuffer packedA;
    thread_local size_t packedACapacity = 0;
    const size_t need = size_t(((MC + MR - 1) / MR) * MR * KC);
    if (packedACapacity < need) {
      packedA = alignedFloats(need);
      packedACapacity = need;
    }
    for (int64_t task = begin; task < end; ++task) {
      const int64_t rb = task / colBlocks, cb = task % colBlocks;
      const int64_t i0 = rb * mcBlock, mc = std::min(mcBlock, m - i0);
      const int64_t j0 = cb * ncBlock, nc = std::min(ncBlock, n - j0);
      for (int64_t k0 = 0; k0 < k; k0 += KC) {
        const int64_t kc = std::min(KC, k - k0);
        packA(transA, i0, mc, k0, kc, a, lda, packedA.get());
        const float blockBeta = k0 == 0 ? beta : 1.0f;
        for (int64_t j = 0; j < nc; j += NR) {
          const float* bPanel = packedB + ((j0 + j) / NR) * k * NR + k0 * NR;
          const int64_t nr = std::min(NR, nc - j);
          for (int64_t i = 0; i < mc; i += MR) {
            microKernel(kc, packedA.get() + (i / MR) * kc * MR, bPanel, c + (i0 + i) * ldc + j0 + j, ldc,
                        std::min(MR, mc - i), nr, alpha, blockBeta);
          }
        }
      }
    }
  });
}

// A few rows against a weight stored [N, K] (decoding: one row per sequence): each row of B is
// read once, straight from memory, for all M rows of A, with no packing. That is what this product
// costs at small M: reading B. Column j is computed by one task in a fixed order.
constexpr int64_t kFewRows = 8;

inline float horizontalSum(v16 v) {
  alignas(64) float lanes[16];
  store16(lanes, v);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

template <int64_t M>
void fewRowsColumns(int64_t j0, int64_t j1, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t j = j0; j < j1; ++j) {
    const float* bj = b + j * ldb;
    v16 acc[M] = {};
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
      const v16 bv = load16(bj + p);
      for (int64_t i = 0; i < M; ++i) acc[i] += load16(a + i * lda + p) * bv;
    }
    for (int64_t i = 0; i < M; ++i) {
      float sum = horizontalSum(acc[i]);
      for (int64_t q = p; q < k; ++q) sum += a[i * lda + q] * bj[q];
      float* out = c + i * ldc + j;
      *out = alpha * sum + (beta != 0.0f ? beta * *out : 0.0f);
    }
  }
}

void fewRowsGemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  using Columns = void (*)(int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                           float*, int64_t);
  static constexpr Columns byRows[kFewRows] = {fewRowsColumns<1>, fewRowsColumns<2>, fewRowsColumns<3>,
                                               fewRowsColumns<4>, fewRowsColumns<5>, fewRowsColumns<6>,
                                               fewRowsColumns<7>, fewRowsColumns<8>};
  const Columns columns = byRows[m - 1];
  // Small products run inline: waking the pool costs more than they do.
  const int64_t grain = 2.0 * double(m) * double(n) * double(k) < 4.0e6 ? n : 16;
  parallelFor(n, grain, [&](int64_t begin, int64_t end) { columns(begin, end, k, alpha, a, lda, b, ldb, beta, c, ldc); });
}

// B is packed a slab of kSlabColumns columns at a time, so the packed copy stays a few MiB however
// wide C is (the [N, V] logits of a vocabulary projection: 151,936 columns).
constexpr int64_t kSlabColumns = 2048;

template <typename TA, typename TB>
void gemmCpu(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const TA* a, int64_t lda,
             const TB* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta != 0.0f ? beta * c[i * ldc + j] : 0.0f;
    return;
  }
  const int64_t slab = std::min(n, kSlabColumns);
  // Kept between calls (grown when a call needs more): a fresh buffer per call costs page faults
  // on every call of a chunked caller such as linearLogprobs.
  thread_local AlignedBuffer packedB;
  thread_local size_t packedBCapacity = 0;
  const size_t need = size_t(((slab + NR - 1) / NR) * k * NR);
  if (packedBCapacity < need) {
    packedB = alignedFloats(need);
    packedBCapacity = need;
  }
  // Below a few MFLOP (decode-sized products) waking the pool costs more than it saves.
  const bool serial = 2.0 * double(m) * double(n) * double(k) < 4.0e6;
  for (int64_t j0 = 0; j0 < n; j0 += slab) {
    const int64_t width = std::min(slab, n - j0);
    packB(transB, width, k, transB ? b + j0 * ldb : b + j0, ldb, packedB.get(), serial);
    gemmSlab(transA, m, width, k, alpha, a, lda, packedB.get(), beta, c + j0, ldc, serial);
  }
}

}  // namespace

void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (transB && !transA && m >= 1 && m <= kFewRows && n > 0 && k > 0) {
    return fewRowsGemm(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  gemmCpu(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(const GemmOperand& a, const GemmOperand& b, int64_t m, int64_t n, int64_t k, float alpha, float beta,
          float* c, int64_t ldc) {
  const bool bf16A = a.dtype == NAPO_BFLOAT16, bf16B = b.dtype == NAPO_BFLOAT16;
  const auto* af = static_cast<const float*>(a.data);
  const auto* ah = static_cast<const uint16_t*>(a.data);
  const auto* bf = static_cast<const float*>(b.data);
  const auto* bh = static_cast<const uint16_t*>(b.data);
  if (bf16A && bf16B) return gemmCpu(a.transposed, b.transposed, m, n, k, alpha, ah, a.ld, bh, b.ld, beta, c, ldc);
  if (bf16A) return gemmCpu(a.transposed, b.transposed, m, n, k, alpha, ah, a.ld, bf, b.ld, beta, c, ldc);
  if (bf16B) return gemmCpu(a.transposed, b.transposed, m, n, k, alpha, af, a.ld, bh, b.ld, beta, c, ldc);
  gemmCpu(a.transposed, b.transposed, m, n, k, alpha, af, a.ld, bf, b.ld, beta, c, ldc);
}

void addBias(int64_t m, int64_t n, const float* bias, float* y, int64_t ldy) {
  parallelFor(m, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* row = y + i * ldy;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
    }
  });
}

void biasBackward(int64_t m, int64_t n, const float* dy, int64_t ldy, float* dbias) {
  // Columns split across threads; each column sums its rows in order.
  parallelFor(n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < m; ++i) {
      const float* row = dy + i * ldy;
#pragma omp simd
      for (int64_t j = begin; j < end; ++j) dbias[j] += row[j];
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
