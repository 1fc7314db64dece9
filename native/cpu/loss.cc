#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "core/loop.h"
#include "cpu/indexing.h"
#include "kernels/reduce.h"
#include "kernels/loss.h"

namespace ignis::cpu {
namespace {

// The sum of partial(begin, end) over fixed blocks of items, added in block order, so that the
// result does not depend on the number of threads.
template <typename F>
double blocked_sum(int64_t n, F&& partial) {
  constexpr int64_t kBlock = 16384;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) return n > 0 ? partial(int64_t(0), n) : 0.0;
  std::vector<double> sums(blocks);
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / kBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) sums[b] = partial(b * kBlock, std::min(n, (b + 1) * kBlock));
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

// The sum of term(i) for i in [begin, end), in double, over several lanes: the compiler may not
// reorder a single running sum, but it vectorises independent ones.
template <typename F>
double lane_sum(int64_t begin, int64_t end, F&& term) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int k = 0; k < kLanes; k++) lanes[k] += double(term(i + k));
  double total = 0;
  for (; i < end; i++) total += double(term(i));
  for (int k = 0; k < kLanes; k++) total += lanes[k];
  return total;
}

// max in the accumulation type (exp_acc, the vectorisable exp, is in kernels/reduce.h).
inline float max_acc(float m, float v) { return v > m ? v : m; }
inline double max_acc(double m, double v) { return v > m ? v : m; }

// For n logits x[c * stride] (float or double): their max m, log(sum(exp(x - m))) (no exp can overflow) and, when
// asked, sum(x - m). Each pass runs on kLanes independent accumulators so that it vectorises.
// A NaN logit is skipped by the max but makes the sum of exps NaN.
template <typename A, bool kUnitStride>
IGNIS_VECTOR_CLONES void row_stats(const A* x, int64_t n, int64_t stride, bool want_sum, A& max, A& log_sum, A& shifted_sum) {
  constexpr int kLanes = 8;
  const int64_t s = kUnitStride ? 1 : stride;
  const int64_t vector_end = n - n % kLanes;
  A lanes[kLanes];
  for (int k = 0; k < kLanes; k++) lanes[k] = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < vector_end; c += kLanes)
    for (int k = 0; k < kLanes; k++) lanes[k] = max_acc(lanes[k], x[(c + k) * s]);
  A m = -std::numeric_limits<A>::infinity();
  for (int k = 0; k < kLanes; k++) m = max_acc(m, lanes[k]);
  for (int64_t c = vector_end; c < n; c++) m = max_acc(m, x[c * s]);

  // the sum over lanes, then the tail, of f(x - m)
  auto lane_total = [&](auto f) {
    A acc[kLanes] = {};
    for (int64_t c = 0; c < vector_end; c += kLanes)
      for (int k = 0; k < kLanes; k++) acc[k] += f(x[(c + k) * s] - m);
    A total = 0;
    for (int k = 0; k < kLanes; k++) total += acc[k];
    for (int64_t c = vector_end; c < n; c++) total += f(x[c * s] - m);
    return total;
  };
  max = m;
  log_sum = std::log(lane_total([](A v) { return exp_acc(v); }));
  shifted_sum = want_sum ? lane_total([](A v) { return v; }) : A(0);
}

// row_stats for `width` rows side by side (row j starts at x + j) whose classes are `stride`
// apart, as in contiguous [N, C, d1, ...] logits: the loops run across rows, so they vectorise.
template <typename A, typename T>
IGNIS_VECTOR_CLONES void block_stats(const T* __restrict x, int64_t n, int64_t stride, int64_t width, bool want_sum,
                                     A* __restrict max, A* __restrict log_sum, A* __restrict shifted_sum) {
  for (int64_t j = 0; j < width; j++) {
    max[j] = -std::numeric_limits<A>::infinity();
    log_sum[j] = 0;
    shifted_sum[j] = 0;
  }
  for (int64_t c = 0; c < n; c++)
    for (int64_t j = 0; j < width; j++) max[j] = max_acc(max[j], A(x[c * stride + j]));
  for (int64_t c = 0; c < n; c++)
    for (int64_t j = 0; j < width; j++) log_sum[j] += exp_acc(A(x[c * stride + j]) - max[j]);
  if (want_sum)
    for (int64_t c = 0; c < n; c++)
      for (int64_t j = 0; j < width; j++) shifted_sum[j] += A(x[c * stride + j]) - max[j];
  for (int64_t j = 0; j < width; j++) log_sum[j] = std::log(log_sum[j]);
}

// One row of the cross-entropy gradient, classes side by side: d[c] = s * (exp(x[c] - shift) - uniform).
template <typename A, typename T>
IGNIS_VECTOR_CLONES void softmax_grad_row(const T* __restrict x, T* __restrict d, int64_t n, A shift, A s, A uniform) {
  for (int64_t c = 0; c < n; c++) d[c] = T(s * (exp_acc(A(x[c]) - shift) - uniform));
}

}  // namespace

void cross_entropy_rows(const TensorPtr& loss, const TensorPtr& logsumexp, const TensorPtr& logits,
                        const TensorPtr& target, int64_t ignore_index, double label_smoothing) {
  const int class_dim = logits->ndim() == 1 ? 0 : 1;
  const int64_t classes = logits->shape[class_dim], class_stride = logits->strides[class_dim];
  // Rows are the target positions: every logits dim but the class dim.
  Shape row_sizes, row_strides;
  for (int d = 0; d < logits->ndim(); d++) {
    if (d == class_dim) continue;
    row_sizes.push_back(logits->shape[d]);
    row_strides.push_back(logits->strides[d]);
  }
  // Rows next to each other in memory (strided classes, unit stride along the last row dim) are
  // done kBlock at a time, in runs that stay inside that last dim.
  constexpr int64_t kBlock = 64;
  const bool side_by_side = class_stride != 1 && !row_sizes.empty() && row_strides.back() == 1;
  const int64_t run = side_by_side ? row_sizes.back() : 1;
  const int64_t rows = target->numel();
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(classes, 1));
  const bool smoothing = label_smoothing != 0;
  dispatch_float(logits->dtype, "crossEntropy", [&](auto ttag) {
    using T = decltype(ttag);
    using A = acc_t<T>;
    const T* x = logits->data_as<T>();
    A* loss_out = loss->data_as<A>();
    A* lse_out = logsumexp->data_as<A>();
    const A eps = A(label_smoothing);
    dispatch_index(target->dtype, "crossEntropy", [&](auto itag) {
      using I = decltype(itag);
      const I* labels = target->data_as<I>();
      parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
        A max[kBlock], log_sum[kBlock], shifted_sum[kBlock];
        std::vector<float> wide(sizeof(T) == 2 && !side_by_side ? classes : 0);
        for (int64_t r = begin; r < end;) {
          const T* row = x + row_offset(r, row_sizes, row_strides);
          int64_t width = 1;
          if (side_by_side) {
            width = std::min(std::min(kBlock, end - r), run - r % run);
            block_stats(row, classes, class_stride, width, smoothing, max, log_sum, shifted_sum);
          } else if (int64_t(labels[r]) != ignore_index) {
            if constexpr (sizeof(T) == 2) {
              // 16-bit logits are widened once into a float row: cheaper than converting them in every pass
              for (int64_t c = 0; c < classes; c++) wide[c] = float(row[c * class_stride]);
              row_stats<A, true>(wide.data(), classes, 1, smoothing, max[0], log_sum[0], shifted_sum[0]);
            } else if (class_stride == 1) {
              row_stats<A, true>(row, classes, 1, smoothing, max[0], log_sum[0], shifted_sum[0]);
            } else {
              row_stats<A, false>(row, classes, class_stride, smoothing, max[0], log_sum[0], shifted_sum[0]);
            }
          }
          for (int64_t j = 0; j < width; j++, r++) {
            const int64_t label = int64_t(labels[r]);
            if (label == ignore_index) {
              loss_out[r] = 0;
              lse_out[r] = 0;
              continue;
            }
            const A target_shifted = A(row[j + label * class_stride]) - max[j];
            loss_out[r] = cross_entropy_shifted(log_sum[j], target_shifted, shifted_sum[j] / A(classes), eps);
            lse_out[r] = max[j] + log_sum[j];
          }
        }
      });
    });
  });
}

void cross_entropy_backward(const TensorPtr& dlogits, const TensorPtr& logits, const TensorPtr& target,
                            const TensorPtr& logsumexp, const TensorPtr& row_scale, double scale, int64_t ignore_index,
                            double label_smoothing) {
  const int class_dim = logits->ndim() == 1 ? 0 : 1;
  const int64_t classes = logits->shape[class_dim];
  const int64_t x_step = logits->strides[class_dim], d_step = dlogits->strides[class_dim];
  Shape row_sizes, x_strides, d_strides;
  for (int d = 0; d < logits->ndim(); d++) {
    if (d == class_dim) continue;
    row_sizes.push_back(logits->shape[d]);
    x_strides.push_back(logits->strides[d]);
    d_strides.push_back(dlogits->strides[d]);
  }
  const int64_t rows = target->numel();
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(classes, 1));
  dispatch_float(logits->dtype, "crossEntropy backward", [&](auto ttag) {
    using T = decltype(ttag);
    using A = acc_t<T>;
    const T* x = logits->data_as<T>();
    T* dx = dlogits->data_as<T>();
    const A* lse = logsumexp->data_as<A>();
    const A* scales = row_scale ? row_scale->data_as<A>() : nullptr;
    const A eps = A(label_smoothing), uniform = A(label_smoothing / double(classes)), common_scale = A(scale);
    dispatch_index(target->dtype, "crossEntropy backward", [&](auto itag) {
      using I = decltype(itag);
      const I* labels = target->data_as<I>();
      parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) {
          const T* __restrict xr = x + row_offset(r, row_sizes, x_strides);
          T* __restrict dr = dx + row_offset(r, row_sizes, d_strides);
          const int64_t label = int64_t(labels[r]);
          if (label == ignore_index) {
            for (int64_t c = 0; c < classes; c++) dr[c * d_step] = T(0);
            continue;
          }
          const A s = scales ? scales[r] : common_scale, shift = lse[r];
          if (x_step == 1 && d_step == 1) {
            softmax_grad_row(xr, dr, classes, shift, s, uniform);
          } else {
            for (int64_t c = 0; c < classes; c++) dr[c * d_step] = T(s * (exp_acc(A(xr[c * x_step]) - shift) - uniform));
          }
          // the target class, from its probability rather than from the rounded value above
          dr[label * d_step] = T(s * (exp_acc(A(xr[label * x_step]) - shift) - (A(1) - eps) - uniform));
        }
      });
    });
  });
}

void squared_error(const TensorPtr& out, const TensorPtr& input, const TensorPtr& target) {
  Shape sx = broadcast_strides(*input, out->shape, "mseLoss"), sy = broadcast_strides(*target, out->shape, "mseLoss");
  const size_t es = out->element_size();
  auto loop = make_loop<3>(out->shape, {LoopOperand{out->data(), out->strides.data(), es}, LoopOperand{input->data(), sx.data(), es},
                                        LoopOperand{target->data(), sy.data(), es}});
  dispatch_float(out->dtype, "mseLoss", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    for_each_strided(loop, kElementwiseGrain, [](char* const* p, const int64_t* s, int64_t n) {
      constexpr int64_t e = sizeof(T);
      if (s[0] == e && s[1] == e && s[2] == e) {
        T* __restrict o = reinterpret_cast<T*>(p[0]);
        const T* __restrict x = reinterpret_cast<const T*>(p[1]);
        const T* __restrict y = reinterpret_cast<const T*>(p[2]);
        for (int64_t i = 0; i < n; i++) o[i] = T(squared_difference(A(x[i]), A(y[i])));
        return;
      }
      for (int64_t i = 0; i < n; i++)
        *reinterpret_cast<T*>(p[0] + i * s[0]) = T(squared_difference(A(*reinterpret_cast<const T*>(p[1] + i * s[1])),
                                                                 A(*reinterpret_cast<const T*>(p[2] + i * s[2]))));
    });
  });
}

double sum_squared_error(const TensorPtr& input, const TensorPtr& target) {
  return dispatch_float(input->dtype, "mseLoss", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* __restrict x = input->data_as<T>();
    const T* __restrict y = target->data_as<T>();
    return blocked_sum(input->numel(), [x, y](int64_t begin, int64_t end) {
      return lane_sum(begin, end, [x, y](int64_t i) { return squared_difference(A(x[i]), A(y[i])); });
    });
  });
}

double sum(const TensorPtr& t) {
  auto total = [&](auto tag) {
    using T = decltype(tag);
    const T* __restrict x = t->data_as<T>();
    return blocked_sum(t->numel(), [x](int64_t begin, int64_t end) { return lane_sum(begin, end, [x](int64_t i) { return x[i]; }); });
  };
  if (t->dtype == DType::Float64) return total(double{});
  if (t->dtype == DType::Float32) return total(float{});
  fail(ERR_INTERNAL, "sum: expected float32 or float64, got ", dtype_name(t->dtype));
}

}  // namespace ignis::cpu
