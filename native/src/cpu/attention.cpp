// Causal grouped-query attention, softmax(q k^T / sqrt(hd)) v, as transformers' eager attention
// with repeat_kv (query head h reads kv head h / (heads / kvHeads)). One kernel serves training
// (keys are the batch's own k columns) and decoding (keys are the KV cache): KvLayout says how the
// keys are laid out. The forward keeps only the log-sum-exp of each query's scores; the backward
// recomputes the probabilities from it (FlashAttention's trade: no [B, H, T, T] tensor is kept).
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

inline void axpy(float alpha, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] += alpha * x[j];
}

std::vector<float>& scratch(int64_t size) {
  thread_local std::vector<float> buffer;
  if (int64_t(buffer.size()) < size) buffer.resize(size_t(size));
  return buffer;
}

}  // namespace

void attentionForward(const AttentionShape& s, const int32_t* start, const int32_t* count, const float* q,
                      int64_t qStride, const float* k, const float* v, const KvLayout& kv, float* out,
                      int64_t outStride, float* lse) {
  const int64_t hd = s.headDim, group = s.heads / s.kvHeads;
  const float scale = 1.0f / std::sqrt(float(hd));
  int64_t work = 0;
  for (int64_t b = 0; b < s.batch; ++b) work += start[b] < 0 ? 0 : (start[b] + count[b]) * count[b];
  const int64_t tasks = s.batch * s.heads;
  // A decode step of a few rows runs inline: waking the pool costs more than its multiply-adds.
  parallelFor(tasks, work * s.heads * hd < (int64_t(1) << 17) ? tasks : 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / s.heads, h = task % s.heads;
      const float* keys = k + b * kv.batchStride + (h / group) * hd;
      const float* values = v + b * kv.batchStride + (h / group) * hd;
      for (int64_t i = 0; i < s.queries; ++i) {
        float* o = out + (b * s.queries + i) * outStride + h * hd;
        std::memset(o, 0, sizeof(float) * size_t(hd));
        float* l = lse ? lse + task * s.queries + i : nullptr;
        if (start[b] < 0 || i >= count[b]) {
          if (l) *l = 0.0f;
          continue;
        }
        const int64_t last = start[b] + i;
        const float* query = q + (b * s.queries + i) * qStride + h * hd;
        float* scores = scratch(last + 1).data();
        float maxScore = -INFINITY;
        for (int64_t p = 0; p <= last; ++p) {
          scores[p] = dot(query, keys + p * kv.positionStride, hd) * scale;
          maxScore = scores[p] > maxScore ? scores[p] : maxScore;
        }
        float sum = 0.0f;
        for (int64_t p = 0; p <= last; ++p) {
          scores[p] = std::exp(scores[p] - maxScore);
          sum += scores[p];
        }
        const float inv = 1.0f / sum;
        for (int64_t p = 0; p <= last; ++p) axpy(scores[p] * inv, values + p * kv.positionStride, o, hd);
        if (l) *l = maxScore + std::log(sum);
      }
    }
  });
}

// One task per (row, kv head): it owns the dk, dv of that kv head and the dq of the query heads
// that read it, so every gradient element has one writer and a fixed summation order.
void attentionBackward(const AttentionShape& s, const int32_t* count, const float* q, int64_t qStride,
                       const float* k, const float* v, const KvLayout& kv, const float* out, int64_t outStride,
                       const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  const int64_t hd = s.headDim, group = s.heads / s.kvHeads;
  const float scale = 1.0f / std::sqrt(float(hd));
  parallelFor(s.batch * s.kvHeads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / s.kvHeads, kvHead = task % s.kvHeads;
      const int64_t kvAt = b * kv.batchStride + kvHead * hd;
      for (int64_t p = 0; p < s.queries; ++p) {
        std::memset(dk + kvAt + p * kv.positionStride, 0, sizeof(float) * size_t(hd));
        std::memset(dv + kvAt + p * kv.positionStride, 0, sizeof(float) * size_t(hd));
        for (int64_t h = kvHead * group; h < (kvHead + 1) * group; ++h) {
          std::memset(dq + (b * s.queries + p) * qStride + h * hd, 0, sizeof(float) * size_t(hd));
        }
      }
      float* dp = scratch(s.queries).data();
      for (int64_t h = kvHead * group; h < (kvHead + 1) * group; ++h) {
        for (int64_t i = 0; i < count[b]; ++i) {
          const int64_t row = b * s.queries + i;
          const float* query = q + row * qStride + h * hd;
          const float* gradOut = dout + row * outStride + h * hd;
          const float rowLse = lse[(b * s.heads + h) * s.queries + i];
          // sum_p prob_p * (dout . v_p) = dout . out.
          const float weighted = dot(gradOut, out + row * outStride + h * hd, hd);
          float* gradQuery = dq + row * qStride + h * hd;
          for (int64_t p = 0; p <= i; ++p) {
            const float* key = k + kvAt + p * kv.positionStride;
            const float prob = std::exp(dot(query, key, hd) * scale - rowLse);
            dp[p] = prob * (dot(gradOut, v + kvAt + p * kv.positionStride, hd) - weighted) * scale;
            axpy(prob, gradOut, dv + kvAt + p * kv.positionStride, hd);
            axpy(dp[p], key, gradQuery, hd);
          }
          for (int64_t p = 0; p <= i; ++p) axpy(dp[p], query, dk + kvAt + p * kv.positionStride, hd);
        }
      }
    }
  });
}

void kvCacheWrite(const AttentionShape& s, const int32_t* start, const int32_t* count, const float* k,
                  const float* v, int64_t stride, float* cacheK, float* cacheV, const KvLayout& cache) {
  const int64_t width = s.kvHeads * s.headDim;
  parallelFor(s.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      if (start[b] < 0) continue;
      for (int64_t i = 0; i < count[b]; ++i) {
        const int64_t at = b * cache.batchStride + (start[b] + i) * cache.positionStride;
        std::memcpy(cacheK + at, k + (b * s.queries + i) * stride, sizeof(float) * size_t(width));
        std::memcpy(cacheV + at, v + (b * s.queries + i) * stride, sizeof(float) * size_t(width));
      }
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
