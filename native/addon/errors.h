// napo statuses as JS errors: TypeError for wrong types, RangeError for bad shapes and values,
// Error (with a code) for the rest.
#pragma once

#include <napi.h>

#include <string>

#include "napo/napo.h"

namespace napo::addon {

// The `code` a JS error carries for a status, e.g. NAPO_OUT_OF_MEMORY.
const char* statusCode(napo_status status);

[[noreturn]] void throwStatus(Napi::Env env, napo_status status);

inline void check(Napi::Env env, napo_status status) {
  if (status != NAPO_OK) throwStatus(env, status);
}

[[noreturn]] inline void throwType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

[[noreturn]] inline void throwRange(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

}  // namespace napo::addon
