// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC11): a
// counter-based generator, so a draw depends only on (seed, offset, row) and never on which
// thread, block or device computes it. Shared verbatim by the CPU and CUDA backends.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace napo {

struct Philox4 {
  uint32_t v[4];
};

NAPO_HOST_DEVICE Philox4 philox4x32_10(Philox4 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kW0;
      key1 += kW1;
    }
    const uint64_t product0 = uint64_t(kM0) * counter.v[0];
    const uint64_t product1 = uint64_t(kM1) * counter.v[2];
    const uint32_t hi0 = uint32_t(product0 >> 32), lo0 = uint32_t(product0);
    const uint32_t hi1 = uint32_t(product1 >> 32), lo1 = uint32_t(product1);
    counter = Philox4{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
  }
  return counter;
}

// The uniform in [0, 1) that drives row `row`'s draw: 24 bits, so it is exact in float32.
NAPO_HOST_DEVICE float philoxUniform(uint64_t seed, uint64_t offset, uint32_t row) {
  const Philox4 out = philox4x32_10(
      Philox4{{uint32_t(offset), uint32_t(offset >> 32), row, 0u}}, uint32_t(seed),
      uint32_t(seed >> 32));
  return float(out.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace napo
