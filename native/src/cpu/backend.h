// The CPU backend as the rest of napo calls it: one table of kernels per instruction set. Every
// file in src/cpu/ is compiled once per instruction set (CMake: napo_cpu_avx512, napo_cpu_avx2,
// napo_cpu_generic on x86-64; one generic copy elsewhere) and cpuBackend() picks the best copy
// this machine runs, once per process (NAPO_CPU_ISA may ask for a lower one). The kernels only
// compute: their arguments were validated by the C ABI (src/core/) before any is called.
//
// A new CPU kernel: declare its type here, add a field to CpuBackend, declare it in kernels.h,
// define it in its own src/cpu/<name>.cpp and list it in backend_table.cpp.
#pragma once

#include <cstdint>

#include "napo/napo.h"

namespace napo::cpu {

// ---- the RL ops (src/cpu/<op>.cpp; semantics in docs/ops.md) ------------------------------------
using SampleKernel = napo_status(const napo_tensor& logits, const napo_sample_options& options, int32_t* tokens,
                                 float* logprobs);
using TokenLogprobsKernel = napo_status(const napo_tensor& logits, const int32_t* tokens, float temperature,
                                        float* logprobs, float* entropy, float* lse);
using TokenLogprobsBackwardKernel = napo_status(const napo_tensor& logits, const int32_t* tokens, const float* lse,
                                                const float* entropy, const float* gradLogprobs,
                                                const float* gradEntropy, float temperature,
                                                napo_tensor& gradLogits);
using GroupAdvantagesKernel = void(const float* rewards, int64_t count, const napo_advantage_options& options,
                                   float* advantages);
using PolicyLossKernel = void(const float* logprobs, const float* oldLogprobs, const float* refLogprobs,
                              const float* advantages, const napo_tensor& mask, int64_t sequences, int64_t steps,
                              const napo_policy_loss_options& options, float* gradLogprobs,
                              napo_policy_loss_stats* stats);

// linearLogprobs (src/cpu/linear_logprobs.cpp): hidden [N, H] and weight [V, H] of one dtype;
// `tile` is a workspace of N * (chunk + kLinearTilePad) floats (the caller allocates it, so
// memoryStats counts it): rows padded so that a power-of-two chunk does not put every row of the
// GEMM's 8-row micro-tile in the same cache sets.
constexpr int64_t kLinearTilePad = 16;
// The backward needs the forward's entropy when gradEntropy is given.
using LinearLogprobsKernel = napo_status(const napo_tensor& hidden, const napo_tensor& weight, const int32_t* tokens,
                                         float temperature, int64_t chunk, float* tile, float* logprobs,
                                         float* entropy, float* lse);
using LinearLogprobsBackwardKernel = napo_status(const napo_tensor& hidden, const napo_tensor& weight,
                                                 const int32_t* tokens, const float* lse, const float* entropy,
                                                 const float* gradLogprobs, const float* gradEntropy,
                                                 float temperature, int64_t chunk, bool accumulate, float* tile,
                                                 float* gradHidden, float* gradWeight);

// ---- model layers (row-major float32 host memory) ---------------------------------------------
// C[M,N] = alpha * op(A) op(B) + beta * C. transA: A stored [K, M]; transB: B stored [N, K].
using MatmulKernel = void(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// One GEMM operand: row-major float32 or bfloat16, `transposed` when op(X) = X^T (then stored
// [K, M] for A, [N, K] for B), leading dimension `ld`.
struct GemmOperand {
  const void* data;
  napo_dtype dtype;
  bool transposed;
  int64_t ld;
};
// C[M,N] = alpha * op(A) op(B) + beta * C, float32 accumulation: the building block of the model
// layers and of linearLogprobs. (MatmulKernel is its float32-only form.)
using GemmKernel = void(const GemmOperand& a, const GemmOperand& b, int64_t m, int64_t n, int64_t k, float alpha,
                        float beta, float* c, int64_t ldc);
// y[M,N] += bias[N] for every row.
using AddBiasKernel = void(int64_t m, int64_t n, const float* bias, float* y);
// dbias[N] += sum over rows of dy[M,N].
using BiasBackwardKernel = void(int64_t m, int64_t n, const float* dy, float* dbias);
// y = (x - mean) * rstd * w + b per row of D; mean and rstd [M] kept for the backward.
using LayerNormForwardKernel = void(int64_t m, int64_t d, const float* x, const float* w, const float* b, float* y,
                                    float* mean, float* rstd);
// dx (+)= ..., dw += ..., db += ...; dx is accumulated when accumulate is true.
using LayerNormBackwardKernel = void(int64_t m, int64_t d, const float* x, const float* w, const float* mean,
                                     const float* rstd, const float* dy, float* dx, float* dw, float* db,
                                     bool accumulate);
// GELU, tanh approximation (GPT-2's gelu_new); the backward writes dx = dy * gelu'(x).
using GeluForwardKernel = void(int64_t n, const float* x, float* y);
using GeluBackwardKernel = void(int64_t n, const float* x, const float* dy, float* dx);
// x[b,t,:] = wte[tokens[b,t]] + wpe[t] for t < lengths[b]; 0 past it.
using EmbeddingForwardKernel = void(int64_t batch, int64_t time, int64_t d, const int32_t* tokens,
                                    const int32_t* lengths, const float* wte, const float* wpe, float* x);
using EmbeddingBackwardKernel = void(int64_t batch, int64_t time, int64_t d, const int32_t* tokens,
                                     const int32_t* lengths, const float* dx, float* dwte, float* dwpe);
// Causal attention over qkv [B*T, 3D] (q | k | v, heads of D/H contiguous in each) -> out
// [B*T, D]; probs [B, H, T, T] kept for the backward. Rows at t >= lengths[b] are 0.
using AttentionForwardKernel = void(int64_t batch, int64_t time, int64_t d, int64_t heads, const int32_t* lengths,
                                    const float* qkv, float* probs, float* out);
using AttentionBackwardKernel = void(int64_t batch, int64_t time, int64_t d, int64_t heads, const int32_t* lengths,
                                     const float* qkv, const float* probs, const float* dout, float* dqkv);
// One new query per row against the KV cache: q [B, D] (rows of qkv [B, 3D]); kcache, vcache
// [B, H, C, D/H]; row b attends over positions [0, positions[b]] (inclusive; its own k, v already
// written). Rows with positions[b] < 0 are skipped.
using AttentionDecodeKernel = void(int64_t batch, int64_t d, int64_t heads, int64_t capacity, const float* qkv,
                                   const float* kcache, const float* vcache, const int32_t* positions, float* out);
// AdamW over `count` parameter ranges of one flat buffer; see napo_adamw_options.
struct AdamWRange {
  int64_t offset, size;
  bool decay;
};
using AdamWStepKernel = void(float* params, float* grads, float* m, float* v, const AdamWRange* ranges,
                             int64_t count, int64_t step, float lr, float beta1, float beta2, float eps,
                             float weightDecay, float gradScale);
// Sum of squares of x[0, n), in double, in an order that does not depend on the thread count.
using SumSquaresKernel = double(int64_t n, const float* x);

// ---- benchmark probes ---------------------------------------------------------------------------
using ProbeReadBandwidthKernel = double(float* data, int64_t count, int32_t repeats);
using ProbeUnfusedLogprobsKernel = void(const napo_tensor& logits, const int32_t* tokens, float* scratch,
                                        float* logprobs);
using ProbeSortedSampleKernel = void(const napo_tensor& logits, int32_t topK, float topP, uint64_t seed,
                                     float* scratch, int32_t* tokens);
using FmaPeakGflopsKernel = double(double seconds);

struct CpuBackend {
  const char* isa;  // "avx512", "avx2" or "generic"
  SampleKernel* sample;
  TokenLogprobsKernel* tokenLogprobs;
  TokenLogprobsBackwardKernel* tokenLogprobsBackward;
  GroupAdvantagesKernel* groupAdvantages;
  PolicyLossKernel* policyLoss;
  LinearLogprobsKernel* linearLogprobs;
  LinearLogprobsBackwardKernel* linearLogprobsBackward;
  MatmulKernel* matmul;
  GemmKernel* gemm;
  AddBiasKernel* addBias;
  BiasBackwardKernel* biasBackward;
  LayerNormForwardKernel* layerNormForward;
  LayerNormBackwardKernel* layerNormBackward;
  GeluForwardKernel* geluForward;
  GeluBackwardKernel* geluBackward;
  EmbeddingForwardKernel* embeddingForward;
  EmbeddingBackwardKernel* embeddingBackward;
  AttentionForwardKernel* attentionForward;
  AttentionBackwardKernel* attentionBackward;
  AttentionDecodeKernel* attentionDecode;
  AdamWStepKernel* adamwStep;
  SumSquaresKernel* sumSquares;
  ProbeReadBandwidthKernel* probeReadBandwidth;
  ProbeUnfusedLogprobsKernel* probeUnfusedLogprobs;
  ProbeSortedSampleKernel* probeSortedSample;
  FmaPeakGflopsKernel* fmaPeakGflops;
};

}  // namespace napo::cpu

namespace napo {

// The copy of the CPU kernels this process runs.
const cpu::CpuBackend& cpuBackend();

// Which copies this machine can run, best first ("avx512,avx2,generic"), and why a NAPO_CPU_ISA
// request was not followed ("" when there was none or it was).
const char* cpuIsaSupported();
const char* cpuIsaNote();

}  // namespace napo
