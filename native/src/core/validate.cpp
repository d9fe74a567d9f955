#include "validate.h"

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

}  // namespace

napo_status checkLogits(const char* op, const napo_tensor* logits) {
  if (!logits || (!logits->data && numel(*logits) > 0)) return fail(NAPO_ERR_TYPE, "%s: logits is missing", op);
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
  if (!t->data && numel(*t) > 0) return fail(NAPO_ERR_TYPE, "%s: %s has no data", op, name);
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

}  // namespace napo
