// Host-side plumbing shared by the CUDA launchers: one op call on one device, with its stream, a
// small scratch block from the caching allocator (the kernel's error record first, then whatever
// the op uploads, such as per-row parameters), and the read-back of what the kernel reported.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernel_errors.h"
#include "napo/napo.h"

namespace napo::cuda {

class DeviceCall {
 public:
  // `stream` as the op received it (null: the device's own stream).
  DeviceCall(const char* op, napo_device device, void* stream);
  // Waits for the stream before the scratch goes back to the allocator, so a kernel still in
  // flight on an early error return never writes into memory handed out again.
  ~DeviceCall();
  DeviceCall(const DeviceCall&) = delete;
  DeviceCall& operator=(const DeviceCall&) = delete;

  // Selects the device, allocates the scratch (the error record plus `extraBytes` at extra()) and
  // clears the error record on the stream.
  napo_status begin(size_t extraBytes = 0);
  // Host -> device on the stream; `src` may be freed when this returns.
  napo_status upload(void* dst, const void* src, size_t bytes);
  // Reports a failed kernel launch.
  napo_status launched();
  // Waits for the stream and copies the error record back.
  napo_status finish(KernelErrors* found);
  // Device -> host, blocking; for the few values an error message quotes.
  napo_status download(void* dst, const void* src, size_t bytes);

  const char* op() const { return op_; }
  cudaStream_t stream() const { return stream_; }
  KernelErrors* errors() const { return static_cast<KernelErrors*>(scratch_); }
  void* extra() const { return static_cast<char*>(scratch_) + kErrorBytes; }

 private:
  // The extra area starts 256 bytes in, aligned for anything.
  static constexpr size_t kErrorBytes = 256;

  const char* op_;
  napo_device device_;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
};

// The `launch(kernel, grid, block, args...)` the shared launch functions expect, on a stream.
inline auto launchOn(cudaStream_t stream) {
  return [stream](auto kernel, dim3 grid, dim3 block, auto... args) { kernel<<<grid, block, 0, stream>>>(args...); };
}

// The CPU backend's message for the first bad logit the kernel found (`key` as in
// KernelErrors::badLogit); `temperatures` holds one value, or one per row.
napo_status badLogitFound(DeviceCall& call, const napo_tensor& logits, unsigned long long key,
                          napo_row_f32 temperatures);

// One element of a device tensor of any dtype, as a double (for messages).
napo_status downloadElement(DeviceCall& call, const napo_tensor& tensor, int64_t index, double* value);

// The CPU backend's message for the first out-of-range token the kernel found.
napo_status badTokenFound(DeviceCall& call, const napo_tensor& tokens, int64_t index, int64_t vocab);

}  // namespace napo::cuda
