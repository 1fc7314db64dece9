#include "cpu/reduce.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace ignis::cpu {
namespace {

// Calls row(first input element) -> O for every output element of the plan, or
// cols(first input element, w, first output) for blocks of w outputs along the innermost kept dim
// when the plan reduces by columns.
template <typename T, typename O, typename Row, typename Cols>
void run(const TensorPtr& out, const ReducePlan& plan, Row row, Cols cols) {
  const T* in = plan.input->data_as<T>();
  O* o = out->data_as<O>();
  if (plan.columns) {
    for_each_column_block(plan.kept_sizes, plan.kept_strides, plan.out_strides, plan.n,
                          [&](int64_t in_offset, int64_t out_offset, int64_t w) { cols(in + in_offset, w, o + out_offset); });
  } else {
    for_each_row(plan.kept_sizes, o, plan.out_strides, in, plan.kept_strides, plan.n,
                 [&](O* out_element, const T* x) { *out_element = row(x); });
  }
}

// Integer and bool sums accumulate in uint64_t, which wraps (like PyTorch's int64) without UB.
template <typename T> using sum_t = std::conditional_t<std::is_floating_point_v<acc_t<T>>, acc_t<T>, uint64_t>;

template <typename T>
void sum_or_mean(bool mean, const TensorPtr& out, const ReducePlan& plan) {
  using A = sum_t<T>;
  using O = std::conditional_t<std::is_floating_point_v<acc_t<T>>, T, int64_t>;
  const int64_t n = plan.n, s = plan.stride;
  auto finish = [mean, n](A total) {
    if constexpr (std::is_floating_point_v<A>) return O(mean ? total / A(n) : total);  // empty mean: 0/0 = NaN
    else return O(total);
  };
  run<T, O>(
      out, plan, [&](const T* x) { return finish(row_reduce(x, n, s, A(0), AddOf{}, Identity{})); },
      [&](const T* x, int64_t w, O* o) {
        A acc[kColumnWidth];
        column_sum(x, n, s, w, [](A v, int64_t) { return v; }, acc);
        for (int64_t j = 0; j < w; j++) o[j] = finish(acc[j]);
      });
}

// Two passes (mean, then squared deviations from it), which stays accurate when the mean is
// large against the spread.
template <typename T>
void variance(const TensorPtr& out, const ReducePlan& plan, double correction) {
  using A = acc_t<T>;
  const int64_t n = plan.n, s = plan.stride;
  const A divisor = A(std::max(0.0, double(n) - correction));
  run<T, T>(
      out, plan,
      [&](const T* x) {
        A mean = row_reduce(x, n, s, A(0), AddOf{}, Identity{}) / A(n);
        A squares = row_reduce(x, n, s, A(0), AddOf{}, [mean](A v) { return (v - mean) * (v - mean); });
        return T(squares / divisor);
      },
      [&](const T* x, int64_t w, T* o) {
        A mean[kColumnWidth], squares[kColumnWidth];
        column_sum(x, n, s, w, [](A v, int64_t) { return v; }, mean);
        for (int64_t j = 0; j < w; j++) mean[j] /= A(n);
        column_sum(x, n, s, w, [&mean](A v, int64_t j) { return (v - mean[j]) * (v - mean[j]); }, squares);
        for (int64_t j = 0; j < w; j++) o[j] = T(squares[j] / divisor);
      });
}

template <typename T>
void logsumexp(const TensorPtr& out, const ReducePlan& plan) {
  using A = acc_t<T>;
  const int64_t n = plan.n, s = plan.stride;
  run<T, T>(
      out, plan,
      [&](const T* x) {
        A shift = logsumexp_shift(row_reduce(x, n, s, -std::numeric_limits<A>::infinity(), MaxOf{}, Identity{}));
        A total = row_reduce(x, n, s, A(0), AddOf{}, [shift](A v) { return exp_acc(v - shift); });
        return T(logsumexp_finish(total, shift));
      },
      [&](const T* x, int64_t w, T* o) {
        A shift[kColumnWidth], total[kColumnWidth];
        column_reduce(x, n, s, w, MaxOf{}, shift);
        for (int64_t j = 0; j < w; j++) shift[j] = logsumexp_shift(shift[j]);
        column_sum(x, n, s, w, [&shift](A v, int64_t j) { return exp_acc(v - shift[j]); }, total);
        for (int64_t j = 0; j < w; j++) o[j] = T(logsumexp_finish(total[j], shift[j]));
      });
}

// v takes the place of best: it is larger (smaller for Min), or the first NaN.
struct ReplacesMax {
  template <typename A> bool operator()(A v, A best) const { return v > best || (v != v && best == best); }
};
struct ReplacesMin {
  template <typename A> bool operator()(A v, A best) const { return v < best || (v != v && best == best); }
};

// Max/min values, or the index of their first occurrence (NaN counting as the extreme).
// Rows take two passes: the value (vectorised), then a search for it.
template <typename T, typename C, typename Replaces>
void extreme(bool arg, const TensorPtr& out, const ReducePlan& plan, C combine, Replaces replaces) {
  using A = acc_t<T>;
  const int64_t n = plan.n, s = plan.stride;
  auto value = [&](const T* x) { return row_reduce(x, n, s, A(x[0]), combine, Identity{}); };
  if (!arg) {
    run<T, T>(
        out, plan, [&](const T* x) { return T(value(x)); },
        [&](const T* x, int64_t w, T* o) {
          A acc[kColumnWidth];
          column_reduce(x, n, s, w, combine, acc);
          for (int64_t j = 0; j < w; j++) o[j] = T(acc[j]);
        });
    return;
  }
  run<T, int64_t>(
      out, plan,
      [&](const T* x) {
        A best = value(x);
        bool nan = best != best;
        for (int64_t i = 0; i < n; i++) {
          A v = A(x[i * s]);
          if (nan ? v != v : v == best) return i;
        }
        return int64_t(0);  // not reached: best is one of the elements
      },
      [&](const T* x, int64_t w, int64_t* o) {
        A best[kColumnWidth];
        for (int64_t j = 0; j < w; j++) {
          best[j] = A(x[j]);
          o[j] = 0;
        }
        for (int64_t r = 1; r < n; r++) {
          const T* row = x + r * s;
          for (int64_t j = 0; j < w; j++) {
            A v = A(row[j]);
            if (replaces(v, best[j])) {
              best[j] = v;
              o[j] = r;
            }
          }
        }
      });
}

}  // namespace

void reduce(ReduceOp op, const TensorPtr& out, const ReducePlan& plan, double correction) {
  DType dtype = plan.input->dtype;
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
      dispatch_all(dtype, "sum", [&](auto tag) { sum_or_mean<decltype(tag)>(op == ReduceOp::Mean, out, plan); });
      return;
    case ReduceOp::Var:
      dispatch_float(dtype, "var", [&](auto tag) { variance<decltype(tag)>(out, plan, correction); });
      return;
    case ReduceOp::LogSumExp:
      dispatch_float(dtype, "logsumexp", [&](auto tag) { logsumexp<decltype(tag)>(out, plan); });
      return;
    case ReduceOp::Max:
    case ReduceOp::ArgMax:
      dispatch_all(dtype, "max", [&](auto tag) {
        extreme<decltype(tag)>(op == ReduceOp::ArgMax, out, plan, MaxOf{}, ReplacesMax{});
      });
      return;
    case ReduceOp::Min:
    case ReduceOp::ArgMin:
      dispatch_all(dtype, "min", [&](auto tag) {
        extreme<decltype(tag)>(op == ReduceOp::ArgMin, out, plan, MinOf{}, ReplacesMin{});
      });
      return;
  }
}

}  // namespace ignis::cpu
