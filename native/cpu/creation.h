// CPU kernels of the creation ops. Every output is a fresh contiguous tensor, written (`=`) in
// full; the work is split across threads, and no value depends on the split.
#pragma once
#include "core/tensor.h"

namespace ignis::cpu {

// out[i] = start + i * step; for integer dtypes in int64 arithmetic (start and step integers).
void arange(const TensorPtr& out, double start, double step);
// out[i] = start + i * step for i < n / 2, end - (n - 1 - i) * step for the rest (n = 1: start).
void linspace(const TensorPtr& out, double start, double end);
// out[i][j] = i == j.
void eye(const TensorPtr& out);

// Philox blocks [offset, offset + blocks) of `seed`, mapped to elements as kernels/philox.h says.
void uniform(const TensorPtr& out, uint64_t seed, uint64_t offset);
void normal(const TensorPtr& out, uint64_t seed, uint64_t offset);
// low + floor(x * range / 2^64) from 64 random bits x per element; range 0 means 2^64.
void random_int(const TensorPtr& out, int64_t low, uint64_t range, uint64_t seed, uint64_t offset);

}  // namespace ignis::cpu
