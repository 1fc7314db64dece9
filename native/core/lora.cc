#include "core/lora.h"

#include <climits>
#include <cmath>
#include "core/backend.h"
#include "core/elementwise.h"
#include "core/loop.h"
#include "core/matmul.h"
#include "core/views.h"

namespace ignis {
namespace {

// The layer's GEMMs run in the device's GEMM dtype for the input's (float32 for 16-bit inputs on
// the CPU, the 16-bit dtype itself with float32 accumulation on CUDA).
DType compute_dtype(const TensorPtr& x) { return kernel(&DeviceBackend::gemm_dtype, x->device(), "loraLinear")(x->dtype); }

void check_float(const char* op, const char* name, const TensorPtr& t) {
  if (!is_float(t->dtype)) fail(ERR_DTYPE, op, ": ", name, " must be a floating-point tensor, got ", dtype_name(t->dtype));
}

// t must have the dtype and device of x (the input).
void check_like_input(const char* op, const char* name, const TensorPtr& t, const TensorPtr& x) {
  check_same_device(op, x, t);
  if (t->dtype != x->dtype)
    fail(ERR_DTYPE, op, ": ", name, " must have the input's dtype ", dtype_name(x->dtype), ", got ", dtype_name(t->dtype));
}

// The adapter a must be on x's device, of x's dtype or float32 for a 16-bit x.
void check_adapter_like_input(const char* op, const TensorPtr& a, const TensorPtr& x) {
  check_same_device(op, x, a);
  const bool half = x->dtype == DType::BFloat16 || x->dtype == DType::Float16;
  if (a->dtype != x->dtype && !(half && a->dtype == DType::Float32))
    fail(ERR_DTYPE, op, ": A must have the input's dtype ", dtype_name(x->dtype), half ? " or float32" : "", ", got ",
         dtype_name(a->dtype));
}

void check_scale(const char* op, double scale) {
  if (!std::isfinite(scale)) fail(ERR_ARG, op, ": scale must be a finite number, got ", scale);
}

// w [out, in], a [r, in], b [out, r] with r >= 1, sizes within BLAS's 32-bit ints.
void check_layer(const char* op, const TensorPtr& w, const TensorPtr& a, const TensorPtr& b) {
  check_float(op, "weight", w);
  check_float(op, "A", a);
  check_same_device(op, w, a);
  check_same_device(op, w, b);
  if (b->dtype != a->dtype) fail(ERR_DTYPE, op, ": A and B must have one dtype, got ", dtype_name(a->dtype), " and ", dtype_name(b->dtype));
  if (w->ndim() != 2) fail(ERR_SHAPE, op, ": weight must have 2 dims [out, in], got shape ", shape_str(w->shape));
  int64_t out = w->shape[0], in = w->shape[1];
  if (a->ndim() != 2 || a->shape[1] != in || a->shape[0] < 1)
    fail(ERR_SHAPE, op, ": A of shape ", shape_str(a->shape), " does not match weight of shape ", shape_str(w->shape),
         " (expected [r, ", in, "] with r >= 1)");
  int64_t r = a->shape[0];
  if (b->ndim() != 2 || b->shape[0] != out || b->shape[1] != r)
    fail(ERR_SHAPE, op, ": B of shape ", shape_str(b->shape), " does not match weight ", shape_str(w->shape), " and A ",
         shape_str(a->shape), " (expected [", out, ", ", r, "])");
  if (out > INT_MAX || in > INT_MAX)
    fail(ERR_SHAPE, op, ": weight of shape ", shape_str(w->shape), " exceeds BLAS's 32-bit sizes");
}

// x [..., in] against the layer; returns the leading dims.
Shape check_input(const char* op, const TensorPtr& x, const TensorPtr& w, const TensorPtr& a, const TensorPtr& mask) {
  check_float(op, "input", x);
  check_adapter_like_input(op, a, x);
  check_same_device(op, x, w);
  if (x->ndim() == 0) fail(ERR_SHAPE, op, ": input must have at least 1 dim, got shape []");
  if (x->shape.back() != w->shape[1])
    fail(ERR_SHAPE, op, ": input of shape ", shape_str(x->shape), " does not match weight of shape ", shape_str(w->shape),
         " (in_features ", w->shape[1], ")");
  Shape lead(x->shape.begin(), x->shape.end() - 1);
  if (shape_numel(lead) > INT_MAX) fail(ERR_SHAPE, op, ": input of shape ", shape_str(x->shape), " exceeds BLAS's 32-bit sizes");
  if (mask) {
    check_like_input(op, "dropout mask", mask, x);
    bool fits = mask->ndim() <= x->ndim();
    for (int i = 1; fits && i <= mask->ndim(); i++) {
      int64_t m = mask->shape[mask->ndim() - i];
      fits = m == 1 || m == x->shape[x->ndim() - i];
    }
    if (!fits)
      fail(ERR_SHAPE, op, ": dropout mask of shape ", shape_str(mask->shape), " does not broadcast to the input's shape ",
           shape_str(x->shape));
  }
  return lead;
}

void check_shape_is(const char* op, const char* name, const TensorPtr& t, const Shape& expected) {
  if (t->shape != expected)
    fail(ERR_SHAPE, op, ": ", name, " of shape ", shape_str(t->shape), " does not match the layer (expected ", shape_str(expected), ")");
}

Shape with_last(Shape lead, int64_t last) {
  lead.push_back(last);
  return lead;
}

// t [..., cols] as a matrix [rows, cols] in `dtype` and a BLAS form: a view when t's leading
// dims merge into one strided dim, a copy otherwise.
TensorPtr as_matrix(const TensorPtr& t, int64_t rows, DType dtype) { return blas_operand(reshape(t, {rows, t->shape.back()}), dtype); }

// A result computed as [rows, cols] in the compute dtype, seen with `shape` and converted to `dtype`.
TensorPtr finish(const TensorPtr& t, const Shape& shape, DType dtype) { return to_dtype(view(t, shape), dtype); }

GemmOperand operand(const TensorPtr& m) { return gemm_operand(m, {}); }

// The layer's operands in a BLAS form; x itself only when `need_x` or without a mask (the
// backward reads only dropout(x)). The tensors they point into are kept alive in `keep`.
cpu::LoraOperands layer_operands(const TensorPtr& x, const TensorPtr& w, const TensorPtr& a, const TensorPtr& mask, int64_t n,
                                 double scale, DType compute, bool need_x, std::vector<TensorPtr>& keep) {
  TensorPtr xd = mask ? as_matrix(binary(BinaryOp::Mul, x, mask), n, compute) : nullptr;
  TensorPtr xm = !mask || need_x ? as_matrix(x, n, compute) : xd;
  if (!xd) xd = xm;
  TensorPtr wm = blas_operand(w, compute);
  keep.insert(keep.end(), {xm, xd, wm});
  return cpu::LoraOperands{n, w->shape[1], w->shape[0], a->shape[0], operand(xm), operand(xd), operand(wm), scale, x->device()};
}

// A contiguous copy of the 2-D t's transpose in `dtype`. The adapters are small (r rows or
// columns), and OpenBLAS 0.3.21 runs the rank-r update y += xa B^T 4-5x slower when B^T is given
// as a transpose flag than as this copy.
TensorPtr transposed_copy(const TensorPtr& t, DType dtype) {
  return contiguous(to_dtype(make_view(t, {t->shape[1], t->shape[0]}, {t->strides[1], t->strides[0]}, t->offset), dtype));
}

}  // namespace

LoraForward lora_linear_forward(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, const TensorPtr& a,
                                const TensorPtr& b, double scale, const TensorPtr& mask) {
  const char* op = "loraLinearForward";
  check_layer(op, w, a, b);
  Shape lead = check_input(op, x, w, a, mask);
  check_scale(op, scale);
  int64_t n = shape_numel(lead), out = w->shape[0], r = a->shape[0];
  if (bias) {
    check_float(op, "bias", bias);
    check_same_device(op, x, bias);
    if (bias->ndim() != 1 || bias->shape[0] != out)
      fail(ERR_SHAPE, op, ": bias of shape ", shape_str(bias->shape), " does not match weight of shape ", shape_str(w->shape),
           " (expected [", out, "])");
  }
  DType compute = compute_dtype(x);
  std::vector<TensorPtr> keep;
  cpu::LoraOperands p = layer_operands(x, w, a, mask, n, scale, compute, true, keep);
  TensorPtr a_t = transposed_copy(a, compute), b_t = transposed_copy(b, compute);
  TensorPtr y = empty({n, out}, compute, x->device()), xa = empty({n, r}, compute, x->device());
  if (bias) copy_into(y, bias);
  kernel(&DeviceBackend::lora_forward, x->device(), op)(compute, p, operand(a_t), operand(b_t), y->data(), bias != nullptr, xa->data());
  return {finish(y, with_last(lead, out), x->dtype), finish(xa, with_last(lead, r), x->dtype)};
}

LoraGrads lora_linear_backward(const TensorPtr& dy, const TensorPtr& x, const TensorPtr& w, const TensorPtr& a,
                               const TensorPtr& b, const TensorPtr& xa, double scale, const TensorPtr& mask,
                               bool need_input_grad) {
  const char* op = "loraLinearBackward";
  check_layer(op, w, a, b);
  Shape lead = check_input(op, x, w, a, mask);
  check_scale(op, scale);
  int64_t n = shape_numel(lead), in = w->shape[1], out = w->shape[0], r = a->shape[0];
  check_like_input(op, "output gradient", dy, x);
  check_like_input(op, "saved xa", xa, x);
  check_shape_is(op, "output gradient", dy, with_last(lead, out));
  check_shape_is(op, "saved xa", xa, with_last(lead, r));
  DType compute = compute_dtype(x);
  std::vector<TensorPtr> keep;
  cpu::LoraOperands p = layer_operands(x, w, a, mask, n, scale, compute, false, keep);
  TensorPtr am = blas_operand(a, compute), bm = blas_operand(b, compute);
  TensorPtr dym = as_matrix(dy, n, compute), xam = as_matrix(xa, n, compute);
  Device device = x->device();
  const DType grads = accumulation_dtype(compute);
  TensorPtr dy_b = empty({n, r}, compute, device), da = empty({r, in}, grads, device), db = empty({out, r}, grads, device);
  TensorPtr dx = need_input_grad ? empty(x->shape, compute, device) : nullptr;
  kernel(&DeviceBackend::lora_backward, device, op)(compute, p, operand(am), operand(bm), operand(dym), operand(xam), dy_b->data(), dx,
                     mask ? to_dtype(mask, compute) : nullptr, da->data(), db->data());
  return {dx ? to_dtype(dx, x->dtype) : nullptr, to_dtype(da, a->dtype), to_dtype(db, b->dtype)};
}

void lora_merge(const TensorPtr& w, const TensorPtr& a, const TensorPtr& b, double scale, bool unmerge) {
  const char* op = unmerge ? "loraUnmerge" : "loraMerge";
  check_layer(op, w, a, b);
  check_scale(op, scale);
  if (!w->is_contiguous()) fail(ERR_ARG, op, ": weight of shape ", shape_str(w->shape), " must be contiguous (it is updated in place)");
  DType compute = accumulation_dtype(a->dtype);
  TensorPtr am = blas_operand(a, compute), bm = blas_operand(b, compute);
  TensorPtr delta = empty(w->shape, compute, w->device());
  kernel(&DeviceBackend::lora_delta, w->device(), op)(compute, w->device(), w->shape[0], w->shape[1], a->shape[0], operand(bm), operand(am), unmerge ? -scale : scale, delta->data());
  if (!kernel(&DeviceBackend::all_finite, w->device(), op)(delta))
    fail(ERR_ARG, op, ": scale * B A holds NaN or Inf values (B ", shape_str(b->shape), ", A ", shape_str(a->shape),
         ", scale ", scale, "); the weight was left unchanged");
  kernel(&DeviceBackend::add_into, w->device(), op)(w, delta);
}

TensorPtr lora_dropout_mask(const TensorPtr& uniform, double p) {
  const char* op = "loraDropoutMask";
  check_float(op, "uniform samples", uniform);
  if (!(p >= 0 && p <= 1)) fail(ERR_ARG, op, ": p must be in [0, 1], got ", p);
  TensorPtr u = contiguous(uniform);
  TensorPtr out = empty(u->shape, u->dtype, u->device());
  kernel(&DeviceBackend::dropout_mask, u->device(), op)(out, u, p);
  return out;
}

}  // namespace ignis
