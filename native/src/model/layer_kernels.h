// The kernels a model runs, on the device its memory lives on: the CPU backend's layer kernels
// (cpu_layer_kernels.cpp), the CUDA launchers (src/cuda/layer_kernels.cu), or the CUDA kernel
// bodies on the host under the emulation harness (native/tests). The model core writes each pass
// once against this interface; every pointer is memory of device(), except where a parameter says
// host. Arguments were validated by the C ABI; kernels enqueue work and report failures through
// the status of the next download() or sumSquares(), where a GPU would surface them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cpu/backend.h"
#include "napo/napo.h"

namespace napo::model {

using cpu::AdamWRange;
using cpu::AttentionShape;
using cpu::KvLayout;

// The largest head the CUDA attention kernel holds (attention.cuh's kAttentionMaxHeadDim).
constexpr int kCudaMaxHeadDim = 128;

class LayerKernels {
 public:
  virtual ~LayerKernels() = default;
  virtual napo_device device() const = 0;

  // ---- memory ----
  virtual napo_status upload(void* dst, const void* hostSrc, size_t bytes) = 0;
  // Waits for the work enqueued so far; its status is that work's.
  virtual napo_status download(void* hostDst, const void* src, size_t bytes) = 0;
  virtual void copy(float* dst, const float* src, int64_t count) = 0;
  virtual void zero(float* dst, int64_t count) = 0;

  // ---- the layers: the CPU backend's semantics (src/cpu/backend.h) ----
  virtual void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float beta, float* c, int64_t ldc) = 0;
  virtual void addBias(int64_t m, int64_t n, const float* bias, float* y, int64_t ldy) = 0;
  virtual void biasBackward(int64_t m, int64_t n, const float* dy, int64_t ldy, float* dbias) = 0;
  virtual void layerNormForward(int64_t m, int64_t d, const float* x, const float* w, const float* b, float eps, float* y,
                                float* mean, float* rstd) = 0;
  virtual void layerNormBackward(int64_t m, int64_t d, const float* x, const float* w, const float* mean, const float* rstd,
                                 const float* dy, float* dx, float* dw, float* db, bool accumulate) = 0;
  virtual void rmsNormForward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                              float eps, float* y, int64_t yStride, float* rstd) = 0;
  virtual void rmsNormBackward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                               const float* rstd, const float* dy, int64_t dyStride, float* dx, int64_t dxStride, float* dw,
                               bool accumulate) = 0;
  virtual void ropeRotate(int64_t rows, int64_t heads, int64_t headDim, float* x, int64_t stride, const int32_t* positions,
                          const float* cosTable, const float* sinTable, bool inverse) = 0;
  virtual void geluForward(int64_t n, const float* x, float* y) = 0;
  virtual void geluBackward(int64_t n, const float* x, const float* dy, float* dx) = 0;
  virtual void swigluForward(int64_t n, const float* gate, const float* up, float* out) = 0;
  virtual void swigluBackward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate, float* dup) = 0;
  virtual void embeddingForward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* wte,
                                const float* wpe, float* x) = 0;
  virtual void embeddingBackward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* dx,
                                 float* dwte, float* dwpe) = 0;
  virtual void attentionForward(const AttentionShape& shape, const int32_t* start, const int32_t* count, const float* q,
                                int64_t qStride, const float* k, const float* v, const KvLayout& kv, float* out,
                                int64_t outStride, float* lse) = 0;
  virtual void attentionBackward(const AttentionShape& shape, const int32_t* count, const float* q, int64_t qStride,
                                 const float* k, const float* v, const KvLayout& kv, const float* out, int64_t outStride,
                                 const float* dout, const float* lse, float* dq, float* dk, float* dv) = 0;
  virtual void kvCacheWrite(const AttentionShape& shape, const int32_t* start, const int32_t* count, const float* k,
                            const float* v, int64_t stride, float* cacheK, float* cacheV, const KvLayout& cache) = 0;
  // ranges: host memory.
  virtual napo_status adamwStep(float* params, float* grads, float* m, float* v, const AdamWRange* ranges, int64_t count,
                         int64_t step, float lr, float beta1, float beta2, float eps, float weightDecay,
                         float gradScale) = 0;
  // Waits for the work enqueued so far.
  virtual napo_status sumSquares(int64_t n, const float* x, double* total) = 0;

  // ---- the fused LM head (linearLogprobs): hidden [n, width], weight [vocab, width] ----
  // The workspace the model allocates for a call over n rows, in floats: the CPU's tile; 0 on a
  // GPU, whose op takes its own scratch (n * (chunk + 4) floats, WORKSPACE) for the call's length.
  virtual int64_t linearTileFloats(int64_t n, int64_t chunk) const = 0;
  // tile: linearTileFloats(n, chunk) floats.
  virtual napo_status linearLogprobs(const float* hidden, const float* weight, int64_t n, int64_t vocab, int64_t width,
                                     const int32_t* tokens, float temperature, int64_t chunk, float* tile, float* logprobs,
                                     float* entropy, float* lse) = 0;
  virtual napo_status linearLogprobsBackward(const float* hidden, const float* weight, int64_t n, int64_t vocab,
                                             int64_t width, const int32_t* tokens, const float* lse, const float* entropy,
                                             const float* gradLogprobs, const float* gradEntropy, float temperature,
                                             int64_t chunk, float* tile, float* gradHidden, float* gradWeight) = 0;
};

// The kernels of `device`: the CPU backend, or the CUDA launchers (null, with the reason as the
// last error, in a build without CUDA).
std::unique_ptr<LayerKernels> layerKernelsFor(napo_device device);
std::unique_ptr<LayerKernels> cpuLayerKernels();

}  // namespace napo::model

namespace napo::cuda {
// src/cuda/layer_kernels.cu, or core/cuda_absent.cpp.
std::unique_ptr<model::LayerKernels> modelLayerKernels(napo_device device);
}  // namespace napo::cuda
