// Glue only: argument checks, copies of inputs into plain C++ values on the main thread, and
// AsyncWorkers that call the napo_model C ABI off the JS thread. A model runs one call at a time;
// a second call while one is in flight throws at once (the busy flag).
#include "model.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "errors.h"
#include "core/tensor.h"
#include "napo/model.h"
#include "tensor.h"

namespace napo::addon {

using napo::tensorView;

namespace {

int64_t intArg(Napi::Env env, Napi::Value value, const char* op, const char* name, int64_t lo, int64_t hi) {
  const double number = numberArg(env, value, op, name);
  if (!(number >= double(lo) && number <= double(hi)) || number != double(int64_t(number))) {
    throwRange(env, std::string(op) + ": " + name + " = " + std::to_string(number) + " must be an integer in [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return int64_t(number);
}

std::vector<int32_t> copyInt32(Napi::Int32Array array) {
  return std::vector<int32_t>(array.Data(), array.Data() + array.ElementLength());
}


class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ModelHandle",
                       {
                           InstanceAccessor<&ModelHandle::GetConfig>("config"),
                           InstanceAccessor<&ModelHandle::GetOptimizerSteps>("optimizerSteps"),
                           InstanceAccessor<&ModelHandle::GetDisposed>("disposed"),
                           InstanceMethod<&ModelHandle::Forward>("forward"),
                           InstanceMethod<&ModelHandle::Backward>("backward"),
                           InstanceMethod<&ModelHandle::Step>("step"),
                           InstanceMethod<&ModelHandle::ZeroGrad>("zeroGrad"),
                           InstanceMethod<&ModelHandle::Prefill>("prefill"),
                           InstanceMethod<&ModelHandle::DecodeStep>("decodeStep"),
                           InstanceMethod<&ModelHandle::CachePosition>("cachePosition"),
                           InstanceMethod<&ModelHandle::Clone>("clone"),
                           InstanceMethod<&ModelHandle::Parameters>("parameters"),
                           InstanceMethod<&ModelHandle::GetParameter>("getParameter"),
                           InstanceMethod<&ModelHandle::SetParameter>("setParameter"),
                           InstanceMethod<&ModelHandle::GetGradient>("getGradient"),
                           InstanceMethod<&ModelHandle::GetOptimizerState>("getOptimizerState"),
                           InstanceMethod<&ModelHandle::SetOptimizerState>("setOptimizerState"),
                           InstanceMethod<&ModelHandle::Dispose>("dispose"),
                       });
  }

  // new ModelHandle({vocabSize, contextLength, dModel, nLayers, nHeads, seed, device}); the addon
  // itself passes an External to adopt a clone.
  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "TinyGPT";
    if (info.Length() >= 1 && info[0].IsExternal()) {
      model_ = info[0].As<Napi::External<napo_model>>().Data();
      return;
    }
    if (info.Length() < 1 || !info[0].IsObject()) throwType(env, "TinyGPT: config must be an object");
    Napi::Object c = info[0].As<Napi::Object>();
    napo_model_config config{};
    config.vocab_size = int32_t(intArg(env, c.Get("vocabSize"), op, "vocabSize", 1, 1 << 24));
    config.context_length = int32_t(intArg(env, c.Get("contextLength"), op, "contextLength", 1, 65536));
    config.d_model = int32_t(intArg(env, c.Get("dModel"), op, "dModel", 1, 65536));
    config.n_layers = int32_t(intArg(env, c.Get("nLayers"), op, "nLayers", 1, 1024));
    config.n_heads = int32_t(intArg(env, c.Get("nHeads"), op, "nHeads", 1, 65536));
    config.seed = uint64Arg(env, c.Get("seed"), op, "seed");
    config.device = parseDevice(env, c.Get("device"), op);
    check(env, napo_model_create(&config, &model_));
  }

  ~ModelHandle() override {
    if (model_) napo_model_destroy(model_);
  }

  napo_model* model() const { return model_; }
  void release() { busy_ = nullptr; }

  // Claims the model for one call; throws if disposed or busy.
  void acquire(Napi::Env env, const char* op) {
    if (!model_) throwType(env, std::string(op) + ": the model was disposed");
    if (busy_) {
      throw Napi::Error::New(env, std::string(op) + ": the model is busy with " + busy_ +
                                      "; await it first (a model runs one call at a time)");
    }
    busy_ = op;
  }

  void requireIdle(Napi::Env env, const char* op) {
    acquire(env, op);
    busy_ = nullptr;
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Prefill(const Napi::CallbackInfo& info);
  Napi::Value DecodeStep(const Napi::CallbackInfo& info);
  Napi::Value RunBatch(const Napi::CallbackInfo& info, bool prefill);

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.zeroGrad");
    check(env, napo_model_zero_grad(model_));
    return env.Undefined();
  }

  Napi::Value CachePosition(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.cachePosition");
    const int64_t row = intArg(env, info[0], "TinyGPT.cachePosition", "row", 0, int64_t(1) << 40);
    return Napi::Number::New(env, double(napo_model_cache_position(model_, row)));
  }

  Napi::Value GetConfig(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.config");
    napo_model_config c{};
    check(env, napo_model_config_get(model_, &c));
    Napi::Object out = Napi::Object::New(env);
    out.Set("vocabSize", c.vocab_size);
    out.Set("contextLength", c.context_length);
    out.Set("dModel", c.d_model);
    out.Set("nLayers", c.n_layers);
    out.Set("nHeads", c.n_heads);
    out.Set("seed", Napi::BigInt::New(env, c.seed));
    out.Set("device", deviceName(c.device));
    return out;
  }

  Napi::Value GetOptimizerSteps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? double(napo_model_optimizer_steps(model_)) : 0.0);
  }

  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), model_ == nullptr); }

  Napi::Value Clone(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.clone");
    napo_model* copy = nullptr;
    check(env, napo_model_clone(model_, &copy));
    Napi::Function constructor = info.This().As<Napi::Object>().Get("constructor").As<Napi::Function>();
    return constructor.New({Napi::External<napo_model>::New(env, copy)});
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.parameters");
    const int64_t count = napo_model_parameter_count(model_);
    Napi::Array out = Napi::Array::New(env, size_t(count));
    for (int64_t i = 0; i < count; ++i) {
      napo_model_parameter_info p{};
      check(env, napo_model_parameter_info_get(model_, i, &p));
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", p.name);
      Napi::Array shape = Napi::Array::New(env, size_t(p.ndim));
      for (int32_t d = 0; d < p.ndim; ++d) shape.Set(uint32_t(d), Napi::Number::New(env, double(p.shape[d])));
      entry.Set("shape", shape);
      out.Set(uint32_t(i), entry);
    }
    return out;
  }

  int64_t numelOf(Napi::Env env, int64_t index, const char* op) {
    napo_model_parameter_info p{};
    const int64_t count = napo_model_parameter_count(model_);
    if (index < 0 || index >= count) {
      throwRange(env, std::string(op) + ": index = " + std::to_string(index) + " must be in [0, " + std::to_string(count) + ")");
    }
    check(env, napo_model_parameter_info_get(model_, index, &p));
    return p.numel;
  }

  Napi::Value GetParameter(const Napi::CallbackInfo& info) { return ReadParam(info, false); }
  Napi::Value GetGradient(const Napi::CallbackInfo& info) { return ReadParam(info, true); }

  Napi::Value ReadParam(const Napi::CallbackInfo& info, bool gradient) {
    Napi::Env env = info.Env();
    const char* op = gradient ? "TinyGPT.getGradient" : "TinyGPT.getParameter";
    requireIdle(env, op);
    const int64_t index = intArg(env, info[0], op, "index", -1, int64_t(1) << 40);
    const int64_t numel = numelOf(env, index, op);
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(numel));
    check(env, gradient ? napo_model_gradient_read(model_, index, out.Data()) : napo_model_parameter_read(model_, index, out.Data()));
    return out;
  }

  Napi::Value SetParameter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "TinyGPT.setParameter";
    requireIdle(env, op);
    const int64_t index = intArg(env, info[0], op, "index", -1, int64_t(1) << 40);
    const int64_t numel = numelOf(env, index, op);
    Napi::Float32Array data = float32ArrayArg(env, info[1], op, "data");
    if (int64_t(data.ElementLength()) != numel) {
      throwRange(env, std::string(op) + ": data has " + std::to_string(data.ElementLength()) + " values, the parameter " +
                          std::to_string(numel));
    }
    check(env, napo_model_parameter_write(model_, index, data.Data()));
    return env.Undefined();
  }

  // -> {expAvg: Float32Array, expAvgSq: Float32Array, steps}: the AdamW moments packed in
  // parameter order (zeros before the first step).
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "TinyGPT.getOptimizerState");
    const int64_t total = napo_model_parameter_total(model_);
    Napi::Float32Array expAvg = Napi::Float32Array::New(env, size_t(total));
    Napi::Float32Array expAvgSq = Napi::Float32Array::New(env, size_t(total));
    int64_t steps = 0;
    check(env, napo_model_optimizer_state_read(model_, expAvg.Data(), expAvgSq.Data(), &steps));
    Napi::Object out = Napi::Object::New(env);
    out.Set("expAvg", expAvg);
    out.Set("expAvgSq", expAvgSq);
    out.Set("steps", Napi::Number::New(env, double(steps)));
    return out;
  }

  // (expAvg: Float32Array, expAvgSq: Float32Array, steps): each array the parameter total long.
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "TinyGPT.setOptimizerState";
    requireIdle(env, op);
    Napi::Float32Array expAvg = float32ArrayArg(env, info[0], op, "expAvg");
    Napi::Float32Array expAvgSq = float32ArrayArg(env, info[1], op, "expAvgSq");
    const int64_t steps = intArg(env, info[2], op, "steps", 0, (int64_t(1) << 53));
    const int64_t total = napo_model_parameter_total(model_);
    for (const auto& [name, array] : {std::pair<const char*, Napi::Float32Array>{"expAvg", expAvg}, {"expAvgSq", expAvgSq}}) {
      if (int64_t(array.ElementLength()) != total) {
        throwRange(env, std::string(op) + ": " + name + " has " + std::to_string(array.ElementLength()) +
                            " values, the model's parameter total is " + std::to_string(total));
      }
    }
    check(env, napo_model_optimizer_state_write(model_, expAvg.Data(), expAvgSq.Data(), steps));
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return env.Undefined();
    requireIdle(env, "TinyGPT.dispose");
    napo_model_destroy(model_);
    model_ = nullptr;
    return env.Undefined();
  }

  napo_model* model_ = nullptr;
  const char* busy_ = nullptr;
};

// One model call off the main thread; resolves with result() or rejects with a typed error.
class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, ModelHandle* handle, Napi::Object self)
      : Napi::AsyncWorker(env, "napo:model"), handle_(handle), deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    status_ = run();
    if (status_ != NAPO_OK) {
      message_ = napo_last_error();
      SetError(message_);
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    handle_->release();
    deferred_.Resolve(result(Env()));
  }

  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    handle_->release();
    deferred_.Reject(statusError(Env(), status_, message_).Value());
  }

 protected:
  virtual napo_status run() = 0;
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }
  napo_model* model() const { return handle_->model(); }

 private:
  ModelHandle* handle_;
  Napi::ObjectReference self_;  // keeps the model alive while the worker runs
  Napi::Promise::Deferred deferred_;
  napo_status status_ = NAPO_OK;
  std::string message_;
};

// forward / prefill: tokens copied in, logits tensor allocated on the main thread.
class BatchWorker : public ModelWorker {
 public:
  BatchWorker(Napi::Env env, ModelHandle* handle, Napi::Object self, bool prefill, std::vector<int32_t> tokens,
              std::vector<int32_t> lengths, bool hasLengths, int64_t batch, int64_t time, Napi::Object logits)
      : ModelWorker(env, handle, self), prefill_(prefill), tokens_(std::move(tokens)), lengths_(std::move(lengths)),
        hasLengths_(hasLengths), batch_(batch), time_(time) {
    logitsView_ = TensorHandle::FromValue(logits, "TinyGPT", "logits")->view(Env(), "TinyGPT");
    logits_ = Napi::Persistent(logits);
  }

 protected:
  napo_status run() override {
    napo_tensor tokens = tensorView(tokens_.data(), NAPO_INT32, {batch_, time_});
    napo_tensor lengths = tensorView(lengths_.data(), NAPO_INT32, {batch_});
    return prefill_ ? napo_model_prefill(model(), &tokens, hasLengths_ ? &lengths : nullptr, &logitsView_)
                    : napo_model_forward(model(), &tokens, hasLengths_ ? &lengths : nullptr, &logitsView_);
  }
  Napi::Value result(Napi::Env env) override { return logits_.Value(); }

 private:
  bool prefill_;
  std::vector<int32_t> tokens_, lengths_;
  bool hasLengths_;
  int64_t batch_, time_;
  napo_tensor logitsView_{};
  Napi::ObjectReference logits_;
};

class BackwardWorker : public ModelWorker {
 public:
  BackwardWorker(Napi::Env env, ModelHandle* handle, Napi::Object self, napo_tensor grad, std::vector<float> data)
      : ModelWorker(env, handle, self), grad_(grad), data_(std::move(data)) {
    grad_.data = data_.data();
    grad_.device = {NAPO_CPU, 0};
  }

 protected:
  napo_status run() override { return napo_model_backward(model(), &grad_); }

 private:
  napo_tensor grad_;
  std::vector<float> data_;
};

class StepWorker : public ModelWorker {
 public:
  StepWorker(Napi::Env env, ModelHandle* handle, Napi::Object self, napo_adamw_options options)
      : ModelWorker(env, handle, self), options_(options) {}

 protected:
  napo_status run() override { return napo_model_step(model(), &options_, &result_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("gradNorm", result_.grad_norm);
    out.Set("clipScale", result_.clip_scale);
    out.Set("step", double(result_.step));
    return out;
  }

 private:
  napo_adamw_options options_;
  napo_adamw_result result_{};
};

class DecodeWorker : public ModelWorker {
 public:
  DecodeWorker(Napi::Env env, ModelHandle* handle, Napi::Object self, std::vector<int32_t> tokens, Napi::Object logits)
      : ModelWorker(env, handle, self), tokens_(std::move(tokens)) {
    logitsView_ = TensorHandle::FromValue(logits, "TinyGPT", "logits")->view(Env(), "TinyGPT");
    logits_ = Napi::Persistent(logits);
  }

 protected:
  napo_status run() override {
    napo_tensor tokens = tensorView(tokens_.data(), NAPO_INT32, {int64_t(tokens_.size())});
    return napo_model_decode_step(model(), &tokens, &logitsView_);
  }
  Napi::Value result(Napi::Env env) override { return logits_.Value(); }

 private:
  std::vector<int32_t> tokens_;
  napo_tensor logitsView_{};
  Napi::ObjectReference logits_;
};

napo_device modelDevice(Napi::Env env, napo_model* model) {
  napo_model_config c{};
  check(env, napo_model_config_get(model, &c));
  return c.device;
}

int64_t vocabOf(Napi::Env env, napo_model* model) {
  napo_model_config c{};
  check(env, napo_model_config_get(model, &c));
  return c.vocab_size;
}

// (tokens: Int32Array, batch, time, lengths: Int32Array | null)
Napi::Value ModelHandle::RunBatch(const Napi::CallbackInfo& info, bool prefill) {
  Napi::Env env = info.Env();
  const char* op = prefill ? "TinyGPT.prefill" : "TinyGPT.forward";
  if (!model_) throwType(env, std::string(op) + ": the model was disposed");
  Napi::Int32Array tokens = int32ArrayArg(env, info[0], op, "tokens");
  const int64_t batch = intArg(env, info[1], op, "batch", 0, int64_t(1) << 31);
  const int64_t time = intArg(env, info[2], op, "time", 0, int64_t(1) << 31);
  if (int64_t(tokens.ElementLength()) != batch * time) {
    throwRange(env, std::string(op) + ": tokens has " + std::to_string(tokens.ElementLength()) + " values, expected batch * time = " +
                        std::to_string(batch * time));
  }
  const bool hasLengths = !(info[3].IsNull() || info[3].IsUndefined());
  std::vector<int32_t> lengths;
  if (hasLengths) {
    Napi::Int32Array lengthsArray = int32ArrayArg(env, info[3], op, "lengths");
    if (int64_t(lengthsArray.ElementLength()) != batch) {
      throwRange(env, std::string(op) + ": lengths has " + std::to_string(lengthsArray.ElementLength()) + " values, expected batch = " +
                          std::to_string(batch));
    }
    lengths = copyInt32(lengthsArray);
  } else {
    lengths.assign(size_t(batch), int32_t(time));
  }
  if (batch == 0) throwRange(env, std::string(op) + ": the batch is empty");
  if (time == 0) throwRange(env, std::string(op) + ": sequences are empty (time = 0)");
  const int64_t vocab = vocabOf(env, model_);
  std::vector<int64_t> shape = prefill ? std::vector<int64_t>{batch, vocab} : std::vector<int64_t>{batch, time, vocab};
  Napi::Object logits = TensorHandle::Allocate(env, "TinyGPT", NAPO_FLOAT32, shape, modelDevice(env, model_));
  acquire(env, op);
  auto* worker = new BatchWorker(env, this, info.This().As<Napi::Object>(), prefill, copyInt32(tokens), std::move(lengths),
                                 hasLengths, batch, time, logits);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value ModelHandle::Forward(const Napi::CallbackInfo& info) { return RunBatch(info, false); }
Napi::Value ModelHandle::Prefill(const Napi::CallbackInfo& info) { return RunBatch(info, true); }

Napi::Value ModelHandle::Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "TinyGPT.backward";
  if (!model_) throwType(env, std::string(op) + ": the model was disposed");
  TensorHandle* grad = TensorHandle::FromValue(info[0], op, "gradLogits");
  napo_tensor view = grad->view(env, "TinyGPT.backward");
  if (view.dtype != NAPO_FLOAT32) throwType(env, std::string(op) + ": gradLogits must be float32");
  size_t count = 1;
  for (int32_t i = 0; i < view.ndim; ++i) count *= size_t(view.shape[i]);
  // A snapshot, so disposing or reusing the tensor while the backward runs is harmless.
  std::vector<float> data(count);
  check(env, napo_memcpy({NAPO_CPU, 0}, data.data(), view.device, view.data, count * sizeof(float)));
  acquire(env, op);
  auto* worker = new BackwardWorker(env, this, info.This().As<Napi::Object>(), view, std::move(data));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value ModelHandle::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "TinyGPT.step";
  if (!model_) throwType(env, std::string(op) + ": the model was disposed");
  if (!info[0].IsObject()) throwType(env, "TinyGPT.step: options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  napo_adamw_options options{};
  options.lr = float(numberArg(env, o.Get("lr"), op, "lr"));
  options.beta1 = float(numberArg(env, o.Get("beta1"), op, "beta1"));
  options.beta2 = float(numberArg(env, o.Get("beta2"), op, "beta2"));
  options.eps = float(numberArg(env, o.Get("eps"), op, "eps"));
  options.weight_decay = float(numberArg(env, o.Get("weightDecay"), op, "weightDecay"));
  options.max_grad_norm = float(numberArg(env, o.Get("maxGradNorm"), op, "maxGradNorm"));
  acquire(env, op);
  auto* worker = new StepWorker(env, this, info.This().As<Napi::Object>(), options);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// (tokens: Int32Array [B]; -1 = inactive row)
Napi::Value ModelHandle::DecodeStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "TinyGPT.decodeStep";
  if (!model_) throwType(env, std::string(op) + ": the model was disposed");
  Napi::Int32Array tokens = int32ArrayArg(env, info[0], op, "tokens");
  if (tokens.ElementLength() == 0) throwRange(env, std::string(op) + ": the batch is empty");
  const int64_t vocab = vocabOf(env, model_);
  Napi::Object logits = TensorHandle::Allocate(env, "TinyGPT", NAPO_FLOAT32, {int64_t(tokens.ElementLength()), vocab}, modelDevice(env, model_));
  acquire(env, op);
  auto* worker = new DecodeWorker(env, this, info.This().As<Napi::Object>(), copyInt32(tokens), logits);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value CpuPeakGflops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double seconds = info.Length() > 0 && !info[0].IsUndefined() ? numberArg(env, info[0], "cpuPeakGflops", "seconds") : 0.5;
  double gflops = 0.0;
  check(env, napo_cpu_peak_gflops(seconds, &gflops));
  return Napi::Number::New(env, gflops);
}

// (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc): C in place.
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "sgemm";
  const bool transA = boolArg(env, info[0], op, "transA"), transB = boolArg(env, info[1], op, "transB");
  const int64_t m = intArg(env, info[2], op, "m", 0, int64_t(1) << 31);
  const int64_t n = intArg(env, info[3], op, "n", 0, int64_t(1) << 31);
  const int64_t k = intArg(env, info[4], op, "k", 0, int64_t(1) << 31);
  const float alpha = float(numberArg(env, info[5], op, "alpha"));
  Napi::Float32Array a = float32ArrayArg(env, info[6], op, "a");
  const int64_t lda = intArg(env, info[7], op, "lda", 0, int64_t(1) << 31);
  Napi::Float32Array b = float32ArrayArg(env, info[8], op, "b");
  const int64_t ldb = intArg(env, info[9], op, "ldb", 0, int64_t(1) << 31);
  const float beta = float(numberArg(env, info[10], op, "beta"));
  Napi::Float32Array c = float32ArrayArg(env, info[11], op, "c");
  const int64_t ldc = intArg(env, info[12], op, "ldc", 0, int64_t(1) << 31);
  const int64_t aRows = transA ? k : m, bRows = transB ? n : k;
  if ((m > 0 && k > 0 && int64_t(a.ElementLength()) < (aRows - 1) * lda + (transA ? m : k)) ||
      (n > 0 && k > 0 && int64_t(b.ElementLength()) < (bRows - 1) * ldb + (transB ? k : n)) ||
      (m > 0 && n > 0 && int64_t(c.ElementLength()) < (m - 1) * ldc + n)) {
    throwRange(env, "sgemm: a, b or c is too small for the sizes and leading dimensions");
  }
  check(env, napo_sgemm(transA, transB, m, n, k, alpha, a.Data(), lda, b.Data(), ldb, beta, c.Data(), ldc));
  return env.Undefined();
}

// (m, n, k, transA, transB, minSeconds) -> {seconds per call, gflops, calls}
Napi::Value SgemmBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "sgemmBench";
  const int64_t m = intArg(env, info[0], op, "m", 1, 1 << 16);
  const int64_t n = intArg(env, info[1], op, "n", 1, 1 << 20);
  const int64_t k = intArg(env, info[2], op, "k", 1, 1 << 16);
  const bool transA = boolArg(env, info[3], op, "transA"), transB = boolArg(env, info[4], op, "transB");
  const double minSeconds = numberArg(env, info[5], op, "minSeconds");
  std::vector<float> a(size_t(m * k)), b(size_t(k * n)), c(size_t(m * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = float((i * 104729) % 1000) * 1e-3f - 0.5f;
  const int64_t lda = transA ? m : k, ldb = transB ? k : n;
  check(env, napo_sgemm(transA, transB, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n));  // warm-up
  using Clock = std::chrono::steady_clock;
  int64_t calls = 0;
  const auto start = Clock::now();
  double elapsed = 0.0;
  do {
    check(env, napo_sgemm(transA, transB, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n));
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < minSeconds);
  Napi::Object out = Napi::Object::New(env);
  out.Set("seconds", elapsed / double(calls));
  out.Set("gflops", 2.0 * double(m) * double(n) * double(k) * double(calls) / elapsed / 1e9);
  out.Set("calls", double(calls));
  return out;
}

}  // namespace

void registerModel(Napi::Env env, Napi::Object exports) {
  exports.Set("ModelHandle", ModelHandle::Define(env));
  exports.Set("modelCpuPeakGflops", Napi::Function::New<CpuPeakGflops>(env, "modelCpuPeakGflops"));
  exports.Set("modelSgemm", Napi::Function::New<Sgemm>(env, "modelSgemm"));
  exports.Set("modelSgemmBench", Napi::Function::New<SgemmBench>(env, "modelSgemmBench"));
}

}  // namespace napo::addon
