// Strided iteration over N operands that share one (output) shape: the engine under every
// elementwise kernel. Broadcast inputs have stride 0 in the broadcast dims. Dims are reordered
// innermost-first and merged where every operand is contiguous across them, so a contiguous
// op becomes one flat loop; the inner function then sees (pointers, byte strides, count).
#pragma once
#include <array>
#include <cstdint>
#include "core/parallel.h"
#include "core/tensor.h"

namespace ignis {

// Shape of broadcasting a with b (NumPy rules), or ERR_SHAPE naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// t's strides (in elements) viewed with shape `out` (t broadcast to out), or ERR_SHAPE.
Shape broadcast_strides(const TensorImpl& t, const Shape& out, const char* op);

template <int N>
struct StridedLoop {
  int ndim = 0;  // after merging; dim 0 is the innermost
  int64_t numel = 0;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];  // bytes
  char* base[N];
};

// operands[k] = {data pointer, strides in elements aligned with `shape`, element size}.
struct LoopOperand {
  void* data;
  const int64_t* strides;
  size_t element_size;
};

template <int N>
StridedLoop<N> make_loop(const Shape& shape, const std::array<LoopOperand, N>& ops) {
  StridedLoop<N> loop;
  loop.numel = shape_numel(shape);
  for (int k = 0; k < N; k++) loop.base[k] = static_cast<char*>(ops[k].data);
  // innermost first, dropping size-1 dims
  for (int d = int(shape.size()) - 1; d >= 0; d--) {
    if (shape[d] == 1) continue;
    int i = loop.ndim;
    if (i > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; k++)
        if (int64_t(ops[k].strides[d] * ops[k].element_size) != loop.stride[k][i - 1] * loop.size[i - 1]) mergeable = false;
      if (mergeable) {
        loop.size[i - 1] *= shape[d];
        continue;
      }
    }
    loop.size[i] = shape[d];
    for (int k = 0; k < N; k++) loop.stride[k][i] = ops[k].strides[d] * int64_t(ops[k].element_size);
    loop.ndim++;
  }
  if (loop.ndim == 0) {  // a scalar (or all size-1 dims)
    loop.ndim = 1;
    loop.size[0] = 1;
    for (int k = 0; k < N; k++) loop.stride[k][0] = int64_t(ops[k].element_size);
  }
  return loop;
}

// Calls inner(char* ptrs[N], const int64_t byte_strides[N], int64_t count) over every inner row,
// split across threads when numel exceeds `grain`.
template <int N, typename F>
void for_each_strided(const StridedLoop<N>& loop, int64_t grain, F&& inner) {
  parallel_for(loop.numel, grain, [&](int64_t begin, int64_t end) {
    int64_t index[kMaxDims];
    char* ptrs[N];
    int64_t inner_strides[N];
    for (int k = 0; k < N; k++) inner_strides[k] = loop.stride[k][0];
    // position of `begin` in every dim
    int64_t rest = begin;
    for (int d = 0; d < loop.ndim; d++) {
      index[d] = rest % loop.size[d];
      rest /= loop.size[d];
    }
    int64_t pos = begin;
    while (pos < end) {
      for (int k = 0; k < N; k++) {
        char* p = loop.base[k];
        for (int d = 0; d < loop.ndim; d++) p += index[d] * loop.stride[k][d];
        ptrs[k] = p;
      }
      int64_t count = loop.size[0] - index[0];
      if (count > end - pos) count = end - pos;
      inner(ptrs, inner_strides, count);
      pos += count;
      // advance the multi-index past this row
      index[0] += count;
      for (int d = 0; d < loop.ndim - 1 && index[d] == loop.size[d]; d++) {
        index[d] = 0;
        index[d + 1]++;
      }
    }
  });
}

// Element offset of row r, unravelled row-major over `sizes`, against `strides`.
inline int64_t row_offset(int64_t r, const Shape& sizes, const Shape& strides) {
  int64_t offset = 0;
  for (int d = int(sizes.size()) - 1; d >= 0; d--) {
    offset += (r % sizes[d]) * strides[d];
    r /= sizes[d];
  }
  return offset;
}

// Items per thread below which a loop runs on one thread.
constexpr int64_t kElementwiseGrain = 32768;

// Hot loops built twice on x86-64 Linux with GCC, for AVX2 + FMA machines and for any x86-64,
// one picked when the addon loads: math-heavy rows run two to four times as fast with the wider
// vectors. The AVX2 build may fuse a multiply and an add (FMA), which can change the last bit of
// a result: results never depend on the thread count, but may differ in the last bit between a
// machine with AVX2 and one without.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define IGNIS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define IGNIS_VECTOR_CLONES
#endif

}  // namespace ignis
