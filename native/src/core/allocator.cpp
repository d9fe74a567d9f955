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
  ++allocRetries_;
  releaseCachedLocked();
  if (source_.allocate(device_.index, blockBytes, out) == NAPO_OK) return NAPO_OK;
  ++ooms_;
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

// Counts `bytes` (negative for a free) against the totals, the category and the history.
void CachingAllocator::countLocked(napo_memory_category category, int64_t bytes) {
  allocatedBytes_ += bytes;
  int64_t& current = categoryBytes_[size_t(category)];
  current += bytes;
  if (current > categoryPeak_[size_t(category)]) categoryPeak_[size_t(category)] = current;
  if (allocatedBytes_ > peakAllocatedBytes_) {
    peakAllocatedBytes_ = allocatedBytes_;
    categoryAtPeak_ = categoryBytes_;
  }
  if (eventsCapacity_ == 0) return;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - historyStart_).count();
  const napo_memory_event event{ms, bytes, int32_t(category), phase_};
  if (events_.size() < eventsCapacity_) {
    events_.push_back(event);
  } else {
    events_[nextEvent_] = event;
    ++eventsDropped_;
  }
  nextEvent_ = (nextEvent_ + 1) % eventsCapacity_;
}

napo_status CachingAllocator::allocate(size_t bytes, napo_memory_category category, void** out) {
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
  live_.emplace(block, LiveBlock{gotBytes, blockBytes, category});
  countLocked(category, int64_t(blockBytes));
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
  countLocked(liveBlock->second.category, -int64_t(liveBlock->second.bytes));
  cached_.emplace(liveBlock->second.blockBytes, ptr);
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
  stats.num_alloc_retries = allocRetries_;
  stats.num_ooms = ooms_;
  for (size_t c = 0; c < NAPO_MEMORY_CATEGORIES; ++c) {
    stats.category_allocated[c] = categoryBytes_[c];
    stats.category_peak[c] = categoryPeak_[c];
    stats.category_at_peak[c] = categoryAtPeak_[c];
  }
  return stats;
}

void CachingAllocator::resetPeak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peakAllocatedBytes_ = allocatedBytes_;
  peakReservedBytes_ = reservedBytes_;
  categoryPeak_ = categoryBytes_;
  categoryAtPeak_ = categoryBytes_;
}

void CachingAllocator::recordHistory(int64_t maxEvents) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.clear();
  events_.shrink_to_fit();
  eventsCapacity_ = size_t(maxEvents);
  events_.reserve(eventsCapacity_);
  nextEvent_ = 0;
  eventsDropped_ = 0;
  historyStart_ = std::chrono::steady_clock::now();
}

int64_t CachingAllocator::history(napo_memory_event* out, int64_t capacity, int64_t* dropped) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t held = events_.size();
  // Full ring: the oldest event is the next one to be overwritten.
  const size_t oldest = held < eventsCapacity_ ? 0 : nextEvent_;
  for (size_t i = 0; i < held && int64_t(i) < capacity; ++i) out[i] = events_[(oldest + i) % held];
  if (dropped) *dropped = eventsDropped_;
  return int64_t(held);
}

void CachingAllocator::setPhase(int32_t phase) {
  std::lock_guard<std::mutex> lock(mutex_);
  phase_ = phase;
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
