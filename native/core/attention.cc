#include "core/attention.h"

#include <climits>
#include <cmath>
#include <vector>
#include "core/backend.h"
#include "core/loop.h"
#include "core/matmul.h"
#include "core/views.h"
#include "cpu/attention.h"

namespace ignis {
namespace {

constexpr const char* kOp = "scaledDotProductAttention";

std::string shapes_of(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v) {
  return "query " + shape_str(q->shape) + ", key " + shape_str(k->shape) + ", value " + shape_str(v->shape);
}

// Checks q, k, v, mask and scale; returns the problem's sizes and options (operands unset).
cpu::AttentionProblem check_problem(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, const TensorPtr& mask, bool causal,
                                    double scale) {
  const std::pair<const char*, const TensorPtr*> inputs[] = {{"query", &q}, {"key", &k}, {"value", &v}};
  for (const auto& [name, t] : inputs) {
    if (!is_float((*t)->dtype)) fail(ERR_DTYPE, kOp, ": ", name, " must be a floating-point tensor, got ", dtype_name((*t)->dtype));
    check_same_device(kOp, q, *t);
    if ((*t)->ndim() != 4)
      fail(ERR_SHAPE, kOp, ": ", name, " must have 4 dims [batch, heads, length, head dim], got shape ", shape_str((*t)->shape));
  }
  if (k->dtype != q->dtype || v->dtype != q->dtype)
    fail(ERR_DTYPE, kOp, ": query, key and value must have one dtype, got ", dtype_name(q->dtype), ", ", dtype_name(k->dtype), " and ",
         dtype_name(v->dtype));
  const int64_t batch = q->shape[0], heads = q->shape[1], kv_heads = k->shape[1], head_dim = q->shape[3];
  if (k->shape[0] != batch || v->shape[0] != batch) fail(ERR_SHAPE, kOp, ": the batch sizes differ (", shapes_of(q, k, v), ")");
  if (v->shape[1] != kv_heads) fail(ERR_SHAPE, kOp, ": key and value have different head counts (", shapes_of(q, k, v), ")");
  if (heads == 0 || kv_heads == 0 || heads % kv_heads != 0)
    fail(ERR_SHAPE, kOp, ": the key/value heads (", kv_heads, ") must be positive and divide the query heads (", heads, ") (",
         shapes_of(q, k, v), ")");
  if (v->shape[2] != k->shape[2]) fail(ERR_SHAPE, kOp, ": key and value have different lengths (", shapes_of(q, k, v), ")");
  if (k->shape[3] != head_dim) fail(ERR_SHAPE, kOp, ": query and key have different head dims (", shapes_of(q, k, v), ")");
  if (head_dim == 0 || v->shape[3] == 0 || head_dim > INT_MAX || v->shape[3] > INT_MAX)
    fail(ERR_SHAPE, kOp, ": head dims must be in [1, ", INT_MAX, "] (", shapes_of(q, k, v), ")");
  if (!std::isfinite(scale)) fail(ERR_ARG, kOp, ": scale must be a finite number, got ", scale);
  cpu::AttentionProblem p{batch, heads, kv_heads, q->shape[2], k->shape[2], head_dim, v->shape[3], {}, {}, {}, nullptr, {}, causal, scale};
  if (mask) {
    check_same_device(kOp, q, mask);
    if (mask->dtype != q->dtype)
      fail(ERR_DTYPE, kOp, ": the mask must have the query's dtype ", dtype_name(q->dtype), ", got ", dtype_name(mask->dtype));
    p.mask = mask->data();
    p.mask_strides = broadcast_strides(*mask, {batch, heads, p.q_len, p.k_len}, "scaledDotProductAttention: mask");
  }
  return p;
}

// The dtype the operands reach the device backend in: the compute dtype, or the storage dtype
// where the backend reads that directly (sparing the converted copies).
DType operand_dtype(const cpu::AttentionProblem& p, const TensorPtr& q) {
  const auto reads_storage = backend(q->device()).attention_reads_storage;
  return reads_storage && reads_storage(p, q->dtype, q->device()) ? q->dtype : accumulation_dtype(q->dtype);
}

// t in `dtype` with its last two dims in a BLAS form (a copy only when they have none, or to
// convert t), as an operand indexed by (batch, head); `keep` holds it alive.
GemmOperand operand(const TensorPtr& t, DType dtype, std::vector<TensorPtr>& keep) {
  TensorPtr m = blas_operand(t, dtype);
  keep.push_back(m);
  return gemm_operand(m, {m->shape[0], m->shape[1]});
}

void fill_operands(cpu::AttentionProblem& p, const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, DType dtype,
                   std::vector<TensorPtr>& keep) {
  p.q = operand(q, dtype, keep);
  p.k = operand(k, dtype, keep);
  p.v = operand(v, dtype, keep);
}

// A new tensor of `shape` [batch, heads, length, dim] laid out in memory as `like` is in its
// first three dims: as [batch, length, heads, dim] when like's length dim is outside its heads
// dim (a transpose(1, 2) view of a [batch, length, heads, dim] projection), contiguous otherwise.
// Gradients then have their inputs' layout, and such an output transposed back to
// [batch, length, heads * dim] (to project the heads) is a view.
TensorPtr empty_like_heads(const Shape& shape, const TensorPtr& like) {
  const bool heads_inside = like->shape[1] > 1 && like->shape[2] > 1 && like->strides[2] > like->strides[1];
  if (!heads_inside) return empty(shape, like->dtype, like->device());
  return permute(empty({shape[0], shape[2], shape[1], shape[3]}, like->dtype, like->device()), {0, 2, 1, 3});
}

void check_like(const char* name, const TensorPtr& t, const Shape& shape, DType dtype, const TensorPtr& q) {
  check_same_device(kOp, q, t);
  if (t->dtype != dtype) fail(ERR_DTYPE, kOp, ": ", name, " must be ", dtype_name(dtype), ", got ", dtype_name(t->dtype));
  if (t->shape != shape) fail(ERR_SHAPE, kOp, ": ", name, " of shape ", shape_str(t->shape), " does not match (expected ", shape_str(shape), ")");
}

}  // namespace

AttentionForward attention_forward(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, const TensorPtr& mask, bool causal,
                                   double scale) {
  cpu::AttentionProblem p = check_problem(q, k, v, mask, causal, scale);
  std::vector<TensorPtr> keep;
  fill_operands(p, q, k, v, operand_dtype(p, q), keep);
  TensorPtr out = empty_like_heads({p.batch, p.heads, p.q_len, p.value_dim}, q);
  TensorPtr lse = empty({p.batch, p.heads, p.q_len}, accumulation_dtype(q->dtype), q->device());
  kernel(&DeviceBackend::attention_forward, q->device(), kOp)(p, out, lse->data());
  return {out, lse};
}

AttentionGrads attention_backward(const TensorPtr& dout, const TensorPtr& q, const TensorPtr& k, const TensorPtr& v,
                                  const TensorPtr& out, const TensorPtr& lse, const TensorPtr& mask, bool causal, double scale) {
  cpu::AttentionProblem p = check_problem(q, k, v, mask, causal, scale);
  const Shape out_shape{p.batch, p.heads, p.q_len, p.value_dim};
  check_like("the output gradient", dout, out_shape, q->dtype, q);
  check_like("the saved output", out, out_shape, q->dtype, q);
  check_like("the saved logsumexp", lse, {p.batch, p.heads, p.q_len}, accumulation_dtype(q->dtype), q);
  std::vector<TensorPtr> keep;
  const DType dtype = operand_dtype(p, q);
  fill_operands(p, q, k, v, dtype, keep);
  GemmOperand out_op = operand(out, dtype, keep), dout_op = operand(dout, dtype, keep);
  TensorPtr lse_rows = contiguous(lse);
  AttentionGrads g{empty_like_heads(q->shape, q), empty_like_heads(k->shape, k), empty_like_heads(v->shape, v)};
  kernel(&DeviceBackend::attention_backward, q->device(), "scaledDotProductAttention backward")(p, out_op, dout_op, lse_rows->data(), g.dq, g.dk, g.dv);
  return g;
}

}  // namespace ignis
