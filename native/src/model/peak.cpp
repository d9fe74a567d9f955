// The machine's peak float32 FMA throughput, measured: 16 independent accumulators of the widest
// vector type the build targets, each updated by a fused multiply-add per iteration, on the
// calling thread. The matmul bench reports its GFLOP/s against this figure.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "napo/model.h"

namespace {

typedef float v16 __attribute__((vector_size(64)));

__attribute__((noinline)) double fmaLoop(int64_t iterations, float* sink) {
  v16 acc[16];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) acc[i][j] = float(i + j) * 1e-3f;
  }
  v16 x, y;
  for (int j = 0; j < 16; ++j) {
    x[j] = 0.999999f;
    y[j] = 1e-7f;
  }
  for (int64_t it = 0; it < iterations; ++it) {
    // Keeps x, y in registers and the loop from being folded.
    __asm__ volatile("" : "+v"(x), "+v"(y));
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = acc[i] * x + y;
  }
  v16 total = {};
  for (int i = 0; i < 16; ++i) total += acc[i];
  float out = 0.0f;
  for (int j = 0; j < 16; ++j) out += total[j];
  *sink = out;
  return double(iterations) * 16.0 * 16.0 * 2.0;
}

}  // namespace

extern "C" napo_status napo_cpu_peak_gflops(double seconds, double* gflops) {
  using Clock = std::chrono::steady_clock;
  if (!gflops) return napo::fail(NAPO_ERR_TYPE, "cpuPeakGflops: out is missing");
  if (!(seconds > 0.0) || seconds > 60.0) {
    return napo::fail(NAPO_ERR_RANGE, "cpuPeakGflops: seconds = %g must be in (0, 60]", seconds);
  }
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
  *gflops = best;
  return NAPO_OK;
}
