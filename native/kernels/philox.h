// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random
// numbers: as easy as 1, 2, 3" (SC 2011): ten rounds of two 32x32->64-bit multiplies over a
// 128-bit counter under a 64-bit key that advances by a Weyl sequence between rounds. The output
// for a counter depends on nothing else, so any thread or device computes the same block.
//
// The stream of ignis' generator: block b (a 64-bit index) is philox(counter = {lo(b), hi(b), 0, 0},
// key = {lo(seed), hi(seed)}). Each random op owns the blocks [offset, offset + blocks) of the
// global state and maps element i to a fixed block and word (see the *_per_block constants), so the
// numbers do not depend on how the work is split.
#pragma once
#include <cmath>
#include <cstdint>
#include "kernels/common.h"

namespace ignis {

struct PhiloxBlock {
  uint32_t w[4];
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // round multipliers
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key increments: golden ratio and sqrt(3) - 1, in 32 bits
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

IGNIS_HD PhiloxBlock philox4x32_10(PhiloxBlock ctr, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    uint64_t p0 = uint64_t(kPhiloxM0) * ctr.w[0];
    uint64_t p1 = uint64_t(kPhiloxM1) * ctr.w[2];
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    ctr = PhiloxBlock{{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
  }
  return ctr;
}

// Block `index` of the stream of `seed`.
IGNIS_HD PhiloxBlock philox_block(uint64_t seed, uint64_t index) {
  return philox4x32_10(PhiloxBlock{{uint32_t(index), uint32_t(index >> 32), 0u, 0u}}, uint32_t(seed),
                       uint32_t(seed >> 32));
}

// Uniform in [0, 1) from the top `bits` (<= 24) of a word: k * 2^-bits, exact in float.
IGNIS_HD float uniform_float(uint32_t w, int bits) { return float(w >> (32 - bits)) * (1.0f / float(1u << bits)); }

// Uniform in [0, 1) from 53 bits of two words: k * 2^-53, exact in double.
IGNIS_HD double uniform_double(uint32_t hi, uint32_t lo) {
  uint64_t u = (uint64_t(hi) << 32 | lo) >> 11;
  return double(u) * (1.0 / 9007199254740992.0);
}

// High 64 bits of a * b.
IGNIS_HD uint64_t mulhi64(uint64_t a, uint64_t b) {
  uint64_t a_lo = uint32_t(a), a_hi = a >> 32, b_lo = uint32_t(b), b_hi = b >> 32;
  uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  uint64_t middle = (lo_lo >> 32) + uint32_t(hi_lo) + uint32_t(lo_hi);
  return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (middle >> 32);
}

// An integer in [0, range) from 64 random bits: floor(x * range / 2^64). Each value has
// floor or ceil of 2^64 / range preimages, so its probability is off by at most range / 2^64
// relative (below 2.4e-7 for ranges up to 2^40). range 0 stands for 2^64.
IGNIS_HD uint64_t bounded_u64(uint32_t hi, uint32_t lo, uint64_t range) {
  uint64_t x = uint64_t(hi) << 32 | lo;
  return range == 0 ? x : mulhi64(x, range);
}

// Box-Muller: two standard normals from u1 in (0, 1] and u2 in [0, 1). Devices may differ in the
// last bit of log/sin/cos, so normals agree across devices to rounding, not bit for bit.
IGNIS_HD void box_muller(float u1, float u2, float& z0, float& z1) {
  float r = sqrtf(-2.0f * logf(u1));
  float theta = 6.2831853071795865f * u2;
  z0 = r * cosf(theta);
  z1 = r * sinf(theta);
}
IGNIS_HD void box_muller(double u1, double u2, double& z0, double& z1) {
  double r = sqrt(-2.0 * log(u1));
  double theta = 6.283185307179586476925 * u2;
  z0 = r * cos(theta);
  z1 = r * sin(theta);
}

// Elements drawn from one block by each distribution.
constexpr int kUniformFloatPerBlock = 4;   // one word each
constexpr int kUniformDoublePerBlock = 2;  // two words each
constexpr int kNormalFloatPerBlock = 4;    // Box-Muller on words (0, 1) and (2, 3)
constexpr int kNormalDoublePerBlock = 2;   // Box-Muller on two 53-bit uniforms
constexpr int kIntPerBlock = 2;            // 64 bits each

}  // namespace ignis
