// A model's kernels on a CUDA device: layer_kernels.cuh with launches and copies on the device's
// stream, matrix products through cuBLAS where the build found it (float32, no TF32: the CPU's
// results to rounding) or napo's own gemm.cuh, and linear_logprobs.cu for the fused LM head.
#include <cuda_runtime.h>
#if defined(NAPO_WITH_CUBLAS)
#include <cublas_v2.h>

#include <array>
#endif

#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "device_call.h"
#include "layer_kernels.cuh"
#include "stream.h"

namespace napo::cuda {

namespace {

class CudaPlatform {
 public:
  explicit CudaPlatform(napo_device device) : device_(device), stream_(deviceStream(device.index)) {}

  napo_device device() const { return device_; }
  // Every call selects the device first: model calls run on whichever worker thread takes them,
  // and the current device is per thread.
  auto launcher() const {
    select();
    return launchOn(stream_);
  }

#if defined(NAPO_WITH_CUBLAS)
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the operands swap.
  void matmul(const GemmArgs<float, float>& g) const {
    if (g.m <= 0 || g.n <= 0) return;
    cublasHandle_t handle = blasHandle();
    if (!handle) return launchGemm(launcher(), g);
    cublasSetStream(handle, stream_);
    cublasSgemm(handle, g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, g.transA ? CUBLAS_OP_T : CUBLAS_OP_N, int(g.n), int(g.m),
                int(g.k), &g.alpha, g.b, int(g.ldb), g.a, int(g.lda), &g.beta, g.c, int(g.ldc));
  }
#else
  void matmul(const GemmArgs<float, float>& g) const { launchGemm(launcher(), g); }
#endif

  napo_status upload(void* dst, const void* src, size_t bytes) const {
    if (bytes == 0) return NAPO_OK;
    select();
    // From pageable memory the copy has read the source when it returns: callers may free it.
    return check("model upload", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  napo_status download(void* dst, const void* src, size_t bytes) const {
    select();
    NAPO_TRY(check("model kernels", cudaGetLastError()));
    if (bytes) NAPO_TRY(check("model download", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_)));
    return check("model kernels", cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) const {
    select();
    cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_);
  }
  void zero(void* dst, size_t bytes) const {
    select();
    cudaMemsetAsync(dst, 0, bytes, stream_);
  }

  napo_status linearLogprobs(const LinearCall& c, float* logprobs, float* entropy, float* lse) const {
    const Views v = views(c);
    napo_tensor lp = rows(c, logprobs), ent = rows(c, entropy), l = rows(c, lse);
    return cuda::linearLogprobs(v.hidden, v.weight, v.tokens, v.options, lp, entropy ? &ent : nullptr, l, stream_);
  }
  napo_status linearLogprobsBackward(const LinearCall& c, const float* lse, const float* entropy, const float* gradLogprobs,
                                     const float* gradEntropy, float* gradHidden, float* gradWeight) const {
    const Views v = views(c);
    const napo_tensor l = rows(c, lse), ent = rows(c, entropy), glp = rows(c, gradLogprobs), gent = rows(c, gradEntropy);
    napo_tensor gh = tensorView(gradHidden, NAPO_FLOAT32, {c.n, c.width}, device_);
    napo_tensor gw = tensorView(gradWeight, NAPO_FLOAT32, {c.vocab, c.width}, device_);
    return cuda::linearLogprobsBackward(v.hidden, v.weight, v.tokens, l, entropy ? &ent : nullptr, glp,
                                        gradEntropy ? &gent : nullptr, v.options, true, gh, gw, stream_);
  }

 private:
  struct Views {
    napo_tensor hidden, weight, tokens;
    napo_linear_logprobs_options options;
  };
  Views views(const LinearCall& c) const {
    return {tensorView(const_cast<float*>(c.hidden), NAPO_FLOAT32, {c.n, c.width}, device_),
            tensorView(const_cast<float*>(c.weight), NAPO_FLOAT32, {c.vocab, c.width}, device_),
            tensorView(const_cast<int32_t*>(c.tokens), NAPO_INT32, {c.n}, device_), {c.temperature, c.chunk}};
  }
  napo_tensor rows(const LinearCall& c, const float* data) const {
    return tensorView(const_cast<float*>(data), NAPO_FLOAT32, {c.n}, device_);
  }
  void select() const { cudaSetDevice(device_.index); }
#if defined(NAPO_WITH_CUBLAS)
  // One handle per device and host thread (a handle is not for concurrent use); null when cuBLAS
  // cannot start, and napo's own GEMM runs instead.
  cublasHandle_t blasHandle() const {
    thread_local std::array<cublasHandle_t, 16> handles{};
    thread_local std::array<bool, 16> tried{};
    const size_t slot = size_t(device_.index) % handles.size();
    select();
    if (!tried[slot]) {
      tried[slot] = true;
      if (cublasCreate(&handles[slot]) != CUBLAS_STATUS_SUCCESS) handles[slot] = nullptr;
    }
    return handles[slot];
  }
#endif
  static napo_status check(const char* what, cudaError_t status) {
    return status == cudaSuccess ? NAPO_OK : cudaFailure(what, status);
  }

  napo_device device_;
  cudaStream_t stream_;
};

}  // namespace

std::unique_ptr<model::LayerKernels> modelLayerKernels(napo_device device) {
  return std::make_unique<LayerKernelsOn<CudaPlatform>>(CudaPlatform(device));
}

}  // namespace napo::cuda
