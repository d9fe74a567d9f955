// exp(z - max) for 16 floats at a time with AVX-512: the instruction the softmax passes spend
// their time in. vscalefps applies the 2^n of the range reduction in one instruction, which
// halves the work of the portable version (math.h) that GCC vectorises on its own.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

#include "isa.h"

#include <cstdint>

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

// e = exp(max(z - max, -88)), flushed to exactly 0 below -87 so -Inf logits contribute nothing;
// also returns the clamped shift (the entropy moment needs it). ~2 ulp, as expNonPositive.
inline __m512 expShifted512(__m512 z, __m512 max, __m512* shiftedOut) {
  const __m512 shifted = _mm512_max_ps(_mm512_sub_ps(z, max), _mm512_set1_ps(-88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(shifted, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), shifted);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __mmask16 underflow = _mm512_cmp_ps_mask(shifted, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  *shiftedOut = shifted;
  return _mm512_maskz_mov_ps(_knot_mask16(underflow), _mm512_scalef_ps(p, n));
}

// 16 logits widened to float32: bfloat16 is the high half of a float32.
inline __m512 load16(const float* x) { return _mm512_loadu_ps(x); }
inline __m512 load16(const uint16_t* x) {
  const __m512i widened = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu

#endif
