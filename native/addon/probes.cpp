// Benchmark probes for @napo/bench: the machine's read bandwidth and the unfused log-prob
// baseline, measured in the same process as the ops they are compared with.
#include "probes.h"

#include <algorithm>
#include <cstdint>

#include "args.h"
#include "errors.h"
#include "tensor.h"

namespace napo::addon {

namespace {

Napi::Value ProbeReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t bytes = integerArg(env, info[0], "probeReadBandwidth", "bytes");
  const int64_t repeats = integerArg(env, info[1], "probeReadBandwidth", "repeats");
  double bytesPerSecond = 0.0;
  check(env, napo_probe_read_bandwidth(size_t(std::max<int64_t>(bytes, 0)), int32_t(std::clamp<int64_t>(repeats, 0, 1000)),
                                       &bytesPerSecond));
  return Napi::Number::New(env, bytesPerSecond);
}

// (logits, tokens) -> logprobs; the [N, V] log_softmax lives only for the call.
Napi::Value ProbeUnfusedLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "probeUnfusedLogprobs";
  const napo_tensor logits = TensorHandle::FromValue(info[0], op, "logits")->view(env, op);
  const napo_tensor tokens = TensorHandle::FromValue(info[1], op, "tokens")->view(env, op);
  check(env, napo_token_logprobs_validate(&logits, &tokens, 1.0f));
  PendingOutputs scratchOwner;
  Napi::Object scratch =
      scratchOwner.add(TensorHandle::Allocate(env, op, NAPO_FLOAT32, {logits.shape[0], logits.shape[1]}, logits.device, NAPO_MEMORY_TEMPORARY));
  PendingOutputs outputs;
  Napi::Object logprobs = outputs.add(TensorHandle::Allocate(env, op, NAPO_FLOAT32, {logits.shape[0]}, logits.device, NAPO_MEMORY_TEMPORARY));
  napo_tensor scratchView = TensorHandle::FromValue(scratch, op, "scratch")->view(env, op);
  napo_tensor logprobsView = TensorHandle::FromValue(logprobs, op, "logprobs")->view(env, op);
  check(env, napo_probe_unfused_logprobs(&logits, &tokens, &scratchView, &logprobsView));
  outputs.commit();
  return logprobs;
}

// (logits, topK, topP, seed) -> tokens.
Napi::Value ProbeSortedSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "probeSortedSample";
  const napo_tensor logits = TensorHandle::FromValue(info[0], op, "logits")->view(env, op);
  const int32_t topK = int32_t(std::clamp<int64_t>(integerArg(env, info[1], op, "topK"), -1, INT32_MAX));
  const float topP = float(numberArg(env, info[2], op, "topP"));
  const uint64_t seed = uint64Arg(env, info[3], op, "seed");
  if (logits.ndim != 2) throwRange(env, "probeSortedSample: logits must have rank 2");
  PendingOutputs scratchOwner;
  Napi::Object scratch =
      scratchOwner.add(TensorHandle::Allocate(env, op, NAPO_FLOAT32, {logits.shape[0], logits.shape[1]}, logits.device, NAPO_MEMORY_TEMPORARY));
  PendingOutputs outputs;
  Napi::Object tokens = outputs.add(TensorHandle::Allocate(env, op, NAPO_INT32, {logits.shape[0]}, logits.device, NAPO_MEMORY_TEMPORARY));
  napo_tensor scratchView = TensorHandle::FromValue(scratch, op, "scratch")->view(env, op);
  napo_tensor tokensView = TensorHandle::FromValue(tokens, op, "tokens")->view(env, op);
  check(env, napo_probe_sorted_sample(&logits, topK, topP, seed, &scratchView, &tokensView));
  outputs.commit();
  return tokens;
}

// (a, b, transA, transB, alpha, beta, c): c = alpha op(a) op(b) + beta c, into c.
Napi::Value ProbeGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "probeGemm";
  const napo_tensor a = TensorHandle::FromValue(info[0], op, "a")->view(env, op);
  const napo_tensor b = TensorHandle::FromValue(info[1], op, "b")->view(env, op);
  napo_tensor c = TensorHandle::FromValue(info[6], op, "c")->view(env, op);
  check(env, napo_probe_gemm(&a, boolArg(env, info[2], op, "transA") ? 1 : 0, &b, boolArg(env, info[3], op, "transB") ? 1 : 0,
                             float(numberArg(env, info[4], op, "alpha")), float(numberArg(env, info[5], op, "beta")), &c));
  return env.Undefined();
}

}  // namespace

void registerProbes(Napi::Env env, Napi::Object exports) {
  exports.Set("probeReadBandwidth", Napi::Function::New<ProbeReadBandwidth>(env, "probeReadBandwidth"));
  exports.Set("probeUnfusedLogprobs", Napi::Function::New<ProbeUnfusedLogprobs>(env, "probeUnfusedLogprobs"));
  exports.Set("probeSortedSample", Napi::Function::New<ProbeSortedSample>(env, "probeSortedSample"));
  exports.Set("probeGemm", Napi::Function::New<ProbeGemm>(env, "probeGemm"));
}

}  // namespace napo::addon
