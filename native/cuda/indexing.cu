// Indexing kernels, with the contracts of cpu/indexing.h. Indices are validated by a scan on the
// device whose result (the first bad position, the count of indices not ignored) is read back
// before any kernel that uses them is launched: a bad index is an ERR_INDEX, never a fault.
// While a CUDA graph is captured nothing can be read back: the scan's count stays on the
// device, its bad indices are added to the graph's count (CudaGraph.indexErrors), and the
// kernels bounds-check each index themselves (reading zeros, writing nothing for a bad one).
#include "cuda/indexing.h"

#include <algorithm>
#include "core/backend.h"
#include "core/views.h"
#include "cuda/graph.h"
#include "cuda/loop.cuh"

namespace ignis::cuda {
namespace {

constexpr unsigned long long kNone = ~0ull;

// result[0] = min over threads of the first (row-major) position of a value outside [0, bound)
// that is not `ignore` (when has_ignore); result[1] += the number of values in range that are not
// `ignore`; *errors (when not null) += the number of values out of range.
template <typename I, bool Flat>
__global__ void __launch_bounds__(kThreads)
    scan_kernel(StridedLoop<1> loop, int64_t bound, bool has_ignore, int64_t ignore, unsigned long long* result,
                unsigned long long* errors) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  unsigned long long counted = 0, bad = 0, first_bad = kNone;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < loop.numel; i += step) {
    char* p[1];
    locate<1, Flat>(loop, i, p);
    const int64_t v = int64_t(*reinterpret_cast<const I*>(p[0]));
    if (has_ignore && v == ignore) continue;
    if (v >= 0 && v < bound) {
      counted++;
      continue;
    }
    bad++;
    if (first_bad == kNone) first_bad = (unsigned long long)i;  // i grows: the thread's first
  }
  if (first_bad != kNone) atomicMin(&result[0], first_bad);
  if (counted) atomicAdd(&result[1], counted);
  if (bad && errors) atomicAdd(errors, bad);
}

// out[i, j] = weight[indices[i], j] over contiguous out [n, dim] (zeros for an index outside [0, rows)).
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads)
    embedding_kernel(U* out, const I* indices, const U* weight, int64_t total, int64_t dim, int64_t rows,
                     int64_t row_stride, int64_t col_stride) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = e / dim, j = e % dim, k = int64_t(indices[i]);
    if (k >= 0 && k < rows) out[e] = weight[k * row_stride + j * col_stride];
    else memset(out + e, 0, sizeof(U));  // U may be a 16-bit storage type without a zero constructor
  }
}

// Shared memory for the column sums of one tile of embedding_backward.
constexpr size_t kTileBytes = 32768;

// dweight[indices[i], j] += grad[i, j] (nothing for an index outside [0, rows)), every element
// adding its terms in the order of i, as the CPU does (the same bits). Each block owns tiles of
// `tile_rows` rows by blockDim.x (a multiple of 32) columns of dweight: it scans all the indices,
// blockDim.x at a time, compacts the positions that hit its rows in order, adds their gradient
// rows into column sums in shared memory (thread t owns column t), and finally adds the sums to
// the rows that were hit. No two blocks share an element, and no atomics are needed.
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads)
    embedding_backward_kernel(A* __restrict__ dweight, const A* __restrict__ grad, const I* __restrict__ indices, int64_t n,
                              int64_t dim, int64_t rows, int tile_rows, int64_t column_tiles, int64_t tiles) {
  extern __shared__ __align__(16) char shared[];
  __shared__ int warp_hits[kThreads / 32];
  const int t = threadIdx.x, width = blockDim.x, lane = t % 32, warp = t / 32, warps = width / 32;
  A* sums = reinterpret_cast<A*>(shared);                // [tile_rows][width]
  int* hit_row = reinterpret_cast<int*>(sums + int64_t(tile_rows) * width);  // [width]: the tile row of each hit
  int* hit_at = hit_row + width;                         // [width]: its place in the batch
  int* touched = hit_at + width;                         // [tile_rows]: rows hit at least once
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t first_row = tile / column_tiles * tile_rows, j = tile % column_tiles * width + t;
    for (int r = 0; r < tile_rows; r++) sums[r * width + t] = A(0);
    for (int r = t; r < tile_rows; r += width) touched[r] = 0;
    __syncthreads();
    I next = t < n ? indices[t] : I(0);  // the batch's index, loaded one batch ahead
    for (int64_t base = 0; base < n; base += width) {
      const int64_t row = base + t < n ? int64_t(next) : -1;
      if (base + width + t < n) next = indices[base + width + t];
      const bool hit = row >= first_row && row - first_row < tile_rows && row < rows;
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (lane == 0) warp_hits[warp] = __popc(mask);
      __syncthreads();
      // the place of this thread's hit among the batch's hits, which keep the order of i
      int at = __popc(mask & ((1u << lane) - 1u)), hits = 0;
      for (int w = 0; w < warps; w++) {
        if (w < warp) at += warp_hits[w];
        hits += warp_hits[w];
      }
      if (hit) {
        hit_row[at] = int(row - first_row);
        hit_at[at] = t;
      }
      __syncthreads();
      if (j < dim) {
        for (int h = 0; h < hits; h++) sums[hit_row[h] * width + t] += grad[(base + hit_at[h]) * dim + j];
      }
      if (t < hits) touched[hit_row[t]] = 1;
      __syncthreads();
    }
    if (j < dim) {
      for (int r = 0; r < tile_rows; r++)
        if (touched[r]) dweight[(first_row + r) * dim + j] += sums[r * width + t];
    }
    __syncthreads();
  }
}

// Operands: out, index, t (stride 0 along dim): out = t[index * dim_stride] (zeros for an index
// outside [0, size)).
template <typename U, typename I>
struct GatherElement {
  int64_t dim_stride, size;
  __device__ void operator()(char* const* p) const {
    const int64_t k = int64_t(*reinterpret_cast<const I*>(p[1]));
    if (k >= 0 && k < size) *reinterpret_cast<U*>(p[0]) = reinterpret_cast<const U*>(p[2])[k * dim_stride];
    else memset(p[0], 0, sizeof(U));
  }
};

// Operands: out, grad, index at one position of every dim but `dim`; the terms along `dim` are
// added in order, and no two positions share an element of out.
template <typename A, typename I>
struct GatherGradColumn {
  int64_t length, size, out_step, grad_step, index_step;
  __device__ void operator()(char* const* p) const {
    A* o = reinterpret_cast<A*>(p[0]);
    const A* g = reinterpret_cast<const A*>(p[1]);
    const I* k = reinterpret_cast<const I*>(p[2]);
    for (int64_t j = 0; j < length; j++) {
      const int64_t at = int64_t(k[j * index_step]);
      if (at >= 0 && at < size) o[at * out_step] += g[j * grad_step];
    }
  }
};

}  // namespace

IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore, int64_t ignore) {
  IndexScan scan;
  if (index->numel() == 0) return scan;
  const int device = index->device().index;
  TensorPtr found = empty({2}, DType::Int64, index->device());
  auto* result = static_cast<unsigned long long*>(found->data());
  use_device(device);
  cudaStream_t stream = current_stream(device);
  check(cudaMemsetAsync(result, 0xff, sizeof(unsigned long long), stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(result + 1, 0, sizeof(unsigned long long), stream), "cudaMemsetAsync");
  auto loop = make_loop<1>(index->shape, {LoopOperand{index->data(), index->strides.data(), index->element_size()}});
  unsigned long long* errors = index_error_counter(device);
  dispatch_index(index->dtype, "index scan", [&](auto tag) {
    using I = decltype(tag);
    if (loop.ndim == 1) scan_kernel<I, true><<<grid_for(loop.numel), kThreads, 0, stream>>>(loop, bound, has_ignore, ignore, result, errors);
    else scan_kernel<I, false><<<grid_for(loop.numel), kThreads, 0, stream>>>(loop, bound, has_ignore, ignore, result, errors);
    check_launch("index scan");
  });
  if (errors) {
    // capturing: the result stays on the device (the kernels bounds-check the indices)
    scan.deferred = true;
    scan.counted = -1;
    scan.counted_on_device = make_view(found, {}, {}, found->offset + 1);
    return scan;
  }
  TensorPtr host = to_host_contiguous(found);
  const auto* values = host->data_as<unsigned long long>();
  scan.counted = int64_t(values[1]);
  if (values[0] != kNone) {
    // the bad value itself, for the message
    const int64_t at = row_offset(int64_t(values[0]), index->shape, index->strides);
    TensorPtr bad = to_host_contiguous(to_dtype(make_view(index, {}, {}, index->offset + at), DType::Int64));
    scan.all_in_range = false;
    scan.first_bad = bad->data_as<int64_t>()[0];
  }
  return scan;
}

void embedding(const TensorPtr& out, const TensorPtr& indices, const TensorPtr& weight) {
  const int64_t total = out->numel();
  if (total == 0) return;
  const int device = out->device().index;
  use_device(device);
  cudaStream_t stream = current_stream(device);
  dispatch_index(indices->dtype, "embedding", [&](auto itag) {
    using I = decltype(itag);
    dispatch_element_size(weight->element_size(), [&](auto etag) {
      using U = decltype(etag);
      embedding_kernel<<<grid_for(total), kThreads, 0, stream>>>(out->data_as<U>(), indices->data_as<I>(), weight->data_as<U>(),
                                                                 total, weight->shape[1], weight->shape[0], weight->strides[0],
                                                                 weight->strides[1]);
      check_launch("embedding");
    });
  });
}

void embedding_backward(const TensorPtr& dweight, const TensorPtr& grad, const TensorPtr& indices) {
  const int64_t n = indices->numel(), rows = dweight->shape[0], dim = dweight->shape[1];
  if (n == 0 || rows == 0 || dim == 0) return;
  const int device = dweight->device().index;
  use_device(device);
  cudaStream_t stream = current_stream(device);
  // columns per tile: dim rounded up to whole warps, at most kThreads
  const int width = int(std::min<int64_t>(kThreads, (dim + 31) / 32 * 32));
  const int64_t column_tiles = (dim + width - 1) / width;
  dispatch_index(indices->dtype, "embedding backward", [&](auto itag) {
    using I = decltype(itag);
    auto scatter = [&](auto ftag) {
      using A = decltype(ftag);
      const int tile_rows = int(kTileBytes / (size_t(width) * sizeof(A)));
      const int64_t tiles = (rows + tile_rows - 1) / tile_rows * column_tiles;
      const size_t shared = kTileBytes + (2 * size_t(width) + size_t(tile_rows)) * sizeof(int);
      embedding_backward_kernel<<<unsigned(std::min(tiles, kMaxBlocks)), width, shared, stream>>>(
          dweight->data_as<A>(), grad->data_as<A>(), indices->data_as<I>(), n, dim, rows, tile_rows, column_tiles, tiles);
      check_launch("embedding backward");
    };
    if (dweight->dtype == DType::Float64) scatter(double{});
    else scatter(float{});
  });
}

void gather(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index) {
  const auto loop = gather_loop(out, t, dim, index);
  dispatch_index(index->dtype, "gather", [&](auto itag) {
    using I = decltype(itag);
    dispatch_element_size(t->element_size(), [&](auto etag) {
      using U = decltype(etag);
      launch("gather", out->device().index, loop, GatherElement<U, I>{t->strides[dim], t->shape[dim]});
    });
  });
}

void gather_backward(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index) {
  const auto loop = gather_backward_loop(out, grad, dim, index);
  const int64_t length = index->shape[dim];
  dispatch_index(index->dtype, "gather backward", [&](auto itag) {
    using I = decltype(itag);
    auto scatter = [&](auto ftag) {
      using A = decltype(ftag);
      launch("gather backward", out->device().index, loop,
             GatherGradColumn<A, I>{length, out->shape[dim], out->strides[dim], grad->strides[dim], index->strides[dim]});
    };
    if (out->dtype == DType::Float64) scatter(double{});
    else scatter(float{});
  });
}

}  // namespace ignis::cuda
