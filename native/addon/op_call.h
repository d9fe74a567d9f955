// One op call as a plain struct, in the sync and the async form alike: prepare() reads the JS
// arguments into C values, has napo validate them and allocates the outputs, on the JS thread;
// run() calls the C ABI (on the JS thread, or on a libuv worker for the *Async form); result()
// builds the JS value. The call holds its inputs' storage, so a tensor disposed while an async
// call runs stays valid until it ends, and a failed call frees its outputs at once.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "tensor.h"

namespace napo::addon {

class OpCall {
 public:
  OpCall() = default;
  OpCall(OpCall&&) = default;
  OpCall& operator=(OpCall&&) = default;
  ~OpCall() { discardOutputs(); }

  // A tensor argument, kept alive for the call.
  napo_tensor input(Napi::Value value, const char* op, const char* name) {
    TensorHandle* handle = TensorHandle::FromValue(value, op, name);
    inputs_.push_back(handle->storage());
    return handle->view(value.Env(), op);
  }

  // An optional tensor argument: null or undefined gives none.
  bool optionalInput(Napi::Value value, const char* op, const char* name, napo_tensor* out) {
    if (value.IsNull() || value.IsUndefined()) return false;
    *out = input(value, op, name);
    return true;
  }

  // A new output tensor; index `outputs().size() - 1` in result().
  napo_tensor output(Napi::Env env, const char* op, napo_dtype dtype, const std::vector<int64_t>& shape,
                     napo_device device, napo_memory_category category = NAPO_MEMORY_TEMPORARY) {
    Napi::Object handle = TensorHandle::Allocate(env, op, dtype, shape, device, category);
    outputs_.push_back(Napi::Persistent(handle));
    return Napi::ObjectWrap<TensorHandle>::Unwrap(handle)->view(env, op);
  }

  Napi::Object outputObject(size_t index) const { return outputs_[index].Value(); }

  // The call succeeded and result() handed the outputs to JS.
  void commitOutputs() { outputs_.clear(); }

  void discardOutputs() {
    for (Napi::ObjectReference& handle : outputs_) {
      if (!handle.IsEmpty()) Napi::ObjectWrap<TensorHandle>::Unwrap(handle.Value())->release();
    }
    outputs_.clear();
  }

 private:
  std::vector<std::shared_ptr<Storage>> inputs_;
  std::vector<Napi::ObjectReference> outputs_;
};

// op(args...) -> the result, or a thrown TypeError / RangeError / Error.
template <typename Call>
Napi::Value runSync(const Napi::CallbackInfo& info) {
  Call call;
  call.prepare(info);
  const napo_status status = call.run();
  if (status != NAPO_OK) throwStatus(info.Env(), status);  // ~Call frees the outputs
  Napi::Value result = call.result(info.Env());
  call.commitOutputs();
  return result;
}

template <typename Call>
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, Napi::Promise::Deferred deferred, Call&& call)
      : Napi::AsyncWorker(env, Call::kName), deferred_(deferred), call_(std::move(call)) {}

  void Execute() override {
    status_ = call_.run();
    if (status_ != NAPO_OK) message_ = napo_last_error();  // thread-local: read it on this thread
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    if (status_ != NAPO_OK) {
      call_.discardOutputs();
      deferred_.Reject(statusError(Env(), status_, message_).Value());
      return;
    }
    deferred_.Resolve(call_.result(Env()));
    call_.commitOutputs();
  }

 private:
  Napi::Promise::Deferred deferred_;
  Call call_;
  napo_status status_ = NAPO_OK;
  std::string message_;
};

// opAsync(args...) -> a Promise of the result; bad arguments reject it (never throw).
template <typename Call>
Napi::Value runAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  try {
    Call call;
    call.prepare(info);
    (new OpWorker<Call>(env, deferred, std::move(call)))->Queue();
  } catch (const Napi::Error& error) {
    deferred.Reject(error.Value());
  }
  return deferred.Promise();
}

// Registers `name` and `nameAsync`.
template <typename Call>
void registerOp(Napi::Env env, Napi::Object exports) {
  const std::string name = Call::kName;
  exports.Set(name, Napi::Function::New<runSync<Call>>(env, name));
  exports.Set(name + "Async", Napi::Function::New<runAsync<Call>>(env, name + "Async"));
}

}  // namespace napo::addon
