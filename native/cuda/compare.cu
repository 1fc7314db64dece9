// Comparisons and selections.
#include <type_traits>
#include "core/dtype.h"
#include "cuda/elementwise.h"
#include "cuda/loop.cuh"

namespace ignis::cuda {
namespace {

template <typename T, typename Op>
struct Compare {
  Op op;
  __device__ bool operator()(T a, T b) const { return op(acc_t<T>(a), acc_t<T>(b)); }
};

// op(C(x), s) with x widened to acc_t<T> first, then to the comparison type C.
template <typename T, typename C, typename Op>
struct CompareWith {
  Op op;
  C s;
  __device__ bool operator()(T x) const { return op(C(acc_t<T>(x)), s); }
};

// Selection moves bits: U is an unsigned integer as wide as one element.
template <typename U>
struct Select {
  __device__ U operator()(bool c, U a, U b) const { return c ? a : b; }
};

}  // namespace

void compare(CompareOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) {
  dispatch_all(a->dtype, "compare", [&](auto tag) {
    using T = decltype(tag);
    dispatch_compare_op(op, [&](auto f) { map<bool, T, T>("compare", out, {a, b}, Compare<T, decltype(f)>{f}); });
  });
}

// As cpu::compare_scalar: floats compare with s rounded to a's dtype; integers exactly, in
// double when s is fractional, NaN or beyond their range (integer_comparand).
void compare_scalar(CompareOp op, const TensorPtr& out, const TensorPtr& a, double s) {
  dispatch_all(a->dtype, "compare", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_compare_op(op, [&](auto f) {
      using F = decltype(f);
      if constexpr (std::is_floating_point_v<A>) {
        map<bool, T>("compare", out, {a}, CompareWith<T, A, F>{f, A(T(s))});
      } else if (representable_as<T>(s)) {
        map<bool, T>("compare", out, {a}, CompareWith<T, T, F>{f, T(s)});
      } else {
        map<bool, T>("compare", out, {a}, CompareWith<T, double, F>{f, integer_comparand<T>(s)});
      }
    });
  });
}

void where(const TensorPtr& out, const TensorPtr& condition, const TensorPtr& a, const TensorPtr& b) {
  dispatch_element_size(out->element_size(), [&](auto tag) {
    using U = decltype(tag);
    map<U, bool, U, U>("where", out, {condition, a, b}, Select<U>{});
  });
}

}  // namespace ignis::cuda
