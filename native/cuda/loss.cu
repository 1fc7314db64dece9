// Cross-entropy and squared-error kernels, with the contracts of cpu/loss.h: one group of
// threads per cross-entropy row (cuda/reduce.cuh), forward and backward.
#include "cuda/loss.h"

#include <limits>
#include "core/dtype.h"
#include "core/indexing.h"
#include "cuda/loop.cuh"
#include "cuda/reduce.cuh"
#include "cuda/reduce.h"
#include "kernels/loss.h"

namespace ignis::cuda {
namespace {

// max that skips NaN logits, as the CPU's row statistics do (a NaN still makes the sum of exps NaN).
struct MaxOfNumbers {
  template <typename A> __device__ A operator()(A a, A b) const { return b > a ? b : a; }
};

// The positions of cross-entropy's rows: every logits dim but the class dim.
struct RowLayout {
  Shape sizes, strides;
};
RowLayout rows_of(const TensorPtr& t, int class_dim) {
  RowLayout layout;
  for (int d = 0; d < t->ndim(); d++) {
    if (d == class_dim) continue;
    layout.sizes.push_back(t->shape[d]);
    layout.strides.push_back(t->strides[d]);
  }
  return layout;
}

template <typename T, typename I>
struct CrossEntropyRows {
  using A = acc_t<T>;
  const T* x;
  const I* labels;
  A* loss;
  A* logsumexp;
  RowIndex rows;
  int64_t classes, class_stride, ignore_index;
  A eps;

  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    const int64_t label = active ? int64_t(labels[row]) : ignore_index;
    // a label out of range (met only in a CUDA graph, where it cannot raise) counts as ignored
    const bool counted = label != ignore_index && label >= 0 && label < classes;
    const int64_t count = counted ? classes : 0, s = class_stride;
    const T* xr = x + (counted ? rows.offset(row) : 0);
    const A max = g.reduce(g.accumulate(xr, count, s, -std::numeric_limits<A>::infinity(), MaxOfNumbers{}, Same{}), MaxOfNumbers{});
    SumPair<A> part{A(0), A(0)};  // exp(x - max), x - max (for label smoothing)
    for (int64_t c = g.lane; c < count; c += g.size) {
      const A v = A(xr[c * s]) - max;
      part.first += exp_acc(v);
      part.second += v;
    }
    const SumPair<A> total = g.reduce(part, AddPairs{});
    if (!active || g.lane != 0) return;
    if (!counted) {
      loss[row] = 0;
      logsumexp[row] = 0;
      return;
    }
    const A log_sum = std::log(total.first);
    loss[row] = cross_entropy_shifted(log_sum, A(xr[label * s]) - max, total.second / A(classes), eps);
    logsumexp[row] = max + log_sum;
  }
};

// dlogits[r, c] = s * (exp(logits[r, c] - logsumexp[r]) - (1 - eps) * [c == target[r]] - eps / C),
// 0 in ignored rows (and rows of a label out of range); one group of threads per row.
template <typename T, typename I>
struct CrossEntropyGradRows {
  using A = acc_t<T>;
  T* dx;
  const T* x;
  const I* labels;
  const A* logsumexp;
  const A* row_scale;
  A scale;
  RowIndex x_rows, d_rows;
  int64_t classes, x_step, d_step, ignore_index;
  A eps, uniform;

  __device__ void operator()(const Group& g, int64_t row, bool active) const {
    if (!active) return;  // no group reduction here
    T* d = dx + d_rows.offset(row);
    const int64_t label = int64_t(labels[row]);
    if (label == ignore_index || label < 0 || label >= classes) {
      for (int64_t c = g.lane; c < classes; c += g.size) d[c * d_step] = T(A(0));
      return;
    }
    const T* xr = x + x_rows.offset(row);
    const A s = row_scale ? row_scale[row] : scale, shift = logsumexp[row];
    for (int64_t c = g.lane; c < classes; c += g.size) {
      const A p = exp_acc(A(xr[c * x_step]) - shift);
      d[c * d_step] = T(c == label ? s * (p - (A(1) - eps) - uniform) : s * (p - uniform));
    }
  }
};

template <typename Out, typename T>
struct SquaredError {
  __device__ Out operator()(T x, T y) const { return Out(squared_difference(acc_t<T>(x), acc_t<T>(y))); }
};

}  // namespace

void cross_entropy_rows(const TensorPtr& loss, const TensorPtr& logsumexp, const TensorPtr& logits,
                        const TensorPtr& target, int64_t ignore_index, double label_smoothing) {
  const int class_dim = logits->ndim() == 1 ? 0 : 1;
  const RowLayout layout = rows_of(logits, class_dim);
  const int64_t classes = logits->shape[class_dim];
  dispatch_float(logits->dtype, "crossEntropy", [&](auto ttag) {
    using T = decltype(ttag);
    using A = acc_t<T>;
    dispatch_index(target->dtype, "crossEntropy", [&](auto itag) {
      using I = decltype(itag);
      const CrossEntropyRows<T, I> body{logits->data_as<T>(), target->data_as<I>(), loss->data_as<A>(), logsumexp->data_as<A>(),
                                        row_index(layout.sizes, layout.strides), classes, logits->strides[class_dim],
                                        ignore_index, A(label_smoothing)};
      run_groups<false>("crossEntropy", logits->device().index, target->numel(), classes, body);
    });
  });
}

void cross_entropy_backward(const TensorPtr& dlogits, const TensorPtr& logits, const TensorPtr& target,
                            const TensorPtr& logsumexp, const TensorPtr& row_scale, double scale, int64_t ignore_index,
                            double label_smoothing) {
  const int class_dim = logits->ndim() == 1 ? 0 : 1;
  const RowLayout x_layout = rows_of(logits, class_dim), d_layout = rows_of(dlogits, class_dim);
  const int64_t classes = logits->shape[class_dim];
  dispatch_float(logits->dtype, "crossEntropy backward", [&](auto ttag) {
    using T = decltype(ttag);
    using A = acc_t<T>;
    dispatch_index(target->dtype, "crossEntropy backward", [&](auto itag) {
      using I = decltype(itag);
      const CrossEntropyGradRows<T, I> body{dlogits->data_as<T>(), logits->data_as<T>(), target->data_as<I>(),
                                            logsumexp->data_as<A>(), row_scale ? row_scale->data_as<A>() : nullptr, A(scale),
                                            row_index(x_layout.sizes, x_layout.strides), row_index(d_layout.sizes, d_layout.strides),
                                            classes, logits->strides[class_dim], dlogits->strides[class_dim], ignore_index,
                                            A(label_smoothing), A(label_smoothing / double(classes))};
      run_groups<false>("crossEntropy backward", logits->device().index, target->numel(), classes, body);
    });
  });
}

void squared_error(const TensorPtr& out, const TensorPtr& input, const TensorPtr& target) {
  dispatch_float(out->dtype, "mseLoss", [&](auto tag) {
    using T = decltype(tag);
    map<T, T, T>("mseLoss", out, {input, target}, SquaredError<T, T>{});
  });
}

double sum_squared_error(const TensorPtr& input, const TensorPtr& target) {
  // the squares in the accumulation dtype, then their sum in double
  TensorPtr squares = empty(input->shape, accumulation_dtype(input->dtype), input->device());
  dispatch_float(input->dtype, "mseLoss", [&](auto tag) {
    using T = decltype(tag);
    map<acc_t<T>, T, T>("mseLoss", squares, {input, target}, SquaredError<acc_t<T>, T>{});
  });
  return sum(squares);
}

}  // namespace ignis::cuda
