// repetitionPenalty on the CPU: each row copied, then the logits of the tokens in its history
// penalised from the input's values, so a token that occurs twice is penalised once.
#include <algorithm>
#include <cstring>

#include "../core/math.h"
#include "../core/tensor.h"
#include "../core/thread_pool.h"
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

float logitValue(float value) { return value; }
float logitValue(uint16_t bits) { return bf16ToFloat(bits); }
void storeValue(float* out, float value) { *out = value; }
void storeValue(uint16_t* out, float value) { *out = floatToBf16(value); }

template <typename Logit>
void penaliseRows(const napo_tensor& logits, const int32_t* history, int64_t length, float penalty, napo_tensor& out) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const Logit* in = dataAs<const Logit>(logits);
  Logit* to = dataAs<Logit>(out);
  parallelFor(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(vocab, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::memcpy(to + r * vocab, in + r * vocab, size_t(vocab) * sizeof(Logit));
      for (int64_t l = 0; l < length; ++l) {
        const int32_t token = history[r * length + l];
        if (token >= 0) storeValue(&to[r * vocab + token], penalisedLogit(logitValue(in[r * vocab + token]), penalty));
      }
    }
  });
}

}  // namespace

void repetitionPenalty(const napo_tensor& logits, const int32_t* history, int64_t length, float penalty,
                       napo_tensor& out) {
  if (logits.dtype == NAPO_BFLOAT16) return penaliseRows<uint16_t>(logits, history, length, penalty, out);
  penaliseRows<float>(logits, history, length, penalty, out);
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
