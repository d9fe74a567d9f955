// One stream per device (created on first use), and the translation of CUDA errors into napo's.
#pragma once

#include <cuda_runtime.h>

#include "napo/napo.h"

namespace napo {

// The stream napo enqueues on for `deviceIndex` when a caller passes none.
cudaStream_t deviceStream(int deviceIndex);

// `stream` if given, else the device's own.
inline cudaStream_t streamOr(void* stream, int deviceIndex) {
  return stream ? static_cast<cudaStream_t>(stream) : deviceStream(deviceIndex);
}

// Clears the sticky error state where possible and reports "op: cudaErrorX: text".
napo_status cudaFailure(const char* op, cudaError_t status);

}  // namespace napo
