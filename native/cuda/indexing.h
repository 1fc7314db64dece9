// CUDA kernels of the indexing family, with the contracts of cpu/indexing.h.
#pragma once
#include "core/indexing.h"

namespace ignis::cuda {

// Waits for the stream (the scan's result is read back).
IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore, int64_t ignore);
void embedding(const TensorPtr& out, const TensorPtr& indices, const TensorPtr& weight);
void gather(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index);
// Deterministic: each element of dweight adds its terms in the order of the indices, as on the
// CPU (each block owns a tile of dweight and scans all the indices).
void embedding_backward(const TensorPtr& dweight, const TensorPtr& grad, const TensorPtr& indices);
// Deterministic: each thread adds the terms of one position along `dim`, in order.
void gather_backward(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index);

}  // namespace ignis::cuda
