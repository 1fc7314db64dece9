// Normalisation over the trailing dims (layer_norm, rms_norm): the device-neutral entry points.
#pragma once
#include <optional>
#include "core/tensor.h"

namespace ignis {

// Per-row statistics a backward pass reuses: one value per normalised row (shape: x's leading
// dims), in the accumulation dtype (float32 for 16-bit inputs). rms_norm leaves `mean` empty.
struct NormStats {
  TensorPtr mean;
  TensorPtr rstd;  // 1 / sqrt(variance + eps), or 1 / sqrt(mean of squares + eps)
};

// (x - mean) / sqrt(biased variance + eps) * weight + bias over the trailing dims of x, whose
// shape must be `normalized_shape`; weight and bias (each optional: null) have that shape too.
// Fills *stats when given.
TensorPtr layer_norm(const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight, const TensorPtr& bias,
                     double eps, NormStats* stats = nullptr);
// x / sqrt(mean of squares + eps) * weight over the trailing dims; eps defaults to the machine
// epsilon of x's dtype.
TensorPtr rms_norm(const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight, std::optional<double> eps,
                   NormStats* stats = nullptr);

// Gradients of a norm; each is empty when not asked for (or, for weight and bias, absent).
struct NormGrads {
  TensorPtr x, weight, bias;
};

// The gradients of layer_norm (of rms_norm when stats.mean is empty, with no bias) from the
// output gradient `grad` (x's shape and dtype), the input x, the weight (or null) and the
// forward's statistics, in one pass over the rows: x's gradient when want_x, the weight's and
// the bias's when want_weight / want_bias.
NormGrads norm_backward(const TensorPtr& grad, const TensorPtr& x, const Shape& normalized_shape, const TensorPtr& weight,
                        const NormStats& stats, bool want_x, bool want_weight, bool want_bias);

}  // namespace ignis
