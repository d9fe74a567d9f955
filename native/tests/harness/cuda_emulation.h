// Host emulation of the slice of CUDA that napo's kernels use, so CI runs the kernel bodies with
// g++ on a machine without a GPU. Include it before any .cuh of src/cuda.
//
// Model: the blocks of a launch are shared out among OS threads (one per core), as a GPU runs
// them in any order; the threads of a block are fibers on one OS thread. A thread runs until it
// waits at __syncthreads or at a warp collective, then the next thread in index order runs, so a
// barrier that is missing shows: a thread reads shared memory before a later thread has written
// it. Block-shared storage is thread_local static (each OS thread runs one block at a time);
// inside a block threads only switch at collectives, and atomics are real ones, since other
// blocks run at the same time. Fibers switch with a few instructions (x86-64) instead of
// swapcontext, which makes a system call on every switch. Collectives are strict: a
// __syncthreads that not every thread of the block reaches, or a warp collective whose mask is
// not the whole warp, stops the run with a message instead of hanging.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __launch_bounds__(...)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
// Aligned as in CUDA, so a vector access at a misaligned address is caught here too.
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};

constexpr int warpSize = 32;

// Set by the scheduler before it resumes a thread; kernels read them like CUDA's built-ins. Each OS
// thread runs its own block.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace emu {

[[noreturn]] inline void fatal(const char* what) {
  std::fprintf(stderr, "cuda emulation: %s (block %u,%u,%u thread %u,%u,%u)\n", what, blockIdx.x, blockIdx.y,
               blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  std::abort();
}

// ---- switching fibers ------------------------------------------------------------------------------
#if defined(__x86_64__)
// switchStack(&saveSp, loadSp): saves the callee-saved registers and the SSE / x87 control words
// on this stack, stores the stack pointer in *saveSp, then resumes the stack at loadSp the same
// way. No system call: swapcontext also saves the signal mask, one syscall per switch.
extern "C" void napo_emu_switch_stack(void** saveSp, void* loadSp);
asm(R"(
  .text
  .p2align 4
  .weak napo_emu_switch_stack
  .type napo_emu_switch_stack, @function
napo_emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size napo_emu_switch_stack, .-napo_emu_switch_stack
)");

struct FiberContext {
  void* sp = nullptr;
};

// A fresh stack that napo_emu_switch_stack resumes into entry(), with 16-byte alignment at its entry.
inline void prepareContext(FiberContext& context, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15));
  top[-1] = 0;                                           // entry's return address: it never returns
  top[-2] = reinterpret_cast<uint64_t>(entry);           // where the switch's ret goes
  for (int r = 3; r <= 8; ++r) top[-r] = 0;              // rbp, rbx, r12..r15
  top[-9] = 0x1f80u | (uint64_t(0x037fu) << 32);         // default MXCSR, x87 control word
  context.sp = top - 9;
}

inline void switchContext(FiberContext& from, FiberContext& to) { napo_emu_switch_stack(&from.sp, to.sp); }
#else
struct FiberContext {
  ucontext_t context;
};

inline void prepareContext(FiberContext& context, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

inline void switchContext(FiberContext& from, FiberContext& to) { swapcontext(&from.context, &to.context); }
#endif

struct Fiber {
  FiberContext context;
  uint3 index;
  bool finished;
  // Blocked until *waitOn differs from waitValue (a barrier generation that has not moved yet).
  const uint64_t* waitOn;
  uint64_t waitValue;
};

struct Warp {
  int size;
  int live;
  int arrived;
  uint64_t generation;
  // Values exchanged by a collective, double-buffered by generation parity: a lane that has
  // passed one collective cannot overwrite a slot of it before every lane has read it, because
  // it cannot pass the next one until all lanes arrive there.
  uint64_t slots[2][32];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  FiberContext scheduler;  // runBlock's own context, resumed when the last thread finishes
  int current = 0;
  int live = 0;
  int arrived = 0;
  uint64_t generation = 0;
  const std::function<void()>* body = nullptr;
};

inline Block& block() {
  static thread_local Block instance;
  return instance;
}

constexpr size_t kStackBytes = 256 * 1024;

inline char* stacks(size_t count) {
  static thread_local char* memory = nullptr;
  static thread_local size_t capacity = 0;
  if (count > capacity) {
    if (memory) munmap(memory, capacity * kStackBytes);
    void* mapped = mmap(nullptr, count * kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    if (mapped == MAP_FAILED) fatal("cannot map fiber stacks");
    memory = static_cast<char*>(mapped);
    capacity = count;
  }
  return memory;
}

inline Fiber& self() { return block().fibers[size_t(block().current)]; }

inline int linearThread() {
  return int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

// The next fiber after the current one, round robin, that is neither finished nor blocked on a
// barrier generation that has not moved; -1 when there is none.
inline int nextRunnable() {
  Block& b = block();
  const int count = int(b.fibers.size());
  for (int step = 1; step <= count; ++step) {
    const int t = (b.current + step) % count;
    const Fiber& fiber = b.fibers[size_t(t)];
    if (!fiber.finished && !(fiber.waitOn && *fiber.waitOn == fiber.waitValue)) return t;
  }
  return -1;
}

// Makes fiber `t` current: its thread index becomes the visible threadIdx.
inline Fiber& enter(int t) {
  Block& b = block();
  b.current = t;
  Fiber& fiber = b.fibers[size_t(t)];
  fiber.waitOn = nullptr;
  threadIdx = fiber.index;
  return fiber;
}

// Blocks the current fiber until *generation moves past `value`, switching straight to the next
// runnable fiber (one context switch, not two through a scheduler).
inline void waitWhile(const uint64_t* generation, uint64_t value) {
  Fiber& fiber = self();
  fiber.waitOn = generation;
  fiber.waitValue = value;
  const int next = nextRunnable();
  if (next < 0) fatal("deadlock: every live thread waits at a barrier the others never reach");
  switchContext(fiber.context, enter(next).context);
}

// Every fiber starts here; the last one to finish resumes runBlock.
inline void fiberMain() {
  Block& b = block();
  (*b.body)();
  Fiber& fiber = self();
  fiber.finished = true;
  --b.live;
  if (b.arrived > 0) fatal("a thread exited while others wait at __syncthreads");
  Warp& warp = b.warps[size_t(linearThread() / 32)];
  --warp.live;
  if (warp.arrived > 0) fatal("a thread exited while its warp waits at a collective");
  const int next = nextRunnable();
  if (next >= 0) switchContext(fiber.context, enter(next).context);
  if (b.live > 0) fatal("deadlock: every live thread waits at a barrier the others never reach");
  switchContext(fiber.context, b.scheduler);
  fatal("a finished thread was resumed");
}

inline void runBlock(const std::function<void()>& body, int threads) {
  Block& b = block();
  char* stackBase = stacks(size_t(threads));
  b.fibers.assign(size_t(threads), Fiber{});
  b.warps.assign(size_t((threads + 31) / 32), Warp{});
  for (size_t w = 0; w < b.warps.size(); ++w) {
    b.warps[w].size = std::min(32, threads - int(w) * 32);
    b.warps[w].live = b.warps[w].size;
  }
  b.live = threads;
  b.arrived = 0;
  b.body = &body;
  for (int t = 0; t < threads; ++t) {
    Fiber& fiber = b.fibers[size_t(t)];
    fiber.index = {unsigned(t) % blockDim.x, unsigned(t) / blockDim.x % blockDim.y, unsigned(t) / (blockDim.x * blockDim.y)};
    prepareContext(fiber.context, stackBase + size_t(t) * kStackBytes, kStackBytes, fiberMain);
  }
  switchContext(b.scheduler, enter(0).context);
}

inline Warp& warpOf(unsigned mask) {
  Warp& warp = block().warps[size_t(linearThread() / 32)];
  if (warp.live != warp.size) fatal("warp collective after some lanes of the warp exited");
  const unsigned whole = warp.size == 32 ? 0xffffffffu : (1u << warp.size) - 1u;
  if (mask != whole) fatal("warp collective with a partial mask (napo kernels use whole warps)");
  return warp;
}

// Arrives at the warp's barrier with `value`; returns the parity of the slots it was stored in.
inline int exchange(Warp& warp, uint64_t value) {
  const int parity = int(warp.generation & 1u);
  warp.slots[parity][linearThread() % 32] = value;
  const uint64_t generation = warp.generation;
  if (++warp.arrived == warp.size) {
    warp.arrived = 0;
    ++warp.generation;
  } else {
    waitWhile(&warp.generation, generation);
  }
  return parity;
}

template <typename T>
T shuffleFrom(unsigned mask, T value, int (*source)(int lane, int arg, int width), int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffled values are at most 8 bytes");
  Warp& warp = warpOf(mask);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  const int parity = exchange(warp, bits);
  const int lane = linearThread() % 32;
  const int from = source(lane, arg, width);
  if (from < 0 || from >= warp.size) return value;
  T out;
  std::memcpy(&out, &warp.slots[parity][from], sizeof(T));
  return out;
}

inline int segment(int lane, int width) { return lane / width * width; }
inline int sourceIndexed(int lane, int src, int width) { return segment(lane, width) + src % width; }
inline int sourceXor(int lane, int laneMask, int width) {
  const int from = lane ^ laneMask;
  return segment(from, width) == segment(lane, width) ? from : lane;
}
inline int sourceDown(int lane, int delta, int width) {
  return lane % width + delta < width ? lane + delta : lane;
}
inline int sourceUp(int lane, int delta, int width) { return lane % width >= delta ? lane - delta : lane; }

inline unsigned ballot(unsigned mask, bool predicate) {
  Warp& warp = warpOf(mask);
  const int parity = exchange(warp, predicate ? 1u : 0u);
  unsigned bits = 0;
  for (int lane = 0; lane < warp.size; ++lane) bits |= unsigned(warp.slots[parity][lane] != 0) << lane;
  return bits;
}

}  // namespace emu

// ---- CUDA built-ins ---------------------------------------------------------------------------

inline void __syncthreads() {
  emu::Block& b = emu::block();
  if (b.live != int(b.fibers.size())) emu::fatal("__syncthreads after some threads of the block exited");
  const uint64_t generation = b.generation;
  if (++b.arrived == b.live) {
    b.arrived = 0;
    ++b.generation;
  } else {
    emu::waitWhile(&b.generation, generation);
  }
}


template <typename T>
T __shfl_sync(unsigned mask, T value, int srcLane, int width = 32) {
  return emu::shuffleFrom(mask, value, emu::sourceIndexed, srcLane, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int laneMask, int width = 32) {
  return emu::shuffleFrom(mask, value, emu::sourceXor, laneMask, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return emu::shuffleFrom(mask, value, emu::sourceDown, int(delta), width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return emu::shuffleFrom(mask, value, emu::sourceUp, int(delta), width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) { return emu::ballot(mask, predicate != 0); }
inline int __any_sync(unsigned mask, int predicate) { return emu::ballot(mask, predicate != 0) != 0; }
inline int __all_sync(unsigned mask, int predicate) { return emu::ballot(mask, predicate != 0) == mask; }

// Real atomics: other blocks run at the same time on other OS threads.
namespace emu {
template <typename T, typename Update>
T atomicUpdate(T* address, Update update) {
  if constexpr (std::is_floating_point_v<T>) {
    // Floats (atomicAdd on gradients) by compare-and-swap on their bits.
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits* bits = reinterpret_cast<Bits*>(address);
    Bits old = __atomic_load_n(bits, __ATOMIC_RELAXED);
    for (;;) {
      T value;
      std::memcpy(&value, &old, sizeof value);
      const T next = update(value);
      Bits nextBits;
      std::memcpy(&nextBits, &next, sizeof nextBits);
      if (__atomic_compare_exchange_n(bits, &old, nextBits, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return value;
    }
  } else {
    T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(address, &old, update(old), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
  }
}
}  // namespace emu

template <typename T>
T atomicAdd(T* address, T value) {
  return emu::atomicUpdate(address, [value](T old) { return T(old + value); });
}
template <typename T>
T atomicMin(T* address, T value) {
  return emu::atomicUpdate(address, [value](T old) { return value < old ? value : old; });
}
template <typename T>
T atomicMax(T* address, T value) {
  return emu::atomicUpdate(address, [value](T old) { return value > old ? value : old; });
}
template <typename T>
T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}

namespace emu {
template <typename T>
const T* aligned(const T* address) {
  if (reinterpret_cast<uintptr_t>(address) % alignof(T) != 0) fatal("misaligned load (a GPU faults on it)");
  return address;
}
}  // namespace emu

template <typename T>
T __ldg(const T* address) {
  return *emu::aligned(address);
}
template <typename T>
T __ldcs(const T* address) {
  return *emu::aligned(address);
}

inline float __uint_as_float(unsigned bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
inline unsigned __float_as_uint(float value) {
  unsigned bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
inline int __ffs(int bits) { return __builtin_ffs(bits); }

// The fast exp computes the same function as libm here, to rounding.
inline float __expf(float x) { return std::exp(x); }

namespace emu {

// Runs `kernel` over `grid` x `block` threads; the blocks are shared out among one OS thread per
// core (the caller's included), each taking the next block index in turn.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  const int threads = int(block.x * block.y * block.z);
  if (threads < 1 || threads > 1024) fatal("a block must have 1 to 1024 threads");
  const std::function<void()> body = [&] { kernel(args...); };
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  std::atomic<uint64_t> nextBlock{0};
  auto runBlocks = [&] {
    gridDim = grid;
    blockDim = block;
    for (uint64_t i = nextBlock++; i < blocks; i = nextBlock++) {
      blockIdx = {unsigned(i % grid.x), unsigned(i / grid.x % grid.y), unsigned(i / (uint64_t(grid.x) * grid.y))};
      runBlock(body, threads);
    }
  };
  const uint64_t cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> helpers;
  for (uint64_t h = 1; h < std::min(cores, blocks); ++h) helpers.emplace_back(runBlocks);
  runBlocks();
  for (std::thread& helper : helpers) helper.join();
}

}  // namespace emu
