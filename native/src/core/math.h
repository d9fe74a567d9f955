// Scalar math shared by the CPU kernels, written so GCC vectorises the loops that call it
// (no branches, no libm calls in the hot path).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace napo {

inline float bf16ToFloat(uint16_t bits) {
  const uint32_t widened = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

// Round to nearest even; NaN stays NaN (a quiet bit is forced so truncation cannot make Inf).
inline uint16_t floatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// exp(x) for x <= 0, flushed to 0 below -87 (where float32 would go subnormal). Cody-Waite range
// reduction and a degree-6 polynomial: ~2 ulp, which is what a softmax needs, and branch-free
// so the caller's loop vectorises to AVX2/AVX-512.
inline float expNonPositive(float x) {
  const float clamped = x < -87.0f ? -87.0f : x;
  // Adding and removing 1.5 * 2^23 rounds to the nearest integer without a libm call.
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = clamped - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t exponentBits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &exponentBits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

}  // namespace napo
