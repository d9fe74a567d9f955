#include "error.h"

#include <cstdio>

namespace napo {

namespace {
thread_local std::string lastError;
}

napo_status fail(napo_status status, const char* format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  lastError = buffer;
  return status;
}

void clearError() { lastError.clear(); }

}  // namespace napo

extern "C" const char* napo_last_error(void) { return napo::lastError.c_str(); }
