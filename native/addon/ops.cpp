// The RL ops as JS functions: unwrap handles, read options, allocate outputs after the C ABI's
// validation, call it. The TS layer (packages/kernels) normalises user options before this.
#include "ops.h"

#include <string>

#include "args.h"
#include "errors.h"
#include "tensor.h"

namespace napo::addon {

namespace {

napo_row_f32 rowF32(Napi::Env env, Napi::Object options, const char* op, const char* name) {
  Napi::Float32Array values = float32ArrayArg(env, options.Get(name), op, name);
  return {values.Data(), int64_t(values.ElementLength())};
}

napo_row_i32 rowI32(Napi::Env env, Napi::Object options, const char* op, const char* name) {
  Napi::Int32Array values = int32ArrayArg(env, options.Get(name), op, name);
  return {values.Data(), int64_t(values.ElementLength())};
}

Napi::Object objectArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsObject()) throwType(env, std::string(op) + ": " + name + " must be an object");
  return value.As<Napi::Object>();
}

// An optional tensor argument: null/undefined gives no view.
bool optionalTensor(Napi::Value value, const char* op, const char* name, napo_tensor* out) {
  if (value.IsNull() || value.IsUndefined()) return false;
  *out = TensorHandle::FromValue(value, op, name)->view();
  return true;
}

std::vector<int64_t> rowsShape(const napo_tensor& t) { return {t.shape[0]}; }

napo_tensor viewOf(Napi::Object handle) { return TensorHandle::FromValue(handle, "napo", "output")->view(); }

Napi::Value Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "sample";
  const napo_tensor logits = TensorHandle::FromValue(info[0], op, "logits")->view();
  Napi::Object options = objectArg(env, info[1], op, "options");
  // The typed arrays stay referenced by `options` for the whole call.
  napo_sample_options sampleOptions{};
  sampleOptions.temperature = rowF32(env, options, op, "temperature");
  sampleOptions.top_k = rowI32(env, options, op, "topK");
  sampleOptions.top_p = rowF32(env, options, op, "topP");
  sampleOptions.min_p = rowF32(env, options, op, "minP");
  sampleOptions.seed = uint64Arg(env, options.Get("seed"), op, "seed");
  sampleOptions.offset = uint64Arg(env, options.Get("offset"), op, "offset");
  check(env, napo_sample_validate(&logits, &sampleOptions));
  PendingOutputs outputs;
  Napi::Object tokens = outputs.add(TensorHandle::Allocate(env, NAPO_INT32, rowsShape(logits), logits.device));
  Napi::Object logprobs = outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, rowsShape(logits), logits.device));
  napo_tensor tokensView = viewOf(tokens), logprobsView = viewOf(logprobs);
  check(env, napo_sample(&logits, &sampleOptions, &tokensView, &logprobsView, nullptr));
  outputs.commit();
  Napi::Object result = Napi::Object::New(env);
  result.Set("tokens", tokens);
  result.Set("logprobs", logprobs);
  return result;
}

Napi::Value TokenLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "tokenLogprobs";
  const napo_tensor logits = TensorHandle::FromValue(info[0], op, "logits")->view();
  const napo_tensor tokens = TensorHandle::FromValue(info[1], op, "tokens")->view();
  const float temperature = float(numberArg(env, info[2], op, "temperature"));
  const bool withEntropy = boolArg(env, info[3], op, "entropy");
  check(env, napo_token_logprobs_validate(&logits, &tokens, temperature));
  Napi::Object result = Napi::Object::New(env);
  PendingOutputs outputs;
  Napi::Object logprobs = outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, rowsShape(logits), logits.device));
  Napi::Object lse = outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, rowsShape(logits), logits.device));
  napo_tensor logprobsView = viewOf(logprobs), lseView = viewOf(lse), entropyView{};
  if (withEntropy) {
    Napi::Object entropy = outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, rowsShape(logits), logits.device));
    entropyView = viewOf(entropy);
    result.Set("entropy", entropy);
  }
  check(env, napo_token_logprobs(&logits, &tokens, temperature, &logprobsView, withEntropy ? &entropyView : nullptr,
                                 &lseView, nullptr));
  outputs.commit();
  result.Set("logprobs", logprobs);
  result.Set("lse", lse);
  return result;
}

// (logits, tokens, lse, entropy|null, gradLogprobs, gradEntropy|null, temperature, inPlace)
Napi::Value TokenLogprobsBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "tokenLogprobsBackward";
  const napo_tensor logits = TensorHandle::FromValue(info[0], op, "logits")->view();
  const napo_tensor tokens = TensorHandle::FromValue(info[1], op, "tokens")->view();
  const napo_tensor lse = TensorHandle::FromValue(info[2], op, "lse")->view();
  napo_tensor entropy{}, gradEntropy{};
  const bool hasEntropy = optionalTensor(info[3], op, "entropy", &entropy);
  const napo_tensor gradLogprobs = TensorHandle::FromValue(info[4], op, "gradLogprobs")->view();
  const bool hasGradEntropy = optionalTensor(info[5], op, "gradEntropy", &gradEntropy);
  const float temperature = float(numberArg(env, info[6], op, "temperature"));
  const bool inPlace = boolArg(env, info[7], op, "inPlace");
  check(env, napo_token_logprobs_backward_validate(&logits, &tokens, &lse, hasEntropy ? &entropy : nullptr,
                                                   &gradLogprobs, hasGradEntropy ? &gradEntropy : nullptr,
                                                   temperature));
  PendingOutputs outputs;
  Napi::Object gradLogits =
      inPlace ? info[0].As<Napi::Object>()
              : outputs.add(TensorHandle::Allocate(env, logits.dtype, {logits.shape[0], logits.shape[1]}, logits.device));
  napo_tensor gradView = viewOf(gradLogits);
  check(env, napo_token_logprobs_backward(&logits, &tokens, &lse, hasEntropy ? &entropy : nullptr, &gradLogprobs,
                                          hasGradEntropy ? &gradEntropy : nullptr, temperature, &gradView, nullptr));
  outputs.commit();
  return gradLogits;
}

// (rewards, groupOffsets: Int32Array, scale, estimator, eps)
Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "groupAdvantages";
  const napo_tensor rewards = TensorHandle::FromValue(info[0], op, "rewards")->view();
  Napi::Int32Array offsets = int32ArrayArg(env, info[1], op, "groupOffsets");
  napo_advantage_options options{};
  options.group_offsets = offsets.Data();
  options.group_count = int64_t(offsets.ElementLength()) - 1;
  options.scale = napo_advantage_scale(int(numberArg(env, info[2], op, "scale")));
  options.estimator = napo_advantage_estimator(int(numberArg(env, info[3], op, "estimator")));
  options.eps = float(numberArg(env, info[4], op, "eps"));
  check(env, napo_group_advantages_validate(&rewards, &options));
  PendingOutputs outputs;
  Napi::Object advantages = outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, rowsShape(rewards), rewards.device));
  napo_tensor advantagesView = viewOf(advantages);
  check(env, napo_group_advantages(&rewards, &options, &advantagesView, nullptr));
  outputs.commit();
  return advantages;
}

// (logprobs, oldLogprobs, refLogprobs|null, advantages, mask, options)
Napi::Value PolicyLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "policyLoss";
  const napo_tensor logprobs = TensorHandle::FromValue(info[0], op, "logprobs")->view();
  const napo_tensor oldLogprobs = TensorHandle::FromValue(info[1], op, "oldLogprobs")->view();
  napo_tensor refLogprobs{};
  const bool hasRef = optionalTensor(info[2], op, "refLogprobs", &refLogprobs);
  const napo_tensor advantages = TensorHandle::FromValue(info[3], op, "advantages")->view();
  const napo_tensor mask = TensorHandle::FromValue(info[4], op, "mask")->view();
  Napi::Object options = objectArg(env, info[5], op, "options");
  napo_policy_loss_options lossOptions{};
  lossOptions.eps_low = float(numberArg(env, options.Get("epsLow"), op, "epsLow"));
  lossOptions.eps_high = float(numberArg(env, options.Get("epsHigh"), op, "epsHigh"));
  lossOptions.beta = float(numberArg(env, options.Get("beta"), op, "beta"));
  lossOptions.loss_type = napo_loss_type(int(numberArg(env, options.Get("lossType"), op, "lossType")));
  lossOptions.max_completion_length = int64_t(numberArg(env, options.Get("maxCompletionLength"), op, "maxCompletionLength"));
  lossOptions.num_items_in_batch = numberArg(env, options.Get("numItemsInBatch"), op, "numItemsInBatch");
  const napo_tensor* ref = hasRef ? &refLogprobs : nullptr;
  check(env, napo_policy_loss_validate(&logprobs, &oldLogprobs, ref, &advantages, &mask, &lossOptions));
  PendingOutputs outputs;
  Napi::Object grad =
      outputs.add(TensorHandle::Allocate(env, NAPO_FLOAT32, {logprobs.shape[0], logprobs.shape[1]}, logprobs.device));
  napo_tensor gradView = viewOf(grad);
  napo_policy_loss_stats stats{};
  check(env, napo_policy_loss(&logprobs, &oldLogprobs, ref, &advantages, &mask, &lossOptions, &gradView, &stats, nullptr));
  outputs.commit();
  Napi::Object statsObject = Napi::Object::New(env);
  statsObject.Set("clipLowFraction", stats.clip_low_fraction);
  statsObject.Set("clipHighFraction", stats.clip_high_fraction);
  statsObject.Set("clipFraction", stats.clip_fraction);
  statsObject.Set("meanKl", stats.mean_kl);
  statsObject.Set("meanRatio", stats.mean_ratio);
  statsObject.Set("tokenCount", stats.token_count);
  Napi::Object result = Napi::Object::New(env);
  result.Set("loss", stats.loss);
  result.Set("gradLogprobs", grad);
  result.Set("stats", statsObject);
  return result;
}

}  // namespace

void registerOps(Napi::Env env, Napi::Object exports) {
  exports.Set("sample", Napi::Function::New<Sample>(env, "sample"));
  exports.Set("tokenLogprobs", Napi::Function::New<TokenLogprobs>(env, "tokenLogprobs"));
  exports.Set("tokenLogprobsBackward", Napi::Function::New<TokenLogprobsBackward>(env, "tokenLogprobsBackward"));
  exports.Set("groupAdvantages", Napi::Function::New<GroupAdvantages>(env, "groupAdvantages"));
  exports.Set("policyLoss", Napi::Function::New<PolicyLoss>(env, "policyLoss"));
}

}  // namespace napo::addon
