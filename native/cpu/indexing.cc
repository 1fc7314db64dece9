#include "cpu/indexing.h"

#include <algorithm>
#include <cstring>
#include "core/loop.h"

namespace ignis::cpu {

IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore, int64_t ignore) {
  IndexScan scan;
  auto loop = make_loop<1>(index->shape, {LoopOperand{index->data(), index->strides.data(), index->element_size()}});
  dispatch_index(index->dtype, "index scan", [&](auto tag) {
    using I = decltype(tag);
    // One thread (a grain of numel), in row-major order, so that the value reported is the first bad one.
    for_each_strided(loop, loop.numel, [&](char* const* p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; i++) {
        int64_t v = *reinterpret_cast<const I*>(p[0] + i * s[0]);
        if (has_ignore && v == ignore) continue;
        scan.counted++;
        if ((v < 0 || v >= bound) && scan.all_in_range) {
          scan.all_in_range = false;
          scan.first_bad = v;
        }
      }
    });
  });
  return scan;
}

void embedding(const TensorPtr& out, const TensorPtr& indices, const TensorPtr& weight) {
  const int64_t n = indices->numel(), dim = weight->shape[1];
  const int64_t row_stride = weight->strides[0], col_stride = weight->strides[1];
  const int64_t grain = dim > 0 ? std::max<int64_t>(1, kElementwiseGrain / dim) : n;
  dispatch_index(indices->dtype, "embedding", [&](auto itag) {
    using I = decltype(itag);
    const I* idx = indices->data_as<I>();
    dispatch_element_size(weight->element_size(), [&](auto etag) {
      using U = decltype(etag);
      const U* w = weight->data_as<U>();
      U* o = out->data_as<U>();
      parallel_for(n, grain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          const U* __restrict src = w + int64_t(idx[i]) * row_stride;
          U* __restrict dst = o + i * dim;
          if (col_stride == 1) {
            std::memcpy(dst, src, size_t(dim) * sizeof(U));
          } else {
            for (int64_t j = 0; j < dim; j++) dst[j] = src[j * col_stride];
          }
        }
      });
    });
  });
}

void gather(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index) {
  const auto loop = gather_loop(out, t, dim, index);
  const int64_t dim_stride = t->strides[dim];
  dispatch_index(index->dtype, "gather", [&](auto itag) {
    using I = decltype(itag);
    dispatch_element_size(t->element_size(), [&](auto etag) {
      using U = decltype(etag);
      for_each_strided(loop, kElementwiseGrain, [dim_stride](char* const* p, const int64_t* s, int64_t n) {
        for (int64_t i = 0; i < n; i++) {
          int64_t k = *reinterpret_cast<const I*>(p[1] + i * s[1]);
          *reinterpret_cast<U*>(p[0] + i * s[0]) = reinterpret_cast<const U*>(p[2] + i * s[2])[k * dim_stride];
        }
      });
    });
  });
}

void embedding_backward(const TensorPtr& dweight, const TensorPtr& grad, const TensorPtr& indices) {
  const int64_t n = indices->numel(), rows = dweight->shape[0], dim = dweight->shape[1];
  // Threads own ranges of dweight's rows and each scans every index: no two threads add to one
  // row, and the result does not depend on the number of threads.
  const int64_t grain = n * dim > kElementwiseGrain ? 1 : rows;
  dispatch_index(indices->dtype, "embedding backward", [&](auto itag) {
    using I = decltype(itag);
    const I* idx = indices->data_as<I>();
    auto scatter = [&](auto ftag) {
      using A = decltype(ftag);
      A* dw = dweight->data_as<A>();
      const A* g = grad->data_as<A>();
      parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
        for (int64_t i = 0; i < n; i++) {
          const int64_t row = int64_t(idx[i]);
          if (row < begin || row >= end) continue;
          A* __restrict dst = dw + row * dim;
          const A* __restrict src = g + i * dim;
          for (int64_t j = 0; j < dim; j++) dst[j] += src[j];
        }
      });
    };
    if (dweight->dtype == DType::Float64) scatter(double{});
    else scatter(float{});
  });
}

void gather_backward(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index) {
  // Positions of index but `dim` never share an element of out, so threads never collide;
  // along `dim`, terms are added in order.
  const auto loop = gather_backward_loop(out, grad, dim, index);
  const int64_t length = index->shape[dim];
  const int64_t out_step = out->strides[dim], grad_step = grad->strides[dim], index_step = index->strides[dim];
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(length, 1));
  dispatch_index(index->dtype, "gather backward", [&](auto itag) {
    using I = decltype(itag);
    auto scatter = [&](auto ftag) {
      using A = decltype(ftag);
      for_each_strided(loop, grain, [&](char* const* p, const int64_t* s, int64_t count) {
        for (int64_t i = 0; i < count; i++) {
          A* o = reinterpret_cast<A*>(p[0] + i * s[0]);
          const A* g = reinterpret_cast<const A*>(p[1] + i * s[1]);
          const I* k = reinterpret_cast<const I*>(p[2] + i * s[2]);
          for (int64_t j = 0; j < length; j++) o[int64_t(k[j * index_step]) * out_step] += g[j * grad_step];
        }
      });
    };
    if (out->dtype == DType::Float64) scatter(double{});
    else scatter(float{});
  });
}

}  // namespace ignis::cpu
