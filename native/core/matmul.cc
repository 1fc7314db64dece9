#include "core/matmul.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include "core/backend.h"
#include "core/loop.h"
#include "core/views.h"

namespace ignis {
namespace {

std::atomic<int64_t> g_operand_copies{0};

// Sizes and leading dims are 32-bit ints in BLAS.
constexpr int64_t kBlasMax = INT_MAX;

// The BLAS form of a rows x cols matrix whose elements are (rs, cs) apart, when it has one:
// row-major (cs == 1, rows at least cols apart), else column-major, passed transposed (rs == 1,
// columns at least rows apart). The stride of a size-1 dim never matters.
bool blas_form(int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool& trans, int64_t& ld) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    trans = false;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
  } else if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    trans = true;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
  } else {
    return false;
  }
  return ld <= kBlasMax;
}

bool blas_form(const TensorImpl& t, bool& trans, int64_t& ld) {
  int n = t.ndim();
  return blas_form(t.shape[n - 2], t.shape[n - 1], t.strides[n - 2], t.strides[n - 1], trans, ld);
}

// t with the batch dims it repeats in memory (stride 0) shrunk to size 1, so that a copy of t
// does not materialise them; broadcasting the batch restores them.
TensorPtr without_repeated_batch(const TensorPtr& t) {
  Shape shape = t->shape;
  bool changed = false;
  for (int d = 0; d < t->ndim() - 2; d++) {
    if (t->strides[d] == 0 && shape[d] > 1) {
      shape[d] = 1;
      changed = true;
    }
  }
  return changed ? make_view(t, shape, t->strides, t->offset) : t;
}

// The last two dims swapped (a view).
TensorPtr transpose_last(const TensorPtr& t) {
  Shape shape = t->shape, strides = t->strides;
  int n = t->ndim();
  std::swap(shape[n - 2], shape[n - 1]);
  std::swap(strides[n - 2], strides[n - 1]);
  return make_view(t, shape, strides, t->offset);
}

}  // namespace

TensorPtr blas_operand(const TensorPtr& t, DType dtype) {
  bool trans;
  int64_t ld;
  bool has_form = blas_form(*t, trans, ld);
  if (t->dtype == dtype && has_form) return t;
  TensorPtr src = without_repeated_batch(t);
  if (t->dtype != dtype) return has_form && trans ? transpose_last(to_dtype(transpose_last(src), dtype)) : to_dtype(src, dtype);
  g_operand_copies.fetch_add(1, std::memory_order_relaxed);
  return contiguous_copy(src);
}

// Batch strides aligned to the right of `batch`; 0 where t is broadcast.
GemmOperand gemm_operand(const TensorPtr& t, const Shape& batch) {
  GemmOperand op{t->data(), false, 0, Shape(batch.size(), 0)};
  blas_form(*t, op.trans, op.ld);
  size_t lead = batch.size() - size_t(t->ndim() - 2);
  for (size_t i = lead; i < batch.size(); i++)
    if (t->shape[i - lead] != 1) op.batch_strides[i] = t->strides[i - lead];
  return op;
}

namespace {

// When every batch index uses the same b and a's batch dims merge with its rows into one
// strided dim, a single GEMM of (batch * m) rows replaces the batch loop (out is contiguous,
// so its rows merge the same way).
void fold_batch_into_rows(Gemm& g, const TensorPtr& a) {
  if (g.batch.empty() || std::any_of(g.b.batch_strides.begin(), g.b.batch_strides.end(), [](int64_t s) { return s != 0; })) return;
  int64_t rows = 1, row_stride = 0, next_stride = -1;  // next_stride < 0 until a dim of size > 1
  auto merge = [&](int64_t size, int64_t stride) {
    if (size == 1) return true;
    if (next_stride >= 0 && stride != next_stride) return false;
    if (next_stride < 0) row_stride = stride;
    next_stride = stride * size;
    rows *= size;
    return true;
  };
  if (!merge(g.m, a->strides[a->ndim() - 2])) return;
  for (size_t i = g.batch.size(); i-- > 0;)
    if (!merge(g.batch[i], g.a.batch_strides[i])) return;
  bool trans;
  int64_t ld;
  if (rows > kBlasMax || !blas_form(rows, g.k, row_stride, a->strides.back(), trans, ld)) return;
  g.m = rows;
  g.batch.clear();
  g.a.batch_strides.clear();
  g.b.batch_strides.clear();
  g.a.trans = trans;
  g.a.ld = ld;
}

// a [..., m, k] @ b [..., k, n] (2 dims or more each; `batch` is their broadcast batch dims) into a
// new tensor of `out_shape`, which is batch + [m, n] less the dims of 1-D operands. A bias is
// broadcast into the result first and the product added to it.
TensorPtr product(const char* op, const TensorPtr& a, const TensorPtr& b, const TensorPtr& bias, const Shape& batch,
                  const Shape& out_shape) {
  int64_t m = a->shape[a->ndim() - 2], k = a->shape.back(), n = b->shape.back();
  if (m > kBlasMax || n > kBlasMax || k > kBlasMax)
    fail(ERR_SHAPE, op, ": shapes ", shape_str(a->shape), " and ", shape_str(b->shape), " exceed BLAS's 32-bit sizes");
  DType dtype = a->dtype;
  const DeviceBackend& device = backend(a->device());
  auto gemm = kernel(&DeviceBackend::gemm, a->device(), op);
  DType compute = device.gemm_dtype(dtype);
  TensorPtr out = empty(out_shape, compute, a->device());
  if (bias) copy_into(out, bias);
  if (out->numel() > 0) {
    if (k == 0) {
      if (!bias) fill(out, 0);
    } else {
      TensorPtr blas_a = blas_operand(a, compute), blas_b = blas_operand(b, compute);
      Gemm g{m, n, k, batch, gemm_operand(blas_a, batch), gemm_operand(blas_b, batch), out->data(), bias != nullptr, 1, out->device()};
      fold_batch_into_rows(g, blas_a);
      gemm(compute, g);
    }
  }
  return compute == dtype ? out : to_dtype(out, dtype);
}

void check_operands(const char* op, const TensorPtr& a, const TensorPtr& b) {
  check_same_device(op, a, b);
  if (!is_float(a->dtype) || !is_float(b->dtype))
    fail(ERR_DTYPE, op, ": expected floating-point tensors, got ", dtype_name(a->dtype), " and ", dtype_name(b->dtype));
  check_same_dtype(op, a, b);
  if (a->ndim() == 0 || b->ndim() == 0)
    fail(ERR_SHAPE, op, ": operands need at least 1 dim, got shapes ", shape_str(a->shape), " and ", shape_str(b->shape));
}

Shape batch_dims(const TensorPtr& t) { return Shape(t->shape.begin(), t->shape.end() - 2); }

}  // namespace

TensorPtr matmul(const TensorPtr& a, const TensorPtr& b) {
  check_operands("matmul", a, b);
  TensorPtr a2 = a->ndim() == 1 ? unsqueeze(a, 0) : a;
  TensorPtr b2 = b->ndim() == 1 ? unsqueeze(b, 1) : b;
  int64_t k = a2->shape.back(), kb = b2->shape[b2->ndim() - 2];
  if (k != kb)
    fail(ERR_SHAPE, "matmul: shapes ", shape_str(a->shape), " and ", shape_str(b->shape), " do not match (inner dims ", k,
         " and ", kb, ")");
  Shape batch;
  try {
    batch = broadcast_shapes(batch_dims(a2), batch_dims(b2), "matmul");
  } catch (const Error&) {
    fail(ERR_SHAPE, "matmul: the batch dims of shapes ", shape_str(a->shape), " and ", shape_str(b->shape),
         " cannot be broadcast together");
  }
  Shape out_shape = batch;
  if (a->ndim() > 1) out_shape.push_back(a2->shape[a2->ndim() - 2]);
  if (b->ndim() > 1) out_shape.push_back(b2->shape.back());
  return product("matmul", a2, b2, nullptr, batch, out_shape);
}

TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias) {
  check_operands("linear", x, w);
  if (w->ndim() != 2) fail(ERR_SHAPE, "linear: weight must have 2 dims [out, in], got shape ", shape_str(w->shape));
  int64_t out_features = w->shape[0], in_features = w->shape[1];
  if (x->shape.back() != in_features)
    fail(ERR_SHAPE, "linear: input of shape ", shape_str(x->shape), " does not match weight of shape ", shape_str(w->shape),
         " (last dim ", x->shape.back(), ", in_features ", in_features, ")");
  if (bias) {
    check_same_device("linear", x, bias);
    check_same_dtype("linear", x, bias);
    if (bias->ndim() != 1 || bias->shape[0] != out_features)
      fail(ERR_SHAPE, "linear: bias of shape ", shape_str(bias->shape), " does not match weight of shape ", shape_str(w->shape),
           " (expected [", out_features, "])");
  }
  // w^T as a view: a row-major weight reaches BLAS as column-major, with the transpose flag.
  TensorPtr wt = make_view(w, {in_features, out_features}, {w->strides[1], w->strides[0]}, w->offset);
  TensorPtr x2 = x->ndim() == 1 ? unsqueeze(x, 0) : x;
  Shape out_shape(x->shape.begin(), x->shape.end() - 1);
  out_shape.push_back(out_features);
  return product("linear", x2, wt, bias, batch_dims(x2), out_shape);
}

int64_t matmul_operand_copies() { return g_operand_copies.load(std::memory_order_relaxed); }

}  // namespace ignis
