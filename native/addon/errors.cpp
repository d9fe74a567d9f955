#include "errors.h"

namespace napo::addon {

const char* statusCode(napo_status status) {
  switch (status) {
    case NAPO_ERR_TYPE: return "NAPO_TYPE";
    case NAPO_ERR_RANGE: return "NAPO_RANGE";
    case NAPO_ERR_OUT_OF_MEMORY: return "NAPO_OUT_OF_MEMORY";
    case NAPO_ERR_UNAVAILABLE: return "NAPO_UNAVAILABLE";
    case NAPO_ERR_DEVICE: return "NAPO_DEVICE";
    default: return "NAPO_INTERNAL";
  }
}

void throwStatus(Napi::Env env, napo_status status) {
  const std::string message = napo_last_error();
  Napi::Error error = status == NAPO_ERR_TYPE    ? Napi::TypeError::New(env, message)
                      : status == NAPO_ERR_RANGE ? Napi::RangeError::New(env, message)
                                                 : Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, statusCode(status)));
  throw error;
}

}  // namespace napo::addon
