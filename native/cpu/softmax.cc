#include "cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include "cpu/reduce.h"

namespace ignis::cpu {
namespace {

// y[i] = exp(x[i] - shift) for i < n; returns their sum, in kLanes partial sums.
template <typename A, typename T>
A exp_store(const T* __restrict x, T* __restrict y, int64_t n, A shift) {
  A lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; k++) {
      A e = exp_acc(A(x[i + k]) - shift);
      y[i + k] = e;
      lane[k] += e;
    }
  }
  for (int k = 0; i < n; i++, k++) {
    A e = exp_acc(A(x[i]) - shift);
    y[i] = e;
    lane[k] += e;
  }
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int k = 0; k < width; k++) lane[k] += lane[k + width];
  return lane[0];
}

// One contiguous row. An all -inf row gives NaN (exp(-inf - -inf)), as PyTorch.
template <typename T>
void softmax_row(const T* __restrict x, T* __restrict y, int64_t n, bool log) {
  using A = acc_t<T>;
  const A max = tree_reduce(x, n, 1, -std::numeric_limits<A>::infinity(), MaxOf{}, Identity{});
  if (log) {
    const A log_total = std::log(tree_reduce(x, n, 1, A(0), AddOf{}, [max](A v) { return exp_acc(v - max); }));
    for (int64_t i = 0; i < n; i++) y[i] = T((A(x[i]) - max) - log_total);
  } else if constexpr (std::is_same_v<T, A>) {
    // Keep the exponentials in y, then scale them; the sum goes leaf by leaf for long rows.
    A total = 0;
    for (int64_t b = 0; b < n; b += kTreeLeaf) total += exp_store(x + b, y + b, std::min(kTreeLeaf, n - b), max);
    const A inv = A(1) / total;
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
  } else {
    // 16-bit outputs: recompute the exponentials rather than round them twice.
    const A inv = A(1) / tree_reduce(x, n, 1, A(0), AddOf{}, [max](A v) { return exp_acc(v - max); });
    for (int64_t i = 0; i < n; i++) y[i] = T(exp_acc(A(x[i]) - max) * inv);
  }
}

}  // namespace

void softmax_rows(const TensorPtr& out, const TensorPtr& x, bool log) {
  const int outer_dims = x->ndim() - 1;
  const int64_t n = x->shape.back();
  Shape sizes(x->shape.begin(), x->shape.begin() + outer_dims);
  Shape in_strides(x->strides.begin(), x->strides.begin() + outer_dims);
  Shape out_strides(out->strides.begin(), out->strides.begin() + outer_dims);
  dispatch_float(x->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    for_each_row(sizes, out->data_as<T>(), out_strides, x->data_as<T>(), in_strides, n,
                 [&](T* y, const T* row) { softmax_row(row, y, n, log); });
  });
}

void softmax_columns(const TensorPtr& out, const TensorPtr& x, int64_t dim, bool log) {
  const int64_t n = x->shape[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; d++) outer *= x->shape[d];
  for (int64_t d = dim + 1; d < x->ndim(); d++) inner *= x->shape[d];
  // x and out are contiguous [outer, n, inner]: columns run along n with stride `inner`.
  const Shape sizes{outer, inner}, strides{n * inner, 1};
  dispatch_float(x->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* in = x->data_as<T>();
    T* o = out->data_as<T>();
    for_each_column_block(sizes, strides, strides, n, [&](int64_t in_offset, int64_t out_offset, int64_t w) {
      const T* xb = in + in_offset;
      T* yb = o + out_offset;
      A max[kColumnWidth], scale[kColumnWidth];
      column_reduce(xb, n, inner, w, MaxOf{}, max);
      column_sum(xb, n, inner, w, [&max](A v, int64_t j) { return exp_acc(v - max[j]); }, scale);
      // log: scale = log of the sum; otherwise its inverse
      for (int64_t j = 0; j < w; j++) scale[j] = log ? std::log(scale[j]) : A(1) / scale[j];
      for (int64_t r = 0; r < n; r++) {
        const T* __restrict xr = xb + r * inner;
        T* __restrict yr = yb + r * inner;
        if (log) {
          for (int64_t j = 0; j < w; j++) yr[j] = T((A(xr[j]) - max[j]) - scale[j]);
        } else {
          for (int64_t j = 0; j < w; j++) yr[j] = T(exp_acc(A(xr[j]) - max[j]) * scale[j]);
        }
      }
    });
  });
}

}  // namespace ignis::cpu
