// tokenLogprobs on the CPU: log p(token) = z[token] - logsumexp(z), and the entropy, in one pass
// over each row (online max/sum) without ever holding [N, V] of probabilities.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "kernels.h"
#include "row_softmax.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

template <typename Logit>
napo_status forward(const napo_tensor& logits, const int32_t* tokens, float temperature,
                    float* logprobs, float* entropy, float* lse) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const Logit* data = dataAs<const Logit>(logits);
  const float scale = 1.0f / temperature;
  BadRow bad;
  parallelFor(rows, rowGrain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(kRowChunk);
    for (int64_t r = begin; r < end; ++r) {
      const Logit* row = data + r * vocab;
      const RowSoftmax stats = rowSoftmax(row, vocab, scale, entropy != nullptr, scratch.data());
      if (stats.badIndex >= 0 || !stats.hasFiniteValue()) {
        bad.report(r, stats.badIndex);
        continue;
      }
      const float rowLse = stats.logSumExp();
      lse[r] = rowLse;
      logprobs[r] = widen(row[tokens[r]]) * scale - rowLse;
      if (entropy) entropy[r] = stats.entropy();
    }
  });
  if (bad.row >= 0) return badLogitError<Logit>("tokenLogprobs", logits, bad.row, bad.column, temperature);
  return NAPO_OK;
}

// The first column of a chunk whose z = x * scale is NaN or +Inf, or -1.
template <typename Logit>
int64_t firstBadColumn(const Logit* x, int64_t count, float scale) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < count; ++i) bad |= widen(x[i]) * scale < std::numeric_limits<float>::infinity() ? 0 : 1;
  if (!bad) return -1;
  for (int64_t i = 0; i < count; ++i) {
    if (!(widen(x[i]) * scale < std::numeric_limits<float>::infinity())) return i;
  }
  return -1;
}

// d/dz of g_lp * log p(token) + g_ent * H:  g_lp * (onehot - p) - g_ent * p * (z - sum p z).
// Chunk by chunk, each checked for NaN/+Inf while it is in L1 and before it is written, so an
// in-place call that meets one stops with the value still there to quote. Returns the bad column
// or -1.
template <typename Logit, typename Grad>
int64_t backwardRow(const Logit* row, int64_t vocab, int32_t token, float lse, float meanZ, float gradLp,
                    float gradEnt, float scale, Grad* out) {
  constexpr bool kWidenGrad = std::is_same_v<Grad, uint16_t>;
  for (int64_t start = 0; start < vocab; start += kRowChunk) {
    const int64_t end = std::min(vocab, start + kRowChunk);
    const int64_t bad = firstBadColumn(row + start, end - start, scale);
    if (bad >= 0) return start + bad;
#pragma omp simd
    for (int64_t i = start; i < end; ++i) {
      const float z = widen(row[i]) * scale;
      const float p = expNonPositive(std::max(z - lse, -88.0f));
      // p = 0 for -Inf logits; the clamp keeps 0 * -Inf out.
      const float centred = std::max(z, -1e30f) - meanZ;
      const float dz = -gradLp * p - gradEnt * p * centred;
      if constexpr (kWidenGrad) {
        out[i] = floatToBf16(dz * scale);
      } else {
        out[i] = dz * scale;
      }
    }
  }
  // The one-hot term, added after the row so an in-place write is read-before-write safe.
  if constexpr (kWidenGrad) {
    out[token] = floatToBf16(bf16ToFloat(out[token]) + gradLp * scale);
  } else {
    out[token] += gradLp * scale;
  }
  return -1;
}

template <typename Logit>
napo_status backward(const napo_tensor& logits, const int32_t* tokens, const float* lse,
                     const float* entropy, const float* gradLogprobs, const float* gradEntropy,
                     float temperature, napo_tensor& gradLogits) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const Logit* data = dataAs<const Logit>(logits);
  Logit* out = dataAs<Logit>(gradLogits);
  const float scale = 1.0f / temperature;
  BadRow bad;
  parallelFor(rows, rowGrain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(gradEntropy && !entropy ? kRowChunk : 0);
    for (int64_t r = begin; r < end; ++r) {
      const Logit* row = data + r * vocab;
      const float gradEnt = gradEntropy ? gradEntropy[r] : 0.0f;
      float meanZ = 0.0f;  // sum p z = lse - H
      if (gradEntropy) {
        float rowEntropy;
        if (entropy) {
          rowEntropy = entropy[r];
        } else {
          const RowSoftmax stats = rowSoftmax(row, vocab, scale, true, scratch.data());
          if (stats.badIndex >= 0 || !stats.hasFiniteValue()) {
            bad.report(r, stats.badIndex);
            continue;
          }
          rowEntropy = stats.entropy();
        }
        meanZ = lse[r] - rowEntropy;
      }
      const int64_t badColumn =
          backwardRow(row, vocab, tokens[r], lse[r], meanZ, gradLogprobs[r], gradEnt, scale, out + r * vocab);
      if (badColumn >= 0) bad.report(r, badColumn);
    }
  });
  if (bad.row >= 0) {
    return badLogitError<Logit>("tokenLogprobsBackward", logits, bad.row, bad.column, temperature);
  }
  return NAPO_OK;
}

}  // namespace

napo_status tokenLogprobs(const napo_tensor& logits, const int32_t* tokens, float temperature,
                          float* logprobs, float* entropy, float* lse) {
  if (logits.dtype == NAPO_BFLOAT16) {
    return forward<uint16_t>(logits, tokens, temperature, logprobs, entropy, lse);
  }
  return forward<float>(logits, tokens, temperature, logprobs, entropy, lse);
}

napo_status tokenLogprobsBackward(const napo_tensor& logits, const int32_t* tokens, const float* lse,
                                  const float* entropy, const float* gradLogprobs,
                                  const float* gradEntropy, float temperature,
                                  napo_tensor& gradLogits) {
  if (logits.dtype == NAPO_BFLOAT16) {
    return backward<uint16_t>(logits, tokens, lse, entropy, gradLogprobs, gradEntropy, temperature, gradLogits);
  }
  return backward<float>(logits, tokens, lse, entropy, gradLogprobs, gradEntropy, temperature, gradLogits);
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
