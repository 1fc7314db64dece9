// Indexing and joining: embedding, gather, cat, stack. Device-neutral entry points: validate,
// allocate the output, dispatch to the device kernels.
#pragma once
#include <vector>
#include "core/tensor.h"

namespace ignis {

// Rows of `weight` [V, D] picked by `indices` (int32/int64, any shape): [...indices.shape, D].
// Every index is checked (0 <= i < V) before anything is copied.
TensorPtr embedding(const TensorPtr& indices, const TensorPtr& weight);
// out[i][j][k] = t[index[i][j][k]][j][k] for dim 0 (and so on): the shape of `index`, which has
// t's number of dims and sizes no larger than t's except along `dim`. 0-dim tensors count as 1-D.
TensorPtr gather(const TensorPtr& t, int64_t dim, const TensorPtr& index);
// The tensors joined along `dim`, converted to `dtype`; sizes must match except along `dim`.
TensorPtr cat(const std::vector<TensorPtr>& tensors, int64_t dim, DType dtype);
// Tensors of one shape joined along a new dim `dim` in [-(ndim + 1), ndim], converted to `dtype`.
TensorPtr stack(const std::vector<TensorPtr>& tensors, int64_t dim, DType dtype);

// The gradient of embedding: [num_embeddings, D] of grad's dtype, each row the sum of the rows
// of grad [...indices.shape, D] whose index names it (0 elsewhere).
TensorPtr embedding_backward(const TensorPtr& grad, const TensorPtr& indices, int64_t num_embeddings);
// The gradient of gather: a tensor of `shape` (the gathered input's) and grad's dtype holding
// the sum of the elements of grad (index's shape) gathered from each position, 0 elsewhere.
TensorPtr gather_backward(const TensorPtr& grad, int64_t dim, const TensorPtr& index, const Shape& shape);

// ERR_DTYPE unless `index` is int32 or int64.
void check_index_dtype(const TensorPtr& index, const char* op, const char* name);

}  // namespace ignis
