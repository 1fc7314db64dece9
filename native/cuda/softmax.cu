// softmax and log-softmax, with the contracts of cpu/softmax.h: one group of threads per row
// (cuda/reduce.cuh), which finds the row's max and sum of exponentials in one pass (an online
// softmax: partial sums are rescaled when the max grows), then writes the row.
#include "cuda/softmax.h"

#include <limits>
#include "core/dtype.h"
#include "cuda/reduce.cuh"

namespace ignis::cuda {
namespace {

// A running max and the sum of exp(x - max) over the elements seen.
template <typename A>
struct MaxSum {
  A max, sum;
};

struct MergeMaxSum {
  template <typename A>
  __device__ MaxSum<A> operator()(MaxSum<A> a, MaxSum<A> b) const {
    const A max = max_nan(a.max, b.max);
    // nothing but -inf so far: exp(-inf - -inf) would be NaN
    if (max == -std::numeric_limits<A>::infinity()) return {max, a.sum + b.sum};
    return {max, a.sum * exp_acc(a.max - max) + b.sum * exp_acc(b.max - max)};
  }
};

// Rows of n elements `step` apart; rows mode: row r starts at x_rows.offset(r) in x and at r * n
// in y (step 1); columns mode: x and y are contiguous [outer, n, inner] and row r is the column
// at (r / inner, r % inner) (step inner).
template <typename T, bool Columns>
struct SoftmaxRows {
  const T* x;
  T* y;
  RowIndex x_rows;
  int64_t n, inner;
  bool log;

  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    using A = acc_t<T>;
    const int64_t step = Columns ? inner : 1;
    int64_t x_at = 0, y_at = 0;
    if (active) {
      x_at = Columns ? row / inner * n * inner + row % inner : x_rows.offset(row);
      y_at = Columns ? x_at : row * n;
    }
    const int64_t count = active ? n : 0;
    const T* xr = x + x_at;
    const MergeMaxSum merge;
    MaxSum<A> part{-std::numeric_limits<A>::infinity(), A(0)};
    for (int64_t i = g.lane; i < count; i += g.size) part = merge(part, MaxSum<A>{A(xr[i * step]), A(1)});
    const MaxSum<A> total = g.reduce(part, merge);
    // An all -inf row gives NaN (exp(-inf - -inf)), as PyTorch.
    T* yr = y + y_at;
    if (log) {
      const A log_total = std::log(total.sum);
      for (int64_t i = g.lane; i < count; i += g.size) yr[i * step] = T((A(xr[i * step]) - total.max) - log_total);
    } else {
      const A inv = A(1) / total.sum;
      for (int64_t i = g.lane; i < count; i += g.size) yr[i * step] = T(exp_acc(A(xr[i * step]) - total.max) * inv);
    }
  }
};

}  // namespace

void softmax_rows(const TensorPtr& out, const TensorPtr& x, bool log) {
  const int outer_dims = x->ndim() - 1;
  const int64_t n = x->shape.back();
  const Shape sizes(x->shape.begin(), x->shape.begin() + outer_dims), strides(x->strides.begin(), x->strides.begin() + outer_dims);
  dispatch_float(x->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    const SoftmaxRows<T, false> body{x->data_as<T>(), out->data_as<T>(), row_index(sizes, strides), n, 1, log};
    run_groups<false>("softmax", out->device().index, shape_numel(sizes), n, body);
  });
}

void softmax_columns(const TensorPtr& out, const TensorPtr& x, int64_t dim, bool log) {
  const int64_t n = x->shape[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; d++) outer *= x->shape[d];
  for (int64_t d = dim + 1; d < x->ndim(); d++) inner *= x->shape[d];
  dispatch_float(x->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    const SoftmaxRows<T, true> body{x->data_as<T>(), out->data_as<T>(), RowIndex{}, n, inner, log};
    run_groups<true>("softmax", out->device().index, outer * inner, n, body);
  });
}

}  // namespace ignis::cuda
