#include "cpu/elementwise.h"

#include "core/loop.h"

namespace ignis::cpu {

void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b) {
  Shape sa = broadcast_strides(*a, out->shape, "binary"), sb = broadcast_strides(*b, out->shape, "binary");
  size_t es = out->element_size();
  auto loop = make_loop<3>(out->shape, {LoopOperand{out->data(), out->strides.data(), es}, LoopOperand{a->data(), sa.data(), es},
                                        LoopOperand{b->data(), sb.data(), es}});
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dispatch_binary_op(op, [&](auto f) {
      for_each_strided(loop, kElementwiseGrain, [f](char* const* p, const int64_t* s, int64_t n) {
        T* __restrict o = reinterpret_cast<T*>(p[0]);
        const T* __restrict x = reinterpret_cast<const T*>(p[1]);
        const T* __restrict y = reinterpret_cast<const T*>(p[2]);
        constexpr int64_t e = sizeof(T);
        if (s[0] == e && s[1] == e && s[2] == e) {
          for (int64_t i = 0; i < n; i++) o[i] = T(f(A(x[i]), A(y[i])));
        } else if (s[0] == e && s[1] == e && s[2] == 0) {
          const A yv = A(*y);
          for (int64_t i = 0; i < n; i++) o[i] = T(f(A(x[i]), yv));
        } else if (s[0] == e && s[1] == 0 && s[2] == e) {
          const A xv = A(*x);
          for (int64_t i = 0; i < n; i++) o[i] = T(f(xv, A(y[i])));
        } else {
          for (int64_t i = 0; i < n; i++)
            *reinterpret_cast<T*>(p[0] + i * s[0]) =
                T(f(A(*reinterpret_cast<const T*>(p[1] + i * s[1])), A(*reinterpret_cast<const T*>(p[2] + i * s[2]))));
        }
      });
    });
  });
}

void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double scalar, bool reversed) {
  size_t es = out->element_size();
  auto loop = make_loop<2>(out->shape, {LoopOperand{out->data(), out->strides.data(), es}, LoopOperand{a->data(), a->strides.data(), es}});
  dispatch_numeric(out->dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A sv = A(scalar);
    dispatch_binary_op(op, [&](auto f) {
      for_each_strided(loop, kElementwiseGrain, [f, sv, reversed](char* const* p, const int64_t* s, int64_t n) {
        constexpr int64_t e = sizeof(T);
        if (s[0] == e && s[1] == e) {
          T* __restrict o = reinterpret_cast<T*>(p[0]);
          const T* __restrict x = reinterpret_cast<const T*>(p[1]);
          if (reversed) for (int64_t i = 0; i < n; i++) o[i] = T(f(sv, A(x[i])));
          else for (int64_t i = 0; i < n; i++) o[i] = T(f(A(x[i]), sv));
          return;
        }
        for (int64_t i = 0; i < n; i++) {
          A x = A(*reinterpret_cast<const T*>(p[1] + i * s[1]));
          *reinterpret_cast<T*>(p[0] + i * s[0]) = T(reversed ? f(sv, x) : f(x, sv));
        }
      });
    });
  });
}

}  // namespace ignis::cpu
