#include "core/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include "core/backend.h"
#include "core/views.h"

namespace ignis {

static const char* reduce_name(ReduceOp op) {
  static const char* names[] = {"sum", "mean", "var", "logsumexp", "max", "min", "argmax", "argmin"};
  return names[int(op)];
}

static bool is_arg(ReduceOp op) { return op == ReduceOp::ArgMax || op == ReduceOp::ArgMin; }
// Ops without a value for an empty reduction.
static bool needs_elements(ReduceOp op) { return op == ReduceOp::Max || op == ReduceOp::Min || is_arg(op); }

static DType output_dtype(ReduceOp op, DType in) {
  if (is_arg(op)) return DType::Int64;
  if (op == ReduceOp::Sum && !is_float(in)) return DType::Int64;  // PyTorch: integer and bool sums are int64
  return in;
}

std::vector<int> memory_order(const TensorImpl& t) {
  std::vector<int> order(t.ndim());
  for (int d = 0; d < t.ndim(); d++) order[d] = d;
  auto key = [&t](int d) { return t.shape[d] == 1 ? std::numeric_limits<int64_t>::max() : t.strides[d]; };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) > key(b); });
  return order;
}

// Dims of one kind (kept or reduced) in walking order; a dim joins the previous one of its kind
// when their strides make the two one dim.
struct DimList {
  Shape sizes, strides;
  void add(int64_t size, int64_t stride) {
    if (!sizes.empty() && strides.back() == stride * size) {
      sizes.back() *= size;
      strides.back() = stride;
    } else {
      sizes.push_back(size);
      strides.push_back(stride);
    }
  }
};

// `kept` and `reduced`: the dims of x of size > 1 of each kind, in walking order.
static ReducePlan make_plan(const TensorPtr& x, const std::vector<int>& kept, const std::vector<int>& reduced) {
  DimList k, r;
  for (int d : kept) k.add(x->shape[d], x->strides[d]);
  for (int d : reduced) r.add(x->shape[d], x->strides[d]);
  ReducePlan plan;
  if (r.sizes.size() > 1) {
    // Reduced dims that no stride joins: a contiguous copy with them last makes them one dim.
    Shape perm(kept.begin(), kept.end());
    perm.insert(perm.end(), reduced.begin(), reduced.end());
    for (int d = 0; d < x->ndim(); d++)
      if (x->shape[d] == 1) perm.push_back(d);
    plan.input = contiguous_copy(permute(x, perm));
    plan.n = shape_numel(r.sizes);
    if (!k.sizes.empty()) {
      plan.kept_sizes = {shape_numel(k.sizes)};
      plan.kept_strides = {plan.n};
    }
  } else {
    plan.input = x;
    plan.kept_sizes = k.sizes;
    plan.kept_strides = k.strides;
    if (!r.sizes.empty()) {
      plan.n = r.sizes[0];
      plan.stride = r.strides[0];
    }
  }
  plan.out_strides = contiguous_strides(plan.kept_sizes);
  plan.columns = !plan.kept_sizes.empty() && plan.kept_strides.back() == 1 && plan.stride != 1 && plan.n > 1;
  return plan;
}

TensorPtr reduce(ReduceOp op, const TensorPtr& x, const std::optional<Shape>& dims, bool keepdim, double correction) {
  const char* name = reduce_name(op);
  const auto reduce_kernel = kernel(&DeviceBackend::reduce, x->device(), name);
  if ((op == ReduceOp::Mean || op == ReduceOp::Var || op == ReduceOp::LogSumExp) && !is_float(x->dtype))
    fail(ERR_DTYPE, name, ": expected a floating-point tensor, got ", dtype_name(x->dtype), "; convert it to a float dtype first");
  if (op == ReduceOp::Var && !std::isfinite(correction)) fail(ERR_ARG, "var: correction must be a finite number, got ", correction);
  int nd = x->ndim();
  std::vector<bool> reduced(nd, !dims);
  if (dims) {
    if (is_arg(op) && dims->size() > 1) fail(ERR_ARG, name, ": takes one dim or none, got ", shape_str(*dims));
    for (int64_t dim : *dims) {
      int64_t d = normalize_dim(dim, nd, name);
      if (nd == 0) continue;  // a 0-dim tensor takes dim 0 or -1 and reduces nothing
      if (reduced[d]) fail(ERR_ARG, name, ": dim ", d, " appears twice in ", shape_str(*dims));
      reduced[d] = true;
    }
  }
  Shape out_shape;
  std::vector<int> out_position(nd);  // of each kept dim in the output
  for (int d = 0; d < nd; d++) {
    if (needs_elements(op) && reduced[d] && x->shape[d] == 0)
      fail(ERR_SHAPE, name, ": cannot reduce dim ", d, " of size 0 (input shape ", shape_str(x->shape), ")");
    out_position[d] = int(out_shape.size());
    if (!reduced[d]) out_shape.push_back(x->shape[d]);
    else if (keepdim) out_shape.push_back(1);
  }
  // Walk x in memory order. Argmax/argmin over all dims keep the reduced dims in index order, so
  // that their position in the walk is the flat index.
  std::vector<int> kept, red;
  for (int d : memory_order(*x))
    if (x->shape[d] != 1) (reduced[d] ? red : kept).push_back(d);
  if (is_arg(op)) std::sort(red.begin(), red.end());
  // The output is laid out like x's kept dims (a buffer in walking order), viewed in dim order.
  Shape buffer_shape;
  for (int d : kept) buffer_shape.push_back(x->shape[d]);
  TensorPtr buffer = empty(buffer_shape, output_dtype(op, x->dtype), x->device());
  Shape buffer_strides = contiguous_strides(buffer_shape), out_strides(out_shape.size(), 1);
  for (size_t i = 0; i < kept.size(); i++) out_strides[out_position[kept[i]]] = buffer_strides[i];
  TensorPtr out = make_view(buffer, out_shape, out_strides, 0);
  if (out->numel() > 0) reduce_kernel(op, buffer, make_plan(x, kept, red), correction);
  return out;
}

int64_t reduce_op_from_int(int64_t v) {
  if (v < 0 || v > int64_t(ReduceOp::ArgMin)) fail(ERR_ARG, "unknown reduce op ", v);
  return v;
}

}  // namespace ignis
