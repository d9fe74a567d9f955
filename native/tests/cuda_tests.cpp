// The CUDA backend against the CPU backend through the C ABI, on a real device: every small suite
// of op_checks.h, the model layers' kernels (layer_checks.h), whole models of every family on the
// device against the same models on the CPU, then the sampler's token agreement and the forward's accuracy at sizes a
// trainer sees, a caller's own stream, and the memory counters. Skips (exit 0) with a message when
// no device answers. `--quick` runs a few cases of each kind, for compute-sanitizer (which slows
// kernels down a hundredfold).
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "napo/model.h"
#include "op_checks.h"

using namespace napo_tests;

// The model layers' kernels against the CPU backend (cuda_layer_tests.cu).
void cudaLayerKernelSuites(Checks& checks);

namespace {

constexpr napo_device kCuda{NAPO_CUDA, 0};
constexpr napo_device kHost{NAPO_CPU, 0};

// A device copy of a host buffer, freed when it goes out of scope.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ && napo_malloc(kCuda, bytes_, &data_) != NAPO_OK) {
      std::fprintf(stderr, "napo_malloc(%zu): %s\n", bytes_, napo_last_error());
      std::exit(2);
    }
  }
  DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) { upload(host); }
  ~DeviceBuffer() { napo_free(kCuda, data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void upload(const void* host) {
    if (bytes_) napo_memcpy(kCuda, data_, kHost, host, bytes_);
  }
  void download(void* host) const {
    if (bytes_) napo_memcpy(kHost, host, kCuda, data_, bytes_);
  }
  void* data() const { return data_; }

 private:
  size_t bytes_;
  void* data_ = nullptr;
};

template <typename T>
std::unique_ptr<DeviceBuffer> deviceCopy(const std::vector<T>& values) {
  return std::make_unique<DeviceBuffer>(values.data(), values.size() * sizeof(T));
}

// Device logits keep the host copy's misalignment: the buffer starts at the same offset.
struct DeviceLogits {
  DeviceBuffer buffer;
  const Logits& host;
  explicit DeviceLogits(const Logits& logits) : buffer(logits.bytes.data(), logits.bytes.size()), host(logits) {}
  void* data() const { return static_cast<char*>(buffer.data()) + size_t(host.offset) * host.elementSize(); }
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(void* stream = nullptr) : stream_(stream) {}
  std::string name() const override { return "cuda"; }

  napo_status tokenLogprobs(const Logits& logits, const std::vector<int32_t>& tokens, float temperature,
                            bool withEntropy, LogprobsResult& out) override {
    const int64_t n = logits.rows;
    DeviceLogits l(logits);
    auto t = deviceCopy(tokens);
    DeviceBuffer lp(size_t(n) * 4), lse(size_t(n) * 4), ent(size_t(n) * 4);
    napo_tensor lt = tensorView(l.data(), logits.dtype, {n, logits.vocab}, kCuda);
    napo_tensor tt = tensorView(t->data(), NAPO_INT32, {n}, kCuda);
    napo_tensor lpt = tensorView(lp.data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor lset = tensorView(lse.data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor entt = tensorView(ent.data(), NAPO_FLOAT32, {n}, kCuda);
    const napo_status status =
        napo_token_logprobs(&lt, &tt, temperature, &lpt, withEntropy ? &entt : nullptr, &lset, stream_);
    if (status != NAPO_OK) return status;
    out.logprobs.resize(size_t(n));
    out.lse.resize(size_t(n));
    out.entropy.resize(withEntropy ? size_t(n) : 0);
    lp.download(out.logprobs.data());
    lse.download(out.lse.data());
    if (withEntropy) ent.download(out.entropy.data());
    return NAPO_OK;
  }

  napo_status tokenLogprobsBackward(const Logits& logits, const BackwardInputs& in, Logits& grad) override {
    const int64_t n = logits.rows;
    DeviceLogits l(in.inPlace ? grad : logits);
    DeviceLogits g(grad);
    auto t = deviceCopy(in.tokens);
    auto lse = deviceCopy(in.lse);
    auto ent = deviceCopy(in.entropy);
    auto glp = deviceCopy(in.gradLogprobs);
    auto gent = deviceCopy(in.gradEntropy);
    napo_tensor lt = tensorView(l.data(), logits.dtype, {n, logits.vocab}, kCuda);
    napo_tensor gt = tensorView(in.inPlace ? l.data() : g.data(), grad.dtype, {n, grad.vocab}, kCuda);
    napo_tensor tt = tensorView(t->data(), NAPO_INT32, {n}, kCuda);
    napo_tensor lset = tensorView(lse->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor entt = tensorView(ent->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor glpt = tensorView(glp->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor gentt = tensorView(gent->data(), NAPO_FLOAT32, {n}, kCuda);
    const napo_status status = napo_token_logprobs_backward(&lt, &tt, &lset, in.entropy.empty() ? nullptr : &entt,
                                                            &glpt, in.gradEntropy.empty() ? nullptr : &gentt,
                                                            in.temperature, &gt, stream_);
    if (status != NAPO_OK) return status;
    (in.inPlace ? l : g).buffer.download(grad.bytes.data());
    return NAPO_OK;
  }

  napo_status sample(const Logits& logits, const SampleOptions& options, SampleResult& out) override {
    const int64_t n = logits.rows;
    DeviceLogits l(logits);
    DeviceBuffer tokens(size_t(n) * 4), logprobs(size_t(n) * 4);
    napo_tensor lt = tensorView(l.data(), logits.dtype, {n, logits.vocab}, kCuda);
    napo_tensor tt = tensorView(tokens.data(), NAPO_INT32, {n}, kCuda);
    napo_tensor lpt = tensorView(logprobs.data(), NAPO_FLOAT32, {n}, kCuda);
    const napo_sample_options view = options.view();
    const napo_status status = napo_sample(&lt, &view, &tt, &lpt, stream_);
    if (status != NAPO_OK) return status;
    out.tokens.resize(size_t(n));
    out.logprobs.resize(size_t(n));
    tokens.download(out.tokens.data());
    logprobs.download(out.logprobs.data());
    return NAPO_OK;
  }

  napo_status groupAdvantages(const AdvantageInputs& in, std::vector<float>& out) override {
    const int64_t s = int64_t(in.rewards.size());
    auto rewards = deviceCopy(in.rewards);
    DeviceBuffer advantages(size_t(s) * 4);
    napo_tensor r = tensorView(rewards->data(), NAPO_FLOAT32, {s}, kCuda);
    napo_tensor a = tensorView(advantages.data(), NAPO_FLOAT32, {s}, kCuda);
    const napo_advantage_options view = in.view();
    const napo_status status = napo_group_advantages(&r, &view, &a, stream_);
    if (status != NAPO_OK) return status;
    out.resize(size_t(s));
    advantages.download(out.data());
    return NAPO_OK;
  }

  napo_status policyLoss(const PolicyLossInputs& in, PolicyLossResult& out) override {
    const int64_t s = in.sequences, t = in.steps;
    auto lp = deviceCopy(in.logprobs), old = deviceCopy(in.oldLogprobs), ref = deviceCopy(in.refLogprobs),
         adv = deviceCopy(in.advantages), mask = deviceCopy(in.maskBytes()), ent = deviceCopy(in.entropy);
    DeviceBuffer grad(size_t(s * t) * 4), gradEnt(size_t(s * t) * 4);
    napo_tensor lpt = tensorView(lp->data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor oldt = tensorView(old->data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor reft = tensorView(ref->data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor maskt = tensorView(mask->data(), in.maskDtype, {s, t}, kCuda);
    napo_tensor gradt = tensorView(grad.data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor entt = tensorView(ent->data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor gradEntt = tensorView(gradEnt.data(), NAPO_FLOAT32, {s, t}, kCuda);
    napo_tensor advt = tensorView(adv->data(), NAPO_FLOAT32, {s}, kCuda);
    const bool withEntropy = !in.entropy.empty();
    const napo_status status =
        napo_policy_loss(&lpt, &oldt, in.refLogprobs.empty() ? nullptr : &reft, withEntropy ? &entt : nullptr, &advt,
                         &maskt, &in.options, &gradt, withEntropy ? &gradEntt : nullptr, &out.stats, stream_);
    if (status != NAPO_OK) return status;
    out.grad.resize(size_t(s * t));
    grad.download(out.grad.data());
    out.gradEntropy.resize(withEntropy ? size_t(s * t) : 0);
    if (withEntropy) gradEnt.download(out.gradEntropy.data());
    return NAPO_OK;
  }

  napo_status repetitionPenalty(const Logits& logits, const std::vector<int32_t>& history, float penalty,
                                Logits& out) override {
    const int64_t n = logits.rows, length = int64_t(history.size()) / n;
    DeviceLogits in(logits), result(out);
    auto h = deviceCopy(history);
    napo_tensor lt = tensorView(in.data(), logits.dtype, {n, logits.vocab}, kCuda);
    napo_tensor ht = tensorView(h->data(), NAPO_INT32, {n, length}, kCuda);
    napo_tensor ot = tensorView(result.data(), out.dtype, {n, out.vocab}, kCuda);
    const napo_status status = napo_repetition_penalty(&lt, &ht, penalty, &ot, stream_);
    if (status != NAPO_OK) return status;
    result.buffer.download(out.bytes.data());
    return NAPO_OK;
  }

  napo_status maskedRowSum(const RowSumInputs& in, std::vector<float>& sums) override {
    auto values = deviceCopy(in.values), mask = deviceCopy(in.maskBytes());
    DeviceBuffer out(size_t(in.rows) * 4);
    napo_tensor vt = tensorView(values->data(), NAPO_FLOAT32, {in.rows, in.width}, kCuda);
    napo_tensor mt = tensorView(mask->data(), in.maskDtype, {in.rows, in.width}, kCuda);
    napo_tensor ot = tensorView(out.data(), NAPO_FLOAT32, {in.rows}, kCuda);
    const napo_status status = napo_masked_row_sum(&vt, &mt, &ot, stream_);
    if (status != NAPO_OK) return status;
    sums.resize(size_t(in.rows));
    out.download(sums.data());
    return NAPO_OK;
  }

  napo_status maskedRowSumBackward(const RowSumInputs& in, std::vector<float>& gradValues) override {
    auto grad = deviceCopy(in.gradSums), mask = deviceCopy(in.maskBytes());
    DeviceBuffer out(size_t(in.rows * in.width) * 4);
    napo_tensor gt = tensorView(grad->data(), NAPO_FLOAT32, {in.rows}, kCuda);
    napo_tensor mt = tensorView(mask->data(), in.maskDtype, {in.rows, in.width}, kCuda);
    napo_tensor ot = tensorView(out.data(), NAPO_FLOAT32, {in.rows, in.width}, kCuda);
    const napo_status status = napo_masked_row_sum_backward(&mt, &gt, &ot, stream_);
    if (status != NAPO_OK) return status;
    gradValues.resize(size_t(in.rows * in.width));
    out.download(gradValues.data());
    return NAPO_OK;
  }

  napo_status linearLogprobs(const LinearInputs& in, LogprobsResult& out) override {
    const int64_t n = in.rows();
    DeviceLogits hidden(in.hidden), weight(in.weight);
    auto tokens = deviceCopy(in.tokens);
    DeviceBuffer lp(size_t(n) * 4), lse(size_t(n) * 4), ent(size_t(n) * 4);
    napo_tensor h = tensorView(hidden.data(), in.hidden.dtype, {n, in.width()}, kCuda);
    napo_tensor w = tensorView(weight.data(), in.weight.dtype, {in.vocab(), in.width()}, kCuda);
    napo_tensor t = tensorView(tokens->data(), NAPO_INT32, {n}, kCuda);
    napo_tensor lpt = tensorView(lp.data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor lset = tensorView(lse.data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor entt = tensorView(ent.data(), NAPO_FLOAT32, {n}, kCuda);
    const napo_linear_logprobs_options options = in.options();
    const napo_status status =
        napo_linear_logprobs(&h, &w, &t, &options, &lpt, in.withEntropy ? &entt : nullptr, &lset, stream_);
    if (status != NAPO_OK) return status;
    out.logprobs.resize(size_t(n));
    out.lse.resize(size_t(n));
    lp.download(out.logprobs.data());
    lse.download(out.lse.data());
    if (in.withEntropy) {
      out.entropy.resize(size_t(n));
      ent.download(out.entropy.data());
    }
    return NAPO_OK;
  }

  napo_status linearLogprobsBackward(const LinearInputs& in, LinearGradientsResult& out) override {
    const int64_t n = in.rows(), width = in.width(), vocab = in.vocab();
    DeviceLogits hidden(in.hidden), weight(in.weight);
    auto tokens = deviceCopy(in.tokens), lse = deviceCopy(in.lse), ent = deviceCopy(in.entropy),
         glp = deviceCopy(in.gradLogprobs), gent = deviceCopy(in.gradEntropy);
    out.gradHidden = in.accumulate ? in.gradHidden : std::vector<float>(size_t(n * width), 0.0f);
    out.gradWeight = in.accumulate ? in.gradWeight : std::vector<float>(size_t(vocab * width), 0.0f);
    auto gh = deviceCopy(out.gradHidden), gw = deviceCopy(out.gradWeight);
    napo_tensor h = tensorView(hidden.data(), in.hidden.dtype, {n, width}, kCuda);
    napo_tensor w = tensorView(weight.data(), in.weight.dtype, {vocab, width}, kCuda);
    napo_tensor t = tensorView(tokens->data(), NAPO_INT32, {n}, kCuda);
    napo_tensor lset = tensorView(lse->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor entt = tensorView(ent->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor glpt = tensorView(glp->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor gentt = tensorView(gent->data(), NAPO_FLOAT32, {n}, kCuda);
    napo_tensor ght = tensorView(gh->data(), NAPO_FLOAT32, {n, width}, kCuda);
    napo_tensor gwt = tensorView(gw->data(), NAPO_FLOAT32, {vocab, width}, kCuda);
    const napo_linear_logprobs_options options = in.options();
    const napo_status status = napo_linear_logprobs_backward(
        &h, &w, &t, &lset, in.entropy.empty() ? nullptr : &entt, &glpt, in.gradEntropy.empty() ? nullptr : &gentt,
        &options, in.accumulate ? 1 : 0, &ght, &gwt, stream_);
    if (status != NAPO_OK) return status;
    gh->download(out.gradHidden.data());
    gw->download(out.gradWeight.data());
    return NAPO_OK;
  }

 private:
  void* stream_;
};

// Token agreement and forward accuracy at trainer sizes, where rounding-edge draws show up if
// they are more than rare.
void largeSuites(Checks& checks, Backend& cuda, Backend& cpu) {
  tokenLogprobsSuite(checks, cuda, cpu, {{256, 32000}, {16, 151936}});
  SampleOptions options;
  options.topK = {50};
  options.topP = {0.9f};
  for (Pattern pattern : {Pattern::Peaked, Pattern::Normal}) {
    for (napo_dtype dtype : {NAPO_FLOAT32, NAPO_BFLOAT16}) {
      const Logits big = makeLogits(dtype, 512, 32000, pattern, 900 + int(pattern));
      checkSample(checks, cuda, cpu, big, options, "trainer size top-k 50 top-p 0.9");
      SampleOptions plain;
      checkSample(checks, cuda, cpu, big, plain, "trainer size temperature 1");
      SampleOptions nucleus;
      nucleus.topP = {0.95f};
      checkSample(checks, cuda, cpu, big, nucleus, "trainer size top-p 0.95");
    }
  }
  const Logits qwen = makeLogits(NAPO_BFLOAT16, 64, 151936, Pattern::Peaked, 950);
  checkSample(checks, cuda, cpu, qwen, options, "Qwen vocabulary top-k 50 top-p 0.9");
}

// The op runs on the caller's stream (as PyTorch passes its own) and leaves the counters where
// they were.
void streamAndMemory(Checks& checks, Backend& cpu) {
  cudaStream_t stream;
  if (!checks.expect(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess, "create a stream")) {
    return;
  }
  napo_memory_stats before{}, after{};
  napo_memory_stats_get(kCuda, &before);
  CudaBackend onStream(stream);
  tokenLogprobsSuite(checks, onStream, cpu, {{7, 3001}});
  sampleSuite(checks, onStream, cpu, {{9, 1001}});
  napo_memory_stats_get(kCuda, &after);
  checks.expect(after.allocated_bytes == before.allocated_bytes,
                format("ops leave allocated bytes as they were: %lld then %lld", (long long)before.allocated_bytes,
                       (long long)after.allocated_bytes));
  checks.expect(after.free_bytes > 0 && after.total_bytes > 0, "memoryStats reports the driver's free and total");
  cudaStreamDestroy(stream);
}

// ---- whole models: the same model on the device and on the CPU, through the C ABI ----------------

napo_model_config modelConfig(napo_model_family family, napo_device device) {
  napo_model_config c{};
  c.family = family;
  c.vocab_size = 1000;
  c.hidden_size = 128;
  c.intermediate_size = 352;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = family == NAPO_MODEL_GPT2 ? 4 : 2;
  c.head_dim = family == NAPO_MODEL_QWEN3 ? 64 : 32;
  c.max_positions = 128;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.qkv_bias = family == NAPO_MODEL_GPT2 || family == NAPO_MODEL_QWEN2;
  c.output_bias = c.mlp_bias = family == NAPO_MODEL_GPT2;
  c.tie_word_embeddings = family != NAPO_MODEL_LLAMA;
  c.initializer_range = 0.1f;
  c.seed = 5;
  c.device = device;
  return c;
}

bool nearAll(Checks& checks, const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 0.0;
  for (float value : want) scale = std::max(scale, double(std::fabs(value)));
  return allClose(checks, what, got.data(), want.data(), want.size(), 1e-5 + 5e-4 * scale, 2e-3);
}

// Every parameter (or gradient) of a model, concatenated, on the host.
std::vector<float> modelValues(const napo_model* model, bool gradients) {
  std::vector<float> all;
  for (int64_t i = 0; i < napo_model_parameter_count(model); ++i) {
    napo_model_parameter_info info{};
    napo_model_parameter_info_get(model, i, &info);
    std::vector<float> values(size_t(info.numel));
    if (gradients) napo_model_gradient_read(model, i, values.data());
    else napo_model_parameter_read(model, i, NAPO_FLOAT32, 0, values.data());
    all.insert(all.end(), values.begin(), values.end());
  }
  return all;
}

// A [rows, cols] float32 output on the host or the device, read back.
struct ModelOutput {
  std::vector<float> host;
  std::unique_ptr<DeviceBuffer> device;
  napo_tensor view;
  ModelOutput(napo_device where, std::initializer_list<int64_t> shape) {
    size_t count = 1;
    for (int64_t dim : shape) count *= size_t(dim);
    host.assign(count, 0.0f);
    if (where.kind == NAPO_CUDA) device = std::make_unique<DeviceBuffer>(count * 4);
    view = tensorView(device ? device->data() : host.data(), NAPO_FLOAT32, shape, where);
  }
  std::vector<float> read() {
    if (device) device->download(host.data());
    return host;
  }
};

void modelCase(Checks& checks, napo_model_family family, const char* name) {
  napo_model *cpu = nullptr, *gpu = nullptr;
  const napo_model_config cpuConfig = modelConfig(family, kHost), gpuConfig = modelConfig(family, kCuda);
  if (!checks.expect(napo_model_create(&cpuConfig, &cpu) == NAPO_OK && napo_model_create(&gpuConfig, &gpu) == NAPO_OK,
                     format("%s: create on cpu and cuda:0 (%s)", name, napo_last_error()))) {
    napo_model_destroy(cpu);
    return;
  }
  const int64_t B = 4, T = 33, V = cpuConfig.vocab_size;
  std::vector<int32_t> lengths = {33, 20, 1, 27}, tokens(size_t(B * T)), targets(size_t(B * T), -1);
  for (int64_t i = 0; i < B * T; ++i) tokens[size_t(i)] = int32_t((i * 37 + 11) % V);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 5; t + 1 < lengths[size_t(b)]; ++t) targets[size_t(b * T + t)] = tokens[size_t(b * T + t + 1)];
  }
  napo_tensor tokenView = tensorView(tokens.data(), NAPO_INT32, {B, T}, kHost);
  napo_tensor lengthView = tensorView(lengths.data(), NAPO_INT32, {B}, kHost);
  napo_tensor targetView = tensorView(targets.data(), NAPO_INT32, {B, T}, kHost);
  const napo_model_score_options options{0.9f, 1, 1};
  ModelOutput lpCpu(kHost, {B, T}), entCpu(kHost, {B, T}), lpGpu(kCuda, {B, T}), entGpu(kCuda, {B, T});
  checks.expect(napo_model_score(cpu, &tokenView, &lengthView, &targetView, &options, &lpCpu.view, &entCpu.view) == NAPO_OK &&
                    napo_model_score(gpu, &tokenView, &lengthView, &targetView, &options, &lpGpu.view, &entGpu.view) == NAPO_OK,
                format("%s: score (%s)", name, napo_last_error()));
  nearAll(checks, format("%s: scored log-probs", name), lpGpu.read(), lpCpu.read());
  nearAll(checks, format("%s: scored entropy", name), entGpu.read(), entCpu.read());

  std::vector<float> grad = randomNormal(size_t(B * T), 300);
  DeviceBuffer gradDevice(grad.data(), grad.size() * 4);
  napo_tensor gradHost = tensorView(grad.data(), NAPO_FLOAT32, {B, T}, kHost);
  napo_tensor gradCuda = tensorView(gradDevice.data(), NAPO_FLOAT32, {B, T}, kCuda);
  checks.expect(napo_model_score_backward(cpu, &gradHost, nullptr) == NAPO_OK && napo_model_score_backward(gpu, &gradCuda, nullptr) == NAPO_OK,
                format("%s: scoreBackward (%s)", name, napo_last_error()));
  nearAll(checks, format("%s: gradients", name), modelValues(gpu, true), modelValues(cpu, true));

  const napo_adamw_options adamw{1e-3f, 0.9f, 0.999f, 1e-3f, 0.1f, 1.0f, 1.0f};
  napo_adamw_result cpuStep{}, gpuStep{};
  checks.expect(napo_model_step(cpu, &adamw, &cpuStep) == NAPO_OK && napo_model_step(gpu, &adamw, &gpuStep) == NAPO_OK,
                format("%s: step (%s)", name, napo_last_error()));
  checks.expect(std::fabs(gpuStep.grad_norm - cpuStep.grad_norm) <= 1e-3 * cpuStep.grad_norm,
                format("%s: gradient norm %.9g, want %.9g", name, gpuStep.grad_norm, cpuStep.grad_norm));
  nearAll(checks, format("%s: parameters after a step", name), modelValues(gpu, false), modelValues(cpu, false));

  ModelOutput lastCpu(kHost, {B, V}), lastGpu(kCuda, {B, V});
  checks.expect(napo_model_prefill(cpu, &tokenView, &lengthView, 48, &lastCpu.view) == NAPO_OK &&
                    napo_model_prefill(gpu, &tokenView, &lengthView, 48, &lastGpu.view) == NAPO_OK,
                format("%s: prefill (%s)", name, napo_last_error()));
  nearAll(checks, format("%s: prefill logits", name), lastGpu.read(), lastCpu.read());
  for (int step = 0; step < 4; ++step) {
    std::vector<int32_t> next = {int32_t(step + 3), step < 2 ? 7 : -1, int32_t(5 * step), 99};
    napo_tensor nextView = tensorView(next.data(), NAPO_INT32, {B}, kHost);
    checks.expect(napo_model_decode_step(cpu, &nextView, &lastCpu.view) == NAPO_OK &&
                      napo_model_decode_step(gpu, &nextView, &lastGpu.view) == NAPO_OK,
                  format("%s: decode (%s)", name, napo_last_error()));
    nearAll(checks, format("%s: decode step %d logits", name, step), lastGpu.read(), lastCpu.read());
  }
  napo_model_destroy(cpu);
  napo_model_destroy(gpu);
}

void modelSuite(Checks& checks, bool quick) {
  modelCase(checks, NAPO_MODEL_QWEN3, "qwen3");
  if (quick) return;
  modelCase(checks, NAPO_MODEL_GPT2, "gpt2");
  modelCase(checks, NAPO_MODEL_LLAMA, "llama");
  modelCase(checks, NAPO_MODEL_QWEN2, "qwen2");
}

void sanitizerSuites(Checks& checks, Backend& cuda, Backend& cpu) {
  tokenLogprobsSuite(checks, cuda, cpu, {{3, 7}, {2, 5003}, {2, 40000}});
  backwardSuite(checks, cuda, cpu, {{3, 9}, {2, 40000}});
  sampleSuite(checks, cuda, cpu, {{8, 7}, {4, 1000}, {2, 20000}});
  advantagesSuite(checks, cuda, cpu);
  policyLossSuite(checks, cuda, cpu);
  errorSuite(checks, cuda, cpu);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  napo_backend_info info{};
  napo_backend_info_get(&info);
  if (!info.cuda_available) {
    std::printf("cuda tests: skipped, no CUDA device (%s)\n", info.cuda_unavailable_reason);
    return 0;
  }
  napo_device_properties props{};
  napo_cuda_device_properties(0, &props);
  std::printf("cuda tests on %s (sm_%d%d)\n", props.name, props.compute_capability_major,
              props.compute_capability_minor);
  Checks checks;
  CpuBackend cpu;
  CudaBackend cuda;
  if (quick) {
    sanitizerSuites(checks, cuda, cpu);
    modelSuite(checks, true);
  } else {
    runSmallSuites(checks, cuda, cpu);
    cudaLayerKernelSuites(checks);
    modelSuite(checks, false);
    largeSuites(checks, cuda, cpu);
    streamAndMemory(checks, cpu);
  }
  return report("cuda tests", checks);
}
