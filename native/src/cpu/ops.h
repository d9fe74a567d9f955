// The CPU backend's ops. Arguments are already validated by src/core/ops.cpp; these only compute.
#pragma once

#include "napo/napo.h"

namespace napo::cpu {

napo_status sample(const napo_tensor& logits, const napo_sample_options& options, int32_t* tokens,
                   float* logprobs);

napo_status tokenLogprobs(const napo_tensor& logits, const int32_t* tokens, float temperature,
                          float* logprobs, float* entropy, float* lse);

napo_status tokenLogprobsBackward(const napo_tensor& logits, const int32_t* tokens, const float* lse,
                                  const float* entropy, const float* gradLogprobs,
                                  const float* gradEntropy, float temperature,
                                  napo_tensor& gradLogits);

void groupAdvantages(const float* rewards, int64_t count, const napo_advantage_options& options,
                     float* advantages);

void policyLoss(const float* logprobs, const float* oldLogprobs, const float* refLogprobs,
                const float* advantages, const float* mask, int64_t sequences, int64_t steps,
                const napo_policy_loss_options& options, float* gradLogprobs,
                napo_policy_loss_stats* stats);

}  // namespace napo::cpu
