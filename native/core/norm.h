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

}  // namespace ignis
