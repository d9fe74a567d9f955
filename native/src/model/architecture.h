// An architecture is a description: what its block is made of and what its parameters are
// called. The families differ only here (architecture.cpp); the block that runs them is written
// once (causal_lm.cpp), for training and for decoding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "napo/model.h"

namespace napo::model {

struct Architecture {
  const char* name;
  bool layerNorm;         // LayerNorm with bias (gpt2), else RMSNorm
  bool learnedPositions;  // a position table (gpt2), else RoPE
  bool qkNorm;            // RMSNorm on each head of q and k before RoPE (qwen3)
  bool gatedMlp;          // down(silu(gate(x)) * up(x)), else proj(gelu(fc(x)))
};

const Architecture& architectureOf(napo_model_family family);

// One parameter in the flat buffers (parameters, gradients, AdamW moments).
struct ParamSpec {
  std::string name;
  int32_t ndim;
  int64_t shape[2];
  int64_t offset;  // in floats; every parameter starts on a 64-byte boundary
  int64_t numel;
  bool decay;
  bool checkpointTransposed;
};

// A linear layer y = x W^T (+ b): offsets of W [out, in] and b (-1: none).
struct Linear {
  int64_t weight = -1, bias = -1;
  int64_t out = 0, in = 0;
};

// A norm's weight (and bias, LayerNorm) offsets.
struct Norm {
  int64_t weight = -1, bias = -1;
};

struct LayerParams {
  Norm attentionNorm;
  // Projections into the q | k | v columns, in column order: one fused c_attn (gpt2) or q, k, v.
  std::vector<Linear> qkv;
  Norm qNorm, kNorm;
  Linear output;
  Norm mlpNorm;
  // fc (gpt2), or gate then up.
  std::vector<Linear> mlpIn;
  Linear mlpOut;
};

struct Registry {
  std::vector<ParamSpec> specs;
  std::vector<LayerParams> layers;
  int64_t embed = -1, positions = -1, lmHead = -1;
  Norm finalNorm;
  int64_t floats = 0;  // the flat buffers' length, padding included
};

Registry buildRegistry(const napo_model_config& config);

}  // namespace napo::model
