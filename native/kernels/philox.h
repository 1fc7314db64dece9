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
#include <type_traits>
#include "kernels/common.h"
#include "kernels/half.h"

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

// Mantissa bits of a uniform of T (a float dtype other than double): each value k * 2^-bits is
// exact in T and below 1.
template <typename T>
constexpr int uniform_bits() {
  if constexpr (std::is_same_v<T, bfloat16>) return 8;
  else if constexpr (std::is_same_v<T, float16>) return 11;
  else return 24;
}

// Uniform in [0, 1) from 53 bits of two words: k * 2^-53, exact in double.
IGNIS_HD double uniform_double(uint32_t hi, uint32_t lo) {
  uint64_t u = (uint64_t(hi) << 32 | lo) >> 11;
  return double(u) * (1.0 / 9007199254740992.0);
}

// High 64 bits of a * b.
IGNIS_HD uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#elif defined(__SIZEOF_INT128__)
  return uint64_t((unsigned __int128)a * b >> 64);
#else
  uint64_t a_lo = uint32_t(a), a_hi = a >> 32, b_lo = uint32_t(b), b_hi = b >> 32;
  uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  uint64_t middle = (lo_lo >> 32) + uint32_t(hi_lo) + uint32_t(lo_hi);
  return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (middle >> 32);
#endif
}

// An integer in [0, range) from 64 random bits: floor(x * range / 2^64). Each value has
// floor or ceil of 2^64 / range preimages, so its probability is off by at most range / 2^64
// relative (at most 6e-8 for ranges up to 2^40). range 0 stands for 2^64.
IGNIS_HD uint64_t bounded_u64(uint32_t hi, uint32_t lo, uint64_t range) {
  uint64_t x = uint64_t(hi) << 32 | lo;
  return range == 0 ? x : mulhi64(x, range);
}

// ln(x) for a normal float x, by polynomial only (no library call, no branch), so loops over
// it vectorise: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln(m) = 2 atanh(s) for
// s = (m - 1) / (m + 1), |s| < 0.172, from its series to s^9 (truncation below 1e-9).
IGNIS_HD float log_poly(float x) {
  uint32_t bits = float_bits(x);
  uint32_t mantissa = bits & 0x7fffffu;
  uint32_t high = mantissa > 0x3504f3u ? 1u : 0u;  // above sqrt(2): halve m, one more in e
  int e = int(bits >> 23) - 127 + int(high);
  float m = bits_float(mantissa | (0x3f800000u - (high << 23)));
  float s = (m - 1.0f) / (m + 1.0f);
  float s2 = s * s;
  float series = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return float(e) * 0.693147180559945f + (2.0f * s + 2.0f * s * series);
}

// sin and cos of 2 pi u for u in [0, 1): the quarter turn q nearest to 4u is taken exactly,
// and the rest, at most pi/4, goes through Taylor series to the 9th / 10th power
// (truncation below 2e-9).
IGNIS_HD void sincos_turns(float u, float& s, float& c) {
  float t = 4.0f * u;
  int q = int(t + 0.5f);  // t >= 0: truncation is floor
  float a = (t - float(q)) * 1.57079632679489662f;
  float a2 = a * a;
  float sa = a * (1.0f + a2 * (-1.0f / 6 + a2 * (1.0f / 120 + a2 * (-1.0f / 5040 + a2 * (1.0f / 362880)))));
  float ca = 1.0f + a2 * (-0.5f + a2 * (1.0f / 24 + a2 * (-1.0f / 720 + a2 * (1.0f / 40320 + a2 * (-1.0f / 3628800)))));
  // turn (sa, ca) by q quarter turns
  bool odd = q & 1, neg_s = q & 2, neg_c = (q + 1) & 2;
  float rs = odd ? ca : sa, rc = odd ? sa : ca;
  s = neg_s ? -rs : rs;
  c = neg_c ? -rc : rc;
}

// Box-Muller: two standard normals from u1 in (0, 1] and u2 in [0, 1):
//   z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2).
// For float dtypes ln is log_poly and (sin, cos) sincos_turns, a few ulp from exact, which
// loops can vectorise (the CPU kernel runs the steps in passes over a batch); float64 uses the
// math library, below. Devices round differently (fused multiply-adds), so normals agree across
// devices to rounding, not bit for bit; uniforms and integers agree exactly.
IGNIS_HD void box_muller(double u1, double u2, double& z0, double& z1) {
  double r = sqrt(-2.0 * log(u1));
  double theta = 6.283185307179586476925 * u2;
  z0 = r * cos(theta);
  z1 = r * sin(theta);
}

// Two float standard normals from two words, as box_muller with log_poly and sincos_turns. (The
// CPU kernel runs these steps in passes over a batch of blocks.)
IGNIS_HD void box_muller_float(uint32_t w0, uint32_t w1, float& z0, float& z1) {
  float r = sqrtf(-2.0f * log_poly(1.0f - uniform_float(w0, 24)));
  float s, c;
  sincos_turns(uniform_float(w1, 24), s, c);
  z0 = r * c;
  z1 = r * s;
}

// Elements drawn from one block by each distribution.
constexpr int kUniformFloatPerBlock = 4;   // one word each
constexpr int kUniformDoublePerBlock = 2;  // two words each
constexpr int kNormalFloatPerBlock = 4;    // Box-Muller on words (0, 1) and (2, 3)
constexpr int kNormalDoublePerBlock = 2;   // Box-Muller on two 53-bit uniforms
constexpr int kIntPerBlock = 2;            // 64 bits each

}  // namespace ignis
