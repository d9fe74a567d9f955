// The model core on the CUDA kernels, without a GPU: CausalLM runs on LayerKernelsOn<HostPlatform>
// (src/cuda/layer_kernels.cuh with the emulated launcher and host memory) and is compared with
// the same model on the CPU backend, for every family: scoring with entropy and its backward,
// the unfused forward and backward, an AdamW step, and prefill plus decoding on the KV cache with
// an inactive row. This checks everything the GPU path adds to the kernels themselves: each
// argument layer_kernels.cuh builds, and each upload, copy and zero of the model core.
#include "harness/cuda_emulation.h"

#include <cstring>
#include <memory>
#include <vector>

#include "cuda/layer_kernels.cuh"
#include "cuda/linear_logprobs.cuh"
#include "model/causal_lm.h"
#include "napo/model.h"
#include "op_checks.h"

using namespace napo_tests;
namespace kernels = napo::cuda;
using napo::model::CausalLM;
using napo::model::HostBatch;

namespace {

const auto emulated = [](auto kernel, dim3 grid, dim3 block, auto... args) { emu::launch(kernel, grid, block, args...); };

// "Device" memory is the host's: the model allocates on the CPU, the kernels are CUDA's.
class HostPlatform {
 public:
  napo_device device() const { return {NAPO_CPU, 0}; }
  auto launcher() const { return emulated; }
  void matmul(const kernels::GemmArgs<float, float>& args) const { kernels::launchGemm(emulated, args); }
  napo_status upload(void* dst, const void* src, size_t bytes) const {
    if (bytes) std::memcpy(dst, src, bytes);
    return NAPO_OK;
  }
  napo_status download(void* dst, const void* src, size_t bytes) const { return upload(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) const { std::memcpy(dst, src, bytes); }
  void zero(void* dst, size_t bytes) const { std::memset(dst, 0, bytes); }

  napo_status linearLogprobs(const kernels::LinearCall& c, float* logprobs, float* entropy, float* lse) const {
    Linear linear(c);
    kernels::launchLinearCheck(emulated, linear.args, static_cast<const kernels::LinearGradients*>(nullptr));
    kernels::launchLinearLogprobs(emulated, linear.args, kernels::LinearOutputs{logprobs, entropy, lse});
    return linear.status("linearLogprobs");
  }
  napo_status linearLogprobsBackward(const kernels::LinearCall& c, const float* lse, const float* entropy,
                                     const float* gradLogprobs, const float* gradEntropy, float* gradHidden,
                                     float* gradWeight) const {
    Linear linear(c);
    const kernels::LinearGradients grads{lse, entropy, gradLogprobs, gradEntropy, gradHidden, gradWeight, true};
    kernels::launchLinearCheck(emulated, linear.args, &grads);
    kernels::launchLinearLogprobsBackward(emulated, linear.args, grads);
    return linear.status("linearLogprobsBackward");
  }

 private:
  // The workspace and error record linear_logprobs.cu takes from its scratch.
  struct Linear {
    std::vector<float> workspace;
    kernels::KernelErrors errors;
    kernels::LinearArgs<float> args;
    explicit Linear(const kernels::LinearCall& c) : workspace(size_t(c.n * c.chunk + 4 * c.n), 0.0f) {
      std::memset(&errors, 0xff, sizeof errors);
      float* state = workspace.data() + c.n * c.chunk;
      args = {c.hidden, c.weight, c.tokens, c.n, c.width, c.vocab, c.chunk, 1.0f / c.temperature, workspace.data(),
              kernels::LinearRowState{state, state + c.n, state + 2 * c.n, state + 3 * c.n}, &errors};
    }
    napo_status status(const char* op) const {
      const bool clean = errors.badIndex == kernels::kNothingFound && errors.badInput == kernels::kNothingFound &&
                         errors.badLogit == kernels::kNothingFound;
      return clean ? NAPO_OK : napo::fail(NAPO_ERR_RANGE, "%s: the emulated kernels reported a bad input", op);
    }
  };
};

napo_model_config tinyConfig(napo_model_family family) {
  napo_model_config c{};
  c.family = family;
  c.vocab_size = 37;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == NAPO_MODEL_GPT2 ? 4 : 2;
  c.head_dim = family == NAPO_MODEL_QWEN3 ? 12 : 8;  // qwen3: head_dim != hidden / heads
  c.max_positions = 32;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_scaling = NAPO_ROPE_DEFAULT;
  c.qkv_bias = family == NAPO_MODEL_GPT2 || family == NAPO_MODEL_QWEN2;
  c.output_bias = c.mlp_bias = family == NAPO_MODEL_GPT2;
  c.tie_word_embeddings = family != NAPO_MODEL_LLAMA;
  c.initializer_range = 0.3f;
  c.seed = 11;
  c.device = {NAPO_CPU, 0};
  return c;
}

bool near(Checks& checks, const std::string& what, const float* got, const float* want, size_t count) {
  double scale = 0.0;
  for (size_t i = 0; i < count; ++i) scale = std::max(scale, double(std::fabs(want[i])));
  return allClose(checks, what, got, want, count, 1e-5 + 2e-4 * scale, 1e-3);
}

bool ok(Checks& checks, const std::string& what, napo_status status) {
  return checks.expect(status == NAPO_OK, what + ": " + (status == NAPO_OK ? "" : napo_last_error()));
}

void familyCase(Checks& checks, napo_model_family family, const char* name) {
  const napo_model_config config = tinyConfig(family);
  if (!ok(checks, format("%s config", name), napo_model_config_validate(&config))) return;
  CausalLM cpu(config);
  CausalLM gpu(config, std::make_unique<kernels::LayerKernelsOn<HostPlatform>>(HostPlatform{}));
  if (!ok(checks, format("%s init", name), cpu.initialize()) || !ok(checks, format("%s init", name), gpu.initialize())) return;
  const size_t floats = size_t(cpu.registry().floats);

  // A ragged batch; targets are the next tokens inside each row.
  const int64_t B = 3, T = 9, V = config.vocab_size;
  const std::vector<int32_t> lengths = {9, 5, 7};
  std::vector<int32_t> tokens(size_t(B * T), 0), targets(size_t(B * T), -1);
  for (int64_t i = 0; i < B * T; ++i) tokens[size_t(i)] = int32_t((i * 7 + 3) % V);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t + 1 < lengths[size_t(b)]; ++t) targets[size_t(b * T + t)] = tokens[size_t(b * T + t + 1)];
  }
  const HostBatch batch{B, T, tokens.data(), lengths.data()};
  const napo_model_score_options options{0.8f, 1, 1};
  std::vector<float> lpCpu(size_t(B * T)), lpGpu(lpCpu.size(), 9.0f), entCpu(lpCpu.size()), entGpu(lpCpu.size(), 9.0f);
  ok(checks, format("%s score", name), cpu.score(batch, targets.data(), options, lpCpu.data(), entCpu.data()));
  ok(checks, format("%s score (cuda kernels)", name), gpu.score(batch, targets.data(), options, lpGpu.data(), entGpu.data()));
  near(checks, format("%s score log-probs", name), lpGpu.data(), lpCpu.data(), lpCpu.size());
  near(checks, format("%s score entropy", name), entGpu.data(), entCpu.data(), entCpu.size());

  const std::vector<float> gradLp = randomNormal(size_t(B * T), 90), gradEnt = randomNormal(size_t(B * T), 91, 0.1f);
  ok(checks, format("%s scoreBackward", name), cpu.scoreBackward(gradLp.data(), gradEnt.data()));
  ok(checks, format("%s scoreBackward (cuda kernels)", name), gpu.scoreBackward(gradLp.data(), gradEnt.data()));
  near(checks, format("%s gradients through score", name), gpu.grads(), cpu.grads(), floats);

  // The unfused path: [B, T, V] logits, a gradient over them, the backward.
  std::vector<float> logitsCpu(size_t(B * T * V)), logitsGpu(logitsCpu.size(), 9.0f);
  ok(checks, format("%s forward", name), cpu.forward(batch, logitsCpu.data()));
  ok(checks, format("%s forward (cuda kernels)", name), gpu.forward(batch, logitsGpu.data()));
  near(checks, format("%s logits", name), logitsGpu.data(), logitsCpu.data(), logitsCpu.size());
  const std::vector<float> gradLogits = randomNormal(logitsCpu.size(), 92, 0.05f);
  cpu.zeroGrad();
  gpu.zeroGrad();
  ok(checks, format("%s backward", name), cpu.backward(gradLogits.data()));
  ok(checks, format("%s backward (cuda kernels)", name), gpu.backward(gradLogits.data()));
  near(checks, format("%s gradients through logits", name), gpu.grads(), cpu.grads(), floats);

  napo_adamw_options adamw{};
  adamw.lr = 1e-2f;
  adamw.beta1 = 0.9f;
  adamw.beta2 = 0.999f;
  // A large eps keeps the update continuous in the gradient: with 1e-8, a gradient that is zero up
  // to rounding moves its parameter by +-lr depending on the rounding's sign.
  adamw.eps = 1e-3f;
  adamw.weight_decay = 0.1f;
  adamw.max_grad_norm = 0.5f;
  napo_adamw_result stepCpu{}, stepGpu{};
  ok(checks, format("%s step", name), cpu.step(adamw, &stepCpu));
  ok(checks, format("%s step (cuda kernels)", name), gpu.step(adamw, &stepGpu));
  checks.expect(std::fabs(stepGpu.grad_norm - stepCpu.grad_norm) <= 1e-4 * stepCpu.grad_norm,
                format("%s gradient norm %.9g, want %.9g", name, stepGpu.grad_norm, stepCpu.grad_norm));
  near(checks, format("%s parameters after a step", name), gpu.params(), cpu.params(), floats);

  // Generation: a prefill, then three decode steps with row 1 inactive from the second on.
  std::vector<float> lastCpu(size_t(B * V)), lastGpu(lastCpu.size(), 9.0f);
  ok(checks, format("%s prefill", name), cpu.prefill(batch, 16, lastCpu.data()));
  ok(checks, format("%s prefill (cuda kernels)", name), gpu.prefill(batch, 16, lastGpu.data()));
  near(checks, format("%s prefill logits", name), lastGpu.data(), lastCpu.data(), lastCpu.size());
  for (int step = 0; step < 3; ++step) {
    const std::vector<int32_t> next = {int32_t(step + 1), step == 0 ? 5 : -1, int32_t(2 * step)};
    ok(checks, format("%s decode", name), cpu.decodeStep(next.data(), lastCpu.data()));
    ok(checks, format("%s decode (cuda kernels)", name), gpu.decodeStep(next.data(), lastGpu.data()));
    near(checks, format("%s decode step %d logits", name, step), lastGpu.data(), lastCpu.data(), lastCpu.size());
  }
}

}  // namespace

void modelSuites(Checks& checks) {
  familyCase(checks, NAPO_MODEL_GPT2, "gpt2");
  familyCase(checks, NAPO_MODEL_LLAMA, "llama");
  familyCase(checks, NAPO_MODEL_QWEN2, "qwen2");
  familyCase(checks, NAPO_MODEL_QWEN3, "qwen3");
}
