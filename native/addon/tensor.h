// The JS Tensor handle: a napo allocation (device memory or host memory counted by napo's
// allocator), or a caller's TypedArray wrapped without a copy, with a dtype and a shape. Freed by
// dispose() or, failing that, by the finalizer; V8 is told about napo allocations (external
// memory), so the garbage collector runs when they pile up.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "napo/napo.h"

namespace napo::addon {

// The memory behind one or more tensors (reshape views share it), released when the last holder
// lets go. Always destroyed on the JS thread: handles, views and async calls hold it, and each
// lets go there (an AsyncWorker is deleted on the JS thread after its completion callback).
class Storage {
 public:
  // A napo allocation of `bytes`, counted as V8 external memory while it lives.
  Storage(Napi::Env env, napo_device device, void* data, size_t bytes);
  // A caller's TypedArray, kept alive (and not counted: it is the caller's memory).
  Storage(Napi::TypedArray array, void* data, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  napo_device device() const { return device_; }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // A wrapped buffer that was transferred or detached since: its memory is gone.
  bool detached() const;

 private:
  napi_env env_ = nullptr;
  napo_device device_{NAPO_CPU, 0};
  void* data_;
  size_t bytes_;
  Napi::Reference<Napi::TypedArray> wrapped_;
};

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Allocates an uninitialised tensor for `op` and wraps it; throws napo's error (a RangeError
  // naming `op` and the bytes asked for when the shape or the allocation fails).
  static Napi::Object Allocate(Napi::Env env, const char* op, napo_dtype dtype, const std::vector<int64_t>& shape,
                               napo_device device, napo_memory_category category);
  static bool IsHandle(Napi::Value value);
  static TensorHandle* FromValue(Napi::Value value, const char* op, const char* name);

  explicit TensorHandle(const Napi::CallbackInfo& info);

  // The C ABI's view; throws when the tensor wraps a buffer that has been detached since.
  napo_tensor view(Napi::Env env, const char* op) const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  napo_dtype dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  bool disposed() const { return !storage_; }
  void release() { storage_.reset(); }

 private:
  static Napi::Object Adopt(Napi::Env env, std::shared_ptr<Storage> storage, napo_dtype dtype,
                            const std::vector<int64_t>& shape, size_t offset = 0);
  // The bytes this handle sees: its shape's, from `offset_` into the storage.
  size_t viewBytes() const;
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value ArrayView(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Rows(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void requireLive(Napi::Env env, const char* what) const;

  std::shared_ptr<Storage> storage_;
  // Where this handle's data starts in the storage (a row view's first row).
  size_t offset_ = 0;
  napo_dtype dtype_ = NAPO_FLOAT32;
  std::vector<int64_t> shape_;

  friend Napi::Value WrapArray(const Napi::CallbackInfo& info);
};

// wrap(typedArray, dtype, shape): a CPU tensor over the caller's memory, no copy.
Napi::Value WrapArray(const Napi::CallbackInfo& info);

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
