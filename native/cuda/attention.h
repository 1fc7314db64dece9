// Scaled dot-product attention on CUDA, with the contracts of cpu/attention.h: the scores of all
// rows by one strided batched cuBLAS GEMM (grouped-query heads read their key/value head
// through a stride-0 batch dim), a fused kernel for the mask, the causal limit and the softmax
// (one warp per row, writing the probabilities and the logsumexp), and the values by a second
// GEMM. The backward recomputes the scores, then one kernel per row turns them and dO V^T into
// the score gradients, and GEMMs give dQ, dK and dV (summed over the heads of a group by
// accumulating GEMMs).
#pragma once
#include "cpu/attention.h"

namespace ignis::cuda {

void attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse);
void attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                        const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv);

}  // namespace ignis::cuda
