// The machine's peak float32 FMA throughput, measured: 16 independent accumulators of the widest
// register this copy's instruction set has, each updated by a fused multiply-add per iteration, on the
// calling thread. The matmul bench reports its GFLOP/s against this figure.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

// The widest register of this copy's instruction set.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vreg __attribute__((vector_size(kLanes * sizeof(float))));
constexpr int kAccumulators = 16;

__attribute__((noinline)) double fmaLoop(int64_t iterations, float* sink) {
  vreg acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) {
    for (int j = 0; j < kLanes; ++j) acc[i][j] = float(i + j) * 1e-3f;
  }
  vreg x, y;
  for (int j = 0; j < kLanes; ++j) {
    x[j] = 0.999999f;
    y[j] = 1e-7f;
  }
  for (int64_t it = 0; it < iterations; ++it) {
    // Keeps x, y in registers and the loop from being folded.
    __asm__ volatile("" : "+x"(x), "+x"(y));
#pragma GCC unroll 16
    for (int i = 0; i < kAccumulators; ++i) acc[i] = acc[i] * x + y;
  }
  vreg total = {};
  for (int i = 0; i < kAccumulators; ++i) total += acc[i];
  float out = 0.0f;
  for (int j = 0; j < kLanes; ++j) out += total[j];
  *sink = out;
  return double(iterations) * kAccumulators * kLanes * 2.0;
}

}  // namespace

double fmaPeakGflops(double seconds) {
  using Clock = std::chrono::steady_clock;
  volatile float sink = 0.0f;
  float local = 0.0f;
  fmaLoop(1 << 16, &local);  // warm up (clocks, caches)
  double best = 0.0;
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int64_t iterations = 1 << 18;
  do {
    const auto start = Clock::now();
    const double flops = fmaLoop(iterations, &local);
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    sink = sink + local;
    if (elapsed > 0.0) best = std::max(best, flops / elapsed / 1e9);
    if (elapsed < 0.02) iterations *= 2;
  } while (Clock::now() < deadline);
  return best;
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
