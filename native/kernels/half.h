// bfloat16 and float16 storage types. Arithmetic happens in float (see acc_t); these only
// convert. Conversions round to nearest even and keep NaN a NaN.
#pragma once
#include <cstdint>
#include <cstring>
#include "kernels/common.h"

namespace ignis {

IGNIS_HD uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
IGNIS_HD float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

IGNIS_HD float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

IGNIS_HD uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                        // round to nearest even
  return uint16_t(u >> 16);
}

IGNIS_HD float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_float(sign);
    // subnormal: value = man * 2^-24
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112) << 23) | (man << 13));
}

IGNIS_HD uint16_t float_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to inf (>= 65520)
  if (a < 0x38800000u) {
    // subnormal or zero in half: scale to units of 2^-24 and round to nearest even
    float v = bits_float(a) * 16777216.0f;  // exact: power of two
    uint32_t m = uint32_t(v);
    float rest = v - float(m);
    if (rest > 0.5f || (rest == 0.5f && (m & 1u))) m++;
    return uint16_t(sign | m);
  }
  uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits, nearest even
  return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

struct bfloat16 {
  uint16_t bits;
  bfloat16() = default;
  IGNIS_HD bfloat16(float f) : bits(float_to_bf16(f)) {}
  IGNIS_HD operator float() const { return bf16_to_float(bits); }
};

struct float16 {
  uint16_t bits;
  float16() = default;
  IGNIS_HD float16(float f) : bits(float_to_f16(f)) {}
  IGNIS_HD operator float() const { return f16_to_float(bits); }
};

// The type arithmetic runs in: float for the 16-bit floats, the type itself otherwise.
template <typename T> struct acc_type { using type = T; };
template <> struct acc_type<bfloat16> { using type = float; };
template <> struct acc_type<float16> { using type = float; };
template <typename T> using acc_t = typename acc_type<T>::type;

}  // namespace ignis
