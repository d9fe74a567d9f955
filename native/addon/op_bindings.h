#pragma once

#include <napi.h>

namespace napo::addon {

void registerOps(Napi::Env env, Napi::Object exports);

}  // namespace napo::addon
