// The CPU backend's thread pool. Work is split into contiguous ranges of rows, so each row is
// computed by exactly one thread in a fixed order and results never depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace napo {

// Calls body(begin, end) over [0, count) in chunks of at least `grain` items, on up to
// napo_cpu_threads() threads (the caller included). Safe to call from several threads at once
// (calls are serialised) and from inside a body (the nested call runs inline).
void parallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

constexpr int kMaxThreads = 1024;

int threadCount();
// 1 <= threads <= kMaxThreads. Where the system refuses a thread, the pool keeps those it got.
void setThreadCount(int threads);
// Why the pool does not have the threads NAPO_NUM_THREADS or setThreadCount asked for ("" when it does).
const char* threadCountNote();

}  // namespace napo
