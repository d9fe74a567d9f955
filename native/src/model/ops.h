// TinyGPT's layer ops. Each dispatches on the device: the CPU kernels live beside the dispatch in
// this directory; the CUDA slot returns NAPO_ERR_UNAVAILABLE with a message until its kernels
// exist (native/src/cuda/model_*.cu will slot in behind the same signatures).
// All pointers are device memory of `device`; shapes are row-major and contiguous unless a
// leading dimension is given.
#pragma once

#include <cstdint>

#include "napo/napo.h"

namespace napo::model {

napo_status cudaModelUnavailable(const char* op);

// C[M,N] = alpha * op(A) op(B) + beta * C. transA: A stored [K, M]; transB: B stored [N, K].
napo_status matmul(napo_device device, bool transA, bool transB, int64_t m, int64_t n, int64_t k,
                   float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                   float beta, float* c, int64_t ldc);
// y[M,N] += bias[N] for every row.
napo_status addBias(napo_device device, int64_t m, int64_t n, const float* bias, float* y);
// dbias[N] += sum over rows of dy[M,N].
napo_status biasBackward(napo_device device, int64_t m, int64_t n, const float* dy, float* dbias);

// y = (x - mean) * rstd * w + b per row of D; mean and rstd [M] kept for the backward.
napo_status layerNormForward(napo_device device, int64_t m, int64_t d, const float* x,
                             const float* w, const float* b, float* y, float* mean, float* rstd);
// dx (+)= ..., dw += ..., db += ... ; dx is accumulated when accumulate is true.
napo_status layerNormBackward(napo_device device, int64_t m, int64_t d, const float* x,
                              const float* w, const float* mean, const float* rstd, const float* dy,
                              float* dx, float* dw, float* db, bool accumulate);

// GELU, tanh approximation (GPT-2's gelu_new).
napo_status geluForward(napo_device device, int64_t n, const float* x, float* y);
// dx = dy * gelu'(x).
napo_status geluBackward(napo_device device, int64_t n, const float* x, const float* dy, float* dx);

// x[b,t,:] = wte[tokens[b,t]] + wpe[t] for t < lengths[b]; 0 past it.
napo_status embeddingForward(napo_device device, int64_t batch, int64_t time, int64_t d,
                             const int32_t* tokens, const int32_t* lengths, const float* wte,
                             const float* wpe, float* x);
napo_status embeddingBackward(napo_device device, int64_t batch, int64_t time, int64_t d,
                              const int32_t* tokens, const int32_t* lengths, const float* dx,
                              float* dwte, float* dwpe);

// Causal attention over qkv [B*T, 3D] (q | k | v, heads of D/H contiguous in each) -> out
// [B*T, D]; probs [B, H, T, T] kept for the backward. Rows at t >= lengths[b] are 0.
napo_status attentionForward(napo_device device, int64_t batch, int64_t time, int64_t d,
                             int64_t heads, const int32_t* lengths, const float* qkv, float* probs,
                             float* out);
napo_status attentionBackward(napo_device device, int64_t batch, int64_t time, int64_t d,
                              int64_t heads, const int32_t* lengths, const float* qkv,
                              const float* probs, const float* dout, float* dqkv);
// One new query per row against the KV cache: q [B, D] (rows of qkv [B, 3D]); kcache, vcache
// [B, H, C, D/H]; row b attends over positions [0, positions[b]] (inclusive; its own k, v already
// written). Rows with positions[b] < 0 are skipped.
napo_status attentionDecode(napo_device device, int64_t batch, int64_t d, int64_t heads,
                            int64_t capacity, const float* qkv, const float* kcache,
                            const float* vcache, const int32_t* positions, float* out);

// AdamW over `count` parameter ranges of one flat buffer; see napo_adamw_options.
struct AdamWRange {
  int64_t offset, size;
  bool decay;
};
napo_status adamwStep(napo_device device, float* params, float* grads, float* m, float* v,
                      const AdamWRange* ranges, int64_t count, int64_t step, float lr, float beta1,
                      float beta2, float eps, float weightDecay, float gradScale);
// Sum of squares of x[0, n), in double.
napo_status sumSquares(napo_device device, int64_t n, const float* x, double* out);

}  // namespace napo::model
