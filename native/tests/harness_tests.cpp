// The host emulation harness: every kernel of src/cuda, compiled by g++ under
// harness/cuda_emulation.h, against the CPU backend on small shapes (op_checks.h). It runs in CI
// on machines without a GPU, and is the only execution those kernels get there.
//
// The emulated backend does what the launchers in src/cuda/*.cu do, with host memory in place of
// device memory: the C ABI's validation (with the tensors marked as device-resident, so token and
// reward ranges are left to the kernels, as on a GPU), the same launch functions, and the same
// decoding of the kernels' error records into messages.
#include "harness/cuda_emulation.h"

#include "cuda/advantages.cuh"
#include "cuda/linear_logprobs.cuh"
#include "cuda/logprobs.cuh"
#include "cuda/masked_row_sum.cuh"
#include "cuda/policy_loss.cuh"
#include "cuda/repetition_penalty.cuh"
#include "cuda/sample.cuh"
#include "core/math.h"
#include "layer_checks.h"
#include "op_checks.h"

#include <deque>
#include <functional>

using namespace napo_tests;
namespace kernels = napo::cuda;

// The model core on the CUDA kernels against the CPU backend (harness_model_tests.cpp).
void modelSuites(Checks& checks);

namespace {

constexpr napo_device kDevice{NAPO_CUDA, 0};

const auto emulated = [](auto kernel, dim3 grid, dim3 block, auto... args) { emu::launch(kernel, grid, block, args...); };

kernels::KernelErrors clearedErrors() {
  kernels::KernelErrors errors;
  std::memset(&errors, 0xff, sizeof errors);
  return errors;
}

// What the launchers report after a logits kernel: an out-of-range token first, then the first
// bad logit (with the temperature of its row).
napo_status logitsErrors(const char* op, const kernels::KernelErrors& found, const Logits& logits,
                         const int32_t* tokens, const std::vector<float>& temperatures) {
  if (found.badIndex != kernels::kNothingFound) {
    return kernels::badTokenError(op, int64_t(found.badIndex), tokens[found.badIndex], logits.vocab);
  }
  if (found.badLogit != kernels::kNothingFound) {
    const kernels::LogitPosition where = kernels::decodeBadLogit(found.badLogit, logits.vocab);
    const float value = where.column >= 0 ? logits.get(where.row, where.column) : 0.0f;
    const float temperature = temperatures[temperatures.size() == 1 ? 0 : size_t(where.row)];
    return kernels::badLogitError(op, where, value, temperature);
  }
  return NAPO_OK;
}

// One element of a host tensor (the harness's "device" memory) as a double, as downloadElement reads it.
double elementAt(const napo_tensor& t, int64_t index) {
  switch (t.dtype) {
    case NAPO_INT32: return static_cast<const int32_t*>(t.data)[index];
    case NAPO_BFLOAT16: return napo::bf16ToFloat(static_cast<const uint16_t*>(t.data)[index]);
    case NAPO_UINT8:
    case NAPO_BOOL: return static_cast<const uint8_t*>(t.data)[index];
    default: return static_cast<const float*>(t.data)[index];
  }
}

class EmulatedBackend : public Backend {
 public:
  // Which kernel shapes run: the launchers' choice, or one forced for every vocabulary size.
  enum class RowShape { Chosen, Warp, Block256, Block512 };
  // Tiny: 64 threads and 32 candidates, so sampling takes the paths of rows whose candidates do
  // not fit in shared memory (bracket narrowing, the draw over the whole row).
  enum class SampleShape { Chosen, Tiny, Small };

  EmulatedBackend(RowShape rowShape, SampleShape sampleShape) : rowShape_(rowShape), sampleShape_(sampleShape) {}

  std::string name() const override { return "emulated"; }

  napo_status tokenLogprobs(const Logits& logits, const std::vector<int32_t>& tokens, float temperature,
                            bool withEntropy, LogprobsResult& out) override {
    const int64_t n = logits.rows;
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kDevice);
    napo_tensor t = tensorView(const_cast<int32_t*>(tokens.data()), NAPO_INT32, {n}, kDevice);
    NAPO_TRY(napo_token_logprobs_validate(&l, &t, temperature));
    out.logprobs.assign(size_t(n), 0.0f);
    out.lse.assign(size_t(n), 0.0f);
    out.entropy.assign(withEntropy ? size_t(n) : 0, 0.0f);
    kernels::KernelErrors errors = clearedErrors();
    if (logits.dtype == NAPO_BFLOAT16) {
      forward<uint16_t>(logits, tokens, temperature, out, errors);
    } else {
      forward<float>(logits, tokens, temperature, out, errors);
    }
    return logitsErrors("tokenLogprobs", errors, logits, tokens.data(), {temperature});
  }

  napo_status tokenLogprobsBackward(const Logits& logits, const BackwardInputs& in, Logits& grad) override {
    const int64_t n = logits.rows;
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kDevice);
    napo_tensor t = tensorView(const_cast<int32_t*>(in.tokens.data()), NAPO_INT32, {n}, kDevice);
    napo_tensor lse = tensorView(const_cast<float*>(in.lse.data()), NAPO_FLOAT32, {n}, kDevice);
    napo_tensor ent = tensorView(const_cast<float*>(in.entropy.data()), NAPO_FLOAT32, {n}, kDevice);
    napo_tensor glp = tensorView(const_cast<float*>(in.gradLogprobs.data()), NAPO_FLOAT32, {n}, kDevice);
    napo_tensor gent = tensorView(const_cast<float*>(in.gradEntropy.data()), NAPO_FLOAT32, {n}, kDevice);
    NAPO_TRY(napo_token_logprobs_backward_validate(&l, &t, &lse, in.entropy.empty() ? nullptr : &ent, &glp,
                                                   in.gradEntropy.empty() ? nullptr : &gent, in.temperature));
    kernels::KernelErrors errors = clearedErrors();
    if (in.inPlace) {
      backward(grad, in, grad, errors);
    } else {
      // Out of place into a buffer aligned differently from the logits: the unaligned stores.
      Logits shifted(grad.dtype, grad.rows, grad.vocab, grad.offset + 1);
      backward(logits, in, shifted, errors);
      std::memcpy(grad.data(), shifted.data(), grad.dataBytes());
    }
    if (errors.badIndex == kernels::kNothingFound && errors.badInput != kernels::kNothingFound) {
      const kernels::InputPosition where = kernels::decodeBadInput(errors.badInput);
      const napo_tensor* const inputs[4] = {&lse, in.entropy.empty() ? nullptr : &ent, &glp,
                                            in.gradEntropy.empty() ? nullptr : &gent};
      return kernels::backwardInputError(where, inputs, elementAt(*inputs[where.argument], where.index));
    }
    // In place, a bad logit was left where it was: the message quotes it from the output.
    return logitsErrors("tokenLogprobsBackward", errors, in.inPlace ? grad : logits, in.tokens.data(), {in.temperature});
  }

  napo_status sample(const Logits& logits, const SampleOptions& options, SampleResult& out) override {
    const int64_t n = logits.rows;
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kDevice);
    const napo_sample_options view = options.view();
    NAPO_TRY(napo_sample_validate(&l, &view));
    out.tokens.assign(size_t(n), -1);
    out.logprobs.assign(size_t(n), 0.0f);
    kernels::KernelErrors errors = clearedErrors();
    if (logits.dtype == NAPO_BFLOAT16) {
      sampleRows<uint16_t>(logits, options, out, errors);
    } else {
      sampleRows<float>(logits, options, out, errors);
    }
    return logitsErrors("sample", errors, logits, nullptr, options.temperature);
  }

  napo_status groupAdvantages(const AdvantageInputs& in, std::vector<float>& out) override {
    const int64_t s = int64_t(in.rewards.size());
    napo_tensor r = tensorView(const_cast<float*>(in.rewards.data()), NAPO_FLOAT32, {s}, kDevice);
    const napo_advantage_options view = in.view();
    NAPO_TRY(napo_group_advantages_validate(&r, &view));
    out.assign(size_t(s), 0.0f);
    kernels::KernelErrors errors = clearedErrors();
    const kernels::AdvantageArgs args{in.rewards.data(), s,        in.offsets.data(), view.group_count, in.scale,
                                      in.estimator,      in.eps,   out.data(),        &errors};
    kernels::launchGroupAdvantages(emulated, args);
    if (errors.badIndex != kernels::kNothingFound) {
      return kernels::badRewardError(int64_t(errors.badIndex), in.rewards[errors.badIndex]);
    }
    return NAPO_OK;
  }

  napo_status policyLoss(const PolicyLossInputs& in, PolicyLossResult& out) override {
    const int64_t s = in.sequences, t = in.steps;
    auto tensor2 = [&](const std::vector<float>& v) {
      return tensorView(const_cast<float*>(v.data()), NAPO_FLOAT32, {s, t}, kDevice);
    };
    napo_tensor lp = tensor2(in.logprobs), old = tensor2(in.oldLogprobs), ref = tensor2(in.refLogprobs),
                ent = tensor2(in.entropy);
    const bool withEntropy = !in.entropy.empty();
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {s, t}, kDevice);
    napo_tensor adv = tensorView(const_cast<float*>(in.advantages.data()), NAPO_FLOAT32, {s}, kDevice);
    NAPO_TRY(napo_policy_loss_validate(&lp, &old, in.refLogprobs.empty() ? nullptr : &ref,
                                       withEntropy ? &ent : nullptr, &adv, &mask, &in.options));
    out.grad.assign(size_t(s * t), 0.0f);
    out.gradEntropy.assign(withEntropy ? size_t(s * t) : 0, 0.0f);
    kernels::BatchTotals batch{-1.0, -1.0, -1.0f};
    std::vector<kernels::SequenceSums> sums(static_cast<size_t>(s));
    kernels::KernelErrors errors = clearedErrors();
    const kernels::PolicyLossArgs args{in.logprobs.data(),
                                       in.oldLogprobs.data(),
                                       in.refLogprobs.empty() ? nullptr : in.refLogprobs.data(),
                                       withEntropy ? in.entropy.data() : nullptr,
                                       in.advantages.data(),
                                       maskBytes.data(),
                                       in.maskDtype,
                                       s,
                                       t,
                                       in.options,
                                       &batch,
                                       out.grad.data(),
                                       withEntropy ? out.gradEntropy.data() : nullptr,
                                       sums.data(),
                                       &errors};
    kernels::launchPolicyLoss(emulated, args);
    if (errors.badInput != kernels::kNothingFound) {
      const kernels::InputPosition where = kernels::decodeBadInput(errors.badInput);
      const napo_tensor* const inputs[kernels::kPolicyLossInputs] = {
          &mask, &adv, &lp, &old, in.refLogprobs.empty() ? nullptr : &ref, withEntropy ? &ent : nullptr};
      return kernels::policyLossInputError(where, inputs, elementAt(*inputs[where.argument], where.index));
    }
    kernels::policyLossStats(sums.data(), s, in.options, batch.threshold, &out.stats);
    return NAPO_OK;
  }

  napo_status repetitionPenalty(const Logits& logits, const std::vector<int32_t>& history, float penalty,
                                Logits& out) override {
    const int64_t n = logits.rows, length = int64_t(history.size()) / n;
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kDevice);
    napo_tensor h = tensorView(const_cast<int32_t*>(history.data()), NAPO_INT32, {n, length}, kDevice);
    NAPO_TRY(napo_repetition_penalty_validate(&l, &h, penalty));
    kernels::KernelErrors errors = clearedErrors();
    if (logits.dtype == NAPO_BFLOAT16) {
      penaliseRows<uint16_t>(logits, history, length, penalty, out, errors);
    } else {
      penaliseRows<float>(logits, history, length, penalty, out, errors);
    }
    if (errors.badIndex == kernels::kNothingFound) return NAPO_OK;
    return napo::historyTokenError("repetitionPenalty", h, int64_t(errors.badIndex), history[errors.badIndex], logits.vocab);
  }

  napo_status maskedRowSum(const RowSumInputs& in, std::vector<float>& sums) override {
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor values = tensorView(const_cast<float*>(in.values.data()), NAPO_FLOAT32, {in.rows, in.width}, kDevice);
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {in.rows, in.width}, kDevice);
    NAPO_TRY(napo_masked_row_sum_validate(&values, &mask));
    sums.assign(size_t(in.rows), 0.0f);
    const napo_tensor* const inputs[3] = {&mask, &values, nullptr};
    return rowSumLaunch("maskedRowSum", inputs, {in.values.data(), maskBytes.data(), in.maskDtype, in.rows, in.width,
                                                 nullptr, sums.data(), nullptr},
                        [](auto&& launch, const kernels::MaskedRowSumArgs& a) { kernels::launchMaskedRowSum(launch, a); });
  }

  napo_status maskedRowSumBackward(const RowSumInputs& in, std::vector<float>& gradValues) override {
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {in.rows, in.width}, kDevice);
    napo_tensor grad = tensorView(const_cast<float*>(in.gradSums.data()), NAPO_FLOAT32, {in.rows}, kDevice);
    NAPO_TRY(napo_masked_row_sum_backward_validate(&mask, &grad));
    gradValues.assign(size_t(in.rows * in.width), 0.0f);
    const napo_tensor* const inputs[3] = {&mask, nullptr, &grad};
    return rowSumLaunch("maskedRowSumBackward", inputs,
                        {nullptr, maskBytes.data(), in.maskDtype, in.rows, in.width, in.gradSums.data(),
                         gradValues.data(), nullptr},
                        [](auto&& launch, const kernels::MaskedRowSumArgs& a) {
                          kernels::launchMaskedRowSumBackward(launch, a);
                        });
  }

  napo_status linearLogprobs(const LinearInputs& in, LogprobsResult& out) override {
    const Linear views = linearViews(in);
    const napo_linear_logprobs_options options = in.options();
    NAPO_TRY(napo_linear_logprobs_validate(&views.hidden, &views.weight, &views.tokens, &options));
    const int64_t n = in.rows();
    out.logprobs.assign(size_t(n), 0.0f);
    out.lse.assign(size_t(n), 0.0f);
    out.entropy.assign(in.withEntropy ? size_t(n) : 0, 0.0f);
    const kernels::LinearOutputs outputs{out.logprobs.data(), in.withEntropy ? out.entropy.data() : nullptr,
                                         out.lse.data()};
    if (in.hidden.dtype == NAPO_BFLOAT16) return linearForward<uint16_t>(in, views, outputs);
    return linearForward<float>(in, views, outputs);
  }

  napo_status linearLogprobsBackward(const LinearInputs& in, LinearGradientsResult& out) override {
    const Linear views = linearViews(in);
    const int64_t n = in.rows();
    auto rowsOf = [&](const std::vector<float>& v) { return tensorView(const_cast<float*>(v.data()), NAPO_FLOAT32, {n}, kDevice); };
    const napo_tensor lse = rowsOf(in.lse), ent = rowsOf(in.entropy), glp = rowsOf(in.gradLogprobs),
                      gent = rowsOf(in.gradEntropy);
    const napo_tensor* entropy = in.entropy.empty() ? nullptr : &ent;
    const napo_tensor* gradEntropy = in.gradEntropy.empty() ? nullptr : &gent;
    const napo_linear_logprobs_options options = in.options();
    NAPO_TRY(napo_linear_logprobs_backward_validate(&views.hidden, &views.weight, &views.tokens, &lse, entropy, &glp,
                                                    gradEntropy, &options));
    out.gradHidden = in.accumulate ? in.gradHidden : std::vector<float>(size_t(n * in.width()), 0.0f);
    out.gradWeight = in.accumulate ? in.gradWeight : std::vector<float>(size_t(in.vocab() * in.width()), 0.0f);
    const napo_tensor* const inputs[6] = {&views.hidden, &views.weight, &lse, entropy, &glp, gradEntropy};
    if (in.hidden.dtype == NAPO_BFLOAT16) return linearBackward<uint16_t>(in, views, inputs, out);
    return linearBackward<float>(in, views, inputs, out);
  }

 private:
  template <typename Logit>
  static void penaliseRows(const Logits& logits, const std::vector<int32_t>& history, int64_t length, float penalty,
                           Logits& out, kernels::KernelErrors& errors) {
    const kernels::RepetitionPenaltyArgs<Logit> args{static_cast<const Logit*>(logits.data()), history.data(), logits.rows,
                                                     logits.vocab, length, penalty, static_cast<Logit*>(out.data()),
                                                     &errors};
    kernels::launchRepetitionPenalty(emulated, args);
  }

  // What masked_row_sum.cu does around a launch: the kernel's error record decoded into the CPU's message.
  template <typename Launcher>
  static napo_status rowSumLaunch(const char* op, const napo_tensor* const inputs[3], kernels::MaskedRowSumArgs args,
                                  Launcher&& launcher) {
    kernels::KernelErrors errors = clearedErrors();
    args.errors = &errors;
    launcher(emulated, args);
    if (errors.badInput == kernels::kNothingFound) return NAPO_OK;
    const kernels::InputPosition where = kernels::decodeBadInput(errors.badInput);
    return kernels::maskedRowSumInputError(op, where, inputs, elementAt(*inputs[where.argument], where.index));
  }

  struct Linear {
    napo_tensor hidden, weight, tokens;
  };

  static Linear linearViews(const LinearInputs& in) {
    return {tensorView(const_cast<void*>(in.hidden.data()), in.hidden.dtype, {in.rows(), in.width()}, kDevice),
            tensorView(const_cast<void*>(in.weight.data()), in.weight.dtype, {in.vocab(), in.width()}, kDevice),
            tensorView(const_cast<int32_t*>(in.tokens.data()), NAPO_INT32, {in.rows()}, kDevice)};
  }

  // The workspace linear_logprobs.cu takes from its scratch: one chunk of logits, then the rows'
  // running statistics (and three more rows for a recomputed entropy).
  template <typename T>
  static kernels::LinearArgs<T> linearArgs(const LinearInputs& in, std::vector<float>& workspace,
                                           kernels::KernelErrors* errors) {
    const int64_t n = in.rows();
    const int64_t chunk = napo_linear_logprobs_chunk(n, in.vocab(), in.chunk);
    workspace.assign(size_t(n * chunk + 7 * n), 0.0f);
    float* state = workspace.data() + n * chunk;
    return {static_cast<const T*>(in.hidden.data()), static_cast<const T*>(in.weight.data()), in.tokens.data(), n,
            in.width(), in.vocab(), chunk, 1.0f / in.temperature, workspace.data(),
            kernels::LinearRowState{state, state + n, state + 2 * n, state + 3 * n}, errors};
  }

  // What linear_logprobs.cu reports: a token, then a checked input, then an overflowing logit.
  static napo_status linearErrors(const char* op, const LinearInputs& in, const kernels::KernelErrors& found,
                                  const napo_tensor* const inputs[6]) {
    if (found.badIndex != kernels::kNothingFound) {
      return kernels::badTokenError(op, int64_t(found.badIndex), in.tokens[found.badIndex], in.vocab());
    }
    if (found.badInput != kernels::kNothingFound) {
      const kernels::InputPosition where = kernels::decodeBadInput(found.badInput);
      return kernels::linearInputError(op, where, inputs, elementAt(*inputs[where.argument], where.index));
    }
    if (found.badLogit != kernels::kNothingFound) {
      const kernels::LogitPosition where = kernels::decodeBadLogit(found.badLogit, in.vocab());
      return napo::linearOverflowError(op, where.row, where.column, in.temperature);
    }
    return NAPO_OK;
  }

  template <typename T>
  napo_status linearForward(const LinearInputs& in, const Linear& views, const kernels::LinearOutputs& outputs) {
    kernels::KernelErrors errors = clearedErrors();
    std::vector<float> workspace;
    const kernels::LinearArgs<T> args = linearArgs<T>(in, workspace, &errors);
    kernels::launchLinearCheck(emulated, args, static_cast<const kernels::LinearGradients*>(nullptr));
    kernels::launchLinearLogprobs(emulated, args, outputs);
    const napo_tensor* const inputs[6] = {&views.hidden, &views.weight, nullptr, nullptr, nullptr, nullptr};
    return linearErrors("linearLogprobs", in, errors, inputs);
  }

  template <typename T>
  napo_status linearBackward(const LinearInputs& in, const Linear& views, const napo_tensor* const inputs[6],
                             LinearGradientsResult& out) {
    kernels::KernelErrors errors = clearedErrors();
    std::vector<float> workspace;
    const kernels::LinearArgs<T> args = linearArgs<T>(in, workspace, &errors);
    kernels::LinearGradients grads{in.lse.data(),
                                   in.entropy.empty() ? nullptr : in.entropy.data(),
                                   in.gradLogprobs.data(),
                                   in.gradEntropy.empty() ? nullptr : in.gradEntropy.data(),
                                   out.gradHidden.data(),
                                   out.gradWeight.data(),
                                   in.accumulate};
    kernels::launchLinearCheck(emulated, args, &grads);
    if (!in.gradEntropy.empty() && in.entropy.empty()) {
      float* scratch = args.state.target + in.rows();
      kernels::launchLinearLogprobs(emulated, args, kernels::LinearOutputs{scratch, scratch + in.rows(), scratch + 2 * in.rows()});
      grads.entropy = scratch + in.rows();
    }
    kernels::launchLinearLogprobsBackward(emulated, args, grads);
    return linearErrors("linearLogprobsBackward", in, errors, inputs);
  }

  template <typename Logit>
  void forward(const Logits& logits, const std::vector<int32_t>& tokens, float temperature, LogprobsResult& out,
               kernels::KernelErrors& errors) {
    const kernels::LogprobsArgs<Logit> args{static_cast<const Logit*>(logits.data()),
                                            tokens.data(),
                                            logits.rows,
                                            logits.vocab,
                                            1.0f / temperature,
                                            out.logprobs.data(),
                                            out.entropy.empty() ? nullptr : out.entropy.data(),
                                            out.lse.data(),
                                            &errors};
    switch (rowShape_) {
      case RowShape::Chosen: kernels::launchTokenLogprobs(emulated, args); break;
      case RowShape::Warp: kernels::launchTokenLogprobsAs(kernels::RowShape<32, 8>{}, emulated, args); break;
      case RowShape::Block256: kernels::launchTokenLogprobsAs(kernels::RowShape<256, 1>{}, emulated, args); break;
      case RowShape::Block512: kernels::launchTokenLogprobsAs(kernels::RowShape<512, 1>{}, emulated, args); break;
    }
  }

  void backward(const Logits& logits, const BackwardInputs& in, Logits& grad, kernels::KernelErrors& errors) {
    if (logits.dtype == NAPO_BFLOAT16) {
      backwardAs<uint16_t>(logits, in, grad, errors);
    } else {
      backwardAs<float>(logits, in, grad, errors);
    }
  }

  template <typename Logit>
  void backwardAs(const Logits& logits, const BackwardInputs& in, Logits& grad, kernels::KernelErrors& errors) {
    const kernels::LogprobsBackwardArgs<Logit> args{static_cast<const Logit*>(logits.data()),
                                                    in.tokens.data(),
                                                    in.lse.data(),
                                                    optional(in.entropy),
                                                    in.gradLogprobs.data(),
                                                    optional(in.gradEntropy),
                                                    logits.rows,
                                                    logits.vocab,
                                                    1.0f / in.temperature,
                                                    static_cast<Logit*>(grad.data()),
                                                    &errors};
    switch (rowShape_) {
      case RowShape::Chosen: kernels::launchTokenLogprobsBackward(emulated, args); break;
      case RowShape::Warp: kernels::launchTokenLogprobsBackwardAs(kernels::RowShape<32, 8>{}, emulated, args); break;
      case RowShape::Block256:
        kernels::launchTokenLogprobsBackwardAs(kernels::RowShape<256, 1>{}, emulated, args);
        break;
      case RowShape::Block512:
        kernels::launchTokenLogprobsBackwardAs(kernels::RowShape<512, 1>{}, emulated, args);
        break;
    }
  }

  template <typename Logit>
  void sampleRows(const Logits& logits, const SampleOptions& options, SampleResult& out,
                  kernels::KernelErrors& errors) {
    const kernels::SampleArgs<Logit> args{static_cast<const Logit*>(logits.data()),
                                          logits.rows,
                                          logits.vocab,
                                          {options.temperature.data(), int64_t(options.temperature.size())},
                                          {options.topK.data(), int64_t(options.topK.size())},
                                          {options.topP.data(), int64_t(options.topP.size())},
                                          {options.minP.data(), int64_t(options.minP.size())},
                                          options.seed,
                                          options.offset,
                                          out.tokens.data(),
                                          out.logprobs.data(),
                                          &errors};
    switch (sampleShape_) {
      case SampleShape::Chosen: kernels::launchSample(emulated, args); break;
      case SampleShape::Tiny: kernels::launchSampleAs<64, 32>(emulated, args); break;
      case SampleShape::Small: kernels::launchSampleAs<256, 256>(emulated, args); break;
    }
  }

  RowShape rowShape_;
  SampleShape sampleShape_;
};

// ---- the sampler's threshold search, against thresholds computed by sorting --------------------

// Row by row: the top-k threshold from the threads' maxima bound, then the top-p threshold over
// the top-k set, both by the bracket search of sample.cuh.
template <int kThreads, int kCapacity>
__global__ void thresholdKernel(const float* logits, int64_t vocab, int32_t topK, float topP, float* out) {
  __shared__ kernels::SampleShared<kThreads, kCapacity> shared;
  const int64_t row = blockIdx.x;
  const kernels::RowOctets<float> octets = kernels::rowOctets(logits + row * vocab, vocab);
  const float max = kernels::summarizeRow<kThreads, false>(octets, 1.0f, shared).stats.max;
  float lo = -INFINITY;
  if (topK <= kThreads) {
    kernels::bitonicSort<kThreads>(shared.threadMax, kThreads, kernels::Descending{});
    lo = shared.threadMax[topK - 1];
  }
  const float keepZ = kernels::findThreshold(octets, 1.0f, max, kernels::Objective{false, double(topK), 0.0}, lo, shared);
  const float keepP = kernels::findThreshold(octets, 1.0f, max, kernels::Objective{true, 0.0, double(topP)}, keepZ, shared);
  if (threadIdx.x == 0) {
    out[2 * row] = keepZ;
    out[2 * row + 1] = keepP;
  }
}

struct Thresholds {
  float topK, topP;
  bool topPNearEdge;  // the mass at the crossing is within rounding of the goal
};

Thresholds sortedThresholds(const float* row, int64_t vocab, int32_t topK, float topP) {
  std::vector<float> z(row, row + vocab);
  std::sort(z.begin(), z.end(), std::greater<float>());
  const float keepZ = z[size_t(topK - 1)];
  const float max = z[0];
  auto mass = [&](float value) { return value - max < -87.0f ? 0.0 : double(std::exp(value - max)); };
  double total = 0.0;
  for (float value : z) total += value >= keepZ ? mass(value) : 0.0;
  const double goal = double(topP) * total;
  double running = 0.0;
  size_t i = 0;
  for (; i + 1 < z.size() && z[i + 1] >= keepZ; ++i) {
    running += mass(z[i]);
    if (running >= goal) break;
  }
  if (running < goal) running += mass(z[i]);
  return {keepZ, z[i], std::fabs(running - goal) <= 1e-6 * total || std::fabs(running - mass(z[i]) - goal) <= 1e-6 * total};
}

template <int kThreads, int kCapacity>
void thresholdSuite(Checks& checks) {
  const Pattern patterns[] = {Pattern::Normal, Pattern::Peaked, Pattern::Ties, Pattern::NegInf, Pattern::Flat};
  uint64_t seed = 700;
  for (int64_t vocab : {int64_t(2), int64_t(9), int64_t(300), int64_t(4099)}) {
    for (Pattern pattern : patterns) {
      ++seed;
      const Logits logits = makeLogits(NAPO_FLOAT32, 3, vocab, pattern, seed, int(seed % 2));
      for (int32_t topK : {1, 2, 7, 50, 700, 3000}) {
        if (topK >= vocab) continue;
        for (float topP : {0.5f, 0.99f}) {
          std::vector<float> out(size_t(2 * logits.rows));
          emu::launch(thresholdKernel<kThreads, kCapacity>, dim3(unsigned(logits.rows)), dim3(kThreads),
                      static_cast<const float*>(logits.data()), vocab, topK, topP, out.data());
          for (int64_t r = 0; r < logits.rows; ++r) {
            const float* row = static_cast<const float*>(logits.data()) + r * vocab;
            const Thresholds want = sortedThresholds(row, vocab, topK, topP);
            const std::string what = format("sample thresholds %d threads %d candidates V=%lld %s top-k %d top-p %g row %lld",
                                            kThreads, kCapacity, (long long)vocab, patternName(pattern), topK, topP,
                                            (long long)r);
            checks.expect(out[size_t(2 * r)] == want.topK,
                          format("%s: top-k threshold %.9g, want %.9g", what.c_str(), out[size_t(2 * r)], want.topK));
            checks.expect(out[size_t(2 * r + 1)] == want.topP || want.topPNearEdge,
                          format("%s: top-p threshold %.9g, want %.9g", what.c_str(), out[size_t(2 * r + 1)], want.topP));
          }
        }
      }
    }
  }
}

// The kernels' bf16 rounding against the CPU backend's, bit for bit: ties to even, NaN, Inf,
// subnormals, and the largest values (which round to Inf).
void bf16RoundingSuite(Checks& checks) {
  std::vector<uint32_t> patterns = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                    0xffc00001u, 0x7f7fffffu, 0x7f7f8000u, 0x7f7f7fffu, 0x00008000u, 0x00018000u,
                                    0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu};
  std::mt19937 rng(11);
  for (int i = 0; i < 20000; ++i) patterns.push_back(rng());
  for (uint32_t bits : patterns) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    const uint16_t got = kernels::roundToBf16(value), want = napo::floatToBf16(value);
    if (got != want) {
      checks.expect(false, format("bf16 rounding of 0x%08x: 0x%04x, want 0x%04x", bits, got, want));
      return;
    }
  }
  checks.expect(true, "bf16 rounding");
}

// The layer checks' Device on the host: "device" memory is host memory the harness keeps.
class HostDevice {
 public:
  template <typename T>
  T* copy(const std::vector<T>& values) {
    auto& bytes = blocks_.emplace_back(values.size() * sizeof(T) + 1);
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), values.size() * sizeof(T));
    return reinterpret_cast<T*>(bytes.data());
  }
  template <typename T>
  std::vector<T> read(const T* data, size_t count) const {
    return std::vector<T>(data, data + count);
  }
  auto launcher() const { return emulated; }

 private:
  // Held by value in a deque, so earlier blocks never move; a vector<double> keeps 8-byte alignment.
  struct Block {
    std::vector<double> storage;
    explicit Block(size_t bytes) : storage((bytes + sizeof(double) - 1) / sizeof(double)) {}
    char* data() { return reinterpret_cast<char*>(storage.data()); }
  };
  std::deque<Block> blocks_;
};

}  // namespace

int main() {
  Checks checks;
  CpuBackend cpu;
  using Rows = EmulatedBackend::RowShape;
  using Sample = EmulatedBackend::SampleShape;

  EmulatedBackend chosen(Rows::Chosen, Sample::Chosen);
  runSmallSuites(checks, chosen, cpu);

  // Every row shape on every size class, whatever the launchers would pick.
  const std::vector<Shape> rowShapes = {{3, 7}, {5, 33}, {4, 1000}, {2, 5003}};
  for (Rows forced : {Rows::Warp, Rows::Block256, Rows::Block512}) {
    EmulatedBackend backend(forced, Sample::Chosen);
    tokenLogprobsSuite(checks, backend, cpu, rowShapes);
    backwardSuite(checks, backend, cpu, rowShapes);
  }

  // Sampling with too little shared memory for the candidates.
  EmulatedBackend tiny(Rows::Chosen, Sample::Tiny);
  sampleSuite(checks, tiny, cpu, {{8, 7}, {16, 100}, {12, 1000}, {4, 5003}});
  EmulatedBackend small(Rows::Chosen, Sample::Small);
  sampleSuite(checks, small, cpu, {{12, 1000}, {4, 5003}});
  bf16RoundingSuite(checks);
  thresholdSuite<64, 32>(checks);
  thresholdSuite<256, 256>(checks);
  thresholdSuite<256, 4096>(checks);
  HostDevice host;
  layerKernelSuites(checks, host);
  modelSuites(checks);

  return report("harness", checks);
}
