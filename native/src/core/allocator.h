// A caching allocator per device, in the spirit of PyTorch's: freed blocks are kept and reused,
// and the counters follow torch.cuda.memory_* so a trainer can record the peak of each phase, by
// category, with an optional bounded history of every allocation and free.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "napo/napo.h"

namespace napo {

// Where a device's memory comes from: malloc on the CPU, cudaMalloc on a GPU.
struct MemorySource {
  napo_status (*allocate)(int deviceIndex, size_t bytes, void** out);
  void (*release)(int deviceIndex, void* ptr);
  // Free and total bytes as the driver sees them; false where there is no such notion (CPU).
  bool (*deviceMemory)(int deviceIndex, int64_t* freeBytes, int64_t* totalBytes);
};

class CachingAllocator {
 public:
  CachingAllocator(napo_device device, MemorySource source) : device_(device), source_(source) {}
  ~CachingAllocator();

  napo_status allocate(size_t bytes, napo_memory_category category, void** out);
  napo_status release(void* ptr);
  napo_memory_stats stats();
  void resetPeak();
  void emptyCache();
  void recordHistory(int64_t maxEvents);
  int64_t history(napo_memory_event* out, int64_t capacity, int64_t* dropped);
  void setPhase(int32_t phase);

 private:
  struct LiveBlock {
    size_t blockBytes;  // what the block holds (reserved)
    size_t bytes;       // what was asked for, rounded (allocated)
    napo_memory_category category;
  };
  using Counters = std::array<int64_t, NAPO_MEMORY_CATEGORIES>;

  napo_status allocateFromSystem(size_t blockBytes, void** out);
  void releaseCachedLocked();
  void countLocked(napo_memory_category category, int64_t bytes);

  napo_device device_;
  MemorySource source_;
  std::mutex mutex_;
  std::multimap<size_t, void*> cached_;          // free blocks by size
  std::unordered_map<void*, LiveBlock> live_;
  int64_t allocatedBytes_ = 0;
  int64_t reservedBytes_ = 0;
  int64_t peakAllocatedBytes_ = 0;
  int64_t peakReservedBytes_ = 0;
  int64_t allocRetries_ = 0;
  int64_t ooms_ = 0;
  Counters categoryBytes_{};
  Counters categoryPeak_{};
  Counters categoryAtPeak_{};
  // The history: a ring of the last events, off while capacity is 0.
  std::vector<napo_memory_event> events_;
  size_t eventsCapacity_ = 0, nextEvent_ = 0;
  int64_t eventsDropped_ = 0;
  int32_t phase_ = 0;
  std::chrono::steady_clock::time_point historyStart_{};
};

// The allocator of a device, created on first use; NAPO_ERR_UNAVAILABLE for a CUDA device that
// is not there.
napo_status allocatorFor(napo_device device, CachingAllocator** out);

}  // namespace napo
