#include "core/norm.h"

#include <cmath>
#include <limits>
#include "core/backend.h"
#include "core/views.h"

namespace ignis {

static void check_norm_args(const char* op, const TensorPtr& x, const Shape& normalized_shape, double eps) {
  if (!is_float(x->dtype)) fail(ERR_DTYPE, op, ": expected a floating-point tensor, got ", dtype_name(x->dtype));
  if (normalized_shape.empty()) fail(ERR_SHAPE, op, ": normalizedShape must have at least one dim");
  check_shape(normalized_shape, op);
  size_t k = normalized_shape.size(), nd = x->shape.size();
  if (k > nd || !std::equal(normalized_shape.begin(), normalized_shape.end(), x->shape.end() - k))
    fail(ERR_SHAPE, op, ": input of shape ", shape_str(x->shape), " does not end with normalizedShape ",
         shape_str(normalized_shape));
  if (!(eps >= 0) || !std::isfinite(eps)) fail(ERR_ARG, op, ": eps must be a finite number >= 0, got ", eps);
}

// An affine parameter (weight or bias), contiguous, after checking it against x.
static TensorPtr affine_arg(const char* op, const char* what, const TensorPtr& p, const TensorPtr& x,
                            const Shape& normalized_shape) {
  if (!p) return nullptr;
  check_same_device(op, x, p);
  if (p->shape != normalized_shape)
    fail(ERR_SHAPE, op, ": ", what, " of shape ", shape_str(p->shape), " does not match normalizedShape ",
         shape_str(normalized_shape));
  if (p->dtype != x->dtype)
    fail(ERR_DTYPE, op, ": ", what, " is ", dtype_name(p->dtype), " but the input is ", dtype_name(x->dtype));
  return contiguous(p);
}

// x (or out) seen as [leading dims..., n]: its trailing `k` dims merged into one contiguous dim
// of n elements (copying x when they are not one block).
static TensorPtr as_rows(const TensorPtr& x, size_t k, int64_t n) {
  TensorPtr t = x;
  int64_t expected = 1;
  for (size_t i = 0; i < k; i++) {
    size_t d = x->shape.size() - 1 - i;
    if (x->shape[d] == 1) continue;
    if (x->strides[d] != expected) {
      t = contiguous_copy(x);
      break;
    }
    expected *= x->shape[d];
  }
  Shape shape(t->shape.begin(), t->shape.end() - k), strides(t->strides.begin(), t->strides.end() - k);
  shape.push_back(n);
  strides.push_back(1);
  return make_view(t, shape, strides, t->offset);
}

// The output of a norm of x over its trailing `k` dims (n elements per row), and its per-row
// statistics when asked for: NaN when rows are empty.
static TensorPtr norm_outputs(const TensorPtr& x, size_t k, int64_t n, bool with_mean, NormStats* stats) {
  if (stats) {
    Shape rows(x->shape.begin(), x->shape.end() - k);
    DType acc = x->dtype == DType::Float64 ? DType::Float64 : DType::Float32;
    stats->mean = with_mean ? empty(rows, acc, x->device()) : nullptr;
    stats->rstd = empty(rows, acc, x->device());
    if (n == 0) {
      if (with_mean) fill(stats->mean, NAN);
      fill(stats->rstd, NAN);
    }
  }
  return empty(x->shape, x->dtype, x->device());
}

// The gap between 1 and the next value of a float dtype.
static double machine_epsilon(DType dtype) {
  switch (dtype) {
    case DType::Float64: return std::numeric_limits<double>::epsilon();
    case DType::BFloat16: return std::ldexp(1.0, -7);
    case DType::Float16: return std::ldexp(1.0, -10);
    default: return std::numeric_limits<float>::epsilon();
  }
}

TensorPtr layer_norm(const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight, const TensorPtr& bias,
                     double eps, NormStats* stats) {
  const char* op = "layerNorm";
  const auto norm_kernel = kernel(&DeviceBackend::layer_norm, x->device(), op);
  check_norm_args(op, x, normalized_shape, eps);
  TensorPtr w = affine_arg(op, "weight", weight, x, normalized_shape);
  TensorPtr b = affine_arg(op, "bias", bias, x, normalized_shape);
  const size_t k = normalized_shape.size();
  const int64_t n = shape_numel(normalized_shape);
  TensorPtr out = norm_outputs(x, k, n, true, stats);
  if (n > 0)
    norm_kernel(as_rows(out, k, n), stats ? stats->mean : nullptr, stats ? stats->rstd : nullptr, as_rows(x, k, n), w,
                    b, eps);
  return out;
}

TensorPtr rms_norm(const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight, std::optional<double> eps,
                   NormStats* stats) {
  const char* op = "rmsNorm";
  const auto norm_kernel = kernel(&DeviceBackend::rms_norm, x->device(), op);
  const double e = eps ? *eps : machine_epsilon(x->dtype);
  check_norm_args(op, x, normalized_shape, e);
  TensorPtr w = affine_arg(op, "weight", weight, x, normalized_shape);
  const size_t k = normalized_shape.size();
  const int64_t n = shape_numel(normalized_shape);
  TensorPtr out = norm_outputs(x, k, n, false, stats);
  if (n > 0) norm_kernel(as_rows(out, k, n), stats ? stats->rstd : nullptr, as_rows(x, k, n), w, e);
  return out;
}

NormGrads norm_backward(const TensorPtr& grad, const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight,
                        const NormStats& stats, bool want_x, bool want_weight, bool want_bias) {
  const bool centered = stats.mean != nullptr;
  const char* op = centered ? "layerNorm backward" : "rmsNorm backward";
  const auto backward_kernel = kernel(&DeviceBackend::norm_backward, x->device(), op);
  check_norm_args(op, x, normalized_shape, 0);
  TensorPtr w = affine_arg(op, "weight", weight, x, normalized_shape);
  check_same_device(op, x, grad);
  if (grad->shape != x->shape || grad->dtype != x->dtype)
    fail(ERR_SHAPE, op, ": grad (", dtype_name(grad->dtype), " ", shape_str(grad->shape), ") does not match the input (",
         dtype_name(x->dtype), " ", shape_str(x->shape), ")");
  const size_t k = normalized_shape.size();
  const Shape rows(x->shape.begin(), x->shape.end() - k);
  const DType acc = accumulation_dtype(x->dtype);
  auto check_stat = [&](const TensorPtr& stat) {
    if (!stat || stat->shape != rows || stat->dtype != acc || !stat->is_contiguous())
      fail(ERR_SHAPE, op, ": statistics must be contiguous ", dtype_name(acc), " tensors of shape ", shape_str(rows));
    check_same_device(op, x, stat);
  };
  if (centered) check_stat(stats.mean);
  check_stat(stats.rstd);
  const int64_t n = shape_numel(normalized_shape);
  NormGrads grads;
  if (want_x) grads.x = empty(x->shape, x->dtype, x->device());
  if (want_weight && w) grads.weight = empty(normalized_shape, x->dtype, x->device());
  if (want_bias && centered) grads.bias = empty(normalized_shape, x->dtype, x->device());
  if (n == 0 || shape_numel(rows) == 0) {
    // no rows: the parameters' gradients are sums of nothing
    for (const TensorPtr& g : {grads.weight, grads.bias})
      if (g) fill(g, 0);
    return grads;
  }
  backward_kernel(grads.x ? as_rows(grads.x, k, n) : nullptr, grads.weight, grads.bias, as_rows(grad, k, n), as_rows(x, k, n),
                     w, stats.mean, stats.rstd);
  return grads;
}

}  // namespace ignis
