// The fused scaled dot-product attention on the CPU, flash-attention style: per (batch, head,
// block of query rows), the scores of one tile of keys at a time (a GEMM), an online softmax,
// and the tile's values added into the output (a GEMM); the backward recomputes the
// probabilities tile by tile from q, k and the saved logsumexp.
#pragma once
#include "core/matmul.h"
#include "core/tensor.h"

namespace ignis::cpu {

// One attention call. q [B, H, Lq, D], k [B, Hkv, Lk, D] and v [B, Hkv, Lk, Dv] are in the
// compute dtype (float32, or float64 for float64; the storage dtype instead where the device
// backend's attention_reads_storage asks for it), each with its last two dims in a BLAS form
// and batch_strides holding the strides of its batch and head dims. Query head h reads
// key/value head h / (H / Hkv). `mask` (may be null) holds additive values in the storage dtype
// (that of the outputs), read at mask_strides, broadcast to [B, H, Lq, Lk].
struct AttentionProblem {
  int64_t batch, heads, kv_heads, q_len, k_len, head_dim, value_dim;
  GemmOperand q, k, v;
  const void* mask;
  Shape mask_strides;
  bool causal;
  double scale;
};

// out [B, H, Lq, Dv] (any strides, storage dtype) and lse [B, H, Lq] (contiguous, compute
// dtype): both written (=).
void attention_forward(const AttentionProblem& p, const TensorPtr& out, void* lse);

// The gradients for dout, given the forward's output and lse; out and dout are operands in the
// compute dtype shaped as the output. dq, dk, dv (any strides, storage dtype, shaped as q, k, v)
// are all written (=): dq by the one task that owns its query rows, dk and dv from sums
// accumulated (+=) over the query heads and rows of a (batch, key/value head) pair by one task,
// or by several parts whose sums are then added in a fixed order.
void attention_backward(const AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                        const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv);

}  // namespace ignis::cpu
