#include "cpu/lora.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>
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

// The operand moved `offset` rows further, or columns when `columns`. Row i of a row-major
// matrix starts i * ld elements in, of a column-major one (trans) i elements in; columns the
// other way round.
GemmOperand advance(const GemmOperand& m, int64_t offset, bool columns, size_t element_size) {
  int64_t step = m.trans == columns ? m.ld : 1;
  return GemmOperand{static_cast<const char*>(m.data) + offset * step * int64_t(element_size), m.trans, m.ld, {}};
}

// The LoRA products are skinny (r = 8..64 on one side). OpenBLAS 0.3.21 gains little from its own
// threads on them, so above this many multiply-adds per thread they are split over the thread
// pool instead, with OpenBLAS on one thread in each part.
constexpr double kPartWork = double(1 << 22);

// How many parts to split `work` multiply-adds into: 1 when not worth it.
int64_t part_count(int64_t m, int64_t n, int64_t k) {
  double work = double(m) * double(n) * double(k);
  if (in_parallel_region() || work < 2 * kPartWork) return 1;
  return std::min<int64_t>(num_threads(), int64_t(work / kPartWork));
}

// product() for a tall a (m large): row blocks of a and out, one per thread.
void product_by_rows(DType dtype, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, void* out,
                     double alpha, bool accumulate) {
  int64_t parts = std::min(part_count(m, n, k), m);
  if (parts <= 1) return product(dtype, m, n, k, a, b, out, alpha, accumulate);
  int64_t rows = (m + parts - 1) / parts;
  size_t es = dtype_size(dtype);
  parallel_for(parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t part = first; part < last; part++) {
      int64_t begin = part * rows, count = std::min(rows, m - begin);
      if (count > 0)
        product(dtype, count, n, k, advance(a, begin, false, es), b, static_cast<char*>(out) + begin * n * int64_t(es), alpha,
                accumulate);
    }
  });
}

// out (=) for a long inner dim k and a small out: k blocks, one per thread, into partial products
// (the first into out), summed after.
void product_by_depth(DType dtype, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, void* out,
                      double alpha) {
  int64_t parts = std::min(part_count(m, n, k), k);
  if (parts <= 1) return product(dtype, m, n, k, a, b, out, alpha, false);
  int64_t depth = (k + parts - 1) / parts;
  parts = (k + depth - 1) / depth;
  size_t es = dtype_size(dtype);
  std::vector<char> partials(size_t(parts - 1) * size_t(m * n) * es);
  parallel_for(parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t part = first; part < last; part++) {
      int64_t begin = part * depth;
      void* target = part == 0 ? out : partials.data() + size_t(part - 1) * size_t(m * n) * es;
      product(dtype, m, n, std::min(depth, k - begin), advance(a, begin, true, es), advance(b, begin, false, es), target, alpha, false);
    }
  });
  auto sum = [&](auto* total) {
    using T = std::remove_pointer_t<decltype(total)>;
    const T* partial = reinterpret_cast<const T*>(partials.data());
    for (int64_t part = 0; part < parts - 1; part++)
      for (int64_t i = 0; i < m * n; i++) total[i] += partial[part * m * n + i];
  };
  if (dtype == DType::Float64) sum(static_cast<double*>(out));
  else sum(static_cast<float*>(out));
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
  product_by_rows(dtype, p.n, p.r, p.in, p.x_drop, a_t, xa, 1, false);
  product_by_rows(dtype, p.n, p.out, p.r, dense(xa, p.r), b_t, y, p.scale, true);
}

void lora_backward(DType dtype, const LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                   const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db) {
  product_by_rows(dtype, p.n, p.r, p.out, dy, b, dy_b, 1, false);
  product_by_depth(dtype, p.out, p.r, p.n, transposed(dy), xa, db, p.scale);
  product_by_depth(dtype, p.r, p.in, p.n, transposed(dense(dy_b, p.r)), p.x_drop, da, p.scale);
  if (!dx) return;
  if (mask) {
    product_by_rows(dtype, p.n, p.in, p.r, dense(dy_b, p.r), a, dx->data(), p.scale, false);
    multiply_by(dx, mask);
    product(dtype, p.n, p.in, p.out, dy, p.w, dx->data(), 1, true);
  } else {
    product(dtype, p.n, p.in, p.out, dy, p.w, dx->data(), 1, false);
    product_by_rows(dtype, p.n, p.in, p.r, dense(dy_b, p.r), a, dx->data(), p.scale, true);
  }
}

void lora_delta(DType dtype, Device, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a, double scale,
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
