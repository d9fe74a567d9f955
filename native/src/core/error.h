// Error reporting for the C ABI: a status plus a thread-local message that names the op, the
// argument and the offending value, so every binding can raise a precise error.
#pragma once

#include <cstdarg>
#include <string>

#include "napo/napo.h"

namespace napo {

// Records the message for napo_last_error() and returns `status`, so checks read as
// `return fail(NAPO_ERR_RANGE, "...", ...)`.
napo_status fail(napo_status status, const char* format, ...)
    __attribute__((format(printf, 2, 3)));

void clearError();

}  // namespace napo

// Propagates a failed status from an inner call.
#define NAPO_TRY(expr)                        \
  do {                                        \
    napo_status napo_try_status_ = (expr);    \
    if (napo_try_status_ != NAPO_OK) return napo_try_status_; \
  } while (0)
