#pragma once
#include <cstdint>
#include "core/indexing.h"

namespace ignis::cpu {

// The IndexScan (core/indexing.h) of `index`.
IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore = false, int64_t ignore = 0);

// out[i, :] = weight[indices[i], :] (written). indices contiguous and in range; out contiguous
// [indices.numel, D]; weight [V, D] with any strides.
void embedding(const TensorPtr& out, const TensorPtr& indices, const TensorPtr& weight);
// out = t gathered along `dim` by `index` (written). index in range, any strides, the same ndim
// as t; out has index's shape (any strides).
void gather(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index);

// Gradients, accumulated (+=) into zeroed float32/float64 tensors of grad's dtype:
// dweight[indices[i], :] += grad[i, :], with dweight [V, D] and grad [indices.numel, D] contiguous,
// indices contiguous and in range. Each row of dweight adds its terms in the order of i.
void embedding_backward(const TensorPtr& dweight, const TensorPtr& grad, const TensorPtr& indices);
// out[..., index[...], ...] += grad[...] along `dim`: the scatter-add that undoes gather. grad
// and index have one shape (any strides), out the gathered input's (any strides); index in range.
void gather_backward(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index);

}  // namespace ignis::cpu
