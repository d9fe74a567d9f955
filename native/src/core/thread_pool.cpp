#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace napo {

namespace {

thread_local bool insideParallelBody = false;

std::mutex noteMutex;
std::string note;

void setNote(std::string text) {
  std::lock_guard<std::mutex> lock(noteMutex);
  note = std::move(text);
}

// NAPO_NUM_THREADS when it is an integer in [1, kMaxThreads], else the cores (and a note saying so).
int defaultThreadCount() {
  const unsigned cores = std::thread::hardware_concurrency();
  const int fallback = cores > 0 ? int(std::min<unsigned>(cores, kMaxThreads)) : 1;
  const char* env = std::getenv("NAPO_NUM_THREADS");
  if (!env || !*env) return fallback;
  char* end = nullptr;
  const long fromEnv = std::strtol(env, &end, 10);
  if (*end == '\0' && fromEnv >= 1 && fromEnv <= kMaxThreads) return int(fromEnv);
  setNote("NAPO_NUM_THREADS=" + std::string(env) + " is not an integer in [1, " + std::to_string(kMaxThreads) +
          "]; using " + std::to_string(fallback));
  return fallback;
}

// Workers sleep on a condition variable between jobs; a job is a range split into chunks that
// threads claim with an atomic counter.
class ThreadPool {
 public:
  explicit ThreadPool(int threads) { resize(threads); }
  ~ThreadPool() { stopWorkers(); }

  int size() {
    std::lock_guard<std::mutex> lock(callMutex_);
    return int(workers_.size()) + 1;
  }

  void resize(int threads) {
    std::lock_guard<std::mutex> lock(callMutex_);
    stopWorkers();
    stopping_ = false;
    // A new worker starts at the current generation: the last job is not one it still owes.
    uint64_t generation;
    {
      std::lock_guard<std::mutex> jobLock(jobMutex_);
      generation = generation_;
    }
    try {
      for (int i = 1; i < threads; ++i) workers_.emplace_back([this, generation] { workerLoop(generation); });
    } catch (const std::system_error& error) {
      setNote("asked for " + std::to_string(threads) + " CPU threads, the system allowed " +
              std::to_string(workers_.size() + 1) + " (" + error.what() + ")");
    }
  }

  void run(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    std::lock_guard<std::mutex> lock(callMutex_);
    const int64_t threads = int64_t(workers_.size()) + 1;
    const int64_t chunk = std::max<int64_t>(grain, (count + threads * 4 - 1) / (threads * 4));
    const int64_t chunks = (count + chunk - 1) / chunk;
    if (threads == 1 || chunks == 1) {
      runInline(count, body);
      return;
    }
    {
      std::lock_guard<std::mutex> jobLock(jobMutex_);
      body_ = &body;
      count_ = count;
      chunk_ = chunk;
      nextChunk_ = 0;
      chunks_ = chunks;
      unfinishedWorkers_ = int(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    claimChunks();
    std::unique_lock<std::mutex> jobLock(jobMutex_);
    done_.wait(jobLock, [this] { return unfinishedWorkers_ == 0; });
    body_ = nullptr;
  }

 private:
  static void runInline(int64_t count, const std::function<void(int64_t, int64_t)>& body) {
    insideParallelBody = true;
    body(0, count);
    insideParallelBody = false;
  }

  void claimChunks() {
    insideParallelBody = true;
    for (int64_t c = nextChunk_.fetch_add(1); c < chunks_; c = nextChunk_.fetch_add(1)) {
      const int64_t begin = c * chunk_;
      (*body_)(begin, std::min(count_, begin + chunk_));
    }
    insideParallelBody = false;
  }

  void workerLoop(uint64_t seenGeneration) {
    for (;;) {
      {
        std::unique_lock<std::mutex> jobLock(jobMutex_);
        wake_.wait(jobLock, [&] { return stopping_ || generation_ != seenGeneration; });
        if (stopping_) return;
        seenGeneration = generation_;
      }
      claimChunks();
      std::lock_guard<std::mutex> jobLock(jobMutex_);
      if (--unfinishedWorkers_ == 0) done_.notify_one();
    }
  }

  void stopWorkers() {
    {
      std::lock_guard<std::mutex> jobLock(jobMutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
  }

  std::mutex callMutex_;  // one job at a time
  std::mutex jobMutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0, chunk_ = 1, chunks_ = 0;
  std::atomic<int64_t> nextChunk_{0};
  int unfinishedWorkers_ = 0;
};

ThreadPool& pool() {
  // Leaked on purpose: joining threads from a static destructor at exit can deadlock.
  static ThreadPool* instance = new ThreadPool(defaultThreadCount());
  return *instance;
}

}  // namespace

void parallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  if (insideParallelBody || count <= grain) {
    body(0, count);
    return;
  }
  pool().run(count, std::max<int64_t>(grain, 1), body);
}

int threadCount() { return pool().size(); }

void setThreadCount(int threads) {
  setNote("");
  pool().resize(std::clamp(threads, 1, kMaxThreads));
}

const char* threadCountNote() {
  static thread_local std::string copy;
  std::lock_guard<std::mutex> lock(noteMutex);
  copy = note;
  return copy.c_str();
}

}  // namespace napo
