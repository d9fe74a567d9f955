// Reading JS arguments into C values, with TypeErrors that name the op and the argument.
#pragma once

#include <napi.h>

#include <string>

#include "napo/napo.h"

namespace napo::addon {

// "cpu" or "cuda:N".
napo_device parseDevice(Napi::Env env, Napi::Value value, const char* op);
std::string deviceName(napo_device device);
napo_dtype parseDtype(Napi::Env env, Napi::Value value, const char* op);
const char* dtypeName(napo_dtype dtype);

double numberArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
bool boolArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
uint64_t uint64Arg(Napi::Env env, Napi::Value value, const char* op, const char* name);
Napi::Float32Array float32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
Napi::Int32Array int32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name);

}  // namespace napo::addon
