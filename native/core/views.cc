#include "core/views.h"

#include <optional>
#include <utility>
#include "core/backend.h"
#include "core/loop.h"

namespace ignis {

int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t range = ndim > 0 ? ndim : 1;
  if (dim < -range || dim >= range)
    fail(ERR_INDEX, op, ": dim ", dim, " is out of range for a tensor with ", ndim, " dims");
  return dim < 0 ? dim + range : dim;
}

// Strides that show t's elements in `shape` without a copy, when they exist: each run of
// old dims that are contiguous with each other must be cut into new dims exactly.
static std::optional<Shape> view_strides(const TensorImpl& t, const Shape& shape) {
  int64_t numel = t.numel();
  if (numel == 0 || t.ndim() == 0) return contiguous_strides(shape);
  Shape strides(shape.size());
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_stride = t.strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = t.ndim() - 1; d >= 0; d--) {
    tensor_numel *= t.shape[d];
    bool chunk_ends = d == 0 || (t.shape[d - 1] != 1 && t.strides[d - 1] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_stride;
      view_numel *= shape[view_d];
      view_d--;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = t.strides[d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

static void check_same_numel(const TensorPtr& t, const Shape& shape, const char* op) {
  check_shape(shape, op);
  if (shape_numel(shape) != t->numel())
    fail(ERR_SHAPE, op, ": shape ", shape_str(shape), " is invalid for a tensor of shape ", shape_str(t->shape), " (",
         t->numel(), " elements)");
}

TensorPtr view(const TensorPtr& t, const Shape& shape) {
  check_same_numel(t, shape, "view");
  auto strides = view_strides(*t, shape);
  if (!strides)
    fail(ERR_SHAPE, "view: cannot view a tensor of shape ", shape_str(t->shape), " and strides ", shape_str(t->strides),
         " as ", shape_str(shape), " without copying; use reshape()");
  return make_view(t, shape, *strides, t->offset);
}

TensorPtr reshape(const TensorPtr& t, const Shape& shape) {
  check_same_numel(t, shape, "reshape");
  if (auto strides = view_strides(*t, shape)) return make_view(t, shape, *strides, t->offset);
  TensorPtr c = contiguous_copy(t);
  return make_view(c, shape, contiguous_strides(shape), 0);
}

TensorPtr permute(const TensorPtr& t, const Shape& dims) {
  int64_t n = t->ndim();
  if (int64_t(dims.size()) != n)
    fail(ERR_SHAPE, "permute: expected ", n, " dims for a tensor of shape ", shape_str(t->shape), ", got ", shape_str(dims));
  Shape shape(n), strides(n);
  std::vector<bool> seen(n, false);
  for (int64_t i = 0; i < n; i++) {
    int64_t d = normalize_dim(dims[i], n, "permute");
    if (seen[d]) fail(ERR_ARG, "permute: dim ", d, " appears twice in ", shape_str(dims));
    seen[d] = true;
    shape[i] = t->shape[d];
    strides[i] = t->strides[d];
  }
  return make_view(t, shape, strides, t->offset);
}

TensorPtr narrow(const TensorPtr& t, int64_t dim, int64_t start, int64_t length) {
  if (t->ndim() == 0) fail(ERR_SHAPE, "narrow: cannot narrow a 0-dim tensor");
  dim = normalize_dim(dim, t->ndim(), "narrow");
  int64_t size = t->shape[dim];
  if (start < 0) start += size;
  if (start < 0 || start > size || length < 0 || start + length > size)
    fail(ERR_INDEX, "narrow: range [", start, ", ", start + length, ") is out of bounds for dim ", dim, " of size ", size);
  Shape shape = t->shape;
  shape[dim] = length;
  return make_view(t, shape, t->strides, t->offset + start * t->strides[dim]);
}

TensorPtr slice(const TensorPtr& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (t->ndim() == 0) fail(ERR_SHAPE, "slice: cannot slice a 0-dim tensor");
  dim = normalize_dim(dim, t->ndim(), "slice");
  if (step < 1) fail(ERR_ARG, "slice: step must be positive, got ", step);
  int64_t size = t->shape[dim];
  auto clamp = [size](int64_t i) {
    if (i < 0) i += size;
    return i < 0 ? 0 : (i > size ? size : i);
  };
  start = clamp(start);
  end = clamp(end);
  int64_t length = end > start ? (end - start + step - 1) / step : 0;
  Shape shape = t->shape, strides = t->strides;
  shape[dim] = length;
  strides[dim] *= step;
  return make_view(t, shape, strides, t->offset + (length ? start * t->strides[dim] : 0));
}

TensorPtr expand(const TensorPtr& t, const Shape& shape) {
  check_shape(shape, "expand");
  if (shape.size() < size_t(t->ndim()))
    fail(ERR_SHAPE, "expand: cannot expand ", shape_str(t->shape), " to fewer dims ", shape_str(shape));
  Shape strides = broadcast_strides(*t, shape, "expand");
  return make_view(t, shape, strides, t->offset);
}

TensorPtr squeeze(const TensorPtr& t, int64_t dim) {
  Shape shape, strides;
  for (int64_t d = 0; d < t->ndim(); d++) {
    bool drop = t->shape[d] == 1 && (dim < 0 || d == dim);
    if (drop) continue;
    shape.push_back(t->shape[d]);
    strides.push_back(t->strides[d]);
  }
  return make_view(t, shape, strides, t->offset);
}

TensorPtr unsqueeze(const TensorPtr& t, int64_t dim) {
  dim = normalize_dim(dim, t->ndim() + 1, "unsqueeze");
  Shape shape = t->shape, strides = t->strides;
  int64_t stride = dim < t->ndim() ? t->strides[dim] * t->shape[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, stride);
  return make_view(t, shape, strides, t->offset);
}

TensorPtr alias(const TensorPtr& t) { return make_view(t, t->shape, t->strides, t->offset); }

TensorPtr contiguous(const TensorPtr& t) { return t->is_contiguous() ? t : contiguous_copy(t); }

TensorPtr contiguous_copy(const TensorPtr& t) {
  TensorPtr out = empty(t->shape, t->dtype, t->device());
  copy_into(out, t);
  return out;
}

TensorPtr to_dtype(const TensorPtr& t, DType dtype) {
  if (t->dtype == dtype) return alias(t);
  TensorPtr out = empty(t->shape, dtype, t->device());
  copy_into(out, t);
  return out;
}

// The bytes [first, last) of its storage that t's elements lie in (t not empty).
static std::pair<int64_t, int64_t> byte_span(const TensorImpl& t) {
  int64_t first = t.offset, last = t.offset;
  for (int d = 0; d < t.ndim(); d++) {
    int64_t reach = t.strides[d] * (t.shape[d] - 1);
    if (reach < 0) first += reach;
    else last += reach;
  }
  int64_t size = int64_t(t.element_size());
  return {first * size, (last + 1) * size};
}

void copy_into(const TensorPtr& dst, const TensorPtr& src) {
  check_same_device("copy", dst, src);
  for (int d = 0; d < dst->ndim(); d++)
    if (dst->strides[d] == 0 && dst->shape[d] > 1)
      fail(ERR_ARG, "copy: the destination of shape ", shape_str(dst->shape),
           " holds some elements more than once (a broadcast view); copy into a tensor that holds each once");
  // The kernels copy in no set order (on a GPU, all at once): a source sharing memory with the
  // destination is read in full first, unless each element is read and written in one place.
  TensorPtr from = src;
  if (dst->numel() > 0 && src->numel() > 0 && src->storage == dst->storage &&
      !(src->data() == dst->data() && broadcast_strides(*src, dst->shape, "copy") == dst->strides)) {
    auto [dst_first, dst_last] = byte_span(*dst);
    auto [src_first, src_last] = byte_span(*src);
    if (src_first < dst_last && dst_first < src_last) from = contiguous_copy(src);
  }
  kernel(&DeviceBackend::copy, dst->device(), "copy")(dst, from);
}

void fill(const TensorPtr& dst, double value) {
  // converting a double outside an integer type's range is undefined behaviour
  bool fits = dst->dtype == DType::Int32   ? value > -2147483649.0 && value < 2147483648.0
              : dst->dtype == DType::Int64 ? value >= -9223372036854775808.0 && value < 9223372036854775808.0
                                           : true;
  if (!fits) fail(ERR_ARG, "fill: ", value, " cannot be converted to ", dtype_name(dst->dtype), " without overflow");
  kernel(&DeviceBackend::fill, dst->device(), "fill")(dst, value);
}

}  // namespace ignis
