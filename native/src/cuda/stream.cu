#include "stream.h"

#include <array>
#include <mutex>

#include "../core/error.h"

namespace napo {

cudaStream_t deviceStream(int deviceIndex) {
  static std::array<cudaStream_t, 16> streams{};
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  cudaStream_t& stream = streams[size_t(deviceIndex) % streams.size()];
  if (!stream) {
    cudaSetDevice(deviceIndex);
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  }
  return stream;
}

napo_status cudaFailure(const char* op, cudaError_t status) {
  cudaGetLastError();
  const napo_status kind = status == cudaErrorMemoryAllocation ? NAPO_ERR_OUT_OF_MEMORY : NAPO_ERR_DEVICE;
  return fail(kind, "%s: %s: %s", op, cudaGetErrorName(status), cudaGetErrorString(status));
}

}  // namespace napo
