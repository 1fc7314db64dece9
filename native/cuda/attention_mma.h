// The tensor-core attention kernels (cuda/attention_mma.cuh), with the contracts of
// cpu/attention.h: selected by IGNIS_CUDA_ATTENTION=tensor-core for the problems they apply to.
#pragma once
#include "cpu/attention.h"

namespace ignis::cuda {

// Whether the tensor-core kernels take p (of storage dtype `dtype`) on `device`: bfloat16 or
// float16, one head dim of 32, 64 or 128 for queries, keys and values, a device of compute
// capability 8.0 or later, grids within CUDA's limit and shared memory within the device's (the
// dQ kernel of head dim 128 needs 102 KB: sm_80 and sm_90 have it, sm_86 and sm_89 do not, and
// take the flash kernels there).
bool mma_attention_applies(const cpu::AttentionProblem& p, DType dtype, Device device);

// p's operands (and the backward's out and dout) are in the storage dtype: see
// attention_reads_storage in cuda/attention.h.
void mma_attention_forward(const cpu::AttentionProblem& p, const TensorPtr& out, float* lse);
void mma_attention_backward(const cpu::AttentionProblem& p, const GemmOperand& out, const GemmOperand& dout, const float* lse,
                            const TensorPtr& dq, const TensorPtr& dk, const TensorPtr& dv);

}  // namespace ignis::cuda
