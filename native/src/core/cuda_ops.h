// The CUDA backend's ops, as the core dispatches to them. Arguments are validated by
// src/core/op_abi.cpp; tensors are device memory; work is enqueued on `stream` (NULL = the device's
// stream). Implemented in src/cuda/*.cu, or by cuda_absent.cpp in a build without nvcc.
#pragma once

#include "napo/napo.h"

namespace napo::cuda {

napo_status sample(const napo_tensor& logits, const napo_sample_options& options, napo_tensor& tokens,
                   napo_tensor& logprobs, void* stream);

napo_status tokenLogprobs(const napo_tensor& logits, const napo_tensor& tokens, float temperature,
                          napo_tensor& logprobs, napo_tensor* entropy, napo_tensor& lse, void* stream);

napo_status tokenLogprobsBackward(const napo_tensor& logits, const napo_tensor& tokens, const napo_tensor& lse,
                                  const napo_tensor* entropy, const napo_tensor& gradLogprobs,
                                  const napo_tensor* gradEntropy, float temperature, napo_tensor& gradLogits,
                                  void* stream);

napo_status groupAdvantages(const napo_tensor& rewards, const napo_advantage_options& options,
                            napo_tensor& advantages, void* stream);

napo_status policyLoss(const napo_tensor& logprobs, const napo_tensor& oldLogprobs, const napo_tensor* refLogprobs,
                       const napo_tensor* entropy, const napo_tensor& advantages, const napo_tensor& mask,
                       const napo_policy_loss_options& options, napo_tensor& gradLogprobs, napo_tensor* gradEntropy,
                       napo_policy_loss_stats* stats, void* stream);

napo_status repetitionPenalty(const napo_tensor& logits, const napo_tensor& history, float penalty, napo_tensor& out,
                              void* stream);

napo_status maskedRowSum(const napo_tensor& values, const napo_tensor& mask, napo_tensor& sums, void* stream);

napo_status maskedRowSumBackward(const napo_tensor& mask, const napo_tensor& gradSums, napo_tensor& gradValues,
                                 void* stream);

napo_status linearLogprobs(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                           const napo_linear_logprobs_options& options, napo_tensor& logprobs, napo_tensor* entropy,
                           napo_tensor& lse, void* stream);

napo_status linearLogprobsBackward(const napo_tensor& hidden, const napo_tensor& weight, const napo_tensor& tokens,
                                   const napo_tensor& lse, const napo_tensor* entropy, const napo_tensor& gradLogprobs,
                                   const napo_tensor* gradEntropy, const napo_linear_logprobs_options& options,
                                   bool accumulate, napo_tensor& gradHidden, napo_tensor& gradWeight, void* stream);

}  // namespace napo::cuda
