// The model's kernels on a GPU, written once over a Platform: the launch functions of
// src/cuda/<layer>.cuh, a GEMM (cuBLAS where the build has it, else napo's tiled gemm.cuh) and the
// fused LM head (linear_logprobs.cuh).
// layer_kernels.cu runs it on a CUDA device (launches and copies on the device's stream); the
// emulation harness runs the same code on the host, so every argument this file builds is checked
// against the CPU backend without a GPU. A Platform provides:
//   napo_device device() const                                the memory the model allocates on
//   launcher()                                                 launch(kernel, grid, block, args...)
//   matmul(GemmArgs<float, float>)                             cuBLAS, or gemm.cuh's kernel
//   upload / download (napo_status), copy / zero (bytes)       download waits for earlier work
//   linearLogprobs(LinearCall, ...), linearLogprobsBackward(LinearCall, ...)
// Launch failures surface at the next download() or sumSquares(), which wait for the work.
#pragma once

#include <utility>
#include <vector>

#include "../core/allocator.h"
#include "../core/error.h"
#include "../model/layer_kernels.h"
#include "adamw.cuh"
#include "attention.cuh"
#include "bias.cuh"
#include "embedding.cuh"
#include "gelu.cuh"
#include "gemm.cuh"
#include "layer_norm.cuh"
#include "rms_norm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

namespace napo::cuda {

static_assert(kAttentionMaxHeadDim == model::kCudaMaxHeadDim, "the model checks the attention kernel's limit");

// One fused LM-head call: hidden [n, width] and weight [vocab, width], float32 on the device.
struct LinearCall {
  const float* hidden;
  const float* weight;
  int64_t n, vocab, width;
  const int32_t* tokens;
  float temperature;
  int64_t chunk;
};

// Scratch from the device's caching allocator, returned when it goes out of scope.
class Scratch {
 public:
  explicit Scratch(napo_device device) : device_(device) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    CachingAllocator* allocator;
    if (data_ && allocatorFor(device_, &allocator) == NAPO_OK) allocator->release(data_);
  }
  napo_status allocate(size_t bytes) {
    CachingAllocator* allocator;
    NAPO_TRY(allocatorFor(device_, &allocator));
    return allocator->allocate(bytes, NAPO_MEMORY_WORKSPACE, &data_);
  }
  void* data() const { return data_; }

 private:
  napo_device device_;
  void* data_ = nullptr;
};

template <typename Platform>
class LayerKernelsOn final : public model::LayerKernels {
 public:
  explicit LayerKernelsOn(Platform platform) : platform_(std::move(platform)) {}

  napo_device device() const override { return platform_.device(); }

  napo_status upload(void* dst, const void* src, size_t bytes) override { return platform_.upload(dst, src, bytes); }
  napo_status download(void* dst, const void* src, size_t bytes) override { return platform_.download(dst, src, bytes); }
  void copy(float* dst, const float* src, int64_t count) override {
    if (count > 0) platform_.copy(dst, src, sizeof(float) * size_t(count));
  }
  void zero(float* dst, int64_t count) override {
    if (count > 0) platform_.zero(dst, sizeof(float) * size_t(count));
  }

  void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    platform_.matmul(GemmArgs<float, float>{a, b, c, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta});
  }
  void addBias(int64_t m, int64_t n, const float* bias, float* y, int64_t ldy) override {
    launchAddBias(platform_.launcher(), BiasArgs{m, n, bias, y, nullptr, nullptr, ldy});
  }
  void biasBackward(int64_t m, int64_t n, const float* dy, int64_t ldy, float* dbias) override {
    launchBiasBackward(platform_.launcher(), BiasArgs{m, n, nullptr, nullptr, dy, dbias, ldy});
  }
  void layerNormForward(int64_t m, int64_t d, const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd) override {
    launchLayerNormForward(platform_.launcher(), LayerNormArgs{m, d, x, w, b, eps, y, mean, rstd, nullptr, nullptr, nullptr,
                                                            nullptr, false});
  }
  void layerNormBackward(int64_t m, int64_t d, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dw, float* db, bool accumulate) override {
    launchLayerNormBackward(platform_.launcher(), LayerNormArgs{m, d, x, w, nullptr, 0.0f, nullptr, const_cast<float*>(mean),
                                                             const_cast<float*>(rstd), dy, dx, dw, db, accumulate});
  }
  void rmsNormForward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w, float eps,
                      float* y, int64_t yStride, float* rstd) override {
    launchRmsNormForward(platform_.launcher(), RmsNormArgs{rows, groups, d, x, xStride, w, eps, y, yStride, rstd, nullptr, 0,
                                                        nullptr, 0, nullptr, false});
  }
  void rmsNormBackward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                       const float* rstd, const float* dy, int64_t dyStride, float* dx, int64_t dxStride, float* dw,
                       bool accumulate) override {
    launchRmsNormBackward(platform_.launcher(), RmsNormArgs{rows, groups, d, x, xStride, w, 0.0f, nullptr, 0,
                                                         const_cast<float*>(rstd), dy, dyStride, dx, dxStride, dw,
                                                         accumulate});
  }
  void ropeRotate(int64_t rows, int64_t heads, int64_t headDim, float* x, int64_t stride, const int32_t* positions,
                  const float* cosTable, const float* sinTable, bool inverse) override {
    launchRopeRotate(platform_.launcher(), RopeArgs{rows, heads, headDim, x, stride, positions, cosTable, sinTable, inverse});
  }
  void geluForward(int64_t n, const float* x, float* y) override {
    launchGeluForward(platform_.launcher(), GeluArgs{n, x, nullptr, y});
  }
  void geluBackward(int64_t n, const float* x, const float* dy, float* dx) override {
    launchGeluBackward(platform_.launcher(), GeluArgs{n, x, dy, dx});
  }
  void swigluForward(int64_t n, const float* gate, const float* up, float* out) override {
    launchSwigluForward(platform_.launcher(), SwigluArgs{n, gate, up, nullptr, out, nullptr, nullptr});
  }
  void swigluBackward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate, float* dup) override {
    launchSwigluBackward(platform_.launcher(), SwigluArgs{n, gate, up, dout, nullptr, dgate, dup});
  }
  void embeddingForward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* wte,
                        const float* wpe, float* x) override {
    launchEmbeddingForward(platform_.launcher(), EmbeddingArgs{rows, d, tokens, positions, wte, wpe, x, nullptr, nullptr, nullptr});
  }
  void embeddingBackward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* dx,
                         float* dwte, float* dwpe) override {
    launchEmbeddingBackward(platform_.launcher(), EmbeddingArgs{rows, d, tokens, positions, nullptr, nullptr, nullptr, dx, dwte, dwpe});
  }
  void attentionForward(const model::AttentionShape& s, const int32_t* start, const int32_t* count, const float* q,
                        int64_t qStride, const float* k, const float* v, const model::KvLayout& kv, float* out,
                        int64_t outStride, float* lse) override {
    launchAttentionForward(platform_.launcher(), AttentionArgs{s.batch, s.queries, s.heads, s.kvHeads, s.headDim, start, count, q,
                                                            qStride, k, v, kv.batchStride, kv.positionStride, out, outStride,
                                                            lse, nullptr, nullptr, nullptr, nullptr});
  }
  void attentionBackward(const model::AttentionShape& s, const int32_t* count, const float* q, int64_t qStride,
                         const float* k, const float* v, const model::KvLayout& kv, const float* out, int64_t outStride,
                         const float* dout, const float* lse, float* dq, float* dk, float* dv) override {
    launchAttentionBackward(platform_.launcher(), AttentionArgs{s.batch, s.queries, s.heads, s.kvHeads, s.headDim, nullptr, count,
                                                             q, qStride, k, v, kv.batchStride, kv.positionStride,
                                                             const_cast<float*>(out), outStride, const_cast<float*>(lse),
                                                             dout, dq, dk, dv});
  }
  void kvCacheWrite(const model::AttentionShape& s, const int32_t* start, const int32_t* count, const float* k,
                    const float* v, int64_t stride, float* cacheK, float* cacheV, const model::KvLayout& cache) override {
    launchKvCacheWrite(platform_.launcher(), KvCacheWriteArgs{s.batch, s.queries, s.kvHeads, s.headDim, start, count, k, v, stride,
                                                           cacheK, cacheV, cache.batchStride, cache.positionStride});
  }
  napo_status adamwStep(float* params, float* grads, float* m, float* v, const model::AdamWRange* ranges, int64_t count,
                        int64_t step, float lr, float beta1, float beta2, float eps, float weightDecay,
                        float gradScale) override {
    std::vector<AdamWSpan> spans;
    int64_t largest = 0;
    for (int64_t r = 0; r < count; ++r) {
      spans.push_back({ranges[r].offset, ranges[r].size, ranges[r].decay});
      largest = ranges[r].size > largest ? ranges[r].size : largest;
    }
    // The spans' device copy lives as long as the model, re-uploaded each step (a few KiB; an upload
    // from pageable memory has read it by the time it returns).
    if (spans_.data() == nullptr) NAPO_TRY(spans_.allocate(sizeof(AdamWSpan) * spans.size()));
    NAPO_TRY(upload(spans_.data(), spans.data(), sizeof(AdamWSpan) * spans.size()));
    AdamWArgs args{params, grads, m, v, static_cast<const AdamWSpan*>(spans_.data()), count, lr, beta1, beta2, eps,
                   weightDecay, gradScale, 0.0f, 0.0f};
    adamwCorrections(args, step);
    launchAdamWStep(platform_.launcher(), args, largest);
    return NAPO_OK;
  }
  napo_status sumSquares(int64_t n, const float* x, double* total) override {
    const int64_t blocks = sumSquaresBlocks(n);
    Scratch partials(device());
    NAPO_TRY(partials.allocate(sizeof(double) * size_t(blocks > 0 ? blocks : 1)));
    launchSumSquares(platform_.launcher(), SumSquaresArgs{n, x, static_cast<double*>(partials.data())});
    return download(total, partials.data(), sizeof(double));
  }
  int64_t linearTileFloats(int64_t, int64_t) const override { return 0; }
  napo_status linearLogprobs(const float* hidden, const float* weight, int64_t n, int64_t vocab, int64_t width,
                             const int32_t* tokens, float temperature, int64_t chunk, float*, float* logprobs,
                             float* entropy, float* lse) override {
    return platform_.linearLogprobs(LinearCall{hidden, weight, n, vocab, width, tokens, temperature, chunk}, logprobs,
                                    entropy, lse);
  }
  napo_status linearLogprobsBackward(const float* hidden, const float* weight, int64_t n, int64_t vocab, int64_t width,
                                     const int32_t* tokens, const float* lse, const float* entropy,
                                     const float* gradLogprobs, const float* gradEntropy, float temperature, int64_t chunk,
                                     float*, float* gradHidden, float* gradWeight) override {
    return platform_.linearLogprobsBackward(LinearCall{hidden, weight, n, vocab, width, tokens, temperature, chunk}, lse,
                                            entropy, gradLogprobs, gradEntropy, gradHidden, gradWeight);
  }

 private:
  Platform platform_;
  Scratch spans_{platform_.device()};
};

}  // namespace napo::cuda
