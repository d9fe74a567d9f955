/*
 * napo model C ABI: decoder-only causal language models of the families people post-train, with
 * the semantics of Hugging Face transformers' modeling files:
 *   gpt2   LayerNorm, learned positions, fused c_attn, tanh-GELU MLP (TinyGPT is a small one)
 *   llama  RMSNorm, RoPE (+ linear / llama3 scaling), grouped-query attention, SwiGLU MLP
 *   qwen2  llama with q/k/v biases
 *   qwen3  llama with per-head RMSNorm on q and k (q_norm, k_norm) before RoPE
 *
 * A napo_model is an opaque handle. Its parameters (float32 master weights), gradients, AdamW
 * moments, activations and KV cache are napo allocations on the model's device, so
 * napo_memory_stats counts them. A model is not thread-safe: one call at a time (the Node addon
 * guards this with a busy flag). Every call checks its arguments and returns a status;
 * napo_last_error() explains a failure, naming the call, the argument and the value.
 *
 * Host tensors (tokens, lengths, targets) are napo_tensor views of host memory; outputs are
 * napo_tensors on the model's device.
 */
#ifndef NAPO_MODEL_H
#define NAPO_MODEL_H

#include "napo/napo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct napo_model napo_model;

typedef enum napo_model_family {
  NAPO_MODEL_GPT2 = 0,
  NAPO_MODEL_LLAMA = 1,
  NAPO_MODEL_QWEN2 = 2,
  NAPO_MODEL_QWEN3 = 3
} napo_model_family;

typedef enum napo_rope_scaling {
  NAPO_ROPE_DEFAULT = 0,
  NAPO_ROPE_LINEAR = 1, /* every frequency divided by rope_factor */
  NAPO_ROPE_LLAMA3 = 2  /* Llama 3.1's bands: rope_factor, low / high_freq_factor, original_max_positions */
} napo_rope_scaling;

typedef struct napo_model_config {
  int32_t family;            /* napo_model_family */
  int32_t vocab_size;
  int32_t hidden_size;
  int32_t intermediate_size; /* the MLP's width */
  int32_t num_layers;
  int32_t num_heads;
  int32_t num_kv_heads;      /* divides num_heads; gpt2: num_heads */
  int32_t head_dim;          /* gpt2: hidden_size / num_heads; even for RoPE */
  int32_t max_positions;     /* the longest sequence (gpt2: rows of the position table) */
  float norm_eps;
  double rope_theta;
  int32_t rope_scaling;      /* napo_rope_scaling */
  float rope_factor;
  float rope_low_freq_factor;
  float rope_high_freq_factor;
  int32_t rope_original_max_positions;
  int32_t qkv_bias;          /* 0/1: biases on q, k, v (gpt2 and qwen2: 1) */
  int32_t output_bias;       /* 0/1: bias on the attention output projection (gpt2: 1) */
  int32_t mlp_bias;          /* 0/1: biases in the MLP (gpt2: 1) */
  int32_t tie_word_embeddings; /* 0/1: the LM head is the embedding matrix */
  float initializer_range;   /* std of the random initialisation */
  uint64_t seed;             /* deterministic initialisation */
  napo_device device;
} napo_model_config;

/* Checks a config without creating a model (the checks napo_model_create makes). */
NAPO_API napo_status napo_model_config_validate(const napo_model_config* config);

/* Parameters carry Hugging Face names (transformer.h.0.attn.c_attn.weight,
 * model.layers.0.self_attn.q_proj.weight, ...) and nn.Linear's [out, in] layout. gpt2's Conv1D
 * weights are [in, out] in its checkpoints: checkpoint_transposed says so, and the
 * parameter_read / parameter_write calls transpose when asked for the checkpoint layout. */
typedef struct napo_model_parameter_info {
  char name[96];
  int32_t ndim;
  int64_t shape[2];
  int64_t numel;
  int32_t checkpoint_transposed;
  int32_t weight_decay; /* AdamW's decoupled decay applies (2-D weights; not biases or norms) */
} napo_model_parameter_info;

typedef struct napo_adamw_options {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;   /* decoupled; applied where napo_model_parameter_info.weight_decay is 1 */
  float max_grad_norm;  /* global L2 clipping; <= 0 = off */
  float grad_scale;     /* the gradients' factor before the norm and the clip (gradient accumulation: 1 / k); 0 = 1 */
} napo_adamw_options;

typedef struct napo_adamw_result {
  double grad_norm;  /* global L2 norm of the (scaled) gradients before clipping */
  double clip_scale; /* factor the gradients were multiplied by (grad_scale when not clipped) */
  int64_t step;      /* the optimizer step just taken, from 1 */
} napo_adamw_result;

typedef struct napo_model_score_options {
  float temperature;        /* > 0: log-probs of logits / temperature */
  int32_t entropy;          /* 0/1: also the entropy of each scored position */
  int32_t keep_activations; /* 0/1: keep what napo_model_score_backward needs (0: no backward, memory freed at once) */
} napo_model_score_options;

NAPO_API napo_status napo_model_create(const napo_model_config* config, napo_model** out);
NAPO_API void napo_model_destroy(napo_model* model);
NAPO_API napo_status napo_model_config_get(const napo_model* model, napo_model_config* out);
/* A copy of the parameters (not gradients, optimizer state or cache): a frozen reference. */
NAPO_API napo_status napo_model_clone(const napo_model* model, napo_model** out);

/* The training batch of every call below: tokens [B, T] int32 (host), lengths [B] int32 (host;
 * NULL = every row T), 1 <= lengths[b] <= T <= max_positions; tokens[b, t] for t < lengths[b]
 * in [0, vocab_size) (positions past a row's length are ignored). Position t of a row is t. */

/* Scoring, the RL path: log p(targets[b, t] | tokens[b, <= t]) through the LM head in vocabulary
 * chunks (linearLogprobs), never holding [B, T, V] logits. targets [B, T] int32 (host): -1 =
 * not scored (its log-prob is 0), else in [0, vocab_size) and t < lengths[b]. logprobs (and
 * entropy, when options->entropy) [B, T] float32 on the model's device. Activations are kept for
 * napo_model_score_backward. */
NAPO_API napo_status napo_model_score(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                                      const napo_tensor* targets, const napo_model_score_options* options,
                                      napo_tensor* logprobs, napo_tensor* entropy);
/* Accumulates d loss / d parameters from grad_logprobs [B, T] float32 on the model's device of
 * the last score (and grad_entropy, when it scored the entropy; NULL = 0). */
NAPO_API napo_status napo_model_score_backward(napo_model* model, const napo_tensor* grad_logprobs,
                                               const napo_tensor* grad_entropy);

/* The unfused path: logits [B, T, V] float32 on the model's device (rows past a length are 0),
 * activations kept for napo_model_backward, which takes grad_logits [B, T, V] float32 on the
 * model's device. */
NAPO_API napo_status napo_model_forward(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                                        napo_tensor* logits);
NAPO_API napo_status napo_model_backward(napo_model* model, const napo_tensor* grad_logits);

NAPO_API napo_status napo_model_zero_grad(napo_model* model);
NAPO_API napo_status napo_model_step(napo_model* model, const napo_adamw_options* options,
                                     napo_adamw_result* result);

/* Decoding with a KV cache. prefill: the batch above (prompts) and capacity, the positions the
 * cache keeps per row (T <= capacity <= max_positions), -> logits [B, V] at each row's last prompt
 * token; resets the cache to these rows. decode_step: tokens [B] (host; -1 = row inactive: nothing
 * computed, its logits row is 0) -> logits [B, V] of the next position; fails when a row's cache
 * is full. Both run the same block as training. */
NAPO_API napo_status napo_model_prefill(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths,
                                        int64_t capacity, napo_tensor* logits);
NAPO_API napo_status napo_model_decode_step(napo_model* model, const napo_tensor* tokens, napo_tensor* logits);
/* Tokens held in the cache for row b (prompt + decoded), -1 when there is no such row. */
NAPO_API int64_t napo_model_cache_position(const napo_model* model, int64_t row);
/* Frees the KV cache and the decoding workspaces (generation is over); a backward frees its
 * forward's activations itself. */
NAPO_API napo_status napo_model_release_cache(napo_model* model);

/* ---- memory ----------------------------------------------------------------------------------- */

typedef enum napo_model_pass {
  NAPO_PASS_SCORE = 0,          /* napo_model_score, activations kept */
  NAPO_PASS_SCORE_BACKWARD = 1, /* napo_model_score_backward */
  NAPO_PASS_FORWARD = 2,        /* napo_model_forward ([B, T, V] logits) */
  NAPO_PASS_BACKWARD = 3,       /* napo_model_backward */
  NAPO_PASS_PREFILL = 4,
  NAPO_PASS_DECODE = 5
} napo_model_pass;

typedef struct napo_model_memory_query {
  int32_t pass;              /* napo_model_pass */
  int64_t batch;             /* rows */
  int64_t time;              /* the padded length (1 for decode) */
  int64_t scored;            /* score passes: positions with a target */
  int64_t capacity;          /* prefill / decode: the KV cache's positions per row */
  int32_t entropy;           /* score passes: the entropy too */
  int32_t gradients;         /* 0/1: the gradients exist (after a first backward) */
  int32_t optimizer_state;   /* 0/1: the AdamW moments exist (after a first step) */
} napo_model_memory_query;

/* The bytes a model of `config` holds at the peak of one pass, by napo_memory_category (what the
 * allocator counts: its parameters, gradients and optimizer state when present, the pass's
 * activations, workspaces, KV cache and outputs), computed from shapes alone with the layouts the
 * model allocates by. What napo_memory tells a user before a run: does it fit. */
NAPO_API napo_status napo_model_memory_plan(const napo_model_config* config, const napo_model_memory_query* query,
                                            int64_t bytes[NAPO_MEMORY_CATEGORIES]);

NAPO_API int64_t napo_model_parameter_count(const napo_model* model);
NAPO_API napo_status napo_model_parameter_info_get(const napo_model* model, int64_t index,
                                                   napo_model_parameter_info* out);
/* One parameter to or from host memory as numel values of dtype (float32, bfloat16 or float16),
 * in the model's layout or, with checkpoint_layout = 1, in the checkpoint's (transposed where
 * checkpoint_transposed). write checks every value is finite first (the error names the
 * parameter and the index) and changes nothing on failure. */
NAPO_API napo_status napo_model_parameter_read(const napo_model* model, int64_t index, napo_dtype dtype,
                                               int32_t checkpoint_layout, void* dst);
NAPO_API napo_status napo_model_parameter_write(napo_model* model, int64_t index, napo_dtype dtype,
                                                int32_t checkpoint_layout, const void* src);
/* A copy of one parameter's gradient (zeros before the first backward), numel float32 values in
 * the model's layout. */
NAPO_API napo_status napo_model_gradient_read(const napo_model* model, int64_t index, float* dst);
NAPO_API int64_t napo_model_optimizer_steps(const napo_model* model);

/* Scalars in all parameters: the sum of every parameter's numel (0 for a NULL model). */
NAPO_API int64_t napo_model_parameter_total(const napo_model* model);
/* The AdamW state, for checkpoints that resume exactly. exp_avg (first moment) and exp_avg_sq
 * (second moment) are host buffers of napo_model_parameter_total floats each, packed in parameter
 * order with no padding. steps is the number of optimizer steps taken (AdamW's bias correction
 * uses it). read: zeros and steps = 0 before the first step. write: checks everything first (each
 * value finite, exp_avg_sq >= 0, steps >= 0; an error names the buffer, the index and the
 * parameter) and changes nothing on failure; the next napo_model_step then takes step steps + 1. */
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
