#include "dist/combine.h"

#include <algorithm>
#include <type_traits>
#include "core/loop.h"

namespace ignis::dist {
namespace {

// Each op is a type, so that the tile loop inlines it. Integers wrap around (as two's
// complement) rather than overflow; max and min let NaN win, as torch.maximum does.
struct Add {
  template <typename A> A operator()(A a, A b) const {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) + std::make_unsigned_t<A>(b));
    else return a + b;
  }
};
struct Mul {
  template <typename A> A operator()(A a, A b) const {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) * std::make_unsigned_t<A>(b));
    else return a * b;
  }
};
struct Max {
  template <typename A> A operator()(A a, A b) const {
    if constexpr (std::is_floating_point_v<A>) return (a != a || a > b) ? a : b;
    else return a > b ? a : b;
  }
};
struct Min {
  template <typename A> A operator()(A a, A b) const {
    if constexpr (std::is_floating_point_v<A>) return (a != a || a < b) ? a : b;
    else return a < b ? a : b;
  }
};

constexpr size_t kTile = 1024;

// One tile: the inputs accumulate in order into `acc`, then go to `out` (which may be an input).
template <typename T, typename F>
IGNIS_VECTOR_CLONES void combine_tile(T* out, const void* const* inputs, int n, size_t base, size_t m, F f,
                                      acc_t<T> scale) {
  using A = acc_t<T>;
  A acc[kTile];
  const T* x0 = static_cast<const T*>(inputs[0]) + base;
  for (size_t i = 0; i < m; i++) acc[i] = A(x0[i]);
  for (int r = 1; r < n; r++) {
    const T* x = static_cast<const T*>(inputs[r]) + base;
    for (size_t i = 0; i < m; i++) acc[i] = f(acc[i], A(x[i]));
  }
  T* o = out + base;
  if (scale != A(1)) {
    for (size_t i = 0; i < m; i++) o[i] = T(acc[i] / scale);
  } else {
    for (size_t i = 0; i < m; i++) o[i] = T(acc[i]);
  }
}

template <typename T, typename F>
void combine_typed(void* out, const void* const* inputs, int n, size_t count, F f, acc_t<T> scale) {
  for (size_t base = 0; base < count; base += kTile)
    combine_tile<T>(static_cast<T*>(out), inputs, n, base, std::min(kTile, count - base), f, scale);
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::Prod: return "prod";
  }
  return "?";
}

void combine(DType dtype, ReduceOp op, void* out, const void* const* inputs, int n, size_t count) {
  if (op == ReduceOp::Avg && !is_float(dtype))
    fail(ERR_DTYPE, "avg needs a floating-point tensor, got ", dtype_name(dtype));
  dispatch_numeric(dtype, reduce_op_name(op), [&](auto zero) {
    using T = decltype(zero);
    using A = acc_t<T>;
    switch (op) {
      case ReduceOp::Sum: return combine_typed<T>(out, inputs, n, count, Add{}, A(1));
      case ReduceOp::Avg: return combine_typed<T>(out, inputs, n, count, Add{}, A(n));
      case ReduceOp::Max: return combine_typed<T>(out, inputs, n, count, Max{}, A(1));
      case ReduceOp::Min: return combine_typed<T>(out, inputs, n, count, Min{}, A(1));
      case ReduceOp::Prod: return combine_typed<T>(out, inputs, n, count, Mul{}, A(1));
    }
  });
}

}  // namespace ignis::dist
