// A decoder-only causal LM of any family in architecture.h. Parameters, gradients and AdamW
// moments are each one flat napo allocation with every parameter at a fixed offset (the
// registry); the block is written once and runs training (activations kept for the backward),
// prefill and decode (keys and values kept in the KV cache). Every buffer lives on the config's
// device and every kernel runs there (layer_kernels.h); what the host decides (batch lengths,
// which rows are scored) is kept in host copies and uploaded. Outputs and gradients coming in
// (logits, log-probs, their gradients) are memory of the model's device. The caller
// (model_abi.cpp) has validated every argument.
#pragma once

#include <memory>
#include <vector>

#include "architecture.h"
#include "buffer.h"
#include "layer_kernels.h"
#include "napo/model.h"

namespace napo::model {

// A host batch of rows padded to `time`: tokens [batch * time], lengths [batch].
struct HostBatch {
  int64_t batch, time;
  const int32_t* tokens;
  const int32_t* lengths;  // null: every row is `time` long
};

class CausalLM {
 public:
  explicit CausalLM(const napo_model_config& config);
  // With the given kernels (the emulation harness runs the CUDA kernels on the host this way).
  CausalLM(const napo_model_config& config, std::unique_ptr<LayerKernels> kernels);
  napo_status initialize();  // random weights from the seed
  napo_status copyParametersFrom(const CausalLM& other);

  napo_status score(const HostBatch& batch, const int32_t* targets, const napo_model_score_options& options,
                    float* logprobs, float* entropy);
  napo_status scoreBackward(const float* gradLogprobs, const float* gradEntropy);
  napo_status forward(const HostBatch& batch, float* logits);
  napo_status backward(const float* gradLogits);
  napo_status zeroGrad();
  napo_status step(const napo_adamw_options& options, napo_adamw_result* result);
  napo_status prefill(const HostBatch& batch, int64_t capacity, float* logits);
  napo_status decodeStep(const int32_t* tokens, float* logits);
  // The bytes this model holds at the peak of a pass, by category (napo_model_memory_plan).
  void memoryPlan(const napo_model_memory_query& query, int64_t* bytes) const;
  // Hands the activations and workspaces of the last call back to the allocator (a backward does
  // this itself); releaseCache also drops the KV cache.
  void releaseActivations();
  void releaseCache();

  const napo_model_config& config() const { return config_; }
  const Registry& registry() const { return registry_; }
  const float* params() const { return params_.data(); }
  float* params() { return params_.data(); }
  const float* grads() const { return grads_.empty() ? nullptr : grads_.data(); }
  int64_t steps() const { return steps_; }
  int64_t parameterTotal() const;
  napo_status readOptimizerState(float* expAvg, float* expAvgSq, int64_t* steps) const;
  napo_status writeOptimizerState(const float* expAvg, const float* expAvgSq, int64_t steps);
  int64_t cacheBatch() const { return cacheBatch_; }
  int64_t cachePosition(int64_t row) const;
  int64_t cacheCapacity() const { return cacheCapacity_; }
  // What the last call left for a backward: nothing, logits (forward) or log-probs (score).
  enum class Kept { kNothing, kLogits, kScores };
  Kept kept() const { return kept_; }
  int64_t keptBatch() const { return batch_; }
  int64_t keptTime() const { return time_; }
  bool keptEntropy() const { return scoreEntropy_; }

 private:
  // One run of the blocks over batch * queries rows.
  struct Pass {
    int64_t batch, queries;
    const int32_t* start;      // [batch]: position of each row's first query (-1: inactive row)
    const int32_t* count;      // [batch]: queries of each row that are real (the rest is padding)
    const int32_t* positions;  // [rows]: each query's position (-1: padding / inactive)
    bool useCache;             // write k, v into the KV cache and attend over it
    bool keepAll;              // keep every layer's activations for a backward
    int64_t rows() const { return batch * queries; }
  };
  // Offsets (floats) into acts_ for a pass: one layer's slot, the residual stream, the final norm.
  struct Layout {
    int64_t h1, mean1, rstd1, qkRaw, qkRstd, qkv, lse, att, mid, h2, mean2, rstd2, mlp0, mlp1;
    int64_t layerSize, layerSlots, residual, residualSlots, finalOut, finalMean, finalRstd, total;
  };
  struct LayerView {
    float *input, *output, *h1, *mean1, *rstd1, *qkRaw, *qkRstd, *qkv, *lse, *att, *mid, *h2, *mean2, *rstd2,
        *mlp0, *mlp1;
  };
  // Backward / forward scratch, offsets into work_.
  struct WorkLayout {
    int64_t dres, dh, dqkv, datt, mlpA, mlpB, total;
  };

  Layout layoutFor(const Pass& pass) const;
  WorkLayout workLayoutFor(int64_t rows) const;
  LayerView layerView(const Layout& layout, int64_t layer, int64_t rows);
  napo_status loadBatch(const HostBatch& batch);
  napo_status runPass(const Pass& pass);  // embedding, blocks, final norm
  void blockForward(int64_t layer, const Pass& pass, const LayerView& a, float* act);
  void blockBackward(int64_t layer, const LayerView& a, float* work, const WorkLayout& w);
  void normForward(const Norm& norm, int64_t rows, const float* x, float* y, float* mean, float* rstd);
  void normBackward(const Norm& norm, int64_t rows, const float* x, const float* mean, const float* rstd,
                    const float* dy, float* dx, bool accumulate);
  void linearForward(const Linear& linear, int64_t rows, const float* x, int64_t ldx, float* y, int64_t ldy,
                     float beta);
  void linearBackward(const Linear& linear, int64_t rows, const float* x, int64_t ldx, const float* dy, int64_t ldy,
                      float* dx, int64_t lddx, bool accumulate);
  napo_status trunkBackward(const float* dfinal);  // from d loss / d final hidden [rows, D]
  napo_status ensureRope(int64_t positions);
  int64_t ropeRows(int64_t positions) const;  // the table's rows once it covers `positions`
  napo_status ensureGrads();
  napo_status reserveZeroed(Buffer<float>& buffer, int64_t count);
  napo_status uploadInputs();  // the host copies of tokens, positions, lengths, starts
  napo_status lmHeadLogits(const float* hidden, int64_t rows, float* logits);

  napo_model_config config_;
  std::unique_ptr<LayerKernels> kernels_;
  const Architecture& arch_;
  Registry registry_;
  napo_device device_;
  int64_t qkvWidth_, qWidth_, kvWidth_;

  Buffer<float> params_{NAPO_MEMORY_PARAMETER}, grads_{NAPO_MEMORY_GRADIENT};
  Buffer<float> m_{NAPO_MEMORY_OPTIMIZER_STATE}, v_{NAPO_MEMORY_OPTIMIZER_STATE};
  int64_t steps_ = 0;

  // RoPE tables [positions, head_dim / 2], grown on demand.
  Buffer<float> ropeCos_{NAPO_MEMORY_WORKSPACE}, ropeSin_{NAPO_MEMORY_WORKSPACE};
  int64_t ropePositions_ = 0;

  // The last batch: padded tokens (-1 past a length), positions, lengths, starts (0, or the
  // cache position when decoding); decided on the host, uploaded to the device's buffers.
  int64_t batch_ = 0, time_ = 0;
  std::vector<int32_t> hostTokens_, hostPositions_, hostLengths_, hostStarts_;
  Buffer<int32_t> tokens_{NAPO_MEMORY_INPUT}, positions_{NAPO_MEMORY_INPUT}, lengths_{NAPO_MEMORY_INPUT},
      starts_{NAPO_MEMORY_INPUT};
  Buffer<float> acts_{NAPO_MEMORY_ACTIVATION}, work_{NAPO_MEMORY_TEMPORARY};
  Kept kept_ = Kept::kNothing;

  // Scoring: the scored rows gathered, their targets, the fused op's lse / entropy and workspace.
  std::vector<int64_t> scoredRows_;
  Buffer<int32_t> scoreTargets_{NAPO_MEMORY_INPUT};
  Buffer<float> scoreHidden_{NAPO_MEMORY_ACTIVATION}, scoreLse_{NAPO_MEMORY_ACTIVATION};
  Buffer<float> scoreEntropyValues_{NAPO_MEMORY_ACTIVATION}, scoreValues_{NAPO_MEMORY_TEMPORARY};
  Buffer<float> scoreTile_{NAPO_MEMORY_WORKSPACE};
  float scoreTemperature_ = 1.0f;
  bool scoreEntropy_ = false;

  // KV cache: [batch, capacity, kvHeads, headDim] per layer, keys then values.
  Buffer<float> cache_{NAPO_MEMORY_KV_CACHE};
  int64_t cacheBatch_ = 0, cacheCapacity_ = 0;
  std::vector<int32_t> cachePositions_;
};

}  // namespace napo::model
