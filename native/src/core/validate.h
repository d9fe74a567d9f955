// Argument checks shared by every backend. Each op's checks run before any output is written,
// and name the op, the argument, the index and the offending value.
#pragma once

#include <string>

#include "napo/napo.h"

namespace napo {

// The largest tensor napo describes: 2^50 bytes (1 PiB), so element and byte counts are exact in
// a JS number and never overflow in int64 arithmetic.
constexpr int64_t kMaxTensorBytes = int64_t(1) << 50;

// A shape: rank in [0, NAPO_MAX_DIMS], every dim >= 0, bytes within kMaxTensorBytes (overflow-safe).
// Names `op` and `name` ("tensor: shape [...] ..."); *bytes is the tensor's size when OK.
napo_status checkShape(const char* op, const char* name, napo_dtype dtype, int ndim, const int64_t* shape,
                       int64_t* bytes);

napo_status checkLogits(const char* op, const napo_tensor* logits);
// A tensor of `dtype` with exactly the shape given (rank = dims count).
napo_status checkTensor(const char* op, const char* name, const napo_tensor* t, napo_dtype dtype,
                        int ndim, const int64_t* shape);
napo_status checkSameDevice(const char* op, const char* name, const napo_tensor* t, napo_device device);
// Token ids in [0, vocab); reads the values when they are in host memory (CUDA kernels check
// their own).
napo_status checkTokenRange(const char* op, const napo_tensor* tokens, int64_t vocab);
napo_status checkRowParamCount(const char* op, const char* name, int64_t count, int64_t rows);

// Every value of a float32 tensor finite (host memory only: CUDA kernels check their own).
napo_status checkFinite(const char* op, const char* name, const napo_tensor* t);
// A mask (float32, int32, uint8 or bool) of 0s and 1s (host memory only).
napo_status checkMask(const char* op, const napo_tensor* mask);
// Every value of a float32 tensor finite where the mask (same shape) is 1 (host memory only).
napo_status checkFiniteWhereMasked(const char* op, const char* name, const napo_tensor* t, const napo_tensor* mask);
// The messages of those checks, shared with the CUDA backend, which finds the value on the device.
napo_status notFiniteError(const char* op, const char* name, const napo_tensor& t, int64_t flat, double value);
napo_status badMaskError(const char* op, const napo_tensor& mask, int64_t flat, double value);
// repetitionPenalty: a history entry neither -1 nor a token id.
napo_status historyTokenError(const char* op, const napo_tensor& history, int64_t flat, int32_t token, int64_t vocab);
// linearLogprobs: finite hidden and weight whose product overflows float32.
napo_status linearOverflowError(const char* op, int64_t row, int64_t column, float temperature);
// "[3, 17]" for flat index 3 * T + 17 of a rank-2 tensor, "[5]" for rank 1.
std::string indexText(const napo_tensor& t, int64_t flat);

}  // namespace napo
