// The JS Tensor handle: a napo allocation (device memory or host memory counted by napo's
// allocator) with a dtype and a shape. Freed by dispose() or, failing that, by the finalizer.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "napo/napo.h"

namespace napo::addon {

// One allocation; freed through the allocator it came from when the last holder lets go.
class Storage {
 public:
  Storage(napo_device device, void* data, size_t bytes) : device_(device), data_(data), bytes_(bytes) {}
  ~Storage() { napo_free(device_, data_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  napo_device device() const { return device_; }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  napo_device device_;
  void* data_;
  size_t bytes_;
};

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Allocates an uninitialised tensor and wraps it; throws the allocator's error.
  static Napi::Object Allocate(Napi::Env env, napo_dtype dtype, const std::vector<int64_t>& shape, napo_device device);
  static bool IsHandle(Napi::Value value);
  static TensorHandle* FromValue(Napi::Value value, const char* op, const char* name);

  explicit TensorHandle(const Napi::CallbackInfo& info);

  napo_tensor view() const;
  napo_dtype dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  bool disposed() const { return !storage_; }
  void release() { storage_.reset(); }

 private:
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void requireLive(Napi::Env env, const char* what) const;

  std::shared_ptr<Storage> storage_;
  napo_dtype dtype_ = NAPO_FLOAT32;
  std::vector<int64_t> shape_;
};

// Outputs allocated for one op call: freed at once if the call throws, so a failed call leaves
// the allocator's counters as they were instead of waiting for the garbage collector.
class PendingOutputs {
 public:
  PendingOutputs() = default;
  PendingOutputs(const PendingOutputs&) = delete;
  PendingOutputs& operator=(const PendingOutputs&) = delete;
  ~PendingOutputs() {
    for (TensorHandle* handle : handles_) handle->release();
  }

  Napi::Object add(Napi::Object handle) {
    handles_.push_back(Napi::ObjectWrap<TensorHandle>::Unwrap(handle));
    return handle;
  }
  // The call succeeded: the outputs now belong to JS.
  void commit() { handles_.clear(); }

 private:
  std::vector<TensorHandle*> handles_;
};

}  // namespace napo::addon
