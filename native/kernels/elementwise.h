// Per-element math of the elementwise family, shared by the CPU loops and the CUDA kernels.
// 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include <cstdint>
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

}  // namespace ignis
