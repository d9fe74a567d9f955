// Reading JS arguments into C values, with TypeErrors that name the op and the argument.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "napo/napo.h"

namespace napo::addon {

// "cpu" or "cuda:N".
napo_device parseDevice(Napi::Env env, Napi::Value value, const char* op);
std::string deviceName(napo_device device);
napo_dtype parseDtype(Napi::Env env, Napi::Value value, const char* op);
const char* dtypeName(napo_dtype dtype);

double numberArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
// A number that is an integer in [-2^53, 2^53] (napo checks the range it allows).
int64_t integerArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
// An array of integers (dims); napo checks their range.
std::vector<int64_t> shapeArg(Napi::Env env, Napi::Value value, const char* op);
bool boolArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
uint64_t uint64Arg(Napi::Env env, Napi::Value value, const char* op, const char* name);
Napi::Float32Array float32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name);
Napi::Int32Array int32ArrayArg(Napi::Env env, Napi::Value value, const char* op, const char* name);

}  // namespace napo::addon
