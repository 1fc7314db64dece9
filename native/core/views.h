// Views (sharing storage) and the copies behind contiguous/clone/to.
#pragma once
#include "core/tensor.h"

namespace ignis {

// view: same elements in a new shape without copying, or ERR_SHAPE when t's strides forbid it.
TensorPtr view(const TensorPtr& t, const Shape& shape);
// reshape: a view when possible, otherwise a contiguous copy.
TensorPtr reshape(const TensorPtr& t, const Shape& shape);
TensorPtr permute(const TensorPtr& t, const Shape& dims);
TensorPtr narrow(const TensorPtr& t, int64_t dim, int64_t start, int64_t length);
// Python slicing along one dim: start/end clamp to the size, negatives count from the end, step > 0.
TensorPtr slice(const TensorPtr& t, int64_t dim, int64_t start, int64_t end, int64_t step);
TensorPtr expand(const TensorPtr& t, const Shape& shape);
TensorPtr squeeze(const TensorPtr& t, int64_t dim);  // dim < 0 after normalising = all size-1 dims
TensorPtr unsqueeze(const TensorPtr& t, int64_t dim);
TensorPtr alias(const TensorPtr& t);  // a new handle on the same view

TensorPtr contiguous(const TensorPtr& t);        // t itself when already contiguous
TensorPtr contiguous_copy(const TensorPtr& t);   // always a fresh tensor
TensorPtr to_dtype(const TensorPtr& t, DType dtype);  // an alias when the dtype is the same
// dst <- src (src broadcast to dst's shape), converting dtypes.
void copy_into(const TensorPtr& dst, const TensorPtr& src);
void fill(const TensorPtr& dst, double value);

// Normalises a possibly negative dim against ndim, or ERR_INDEX naming `op`.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace ignis
