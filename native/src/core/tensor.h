// Helpers over the C ABI's napo_tensor view: sizes, shape text for messages, typed access.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "napo/napo.h"

namespace napo {

inline size_t dtypeSize(napo_dtype dtype) {
  switch (dtype) {
    case NAPO_BFLOAT16:
    case NAPO_FLOAT16: return 2;
    case NAPO_UINT8:
    case NAPO_BOOL: return 1;
    default: return 4;
  }
}

inline const char* dtypeName(napo_dtype dtype) {
  switch (dtype) {
    case NAPO_FLOAT32: return "float32";
    case NAPO_BFLOAT16: return "bfloat16";
    case NAPO_INT32: return "int32";
    case NAPO_UINT8: return "uint8";
    case NAPO_BOOL: return "bool";
    case NAPO_FLOAT16: return "float16";
  }
  return "unknown";
}

inline int64_t numel(const napo_tensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

inline size_t byteSize(const napo_tensor& t) { return size_t(numel(t)) * dtypeSize(t.dtype); }

// "[256, 151936]", for error messages.
std::string shapeText(const napo_tensor& t);

// "cpu" or "cuda:0".
std::string deviceText(napo_device device);

inline bool sameDevice(napo_device a, napo_device b) {
  return a.kind == b.kind && (a.kind == NAPO_CPU || a.index == b.index);
}

// A view of `data` as a tensor of `shape` on `device`: how C++ callers describe their buffers.
inline napo_tensor tensorView(void* data, napo_dtype dtype, std::initializer_list<int64_t> shape,
                              napo_device device = {NAPO_CPU, 0}) {
  napo_tensor t{};
  t.data = data;
  t.dtype = dtype;
  t.ndim = int32_t(shape.size());
  int i = 0;
  for (int64_t extent : shape) t.shape[i++] = extent;
  t.device = device;
  return t;
}

template <typename T>
inline T* dataAs(const napo_tensor& t) {
  return static_cast<T*>(t.data);
}

}  // namespace napo
