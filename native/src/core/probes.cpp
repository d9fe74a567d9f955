// The C ABI of the benchmark probes and building blocks: arguments checked here, the measuring done
// by the CPU backend of this machine's instruction set (src/cpu/probes.cpp, fma_peak.cpp, matmul.cpp).
#include <cstdlib>

#include "../cpu/backend.h"
#include "error.h"
#include "tensor.h"
#include "validate.h"
#include "napo/model.h"

using namespace napo;

extern "C" {

napo_status napo_probe_read_bandwidth(size_t bytes, int32_t repeats, double* bytesPerSecond) {
  if (!bytesPerSecond) return fail(NAPO_ERR_TYPE, "probeReadBandwidth: out is missing");
  if (bytes < (1u << 20) || bytes > (size_t(1) << 40) || repeats < 1) {
    return fail(NAPO_ERR_RANGE, "probeReadBandwidth: needs 1 MiB to 1 TiB and >= 1 repeat, got %zu bytes, %d", bytes,
                repeats);
  }
  const int64_t count = int64_t(bytes / sizeof(float));
  float* data = static_cast<float*>(std::aligned_alloc(64, size_t(count) * sizeof(float)));
  if (!data) return fail(NAPO_ERR_OUT_OF_MEMORY, "probeReadBandwidth: could not allocate %zu bytes", bytes);
  *bytesPerSecond = cpuBackend().probeReadBandwidth(data, count, repeats);
  std::free(data);
  return NAPO_OK;
}

napo_status napo_probe_unfused_logprobs(const napo_tensor* logits, const napo_tensor* tokens, napo_tensor* scratch,
                                        napo_tensor* logprobs) {
  constexpr const char* op = "probeUnfusedLogprobs";
  NAPO_TRY(napo_token_logprobs_validate(logits, tokens, 1.0f));
  if (logits->device.kind != NAPO_CPU) return fail(NAPO_ERR_UNAVAILABLE, "%s: CPU tensors only", op);
  NAPO_TRY(checkTensor(op, "scratch", scratch, NAPO_FLOAT32, 2, logits->shape));
  const int64_t rows[1] = {logits->shape[0]};
  NAPO_TRY(checkTensor(op, "logprobs", logprobs, NAPO_FLOAT32, 1, rows));
  cpuBackend().probeUnfusedLogprobs(*logits, dataAs<const int32_t>(*tokens), dataAs<float>(*scratch),
                                    dataAs<float>(*logprobs));
  return NAPO_OK;
}

napo_status napo_probe_sorted_sample(const napo_tensor* logits, int32_t topK, float topP, uint64_t seed,
                                     napo_tensor* scratch, napo_tensor* tokens) {
  constexpr const char* op = "probeSortedSample";
  NAPO_TRY(checkLogits(op, logits));
  if (logits->device.kind != NAPO_CPU) return fail(NAPO_ERR_UNAVAILABLE, "%s: CPU tensors only", op);
  if (topK < 0 || !(topP > 0.0f && topP <= 1.0f)) {
    return fail(NAPO_ERR_RANGE, "%s: topK = %d, topP = %g out of range", op, topK, topP);
  }
  NAPO_TRY(checkTensor(op, "scratch", scratch, NAPO_FLOAT32, 2, logits->shape));
  const int64_t rows[1] = {logits->shape[0]};
  NAPO_TRY(checkTensor(op, "tokens", tokens, NAPO_INT32, 1, rows));
  cpuBackend().probeSortedSample(*logits, topK, topP, seed, dataAs<float>(*scratch), dataAs<int32_t>(*tokens));
  return NAPO_OK;
}

napo_status napo_probe_gemm(const napo_tensor* a, int32_t transA, const napo_tensor* b, int32_t transB, float alpha,
                            float beta, napo_tensor* c) {
  constexpr const char* op = "probeGemm";
  for (const napo_tensor* t : {a, b, static_cast<const napo_tensor*>(c)}) {
    if (!t || t->device.kind != NAPO_CPU || t->ndim != 2) return fail(NAPO_ERR_RANGE, "%s: CPU matrices only", op);
  }
  if ((a->dtype != NAPO_FLOAT32 && a->dtype != NAPO_BFLOAT16) || (b->dtype != NAPO_FLOAT32 && b->dtype != NAPO_BFLOAT16) ||
      c->dtype != NAPO_FLOAT32) {
    return fail(NAPO_ERR_TYPE, "%s: a and b are float32 or bfloat16, c float32", op);
  }
  const int64_t m = transA ? a->shape[1] : a->shape[0], k = transA ? a->shape[0] : a->shape[1];
  const int64_t n = transB ? b->shape[0] : b->shape[1], kb = transB ? b->shape[1] : b->shape[0];
  if (kb != k || c->shape[0] != m || c->shape[1] != n) {
    return fail(NAPO_ERR_RANGE, "%s: op(a) is [%lld, %lld], op(b) [%lld, %lld], c %s", op, (long long)m, (long long)k,
                (long long)kb, (long long)n, shapeText(*c).c_str());
  }
  cpuBackend().gemm({a->data, a->dtype, transA != 0, a->shape[1]}, {b->data, b->dtype, transB != 0, b->shape[1]}, m, n,
                    k, alpha, beta, dataAs<float>(*c), n);
  return NAPO_OK;
}

napo_status napo_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m < 0 || n < 0 || k < 0) {
    return fail(NAPO_ERR_RANGE, "sgemm: sizes must be >= 0, got m = %lld, n = %lld, k = %lld", (long long)m,
                (long long)n, (long long)k);
  }
  if ((m > 0 && n > 0 && k > 0 && (!a || !b)) || (m > 0 && n > 0 && !c)) {
    return fail(NAPO_ERR_TYPE, "sgemm: a, b and c must not be NULL");
  }
  if (ldc < n || lda < (trans_a ? m : k) || ldb < (trans_b ? k : n)) {
    return fail(NAPO_ERR_RANGE, "sgemm: a leading dimension is smaller than its row");
  }
  cpuBackend().matmul(trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return NAPO_OK;
}

napo_status napo_cpu_peak_gflops(double seconds, double* gflops) {
  if (!gflops) return fail(NAPO_ERR_TYPE, "cpuPeakGflops: out is missing");
  if (!(seconds > 0.0) || seconds > 60.0) {
    return fail(NAPO_ERR_RANGE, "cpuPeakGflops: seconds = %g must be in (0, 60]", seconds);
  }
  *gflops = cpuBackend().fmaPeakGflops(seconds);
  return NAPO_OK;
}

}  // extern "C"
