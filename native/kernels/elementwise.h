// Per-element math of the elementwise family, shared by the CPU loops and the CUDA kernels.
// 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include "kernels/common.h"

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
  template <typename T> IGNIS_HD T operator()(T x) const { return std::exp(x); }
};
struct LogOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return std::log(x); }
};
struct TanhOp {
  static constexpr bool integers = false;
  template <typename T> IGNIS_HD T operator()(T x) const { return std::tanh(x); }
};

// 1 / (1 + e^-x) without overflow: exp only ever sees -|x|, so the result is exact to rounding
// in both tails (sigmoid(-1000) = 0, sigmoid(1000) = 1, never inf / inf).
template <typename T>
IGNIS_HD T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

// x * s where s -> 0 as x -> -inf: the product is 0 there, not -inf * 0 = NaN.
template <typename T>
IGNIS_HD T times_vanishing(T x, T s) {
  return s == T(0) ? T(0) : x * s;
}

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
    return times_vanishing(x, T(0.5) * std::erfc(-x * T(0.70710678118654752440)));
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

// clamp(x, lo, hi) = min(max(x, lo), hi): hi wins when lo > hi (as PyTorch), NaN stays NaN.
template <typename T>
IGNIS_HD T clamp_value(T x, T lo, T hi) {
  T r = x < lo ? lo : x;
  return r > hi ? hi : r;
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
