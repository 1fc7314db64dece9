#include "cpu/lora.h"

#include <atomic>
#include <cstring>
#include <type_traits>
#include "core/loop.h"
#include "cpu/matmul.h"
#include "kernels/lora.h"

namespace ignis::cpu {
namespace {

// The same matrix seen transposed: BLAS reads it with the other transpose flag.
GemmOperand transposed(const GemmOperand& m) { return GemmOperand{m.data, !m.trans, m.ld, {}}; }

// A contiguous row-major matrix with `cols` columns (a buffer this file allocates).
GemmOperand dense(const void* data, int64_t cols) { return GemmOperand{data, false, cols > 1 ? cols : 1, {}}; }

// out [m, n] = alpha * a b (=), or += when `accumulate`. Empty sizes make no BLAS call (BLAS
// takes m, n, k > 0): an empty k leaves a product of zeros.
void product(DType dtype, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, void* out,
             double alpha, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) std::memset(out, 0, size_t(m * n) * dtype_size(dtype));  // all-zero bits are 0.0
    return;
  }
  gemm(dtype, Gemm{m, n, k, {}, a, b, out, accumulate, alpha});
}

template <typename T>
bool all_finite_typed(const T* data, int64_t count) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  std::atomic<bool> finite{true};
  parallel_for(count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    Bits bad = 0;  // an all-ones exponent is Inf or NaN
    for (int64_t i = begin; i < end; i++) {
      Bits u;
      std::memcpy(&u, data + i, sizeof u);
      bad |= Bits((u & exponent) == exponent);
    }
    if (bad) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template <typename W, typename D>
void add_into_typed(W* __restrict w, const D* __restrict delta, int64_t count) {
  using Sum = std::common_type_t<acc_t<W>, D>;
  parallel_for(count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) w[i] = W(Sum(acc_t<W>(w[i])) + Sum(delta[i]));
  });
}

template <typename T>
void multiply_by_typed(const StridedLoop<2>& loop) {
  for_each_strided(loop, kElementwiseGrain, [](char* const* ptrs, const int64_t* strides, int64_t count) {
    T* __restrict out = reinterpret_cast<T*>(ptrs[0]);
    const T* __restrict m = reinterpret_cast<const T*>(ptrs[1]);
    if (strides[0] == sizeof(T) && strides[1] == sizeof(T)) {
      for (int64_t i = 0; i < count; i++) out[i] *= m[i];
    } else {
      for (int64_t i = 0; i < count; i++)
        *reinterpret_cast<T*>(ptrs[0] + i * strides[0]) *= *reinterpret_cast<const T*>(ptrs[1] + i * strides[1]);
    }
  });
}

// t *= mask in place (=); t float32 or float64, mask of t's dtype broadcast to t's shape.
void multiply_by(const TensorPtr& t, const TensorPtr& mask) {
  Shape mask_strides = broadcast_strides(*mask, t->shape, "multiply_by");
  size_t es = t->element_size();
  auto loop = make_loop<2>(t->shape, {LoopOperand{t->data(), t->strides.data(), es}, LoopOperand{mask->data(), mask_strides.data(), es}});
  if (t->dtype == DType::Float64) multiply_by_typed<double>(loop);
  else multiply_by_typed<float>(loop);
}

}  // namespace

void lora_forward(DType dtype, const LoraOperands& p, const GemmOperand& a_t, const GemmOperand& b_t, void* y, bool y_holds_bias,
                  void* xa) {
  product(dtype, p.n, p.out, p.in, p.x, transposed(p.w), y, 1, y_holds_bias);
  product(dtype, p.n, p.r, p.in, p.x_drop, a_t, xa, 1, false);
  product(dtype, p.n, p.out, p.r, dense(xa, p.r), b_t, y, p.scale, true);
}

void lora_backward(DType dtype, const LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                   const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db) {
  product(dtype, p.n, p.r, p.out, dy, b, dy_b, 1, false);
  product(dtype, p.out, p.r, p.n, transposed(dy), xa, db, p.scale, false);
  product(dtype, p.r, p.in, p.n, transposed(dense(dy_b, p.r)), p.x_drop, da, p.scale, false);
  if (!dx) return;
  if (mask) {
    product(dtype, p.n, p.in, p.r, dense(dy_b, p.r), a, dx->data(), p.scale, false);
    multiply_by(dx, mask);
    product(dtype, p.n, p.in, p.out, dy, p.w, dx->data(), 1, true);
  } else {
    product(dtype, p.n, p.in, p.out, dy, p.w, dx->data(), 1, false);
    product(dtype, p.n, p.in, p.r, dense(dy_b, p.r), a, dx->data(), p.scale, true);
  }
}

void lora_delta(DType dtype, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a, double scale,
                void* delta) {
  product(dtype, out, in, r, b, a, delta, scale, false);
}

bool all_finite(const TensorPtr& t) {
  switch (t->dtype) {
    case DType::Float32: return all_finite_typed(t->data_as<float>(), t->numel());
    case DType::Float64: return all_finite_typed(t->data_as<double>(), t->numel());
    default: fail(ERR_INTERNAL, "all_finite: ", dtype_name(t->dtype), " is not float32 or float64");
  }
}

void add_into(const TensorPtr& w, const TensorPtr& delta) {
  dispatch_float(w->dtype, "add_into", [&](auto w_tag) {
    using W = decltype(w_tag);
    switch (delta->dtype) {
      case DType::Float32: return add_into_typed(w->data_as<W>(), delta->data_as<float>(), w->numel());
      case DType::Float64: return add_into_typed(w->data_as<W>(), delta->data_as<double>(), w->numel());
      default: fail(ERR_INTERNAL, "add_into: the delta is ", dtype_name(delta->dtype), ", not float32 or float64");
    }
  });
}

void dropout_mask(const TensorPtr& out, const TensorPtr& uniform, double p) {
  dispatch_float(out->dtype, "dropout_mask", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A keep = A(1 - p), scale = p < 1 ? A(1 / (1 - p)) : A(0);
    T* __restrict o = out->data_as<T>();
    const T* __restrict u = uniform->data_as<T>();
    parallel_for(out->numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) o[i] = T(dropout_mask_value(A(u[i]), keep, scale));
    });
  });
}

}  // namespace ignis::cpu
