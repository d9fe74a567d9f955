// NAPO_HOST_DEVICE marks a function that the CPU backend and CUDA kernels share verbatim: host
// and device under nvcc, plain inline elsewhere (the g++ build and the emulation harness).
#pragma once

#if defined(__CUDACC__)
#define NAPO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define NAPO_HOST_DEVICE inline
#endif
