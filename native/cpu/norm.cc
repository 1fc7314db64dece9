#include "cpu/norm.h"

#include <cmath>
#include "cpu/reduce.h"

namespace ignis::cpu {
namespace {

// y = (x - shift) * scale * w + b over one row, with w and b optional.
template <typename T, typename A>
void normalize_row(const T* __restrict x, T* __restrict y, int64_t n, A shift, A scale, const T* __restrict w,
                   const T* __restrict b) {
  if (w && b) {
    for (int64_t i = 0; i < n; i++) y[i] = T((A(x[i]) - shift) * scale * A(w[i]) + A(b[i]));
  } else if (w) {
    for (int64_t i = 0; i < n; i++) y[i] = T((A(x[i]) - shift) * scale * A(w[i]));
  } else if (b) {
    for (int64_t i = 0; i < n; i++) y[i] = T((A(x[i]) - shift) * scale + A(b[i]));
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = T((A(x[i]) - shift) * scale);
  }
}

// Calls row(y, x, index of the row) for every row, in parallel (see norm.h for the layouts).
template <typename T, typename Row>
void for_each_norm_row(const TensorPtr& out, const TensorPtr& x, Row row) {
  const int outer_dims = x->ndim() - 1;
  const int64_t n = x->shape.back();
  Shape sizes(x->shape.begin(), x->shape.begin() + outer_dims);
  Shape in_strides(x->strides.begin(), x->strides.begin() + outer_dims);
  Shape out_strides(out->strides.begin(), out->strides.begin() + outer_dims);
  T* base = out->data_as<T>();
  for_each_row(sizes, base, out_strides, x->data_as<T>(), in_strides, n,
               [&](T* y, const T* xr) { row(y, xr, (y - base) / n); });
}

template <typename T> T* data_or_null(const TensorPtr& t) { return t ? t->data_as<T>() : nullptr; }

}  // namespace

void layer_norm(const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
                const TensorPtr& weight, const TensorPtr& bias, double eps) {
  const int64_t n = x->shape.back();
  dispatch_float(x->dtype, "layerNorm", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* w = data_or_null<T>(weight);
    const T* b = data_or_null<T>(bias);
    A* mean_out = data_or_null<A>(mean);
    A* rstd_out = data_or_null<A>(rstd);
    for_each_norm_row<T>(out, x, [&](T* y, const T* xr, int64_t row) {
      // two passes (mean, then squared deviations) stay accurate when the mean is large
      const A mu = tree_reduce(xr, n, 1, A(0), AddOf{}, Identity{}) / A(n);
      const A var = tree_reduce(xr, n, 1, A(0), AddOf{}, [mu](A v) { return (v - mu) * (v - mu); }) / A(n);
      const A r = A(1) / std::sqrt(var + A(eps));
      if (mean_out) mean_out[row] = mu;
      if (rstd_out) rstd_out[row] = r;
      normalize_row(xr, y, n, mu, r, w, b);
    });
  });
}

void rms_norm(const TensorPtr& out, const TensorPtr& rstd, const TensorPtr& x, const TensorPtr& weight, double eps) {
  const int64_t n = x->shape.back();
  dispatch_float(x->dtype, "rmsNorm", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* w = data_or_null<T>(weight);
    A* rstd_out = data_or_null<A>(rstd);
    for_each_norm_row<T>(out, x, [&](T* y, const T* xr, int64_t row) {
      const A squares = tree_reduce(xr, n, 1, A(0), AddOf{}, [](A v) { return v * v; });
      const A r = A(1) / std::sqrt(squares / A(n) + A(eps));
      if (rstd_out) rstd_out[row] = r;
      normalize_row(xr, y, n, A(0), r, w, static_cast<const T*>(nullptr));
    });
  });
}

}  // namespace ignis::cpu
