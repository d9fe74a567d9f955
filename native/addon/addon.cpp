// Module entry: backends, devices, memory, tensors and the RL ops. Glue only; the math is in
// native/src.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "args.h"
#include "errors.h"
#include "model.h"
#include "op_bindings.h"
#include "probes.h"
#include "tensor.h"

namespace napo::addon {

namespace {

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napo_backend_info backend{};
  check(env, napo_backend_info_get(&backend));
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", Napi::Boolean::New(env, backend.cuda_compiled != 0));
  cuda.Set("available", Napi::Boolean::New(env, backend.cuda_available != 0));
  cuda.Set("deviceCount", backend.cuda_device_count);
  cuda.Set("runtimeVersion", backend.cuda_runtime_version);
  cuda.Set("driverVersion", backend.cuda_driver_version);
  if (!backend.cuda_available) cuda.Set("reason", backend.cuda_unavailable_reason);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("threads", backend.cpu_threads);
  cpu.Set("isa", backend.cpu_isa);
  cpu.Set("isaSupported", backend.cpu_isa_supported);
  if (backend.cpu_note[0]) cpu.Set("note", backend.cpu_note);
  Napi::Object result = Napi::Object::New(env);
  result.Set("cuda", cuda);
  result.Set("cpu", cpu);
  return result;
}

Napi::Value CudaDeviceProperties(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napo_device_properties props{};
  const int64_t index = integerArg(env, info[0], "deviceProperties", "index");
  checkFor(env, "deviceProperties",
           napo_cuda_device_properties(int32_t(std::clamp<int64_t>(index, INT32_MIN, INT32_MAX)), &props));
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", props.name);
  result.Set("totalBytes", double(props.total_bytes));
  result.Set("computeCapability", std::to_string(props.compute_capability_major) + "." +
                                      std::to_string(props.compute_capability_minor));
  result.Set("multiprocessors", props.multiprocessors);
  return result;
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napo_memory_stats stats{};
  checkFor(env, "memoryStats", napo_memory_stats_get(parseDevice(env, info[0], "memoryStats"), &stats));
  Napi::Object result = Napi::Object::New(env);
  result.Set("allocatedBytes", double(stats.allocated_bytes));
  result.Set("reservedBytes", double(stats.reserved_bytes));
  result.Set("peakAllocatedBytes", double(stats.peak_allocated_bytes));
  result.Set("peakReservedBytes", double(stats.peak_reserved_bytes));
  result.Set("allocations", double(stats.allocations));
  if (stats.free_bytes >= 0) result.Set("freeBytes", double(stats.free_bytes));
  if (stats.total_bytes >= 0) result.Set("totalBytes", double(stats.total_bytes));
  result.Set("numAllocRetries", double(stats.num_alloc_retries));
  result.Set("numOoms", double(stats.num_ooms));
  // By category, in napo_memory_category order (the TS layer names them).
  for (const auto& [key, values] : {std::pair{"categoryAllocated", stats.category_allocated},
                                    {"categoryPeak", stats.category_peak}, {"categoryAtPeak", stats.category_at_peak}}) {
    Napi::Float64Array array = Napi::Float64Array::New(env, NAPO_MEMORY_CATEGORIES);
    for (size_t c = 0; c < NAPO_MEMORY_CATEGORIES; ++c) array[c] = double(values[c]);
    result.Set(key, array);
  }
  return result;
}

// (device, maxEvents): 0 stops and clears.
Napi::Value RecordMemoryHistory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "recordMemoryHistory";
  checkFor(env, op, napo_memory_record_history(parseDevice(env, info[0], op), integerArg(env, info[1], op, "maxEvents")));
  return env.Undefined();
}

// (device) -> {timeMs: Float64Array, bytes: Float64Array, categories: Int32Array, phases: Int32Array, dropped}
Napi::Value MemoryHistory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "memoryHistory";
  const napo_device device = parseDevice(env, info[0], op);
  int64_t dropped = 0;
  const int64_t held = napo_memory_history(device, nullptr, 0, &dropped);
  if (held < 0) checkFor(env, op, NAPO_ERR_TYPE);
  std::vector<napo_memory_event> events(static_cast<size_t>(held));
  const int64_t count = std::min(held, napo_memory_history(device, events.data(), held, &dropped));
  Napi::Float64Array time = Napi::Float64Array::New(env, size_t(count));
  Napi::Float64Array bytes = Napi::Float64Array::New(env, size_t(count));
  Napi::Int32Array categories = Napi::Int32Array::New(env, size_t(count));
  Napi::Int32Array phases = Napi::Int32Array::New(env, size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    time[size_t(i)] = events[size_t(i)].time_ms;
    bytes[size_t(i)] = double(events[size_t(i)].bytes);
    categories[size_t(i)] = events[size_t(i)].category;
    phases[size_t(i)] = events[size_t(i)].phase;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("timeMs", time);
  result.Set("bytes", bytes);
  result.Set("categories", categories);
  result.Set("phases", phases);
  result.Set("dropped", double(dropped));
  return result;
}

// (device, phase: integer)
Napi::Value SetMemoryPhase(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* op = "setMemoryPhase";
  checkFor(env, op, napo_memory_set_phase(parseDevice(env, info[0], op), int32_t(integerArg(env, info[1], op, "phase"))));
  return env.Undefined();
}

Napi::Value ResetPeakMemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkFor(env, "resetPeakMemoryStats", napo_reset_peak_memory_stats(parseDevice(env, info[0], "resetPeakMemoryStats")));
  return env.Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkFor(env, "emptyCache", napo_empty_cache(parseDevice(env, info[0], "emptyCache")));
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  checkFor(env, "synchronize", napo_synchronize(parseDevice(env, info[0], "synchronize")));
  return env.Undefined();
}

Napi::Value CpuThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), napo_cpu_threads()); }

Napi::Value SetCpuThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t threads = integerArg(env, info[0], "setCpuThreads", "threads");
  check(env, napo_set_cpu_threads(int32_t(std::clamp<int64_t>(threads, INT32_MIN, INT32_MAX))));
  return env.Undefined();
}

// (dtype, shape: number[], device, op: the caller's name for messages) -> an uninitialised tensor.
Napi::Value Empty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "tensor";
  const char* op = name.c_str();
  const napo_dtype dtype = parseDtype(env, info[0], op);
  const std::vector<int64_t> shape = shapeArg(env, info[1], op);
  return TensorHandle::Allocate(env, op, dtype, shape, parseDevice(env, info[2], op), NAPO_MEMORY_INPUT);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("TensorHandle", TensorHandle::Define(env));
  exports.Set("empty", Napi::Function::New<Empty>(env, "empty"));
  exports.Set("wrap", Napi::Function::New<WrapArray>(env, "wrap"));
  exports.Set("backendInfo", Napi::Function::New<BackendInfo>(env, "backendInfo"));
  exports.Set("cudaDeviceProperties", Napi::Function::New<CudaDeviceProperties>(env, "cudaDeviceProperties"));
  exports.Set("memoryStats", Napi::Function::New<MemoryStats>(env, "memoryStats"));
  exports.Set("resetPeakMemoryStats", Napi::Function::New<ResetPeakMemoryStats>(env, "resetPeakMemoryStats"));
  exports.Set("recordMemoryHistory", Napi::Function::New<RecordMemoryHistory>(env, "recordMemoryHistory"));
  exports.Set("memoryHistory", Napi::Function::New<MemoryHistory>(env, "memoryHistory"));
  exports.Set("setMemoryPhase", Napi::Function::New<SetMemoryPhase>(env, "setMemoryPhase"));
  exports.Set("emptyCache", Napi::Function::New<EmptyCache>(env, "emptyCache"));
  exports.Set("synchronize", Napi::Function::New<Synchronize>(env, "synchronize"));
  exports.Set("cpuThreads", Napi::Function::New<CpuThreads>(env, "cpuThreads"));
  exports.Set("setCpuThreads", Napi::Function::New<SetCpuThreads>(env, "setCpuThreads"));
  registerOps(env, exports);
  registerModel(env, exports);
  registerProbes(env, exports);
  return exports;
}

}  // namespace

}  // namespace napo::addon

static Napi::Object InitNapo(Napi::Env env, Napi::Object exports) { return napo::addon::Init(env, exports); }

NODE_API_MODULE(napo, InitNapo)
