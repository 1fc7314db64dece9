// The binary ops and their gradients.
#include "core/dtype.h"
#include "cuda/elementwise.h"
#include "cuda/loop.cuh"

namespace ignis::cuda {
namespace {

// T(op(a, b)) computed in acc_t<T>.
template <typename T, typename Op>
struct Binary {
  Op op;
  __device__ T operator()(T a, T b) const { return T(op(acc_t<T>(a), acc_t<T>(b))); }
};

// op(a, s), or op(s, a) when Reversed, with s in acc_t<T>.
template <typename T, typename Op, bool Reversed>
struct WithScalar {
  Op op;
  acc_t<T> s;
  __device__ T operator()(T a) const { return Reversed ? T(op(s, acc_t<T>(a))) : T(op(acc_t<T>(a), s)); }
};

template <typename T, typename Grad>
struct BinaryGradient {
  Grad grad;
  __device__ T operator()(T g, T self, T other) const { return T(grad(acc_t<T>(g), acc_t<T>(self), acc_t<T>(other))); }
};

}  // namespace

void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) {
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    dispatch_binary_op(op, [&](auto f) { map<T, T, T>("binary", out, {a, b}, Binary<T, decltype(f)>{f}); });
  });
}

void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double s, bool reversed) {
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    const acc_t<T> sv = acc_t<T>(s);
    dispatch_binary_op(op, [&](auto f) {
      using F = decltype(f);
      if (reversed) map<T, T>("binary", out, {a}, WithScalar<T, F, true>{f, sv});
      else map<T, T>("binary", out, {a}, WithScalar<T, F, false>{f, sv});
    });
  });
}

void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other) {
  dispatch_float(out->dtype, "binary backward", [&](auto tag) {
    using T = decltype(tag);
    dispatch_binary_grad(op, [&](auto f) {
      map<T, T, T, T>("binary backward", out, {grad, self, other}, BinaryGradient<T, decltype(f)>{f});
    });
  });
}

}  // namespace ignis::cuda
