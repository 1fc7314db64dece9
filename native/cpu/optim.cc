#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include "core/loop.h"
#include "kernels/optim.h"

namespace ignis::cpu {
namespace {

// The tensors of a multi-tensor call laid end to end: tensor k covers [starts[k], starts[k + 1]).
std::vector<int64_t> flat_starts(const TensorList& tensors) {
  std::vector<int64_t> starts(tensors.size() + 1, 0);
  for (size_t k = 0; k < tensors.size(); k++) starts[k + 1] = starts[k] + tensors[k]->numel();
  return starts;
}

// Calls part(k, lo, hi) for every tensor k overlapping the flat range [begin, end), with lo and hi
// element indices in tensor k (empty tensors are never visited).
template <typename F>
void for_each_part(const std::vector<int64_t>& starts, int64_t begin, int64_t end, F&& part) {
  size_t k = size_t(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin()) - 1;
  for (; begin < end; k++) {
    const int64_t stop = std::min(end, starts[k + 1]);
    if (stop > begin) part(k, begin - starts[k], stop - starts[k]);
    begin = stop;
  }
}

// part(k, lo, hi) over every element of every tensor, the elements of all of them split evenly
// across threads (a thread's range may span several tensors).
template <typename F>
void parallel_parts(const TensorList& tensors, F&& part) {
  const std::vector<int64_t> starts = flat_starts(tensors);
  parallel_for(starts.back(), kElementwiseGrain, [&](int64_t begin, int64_t end) { for_each_part(starts, begin, end, part); });
}

// Vectorises because the build passes -fno-math-errno: otherwise std::sqrt branches to set errno.
template <typename P, typename A = acc_t<P>>
void adamw_span(P* __restrict p, const P* __restrict g, A* __restrict m, A* __restrict v, int64_t n, const AdamWScalars<A> s) {
  for (int64_t i = 0; i < n; i++) {
    A pv = A(p[i]), mv = m[i], vv = v[i];
    adamw_update(pv, A(g[i]), mv, vv, s);
    p[i] = P(pv);
    m[i] = mv;
    v[i] = vv;
  }
}

template <typename P, typename A = acc_t<P>>
void sgd_span(P* __restrict p, const P* __restrict g, int64_t n, const SgdScalars<A> s) {
  for (int64_t i = 0; i < n; i++) {
    A pv = A(p[i]);
    sgd_update(pv, A(g[i]), s);
    p[i] = P(pv);
  }
}

template <typename P, typename A = acc_t<P>>
void sgd_momentum_span(P* __restrict p, const P* __restrict g, A* __restrict buf, bool fresh, int64_t n, const SgdScalars<A> s) {
  for (int64_t i = 0; i < n; i++) {
    A pv = A(p[i]), bv = buf[i];
    sgd_momentum_update(pv, A(g[i]), bv, fresh, s);
    p[i] = P(pv);
    buf[i] = bv;
  }
}

// Partial norms of a span: the sum of |x|^p (kLanes independent sums in double, so that the loop
// vectorises), or for the infinity norm the largest |x|, NaN as soon as one x is NaN.
constexpr int kLanes = 8;

template <typename T, typename F>
double lane_sum(const T* x, int64_t n, F&& term) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) lanes[l] += term(double(acc_t<T>(x[i + l])));
  double total = 0;
  for (; i < n; i++) total += term(double(acc_t<T>(x[i])));
  for (int l = 0; l < kLanes; l++) total += lanes[l];
  return total;
}

template <typename A>
A nan_max(A m, A v) { return v > m || v != v ? v : m; }

template <typename T, typename A = acc_t<T>>
double span_max_abs(const T* x, int64_t n) {
  A lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) lanes[l] = nan_max(lanes[l], std::fabs(A(x[i + l])));
  A m = 0;
  for (; i < n; i++) m = nan_max(m, std::fabs(A(x[i])));
  for (int l = 0; l < kLanes; l++) m = nan_max(m, lanes[l]);
  return double(m);
}

template <typename T>
double span_norm_part(const T* x, int64_t n, double norm_type) {
  if (std::isinf(norm_type)) return span_max_abs(x, n);
  if (norm_type == 2) return lane_sum(x, n, [](double v) { return v * v; });
  if (norm_type == 1) return lane_sum(x, n, [](double v) { return std::fabs(v); });
  return lane_sum(x, n, [norm_type](double v) { return std::pow(std::fabs(v), norm_type); });
}

}  // namespace

void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& o) {
  parallel_parts(params, [&](size_t k, int64_t lo, int64_t hi) {
    dispatch_float(params[k]->dtype, "adamw", [&](auto tag) {
      using P = decltype(tag);
      using A = acc_t<P>;
      adamw_span<P>(params[k]->data_as<P>() + lo, grads[k]->data_as<P>() + lo, exp_avgs[k]->data_as<A>() + lo,
                    exp_avg_sqs[k]->data_as<A>() + lo, hi - lo,
                    adamw_scalars<A>(o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, steps[k]));
    });
  });
}

void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& o) {
  const bool with_momentum = o.momentum != 0;
  parallel_parts(params, [&](size_t k, int64_t lo, int64_t hi) {
    dispatch_float(params[k]->dtype, "sgd", [&](auto tag) {
      using P = decltype(tag);
      using A = acc_t<P>;
      const SgdScalars<A> s{A(o.lr), A(o.momentum), A(1.0 - o.dampening), A(o.weight_decay), o.nesterov};
      P* p = params[k]->data_as<P>() + lo;
      const P* g = grads[k]->data_as<P>() + lo;
      if (with_momentum) sgd_momentum_span<P>(p, g, momentum_buffers[k]->data_as<A>() + lo, fresh[k], hi - lo, s);
      else sgd_span<P>(p, g, hi - lo, s);
    });
  });
}

double total_norm(const TensorList& tensors, double norm_type) {
  const bool is_max = std::isinf(norm_type);
  const std::vector<int64_t> starts = flat_starts(tensors);
  const int64_t total = starts.back();
  // Fixed blocks of the flat range, combined in block order: the same result on any number of threads.
  constexpr int64_t kBlock = 16384;
  const int64_t blocks = (total + kBlock - 1) / kBlock;
  std::vector<double> partials(blocks, 0.0);
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / kBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      double acc = 0;
      for_each_part(starts, b * kBlock, std::min(total, (b + 1) * kBlock), [&](size_t k, int64_t lo, int64_t hi) {
        dispatch_float(tensors[k]->dtype, "clipGradNorm", [&](auto tag) {
          using T = decltype(tag);
          const double part = span_norm_part(tensors[k]->data_as<T>() + lo, hi - lo, norm_type);
          acc = is_max ? nan_max(acc, part) : acc + part;
        });
      });
      partials[b] = acc;
    }
  });
  double acc = 0;
  for (double part : partials) acc = is_max ? nan_max(acc, part) : acc + part;
  if (is_max || norm_type == 1) return acc;
  return norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
}

void scale_in_place(const TensorList& tensors, double factor) {
  for (const TensorPtr& t : tensors) {
    auto loop = make_loop<1>(t->shape, {LoopOperand{t->data(), t->strides.data(), t->element_size()}});
    dispatch_float(t->dtype, "clipGradNorm", [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      const A f = A(factor);
      for_each_strided(loop, kElementwiseGrain, [f](char* const* p, const int64_t* s, int64_t n) {
        if (s[0] == int64_t(sizeof(T))) {
          T* __restrict x = reinterpret_cast<T*>(p[0]);
          for (int64_t i = 0; i < n; i++) x[i] = T(A(x[i]) * f);
        } else {
          for (int64_t i = 0; i < n; i++) {
            T* x = reinterpret_cast<T*>(p[0] + i * s[0]);
            *x = T(A(*x) * f);
          }
        }
      });
    });
  }
}

void clip_by_total_norm(const TensorList& tensors, const TensorList& contiguous, double max_norm, double norm_type,
                        const TensorPtr& norm) {
  // qualified: the core functions of the same names are found too (their arguments are ignis types)
  const double total = cpu::total_norm(contiguous, norm_type);
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1)) cpu::scale_in_place(tensors, coef);
  *norm->data_as<float>() = float(total);
}

}  // namespace ignis::cpu
