// The RL ops as JS functions, each in a sync and an async (`xxxAsync`, a Promise) form: unwrap
// handles, copy options into plain C values, have the C ABI validate them, allocate outputs, call
// it (op_call.h). The TS layer (packages/kernels) normalises user options before this.
#include "op_bindings.h"

#include <string>
#include <vector>

#include "args.h"
#include "errors.h"
#include "op_call.h"

namespace napo::addon {

namespace {

Napi::Object objectArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsObject()) throwType(env, std::string(op) + ": " + name + " must be an object");
  return value.As<Napi::Object>();
}

std::vector<float> floatsArg(Napi::Env env, Napi::Object options, const char* op, const char* name) {
  Napi::Float32Array values = float32ArrayArg(env, options.Get(name), op, name);
  return std::vector<float>(values.Data(), values.Data() + values.ElementLength());
}

std::vector<int32_t> integersArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  Napi::Int32Array values = int32ArrayArg(env, value, op, name);
  return std::vector<int32_t>(values.Data(), values.Data() + values.ElementLength());
}

// (logits, { temperature, topK, topP, minP: typed arrays; seed, offset: bigint }) -> { tokens, logprobs }
struct SampleCall : OpCall {
  static constexpr const char* kName = "sample";
  napo_tensor logits{}, tokens{}, logprobs{};
  std::vector<float> temperature, topP, minP;
  std::vector<int32_t> topK;
  uint64_t seed = 0, offset = 0;

  napo_sample_options options() const {
    return {{temperature.data(), int64_t(temperature.size())},
            {topK.data(), int64_t(topK.size())},
            {topP.data(), int64_t(topP.size())},
            {minP.data(), int64_t(minP.size())},
            seed,
            offset};
  }

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    logits = input(info[0], kName, "logits");
    Napi::Object given = objectArg(env, info[1], kName, "options");
    temperature = floatsArg(env, given, kName, "temperature");
    topK = integersArg(env, given.Get("topK"), kName, "topK");
    topP = floatsArg(env, given, kName, "topP");
    minP = floatsArg(env, given, kName, "minP");
    seed = uint64Arg(env, given.Get("seed"), kName, "seed");
    offset = uint64Arg(env, given.Get("offset"), kName, "offset");
    const napo_sample_options view = options();
    check(env, napo_sample_validate(&logits, &view));
    tokens = output(env, kName, NAPO_INT32, {logits.shape[0]}, logits.device);
    logprobs = output(env, kName, NAPO_FLOAT32, {logits.shape[0]}, logits.device);
  }

  napo_status run() {
    const napo_sample_options view = options();
    return napo_sample(&logits, &view, &tokens, &logprobs, nullptr);
  }

  Napi::Value result(Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", outputObject(0));
    out.Set("logprobs", outputObject(1));
    return out;
  }
};

// (logits, tokens, temperature, entropy: boolean) -> { logprobs, lse, entropy? }
struct TokenLogprobsCall : OpCall {
  static constexpr const char* kName = "tokenLogprobs";
  napo_tensor logits{}, tokens{}, logprobs{}, lse{}, entropy{};
  float temperature = 1.0f;
  bool withEntropy = false;

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    logits = input(info[0], kName, "logits");
    tokens = input(info[1], kName, "tokens");
    temperature = float(numberArg(env, info[2], kName, "temperature"));
    withEntropy = boolArg(env, info[3], kName, "entropy");
    check(env, napo_token_logprobs_validate(&logits, &tokens, temperature));
    logprobs = output(env, kName, NAPO_FLOAT32, {logits.shape[0]}, logits.device);
    lse = output(env, kName, NAPO_FLOAT32, {logits.shape[0]}, logits.device);
    if (withEntropy) entropy = output(env, kName, NAPO_FLOAT32, {logits.shape[0]}, logits.device);
  }

  napo_status run() {
    return napo_token_logprobs(&logits, &tokens, temperature, &logprobs, withEntropy ? &entropy : nullptr, &lse,
                               nullptr);
  }

  Napi::Value result(Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("logprobs", outputObject(0));
    out.Set("lse", outputObject(1));
    if (withEntropy) out.Set("entropy", outputObject(2));
    return out;
  }
};

// (logits, tokens, lse, entropy|null, gradLogprobs, gradEntropy|null, temperature, inPlace) -> gradLogits
struct TokenLogprobsBackwardCall : OpCall {
  static constexpr const char* kName = "tokenLogprobsBackward";
  napo_tensor logits{}, tokens{}, lse{}, entropy{}, gradLogprobs{}, gradEntropy{}, gradLogits{};
  bool hasEntropy = false, hasGradEntropy = false, inPlace = false;
  float temperature = 1.0f;
  Napi::ObjectReference logitsObject;  // the output of an in-place call

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    logits = input(info[0], kName, "logits");
    tokens = input(info[1], kName, "tokens");
    lse = input(info[2], kName, "lse");
    hasEntropy = optionalInput(info[3], kName, "entropy", &entropy);
    gradLogprobs = input(info[4], kName, "gradLogprobs");
    hasGradEntropy = optionalInput(info[5], kName, "gradEntropy", &gradEntropy);
    temperature = float(numberArg(env, info[6], kName, "temperature"));
    inPlace = boolArg(env, info[7], kName, "inPlace");
    check(env, napo_token_logprobs_backward_validate(&logits, &tokens, &lse, hasEntropy ? &entropy : nullptr,
                                                     &gradLogprobs, hasGradEntropy ? &gradEntropy : nullptr,
                                                     temperature));
    if (inPlace) {
      logitsObject = Napi::Persistent(info[0].As<Napi::Object>());
      gradLogits = logits;
    } else {
      gradLogits = output(env, kName, logits.dtype, {logits.shape[0], logits.shape[1]}, logits.device, NAPO_MEMORY_LOGITS);
    }
  }

  napo_status run() {
    return napo_token_logprobs_backward(&logits, &tokens, &lse, hasEntropy ? &entropy : nullptr, &gradLogprobs,
                                        hasGradEntropy ? &gradEntropy : nullptr, temperature, &gradLogits, nullptr);
  }

  Napi::Value result(Napi::Env) { return inPlace ? logitsObject.Value() : outputObject(0); }
};

// (rewards, groupOffsets: Int32Array, scale, estimator, eps) -> advantages
struct GroupAdvantagesCall : OpCall {
  static constexpr const char* kName = "groupAdvantages";
  napo_tensor rewards{}, advantages{};
  std::vector<int32_t> offsets;
  napo_advantage_options options{};

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    rewards = input(info[0], kName, "rewards");
    offsets = integersArg(env, info[1], kName, "groupOffsets");
    options.group_offsets = offsets.data();
    options.group_count = int64_t(offsets.size()) - 1;
    options.scale = napo_advantage_scale(integerArg(env, info[2], kName, "scale"));
    options.estimator = napo_advantage_estimator(integerArg(env, info[3], kName, "estimator"));
    options.eps = float(numberArg(env, info[4], kName, "eps"));
    check(env, napo_group_advantages_validate(&rewards, &options));
    advantages = output(env, kName, NAPO_FLOAT32, {rewards.shape[0]}, rewards.device);
  }

  napo_status run() {
    options.group_offsets = offsets.data();  // the vector moved with the call
    return napo_group_advantages(&rewards, &options, &advantages, nullptr);
  }

  Napi::Value result(Napi::Env) { return outputObject(0); }
};

// (logprobs, oldLogprobs, refLogprobs|null, entropy|null, advantages, mask, options)
//   -> { loss, gradLogprobs, gradEntropy (with entropy), stats }
struct PolicyLossCall : OpCall {
  static constexpr const char* kName = "policyLoss";
  napo_tensor logprobs{}, oldLogprobs{}, refLogprobs{}, entropy{}, advantages{}, mask{}, gradLogprobs{}, gradEntropy{};
  bool hasRef = false, hasEntropy = false;
  napo_policy_loss_options options{};
  napo_policy_loss_stats stats{};

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    logprobs = input(info[0], kName, "logprobs");
    oldLogprobs = input(info[1], kName, "oldLogprobs");
    hasRef = optionalInput(info[2], kName, "refLogprobs", &refLogprobs);
    hasEntropy = optionalInput(info[3], kName, "entropy", &entropy);
    advantages = input(info[4], kName, "advantages");
    mask = input(info[5], kName, "mask");
    Napi::Object given = objectArg(env, info[6], kName, "options");
    options.eps_low = float(numberArg(env, given.Get("epsLow"), kName, "epsLow"));
    options.eps_high = float(numberArg(env, given.Get("epsHigh"), kName, "epsHigh"));
    options.beta = float(numberArg(env, given.Get("beta"), kName, "beta"));
    options.loss_type = napo_loss_type(integerArg(env, given.Get("lossType"), kName, "lossType"));
    options.max_completion_length = integerArg(env, given.Get("maxCompletionLength"), kName, "maxCompletionLength");
    options.num_items_in_batch = numberArg(env, given.Get("numItemsInBatch"), kName, "numItemsInBatch");
    options.importance_level =
        napo_importance_level(integerArg(env, given.Get("importanceSamplingLevel"), kName, "importanceSamplingLevel"));
    options.delta = float(numberArg(env, given.Get("delta"), kName, "delta"));
    options.sapo_temperature_pos = float(numberArg(env, given.Get("sapoTemperaturePos"), kName, "sapoTemperaturePos"));
    options.sapo_temperature_neg = float(numberArg(env, given.Get("sapoTemperatureNeg"), kName, "sapoTemperatureNeg"));
    options.entropy_quantile = float(numberArg(env, given.Get("entropyQuantile"), kName, "entropyQuantile"));
    options.entropy_coef = float(numberArg(env, given.Get("entropyCoef"), kName, "entropyCoef"));
    options.bias_correction_kl = boolArg(env, given.Get("biasCorrectionKl"), kName, "biasCorrectionKl");
    options.off_policy_mask = boolArg(env, given.Get("offPolicyMask"), kName, "offPolicyMask");
    options.off_policy_threshold = float(numberArg(env, given.Get("offPolicyThreshold"), kName, "offPolicyThreshold"));
    options.vespo_k_pos = float(numberArg(env, given.Get("vespoKPos"), kName, "vespoKPos"));
    options.vespo_lambda_pos = float(numberArg(env, given.Get("vespoLambdaPos"), kName, "vespoLambdaPos"));
    options.vespo_k_neg = float(numberArg(env, given.Get("vespoKNeg"), kName, "vespoKNeg"));
    options.vespo_lambda_neg = float(numberArg(env, given.Get("vespoLambdaNeg"), kName, "vespoLambdaNeg"));
    check(env, napo_policy_loss_validate(&logprobs, &oldLogprobs, hasRef ? &refLogprobs : nullptr,
                                         hasEntropy ? &entropy : nullptr, &advantages, &mask, &options));
    gradLogprobs = output(env, kName, NAPO_FLOAT32, {logprobs.shape[0], logprobs.shape[1]}, logprobs.device);
    if (hasEntropy) gradEntropy = output(env, kName, NAPO_FLOAT32, {logprobs.shape[0], logprobs.shape[1]}, logprobs.device);
  }

  napo_status run() {
    return napo_policy_loss(&logprobs, &oldLogprobs, hasRef ? &refLogprobs : nullptr, hasEntropy ? &entropy : nullptr,
                            &advantages, &mask, &options, &gradLogprobs, hasEntropy ? &gradEntropy : nullptr, &stats,
                            nullptr);
  }

  Napi::Value result(Napi::Env env) {
    Napi::Object statsObject = Napi::Object::New(env);
    statsObject.Set("clipLowFraction", stats.clip_low_fraction);
    statsObject.Set("clipHighFraction", stats.clip_high_fraction);
    statsObject.Set("clipFraction", stats.clip_fraction);
    statsObject.Set("clipLowMin", stats.clip_low_min);
    statsObject.Set("clipHighMax", stats.clip_high_max);
    statsObject.Set("entropyBonus", stats.entropy_bonus);
    statsObject.Set("meanKl", stats.mean_kl);
    statsObject.Set("meanRatio", stats.mean_ratio);
    statsObject.Set("tokenCount", stats.token_count);
    statsObject.Set("keptFraction", stats.kept_fraction);
    statsObject.Set("entropyThreshold", stats.entropy_threshold);
    statsObject.Set("meanEntropy", stats.mean_entropy);
    statsObject.Set("offPolicyFraction", stats.off_policy_fraction);
    statsObject.Set("vespoPhiMean", stats.vespo_phi_mean);
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", stats.loss);
    out.Set("gradLogprobs", outputObject(0));
    if (hasEntropy) out.Set("gradEntropy", outputObject(1));
    out.Set("stats", statsObject);
    return out;
  }
};

// (logits, history, penalty) -> logits with the history's tokens penalised
struct RepetitionPenaltyCall : OpCall {
  static constexpr const char* kName = "repetitionPenalty";
  napo_tensor logits{}, history{}, out{};
  float penalty = 1.0f;

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    logits = input(info[0], kName, "logits");
    history = input(info[1], kName, "history");
    penalty = float(numberArg(env, info[2], kName, "penalty"));
    check(env, napo_repetition_penalty_validate(&logits, &history, penalty));
    out = output(env, kName, logits.dtype, {logits.shape[0], logits.shape[1]}, logits.device, NAPO_MEMORY_LOGITS);
  }

  napo_status run() { return napo_repetition_penalty(&logits, &history, penalty, &out, nullptr); }

  Napi::Value result(Napi::Env) { return outputObject(0); }
};

// (values, mask) -> sums
struct MaskedRowSumCall : OpCall {
  static constexpr const char* kName = "maskedRowSum";
  napo_tensor values{}, mask{}, sums{};

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    values = input(info[0], kName, "values");
    mask = input(info[1], kName, "mask");
    check(env, napo_masked_row_sum_validate(&values, &mask));
    sums = output(env, kName, NAPO_FLOAT32, {values.shape[0]}, values.device);
  }

  napo_status run() { return napo_masked_row_sum(&values, &mask, &sums, nullptr); }

  Napi::Value result(Napi::Env) { return outputObject(0); }
};

// (mask, gradSums) -> gradValues
struct MaskedRowSumBackwardCall : OpCall {
  static constexpr const char* kName = "maskedRowSumBackward";
  napo_tensor mask{}, gradSums{}, gradValues{};

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    mask = input(info[0], kName, "mask");
    gradSums = input(info[1], kName, "gradSums");
    check(env, napo_masked_row_sum_backward_validate(&mask, &gradSums));
    gradValues = output(env, kName, NAPO_FLOAT32, {mask.shape[0], mask.shape[1]}, mask.device);
  }

  napo_status run() { return napo_masked_row_sum_backward(&mask, &gradSums, &gradValues, nullptr); }

  Napi::Value result(Napi::Env) { return outputObject(0); }
};

napo_linear_logprobs_options linearOptions(Napi::Env env, Napi::Value value, const char* op) {
  Napi::Object given = objectArg(env, value, op, "options");
  napo_linear_logprobs_options options{};
  options.temperature = float(numberArg(env, given.Get("temperature"), op, "temperature"));
  options.chunk_size = integerArg(env, given.Get("chunkSize"), op, "chunkSize");
  return options;
}

// (hidden, weight, tokens, { temperature, chunkSize }, entropy: boolean) -> { logprobs, lse, entropy? }
struct LinearLogprobsCall : OpCall {
  static constexpr const char* kName = "linearLogprobs";
  napo_tensor hidden{}, weight{}, tokens{}, logprobs{}, lse{}, entropy{};
  napo_linear_logprobs_options options{};
  bool withEntropy = false;

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    hidden = input(info[0], kName, "hidden");
    weight = input(info[1], kName, "weight");
    tokens = input(info[2], kName, "tokens");
    options = linearOptions(env, info[3], kName);
    withEntropy = boolArg(env, info[4], kName, "entropy");
    check(env, napo_linear_logprobs_validate(&hidden, &weight, &tokens, &options));
    logprobs = output(env, kName, NAPO_FLOAT32, {hidden.shape[0]}, hidden.device);
    lse = output(env, kName, NAPO_FLOAT32, {hidden.shape[0]}, hidden.device);
    if (withEntropy) entropy = output(env, kName, NAPO_FLOAT32, {hidden.shape[0]}, hidden.device);
  }

  napo_status run() {
    return napo_linear_logprobs(&hidden, &weight, &tokens, &options, &logprobs, withEntropy ? &entropy : nullptr, &lse,
                                nullptr);
  }

  Napi::Value result(Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("logprobs", outputObject(0));
    out.Set("lse", outputObject(1));
    if (withEntropy) out.Set("entropy", outputObject(2));
    return out;
  }
};

// (hidden, weight, tokens, lse, entropy|null, gradLogprobs, gradEntropy|null, options,
//  gradHidden|null, gradWeight|null) -> { gradHidden, gradWeight }. Given gradient tensors are
// added to (both or neither); otherwise new ones are returned.
struct LinearLogprobsBackwardCall : OpCall {
  static constexpr const char* kName = "linearLogprobsBackward";
  napo_tensor hidden{}, weight{}, tokens{}, lse{}, entropy{}, gradLogprobs{}, gradEntropy{}, gradHidden{}, gradWeight{};
  napo_linear_logprobs_options options{};
  bool hasEntropy = false, hasGradEntropy = false, accumulate = false;
  Napi::ObjectReference gradHiddenObject, gradWeightObject;  // the caller's, when accumulating

  void prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    hidden = input(info[0], kName, "hidden");
    weight = input(info[1], kName, "weight");
    tokens = input(info[2], kName, "tokens");
    lse = input(info[3], kName, "lse");
    hasEntropy = optionalInput(info[4], kName, "entropy", &entropy);
    gradLogprobs = input(info[5], kName, "gradLogprobs");
    hasGradEntropy = optionalInput(info[6], kName, "gradEntropy", &gradEntropy);
    options = linearOptions(env, info[7], kName);
    const bool givenHidden = optionalInput(info[8], kName, "gradHidden", &gradHidden);
    const bool givenWeight = optionalInput(info[9], kName, "gradWeight", &gradWeight);
    if (givenHidden != givenWeight) throwType(env, "linearLogprobsBackward: give both gradHidden and gradWeight to accumulate into, or neither");
    check(env, napo_linear_logprobs_backward_validate(&hidden, &weight, &tokens, &lse, hasEntropy ? &entropy : nullptr,
                                                      &gradLogprobs, hasGradEntropy ? &gradEntropy : nullptr, &options));
    accumulate = givenHidden;
    if (accumulate) {
      gradHiddenObject = Napi::Persistent(info[8].As<Napi::Object>());
      gradWeightObject = Napi::Persistent(info[9].As<Napi::Object>());
    } else {
      gradHidden = output(env, kName, NAPO_FLOAT32, {hidden.shape[0], hidden.shape[1]}, hidden.device);
      gradWeight = output(env, kName, NAPO_FLOAT32, {weight.shape[0], weight.shape[1]}, hidden.device);
    }
  }

  napo_status run() {
    return napo_linear_logprobs_backward(&hidden, &weight, &tokens, &lse, hasEntropy ? &entropy : nullptr,
                                         &gradLogprobs, hasGradEntropy ? &gradEntropy : nullptr, &options,
                                         accumulate ? 1 : 0, &gradHidden, &gradWeight, nullptr);
  }

  Napi::Value result(Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("gradHidden", accumulate ? gradHiddenObject.Value() : outputObject(0));
    out.Set("gradWeight", accumulate ? gradWeightObject.Value() : outputObject(1));
    return out;
  }
};

}  // namespace

void registerOps(Napi::Env env, Napi::Object exports) {
  registerOp<SampleCall>(env, exports);
  registerOp<TokenLogprobsCall>(env, exports);
  registerOp<TokenLogprobsBackwardCall>(env, exports);
  registerOp<GroupAdvantagesCall>(env, exports);
  registerOp<PolicyLossCall>(env, exports);
  registerOp<RepetitionPenaltyCall>(env, exports);
  registerOp<MaskedRowSumCall>(env, exports);
  registerOp<MaskedRowSumBackwardCall>(env, exports);
  registerOp<LinearLogprobsCall>(env, exports);
  registerOp<LinearLogprobsBackwardCall>(env, exports);
}

}  // namespace napo::addon
