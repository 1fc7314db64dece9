// CPU reductions, and the row/column reduction helpers the softmax and norm kernels share.
#pragma once
#include <algorithm>
#include <memory>
#include <vector>
#include "core/loop.h"
#include "core/reduce.h"

namespace ignis::cpu {

// out (fresh, contiguous, of the kept dims) = the reduction of plan.input; written, not accumulated.
void reduce(ReduceOp op, const TensorPtr& out, const ReducePlan& plan, double correction);

// Independent partial results per row: they vectorise and each takes a share of the rounding error.
constexpr int kLanes = 16;
// Elements per leaf of a pairwise tree over a row.
constexpr int64_t kTreeLeaf = 2048;
// Rows shorter than this are reduced on one thread.
constexpr int64_t kParallelRow = 131072;
// Columns per block of a column reduction (their partial results live on the stack) and rows
// per leaf of its pairwise tree.
constexpr int64_t kColumnWidth = 256;
constexpr int64_t kColumnLeaf = 64;

// Combiners: a reduction of two partial results.
struct AddOf {
  template <typename A> A operator()(A a, A b) const { return a + b; }
};
struct MaxOf {
  template <typename A> A operator()(A a, A b) const { return max_nan(a, b); }
};
struct MinOf {
  template <typename A> A operator()(A a, A b) const { return min_nan(a, b); }
};
struct Identity {
  template <typename A> A operator()(A v) const { return v; }
};

// combine over f(A(x[i * s])) for i < n, in kLanes interleaved partial results joined pairwise
// at the end; `init` is combine's identity (or any element, for max/min).
template <typename A, typename T, typename C, typename F>
A lanes_reduce(const T* x, int64_t n, int64_t s, A init, C combine, F f) {
  A lane[kLanes];
  for (int k = 0; k < kLanes; k++) lane[k] = init;
  int64_t i = 0;
  // The lane loops stay loops (no unrolling) so that they are vectorised as loops: once
  // unrolled, compilers vectorise some combiners (max with NaN) poorly or not at all.
  if (s == 1) {
    for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1
      for (int k = 0; k < kLanes; k++) lane[k] = combine(lane[k], f(A(x[i + k])));
    }
  } else {
    for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1
      for (int k = 0; k < kLanes; k++) lane[k] = combine(lane[k], f(A(x[(i + k) * s])));
    }
  }
  const int tail = int(n - i);  // < kLanes
  for (int k = 0; k < tail; k++) lane[k] = combine(lane[k], f(A(x[(i + k) * s])));
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int k = 0; k < width; k++) lane[k] = combine(lane[k], lane[k + width]);
  return lane[0];
}

// Where a pairwise tree splits n > kTreeLeaf elements: half of the leaves, rounded up.
inline int64_t tree_split(int64_t n) {
  int64_t leaves = (n + kTreeLeaf - 1) / kTreeLeaf;
  return (leaves + 1) / 2 * kTreeLeaf;
}

// lanes_reduce over the leaves of a pairwise tree: the rounding error of a sum grows with the
// log of n instead of n.
template <typename A, typename T, typename C, typename F>
A tree_reduce(const T* x, int64_t n, int64_t s, A init, C combine, F f) {
  if (n <= kTreeLeaf) return lanes_reduce(x, n, s, init, combine, f);
  int64_t half = tree_split(n);
  A left = tree_reduce(x, half, s, init, combine, f);
  return combine(left, tree_reduce(x + half * s, n - half, s, init, combine, f));
}

// tree_reduce with its top levels spread over the threads for long rows. The tree is the same
// whatever the number of threads, and so is the result.
template <typename A, typename T, typename C, typename F>
A row_reduce(const T* x, int64_t n, int64_t s, A init, C combine, F f) {
  int threads = num_threads();
  if (n < kParallelRow || threads <= 1 || in_parallel_region()) return tree_reduce(x, n, s, init, combine, f);
  int levels = 0;
  while ((1 << levels) < threads) levels++;
  struct Leaf {
    int64_t begin, n;
  };
  std::vector<Leaf> leaves;
  auto collect = [&](auto& self, int64_t begin, int64_t len, int depth) -> void {
    if (depth == 0 || len <= kTreeLeaf) {
      leaves.push_back({begin, len});
      return;
    }
    int64_t half = tree_split(len);
    self(self, begin, half, depth - 1);
    self(self, begin + half, len - half, depth - 1);
  };
  collect(collect, 0, n, levels);
  std::unique_ptr<A[]> parts(new A[leaves.size()]);
  parallel_for(int64_t(leaves.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) parts[i] = tree_reduce(x + leaves[i].begin * s, leaves[i].n, s, init, combine, f);
  });
  size_t next = 0;
  auto join = [&](auto& self, int64_t len, int depth) -> A {
    if (depth == 0 || len <= kTreeLeaf) return parts[next++];
    int64_t half = tree_split(len);
    A left = self(self, half, depth - 1);
    return combine(left, self(self, len - half, depth - 1));
  };
  return join(join, n, levels);
}

// acc[j] = sum over r < rows of f(A(x[r * s + j]), j), for j < w <= kColumnWidth: vectorised
// across j, as a pairwise tree over blocks of kColumnLeaf rows.
template <typename A, typename T, typename F>
void column_sum(const T* x, int64_t rows, int64_t s, int64_t w, F f, A* __restrict acc) {
  if (rows > kColumnLeaf) {
    int64_t half = rows / 2;
    column_sum(x, half, s, w, f, acc);
    A right[kColumnWidth];
    column_sum(x + half * s, rows - half, s, w, f, right);
    for (int64_t j = 0; j < w; j++) acc[j] += right[j];
    return;
  }
  for (int64_t j = 0; j < w; j++) acc[j] = A(0);
  for (int64_t r = 0; r < rows; r++) {
    const T* __restrict row = x + r * s;
    for (int64_t j = 0; j < w; j++) acc[j] += f(A(row[j]), j);
  }
}

// acc[j] = combine over r < rows (rows >= 1) of A(x[r * s + j]), for j < w; for exact
// combiners (max, min).
template <typename A, typename T, typename C>
void column_reduce(const T* x, int64_t rows, int64_t s, int64_t w, C combine, A* __restrict acc) {
  for (int64_t j = 0; j < w; j++) acc[j] = A(x[j]);
  for (int64_t r = 1; r < rows; r++) {
    const T* __restrict row = x + r * s;
    for (int64_t j = 0; j < w; j++) acc[j] = combine(acc[j], A(row[j]));
  }
}

// Calls row(out_row, in_row) for every position of `sizes` (the dims outside a row), in
// parallel; strides are in elements; `row_length` (elements per row) sets the grain.
template <typename O, typename T, typename Row>
void for_each_row(const Shape& sizes, O* out, const Shape& out_strides, const T* in, const Shape& in_strides,
                  int64_t row_length, Row row) {
  auto loop = make_loop<2>(sizes, {LoopOperand{out, out_strides.data(), sizeof(O)},
                                   LoopOperand{const_cast<T*>(in), in_strides.data(), sizeof(T)}});
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(row_length, 1));
  for_each_strided(loop, grain, [&](char* const* p, const int64_t* s, int64_t count) {
    for (int64_t i = 0; i < count; i++) row(reinterpret_cast<O*>(p[0] + i * s[0]), reinterpret_cast<const T*>(p[1] + i * s[1]));
  });
}

// Column blocks: `sizes` ends with the dim that column reductions vectorise across (stride 1 in
// input and output); the others are iterated with their strides (elements). Calls
// cols(in_offset, out_offset, w) for every block of w <= kColumnWidth neighbours along it, in
// parallel; `rows` (elements per column) sets the grain.
template <typename Cols>
void for_each_column_block(const Shape& sizes, const Shape& in_strides, const Shape& out_strides, int64_t rows,
                           Cols cols) {
  const int outer_dims = int(sizes.size()) - 1;
  const int64_t width = sizes.back();
  const int64_t blocks = (width + kColumnWidth - 1) / kColumnWidth;
  int64_t outer = 1;
  for (int d = 0; d < outer_dims; d++) outer *= sizes[d];
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(rows * std::min(width, kColumnWidth), 1));
  parallel_for(outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; task++) {
      int64_t rest = task / blocks, in_offset = 0, out_offset = 0;
      for (int d = outer_dims - 1; d >= 0; d--) {
        int64_t index = rest % sizes[d];
        rest /= sizes[d];
        in_offset += index * in_strides[d];
        out_offset += index * out_strides[d];
      }
      int64_t j0 = task % blocks * kColumnWidth;
      cols(in_offset + j0, out_offset + j0, std::min(kColumnWidth, width - j0));
    }
  });
}

}  // namespace ignis::cpu
