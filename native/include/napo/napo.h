/*
 * napo C ABI: the whole surface of libnapo, in plain C.
 *
 * No Node, no CUDA types: the same header serves the Node addon, the C++ tests and benches, and a
 * Python process that loads libnapo.so through ctypes. Buffers are described by napo_tensor (a
 * view: napo never takes ownership of what a caller passes in). Every call returns a status; on
 * failure napo_last_error() gives a message naming the op, the argument and the offending value.
 * Ops are synchronous on CPU; on CUDA they are enqueued on `stream` (NULL = the device's stream).
 */
#ifndef NAPO_H
#define NAPO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define NAPO_API __declspec(dllexport)
#else
#define NAPO_API __attribute__((visibility("default")))
#endif

typedef enum napo_status {
  NAPO_OK = 0,
  NAPO_ERR_TYPE = 1,        /* wrong dtype or device kind: a TypeError in JS */
  NAPO_ERR_RANGE = 2,       /* wrong shape, out-of-range value, NaN/Inf input: a RangeError */
  NAPO_ERR_OUT_OF_MEMORY = 3,
  NAPO_ERR_UNAVAILABLE = 4, /* the backend asked for is not compiled or has no device */
  NAPO_ERR_DEVICE = 5,      /* a CUDA call failed */
  NAPO_ERR_INTERNAL = 6
} napo_status;

/* uint8 and bool (one byte holding 0 or 1) are for masks; float16 is a checkpoint storage type
 * (model parameters read and written in it), not an op input. */
typedef enum napo_dtype {
  NAPO_FLOAT32 = 0,
  NAPO_BFLOAT16 = 1,
  NAPO_INT32 = 2,
  NAPO_UINT8 = 3,
  NAPO_BOOL = 4,
  NAPO_FLOAT16 = 5
} napo_dtype;

typedef enum napo_device_kind { NAPO_CPU = 0, NAPO_CUDA = 1 } napo_device_kind;

typedef struct napo_device {
  napo_device_kind kind;
  int32_t index; /* 0 for the CPU */
} napo_device;

#define NAPO_MAX_DIMS 8

/* A contiguous row-major view of memory that lives on `device`. */
typedef struct napo_tensor {
  void* data;
  napo_dtype dtype;
  int32_t ndim;
  int64_t shape[NAPO_MAX_DIMS];
  napo_device device;
} napo_tensor;

/* ---- errors, backends, devices ---------------------------------------------------------- */

/* The message of the last failed call on this thread ("" when none). */
NAPO_API const char* napo_last_error(void);

typedef struct napo_backend_info {
  int32_t cuda_compiled;      /* 1 when libnapo was built with nvcc */
  int32_t cuda_available;     /* 1 when at least one device answered */
  int32_t cuda_device_count;
  int32_t cuda_runtime_version;  /* e.g. 13000; 0 when not compiled */
  int32_t cuda_driver_version;   /* 0 when no driver */
  char cuda_unavailable_reason[256]; /* e.g. "cudaErrorInsufficientDriver: ..."; "" when usable */
  int32_t cpu_threads;
  char cpu_isa[64];           /* the copy of the CPU kernels in use: "avx512", "avx2" or "generic" */
  char cpu_isa_supported[64]; /* the copies this machine can run, best first: "avx512,avx2,generic" */
  char cpu_note[256];         /* why NAPO_CPU_ISA or NAPO_NUM_THREADS was not followed; "" when it was */
} napo_backend_info;

NAPO_API napo_status napo_backend_info_get(napo_backend_info* out);

typedef struct napo_device_properties {
  char name[256];
  int64_t total_bytes;
  int32_t compute_capability_major;
  int32_t compute_capability_minor;
  int32_t multiprocessors;
} napo_device_properties;

NAPO_API napo_status napo_cuda_device_properties(int32_t index, napo_device_properties* out);

/* Size of the CPU thread pool; NAPO_NUM_THREADS sets the initial size (default: cores). */
NAPO_API int32_t napo_cpu_threads(void);
NAPO_API napo_status napo_set_cpu_threads(int32_t threads);

/* ---- memory ----------------------------------------------------------------------------- */

/* What an allocation is for: PyTorch's memory-profiler categories where they fit, and napo's own. */
typedef enum napo_memory_category {
  NAPO_MEMORY_PARAMETER = 0,
  NAPO_MEMORY_GRADIENT = 1,
  NAPO_MEMORY_OPTIMIZER_STATE = 2,
  NAPO_MEMORY_ACTIVATION = 3, /* kept by a forward for its backward */
  NAPO_MEMORY_TEMPORARY = 4,  /* op outputs and scratch that live for a call or two */
  NAPO_MEMORY_INPUT = 5,      /* tensors a program made from its data */
  NAPO_MEMORY_KV_CACHE = 6,
  NAPO_MEMORY_LOGITS = 7,     /* [N, V] logits and their gradients */
  NAPO_MEMORY_WORKSPACE = 8   /* buffers an op or a model keeps for speed (fused chunks, RoPE tables) */
} napo_memory_category;
#define NAPO_MEMORY_CATEGORIES 9

/* Counters in the conventions of torch.cuda.memory_*: `allocated` is what live allocations asked
 * for (rounded to 512 bytes), `reserved` what the caching allocator holds from the system
 * (allocated blocks whole, plus cached ones). Peaks count from the start or the last reset. */
typedef struct napo_memory_stats {
  int64_t allocated_bytes;
  int64_t reserved_bytes;
  int64_t peak_allocated_bytes;
  int64_t peak_reserved_bytes;
  int64_t allocations;      /* live allocations */
  int64_t free_bytes;       /* device memory the driver reports free; -1 on CPU */
  int64_t total_bytes;      /* device memory in all; -1 on CPU */
  int64_t num_alloc_retries; /* allocations that failed, released the cache and retried */
  int64_t num_ooms;          /* allocations that failed after the retry */
  int64_t category_allocated[NAPO_MEMORY_CATEGORIES];
  int64_t category_peak[NAPO_MEMORY_CATEGORIES];     /* each category's own peak */
  int64_t category_at_peak[NAPO_MEMORY_CATEGORIES];  /* the categories when allocated_bytes peaked */
} napo_memory_stats;

/* One allocation or free in the memory history: milliseconds since the history started, bytes
 * (> 0 allocated, < 0 freed), its category and the phase set when it happened. */
typedef struct napo_memory_event {
  double time_ms;
  int64_t bytes;
  int32_t category;
  int32_t phase;
} napo_memory_event;

/* The bytes a tensor of `dtype` and `shape` takes, after checking the shape: rank <= NAPO_MAX_DIMS,
 * every dim >= 0, and no more than 2^50 bytes (counted without overflow). A failure names `op`. */
NAPO_API napo_status napo_tensor_bytes(const char* op, napo_dtype dtype, int32_t ndim, const int64_t* shape,
                                       int64_t* bytes);
/* napo_malloc_tagged with NAPO_MEMORY_TEMPORARY. */
NAPO_API napo_status napo_malloc(napo_device device, size_t bytes, void** out);
NAPO_API napo_status napo_malloc_tagged(napo_device device, size_t bytes, napo_memory_category category, void** out);
NAPO_API napo_status napo_free(napo_device device, void* ptr);
NAPO_API napo_status napo_memory_stats_get(napo_device device, napo_memory_stats* out);
NAPO_API napo_status napo_reset_peak_memory_stats(napo_device device);
/* The memory history (torch.cuda.memory._record_memory_history): max_events > 0 starts keeping the
 * last max_events allocations and frees of `device` (a ring: older ones are dropped), 0 stops and
 * clears it. napo_memory_history copies up to `capacity` events, oldest first, and returns how many
 * it holds (-1 on a bad device); *dropped (may be NULL) is how many fell off the ring. */
NAPO_API napo_status napo_memory_record_history(napo_device device, int64_t max_events);
NAPO_API int64_t napo_memory_history(napo_device device, napo_memory_event* out, int64_t capacity, int64_t* dropped);
/* The phase the next events of `device` belong to (a caller's number; 0 at start). */
NAPO_API napo_status napo_memory_set_phase(napo_device device, int32_t phase);
/* Return cached, unused blocks to the system (torch.cuda.empty_cache). */
NAPO_API napo_status napo_empty_cache(napo_device device);
/* Copy between devices (host<->device, device<->device); blocking. */
NAPO_API napo_status napo_memcpy(napo_device dst_device, void* dst, napo_device src_device,
                                 const void* src, size_t bytes);
NAPO_API napo_status napo_synchronize(napo_device device);

/* ---- the RL ops ------------------------------------------------------------------------- */

/* A per-row parameter: `count` is 1 (one value for every row) or the number of rows.
 * `values` is host memory. */
typedef struct napo_row_f32 {
  const float* values;
  int64_t count;
} napo_row_f32;

typedef struct napo_row_i32 {
  const int32_t* values;
  int64_t count;
} napo_row_i32;

typedef struct napo_sample_options {
  napo_row_f32 temperature; /* 0 = greedy */
  napo_row_i32 top_k;       /* 0 = off */
  napo_row_f32 top_p;       /* 1 = off; in (0, 1] */
  napo_row_f32 min_p;       /* 0 = off; in [0, 1] */
  uint64_t seed;
  uint64_t offset;
} napo_sample_options;

/* logits [B, V] f32|bf16 -> tokens [B] i32, logprobs [B] f32 (log p(token) under the
 * temperature-scaled, unfiltered distribution; T = 1 for greedy rows). */
NAPO_API napo_status napo_sample_validate(const napo_tensor* logits,
                                          const napo_sample_options* options);
NAPO_API napo_status napo_sample(const napo_tensor* logits, const napo_sample_options* options,
                                 napo_tensor* tokens, napo_tensor* logprobs, void* stream);

/* logits [N, V] f32|bf16, tokens [N] i32 -> logprobs [N] f32, lse [N] f32 (of logits / T),
 * entropy [N] f32 (optional: NULL skips it). One pass over each row. */
NAPO_API napo_status napo_token_logprobs_validate(const napo_tensor* logits,
                                                  const napo_tensor* tokens, float temperature);
NAPO_API napo_status napo_token_logprobs(const napo_tensor* logits, const napo_tensor* tokens,
                                         float temperature, napo_tensor* logprobs,
                                         napo_tensor* entropy, napo_tensor* lse, void* stream);

/* grad_logits [N, V] (dtype of logits; may alias logits for an in-place backward) from
 * grad_logprobs [N] and, optionally, grad_entropy [N] (NULL = 0). The entropy term needs
 * sum p*z = lse - entropy: pass the forward's entropy [N], or NULL to have it recomputed (one more
 * read of each row). */
NAPO_API napo_status napo_token_logprobs_backward_validate(
    const napo_tensor* logits, const napo_tensor* tokens, const napo_tensor* lse,
    const napo_tensor* entropy, const napo_tensor* grad_logprobs, const napo_tensor* grad_entropy,
    float temperature);
NAPO_API napo_status napo_token_logprobs_backward(
    const napo_tensor* logits, const napo_tensor* tokens, const napo_tensor* lse,
    const napo_tensor* entropy, const napo_tensor* grad_logprobs, const napo_tensor* grad_entropy,
    float temperature, napo_tensor* grad_logits, void* stream);

typedef enum napo_advantage_scale {
  NAPO_SCALE_GROUP = 0,
  NAPO_SCALE_BATCH = 1,
  NAPO_SCALE_NONE = 2
} napo_advantage_scale;

typedef enum napo_advantage_estimator { NAPO_ESTIMATOR_GRPO = 0, NAPO_ESTIMATOR_RLOO = 1 } napo_advantage_estimator;

typedef struct napo_advantage_options {
  /* Groups are given by offsets (host memory, group_count + 1 entries, 0 first, S last). */
  const int32_t* group_offsets;
  int64_t group_count;
  napo_advantage_scale scale;
  napo_advantage_estimator estimator;
  float eps;
} napo_advantage_options;

/* rewards [S] f32 -> advantages [S] f32. */
NAPO_API napo_status napo_group_advantages_validate(const napo_tensor* rewards,
                                                    const napo_advantage_options* options);
NAPO_API napo_status napo_group_advantages(const napo_tensor* rewards,
                                           const napo_advantage_options* options,
                                           napo_tensor* advantages, void* stream);

typedef enum napo_loss_type {
  NAPO_LOSS_GRPO = 0,
  NAPO_LOSS_BNPO = 1,
  NAPO_LOSS_DR_GRPO = 2,
  NAPO_LOSS_DAPO = 3,
  NAPO_LOSS_CISPO = 4, /* the clipped IS weight (cap eps_high), detached, times A * logprob; dapo's aggregation */
  NAPO_LOSS_SAPO = 5,  /* a sigmoid gate instead of the clip; grpo's aggregation */
  NAPO_LOSS_LUSPO = 6, /* the clipped surrogate, each sequence's loss times its length: sum / S (sequence level only) */
  NAPO_LOSS_VESPO = 7  /* a gamma weight of the sequence's ratio, detached, times A * logprob; dapo's aggregation (token level only) */
} napo_loss_type;

typedef enum napo_importance_level {
  NAPO_IMPORTANCE_TOKEN = 0,   /* rho per token */
  NAPO_IMPORTANCE_SEQUENCE = 1 /* GSPO: exp of the sequence's mean log-ratio, one per sequence */
} napo_importance_level;

/* Zero-initialised fields after num_items_in_batch keep the token-level clipped surrogate. */
typedef struct napo_policy_loss_options {
  float eps_low;
  float eps_high;
  float beta;
  napo_loss_type loss_type;
  int64_t max_completion_length; /* dr_grpo; <= 0 = T */
  double num_items_in_batch;     /* dapo, cispo; <= 0 = sum(mask) */
  napo_importance_level importance_level;
  float delta;                /* two-sided clip: the unclipped ratio capped at delta (> 1); 0 = off */
  float sapo_temperature_pos; /* sapo's gate for A > 0 (> 0) */
  float sapo_temperature_neg; /* sapo's gate for A <= 0 (> 0) */
  /* The lowest-entropy fraction of the masked tokens leaves the surrogate (not the KL, not the
   * normaliser): tokens below this quantile (linear interpolation, as torch.quantile) of the masked
   * tokens' entropies train no surrogate. 1 - TRL's top_entropy_quantile, in [0, 1]; 0 keeps all.
   * Needs entropy when > 0; refused with luspo (its loss is per sequence). */
  float entropy_quantile;
  /* The entropy bonus: loss -= entropy_coef * H, H the mean entropy over the kept tokens (dapo,
   * cispo: their sum over the type's normaliser). Needs entropy and grad_entropy when != 0. */
  float entropy_coef;
  /* TRL's use_bias_correction_kl (DeepSeek-V3.2): the k3 KL times the importance weight (token or
   * sequence level, its gradient included). Non-zero: on. */
  int32_t bias_correction_kl;
  /* TRL's off_policy_mask_threshold (DeepSeek-V3.2's off-policy sequence masking): when
   * off_policy_mask is non-zero, a sequence with A < 0 whose masked mean of old - logprobs exceeds
   * off_policy_threshold (>= 0) trains no surrogate (its KL stays). */
  int32_t off_policy_mask;
  float off_policy_threshold;
  /* vespo's gamma weight phi(w) = e^lambda w^k e^(-lambda w), w the sequence's ratio (exp of its
   * summed log-ratios): k >= 0 and lambda > 0 by the sign of A (A >= 0: pos; TRL: 2, 3, 3, 2). */
  float vespo_k_pos;
  float vespo_lambda_pos;
  float vespo_k_neg;
  float vespo_lambda_neg;
} napo_policy_loss_options;

/* Stats of one policyLoss call; each mean is over masked tokens, but the clip fractions at
 * sequence level are over sequences (the clip is per sequence there; TRL's figures). */
typedef struct napo_policy_loss_stats {
  double loss;
  double clip_low_fraction;  /* A < 0 and rho < 1 - eps_low */
  double clip_high_fraction; /* A > 0 and rho > 1 + eps_high */
  double clip_fraction;      /* the two together */
  double clip_low_min;       /* the lowest sequence's clip-low fraction (sequences with tokens; TRL's clip_ratio/low_min) */
  double clip_high_max;      /* the highest sequence's clip-high fraction (TRL's clip_ratio/high_max) */
  double mean_kl;            /* 0 without ref_logprobs; times the weight with bias_correction_kl */
  double mean_ratio;
  double token_count;        /* sum(mask) */
  double kept_fraction;      /* of the masked tokens, those the entropy quantile keeps (1 without it) */
  double entropy_threshold;  /* the entropy quantile's value (0 without it) */
  double mean_entropy;       /* over the kept tokens (0 without entropy) */
  double off_policy_fraction; /* of the sequences, those the off-policy mask dropped */
  double entropy_bonus;      /* the term the entropy bonus subtracted from loss (TRL's policy_loss = loss + it) */
  double vespo_phi_mean;     /* vespo: the mean over sequences of phi (TRL's vespo/phi_seq_mean); 0 otherwise */
} napo_policy_loss_stats;

/* logprobs, old_logprobs, ref_logprobs (optional), entropy (optional), mask: [S, T] f32;
 * advantages [S] f32 -> grad_logprobs [S, T] f32 (d loss / d logprobs), grad_entropy [S, T] f32
 * (d loss / d entropy; optional, needed when entropy_coef != 0) and stats (host). */
NAPO_API napo_status napo_policy_loss_validate(const napo_tensor* logprobs,
                                               const napo_tensor* old_logprobs,
                                               const napo_tensor* ref_logprobs,
                                               const napo_tensor* entropy,
                                               const napo_tensor* advantages,
                                               const napo_tensor* mask,
                                               const napo_policy_loss_options* options);
NAPO_API napo_status napo_policy_loss(const napo_tensor* logprobs, const napo_tensor* old_logprobs,
                                      const napo_tensor* ref_logprobs, const napo_tensor* entropy,
                                      const napo_tensor* advantages, const napo_tensor* mask,
                                      const napo_policy_loss_options* options,
                                      napo_tensor* grad_logprobs, napo_tensor* grad_entropy,
                                      napo_policy_loss_stats* stats, void* stream);

/* ---- repetitionPenalty: logits of tokens already in a row made less likely ------------------------ */

/* logits [B, V] f32|bf16, history [B, L] i32 (the row's tokens so far; -1: none) -> out [B, V] of
 * the logits' dtype: the logit z of every token in the row's history becomes z * penalty when
 * z < 0 and z / penalty otherwise, once however often the token occurs (Hugging Face's
 * RepetitionPenaltyLogitsProcessor); the others are copied. penalty > 0 and finite. */
NAPO_API napo_status napo_repetition_penalty_validate(const napo_tensor* logits, const napo_tensor* history,
                                                      float penalty);
NAPO_API napo_status napo_repetition_penalty(const napo_tensor* logits, const napo_tensor* history, float penalty,
                                             napo_tensor* out, void* stream);

/* ---- maskedRowSum: each row's sum over its masked positions ------------------------------------ */

/* values [R, W] f32, mask [R, W] (f32, int32, uint8 or bool: 0 or 1) -> sums [R] f32, each row
 * summed in double over the positions where the mask is 1 (a sequence's log-prob, DPO's sums). */
NAPO_API napo_status napo_masked_row_sum_validate(const napo_tensor* values, const napo_tensor* mask);
NAPO_API napo_status napo_masked_row_sum(const napo_tensor* values, const napo_tensor* mask, napo_tensor* sums,
                                         void* stream);
/* Its gradient: mask [R, W], grad_sums [R] f32 -> grad_values [R, W] f32 = mask * grad_sums[row]. */
NAPO_API napo_status napo_masked_row_sum_backward_validate(const napo_tensor* mask, const napo_tensor* grad_sums);
NAPO_API napo_status napo_masked_row_sum_backward(const napo_tensor* mask, const napo_tensor* grad_sums,
                                                  napo_tensor* grad_values, void* stream);

/* ---- linearLogprobs: log-probs straight from hidden states ----------------------------------- */

typedef struct napo_linear_logprobs_options {
  float temperature;
  /* Vocabulary columns per chunk; 0 = napo's choice (about 4 MiB of logits per chunk, at most
   * V/8 columns once V >= 32K). Extra memory is O(N * chunk + chunk * H), never [N, V]. */
  int64_t chunk_size;
} napo_linear_logprobs_options;

/* hidden [N, H] f32|bf16, weight [V, H] (nn.Linear layout, hidden's dtype), tokens [N] i32 ->
 * logprobs [N], lse [N], entropy [N] (optional, NULL skips it) f32, of z = hidden weight^T / T,
 * with float32 accumulation: the vocabulary is walked in chunks with an online max / sum. */
NAPO_API napo_status napo_linear_logprobs_validate(const napo_tensor* hidden, const napo_tensor* weight,
                                                   const napo_tensor* tokens,
                                                   const napo_linear_logprobs_options* options);
NAPO_API napo_status napo_linear_logprobs(const napo_tensor* hidden, const napo_tensor* weight,
                                          const napo_tensor* tokens, const napo_linear_logprobs_options* options,
                                          napo_tensor* logprobs, napo_tensor* entropy, napo_tensor* lse, void* stream);

/* The gradients of sum(grad_logprobs * logprobs + grad_entropy * entropy) with respect to hidden
 * and weight: grad_hidden [N, H] f32 and grad_weight [V, H] f32, overwritten, or added to when
 * `accumulate` is non-zero (a model's LM-head gradient). lse [N] and entropy [N] (optional; NULL:
 * recomputed when grad_entropy is given) come from the forward; grad_entropy may be NULL. The
 * logits of each chunk are recomputed: nothing of [N, V] is kept between the two calls. */
NAPO_API napo_status napo_linear_logprobs_backward_validate(
    const napo_tensor* hidden, const napo_tensor* weight, const napo_tensor* tokens, const napo_tensor* lse,
    const napo_tensor* entropy, const napo_tensor* grad_logprobs, const napo_tensor* grad_entropy,
    const napo_linear_logprobs_options* options);
NAPO_API napo_status napo_linear_logprobs_backward(
    const napo_tensor* hidden, const napo_tensor* weight, const napo_tensor* tokens, const napo_tensor* lse,
    const napo_tensor* entropy, const napo_tensor* grad_logprobs, const napo_tensor* grad_entropy,
    const napo_linear_logprobs_options* options, int32_t accumulate, napo_tensor* grad_hidden,
    napo_tensor* grad_weight, void* stream);

/* The vocabulary chunk a call with these sizes uses (options->chunk_size, or napo's choice). */
NAPO_API int64_t napo_linear_logprobs_chunk(int64_t rows, int64_t vocab, int64_t chunk_size);

/* ---- benchmark probes ------------------------------------------------------------------ */

/* This machine's sustained read bandwidth from memory: every CPU thread streams a share of a
 * `bytes` buffer (far larger than the caches), best of `repeats`. The yardstick of the
 * memory-bound ops. */
NAPO_API napo_status napo_probe_read_bandwidth(size_t bytes, int32_t repeats, double* bytes_per_second);

/* The unfused composition the fused tokenLogprobs is measured against, as eager PyTorch runs it:
 * log_softmax materialised into `scratch` [N, V] f32, then a gather of each row's token. */
NAPO_API napo_status napo_probe_unfused_logprobs(const napo_tensor* logits, const napo_tensor* tokens,
                                                 napo_tensor* scratch, napo_tensor* logprobs);

/* The sort-based sampler the fused sample is measured against (vLLM's PyTorch path): softmax
 * materialised into `scratch` [B, V] f32, a full descending sort of each row, top-k and top-p
 * masks on the sorted cumulative sum, then an inverse-CDF draw with the same Philox uniform. */
NAPO_API napo_status napo_probe_sorted_sample(const napo_tensor* logits, int32_t top_k, float top_p, uint64_t seed,
                                              napo_tensor* scratch, napo_tensor* tokens);

/* The unfused composition linearLogprobs is measured against starts with the [N, V] logits of a
 * plain GEMM: c = alpha op(a) op(b) + beta c on CPU tensors (a, b float32 or bfloat16, rank 2;
 * c float32), with napo's packed CPU GEMM. */
NAPO_API napo_status napo_probe_gemm(const napo_tensor* a, int32_t trans_a, const napo_tensor* b, int32_t trans_b,
                                     float alpha, float beta, napo_tensor* c);

#ifdef __cplusplus
}
#endif

#endif /* NAPO_H */
