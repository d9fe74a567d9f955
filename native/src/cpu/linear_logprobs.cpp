// linearLogprobs on the CPU: log p(token) of z = hidden weight^T / T without ever holding [N, V].
// The vocabulary is walked in chunks: one GEMM gives the chunk's logits for every row ([N, chunk],
// in the caller's workspace, rows padded), then each row folds them into its running max / sum / entropy moment
// (row_softmax.h) while they are still in cache. The backward recomputes each chunk's logits, turns
// them into d loss / d logits in place, and multiplies them into both gradients.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "../core/validate.h"
#include "kernels.h"
#include "row_softmax.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

// The logits of vocabulary rows [c0, c0 + count) for every hidden row: tile[N, count] = hidden
// weight[c0 : c0 + count]^T * scale.
void chunkLogits(const napo_tensor& hidden, const napo_tensor& weight, int64_t c0, int64_t count, float scale,
                 float* tile, int64_t stride) {
  const int64_t rows = hidden.shape[0], width = hidden.shape[1];
  const char* weightRows = static_cast<const char*>(weight.data) + size_t(c0 * width) * dtypeSize(weight.dtype);
  gemm({hidden.data, hidden.dtype, false, width}, {weightRows, weight.dtype, true, width}, rows, count, width, scale,
       0.0f, tile, stride);
}

// The first column of a tile row whose logit is not finite (finite hidden and weight large enough
// to overflow: a linear layer has no -Inf mask), or -1.
int64_t firstBadLogit(const float* z, int64_t count) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < count; ++i) bad |= std::fabs(z[i]) < std::numeric_limits<float>::infinity() ? 0 : 1;
  if (!bad) return -1;
  for (int64_t i = 0; i < count; ++i) {
    if (!(std::fabs(z[i]) < std::numeric_limits<float>::infinity())) return i;
  }
  return -1;
}

}  // namespace

napo_status linearLogprobs(const napo_tensor& hidden, const napo_tensor& weight, const int32_t* tokens,
                           float temperature, int64_t chunk, float* tile, float* logprobs, float* entropy,
                           float* lse) {
  const int64_t rows = hidden.shape[0], vocab = weight.shape[0];
  const float scale = 1.0f / temperature;
  std::vector<RowSoftmax> stats(static_cast<size_t>(rows));
  std::vector<float> target(static_cast<size_t>(rows));
  BadRow bad;
  for (int64_t c0 = 0; c0 < vocab && bad.row < 0; c0 += chunk) {
    const int64_t count = std::min(chunk, vocab - c0);
    const int64_t stride = count + kLinearTilePad;
    chunkLogits(hidden, weight, c0, count, scale, tile, stride);
    parallelFor(rows, std::max<int64_t>(1, 65536 / count), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* z = tile + r * stride;
        bool nonFinite = false;
        const float chunkMax = finiteMax(z, count, &nonFinite);
        if (nonFinite) {
          bad.report(r, c0 + firstBadLogit(z, count));
          continue;
        }
        RowSoftmax& row = stats[size_t(r)];
        if (chunkMax > row.max) raiseMax(chunkMax, row);
        accumulateChunk(z, count, entropy != nullptr, row);
        const int64_t token = tokens[r];
        if (token >= c0 && token < c0 + count) target[size_t(r)] = z[token - c0];
      }
    });
  }
  if (bad.row >= 0) return linearOverflowError("linearLogprobs", bad.row, bad.column, temperature);
  for (int64_t r = 0; r < rows; ++r) {
    const RowSoftmax& row = stats[size_t(r)];
    lse[r] = row.logSumExp();
    logprobs[r] = target[size_t(r)] - lse[r];
    if (entropy) entropy[r] = row.entropy();
  }
  return NAPO_OK;
}

napo_status linearLogprobsBackward(const napo_tensor& hidden, const napo_tensor& weight, const int32_t* tokens,
                                   const float* lse, const float* entropy, const float* gradLogprobs,
                                   const float* gradEntropy, float temperature, int64_t chunk, bool accumulate,
                                   float* tile, float* gradHidden, float* gradWeight) {
  const int64_t rows = hidden.shape[0], width = hidden.shape[1], vocab = weight.shape[0];
  const float scale = 1.0f / temperature;
  const size_t weightElement = dtypeSize(weight.dtype);
  BadRow bad;
  for (int64_t c0 = 0; c0 < vocab; c0 += chunk) {
    const int64_t count = std::min(chunk, vocab - c0);
    const int64_t stride = count + kLinearTilePad;
    chunkLogits(hidden, weight, c0, count, scale, tile, stride);
    // dz = g_lp (onehot - p) - g_ent p (z - sum p z), written over the logits as dz / T.
    parallelFor(rows, std::max<int64_t>(1, 65536 / count), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* z = tile + r * stride;
        const int64_t badColumn = firstBadLogit(z, count);
        if (badColumn >= 0) {
          bad.report(r, c0 + badColumn);
          continue;
        }
        const float rowLse = lse[r], gradLp = gradLogprobs[r];
        const float gradEnt = gradEntropy ? gradEntropy[r] : 0.0f;
        const float meanZ = gradEntropy ? rowLse - entropy[r] : 0.0f;
#pragma omp simd
        for (int64_t i = 0; i < count; ++i) {
          const float p = expNonPositive(std::max(z[i] - rowLse, -88.0f));
          const float centred = std::max(z[i], -1e30f) - meanZ;
          z[i] = (-gradLp * p - gradEnt * p * centred) * scale;
        }
        const int64_t token = tokens[r];
        if (token >= c0 && token < c0 + count) z[token - c0] += gradLp * scale;
      }
    });
    if (bad.row >= 0) return linearOverflowError("linearLogprobsBackward", bad.row, bad.column, temperature);
    const char* weightRows = static_cast<const char*>(weight.data) + size_t(c0 * width) * weightElement;
    // gradHidden (+)= dlogits weight[chunk]; gradWeight[chunk] (+)= dlogits^T hidden.
    gemm({tile, NAPO_FLOAT32, false, stride}, {weightRows, weight.dtype, false, width}, rows, width, count, 1.0f,
         accumulate || c0 > 0 ? 1.0f : 0.0f, gradHidden, width);
    gemm({tile, NAPO_FLOAT32, true, stride}, {hidden.data, hidden.dtype, false, width}, count, width, rows, 1.0f,
         accumulate ? 1.0f : 0.0f, gradWeight + c0 * width, width);
  }
  return NAPO_OK;
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
