// Creation ops: ranges, identity, and random tensors drawn from the global Philox generator.
// Ranges and identity are made on the CPU and copied to another device; random tensors are drawn
// on their device, the same numbers for a seed on every device.
#pragma once
#include "core/tensor.h"

namespace ignis {

// start, start + step, ... up to (not including) end: ceil((end - start) / step) elements.
// For integer dtypes start, end and step are truncated to integers first, as PyTorch does.
// ERR_ARG for NaN, infinities, a zero step or a step whose sign points away from end.
TensorPtr arange(double start, double end, double step, DType dtype, Device device);
// `steps` evenly spaced values from start to end inclusive (integer dtypes: start and end truncated).
TensorPtr linspace(double start, double end, int64_t steps, DType dtype, Device device);
// n x m with ones on the diagonal.
TensorPtr eye(int64_t n, int64_t m, DType dtype, Device device);

// The global generator: a seed, and the index of the next unused Philox block (kernels/philox.h).
// Every random op takes the blocks it needs from `offset` and advances it.
struct RngState {
  uint64_t seed;
  uint64_t offset;
};
constexpr uint64_t kDefaultSeed = 67280421310721ull;  // the seed a process starts with
RngState rng_state();
// Takes `blocks` Philox blocks from the global generator; returns the state to draw them from.
RngState take_rng_blocks(uint64_t blocks);
void set_rng_state(RngState state);

// Uniform in [0, 1) (float dtypes).
TensorPtr rand(const Shape& shape, DType dtype, Device device);
// Standard normal (float dtypes).
TensorPtr randn(const Shape& shape, DType dtype, Device device);
// Uniform integers in [low, high) (every dtype but bool; low and high - 1 must be exact in it).
TensorPtr randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device);

}  // namespace ignis
