// Indexing kernels, with the contracts of cpu/indexing.h. Indices are validated by a scan on the
// device whose result (the first bad position, the count of indices not ignored) is read back
// before any kernel that uses them is launched: a bad index is an ERR_INDEX, never a fault.
// While a CUDA graph is captured nothing can be read back: the scan's count stays on the
// device, its bad indices are added to the graph's count (CudaGraph.indexErrors), and the
// kernels bounds-check each index themselves (reading zeros, writing nothing for a bad one).
#include "cuda/indexing.h"

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

// dweight[indices[i], j] += grad[i, j], by atomic adds (nothing for an index outside [0, rows)).
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads)
    embedding_backward_kernel(A* dweight, const A* grad, const I* indices, int64_t total, int64_t dim, int64_t rows) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = e / dim, j = e % dim, k = int64_t(indices[i]);
    if (k >= 0 && k < rows) atomicAdd(dweight + k * dim + j, grad[e]);
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
  const int64_t total = grad->numel();
  if (total == 0) return;
  const int device = dweight->device().index;
  use_device(device);
  cudaStream_t stream = current_stream(device);
  dispatch_index(indices->dtype, "embedding backward", [&](auto itag) {
    using I = decltype(itag);
    auto scatter = [&](auto ftag) {
      using A = decltype(ftag);
      embedding_backward_kernel<<<grid_for(total), kThreads, 0, stream>>>(dweight->data_as<A>(), grad->data_as<A>(),
                                                                          indices->data_as<I>(), total, dweight->shape[1],
                                                                          dweight->shape[0]);
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
