// Indexing and joining: embedding, gather, cat, stack. Device-neutral entry points: validate,
// allocate the output, dispatch to the device kernels.
#pragma once
#include <vector>
#include "core/loop.h"
#include "core/tensor.h"

namespace ignis {

// What a scan of an int32/int64 tensor (any strides) found: the first value, in row-major order,
// outside [0, bound) that is not `ignore` (when has_ignore), and how many values are not `ignore`.
// While a CUDA graph is being captured the scan's result cannot be read back: it is then
// `deferred`, all_in_range is true and counted -1 (unknown on the host), and `counted_on_device`
// holds the count (int64, 0-dim) of the values in range and not ignored. The CUDA kernels
// bounds-check every index themselves (an out-of-range one reads zeros and writes nothing), and
// the scan adds each one it meets to the graph's count of bad indices (CudaGraph.indexErrors).
struct IndexScan {
  bool all_in_range = true;
  int64_t first_bad = 0;
  int64_t counted = 0;
  bool deferred = false;
  TensorPtr counted_on_device;
};

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

// The IndexScan of `index` on its device. On a GPU this waits for the stream: the scan's result is
// read back before anything that depends on it is launched, so that an index out of range is an
// ERR_INDEX, never a device fault; except while a CUDA graph is being captured (see IndexScan).
IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore = false, int64_t ignore = 0);

// Calls f(I{}) with I the C++ type of an int32/int64 index tensor.
template <typename F>
void dispatch_index(DType t, const char* op, F&& f) {
  if (t == DType::Int32) return f(int32_t{});
  if (t == DType::Int64) return f(int64_t{});
  fail(ERR_DTYPE, op, ": indices must be int32 or int64, got ", dtype_name(t));
}

// The loops of the gather kernels (cpu/indexing.h has their contracts). gather: over index's
// shape, the operands out, index and t seen with stride 0 along `dim`; each element then steps
// index * t.strides[dim] from t's pointer.
StridedLoop<3> gather_loop(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index);
// gather's gradient: over index's shape with `dim` seen as size 1 (positions that never share an
// element of out), the operands out, grad and index; each position then walks `dim`.
StridedLoop<3> gather_backward_loop(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index);

// ERR_DTYPE unless `index` is int32 or int64.
void check_index_dtype(const TensorPtr& index, const char* op, const char* name);

}  // namespace ignis
