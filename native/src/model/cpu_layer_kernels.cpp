// A model's kernels on the host: the CPU backend's copy for this machine's instruction set.
#include <cstring>

#include "layer_kernels.h"

namespace napo::model {

namespace {

napo_tensor hostMatrix(const float* data, int64_t rows, int64_t cols) {
  napo_tensor t{};
  t.data = const_cast<float*>(data);
  t.dtype = NAPO_FLOAT32;
  t.ndim = 2;
  t.shape[0] = rows;
  t.shape[1] = cols;
  t.device = {NAPO_CPU, 0};
  return t;
}

class CpuLayerKernels final : public LayerKernels {
 public:
  napo_device device() const override { return {NAPO_CPU, 0}; }

  napo_status upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
    return NAPO_OK;
  }
  napo_status download(void* dst, const void* src, size_t bytes) override { return upload(dst, src, bytes); }
  void copy(float* dst, const float* src, int64_t count) override {
    if (count > 0) std::memcpy(dst, src, sizeof(float) * size_t(count));
  }
  void zero(float* dst, int64_t count) override {
    if (count > 0) std::memset(dst, 0, sizeof(float) * size_t(count));
  }

  void matmul(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    cpu_.matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void addBias(int64_t m, int64_t n, const float* bias, float* y, int64_t ldy) override { cpu_.addBias(m, n, bias, y, ldy); }
  void biasBackward(int64_t m, int64_t n, const float* dy, int64_t ldy, float* dbias) override {
    cpu_.biasBackward(m, n, dy, ldy, dbias);
  }
  void layerNormForward(int64_t m, int64_t d, const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd) override {
    cpu_.layerNormForward(m, d, x, w, b, eps, y, mean, rstd);
  }
  void layerNormBackward(int64_t m, int64_t d, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dw, float* db, bool accumulate) override {
    cpu_.layerNormBackward(m, d, x, w, mean, rstd, dy, dx, dw, db, accumulate);
  }
  void rmsNormForward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w, float eps,
                      float* y, int64_t yStride, float* rstd) override {
    cpu_.rmsNormForward(rows, groups, d, x, xStride, w, eps, y, yStride, rstd);
  }
  void rmsNormBackward(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride, const float* w,
                       const float* rstd, const float* dy, int64_t dyStride, float* dx, int64_t dxStride, float* dw,
                       bool accumulate) override {
    cpu_.rmsNormBackward(rows, groups, d, x, xStride, w, rstd, dy, dyStride, dx, dxStride, dw, accumulate);
  }
  void ropeRotate(int64_t rows, int64_t heads, int64_t headDim, float* x, int64_t stride, const int32_t* positions,
                  const float* cosTable, const float* sinTable, bool inverse) override {
    cpu_.ropeRotate(rows, heads, headDim, x, stride, positions, cosTable, sinTable, inverse);
  }
  void geluForward(int64_t n, const float* x, float* y) override { cpu_.geluForward(n, x, y); }
  void geluBackward(int64_t n, const float* x, const float* dy, float* dx) override { cpu_.geluBackward(n, x, dy, dx); }
  void swigluForward(int64_t n, const float* gate, const float* up, float* out) override { cpu_.swigluForward(n, gate, up, out); }
  void swigluBackward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate, float* dup) override {
    cpu_.swigluBackward(n, gate, up, dout, dgate, dup);
  }
  void embeddingForward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* wte,
                        const float* wpe, float* x) override {
    cpu_.embeddingForward(rows, d, tokens, positions, wte, wpe, x);
  }
  void embeddingBackward(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions, const float* dx,
                         float* dwte, float* dwpe) override {
    cpu_.embeddingBackward(rows, d, tokens, positions, dx, dwte, dwpe);
  }
  void attentionForward(const AttentionShape& shape, const int32_t* start, const int32_t* count, const float* q,
                        int64_t qStride, const float* k, const float* v, const KvLayout& kv, float* out, int64_t outStride,
                        float* lse) override {
    cpu_.attentionForward(shape, start, count, q, qStride, k, v, kv, out, outStride, lse);
  }
  void attentionBackward(const AttentionShape& shape, const int32_t* count, const float* q, int64_t qStride, const float* k,
                         const float* v, const KvLayout& kv, const float* out, int64_t outStride, const float* dout,
                         const float* lse, float* dq, float* dk, float* dv) override {
    cpu_.attentionBackward(shape, count, q, qStride, k, v, kv, out, outStride, dout, lse, dq, dk, dv);
  }
  void kvCacheWrite(const AttentionShape& shape, const int32_t* start, const int32_t* count, const float* k, const float* v,
                    int64_t stride, float* cacheK, float* cacheV, const KvLayout& cache) override {
    cpu_.kvCacheWrite(shape, start, count, k, v, stride, cacheK, cacheV, cache);
  }
  napo_status adamwStep(float* params, float* grads, float* m, float* v, const AdamWRange* ranges, int64_t count,
                        int64_t step, float lr, float beta1, float beta2, float eps, float weightDecay,
                        float gradScale) override {
    cpu_.adamwStep(params, grads, m, v, ranges, count, step, lr, beta1, beta2, eps, weightDecay, gradScale);
    return NAPO_OK;
  }
  napo_status sumSquares(int64_t n, const float* x, double* total) override {
    *total = cpu_.sumSquares(n, x);
    return NAPO_OK;
  }
  int64_t linearTileFloats(int64_t n, int64_t chunk) const override { return n * (chunk + cpu::kLinearTilePad); }
  napo_status linearLogprobs(const float* hidden, const float* weight, int64_t n, int64_t vocab, int64_t width,
                             const int32_t* tokens, float temperature, int64_t chunk, float* tile, float* logprobs,
                             float* entropy, float* lse) override {
    return cpu_.linearLogprobs(hostMatrix(hidden, n, width), hostMatrix(weight, vocab, width), tokens, temperature, chunk,
                               tile, logprobs, entropy, lse);
  }
  napo_status linearLogprobsBackward(const float* hidden, const float* weight, int64_t n, int64_t vocab, int64_t width,
                                     const int32_t* tokens, const float* lse, const float* entropy,
                                     const float* gradLogprobs, const float* gradEntropy, float temperature, int64_t chunk,
                                     float* tile, float* gradHidden, float* gradWeight) override {
    return cpu_.linearLogprobsBackward(hostMatrix(hidden, n, width), hostMatrix(weight, vocab, width), tokens, lse, entropy,
                                       gradLogprobs, gradEntropy, temperature, chunk, true, tile, gradHidden, gradWeight);
  }

 private:
  const cpu::CpuBackend& cpu_ = cpuBackend();
};

}  // namespace

std::unique_ptr<LayerKernels> cpuLayerKernels() { return std::make_unique<CpuLayerKernels>(); }

std::unique_ptr<LayerKernels> layerKernelsFor(napo_device device) {
  if (device.kind == NAPO_CUDA) return cuda::modelLayerKernels(device);
  return cpuLayerKernels();
}

}  // namespace napo::model
