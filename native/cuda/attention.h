// Scaled dot-product attention on CUDA, with the contracts of cpu/attention.h, by one of three
// implementations:
// - flash kernels (the default where they apply: float32, bfloat16 or float16, one head dim of
//   32, 64 or 128 for queries, keys and values): per block a tile of 64 query rows, the keys and
//   values streamed through shared memory a tile at a time with an online softmax in float, so
//   that no [Lq, Lk] scores exist anywhere; tiles of keys the causal limit hides are skipped.
//   The backward recomputes the probabilities per tile from the saved logsumexp: one kernel
//   gives dQ per tile of query rows, another dK and dV per tile of keys (summed over the query
//   heads of a group in a fixed order: no atomics, the same result every run).
// - tensor-core kernels (cuda/attention_mma.cuh; IGNIS_CUDA_ATTENTION=tensor-core, for bfloat16
//   and float16 with those head dims on sm_80 and later; other problems take the flash kernels):
//   the same tiling and the same deterministic backward, reading the 16-bit operands directly
//   (tiles double-buffered in shared memory by cp.async), with the products on mma.sync and the
//   probabilities and score gradients rounded to the storage dtype as operands.
// - the materialized path (any other problem, or every one with IGNIS_CUDA_ATTENTION=materialized):
//   the scores of all rows by one strided batched cuBLAS GEMM (grouped-query heads read their
//   key/value head through a stride-0 batch dim), a fused kernel for the mask, the causal limit
//   and the softmax (one warp per row, writing the probabilities and the logsumexp), and the
//   values by a second GEMM. Its backward recomputes the scores, then one kernel per row turns
//   them and dO V^T into the score gradients, and GEMMs give dQ, dK and dV (summed over the
//   heads of a group by accumulating GEMMs).
// IGNIS_CUDA_ATTENTION (read at each call): unset or "flash" for the default, "tensor-core",
// "materialized"; any other value is ERR_ARG.
#pragma once
#include "cpu/attention.h"

namespace ignis::cuda {

// True where the tensor-core kernels run p: they read bfloat16/float16 operands directly.
bool attention_reads_storage(const cpu::AttentionProblem& p, DType dtype, Device device);
void attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, void* lse);
void attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const void* lse,
                        const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv);

}  // namespace ignis::cuda
