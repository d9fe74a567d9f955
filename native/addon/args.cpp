#include "args.h"

#include <cmath>
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
  if (name == "uint8") return NAPO_UINT8;
  if (name == "bool") return NAPO_BOOL;
  throwType(env, std::string(op) + ": dtype '" + name + "' is not float32, bfloat16, int32, uint8 or bool");
}

const char* dtypeName(napo_dtype dtype) {
  switch (dtype) {
    case NAPO_FLOAT32: return "float32";
    case NAPO_BFLOAT16: return "bfloat16";
    case NAPO_UINT8: return "uint8";
    case NAPO_BOOL: return "bool";
    default: return "int32";
  }
}

double numberArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  if (!value.IsNumber()) throwType(env, std::string(op) + ": " + name + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

int64_t integerArg(Napi::Env env, Napi::Value value, const char* op, const char* name) {
  const double number = numberArg(env, value, op, name);
  if (!(std::fabs(number) <= 9007199254740992.0) || number != std::trunc(number)) {
    throwType(env, std::string(op) + ": " + name + " = " + value.ToString().Utf8Value() + " must be an integer");
  }
  return int64_t(number);
}

std::vector<int64_t> shapeArg(Napi::Env env, Napi::Value value, const char* op) {
  if (!value.IsArray()) throwType(env, std::string(op) + ": shape must be an array of integers");
  Napi::Array dims = value.As<Napi::Array>();
  if (dims.Length() > NAPO_MAX_DIMS) {
    throwRange(env, std::string(op) + ": shape has " + std::to_string(dims.Length()) + " dimensions, at most " +
                        std::to_string(NAPO_MAX_DIMS) + " are supported");
  }
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < dims.Length(); ++i) shape.push_back(integerArg(env, dims.Get(i), op, "shape"));
  return shape;
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
