// What the core asks of the CUDA runtime. Implemented by src/cuda/runtime.cu when nvcc built
// the library, and by src/core/cuda_absent.cpp otherwise, so the core never sees a CUDA type.
#pragma once

#include "allocator.h"
#include "napo/napo.h"

namespace napo {

// Devices that answered; 0 when CUDA is not compiled, no driver or no device. Probed once.
int cudaDeviceCount();
// Fills the cuda_* fields of `info`, with the reason when CUDA is unusable.
void cudaBackendInfo(napo_backend_info* info);
MemorySource cudaMemorySource();
napo_status cudaDeviceProperties(int index, napo_device_properties* out);
// Blocking copy where at least one side is a CUDA device.
napo_status cudaCopy(napo_device dst, void* dstPtr, napo_device src, const void* srcPtr, size_t bytes);
napo_status cudaSynchronize(int index);

}  // namespace napo
