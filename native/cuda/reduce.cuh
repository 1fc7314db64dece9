// The engine under the CUDA reductions, softmax, norms and losses: the threads of a block form
// groups, each reducing one row (a reduction's elements, a softmax row, a column of a parameter
// gradient) through shared memory. The tree of a group's reduction and the launch shape depend
// only on the sizes, so results are deterministic (no atomics).
#pragma once
#include <algorithm>
#include <cstdint>
#include "core/tensor.h"
#include "cuda/runtime.h"
#include "kernels/reduce.h"

namespace ignis::cuda {

// Row-major positions over up to kMaxDims dims, by value for a kernel: offset(r) is the element
// offset (strides in elements) of position r < the number of positions.
struct RowIndex {
  int ndim = 0;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims];

  __device__ int64_t offset(int64_t r) const {
    int64_t at = 0;
    for (int d = ndim - 1; d > 0; d--) {
      at += (r % size[d]) * stride[d];
      r /= size[d];
    }
    return ndim > 0 ? at + r * stride[0] : 0;  // r < size[0] is left
  }
};

// The RowIndex of sizes and strides, with size-1 dims dropped and dims merged where the strides
// allow (a contiguous run of dims needs no division).
inline RowIndex row_index(const Shape& sizes, const Shape& strides) {
  RowIndex index;
  for (size_t d = 0; d < sizes.size(); d++) {
    if (sizes[d] == 1) continue;
    const int last = index.ndim - 1;
    if (last >= 0 && index.stride[last] == strides[d] * sizes[d]) {
      index.size[last] *= sizes[d];
      index.stride[last] = strides[d];
    } else {
      index.size[index.ndim] = sizes[d];
      index.stride[index.ndim] = strides[d];
      index.ndim++;
    }
  }
  return index;
}

// Combiners of partial results, and per-element maps.
struct Add {
  template <typename A> __device__ A operator()(A a, A b) const { return a + b; }
};
struct MaxNan {
  template <typename A> __device__ A operator()(A a, A b) const { return max_nan(a, b); }
};
struct MinNan {
  template <typename A> __device__ A operator()(A a, A b) const { return min_nan(a, b); }
};
struct Same {
  template <typename A> __device__ A operator()(A v) const { return v; }
};
template <typename A>
struct SquaredFrom {
  A mean;
  __device__ A operator()(A v) const { return (v - mean) * (v - mean); }
};
template <typename A>
struct ExpFrom {
  A shift;
  __device__ A operator()(A v) const { return exp_acc(v - shift); }
};
// Two sums carried together.
template <typename A>
struct SumPair {
  A first, second;
};
struct AddPairs {
  template <typename A> __device__ SumPair<A> operator()(SumPair<A> a, SumPair<A> b) const {
    return {a.first + b.first, a.second + b.second};
  }
};

// The dynamic shared memory of the block: room for one partial result (up to 16 bytes) per thread.
constexpr size_t kScratchPerThread = 16;
__device__ inline char* scratch() {
  extern __shared__ __align__(16) char buffer[];
  return buffer;
}

// A group of `size` (a power of two) threads of the block; `lane`: a thread's place in it,
// `slot`: the group's place among the block's `slots` groups.
struct Group {
  int lane, size, slot, slots;

  // combine over f(A(x[i * s])) for this thread's share of i < n: lane, lane + size, ...
  template <typename A, typename T, typename C, typename F>
  __device__ A accumulate(const T* x, int64_t n, int64_t s, A init, C combine, F f) const {
    A acc = init;
    for (int64_t i = lane; i < n; i += size) acc = combine(acc, f(A(x[i * s])));
    return acc;
  }

  // combine over the values of the group's threads, as a fixed pairwise tree; every thread gets
  // the result. Every thread of the block must call it, the same number of times.
  template <typename A, typename C>
  __device__ A reduce(A v, C combine) const {
    static_assert(sizeof(A) <= kScratchPerThread, "partial result too large for the scratch space");
    A* buf = reinterpret_cast<A*>(scratch());
    const int at = lane * slots + slot;
    buf[at] = v;
    __syncthreads();
    for (int width = size / 2; width > 0; width /= 2) {
      if (lane < width) buf[at] = combine(buf[at], buf[at + width * slots]);
      __syncthreads();
    }
    A result = buf[slot];
    __syncthreads();
    return result;
  }
};

// Groups of threads along x (rows: a group's lanes read neighbouring elements) or along y
// (columns: neighbouring groups read neighbouring elements). body(group, row, active) is
// called for rows slot, slot + slots, ... of every block; `active` is false past the last row,
// where the body must still take part in the group reductions (with no elements) and write nothing.
constexpr int kGroupThreads = 256;  // per block

template <bool Columns, typename Body>
__global__ void __launch_bounds__(kGroupThreads) group_kernel(int64_t rows, Body body) {
  const Group g = Columns ? Group{int(threadIdx.y), int(blockDim.y), int(threadIdx.x), int(blockDim.x)}
                          : Group{int(threadIdx.x), int(blockDim.x), int(threadIdx.y), int(blockDim.y)};
  for (int64_t first = int64_t(blockIdx.x) * g.slots; first < rows; first += int64_t(gridDim.x) * g.slots) {
    const int64_t row = first + g.slot;
    body(g, row, row < rows);
  }
}

inline int pow2_at_least(int64_t n, int cap) {
  int p = 1;
  while (p < cap && p < n) p *= 2;
  return p;
}

// Runs body over `rows` rows of n elements each on the current stream of `device`: in rows mode,
// groups of 32 to 256 threads (several rows per block when they are short); in columns mode, 32
// neighbouring rows per block, each with up to 8 threads.
template <bool Columns, typename Body>
void run_groups(const char* name, int device, int64_t rows, int64_t n, const Body& body) {
  if (rows <= 0) return;
  use_device(device);
  dim3 block;
  if (Columns) {
    block = dim3(32, unsigned(pow2_at_least((n + 3) / 4, kGroupThreads / 32)));
  } else {
    const int lanes = std::max(32, pow2_at_least(n, kGroupThreads));
    block = dim3(unsigned(lanes), unsigned(kGroupThreads / lanes));
  }
  const int64_t slots = Columns ? block.x : block.y;
  const int64_t blocks = std::min<int64_t>((rows + slots - 1) / slots, int64_t(1) << 20);
  const size_t shared = size_t(block.x) * block.y * kScratchPerThread;
  group_kernel<Columns><<<unsigned(blocks), block, shared, current_stream(device)>>>(rows, body);
  check_launch(name);
}

// Columns mode leaves most of the GPU idle when there are few columns (32 to a block) and each
// is long (at most 8 threads to a column): at most kSplitColumns columns of at least
// 4 * kColumnChunk elements are cut into chunks of kColumnChunk elements, whose partial results
// are then reduced as rows.
constexpr int64_t kColumnChunk = 512;
constexpr int64_t kSplitColumns = 16384;
inline bool split_columns(int64_t columns, int64_t n) { return columns <= kSplitColumns && n >= 4 * kColumnChunk; }

}  // namespace ignis::cuda
