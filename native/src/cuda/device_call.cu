#include "device_call.h"

#include <cstdint>

#include "../core/allocator.h"
#include "../core/error.h"
#include "../core/math.h"
#include "../core/tensor.h"
#include "stream.h"

namespace napo::cuda {

DeviceCall::DeviceCall(const char* op, napo_device device, void* stream)
    : op_(op), device_(device), stream_(streamOr(stream, device.index)) {}

DeviceCall::~DeviceCall() {
  if (!scratch_) return;
  cudaStreamSynchronize(stream_);
  CachingAllocator* allocator;
  if (allocatorFor(device_, &allocator) == NAPO_OK) allocator->release(scratch_);
}

napo_status DeviceCall::begin(size_t extraBytes) {
  cudaError_t status = cudaSetDevice(device_.index);
  if (status != cudaSuccess) return cudaFailure(op_, status);
  CachingAllocator* allocator;
  NAPO_TRY(allocatorFor(device_, &allocator));
  NAPO_TRY(allocator->allocate(kErrorBytes + extraBytes, NAPO_MEMORY_WORKSPACE, &scratch_));
  status = cudaMemsetAsync(scratch_, 0xff, sizeof(KernelErrors), stream_);
  if (status != cudaSuccess) return cudaFailure(op_, status);
  return NAPO_OK;
}

napo_status DeviceCall::upload(void* dst, const void* src, size_t bytes) {
  const cudaError_t status = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_);
  return status == cudaSuccess ? NAPO_OK : cudaFailure(op_, status);
}

napo_status DeviceCall::launched() {
  const cudaError_t status = cudaGetLastError();
  return status == cudaSuccess ? NAPO_OK : cudaFailure(op_, status);
}

napo_status DeviceCall::finish(KernelErrors* found) { return download(found, errors(), sizeof *found); }

napo_status DeviceCall::download(void* dst, const void* src, size_t bytes) {
  cudaError_t status = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_);
  if (status == cudaSuccess) status = cudaStreamSynchronize(stream_);
  return status == cudaSuccess ? NAPO_OK : cudaFailure(op_, status);
}

napo_status badLogitFound(DeviceCall& call, const napo_tensor& logits, unsigned long long key,
                          napo_row_f32 temperatures) {
  const LogitPosition where = decodeBadLogit(key, logits.shape[1]);
  float value = 0.0f;  // "no finite value" quotes none
  if (where.column >= 0) {
    const size_t size = dtypeSize(logits.dtype);
    const char* at = static_cast<const char*>(logits.data) + size_t(where.row * logits.shape[1] + where.column) * size;
    if (logits.dtype == NAPO_BFLOAT16) {
      uint16_t bits;
      NAPO_TRY(call.download(&bits, at, sizeof bits));
      value = bf16ToFloat(bits);
    } else {
      NAPO_TRY(call.download(&value, at, sizeof value));
    }
  }
  const float temperature = temperatures.values[temperatures.count == 1 ? 0 : where.row];
  return badLogitError(call.op(), where, value, temperature);
}

napo_status downloadElement(DeviceCall& call, const napo_tensor& tensor, int64_t index, double* value) {
  const char* at = static_cast<const char*>(tensor.data) + size_t(index) * dtypeSize(tensor.dtype);
  switch (tensor.dtype) {
    case NAPO_INT32: {
      int32_t v;
      NAPO_TRY(call.download(&v, at, sizeof v));
      *value = v;
      return NAPO_OK;
    }
    case NAPO_BFLOAT16: {
      uint16_t v;
      NAPO_TRY(call.download(&v, at, sizeof v));
      *value = bf16ToFloat(v);
      return NAPO_OK;
    }
    case NAPO_UINT8:
    case NAPO_BOOL: {
      uint8_t v;
      NAPO_TRY(call.download(&v, at, sizeof v));
      *value = v;
      return NAPO_OK;
    }
    default: {
      float v;
      NAPO_TRY(call.download(&v, at, sizeof v));
      *value = v;
      return NAPO_OK;
    }
  }
}

napo_status badTokenFound(DeviceCall& call, const napo_tensor& tokens, int64_t index, int64_t vocab) {
  int32_t token;
  NAPO_TRY(call.download(&token, static_cast<const int32_t*>(tokens.data) + index, sizeof token));
  return badTokenError(call.op(), index, token, vocab);
}

}  // namespace napo::cuda
