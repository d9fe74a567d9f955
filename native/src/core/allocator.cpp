#include "allocator.h"

#include <array>
#include <cstdlib>
#include <memory>

#include "error.h"
#include "runtime.h"
#include "tensor.h"

namespace napo {

namespace {

// Blocks are rounded up so that a tensor freed and a slightly different one asked for next
// (ragged batches) reuse the same block; a cached block is reused only when at most 1/8 larger
// than asked, which bounds the waste.
constexpr size_t kBlockAlignment = 512;

size_t roundUp(size_t bytes) { return (bytes + kBlockAlignment - 1) / kBlockAlignment * kBlockAlignment; }

napo_status hostAllocate(int, size_t bytes, void** out) {
  // 64-byte alignment: a cache line, and what AVX-512 loads like.
  *out = std::aligned_alloc(64, bytes);
  return *out ? NAPO_OK : NAPO_ERR_OUT_OF_MEMORY;
}

void hostRelease(int, void* ptr) { std::free(ptr); }

bool hostMemory(int, int64_t*, int64_t*) { return false; }

constexpr int kMaxCudaDevices = 16;

}  // namespace

CachingAllocator::~CachingAllocator() {
  // Live blocks may still be referenced by tensors that outlive the library at exit: only the
  // cache is handed back.
  std::lock_guard<std::mutex> lock(mutex_);
  releaseCachedLocked();
}

napo_status CachingAllocator::allocateFromSystem(size_t blockBytes, void** out) {
  if (source_.allocate(device_.index, blockBytes, out) == NAPO_OK) return NAPO_OK;
  // Cached blocks of other sizes may be what stands in the way: give them back and retry once.
  releaseCachedLocked();
  if (source_.allocate(device_.index, blockBytes, out) == NAPO_OK) return NAPO_OK;
  int64_t freeBytes = -1, totalBytes = -1;
  if (source_.deviceMemory(device_.index, &freeBytes, &totalBytes)) {
    return fail(NAPO_ERR_OUT_OF_MEMORY,
                "out of memory on %s: asked for %zu bytes, %lld of %lld bytes free, napo holds "
                "%lld allocated",
                deviceText(device_).c_str(), blockBytes, (long long)freeBytes,
                (long long)totalBytes, (long long)allocatedBytes_);
  }
  return fail(NAPO_ERR_OUT_OF_MEMORY, "out of memory on %s: asked for %zu bytes, napo holds %lld allocated",
              deviceText(device_).c_str(), blockBytes, (long long)allocatedBytes_);
}

napo_status CachingAllocator::allocate(size_t bytes, void** out) {
  *out = nullptr;
  if (bytes == 0) return NAPO_OK;
  const size_t blockBytes = roundUp(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  size_t gotBytes = blockBytes;
  auto cachedBlock = cached_.lower_bound(blockBytes);
  if (cachedBlock != cached_.end() && cachedBlock->first <= blockBytes + blockBytes / 8) {
    gotBytes = cachedBlock->first;
    block = cachedBlock->second;
    cached_.erase(cachedBlock);
  } else {
    NAPO_TRY(allocateFromSystem(blockBytes, &block));
    reservedBytes_ += int64_t(blockBytes);
    if (reservedBytes_ > peakReservedBytes_) peakReservedBytes_ = reservedBytes_;
  }
  live_.emplace(block, gotBytes);
  allocatedBytes_ += int64_t(gotBytes);
  if (allocatedBytes_ > peakAllocatedBytes_) peakAllocatedBytes_ = allocatedBytes_;
  *out = block;
  return NAPO_OK;
}

napo_status CachingAllocator::release(void* ptr) {
  if (!ptr) return NAPO_OK;
  std::lock_guard<std::mutex> lock(mutex_);
  auto liveBlock = live_.find(ptr);
  if (liveBlock == live_.end()) {
    return fail(NAPO_ERR_INTERNAL, "free: %p was not allocated by napo on %s", ptr,
                deviceText(device_).c_str());
  }
  allocatedBytes_ -= int64_t(liveBlock->second);
  cached_.emplace(liveBlock->second, ptr);
  live_.erase(liveBlock);
  return NAPO_OK;
}

void CachingAllocator::releaseCachedLocked() {
  for (auto& [bytes, ptr] : cached_) {
    source_.release(device_.index, ptr);
    reservedBytes_ -= int64_t(bytes);
  }
  cached_.clear();
}

napo_memory_stats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  napo_memory_stats stats{};
  stats.allocated_bytes = allocatedBytes_;
  stats.reserved_bytes = reservedBytes_;
  stats.peak_allocated_bytes = peakAllocatedBytes_;
  stats.peak_reserved_bytes = peakReservedBytes_;
  stats.allocations = int64_t(live_.size());
  stats.free_bytes = -1;
  stats.total_bytes = -1;
  source_.deviceMemory(device_.index, &stats.free_bytes, &stats.total_bytes);
  return stats;
}

void CachingAllocator::resetPeak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peakAllocatedBytes_ = allocatedBytes_;
  peakReservedBytes_ = reservedBytes_;
}

void CachingAllocator::emptyCache() {
  std::lock_guard<std::mutex> lock(mutex_);
  releaseCachedLocked();
}

napo_status allocatorFor(napo_device device, CachingAllocator** out) {
  // Function-local statics are never destroyed before tensors held by JS finalizers at exit.
  static CachingAllocator* host = new CachingAllocator({NAPO_CPU, 0}, {hostAllocate, hostRelease, hostMemory});
  static std::array<std::unique_ptr<CachingAllocator>, kMaxCudaDevices>* cuda =
      new std::array<std::unique_ptr<CachingAllocator>, kMaxCudaDevices>();
  static std::mutex cudaMutex;
  if (device.kind == NAPO_CPU) {
    *out = host;
    return NAPO_OK;
  }
  if (device.kind != NAPO_CUDA) return fail(NAPO_ERR_TYPE, "unknown device kind %d", int(device.kind));
  const int count = cudaDeviceCount();
  if (device.index < 0 || device.index >= count || device.index >= kMaxCudaDevices) {
    if (count == 0) {
      napo_backend_info info{};
      cudaBackendInfo(&info);
      return fail(NAPO_ERR_UNAVAILABLE, "%s is not available: %s", deviceText(device).c_str(),
                  info.cuda_unavailable_reason);
    }
    return fail(NAPO_ERR_UNAVAILABLE, "%s is not available: %d CUDA device(s) present",
                deviceText(device).c_str(), count);
  }
  std::lock_guard<std::mutex> lock(cudaMutex);
  auto& slot = (*cuda)[size_t(device.index)];
  if (!slot) slot = std::make_unique<CachingAllocator>(device, cudaMemorySource());
  *out = slot.get();
  return NAPO_OK;
}

}  // namespace napo
