// The comparisons every backend under test must pass against the CPU backend: the four RL ops on
// small random shapes (odd V, V = 1, N = 1, -Inf logits, ties, bf16, misaligned rows), every
// sampling mode, the backward in place and not, every advantage scale and estimator, every loss
// type, and the error paths (same status, same message). Shared by the host emulation harness
// (harness_tests.cpp) and the GPU tests (cuda_tests.cpp), which differ only in the Backend they
// hand in.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/math.h"
#include "core/tensor.h"
#include "napo/napo.h"

namespace napo_tests {

using napo::tensorView;

inline std::string format(const char* text, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* text, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, text);
  std::vsnprintf(buffer, sizeof buffer, text, args);
  va_end(args);
  return buffer;
}

class Checks {
 public:
  bool expect(bool ok, const std::string& what) {
    if (ok) {
      ++passed_;
    } else {
      ++failed_;
      if (failed_ <= 60) std::fprintf(stderr, "FAIL %s\n", what.c_str());
    }
    return ok;
  }
  int passed() const { return passed_; }
  int failed() const { return failed_; }

  // Sampling agreement is judged over all rows at the end: a draw may differ where it lands
  // within rounding of a bucket edge.
  void countSampledRows(int64_t rows, int64_t agreeing) {
    sampledRows_ += rows;
    agreeingRows_ += agreeing;
  }
  int64_t sampledRows() const { return sampledRows_; }
  int64_t agreeingRows() const { return agreeingRows_; }

 private:
  int passed_ = 0, failed_ = 0;
  int64_t sampledRows_ = 0, agreeingRows_ = 0;
};

// ---- inputs ---------------------------------------------------------------------------------------

// Logits [rows, vocab] in host memory. `offset` elements of padding come first, so the rows sit
// off the alignment an allocator would give them.
struct Logits {
  napo_dtype dtype = NAPO_FLOAT32;
  int64_t rows = 0, vocab = 0;
  int offset = 0;
  std::vector<unsigned char> bytes;

  Logits() = default;
  Logits(napo_dtype type, int64_t r, int64_t v, int off)
      : dtype(type), rows(r), vocab(v), offset(off), bytes(size_t(r * v + off) * elementSize() + 16) {}

  size_t elementSize() const { return dtype == NAPO_BFLOAT16 ? 2 : 4; }
  size_t dataBytes() const { return size_t(rows * vocab) * elementSize(); }
  void* data() { return bytes.data() + size_t(offset) * elementSize(); }
  const void* data() const { return bytes.data() + size_t(offset) * elementSize(); }
  float get(int64_t r, int64_t c) const {
    const size_t at = size_t(r * vocab + c);
    if (dtype == NAPO_BFLOAT16) return napo::bf16ToFloat(static_cast<const uint16_t*>(data())[at]);
    return static_cast<const float*>(data())[at];
  }
  void set(int64_t r, int64_t c, float value) {
    const size_t at = size_t(r * vocab + c);
    if (dtype == NAPO_BFLOAT16) {
      static_cast<uint16_t*>(data())[at] = napo::floatToBf16(value);
    } else {
      static_cast<float*>(data())[at] = value;
    }
  }
};


enum class Pattern { Normal, Peaked, Ties, NegInf, Flat, Huge };

inline const char* patternName(Pattern pattern) {
  switch (pattern) {
    case Pattern::Normal: return "normal";
    case Pattern::Peaked: return "peaked";
    case Pattern::Ties: return "ties";
    case Pattern::NegInf: return "-inf";
    case Pattern::Flat: return "flat";
    case Pattern::Huge: return "huge";
  }
  return "?";
}

inline Logits makeLogits(napo_dtype dtype, int64_t rows, int64_t vocab, Pattern pattern, uint64_t seed, int offset = 0) {
  Logits logits(dtype, rows, vocab, offset);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 3);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < vocab; ++c) {
      float value = 0.0f;
      switch (pattern) {
        case Pattern::Normal: value = 2.0f * normal(rng); break;
        case Pattern::Peaked: value = normal(rng) + (unit(rng) < 0.01f ? 8.0f + 4.0f * unit(rng) : 0.0f); break;
        case Pattern::Ties: value = float(small(rng)); break;
        case Pattern::NegInf: value = unit(rng) < 0.3f ? -INFINITY : 3.0f * normal(rng); break;
        case Pattern::Flat: value = 0.5f; break;
        case Pattern::Huge: value = 3.0e4f * normal(rng); break;
      }
      logits.set(r, c, value);
    }
    if (pattern == Pattern::NegInf) logits.set(r, int64_t(unit(rng) * float(vocab)) % vocab, 1.0f);
  }
  return logits;
}

inline std::vector<int32_t> randomTokens(int64_t rows, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(rows));
  for (auto& token : tokens) token = int32_t(rng() % uint64_t(vocab));
  return tokens;
}

inline std::vector<float> randomNormal(size_t count, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (auto& value : values) value = normal(rng);
  return values;
}

// ---- the ops as a backend offers them ------------------------------------------------------------------

struct LogprobsResult {
  std::vector<float> logprobs, entropy, lse;
};

struct BackwardInputs {
  std::vector<int32_t> tokens;
  std::vector<float> lse, entropy, gradLogprobs, gradEntropy;  // entropy, gradEntropy: empty = none
  float temperature = 1.0f;
  bool inPlace = false;
};

struct SampleOptions {
  std::vector<float> temperature{1.0f}, topP{1.0f}, minP{0.0f};
  std::vector<int32_t> topK{0};
  uint64_t seed = 1234, offset = 0;
  napo_sample_options view() const {
    return {{temperature.data(), int64_t(temperature.size())},
            {topK.data(), int64_t(topK.size())},
            {topP.data(), int64_t(topP.size())},
            {minP.data(), int64_t(minP.size())},
            seed,
            offset};
  }
};

struct SampleResult {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
};

struct AdvantageInputs {
  std::vector<float> rewards;
  std::vector<int32_t> offsets;
  napo_advantage_scale scale = NAPO_SCALE_GROUP;
  napo_advantage_estimator estimator = NAPO_ESTIMATOR_GRPO;
  float eps = 1e-4f;
  napo_advantage_options view() const {
    return {offsets.data(), int64_t(offsets.size()) - 1, scale, estimator, eps};
  }
};

// A mask's 0s and 1s as the bytes of a tensor of `dtype` (float32, int32, uint8 or bool).
inline std::vector<uint8_t> maskAsBytes(const std::vector<float>& mask, napo_dtype dtype) {
  const size_t width = dtype == NAPO_UINT8 || dtype == NAPO_BOOL ? 1 : 4;
  std::vector<uint8_t> bytes(mask.size() * width);
  for (size_t i = 0; i < mask.size(); ++i) {
    switch (dtype) {
      case NAPO_INT32: {
        const int32_t v = int32_t(mask[i]);
        std::memcpy(bytes.data() + 4 * i, &v, 4);
        break;
      }
      case NAPO_UINT8:
      case NAPO_BOOL: bytes[i] = uint8_t(mask[i]); break;
      default: std::memcpy(bytes.data() + 4 * i, &mask[i], 4);
    }
  }
  return bytes;
}

struct PolicyLossInputs {
  int64_t sequences = 0, steps = 0;
  // refLogprobs, entropy empty = none; with entropy, gradEntropy is asked for too.
  std::vector<float> logprobs, oldLogprobs, refLogprobs, entropy, advantages, mask;
  napo_dtype maskDtype = NAPO_FLOAT32;  // the mask's values are stored in this dtype
  napo_policy_loss_options options{0.2f, 0.2f, 0.0f, NAPO_LOSS_GRPO, 0, 0.0, NAPO_IMPORTANCE_TOKEN, 0.0f, 1.0f, 1.05f,
                                   0.0f, 0.0f, 0,    0,    0.0f, 2.0f, 3.0f, 3.0f, 2.0f};

  std::vector<uint8_t> maskBytes() const { return maskAsBytes(mask, maskDtype); }
};

// maskedRowSum's values and mask [rows, width], and its backward's gradSums [rows].
struct RowSumInputs {
  int64_t rows = 0, width = 0;
  std::vector<float> values, mask, gradSums;
  napo_dtype maskDtype = NAPO_FLOAT32;

  std::vector<uint8_t> maskBytes() const { return maskAsBytes(mask, maskDtype); }
};

struct PolicyLossResult {
  std::vector<float> grad, gradEntropy;
  napo_policy_loss_stats stats{};
};

// linearLogprobs: hidden [N, H] and weight [V, H] (one dtype; stored like logits), the forward's
// options, and for the backward its per-row inputs and, when accumulating, the gradients' start.
struct LinearInputs {
  Logits hidden, weight;
  std::vector<int32_t> tokens;
  float temperature = 1.0f;
  int64_t chunk = 0;
  bool withEntropy = false;
  std::vector<float> lse, entropy, gradLogprobs, gradEntropy;  // entropy, gradEntropy: empty = none
  bool accumulate = false;
  std::vector<float> gradHidden, gradWeight;  // the values accumulated into

  int64_t rows() const { return hidden.rows; }
  int64_t width() const { return hidden.vocab; }
  int64_t vocab() const { return weight.rows; }
  napo_linear_logprobs_options options() const { return {temperature, chunk}; }
};

struct LinearGradientsResult {
  std::vector<float> gradHidden, gradWeight;
};

// A backend under test, or the CPU reference. Each call returns the op's status; on failure the
// message is napo_last_error().
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual napo_status tokenLogprobs(const Logits& logits, const std::vector<int32_t>& tokens, float temperature,
                                    bool withEntropy, LogprobsResult& out) = 0;
  // `grad` arrives shaped like `logits`; an in-place backward starts from a copy of the logits in it.
  virtual napo_status tokenLogprobsBackward(const Logits& logits, const BackwardInputs& in, Logits& grad) = 0;
  virtual napo_status sample(const Logits& logits, const SampleOptions& options, SampleResult& out) = 0;
  virtual napo_status groupAdvantages(const AdvantageInputs& in, std::vector<float>& out) = 0;
  virtual napo_status policyLoss(const PolicyLossInputs& in, PolicyLossResult& out) = 0;
  virtual napo_status maskedRowSum(const RowSumInputs& in, std::vector<float>& sums) = 0;
  // `out` arrives shaped like `logits`; `history` is [logits.rows, length].
  virtual napo_status repetitionPenalty(const Logits& logits, const std::vector<int32_t>& history, float penalty,
                                        Logits& out) = 0;
  virtual napo_status maskedRowSumBackward(const RowSumInputs& in, std::vector<float>& gradValues) = 0;
  virtual napo_status linearLogprobs(const LinearInputs& in, LogprobsResult& out) = 0;
  virtual napo_status linearLogprobsBackward(const LinearInputs& in, LinearGradientsResult& out) = 0;
};

inline const float* optional(const std::vector<float>& values) { return values.empty() ? nullptr : values.data(); }

// The CPU backend through the C ABI.
class CpuBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }

  napo_status tokenLogprobs(const Logits& logits, const std::vector<int32_t>& tokens, float temperature,
                            bool withEntropy, LogprobsResult& out) override {
    const int64_t n = logits.rows;
    out.logprobs.assign(size_t(n), 0.0f);
    out.lse.assign(size_t(n), 0.0f);
    out.entropy.assign(withEntropy ? size_t(n) : 0, 0.0f);
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kCpu);
    napo_tensor t = tensorView(const_cast<int32_t*>(tokens.data()), NAPO_INT32, {n}, kCpu);
    napo_tensor lp = tensorView(out.logprobs.data(), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor lse = tensorView(out.lse.data(), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor ent = tensorView(out.entropy.data(), NAPO_FLOAT32, {n}, kCpu);
    return napo_token_logprobs(&l, &t, temperature, &lp, withEntropy ? &ent : nullptr, &lse, nullptr);
  }

  napo_status tokenLogprobsBackward(const Logits& logits, const BackwardInputs& in, Logits& grad) override {
    const int64_t n = logits.rows;
    napo_tensor l = tensorView(const_cast<void*>(in.inPlace ? grad.data() : logits.data()), logits.dtype,
                             {n, logits.vocab}, kCpu);
    napo_tensor t = tensorView(const_cast<int32_t*>(in.tokens.data()), NAPO_INT32, {n}, kCpu);
    napo_tensor lse = tensorView(const_cast<float*>(in.lse.data()), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor ent = tensorView(const_cast<float*>(in.entropy.data()), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor glp = tensorView(const_cast<float*>(in.gradLogprobs.data()), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor gent = tensorView(const_cast<float*>(in.gradEntropy.data()), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor g = tensorView(grad.data(), grad.dtype, {n, grad.vocab}, kCpu);
    return napo_token_logprobs_backward(&l, &t, &lse, in.entropy.empty() ? nullptr : &ent, &glp,
                                        in.gradEntropy.empty() ? nullptr : &gent, in.temperature, &g, nullptr);
  }

  napo_status sample(const Logits& logits, const SampleOptions& options, SampleResult& out) override {
    const int64_t n = logits.rows;
    out.tokens.assign(size_t(n), -1);
    out.logprobs.assign(size_t(n), 0.0f);
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kCpu);
    napo_tensor t = tensorView(out.tokens.data(), NAPO_INT32, {n}, kCpu);
    napo_tensor lp = tensorView(out.logprobs.data(), NAPO_FLOAT32, {n}, kCpu);
    const napo_sample_options view = options.view();
    return napo_sample(&l, &view, &t, &lp, nullptr);
  }

  napo_status groupAdvantages(const AdvantageInputs& in, std::vector<float>& out) override {
    const int64_t s = int64_t(in.rewards.size());
    out.assign(size_t(s), 0.0f);
    napo_tensor r = tensorView(const_cast<float*>(in.rewards.data()), NAPO_FLOAT32, {s}, kCpu);
    napo_tensor a = tensorView(out.data(), NAPO_FLOAT32, {s}, kCpu);
    const napo_advantage_options view = in.view();
    return napo_group_advantages(&r, &view, &a, nullptr);
  }

  napo_status policyLoss(const PolicyLossInputs& in, PolicyLossResult& out) override {
    const int64_t s = in.sequences, t = in.steps;
    out.grad.assign(size_t(s * t), 0.0f);
    auto tensor2 = [&](const std::vector<float>& v) {
      return tensorView(const_cast<float*>(v.data()), NAPO_FLOAT32, {s, t}, kCpu);
    };
    const bool withEntropy = !in.entropy.empty();
    out.gradEntropy.assign(withEntropy ? size_t(s * t) : 0, 0.0f);
    napo_tensor lp = tensor2(in.logprobs), old = tensor2(in.oldLogprobs), ref = tensor2(in.refLogprobs),
                ent = tensor2(in.entropy), grad = tensor2(out.grad), gradEnt = tensor2(out.gradEntropy);
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {s, t}, kCpu);
    napo_tensor adv = tensorView(const_cast<float*>(in.advantages.data()), NAPO_FLOAT32, {s}, kCpu);
    return napo_policy_loss(&lp, &old, in.refLogprobs.empty() ? nullptr : &ref, withEntropy ? &ent : nullptr, &adv,
                            &mask, &in.options, &grad, withEntropy ? &gradEnt : nullptr, &out.stats, nullptr);
  }

  napo_status repetitionPenalty(const Logits& logits, const std::vector<int32_t>& history, float penalty,
                                Logits& out) override {
    const int64_t n = logits.rows, length = int64_t(history.size()) / std::max<int64_t>(n, 1);
    napo_tensor l = tensorView(const_cast<void*>(logits.data()), logits.dtype, {n, logits.vocab}, kCpu);
    napo_tensor h = tensorView(const_cast<int32_t*>(history.data()), NAPO_INT32, {n, length}, kCpu);
    napo_tensor o = tensorView(out.data(), out.dtype, {n, out.vocab}, kCpu);
    return napo_repetition_penalty(&l, &h, penalty, &o, nullptr);
  }

  napo_status maskedRowSum(const RowSumInputs& in, std::vector<float>& sums) override {
    sums.assign(size_t(in.rows), 0.0f);
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor values = tensorView(const_cast<float*>(in.values.data()), NAPO_FLOAT32, {in.rows, in.width}, kCpu);
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {in.rows, in.width}, kCpu);
    napo_tensor out = tensorView(sums.data(), NAPO_FLOAT32, {in.rows}, kCpu);
    return napo_masked_row_sum(&values, &mask, &out, nullptr);
  }

  napo_status maskedRowSumBackward(const RowSumInputs& in, std::vector<float>& gradValues) override {
    gradValues.assign(size_t(in.rows * in.width), 0.0f);
    const std::vector<uint8_t> maskBytes = in.maskBytes();
    napo_tensor mask = tensorView(const_cast<uint8_t*>(maskBytes.data()), in.maskDtype, {in.rows, in.width}, kCpu);
    napo_tensor grad = tensorView(const_cast<float*>(in.gradSums.data()), NAPO_FLOAT32, {in.rows}, kCpu);
    napo_tensor out = tensorView(gradValues.data(), NAPO_FLOAT32, {in.rows, in.width}, kCpu);
    return napo_masked_row_sum_backward(&mask, &grad, &out, nullptr);
  }

  napo_status linearLogprobs(const LinearInputs& in, LogprobsResult& out) override {
    const int64_t n = in.rows();
    out.logprobs.assign(size_t(n), 0.0f);
    out.lse.assign(size_t(n), 0.0f);
    out.entropy.assign(in.withEntropy ? size_t(n) : 0, 0.0f);
    napo_tensor h = tensorView(const_cast<void*>(in.hidden.data()), in.hidden.dtype, {n, in.width()}, kCpu);
    napo_tensor w = tensorView(const_cast<void*>(in.weight.data()), in.weight.dtype, {in.vocab(), in.width()}, kCpu);
    napo_tensor t = tensorView(const_cast<int32_t*>(in.tokens.data()), NAPO_INT32, {n}, kCpu);
    napo_tensor lp = tensorView(out.logprobs.data(), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor lse = tensorView(out.lse.data(), NAPO_FLOAT32, {n}, kCpu);
    napo_tensor ent = tensorView(out.entropy.data(), NAPO_FLOAT32, {n}, kCpu);
    const napo_linear_logprobs_options options = in.options();
    return napo_linear_logprobs(&h, &w, &t, &options, &lp, in.withEntropy ? &ent : nullptr, &lse, nullptr);
  }

  napo_status linearLogprobsBackward(const LinearInputs& in, LinearGradientsResult& out) override {
    const int64_t n = in.rows(), width = in.width(), vocab = in.vocab();
    out.gradHidden = in.accumulate ? in.gradHidden : std::vector<float>(size_t(n * width), 0.0f);
    out.gradWeight = in.accumulate ? in.gradWeight : std::vector<float>(size_t(vocab * width), 0.0f);
    napo_tensor h = tensorView(const_cast<void*>(in.hidden.data()), in.hidden.dtype, {n, width}, kCpu);
    napo_tensor w = tensorView(const_cast<void*>(in.weight.data()), in.weight.dtype, {vocab, width}, kCpu);
    napo_tensor t = tensorView(const_cast<int32_t*>(in.tokens.data()), NAPO_INT32, {n}, kCpu);
    auto rowsOf = [&](const std::vector<float>& v) { return tensorView(const_cast<float*>(v.data()), NAPO_FLOAT32, {n}, kCpu); };
    napo_tensor lse = rowsOf(in.lse), ent = rowsOf(in.entropy), glp = rowsOf(in.gradLogprobs), gent = rowsOf(in.gradEntropy);
    napo_tensor gh = tensorView(out.gradHidden.data(), NAPO_FLOAT32, {n, width}, kCpu);
    napo_tensor gw = tensorView(out.gradWeight.data(), NAPO_FLOAT32, {vocab, width}, kCpu);
    const napo_linear_logprobs_options options = in.options();
    return napo_linear_logprobs_backward(&h, &w, &t, &lse, in.entropy.empty() ? nullptr : &ent, &glp,
                                         in.gradEntropy.empty() ? nullptr : &gent, &options, in.accumulate ? 1 : 0,
                                         &gh, &gw, nullptr);
  }

 private:
  static constexpr napo_device kCpu{NAPO_CPU, 0};
};

// ---- comparisons -----------------------------------------------------------------------------------------

inline bool close(double got, double want, double atol, double rtol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

inline double logprobTolerance(float lse) { return 2e-4 + 4e-7 * std::fabs(lse); }

inline bool allClose(Checks& checks, const std::string& what, const float* got, const float* want, size_t count,
                     double atol, double rtol) {
  for (size_t i = 0; i < count; ++i) {
    if (!close(got[i], want[i], atol, rtol)) {
      return checks.expect(false, format("%s: [%zu] = %.9g, want %.9g", what.c_str(), i, got[i], want[i]));
    }
  }
  return checks.expect(true, what);
}

inline bool sameError(Checks& checks, const std::string& what, napo_status gotStatus, const std::string& gotMessage,
                      napo_status wantStatus, const std::string& wantMessage) {
  return checks.expect(gotStatus == wantStatus && gotMessage == wantMessage,
                       format("%s: got %d \"%s\", want %d \"%s\"", what.c_str(), int(gotStatus), gotMessage.c_str(),
                              int(wantStatus), wantMessage.c_str()));
}

// Runs `op` on both backends and, when the reference fails, expects the same failure.
template <typename Op>
bool bothRun(Checks& checks, const std::string& what, Op&& op, bool* bothOk = nullptr) {
  const napo_status want = op(true);
  const std::string wantMessage = want == NAPO_OK ? "" : napo_last_error();
  const napo_status got = op(false);
  const std::string gotMessage = got == NAPO_OK ? "" : napo_last_error();
  if (bothOk) *bothOk = want == NAPO_OK && got == NAPO_OK;
  return sameError(checks, what, got, gotMessage, want, wantMessage);
}

// ---- the cases ---------------------------------------------------------------------------------------------

struct Shape {
  int64_t rows, vocab;
};

inline std::string caseName(const char* op, const Logits& l, const char* detail) {
  return format("%s %s [%lld, %lld]%s %s", op, l.dtype == NAPO_BFLOAT16 ? "bf16" : "f32", (long long)l.rows,
                (long long)l.vocab, l.offset ? " misaligned" : "", detail);
}

inline void checkTokenLogprobs(Checks& checks, Backend& candidate, Backend& reference, const Logits& logits,
                               float temperature, bool withEntropy, uint64_t seed, const char* detail) {
  const std::vector<int32_t> tokens = randomTokens(logits.rows, logits.vocab, seed);
  LogprobsResult want, got;
  const std::string what = caseName("tokenLogprobs", logits, detail);
  bool ok = false;
  bothRun(checks, what, [&](bool ref) {
    return (ref ? reference : candidate).tokenLogprobs(logits, tokens, temperature, withEntropy, ref ? want : got);
  }, &ok);
  if (!ok) return;
  const size_t n = size_t(logits.rows);
  allClose(checks, what + " lse", got.lse.data(), want.lse.data(), n, 2e-4, 2e-5);
  // log p = z - lse carries the rounding of lse, a few ulp of |lse| (large for huge logits).
  size_t i = 0;
  while (i < n && close(got.logprobs[i], want.logprobs[i], logprobTolerance(want.lse[i]), 2e-5)) ++i;
  checks.expect(i == n, i == n ? what : format("%s logprobs: [%zu] = %.9g, want %.9g", what.c_str(), i,
                                                got.logprobs[i], want.logprobs[i]));
  if (withEntropy) allClose(checks, what + " entropy", got.entropy.data(), want.entropy.data(), n, 2e-4, 2e-4);
}

inline void checkBackward(Checks& checks, Backend& candidate, Backend& reference, const Logits& logits,
                          float temperature, bool withEntropyGrad, bool entropyGiven, bool inPlace, uint64_t seed) {
  const std::string what = caseName("tokenLogprobsBackward", logits,
                                    format("T=%g%s%s%s", temperature, withEntropyGrad ? " gradEntropy" : "",
                                           withEntropyGrad && !entropyGiven ? " (recomputed)" : "",
                                           inPlace ? " in place" : "")
                                        .c_str());
  BackwardInputs in;
  in.tokens = randomTokens(logits.rows, logits.vocab, seed);
  in.temperature = temperature;
  in.inPlace = inPlace;
  LogprobsResult forward;
  if (reference.tokenLogprobs(logits, in.tokens, temperature, true, forward) != NAPO_OK) {
    // Bad logits: the backward must fail the same way, from any lse.
    forward.lse.assign(size_t(logits.rows), 0.0f);
    forward.entropy.assign(size_t(logits.rows), 0.0f);
  }
  in.lse = forward.lse;
  in.gradLogprobs = randomNormal(size_t(logits.rows), seed + 1);
  if (withEntropyGrad) {
    in.gradEntropy = randomNormal(size_t(logits.rows), seed + 2);
    if (entropyGiven) in.entropy = forward.entropy;
  }
  Logits want = logits, got = logits;  // in place: the gradient overwrites a copy of the logits
  bool ok = false;
  bothRun(checks, what, [&](bool ref) {
    return (ref ? reference : candidate).tokenLogprobsBackward(logits, in, ref ? want : got);
  }, &ok);
  if (!ok) return;
  const bool bf16 = logits.dtype == NAPO_BFLOAT16;
  for (int64_t r = 0; r < logits.rows; ++r) {
    for (int64_t c = 0; c < logits.vocab; ++c) {
      const float g = got.get(r, c), w = want.get(r, c);
      // bf16 gradients may round to neighbouring values.
      if (!close(g, w, 1e-6, bf16 ? 1.6e-2 : 2e-4)) {
        checks.expect(false, format("%s: grad[%lld, %lld] = %.9g, want %.9g", what.c_str(), (long long)r,
                                    (long long)c, g, w));
        return;
      }
    }
  }
  checks.expect(true, what);
}

inline void checkSample(Checks& checks, Backend& candidate, Backend& reference, const Logits& logits,
                        const SampleOptions& options, const char* detail) {
  const std::string what = caseName("sample", logits, detail);
  SampleResult want, got;
  bool ok = false;
  bothRun(checks, what, [&](bool ref) {
    return (ref ? reference : candidate).sample(logits, options, ref ? want : got);
  }, &ok);
  if (!ok) return;
  int64_t agree = 0;
  for (int64_t r = 0; r < logits.rows; ++r) {
    const int32_t token = got.tokens[size_t(r)];
    if (!checks.expect(token >= 0 && token < logits.vocab, format("%s: row %lld token %d", what.c_str(),
                                                                   (long long)r, token))) {
      return;
    }
    if (token != want.tokens[size_t(r)]) {
      std::fprintf(stderr, "note %s: row %lld drew %d, cpu %d\n", what.c_str(), (long long)r, token,
                   want.tokens[size_t(r)]);
      continue;
    }
    ++agree;
    const float temperature = options.temperature[options.temperature.size() == 1 ? 0 : size_t(r)];
    float largest = 0.0f;
    for (int64_t c = 0; c < logits.vocab; ++c) largest = std::max(largest, std::fabs(logits.get(r, c)));
    const float lseScale = largest / (temperature > 0.0f ? temperature : 1.0f);
    if (!close(got.logprobs[size_t(r)], want.logprobs[size_t(r)], logprobTolerance(lseScale), 2e-5)) {
      checks.expect(false, format("%s: row %lld logprob %.9g, want %.9g", what.c_str(), (long long)r,
                                  got.logprobs[size_t(r)], want.logprobs[size_t(r)]));
      return;
    }
  }
  checks.countSampledRows(logits.rows, agree);
  SampleResult again;
  candidate.sample(logits, options, again);
  checks.expect(again.tokens == got.tokens, what + ": same seed, same tokens");
}

inline void checkAdvantages(Checks& checks, Backend& candidate, Backend& reference, const AdvantageInputs& in,
                            const std::string& what) {
  std::vector<float> want, got;
  bool ok = false;
  bothRun(checks, what, [&](bool ref) { return (ref ? reference : candidate).groupAdvantages(in, ref ? want : got); },
          &ok);
  if (ok) allClose(checks, what, got.data(), want.data(), want.size(), 1e-6, 1e-5);
}

inline void checkPolicyLoss(Checks& checks, Backend& candidate, Backend& reference, const PolicyLossInputs& in,
                            const std::string& what) {
  PolicyLossResult want, got;
  bool ok = false;
  bothRun(checks, what, [&](bool ref) { return (ref ? reference : candidate).policyLoss(in, ref ? want : got); },
          &ok);
  if (!ok) return;
  allClose(checks, what + " grad", got.grad.data(), want.grad.data(), want.grad.size(), 1e-7, 1e-5);
  checks.expect(got.gradEntropy.size() == want.gradEntropy.size(), what + " gradEntropy size");
  if (got.gradEntropy.size() == want.gradEntropy.size()) {
    allClose(checks, what + " gradEntropy", got.gradEntropy.data(), want.gradEntropy.data(), want.gradEntropy.size(),
             1e-7, 1e-5);
  }
  const napo_policy_loss_stats& g = got.stats;
  const napo_policy_loss_stats& w = want.stats;
  const double gotStats[] = {g.loss,    g.clip_low_fraction, g.clip_high_fraction, g.clip_fraction,    g.mean_kl,
                             g.mean_ratio, g.token_count,    g.kept_fraction,      g.entropy_threshold, g.mean_entropy,
                             g.off_policy_fraction, g.clip_low_min, g.clip_high_max, g.entropy_bonus, g.vespo_phi_mean};
  const double wantStats[] = {w.loss,    w.clip_low_fraction, w.clip_high_fraction, w.clip_fraction,    w.mean_kl,
                              w.mean_ratio, w.token_count,    w.kept_fraction,      w.entropy_threshold, w.mean_entropy,
                              w.off_policy_fraction, w.clip_low_min, w.clip_high_max, w.entropy_bonus, w.vespo_phi_mean};
  const char* names[] = {"loss",      "clipLow", "clipHigh",     "clip",             "meanKl",      "meanRatio",
                         "tokens",    "keptFraction", "entropyThreshold", "meanEntropy", "offPolicyFraction",
                         "clipLowMin", "clipHighMax", "entropyBonus", "vespoPhiMean"};
  for (int i = 0; i < 15; ++i) {
    checks.expect(close(gotStats[i], wantStats[i], 1e-6, 1e-5),
                  format("%s %s = %.12g, want %.12g", what.c_str(), names[i], gotStats[i], wantStats[i]));
  }
}

// ---- the suites -----------------------------------------------------------------------------------------------

inline void tokenLogprobsSuite(Checks& checks, Backend& candidate, Backend& reference, const std::vector<Shape>& shapes) {
  const Pattern patterns[] = {Pattern::Normal, Pattern::Peaked, Pattern::NegInf, Pattern::Huge, Pattern::Ties};
  uint64_t seed = 100;
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    int i = 0;
    for (const Shape& shape : shapes) {
      const Pattern pattern = patterns[i++ % 5];
      const int offset = int(seed % 3);
      const Logits logits = makeLogits(dtype, shape.rows, shape.vocab, pattern, ++seed, offset);
      for (float temperature : {1.0f, 0.7f}) {
        for (bool withEntropy : {false, true}) {
          const std::string detail = format("%s T=%g%s", patternName(pattern), temperature, withEntropy ? " entropy" : "");
          checkTokenLogprobs(checks, candidate, reference, logits, temperature, withEntropy, ++seed, detail.c_str());
        }
      }
    }
  }
}

inline void backwardSuite(Checks& checks, Backend& candidate, Backend& reference, const std::vector<Shape>& shapes) {
  uint64_t seed = 200;
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    for (const Shape& shape : shapes) {
      ++seed;
      const Logits logits =
          makeLogits(dtype, shape.rows, shape.vocab, seed % 2 ? Pattern::NegInf : Pattern::Normal, seed, int(seed % 3));
      checkBackward(checks, candidate, reference, logits, 1.0f, false, false, false, ++seed);
      checkBackward(checks, candidate, reference, logits, 0.8f, true, true, false, ++seed);
      checkBackward(checks, candidate, reference, logits, 1.3f, true, false, true, ++seed);
      checkBackward(checks, candidate, reference, logits, 1.0f, false, false, true, ++seed);
    }
  }
}

inline void sampleSuite(Checks& checks, Backend& candidate, Backend& reference, const std::vector<Shape>& shapes) {
  struct Mode {
    const char* name;
    float temperature;
    int32_t topK;
    float topP, minP;
  };
  const Mode modes[] = {
      {"greedy", 0.0f, 0, 1.0f, 0.0f},         {"temperature 1", 1.0f, 0, 1.0f, 0.0f},
      {"temperature 0.7", 0.7f, 0, 1.0f, 0.0f}, {"top-k 1", 1.0f, 1, 1.0f, 0.0f},
      {"top-k 5", 0.9f, 5, 1.0f, 0.0f},         {"top-k 50", 1.0f, 50, 1.0f, 0.0f},
      {"top-k 700", 1.0f, 700, 1.0f, 0.0f},     {"top-p 0.9", 1.0f, 0, 0.9f, 0.0f},
      {"top-p 0.5", 0.8f, 0, 0.5f, 0.0f},       {"min-p 0.1", 1.0f, 0, 1.0f, 0.1f},
      {"top-k 50 top-p 0.9", 1.0f, 50, 0.9f, 0.0f}, {"top-k 20 top-p 0.8 min-p 0.05", 0.7f, 20, 0.8f, 0.05f},
      {"top-p 0.95 min-p 0.02", 1.2f, 0, 0.95f, 0.02f},
  };
  const Pattern patterns[] = {Pattern::Peaked, Pattern::Normal, Pattern::Ties, Pattern::NegInf, Pattern::Flat};
  uint64_t seed = 300;
  int p = 0;
  for (const Shape& shape : shapes) {
    for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
      const Pattern pattern = patterns[p++ % 5];
      ++seed;
      const Logits logits = makeLogits(dtype, shape.rows, shape.vocab, pattern, seed, int(seed % 2));
      for (const Mode& mode : modes) {
        SampleOptions options;
        options.temperature = {mode.temperature};
        options.topK = {mode.topK};
        options.topP = {mode.topP};
        options.minP = {mode.minP};
        options.seed = seed * 7919;
        options.offset = seed;
        checkSample(checks, candidate, reference, logits, options,
                    format("%s %s", patternName(pattern), mode.name).c_str());
      }
      // One value per row: greedy rows beside sampled ones, each with its own filters.
      SampleOptions mixed;
      mixed.temperature.clear();
      mixed.topK.clear();
      mixed.topP.clear();
      mixed.minP.clear();
      for (int64_t r = 0; r < shape.rows; ++r) {
        const Mode& mode = modes[size_t(r) % (sizeof modes / sizeof modes[0])];
        mixed.temperature.push_back(mode.temperature);
        mixed.topK.push_back(mode.topK);
        mixed.topP.push_back(mode.topP);
        mixed.minP.push_back(mode.minP);
      }
      checkSample(checks, candidate, reference, logits, mixed, format("%s per-row modes", patternName(pattern)).c_str());
    }
  }
}

inline void advantagesSuite(Checks& checks, Backend& candidate, Backend& reference) {
  struct Grouping {
    const char* name;
    std::vector<int32_t> offsets;
  };
  const Grouping groupings[] = {
      {"one sample", {0, 1}},
      {"groups of 1", {0, 1, 2, 3}},
      {"groups of 2", {0, 2, 4, 6, 8}},
      {"groups of 5", {0, 5, 10, 15}},
      {"ragged", {0, 3, 4, 11, 12, 40, 41, 97}},
      {"one group of 70", {0, 70}},
  };
  uint64_t seed = 400;
  for (const Grouping& grouping : groupings) {
    for (napo_advantage_scale scale : {NAPO_SCALE_GROUP, NAPO_SCALE_BATCH, NAPO_SCALE_NONE}) {
      for (napo_advantage_estimator estimator : {NAPO_ESTIMATOR_GRPO, NAPO_ESTIMATOR_RLOO}) {
        AdvantageInputs in;
        in.offsets = grouping.offsets;
        in.rewards = randomNormal(size_t(grouping.offsets.back()), ++seed);
        // Binary rewards in half the cases: whole groups tie, so std = 0 and eps matters.
        if (seed % 2) {
          for (float& r : in.rewards) r = r > 0.3f ? 1.0f : 0.0f;
        }
        in.scale = scale;
        in.estimator = estimator;
        in.eps = seed % 3 ? 1e-4f : 0.5f;
        checkAdvantages(checks, candidate, reference, in,
                        format("groupAdvantages %s scale=%d estimator=%d eps=%g", grouping.name, int(scale),
                               int(estimator), in.eps));
      }
    }
  }
}

inline void policyLossSuite(Checks& checks, Backend& candidate, Backend& reference) {
  struct Dims {
    int64_t sequences, steps;
  };
  const Dims dims[] = {{1, 1}, {4, 7}, {8, 33}, {3, 300}, {2, 1025}};
  uint64_t seed = 500;
  for (const Dims& d : dims) {
    for (napo_loss_type lossType : {NAPO_LOSS_GRPO, NAPO_LOSS_BNPO, NAPO_LOSS_DR_GRPO, NAPO_LOSS_DAPO, NAPO_LOSS_CISPO,
                                    NAPO_LOSS_SAPO, NAPO_LOSS_LUSPO, NAPO_LOSS_VESPO}) {
      for (int variant = 0; variant < 5; ++variant) {
        PolicyLossInputs in;
        in.sequences = d.sequences;
        in.steps = d.steps;
        const size_t count = size_t(d.sequences * d.steps);
        in.logprobs = randomNormal(count, ++seed, 0.5f);
        in.oldLogprobs = in.logprobs;
        const std::vector<float> drift = randomNormal(count, ++seed, 0.3f);
        for (size_t i = 0; i < count; ++i) in.oldLogprobs[i] += drift[i];
        in.advantages = randomNormal(size_t(d.sequences), ++seed);
        in.mask.assign(count, 1.0f);
        std::mt19937_64 rng(++seed);
        for (int64_t s = 0; s < d.sequences; ++s) {
          // Ragged completions: padding at the end holds -Inf log-probs, which must not leak.
          const int64_t length = d.steps - int64_t(rng() % uint64_t(d.steps));
          for (int64_t t = length; t < d.steps; ++t) {
            in.mask[size_t(s * d.steps + t)] = 0.0f;
            in.logprobs[size_t(s * d.steps + t)] = -INFINITY;
          }
        }
        in.options.loss_type = lossType;
        if (variant >= 1) {
          in.refLogprobs = in.logprobs;
          const std::vector<float> refDrift = randomNormal(count, ++seed, 0.2f);
          for (size_t i = 0; i < count; ++i) in.refLogprobs[i] += refDrift[i];
        }
        if (variant >= 2) {
          in.options.beta = 0.04f;
          in.options.eps_high = 0.28f;
          in.options.max_completion_length = d.steps + 5;
          in.options.num_items_in_batch = 17.0;
        }
        // GSPO's sequence weights; two-sided clipping; CISPO's cap at TRL's 5 and SAPO's temperatures.
        // vespo weighs sequences itself (token level only); its gamma's other shape in variant 4.
        if ((variant == 3 && lossType != NAPO_LOSS_VESPO) || lossType == NAPO_LOSS_LUSPO) {
          in.options.importance_level = NAPO_IMPORTANCE_SEQUENCE;
        }
        if (variant == 4) {
          in.options.vespo_k_pos = 0.5f;
          in.options.vespo_lambda_neg = 0.25f;
        }
        if (variant >= 3) {
          in.options.delta = 1.4f;
          in.options.sapo_temperature_pos = 0.7f;
          in.options.sapo_temperature_neg = 1.6f;
          if (lossType == NAPO_LOSS_CISPO) in.options.eps_high = 1.3f;
        }
        // Entropies (some tied, as low-entropy tokens often are) from variant 1; the top-entropy
        // mask (TRL's top_entropy_quantile 0.2, 0.5, only the highest) and the entropy bonus from 2.
        if (variant >= 1) {
          in.entropy = randomNormal(count, ++seed, 1.5f);
          for (size_t i = 0; i < count; ++i) {
            in.entropy[i] = std::fabs(in.entropy[i]);
            if (i % 3 == 0) in.entropy[i] = std::round(in.entropy[i] * 4.0f) / 4.0f;
          }
        }
        const float quantiles[] = {0.0f, 0.0f, 0.8f, 0.5f, 1.0f};
        const float coefs[] = {0.0f, 0.0f, 0.01f, -0.02f, 0.003f};
        if (lossType != NAPO_LOSS_LUSPO) in.options.entropy_quantile = quantiles[variant];
        in.options.entropy_coef = coefs[variant];
        // The bias-corrected KL from variant 2; the off-policy sequence mask in 3 and 4 (a threshold
        // of 0 drops every A < 0 sequence whose weights went down).
        in.options.bias_correction_kl = variant >= 2 && variant != 4;
        in.options.off_policy_mask = variant >= 3;
        in.options.off_policy_threshold = variant == 3 ? 0.05f : 0.0f;
        // PyTorch users pass int and bool masks.
        in.maskDtype = variant == 0 || variant == 3 ? NAPO_FLOAT32
                       : variant == 1               ? NAPO_INT32
                                                    : (lossType % 2 ? NAPO_UINT8 : NAPO_BOOL);
        checkPolicyLoss(checks, candidate, reference, in,
                        format("policyLoss [%lld, %lld] type=%d variant=%d", (long long)d.sequences,
                               (long long)d.steps, int(lossType), variant));
      }
    }
  }
}

// maskedRowSum and its backward on ragged rows (padding holding -Inf), every mask dtype, and
// inputs that break its rules (the first in the CPU's order is reported by both).
inline void maskedRowSumSuite(Checks& checks, Backend& candidate, Backend& reference) {
  struct Dims {
    int64_t rows, width;
  };
  const Dims dims[] = {{1, 1}, {3, 7}, {5, 300}, {2, 1025}};
  uint64_t seed = 700;
  for (const Dims& d : dims) {
    for (napo_dtype maskDtype : {NAPO_FLOAT32, NAPO_INT32, NAPO_UINT8, NAPO_BOOL}) {
      RowSumInputs in;
      in.rows = d.rows;
      in.width = d.width;
      in.maskDtype = maskDtype;
      const size_t count = size_t(d.rows * d.width);
      in.values = randomNormal(count, ++seed, 2.0f);
      in.gradSums = randomNormal(size_t(d.rows), ++seed);
      in.mask.assign(count, 1.0f);
      std::mt19937_64 rng(++seed);
      for (int64_t r = 0; r < d.rows; ++r) {
        const int64_t length = int64_t(rng() % uint64_t(d.width + 1));
        for (int64_t t = length; t < d.width; ++t) {
          in.mask[size_t(r * d.width + t)] = 0.0f;
          in.values[size_t(r * d.width + t)] = -INFINITY;
        }
      }
      const std::string what = format("maskedRowSum [%lld, %lld] mask=%d", (long long)d.rows, (long long)d.width,
                                      int(maskDtype));
      std::vector<float> want, got;
      bool ok = false;
      bothRun(checks, what, [&](bool ref) { return (ref ? reference : candidate).maskedRowSum(in, ref ? want : got); },
              &ok);
      if (ok) allClose(checks, what, got.data(), want.data(), want.size(), 1e-6, 1e-6);
      ok = false;
      bothRun(checks, what + " backward",
              [&](bool ref) { return (ref ? reference : candidate).maskedRowSumBackward(in, ref ? want : got); }, &ok);
      if (ok) allClose(checks, what + " backward", got.data(), want.data(), want.size(), 0.0, 0.0);
    }
  }
  struct Poison {
    const char* name;
    int input;  // 0 mask, 1 values, 2 gradSums
    int64_t index;
    float value;
  };
  const Poison poisons[] = {{"mask 0.5", 0, 9, 0.5f}, {"mask 2", 0, 3, 2.0f}, {"value NaN", 1, 11, NAN},
                            {"value +Inf", 1, 5, INFINITY}, {"gradSum NaN", 2, 2, NAN}};
  for (const Poison& poison : poisons) {
    for (bool alsoLater : {false, true}) {
      RowSumInputs in;
      in.rows = 4;
      in.width = 7;
      in.values = randomNormal(28, 710);
      in.gradSums = randomNormal(4, 711);
      in.mask.assign(28, 1.0f);
      in.mask[27] = 0.0f;
      in.values[27] = NAN;  // padding may hold anything
      std::vector<float>* inputs[] = {&in.mask, &in.values, &in.gradSums};
      (*inputs[poison.input])[size_t(poison.index)] = poison.value;
      if (alsoLater) in.values[25] = NAN;
      const std::string what = format("errors maskedRowSum %s%s", poison.name, alsoLater ? " + later NaN" : "");
      std::vector<float> want, got;
      bothRun(checks, what, [&](bool ref) { return (ref ? reference : candidate).maskedRowSum(in, ref ? want : got); });
      bothRun(checks, what + " backward",
              [&](bool ref) { return (ref ? reference : candidate).maskedRowSumBackward(in, ref ? want : got); });
    }
  }
}

// repetitionPenalty on both dtypes: repeated tokens, -1 padding, ragged histories; and a history
// entry out of range (the first in row-major order reported by both).
inline void repetitionPenaltySuite(Checks& checks, Backend& candidate, Backend& reference) {
  uint64_t seed = 800;
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    for (const Shape& shape : {Shape{1, 1}, Shape{3, 37}, Shape{4, 1000}, Shape{2, 33000}}) {
      const Logits logits = makeLogits(dtype, shape.rows, shape.vocab, Pattern::Normal, ++seed, 1);
      for (int64_t length : {int64_t(1), int64_t(9), int64_t(300)}) {
        std::vector<int32_t> history = randomTokens(size_t(shape.rows * length), int32_t(shape.vocab), ++seed);
        for (size_t i = 0; i < history.size(); i += 4) history[i] = -1;  // padding
        if (history.size() > 2) history[2] = history[1];                  // a repeat
        for (float penalty : {1.3f, 0.7f}) {
          const std::string what = format("repetitionPenalty [%lld, %lld] L=%lld dtype=%d penalty=%g", (long long)shape.rows,
                                          (long long)shape.vocab, (long long)length, int(dtype), penalty);
          Logits want = logits, got = logits;
          bool ok = false;
          bothRun(checks, what,
                  [&](bool ref) { return (ref ? reference : candidate).repetitionPenalty(logits, history, penalty, ref ? want : got); },
                  &ok);
          if (!ok) continue;
          bool same = true;
          for (int64_t r = 0; r < shape.rows && same; ++r) {
            for (int64_t c = 0; c < shape.vocab && same; ++c) same = want.get(r, c) == got.get(r, c) || (std::isnan(want.get(r, c)) && std::isnan(got.get(r, c)));
          }
          checks.expect(same, what + " bit for bit");
        }
      }
    }
  }
  for (int32_t bad : {-2, 37, 1000}) {
    const Logits logits = makeLogits(NAPO_FLOAT32, 3, 37, Pattern::Normal, 810);
    std::vector<int32_t> history(12, 5);
    history[7] = bad;
    history[10] = 99;
    Logits want = logits, got = logits;
    bothRun(checks, format("errors repetitionPenalty history %d", bad),
            [&](bool ref) { return (ref ? reference : candidate).repetitionPenalty(logits, history, 1.2f, ref ? want : got); });
  }
}

// Inputs that break policyLoss's rules, alone and several at once (the first in the CPU's order
// of checks is reported by both).
inline void policyLossErrors(Checks& checks, Backend& candidate, Backend& reference) {
  struct Poison {
    const char* name;
    int input;  // 0 mask, 1 advantages, 2 logprobs, 3 oldLogprobs, 4 refLogprobs, 5 entropy
    int64_t index;
    float value;
  };
  const Poison poisons[] = {
      {"mask 0.5", 0, 9, 0.5f},         {"mask 2", 0, 3, 2.0f},          {"mask -1", 0, 20, -1.0f},
      {"advantage NaN", 1, 2, NAN},     {"advantage Inf", 1, 0, INFINITY}, {"logprob NaN", 2, 11, NAN},
      {"old logprob -Inf", 3, 5, -INFINITY}, {"ref logprob +Inf", 4, 17, INFINITY}, {"entropy NaN", 5, 13, NAN},
  };
  for (napo_dtype maskDtype : {NAPO_FLOAT32, NAPO_INT32, NAPO_UINT8}) {
    for (const Poison& poison : poisons) {
      if (maskDtype != NAPO_FLOAT32 && poison.input == 0 && poison.value != 2.0f) continue;  // not representable
      for (bool alsoLater : {false, true}) {
        PolicyLossInputs in;
        in.sequences = 4;
        in.steps = 7;
        in.logprobs = randomNormal(28, 610, 0.5f);
        in.oldLogprobs = randomNormal(28, 611, 0.5f);
        in.refLogprobs = randomNormal(28, 612, 0.5f);
        in.entropy = randomNormal(28, 614, 0.5f);
        in.options.entropy_quantile = 0.8f;
        in.advantages = randomNormal(4, 613);
        in.mask.assign(28, 1.0f);
        in.mask[27] = 0.0f;
        in.logprobs[27] = NAN;  // padding may hold anything
        in.maskDtype = maskDtype;
        std::vector<float>* inputs[] = {&in.mask,        &in.advantages,  &in.logprobs,
                                        &in.oldLogprobs, &in.refLogprobs, &in.entropy};
        (*inputs[poison.input])[size_t(poison.index)] = poison.value;
        if (alsoLater) in.refLogprobs[25] = NAN;
        checkPolicyLoss(checks, candidate, reference, in,
                        format("errors policyLoss %s mask=%d%s", poison.name, int(maskDtype),
                               alsoLater ? " + later NaN" : ""));
      }
    }
  }
}

// The backward's per-row inputs not finite, and a NaN logit on the plain (not recomputing) path,
// in place and not.
inline void backwardInputErrors(Checks& checks, Backend& candidate, Backend& reference) {
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    const Logits logits = makeLogits(dtype, 5, 300, Pattern::Normal, 620);
    for (int input = 0; input < 5; ++input) {
      for (bool inPlace : {false, true}) {
        BackwardInputs in;
        in.tokens = randomTokens(5, 300, 621);
        in.lse.assign(5, 7.0f);
        in.entropy.assign(5, 2.0f);
        in.gradLogprobs.assign(5, 0.5f);
        in.gradEntropy.assign(5, 0.25f);
        in.inPlace = inPlace;
        Logits input2 = logits;
        std::vector<float>* rows[] = {&in.lse, &in.entropy, &in.gradLogprobs, &in.gradEntropy};
        if (input < 4) {
          (*rows[input])[3] = input % 2 ? INFINITY : NAN;
        } else {
          in.entropy.clear();
          in.gradEntropy.clear();
          input2.set(2, 257, NAN);
          input2.set(4, 3, INFINITY);
        }
        const std::string what =
            format("errors backward input %d %s%s", input, dtype == NAPO_BFLOAT16 ? "bf16" : "f32", inPlace ? " in place" : "");
        Logits gradWant = input2, gradGot = input2;
        bothRun(checks, what, [&](bool ref) {
          return (ref ? reference : candidate).tokenLogprobsBackward(input2, in, ref ? gradWant : gradGot);
        });
      }
    }
  }
}

inline void errorSuite(Checks& checks, Backend& candidate, Backend& reference) {
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    struct Poison {
      const char* name;
      int64_t row, column;
      float value;
      float temperature;
    };
    const Poison poisons[] = {
        {"NaN", 3, 17, NAN, 1.0f},
        {"+Inf", 1, 0, INFINITY, 1.0f},
        {"overflow at temperature", 4, 39, 3.0e38f, 0.5f},
        {"two bad rows", 2, 5, NAN, 1.0f},
    };
    for (const Poison& poison : poisons) {
      Logits logits = makeLogits(dtype, 5, 40, Pattern::Normal, 600);
      logits.set(poison.row, poison.column, poison.value);
      if (std::string(poison.name) == "two bad rows") {
        logits.set(4, 1, NAN);
        logits.set(2, 30, INFINITY);
      }
      const std::string what = caseName("errors", logits, poison.name);
      checkTokenLogprobs(checks, candidate, reference, logits, poison.temperature, true, 601, (what + " forward").c_str());
      SampleOptions options;
      options.temperature = {poison.temperature};
      checkSample(checks, candidate, reference, logits, options, (what + " sample").c_str());
      options.temperature = {0.0f};
      if (poison.value != 3.0e38f) checkSample(checks, candidate, reference, logits, options, (what + " greedy").c_str());
      checkBackward(checks, candidate, reference, logits, 1.0f, true, false, false, 602);
    }
    Logits noFinite = makeLogits(dtype, 4, 9, Pattern::Normal, 603);
    for (int64_t c = 0; c < 9; ++c) noFinite.set(2, c, -INFINITY);
    checkTokenLogprobs(checks, candidate, reference, noFinite, 1.0f, false, 604, "row of -Inf");
    checkSample(checks, candidate, reference, noFinite, SampleOptions{}, "row of -Inf");

    // Out-of-range tokens, also beside a NaN (the token is reported first, as the CPU validates
    // tokens before it reads a logit).
    Logits logits = makeLogits(dtype, 6, 33, Pattern::Normal, 605);
    for (int32_t bad : {33, -1, 1 << 30}) {
      std::vector<int32_t> tokens = randomTokens(6, 33, 606);
      tokens[4] = bad;
      tokens[5] = 40;
      for (bool poisoned : {false, true}) {
        Logits input = logits;
        if (poisoned) input.set(1, 3, NAN);
        const std::string what = format("errors tokens[4] = %d%s", bad, poisoned ? " beside NaN" : "");
        LogprobsResult want, got;
        bothRun(checks, what + " forward", [&](bool ref) {
          return (ref ? reference : candidate).tokenLogprobs(input, tokens, 1.0f, false, ref ? want : got);
        });
        BackwardInputs in;
        in.tokens = tokens;
        in.lse.assign(6, 1.0f);
        in.gradLogprobs.assign(6, 1.0f);
        Logits gradWant = input, gradGot = input;
        bothRun(checks, what + " backward", [&](bool ref) {
          return (ref ? reference : candidate).tokenLogprobsBackward(input, in, ref ? gradWant : gradGot);
        });
      }
    }
  }
  policyLossErrors(checks, candidate, reference);
  backwardInputErrors(checks, candidate, reference);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    AdvantageInputs in;
    in.offsets = {0, 4, 8};
    in.rewards = randomNormal(8, 607);
    in.rewards[5] = bad;
    in.rewards[7] = NAN;
    checkAdvantages(checks, candidate, reference, in, format("errors groupAdvantages rewards[5] = %g", bad));
  }
}

// linearLogprobs: the forward (with and without the entropy) and the backward (entropy given,
// recomputed or unused; overwriting or accumulating) on odd shapes and chunkings, float32 and
// bfloat16; then its errors (bad token, NaN hidden, Infinity weight, NaN lse, an overflowing logit).
inline void linearLogprobsSuite(Checks& checks, Backend& candidate, Backend& reference) {
  struct Case {
    int64_t rows, width, vocab, chunk;
  };
  const Case cases[] = {{1, 1, 1, 0}, {3, 5, 7, 2}, {4, 33, 1000, 0}, {17, 9, 300, 64}, {2, 64, 5003, 512}, {5, 16, 4100, 0}};
  uint64_t seed = 700;
  for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
    for (const Case& c : cases) {
      for (float temperature : {1.0f, 0.7f}) {
        LinearInputs in;
        in.hidden = makeLogits(dtype, c.rows, c.width, Pattern::Normal, ++seed, int(c.rows % 2));
        in.weight = makeLogits(dtype, c.vocab, c.width, Pattern::Normal, ++seed);
        in.tokens = randomTokens(c.rows, c.vocab, ++seed);
        in.temperature = temperature;
        in.chunk = c.chunk;
        in.withEntropy = true;
        const std::string what = format("linearLogprobs %s [%lld, %lld] x [%lld] chunk %lld T=%g",
                                        dtype == NAPO_BFLOAT16 ? "bf16" : "f32", (long long)c.rows, (long long)c.width,
                                        (long long)c.vocab, (long long)c.chunk, double(temperature));
        LogprobsResult want, got;
        bool ok = false;
        bothRun(checks, what, [&](bool ref) { return (ref ? reference : candidate).linearLogprobs(in, ref ? want : got); },
                &ok);
        if (!ok) continue;
        allClose(checks, what + " logprobs", got.logprobs.data(), want.logprobs.data(), want.logprobs.size(), 2e-4, 1e-4);
        allClose(checks, what + " lse", got.lse.data(), want.lse.data(), want.lse.size(), 2e-4, 1e-4);
        allClose(checks, what + " entropy", got.entropy.data(), want.entropy.data(), want.entropy.size(), 2e-4, 1e-4);
        for (int variant = 0; variant < 3; ++variant) {
          LinearInputs back = in;
          back.lse = want.lse;
          back.gradLogprobs = randomNormal(size_t(c.rows), ++seed);
          if (variant >= 1) back.gradEntropy = randomNormal(size_t(c.rows), ++seed, 0.5f);
          if (variant == 1) back.entropy = want.entropy;
          back.accumulate = variant == 2;
          if (back.accumulate) {
            back.gradHidden = randomNormal(size_t(c.rows * c.width), ++seed);
            back.gradWeight = randomNormal(size_t(c.vocab * c.width), ++seed);
          }
          const std::string backWhat = what + format(" backward variant=%d", variant);
          LinearGradientsResult wantGrad, gotGrad;
          bool backOk = false;
          bothRun(checks, backWhat,
                  [&](bool ref) { return (ref ? reference : candidate).linearLogprobsBackward(back, ref ? wantGrad : gotGrad); },
                  &backOk);
          if (!backOk) continue;
          allClose(checks, backWhat + " gradHidden", gotGrad.gradHidden.data(), wantGrad.gradHidden.data(),
                   wantGrad.gradHidden.size(), 2e-4, 1e-3);
          allClose(checks, backWhat + " gradWeight", gotGrad.gradWeight.data(), wantGrad.gradWeight.data(),
                   wantGrad.gradWeight.size(), 2e-4, 1e-3);
        }
      }
    }
  }
  // Errors, each reported the same way by both backends.
  for (int poison = 0; poison < 5; ++poison) {
    LinearInputs in;
    in.hidden = makeLogits(NAPO_FLOAT32, 4, 6, Pattern::Normal, 790);
    in.weight = makeLogits(NAPO_FLOAT32, 50, 6, Pattern::Normal, 791);
    in.tokens = randomTokens(4, 50, 792);
    in.lse.assign(4, 5.0f);
    in.gradLogprobs.assign(4, 1.0f);
    const char* name = "";
    switch (poison) {
      case 0: in.tokens[2] = 50; name = "token out of range"; break;
      case 1: in.hidden.set(1, 3, NAN); name = "NaN hidden"; break;
      case 2: in.weight.set(17, 0, INFINITY); name = "Infinity weight"; break;
      case 3: in.lse[3] = NAN; name = "NaN lse"; break;
      case 4:
        for (int64_t h = 0; h < 6; ++h) in.hidden.set(2, h, 1.0e20f), in.weight.set(9, h, 1.0e20f);
        name = "overflowing logit";
        break;
    }
    LogprobsResult want, got;
    bothRun(checks, format("linearLogprobs errors %s", name),
            [&](bool ref) { return (ref ? reference : candidate).linearLogprobs(in, ref ? want : got); });
    LinearGradientsResult wantGrad, gotGrad;
    bothRun(checks, format("linearLogprobsBackward errors %s", name),
            [&](bool ref) { return (ref ? reference : candidate).linearLogprobsBackward(in, ref ? wantGrad : gotGrad); });
  }
}

// Every suite on small shapes: what the host emulation harness runs in CI, and the first part
// of the GPU tests.
inline void runSmallSuites(Checks& checks, Backend& candidate, Backend& reference) {
  tokenLogprobsSuite(checks, candidate, reference,
                     {{1, 1}, {3, 7}, {5, 33}, {2, 100}, {4, 1000}, {3, 4097}, {2, 10007}, {2, 40000}});
  backwardSuite(checks, candidate, reference, {{1, 1}, {3, 9}, {4, 1000}, {2, 5003}, {2, 33000}});
  sampleSuite(checks, candidate, reference, {{1, 1}, {1, 5}, {8, 7}, {16, 100}, {24, 1000}, {6, 5003}, {3, 20000}});
  advantagesSuite(checks, candidate, reference);
  policyLossSuite(checks, candidate, reference);
  maskedRowSumSuite(checks, candidate, reference);
  repetitionPenaltySuite(checks, candidate, reference);
  linearLogprobsSuite(checks, candidate, reference);
  errorSuite(checks, candidate, reference);
}

// The closing line and exit status every test binary shares.
inline int report(const char* suite, const Checks& checks) {
  int failed = checks.failed();
  int passed = checks.passed();
  if (checks.sampledRows() > 0) {
    const double agreement = double(checks.agreeingRows()) / double(checks.sampledRows());
    const bool ok = agreement >= 0.999;
    std::printf("%s: sample drew the CPU's token in %lld of %lld rows (%.4f%%; >= 99.9%% required)\n", suite,
                (long long)checks.agreeingRows(), (long long)checks.sampledRows(), 100.0 * agreement);
    ok ? ++passed : ++failed;
  }
  std::printf("%s: %d passed, %d failed\n", suite, passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace napo_tests
