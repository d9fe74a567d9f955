// The C++ kernel bench: times each RL op through the C ABI and measures, in the same run, the
// device's copy bandwidth (the limit for these memory-bound ops), then writes one JSON document.
// On a GPU the timings are cudaEvents around the call on a stream of our own (a call includes
// the read-back of the op's error record); without one, the CPU backend on smaller shapes with
// the wall clock.
//
//   napo_kernel_bench [--out results.json] [--quick] [--cpu]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/math.h"
#include "core/tensor.h"
#include "napo/napo.h"

#if defined(NAPO_BENCH_CUDA)
#include <cuda_runtime.h>
#endif

namespace {

struct Options {
  std::string out;
  bool quick = false;
  bool cpu = false;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "kernel bench: %s: %s\n", what, napo_last_error());
  std::exit(1);
}

void check(napo_status status, const char* what) {
  if (status != NAPO_OK) die(what);
}

std::string jsonEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Where the ops run, and how they are timed.
class Device {
 public:
  explicit Device(bool cuda) : cuda_(cuda) {
#if defined(NAPO_BENCH_CUDA)
    cudaStream_t stream = nullptr;
    if (cuda_ && cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
      std::fprintf(stderr, "kernel bench: cannot create a stream\n");
      std::exit(1);
    }
    stream_ = stream;
#endif
  }
  bool cuda() const { return cuda_; }
  napo_device device() const { return cuda_ ? napo_device{NAPO_CUDA, 0} : napo_device{NAPO_CPU, 0}; }
  void* stream() const { return stream_; }

  void* alloc(size_t bytes) {
    void* p = nullptr;
    check(napo_malloc(device(), bytes, &p), "malloc");
    return p;
  }
  void release(void* p) { napo_free(device(), p); }
  void upload(void* dst, const void* src, size_t bytes) {
    check(napo_memcpy(device(), dst, napo_device{NAPO_CPU, 0}, src, bytes), "upload");
  }

  // Fills `bytes` of device memory by repeating `pattern` (copied once, then doubled on the device).
  void fill(void* dst, const std::vector<unsigned char>& pattern, size_t bytes) {
    const size_t first = std::min(bytes, pattern.size());
    upload(dst, pattern.data(), first);
    for (size_t done = first; done < bytes;) {
      const size_t chunk = std::min(done, bytes - done);
      check(napo_memcpy(device(), static_cast<char*>(dst) + done, device(), dst, chunk), "fill");
      done += chunk;
    }
  }

  // Median milliseconds of `iterations` calls after `warmup` ones.
  double time(const std::function<void()>& call, int warmup, int iterations) {
    for (int i = 0; i < warmup; ++i) call();
    std::vector<double> ms;
#if defined(NAPO_BENCH_CUDA)
    if (cuda_) {
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      for (int i = 0; i < iterations; ++i) {
        cudaEventRecord(start, static_cast<cudaStream_t>(stream_));
        call();
        cudaEventRecord(stop, static_cast<cudaStream_t>(stream_));
        cudaEventSynchronize(stop);
        float elapsed = 0.0f;
        cudaEventElapsedTime(&elapsed, start, stop);
        ms.push_back(elapsed);
      }
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
#endif
    if (!cuda_) {
      for (int i = 0; i < iterations; ++i) {
        const auto start = std::chrono::steady_clock::now();
        call();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

  // Device-to-device copy bandwidth, counting bytes read plus bytes written.
  double copyBandwidth(size_t bytes) {
#if defined(NAPO_BENCH_CUDA)
    if (cuda_) {
      void* a = alloc(bytes);
      void* b = alloc(bytes);
      const auto stream = static_cast<cudaStream_t>(stream_);
      const double ms = time([&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream); }, 3, 20);
      release(a);
      release(b);
      return 2.0 * double(bytes) / (ms * 1e6);
    }
#endif
    std::vector<unsigned char> a(bytes, 1), b(bytes);
    const double ms = time([&] { std::memcpy(b.data(), a.data(), bytes); }, 2, 10);
    return 2.0 * double(bytes) / (ms * 1e6);
  }

 private:
  bool cuda_;
  void* stream_ = nullptr;  // a cudaStream_t on a GPU
};

// A block of rows of peaked, LLM-like logits, repeated to fill [rows, vocab].
std::vector<unsigned char> logitPattern(napo_dtype dtype, int64_t vocab, int64_t rows) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const size_t count = size_t(vocab * rows);
  std::vector<unsigned char> bytes(count * (dtype == NAPO_BFLOAT16 ? 2 : 4));
  for (size_t i = 0; i < count; ++i) {
    const float value = normal(rng) + (unit(rng) < 0.002f ? 10.0f * unit(rng) : 0.0f);
    if (dtype == NAPO_BFLOAT16) {
      const uint16_t bits = napo::floatToBf16(value);
      std::memcpy(bytes.data() + 2 * i, &bits, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &value, 4);
    }
  }
  return bytes;
}


struct Result {
  std::string op, shape, dtype;
  double ms;
  double bytes;  // bytes the op must move at least (reads + writes)
};

class Bench {
 public:
  Bench(Device& device, bool quick) : device_(device), quick_(quick) {}

  void logitsOps(napo_dtype dtype, int64_t rows, int64_t vocab) {
    const napo_device dev = device_.device();
    const size_t elem = dtype == NAPO_BFLOAT16 ? 2 : 4;
    const size_t logitBytes = size_t(rows * vocab) * elem;
    void* logits = device_.alloc(logitBytes);
    device_.fill(logits, logitPattern(dtype, vocab, std::min<int64_t>(rows, 16)), logitBytes);
    std::vector<int32_t> hostTokens(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) hostTokens[size_t(r)] = int32_t((r * 7919) % vocab);
    void* tokens = device_.alloc(size_t(rows) * 4);
    device_.upload(tokens, hostTokens.data(), size_t(rows) * 4);
    void* logprobs = device_.alloc(size_t(rows) * 4);
    void* entropy = device_.alloc(size_t(rows) * 4);
    void* lse = device_.alloc(size_t(rows) * 4);
    void* grad = device_.alloc(size_t(rows) * 4);
    std::vector<float> ones(size_t(rows), 1.0f);
    device_.upload(grad, ones.data(), size_t(rows) * 4);

    napo_tensor l = napo::tensorView(logits, dtype, {rows, vocab}, dev);
    napo_tensor t = napo::tensorView(tokens, NAPO_INT32, {rows}, dev);
    napo_tensor lp = napo::tensorView(logprobs, NAPO_FLOAT32, {rows}, dev);
    napo_tensor ent = napo::tensorView(entropy, NAPO_FLOAT32, {rows}, dev);
    napo_tensor ls = napo::tensorView(lse, NAPO_FLOAT32, {rows}, dev);
    napo_tensor g = napo::tensorView(grad, NAPO_FLOAT32, {rows}, dev);
    const std::string shape = "[" + std::to_string(rows) + ", " + std::to_string(vocab) + "]";
    const std::string type = dtype == NAPO_BFLOAT16 ? "bfloat16" : "float32";
    const int warmup = 2, iterations = quick_ ? 3 : 10;
    void* stream = device_.stream();

    add({"tokenLogprobs", shape, type,
         device_.time([&] { check(napo_token_logprobs(&l, &t, 1.0f, &lp, nullptr, &ls, stream), "tokenLogprobs"); },
                      warmup, iterations),
         double(logitBytes)});
    add({"tokenLogprobs+entropy", shape, type,
         device_.time([&] { check(napo_token_logprobs(&l, &t, 1.0f, &lp, &ent, &ls, stream), "tokenLogprobs"); },
                      warmup, iterations),
         double(logitBytes)});
    SampleCase cases[] = {{"sample top-k 50 top-p 0.9", 1.0f, 50, 0.9f},
                          {"sample temperature 1", 1.0f, 0, 1.0f},
                          {"sample top-p 0.9", 1.0f, 0, 0.9f},
                          {"sample greedy", 0.0f, 0, 1.0f}};
    for (const SampleCase& c : cases) {
      const float minP = 0.0f;
      const napo_sample_options options{{&c.temperature, 1}, {&c.topK, 1}, {&c.topP, 1}, {&minP, 1}, 42, 0};
      add({c.name, shape, type, device_.time([&] {
             check(napo_sample(&l, &options, &t, &lp, stream), "sample");
           }, warmup, iterations),
           double(logitBytes)});
    }
    // Last, in place (it overwrites the logits): reads and writes them once.
    add({"tokenLogprobsBackward (in place)", shape, type, device_.time([&] {
           check(napo_token_logprobs_backward(&l, &t, &ls, &ent, &g, &g, 1.0f, &l, stream), "backward");
         }, 1, iterations),
         2.0 * double(logitBytes)});

    for (void* p : {logits, tokens, logprobs, entropy, lse, grad}) device_.release(p);
  }

  void smallOps(int64_t sequences, int64_t steps, int64_t groupSize) {
    const napo_device dev = device_.device();
    const size_t count = size_t(sequences * steps);
    std::vector<float> host(count);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    for (float& v : host) v = normal(rng);
    std::vector<void*> buffers;
    auto make = [&](size_t n, const float* values) {
      void* p = device_.alloc(n * 4);
      if (values) device_.upload(p, values, n * 4);
      buffers.push_back(p);
      return p;
    };
    std::vector<float> maskHost(count, 1.0f);
    napo_tensor lp = napo::tensorView(make(count, host.data()), NAPO_FLOAT32, {sequences, steps}, dev);
    napo_tensor old = napo::tensorView(make(count, host.data()), NAPO_FLOAT32, {sequences, steps}, dev);
    napo_tensor ref = napo::tensorView(make(count, host.data()), NAPO_FLOAT32, {sequences, steps}, dev);
    napo_tensor mask = napo::tensorView(make(count, maskHost.data()), NAPO_FLOAT32, {sequences, steps}, dev);
    napo_tensor grad = napo::tensorView(make(count, nullptr), NAPO_FLOAT32, {sequences, steps}, dev);
    napo_tensor adv = napo::tensorView(make(size_t(sequences), host.data()), NAPO_FLOAT32, {sequences}, dev);
    napo_tensor advOut = napo::tensorView(make(size_t(sequences), nullptr), NAPO_FLOAT32, {sequences}, dev);
    const napo_policy_loss_options options{0.2f, 0.2f, 0.04f, NAPO_LOSS_GRPO, 0, 0.0, NAPO_IMPORTANCE_TOKEN, 0.0f, 1.0f, 1.05f, 0.0f, 0.0f, 0, 0, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    napo_policy_loss_stats stats;
    const int iterations = quick_ ? 5 : 20;
    const std::string shape = "[" + std::to_string(sequences) + ", " + std::to_string(steps) + "]";
    add({"policyLoss (grpo, with ref)", shape, "float32", device_.time([&] {
           check(napo_policy_loss(&lp, &old, &ref, nullptr, &adv, &mask, &options, &grad, nullptr, &stats, device_.stream()),
                 "policyLoss");
         }, 2, iterations),
         6.0 * double(count) * 4});
    std::vector<int32_t> offsets;
    for (int64_t i = 0; i <= sequences; i += groupSize) offsets.push_back(int32_t(i));
    const napo_advantage_options adv_options{offsets.data(), int64_t(offsets.size()) - 1, NAPO_SCALE_GROUP,
                                             NAPO_ESTIMATOR_GRPO, 1e-4f};
    add({"groupAdvantages", "[" + std::to_string(sequences) + "] groups of " + std::to_string(groupSize),
         "float32", device_.time([&] {
           check(napo_group_advantages(&adv, &adv_options, &advOut, device_.stream()), "groupAdvantages");
         }, 2, iterations),
         2.0 * double(sequences) * 4});
    for (void* p : buffers) device_.release(p);
  }

  const std::vector<Result>& results() const { return results_; }

 private:
  struct SampleCase {
    const char* name;
    float temperature;
    int32_t topK;
    float topP;
  };

  void add(Result result) {
    std::fprintf(stderr, "%-34s %-18s %-9s %10.3f ms %9.1f GB/s\n", result.op.c_str(), result.shape.c_str(),
                 result.dtype.c_str(), result.ms, result.bytes / (result.ms * 1e6));
    results_.push_back(result);
  }

  Device& device_;
  bool quick_;
  std::vector<Result> results_;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      options.out = argv[++i];
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      options.quick = true;
    } else if (std::strcmp(argv[i], "--cpu") == 0) {
      options.cpu = true;
    } else {
      std::fprintf(stderr, "usage: napo_kernel_bench [--out results.json] [--quick] [--cpu]\n");
      return 2;
    }
  }
  napo_backend_info info{};
  napo_backend_info_get(&info);
  bool cuda = !options.cpu && info.cuda_available;
#if !defined(NAPO_BENCH_CUDA)
  cuda = false;
#endif
  std::string deviceName = std::string("cpu (") + std::to_string(info.cpu_threads) + " threads, " + info.cpu_isa + ")";
  if (cuda) {
    napo_device_properties props{};
    check(napo_cuda_device_properties(0, &props), "device properties");
    deviceName = props.name;
  }
  Device device(cuda);
  Bench bench(device, options.quick);
  // The shape of the targets on a GPU (N = 8,192, V = 151,936, bf16: 2.5 GB of logits);
  // a slice of it on the CPU.
  const int64_t rows = cuda ? (options.quick ? 1024 : 8192) : (options.quick ? 16 : 64);
  const int64_t vocab = 151936;
  const double copy = device.copyBandwidth(cuda ? size_t(1) << 30 : size_t(256) << 20);
  std::fprintf(stderr, "%s: copy bandwidth %.1f GB/s\n", deviceName.c_str(), copy);
  bench.logitsOps(NAPO_BFLOAT16, rows, vocab);
  bench.logitsOps(NAPO_FLOAT32, rows / 2, vocab);
  bench.logitsOps(NAPO_BFLOAT16, rows, 32000);
  bench.smallOps(cuda ? 1024 : 256, cuda ? 4096 : 1024, 16);

  std::string json = "{\n  \"device\": \"" + jsonEscape(deviceName) + "\",\n  \"backend\": \"" +
                     (cuda ? "cuda" : "cpu") + "\",\n  \"copyBandwidthGBps\": " + std::to_string(copy) +
                     ",\n  \"ops\": [\n";
  const auto& results = bench.results();
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const double gbps = r.bytes / (r.ms * 1e6);
    json += "    {\"op\": \"" + jsonEscape(r.op) + "\", \"shape\": \"" + r.shape + "\", \"dtype\": \"" + r.dtype +
            "\", \"ms\": " + std::to_string(r.ms) + ", \"GBps\": " + std::to_string(gbps) +
            ", \"fractionOfCopyBandwidth\": " + std::to_string(gbps / copy) + "}" +
            (i + 1 < results.size() ? ",\n" : "\n");
  }
  json += "  ]\n}\n";
  if (options.out.empty()) {
    std::fputs(json.c_str(), stdout);
  } else {
    FILE* file = std::fopen(options.out.c_str(), "w");
    if (!file) {
      std::fprintf(stderr, "kernel bench: cannot write %s\n", options.out.c_str());
      return 1;
    }
    std::fputs(json.c_str(), file);
    std::fclose(file);
  }
  return 0;
}
