#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>
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

// sum of a[i] * b[i], in kLanes partial sums so that it vectorises.
template <typename A>
A dot_lanes(const A* __restrict a, const A* __restrict b, int64_t n) {
  A lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; k++) lane[k] += a[i + k] * b[i + k];
  for (int k = 0; i < n; i++, k++) lane[k] += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int k = 0; k < width; k++) lane[k] += lane[k + width];
  return lane[0];
}

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

void norm_backward(const TensorPtr& dx, const TensorPtr& dweight, const TensorPtr& dbias, const TensorPtr& grad,
                   const TensorPtr& x, const TensorPtr& weight, const TensorPtr& mean, const TensorPtr& rstd) {
  const int outer_dims = x->ndim() - 1;
  const int64_t n = x->shape.back();
  const Shape sizes(x->shape.begin(), x->shape.begin() + outer_dims);
  const Shape x_strides(x->strides.begin(), x->strides.begin() + outer_dims);
  const Shape grad_strides(grad->strides.begin(), grad->strides.begin() + outer_dims);
  const Shape dx_strides = dx ? Shape(dx->strides.begin(), dx->strides.begin() + outer_dims) : Shape();
  const int64_t rows = shape_numel(sizes);
  // The rows go in a fixed number of blocks, each with its own partial parameter sums, added in
  // block order at the end.
  constexpr int64_t kBlocks = 64;
  const int64_t per_block = (rows + kBlocks - 1) / kBlocks;
  const int64_t blocks = (rows + per_block - 1) / per_block;
  const bool params = dweight || dbias;
  const bool centered = mean != nullptr;
  dispatch_float(x->dtype, centered ? "layerNorm backward" : "rmsNorm backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* xs = x->data_as<T>();
    const T* gs = grad->data_as<T>();
    const T* w = data_or_null<T>(weight);
    const A* mu = data_or_null<A>(mean);
    const A* rs = rstd->data_as<A>();
    T* dxs = data_or_null<T>(dx);
    std::vector<A> partial(params ? blocks * 2 * n : 0);  // per block: n weight sums, then n bias sums
    const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(per_block * n, 1));
    parallel_for(blocks, grain, [&](int64_t b0, int64_t b1) {
      std::vector<A> xhat_row(n), wg_row(n);
      A* __restrict xhat = xhat_row.data();
      A* __restrict wg = wg_row.data();
      for (int64_t b = b0; b < b1; b++) {
        A* __restrict pw = params ? partial.data() + b * 2 * n : nullptr;
        A* __restrict pb = params ? pw + n : nullptr;
        if (params) std::fill(pw, pw + 2 * n, A(0));
        for (int64_t r = b * per_block; r < std::min(rows, (b + 1) * per_block); r++) {
          const T* __restrict xr = xs + row_offset(r, sizes, x_strides);
          const T* __restrict gr = gs + row_offset(r, sizes, grad_strides);
          const A shift = mu ? mu[r] : A(0), scale = rs[r];
          for (int64_t i = 0; i < n; i++) xhat[i] = (A(xr[i]) - shift) * scale;
          if (w) {
            for (int64_t i = 0; i < n; i++) wg[i] = A(gr[i]) * A(w[i]);
          } else {
            for (int64_t i = 0; i < n; i++) wg[i] = A(gr[i]);
          }
          if (params) {
            for (int64_t i = 0; i < n; i++) {
              pw[i] += A(gr[i]) * xhat[i];
              pb[i] += A(gr[i]);
            }
          }
          if (!dxs) continue;
          const A mean_wg = centered ? lanes_reduce(wg, n, 1, A(0), AddOf{}, Identity{}) / A(n) : A(0);
          const A mean_wg_xhat = dot_lanes(wg, xhat, n) / A(n);
          T* __restrict dr = dxs + row_offset(r, sizes, dx_strides);
          for (int64_t i = 0; i < n; i++) dr[i] = T(scale * (wg[i] - mean_wg - xhat[i] * mean_wg_xhat));
        }
      }
    });
    if (!params) return;
    std::vector<A> totals(2 * n, A(0));
    for (int64_t b = 0; b < blocks; b++) {
      const A* __restrict p = partial.data() + b * 2 * n;
      A* __restrict t = totals.data();
      for (int64_t i = 0; i < 2 * n; i++) t[i] += p[i];
    }
    if (T* dw = data_or_null<T>(dweight))
      for (int64_t i = 0; i < n; i++) dw[i] = T(totals[i]);
    if (T* db = data_or_null<T>(dbias))
      for (int64_t i = 0; i < n; i++) db[i] = T(totals[n + i]);
  });
}

}  // namespace ignis::cpu
