#include "tensor.h"

#include <cstring>
#include <string>

#include "args.h"
#include "core/tensor.h"
#include "errors.h"

namespace napo::addon {

namespace {

struct AddonData {
  Napi::FunctionReference tensorConstructor;
};

AddonData& addonData(Napi::Env env) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!data) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  return *data;
}

// Bytes of a tensor of this dtype and shape, the shape checked by napo (overflow, limit).
size_t checkedBytes(Napi::Env env, const char* op, napo_dtype dtype, const std::vector<int64_t>& shape) {
  int64_t bytes = 0;
  checkFor(env, op, napo_tensor_bytes(op, dtype, int32_t(shape.size()), shape.data(), &bytes));
  return size_t(bytes);
}

size_t elementCount(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t dim : shape) count *= size_t(dim);
  return count;
}

// A TypedArray of the dtype's JS type over `buffer`.
Napi::TypedArray typedArrayOver(Napi::Env env, napo_dtype dtype, Napi::ArrayBuffer buffer, size_t count) {
  switch (dtype) {
    case NAPO_FLOAT32: return Napi::Float32Array::New(env, count, buffer, 0);
    case NAPO_BFLOAT16: return Napi::Uint16Array::New(env, count, buffer, 0);
    case NAPO_INT32: return Napi::Int32Array::New(env, count, buffer, 0);
    default: return Napi::Uint8Array::New(env, count, buffer, 0);
  }
}

}  // namespace

Storage::Storage(Napi::Env env, napo_device device, void* data, size_t bytes)
    : env_(env), device_(device), data_(data), bytes_(bytes) {
  Napi::MemoryManagement::AdjustExternalMemory(env, int64_t(bytes));
}

Storage::Storage(Napi::TypedArray array, void* data, size_t bytes)
    : data_(data), bytes_(bytes), wrapped_(Napi::Persistent(array)) {}

Storage::~Storage() {
  if (!env_) return;  // a wrapped buffer: the reference lets go of it
  napo_free(device_, data_);
  napi_adjust_external_memory(env_, -int64_t(bytes_), nullptr);
}

bool Storage::detached() const {
  return !wrapped_.IsEmpty() && wrapped_.Value().ArrayBuffer().IsDetached();
}

Napi::Function TensorHandle::Define(Napi::Env env) {
  Napi::Function constructor = DefineClass(
      env, "TensorHandle",
      {
          InstanceAccessor<&TensorHandle::GetDtype>("dtype"),
          InstanceAccessor<&TensorHandle::GetShape>("shape"),
          InstanceAccessor<&TensorHandle::GetDevice>("device"),
          InstanceAccessor<&TensorHandle::GetDisposed>("disposed"),
          InstanceAccessor<&TensorHandle::GetByteLength>("byteLength"),
          InstanceMethod<&TensorHandle::ToArray>("toArray"),
          InstanceMethod<&TensorHandle::ArrayView>("arrayView"),
          InstanceMethod<&TensorHandle::CopyFrom>("copyFrom"),
          InstanceMethod<&TensorHandle::To>("to"),
          InstanceMethod<&TensorHandle::Reshape>("reshape"),
          InstanceMethod<&TensorHandle::Rows>("rows"),
          InstanceMethod<&TensorHandle::Dispose>("dispose"),
      });
  addonData(env).tensorConstructor = Napi::Persistent(constructor);
  return constructor;
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

Napi::Object TensorHandle::Adopt(Napi::Env env, std::shared_ptr<Storage> storage, napo_dtype dtype,
                                 const std::vector<int64_t>& shape, size_t offset) {
  Napi::Object object = addonData(env).tensorConstructor.New({});
  TensorHandle* handle = ObjectWrap<TensorHandle>::Unwrap(object);
  handle->storage_ = std::move(storage);
  handle->offset_ = offset;
  handle->dtype_ = dtype;
  handle->shape_ = shape;
  return object;
}

size_t TensorHandle::viewBytes() const { return elementCount(shape_) * napo::dtypeSize(dtype_); }

Napi::Object TensorHandle::Allocate(Napi::Env env, const char* op, napo_dtype dtype, const std::vector<int64_t>& shape,
                                    napo_device device, napo_memory_category category) {
  const size_t bytes = checkedBytes(env, op, dtype, shape);
  void* data = nullptr;
  checkFor(env, op, napo_malloc_tagged(device, bytes, category, &data));
  // Owned from here on: if creating the JS object throws, the storage still goes back.
  return Adopt(env, std::make_shared<Storage>(env, device, data, bytes), dtype, shape);
}

Napi::Value WrapArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "tensor";
  if (!info[0].IsTypedArray()) throwType(env, "tensor: data must be a TypedArray to be wrapped without a copy");
  Napi::TypedArray array = info[0].As<Napi::TypedArray>();
  const napo_dtype dtype = parseDtype(env, info[1], op);
  const std::vector<int64_t> shape = shapeArg(env, info[2], op);
  const size_t bytes = checkedBytes(env, op, dtype, shape);
  if (bytes != array.ByteLength()) {
    throwRange(env, "tensor: shape holds " + std::to_string(bytes) + " bytes of " + dtypeName(dtype) + ", data has " +
                        std::to_string(array.ByteLength()));
  }
  void* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  return TensorHandle::Adopt(env, std::make_shared<Storage>(array, data, bytes), dtype, shape);
}

bool TensorHandle::IsHandle(Napi::Value value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(addonData(value.Env()).tensorConstructor.Value());
}

TensorHandle* TensorHandle::FromValue(Napi::Value value, const char* op, const char* name) {
  Napi::Env env = value.Env();
  if (!IsHandle(value)) throwType(env, std::string(op) + ": " + name + " must be a Tensor");
  TensorHandle* handle = ObjectWrap<TensorHandle>::Unwrap(value.As<Napi::Object>());
  if (handle->disposed()) throwType(env, std::string(op) + ": " + name + " was disposed");
  return handle;
}

napo_tensor TensorHandle::view(Napi::Env env, const char* op) const {
  if (storage_ && storage_->detached()) {
    throwType(env, std::string(op) + ": the buffer this tensor wraps was detached (transferred); its memory is gone");
  }
  napo_tensor t{};
  t.data = storage_ ? static_cast<uint8_t*>(storage_->data()) + offset_ : nullptr;
  t.dtype = dtype_;
  t.ndim = int32_t(shape_.size());
  for (size_t i = 0; i < shape_.size() && i < NAPO_MAX_DIMS; ++i) t.shape[i] = shape_[i];
  t.device = storage_ ? storage_->device() : napo_device{NAPO_CPU, 0};
  return t;
}

void TensorHandle::requireLive(Napi::Env env, const char* what) const {
  if (!storage_) throwType(env, std::string("Tensor.") + what + ": the tensor was disposed");
}

Napi::Value TensorHandle::GetDtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(dtype_));
}

Napi::Value TensorHandle::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array shape = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i) shape.Set(uint32_t(i), Napi::Number::New(info.Env(), double(shape_[i])));
  return shape;
}

Napi::Value TensorHandle::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), deviceName(storage_ ? storage_->device() : napo_device{NAPO_CPU, 0}));
}

Napi::Value TensorHandle::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

Napi::Value TensorHandle::GetByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(storage_ ? viewBytes() : 0));
}

Napi::Value TensorHandle::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "toArray");
  const napo_tensor source = view(env, "Tensor.toArray");
  const size_t count = elementCount(shape_);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, viewBytes());
  checkFor(env, "Tensor.toArray", napo_memcpy({NAPO_CPU, 0}, buffer.Data(), source.device, source.data, viewBytes()));
  return typedArrayOver(env, dtype_, buffer, count);
}

// The CPU tensor's own memory as a TypedArray: no copy. The array holds the storage, so the
// memory outlives dispose() until the array is collected.
Napi::Value TensorHandle::ArrayView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "toArray");
  const napo_tensor source = view(env, "Tensor.toArray");
  if (source.device.kind != NAPO_CPU) {
    throwType(env, "Tensor.toArray: { copy: false } needs a CPU tensor; this one is on " + deviceName(source.device));
  }
  auto* holder = new std::shared_ptr<Storage>(storage_);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, source.data, viewBytes(),
      [](Napi::Env, void*, std::shared_ptr<Storage>* held) { delete held; }, holder);
  return typedArrayOver(env, dtype_, buffer, elementCount(shape_));
}

// Overwrites the tensor with a TypedArray's bytes or another tensor's (of the same dtype and
// element count, on any device).
Napi::Value TensorHandle::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "copyFrom");
  const size_t bytes = viewBytes();
  if (info.Length() >= 1 && IsHandle(info[0])) {
    TensorHandle* from = FromValue(info[0], "Tensor.copyFrom", "source");
    const napo_tensor source = from->view(env, "Tensor.copyFrom");
    if (from->dtype_ != dtype_ || from->viewBytes() != bytes) {
      throwRange(env, "Tensor.copyFrom: the source (" + std::string(dtypeName(from->dtype_)) + ", " +
                          std::to_string(elementCount(from->shape_)) + " elements) does not match the tensor (" +
                          dtypeName(dtype_) + ", " + std::to_string(elementCount(shape_)) + " elements)");
    }
    const napo_tensor target = view(env, "Tensor.copyFrom");
    checkFor(env, "Tensor.copyFrom", napo_memcpy(target.device, target.data, source.device, source.data, bytes));
    return env.Undefined();
  }
  if (info.Length() < 1 || !info[0].IsTypedArray()) throwType(env, "Tensor.copyFrom: data must be a TypedArray or a Tensor");
  Napi::TypedArray array = info[0].As<Napi::TypedArray>();
  if (array.ByteLength() != bytes) {
    throwRange(env, "Tensor.copyFrom: data has " + std::to_string(array.ByteLength()) + " bytes, the tensor " +
                        std::to_string(bytes));
  }
  const napo_tensor target = view(env, "Tensor.copyFrom");
  const void* source = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  checkFor(env, "Tensor.copyFrom", napo_memcpy(target.device, target.data, {NAPO_CPU, 0}, source, bytes));
  return env.Undefined();
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "to");
  const napo_device device = parseDevice(env, info[0], "Tensor.to");
  const napo_tensor source = view(env, "Tensor.to");
  Napi::Object copy = Allocate(env, "Tensor.to", dtype_, shape_, device, NAPO_MEMORY_INPUT);
  TensorHandle* target = ObjectWrap<TensorHandle>::Unwrap(copy);
  checkFor(env, "Tensor.to", napo_memcpy(device, target->storage_->data(), source.device, source.data, viewBytes()));
  return copy;
}

// A view of the same storage in another shape with as many elements: no copy, and the storage
// lives until every view of it is gone.
Napi::Value TensorHandle::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "Tensor.reshape";
  requireLive(env, "reshape");
  const std::vector<int64_t> shape = shapeArg(env, info[0], op);
  checkedBytes(env, op, dtype_, shape);  // its element count is now safe to compute
  if (elementCount(shape) != elementCount(shape_)) {
    throwRange(env, "Tensor.reshape: " + std::to_string(elementCount(shape_)) + " elements cannot take a shape of " +
                        std::to_string(elementCount(shape)));
  }
  return Adopt(env, storage_, dtype_, shape, offset_);
}

// Rows [begin, end) of the first dimension: a view of the same storage (no copy), contiguous
// because the tensor is row-major.
Napi::Value TensorHandle::Rows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "Tensor.rows";
  requireLive(env, "rows");
  if (shape_.empty()) throwRange(env, "Tensor.rows: a scalar has no rows");
  const int64_t begin = integerArg(env, info[0], op, "begin");
  const int64_t end = integerArg(env, info[1], op, "end");
  if (!(0 <= begin && begin <= end && end <= shape_[0])) {
    throwRange(env, "Tensor.rows: [" + std::to_string(begin) + ", " + std::to_string(end) + ") is not within the " +
                        std::to_string(shape_[0]) + " rows");
  }
  std::vector<int64_t> shape = shape_;
  shape[0] = end - begin;
  const size_t rowBytes = shape_[0] == 0 ? 0 : viewBytes() / size_t(shape_[0]);
  return Adopt(env, storage_, dtype_, shape, offset_ + size_t(begin) * rowBytes);
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  storage_.reset();
  return info.Env().Undefined();
}

}  // namespace napo::addon
