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

Napi::Error statusError(Napi::Env env, napo_status status, const std::string& message, const char* op) {
  const std::string prefix = op ? std::string(op) + ": " : "";
  const std::string text = op && message.rfind(prefix, 0) != 0 ? prefix + message : message;
  Napi::Error error = status == NAPO_ERR_TYPE ? Napi::TypeError::New(env, text)
                      : status == NAPO_ERR_RANGE || status == NAPO_ERR_OUT_OF_MEMORY || status == NAPO_ERR_UNAVAILABLE
                          ? Napi::RangeError::New(env, text)
                          : Napi::Error::New(env, text);
  error.Set("code", Napi::String::New(env, statusCode(status)));
  return error;
}

void throwStatus(Napi::Env env, napo_status status, const char* op) { throw statusError(env, status, napo_last_error(), op); }

}  // namespace napo::addon
