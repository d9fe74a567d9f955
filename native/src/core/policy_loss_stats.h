// What the policyLoss backends share on the host: the per-sequence sums each backend leaves, and
// the stats made from them. Adding the sums in sequence order keeps the loss independent of the
// thread count and the device.
#pragma once

#include <cstdint>

#include "napo/napo.h"

namespace napo {

// One sequence's sums over its masked tokens; `loss` already carries the sequence's weight.
// A plain aggregate (zero it with `{}`).
struct PolicyLossSums {
  double loss, tokens, clipLow, clipHigh, kl, ratio;
};

// `Sums` is PolicyLossSums or a backend's own struct with the same fields (the CUDA backend's
// lives in its namespace so its warp-shuffle overload is found).
template <typename Sums>
void policyLossStats(const Sums* sums, int64_t sequences, napo_policy_loss_stats* stats) {
  PolicyLossSums total{};
  for (int64_t s = 0; s < sequences; ++s) {
    total.loss += sums[s].loss;
    total.tokens += sums[s].tokens;
    total.clipLow += sums[s].clipLow;
    total.clipHigh += sums[s].clipHigh;
    total.kl += sums[s].kl;
    total.ratio += sums[s].ratio;
  }
  const double tokens = total.tokens > 1.0 ? total.tokens : 1.0;
  stats->loss = total.loss;
  stats->clip_low_fraction = total.clipLow / tokens;
  stats->clip_high_fraction = total.clipHigh / tokens;
  stats->clip_fraction = (total.clipLow + total.clipHigh) / tokens;
  stats->mean_kl = total.kl / tokens;
  stats->mean_ratio = total.ratio / tokens;
  stats->token_count = total.tokens;
}

}  // namespace napo
