// CUDA kernels of the reductions, with the contracts of cpu/reduce.h and cpu/loss.h (sum).
#pragma once
#include "core/reduce.h"

namespace ignis::cuda {

void reduce(ReduceOp op, const TensorPtr& out, const ReducePlan& plan, double correction);
// The sum of a contiguous float32/float64 tensor, in double (waits for the stream).
double sum(const TensorPtr& t);

}  // namespace ignis::cuda
