#pragma once

#include <napi.h>

namespace napo::addon {

void registerProbes(Napi::Env env, Napi::Object exports);

}  // namespace napo::addon
