#include "validate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "error.h"
#include "tensor.h"

namespace napo {

namespace {

std::string shapeText(int ndim, const int64_t* shape) {
  napo_tensor view{};
  view.ndim = ndim;
  for (int i = 0; i < ndim; ++i) view.shape[i] = shape[i];
  return napo::shapeText(view);
}

// The value of element `i` of a mask as a double, whatever its dtype.
double maskValue(const napo_tensor& mask, int64_t i) {
  switch (mask.dtype) {
    case NAPO_INT32: return dataAs<const int32_t>(mask)[i];
    case NAPO_UINT8:
    case NAPO_BOOL: return dataAs<const uint8_t>(mask)[i];
    default: return dataAs<const float>(mask)[i];
  }
}

}  // namespace

napo_status checkShape(const char* op, const char* name, napo_dtype dtype, int ndim, const int64_t* shape,
                       int64_t* bytes) {
  if (ndim < 0 || ndim > NAPO_MAX_DIMS) {
    return fail(NAPO_ERR_RANGE, "%s: %s has %d dimensions, at most %d are supported", op, name, ndim, NAPO_MAX_DIMS);
  }
  int64_t total = int64_t(dtypeSize(dtype));
  bool tooLarge = false;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] < 0) {
      return fail(NAPO_ERR_RANGE, "%s: %s %s has a negative dimension", op, name, shapeText(ndim, shape).c_str());
    }
    // Once the product passes the limit it stays there (unless a later 0 makes it empty).
    int64_t product = 0;
    if (__builtin_mul_overflow(total, shape[i], &product) || product > kMaxTensorBytes) {
      tooLarge = true;
      total = kMaxTensorBytes + 1;
    } else {
      total = product;
    }
  }
  const bool empty = std::any_of(shape, shape + ndim, [](int64_t dim) { return dim == 0; });
  if (tooLarge && !empty) {
    return fail(NAPO_ERR_RANGE, "%s: %s %s of %s takes more than %lld bytes, napo's limit", op, name,
                shapeText(ndim, shape).c_str(), dtypeName(dtype), (long long)kMaxTensorBytes);
  }
  *bytes = empty ? 0 : total;
  return NAPO_OK;
}

napo_status checkLogits(const char* op, const napo_tensor* logits) {
  int64_t bytes = 0;
  if (!logits) return fail(NAPO_ERR_TYPE, "%s: logits is missing", op);
  NAPO_TRY(checkShape(op, "logits", logits->dtype, logits->ndim, logits->shape, &bytes));
  if (!logits->data && bytes > 0) return fail(NAPO_ERR_TYPE, "%s: logits is missing", op);
  if (logits->dtype != NAPO_FLOAT32 && logits->dtype != NAPO_BFLOAT16) {
    return fail(NAPO_ERR_TYPE, "%s: logits must be float32 or bfloat16, got %s", op,
                dtypeName(logits->dtype));
  }
  if (logits->ndim != 2) {
    return fail(NAPO_ERR_RANGE, "%s: logits must have rank 2, got shape %s", op,
                shapeText(*logits).c_str());
  }
  if (logits->shape[0] < 1 || logits->shape[1] < 1) {
    return fail(NAPO_ERR_RANGE, "%s: logits must have at least one row and one column, got shape %s",
                op, shapeText(*logits).c_str());
  }
  return NAPO_OK;
}

napo_status checkTensor(const char* op, const char* name, const napo_tensor* t, napo_dtype dtype,
                        int ndim, const int64_t* shape) {
  if (!t) return fail(NAPO_ERR_TYPE, "%s: %s is missing", op, name);
  int64_t bytes = 0;
  NAPO_TRY(checkShape(op, name, t->dtype, t->ndim, t->shape, &bytes));
  if (t->dtype != dtype) {
    return fail(NAPO_ERR_TYPE, "%s: %s must be %s, got %s", op, name, dtypeName(dtype),
                dtypeName(t->dtype));
  }
  bool sameShape = t->ndim == ndim;
  for (int i = 0; sameShape && i < ndim; ++i) sameShape = t->shape[i] == shape[i];
  if (!sameShape) {
    return fail(NAPO_ERR_RANGE, "%s: %s has shape %s, expected %s", op, name,
                napo::shapeText(*t).c_str(), shapeText(ndim, shape).c_str());
  }
  if (!t->data && bytes > 0) return fail(NAPO_ERR_TYPE, "%s: %s has no data", op, name);
  return NAPO_OK;
}

napo_status checkSameDevice(const char* op, const char* name, const napo_tensor* t, napo_device device) {
  if (t && !sameDevice(t->device, device)) {
    return fail(NAPO_ERR_RANGE, "%s: %s is on %s but the op runs on %s", op, name,
                deviceText(t->device).c_str(), deviceText(device).c_str());
  }
  return NAPO_OK;
}

napo_status checkTokenRange(const char* op, const napo_tensor* tokens, int64_t vocab) {
  if (tokens->device.kind != NAPO_CPU) return NAPO_OK;
  const int32_t* ids = dataAs<const int32_t>(*tokens);
  const int64_t count = numel(*tokens);
  for (int64_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return fail(NAPO_ERR_RANGE, "%s: tokens[%lld] = %d is out of range for vocab %lld", op,
                  (long long)i, ids[i], (long long)vocab);
    }
  }
  return NAPO_OK;
}

napo_status checkRowParamCount(const char* op, const char* name, int64_t count, int64_t rows) {
  if (count != 1 && count != rows) {
    return fail(NAPO_ERR_RANGE, "%s: %s has %lld values for %lld rows (give 1 or %lld)", op, name,
                (long long)count, (long long)rows, (long long)rows);
  }
  return NAPO_OK;
}

std::string indexText(const napo_tensor& t, int64_t flat) {
  char text[64];
  if (t.ndim == 2) {
    std::snprintf(text, sizeof text, "[%lld, %lld]", (long long)(flat / t.shape[1]), (long long)(flat % t.shape[1]));
  } else {
    std::snprintf(text, sizeof text, "[%lld]", (long long)flat);
  }
  return text;
}

napo_status notFiniteError(const char* op, const char* name, const napo_tensor& t, int64_t flat, double value) {
  // The words JS prints for the value, as the reference ops' messages read.
  const char* what = std::isnan(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  return fail(NAPO_ERR_RANGE, "%s: %s%s is %s", op, name, indexText(t, flat).c_str(), what);
}

napo_status badMaskError(const char* op, const napo_tensor& mask, int64_t flat, double value) {
  return fail(NAPO_ERR_RANGE, "%s: mask%s = %g must be 0 or 1", op, indexText(mask, flat).c_str(), value);
}

napo_status linearOverflowError(const char* op, int64_t row, int64_t column, float temperature) {
  return fail(NAPO_ERR_RANGE, "%s: the logit of hidden row %lld and weight row %lld is not finite at temperature %g", op,
              (long long)row, (long long)column, temperature);
}

napo_status checkFinite(const char* op, const char* name, const napo_tensor* t) {
  if (!t || t->device.kind != NAPO_CPU) return NAPO_OK;
  const float* values = dataAs<const float>(*t);
  const int64_t count = numel(*t);
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) return notFiniteError(op, name, *t, i, values[i]);
  }
  return NAPO_OK;
}

napo_status checkMask(const char* op, const napo_tensor* mask) {
  if (mask->device.kind != NAPO_CPU) return NAPO_OK;
  const int64_t count = numel(*mask);
  for (int64_t i = 0; i < count; ++i) {
    const double value = maskValue(*mask, i);
    if (value != 0.0 && value != 1.0) return badMaskError(op, *mask, i, value);
  }
  return NAPO_OK;
}

napo_status checkFiniteWhereMasked(const char* op, const char* name, const napo_tensor* t, const napo_tensor* mask) {
  if (!t || t->device.kind != NAPO_CPU) return NAPO_OK;
  const float* values = dataAs<const float>(*t);
  const int64_t count = numel(*t);
  for (int64_t i = 0; i < count; ++i) {
    if (maskValue(*mask, i) != 0.0 && !std::isfinite(values[i])) return notFiniteError(op, name, *t, i, values[i]);
  }
  return NAPO_OK;
}

napo_status historyTokenError(const char* op, const napo_tensor& history, int64_t flat, int32_t token, int64_t vocab) {
  return fail(NAPO_ERR_RANGE, "%s: history%s = %d is out of range for vocab %lld (-1: none)", op,
              indexText(history, flat).c_str(), token, (long long)vocab);
}

}  // namespace napo
