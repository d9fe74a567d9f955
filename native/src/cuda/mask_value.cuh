// A mask's element as a float, whichever of its dtypes it is stored in (float32, int32, uint8 or
// bool: 0 or 1, checked by the kernels that read it).
#pragma once

#include <cstdint>

#include "napo/napo.h"

namespace napo::cuda {

__device__ __forceinline__ float maskValueAt(const void* mask, napo_dtype dtype, int64_t i) {
  switch (dtype) {
    case NAPO_INT32: return float(static_cast<const int32_t*>(mask)[i]);
    case NAPO_UINT8:
    case NAPO_BOOL: return float(static_cast<const uint8_t*>(mask)[i]);
    default: return static_cast<const float*>(mask)[i];
  }
}

}  // namespace napo::cuda
