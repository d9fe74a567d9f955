// Benchmark probes: the yardsticks the bench reports ratios against, measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <vector>

#include "../core/philox.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "kernels.h"
#include "row_softmax.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

// Sums a slice with a vectorised reduction: the loads are the work, the adds keep them live.
float streamSum(const float* data, int64_t count) {
  float total = 0.0f;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < count; ++i) total += data[i];
  return total;
}

// Pass 1 (max, sum) and pass 2 (write z - lse) of a log_softmax, then the gather: what
// log_softmax(logits).gather(tokens) does when each op runs on its own.
template <typename Logit>
void unfusedRows(const Logit* logits, const int32_t* tokens, int64_t rows, int64_t vocab, float* scratch, float* out) {
  parallelFor(rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> chunk(kRowChunk);
    for (int64_t r = begin; r < end; ++r) {
      const Logit* row = logits + r * vocab;
      const RowSoftmax stats = rowSoftmax(row, vocab, 1.0f, false, chunk.data());
      const float lse = stats.logSumExp();
      float* logSoftmax = scratch + r * vocab;
#pragma omp simd
      for (int64_t i = 0; i < vocab; ++i) logSoftmax[i] = widen(row[i]) - lse;
    }
  });
  parallelFor(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) out[r] = scratch[r * vocab + tokens[r]];
  });
}

// softmax -> argsort -> cumulative sum -> masks -> draw, one step after another as a framework
// composes them.
template <typename Logit>
void sortedSampleRows(const Logit* logits, int64_t rows, int64_t vocab, int32_t topK, float topP, uint64_t seed,
                      float* scratch, int32_t* tokens) {
  parallelFor(rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> chunk(kRowChunk);
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    for (int64_t r = begin; r < end; ++r) {
      const Logit* row = logits + r * vocab;
      const RowSoftmax stats = rowSoftmax(row, vocab, 1.0f, false, chunk.data());
      float* probs = scratch + r * vocab;
      for (int64_t i = 0; i < vocab; ++i) probs[i] = std::exp(widen(row[i]) - stats.logSumExp());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [probs](int32_t a, int32_t b) { return probs[a] > probs[b]; });
      const int64_t keepK = topK > 0 ? std::min<int64_t>(topK, vocab) : vocab;
      double kept = 0.0;
      for (int64_t i = 0; i < keepK; ++i) kept += probs[order[size_t(i)]];
      int64_t keep = 0;
      double mass = 0.0;
      while (keep < keepK && mass < double(topP) * kept) mass += probs[order[size_t(keep++)]];
      const double target = double(philoxUniform(seed, 0, uint32_t(r))) * mass;
      double running = 0.0;
      int32_t token = order[size_t(keep - 1)];
      for (int64_t i = 0; i < keep; ++i) {
        running += probs[order[size_t(i)]];
        if (running > target) {
          token = order[size_t(i)];
          break;
        }
      }
      tokens[r] = token;
    }
  });
}

}  // namespace

double probeReadBandwidth(float* data, int64_t count, int32_t repeats) {
  // Touch every page with real values first, so the timed reads see resident memory.
  parallelFor(count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) data[i] = float(i & 1023);
  });
  const int threads = threadCount();
  const int64_t perThread = (count + threads - 1) / threads;
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int32_t repeat = 0; repeat < repeats; ++repeat) {
    std::vector<float> sums(size_t(threads), 0.0f);
    const auto start = std::chrono::steady_clock::now();
    parallelFor(threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t first = t * perThread, last = std::min(count, first + perThread);
        if (first < last) sums[size_t(t)] = streamSum(data + first, last - first);
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (float s : sums) sink = sink + s;
    best = std::max(best, double(count) * sizeof(float) / seconds);
  }
  return best;
}

void probeUnfusedLogprobs(const napo_tensor& logits, const int32_t* tokens, float* scratch, float* logprobs) {
  const int64_t n = logits.shape[0], v = logits.shape[1];
  if (logits.dtype == NAPO_BFLOAT16) {
    unfusedRows(dataAs<const uint16_t>(logits), tokens, n, v, scratch, logprobs);
  } else {
    unfusedRows(dataAs<const float>(logits), tokens, n, v, scratch, logprobs);
  }
}

void probeSortedSample(const napo_tensor& logits, int32_t topK, float topP, uint64_t seed, float* scratch,
                       int32_t* tokens) {
  const int64_t n = logits.shape[0], v = logits.shape[1];
  if (logits.dtype == NAPO_BFLOAT16) {
    sortedSampleRows(dataAs<const uint16_t>(logits), n, v, topK, topP, seed, scratch, tokens);
  } else {
    sortedSampleRows(dataAs<const float>(logits), n, v, topK, topP, seed, scratch, tokens);
  }
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
