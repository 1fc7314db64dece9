// Per-element gradients of the binary ops that cannot be composed from other ops (they need
// comparisons or a logarithm), shared by the CPU loops and the CUDA kernels. Each gives the
// gradient of one operand, `self`, from the output gradient g; `other` is the second operand.
// Conventions are PyTorch's. 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include "kernels/common.h"

namespace ignis {

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

}  // namespace ignis
