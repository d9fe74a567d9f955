// Model bindings: a ModelHandle class over the napo_model C ABI, with score, forward, their
// backwards, the optimizer step, prefill and decode as AsyncWorkers that return Promises.
#pragma once

#include <napi.h>

namespace napo::addon {

// Adds ModelHandle, modelCpuPeakGflops, modelSgemm and modelSgemmBench to the exports.
void registerModel(Napi::Env env, Napi::Object exports);

}  // namespace napo::addon
