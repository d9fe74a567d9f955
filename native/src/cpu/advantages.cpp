// groupAdvantages on the CPU: TRL's conventions (unbiased std, eps added to the std, a group of
// one gets 0). A few thousand rewards at most: one thread, exact double sums.
#include <cmath>

#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

namespace {

struct Moments {
  double mean = 0.0;
  double std = 0.0;  // unbiased; 0 for a single value
};

Moments moments(const float* values, int64_t count) {
  Moments m;
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += values[i];
  m.mean = sum / double(count);
  if (count < 2) return m;
  double squares = 0.0;
  for (int64_t i = 0; i < count; ++i) squares += (values[i] - m.mean) * (values[i] - m.mean);
  m.std = std::sqrt(squares / double(count - 1));
  return m;
}

}  // namespace

void groupAdvantages(const float* rewards, int64_t count, const napo_advantage_options& options,
                     float* advantages) {
  const Moments batch = moments(rewards, count);
  for (int64_t g = 0; g < options.group_count; ++g) {
    const int64_t begin = options.group_offsets[g], end = options.group_offsets[g + 1];
    const int64_t size = end - begin;
    const Moments group = moments(rewards + begin, size);
    const double scale = options.scale == NAPO_SCALE_NONE
                             ? 1.0
                             : 1.0 / ((options.scale == NAPO_SCALE_GROUP ? group.std : batch.std) + options.eps);
    for (int64_t i = begin; i < end; ++i) {
      if (size < 2) {
        advantages[i] = 0.0f;
        continue;
      }
      // RLOO's baseline excludes the sample itself: r - (sum - r) / (n - 1).
      const double baseline = options.estimator == NAPO_ESTIMATOR_RLOO
                                  ? (group.mean * double(size) - rewards[i]) / double(size - 1)
                                  : group.mean;
      advantages[i] = float((rewards[i] - baseline) * scale);
    }
  }
}

NAPO_CPU_ISA_END
}  // namespace napo::cpu
