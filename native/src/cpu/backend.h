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
// policyLoss's float tensors, [sequences, steps] but advantages [sequences]; refLogprobs,
// entropy and gradEntropy may be null.
struct PolicyLossTensors {
  const float *logprobs, *oldLogprobs, *refLogprobs, *entropy, *advantages;
  float *gradLogprobs, *gradEntropy;
};
using PolicyLossKernel = void(const PolicyLossTensors& tensors, const napo_tensor& mask, int64_t sequences,
                              int64_t steps, const napo_policy_loss_options& options, napo_policy_loss_stats* stats);

// repetitionPenalty (src/cpu/repetition_penalty.cpp): logits and out [rows, vocab] of one dtype,
// history [rows, length] (validated: -1 or a token id).
using RepetitionPenaltyKernel = void(const napo_tensor& logits, const int32_t* history, int64_t length, float penalty,
                                     napo_tensor& out);

// maskedRowSum (src/cpu/masked_row_sum.cpp): values [rows, width] f32, mask of the same shape.
using MaskedRowSumKernel = void(const float* values, const napo_tensor& mask, int64_t rows, int64_t width,
                                float* sums);
using MaskedRowSumBackwardKernel = void(const napo_tensor& mask, const float* gradSums, int64_t rows,
                                        int64_t width, float* gradValues);

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
// y[M,N] += bias[N] for every row (rows ldy apart).
using AddBiasKernel = void(int64_t m, int64_t n, const float* bias, float* y, int64_t ldy);
// dbias[N] += sum over rows of dy[M,N] (rows ldy apart).
using BiasBackwardKernel = void(int64_t m, int64_t n, const float* dy, int64_t ldy, float* dbias);
// LayerNorm: y = (x - mean) * rstd * w + b per row of D; mean and rstd [M] kept for the backward.
using LayerNormForwardKernel = void(int64_t m, int64_t d, const float* x, const float* w, const float* b, float eps,
                                    float* y, float* mean, float* rstd);
// dx (+)= ..., dw += ..., db += ...; dx is accumulated when accumulate is true.
using LayerNormBackwardKernel = void(int64_t m, int64_t d, const float* x, const float* w, const float* mean,
                                     const float* rstd, const float* dy, float* dx, float* dw, float* db,
                                     bool accumulate);
// RMSNorm over `groups` vectors of d per row (vector g of row i at i * stride + g * d): y = x *
// rstd * w; rstd [rows * groups] kept for the backward (may be null in the forward).
using RmsNormForwardKernel = void(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride,
                                  const float* w, float eps, float* y, int64_t yStride, float* rstd);
// dw += ..., dx (+)= ...; dx may be dy's buffer.
using RmsNormBackwardKernel = void(int64_t rows, int64_t groups, int64_t d, const float* x, int64_t xStride,
                                   const float* w, const float* rstd, const float* dy, int64_t dyStride, float* dx,
                                   int64_t dxStride, float* dw, bool accumulate);
// Rotary embeddings in place on `heads` heads of headDim per row (rows `stride` apart), row i at
// positions[i] (< 0: left alone); cos/sin tables [position, headDim / 2]. inverse: the backward.
using RopeRotateKernel = void(int64_t rows, int64_t heads, int64_t headDim, float* x, int64_t stride,
                              const int32_t* positions, const float* cosTable, const float* sinTable, bool inverse);
// GELU, tanh approximation (GPT-2's gelu_new); the backward writes dx = dy * gelu'(x).
using GeluForwardKernel = void(int64_t n, const float* x, float* y);
using GeluBackwardKernel = void(int64_t n, const float* x, const float* dy, float* dx);
// SwiGLU: out = silu(gate) * up; the backward may write dgate over dout and dup over the forward's out.
using SwigluForwardKernel = void(int64_t n, const float* gate, const float* up, float* out);
using SwigluBackwardKernel = void(int64_t n, const float* gate, const float* up, const float* dout, float* dgate,
                                  float* dup);
// x[row] = wte[tokens[row]] (+ wpe[positions[row]] when wpe is given); tokens[row] < 0: zeros,
// and no gradient in the backward.
using EmbeddingForwardKernel = void(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions,
                                    const float* wte, const float* wpe, float* x);
using EmbeddingBackwardKernel = void(int64_t rows, int64_t d, const int32_t* tokens, const int32_t* positions,
                                     const float* dx, float* dwte, float* dwpe);
// Causal grouped-query attention. Queries: row (b, i) of q [batch * queries, qStride], head h at
// column h * headDim; query i of row b sits at position start[b] + i and attends to positions
// [0, start[b] + i]; i >= count[b] or start[b] < 0 gives a zero row. Query head h reads kv head
// h / (heads / kvHeads) (transformers' repeat_kv). Keys and values: position p of row b, kv
// head g at b * batchStride + p * positionStride + g * headDim (the k, v columns of the training
// activations, or the KV cache). lse [batch, heads, queries] (may be null) keeps each query's
// log-sum-exp for the backward, which recomputes the probabilities from it.
struct AttentionShape {
  int64_t batch, queries, heads, kvHeads, headDim;
};
struct KvLayout {
  int64_t batchStride, positionStride;
};
using AttentionForwardKernel = void(const AttentionShape& shape, const int32_t* start, const int32_t* count,
                                    const float* q, int64_t qStride, const float* k, const float* v,
                                    const KvLayout& kv, float* out, int64_t outStride, float* lse);
// The backward of a training call (start = 0, the keys are the queries' own rows): dq with q's
// layout, dk and dv with the keys' (written, not accumulated).
using AttentionBackwardKernel = void(const AttentionShape& shape, const int32_t* count, const float* q,
                                     int64_t qStride, const float* k, const float* v, const KvLayout& kv,
                                     const float* out, int64_t outStride, const float* dout, const float* lse,
                                     float* dq, float* dk, float* dv);
// Copies the k, v rows (b, i < count[b]) of a call (rows `stride` apart) into the cache at
// positions start[b] + i; rows with start[b] < 0 are skipped.
using KvCacheWriteKernel = void(const AttentionShape& shape, const int32_t* start, const int32_t* count,
                                const float* k, const float* v, int64_t stride, float* cacheK, float* cacheV,
                                const KvLayout& cache);
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
  RepetitionPenaltyKernel* repetitionPenalty;
  MaskedRowSumKernel* maskedRowSum;
  MaskedRowSumBackwardKernel* maskedRowSumBackward;
  LinearLogprobsKernel* linearLogprobs;
  LinearLogprobsBackwardKernel* linearLogprobsBackward;
  MatmulKernel* matmul;
  GemmKernel* gemm;
  AddBiasKernel* addBias;
  BiasBackwardKernel* biasBackward;
  LayerNormForwardKernel* layerNormForward;
  LayerNormBackwardKernel* layerNormBackward;
  RmsNormForwardKernel* rmsNormForward;
  RmsNormBackwardKernel* rmsNormBackward;
  RopeRotateKernel* ropeRotate;
  GeluForwardKernel* geluForward;
  GeluBackwardKernel* geluBackward;
  SwigluForwardKernel* swigluForward;
  SwigluBackwardKernel* swigluBackward;
  EmbeddingForwardKernel* embeddingForward;
  EmbeddingBackwardKernel* embeddingBackward;
  AttentionForwardKernel* attentionForward;
  AttentionBackwardKernel* attentionBackward;
  KvCacheWriteKernel* kvCacheWrite;
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
