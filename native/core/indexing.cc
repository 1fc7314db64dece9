#include "core/indexing.h"

#include "core/backend.h"
#include "core/views.h"

namespace ignis {

void check_index_dtype(const TensorPtr& index, const char* op, const char* name) {
  if (index->dtype != DType::Int32 && index->dtype != DType::Int64)
    fail(ERR_DTYPE, op, ": ", name, " must be int32 or int64, got ", dtype_name(index->dtype));
}

StridedLoop<3> gather_loop(const TensorPtr& out, const TensorPtr& t, int64_t dim, const TensorPtr& index) {
  Shape t_strides = t->strides;
  t_strides[dim] = 0;
  const size_t es = t->element_size();
  return make_loop<3>(index->shape, {LoopOperand{out->data(), out->strides.data(), es},
                                     LoopOperand{index->data(), index->strides.data(), index->element_size()},
                                     LoopOperand{t->data(), t_strides.data(), es}});
}

StridedLoop<3> gather_backward_loop(const TensorPtr& out, const TensorPtr& grad, int64_t dim, const TensorPtr& index) {
  Shape walk = index->shape;
  walk[dim] = 1;
  const size_t es = out->element_size();
  return make_loop<3>(walk, {LoopOperand{out->data(), out->strides.data(), es}, LoopOperand{grad->data(), grad->strides.data(), es},
                             LoopOperand{index->data(), index->strides.data(), index->element_size()}});
}

IndexScan scan_indices(const TensorPtr& index, int64_t bound, bool has_ignore, int64_t ignore) {
  return kernel(&DeviceBackend::scan_indices, index->device(), "index scan")(index, bound, has_ignore, ignore);
}

TensorPtr embedding(const TensorPtr& indices, const TensorPtr& weight) {
  check_same_device("embedding", indices, weight);
  const auto embedding_kernel = kernel(&DeviceBackend::embedding, weight->device(), "embedding");
  check_index_dtype(indices, "embedding", "indices");
  if (!is_float(weight->dtype))
    fail(ERR_DTYPE, "embedding: weight must be a floating-point tensor, got ", dtype_name(weight->dtype));
  if (weight->ndim() != 2)
    fail(ERR_SHAPE, "embedding: weight must be 2-D [numEmbeddings, dim], got shape ", shape_str(weight->shape));
  const int64_t rows = weight->shape[0];
  TensorPtr flat = contiguous(indices);
  IndexScan scan = scan_indices(flat, rows);
  if (!scan.all_in_range)
    fail(ERR_INDEX, "embedding: index ", scan.first_bad, " is out of range for a weight of ", rows, " rows (shape ",
         shape_str(weight->shape), ")");
  Shape shape = indices->shape;
  shape.push_back(weight->shape[1]);
  check_shape(shape, "embedding");
  TensorPtr out = empty(shape, weight->dtype, weight->device());
  embedding_kernel(out, flat, weight);
  return out;
}

// A zero tensor of `shape` in the accumulation dtype of `dtype`.
static TensorPtr zero_accumulator(const Shape& shape, DType dtype, Device device) {
  TensorPtr t = empty(shape, accumulation_dtype(dtype), device);
  fill(t, 0);
  return t;
}

TensorPtr embedding_backward(const TensorPtr& grad, const TensorPtr& indices, int64_t num_embeddings) {
  const char* op = "embedding backward";
  check_same_device(op, indices, grad);
  const auto backward_kernel = kernel(&DeviceBackend::embedding_backward, grad->device(), op);
  check_index_dtype(indices, op, "indices");
  if (!is_float(grad->dtype)) fail(ERR_DTYPE, op, ": grad must be a floating-point tensor, got ", dtype_name(grad->dtype));
  Shape expected = indices->shape;
  expected.push_back(grad->ndim() > 0 ? grad->shape.back() : 0);
  if (grad->ndim() == 0 || grad->shape != expected)
    fail(ERR_SHAPE, op, ": grad of shape ", shape_str(grad->shape), " does not fit indices of shape ", shape_str(indices->shape));
  if (num_embeddings < 0) fail(ERR_ARG, op, ": negative number of embeddings ", num_embeddings);
  const int64_t dim = grad->shape.back();
  check_shape({num_embeddings, dim}, op);
  TensorPtr flat = contiguous(indices);
  IndexScan scan = scan_indices(flat, num_embeddings);
  if (!scan.all_in_range) fail(ERR_INDEX, op, ": index ", scan.first_bad, " is out of range for ", num_embeddings, " rows");
  TensorPtr acc = zero_accumulator({num_embeddings, dim}, grad->dtype, grad->device());
  TensorPtr rows = contiguous(to_dtype(grad, acc->dtype));
  backward_kernel(acc, rows, flat);
  return to_dtype(acc, grad->dtype);
}

// 0-dim tensors take part in gather as 1-D tensors of one element, as in PyTorch.
static TensorPtr at_least_1d(const TensorPtr& t) { return t->ndim() == 0 ? make_view(t, {1}, {1}, t->offset) : t; }

TensorPtr gather(const TensorPtr& t, int64_t dim, const TensorPtr& index) {
  check_same_device("gather", t, index);
  const auto gather_kernel = kernel(&DeviceBackend::gather, t->device(), "gather");
  check_index_dtype(index, "gather", "index");
  dim = normalize_dim(dim, t->ndim(), "gather");
  TensorPtr src = at_least_1d(t), idx = at_least_1d(index);
  if (idx->ndim() != src->ndim())
    fail(ERR_SHAPE, "gather: index of shape ", shape_str(index->shape), " must have as many dims as the input of shape ",
         shape_str(t->shape));
  for (int64_t d = 0; d < src->ndim(); d++) {
    if (d != dim && idx->shape[d] > src->shape[d])
      fail(ERR_SHAPE, "gather: index of shape ", shape_str(index->shape), " is larger than the input of shape ",
           shape_str(t->shape), " in dim ", d);
  }
  IndexScan scan = scan_indices(idx, src->shape[dim]);
  if (!scan.all_in_range)
    fail(ERR_INDEX, "gather: index ", scan.first_bad, " is out of range for dim ", dim, " of size ", src->shape[dim],
         " (input shape ", shape_str(t->shape), ")");
  TensorPtr out = empty(index->shape, t->dtype, t->device());
  gather_kernel(at_least_1d(out), src, dim, idx);
  return out;
}

TensorPtr gather_backward(const TensorPtr& grad, int64_t dim, const TensorPtr& index, const Shape& shape) {
  const char* op = "gather backward";
  check_same_device(op, grad, index);
  const auto backward_kernel = kernel(&DeviceBackend::gather_backward, grad->device(), op);
  check_index_dtype(index, op, "index");
  if (!is_float(grad->dtype)) fail(ERR_DTYPE, op, ": grad must be a floating-point tensor, got ", dtype_name(grad->dtype));
  if (grad->shape != index->shape)
    fail(ERR_SHAPE, op, ": grad of shape ", shape_str(grad->shape), " does not match index of shape ", shape_str(index->shape));
  check_shape(shape, op);
  dim = normalize_dim(dim, int64_t(shape.size()), op);
  TensorPtr acc = zero_accumulator(shape, grad->dtype, grad->device());
  TensorPtr out = at_least_1d(acc), idx = at_least_1d(index), g = at_least_1d(to_dtype(grad, acc->dtype));
  if (idx->ndim() != out->ndim())
    fail(ERR_SHAPE, op, ": index of shape ", shape_str(index->shape), " must have as many dims as shape ", shape_str(shape));
  for (int64_t d = 0; d < out->ndim(); d++) {
    if (d != dim && idx->shape[d] > out->shape[d])
      fail(ERR_SHAPE, op, ": index of shape ", shape_str(index->shape), " is larger than shape ", shape_str(shape), " in dim ", d);
  }
  IndexScan scan = scan_indices(idx, out->shape[dim]);
  if (!scan.all_in_range)
    fail(ERR_INDEX, op, ": index ", scan.first_bad, " is out of range for dim ", dim, " of size ", out->shape[dim]);
  backward_kernel(out, g, dim, idx);
  return to_dtype(acc, grad->dtype);
}

TensorPtr cat(const std::vector<TensorPtr>& tensors, int64_t dim, DType dtype) {
  if (tensors.empty()) fail(ERR_ARG, "cat: expected a non-empty list of tensors");
  const TensorPtr& first = tensors[0];
  if (first->ndim() == 0) fail(ERR_SHAPE, "cat: 0-dim tensors cannot be concatenated; use stack");
  dim = normalize_dim(dim, first->ndim(), "cat");
  Shape shape = first->shape;
  shape[dim] = 0;
  for (size_t k = 0; k < tensors.size(); k++) {
    const TensorPtr& t = tensors[k];
    check_same_device("cat", first, t);
    if (t->ndim() != first->ndim())
      fail(ERR_SHAPE, "cat: tensor ", k, " has shape ", shape_str(t->shape), " and tensor 0 has shape ",
           shape_str(first->shape), "; all need the same number of dims");
    for (int64_t d = 0; d < t->ndim(); d++) {
      if (d != dim && t->shape[d] != first->shape[d])
        fail(ERR_SHAPE, "cat: tensor ", k, " has shape ", shape_str(t->shape), " and tensor 0 has shape ",
             shape_str(first->shape), "; sizes must match except in dim ", dim);
    }
    shape[dim] += t->shape[dim];
  }
  check_shape(shape, "cat");
  TensorPtr out = empty(shape, dtype, first->device());
  int64_t at = 0;
  for (const TensorPtr& t : tensors) {
    const int64_t length = t->shape[dim];
    if (t->numel() > 0) copy_into(narrow(out, dim, at, length), t);
    at += length;
  }
  return out;
}

TensorPtr stack(const std::vector<TensorPtr>& tensors, int64_t dim, DType dtype) {
  if (tensors.empty()) fail(ERR_ARG, "stack: expected a non-empty list of tensors");
  const TensorPtr& first = tensors[0];
  dim = normalize_dim(dim, first->ndim() + 1, "stack");
  std::vector<TensorPtr> pieces;
  pieces.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); k++) {
    const TensorPtr& t = tensors[k];
    check_same_device("stack", first, t);
    if (t->shape != first->shape)
      fail(ERR_SHAPE, "stack: tensor ", k, " has shape ", shape_str(t->shape), " and tensor 0 has shape ",
           shape_str(first->shape), "; all must have the same shape");
    pieces.push_back(unsqueeze(t, dim));
  }
  return cat(pieces, dim, dtype);
}

}  // namespace ignis
