// CUDA kernels of the random creation ops, with the contracts of cpu/creation.h: the same
// Philox blocks mapped to the same elements, so a seed gives the same numbers as on the CPU.
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

void uniform(const TensorPtr& out, uint64_t seed, uint64_t offset);
void normal(const TensorPtr& out, uint64_t seed, uint64_t offset);
void random_int(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset);

}  // namespace ignis::cuda
