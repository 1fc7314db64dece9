// Per-element math of the elementwise family, shared by the CPU loops and the CUDA kernels.
// 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include "kernels/common.h"
#include "kernels/half.h"

namespace ignis {

// The numeric values are part of the JS <-> C++ contract (lib/ops/elementwise.ts).
enum class BinaryOp : int { Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum };

template <typename T>
IGNIS_HD T int_pow(T base, T exp) {
  if (exp < 0) return base == 1 ? T(1) : (base == -1 ? ((exp & 1) ? T(-1) : T(1)) : T(0));
  T result = 1;
  while (exp) {
    if (exp & 1) result *= base;
    base *= base;
    exp >>= 1;
  }
  return result;
}

struct AddOp { template <typename T> IGNIS_HD T operator()(T a, T b) const { return a + b; } };
struct SubOp { template <typename T> IGNIS_HD T operator()(T a, T b) const { return a - b; } };
struct MulOp { template <typename T> IGNIS_HD T operator()(T a, T b) const { return a * b; } };
struct DivOp { template <typename T> IGNIS_HD T operator()(T a, T b) const { return a / b; } };
struct PowOp {
  template <typename T>
  IGNIS_HD T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return int_pow(a, b);
    else return std::pow(a, b);
  }
};
// maximum/minimum propagate NaN, as PyTorch does.
struct MaximumOp {
  template <typename T>
  IGNIS_HD T operator()(T a, T b) const {
    if constexpr (!std::is_integral_v<T>) if (a != a || b != b) return a + b;
    return a > b ? a : b;
  }
};
struct MinimumOp {
  template <typename T>
  IGNIS_HD T operator()(T a, T b) const {
    if constexpr (!std::is_integral_v<T>) if (a != a || b != b) return a + b;
    return a < b ? a : b;
  }
};

// Calls f(Op{}) for a BinaryOp value.
template <typename F>
auto dispatch_binary_op(BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::Add: return f(AddOp{});
    case BinaryOp::Sub: return f(SubOp{});
    case BinaryOp::Mul: return f(MulOp{});
    case BinaryOp::Div: return f(DivOp{});
    case BinaryOp::Pow: return f(PowOp{});
    case BinaryOp::Maximum: return f(MaximumOp{});
    case BinaryOp::Minimum: break;
  }
  return f(MinimumOp{});
}

// --- gradients of the binary ops ----------------------------------------------------------
// Those that cannot be composed from other ops (they need comparisons or a logarithm). Each
// gives the gradient of one operand, `self`, from the output gradient g; `other` is the second
// operand. Conventions are PyTorch's.

// The numeric values are part of the JS <-> C++ contract (lib/ops/elementwise.ts).
enum class BinaryGrad : int { PowBase = 0, PowExponent, Maximum, Minimum };

// d(self^other)/dself = other * self^(other - 1); 0 where other == 0 (self^0 is constant, even at 0).
struct PowBaseGrad {
  template <typename A>
  IGNIS_HD A operator()(A g, A self, A other) const {
    return other == A(0) ? A(0) : g * other * std::pow(self, other - A(1));
  }
};
// d(other^self)/dself = other^self * log(other), with `other` the base; 0 where the base is 0
// and the exponent >= 0 (0^x is constant there).
struct PowExponentGrad {
  template <typename A>
  IGNIS_HD A operator()(A g, A self, A other) const {
    return other == A(0) && self >= A(0) ? A(0) : g * std::pow(other, self) * std::log(other);
  }
};
// maximum: all of g to the larger operand, half to each on a tie; a NaN operand gives g to both.
struct MaximumGrad {
  template <typename A>
  IGNIS_HD A operator()(A g, A self, A other) const {
    return self < other ? A(0) : self == other ? g * A(0.5) : g;
  }
};
struct MinimumGrad {
  template <typename A>
  IGNIS_HD A operator()(A g, A self, A other) const {
    return self > other ? A(0) : self == other ? g * A(0.5) : g;
  }
};

// Calls f(Op{}) for a BinaryGrad value.
template <typename F>
auto dispatch_binary_grad(BinaryGrad op, F&& f) {
  switch (op) {
    case BinaryGrad::PowBase: return f(PowBaseGrad{});
    case BinaryGrad::PowExponent: return f(PowExponentGrad{});
    case BinaryGrad::Maximum: return f(MaximumGrad{});
    case BinaryGrad::Minimum: break;
  }
  return f(MinimumGrad{});
}

// --- float exp, log, tanh and normal CDF in plain arithmetic -------------------------------
// libm's expf/logf/tanhf/erfcf are calls the compiler cannot vectorise; these are branch-free (selects
// only), within a few ulp, with the same special values (NaN, +-inf, overflow, subnormal results).
// float64 keeps libm.

constexpr float kLog2e = 1.44269504088896341f;
// ln 2 split so that n * kLn2Hi is exact for |n| < 2^15 (kLn2Hi has 9 significant bits).
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// Adding 1.5 * 2^23 to a float below 2^22 in magnitude rounds it to an integer, which then sits
// in the low mantissa bits: both the rounded float and the integer come out without a
// float -> int conversion (undefined for NaN).
constexpr float kRoundMagic = 12582912.0f;

// 2^n for an integer n in [-126, 127].
IGNIS_HD float pow2i(int32_t n) { return bits_float(uint32_t(n + 127) << 23); }

// x = n ln2 + r, |r| <= ln2 / 2: returns r and sets n.
IGNIS_HD float reduce_ln2(float x, int32_t& n) {
  float shifted = x * kLog2e + kRoundMagic;
  float fn = shifted - kRoundMagic;
  n = int32_t(float_bits(shifted) - float_bits(kRoundMagic));
  return (x - fn * kLn2Hi) - fn * kLn2Lo;
}

// e^r - 1 for |r| <= ln2 / 2: Taylor terms to r^8 (the next is below 1e-9 relative).
IGNIS_HD float expm1_reduced(float r) {
  float p = 1.0f / 40320;
  p = p * r + 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  return (p * r) * r + r;
}

// e^(x + lo) for a small correction |lo| < 0.01 carried beside x (see normal_cdf_float).
IGNIS_HD float exp_float_plus(float x, float lo) {
  // Clamped where the result is already 0 or inf (NaN passes both tests and stays NaN).
  x = x < -110.0f ? -110.0f : x;
  x = x > 90.0f ? 90.0f : x;
  int32_t n;
  float r = reduce_ln2(x, n) + lo;
  // 2^n as two powers of two: n reaches -159 (subnormal results) and 130 (overflow to inf)
  int32_t half = n >> 1;
  return (expm1_reduced(r) + 1.0f) * pow2i(half) * pow2i(n - half);
}

IGNIS_HD float exp_float(float x) { return exp_float_plus(x, 0.0f); }

IGNIS_HD float tanh_float(float x) {
  // tanh|x| = -m / (2 + m) with m = expm1(-2|x|): no cancellation near 0; 1 beyond |x| = 10
  float a = std::fabs(x);
  a = a > 10.0f ? 10.0f : a;
  int32_t n;
  float r = reduce_ln2(-2.0f * a, n);  // n in [-29, 0]
  float scale = pow2i(n);
  float m = expm1_reduced(r) * scale + (scale - 1.0f);
  return std::copysign(-m / (2.0f + m), x);
}

// log x = e ln2 + log m with x = m 2^e, m in [sqrt(1/2), sqrt 2); log m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, by its series to s^13 (the next term is below 1e-10).
IGNIS_HD float log_float(float x) {
  // subnormals are scaled into the normal range first
  bool subnormal = x < 1.17549435e-38f;
  float scaled = subnormal ? x * 8388608.0f : x;  // 2^23
  uint32_t bits = float_bits(scaled);
  int32_t e = int32_t((bits >> 23) & 0xffu) - (subnormal ? 150 : 127);
  float m = bits_float((bits & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  float f = m - 1.0f;  // exact
  float s = f / (2.0f + f);
  float s2 = s * s;
  float p = 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  float log_m = 2.0f * s + 2.0f * s * s2 * p;
  float fe = float(e);
  float r = fe * kLn2Hi + (fe * kLn2Lo + log_m);
  r = x == 0.0f ? -INFINITY : r;
  r = x == INFINITY ? INFINITY : r;
  return x < 0.0f || x != x ? NAN : r;
}

// The normal CDF Phi(x) = erfc(z) / 2 with z = -x / sqrt 2, a branch-free composition:
//  |z| < 0.5:  erfc|z| = 1 - erf|z|, erf by its Taylor series to z^13 (error below 1e-9);
//  |z| >= 0.5: erfc|z| = e^(-z^2) t G(u), t = 1 / (2 + |z|), u = 6.25 t - 1.5 in [-1, 1] for |z|
//              in [0.5, 10.5], G = erfc(z) e^(z^2) (2 + z) (between 0.67 and 1.54) fitted by a
//              degree-9 polynomial (a least-squares Chebyshev fit, error 3e-9);
//  z < 0:      erfc(z) = 2 - erfc|z|.
// e^(-z^2) is taken from x, as e^(-h^2 / 2 - (x - h)(x + h) / 2) with h = |x| cut to 12 bits (h^2
// exact) and the small rest added after range reduction: rounding z, or z^2, would cost relative
// error 2 z^2 eps in the tail. Within ~7 ulp. `gauss` receives that e^(-x^2 / 2) (0 beyond
// |x| = 14.85, where it is below the smallest float), which gelu's derivative needs too.
IGNIS_HD float normal_cdf_float(float x, float& gauss) {
  float a = std::fabs(x) * 0.70710678118654752f;
  constexpr float k = 1.12837916709551257f;  // 2 / sqrt(pi)
  float a2 = a * a;
  float erf_poly = k / 9360;  // Taylor coefficients 2/sqrt(pi) (-1)^n / (n! (2n + 1))
  erf_poly = erf_poly * a2 - k / 1320;
  erf_poly = erf_poly * a2 + k / 216;
  erf_poly = erf_poly * a2 - k / 42;
  erf_poly = erf_poly * a2 + k / 10;
  erf_poly = erf_poly * a2 - k / 3;
  erf_poly = erf_poly * a2 + k;
  float near = 1.0f - a * erf_poly;

  // beyond |z| = 10.5, erfc is 0 in float (NaN passes the caps and stays NaN)
  float b = a > 10.5f ? 10.5f : a;
  float bx = std::fabs(x) > 14.8492424f ? 14.8492424f : std::fabs(x);
  float t = 1.0f / (2.0f + b);
  float u = t * 6.25f - 1.5f;
  float g = -2.493824699e-06f;
  g = g * u - 1.429004952e-05f;
  g = g * u + 4.735151854e-05f;
  g = g * u + 1.913757842e-04f;
  g = g * u - 7.729393111e-04f;
  g = g * u - 3.378462550e-03f;
  g = g * u + 1.042735991e-02f;
  g = g * u + 1.125976235e-01f;
  g = g * u + 4.255892729e-01f;
  g = g * u + 9.945410482e-01f;
  float h = bits_float(float_bits(bx) & 0xfffff000u);
  gauss = exp_float_plus(-0.5f * (h * h), -0.5f * ((bx - h) * (bx + h)));
  float far = gauss * t * g;

  float r = a < 0.5f ? near : far;  // erfc|z|
  return 0.5f * (x > 0.0f ? 2.0f - r : r);
}

IGNIS_HD float normal_cdf_float(float x) {
  float gauss;
  return normal_cdf_float(x, gauss);
}

template <typename T>
IGNIS_HD T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_float(x);
  else return std::exp(x);
}

// 1 / (1 + e^-x) without overflow: exp only ever sees -|x|, so the result is exact to rounding
// in both tails (sigmoid(-1000) = 0, sigmoid(1000) = 1, never inf / inf).
template <typename T>
IGNIS_HD T stable_sigmoid(T x) {
  T e = exp_of(-std::fabs(x));
  T s = T(1) / (T(1) + e);
  return x >= T(0) ? s : e * s;
}

// x * s where s -> 0 as x -> -inf: the product is 0 there, not -inf * 0 = NaN.
template <typename T>
IGNIS_HD T times_vanishing(T x, T s) {
  return s == T(0) ? T(0) : x * s;
}

// --- unary ---------------------------------------------------------------------------------

// The numeric values are part of the JS <-> C++ contract (lib/ops/elementwise.ts).
enum class UnaryOp : int { Neg = 0, Abs, Sqrt, Rsqrt, Exp, Log, Tanh, Sigmoid, Relu, Gelu, GeluTanh, Silu };

// `integers` says whether an op is defined on int32/int64 (computed in the integer type); the
// others run on floats only. Signed negation of the lowest integer overflows in C++, so neg and
// abs negate in unsigned arithmetic and wrap as PyTorch does (abs(INT_MIN) == INT_MIN).
template <typename T>
IGNIS_HD T wrapping_neg(T x) {
  using U = std::make_unsigned_t<T>;
  return T(U(0) - U(x));
}

struct NegOp {
  static constexpr bool integers = true;
  template <typename T> IGNIS_HD T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return wrapping_neg(x);
    else return -x;
  }
};
struct AbsOp {
  static constexpr bool integers = true;
  template <typename T> IGNIS_HD T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return x < 0 ? wrapping_neg(x) : x;
    else return std::fabs(x);
  }
};
// relu(NaN) is NaN: the comparison is false for NaN, which passes through.
struct ReluOp {
  static constexpr bool integers = true;
  template <typename T> IGNIS_HD T operator()(T x) const { return x < T(0) ? T(0) : x; }
};
struct SqrtOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return std::sqrt(x); }
};
struct RsqrtOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return T(1) / std::sqrt(x); }
};
struct ExpOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return exp_of(x); }
};
struct LogOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return log_float(x);
    else return std::log(x);
  }
};
struct TanhOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return tanh_float(x);
    else return std::tanh(x);
  }
};

struct SigmoidOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return stable_sigmoid(x); }
};
// x * sigmoid(x); silu(-inf) = 0 (the limit).
struct SiluOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return times_vanishing(x, stable_sigmoid(x)); }
};
// x * Phi(x) written with erfc: 0.5 * (1 + erf(x / sqrt 2)) cancels to 0 for x below about -6
// (float) and loses every digit of the tail, while erfc(-x / sqrt 2) keeps them.
struct GeluOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return times_vanishing(x, normal_cdf_float(x));
    else return times_vanishing(x, T(0.5) * std::erfc(-x * T(0.70710678118654752440)));
  }
};
// PyTorch's approximate='tanh': 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed
// as x * sigmoid(2u) (the same function) so the negative tail does not cancel.
struct GeluTanhOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const {
    T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return times_vanishing(x, stable_sigmoid(T(2) * u));
  }
};

// Calls f(Op{}) for a UnaryOp value.
template <typename F>
auto dispatch_unary_op(UnaryOp op, F&& f) {
  switch (op) {
    case UnaryOp::Neg: return f(NegOp{});
    case UnaryOp::Abs: return f(AbsOp{});
    case UnaryOp::Sqrt: return f(SqrtOp{});
    case UnaryOp::Rsqrt: return f(RsqrtOp{});
    case UnaryOp::Exp: return f(ExpOp{});
    case UnaryOp::Log: return f(LogOp{});
    case UnaryOp::Tanh: return f(TanhOp{});
    case UnaryOp::Sigmoid: return f(SigmoidOp{});
    case UnaryOp::Relu: return f(ReluOp{});
    case UnaryOp::Gelu: return f(GeluOp{});
    case UnaryOp::GeluTanh: return f(GeluTanhOp{});
    case UnaryOp::Silu: break;
  }
  return f(SiluOp{});
}

// --- gradients of the unary ops ------------------------------------------------------------
// Each gives g * op'(x) in one pass. Where the derivative is cheaper from the op's output y
// (sqrt, rsqrt, exp, tanh, sigmoid, relu) it reads y, otherwise the input x: the second argument
// is named after what it is. neg has none (its gradient is -g). Conventions are PyTorch's:
// abs'(0) = 0, relu'(0) = 0.

// sigmoid(x) and 1 - sigmoid(x), both accurate (no cancellation in 1 - s), from one exponential.
template <typename T>
IGNIS_HD void sigmoid_pair(T x, T& s, T& complement) {
  T e = exp_of(-std::fabs(x));
  T p = T(1) / (T(1) + e);
  s = x >= T(0) ? p : e * p;
  complement = x >= T(0) ? e * p : p;
}

struct AbsGrad {
  template <typename T> IGNIS_HD T operator()(T g, T x) const {
    T sign = x > T(0) ? T(1) : (x < T(0) ? T(-1) : x * T(0));  // 0 at 0, NaN for NaN
    return g * sign;
  }
};
struct SqrtGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return g / (T(2) * y); }
};
// d(x^-1/2)/dx = -x^-3/2 / 2 = -y^3 / 2
struct RsqrtGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return T(-0.5) * g * (y * y * y); }
};
struct ExpGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return g * y; }
};
struct LogGrad {
  template <typename T> IGNIS_HD T operator()(T g, T x) const { return g / x; }
};
struct TanhGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return g * (T(1) - y * y); }
};
struct SigmoidGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return g * ((T(1) - y) * y); }
};
// The gradient passes where the output is positive (or NaN), as PyTorch's threshold_backward.
struct ReluGrad {
  template <typename T> IGNIS_HD T operator()(T g, T y) const { return y <= T(0) ? T(0) : g; }
};
// d(x Phi(x))/dx = Phi(x) + x phi(x), phi the normal density; x phi(x) is 0 in both tails.
struct GeluGrad {
  template <typename T> IGNIS_HD T operator()(T g, T x) const {
    constexpr T inv_sqrt_2pi = T(0.39894228040143267794);
    T cdf, pdf;
    if constexpr (std::is_same_v<T, float>) {
      float gauss;
      cdf = normal_cdf_float(x, gauss);
      pdf = gauss * inv_sqrt_2pi;
    } else {
      cdf = T(0.5) * std::erfc(-x * T(0.70710678118654752440));
      pdf = std::exp(T(-0.5) * x * x) * inv_sqrt_2pi;
    }
    return g * (cdf + times_vanishing(x, pdf));
  }
};
// d(x s(2u))/dx = s + 2 x s (1 - s) u' with u = c (x + k x^3) as in GeluTanhOp, u' = c (1 + 3 k x^2).
struct GeluTanhGrad {
  template <typename T> IGNIS_HD T operator()(T g, T x) const {
    constexpr T c = T(0.79788456080286535588), k = T(0.044715);
    T u = c * (x + k * x * x * x);
    T s, complement;
    sigmoid_pair(T(2) * u, s, complement);
    T slope = s * complement;  // 0 in both tails, where x^2 may overflow
    T rest = slope == T(0) ? T(0) : T(2) * x * slope * c * (T(1) + T(3) * k * x * x);
    return g * (s + rest);
  }
};
// d(x s(x))/dx = s + x s (1 - s).
struct SiluGrad {
  template <typename T> IGNIS_HD T operator()(T g, T x) const {
    T s, complement;
    sigmoid_pair(x, s, complement);
    return g * (s + times_vanishing(x, s * complement));
  }
};

// Calls f(Grad{}) for a UnaryOp value other than Neg (callers refuse it).
template <typename F>
auto dispatch_unary_grad(UnaryOp op, F&& f) {
  switch (op) {
    case UnaryOp::Abs: return f(AbsGrad{});
    case UnaryOp::Sqrt: return f(SqrtGrad{});
    case UnaryOp::Rsqrt: return f(RsqrtGrad{});
    case UnaryOp::Exp: return f(ExpGrad{});
    case UnaryOp::Log: return f(LogGrad{});
    case UnaryOp::Tanh: return f(TanhGrad{});
    case UnaryOp::Sigmoid: return f(SigmoidGrad{});
    case UnaryOp::Relu: return f(ReluGrad{});
    case UnaryOp::Gelu: return f(GeluGrad{});
    case UnaryOp::GeluTanh: return f(GeluTanhGrad{});
    case UnaryOp::Neg:
    case UnaryOp::Silu: break;
  }
  return f(SiluGrad{});
}

// clamp(x, lo, hi) = min(max(x, lo), hi): hi wins when lo > hi (as PyTorch), NaN stays NaN.
template <typename T>
IGNIS_HD T clamp_value(T x, T lo, T hi) {
  T r = x < lo ? lo : x;
  return r > hi ? hi : r;
}

// A clamp bound v (an integer or +-inf) as the nearest value of the integer type T.
template <typename T>
IGNIS_HD T saturate(double v) {
  constexpr double lowest = double(std::numeric_limits<T>::lowest());
  if (v <= lowest) return std::numeric_limits<T>::lowest();
  if (v >= -lowest) return std::numeric_limits<T>::max();
  return T(v);
}

// The gradient of clamp: g where lo <= x <= hi, 0 elsewhere (and for NaN x).
template <typename T>
IGNIS_HD T clamp_grad(T g, T x, T lo, T hi) {
  return (x >= lo) & (x <= hi) ? g : T(0);
}

// --- scalars -------------------------------------------------------------------------------

// Whether the double v converts to T exactly (no rounding, no overflow); bool holds 0 and 1.
template <typename T>
IGNIS_HD bool representable_as(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v == 0 || v == 1;
  } else {
    static_assert(std::is_integral_v<T> && std::is_signed_v<T>, "for integer types");
    // -lowest is 2^31 or 2^63, exact in double, one past the largest value
    constexpr double lowest = double(std::numeric_limits<T>::lowest());
    return v == std::floor(v) && v >= lowest && v < -lowest;
  }
}

// --- comparisons ---------------------------------------------------------------------------

// The double that an integer or bool x compares with, in double, as it would with s, where s is
// not exact in T (fractional, NaN or beyond T's range): a fractional s has |s| < 2^52, where
// rounding x to double keeps its order; beyond the range s becomes +-inf, since the largest
// int64 values round up to 2^63 itself.
template <typename T>
double integer_comparand(double s) {
  if constexpr (std::is_signed_v<T>) {
    constexpr double lowest = double(std::numeric_limits<T>::lowest());
    if (s >= -lowest) return INFINITY;
    if (s < lowest) return -INFINITY;
  }
  return s;
}

// The numeric values are part of the JS <-> C++ contract (lib/ops/elementwise.ts).
enum class CompareOp : int { Eq = 0, Ne, Lt, Le, Gt, Ge };

struct EqOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a == b; } };
struct NeOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a != b; } };
struct LtOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a < b; } };
struct LeOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a <= b; } };
struct GtOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a > b; } };
struct GeOp { template <typename T> IGNIS_HD bool operator()(T a, T b) const { return a >= b; } };

// Calls f(Op{}) for a CompareOp value.
template <typename F>
auto dispatch_compare_op(CompareOp op, F&& f) {
  switch (op) {
    case CompareOp::Eq: return f(EqOp{});
    case CompareOp::Ne: return f(NeOp{});
    case CompareOp::Lt: return f(LtOp{});
    case CompareOp::Le: return f(LeOp{});
    case CompareOp::Gt: return f(GtOp{});
    case CompareOp::Ge: break;
  }
  return f(GeOp{});
}

}  // namespace ignis
