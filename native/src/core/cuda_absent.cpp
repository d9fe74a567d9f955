// The CUDA runtime as seen by a library built without nvcc: nothing there, and it says why.
#include <cstdio>

#include "error.h"
#include "runtime.h"

namespace napo {

namespace {
napo_status noAllocate(int, size_t, void**) { return NAPO_ERR_UNAVAILABLE; }
void noRelease(int, void*) {}
bool noMemory(int, int64_t*, int64_t*) { return false; }
}  // namespace

constexpr const char* kReason = "napo was built without CUDA (nvcc not found or NAPO_CUDA=OFF)";

int cudaDeviceCount() { return 0; }

void cudaBackendInfo(napo_backend_info* info) {
  info->cuda_compiled = 0;
  info->cuda_available = 0;
  info->cuda_device_count = 0;
  std::snprintf(info->cuda_unavailable_reason, sizeof info->cuda_unavailable_reason, "%s", kReason);
}

MemorySource cudaMemorySource() { return {noAllocate, noRelease, noMemory}; }

napo_status cudaDeviceProperties(int, napo_device_properties*) {
  return fail(NAPO_ERR_UNAVAILABLE, "%s", kReason);
}

napo_status cudaCopy(napo_device, void*, napo_device, const void*, size_t) {
  return fail(NAPO_ERR_UNAVAILABLE, "%s", kReason);
}

napo_status cudaSynchronize(int) { return fail(NAPO_ERR_UNAVAILABLE, "%s", kReason); }

}  // namespace napo

#include "cuda_ops.h"
#include "model/layer_kernels.h"

namespace napo::cuda {

napo_status sample(const napo_tensor&, const napo_sample_options&, napo_tensor&, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "sample: %s", kReason);
}

napo_status tokenLogprobs(const napo_tensor&, const napo_tensor&, float, napo_tensor&, napo_tensor*, napo_tensor&,
                          void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "tokenLogprobs: %s", kReason);
}

napo_status tokenLogprobsBackward(const napo_tensor&, const napo_tensor&, const napo_tensor&, const napo_tensor*,
                                  const napo_tensor&, const napo_tensor*, float, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "tokenLogprobsBackward: %s", kReason);
}

napo_status groupAdvantages(const napo_tensor&, const napo_advantage_options&, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "groupAdvantages: %s", kReason);
}

napo_status policyLoss(const napo_tensor&, const napo_tensor&, const napo_tensor*, const napo_tensor*,
                       const napo_tensor&, const napo_tensor&, const napo_policy_loss_options&, napo_tensor&,
                       napo_tensor*, napo_policy_loss_stats*, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "policyLoss: %s", kReason);
}

napo_status repetitionPenalty(const napo_tensor&, const napo_tensor&, float, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "repetitionPenalty: %s", kReason);
}

napo_status maskedRowSum(const napo_tensor&, const napo_tensor&, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "maskedRowSum: %s", kReason);
}

napo_status maskedRowSumBackward(const napo_tensor&, const napo_tensor&, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "maskedRowSumBackward: %s", kReason);
}

napo_status linearLogprobs(const napo_tensor&, const napo_tensor&, const napo_tensor&,
                           const napo_linear_logprobs_options&, napo_tensor&, napo_tensor*, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "linearLogprobs: %s", kReason);
}

napo_status linearLogprobsBackward(const napo_tensor&, const napo_tensor&, const napo_tensor&, const napo_tensor&,
                                   const napo_tensor*, const napo_tensor&, const napo_tensor*,
                                   const napo_linear_logprobs_options&, bool, napo_tensor&, napo_tensor&, void*) {
  return fail(NAPO_ERR_UNAVAILABLE, "linearLogprobsBackward: %s", kReason);
}

std::unique_ptr<model::LayerKernels> modelLayerKernels(napo_device) {
  fail(NAPO_ERR_UNAVAILABLE, "model: %s", kReason);
  return nullptr;
}

}  // namespace napo::cuda
