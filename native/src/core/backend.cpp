// The C ABI of backends, devices, memory and threads.
#include <cstdio>
#include <cstring>

#include "../cpu/backend.h"
#include "allocator.h"
#include "error.h"
#include "runtime.h"
#include "thread_pool.h"
#include "validate.h"

using namespace napo;

extern "C" {

napo_status napo_backend_info_get(napo_backend_info* out) {
  if (!out) return fail(NAPO_ERR_TYPE, "backendInfo: out is missing");
  std::memset(out, 0, sizeof *out);
  cudaBackendInfo(out);
  out->cpu_threads = threadCount();
  std::snprintf(out->cpu_isa, sizeof out->cpu_isa, "%s", cpuBackend().isa);
  std::snprintf(out->cpu_isa_supported, sizeof out->cpu_isa_supported, "%s", cpuIsaSupported());
  std::snprintf(out->cpu_note, sizeof out->cpu_note, "%s%s%s", cpuIsaNote(),
                *cpuIsaNote() && *threadCountNote() ? "; " : "", threadCountNote());
  return NAPO_OK;
}

napo_status napo_cuda_device_properties(int32_t index, napo_device_properties* out) {
  if (!out) return fail(NAPO_ERR_TYPE, "deviceProperties: out is missing");
  return cudaDeviceProperties(index, out);
}

int32_t napo_cpu_threads(void) { return threadCount(); }

napo_status napo_set_cpu_threads(int32_t threads) {
  if (threads < 1 || threads > kMaxThreads) {
    return fail(NAPO_ERR_RANGE, "setCpuThreads: threads = %d must be in [1, %d]", threads, kMaxThreads);
  }
  setThreadCount(threads);
  return NAPO_OK;
}

napo_status napo_tensor_bytes(const char* op, napo_dtype dtype, int32_t ndim, const int64_t* shape, int64_t* bytes) {
  if (!op || !bytes || (ndim > 0 && !shape)) return fail(NAPO_ERR_TYPE, "tensorBytes: op, shape and bytes are required");
  if (dtype < NAPO_FLOAT32 || dtype > NAPO_FLOAT16) return fail(NAPO_ERR_TYPE, "%s: unknown dtype %d", op, int(dtype));
  return checkShape(op, "shape", dtype, ndim, shape, bytes);
}

napo_status napo_malloc(napo_device device, size_t bytes, void** out) {
  return napo_malloc_tagged(device, bytes, NAPO_MEMORY_TEMPORARY, out);
}

napo_status napo_malloc_tagged(napo_device device, size_t bytes, napo_memory_category category, void** out) {
  if (!out) return fail(NAPO_ERR_TYPE, "malloc: out is missing");
  if (category < NAPO_MEMORY_PARAMETER || category > NAPO_MEMORY_WORKSPACE) {
    return fail(NAPO_ERR_RANGE, "malloc: unknown memory category %d", int(category));
  }
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  return allocator->allocate(bytes, category, out);
}

napo_status napo_free(napo_device device, void* ptr) {
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  return allocator->release(ptr);
}

napo_status napo_memory_stats_get(napo_device device, napo_memory_stats* out) {
  if (!out) return fail(NAPO_ERR_TYPE, "memoryStats: out is missing");
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  *out = allocator->stats();
  return NAPO_OK;
}

napo_status napo_reset_peak_memory_stats(napo_device device) {
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  allocator->resetPeak();
  return NAPO_OK;
}

napo_status napo_memory_record_history(napo_device device, int64_t max_events) {
  if (max_events < 0 || max_events > (int64_t(1) << 26)) {
    return fail(NAPO_ERR_RANGE, "recordMemoryHistory: maxEvents = %lld must be in [0, 67108864] (0 stops)", (long long)max_events);
  }
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  allocator->recordHistory(max_events);
  return NAPO_OK;
}

int64_t napo_memory_history(napo_device device, napo_memory_event* out, int64_t capacity, int64_t* dropped) {
  CachingAllocator* allocator;
  if (allocatorFor(device, &allocator) != NAPO_OK || (capacity > 0 && !out)) return -1;
  return allocator->history(out, capacity, dropped);
}

napo_status napo_memory_set_phase(napo_device device, int32_t phase) {
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  allocator->setPhase(phase);
  return NAPO_OK;
}

napo_status napo_empty_cache(napo_device device) {
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device, &allocator));
  allocator->emptyCache();
  return NAPO_OK;
}

napo_status napo_memcpy(napo_device dstDevice, void* dst, napo_device srcDevice, const void* src, size_t bytes) {
  if (bytes == 0) return NAPO_OK;
  if (!dst || !src) return fail(NAPO_ERR_TYPE, "memcpy: a null pointer for %zu bytes", bytes);
  if (dstDevice.kind == NAPO_CPU && srcDevice.kind == NAPO_CPU) {
    std::memcpy(dst, src, bytes);
    return NAPO_OK;
  }
  return cudaCopy(dstDevice, dst, srcDevice, src, bytes);
}

napo_status napo_synchronize(napo_device device) {
  if (device.kind == NAPO_CPU) return NAPO_OK;
  return cudaSynchronize(device.index);
}

}  // extern "C"
