// The unary ops, clamp, and their gradients.
#include <type_traits>
#include "core/dtype.h"
#include "cuda/elementwise.h"
#include "cuda/loop.cuh"

namespace ignis::cuda {
namespace {

// T(op(x)) computed in acc_t<T> (the integer ops in the integer type itself).
template <typename T, typename Op>
struct Unary {
  Op op;
  __device__ T operator()(T x) const { return T(op(acc_t<T>(x))); }
};

template <typename T>
struct Clamp {
  acc_t<T> lo, hi;
  __device__ T operator()(T x) const { return T(clamp_value(acc_t<T>(x), lo, hi)); }
};

// T(grad(g, saved)) computed in acc_t<T>.
template <typename T, typename Grad>
struct UnaryGradient {
  Grad grad;
  __device__ T operator()(T g, T saved) const { return T(grad(acc_t<T>(g), acc_t<T>(saved))); }
};

template <typename T>
struct ClampGradient {
  acc_t<T> lo, hi;
  __device__ T operator()(T g, T x) const { return T(clamp_grad(acc_t<T>(g), acc_t<T>(x), lo, hi)); }
};

}  // namespace

void unary(UnaryOp op, const TensorPtr& out, const TensorPtr& a) {
  dispatch_numeric(out->dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    dispatch_unary_op(op, [&](auto f) {
      using F = decltype(f);
      if constexpr (std::is_floating_point_v<acc_t<T>> || F::integers) map<T, T>("unary", out, {a}, Unary<T, F>{f});
      else fail(ERR_DTYPE, "unary: integer input for a float-only op");
    });
  });
}

void clamp(const TensorPtr& out, const TensorPtr& a, double lo, double hi) {
  dispatch_numeric(out->dtype, "clamp", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    if constexpr (std::is_floating_point_v<A>) map<T, T>("clamp", out, {a}, Clamp<T>{A(lo), A(hi)});
    else map<T, T>("clamp", out, {a}, Clamp<T>{saturate<T>(lo), saturate<T>(hi)});
  });
}

void unary_backward(UnaryOp op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& saved) {
  dispatch_float(out->dtype, "unary backward", [&](auto tag) {
    using T = decltype(tag);
    dispatch_unary_grad(op, [&](auto f) {
      map<T, T, T>("unary backward", out, {grad, saved}, UnaryGradient<T, decltype(f)>{f});
    });
  });
}

void clamp_backward(const TensorPtr& out, const TensorPtr& grad, const TensorPtr& a, double lo, double hi) {
  dispatch_float(out->dtype, "clamp backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    map<T, T, T>("clamp backward", out, {grad, a}, ClampGradient<T>{A(lo), A(hi)});
  });
}

}  // namespace ignis::cuda
