// Glue only: JS values copied into plain C++ values on the main thread, AsyncWorkers that call the
// napo_model C ABI off it, results turned back into JS values. napo checks every argument. A model
// runs one call at a time; a second call while one is in flight throws at once (the busy flag).
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
#include "op_call.h"
#include "tensor.h"

namespace napo::addon {

using napo::tensorView;

namespace {

std::vector<int32_t> copyInt32(Napi::Int32Array array) {
  return std::vector<int32_t>(array.Data(), array.Data() + array.ElementLength());
}

int32_t int32Field(Napi::Env env, Napi::Object o, const char* key, const char* op) {
  return int32_t(integerArg(env, o.Get(key), op, key));
}

float floatField(Napi::Env env, Napi::Object o, const char* key, const char* op) {
  return float(numberArg(env, o.Get(key), op, key));
}

// The native config from the TS one (enums already as their codes; napo validates).
napo_model_config configFrom(Napi::Env env, Napi::Object c, const char* op) {
  napo_model_config config{};
  config.family = int32Field(env, c, "familyCode", op);
  config.vocab_size = int32Field(env, c, "vocabSize", op);
  config.hidden_size = int32Field(env, c, "hiddenSize", op);
  config.intermediate_size = int32Field(env, c, "intermediateSize", op);
  config.num_layers = int32Field(env, c, "numLayers", op);
  config.num_heads = int32Field(env, c, "numHeads", op);
  config.num_kv_heads = int32Field(env, c, "numKvHeads", op);
  config.head_dim = int32Field(env, c, "headDim", op);
  config.max_positions = int32Field(env, c, "maxPositions", op);
  config.norm_eps = floatField(env, c, "normEps", op);
  config.rope_theta = numberArg(env, c.Get("ropeTheta"), op, "ropeTheta");
  config.rope_scaling = int32Field(env, c, "ropeScalingCode", op);
  config.rope_factor = floatField(env, c, "ropeFactor", op);
  config.rope_low_freq_factor = floatField(env, c, "ropeLowFreqFactor", op);
  config.rope_high_freq_factor = floatField(env, c, "ropeHighFreqFactor", op);
  config.rope_original_max_positions = int32Field(env, c, "ropeOriginalMaxPositions", op);
  config.qkv_bias = boolArg(env, c.Get("qkvBias"), op, "qkvBias");
  config.output_bias = boolArg(env, c.Get("outputBias"), op, "outputBias");
  config.mlp_bias = boolArg(env, c.Get("mlpBias"), op, "mlpBias");
  config.tie_word_embeddings = boolArg(env, c.Get("tieWordEmbeddings"), op, "tieWordEmbeddings");
  config.initializer_range = floatField(env, c, "initializerRange", op);
  config.seed = uint64Arg(env, c.Get("seed"), op, "seed");
  config.device = parseDevice(env, c.Get("device"), op);
  return config;
}

// A padded host batch read from (tokens: Int32Array, batch, time, lengths: Int32Array | null).
struct BatchArgs {
  std::vector<int32_t> tokens, lengths;
  int64_t batch = 0, time = 0;
  bool hasLengths = false;

  void read(Napi::Env env, const Napi::CallbackInfo& info, size_t first, const char* op) {
    Napi::Int32Array array = int32ArrayArg(env, info[first], op, "tokens");
    batch = integerArg(env, info[first + 1], op, "batch");
    time = integerArg(env, info[first + 2], op, "time");
    if (int64_t(array.ElementLength()) != batch * time) {
      throwRange(env, std::string(op) + ": tokens has " + std::to_string(array.ElementLength()) +
                          " values, expected batch * time = " + std::to_string(batch * time));
    }
    tokens = copyInt32(array);
    hasLengths = !(info[first + 3].IsNull() || info[first + 3].IsUndefined());
    if (hasLengths) lengths = copyInt32(int32ArrayArg(env, info[first + 3], op, "lengths"));
  }
  napo_tensor tokensView() { return tensorView(tokens.data(), NAPO_INT32, {batch, time}); }
  napo_tensor lengthsView() { return tensorView(lengths.data(), NAPO_INT32, {int64_t(lengths.size())}); }
  const napo_tensor* lengthsOrNull(napo_tensor* view) {
    *view = lengthsView();
    return hasLengths ? view : nullptr;
  }
};

class ModelHandle;

// One model call: what it read on the main thread, run() on a worker, result() back on the main
// thread. Inputs and outputs are held by the OpCall base.
class ModelCall : public OpCall {
 public:
  virtual ~ModelCall() = default;
  virtual napo_status run(napo_model* model) = 0;
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ModelHandle",
                       {
                           InstanceAccessor<&ModelHandle::GetOptimizerSteps>("optimizerSteps"),
                           InstanceAccessor<&ModelHandle::GetDisposed>("disposed"),
                           InstanceMethod<&ModelHandle::Score>("score"),
                           InstanceMethod<&ModelHandle::ScoreBackward>("scoreBackward"),
                           InstanceMethod<&ModelHandle::Forward>("forward"),
                           InstanceMethod<&ModelHandle::Backward>("backward"),
                           InstanceMethod<&ModelHandle::Step>("step"),
                           InstanceMethod<&ModelHandle::ZeroGrad>("zeroGrad"),
                           InstanceMethod<&ModelHandle::Prefill>("prefill"),
                           InstanceMethod<&ModelHandle::DecodeStep>("decodeStep"),
                           InstanceMethod<&ModelHandle::CachePosition>("cachePosition"),
                           InstanceMethod<&ModelHandle::ReleaseCache>("releaseCache"),
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

  // new ModelHandle(config); the addon itself passes an External to adopt a clone.
  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "model";
    if (info.Length() >= 1 && info[0].IsExternal()) {
      model_ = info[0].As<Napi::External<napo_model>>().Data();
      return;
    }
    if (info.Length() < 1 || !info[0].IsObject()) throwType(env, "model: config must be an object");
    const napo_model_config config = configFrom(env, info[0].As<Napi::Object>(), op);
    check(env, napo_model_create(&config, &model_));
  }

  ~ModelHandle() override {
    if (model_) napo_model_destroy(model_);
  }

  void release() { busy_ = nullptr; }

 private:
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

  napo_model_config config(Napi::Env env) const {
    napo_model_config c{};
    check(env, napo_model_config_get(model_, &c));
    return c;
  }

  Napi::Value Queue(const Napi::CallbackInfo& info, const char* op, std::unique_ptr<ModelCall> call);
  Napi::Value Score(const Napi::CallbackInfo& info);
  Napi::Value ScoreBackward(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Prefill(const Napi::CallbackInfo& info);
  Napi::Value DecodeStep(const Napi::CallbackInfo& info);

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.zeroGrad");
    check(env, napo_model_zero_grad(model_));
    return env.Undefined();
  }

  Napi::Value ReleaseCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.releaseCache");
    check(env, napo_model_release_cache(model_));
    return env.Undefined();
  }

  Napi::Value CachePosition(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.cachePosition");
    const int64_t row = integerArg(env, info[0], "model.cachePosition", "row");
    return Napi::Number::New(env, double(napo_model_cache_position(model_, row)));
  }

  Napi::Value GetOptimizerSteps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model_ ? double(napo_model_optimizer_steps(model_)) : 0.0);
  }

  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), model_ == nullptr); }

  Napi::Value Clone(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.clone");
    napo_model* copy = nullptr;
    check(env, napo_model_clone(model_, &copy));
    Napi::Function constructor = info.This().As<Napi::Object>().Get("constructor").As<Napi::Function>();
    return constructor.New({Napi::External<napo_model>::New(env, copy)});
  }

  // -> [{name, shape, checkpointTransposed, weightDecay}]
  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.parameters");
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
      entry.Set("checkpointTransposed", Napi::Boolean::New(env, p.checkpoint_transposed != 0));
      entry.Set("weightDecay", Napi::Boolean::New(env, p.weight_decay != 0));
      out.Set(uint32_t(i), entry);
    }
    return out;
  }

  int64_t numelOf(Napi::Env env, int64_t index) {
    napo_model_parameter_info p{};
    check(env, napo_model_parameter_info_get(model_, index, &p));
    return p.numel;
  }

  // (index, dtypeCode, checkpointLayout) -> Float32Array (float32) or Uint16Array (bf16 / f16 bits)
  Napi::Value GetParameter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "model.getParameter";
    requireIdle(env, op);
    const int64_t index = integerArg(env, info[0], op, "index");
    const napo_dtype dtype = napo_dtype(integerArg(env, info[1], op, "dtype"));
    const bool checkpointLayout = boolArg(env, info[2], op, "checkpointLayout");
    const int64_t numel = numelOf(env, index);
    Napi::TypedArray out = dtype == NAPO_FLOAT32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(numel)))
                                                 : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(numel)));
    void* data = static_cast<uint8_t*>(out.ArrayBuffer().Data()) + out.ByteOffset();
    check(env, napo_model_parameter_read(model_, index, dtype, checkpointLayout, data));
    return out;
  }

  // (index, data: Float32Array | Uint16Array, dtypeCode, checkpointLayout)
  Napi::Value SetParameter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "model.setParameter";
    requireIdle(env, op);
    const int64_t index = integerArg(env, info[0], op, "index");
    if (!info[1].IsTypedArray()) throwType(env, std::string(op) + ": data must be a Float32Array or a Uint16Array");
    Napi::TypedArray data = info[1].As<Napi::TypedArray>();
    const napo_dtype dtype = napo_dtype(integerArg(env, info[2], op, "dtype"));
    const bool checkpointLayout = boolArg(env, info[3], op, "checkpointLayout");
    const int64_t numel = numelOf(env, index);
    const size_t element = dtype == NAPO_FLOAT32 ? 4 : 2;
    if (data.ByteLength() != size_t(numel) * element || data.ByteLength() / data.ElementLength() != element) {
      throwRange(env, std::string(op) + ": data has " + std::to_string(data.ByteLength()) + " bytes, the parameter " +
                          std::to_string(size_t(numel) * element) + " in this dtype");
    }
    const void* bytes = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
    check(env, napo_model_parameter_write(model_, index, dtype, checkpointLayout, bytes));
    return env.Undefined();
  }

  Napi::Value GetGradient(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    constexpr const char* op = "model.getGradient";
    requireIdle(env, op);
    const int64_t index = integerArg(env, info[0], op, "index");
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(numelOf(env, index)));
    check(env, napo_model_gradient_read(model_, index, out.Data()));
    return out;
  }

  // -> {expAvg: Float32Array, expAvgSq: Float32Array, steps}: the AdamW moments packed in
  // parameter order (zeros before the first step).
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    requireIdle(env, "model.getOptimizerState");
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
    constexpr const char* op = "model.setOptimizerState";
    requireIdle(env, op);
    Napi::Float32Array expAvg = float32ArrayArg(env, info[0], op, "expAvg");
    Napi::Float32Array expAvgSq = float32ArrayArg(env, info[1], op, "expAvgSq");
    const int64_t steps = integerArg(env, info[2], op, "steps");
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
    requireIdle(env, "model.dispose");
    napo_model_destroy(model_);
    model_ = nullptr;
    return env.Undefined();
  }

  napo_model* model_ = nullptr;
  const char* busy_ = nullptr;
};

// Runs one ModelCall off the main thread; resolves with its result or rejects with a typed error.
class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, ModelHandle* handle, Napi::Object self, napo_model* model, std::unique_ptr<ModelCall> call)
      : Napi::AsyncWorker(env, "napo:model"),
        handle_(handle),
        model_(model),
        call_(std::move(call)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    status_ = call_->run(model_);
    if (status_ != NAPO_OK) message_ = napo_last_error();  // thread-local: read it on this thread
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    handle_->release();
    if (status_ != NAPO_OK) {
      call_->discardOutputs();
      deferred_.Reject(statusError(Env(), status_, message_).Value());
      return;
    }
    deferred_.Resolve(call_->result(Env()));
    call_->commitOutputs();
  }

 private:
  ModelHandle* handle_;
  napo_model* model_;
  Napi::ObjectReference self_;  // keeps the model alive while the worker runs
  std::unique_ptr<ModelCall> call_;
  Napi::Promise::Deferred deferred_;
  napo_status status_ = NAPO_OK;
  std::string message_;
};

Napi::Value ModelHandle::Queue(const Napi::CallbackInfo& info, const char* op, std::unique_ptr<ModelCall> call) {
  acquire(info.Env(), op);
  auto* worker = new ModelWorker(info.Env(), this, info.This().As<Napi::Object>(), model_, std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// (tokens, batch, time, lengths | null, targets: Int32Array [B * T], temperature, entropy: boolean,
//  keepActivations: boolean)
// -> {logprobs: Tensor [B, T], entropy?: Tensor [B, T]}
class ScoreCall : public ModelCall {
 public:
  ScoreCall(Napi::Env env, const Napi::CallbackInfo& info, const napo_model_config& config) {
    constexpr const char* op = "model.score";
    batch_.read(env, info, 0, op);
    Napi::Int32Array targets = int32ArrayArg(env, info[4], op, "targets");
    if (int64_t(targets.ElementLength()) != batch_.batch * batch_.time) {
      throwRange(env, std::string(op) + ": targets has " + std::to_string(targets.ElementLength()) + " values, tokens " +
                          std::to_string(batch_.batch * batch_.time));
    }
    targets_ = copyInt32(targets);
    options_.temperature = float(numberArg(env, info[5], op, "temperature"));
    options_.entropy = boolArg(env, info[6], op, "entropy") ? 1 : 0;
    options_.keep_activations = boolArg(env, info[7], op, "keepActivations") ? 1 : 0;
    const std::vector<int64_t> shape{batch_.batch, batch_.time};
    logprobs_ = output(env, op, NAPO_FLOAT32, shape, config.device);
    if (options_.entropy) entropy_ = output(env, op, NAPO_FLOAT32, shape, config.device);
  }
  napo_status run(napo_model* model) override {
    napo_tensor tokens = batch_.tokensView(), lengths{};
    napo_tensor targets = tensorView(targets_.data(), NAPO_INT32, {batch_.batch, batch_.time});
    return napo_model_score(model, &tokens, batch_.lengthsOrNull(&lengths), &targets, &options_, &logprobs_,
                            options_.entropy ? &entropy_ : nullptr);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("logprobs", outputObject(0));
    if (options_.entropy) out.Set("entropy", outputObject(1));
    return out;
  }

 private:
  BatchArgs batch_;
  std::vector<int32_t> targets_;
  napo_model_score_options options_{};
  napo_tensor logprobs_{}, entropy_{};
};

Napi::Value ModelHandle::Score(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireIdle(env, "model.score");
  return Queue(info, "model.score", std::make_unique<ScoreCall>(env, info, config(env)));
}

// (gradLogprobs: Tensor, gradEntropy: Tensor | null); the tensors are held, not copied.
class ScoreBackwardCall : public ModelCall {
 public:
  ScoreBackwardCall(const Napi::CallbackInfo& info) {
    constexpr const char* op = "model.scoreBackward";
    gradLogprobs_ = input(info[0], op, "gradLogprobs");
    hasEntropy_ = optionalInput(info[1], op, "gradEntropy", &gradEntropy_);
  }
  napo_status run(napo_model* model) override {
    return napo_model_score_backward(model, &gradLogprobs_, hasEntropy_ ? &gradEntropy_ : nullptr);
  }

 private:
  napo_tensor gradLogprobs_{}, gradEntropy_{};
  bool hasEntropy_ = false;
};

Napi::Value ModelHandle::ScoreBackward(const Napi::CallbackInfo& info) {
  requireIdle(info.Env(), "model.scoreBackward");
  return Queue(info, "model.scoreBackward", std::make_unique<ScoreBackwardCall>(info));
}

// forward (tokens, batch, time, lengths | null) -> logits [B, T, V]; prefill (..., capacity) ->
// logits [B, V].
class BatchCall : public ModelCall {
 public:
  BatchCall(Napi::Env env, const Napi::CallbackInfo& info, const napo_model_config& config, bool prefill)
      : prefill_(prefill) {
    const char* op = prefill ? "model.prefill" : "model.forward";
    batch_.read(env, info, 0, op);
    if (prefill) capacity_ = integerArg(env, info[4], op, "capacity");
    const std::vector<int64_t> shape = prefill ? std::vector<int64_t>{batch_.batch, config.vocab_size}
                                               : std::vector<int64_t>{batch_.batch, batch_.time, config.vocab_size};
    logits_ = output(env, op, NAPO_FLOAT32, shape, config.device, NAPO_MEMORY_LOGITS);
  }
  napo_status run(napo_model* model) override {
    napo_tensor tokens = batch_.tokensView(), lengths{};
    const napo_tensor* lengthsArg = batch_.lengthsOrNull(&lengths);
    return prefill_ ? napo_model_prefill(model, &tokens, lengthsArg, capacity_, &logits_)
                    : napo_model_forward(model, &tokens, lengthsArg, &logits_);
  }
  Napi::Value result(Napi::Env) override { return outputObject(0); }

 private:
  bool prefill_;
  BatchArgs batch_;
  int64_t capacity_ = 0;
  napo_tensor logits_{};
};

Napi::Value ModelHandle::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireIdle(env, "model.forward");
  return Queue(info, "model.forward", std::make_unique<BatchCall>(env, info, config(env), false));
}

Napi::Value ModelHandle::Prefill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireIdle(env, "model.prefill");
  return Queue(info, "model.prefill", std::make_unique<BatchCall>(env, info, config(env), true));
}

// (gradLogits: Tensor [B, T, V]); held for the call, not copied.
class BackwardCall : public ModelCall {
 public:
  explicit BackwardCall(const Napi::CallbackInfo& info) { grad_ = input(info[0], "model.backward", "gradLogits"); }
  napo_status run(napo_model* model) override { return napo_model_backward(model, &grad_); }

 private:
  napo_tensor grad_{};
};

Napi::Value ModelHandle::Backward(const Napi::CallbackInfo& info) {
  requireIdle(info.Env(), "model.backward");
  return Queue(info, "model.backward", std::make_unique<BackwardCall>(info));
}

class StepCall : public ModelCall {
 public:
  StepCall(Napi::Env env, const Napi::CallbackInfo& info) {
    constexpr const char* op = "model.step";
    if (!info[0].IsObject()) throwType(env, "model.step: options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    options_.lr = floatField(env, o, "lr", op);
    options_.beta1 = floatField(env, o, "beta1", op);
    options_.beta2 = floatField(env, o, "beta2", op);
    options_.eps = floatField(env, o, "eps", op);
    options_.weight_decay = floatField(env, o, "weightDecay", op);
    options_.max_grad_norm = floatField(env, o, "maxGradNorm", op);
    options_.grad_scale = floatField(env, o, "gradScale", op);
  }
  napo_status run(napo_model* model) override { return napo_model_step(model, &options_, &result_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("gradNorm", result_.grad_norm);
    out.Set("clipScale", result_.clip_scale);
    out.Set("step", double(result_.step));
    return out;
  }

 private:
  napo_adamw_options options_{};
  napo_adamw_result result_{};
};

Napi::Value ModelHandle::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireIdle(env, "model.step");
  return Queue(info, "model.step", std::make_unique<StepCall>(env, info));
}

// (tokens: Int32Array [B]; -1 = inactive row) -> logits [B, V]
class DecodeCall : public ModelCall {
 public:
  DecodeCall(Napi::Env env, const Napi::CallbackInfo& info, const napo_model_config& config) {
    constexpr const char* op = "model.decodeStep";
    tokens_ = copyInt32(int32ArrayArg(env, info[0], op, "tokens"));
    logits_ = output(env, op, NAPO_FLOAT32, {int64_t(tokens_.size()), config.vocab_size}, config.device, NAPO_MEMORY_LOGITS);
  }
  napo_status run(napo_model* model) override {
    napo_tensor tokens = tensorView(tokens_.data(), NAPO_INT32, {int64_t(tokens_.size())});
    return napo_model_decode_step(model, &tokens, &logits_);
  }
  Napi::Value result(Napi::Env) override { return outputObject(0); }

 private:
  std::vector<int32_t> tokens_;
  napo_tensor logits_{};
};

Napi::Value ModelHandle::DecodeStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireIdle(env, "model.decodeStep");
  return Queue(info, "model.decodeStep", std::make_unique<DecodeCall>(env, info, config(env)));
}

// (config, {pass, batch, time, scored, capacity, entropy, gradients, optimizerState}) -> Float64Array
// of bytes by napo_memory_category.
Napi::Value MemoryPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "modelMemoryPlan";
  if (!info[0].IsObject() || !info[1].IsObject()) throwType(env, "modelMemoryPlan: config and query must be objects");
  const napo_model_config config = configFrom(env, info[0].As<Napi::Object>(), op);
  Napi::Object q = info[1].As<Napi::Object>();
  napo_model_memory_query query{};
  query.pass = int32Field(env, q, "pass", op);
  query.batch = integerArg(env, q.Get("batch"), op, "batch");
  query.time = integerArg(env, q.Get("time"), op, "time");
  query.scored = integerArg(env, q.Get("scored"), op, "scored");
  query.capacity = integerArg(env, q.Get("capacity"), op, "capacity");
  query.entropy = boolArg(env, q.Get("entropy"), op, "entropy");
  query.gradients = boolArg(env, q.Get("gradients"), op, "gradients");
  query.optimizer_state = boolArg(env, q.Get("optimizerState"), op, "optimizerState");
  int64_t bytes[NAPO_MEMORY_CATEGORIES] = {};
  check(env, napo_model_memory_plan(&config, &query, bytes));
  Napi::Float64Array out = Napi::Float64Array::New(env, NAPO_MEMORY_CATEGORIES);
  for (size_t c = 0; c < NAPO_MEMORY_CATEGORIES; ++c) out[c] = double(bytes[c]);
  return out;
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
  const int64_t m = integerArg(env, info[2], op, "m");
  const int64_t n = integerArg(env, info[3], op, "n");
  const int64_t k = integerArg(env, info[4], op, "k");
  const float alpha = float(numberArg(env, info[5], op, "alpha"));
  Napi::Float32Array a = float32ArrayArg(env, info[6], op, "a");
  const int64_t lda = integerArg(env, info[7], op, "lda");
  Napi::Float32Array b = float32ArrayArg(env, info[8], op, "b");
  const int64_t ldb = integerArg(env, info[9], op, "ldb");
  const float beta = float(numberArg(env, info[10], op, "beta"));
  Napi::Float32Array c = float32ArrayArg(env, info[11], op, "c");
  const int64_t ldc = integerArg(env, info[12], op, "ldc");
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
  const int64_t m = integerArg(env, info[0], op, "m");
  const int64_t n = integerArg(env, info[1], op, "n");
  const int64_t k = integerArg(env, info[2], op, "k");
  if (m < 1 || n < 1 || k < 1 || m > (1 << 16) || n > (1 << 20) || k > (1 << 16)) {
    throwRange(env, "sgemmBench: m, n, k must be in [1, 65536], [1, 1048576], [1, 65536]");
  }
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
  exports.Set("modelMemoryPlan", Napi::Function::New<MemoryPlan>(env, "modelMemoryPlan"));
  exports.Set("modelSgemm", Napi::Function::New<Sgemm>(env, "modelSgemm"));
  exports.Set("modelSgemmBench", Napi::Function::New<SgemmBench>(env, "modelSgemmBench"));
}

}  // namespace napo::addon
