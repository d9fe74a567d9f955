#include "tensor.h"

#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"

namespace napo::addon {

namespace {

size_t elementSize(napo_dtype dtype) { return dtype == NAPO_BFLOAT16 ? 2 : 4; }

size_t elementCount(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t dim : shape) count *= size_t(dim);
  return count;
}

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

Napi::Value typedArrayOf(Napi::Env env, napo_dtype dtype, size_t count) {
  switch (dtype) {
    case NAPO_FLOAT32: return Napi::Float32Array::New(env, count);
    case NAPO_BFLOAT16: return Napi::Uint16Array::New(env, count);
    default: return Napi::Int32Array::New(env, count);
  }
}

}  // namespace

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
          InstanceMethod<&TensorHandle::CopyFrom>("copyFrom"),
          InstanceMethod<&TensorHandle::To>("to"),
          InstanceMethod<&TensorHandle::Reshape>("reshape"),
          InstanceMethod<&TensorHandle::Dispose>("dispose"),
      });
  addonData(env).tensorConstructor = Napi::Persistent(constructor);
  return constructor;
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

Napi::Object TensorHandle::Allocate(Napi::Env env, napo_dtype dtype, const std::vector<int64_t>& shape,
                                    napo_device device) {
  const size_t bytes = elementCount(shape) * elementSize(dtype);
  void* data = nullptr;
  check(env, napo_malloc(device, bytes, &data));
  // Owned from here on: if creating the JS object throws, the storage still goes back.
  auto storage = std::make_shared<Storage>(device, data, bytes);
  Napi::Object object = addonData(env).tensorConstructor.New({});
  TensorHandle* handle = ObjectWrap<TensorHandle>::Unwrap(object);
  handle->storage_ = std::move(storage);
  handle->dtype_ = dtype;
  handle->shape_ = shape;
  return object;
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

napo_tensor TensorHandle::view() const {
  napo_tensor t{};
  t.data = storage_ ? storage_->data() : nullptr;
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
  return Napi::String::New(info.Env(), deviceName(view().device));
}

Napi::Value TensorHandle::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

Napi::Value TensorHandle::GetByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(elementCount(shape_) * elementSize(dtype_)));
}

Napi::Value TensorHandle::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "toArray");
  const size_t count = elementCount(shape_);
  Napi::TypedArray array = typedArrayOf(env, dtype_, count).As<Napi::TypedArray>();
  void* destination = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  check(env, napo_memcpy({NAPO_CPU, 0}, destination, storage_->device(), storage_->data(), count * elementSize(dtype_)));
  return array;
}

Napi::Value TensorHandle::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "copyFrom");
  if (info.Length() < 1 || !info[0].IsTypedArray()) throwType(env, "Tensor.copyFrom: data must be a TypedArray");
  Napi::TypedArray array = info[0].As<Napi::TypedArray>();
  const size_t bytes = elementCount(shape_) * elementSize(dtype_);
  if (array.ByteLength() != bytes) {
    throwRange(env, "Tensor.copyFrom: data has " + std::to_string(array.ByteLength()) + " bytes, the tensor " +
                        std::to_string(bytes));
  }
  const void* source = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  check(env, napo_memcpy(storage_->device(), storage_->data(), {NAPO_CPU, 0}, source, bytes));
  return env.Undefined();
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "to");
  const napo_device device = parseDevice(env, info[0], "Tensor.to");
  Napi::Object copy = Allocate(env, dtype_, shape_, device);
  TensorHandle* target = ObjectWrap<TensorHandle>::Unwrap(copy);
  check(env, napo_memcpy(device, target->storage_->data(), storage_->device(), storage_->data(), storage_->bytes()));
  return copy;
}

// A view of the same storage in another shape with as many elements: no copy, and the storage
// lives until every view of it is gone.
Napi::Value TensorHandle::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireLive(env, "reshape");
  if (info.Length() < 1 || !info[0].IsArray()) throwType(env, "Tensor.reshape: shape must be an array of integers");
  Napi::Array dims = info[0].As<Napi::Array>();
  if (dims.Length() > NAPO_MAX_DIMS) throwRange(env, "Tensor.reshape: at most 8 dimensions");
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < dims.Length(); ++i) {
    const double dim = numberArg(env, dims.Get(i), "Tensor.reshape", "shape");
    if (!(dim >= 0) || dim != double(int64_t(dim))) {
      throwRange(env, "Tensor.reshape: shape[" + std::to_string(i) + "] = " + std::to_string(dim) + " must be a non-negative integer");
    }
    shape.push_back(int64_t(dim));
  }
  if (elementCount(shape) != elementCount(shape_)) {
    throwRange(env, "Tensor.reshape: " + std::to_string(elementCount(shape_)) + " elements cannot take a shape of " +
                        std::to_string(elementCount(shape)));
  }
  Napi::Object view = addonData(env).tensorConstructor.New({});
  TensorHandle* handle = ObjectWrap<TensorHandle>::Unwrap(view);
  handle->storage_ = storage_;
  handle->dtype_ = dtype_;
  handle->shape_ = shape;
  return view;
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  storage_.reset();
  return info.Env().Undefined();
}

}  // namespace napo::addon
