// Fused scaled dot-product attention (softmax(scale * q k^T + mask) v, with causal masking and
// grouped-query heads) and its backward: the device-neutral entry points.
#pragma once
#include "core/tensor.h"

namespace ignis {

struct AttentionForward {
  TensorPtr out;  // [B, H, Lq, Dv], laid out in memory as q (see empty_like_heads in attention.cc)
  TensorPtr lse;  // [B, H, Lq] contiguous, in the accumulation dtype: what the backward reads
};

struct AttentionGrads {
  TensorPtr dq, dk, dv;  // shaped and laid out as q, k, v
};

// q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] of one float dtype (any strides),
// H % Hkv == 0, D and Dv >= 1; query head h reads key/value head h / (H / Hkv). `mask` (may be
// null): additive, of q's dtype, broadcast to [B, H, Lq, Lk]. `causal`: query i sees the keys
// j <= Lk - Lq + i (bottom-right alignment). A row that sees no key gives zeros (lse = +inf).
// 16-bit dtypes are computed in float32.
AttentionForward attention_forward(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, const TensorPtr& mask,
                                   bool causal, double scale);
// The gradients of q, k and v for dout (shaped and typed as the output), given the forward's
// inputs, output and lse and the same mask, causal and scale.
AttentionGrads attention_backward(const TensorPtr& dout, const TensorPtr& q, const TensorPtr& k, const TensorPtr& v,
                                  const TensorPtr& out, const TensorPtr& lse, const TensorPtr& mask, bool causal, double scale);

}  // namespace ignis
