// A napo allocation owned by the model: parameters, gradients, optimizer moments, activations and
// the KV cache all come from napo's caching allocator, so memoryStats counts them, each under the
// category its buffer was made with.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "napo/napo.h"

namespace napo::model {

template <typename T>
class Buffer {
 public:
  explicit Buffer(napo_memory_category category) : category_(category) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  // Makes room for `count` elements on `device` (contents not kept when it grows).
  napo_status reserve(napo_device device, size_t count) {
    if (data_ && count <= capacity_ && device.kind == device_.kind && device.index == device_.index) {
      size_ = count;
      return NAPO_OK;
    }
    release();
    void* raw = nullptr;
    NAPO_TRY(napo_malloc_tagged(device, (count > 0 ? count : 1) * sizeof(T), category_, &raw));
    data_ = static_cast<T*>(raw);
    device_ = device;
    capacity_ = size_ = count;
    return NAPO_OK;
  }

  void release() {
    if (data_) napo_free(device_, data_);
    data_ = nullptr;
    capacity_ = size_ = 0;
  }

  T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

 private:
  napo_memory_category category_;
  napo_device device_{NAPO_CPU, 0};
  T* data_ = nullptr;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace napo::model
