// napo statuses as JS errors: TypeError for wrong types, RangeError for bad shapes and values,
// memory and devices, Error (with a code) for the rest.
#pragma once

#include <napi.h>

#include <string>

#include "napo/napo.h"

namespace napo::addon {

// The `code` a JS error carries for a status, e.g. NAPO_OUT_OF_MEMORY.
const char* statusCode(napo_status status);

// The JS error of a failed napo call: TypeError for NAPO_ERR_TYPE; RangeError for bad values,
// out of memory and an unavailable device (each an argument the caller can change); Error with a
// code for device failures. `op` prefixes messages that do not name it yet.
Napi::Error statusError(Napi::Env env, napo_status status, const std::string& message, const char* op = nullptr);

[[noreturn]] void throwStatus(Napi::Env env, napo_status status, const char* op = nullptr);

inline void check(Napi::Env env, napo_status status) {
  if (status != NAPO_OK) throwStatus(env, status);
}

// check() for a call made on behalf of `op` (an allocation, a copy), whose message may not name it.
inline void checkFor(Napi::Env env, const char* op, napo_status status) {
  if (status != NAPO_OK) throwStatus(env, status, op);
}

[[noreturn]] inline void throwType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

[[noreturn]] inline void throwRange(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

}  // namespace napo::addon
