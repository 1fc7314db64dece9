// exp for float that the compiler can vectorise (no library call, no branches): the CPU loops
// of softmax-like kernels spend most of their time in exp. Within 1 ulp of std::exp (measured)
// for x <= 88.376; above that it gives inf, and results below FLT_MIN flush to 0.
#pragma once
#include <cstdint>
#include <cstring>
#include "kernels/common.h"

namespace ignis {

// Selects through bit masks: GCC keeps float comparisons from trapping, so it turns `c ? a : b`
// on floats back into branches and then cannot vectorise the loop; masks it can.
IGNIS_HD uint32_t mask_if(bool c) { return 0u - uint32_t(c); }
IGNIS_HD float select_mask(uint32_t mask, float a, float b) {
  uint32_t ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  const uint32_t u = (ua & mask) | (ub & ~mask);
  float out;
  memcpy(&out, &u, sizeof out);
  return out;
}

IGNIS_HD float fast_exp(float x) {
  const float lo = -87.33654f, hi = 88.37626f;  // exp(lo) = FLT_MIN; 2^n stays finite up to hi
  const uint32_t below = mask_if(x < lo), above = mask_if(x > hi), nan = mask_if(x != x);
  const float c = select_mask(below, lo, select_mask(above, hi, select_mask(nan, 0.0f, x)));
  // exp(c) = 2^n * exp(r) with n = round(c / ln 2), |r| <= ln 2 / 2, r in two steps (Cody-Waite);
  // the rounding goes through the float mantissa (exact for |v| < 2^22).
  const float n = (c * 1.44269504f + 12582912.0f) - 12582912.0f;
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Cephes' minimax polynomial for exp on [-ln 2 / 2, ln 2 / 2]
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t scale_bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  memcpy(&scale, &scale_bits, sizeof scale);
  return select_mask(nan, x, select_mask(below, 0.0f, select_mask(above, __builtin_inff(), p * scale)));
}

}  // namespace ignis
