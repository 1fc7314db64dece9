#include "cuda/lora.h"

#include <type_traits>
#include "core/dtype.h"
#include "cuda/elementwise.h"
#include "cuda/graph.h"
#include "cuda/loop.cuh"
#include "cuda/matmul.h"
#include "kernels/lora.h"

namespace ignis::cuda {
namespace {

GemmOperand transposed(const GemmOperand& m) { return GemmOperand{m.data, !m.trans, m.ld, {}}; }
GemmOperand dense(const void* data, int64_t cols) { return GemmOperand{data, false, cols > 1 ? cols : 1, {}}; }

// out [m, n] (in out_dtype) = alpha * a b (=), or += when `accumulate`; an empty k leaves zeros
// (cuBLAS takes m, n, k > 0).
void product_to(DType dtype, DType out_dtype, Device device, int64_t m, int64_t n, int64_t k, const GemmOperand& a,
                const GemmOperand& b, void* out, double alpha, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      use_device(device.index);
      check(cudaMemsetAsync(out, 0, size_t(m * n) * dtype_size(out_dtype), current_stream(device.index)), "cudaMemsetAsync");
    }
    return;
  }
  gemm_to(dtype, out_dtype, Gemm{m, n, k, {}, a, b, out, accumulate, alpha, device});
}

void product(DType dtype, Device device, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, void* out,
             double alpha, bool accumulate) {
  product_to(dtype, dtype, device, m, n, k, a, b, out, alpha, accumulate);
}

template <typename W, typename D>
struct AddInto {
  __device__ W operator()(W w, D d) const {
    using Sum = std::common_type_t<acc_t<W>, D>;
    return W(Sum(acc_t<W>(w)) + Sum(d));
  }
};

template <typename T>
struct DropoutMask {
  acc_t<T> keep, scale;
  __device__ T operator()(T u) const { return T(dropout_mask_value(acc_t<T>(u), keep, scale)); }
};

// *flag = 1 when an element is Inf or NaN (the flag starts at 0).
template <typename T>
__global__ void __launch_bounds__(kThreads) finite_kernel(const T* x, int64_t n, int* flag) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  bool bad = false;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) bad |= !isfinite(x[i]);
  if (bad) *flag = 1;
}

}  // namespace

void lora_forward(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a_t, const GemmOperand& b_t, void* y,
                  bool y_holds_bias, void* xa) {
  // The rank-r product first: adding into y costs the large GEMM (compute-bound) little, while
  // the rank-r one (memory-bound) would read and write y once more.
  product(dtype, p.device, p.n, p.r, p.in, p.x_drop, a_t, xa, 1, false);
  product(dtype, p.device, p.n, p.out, p.r, dense(xa, p.r), b_t, y, p.scale, y_holds_bias);
  product(dtype, p.device, p.n, p.out, p.in, p.x, transposed(p.w), y, 1, true);
}

void lora_backward(DType dtype, const cpu::LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                   const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db) {
  product(dtype, p.device, p.n, p.r, p.out, dy, b, dy_b, 1, false);
  const DType grads = accumulation_dtype(dtype);
  product_to(dtype, grads, p.device, p.out, p.r, p.n, transposed(dy), xa, db, p.scale, false);
  product_to(dtype, grads, p.device, p.r, p.in, p.n, transposed(dense(dy_b, p.r)), p.x_drop, da, p.scale, false);
  if (!dx) return;
  // The rank-r part first, as in the forward (and the dropout mask applies to it alone).
  product(dtype, p.device, p.n, p.in, p.r, dense(dy_b, p.r), a, dx->data(), p.scale, false);
  if (mask) binary(BinaryOp::Mul, dx, dx, mask);
  product(dtype, p.device, p.n, p.in, p.out, dy, p.w, dx->data(), 1, true);
}

void lora_delta(DType dtype, Device device, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a,
                double scale, void* delta) {
  product(dtype, device, out, in, r, b, a, delta, scale, false);
}

bool all_finite(const TensorPtr& t) {
  const int device = t->device().index;
  require_not_capturing(device, "loraMerge (it checks the delta on the host)");
  if (t->dtype != DType::Float32 && t->dtype != DType::Float64)
    fail(ERR_INTERNAL, "all_finite: ", dtype_name(t->dtype), " is not float32 or float64");
  use_device(device);
  const cudaStream_t stream = current_stream(device);
  TensorPtr flag = empty({1}, DType::Int32, t->device());
  int* f = static_cast<int*>(flag->data());
  check(cudaMemsetAsync(f, 0, sizeof *f, stream), "cudaMemsetAsync");
  const int64_t n = t->numel();
  if (n > 0) {
    if (t->dtype == DType::Float64) finite_kernel<<<grid_for(n), kThreads, 0, stream>>>(t->data_as<double>(), n, f);
    else finite_kernel<<<grid_for(n), kThreads, 0, stream>>>(t->data_as<float>(), n, f);
    check_launch("loraMerge");
  }
  int result = 0;
  check(cudaMemcpyAsync(&result, f, sizeof result, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return result == 0;
}

void add_into(const TensorPtr& w, const TensorPtr& delta) {
  dispatch_float(w->dtype, "add_into", [&](auto w_tag) {
    using W = decltype(w_tag);
    switch (delta->dtype) {
      case DType::Float32: return map<W, W, float>("loraMerge", w, {w, delta}, AddInto<W, float>{});
      case DType::Float64: return map<W, W, double>("loraMerge", w, {w, delta}, AddInto<W, double>{});
      default: fail(ERR_INTERNAL, "add_into: the delta is ", dtype_name(delta->dtype), ", not float32 or float64");
    }
  });
}

void dropout_mask(const TensorPtr& out, const TensorPtr& uniform, double p) {
  dispatch_float(out->dtype, "loraDropoutMask", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    map<T, T>("loraDropoutMask", out, {uniform}, DropoutMask<T>{A(1 - p), p < 1 ? A(1 / (1 - p)) : A(0)});
  });
}

}  // namespace ignis::cuda
