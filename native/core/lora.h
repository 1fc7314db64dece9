// The fused LoRA linear layer with PEFT's formula: y = x w^T (+ bias) + scale * dropout(x) a^T b^T,
// with x [..., in], a frozen base weight w [out, in] of any float dtype, adapters a [r, in] and
// b [out, r]. Dropout is a precomputed mask (values 0 or 1 / (1 - p)) multiplied into x on the
// LoRA path only. Also merge/unmerge of the adapter into w.
#pragma once
#include "core/tensor.h"

namespace ignis {

struct LoraForward {
  TensorPtr y;   // [..., out]
  TensorPtr xa;  // dropout(x) a^T [..., r], kept for the backward
};

struct LoraGrads {
  TensorPtr dx;  // [..., in]; null when the input's gradient was not asked for
  TensorPtr da;  // [r, in]
  TensorPtr db;  // [out, r]
};

// x, a, b (and mask, dy, xa) share one float dtype, in which the results come; float64 is
// computed in float64, the others in float32 on the CPU and in their own dtype (accumulating in
// float32) on CUDA. A w (or bias) of another dtype is converted to
// the compute dtype on each call: one pass over w and a temporary of out * in elements.
// `mask` (may be null) broadcasts to x's shape.
LoraForward lora_linear_forward(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, const TensorPtr& a,
                                const TensorPtr& b, double scale, const TensorPtr& mask);
// Gradients of the forward's y for dy [..., out], given the forward's xa and the same mask.
LoraGrads lora_linear_backward(const TensorPtr& dy, const TensorPtr& x, const TensorPtr& w, const TensorPtr& a,
                               const TensorPtr& b, const TensorPtr& xa, double scale, const TensorPtr& mask,
                               bool need_input_grad);
// w += scale * b a (w -= ... when `unmerge`) in place into w's storage (w contiguous, any float
// dtype). The delta is computed first, in float64 for float64 adapters and float32 otherwise,
// and added with one rounding; when it holds NaN or Inf, ERR_ARG and w is left untouched.
void lora_merge(const TensorPtr& w, const TensorPtr& a, const TensorPtr& b, double scale, bool unmerge);
// A dropout mask from uniform samples in [0, 1): 1 / (1 - p) where a sample is below 1 - p,
// else 0 (all zeros for p = 1). Same shape and dtype as `uniform`.
TensorPtr lora_dropout_mask(const TensorPtr& uniform, double p);

}  // namespace ignis
