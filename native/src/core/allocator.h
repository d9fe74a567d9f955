// A caching allocator per device, in the spirit of PyTorch's: freed blocks are kept and reused,
// and the counters follow torch.cuda.memory_* so a trainer can record the peak of each phase.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

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

  napo_status allocate(size_t bytes, void** out);
  napo_status release(void* ptr);
  napo_memory_stats stats();
  void resetPeak();
  void emptyCache();

 private:
  napo_status allocateFromSystem(size_t blockBytes, void** out);
  void releaseCachedLocked();

  napo_device device_;
  MemorySource source_;
  std::mutex mutex_;
  std::multimap<size_t, void*> cached_;        // free blocks by size
  std::unordered_map<void*, size_t> live_;     // block -> its size
  int64_t allocatedBytes_ = 0;
  int64_t reservedBytes_ = 0;
  int64_t peakAllocatedBytes_ = 0;
  int64_t peakReservedBytes_ = 0;
};

// The allocator of a device, created on first use; NAPO_ERR_UNAVAILABLE for a CUDA device that
// is not there.
napo_status allocatorFor(napo_device device, CachingAllocator** out);

}  // namespace napo
