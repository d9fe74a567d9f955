// The model layers' kernels on a real device against the CPU backend: the suites of
// layer_checks.h with device memory and real launches (the harness runs the same suites on the
// host). Called by cuda_tests.cpp once a device answers.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "layer_checks.h"

namespace {

// The layer checks' Device on a GPU: every copy is freed with the Device; a failed CUDA call ends
// the run, naming it.
class CudaDevice {
 public:
  CudaDevice() = default;
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;
  ~CudaDevice() {
    for (void* block : blocks_) cudaFree(block);
  }

  template <typename T>
  T* copy(const std::vector<T>& values) {
    void* block = nullptr;
    check(cudaMalloc(&block, values.size() * sizeof(T) + 1), "cudaMalloc");
    blocks_.push_back(block);
    if (!values.empty()) check(cudaMemcpy(block, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
    return static_cast<T*>(block);
  }

  template <typename T>
  std::vector<T> read(const T* data, size_t count) const {
    check(cudaGetLastError(), "a kernel launch");
    check(cudaDeviceSynchronize(), "a kernel");
    std::vector<T> values(count);
    if (count) check(cudaMemcpy(values.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return values;
  }

  auto launcher() const {
    return [](auto kernel, dim3 grid, dim3 block, auto... args) { kernel<<<grid, block>>>(args...); };
  }

 private:
  static void check(cudaError_t status, const char* what) {
    if (status == cudaSuccess) return;
    std::fprintf(stderr, "cuda layer tests: %s failed: %s\n", what, cudaGetErrorString(status));
    std::exit(2);
  }
  std::vector<void*> blocks_;
};

}  // namespace

void cudaLayerKernelSuites(napo_tests::Checks& checks) {
  CudaDevice device;
  napo_tests::layerKernelSuites(checks, device);
}
