/*
 * napo model C ABI: the built-in TinyGPT policy (GPT-2 style decoder: pre-LayerNorm, learned
 * positions, causal multi-head attention, GELU (tanh) MLP, tied embeddings).
 *
 * A napo_model is an opaque handle. Its parameters, gradients, AdamW moments, activations and KV
 * cache are napo allocations on the model's device, so napo_memory_stats counts them. A model is
 * not thread-safe: one call at a time (the Node addon guards this with a busy flag).
 *
 * Host tensors (tokens, lengths) are napo_tensor views of host memory; logits are written to a
 * napo_tensor on the model's device. Every call returns a status; napo_last_error() explains a
 * failure, naming the call, the argument and the value.
 *
 * Backends: every layer op dispatches on the device; the CPU backend is complete, the CUDA slot
 * answers NAPO_ERR_UNAVAILABLE until its kernels exist.
 */
#ifndef NAPO_MODEL_H
#define NAPO_MODEL_H

#include "napo/napo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct napo_model napo_model;

typedef struct napo_model_config {
  int32_t vocab_size;
  int32_t context_length;
  int32_t d_model;
  int32_t n_layers;
  int32_t n_heads;  /* must divide d_model */
  uint64_t seed;    /* deterministic initialisation */
  napo_device device;
} napo_model_config;

/* Parameter names follow Hugging Face GPT-2 (transformer.* without the prefix): wte.weight [V, D]
 * (tied LM head), wpe.weight [C, D], h.{l}.ln_1.{weight,bias} [D], h.{l}.attn.c_attn.{weight
 * [D, 3D], bias [3D]}, h.{l}.attn.c_proj.{weight [D, D], bias [D]}, h.{l}.ln_2.{weight,bias},
 * h.{l}.mlp.c_fc.{weight [D, 4D], bias [4D]}, h.{l}.mlp.c_proj.{weight [4D, D], bias [D]},
 * ln_f.{weight,bias}. Linear weights are [in, out] (y = x W + b), as GPT-2's Conv1D. */
typedef struct napo_model_parameter_info {
  char name[64];
  int32_t ndim;
  int64_t shape[2];
  int64_t numel;
} napo_model_parameter_info;

typedef struct napo_adamw_options {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;   /* decoupled; applied to 2-D weights only (not biases, LayerNorm) */
  float max_grad_norm;  /* global L2 clipping; <= 0 = off */
} napo_adamw_options;

typedef struct napo_adamw_result {
  double grad_norm;  /* global L2 norm of the gradients before clipping */
  double clip_scale; /* factor the gradients were multiplied by (1 when not clipped) */
  int64_t step;      /* the optimizer step just taken, from 1 */
} napo_adamw_result;

NAPO_API napo_status napo_model_create(const napo_model_config* config, napo_model** out);
NAPO_API void napo_model_destroy(napo_model* model);
NAPO_API napo_status napo_model_config_get(const napo_model* model, napo_model_config* out);
/* A copy of the parameters (not gradients, optimizer state or cache): a frozen reference. */
NAPO_API napo_status napo_model_clone(const napo_model* model, napo_model** out);

/* Training forward. tokens [B, T] int32 (host), lengths [B] int32 (host; NULL = every row T).
 * 1 <= B, 1 <= T <= context_length, 1 <= lengths[b] <= T; tokens[b, t] for t < lengths[b] must be
 * in [0, vocab_size) (positions past a row's length are ignored). logits [B, T, V] float32 on the
 * model's device; rows past a length are 0. Activations are kept for napo_model_backward. */
NAPO_API napo_status napo_model_forward(napo_model* model, const napo_tensor* tokens,
                                        const napo_tensor* lengths, napo_tensor* logits);
/* Accumulates d loss / d parameters from grad_logits [B, T, V] float32 (host or model device) of
 * the last forward; positions past a row's length are ignored. */
NAPO_API napo_status napo_model_backward(napo_model* model, const napo_tensor* grad_logits);
NAPO_API napo_status napo_model_zero_grad(napo_model* model);
NAPO_API napo_status napo_model_step(napo_model* model, const napo_adamw_options* options,
                                     napo_adamw_result* result);

/* Decoding with a KV cache. prefill: prompts tokens [B, T] + lengths [B] (ragged, each >= 1) ->
 * logits [B, V] at each row's last prompt token; resets the cache to these rows. decode_step:
 * tokens [B] (host; -1 = row inactive: nothing computed, its logits row is 0) -> logits [B, V] of
 * the next position; fails when a row would pass context_length. */
NAPO_API napo_status napo_model_prefill(napo_model* model, const napo_tensor* tokens,
                                        const napo_tensor* lengths, napo_tensor* logits);
NAPO_API napo_status napo_model_decode_step(napo_model* model, const napo_tensor* tokens,
                                            napo_tensor* logits);
/* Tokens held in the cache for row b (prompt + decoded), -1 when there is no such row. */
NAPO_API int64_t napo_model_cache_position(const napo_model* model, int64_t row);

NAPO_API int64_t napo_model_parameter_count(const napo_model* model);
NAPO_API napo_status napo_model_parameter_info_get(const napo_model* model, int64_t index,
                                                   napo_model_parameter_info* out);
/* Copies of one parameter (or its gradient: zeros before the first backward) in host memory,
 * numel float32 values. */
NAPO_API napo_status napo_model_parameter_read(const napo_model* model, int64_t index, float* dst);
NAPO_API napo_status napo_model_parameter_write(napo_model* model, int64_t index, const float* src);
NAPO_API napo_status napo_model_gradient_read(const napo_model* model, int64_t index, float* dst);
NAPO_API int64_t napo_model_optimizer_steps(const napo_model* model);

/* Scalars in all parameters: the sum of every parameter's numel (0 for a NULL model). */
NAPO_API int64_t napo_model_parameter_total(const napo_model* model);
/* The AdamW state, for checkpoints that resume exactly. exp_avg (first moment) and exp_avg_sq
 * (second moment) are host buffers of napo_model_parameter_total floats each, packed in parameter
 * order: parameter i's numel values (napo_model_parameter_info_get order) follow parameter i-1's,
 * no padding. steps is the number of optimizer steps taken (AdamW's bias correction uses it).
 * read: zeros and steps = 0 before the first step. write: checks everything first (each value
 * finite, exp_avg_sq >= 0, steps >= 0; an error names the buffer, the index and the parameter)
 * and changes nothing on failure; the next napo_model_step then takes step steps + 1. */
NAPO_API napo_status napo_model_optimizer_state_read(const napo_model* model, float* exp_avg,
                                                     float* exp_avg_sq, int64_t* steps);
NAPO_API napo_status napo_model_optimizer_state_write(napo_model* model, const float* exp_avg,
                                                      const float* exp_avg_sq, int64_t steps);

/* ---- building blocks, for benches and tests ------------------------------------------------ */

/* C = alpha * op(A) op(B) + beta * C on host float32, row-major; op(A) [M, K], op(B) [K, N];
 * trans_a: A is stored [K, M]; trans_b: B is stored [N, K]. napo's blocked CPU kernel. */
NAPO_API napo_status napo_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                                float alpha, const float* a, int64_t lda, const float* b,
                                int64_t ldb, float beta, float* c, int64_t ldc);
/* Peak float32 FMA throughput of one core, measured with an FMA-bound register loop over about
 * `seconds`; GFLOP/s (an FMA counts as 2 flops). */
NAPO_API napo_status napo_cpu_peak_gflops(double seconds, double* gflops);

#ifdef __cplusplus
}
#endif

#endif /* NAPO_MODEL_H */
