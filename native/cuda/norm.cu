// layer_norm and rms_norm forward and backward, with the contracts of cpu/norm.h: one group of
// threads per row (cuda/reduce.cuh) for the outputs and dx, one group per column (or per chunk
// of a column, when there are many rows) for the weight and bias gradients.
#include "cuda/norm.h"

#include "core/dtype.h"
#include "cuda/reduce.cuh"

namespace ignis::cuda {
namespace {

template <typename T> T* data_or_null(const TensorPtr& t) { return t ? t->data_as<T>() : nullptr; }

// The leading dims of a [rows..., n] tensor as a RowIndex.
RowIndex outer_rows(const TensorPtr& t) {
  const int outer = t->ndim() - 1;
  return row_index(Shape(t->shape.begin(), t->shape.begin() + outer), Shape(t->strides.begin(), t->strides.begin() + outer));
}

int64_t outer_count(const TensorPtr& t) { return shape_numel(Shape(t->shape.begin(), t->shape.end() - 1)); }

// One row of layer_norm (Centered) or rms_norm: its statistics, then y = (x - shift) * rstd * w + b.
template <typename T, bool Centered>
struct NormRows {
  using A = acc_t<T>;
  const T* x;
  T* y;
  RowIndex x_rows, y_rows;
  int64_t n;
  const T* weight;
  const T* bias;
  A* mean_out;
  A* rstd_out;
  A eps;

  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    const int64_t count = active ? n : 0;
    const T* xr = x + (active ? x_rows.offset(row) : 0);
    A shift = 0, scale;
    if constexpr (Centered) {
      // two passes (mean, then squared deviations) stay accurate when the mean is large
      shift = g.reduce(g.accumulate(xr, count, 1, A(0), Add{}, Same{}), Add{}) / A(n);
      const A var = g.reduce(g.accumulate(xr, count, 1, A(0), Add{}, SquaredFrom<A>{shift}), Add{}) / A(n);
      scale = A(1) / std::sqrt(var + eps);
    } else {
      const A squares = g.reduce(g.accumulate(xr, count, 1, A(0), Add{}, SquaredFrom<A>{A(0)}), Add{});
      scale = A(1) / std::sqrt(squares / A(n) + eps);
    }
    if (!active) return;
    if (g.lane == 0) {
      if (mean_out) mean_out[row] = shift;
      if (rstd_out) rstd_out[row] = scale;
    }
    T* yr = y + y_rows.offset(row);
    for (int64_t i = g.lane; i < n; i += g.size) {
      A v = (A(xr[i]) - shift) * scale;
      if (weight) v *= A(weight[i]);
      if (bias) v += A(bias[i]);
      yr[i] = T(v);
    }
  }
};

template <bool Centered>
void normalize(const char* name, const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
               const TensorPtr& weight, const TensorPtr& bias, double eps) {
  const int64_t n = x->shape.back();
  dispatch_float(x->dtype, name, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const NormRows<T, Centered> body{x->data_as<T>(), out->data_as<T>(), outer_rows(x), outer_rows(out), n,
                                     data_or_null<T>(weight), data_or_null<T>(bias), data_or_null<A>(mean),
                                     data_or_null<A>(rstd), A(eps)};
    run_groups<false>(name, out->device().index, outer_count(x), n, body);
  });
}

// dx of one row: rstd * (wg - mean(wg) - xhat * mean(wg * xhat)), wg = grad * weight (rms_norm:
// no mean(wg) term, mean null).
template <typename T>
struct NormGradRows {
  using A = acc_t<T>;
  const T* x;
  const T* grad;
  T* dx;
  RowIndex x_rows, grad_rows, dx_rows;
  int64_t n;
  const T* weight;
  const A* mean;
  const A* rstd;

  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    const int64_t count = active ? n : 0;
    const T* xr = x + (active ? x_rows.offset(row) : 0);
    const T* gr = grad + (active ? grad_rows.offset(row) : 0);
    const A shift = active && mean ? mean[row] : A(0), scale = active ? rstd[row] : A(0);
    SumPair<A> part{A(0), A(0)};  // wg, wg * xhat
    for (int64_t i = g.lane; i < count; i += g.size) {
      const A xhat = (A(xr[i]) - shift) * scale;
      const A wg = weight ? A(gr[i]) * A(weight[i]) : A(gr[i]);
      part.first += wg;
      part.second += wg * xhat;
    }
    const SumPair<A> total = g.reduce(part, AddPairs{});
    if (!active) return;
    const A mean_wg = mean ? total.first / A(n) : A(0), mean_wg_xhat = total.second / A(n);
    T* dr = dx + dx_rows.offset(row);
    for (int64_t i = g.lane; i < n; i += g.size) {
      const A xhat = (A(xr[i]) - shift) * scale;
      const A wg = weight ? A(gr[i]) * A(weight[i]) : A(gr[i]);
      dr[i] = T(scale * (wg - mean_wg - xhat * mean_wg_xhat));
    }
  }
};

// dweight[j] = sum over rows of grad * xhat, dbias[j] = sum over rows of grad: column j is a
// group's row, the rows its elements. Many rows are cut into `chunks` chunks of `chunk` rows
// (neighbouring groups take neighbouring columns of one chunk), whose sums go to `parts` (the
// weight sums [n, chunks], then the bias sums) for NormParamSums to add up.
template <typename T>
struct NormParamColumns {
  using A = acc_t<T>;
  const T* x;
  const T* grad;
  RowIndex x_rows, grad_rows;
  int64_t rows, n, chunk, chunks;
  const A* mean;
  const A* rstd;
  T* dweight;
  T* dbias;
  A* parts;

  __device__ void operator()(const Group& g, int64_t item, bool active) const {
    const int64_t column = item % n, first = item / n * chunk;
    const int64_t end = active ? (rows - first < chunk ? rows : first + chunk) : 0;
    SumPair<A> part{A(0), A(0)};  // grad * xhat, grad
    for (int64_t r = first + g.lane; r < end; r += g.size) {
      const A xhat = (A(x[x_rows.offset(r) + column]) - (mean ? mean[r] : A(0))) * rstd[r];
      const A gv = A(grad[grad_rows.offset(r) + column]);
      part.first += gv * xhat;
      part.second += gv;
    }
    const SumPair<A> total = g.reduce(part, AddPairs{});
    if (!active || g.lane != 0) return;
    if (parts) {
      parts[column * chunks + item / n] = total.first;
      parts[(n + column) * chunks + item / n] = total.second;
      return;
    }
    if (dweight) dweight[column] = T(total.first);
    if (dbias) dbias[column] = T(total.second);
  }
};

// dweight[j] and dbias[j]: the sums of column j's chunks in NormParamColumns' parts, a group each.
template <typename T>
struct NormParamSums {
  using A = acc_t<T>;
  const A* parts;
  int64_t n, chunks;
  T* dweight;
  T* dbias;

  __device__ void operator()(const Group& g, int64_t column, bool active) const {
    const int64_t count = active ? chunks : 0;
    const A* w = parts + (active ? column * chunks : 0);
    const A* b = w + n * chunks;
    SumPair<A> part{A(0), A(0)};
    for (int64_t c = g.lane; c < count; c += g.size) {
      part.first += w[c];
      part.second += b[c];
    }
    const SumPair<A> total = g.reduce(part, AddPairs{});
    if (!active || g.lane != 0) return;
    if (dweight) dweight[column] = T(total.first);
    if (dbias) dbias[column] = T(total.second);
  }
};

}  // namespace

void layer_norm(const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
                const TensorPtr& weight, const TensorPtr& bias, double eps) {
  normalize<true>("layerNorm", out, mean, rstd, x, weight, bias, eps);
}

void rms_norm(const TensorPtr& out, const TensorPtr& rstd, const TensorPtr& x, const TensorPtr& weight, double eps) {
  normalize<false>("rmsNorm", out, nullptr, rstd, x, weight, nullptr, eps);
}

void norm_backward(const TensorPtr& dx, const TensorPtr& dweight, const TensorPtr& dbias, const TensorPtr& grad,
                   const TensorPtr& x, const TensorPtr& weight, const TensorPtr& mean, const TensorPtr& rstd) {
  const char* name = mean ? "layerNorm backward" : "rmsNorm backward";
  const int64_t n = x->shape.back(), rows = outer_count(x);
  const int device = x->device().index;
  dispatch_float(x->dtype, name, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A* mu = data_or_null<A>(mean);
    const A* rs = rstd->data_as<A>();
    if (dx) {
      const NormGradRows<T> body{x->data_as<T>(), grad->data_as<T>(), dx->data_as<T>(), outer_rows(x), outer_rows(grad),
                                 outer_rows(dx), n, data_or_null<T>(weight), mu, rs};
      run_groups<false>(name, device, rows, n, body);
    }
    if (dweight || dbias) {
      // the chunks depend only on the sizes: deterministic
      const int64_t chunks = split_columns(n, rows) ? (rows + kColumnChunk - 1) / kColumnChunk : 1;
      const int64_t chunk = (rows + chunks - 1) / chunks;
      TensorPtr parts = chunks > 1 ? empty({2, n, chunks}, accumulation_dtype(x->dtype), x->device()) : nullptr;
      T* dw = data_or_null<T>(dweight);
      T* db = data_or_null<T>(dbias);
      const NormParamColumns<T> body{x->data_as<T>(), grad->data_as<T>(), outer_rows(x), outer_rows(grad), rows, n, chunk, chunks,
                                     mu, rs, dw, db, data_or_null<A>(parts)};
      run_groups<true>(name, device, n * chunks, chunk, body);
      if (parts) run_groups<false>(name, device, n, chunks, NormParamSums<T>{parts->data_as<A>(), n, chunks, dw, db});
    }
  });
}

}  // namespace ignis::cuda
