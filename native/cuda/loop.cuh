// The engine under every elementwise CUDA kernel: the StridedLoop of core/loop.h (operands of
// one shape, dims merged and innermost first, byte strides, broadcast dims at stride 0) goes to
// the kernel by value; thread i of the grid handles elements i, i + grid size, ... of the
// output, finding each operand's element from its strides. A loop that merged into one dim (a
// contiguous op, or one side broadcast) needs no division.
#pragma once
#include <cstdint>
#include <utility>
#include "core/loop.h"
#include "cuda/runtime.h"

namespace ignis::cuda {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks of kThreads for a grid-stride loop over `total` items (0 for none: callers launch
// nothing then, as a grid of 0 blocks is an error).
inline unsigned grid_for(int64_t total) {
  const int64_t blocks = ceil_div(total, kThreads);
  return unsigned(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// out = f(inputs...): a per-element function wrapped to read and write the operands in place.
// Operand 0 is the output, of type Out; operand k + 1 is an input of type In[k].
template <typename Out, typename F, typename... In>
struct Map {
  F f;
  template <size_t... K>
  __device__ __forceinline__ void apply(char* const* p, std::index_sequence<K...>) const {
    *reinterpret_cast<Out*>(p[0]) = f(*reinterpret_cast<const In*>(p[K + 1])...);
  }
  __device__ __forceinline__ void operator()(char* const* p) const { apply(p, std::index_sequence_for<In...>{}); }
};

// p[k] = operand k's element at position i (row-major over the loop's shape).
template <int N, bool Flat>
__device__ __forceinline__ void locate(const StridedLoop<N>& loop, int64_t i, char* (&p)[N]) {
  if (Flat) {
#pragma unroll
    for (int k = 0; k < N; k++) p[k] = loop.base[k] + i * loop.stride[k][0];
  } else {
#pragma unroll
    for (int k = 0; k < N; k++) p[k] = loop.base[k];
    int64_t rest = i;
    for (int d = 0; d < loop.ndim; d++) {
      const int64_t index = rest % loop.size[d];
      rest /= loop.size[d];
#pragma unroll
      for (int k = 0; k < N; k++) p[k] += index * loop.stride[k][d];
    }
  }
}

template <int N, bool Flat, typename Op>
__global__ void __launch_bounds__(kThreads) elementwise_kernel(StridedLoop<N> loop, Op op) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < loop.numel; i += step) {
    char* p[N];
    locate<N, Flat>(loop, i, p);
    op(p);
  }
}

// Runs op over `loop` on the current stream of `device`; `name` names the kernel in errors.
template <int N, typename Op>
void launch(const char* name, int device, const StridedLoop<N>& loop, const Op& op) {
  if (loop.numel == 0) return;
  use_device(device);
  cudaStream_t stream = current_stream(device);
  if (loop.ndim == 1) elementwise_kernel<N, true><<<grid_for(loop.numel), kThreads, 0, stream>>>(loop, op);
  else elementwise_kernel<N, false><<<grid_for(loop.numel), kThreads, 0, stream>>>(loop, op);
  check_launch(name);
}

inline LoopOperand operand(const TensorPtr& t) { return {t->data(), t->strides.data(), t->element_size()}; }
inline LoopOperand operand(const TensorPtr& t, const Shape& strides) { return {t->data(), strides.data(), t->element_size()}; }

// out[i] = f(inputs[i]...) over out's shape, the inputs broadcast to it; In... are the inputs'
// element types.
template <typename Out, typename... In, typename F>
void map(const char* name, const TensorPtr& out, std::initializer_list<TensorPtr> inputs, F f) {
  constexpr int N = 1 + int(sizeof...(In));
  static_assert(N <= 4, "at most three inputs");
  if (inputs.size() != sizeof...(In)) fail(ERR_INTERNAL, name, ": ", inputs.size(), " inputs for ", sizeof...(In), " types");
  Shape strides[N];
  std::array<LoopOperand, N> ops;
  ops[0] = operand(out);
  int k = 1;
  for (const TensorPtr& t : inputs) {
    strides[k] = broadcast_strides(*t, out->shape, name);
    ops[k] = operand(t, strides[k]);
    k++;
  }
  launch(name, out->device().index, make_loop<N>(out->shape, ops), Map<Out, F, In...>{f});
}

}  // namespace ignis::cuda
