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
// Hugging Face's repetition penalty of one logit: shrunk towards 0 when positive, pushed down when
// negative (the CPU backend and the TS reference; the CUDA kernel spells the same out).
inline float penalisedLogit(float z, float penalty) { return z < 0.0f ? z * penalty : z / penalty; }

inline uint16_t floatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// IEEE binary16, with subnormals; NaN stays NaN.
inline float halfToFloat(uint16_t half) {
  const uint32_t sign = uint32_t(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu, mantissa = half & 0x3ffu;
  if (exponent == 0x1f) {
    const uint32_t bits = sign | 0x7f800000u | (mantissa << 13);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  // Normal: rebias the exponent; subnormal: mantissa * 2^-24 is exact in float32.
  const float magnitude = exponent == 0 ? float(mantissa) * 5.9604644775390625e-8f : [&] {
    const uint32_t bits = ((exponent + 112u) << 23) | (mantissa << 13);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }();
  return sign ? -magnitude : magnitude;
}

// Round to nearest even; values past the largest half become infinity.
inline uint16_t floatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504
  if (magnitude < 0x38800000u) {
    // Subnormal half (or zero): round magnitude / 2^-24 to the nearest even integer.
    float scaled;
    const uint32_t absBits = magnitude;
    std::memcpy(&scaled, &absBits, sizeof scaled);
    return uint16_t(sign | uint16_t(std::nearbyint(scaled * 16777216.0f)));
  }
  const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  return uint16_t(sign | uint16_t((rounded - 0x38000000u) >> 13));
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
