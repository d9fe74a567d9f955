// GRPO and ExP-GRPO steps of a random Qwen2.5-0.5B-shaped model through the C ABI, for machines
// without Node (the GPU kit): per phase the time and the allocator's peak by category, the way
// `napo profile --memory` reports them. A step is the trainer's, with random rewards: rollout
// (prefill, then sampling and decoding on the KV cache), for ExP-GRPO an explain rollout from
// answer-conditioned prompts (one per prompt), score (the fused LM head over the completion
// positions), loss (groupAdvantages and policyLoss on the device; ExPO's auxiliary term on its
// rows), backward and the AdamW step.
//
//   napo_model_step_bench [--device cuda:0|cpu] [--algo grpo|expo] [--layers 24] [--prompts 2]
//                         [--group 4] [--prompt-tokens 64] [--new-tokens 128] [--steps 3]
//                         [--out model_step.json]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "napo/model.h"
#include "napo/napo.h"

namespace {

using napo::tensorView;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "model step bench: %s: %s\n", what, napo_last_error());
  std::exit(1);
}

void check(napo_status status, const char* what) {
  if (status != NAPO_OK) die(what);
}

struct Options {
  std::string device = "cuda:0";
  std::string algo = "grpo";
  int layers = 24, prompts = 2, group = 4, promptTokens = 64, newTokens = 128, steps = 3;
  std::string out = "model_step.json";
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device") o.device = value;
    else if (flag == "--algo") o.algo = value;
    else if (flag == "--layers") o.layers = std::atoi(value.c_str());
    else if (flag == "--prompts") o.prompts = std::atoi(value.c_str());
    else if (flag == "--group") o.group = std::atoi(value.c_str());
    else if (flag == "--prompt-tokens") o.promptTokens = std::atoi(value.c_str());
    else if (flag == "--new-tokens") o.newTokens = std::atoi(value.c_str());
    else if (flag == "--steps") o.steps = std::atoi(value.c_str());
    else if (flag == "--out") o.out = value;
    else {
      std::fprintf(stderr, "model step bench: unknown option %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (argc % 2 == 0 || (o.algo != "grpo" && o.algo != "expo") || o.layers < 1 || o.prompts < 1 || o.group < 2 ||
      o.promptTokens < 1 || o.newTokens < 1 || o.steps < 1) {
    std::fprintf(stderr, "usage: napo_model_step_bench [--device cuda:0|cpu] [--algo grpo|expo] [--layers N] "
                         "[--prompts P] [--group G>=2] [--prompt-tokens L] [--new-tokens T] [--steps S] [--out F]\n");
    std::exit(2);
  }
  return o;
}

napo_device deviceOf(const std::string& name) {
  if (name == "cpu") return {NAPO_CPU, 0};
  if (name.rfind("cuda:", 0) == 0) return {NAPO_CUDA, std::atoi(name.c_str() + 5)};
  std::fprintf(stderr, "model step bench: --device %s: cpu or cuda:N\n", name.c_str());
  std::exit(2);
}

// Qwen2.5-0.5B's config.json, random weights.
napo_model_config qwen25(int layers, napo_device device) {
  napo_model_config c{};
  c.family = NAPO_MODEL_QWEN2;
  c.vocab_size = 151936;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_layers = layers;
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_positions = 32768;
  c.norm_eps = 1e-6f;
  c.rope_theta = 1e6;
  c.qkv_bias = 1;
  c.tie_word_embeddings = 1;
  c.initializer_range = 0.02f;
  c.seed = 1;
  c.device = device;
  return c;
}

// Device memory for a tensor of the step, freed at scope end.
struct Buffer {
  napo_device device;
  void* data = nullptr;
  Buffer(napo_device d, size_t bytes, napo_memory_category category = NAPO_MEMORY_TEMPORARY) : device(d) {
    check(napo_malloc_tagged(d, bytes ? bytes : 4, category, &data), "allocate");
  }
  ~Buffer() { napo_free(device, data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

const char* const kCategories[NAPO_MEMORY_CATEGORIES] = {"parameter", "gradient", "optimizerState",
                                                         "activation", "temporary", "input",
                                                         "kvCache",   "logits",   "workspace"};

struct PhaseFigures {
  std::string name;
  double seconds = 0.0;
  int64_t peak = 0;
  int64_t atPeak[NAPO_MEMORY_CATEGORIES] = {};
};

class Step {
 public:
  Step(const Options& o, napo_model* model, napo_device device) : o_(o), model_(model), device_(device) {}

  // Runs one step; returns its phases.
  std::vector<PhaseFigures> run(int step) {
    std::vector<PhaseFigures> phases;
    const int64_t rows = int64_t(o_.prompts) * o_.group;
    std::vector<int32_t> prompts = randomTokens(rows / o_.group, o_.promptTokens, 10 + step);
    std::vector<int32_t> completions, explanations;
    timed(phases, "rollout", [&] { completions = rollout(repeatRows(prompts, o_.group), rows, o_.promptTokens, step); });
    const int64_t explainRows = o_.algo == "expo" ? o_.prompts : 0;
    // ExPO's explain prompts carry the answer: 16 more tokens.
    const int64_t explainTokens = o_.promptTokens + 16;
    if (explainRows) {
      std::vector<int32_t> hinted = randomTokens(explainRows, explainTokens, 20 + step);
      timed(phases, "explain", [&] { explanations = rollout(hinted, explainRows, explainTokens, 1000 + step); });
    }
    // The scored batch: rollout rows, then ExPO's auxiliary rows (prompt + explanation).
    const int64_t batch = rows + explainRows, width = explainTokens + o_.newTokens;
    std::vector<int32_t> tokens(size_t(batch * width), 0), lengths(static_cast<size_t>(batch)), targets(size_t(batch * width), -1);
    std::vector<float> mask(size_t(batch * width), 0.0f);
    for (int64_t r = 0; r < batch; ++r) {
      const bool rollout = r < rows;
      const int64_t promptLength = rollout ? o_.promptTokens : explainTokens;
      lengths[size_t(r)] = int32_t(promptLength + o_.newTokens);
      for (int64_t t = 0; t < promptLength + o_.newTokens; ++t) {
        const int64_t c = t - promptLength;
        tokens[size_t(r * width + t)] = c < 0 ? int32_t((r * 131 + t * 7) % 151936)
                                              : (rollout ? completions[size_t(r * o_.newTokens + c)]
                                                         : explanations[size_t((r - rows) * o_.newTokens + c)]);
      }
      for (int64_t t = promptLength - 1; t + 1 < promptLength + o_.newTokens; ++t) {
        targets[size_t(r * width + t)] = tokens[size_t(r * width + t + 1)];
        mask[size_t(r * width + t)] = 1.0f;
      }
    }
    napo_tensor tokenView = tensorView(tokens.data(), NAPO_INT32, {batch, width}, kHost);
    napo_tensor lengthView = tensorView(lengths.data(), NAPO_INT32, {batch}, kHost);
    napo_tensor targetView = tensorView(targets.data(), NAPO_INT32, {batch, width}, kHost);
    Buffer logprobs(device_, size_t(batch * width) * 4), grad(device_, size_t(batch * width) * 4);
    napo_tensor logprobView = tensorView(logprobs.data, NAPO_FLOAT32, {batch, width}, device_);
    timed(phases, "score", [&] {
      const napo_model_score_options options{1.0f, 0, 1};
      check(napo_model_score(model_, &tokenView, &lengthView, &targetView, &options, &logprobView, nullptr), "score");
    });
    timed(phases, "loss", [&] { loss(logprobs.data, grad.data, mask, rows, explainRows, width, step); });
    napo_tensor gradView = tensorView(grad.data, NAPO_FLOAT32, {batch, width}, device_);
    timed(phases, "backward", [&] { check(napo_model_score_backward(model_, &gradView, nullptr), "scoreBackward"); });
    timed(phases, "optimizer", [&] {
      const napo_adamw_options adamw{1e-6f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1.0f};
      napo_adamw_result result{};
      check(napo_model_step(model_, &adamw, &result), "step");
    });
    return phases;
  }

 private:
  static constexpr napo_device kHost{NAPO_CPU, 0};

  template <typename Body>
  void timed(std::vector<PhaseFigures>& phases, const char* name, Body&& body) {
    check(napo_synchronize(device_), "synchronize");
    check(napo_reset_peak_memory_stats(device_), "reset peak");
    const auto start = std::chrono::steady_clock::now();
    body();
    check(napo_synchronize(device_), "synchronize");
    PhaseFigures figures;
    figures.name = name;
    figures.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    napo_memory_stats stats{};
    check(napo_memory_stats_get(device_, &stats), "memory stats");
    figures.peak = stats.peak_allocated_bytes;
    std::memcpy(figures.atPeak, stats.category_at_peak, sizeof figures.atPeak);
    phases.push_back(figures);
  }

  static std::vector<int32_t> randomTokens(int64_t rows, int64_t length, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int32_t> tokens(size_t(rows * length));
    for (int32_t& token : tokens) token = int32_t(rng() % 151643);
    return tokens;
  }

  std::vector<int32_t> repeatRows(const std::vector<int32_t>& rows, int64_t times) const {
    std::vector<int32_t> out;
    for (size_t r = 0; r < rows.size() / size_t(o_.promptTokens); ++r) {
      for (int64_t g = 0; g < times; ++g) out.insert(out.end(), rows.begin() + long(r * o_.promptTokens), rows.begin() + long((r + 1) * o_.promptTokens));
    }
    return out;
  }

  // Prefill, then newTokens samples (temperature 1, top-p 0.95) decoded on the cache; [rows * T].
  std::vector<int32_t> rollout(std::vector<int32_t> prompts, int64_t rows, int64_t length, int step) {
    const int64_t vocab = 151936;
    napo_tensor promptView = tensorView(prompts.data(), NAPO_INT32, {rows, length}, kHost);
    Buffer logits(device_, size_t(rows * vocab) * 4, NAPO_MEMORY_LOGITS), sampled(device_, size_t(rows) * 4),
        sampledLogprobs(device_, size_t(rows) * 4);
    napo_tensor logitView = tensorView(logits.data, NAPO_FLOAT32, {rows, vocab}, device_);
    napo_tensor sampledView = tensorView(sampled.data, NAPO_INT32, {rows}, device_);
    napo_tensor sampledLogprobView = tensorView(sampledLogprobs.data, NAPO_FLOAT32, {rows}, device_);
    check(napo_model_prefill(model_, &promptView, nullptr, length + o_.newTokens, &logitView), "prefill");
    std::vector<int32_t> completions(size_t(rows * o_.newTokens)), next(static_cast<size_t>(rows));
    const float temperature = 1.0f, topP = 0.95f, minP = 0.0f;
    const int32_t topK = 0;
    napo_sample_options options{};
    options.temperature = {&temperature, 1};
    options.top_k = {&topK, 1};
    options.top_p = {&topP, 1};
    options.min_p = {&minP, 1};
    options.seed = uint64_t(step);
    for (int64_t t = 0; t < o_.newTokens; ++t) {
      options.offset = uint64_t(t);
      check(napo_sample(&logitView, &options, &sampledView, &sampledLogprobView, nullptr), "sample");
      check(napo_memcpy(kHost, next.data(), device_, sampled.data, next.size() * 4), "read the tokens");
      for (int64_t r = 0; r < rows; ++r) completions[size_t(r * o_.newTokens + t)] = next[size_t(r)];
      if (t + 1 < o_.newTokens) {
        napo_tensor nextView = tensorView(next.data(), NAPO_INT32, {rows}, kHost);
        check(napo_model_decode_step(model_, &nextView, &logitView), "decode");
      }
    }
    check(napo_model_release_cache(model_), "release the cache");
    return completions;
  }

  // Random 0/1 rewards -> group advantages -> policyLoss over the rollout rows (one pass: old =
  // current); ExPO's rows get -0.04 / (their tokens) per token.
  void loss(void* logprobs, void* grad, const std::vector<float>& mask, int64_t rows, int64_t explainRows,
            int64_t width, int step) {
    std::mt19937 rng(uint32_t(50 + step));
    std::vector<float> rewards(static_cast<size_t>(rows));
    for (float& reward : rewards) reward = float(rng() % 2);
    std::vector<int32_t> offsets;
    for (int64_t g = 0; g <= rows / o_.group; ++g) offsets.push_back(int32_t(g * o_.group));
    Buffer rewardBuffer(device_, size_t(rows) * 4, NAPO_MEMORY_INPUT), advantages(device_, size_t(rows) * 4),
        maskBuffer(device_, mask.size() * 4, NAPO_MEMORY_INPUT);
    check(napo_memcpy(device_, rewardBuffer.data, kHost, rewards.data(), rewards.size() * 4), "upload rewards");
    check(napo_memcpy(device_, maskBuffer.data, kHost, mask.data(), mask.size() * 4), "upload the mask");
    napo_tensor rewardView = tensorView(rewardBuffer.data, NAPO_FLOAT32, {rows}, device_);
    napo_tensor advantageView = tensorView(advantages.data, NAPO_FLOAT32, {rows}, device_);
    const napo_advantage_options advantageOptions{offsets.data(), int64_t(offsets.size()) - 1, NAPO_SCALE_GROUP,
                                                  NAPO_ESTIMATOR_GRPO, 1e-4f};
    check(napo_group_advantages(&rewardView, &advantageOptions, &advantageView, nullptr), "groupAdvantages");
    napo_tensor current = tensorView(logprobs, NAPO_FLOAT32, {rows, width}, device_);
    napo_tensor maskView = tensorView(maskBuffer.data, NAPO_FLOAT32, {rows, width}, device_);
    napo_tensor gradView = tensorView(grad, NAPO_FLOAT32, {rows, width}, device_);
    const napo_policy_loss_options lossOptions{0.2f, 0.28f, 0.0f, NAPO_LOSS_DAPO, o_.newTokens, 0.0, NAPO_IMPORTANCE_TOKEN, 0.0f, 1.0f, 1.05f, 0.0f, 0.0f, 0, 0, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    napo_policy_loss_stats stats{};
    check(napo_policy_loss(&current, &current, nullptr, nullptr, &advantageView, &maskView, &lossOptions, &gradView, nullptr,
                           &stats, nullptr),
          "policyLoss");
    if (!explainRows) return;
    std::vector<float> auxiliary(size_t(explainRows * width), 0.0f);
    double count = 0.0;
    for (size_t i = size_t(rows * width); i < mask.size(); ++i) count += mask[i];
    for (size_t i = 0; i < auxiliary.size(); ++i) auxiliary[i] = mask[size_t(rows * width) + i] * float(-0.04 / count);
    check(napo_memcpy(device_, static_cast<float*>(grad) + rows * width, kHost, auxiliary.data(), auxiliary.size() * 4),
          "upload the auxiliary gradient");
  }

  const Options& o_;
  napo_model* model_;
  napo_device device_;
};

void writeJson(const Options& o, const std::string& deviceName, const napo_model_config& config, double createSeconds,
               const std::vector<std::vector<PhaseFigures>>& steps) {
  FILE* f = std::fopen(o.out.c_str(), "w");
  if (!f) die("open the output");
  std::fprintf(f, "{\n  \"kind\": \"model-step\",\n  \"device\": \"%s\",\n  \"algorithm\": \"%s\",\n", deviceName.c_str(), o.algo.c_str());
  std::fprintf(f, "  \"model\": {\"shape\": \"Qwen2.5-0.5B\", \"layers\": %d, \"vocab\": %d, \"hidden\": %d, \"randomWeights\": true},\n",
               config.num_layers, config.vocab_size, config.hidden_size);
  std::fprintf(f, "  \"batch\": {\"prompts\": %d, \"group\": %d, \"promptTokens\": %d, \"newTokens\": %d},\n", o.prompts, o.group,
               o.promptTokens, o.newTokens);
  std::fprintf(f, "  \"createSeconds\": %.3f,\n  \"steps\": [\n", createSeconds);
  for (size_t s = 0; s < steps.size(); ++s) {
    std::fprintf(f, "    [\n");
    for (size_t p = 0; p < steps[s].size(); ++p) {
      const PhaseFigures& phase = steps[s][p];
      std::fprintf(f, "      {\"phase\": \"%s\", \"seconds\": %.6f, \"peakAllocatedBytes\": %lld, \"atPeakByCategory\": {",
                   phase.name.c_str(), phase.seconds, (long long)phase.peak);
      for (int c = 0; c < NAPO_MEMORY_CATEGORIES; ++c) {
        std::fprintf(f, "%s\"%s\": %lld", c ? ", " : "", kCategories[c], (long long)phase.atPeak[c]);
      }
      std::fprintf(f, "}}%s\n", p + 1 < steps[s].size() ? "," : "");
    }
    std::fprintf(f, "    ]%s\n", s + 1 < steps.size() ? "," : "");
  }
  std::fprintf(f, "  ]\n}\n");
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const napo_device device = deviceOf(o.device);
  std::string deviceName = "cpu";
  if (device.kind == NAPO_CUDA) {
    napo_device_properties props{};
    check(napo_cuda_device_properties(device.index, &props), "device properties");
    deviceName = props.name;
  }
  const napo_model_config config = qwen25(o.layers, device);
  const auto created = std::chrono::steady_clock::now();
  napo_model* model = nullptr;
  check(napo_model_create(&config, &model), "create the model");
  const double createSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count();
  Step step(o, model, device);
  std::vector<std::vector<PhaseFigures>> steps;
  for (int s = 0; s < o.steps; ++s) {
    steps.push_back(step.run(s));
    std::printf("step %d on %s:", s + 1, deviceName.c_str());
    for (const PhaseFigures& phase : steps.back()) {
      std::printf(" %s %.3f s %.0f MiB;", phase.name.c_str(), phase.seconds, double(phase.peak) / (1 << 20));
    }
    std::printf("\n");
  }
  writeJson(o, deviceName, config, createSeconds, steps);
  std::printf("wrote %s\n", o.out.c_str());
  napo_model_destroy(model);
  return 0;
}
