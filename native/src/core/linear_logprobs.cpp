// The C ABI of linearLogprobs: every argument checked, the logits workspace taken from napo's
// allocator (so memoryStats sees it), then the backend of the device the tensors live on.
#include <algorithm>
#include <cmath>

#include "../cpu/backend.h"
#include "cuda_ops.h"
#include "error.h"
#include "math.h"
#include "tensor.h"
#include "validate.h"

using namespace napo;

namespace {

// A napo allocation for the length of one call.
class Workspace {
 public:
  Workspace(napo_device device) : device_(device) {}
  ~Workspace() {
    if (data_) napo_free(device_, data_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  napo_status allocate(size_t floats, float** out) {
    NAPO_TRY(napo_malloc_tagged(device_, floats * sizeof(float), NAPO_MEMORY_WORKSPACE, &data_));
    *out = static_cast<float*>(data_);
    return NAPO_OK;
  }

 private:
  napo_device device_;
  void* data_ = nullptr;
};

napo_status checkMatrix(const char* op, const char* name, const napo_tensor* t) {
  if (!t) return fail(NAPO_ERR_TYPE, "%s: %s is missing", op, name);
  int64_t bytes = 0;
  NAPO_TRY(checkShape(op, name, t->dtype, t->ndim, t->shape, &bytes));
  if (t->dtype != NAPO_FLOAT32 && t->dtype != NAPO_BFLOAT16) {
    return fail(NAPO_ERR_TYPE, "%s: %s must be float32 or bfloat16, got %s", op, name, dtypeName(t->dtype));
  }
  if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: %s must have shape [rows, H] with rows, H >= 1, got %s", op, name,
                shapeText(*t).c_str());
  }
  if (!t->data) return fail(NAPO_ERR_TYPE, "%s: %s has no data", op, name);
  return NAPO_OK;
}

// Whether values[0, count) holds a NaN or an infinity: an exponent of all ones, tested on the bits
// so the loop vectorises (the weight of a real vocabulary is ~10^8 values, read on every call).
template <typename Bits>
bool anyNonFinite(const Bits* values, int64_t count, Bits exponent) {
  Bits seen = 0;
#pragma omp simd reduction(| : seen)
  for (int64_t i = 0; i < count; ++i) seen |= Bits((values[i] & exponent) == exponent);
  return seen != 0;
}

// Finite values of a float32 or bfloat16 host matrix (a CUDA kernel checks its own). Blocks are
// screened on their bits; the first value of a failing block is then found and named.
napo_status checkFiniteMatrix(const char* op, const char* name, const napo_tensor* t) {
  if (t->device.kind != NAPO_CPU) return NAPO_OK;
  const int64_t count = numel(*t);
  constexpr int64_t kBlock = 1 << 14;
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t size = std::min(kBlock, count - start);
    const bool suspect = t->dtype == NAPO_BFLOAT16
                             ? anyNonFinite(dataAs<const uint16_t>(*t) + start, size, uint16_t(0x7f80))
                             : anyNonFinite(dataAs<const uint32_t>(*t) + start, size, uint32_t(0x7f800000));
    if (!suspect) continue;
    for (int64_t i = start; i < start + size; ++i) {
      const float value =
          t->dtype == NAPO_BFLOAT16 ? bf16ToFloat(dataAs<const uint16_t>(*t)[i]) : dataAs<const float>(*t)[i];
      if (!std::isfinite(value)) return notFiniteError(op, name, *t, i, value);
    }
  }
  return NAPO_OK;
}

napo_status checkInputs(const char* op, const napo_tensor* hidden, const napo_tensor* weight, const napo_tensor* tokens,
                        const napo_linear_logprobs_options* options) {
  NAPO_TRY(checkMatrix(op, "hidden", hidden));
  NAPO_TRY(checkMatrix(op, "weight", weight));
  if (weight->dtype != hidden->dtype) {
    return fail(NAPO_ERR_TYPE, "%s: weight is %s but hidden is %s (give both in one dtype)", op,
                dtypeName(weight->dtype), dtypeName(hidden->dtype));
  }
  if (weight->shape[1] != hidden->shape[1]) {
    return fail(NAPO_ERR_RANGE, "%s: weight has shape %s, expected [V, %lld] (nn.Linear's [out, in] layout)", op,
                shapeText(*weight).c_str(), (long long)hidden->shape[1]);
  }
  NAPO_TRY(checkSameDevice(op, "weight", weight, hidden->device));
  const int64_t rows[1] = {hidden->shape[0]};
  NAPO_TRY(checkTensor(op, "tokens", tokens, NAPO_INT32, 1, rows));
  NAPO_TRY(checkSameDevice(op, "tokens", tokens, hidden->device));
  if (!options) return fail(NAPO_ERR_TYPE, "%s: options are missing", op);
  if (!(options->temperature > 0.0f) || std::isinf(options->temperature)) {
    return fail(NAPO_ERR_RANGE, "%s: temperature = %g must be > 0 and finite", op, options->temperature);
  }
  if (options->chunk_size < 0) {
    return fail(NAPO_ERR_RANGE, "%s: chunkSize = %lld must be >= 1 (0: napo's choice)", op,
                (long long)options->chunk_size);
  }
  NAPO_TRY(checkTokenRange(op, tokens, weight->shape[0]));
  NAPO_TRY(checkFiniteMatrix(op, "hidden", hidden));
  return checkFiniteMatrix(op, "weight", weight);
}

}  // namespace

extern "C" {

int64_t napo_linear_logprobs_chunk(int64_t rows, int64_t vocab, int64_t chunkSize) {
  if (chunkSize > 0) return std::min(chunkSize, std::max<int64_t>(vocab, 1));
  // About 4 MiB of float32 logits per chunk, 128 to 4,096 columns: below V/8 once V >= 32K, so the
  // workspace stays an eighth of the [N, V] logits it replaces.
  const int64_t columns = std::clamp<int64_t>((int64_t(1) << 20) / std::max<int64_t>(rows, 1), 128, 4096);
  return std::min(columns, std::max<int64_t>(vocab, 1));
}

napo_status napo_linear_logprobs_validate(const napo_tensor* hidden, const napo_tensor* weight,
                                          const napo_tensor* tokens, const napo_linear_logprobs_options* options) {
  return checkInputs("linearLogprobs", hidden, weight, tokens, options);
}

napo_status napo_linear_logprobs(const napo_tensor* hidden, const napo_tensor* weight, const napo_tensor* tokens,
                                 const napo_linear_logprobs_options* options, napo_tensor* logprobs,
                                 napo_tensor* entropy, napo_tensor* lse, void* stream) {
  constexpr const char* op = "linearLogprobs";
  NAPO_TRY(napo_linear_logprobs_validate(hidden, weight, tokens, options));
  const int64_t rows[1] = {hidden->shape[0]};
  NAPO_TRY(checkTensor(op, "logprobs", logprobs, NAPO_FLOAT32, 1, rows));
  NAPO_TRY(checkTensor(op, "lse", lse, NAPO_FLOAT32, 1, rows));
  if (entropy) NAPO_TRY(checkTensor(op, "entropy", entropy, NAPO_FLOAT32, 1, rows));
  for (const napo_tensor* out : {logprobs, lse, entropy}) NAPO_TRY(checkSameDevice(op, "output", out, hidden->device));
  if (hidden->device.kind == NAPO_CUDA) {
    return cuda::linearLogprobs(*hidden, *weight, *tokens, *options, *logprobs, entropy, *lse, stream);
  }
  const int64_t chunk = napo_linear_logprobs_chunk(hidden->shape[0], weight->shape[0], options->chunk_size);
  Workspace workspace(hidden->device);
  float* tile = nullptr;
  NAPO_TRY(workspace.allocate(size_t(hidden->shape[0] * (chunk + cpu::kLinearTilePad)), &tile));
  return cpuBackend().linearLogprobs(*hidden, *weight, dataAs<const int32_t>(*tokens), options->temperature, chunk,
                                     tile, dataAs<float>(*logprobs), entropy ? dataAs<float>(*entropy) : nullptr,
                                     dataAs<float>(*lse));
}

napo_status napo_linear_logprobs_backward_validate(const napo_tensor* hidden, const napo_tensor* weight,
                                                   const napo_tensor* tokens, const napo_tensor* lse,
                                                   const napo_tensor* entropy, const napo_tensor* gradLogprobs,
                                                   const napo_tensor* gradEntropy,
                                                   const napo_linear_logprobs_options* options) {
  constexpr const char* op = "linearLogprobsBackward";
  NAPO_TRY(checkInputs(op, hidden, weight, tokens, options));
  const int64_t rows[1] = {hidden->shape[0]};
  NAPO_TRY(checkTensor(op, "lse", lse, NAPO_FLOAT32, 1, rows));
  if (entropy) NAPO_TRY(checkTensor(op, "entropy", entropy, NAPO_FLOAT32, 1, rows));
  NAPO_TRY(checkTensor(op, "gradLogprobs", gradLogprobs, NAPO_FLOAT32, 1, rows));
  if (gradEntropy) NAPO_TRY(checkTensor(op, "gradEntropy", gradEntropy, NAPO_FLOAT32, 1, rows));
  for (const napo_tensor* in : {lse, entropy, gradLogprobs, gradEntropy}) {
    NAPO_TRY(checkSameDevice(op, "input", in, hidden->device));
  }
  // In the order the CUDA kernels rank what they find, as tokenLogprobsBackward.
  NAPO_TRY(checkFinite(op, "lse", lse));
  NAPO_TRY(checkFinite(op, "entropy", entropy));
  NAPO_TRY(checkFinite(op, "gradLogprobs", gradLogprobs));
  return checkFinite(op, "gradEntropy", gradEntropy);
}

napo_status napo_linear_logprobs_backward(const napo_tensor* hidden, const napo_tensor* weight,
                                          const napo_tensor* tokens, const napo_tensor* lse, const napo_tensor* entropy,
                                          const napo_tensor* gradLogprobs, const napo_tensor* gradEntropy,
                                          const napo_linear_logprobs_options* options, int32_t accumulate,
                                          napo_tensor* gradHidden, napo_tensor* gradWeight, void* stream) {
  constexpr const char* op = "linearLogprobsBackward";
  NAPO_TRY(napo_linear_logprobs_backward_validate(hidden, weight, tokens, lse, entropy, gradLogprobs, gradEntropy,
                                                  options));
  NAPO_TRY(checkTensor(op, "gradHidden", gradHidden, NAPO_FLOAT32, 2, hidden->shape));
  NAPO_TRY(checkTensor(op, "gradWeight", gradWeight, NAPO_FLOAT32, 2, weight->shape));
  NAPO_TRY(checkSameDevice(op, "gradHidden", gradHidden, hidden->device));
  NAPO_TRY(checkSameDevice(op, "gradWeight", gradWeight, hidden->device));
  if (hidden->device.kind == NAPO_CUDA) {
    return cuda::linearLogprobsBackward(*hidden, *weight, *tokens, *lse, entropy, *gradLogprobs, gradEntropy, *options,
                                        accumulate != 0, *gradHidden, *gradWeight, stream);
  }
  const int64_t rows = hidden->shape[0];
  const int64_t chunk = napo_linear_logprobs_chunk(rows, weight->shape[0], options->chunk_size);
  Workspace workspace(hidden->device);
  float* tile = nullptr;
  // The entropy term needs sum p z = lse - entropy: when the forward's entropy is not given, one
  // more pass over the vocabulary finds it.
  const bool recompute = gradEntropy && !entropy;
  const int64_t tileFloats = rows * (chunk + cpu::kLinearTilePad);
  NAPO_TRY(workspace.allocate(size_t(tileFloats + (recompute ? 3 * rows : 0)), &tile));
  const float* rowEntropy = entropy ? dataAs<const float>(*entropy) : nullptr;
  if (recompute) {
    float* scratch = tile + tileFloats;
    NAPO_TRY(cpuBackend().linearLogprobs(*hidden, *weight, dataAs<const int32_t>(*tokens), options->temperature, chunk,
                                         tile, scratch, scratch + rows, scratch + 2 * rows));
    rowEntropy = scratch + rows;
  }
  return cpuBackend().linearLogprobsBackward(
      *hidden, *weight, dataAs<const int32_t>(*tokens), dataAs<const float>(*lse), rowEntropy,
      dataAs<const float>(*gradLogprobs), gradEntropy ? dataAs<const float>(*gradEntropy) : nullptr,
      options->temperature, chunk, accumulate != 0, tile, dataAs<float>(*gradHidden), dataAs<float>(*gradWeight));
}

}  // extern "C"
