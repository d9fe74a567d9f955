// Masks come as float32, int32, uint8 or bool (one byte) holding 0 or 1 (validated): a kernel
// templated on the element type gets the right pointer from here.
#pragma once

#include <cstdint>

#include "../core/tensor.h"

namespace napo::cpu {

template <typename Fn>
decltype(auto) withMaskData(const napo_tensor& mask, Fn&& fn) {
  switch (mask.dtype) {
    case NAPO_INT32: return fn(dataAs<const int32_t>(mask));
    case NAPO_UINT8:
    case NAPO_BOOL: return fn(dataAs<const uint8_t>(mask));
    default: return fn(dataAs<const float>(mask));
  }
}

}  // namespace napo::cpu
