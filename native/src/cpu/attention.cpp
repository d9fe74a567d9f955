// Causal multi-head self-attention (softmax(q k^T / sqrt(hd)) v), one task per (batch row, head)
// so every output element has one writer and a fixed summation order.
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

}  // namespace

void attentionForward(int64_t batch, int64_t time, int64_t d,
                             int64_t heads, const int32_t* lengths, const float* qkv, float* probs,
                             float* out) {
  const int64_t hd = d / heads, stride = 3 * d;
  const float scale = 1.0f / std::sqrt(float(hd));
  parallelFor(batch * heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads, len = lengths[b];
      const float* base = qkv + b * time * stride;
      float* p = probs + task * time * time;
      std::memset(p, 0, sizeof(float) * size_t(time * time));
      for (int64_t t = 0; t < time; ++t) {
        float* o = out + (b * time + t) * d + h * hd;
        std::memset(o, 0, sizeof(float) * size_t(hd));
        if (t >= len) continue;
        const float* q = base + t * stride + h * hd;
        float* pt = p + t * time;
        float maxScore = -INFINITY;
        for (int64_t s = 0; s <= t; ++s) {
          pt[s] = dot(q, base + s * stride + d + h * hd, hd) * scale;
          maxScore = pt[s] > maxScore ? pt[s] : maxScore;
        }
        float sum = 0.0f;
        for (int64_t s = 0; s <= t; ++s) {
          pt[s] = std::exp(pt[s] - maxScore);
          sum += pt[s];
        }
        const float inv = 1.0f / sum;
        for (int64_t s = 0; s <= t; ++s) {
          pt[s] *= inv;
          axpy(pt[s], base + s * stride + 2 * d + h * hd, o, hd);
        }
      }
    }
  });
}

void attentionBackward(int64_t batch, int64_t time, int64_t d,
                              int64_t heads, const int32_t* lengths, const float* qkv,
                              const float* probs, const float* dout, float* dqkv) {
  const int64_t hd = d / heads, stride = 3 * d;
  const float scale = 1.0f / std::sqrt(float(hd));
  parallelFor(batch * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dp(static_cast<size_t>(time), 0.0f);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads, len = lengths[b];
      const float* base = qkv + b * time * stride;
      float* dbase = dqkv + b * time * stride;
      for (int64_t t = 0; t < time; ++t) {
        for (int64_t part = 0; part < 3; ++part) {
          std::memset(dbase + t * stride + part * d + h * hd, 0, sizeof(float) * size_t(hd));
        }
      }
      const float* p = probs + task * time * time;
      for (int64_t t = 0; t < len; ++t) {
        const float* go = dout + (b * time + t) * d + h * hd;
        const float* pt = p + t * time;
        float weighted = 0.0f;
        for (int64_t s = 0; s <= t; ++s) {
          dp[size_t(s)] = dot(go, base + s * stride + 2 * d + h * hd, hd);
          weighted += pt[s] * dp[size_t(s)];
          axpy(pt[s], go, dbase + s * stride + 2 * d + h * hd, hd);  // dv_s
        }
        const float* q = base + t * stride + h * hd;
        float* dq = dbase + t * stride + h * hd;
        for (int64_t s = 0; s <= t; ++s) {
          const float ds = pt[s] * (dp[size_t(s)] - weighted) * scale;
          axpy(ds, base + s * stride + d + h * hd, dq, hd);  // dq_t
          axpy(ds, q, dbase + s * stride + d + h * hd, hd);  // dk_s
        }
      }
    }
  });
}

void attentionDecode(int64_t batch, int64_t d, int64_t heads,
                            int64_t capacity, const float* qkv, const float* kcache,
                            const float* vcache, const int32_t* positions, float* out) {
  const int64_t hd = d / heads;
  const float scale = 1.0f / std::sqrt(float(hd));
  // Small steps run inline: waking the pool costs more than a few thousand multiply-adds.
  int64_t work = 0;
  for (int64_t b = 0; b < batch; ++b) work += (positions[b] + 1) * heads * hd * 2;
  const int64_t tasks = batch * heads;
  parallelFor(tasks, work < (int64_t(1) << 18) ? tasks : 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(capacity), 0.0f);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / heads, h = task % heads, pos = positions[b];
      float* o = out + b * d + h * hd;
      std::memset(o, 0, sizeof(float) * size_t(hd));
      if (pos < 0) continue;
      const float* q = qkv + b * 3 * d + h * hd;
      const float* keys = kcache + task * capacity * hd;
      const float* values = vcache + task * capacity * hd;
      float maxScore = -INFINITY;
      for (int64_t s = 0; s <= pos; ++s) {
        scores[size_t(s)] = dot(q, keys + s * hd, hd) * scale;
        maxScore = scores[size_t(s)] > maxScore ? scores[size_t(s)] : maxScore;
      }
      float sum = 0.0f;
      for (int64_t s = 0; s <= pos; ++s) {
        scores[size_t(s)] = std::exp(scores[size_t(s)] - maxScore);
        sum += scores[size_t(s)];
      }
      const float inv = 1.0f / sum;
      for (int64_t s = 0; s <= pos; ++s) axpy(scores[size_t(s)] * inv, values + s * hd, o, hd);
    }
  });
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
