#include "args.h"

#include <cstdlib>

#include "errors.h"

namespace napo::addon {

napo_device parseDevice(Napi::Env env, Napi::Value value, const char* op) {
  if (!value.IsString()) throwType(env, std::string(op) + ": device must be a string such as 'cpu' or 'cuda:0'");
  const std::string name = value.As<Napi::String>();
  if (name == "cpu") return {NAPO_CPU, 0};
  if (name == "cuda") return {NAPO_CUDA, 0};
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5) {
    char* end = nullptr;
    const long index = std::strtol(name.c_str() + 5, &end, 10);
    if (*end == '\0' && index >= 0 && index < 1024) return {NAPO_CUDA, int32_t(index)};
  }
  throwRange(env, std::string(op) + ": device '" + name + "' is not 'cpu' or 'cuda:N'");
}

std::string deviceName(napo_device device) {
  return device.kind == NAPO_CPU ? "cpu" : "cuda:" + std::to_string(device.index);
}

napo_dtype parseDtype(Napi::Env env, Napi::Value value, const char* op) {
  if (!value.IsString()) throwType(env, std::string(op) + ": dtype must be a string");
  const std::string name = value.As<Napi::String>();
  if (name == "float32") return NAPO_FLOAT32;
  if (name == "bfloat16") return NAPO_BFLOAT16;
  if (name == "int32") return NAPO_INT32;
  throwType(env, std::string(op) + ": dtype '" + name + "' is not float32, bfloat16 or int32");
}

const char* dtypeName(napo_dtype dtype) {
  switch (dtype) {
    case NAPO_FLOAT32: return "float32";
    case NAPO_BFLOAT16: return "bfloat16";
    default: return "int32";
  }
}

double numberArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsNumber()) throwType(env, std::string(op) + ": " + name + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

bool boolArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsBoolean()) throwType(env, std::string(op) + ": " + name + " must be a boolean");
  return value.As<Napi::Boolean>();
}

uint64_t uint64Arg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsBigInt()) throwType(env, std::string(op) + ": " + name + " must be a bigint");
  bool lossless = false;
  const uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throwRange(env, std::string(op) + ": " + name + " must fit in 64 unsigned bits");
  return result;
}

Napi::Float32Array float32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throwType(env, std::string(op) + ": " + name + " must be a Float32Array");
  }
  return value.As<Napi::Float32Array>();
}

Napi::Int32Array int32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throwType(env, std::string(op) + ": " + name + " must be an Int32Array");
  }
  return value.As<Napi::Int32Array>();
}

}  // namespace napo::addon
