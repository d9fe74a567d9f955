// TinyGPT: a GPT-2 style decoder (pre-LayerNorm, learned positions, causal multi-head attention,
// GELU MLP, tied embeddings). Parameters, gradients and AdamW moments are each one flat napo
// allocation with every parameter at a fixed offset; activations of the last forward are kept for
// the backward; decoding keeps a KV cache per layer.
#pragma once

#include <string>
#include <vector>

#include "buffer.h"
#include "napo/model.h"
#include "cpu/backend.h"

namespace napo::model {

struct ParamSpec {
  std::string name;
  int32_t ndim;
  int64_t shape[2];
  int64_t offset;
  int64_t numel;
  bool decay;  // weight decay applies (2-D weights)
};

struct LayerOffsets {
  int64_t ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fc2w, fc2b;
};

class TinyGPT {
 public:
  explicit TinyGPT(const napo_model_config& config);
  napo_status init();                       // allocates and initialises from the seed
  napo_status copyParametersFrom(const TinyGPT& other);

  napo_status forward(const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits);
  napo_status backward(const napo_tensor* gradLogits);
  napo_status zeroGrad();
  napo_status step(const napo_adamw_options& options, napo_adamw_result* result);
  napo_status prefill(const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits);
  napo_status decodeStep(const napo_tensor* tokens, napo_tensor* logits);

  const napo_model_config& config() const { return config_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  float* params() const { return params_.data(); }
  const float* grads() const { return grads_.empty() ? nullptr : grads_.data(); }
  int64_t steps() const { return steps_; }
  // Scalars in all parameters (sum of numel; paramCount_ also counts the alignment padding).
  int64_t parameterTotal() const;
  // AdamW moments packed in parameter order (no padding) in host memory, and the step count.
  napo_status readOptimizerState(float* expAvg, float* expAvgSq, int64_t* steps) const;
  napo_status writeOptimizerState(const float* expAvg, const float* expAvgSq, int64_t steps);
  int64_t cachePosition(int64_t row) const;

 private:
  napo_status checkBatch(const char* op, const napo_tensor* tokens, const napo_tensor* lengths,
                         int64_t* batch, int64_t* time);
  napo_status checkOutput(const char* op, const napo_tensor* out, int ndim, const int64_t* shape);
  // Embedding, blocks and final LayerNorm over tokens_/lengths_, caching activations.
  napo_status trunk(int64_t batch, int64_t time);
  napo_status ensureGrads();

  // Activation layout of one layer, offsets in floats from the layer's base.
  struct LayerActs {
    int64_t resid, ln1, ln1Mean, ln1Rstd, qkv, probs, att, mid, ln2, ln2Mean, ln2Rstd, fc, gelu;
    int64_t size;
  };
  LayerActs layerActs(int64_t rows, int64_t batch, int64_t time) const;
  float* layerBase(int64_t layer, const LayerActs& a) { return acts_.data() + layer * a.size; }

  napo_model_config config_;
  napo_device device_;
  std::vector<ParamSpec> specs_;
  std::vector<LayerOffsets> layers_;
  int64_t wte_ = 0, wpe_ = 0, lnfw_ = 0, lnfb_ = 0, paramCount_ = 0;

  Buffer<float> params_, grads_, m_, v_;
  int64_t steps_ = 0;

  // The last trunk: its batch, tokens and activations.
  int64_t actBatch_ = 0, actTime_ = 0;
  bool actsForBackward_ = false;
  Buffer<int32_t> tokens_, lengths_;
  Buffer<float> acts_;   // nLayers blocks of LayerActs, then final: resid [BT,D], lnf [BT,D], mean, rstd
  Buffer<float> work_;   // backward / decode workspace

  // KV cache: per layer k and v, each [B, H, C, hd].
  int64_t cacheBatch_ = 0;
  Buffer<float> kvCache_;
  std::vector<int32_t> positions_;
};

}  // namespace napo::model
