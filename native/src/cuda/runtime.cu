// The CUDA runtime behind the core: device discovery (once, with the reason when there is none),
// the memory source of the caching allocator, copies and synchronisation. cudart is linked
// statically, so a machine without a driver loads the library and is told why CUDA is off.
#include <cuda_runtime.h>

#include <cstdio>
#include <mutex>

#include "../core/error.h"
#include "../core/runtime.h"
#include "../core/tensor.h"
#include "stream.h"

namespace napo {

namespace {

struct Discovery {
  int deviceCount = 0;
  int runtimeVersion = 0;
  int driverVersion = 0;
  char reason[256] = "";
};

const Discovery& discovery() {
  static Discovery found;
  static std::once_flag once;
  std::call_once(once, [] {
    cudaRuntimeGetVersion(&found.runtimeVersion);
    cudaDriverGetVersion(&found.driverVersion);
    const cudaError_t status = cudaGetDeviceCount(&found.deviceCount);
    if (status != cudaSuccess) {
      found.deviceCount = 0;
      std::snprintf(found.reason, sizeof found.reason, "%s: %s", cudaGetErrorName(status),
                    cudaGetErrorString(status));
      cudaGetLastError();  // the probe's failure must not stick to later calls
    } else if (found.deviceCount == 0) {
      std::snprintf(found.reason, sizeof found.reason, "no CUDA device found");
    }
  });
  return found;
}

napo_status deviceAllocate(int index, size_t bytes, void** out) {
  if (cudaSetDevice(index) != cudaSuccess || cudaMalloc(out, bytes) != cudaSuccess) {
    cudaGetLastError();
    *out = nullptr;
    return NAPO_ERR_OUT_OF_MEMORY;
  }
  return NAPO_OK;
}

void deviceRelease(int index, void* ptr) {
  cudaSetDevice(index);
  cudaFree(ptr);
}

bool deviceMemory(int index, int64_t* freeBytes, int64_t* totalBytes) {
  size_t freeNow = 0, total = 0;
  if (cudaSetDevice(index) != cudaSuccess || cudaMemGetInfo(&freeNow, &total) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  *freeBytes = int64_t(freeNow);
  *totalBytes = int64_t(total);
  return true;
}

}  // namespace

int cudaDeviceCount() { return discovery().deviceCount; }

void cudaBackendInfo(napo_backend_info* info) {
  const Discovery& found = discovery();
  info->cuda_compiled = 1;
  info->cuda_available = found.deviceCount > 0;
  info->cuda_device_count = found.deviceCount;
  info->cuda_runtime_version = found.runtimeVersion;
  info->cuda_driver_version = found.driverVersion;
  std::snprintf(info->cuda_unavailable_reason, sizeof info->cuda_unavailable_reason, "%s", found.reason);
}

MemorySource cudaMemorySource() { return {deviceAllocate, deviceRelease, deviceMemory}; }

napo_status cudaDeviceProperties(int index, napo_device_properties* out) {
  if (index < 0 || index >= cudaDeviceCount()) {
    return fail(NAPO_ERR_UNAVAILABLE, "cuda:%d is not available (%d device(s); %s)", index, cudaDeviceCount(),
                discovery().reason);
  }
  cudaDeviceProp props;
  const cudaError_t status = cudaGetDeviceProperties(&props, index);
  if (status != cudaSuccess) return cudaFailure("deviceProperties", status);
  std::snprintf(out->name, sizeof out->name, "%s", props.name);
  out->total_bytes = int64_t(props.totalGlobalMem);
  out->compute_capability_major = props.major;
  out->compute_capability_minor = props.minor;
  out->multiprocessors = props.multiProcessorCount;
  return NAPO_OK;
}

napo_status cudaCopy(napo_device dst, void* dstPtr, napo_device src, const void* srcPtr, size_t bytes) {
  const int index = dst.kind == NAPO_CUDA ? dst.index : src.index;
  if (index < 0 || index >= cudaDeviceCount()) {
    return fail(NAPO_ERR_UNAVAILABLE, "copy: cuda:%d is not available (%s)", index, discovery().reason);
  }
  cudaSetDevice(index);
  const cudaMemcpyKind kind = dst.kind == NAPO_CPU   ? cudaMemcpyDeviceToHost
                              : src.kind == NAPO_CPU ? cudaMemcpyHostToDevice
                                                     : cudaMemcpyDeviceToDevice;
  cudaStream_t stream = deviceStream(index);
  cudaError_t status = cudaMemcpyAsync(dstPtr, srcPtr, bytes, kind, stream);
  if (status == cudaSuccess) status = cudaStreamSynchronize(stream);
  if (status != cudaSuccess) return cudaFailure("copy", status);
  return NAPO_OK;
}

napo_status cudaSynchronize(int index) {
  if (index < 0 || index >= cudaDeviceCount()) {
    return fail(NAPO_ERR_UNAVAILABLE, "synchronize: cuda:%d is not available (%s)", index, discovery().reason);
  }
  cudaSetDevice(index);
  const cudaError_t status = cudaStreamSynchronize(deviceStream(index));
  if (status != cudaSuccess) return cudaFailure("synchronize", status);
  return NAPO_OK;
}

}  // namespace napo
