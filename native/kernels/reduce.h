// Per-element math of the reductions (also used by softmax and the norms), shared by the CPU
// loops and the CUDA kernels. 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include <cstdint>
#include "kernels/half.h"

namespace ignis {

// The numeric values are part of the JS <-> C++ contract (lib/ops/reduce.ts).
enum class ReduceOp : int { Sum = 0, Mean, Var, LogSumExp, Max, Min, ArgMax, ArgMin };

// max/min that propagate NaN, as PyTorch's reductions do. (`a != a` is false for integers and
// bool, where this is the plain max.)
template <typename T>
IGNIS_HD T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
IGNIS_HD T min_nan(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// c ? a : b through bit masks. A plain select lets compilers branch around (and constant-fold)
// the work that one side does not need, and loops with branches do not vectorise.
IGNIS_HD float select_bits(bool c, float a, float b) {
  uint32_t mask = 0u - uint32_t(c);
  return bits_float((float_bits(a) & mask) | (float_bits(b) & ~mask));
}

// exp for float without a libm call, so that loops over it vectorise: Cody-Waite reduction
// x = k ln2 + r, a degree-6 polynomial for exp(r) (Cephes expf; within 2 ulp), and 2^k built
// in the exponent field. NaN stays NaN, overflow gives inf; results below e^-87 (about 1.6e-38,
// near the smallest normal float) are flushed to 0, so no denormal is ever computed.
IGNIS_HD float exp_fast(float x) {
  const float max_x = 89.0f, min_x = -87.0f;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  float xc = select_bits(x > max_x, max_x, x);  // NaN stays NaN
  xc = select_bits(xc < min_x, min_x, xc);
  float shifted = xc * 1.44269504088896341f + magic;
  float k = shifted - magic;
  float r = (xc - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f) * r) * r + r + 1.0f;
  // 2^k as 2^(k/2) * 2^(k - k/2): both halves are normal floats for k in [-126, 128] (x in
  // [-87, 89]), and their product overflows to inf when exp(x) does
  int32_t ki = int32_t(float_bits(shifted) - float_bits(magic));
  int32_t half = ki >> 1;
  float y = p * bits_float(uint32_t(half + 127) << 23) * bits_float(uint32_t(ki - half + 127) << 23);
  return select_bits(x < min_x, 0.0f, y);
}

// exp in the accumulation type: the vectorisable one for float, libm's for double.
IGNIS_HD float exp_acc(float x) { return exp_fast(x); }
IGNIS_HD double exp_acc(double x) { return std::exp(x); }

// The shift that keeps exp(x - shift) in range for a row whose maximum is m: m itself, or 0 when
// m is infinite (all -inf gives exp(-inf) = 0 and log(0) = -inf; +inf gives inf) or NaN.
template <typename A>
IGNIS_HD A logsumexp_shift(A m) {
  return std::isfinite(m) ? m : A(0);
}

// log(sum of exp(x - shift)) + shift.
template <typename A>
IGNIS_HD A logsumexp_finish(A sum_exp, A shift) {
  return std::log(sum_exp) + shift;
}

}  // namespace ignis
