// Argument checks shared by every backend. Each op's checks run before any output is written,
// and name the op, the argument, the index and the offending value.
#pragma once

#include "napo/napo.h"

namespace napo {

napo_status checkLogits(const char* op, const napo_tensor* logits);
// A tensor of `dtype` with exactly the shape given (rank = dims count).
napo_status checkTensor(const char* op, const char* name, const napo_tensor* t, napo_dtype dtype,
                        int ndim, const int64_t* shape);
napo_status checkSameDevice(const char* op, const char* name, const napo_tensor* t, napo_device device);
// Token ids in [0, vocab); reads the values when they are in host memory (CUDA kernels check
// their own).
napo_status checkTokenRange(const char* op, const napo_tensor* tokens, int64_t vocab);
napo_status checkRowParamCount(const char* op, const char* name, int64_t count, int64_t rows);

}  // namespace napo
